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
    report["rows"][2]["full_recording_acc"] = None  # torch rows without full recordings (the default)
    report["rows"][2]["drop_pp"]["full_recording"] = None
    write_report(report, tmp_path, GESTURE_CLASSES)
    assert json.loads((tmp_path / "report.json").read_text())["n_test"] == 5
    assert (tmp_path / "confusion.png").stat().st_size > 1000
    assert "| float" in (tmp_path / "report.md").read_text()


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
