"""The fast emulator agrees bit for bit with the per-tick reference on random graphs, parameters and inputs."""

from __future__ import annotations

from fractions import Fraction

import nir
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2gesture.daemon.backends import get_backend
from s2gesture.daemon.backends.emulator import _kernels
from s2gesture.daemon.backends.reference import fma_f32


def _neuron(rng: np.random.Generator, kind: str, shape: tuple[int, ...], threshold: float) -> nir.NIRNode:
    dt = 1e-4
    if kind == "IF":
        return nir.IF(r=rng.uniform(0.5, 2, shape).astype(np.float32), v_threshold=np.full(shape, threshold, np.float32))
    tau = (dt / (1 - rng.uniform(0.7, 0.99, shape))).astype(np.float32)
    if kind == "CubaLIF":
        return nir.CubaLIF(
            tau_syn=(dt / (1 - rng.uniform(0.5, 0.95, shape))).astype(np.float32),
            tau_mem=tau,
            r=(tau / dt).astype(np.float32),
            v_leak=rng.uniform(-0.5, 0.5, shape).astype(np.float32),
            v_threshold=np.full(shape, threshold, np.float32),
            w_in=rng.uniform(0.5, 2, shape).astype(np.float32),
        )
    return nir.LIF(
        tau=tau,
        r=(tau / dt * rng.uniform(0.5, 1.5, shape)).astype(np.float32),
        v_leak=rng.uniform(-0.2, 0.2, shape).astype(np.float32),
        v_threshold=np.full(shape, threshold, np.float32),
    )


def random_graph(seed: int) -> tuple[nir.NIRGraph, dict[str, object], tuple[int, ...]]:
    """A random conv/pool/dense (optionally skip-connected or recurrent) graph and random chip options."""
    rng = np.random.default_rng(seed)
    scale = bool(rng.integers(2))
    c_in, h = int(rng.integers(1, 3)), int(rng.integers(6, 11))

    def w(shape: tuple[int, ...]) -> np.ndarray:
        x = rng.normal(0.3, 1.0, shape) * (1.0 if scale else 30.0)
        return (x if scale else np.round(x)).astype(np.float32)

    thr = float(rng.uniform(0.5, 3.0)) if scale else float(rng.uniform(20, 150))
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type={"input": np.array([c_in, h, h])})}
    edges: list[tuple[str, str]] = []
    k, s, p = int(rng.integers(1, 4)), int(rng.integers(1, 3)), int(rng.integers(0, 2))
    c1 = int(rng.integers(1, 5))
    ho = (h + 2 * p - k) // s + 1
    nodes["conv1"] = nir.Conv2d((h, h), w((c1, c_in, k, k)), s, p, 1, 1, rng.normal(0, 0.3, c1).astype(np.float32) * (1 if scale else 0))
    nodes["n1"] = _neuron(rng, str(rng.choice(["LIF", "IF"])), (c1, ho, ho), thr)
    edges += [("input", "conv1"), ("conv1", "n1")]
    last, last_shape = "n1", (c1, ho, ho)
    if ho >= 4 and rng.integers(2):
        nodes["pool"] = nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
        edges.append(("n1", "pool"))
        last, last_shape = "pool", (c1, ho // 2, ho // 2)
        if rng.integers(2):
            c2 = int(rng.integers(1, 4))
            hp = last_shape[1]
            nodes["conv2"] = nir.Conv2d((hp, hp), w((c2, c1, 3, 3)), 1, 1, 1, 1, np.zeros(c2, np.float32))
            nodes["n2"] = _neuron(rng, str(rng.choice(["LIF", "IF"])), (c2, hp, hp), thr)
            edges += [("pool", "conv2"), ("conv2", "n2")]
            last, last_shape = "n2", (c2, hp, hp)
    n_flat = int(np.prod(last_shape))
    n_out = int(rng.integers(2, 7))
    nodes["flat"] = nir.Flatten(input_type={"input": np.array(last_shape)}, start_dim=0, end_dim=-1)
    nodes["fc"] = nir.Affine(w((n_out, n_flat)), rng.normal(0, 0.2, n_out).astype(np.float32) * (1 if scale else 5))
    out_kind = str(rng.choice(["LIF", "IF", "CubaLIF"]))
    nodes["out"] = _neuron(rng, out_kind, (n_out,), thr)
    nodes["output"] = nir.Output(output_type={"output": np.array([n_out])})
    edges += [(last, "flat"), ("flat", "fc"), ("fc", "out"), ("out", "output")]
    if rng.integers(3) == 0:  # skip connection: a second projection into the output population
        nodes["flat_in"] = nir.Flatten(input_type={"input": np.array([c_in, h, h])}, start_dim=0, end_dim=-1)
        nodes["skip"] = nir.Linear(w((n_out, c_in * h * h)))
        edges += [("input", "flat_in"), ("flat_in", "skip"), ("skip", "out")]
    if rng.integers(4) == 0:  # recurrent projection: the output population feeds itself
        nodes["rec"] = nir.Linear(w((n_out, n_out)))
        edges += [("out", "rec"), ("rec", "out")]
    options = {
        "scale_weights": scale,
        "weight_scale_percentile": float(rng.choice([100.0, 99.0, 90.0])) if scale else 100.0,
        "integrator": str(rng.choice(["FORWARD", "EXPONENTIAL"])),
        "reset": str(rng.choice(["SUBTRACT", "ZERO"])),
        "threshold_op": str(rng.choice([">", ">="])),
        "fma": bool(rng.integers(2)),
        "cuba_current": str(rng.choice(["updated", "previous"])),
        "dense_rounding": str(rng.choice(["half-away", "truncate"])),
        "conn_delay": 0,  # conv projections take no delay (s2_nir); delays are covered by the dense graphs below
    }
    return nir.NIRGraph(nodes=nodes, edges=edges), options, (c_in, h, h)


def random_dense_graph(seed: int) -> tuple[nir.NIRGraph, dict[str, object], tuple[int, ...]]:
    """A random dense graph (two layers, optionally recurrent) with a connection delay of 1 or 2 ticks."""
    rng = np.random.default_rng(seed)
    n_in, n_hid, n_out = int(rng.integers(4, 40)), int(rng.integers(3, 30)), int(rng.integers(2, 8))

    def w(shape: tuple[int, ...]) -> np.ndarray:
        return np.round(rng.normal(0.3, 1.0, shape) * 30.0).astype(np.float32)

    thr = float(rng.uniform(20, 150))
    nodes: dict[str, nir.NIRNode] = {
        "input": nir.Input(input_type={"input": np.array([n_in])}),
        "fc1": nir.Affine(w((n_hid, n_in)), rng.normal(0, 5, n_hid).astype(np.float32)),
        "hid": _neuron(rng, str(rng.choice(["LIF", "IF", "CubaLIF"])), (n_hid,), thr),
        "fc2": nir.Linear(w((n_out, n_hid))),
        "out": _neuron(rng, str(rng.choice(["LIF", "IF"])), (n_out,), thr),
        "output": nir.Output(output_type={"output": np.array([n_out])}),
    }
    edges = [("input", "fc1"), ("fc1", "hid"), ("hid", "fc2"), ("fc2", "out"), ("out", "output")]
    if rng.integers(3) == 0:
        nodes["rec"] = nir.Linear(w((n_hid, n_hid)))
        edges += [("hid", "rec"), ("rec", "hid")]
    options = {
        "reset": str(rng.choice(["SUBTRACT", "ZERO"])),
        "fma": bool(rng.integers(2)),
        "dense_rounding": str(rng.choice(["half-away", "truncate"])),
        "conn_delay": int(rng.integers(1, 3)),
    }
    return nir.NIRGraph(nodes=nodes, edges=edges), options, (n_in,)


def _assert_fast_equals_reference(graph: nir.NIRGraph, options: dict[str, object], x: np.ndarray) -> None:
    """Run ``x`` on the emulator and the reference; every population's spikes and voltages must be identical."""
    fast = get_backend("emulator", check_memory=False, **options)
    ref = get_backend("reference", check_memory=False, **options)
    fast.load(graph)
    ref.load(graph)
    a = fast.run(x, record=("spikes", "v"))
    b = ref.run(x, record=("spikes", "v"))
    assert a.ticks == b.ticks == x.shape[0] + fast.latency_ticks
    assert np.array_equal(a.output_spikes, b.output_spikes)
    assert set(a.spikes) == set(b.spikes) and set(a.voltages) == set(b.voltages)
    for name in b.spikes:
        assert np.array_equal(a.spikes[name], b.spikes[name]), name
        assert np.array_equal(a.voltages[name], b.voltages[name]), name
        assert a.voltages[name].dtype == np.float32


@pytest.mark.parametrize("seed", range(8))
def test_fast_equals_reference_on_dense_graphs_with_delays(seed: int) -> None:
    """With conn_delay 1 or 2 (two projections deep), every population is identical between emulator and reference."""
    graph, options, shape = random_dense_graph(seed)
    rng = np.random.default_rng(2000 + seed)
    x = (rng.random((int(rng.integers(5, 40)), *shape)) < 0.3).astype(np.uint8)
    emu = get_backend("emulator", check_memory=False, **options)
    emu.load(graph)
    assert emu.latency_ticks == 2 * (1 + int(options["conn_delay"]))  # type: ignore[call-overload]
    _assert_fast_equals_reference(graph, options, x)


@pytest.mark.parametrize("seed", range(24))
def test_fast_equals_reference_on_random_graphs(seed: int) -> None:
    """Spikes and post-reset voltages of every population are identical between emulator and reference."""
    graph, options, shape = random_graph(seed)
    rng = np.random.default_rng(1000 + seed)
    x = (rng.random((int(rng.integers(5, 40)), *shape)) < rng.uniform(0.05, 0.5)).astype(np.uint8)
    _assert_fast_equals_reference(graph, options, x)


def test_random_graphs_are_not_trivial() -> None:
    """The random graphs spike (so the equivalence test compares activity, not silence)."""
    active = 0
    for seed in range(8):
        graph, options, shape = random_graph(seed)
        emu = get_backend("emulator", check_memory=False, **options)
        emu.load(graph)
        x = (np.random.default_rng(seed).random((30, *shape)) < 0.3).astype(np.uint8)
        res = emu.run(x)
        active += sum(int(v.sum() > 0) for v in res.spikes.values())
    assert active >= 8


def _exact_fma(a: np.float32, b: np.float32, c: np.float32) -> np.float32:
    exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    lo = np.float32(float(exact))  # float() rounds to nearest double; fix to the nearest float32 below
    cands = [np.nextafter(lo, np.float32(-np.inf)), lo, np.nextafter(lo, np.float32(np.inf))]
    best = min(cands, key=lambda f: (abs(Fraction(float(f)) - exact), int(np.array(f).view(np.int32)) & 1))
    return np.float32(best)


@settings(max_examples=300, deadline=None)
@given(
    st.floats(-2.0, 2.0, width=32),
    st.floats(-1e4, 1e4, width=32),
    st.floats(-1e4, 1e4, width=32),
)
def test_fma_is_correctly_rounded(a: float, b: float, c: float) -> None:
    """The numpy and the compiled fused multiply-add equal the exactly rounded a*b+c."""
    fa, fb, fc = np.float32(a), np.float32(b), np.float32(c)
    want = _exact_fma(fa, fb, fc)
    got = fma_f32(np.array([fa]), np.array([fb]), np.array([fc]))[0]
    assert got == want
    assert _kernels()["fma32"](fa, fb, fc) == want


def test_fma_midpoint_case_differs_from_double_rounding() -> None:
    """Where float64-then-float32 rounding is wrong (a tie), both fused implementations round correctly."""
    # a*a = 1 + 2^-11 + 2^-24 exactly: a float32 midpoint; + 2^-80 puts the exact value just above it,
    # but the float64 sum rounds back onto the midpoint and the tie then goes to the even neighbour
    a = np.float32(1 + 2**-12)
    c = np.float32(2**-80)
    twice = np.float32(float(a) * float(a) + float(c))
    fused = fma_f32(np.array([a]), np.array([a]), np.array([c]))[0]
    assert fused == _exact_fma(a, a, c) == np.float32(1 + 2**-11 + 2**-23)
    assert twice == np.float32(1 + 2**-11)
    assert _kernels()["fma32"](a, a, c) == fused
