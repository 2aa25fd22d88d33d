"""Quantization: percentile PTQ with threshold scaling, Brevitas QAT exporting integers and scales."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from s2gesture.models.binned import BinnedSet
from s2gesture.models.network import PSNN, PSNNConfig
from s2gesture.models.quantize import (
    export_qat,
    memory_table,
    ptq_scale,
    qat_model_from_float,
    quantize_ptq,
    quantize_qat,
    quantize_weight,
)
from s2gesture.models.train import TrainConfig

SMALL = PSNNConfig(channels=(4, 4, 4), hidden=16)


def _spikes(seed: int, T: int = 40, B: int = 2, p: float = 0.05) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy((rng.random((T, B, 2, 32, 32)) < p).astype(np.float32))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([100.0, 99.9, 99.0]))
def test_ptq_weights_are_int8_and_the_percentile_maps_to_127(seed: int, p: float) -> None:
    """Quantized weights are integers in [-127, 127]; the p-th percentile of |W| lands on 127."""
    w = np.random.default_rng(seed).normal(0, 0.1, size=(8, 4, 3, 3)).astype(np.float32)
    s = ptq_scale(w, p)
    q = quantize_weight(w, s)
    assert np.array_equal(q, np.rint(q)) and np.abs(q).max() <= 127
    ref = np.abs(w).max() if p == 100 else np.percentile(np.abs(w), p)
    assert ref * s == pytest.approx(127.0)
    if p == 100:
        assert np.abs(q).max() == 127


def test_ptq_scales_thresholds_by_the_layer_factor_and_keeps_exact_models_exact() -> None:
    """With weights on a power-of-two grid PTQ is lossless: integer model spikes exactly like the float one."""
    torch.manual_seed(0)
    model = PSNN(SMALL)
    rng = np.random.default_rng(1)
    with torch.no_grad():
        for layer in model.weights.values():
            ints = rng.integers(-127, 128, size=layer.weight.shape)
            ints.flat[0] = 127  # the max maps to 127: scale = 16 exactly
            layer.weight.copy_(torch.from_numpy(ints / 16.0))
    q, record = quantize_ptq(model, 100.0)
    assert set(record["layer_scales"].values()) == {16.0}
    assert q.thresholds.tolist() == [16.0] * 5
    x = _spikes(2, p=0.1)
    for sem in ("snntorch", "chip"):
        with torch.no_grad():
            assert torch.equal(model(x, sem), q(x, sem))


def test_lower_percentiles_clip_the_largest_weights() -> None:
    """p = 99 saturates the top 1 % of weights at +-127 and reports how many were clipped."""
    torch.manual_seed(0)
    model = PSNN(SMALL)
    q, record = quantize_ptq(model, 99.0)
    w = q.weights["fc1"].weight.detach().numpy()
    assert (np.abs(w) == 127).sum() >= 0.005 * w.size
    assert record["clipped_weights"]["fc1"] > 0
    assert record["percentile"] == 99.0


def test_qat_exports_integers_and_thresholds_from_brevitas_scales() -> None:
    """The QAT export holds int8 weights whose value times Brevitas' scale is the fake-quantized weight."""
    torch.manual_seed(0)
    qmodel = qat_model_from_float(PSNN(SMALL))
    with torch.no_grad():
        qmodel.thresholds.mul_(torch.tensor([1.0, 1.1, 0.9, 1.2, 0.8]))
    int_model, record = export_qat(qmodel)
    for name, layer in qmodel.weights.items():
        ints = int_model.weights[name].weight
        assert torch.equal(ints, torch.round(ints)) and ints.abs().max() <= 127
        fake = layer.quant_weight().value
        assert torch.allclose(ints / record["layer_scales"][name], fake, rtol=1e-5, atol=1e-7)
    scales = list(record["layer_scales"].values())
    learned = record["learned_thresholds_float"]
    assert int_model.thresholds.tolist() == pytest.approx(
        [t * s for t, s in zip(learned, scales, strict=True)], rel=1e-5
    )
    # the integer model behaves like the fake-quantized one (same drive relative to threshold)
    x = _spikes(3, p=0.1)
    with torch.no_grad():
        a, b = qmodel(x), int_model(x)
    assert (a != b).float().mean() < 0.01


def test_qat_fine_tunes_for_an_epoch_on_tiny_data(tmp_path) -> None:
    """quantize_qat trains the Brevitas model briefly and returns an integer model with a record."""
    rng = np.random.default_rng(0)
    data = BinnedSet(
        [(rng.random((30, 2, 32, 32)) < 0.05).astype(np.uint8) for _ in range(4)], np.array([0, 1, 2, 3])
    )
    base = TrainConfig(mirror_p=0.0, shift_px=0)
    int_model, record = quantize_qat(
        PSNN(SMALL), data, None, tmp_path, epochs=1, window=20, batch_size=4, progress=False, base=base
    )
    assert record["scheme"] == "qat" and len(record["qat"]["history"]["loss"]) == 1
    assert all(
        np.array_equal(w.detach().numpy(), np.rint(w.detach().numpy())) for _, w in int_model.iter_weights()
    )


def test_memory_table_shows_the_4x_reduction() -> None:
    """float32 bytes are 4x the int8 bytes per layer and in total (25,504 weights by default)."""
    rows = memory_table(PSNN())
    assert rows[-1] == {"layer": "total", "weights": 25_504, "float32_bytes": 102_016, "int8_bytes": 25_504}
    assert all(r["float32_bytes"] == 4 * r["int8_bytes"] for r in rows)
