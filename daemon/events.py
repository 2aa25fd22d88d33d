"""DVS events: one structured dtype and a recording record that carries its sensor size.

``EVENT_DTYPE`` is tonic's DVSGesture dtype: ``x``, ``y`` int16 pixel coordinates (origin top-left, x to
the right as the sensor sees the scene), ``p`` bool polarity (True = ON, brightness increase) and ``t``
int64 timestamps in microseconds. Every reader in ``s2gesture.models.datasets`` returns this dtype and
the preprocessing in :mod:`s2gesture.daemon.preprocess` consumes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import EventDataError

EVENT_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("p", "?"), ("t", "<i8")])

Events = npt.NDArray[np.void]


def empty_events(n: int = 0) -> Events:
    """A zeroed event array of length ``n`` in :data:`EVENT_DTYPE`."""
    return np.zeros(n, dtype=EVENT_DTYPE)


def make_events(x: npt.ArrayLike, y: npt.ArrayLike, p: npt.ArrayLike, t_us: npt.ArrayLike) -> Events:
    """Pack coordinate, polarity and time (µs) columns into one :data:`EVENT_DTYPE` array."""
    cols = [np.asarray(c) for c in (x, y, p, t_us)]
    n = cols[0].shape[0] if cols[0].ndim else 1
    for name, col in zip("xypt", cols, strict=True):
        if col.ndim != 1 or col.shape[0] != n:
            msg = f"event column '{name}': expected a 1-D array of length {n} (like 'x'), found shape {col.shape}"
            raise EventDataError(msg)
    events = np.empty(n, dtype=EVENT_DTYPE)
    events["x"], events["y"], events["p"], events["t"] = cols
    return events


def as_events(array: npt.ArrayLike, *, name: str = "events") -> Events:
    """Return ``array`` as :data:`EVENT_DTYPE` (no copy when it already is), checking its fields."""
    arr = np.asarray(array)
    if arr.dtype == EVENT_DTYPE:
        return arr
    names = arr.dtype.names or ()
    missing = [f for f in ("x", "y", "p", "t") if f not in names]
    if arr.ndim != 1 or missing:
        msg = (
            f"{name}: expected a 1-D structured array with fields x, y, p, t (µs), found dtype {arr.dtype} "
            f"and shape {arr.shape}; build one with s2gesture.daemon.events.make_events(x, y, p, t_us)"
        )
        raise EventDataError(msg)
    out = np.empty(arr.shape[0], dtype=EVENT_DTYPE)
    for f in ("x", "y", "p", "t"):
        out[f] = arr[f]
    return out


def check_events(events: Events, sensor_size: tuple[int, int] | None = None, *, name: str = "events") -> None:
    """Raise :class:`EventDataError` unless ``events`` is time-sorted and inside ``sensor_size`` (width, height)."""
    if events.dtype != EVENT_DTYPE:
        msg = f"{name}: expected dtype {EVENT_DTYPE}, found {events.dtype}; convert with as_events()"
        raise EventDataError(msg)
    if events.shape[0] == 0:
        return
    if events.shape[0] >= _KERNEL_MIN_EVENTS:
        # one compiled pass over the records: numpy's checks each read a strided field of 13-byte records
        # and build temporaries, which cost more than decoding the file did
        width, height = sensor_size if sensor_size is not None else (1 << 16, 1 << 16)
        bad_t, x_lo, x_hi, y_lo, y_hi = _check_kernel()(events["t"], events["x"], events["y"])
        if bad_t < 0 and (sensor_size is None or (x_lo >= 0 and x_hi < width and y_lo >= 0 and y_hi < height)):
            return
    t = events["t"]
    decreasing = np.flatnonzero(t[1:] < t[:-1])
    if decreasing.size:
        i = int(decreasing[0]) + 1
        msg = (
            f"{name}: timestamps must be non-decreasing, found t[{i}]={int(t[i])} µs after "
            f"t[{i - 1}]={int(t[i - 1])} µs; sort with events[np.argsort(events['t'], kind='stable')]"
        )
        raise EventDataError(msg)
    if sensor_size is not None:
        width, height = sensor_size
        for axis, limit in (("x", width), ("y", height)):
            col = events[axis]
            lo, hi = int(col.min()), int(col.max())
            if lo < 0 or hi >= limit:
                msg = (
                    f"{name}: {axis} must lie in [0, {limit - 1}] for sensor size {sensor_size}, "
                    f"found range [{lo}, {hi}]; pass the recording's real sensor size"
                )
                raise EventDataError(msg)


#: arrays at least this long are checked by the compiled pass (below it numpy is as fast, and needs no numba)
_KERNEL_MIN_EVENTS = 100_000
_KERNEL: list[Any] = []


def _check_kernel() -> Any:
    """(first index where t decreases or -1, min x, max x, min y, max y) in one pass; compiled on first use."""
    if not _KERNEL:
        import numba

        @numba.njit(cache=True, nogil=True)  # type: ignore[misc]
        def check(t: Any, x: Any, y: Any) -> tuple[int, int, int, int, int]:
            bad = -1
            x_lo = x_hi = int(x[0])
            y_lo = y_hi = int(y[0])
            for i in range(1, t.shape[0]):
                if bad < 0 and t[i] < t[i - 1]:
                    bad = i
                xi, yi = int(x[i]), int(y[i])
                x_lo, x_hi = min(x_lo, xi), max(x_hi, xi)
                y_lo, y_hi = min(y_lo, yi), max(y_hi, yi)
            return bad, x_lo, x_hi, y_lo, y_hi

        _KERNEL.append(check)
    return _KERNEL[0]


def time_window(events: Events, t_start_us: int | None = None, t_stop_us: int | None = None) -> Events:
    """The events with ``t_start_us <= t < t_stop_us`` (a view; events must be time-sorted)."""
    t = events["t"]
    lo = 0 if t_start_us is None else int(np.searchsorted(t, t_start_us, side="left"))
    hi = t.shape[0] if t_stop_us is None else int(np.searchsorted(t, t_stop_us, side="left"))
    return events[lo:hi]


@dataclass(frozen=True)
class Recording:
    """Time-sorted events of one sensor with an optional class label.

    ``sensor_size`` is ``(width, height)`` in pixels; ``label`` is the 0-based class index (None when
    unknown); ``meta`` holds reader-specific provenance (user, lighting, file, offsets).
    """

    events: Events
    sensor_size: tuple[int, int] = (128, 128)
    label: int | None = None
    name: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "events", as_events(self.events, name=f"recording '{self.name}'"))
        size = tuple(int(s) for s in self.sensor_size)
        if len(size) != 2 or min(size) <= 0:
            msg = (
                f"recording '{self.name}': sensor_size must be (width, height) > 0, found {self.sensor_size}"
            )
            raise EventDataError(msg)
        object.__setattr__(self, "sensor_size", size)
        check_events(self.events, size, name=f"recording '{self.name}'")

    @property
    def duration_us(self) -> int:
        """Time from the first to the last event in µs (0 when empty)."""
        t = self.events["t"]
        return int(t[-1] - t[0]) if t.shape[0] else 0

    def __len__(self) -> int:
        return int(self.events.shape[0])
