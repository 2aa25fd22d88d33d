"""Every integer-input formulation of the fast emulator (plain and grouped scatter, dense octet tables) is bit-exact."""

from __future__ import annotations

import numpy as np
import pytest

from s2gesture.daemon.backends import get_backend
from s2gesture.daemon.backends.emulator import choose_mode, dense_table
from s2gesture.daemon.card import read_model
from s2gesture.daemon.errors import BackendError
from tests.test_emulator_equivalence import random_dense_graph, random_graph

MODES = ("scatter", "dense", "auto")


def _run_all(graph: object, options: dict[str, object], x: np.ndarray) -> None:
    ref = get_backend("reference", check_memory=False, **options)
    ref.load(graph)
    want = ref.run(x, record=("spikes", "v"))
    events = set()
    for mode in MODES:
        emu = get_backend("emulator", check_memory=False, synaptic_input=mode, **options)
        emu.load(graph)
        for record in (("spikes", "v"), ()):  # () reuses the workspace buffers: run twice
            got = emu.run(x, record=record)
            assert np.array_equal(got.output_spikes, want.output_spikes), (mode, record)
            events.add(emu.last_events)
        got = emu.run(x, record=("spikes", "v"))
        for name in want.spikes:
            assert np.array_equal(got.spikes[name], want.spikes[name]), (mode, name)
            assert np.array_equal(got.voltages[name], want.voltages[name]), (mode, name)
    if emu.net is not None and emu.net.feedforward_order is not None:
        assert len(events) == 1, events  # every formulation counts the same synaptic events


@pytest.mark.parametrize("seed", range(12))
def test_every_formulation_equals_reference_on_random_graphs(seed: int) -> None:
    """Forced scatter, forced dense and the automatic choice all reproduce the reference on random conv graphs."""
    graph, options, shape = random_graph(seed)
    rng = np.random.default_rng(3000 + seed)
    x = (rng.random((int(rng.integers(5, 30)), *shape)) < rng.uniform(0.05, 0.6)).astype(np.uint8)
    _run_all(graph, options, x)


@pytest.mark.parametrize("seed", range(4))
def test_every_formulation_equals_reference_with_delays(seed: int) -> None:
    """The dense formulation reads the right source tick with conn_delay > 0."""
    graph, options, shape = random_dense_graph(seed)
    rng = np.random.default_rng(4000 + seed)
    x = (rng.random((int(rng.integers(5, 30)), *shape)) < 0.4).astype(np.uint8)
    _run_all(graph, options, x)


def test_bundled_model_every_formulation_is_exact() -> None:
    """On the bundled int8 model the dense and grouped paths are planned and agree with the reference."""
    from s2gesture.daemon.backends import options_from_card

    model = read_model("models/pretrained/psnn_int8.nir")
    opts = options_from_card(model.card)
    emu = get_backend("emulator", check_memory=False, **opts)
    emu.load(model.graph)
    assert any(p.dense is not None for p in emu.plans.values())
    assert any(p.grouped for p in emu.plans.values())
    x = (np.random.default_rng(5).random((25, *emu.input_shape)) < 0.15).astype(np.uint8)
    _run_all(model.graph, opts, x)


def test_dense_table_sums_every_subset() -> None:
    """Each octet's table row for a spike mask is the sum of the masked sources' weights to the block."""
    rng = np.random.default_rng(0)
    src = np.repeat(np.arange(10), 20)
    tgt = np.tile(np.arange(20), 10)
    w = rng.integers(-127, 128, src.size)
    table = dense_table(src, tgt, w, 20, np.int32)
    assert table is not None
    spikes = (rng.random(16) < 0.5).astype(np.uint8)
    spikes[10:] = 0
    want = np.zeros(32, np.int64)
    np.add.at(want, tgt[spikes[src] == 1], w[spikes[src] == 1])
    got = np.zeros(32, np.int64)
    for b in range(table.tgt.size):
        for k in range(table.ptr[b], table.ptr[b + 1]):
            o = int(table.octet[k])
            mask = int(sum(int(spikes[8 * o + i]) << i for i in range(8)))
            got[table.tgt[b] : table.tgt[b] + 16] += table.table[table.tab[k] + 16 * mask : table.tab[k] + 16 * mask + 16]
    assert np.array_equal(got[:20], want[:20])


def test_choice_follows_activity() -> None:
    """The automatic choice is event driven for a quiet chunk and dense for a busy one on a conv layer."""
    from s2gesture.daemon.backends import options_from_card

    model = read_model("models/pretrained/psnn_int8.nir")
    emu = get_backend("emulator", **options_from_card(model.card))
    emu.load(model.graph)
    plan = emu.plans["lif2"]
    n_src = plan.runs.src_ptr.size - 1
    quiet = np.arange(601, dtype=np.int64) * (n_src // 100)  # 1 % of the sources per tick
    busy = np.arange(601, dtype=np.int64) * (n_src // 2)  # 50 %
    assert choose_mode(plan, quiet, "auto") != 2
    assert choose_mode(plan, busy, "auto") == 2
    assert choose_mode(plan, busy, "scatter") != 2


def test_unknown_formulation_is_refused() -> None:
    """synaptic_input outside auto/scatter/dense is a BackendError naming the choices."""
    with pytest.raises(BackendError, match="synaptic_input must be one of auto, scatter, dense"):
        get_backend("emulator", synaptic_input="gemm")


@pytest.mark.parametrize(
    ("switches", "v_leak", "modes"),
    [({}, 0.0, {3, 2}), ({"reset": "ZERO", "threshold_op": ">="}, 0.0, {3, 2}), ({"threshold_op": ">="}, 1.5, {0, 1})],
)
def test_per_neuron_decay_kernel_is_exact(switches: dict[str, str], v_leak: float, modes: set[int]) -> None:
    """The bundled model's channels decay differently: its layers take the decay-per-neuron loop (or, with an
    i_offset, the general one) and every spike and voltage equals the reference simulator's."""
    import copy

    from s2gesture.daemon.backends import options_from_card
    from s2gesture.daemon.backends.emulator import uniformity

    model = read_model("models/pretrained/psnn_int8.nir")
    graph = copy.deepcopy(model.graph)
    for name in ("lif1", "lif2", "lif3", "lif4", "lif5"):
        graph.nodes[name].v_leak = np.full(np.shape(graph.nodes[name].v_leak), v_leak, dtype=np.float32)
    opts = {**options_from_card(model.card), **switches}
    emu = get_backend("emulator", check_memory=False, **opts)
    emu.load(graph)
    assert {uniformity(p.params) for p in emu.plans.values()} == modes
    x = (np.random.default_rng(11).random((30, *emu.input_shape)) < 0.2).astype(np.uint8)
    _run_all(graph, opts, x)


@pytest.mark.parametrize(
    ("switches", "v_leak"),
    [
        ({}, 0.0),
        ({"reset": "ZERO"}, 0.0),
        ({"threshold_op": ">="}, 0.0),
        ({"reset": "ZERO", "threshold_op": ">="}, 0.0),
        ({}, 3.0),
        ({"reset": "ZERO", "threshold_op": ">="}, -2.0),
    ],
)
def test_uniform_parameter_kernels_are_exact(switches: dict[str, str], v_leak: float) -> None:
    """Populations whose neurons share parameters (with and without an i_offset) run the scalar-parameter loops bit-exactly."""
    import copy

    from s2gesture.daemon.backends import options_from_card
    from s2gesture.daemon.backends.emulator import uniformity

    model = read_model("models/pretrained/psnn_int8.nir")
    graph = copy.deepcopy(model.graph)
    for name in ("lif1", "lif2", "lif3", "lif4", "lif5"):
        node = graph.nodes[name]
        node.v_leak = np.full(np.shape(node.v_leak), v_leak, dtype=np.float32)
        # one decay per population (the bundled model's channels decay differently: the per-neuron path)
        node.tau = np.full(np.shape(node.tau), node.tau.reshape(-1)[0], dtype=np.float32)
        node.r = np.full(np.shape(node.r), node.r.reshape(-1)[0], dtype=np.float32)
    opts = {**options_from_card(model.card), **switches}
    emu = get_backend("emulator", check_memory=False, **opts)
    emu.load(graph)
    assert {uniformity(p.params) for p in emu.plans.values()} == {2 if v_leak == 0.0 else 1}
    x = (np.random.default_rng(9).random((20, *emu.input_shape)) < 0.2).astype(np.uint8)
    _run_all(graph, opts, x)
