"""Anti-flicker: drop the events a flickering lamp makes, keep the ones a moving person makes.

A mains-powered lamp flickers at twice the mains frequency (100 Hz in 50 Hz countries, 120 Hz in 60 Hz
ones). Under it every pixel of the lit area sees the same brightness change each half period, so a DVS
fires ON events as the lamp brightens and OFF events as it dims, in step across the area, for as long as
the lamp is on. The network then sees a steady, structured input where the scene is still, and that was
the commonest cause of false gesture decisions on the held-out distractor footage.

The rule (the idea of the anti-flicker blocks in event sensors, done in software on any camera's stream):

- the sensor is cut into tiles of :data:`TILE_PX` x :data:`TILE_PX` pixels; for every tile and every
  listed frequency ``f`` the filter keeps, for each of the last :data:`PERIODS` periods of ``f``, the sum
  of the events' *phase vectors*: an event at time ``t`` has phase ``2 pi f (t - t0)`` (64 steps; ``t0``
  the first event the filter saw, so that the answer does not depend on where the camera's clock or a
  replay put time zero: the daemon and the offline evaluation agree decision for decision), counted as
  ``+(cos, sin)`` for ON and ``-(cos, sin)`` for OFF, so a lamp's ON and OFF events add up, in one
  direction, while a moving edge's events point every way and cancel;
- a tile is *locked* to ``f`` when, over those periods, it holds at least :data:`MIN_EVENTS` events in at
  least :data:`MIN_ACTIVE_PERIODS` different periods (a lamp recurs; one hand crossing the tile does not)
  and the vector sum is at least :data:`COHERENCE` of the event count;
- in a locked tile an event is dropped when its own phase vector lies within :data:`PHASE_WINDOW_DEG` of
  the tile's sum: the lamp's phase. A gesture's events there keep the other two thirds of the cycle.

Each event is judged on the events before it, then counted (dropped or not), so the lock holds while the
lamp is on. All state is integer and the one comparison in floating point uses only IEEE's basic
operations (each correctly rounded, no library functions), so the result is the same on every machine, and
the same however a stream is cut into packets.

numba caches the preprocessing kernels (daemon/preprocess.py) by *that* file's time stamp, and they inline
:func:`flicker_drop` and the constants here: after changing this file alone, touch preprocess.py, or its
cached kernels keep the old rule (tests/test_flicker.py would then see the paths disagree).

Figures (validation data only, seeds 2029 / 2027; benchmarks/results/heldout.md has the held-out ones):
48 flicker scenes of 10 s: false gesture decisions 26 -> 3, 88 % of their events dropped; 132 gesture
recordings: 0.05 % of events dropped, every final decision unchanged.

Limit: the lamp's events must be bunched in phase. The generator's lamps jitter by 0.3 ms (all removed);
with a spread of 1 ms (standard deviation) 83-90 % go, with 1.5 ms 55-73 %, with 2 ms none (the tile
never locks). A lamp whose intensity rises slowly over each half period (a sinusoid, a slow phosphor)
spreads its events that way; list it anyway, and the `none` class takes what is left.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

from .errors import PreprocessError

#: the daemon's default: lamps on 50 Hz and on 60 Hz mains
DEFAULT_HZ: tuple[int, ...] = (100, 120)
TILE_PX = 8
PERIODS = 32  # 320 ms at 100 Hz: a lamp locks within a third of a second, a hand's sweep never
MIN_EVENTS = 16
MIN_ACTIVE_PERIODS = 12
COHERENCE = 0.5
PHASE_WINDOW_DEG = 60.0
MAX_HZ = 5000  # the phase needs several microsecond steps per period, and a DVS pixel cannot follow faster

_STEPS = 64  # phase steps per period
# events of one tile counted per period at most: keeps a period's sums within int32 (2**20 x 1024), so the
# ring takes 6 bytes per sensor pixel and frequency; only a flood (a million events on one tile in 10 ms) reaches it
_MAX_PER_PERIOD = 1 << 20
_AMP = 1024  # phase vector length in integer units
_COS = np.round(_AMP * np.cos(2 * np.pi * np.arange(_STEPS) / _STEPS)).astype(np.int64)
_SIN = np.round(_AMP * np.sin(2 * np.pi * np.arange(_STEPS) / _STEPS)).astype(np.int64)
# the lock and drop tests, squared (in the kernel's integer units): module constants, compiled in
_MIN_MAG2_PER_N2 = COHERENCE * COHERENCE * _AMP * _AMP
_COS2_WINDOW = float(np.cos(np.deg2rad(PHASE_WINDOW_DEG))) ** 2
# per (tile, frequency): the sums over the window, then the last period seen
_RE, _IM, _N, _ACTIVE, _LAST = range(5)


def check_hz(hz: Any, where: str) -> tuple[int, ...]:
    """The frequencies as a sorted tuple of distinct integers, or :class:`PreprocessError` naming the problem."""

    def usable(v: Any) -> bool:  # integers only: True is not 1 Hz, 100.0 is not asked for
        return bool(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) and 1 <= v <= MAX_HZ)

    values = tuple(hz) if isinstance(hz, (list, tuple, np.ndarray)) else None
    if values is None or not all(usable(v) for v in values):
        msg = (
            f"{where}: expected a list of flicker frequencies, integers in 1..{MAX_HZ} Hz (twice the mains "
            f"frequency: 100 for 50 Hz mains, 120 for 60 Hz; [] turns the filter off), found {hz!r}"
        )
        raise PreprocessError(msg)
    return tuple(sorted({int(v) for v in values}))


class FlickerState:
    """The filter's memory for one sensor, carried between packets (see the module docstring)."""

    def __init__(self, sensor_size: tuple[int, int], hz: tuple[int, ...]) -> None:
        W, H = sensor_size
        self.tiles_x = -(-W // TILE_PX)
        n_tiles = self.tiles_x * -(-H // TILE_PX)
        self.hz = np.asarray(hz, dtype=np.int64)
        # ring[tile, f, period % PERIODS] = (re, im, n); sums[tile, f] = (re, im, n, active periods, last period)
        self.ring = np.zeros((n_tiles, len(hz), PERIODS, 3), dtype=np.int32)
        self.sums = np.zeros((n_tiles, len(hz), 5), dtype=np.int64)
        self.sums[:, :, _LAST] = np.iinfo(np.int64).min // 2
        # [t0, set]: the time origin of every phase, taken from the first event judged
        self.origin = np.zeros(2, dtype=np.int64)

    def arrays(self) -> tuple[Any, ...]:
        """What the compiled kernels take: pass to :func:`flicker_drop`."""
        return self.hz, self.tiles_x, self.ring, self.sums, self.origin


#: the kernels' arguments where the filter is off: with None numba compiles a version without the filter's
#: branch (an empty state cost the plain path 12-15 % per 5 ms packet)
OFF: tuple[Any, ...] = (None, 0, None, None, None)


def kernel_arrays(sensor_size: tuple[int, int], hz: tuple[int, ...]) -> tuple[Any, ...]:
    """Fresh filter state as the compiled kernels take it (:data:`OFF` when ``hz`` is empty)."""
    return FlickerState(sensor_size, hz).arrays() if hz else OFF


@njit(cache=True, nogil=True, boundscheck=False)
def flicker_drop(
    hz: Any, tiles_x: Any, ring: Any, sums: Any, origin: Any, x: Any, y: Any, on: Any, t_abs: Any
) -> bool:
    """Judge one event (True: the lamp's), then count it. ``x, y`` must be on the sensor, ``t_abs`` in order."""
    if origin[1] == 0:
        origin[0] = t_abs
        origin[1] = 1
    t = t_abs - origin[0]
    tile = (y // TILE_PX) * tiles_x + x // TILE_PX
    sign = 1 if on else -1
    drop = False
    # whole seconds apart, so that days of stream (8.6e10 µs) times f stay far inside int64
    sec = t // 1_000_000
    usec = t - sec * 1_000_000
    for f in range(hz.shape[0]):
        fr = hz[f]
        frac = usec * fr
        period = sec * fr + frac // 1_000_000
        step = (frac % 1_000_000) * _STEPS // 1_000_000
        s = sums[tile, f]
        if period > s[_LAST]:
            # periods that left the window: take their counts out of the sums
            gone = min(period - s[_LAST], PERIODS)
            for j in range(1, gone + 1):
                slot = ring[tile, f, (s[_LAST] + j) % PERIODS]
                s[_RE] -= slot[0]
                s[_IM] -= slot[1]
                if slot[2] > 0:
                    s[_N] -= slot[2]
                    s[_ACTIVE] -= 1
                slot[0] = 0
                slot[1] = 0
                slot[2] = 0
            s[_LAST] = period
        c = sign * _COS[step]
        d = sign * _SIN[step]
        if s[_N] >= MIN_EVENTS and s[_ACTIVE] >= MIN_ACTIVE_PERIODS:
            re = float(s[_RE])
            im = float(s[_IM])
            mag2 = re * re + im * im
            n = float(s[_N])
            if mag2 >= _MIN_MAG2_PER_N2 * n * n:
                along = c * re + d * im
                if along > 0 and along * along >= _COS2_WINDOW * float(c * c + d * d) * mag2:
                    drop = True
        slot = ring[tile, f, period % PERIODS]
        if slot[2] >= _MAX_PER_PERIOD:
            continue
        if slot[2] == 0:
            s[_ACTIVE] += 1
        slot[0] += c
        slot[1] += d
        slot[2] += 1
        s[_RE] += c
        s[_IM] += d
        s[_N] += 1
    return drop


@njit(cache=True, nogil=True, boundscheck=False)
def _mask(x: Any, y: Any, p: Any, t: Any, hz: Any, tiles_x: int, ring: Any, sums: Any, origin: Any, keep: Any) -> None:
    for i in range(x.shape[0]):
        keep[i] = not flicker_drop(hz, tiles_x, ring, sums, origin, np.int64(x[i]), np.int64(y[i]), p[i], np.int64(t[i]))


def flicker_mask(events: Any, sensor_size: tuple[int, int], hz: tuple[int, ...] = DEFAULT_HZ) -> npt.NDArray[np.bool_]:
    """True for the events the filter keeps, over one time-sorted recording on ``sensor_size``.

    The preprocessing applies the same rule inside its own pass (``PreprocessSpec.anti_flicker_hz``); this is
    the filter on its own, for tools and for looking at what it removes.
    """
    x, y, t = events["x"], events["y"], events["t"]
    W, H = sensor_size
    if x.shape[0] and (x.min() < 0 or x.max() >= W or y.min() < 0 or y.max() >= H or np.any(np.diff(t) < 0)):
        msg = f"flicker_mask: expected time-sorted events on a {W}x{H} sensor; sort them or fix the sensor size"
        raise PreprocessError(msg)
    keep = np.ones(x.shape[0], dtype=np.bool_)
    hz = check_hz(hz, "flicker_mask")
    if hz:
        hz_arr, tiles_x, ring, sums, origin = FlickerState(sensor_size, hz).arrays()
        _mask(x, y, events["p"], t, hz_arr, tiles_x, ring, sums, origin, keep)
    return keep
