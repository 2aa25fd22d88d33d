"""Chip semantics: parameter translation (SPINNAKER2.md section 4), the per-tick rule (section 5) and the
published checks (section 8), each derived by hand and compared exactly."""

from __future__ import annotations

import nir
import numpy as np
import pytest

from s2gesture.daemon.backends import get_backend
from s2gesture.daemon.backends.examples import nmnist_graph

F32 = np.float32


def _single_neuron_graph(weight: float, threshold: float, tau: float = 2.5e-3, r: float = 1.0) -> nir.NIRGraph:
    """Input(1) -> Linear(weight) -> LIF(tau, r, threshold) -> Output."""
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([1])}),
            "w": nir.Linear(np.array([[weight]], np.float32)),
            "lif": nir.LIF(tau=np.array([tau], np.float32), r=np.array([r], np.float32), v_leak=np.zeros(1, np.float32), v_threshold=np.array([threshold], np.float32)),
            "output": nir.Output(output_type={"output": np.array([1])}),
        },
        edges=[("input", "w"), ("w", "lif"), ("lif", "output")],
    )


def test_published_single_lif_trace_properties() -> None:
    """Section 8: tau 2.5 ms, dt 1e-4, threshold 0.1, zero reset, weight and threshold x102.02."""
    emu = get_backend("emulator", dt=1e-4, integrator="FORWARD", reset="ZERO")
    emu.load(_single_neuron_graph(weight=1.0 * 102.02, threshold=0.1 * 102.02))
    pop = emu.net.populations["lif"]
    alpha = F32(1 - 1e-4 / F32(2.5e-3))
    assert pop.alpha_decay[0] == alpha and abs(float(alpha) - 0.96) < 1e-6
    # r_factor = dt/tau = 0.04, so threshold (chip) = 10.202 / 0.04 = 255.05; the weight rounds to 102
    thr = F32(F32(0.1 * 102.02) * (1.0 / (1e-4 / F32(2.5e-3) * F32(1.0))))
    assert pop.threshold[0] == thr
    assert emu.net.projections[0].weight[0, 0] == 102
    x = np.zeros((40, 1), np.uint8)
    x[[0, 1, 2, 20]] = 1
    res = emu.run(x, record=("spikes", "v"))
    v = res.voltages["lif"][:, 0]
    s = res.output_spikes[:, 0]
    # one tick of latency: the spike listed at tick 0 shows at tick 1
    assert v[0] == 0 and v[1] == F32(102)
    v2 = alpha * F32(102) + F32(102)
    assert v[2] == v2
    v3 = alpha * v2 + F32(102)
    assert v3 > thr and s[3] == 1 and v[3] == 0  # fired on the third input, voltage recorded after reset
    assert s.nonzero()[0].tolist() == [3]
    # between inputs the voltage decays by exactly alpha per tick
    assert v[21] == F32(102) and v[22] == alpha * F32(102) and v[23] == alpha * (alpha * F32(102))


def test_subtract_reset_keeps_the_ticks_excess() -> None:
    """With reset by subtraction the voltage after a spike is v - threshold in the same tick."""
    emu = get_backend("emulator", reset="SUBTRACT")
    emu.load(_single_neuron_graph(weight=100.0, threshold=150.0 * 1e-4 / 2.5e-3, tau=2.5e-3, r=1.0))
    thr = emu.net.populations["lif"].threshold[0]
    x = np.ones((3, 1), np.uint8)
    res = emu.run(x, record=("spikes", "v"))
    v = res.voltages["lif"][:, 0]
    alpha = emu.net.populations["lif"].alpha_decay[0]
    v2 = alpha * F32(100) + F32(100)
    assert res.output_spikes[2, 0] == 1 and v[2] == v2 - thr


@pytest.mark.parametrize(("op", "fires"), [(">", False), (">=", True)])
def test_threshold_comparison_switch(op: str, fires: bool) -> None:
    """A voltage exactly at threshold fires only with the '>=' switch."""
    emu = get_backend("emulator", threshold_op=op)
    # IF with r = 1: threshold (chip) = v_threshold; one input of weight 50 makes v exactly 50
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([1])}),
            "w": nir.Linear(np.array([[50.0]], np.float32)),
            "if": nir.IF(r=np.ones(1, np.float32), v_threshold=np.array([50.0], np.float32)),
            "output": nir.Output(output_type={"output": np.array([1])}),
        },
        edges=[("input", "w"), ("w", "if"), ("if", "output")],
    )
    emu.load(graph)
    res = emu.run(np.array([[1], [0]], np.uint8))
    assert bool(res.output_spikes[1, 0]) is fires


def test_conn_delay_adds_ticks_per_projection() -> None:
    """conn_delay d makes each projection take 1 + d ticks, and the latency counts them."""
    emu = get_backend("emulator", conn_delay=2, reset="ZERO")
    emu.load(_single_neuron_graph(weight=1000.0, threshold=1.0 * 1e-4 / 2.5e-3))
    assert emu.latency_ticks == 3
    res = emu.run(np.array([[1], [0], [0]], np.uint8))
    assert res.output_spikes[:, 0].tolist() == [0, 0, 0, 1, 0, 0]


def test_conv_kernels_truncate_toward_zero() -> None:
    """Conv kernels become int8(trunc(W.swapaxes(0,1) * w_scale)) with w_scale = 127 / max|W| (no rounding)."""
    conv_w = np.array([[[[0.5, -1.7], [2.0, 0.3]]]], np.float32)  # [1, 1, 2, 2], max 2.0: w_scale 63.5
    shape = (1, 3, 3)
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([1, 4, 4])}),
            "conv": nir.Conv2d((4, 4), conv_w, 1, 0, 1, 1, np.array([0.25], np.float32)),
            "lif": nir.LIF(tau=np.full(shape, 2e-3, np.float32), r=np.full(shape, 2.0, np.float32), v_leak=np.zeros(shape, np.float32), v_threshold=np.ones(shape, np.float32)),
            "output": nir.Output(output_type={"output": np.array(shape)}),
        },
        edges=[("input", "conv"), ("conv", "lif"), ("lif", "output")],
    )
    emu = get_backend("emulator", scale_weights=True)
    emu.load(graph)
    # 0.5*63.5 = 31.75 -> 31, -1.7*63.5 = -107.95 -> -107 (toward zero), 2*63.5 = 127, 0.3*63.5 = 19.05 -> 19
    assert emu.net.projections[0].weight[0, 0].tolist() == [[31, -107], [127, 19]]
    assert emu.net.populations["lif"].model == "lif_conv2d"
    # the conv bias is folded into i_offset per output channel: bias * w_scale
    assert (emu.net.populations["lif"].i_offset == F32(np.float64(np.float32(0.25)) * 63.5)).all()


def test_scale_weights_uses_max_over_all_incoming_weight_nodes() -> None:
    """w_scale = 127 / max|W| over every weight node feeding a population; thresholds and i_offset follow s2_nir."""
    aff_w = np.full((3, 4), -0.7, np.float32)
    lin_w = np.full((3, 4), 0.2, np.float32)
    lin_w[0, 0] = 4.0  # the overall max: w_scale = 127 / 4 = 31.75
    n = 3
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([4])}),
            "aff": nir.Affine(aff_w, np.array([0.25, 0.0, -0.5], np.float32)),
            "lin": nir.Linear(lin_w),
            "lif": nir.LIF(tau=np.full(n, 2e-3, np.float32), r=np.full(n, 2.0, np.float32), v_leak=np.full(n, 0.1, np.float32), v_threshold=np.full(n, 1.5, np.float32)),
            "output": nir.Output(output_type={"output": np.array([n])}),
        },
        edges=[("input", "aff"), ("aff", "lif"), ("input", "lin"), ("lin", "lif"), ("lif", "output")],
    )
    emu = get_backend("emulator", scale_weights=True, dt=1e-4)
    emu.load(graph)
    w_scale = 127.0 / np.float64(4.0)
    pop = emu.net.populations["lif"]
    assert pop.w_scale == w_scale
    aff = next(p for p in emu.net.projections if p.path[0] == "aff")
    lin = next(p for p in emu.net.projections if p.path[0] == "lin")
    assert (aff.weight == -22).all()  # -0.7 * 31.75 = -22.225 -> -22
    assert lin.weight[0, 0] == 127 and lin.weight[1, 0] == 6  # 0.2 * 31.75 = 6.35 -> 6
    tau = np.full(n, 2e-3, np.float32)
    scale = 1.0 / ((1e-4 / tau) * np.full(n, 2.0, np.float32)) * w_scale
    assert np.array_equal(pop.threshold, (np.full(n, 1.5, np.float32) * scale).astype(np.float32))
    bias = np.zeros(n) + np.array([0.25, 0.0, -0.5], np.float32)
    want = ((1e-4 / tau) * np.full(n, 0.1, np.float32) * scale + bias * w_scale).astype(np.float32)
    assert np.array_equal(pop.i_offset, want)
    assert np.array_equal(pop.alpha_decay, (1 - 1e-4 / tau).astype(np.float32))


def _dense_lif_graph(w: np.ndarray) -> nir.NIRGraph:
    """Input -> Linear(w) -> LIF(tau 1 ms, r 10, threshold 1) -> Output, for checks of dense weight translation."""
    n_out, n_in = w.shape
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([n_in])}),
            "w": nir.Linear(w),
            "lif": nir.LIF(tau=np.full(n_out, 1e-3, np.float32), r=np.full(n_out, 10.0, np.float32), v_leak=np.zeros(n_out, np.float32), v_threshold=np.ones(n_out, np.float32)),
            "output": nir.Output(output_type={"output": np.array([n_out])}),
        },
        edges=[("input", "w"), ("w", "lif"), ("lif", "output")],
    )


@pytest.mark.parametrize(("rounding", "expected"), [("half-away", [3, -3, 2, -2]), ("truncate", [2, -2, 1, -1])])
def test_dense_rounding_switch(rounding: str, expected: list[int]) -> None:
    """Dense weights round half away from zero by default, or truncate with the switch."""
    w = np.array([[2.5, -2.5, 1.5, -1.5]], np.float32).T  # 4 outputs from one input
    graph = _dense_lif_graph(w)
    emu = get_backend("emulator", dense_rounding=rounding)
    emu.load(graph)
    assert emu.net.projections[0].weight[0].tolist() == expected


def test_percentile_scaling_uses_the_percentile_of_abs_weights() -> None:
    """weight_scale_percentile p < 100 sets w_scale = 127 / percentile(|W|, p) and clips dense weights to +-127."""
    rng = np.random.default_rng(3)
    w = rng.normal(0, 1, (5, 20)).astype(np.float32)
    graph = _dense_lif_graph(w)
    emu = get_backend("emulator", scale_weights=True, weight_scale_percentile=90.0)
    emu.load(graph)
    assert emu.net.populations["lif"].w_scale == 127.0 / np.percentile(np.abs(w).astype(np.float64), 90.0)
    q = emu.net.projections[0].weight
    assert q.max() == 127 and q.min() >= -127 and (np.abs(q) == 127).sum() >= 2


def test_exponential_integrator_differs_from_forward() -> None:
    """EXPONENTIAL gives alpha_decay = exp(-dt/tau); FORWARD gives 1 - dt/tau (equal to snnTorch's beta)."""
    beta = 0.93
    graph = _single_neuron_graph(weight=10.0, threshold=1.0, tau=1e-4 / (1 - beta), r=1.0 / (1 - beta))
    fwd = get_backend("emulator", integrator="FORWARD")
    fwd.load(graph)
    exp = get_backend("emulator", integrator="EXPONENTIAL")
    exp.load(graph)
    assert abs(float(fwd.net.populations["lif"].alpha_decay[0]) - beta) < 1e-6
    assert abs(float(exp.net.populations["lif"].alpha_decay[0]) - np.exp(-(1 - beta))) < 1e-6


def test_nmnist_shaped_cnn_loads_maps_and_runs() -> None:
    """Section 8: an N-MNIST-shaped CNN (IF, stride-2 conv, SumPool2d, Flatten, Affine with bias) runs."""
    emu = get_backend("emulator", scale_weights=True)
    report = emu.load(nmnist_graph(0))
    assert emu.input_shape == (2, 34, 34) and emu.n_outputs == 10 and emu.latency_ticks == 3
    assert report.fits and 0 < report.pes_used <= 148 and report.max_ticks > 300
    assert {p.name for p in report.populations} == {"input", "if1", "if2", "if3"}
    assert {p.kind for p in report.populations} == {"spike_list", "lif_conv2d", "lif_no_delay"}
    x = (np.random.default_rng(0).random((300, 2, 34, 34)) < 0.05).astype(np.uint8)
    res = emu.run(x)
    assert res.output_spikes.shape == (303, 10)
    assert res.spikes["if1"].any() and res.output_spikes.any()
    # IF neurons: alpha_decay 1 everywhere, bias folded into i_offset as bias * w_scale
    pop = emu.net.populations["fc" if "fc" in emu.net.populations else "if3"]
    assert (pop.alpha_decay == 1).all()
    bias = np.asarray(nmnist_graph(0).nodes["fc"].bias)
    assert np.array_equal(pop.i_offset, (bias.astype(np.float64) * pop.w_scale).astype(np.float32))


@pytest.mark.parametrize("seed", range(4))
def test_conv_and_pool_match_torch(seed: int) -> None:
    """The integer synaptic input of a pooled conv projection equals torch's conv2d of the sum-pooled spikes."""
    torch = pytest.importorskip("torch")
    from s2gesture.daemon.backends import ChipOptions
    from s2gesture.daemon.backends.reference import synaptic_input
    from s2gesture.daemon.backends.translate import translate

    rng = np.random.default_rng(seed)
    c_in, h, c_out = int(rng.integers(1, 4)), int(rng.integers(7, 12)), int(rng.integers(1, 5))
    k, s, p = int(rng.integers(1, 4)), int(rng.integers(1, 3)), int(rng.integers(0, 2))
    hp = h // 2
    ho = (hp + 2 * p - k) // s + 1
    w = rng.integers(-127, 128, (c_out, c_in, k, k)).astype(np.float32)
    shape = (c_out, ho, ho)
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([c_in, h, h])}),
            "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
            "conv": nir.Conv2d((hp, hp), w, s, p, 1, 1, np.zeros(c_out, np.float32)),
            "lif": nir.IF(r=np.ones(shape, np.float32), v_threshold=np.ones(shape, np.float32)),
            "output": nir.Output(output_type={"output": np.array(shape)}),
        },
        edges=[("input", "pool"), ("pool", "conv"), ("conv", "lif"), ("lif", "output")],
    )
    proj = translate(graph, ChipOptions()).projections[0]
    x = (rng.random((c_in, h, h)) < 0.4).astype(np.uint8)
    got = synaptic_input(proj, x.ravel(), +1) - synaptic_input(proj, x.ravel(), -1)
    xt = torch.tensor(x, dtype=torch.float64)[None]
    pooled = torch.nn.functional.avg_pool2d(xt, 2) * 4
    want = torch.nn.functional.conv2d(pooled, torch.tensor(w, dtype=torch.float64), stride=s, padding=p)
    assert np.array_equal(got, want.numpy().astype(np.int64).ravel())


def _conv_if_graph(conv_w: np.ndarray) -> nir.NIRGraph:
    c_out, _, k, _ = conv_w.shape
    side = 6 - k + 1
    shape = (c_out, side, side)
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([conv_w.shape[1], 6, 6])}),
            "conv": nir.Conv2d((6, 6), conv_w, 1, 0, 1, 1, np.zeros(c_out, np.float32)),
            "if": nir.IF(r=np.ones(shape, np.float32), v_threshold=np.ones(shape, np.float32)),
            "output": nir.Output(output_type={"output": np.array(shape)}),
        },
        edges=[("input", "conv"), ("conv", "if"), ("if", "output")],
    )


def test_scaled_conv_kernels_equal_s2_nirs_float64_expression() -> None:
    """With scale_weights, kernels equal s2_nir's (W.swapaxes(0,1) * (127.0 / np.max((0.0, max|W|)))).astype(int8) exactly."""
    rng = np.random.default_rng(5)
    for _ in range(300):
        conv_w = rng.normal(0, 1.5, (4, 2, 3, 3)).astype(np.float32)
        w_scale = 127.0 / np.max((0.0, np.abs(conv_w).max()))  # s2_nir: a float64
        expected = (conv_w.swapaxes(0, 1) * w_scale).astype(np.int8)
        emu = get_backend("emulator", scale_weights=True)
        emu.load(_conv_if_graph(conv_w))
        assert np.array_equal(emu.net.projections[0].weight, expected)


def test_conv_projections_refuse_a_connection_delay() -> None:
    """A conv projection with conn_delay > 0 is refused, as s2_nir refuses it, naming the fix."""
    from s2gesture.daemon.errors import UnsupportedGraphError

    emu = get_backend("emulator", conn_delay=1)
    with pytest.raises(UnsupportedGraphError, match=r"conv projection.*conn_delay=0"):
        emu.load(_conv_if_graph(np.ones((2, 1, 3, 3), np.float32)))
