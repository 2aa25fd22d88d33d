"""Types every backend shares: results, mapping reports, the Backend protocol and the registry.

Imports numpy only (and the options record); the backend modules import from here, never from the
package ``__init__``, so no backend module imports another through the package.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..errors import BackendError
from .options import ChipOptions


@dataclass(frozen=True)
class RunResult:
    """What one chunk produced; every array covers ``ticks = T + latency_ticks`` ticks."""

    #: spikes of the output population(s), uint8 ``[T_out, n_out]``
    output_spikes: np.ndarray
    #: spikes per NIR neuron-node name, uint8 ``[T_out, n]`` (only when "spikes" was recorded; a read-only
    #: mapping whose arrays the emulator reorders to NIR (C,H,W) order on first access)
    spikes: Mapping[str, np.ndarray] = field(default_factory=dict)
    #: membrane voltage after the tick's reset, chip units (NIR units = chip v / v_scale), float32 ``[T_out, n]``
    voltages: dict[str, np.ndarray] = field(default_factory=dict)
    ticks: int = 0


@dataclass(frozen=True)
class PopulationMapping:
    """One population on the chip: its PE slices and their SRAM use (bytes per PE by kind)."""

    name: str
    #: the chip's population model ("spike_list", or a neuron model's dense/conv name, neurons.py)
    kind: str
    neurons: int
    max_atoms_per_core: int
    pes: int
    #: per PE slice: {"synapses": B, "neurons": B, "routing": B, "spike_list": B, "recording": B, "total": B}
    bytes_per_pe: tuple[dict[str, int], ...]
    #: first PE index (global, 0..) of this population's slices
    first_pe: int = 0


@dataclass(frozen=True)
class ChipPlan:
    """Populations assigned to one chip of a multi-chip board, and the spikes it sends to other chips."""

    chip: int
    populations: tuple[str, ...]
    pes: int
    #: expected spikes per tick sent off this chip (sum over projections that cross chips)
    spikes_out_per_tick: float


@dataclass(frozen=True)
class MappingReport:
    """Where a graph lives on the chip and how long a run can be (SPINNAKER2.md section 7)."""

    populations: tuple[PopulationMapping, ...]
    pes_used: int
    pes_available: int
    #: input spikes per tick assumed for ``max_ticks``
    input_rate: float
    #: longest run (ticks, including the drain ticks) that fits every PE at ``input_rate``
    max_ticks: int
    #: the PE and buffer that limits ``max_ticks``
    limiting: str
    fits: bool
    #: multi-chip plan when the graph does not fit one chip (empty otherwise)
    chips: tuple[ChipPlan, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return dataclasses.asdict(self)

    def table(self) -> str:
        """Human-readable table: one line per population, then the totals."""
        kinds = ("synapses", "neurons", "routing", "spike_list", "recording")
        head = f"{'population':<14}{'model':<22}{'neurons':>8}{'atoms/PE':>9}{'PEs':>5}" + "".join(
            f"{k + ' B/PE':>16}" for k in kinds
        ) + f"{'max B/PE':>10}"
        lines = [head, "-" * len(head)]
        for pop in self.populations:
            peak = max(pop.bytes_per_pe, key=lambda b: b["total"])
            lines.append(
                f"{pop.name:<14}{pop.kind:<22}{pop.neurons:>8}{pop.max_atoms_per_core:>9}{pop.pes:>5}"
                + "".join(f"{peak[k]:>16}" for k in kinds)
                + f"{peak['total']:>10}"
            )
        lines.append("-" * len(head))
        lines.append(
            f"PEs used {self.pes_used} of {self.pes_available}; input rate {self.input_rate:g} spikes/tick; "
            f"max run {self.max_ticks} ticks (limited by {self.limiting})"
        )
        for chip in self.chips:
            lines.append(
                f"chip {chip.chip}: {chip.pes} PEs, {', '.join(chip.populations)}; "
                f"{chip.spikes_out_per_tick:.1f} spikes/tick to other chips"
            )
        return "\n".join(lines)


class Backend(Protocol):
    """One interpreter of a quantized NIR graph (docs/contracts.md)."""

    name: str

    def load(self, graph: Any) -> MappingReport: ...

    @property
    def max_ticks(self) -> int: ...

    @property
    def input_shape(self) -> tuple[int, ...]: ...

    @property
    def n_outputs(self) -> int: ...

    @property
    def latency_ticks(self) -> int: ...

    def check_chunk(self, spikes: np.ndarray, record: tuple[str, ...] = ()) -> np.ndarray: ...

    def fits(self, spikes: np.ndarray, record: tuple[str, ...] = ()) -> bool: ...

    def run(self, spikes: np.ndarray, record: tuple[str, ...] = ("spikes",)) -> RunResult: ...

    def close(self) -> None: ...


#: backend name -> "module:class" (imported on first use so the board SDK is never imported by accident)
BACKENDS: dict[str, str] = {
    "emulator": "s2gesture.daemon.backends.emulator:EmulatorBackend",
    "reference": "s2gesture.daemon.backends.reference:ReferenceBackend",
    "spinnaker2": "s2gesture.daemon.backends.spinnaker2:SpiNNaker2Backend",
}


def get_backend(name: str, **options: Any) -> Backend:
    """Create backend ``name`` with ``options`` (ChipOptions fields plus the backend's own)."""
    if name not in BACKENDS:
        near = difflib.get_close_matches(name, BACKENDS, n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        msg = f"unknown backend {name!r}{hint}; expected one of {sorted(BACKENDS)}"
        raise BackendError(msg)
    module_name, class_name = BACKENDS[name].split(":")
    klass = getattr(importlib.import_module(module_name), class_name)
    return klass(**options)  # type: ignore[no-any-return]


def split_options(options: Mapping[str, Any], extra: Mapping[str, Any], backend: str) -> tuple[ChipOptions, dict[str, Any]]:
    """Split ``options`` into ChipOptions and the backend's own keys (``extra`` = their defaults)."""
    chip_keys = {f.name for f in dataclasses.fields(ChipOptions)}
    unknown = sorted(set(options) - chip_keys - set(extra))
    if unknown:
        valid = sorted(chip_keys | set(extra))
        hints = []
        for key in unknown:
            near = difflib.get_close_matches(key, valid, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
        msg = f"backend {backend!r}: unknown option(s) {', '.join(hints)}; valid options: {valid}"
        raise BackendError(msg)
    chip = ChipOptions(**{k: v for k, v in options.items() if k in chip_keys})
    own = dict(extra)
    own.update({k: v for k, v in options.items() if k in extra})
    return chip, own
