"""The backend registry, options and the Backend interface (docs/contracts.md) on real NIR graphs."""

from __future__ import annotations

import subprocess
import sys

import nir
import numpy as np
import pytest

from s2gesture.daemon.backends import BACKENDS, RunResult, get_backend, options_from_card
from s2gesture.daemon.errors import BackendError, UnsupportedGraphError
from s2gesture.daemon.testing import tiny_gesture_card, tiny_gesture_graph


def test_unknown_backend_lists_valid_ones() -> None:
    """An unknown backend name is an error naming the valid backends and the near miss."""
    with pytest.raises(BackendError, match=r"did you mean 'emulator'.*\['emulator', 'reference', 'spinnaker2'\]"):
        get_backend("emulatr")


def test_unknown_option_lists_valid_ones() -> None:
    """An unknown option is an error naming the valid options and the near miss."""
    with pytest.raises(BackendError, match=r"'intergrator' \(did you mean 'integrator'\?\).*valid options"):
        get_backend("emulator", intergrator="FORWARD")


@pytest.mark.parametrize(
    ("key", "value"),
    [("integrator", "RK4"), ("reset", "NONE"), ("threshold_op", "=="), ("dense_rounding", "floor"), ("dt", 0.0), ("conn_delay", -1)],
)
def test_invalid_option_values_are_refused(key: str, value: object) -> None:
    """Each enumerated or ranged option rejects a bad value with a message naming the option."""
    with pytest.raises(BackendError, match=key):
        get_backend("emulator", **{key: value})


def test_options_from_card_round_trip() -> None:
    """options_from_card returns the card's conversion options, which every backend accepts."""
    card = tiny_gesture_card()
    opts = options_from_card(card)
    assert {k: opts[k] for k in ("dt", "integrator", "reset", "conn_delay", "scale_weights", "weight_scale_percentile")} == {
        "dt": 1e-4, "integrator": "FORWARD", "reset": "SUBTRACT", "conn_delay": 0, "scale_weights": False, "weight_scale_percentile": 100.0,
    }
    backend = get_backend("emulator", **opts)
    assert backend.options == card.conversion
    assert set(BACKENDS) >= {"emulator", "spinnaker2"}


def test_tiny_graph_backend_properties() -> None:
    """The tiny test model loads with the documented shape, output size, latency and a positive max_ticks."""
    emu = get_backend("emulator")
    report = emu.load(tiny_gesture_graph(0))
    assert emu.input_shape == (2, 32, 32)
    assert emu.n_outputs == 11
    assert emu.latency_ticks == 2
    assert 0 < emu.max_ticks < report.max_ticks
    assert report.fits and report.pes_used <= 148


def test_run_shapes_and_drain() -> None:
    """A chunk of T ticks runs T + latency ticks; outputs are uint8 [T_out, n_out]; v only when asked."""
    emu = get_backend("emulator")
    emu.load(tiny_gesture_graph(1))
    x = (np.random.default_rng(1).random((50, 2, 32, 32)) < 0.1).astype(np.uint8)
    res = emu.run(x)
    assert isinstance(res, RunResult)
    assert res.ticks == 52
    assert res.output_spikes.shape == (52, 11) and res.output_spikes.dtype == np.uint8
    assert set(res.spikes) == {"lif1", "lif_out"} and res.voltages == {}
    assert np.array_equal(res.spikes["lif_out"], res.output_spikes)
    assert res.output_spikes[0].sum() == 0  # nothing reaches the output before two projections
    res_v = emu.run(x, record=("spikes", "v"))
    assert res_v.voltages["lif_out"].shape == (52, 11)
    assert np.array_equal(res_v.output_spikes, res.output_spikes)
    only_out = emu.run(x, record=())
    assert only_out.spikes == {} and np.array_equal(only_out.output_spikes, res.output_spikes)


def test_runs_are_independent() -> None:
    """Each run starts from the reset state, so the same chunk gives the same result twice."""
    emu = get_backend("emulator")
    emu.load(tiny_gesture_graph(2))
    x = (np.random.default_rng(2).random((30, 2, 32, 32)) < 0.2).astype(np.uint8)
    assert np.array_equal(emu.run(x).output_spikes, emu.run(x).output_spikes)


@pytest.mark.parametrize(
    ("shape", "value", "match"),
    [((10, 2, 32, 31), 1, "shape"), ((10, 2, 32, 32), 2, "0/1"), ((10, 2048), 1, "shape")],
)
def test_bad_chunks_are_refused(shape: tuple[int, ...], value: int, match: str) -> None:
    """Wrong shapes and non-binary values are errors naming the expected shape or values."""
    emu = get_backend("emulator")
    emu.load(tiny_gesture_graph(0))
    with pytest.raises(BackendError, match=match):
        emu.run(np.full(shape, value, dtype=np.int64))


def test_run_before_load_is_an_error() -> None:
    """Using a backend before load() names the fix."""
    with pytest.raises(BackendError, match=r"load\(graph\)"):
        get_backend("emulator").run(np.zeros((1, 2, 32, 32), np.uint8))


def test_import_is_light() -> None:
    """Importing the backends package pulls in neither torch nor numba nor py-spinnaker2."""
    code = "import sys, s2gesture.daemon.backends; print(sorted(m for m in ('torch', 'numba', 'spinnaker2', 'snntorch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _graph(nodes: dict[str, nir.NIRNode], edges: list[tuple[str, str]]) -> nir.NIRGraph:
    return nir.NIRGraph(nodes=nodes, edges=edges)


def _lif(n: int) -> nir.LIF:
    return nir.LIF(tau=np.full(n, 1e-3, np.float32), r=np.full(n, 10.0, np.float32), v_leak=np.zeros(n, np.float32), v_threshold=np.ones(n, np.float32))


@pytest.mark.parametrize("kind", ["AvgPool2d", "LI", "Delay", "Threshold", "Scale", "I"])
def test_unsupported_nodes_are_named(kind: str) -> None:
    """An unsupported node type is an error naming the node, its type, why, and the supported types."""
    n = 4
    bad = {
        "AvgPool2d": lambda: nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "LI": lambda: nir.LI(tau=np.ones(n), r=np.ones(n), v_leak=np.zeros(n)),
        "Delay": lambda: nir.Delay(delay=np.ones(n)),
        "Threshold": lambda: nir.Threshold(threshold=np.ones(n)),
        "Scale": lambda: nir.Scale(scale=np.ones(n)),
        "I": lambda: nir.I(r=np.ones(n)),
    }[kind]()
    graph = _graph(
        {"input": nir.Input(input_type={"input": np.array([n])}), "w": nir.Linear(np.eye(n, dtype=np.float32)), "bad": bad, "lif": _lif(n), "output": nir.Output(output_type={"output": np.array([n])})},
        [("input", "w"), ("w", "bad"), ("bad", "lif"), ("lif", "output")],
    )
    with pytest.raises(UnsupportedGraphError, match=rf"node 'bad' of type {kind} is not supported.*supported node types: Input"):
        get_backend("emulator").load(graph)


def test_two_weight_nodes_in_a_row_are_refused() -> None:
    """Two weight nodes between two populations are an error naming both."""
    n = 3
    graph = _graph(
        {"input": nir.Input(input_type={"input": np.array([n])}), "w1": nir.Linear(np.eye(n, dtype=np.float32)), "w2": nir.Linear(np.eye(n, dtype=np.float32)), "lif": _lif(n), "output": nir.Output(output_type={"output": np.array([n])})},
        [("input", "w1"), ("w1", "w2"), ("w2", "lif"), ("lif", "output")],
    )
    with pytest.raises(UnsupportedGraphError, match=r"two weight nodes in a row \('w1' Linear then 'w2' Linear\)"):
        get_backend("emulator").load(graph)


def test_spike_source_into_neurons_without_weights_is_refused() -> None:
    """An Input wired straight to a neuron node is an error naming both and the fix."""
    n = 3
    graph = _graph(
        {"input": nir.Input(input_type={"input": np.array([n])}), "lif": _lif(n), "output": nir.Output(output_type={"output": np.array([n])})},
        [("input", "lif"), ("lif", "output")],
    )
    with pytest.raises(UnsupportedGraphError, match=r"spike source 'input' is wired to neuron node 'lif' without a weight node"):
        get_backend("emulator").load(graph)


def test_sumpool_kernel_must_equal_stride() -> None:
    """A SumPool2d the chip cannot fold (kernel != stride) is refused with its parameters."""
    graph = _graph(
        {
            "input": nir.Input(input_type={"input": np.array([1, 8, 8])}),
            "pool": nir.SumPool2d(kernel_size=np.array([3, 3]), stride=np.array([2, 2]), padding=np.array([0, 0])),
            "conv": nir.Conv2d((3, 3), np.ones((1, 1, 1, 1), np.float32), 1, 0, 1, 1, np.zeros(1, np.float32)),
            "lif": nir.LIF(tau=np.full((1, 3, 3), 1e-3), r=np.ones((1, 3, 3)), v_leak=np.zeros((1, 3, 3)), v_threshold=np.ones((1, 3, 3))),
            "output": nir.Output(output_type={"output": np.array([1, 3, 3])}),
        },
        [("input", "pool"), ("pool", "conv"), ("conv", "lif"), ("lif", "output")],
    )
    with pytest.raises(UnsupportedGraphError, match=r"kernel == stride.*kernel \(3, 3\), stride \(2, 2\)"):
        get_backend("emulator").load(graph)


def test_cubalif_after_conv_is_refused() -> None:
    """CubaLIF fed by a Conv2d has no chip model and is refused."""
    shape = (1, 4, 4)
    cuba = nir.CubaLIF(tau_syn=np.full(shape, 1e-3), tau_mem=np.full(shape, 1e-3), r=np.ones(shape), v_leak=np.zeros(shape), v_threshold=np.ones(shape), w_in=np.ones(shape))
    graph = _graph(
        {"input": nir.Input(input_type={"input": np.array(shape)}), "conv": nir.Conv2d((4, 4), np.ones((1, 1, 1, 1), np.float32), 1, 0, 1, 1, np.zeros(1, np.float32)), "cuba": cuba, "output": nir.Output(output_type={"output": np.array(shape)})},
        [("input", "conv"), ("conv", "cuba"), ("cuba", "output")],
    )
    with pytest.raises(UnsupportedGraphError, match="CubaLIF node 'cuba' is fed by a Conv2d"):
        get_backend("emulator").load(graph)


def test_reused_buffers_do_not_leak_between_runs() -> None:
    """Runs that reuse internal buffers (record=()) give the same outputs as fresh runs, across chunk lengths."""
    emu = get_backend("emulator")
    emu.load(tiny_gesture_graph(3))
    rng = np.random.default_rng(3)
    chunks = [(rng.random((t, 2, 32, 32)) < 0.15).astype(np.uint8) for t in (40, 40, 25, 40)]
    fresh = [emu.run(x).output_spikes for x in chunks]
    kept = [emu.run(x, record=()).output_spikes for x in chunks]
    for a, b in zip(fresh, kept, strict=True):
        assert np.array_equal(a, b)
    assert not np.array_equal(kept[0], kept[1])  # different inputs, different outputs: nothing stuck


@pytest.mark.parametrize("name", ["emulator", "reference"])
def test_max_ticks_counts_input_ticks_only_on_every_backend(name: str) -> None:
    """Every chip backend reports max_ticks as the longest input chunk: the chip's run limit minus the drain."""
    backend = get_backend(name)
    report = backend.load(tiny_gesture_graph(0))
    assert backend.max_ticks == report.max_ticks - backend.latency_ticks


@pytest.mark.parametrize("name", ["emulator", "reference"])
def test_fits_and_check_chunk_refuse_dense_input_before_any_work(name: str) -> None:
    """A chunk that overflows the input spike lists is refused by fits/check_chunk and by run before any tick is computed."""
    from s2gesture.daemon.errors import ChipMemoryError

    backend = get_backend(name)
    backend.load(tiny_gesture_graph(0))
    rng = np.random.default_rng(5)
    sparse = (rng.random((40, 2, 32, 32)) < 0.05).astype(np.uint8)
    dense = np.ones((backend.max_ticks, 2, 32, 32), np.uint8)  # a flickering lamp over the whole sensor
    assert backend.fits(sparse) and not backend.fits(dense)
    assert np.array_equal(backend.check_chunk(sparse), sparse)
    with pytest.raises(ChipMemoryError, match="spike_list buffer"):
        backend.check_chunk(dense)
    before = backend.run(sparse)
    events = getattr(backend, "last_events", None)
    with pytest.raises(ChipMemoryError):
        backend.run(dense)
    assert getattr(backend, "last_events", None) == events  # nothing ran
    assert np.array_equal(backend.run(sparse).output_spikes, before.output_spikes)
    with pytest.raises(BackendError, match="shape"):
        backend.fits(np.zeros((4, 2, 16, 16), np.uint8))  # malformed is not "does not fit"
