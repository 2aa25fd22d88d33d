"""The exception tree of s2gesture: one root, one subclass per stage.

Messages name the thing, what was expected, what was found and, where possible, the fix.
"""

from __future__ import annotations


class S2GestureError(Exception):
    """Root of every error s2gesture raises on purpose."""


class EventDataError(S2GestureError):
    """A recording or event array is malformed, truncated or of an unknown format."""


class PreprocessError(S2GestureError):
    """Preprocessing parameters or inputs are inconsistent (sensor size, crop, dt, time order)."""


class ModelCardError(S2GestureError):
    """A model file has no usable card, or the card disagrees with the graph."""


class BackendError(S2GestureError):
    """A backend could not be created, loaded or run."""


class UnsupportedGraphError(BackendError):
    """The NIR graph has a node or structure the chip (and so the emulator) cannot run."""


class ChipMemoryError(BackendError):
    """The network or a chunk does not fit the chip's PEs or SRAM."""


class ConfigError(S2GestureError):
    """The daemon or a client got an invalid configuration."""


class ProtocolError(S2GestureError):
    """A wire message does not follow protocol v1 (docs/protocol.md)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        #: short machine-readable reason used as the drop counter key, e.g. "bad_length"
        self.reason = reason
