"""The event dtype and the Recording record."""

from __future__ import annotations

import numpy as np
import pytest

from s2gesture.daemon.errors import EventDataError
from s2gesture.daemon.events import (
    EVENT_DTYPE,
    Recording,
    as_events,
    check_events,
    empty_events,
    make_events,
    time_window,
)


def test_dtype_matches_tonic_dvsgesture() -> None:
    """Our dtype is the one tonic's DVSGesture returns (x, y int16, p bool, t int64 µs)."""
    from tonic.datasets import DVSGesture

    assert np.dtype(DVSGesture.dtype) == EVENT_DTYPE


def test_make_events_and_as_events_round_trip() -> None:
    """Columns packed by make_events come back unchanged; a foreign structured dtype converts."""
    ev = make_events([1, 2], [3, 4], [True, False], [10, 20])
    assert ev.dtype == EVENT_DTYPE and ev["t"].tolist() == [10, 20]
    foreign = np.zeros(2, dtype=[("t", "<f8"), ("x", "<u2"), ("y", "<u2"), ("p", "<i1")])
    foreign["x"] = [5, 6]
    assert as_events(foreign)["x"].tolist() == [5, 6]
    assert as_events(ev) is ev


def test_as_events_rejects_missing_fields() -> None:
    """An array without x, y, p, t raises EventDataError naming the fix."""
    with pytest.raises(EventDataError, match="make_events"):
        as_events(np.zeros(3, dtype=[("x", "<i2"), ("t", "<i8")]))


def test_make_events_rejects_ragged_columns() -> None:
    """Columns of different lengths raise EventDataError naming the column."""
    with pytest.raises(EventDataError, match="'t'"):
        make_events([1, 2], [1, 2], [True, True], [1])


def test_recording_validates_order_and_bounds() -> None:
    """A Recording refuses unsorted timestamps and coordinates outside its sensor."""
    with pytest.raises(EventDataError, match=r"t\[1\]=5"):
        Recording(make_events([0, 0], [0, 0], [True, True], [10, 5]), (4, 4), name="r")
    with pytest.raises(EventDataError, match=r"x must lie in \[0, 3\]"):
        Recording(make_events([0, 4], [0, 0], [True, True], [1, 5]), (4, 4))
    rec = Recording(make_events([0, 3], [0, 3], [True, True], [1, 5]), [4, 4], label=2, name="ok")  # type: ignore[arg-type]
    assert rec.sensor_size == (4, 4) and rec.duration_us == 4 and len(rec) == 2


def test_recording_is_frozen() -> None:
    """Recording fields cannot be reassigned."""
    rec = Recording(empty_events(), (2, 2))
    with pytest.raises(AttributeError):
        rec.label = 3  # type: ignore[misc]


def test_time_window_is_half_open() -> None:
    """time_window keeps start <= t < stop."""
    ev = make_events([0] * 4, [0] * 4, [True] * 4, [0, 10, 20, 30])
    assert time_window(ev, 10, 30)["t"].tolist() == [10, 20]
    assert time_window(ev)["t"].tolist() == [0, 10, 20, 30]


def test_check_events_accepts_empty() -> None:
    """An empty array is a valid recording."""
    check_events(empty_events(), (1, 1))
