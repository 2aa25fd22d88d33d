"""The py-spinnaker2 adapter: pure parts without the package, board runs only where a board answers."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from s2gesture.daemon.backends import ChipOptions, get_backend
from s2gesture.daemon.backends.memory import MemoryModel
from s2gesture.daemon.backends.spinnaker2 import (
    atoms_plan,
    conversion_config_kwargs,
    decode_spikes,
    decode_voltages,
    encode_spike_lists,
    reachable,
)
from s2gesture.daemon.backends.translate import translate
from s2gesture.daemon.errors import BackendError
from s2gesture.daemon.testing import tiny_gesture_graph

HAS_SDK = importlib.util.find_spec("spinnaker2") is not None


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=4, max_side=6), elements=st.integers(0, 1)))
def test_spike_list_encoding_round_trip(spikes: np.ndarray) -> None:
    """Encoding a chunk as {neuron: [ticks]} over the C-order flattened index and decoding it gives it back."""
    lists = encode_spike_lists(spikes)
    flat = spikes.reshape(spikes.shape[0], -1)
    assert sum(len(v) for v in lists.values()) == int(flat.sum())
    assert all(v == sorted(v) for v in lists.values())
    assert np.array_equal(decode_spikes(lists, flat.shape[1], flat.shape[0]), flat)


def test_encoding_uses_c_order_channel_row_column() -> None:
    """Neuron index = c*H*W + y*W + x, as s2_nir flattens the input population."""
    x = np.zeros((3, 2, 4, 5), np.uint8)
    x[2, 1, 3, 4] = 1
    x[0, 0, 0, 1] = 1
    assert encode_spike_lists(x) == {1: [0], 1 * 20 + 3 * 5 + 4: [2]}


def test_decoding_refuses_spikes_outside_the_run() -> None:
    """Board results that do not fit the run are errors, not silently dropped spikes."""
    with pytest.raises(BackendError, match="outside the run of 5 ticks"):
        decode_spikes({0: [5]}, 3, 5)
    with pytest.raises(BackendError, match="outside the population of 3"):
        decode_spikes({3: [0]}, 3, 5)
    with pytest.raises(BackendError, match="expected one per tick"):
        decode_voltages({0: np.zeros(4)}, 1, 5)


def test_voltage_decoding() -> None:
    """get_voltages() traces land in their neuron's column as float32."""
    v = decode_voltages({1: [0.5, 1.5, -2.0]}, 2, 3)
    assert v.dtype == np.float32 and v[:, 1].tolist() == [0.5, 1.5, -2.0] and not v[:, 0].any()


def test_conversion_config_derived_from_options() -> None:
    """ConversionConfig gets dt, conn_delay, scaling, integrator, reset and the recorded variables."""
    opts = ChipOptions(dt=1e-3, integrator="EXPONENTIAL", reset="ZERO", conn_delay=0, scale_weights=True, weight_scale_percentile=99.5)
    assert conversion_config_kwargs(opts) == {
        "dt": 1e-3,
        "output_record": ["spikes"],
        "conn_delay": 0,
        "scale_weights": True,
        "integrator": "EXPONENTIAL",
        "reset": "ZERO",
        "weight_scale_percentile": 99.5,
    }
    assert conversion_config_kwargs(opts, ("spikes", "v"))["output_record"] == ["spikes", "v"]


def test_atoms_plan_follows_the_memory_model_and_overrides() -> None:
    """The atoms-per-core plan is the memory model's, including per-population overrides."""
    opts = ChipOptions(max_atoms_per_core={"lif1": 100})
    memory = MemoryModel(translate(tiny_gesture_graph(0), opts))
    plan = atoms_plan(memory)
    assert plan["lif1"] == 100
    assert set(plan) == {"input", "lif1", "lif_out"}
    assert next(p for p in memory.report.populations if p.name == "lif1").pes == 9  # ceil(900 / 100)


@pytest.mark.skipif(HAS_SDK, reason="py-spinnaker2 is installed here")
def test_missing_package_says_how_to_install() -> None:
    """Without py-spinnaker2, load() raises BackendError naming the source and the pip command."""
    backend = get_backend("spinnaker2", host="192.0.2.1")
    with pytest.raises(BackendError, match=r"gitlab.com/spinnaker2/py-spinnaker2(.|\n)*pip install -e"):
        backend.load(tiny_gesture_graph(0))


def test_unreachable_board_names_host_and_timeout() -> None:
    """A board that does not answer is an error naming its host and the timeout."""
    backend = get_backend("spinnaker2", host="192.0.2.1", timeout_s=0.3)  # TEST-NET-1: never routed
    with pytest.raises(BackendError, match=r"192\.0\.2\.1 does not answer within 0\.3 s"):
        backend._require_host()


def test_unknown_adapter_option_is_refused() -> None:
    """Adapter options are validated like the chip options, listing the valid ones."""
    with pytest.raises(BackendError, match=r"'hots'.*did you mean 'host'"):
        get_backend("spinnaker2", hots="1.2.3.4")


def _board_host() -> str | None:
    host = os.environ.get("S2G_SPINNAKER2_HOST")
    return host if host and HAS_SDK and reachable(host, 1.0) else None


@pytest.mark.spinnaker2
@pytest.mark.skipif(_board_host() is None, reason="no SpiNNaker2 board answers at S2G_SPINNAKER2_HOST (or py-spinnaker2 missing)")
def test_board_matches_emulator_on_tiny_model() -> None:
    """On a real board, the tiny model's output spikes equal the emulator's, tick for tick."""
    x = (np.random.default_rng(0).random((100, 2, 32, 32)) < 0.05).astype(np.uint8)
    board = get_backend("spinnaker2")
    board.load(tiny_gesture_graph(0))
    emu = get_backend("emulator")
    emu.load(tiny_gesture_graph(0))
    first = board.run(x)
    again = board.run(x)  # the loaded network is reused (net.reset())
    want = emu.run(x)
    assert np.array_equal(first.output_spikes, want.output_spikes)
    assert np.array_equal(again.output_spikes, want.output_spikes)
    board.close()
