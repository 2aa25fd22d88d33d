"""What every chip backend shares: the NIR graph translated to chip parameters and mapped onto PEs.

The emulator, the per-tick reference and the board adapter interpret the same translated network, so
the questions the daemon asks before running (input shape, outputs, latency, longest chunk, does this
chunk fit) have one answer, computed here. ``run`` is one template method: validate the chunk, check it
against the chip's memory, then the backend's own ``_run``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import BackendError, ChipMemoryError
from .api import MappingReport, RunResult, split_options
from .chip import SPINNAKER2, SpiNNaker2Spec, as_spec
from .memory import MemoryModel
from .options import ChipOptions
from .translate import ChipNetwork, translate

#: what can be recorded besides the output spikes
RECORDABLE = ("spikes", "v")

#: options every chip backend takes besides ChipOptions, with their defaults
COMMON_OPTIONS: dict[str, Any] = {
    #: refuse chunks that overflow a PE's SRAM, as the chip would (False: emulate anyway, e.g. to record v everywhere)
    "check_memory": True,
    #: the chip's limits (chip.py); a variant spec models a different chip
    "spec": SPINNAKER2,
}


def validate_chunk(net: ChipNetwork, spikes: Any, record: Any) -> np.ndarray:
    """Validate a chunk ``[T, *input_shape]`` of 0/1 spikes and ``record``; returns it as contiguous uint8."""
    arr = np.asarray(spikes)
    shape = net.input_shape
    if arr.ndim != len(shape) + 1 or tuple(arr.shape[1:]) != tuple(shape):
        msg = f"input spikes must have shape [T, {', '.join(map(str, shape))}], found {list(arr.shape)}"
        raise BackendError(msg)
    if arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 1):
            msg = f"input spikes must be 0/1, found values in [{arr.min()}, {arr.max()}]; clip counts to binary spikes"
            raise BackendError(msg)
        arr = arr.astype(np.uint8)
    elif arr.size and arr.max() > 1:
        msg = f"input spikes must be 0/1, found max {arr.max()}; clip counts to binary spikes"
        raise BackendError(msg)
    bad = sorted(set(record) - set(RECORDABLE))
    if bad:
        msg = f"record {bad} not recordable; expected a subset of {RECORDABLE}"
        raise BackendError(msg)
    return np.ascontiguousarray(arr)


class TranslatedBackend:
    """Base of the chip backends: ``load`` translates and maps; ``run`` checks, then calls ``_run``."""

    name = "translated"
    options: ChipOptions
    spec: SpiNNaker2Spec
    check_memory: bool

    def __init__(self, options: Mapping[str, Any], own: Mapping[str, Any] | None = None) -> None:
        """Split ``options`` into ChipOptions, the common options and the backend's ``own`` (their defaults)."""
        self.options, mine = split_options(options, {**COMMON_OPTIONS, **(own or {})}, self.name)
        self.check_memory = bool(mine.pop("check_memory"))
        self.spec = as_spec(mine.pop("spec"), f"backend {self.name!r}: option 'spec'")
        #: the backend's own options (defaults filled in)
        self.own = mine
        self.net: ChipNetwork | None = None
        self.memory: MemoryModel | None = None

    def _translate(self, graph: Any) -> MappingReport:
        """Translate ``graph`` with this backend's options and spec and map it; returns the MappingReport."""
        self.net = translate(graph, self.options, self.spec)
        self.memory = MemoryModel(self.net)
        return self.memory.report

    def _loaded(self) -> ChipNetwork:
        if self.net is None:
            msg = f"backend {self.name!r}: no graph loaded; call load(graph) first"
            raise BackendError(msg)
        return self.net

    def _mapping(self) -> MemoryModel:
        if self.memory is None:
            msg = f"backend {self.name!r}: no graph loaded; call load(graph) first"
            raise BackendError(msg)
        return self.memory

    @property
    def report(self) -> MappingReport:
        """The MappingReport of the loaded graph."""
        return self._mapping().report

    @property
    def max_ticks(self) -> int:
        """Longest chunk (input ticks) the chip holds at the configured input rate, drain ticks excluded."""
        net = self._loaded()
        return max(0, int(self.report.max_ticks) - net.latency_ticks)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._loaded().input_shape

    @property
    def n_outputs(self) -> int:
        return self._loaded().n_outputs

    @property
    def latency_ticks(self) -> int:
        return self._loaded().latency_ticks

    # -- the chunk path ------------------------------------------------------------------------------------

    def check_chunk(self, spikes: Any, record: tuple[str, ...] = ()) -> np.ndarray:
        """Validate a chunk and check it fits the chip; returns it as uint8, else BackendError / ChipMemoryError.

        Costs one count of the input spikes per input PE: cheap enough to call on every candidate chunk.
        With ``check_memory=False`` only the chunk's shape, values and ``record`` are checked.
        """
        net = self._loaded()
        arr = validate_chunk(net, spikes, record)
        if self.check_memory:
            self._mapping().check_chunk(arr.shape[0] + net.latency_ticks, tuple(record), arr)
        return arr

    def fits(self, spikes: Any, record: tuple[str, ...] = ()) -> bool:
        """Whether ``run(spikes, record)`` would pass the memory check (malformed chunks still raise BackendError)."""
        try:
            self.check_chunk(spikes, record)
        except ChipMemoryError:
            return False
        return True

    def run(self, spikes: Any, record: tuple[str, ...] = ("spikes",)) -> RunResult:
        """Run one chunk ``[T, *input_shape]`` of 0/1 spikes for ``T + latency_ticks`` ticks.

        Raises ChipMemoryError before any work when the chunk overflows a PE (see :meth:`check_chunk`).
        """
        record = tuple(record)
        arr = self.check_chunk(spikes, record)
        return self._run(self._loaded(), arr, record)

    def _run(self, net: ChipNetwork, spikes: np.ndarray, record: tuple[str, ...]) -> RunResult:
        """The backend's execution of a checked chunk."""
        raise NotImplementedError

    def close(self) -> None:
        self.net = None
