"""The toolkit fails like the daemon does: bad input ends in one line on stderr and a documented exit code.

Every test runs the real ``s2gesture`` console script as a subprocess on real (missing, corrupt or wrong)
files, as a user would, and checks the exit code, that stderr is one line naming the file, and that no
traceback is printed (``--debug`` is the way to get one).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

S2GESTURE = str(Path(sys.executable).with_name("s2gesture"))
BAD_INPUT, CANNOT_RUN, PIPE_CLOSED = 2, 1, 141


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``s2gesture ARGS`` and capture its output (a deadline so a hang fails the test)."""
    return subprocess.run([S2GESTURE, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def one_line_error(result: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    """Assert exit ``code``, one stderr line (after progress noise) containing ``words``, no traceback."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


@pytest.fixture
def garbage(tmp_path: Path) -> Path:
    """A file of random bytes."""
    path = tmp_path / "garbage.bin"
    path.write_bytes(np.random.default_rng(5).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


def test_show_missing_and_corrupt_recordings_get_one_line(tmp_path: Path, garbage: Path) -> None:
    """`show` on a missing .npy and on a corrupt .aedat names the file and exits 2."""
    one_line_error(run("show", str(tmp_path / "nope.npy"), cwd=tmp_path), BAD_INPUT, "nope.npy")
    bad = garbage.rename(tmp_path / "user01_led.aedat")
    one_line_error(run("show", str(bad), cwd=tmp_path), BAD_INPUT, "user01_led.aedat", "AEDAT 3.1")


def test_train_on_a_missing_dataset_says_what_layout_it_expected(tmp_path: Path) -> None:
    """`train --data` on an empty folder names the folder and the layouts it reads."""
    (tmp_path / "empty").mkdir()
    line = one_line_error(run("train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), cwd=tmp_path),
                          BAD_INPUT, "empty")  # fmt: skip
    assert "userNN" in line


def test_train_refuses_a_bad_none_weight_before_reading_data(tmp_path: Path) -> None:
    """`train --none-weight 0`, or a weight with `--classes 11` (no "none" class), is refused before the
    (here missing) dataset is read: the message names the option, not the data."""
    (tmp_path / "empty").mkdir()
    base = ("train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o"))
    line = one_line_error(run(*base, "--none-weight", "0", cwd=tmp_path), BAD_INPUT, "--none-weight", "> 0")
    assert "userNN" not in line
    line = one_line_error(run(*base, "--none-weight", "3", "--classes", "11", cwd=tmp_path), BAD_INPUT,
                          "--none-weight", "no 'none' class")  # fmt: skip
    assert "userNN" not in line


def test_quantize_refuses_a_nir_file_and_a_corrupt_pt_without_the_unpickler(tmp_path: Path, garbage: Path) -> None:
    """`quantize --model x.nir` says it wants the .pt; a corrupt .pt is named, not unpickled into a traceback."""
    nir_file = tmp_path / "x.nir"
    nir_file.write_bytes(garbage.read_bytes())
    one_line_error(run("quantize", "--model", str(nir_file), "--out", "q.pt", cwd=tmp_path), BAD_INPUT, "x.nir", ".pt")
    pt = garbage.rename(tmp_path / "model.pt")
    one_line_error(run("quantize", "--model", str(pt), "--out", "q.pt", cwd=tmp_path), BAD_INPUT, "model.pt", "re-create")


def test_export_and_evaluate_name_a_missing_model(tmp_path: Path) -> None:
    """`export` and `evaluate` with a model file that does not exist say how to make one."""
    one_line_error(run("export", "--model", "none.pt", "--out", "m.nir", cwd=tmp_path), BAD_INPUT, "none.pt", "s2gesture")
    one_line_error(
        run("evaluate", "--data", str(tmp_path), "--float", "none.pt", "--quantized", "q.pt", "--out", "r", cwd=tmp_path),
        BAD_INPUT, "none.pt",
    )  # fmt: skip


def test_export_refuses_a_float_model_in_one_line(tmp_path: Path) -> None:
    """A float model.pt given to `export` is named as float with the fix (quantize first)."""
    from s2gesture.models.network import PSNN, PSNNConfig
    from s2gesture.models.train import save_float_model

    save_float_model(tmp_path / "model.pt", PSNN(PSNNConfig(channels=(2, 2, 2), hidden=8)), {})
    one_line_error(run("export", "--model", "model.pt", "--out", "m.nir", cwd=tmp_path), BAD_INPUT, "'float'", "quantize")


def test_map_exit_codes_missing_corrupt_and_cannot_run(tmp_path: Path, garbage: Path) -> None:
    """`map`: 2 for a missing or corrupt file, 1 (after the table) for a model that needs more PEs than a chip has."""
    one_line_error(run("map", "none.nir", cwd=tmp_path), BAD_INPUT, "none.nir")
    one_line_error(run("map", str(garbage), cwd=tmp_path), BAD_INPUT, "garbage.bin", "NIR")
    big = run("map", "--example", "paper", "--atoms", "lif1=1", "--png", "p.png", cwd=tmp_path)
    assert big.returncode == CANNOT_RUN and "Traceback" not in big.stderr
    assert "PEs used" in big.stdout and "cannot run on one SpiNNaker2 chip" in big.stderr
    ok = run("map", "--example", "paper", "--png", "p.png", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    """`--debug` lets the error through with its traceback (for bug reports)."""
    result = run("show", "nope.npy", "--debug", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" in result.stderr and "nope.npy" in result.stderr


def test_a_pipe_closed_early_exits_quietly(tmp_path: Path) -> None:
    """Output into a pipe whose reader has gone (`| head`) ends with exit 141 and nothing on stderr."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write: deterministic EPIPE
    try:
        proc = subprocess.run([S2GESTURE, "map", "--example", "paper", "--json", "--png", "p.png"], cwd=tmp_path,
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120, check=False)  # fmt: skip
    finally:
        os.close(write_end)
    assert proc.returncode == PIPE_CLOSED, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr



def test_unknown_reproduce_data_folder_is_one_line(tmp_path: Path) -> None:
    """`reproduce --data` on a folder that is neither layout names both layouts."""
    (tmp_path / "d").mkdir()
    line = one_line_error(run("reproduce", "--data", "d", "--out", "run", "--quick", cwd=tmp_path), BAD_INPUT, "d")
    assert "trials_to_train.txt" in line and "DVSGesture" in line
