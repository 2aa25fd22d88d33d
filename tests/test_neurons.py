"""Neuron models as registry records: the pure per-tick step of each model, run over whole sequences,
equals the compiled emulator bit for bit; the registry alone decides what translates and how."""

from __future__ import annotations

import itertools

import nir
import numpy as np
import pytest

from s2gesture.daemon.backends import get_backend
from s2gesture.daemon.backends.memory import MemoryModel
from s2gesture.daemon.backends.neurons import (
    BY_NIR_TYPE,
    LIF,
    NEURON_MODELS,
    LIFParams,
    LIFState,
    SynapticInput,
    lif_step,
    run_neuron,
)
from s2gesture.daemon.backends.translate import SUPPORTED

F32 = np.float32
N_IN, N = 12, 9


def _neuron_node(kind: str, rng: np.random.Generator) -> nir.NIRNode:
    """A neuron node of NIR type ``kind`` with varied per-neuron parameters (thresholds in weight units)."""
    thr = rng.uniform(40, 120, N).astype(F32)
    if kind == "IF":
        return nir.IF(r=np.ones(N, F32), v_threshold=thr)
    if kind == "LIF":
        # r = tau/dt makes r_factor 1 with FORWARD, so thresholds stay in weight units
        tau = rng.uniform(1e-3, 5e-3, N).astype(F32)
        return nir.LIF(tau=tau, r=(tau / F32(1e-4)).astype(F32), v_leak=np.zeros(N, F32), v_threshold=thr)
    tau_mem = rng.uniform(1e-3, 5e-3, N).astype(F32)
    tau_syn = rng.uniform(5e-4, 2e-3, N).astype(F32)
    return nir.CubaLIF(
        tau_syn=tau_syn, tau_mem=tau_mem, r=(tau_mem / F32(1e-4)).astype(F32), v_leak=np.zeros(N, F32),
        v_threshold=thr * F32(0.2), w_in=(tau_syn / F32(1e-4)).astype(F32),
    )


def _graph(kind: str, seed: int) -> nir.NIRGraph:
    """Input(12) -> Affine (integer weights of both signs, a bias) -> one neuron population of ``kind``."""
    rng = np.random.default_rng(seed)
    weight = np.round(rng.normal(8, 30, (N, N_IN))).astype(F32)
    bias = rng.uniform(-2, 4, N).astype(F32)
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([N_IN])}),
            "w": nir.Affine(weight, bias),
            "n": _neuron_node(kind, rng),
            "output": nir.Output(output_type={"output": np.array([N])}),
        },
        edges=[("input", "w"), ("w", "n"), ("n", "output")],
    )


SWITCHES = [
    dict(zip(("reset", "threshold_op", "fma", "conn_delay"), combo, strict=True))
    for combo in itertools.product(("SUBTRACT", "ZERO"), (">", ">="), (False, True), (0, 2))
]


@pytest.mark.parametrize("kind", sorted(BY_NIR_TYPE))
@pytest.mark.parametrize("switches", SWITCHES, ids=lambda s: "-".join(str(v) for v in s.values()))
def test_reference_step_over_a_sequence_equals_the_emulator(kind: str, switches: dict[str, object]) -> None:
    """The record's pure step, fed the chip's integer synaptic input tick by tick, reproduces the emulator's spikes and voltages exactly."""
    # both CubaLIF current orders across the combinations (the switch means nothing to LIF and IF)
    emu = get_backend("emulator", **switches, cuba_current="previous" if switches["threshold_op"] == ">=" else "updated")
    emu.load(_graph(kind, seed=7))
    net = emu.net
    pop = net.populations["n"]
    assert pop.neuron is BY_NIR_TYPE[kind]
    T = 300
    x = (np.random.default_rng(11).random((T, N_IN)) < 0.3).astype(np.uint8)
    res = emu.run(x, record=("spikes", "v"))
    # the chip's integer input: spikes of tick t reach the neurons at t + 1 + conn_delay, split by weight sign
    shift = 1 + int(switches["conn_delay"])  # type: ignore[call-overload]
    w = net.projections[0].weight.astype(np.int64)
    ticks = T + net.latency_ticks
    src = np.zeros((ticks, N_IN), np.int64)
    src[shift : shift + T] = x[: ticks - shift]
    xs = SynapticInput(src @ np.maximum(w, 0), src @ np.maximum(-w, 0))
    spikes, v, _ = run_neuron(pop.neuron, xs, pop.neuron.params(pop, net.options))
    assert res.output_spikes.sum() > 10, "the sequence must exercise firing"
    assert np.array_equal(spikes, res.output_spikes)
    assert np.array_equal(v.view(np.uint32), res.voltages["n"].view(np.uint32))


def test_lif_step_golden_sequence() -> None:
    """A hand-computed LIF trace: alpha 0.5, threshold 3, input 2 per tick, subtract reset."""
    params = LIFParams(np.full(1, F32(0.5)), np.full(1, F32(3)), np.zeros(1, F32))
    state = LIFState(np.zeros(1, F32))
    x = SynapticInput(np.array([2]), np.array([0]))
    trace = []
    for _ in range(5):
        s, state = lif_step(x, state, params)
        trace.append((int(s[0]), float(state.v[0])))
    # v: 2, 3 (not > 3), 3.5 -> fire -> 0.5, 2.25, 3.125 -> fire -> 0.125
    assert trace == [(0, 2.0), (0, 3.0), (1, 0.5), (0, 2.25), (1, 0.125)]
    _, ge_state = lif_step(x, LIFState(np.full(1, F32(2))), params._replace(ge=True))
    assert float(ge_state.v[0]) == 0.0  # 0.5*2 + 2 = 3 fires with >=


@pytest.mark.parametrize("kind", sorted(BY_NIR_TYPE))
def test_step_does_not_mutate_its_state(kind: str) -> None:
    """Steps return a new state and leave the one they were given untouched (pure functions)."""
    emu = get_backend("emulator")
    emu.load(_graph(kind, seed=3))
    pop = emu.net.populations["n"]
    model = pop.neuron
    state = model.init_state(N)
    before = [a.copy() for a in state]
    x = SynapticInput(np.full(N, 50), np.full(N, 7))
    _, new = model.step(x, state, model.params(pop, emu.options))
    assert all(np.array_equal(a, b) for a, b in zip(state, before, strict=True))
    assert not np.array_equal(new.v, before[0])


def test_registry_drives_translation_kernels_and_memory() -> None:
    """Every record's NIR types are supported node types, its kernel exists, and its bytes per neuron are what the memory model charges."""
    from s2gesture.daemon.backends.kernels import KERNELS

    for model in NEURON_MODELS.values():
        assert model.kernel in KERNELS
        assert set(model.nir_types) <= set(SUPPORTED)
    assert LIF.conv_allowed and not NEURON_MODELS["cuba_lif"].conv_allowed
    for kind in BY_NIR_TYPE:
        emu = get_backend("emulator", conn_delay=1)
        emu.load(_graph(kind, seed=1))
        pop = emu.net.populations["n"]
        memory = MemoryModel(emu.net)
        expected = memory.spec.pe_header_bytes + N * pop.neuron.bytes_per_neuron(memory.spec, 1)
        assert memory.slices[-1].static["neurons"] == expected
    assert NEURON_MODELS["cuba_lif"].bytes_per_neuron(memory.spec, 0) > LIF.bytes_per_neuron(memory.spec, 0)
