"""What every chip backend shares: the NIR graph translated to chip parameters and mapped onto PEs.

The emulator, the per-tick reference and the board adapter interpret the same translated network, so
the questions the daemon asks before running (input shape, outputs, latency, longest chunk) have one
answer, computed here.
"""

from __future__ import annotations

from typing import Any

from ..errors import BackendError
from .memory import MemoryModel
from .options import ChipOptions
from .translate import ChipNetwork, translate


class TranslatedBackend:
    """Base of the chip backends: ``load`` translates and maps; the shape properties read the result."""

    name = "translated"
    options: ChipOptions

    def __init__(self) -> None:
        self.net: ChipNetwork | None = None
        self.memory: MemoryModel | None = None

    def _translate(self, graph: Any) -> Any:
        """Translate ``graph`` with this backend's options and map it; returns the MappingReport."""
        self.net = translate(graph, self.options)
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
    def report(self) -> Any:
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
