"""Conversion options shared by every backend: py-spinnaker2's ConversionConfig plus the unknown switches."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import BackendError

#: allowed values of the enumerated options (validated once, in ChipOptions.__post_init__)
CHOICES: dict[str, tuple[Any, ...]] = {
    "integrator": ("FORWARD", "EXPONENTIAL"),
    "reset": ("SUBTRACT", "ZERO"),
    "threshold_op": (">", ">="),
    "cuba_current": ("updated", "previous"),
    "dense_rounding": ("half-away", "truncate"),
}


@dataclass(frozen=True)
class ChipOptions:
    """How a NIR graph becomes chip parameters and how the chip updates them (SPINNAKER2.md sections 4-5).

    The first six fields mirror ``s2_nir.ConversionConfig``; defaults are the published snnTorch
    deployment settings (and the model card's). The rest are the switches for what is not public [I].
    """

    dt: float = 1e-4
    integrator: str = "FORWARD"
    reset: str = "SUBTRACT"
    conn_delay: int = 0
    scale_weights: bool = False
    weight_scale_percentile: float = 100.0
    #: spike condition: ``v > threshold`` (default) or ``v >= threshold`` [I]
    threshold_op: str = ">"
    #: ``alpha*v + in`` as one fused multiply-add (one rounding) instead of two roundings [I]
    fma: bool = False
    #: CubaLIF: v integrates the current of this tick ("updated") or of the previous tick [I]
    cuba_current: str = "updated"
    #: dense weights ``W.T * w_scale`` -> int8: round half away from zero, or truncate toward zero [I]
    dense_rounding: str = "half-away"
    #: input spikes per tick assumed by the memory model; None = 5 % of the input neurons
    input_rate: float | None = None
    #: neurons per PE for named populations (overrides the derived defaults)
    max_atoms_per_core: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise BackendError(problems[0][1])

    def problems(self) -> list[tuple[str, str]]:
        """Every invalid field as (field name, message); empty when the options are valid."""
        out: list[tuple[str, str]] = []
        for name, allowed in CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                out.append((name, f"option {name!r} is {value!r}; expected one of {list(allowed)}"))
        checks: list[tuple[str, bool, str]] = [
            ("dt", _number(self.dt) and self.dt > 0, "must be > 0 seconds"),
            ("conn_delay", _number(self.conn_delay) and int(self.conn_delay) == self.conn_delay and self.conn_delay >= 0, "must be an integer >= 0 ticks"),
            ("weight_scale_percentile", _number(self.weight_scale_percentile) and 0 < self.weight_scale_percentile <= 100, "must be in (0, 100]"),
            ("input_rate", self.input_rate is None or (_number(self.input_rate) and self.input_rate >= 0), "must be >= 0 spikes per tick (or None: 5 % of the input neurons)"),
        ]
        for name, ok, rule in checks:
            if not ok:
                out.append((name, f"option {name!r} {rule}, found {getattr(self, name)!r}"))
        if not isinstance(self.max_atoms_per_core, Mapping):
            out.append(("max_atoms_per_core", f"option 'max_atoms_per_core' must map population names to integers, found {self.max_atoms_per_core!r}"))
        else:
            for pop, atoms in dict(self.max_atoms_per_core).items():
                if not _number(atoms) or int(atoms) != atoms or atoms < 1:
                    out.append(("max_atoms_per_core", f"option 'max_atoms_per_core' for {pop!r} must be an integer >= 1, found {atoms!r}"))
        return out


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def options_from_card(card: Any) -> dict[str, Any]:
    """Backend options from a model card's ``conversion`` section (a ChipOptions: dt, integrator, reset, ...)."""
    conversion = card.conversion
    return {f.name: getattr(conversion, f.name) for f in dataclasses.fields(ChipOptions)}
