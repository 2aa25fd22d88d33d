"""``s2gesture reproduce --quick`` end to end on a tiny generated IBM raw release with split files and one bad row.

Runs the real console script as a subprocess, as a researcher would, then reads what it wrote: the stage
outputs, the side-by-side report with the paper's figures and intervals, NeuroBench's metrics from both
counters (cross-checked where they must agree) and the energy estimate. A second run finds every stage on
disk and skips it.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

S2GESTURE = str(Path(sys.executable).with_name("s2gesture"))


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 train users and 1 test user in the IBM layout, 0.8 s gestures, one impossible label row appended."""
    from s2gesture.models import synth

    root = tmp_path_factory.mktemp("dvs")
    synth.generate(root, 2, 1, 9, duration_s=0.8, repeats=1, workers=2, progress=False, layout="ibm")
    labels = root / "DvsGesture" / "user01_fluorescent_led_labels.csv"
    labels.write_text(labels.read_text() + "5,900,100\r\n")  # end before start
    return root


def reproduce(release: Path, out: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run `s2gesture reproduce --quick` with a deadline."""
    return subprocess.run(
        [S2GESTURE, "reproduce", "--data", str(release), "--out", str(out), "--quick", "--cache", str(cache),
         "--no-progress", "--workers", "2", *extra],
        capture_output=True, text=True, timeout=280, check=False,
    )  # fmt: skip


def test_strict_by_default_the_bad_row_is_one_line_naming_file_line_and_flag(release: Path, tmp_path: Path) -> None:
    """Without --skip-bad-rows the run stops before training with exit 2 naming the CSV line and the flag."""
    result = reproduce(release, tmp_path / "run", tmp_path / "cache")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "user01_fluorescent_led_labels.csv: line 13" in line and "--skip-bad-rows" in line
    assert not (tmp_path / "run" / "seed0").exists()


@pytest.mark.slow
def test_quick_reproduction_end_to_end_then_resumed(release: Path, tmp_path: Path) -> None:
    """Every stage runs, the report sits beside the paper's figures with metrics and energy; a rerun skips all."""
    run, cache = tmp_path / "run", tmp_path / "cache"
    first = reproduce(release, run, cache, "--skip-bad-rows")
    assert first.returncode == 0, first.stderr[-2000:]
    assert "ETA per seed" in first.stdout and "skipped 1 bad label rows" in first.stdout
    for stage in ("float/model.pt", "int8/ptq100.pt", "int8/ptq99.9.pt", "int8/qat.pt", "export/qat.nir",
                  "eval/report.json", "metrics.json"):  # fmt: skip
        assert (run / "seed0" / stage).is_file(), stage
    assert not list(release.rglob("index.npz")) and list(cache.rglob("index.npz"))  # cache never in the dataset

    summary = json.loads((run / "report.json").read_text())
    assert summary["data"]["kind"] == "ibm" and summary["data"]["skipped_rows"] == 1
    assert summary["data"]["n_train"] == 22  # the two training sessions' 22 good rows; the appended bad one skipped
    assert summary["paper"]["qat_chip_pct"] == 94.13 and summary["paper"]["ptq_drop_pp"] == 1.07
    seed0 = summary["per_seed"][0]
    n = seed0["n_test"]
    for key in ("ptq100/emulator", "ptq99.9/emulator", "qat/emulator"):
        low, high = seed0[key]["interval_pct"]
        assert 0 <= low <= seed0[key]["acc_pct"] <= high <= 100
        # accuracy is a count of whole recordings
        assert abs(seed0[key]["acc_pct"] * n / 100 - round(seed0[key]["acc_pct"] * n / 100)) < 1e-9

    metrics = json.loads((run / "seed0" / "metrics.json").read_text())
    has_neurobench = importlib.util.find_spec("neurobench") is not None
    for name in ("ptq100", "ptq99.9", "qat"):
        nb, emu = metrics[name]["neurobench"], metrics[name]["emulator"]
        energy = emu["energy_per_sample"]
        assert energy["model_not_measurement"] and energy["energy_j_low"] < energy["energy_j"] < energy["energy_j_high"]
        assert emu["Footprint_int8_weights_bytes"] == 25504
        if not has_neurobench:
            assert "pip install" in nb["error"]
            continue
        # unpooled layers whose input is the same spikes: the package's counter and ours agree exactly
        assert nb["effective_ops_per_layer_per_sample"]["conv1"] == emu["synaptic_events_per_projection_per_sample"]["input->lif1"]
        assert nb["effective_ops_per_layer_per_sample"]["fc2"] == emu["synaptic_events_per_projection_per_sample"]["lif4->lif5"]
        assert nb["ActivationSparsity"] == pytest.approx(emu["ActivationSparsity"], abs=1e-9)
        assert nb["ParameterCount"] == 25504
    from s2gesture.daemon.card import read_model

    card = read_model(run / "seed0" / "export" / "qat.nir").card
    assert card.metrics["neurobench"]["emulator"]["SynapticOperations"] == metrics["qat"]["emulator"]["SynapticOperations"]
    assert card.metrics["evaluation"]["test_recordings"] == n
    text = (run / "report.md").read_text()
    assert "94.13 %" in text and "a model, not a measurement" in text and "TrueNorth" in text and "NeuroBench" in text

    second = reproduce(release, run, cache, "--skip-bad-rows")
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.stdout.count("done already, skipped") == 7 and "running" not in second.stdout
    assert json.loads((run / "report.json").read_text())["ours"] == summary["ours"]
