"""Backends: interchangeable interpreters of one quantized NIR graph (emulator, reference, spinnaker2).

``get_backend(name, **options)`` builds one; ``load(graph)`` translates the graph to chip parameters
(SPINNAKER2.md section 4), maps it onto PEs (section 7) and returns a :class:`MappingReport`;
``check_chunk(spikes)`` / ``fits(spikes)`` say whether a chunk fits the chip without running it;
``run(spikes)`` executes a chunk with the chip's per-tick arithmetic (section 5).

The shared types live in :mod:`.api`, the chip's limits in :mod:`.chip` (:data:`SPINNAKER2`), the neuron
models in :mod:`.neurons`. This module imports numpy only; numba (emulator) and py-spinnaker2 (board)
load on first use.
"""

from __future__ import annotations

from ..errors import BackendError, ChipMemoryError, UnsupportedGraphError
from .api import (
    BACKENDS,
    Backend,
    ChipPlan,
    MappingReport,
    PopulationMapping,
    RunResult,
    get_backend,
    split_options,
)
from .chip import SPINNAKER2, SpiNNaker2Spec
from .options import ChipOptions, options_from_card

__all__ = [
    "BACKENDS",
    "SPINNAKER2",
    "Backend",
    "BackendError",
    "ChipMemoryError",
    "ChipOptions",
    "ChipPlan",
    "MappingReport",
    "PopulationMapping",
    "RunResult",
    "SpiNNaker2Spec",
    "UnsupportedGraphError",
    "get_backend",
    "options_from_card",
    "split_options",
]
