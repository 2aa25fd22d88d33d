"""The evaluation: float vs int8 vs emulator side by side, daemon chunking, report files."""

from __future__ import annotations

import json

import numpy as np
import torch

from s2gesture.daemon.card import GESTURE_CLASSES
from s2gesture.models.binned import BinnedSet
from s2gesture.models.evaluate import Variant, confusion, evaluate, load_variant, write_report
from s2gesture.models.export import export_model, make_card, psnn_from_nir, to_nir_graph
from s2gesture.models.network import PSNN, PSNNConfig
from s2gesture.models.quantize import quantize_ptq

SMALL = PSNNConfig(channels=(4, 4, 4), hidden=16)


def _float_model(seed: int) -> PSNN:
    torch.manual_seed(seed)
    model = PSNN(SMALL)
    with torch.no_grad():
        for layer in model.weights.values():
            layer.weight.mul_(3.0)
    return model.eval()


def _test_set(seed: int, n: int = 5, ticks: int = 260) -> BinnedSet:
    rng = np.random.default_rng(seed)
    spikes = [(rng.random((ticks + 20 * i, 2, 32, 32)) < 0.02).astype(np.uint8) for i in range(n)]
    return BinnedSet(spikes, rng.integers(0, 11, size=n), [f"user{30 + i % 2}" for i in range(n)], [])


def test_report_has_every_row_and_the_emulator_matches_the_torch_chip_simulator(tmp_path) -> None:
    """Rows for float, the four torch semantics and the emulator; chip simulator and emulator agree exactly."""
    fm = _float_model(0)
    q, record = quantize_ptq(fm, 100.0)
    card = make_card("q", record, semantics="snntorch")
    variant = Variant("ptq100", q, to_nir_graph(q), card, "snntorch", record)
    report = evaluate(
        fm, [variant], _test_set(1), seeds=(0, 1, 2), window=100, progress=lambda s: None,
        ablations=("snntorch", "latency", "reset", "chip"), torch_full=True,
    )  # fmt: skip
    names = [r["name"] for r in report["rows"]]
    assert len(names) == 6 and names[0].startswith("float")
    by = {r["kind"]: r for r in report["rows"]}
    for key in ("first_window_acc", "seed_window_acc", "full_recording_acc"):
        assert by["chip"][key] == by["emulator"][key]
    assert len(by["emulator"]["seed_window_acc"]) == 3
    assert report["memory"]["ptq100"]["pes_used"] > 0
    total = report["memory"]["ptq100"]["weights"][-1]
    assert total["float32_bytes"] == 4 * total["int8_bytes"]
    assert report["chunk_plan"]["window"] <= 874
    _check_user_stats(report, n=5, n_users=2)
    report["rows"][2]["full_recording_acc"] = None  # torch rows without full recordings (the default)
    report["rows"][2]["drop_pp"]["full_recording"] = None
    write_report(report, tmp_path, GESTURE_CLASSES)
    assert json.loads((tmp_path / "report.json").read_text())["n_test"] == 5
    assert (tmp_path / "confusion.png").stat().st_size > 1000
    md = (tmp_path / "report.md").read_text()
    assert "| float" in md
    assert "| user30 | 3 |" in md and "| user31 | 2 |" in md
    assert report["rows"][-1]["summary"] in md


def _check_user_stats(report: dict, n: int, n_users: int) -> None:
    """Every row's interval over users, per-user and per-lighting rows agree with its own accuracy."""
    labels = np.asarray(report["labels"])
    for row in report["rows"]:
        basis = row["full_preds"] if row["user_stats_basis"] == "full recording" else row["first_preds"]
        acc = row["full_recording_acc"] if row["user_stats_basis"] == "full recording" else row["first_window_acc"]
        assert float(np.mean(np.asarray(basis) == labels)) == acc
        ci = row["user_ci"]
        assert (ci["n"], ci["n_users"]) == (n, n_users)
        assert ci["lo"] <= ci["mean"] <= ci["hi"] and ci["mean"] == acc
        users = row["per_user"]
        assert sum(u["n"] for u in users) == n
        # per-user accuracies weighted by their recordings average back to the whole set's
        assert sum(u["correct"] for u in users) == round(acc * n)
        assert abs(sum(u["acc"] * u["n"] for u in users) / n - acc) < 1e-12
        assert row["worst_user"]["acc"] == min(u["acc"] for u in users)
        assert sum(li["n"] for li in row["per_lighting"]) == n
        assert row["summary"].startswith(f"accuracy {100 * acc:.1f} %")


def test_nir_file_rebuilds_the_same_torch_model(tmp_path) -> None:
    """A .nir written by the exporter loads back as a P-SNN with the same weights and thresholds."""
    q, record = quantize_ptq(_float_model(3), 99.9)
    export_model(q, tmp_path / "m.nir", make_card("m", record, semantics="chip"))
    variant = load_variant(tmp_path / "m.nir")
    assert variant.trained_for == "chip"
    back = psnn_from_nir(to_nir_graph(q))
    assert back.cfg.beta == 0.93
    for name in q.weights:
        assert torch.equal(variant.model.weights[name].weight, q.weights[name].weight)
        assert torch.equal(back.weights[name].weight, q.weights[name].weight)
    assert torch.allclose(variant.model.thresholds, q.thresholds)


def test_confusion_ignores_no_evidence() -> None:
    """A prediction of -1 (no output spikes at all) counts as wrong, not as a class."""
    m = confusion(np.array([0, 1, 1]), np.array([0, -1, 2]), n=3)
    assert m.tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 0]]


def _write_tiny_dataset(root, seed: int) -> None:
    """A few random-event recordings of 3 labels per split in tonic's layout."""
    from s2gesture.daemon.events import make_events
    from s2gesture.models.datasets.tonic_layout import write_sample

    rng = np.random.default_rng(seed)
    # two test users under different lightings, so the report has users and lightings to break down
    for split, users in (("train", (1, 2)), ("test", (3, 4))):
        for user in users:
            lighting = "natural" if user == 4 else "led"
            for label in range(3):
                n = 12_000
                x0 = 10 + 36 * label  # each label lights its own column band
                ev = make_events(
                    rng.integers(x0, x0 + 30, n), rng.integers(10, 118, n), rng.random(n) < 0.5,
                    np.sort(rng.integers(0, 400_000, n)),
                )  # fmt: skip
                write_sample(root, split, user, lighting, label, ev)


def test_the_four_commands_run_end_to_end_on_a_dataset(tmp_path) -> None:
    """train -> quantize (PTQ and QAT) -> export -> evaluate through their CLIs on a tiny tonic-layout dataset."""
    from s2gesture.daemon.card import read_model
    from s2gesture.models import evaluate as evaluate_mod
    from s2gesture.models import export, quantize, train

    data, run = tmp_path / "data", tmp_path / "run"
    _write_tiny_dataset(data, 0)
    small = ["--channels", "4", "4", "4", "--hidden", "16", "--threads", "1", "--no-progress"]
    assert train.cli(["--data", str(data), "--out", str(run), "--epochs", "1", "--window", "60", "--eval-window", "60", *small]) == 0  # fmt: skip
    assert (run / "model.pt").is_file() and (run / "curve.png").is_file()
    assert (
        quantize.cli(["--model", str(run / "model.pt"), "--method", "ptq", "--out", str(run / "ptq.pt")]) == 0
    )
    qat_args = ["--model", str(run / "model.pt"), "--method", "qat", "--data", str(data), "--epochs", "1",
                "--window", "40", "--no-progress", "--out", str(run / "qat.pt")]  # fmt: skip
    assert quantize.cli(qat_args) == 0
    assert export.cli(["--model", str(run / "qat.pt"), "--out", str(run / "qat.nir")]) == 0
    card = read_model(run / "qat.nir").card
    assert card.quantization["scheme"] == "qat" and card.training["config"]["epochs"] == 1
    args = ["--data", str(data), "--float", str(run / "model.pt"), "--quantized", f"ptq={run / 'ptq.pt'}",
            str(run / "qat.nir"), "--out", str(run / "report"), "--window", "100"]  # fmt: skip
    assert evaluate_mod.cli(args) == 0
    report = json.loads((run / "report" / "report.json").read_text())
    assert report["n_test"] == 6
    assert {r["model"] for r in report["rows"]} == {"float", "ptq", "qat"}
    # users and lightings come from the tonic folder names (userNN_<lighting>)
    assert report["test_set"]["lightings"] == ["led", "natural"]
    _check_user_stats(report, n=6, n_users=2)
    by_kind = {r["kind"]: r["user_stats_basis"] for r in report["rows"]}
    assert by_kind == {"float": "full recording", "snntorch": "first window", "latency": "first window",
                       "reset": "first window", "emulator": "full recording"}  # fmt: skip
    for row in report["rows"]:
        lit = {li["lighting"]: li for li in row["per_lighting"]}
        assert lit["led"]["n_users"] == lit["natural"]["n_users"] == 1
    md = (run / "report" / "report.md").read_text()
    assert "cluster bootstrap" in md and "| user03 | 3 |" in md and "| natural | 3 | 1 |" in md
