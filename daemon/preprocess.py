"""One preprocessing path for training and serving: denoise, map to the model input, bin into spikes.

Stages, in this order, all in one compiled pass over the events:

0. **Anti-flicker** (``anti_flicker_hz``, off unless listed; the daemon lists 100 and 120 Hz): the events
   of a lamp flickering at one of those frequencies are dropped before anything else sees them
   (:mod:`s2gesture.daemon.flicker` has the rule and its figures).
1. **Denoise** (tonic's ``Denoise`` rule): each pixel remembers ``t_last + denoise_us`` of its last event;
   an event is kept when one of its 4 neighbours has a remembered value ``> t`` (strictly). The memory
   starts at ``denoise_us`` for every pixel, as in tonic, so events with ``t < denoise_us`` (absolute) are
   always kept. Deliberate difference: the neighbourhood is bounded by the *sensor size*, not by the
   largest coordinate in the data (tonic). A never-fired pixel only counts while ``t < denoise_us``, and
   then tonic keeps every event that has any in-bounds neighbour, so the two differ only when every event
   of the input sits on pixel (0, 0) (tonic sees a 1x1 sensor and drops them all).
   ``denoise_us = 0`` disables the stage.
2. **Map** the sensor to the model input (registry :data:`MAPPINGS`): ``center-crop-scale`` crops the
   centre to the input aspect ratio, then scales with integer arithmetic ``x_out = (x - x0) * w // W_crop``
   (tonic's ``Downsample`` computes ``int(x * factor)`` in floating point, identical for power-of-two
   factors such as 128 -> 32; ours never suffers float rounding). ``scale`` scales each axis
   independently; ``center-crop`` only crops. These keep the *field of view*: a bigger sensor is shrunk
   more. ``subject`` keeps the *subject's size* instead: it crops a box of the size the training used
   (``center-crop-scale``'s box on ``trained_sensor_size``, e.g. 128x128 -> 32x32: 4 sensor pixels per
   input pixel), centred on the sensor, or the explicit ``crop_box = (x0, y0, width, height)``, and
   scales that box onto the input with the same integer rule. A centred box larger than a small sensor
   leaves the input's margins empty (the subject keeps its size); an explicit box must lie on the sensor.
3. **Bin** into binary spikes ``uint8 [T, C, H, W]``: tick ``k`` covers ``[t0 + k*dt, t0 + (k+1)*dt)``;
   channel 0 = OFF (p False), 1 = ON (p True), as tonic's ``ToFrame``; with ``channels=1`` both
   polarities share one channel. A pixel that fires more than once in a tick is 1 (the chip's input is
   spikes), where tonic counts.

:func:`preprocess_recording` and :class:`StreamPreprocessor` apply the same rules with the same state
(tests/test_preprocess.py: cutting a recording into packets anywhere gives the same ticks). The stream runs
one compiled call per packet that checks it, bins it into a ring of pending ticks and hands out the
completed ones, with its state in the kernel's arrays between packets. The kernels are compiled by numba
with ``cache=True`` (compiled once per machine, loaded from the cache afterwards) and release the GIL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

from . import flicker
from .errors import PreprocessError
from .events import EVENT_DTYPE, Events, Recording, as_events

Spikes = npt.NDArray[np.uint8]
INT64_MAX = np.iinfo(np.int64).max
MAX_OUTPUT_BYTES = 2**31  # a recording whose spikes would exceed this has broken timestamps


# --- mappings: sensor axis -> model axis lookup tables (-1 = cropped away) ---------------------------


def _scale_axis(n_in: int, n_out: int, lo: int, n_used: int) -> npt.NDArray[np.int32]:
    """Lookup table for pixels ``lo .. lo+n_used-1`` scaled onto ``n_out`` by ``(x - lo) * n_out // n_used``.

    The range may reach past either end of the sensor (``lo < 0``, a box bigger than a small sensor):
    only the sensor's own pixels get entries, so the input keeps empty margins there.
    """
    table = np.full(n_in, -1, dtype=np.int32)
    a, b = max(lo, 0), min(lo + n_used, n_in)
    if b > a:
        xs = np.arange(a - lo, b - lo, dtype=np.int64)
        table[a:b] = (xs * n_out) // n_used
    return table


def _center_crop_size(sensor: tuple[int, int], out: tuple[int, int]) -> tuple[int, int]:
    """Size of the largest centred box of the input's aspect ratio on ``sensor`` (what center-crop-scale uses)."""
    (W, H), (w, h) = sensor, out
    # Crop the larger side so that the used region has the model's aspect ratio w:h.
    if W * h > H * w:
        return (H * w) // h, H
    return W, (W * h) // w


def _map_center_crop_scale(spec: PreprocessSpec) -> tuple[Any, Any]:
    (W, H), (w, h) = spec.sensor_size, spec.input_size
    Wc, Hc = _center_crop_size(spec.sensor_size, spec.input_size)
    return _scale_axis(W, w, (W - Wc) // 2, Wc), _scale_axis(H, h, (H - Hc) // 2, Hc)


def _map_scale(spec: PreprocessSpec) -> tuple[Any, Any]:
    (W, H), (w, h) = spec.sensor_size, spec.input_size
    return _scale_axis(W, w, 0, W), _scale_axis(H, h, 0, H)


def _map_center_crop(spec: PreprocessSpec) -> tuple[Any, Any]:
    (W, H), (w, h) = spec.sensor_size, spec.input_size
    if w > W or h > H:
        msg = (
            f"mapping 'center-crop': input size {spec.input_size} must fit in the sensor {spec.sensor_size}; "
            "use 'center-crop-scale'"
        )
        raise PreprocessError(msg)
    return _scale_axis(W, w, (W - w) // 2, w), _scale_axis(H, h, (H - h) // 2, h)


def subject_box(spec: PreprocessSpec) -> tuple[int, int, int, int]:
    """The sensor box ``(x0, y0, width, height)`` that mapping ``subject`` scales onto the input.

    ``crop_box`` when given; otherwise a box of the size training cropped from its sensor (so one input
    pixel covers as many sensor pixels as in training), centred on this sensor.
    """
    if spec.crop_box is not None:
        return spec.crop_box
    (W, H) = spec.sensor_size
    Wc, Hc = _center_crop_size(spec.trained_sensor_size, spec.input_size)
    return (W - Wc) // 2, (H - Hc) // 2, Wc, Hc


def _map_subject(spec: PreprocessSpec) -> tuple[Any, Any]:
    (W, H), (w, h) = spec.sensor_size, spec.input_size
    x0, y0, bw, bh = subject_box(spec)
    return _scale_axis(W, w, x0, bw), _scale_axis(H, h, y0, bh)


#: name -> function (spec) -> (x lookup table, y lookup table); the spec carries the sensor, input,
#: trained sensor and crop box sizes
MAPPINGS: dict[str, Callable[[PreprocessSpec], tuple[Any, Any]]] = {
    "center-crop-scale": _map_center_crop_scale,
    "scale": _map_scale,
    "center-crop": _map_center_crop,
    "subject": _map_subject,
}


def crop_box_problem(
    box: tuple[int, ...] | list[int], sensor_size: tuple[int, int], input_size: tuple[int, int] | None = None
) -> str | None:
    """Why ``box = (x0, y0, width, height)`` cannot be a crop box on ``sensor_size`` (None when it can).

    The box must lie on the sensor; with ``input_size`` its aspect ratio must also be the input's (to
    within one sensor pixel of rounding), or the subject would be stretched.
    """
    W, H = sensor_size
    if len(box) != 4 or any(isinstance(v, bool) or not isinstance(v, int | np.integer) for v in box):
        return f"crop box {list(box)!r}: expected four integers [x0, y0, width, height] in sensor pixels"
    x0, y0, bw, bh = (int(v) for v in box)
    if bw <= 0 or bh <= 0:
        return f"crop box [{x0}, {y0}, {bw}, {bh}]: width and height must be > 0"
    if x0 < 0 or y0 < 0 or x0 + bw > W or y0 + bh > H:
        fit_x, fit_y = min(max(x0, 0), max(W - bw, 0)), min(max(y0, 0), max(H - bh, 0))
        fix = (
            f"move it to [{fit_x}, {fit_y}, {bw}, {bh}]"
            if bw <= W and bh <= H
            else f"a box of at most {W}x{H} pixels"
        )
        return (
            f"crop box [{x0}, {y0}, {bw}, {bh}] (x0, y0, width, height) reaches x {x0}..{x0 + bw - 1}, "
            f"y {y0}..{y0 + bh - 1}, outside the {W}x{H} sensor (x 0..{W - 1}, y 0..{H - 1}); the box must "
            f"lie on the sensor: {fix}, or let `s2gesture calibrate` pick one"
        )
    if input_size is not None:
        w, h = input_size
        if abs(bw * h - bh * w) >= max(w, h):
            return (
                f"crop box [{x0}, {y0}, {bw}, {bh}]: its aspect ratio {bw}:{bh} is not the model input's "
                f"{w}:{h}, so the subject would be stretched; use a height of {round(bw * h / w)} for that width"
            )
    return None


def _override_of(overrides: Any, sensor_size: tuple[int, int]) -> Any:
    """The per-sensor override for ``sensor_size`` (key ``"WxH"``, else ``"*"``), or None."""
    if not overrides:
        return None
    key = f"{int(sensor_size[0])}x{int(sensor_size[1])}"
    return overrides.get(key, overrides.get("*"))


def _field(source: Any, name: str, default: Any = None) -> Any:
    if isinstance(source, dict):
        return source.get(name, default)
    return getattr(source, name, default)


@dataclass(frozen=True)
class PreprocessSpec:
    """Everything preprocessing needs: sizes are ``(width, height)`` in pixels, times in µs."""

    sensor_size: tuple[int, int]
    input_size: tuple[int, int] = (32, 32)
    mapping: str = "center-crop-scale"
    denoise_us: int = 10_000
    dt_us: int = 1000
    channels: int = 2
    #: the sensor the model was trained on: mapping ``subject`` crops the box training used on it
    trained_sensor_size: tuple[int, int] = (128, 128)
    #: mapping ``subject`` only: the sensor box ``(x0, y0, width, height)`` scaled onto the input
    crop_box: tuple[int, int, int, int] | None = None
    #: lamp flicker frequencies (Hz) whose events are dropped first; () = off. The daemon's default is
    #: :data:`s2gesture.daemon.flicker.DEFAULT_HZ` (``input.anti_flicker_hz``); training data is binned without.
    anti_flicker_hz: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in ("sensor_size", "input_size", "trained_sensor_size"):
            value = getattr(self, name)
            if len(value) != 2 or any(int(v) != v or v <= 0 for v in value):
                msg = f"PreprocessSpec.{name}: expected (width, height) positive integers, found {value!r}"
                raise PreprocessError(msg)
            object.__setattr__(self, name, (int(value[0]), int(value[1])))
        if self.mapping not in MAPPINGS:
            msg = (
                f"PreprocessSpec.mapping: unknown mapping {self.mapping!r}; supported: {', '.join(MAPPINGS)}"
            )
            raise PreprocessError(msg)
        if int(self.dt_us) != self.dt_us or self.dt_us <= 0:
            msg = f"PreprocessSpec.dt_us: expected a positive integer tick in µs (e.g. 1000), found {self.dt_us!r}"
            raise PreprocessError(msg)
        if int(self.denoise_us) != self.denoise_us or self.denoise_us < 0:
            msg = f"PreprocessSpec.denoise_us: expected an integer >= 0 µs (0 disables), found {self.denoise_us!r}"
            raise PreprocessError(msg)
        if self.channels not in (1, 2):
            msg = f"PreprocessSpec.channels: expected 1 (polarities merged) or 2 (OFF, ON), found {self.channels!r}"
            raise PreprocessError(msg)
        object.__setattr__(self, "dt_us", int(self.dt_us))
        object.__setattr__(self, "denoise_us", int(self.denoise_us))
        object.__setattr__(self, "anti_flicker_hz", flicker.check_hz(self.anti_flicker_hz, "PreprocessSpec.anti_flicker_hz"))
        if self.crop_box is not None:
            if self.mapping != "subject":
                msg = (
                    f"PreprocessSpec.crop_box {list(self.crop_box)} is only used by mapping 'subject', but the "
                    f"mapping is {self.mapping!r}; set mapping = \"subject\" or drop the crop box"
                )
                raise PreprocessError(msg)
            why = crop_box_problem(self.crop_box, self.sensor_size, self.input_size)
            if why:
                raise PreprocessError(f"PreprocessSpec: {why}")
            object.__setattr__(self, "crop_box", tuple(int(v) for v in self.crop_box))

    @classmethod
    def from_card(
        cls, input_spec: Any, sensor_size: tuple[int, int], overrides: Any = None, *,
        anti_flicker_hz: tuple[int, ...] = flicker.DEFAULT_HZ,
    ) -> PreprocessSpec:  # fmt: skip
        """The spec the daemon serves a model card's ``InputSpec`` with, for the sensor that produces the events.

        ``overrides`` (the daemon's ``model.input_mapping``): sensor ``"WxH"`` (or ``"*"``) -> an object or
        dict with ``mapping`` and ``crop_box``, replacing the card's mapping for that sensor.
        ``anti_flicker_hz`` defaults to the daemon's default, so that offline evaluation sees what it serves.
        """
        mapping, crop_box = str(input_spec.mapping), getattr(input_spec, "crop_box", None)
        override = _override_of(overrides, sensor_size)
        if override is not None:
            mapping, crop_box = str(_field(override, "mapping", "subject")), _field(override, "crop_box")
        trained = getattr(input_spec, "trained_sensor_size", (128, 128))
        return cls(
            sensor_size=tuple(sensor_size),  # type: ignore[arg-type]
            input_size=(int(input_spec.width), int(input_spec.height)),
            mapping=mapping,
            denoise_us=int(input_spec.denoise_us),
            dt_us=int(input_spec.dt_us),
            channels=int(input_spec.channels),
            trained_sensor_size=(int(trained[0]), int(trained[1])),
            crop_box=None if crop_box is None else tuple(int(v) for v in crop_box),  # type: ignore[arg-type]
            anti_flicker_hz=tuple(anti_flicker_hz),
        )

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one tick."""
        return (self.channels, self.input_size[1], self.input_size[0])


@lru_cache(maxsize=64)
def mapping_tables(spec: PreprocessSpec) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]:
    """Lookup tables sensor x -> input x and sensor y -> input y (-1 where the pixel is cropped away)."""
    xmap, ymap = MAPPINGS[spec.mapping](spec)
    xmap.flags.writeable = False
    ymap.flags.writeable = False
    return xmap, ymap


def map_events(events: Events, spec: PreprocessSpec) -> Events:
    """Events with coordinates mapped to the model input, cropped-away events dropped (a copy)."""
    events = as_events(events)
    xmap, ymap = mapping_tables(spec)
    _check_coordinates(events, spec, 0)
    x = xmap[events["x"]]
    y = ymap[events["y"]]
    keep = (x >= 0) & (y >= 0)
    out: Events = events[keep].copy()
    out["x"], out["y"] = x[keep], y[keep]
    return out


# --- the kernel ---------------------------------------------------------------------------------------

_OK, _BAD_XY, _BAD_T = 0, 1, 2


@njit(cache=True, nogil=True)
def _kernel(
    x: Any,
    y: Any,
    p: Any,
    t: Any,
    memory: Any,
    denoise_us: int,
    t_prev: Any,
    xmap: Any,
    ymap: Any,
    merge_polarity: bool,
    t0: int,
    t_stop: int,
    dt_us: int,
    k_offset: int,
    frames: Any,
    keep_out: Any,
    fl_hz: Any,
    fl_tiles_x: int,
    fl_ring: Any,
    fl_sums: Any,
    fl_origin: Any,
) -> tuple[int, int, int]:
    """Drop flicker, denoise, map and bin events into ``frames`` (tick index minus ``k_offset``); returns (status, index, t_last)."""
    height, width = memory.shape
    for i in range(x.shape[0]):
        xi = np.int64(x[i])
        yi = np.int64(y[i])
        ti = np.int64(t[i])
        if xi < 0 or xi >= width or yi < 0 or yi >= height:
            return _BAD_XY, i, t_prev
        if ti < t_prev:
            return _BAD_T, i, t_prev
        t_prev = ti
        # a compile-time branch (numba prunes a lone "is not None" test): None compiles a kernel without it
        if fl_hz is not None:  # noqa: SIM102
            if flicker.flicker_drop(fl_hz, fl_tiles_x, fl_ring, fl_sums, fl_origin, xi, yi, p[i], ti):
                continue
        if denoise_us > 0:
            memory[yi, xi] = ti + denoise_us
            if not (
                (xi > 0 and memory[yi, xi - 1] > ti)
                or (xi < width - 1 and memory[yi, xi + 1] > ti)
                or (yi > 0 and memory[yi - 1, xi] > ti)
                or (yi < height - 1 and memory[yi + 1, xi] > ti)
            ):
                continue
        if keep_out.shape[0]:
            keep_out[i] = True
        if ti < t0 or ti >= t_stop:
            continue
        xo = xmap[xi]
        yo = ymap[yi]
        if xo < 0 or yo < 0:
            continue
        c = 0 if merge_polarity else (1 if p[i] else 0)
        frames[(ti - t0) // dt_us - k_offset, c, yo, xo] = 1
    return _OK, -1, t_prev


def _check_coordinates(events: Events, spec: PreprocessSpec, offset: int) -> None:
    W, H = spec.sensor_size
    bad = np.flatnonzero((events["x"] < 0) | (events["x"] >= W) | (events["y"] < 0) | (events["y"] >= H))
    if bad.size:
        i = int(bad[0])
        msg = (
            f"event {offset + i}: (x, y) = ({int(events['x'][i])}, {int(events['y'][i])}) is outside the sensor "
            f"size {spec.sensor_size} of the PreprocessSpec; build the spec with the recording's sensor size"
        )
        raise PreprocessError(msg)


_NO_KEEP = np.zeros(0, dtype=np.bool_)


@njit(cache=True, nogil=True)
def _first_invalid(x: Any, y: Any, t: Any, width: int, height: int, t_prev: Any) -> int:
    """Index of the first event off the sensor or earlier than its predecessor, -1 when none."""
    for i in range(x.shape[0]):
        if x[i] < 0 or x[i] >= width or y[i] < 0 or y[i] >= height or t[i] < t_prev:
            return i
        t_prev = t[i]
    return -1


class _State:
    """Denoise memory and time order carried between packets."""

    def __init__(self, spec: PreprocessSpec) -> None:
        W, H = spec.sensor_size
        # tonic initialises every pixel's memory to filter_time (as if all fired at t = 0): kept for equality.
        self.memory = np.full((H, W), spec.denoise_us, dtype=np.int64)
        self.t_prev = np.iinfo(np.int64).min
        self.n_seen = 0
        self.flicker = flicker.kernel_arrays(spec.sensor_size, spec.anti_flicker_hz)

    def validate(self, spec: PreprocessSpec, events: Events) -> None:
        """Raise :class:`PreprocessError` naming the first event out of time order or off the sensor."""
        t = events["t"]
        if t.shape[0] == 0:
            return
        W, H = spec.sensor_size
        if _first_invalid(events["x"], events["y"], t, W, H, self.t_prev) < 0:
            return  # the common case, checked in one compiled pass; below only builds the message
        _check_coordinates(events, spec, self.n_seen)
        prev = np.concatenate(([self.t_prev], t[:-1]))
        bad = np.flatnonzero(t < prev)
        if bad.size:
            i = int(bad[0])
            msg = (
                f"event {self.n_seen + i}: t = {int(t[i])} µs is earlier than the previous event's "
                f"{int(prev[i])} µs; preprocessing needs time-sorted events (sort each recording, and send "
                "a stream's packets in time order)"
            )
            raise PreprocessError(msg)

    def run(
        self,
        spec: PreprocessSpec,
        tables: tuple[Any, Any],
        events: Events,
        t0: int,
        t_stop: int,
        k_offset: int,
        frames: Spikes,
        keep_out: npt.NDArray[np.bool_] | None = None,
    ) -> None:
        status, _index, t_prev = _kernel(
            events["x"],
            events["y"],
            events["p"],
            events["t"],
            self.memory,
            spec.denoise_us,
            self.t_prev,
            tables[0],
            tables[1],
            spec.channels == 1,
            t0,
            t_stop,
            spec.dt_us,
            k_offset,
            frames,
            _NO_KEEP if keep_out is None else keep_out,
            *self.flicker,
        )
        if status != _OK:
            # The kernel stops before the offending event; name it precisely.
            self.validate(spec, events)
        self.t_prev = int(t_prev)
        self.n_seen += int(events.shape[0])


def _events_of(events: Events | Recording) -> Events:
    return events.events if isinstance(events, Recording) else as_events(events)


def preprocess_recording(
    events: Events | Recording,
    spec: PreprocessSpec,
    t_start_us: int | None = None,
    t_stop_us: int | None = None,
) -> Spikes:
    """Binary spikes ``uint8 [T, C, H, W]`` of a whole time-sorted recording.

    Ticks start at ``t0 = t_start_us`` (default: the first event's time). Without ``t_stop_us`` the last
    tick is the one holding the last event; with it, ``T = ceil((t_stop_us - t0) / dt_us)`` and events at
    ``t >= t_stop_us`` are ignored. Events before ``t0`` still feed the denoiser's memory.
    """
    events = _events_of(events)
    t = events["t"]
    if t_start_us is None and t.shape[0] == 0:
        return np.zeros((0, *spec.frame_shape), dtype=np.uint8)
    t0 = int(t[0]) if t_start_us is None else int(t_start_us)
    if t_stop_us is None:
        t_last = int(t[-1]) if t.shape[0] else t0 - 1
        n_ticks = (t_last - t0) // spec.dt_us + 1 if t_last >= t0 else 0
        t_stop = INT64_MAX
    else:
        t_stop = int(t_stop_us)
        n_ticks = max(0, -((t0 - t_stop) // spec.dt_us))
        events = events[: int(np.searchsorted(t, t_stop, side="left"))]
    frame_bytes = int(np.prod(spec.frame_shape))
    if n_ticks * frame_bytes > MAX_OUTPUT_BYTES:
        msg = (
            f"recording: {n_ticks} ticks of {spec.dt_us} µs ({n_ticks * spec.dt_us / 1e6:.0f} s) would need "
            f"{n_ticks * frame_bytes / 2**30:.1f} GiB of spikes (limit {MAX_OUTPUT_BYTES / 2**30:.0f} GiB); check the "
            "timestamps for a jump, or preprocess a window with t_start_us/t_stop_us"
        )
        raise PreprocessError(msg)
    frames = np.zeros((n_ticks, *spec.frame_shape), dtype=np.uint8)
    _State(spec).run(spec, mapping_tables(spec), events, t0, t_stop, 0, frames)
    return frames


def denoise(events: Events | Recording, sensor_size: tuple[int, int], denoise_us: int) -> Events:
    """The events that pass the 4-neighbour denoise filter of window ``denoise_us`` (a copy; same kernel)."""
    events = _events_of(events)
    spec = PreprocessSpec(
        sensor_size=sensor_size, input_size=sensor_size, mapping="scale", denoise_us=denoise_us
    )
    if denoise_us == 0:
        _State(spec).validate(spec, events)
        return events.copy()
    keep = np.zeros(events.shape[0], dtype=np.bool_)
    frames = np.zeros((0, *spec.frame_shape), dtype=np.uint8)
    # t0 = t_stop = the largest time: nothing is binned, only the keep mask is written.
    _State(spec).run(spec, mapping_tables(spec), events, INT64_MAX, INT64_MAX, 0, frames, keep)
    out: Events = events[keep]
    return out


# --- the streaming kernel: one compiled call per packet ------------------------------------------------

# carried state, one int64 array (the kernel updates it in place; nothing is copied between packets); the
# spec's constants and the call's t_end ride in the same array, since every argument of a compiled call
# costs dispatch time on each packet
_T_PREV, _T0, _T0_KNOWN, _K_NEXT, _K_HI, _T_END, _T_LAST, _N_SEEN = range(8)
_DENOISE, _MAX_GAP, _DT, _PLANE, _MERGE, _ARG_T_END, _ARG_HAS_T_END, _C, _H, _W, _N_FLICKER = range(8, 19)
_S_OK, _S_BAD_EVENT, _S_T_END, _S_OVERLAP, _S_GAP, _S_GROW = range(6)
_INT64_MIN = np.iinfo(np.int64).min


@njit(cache=True, nogil=True, boundscheck=False)
def _drain(st: Any, ring: Any, out: Any, n_ready: int) -> int:
    """Move the next ``n_ready`` ticks out of the ring (rows that hold events into ``out``); returns those rows.

    Rows are flat ``[cap, C*H*W]`` bytes and copied by plain loops (LLVM vectorises them; numba's n-d
    slice assignment goes element by element).
    """
    mask = ring.shape[0] - 1
    k_next = st[_K_NEXT]
    held = min(n_ready, st[_K_HI] - k_next)
    for j in range(held):
        r = (k_next + j) & mask
        for b in range(ring.shape[1]):
            out[j, b] = ring[r, b]
            ring[r, b] = 0
    st[_K_NEXT] = k_next + n_ready
    if st[_K_HI] < st[_K_NEXT]:
        st[_K_HI] = st[_K_NEXT]
    return int(held)


@njit(cache=True, nogil=True, boundscheck=False)
def _stream_push(
    ev: Any, st: Any, memory: Any, xmap: Any, ymap_row: Any, ring: Any,
    fl_hz: Any, fl_tiles_x: int, fl_ring: Any, fl_sums: Any, fl_origin: Any,
) -> tuple[int, int, int, Any]:  # fmt: skip
    """One packet: check it, denoise/map/bin into the tick ring, hand out the completed ticks.

    Returns ``(status, a, b, ticks)``: OK -> (ticks completed, of which the first ``b`` hold events and
    are ``ticks``, a new ``uint8 [b, C, H, W]``: the ring rows are copied once, straight into the result);
    a refusal -> what the message needs (``ticks`` empty), with the carried state untouched (checks come
    before any write).
    ``ymap_row`` is the y table times the input width (-1 kept), ``plane`` the input's H*W: a spike's
    place in the flat frame is ``c*plane + ymap_row[y] + xmap[x]``. ``fl_*``: the anti-flicker state
    (:meth:`s2gesture.daemon.flicker.FlickerState.arrays`, or all None: off), also written only after the checks.
    """
    denoise_us, max_gap, dt_us, plane = st[_DENOISE], st[_MAX_GAP], st[_DT], st[_PLANE]
    merge_polarity = st[_MERGE] == 1
    t_end, has_t_end = st[_ARG_T_END], st[_ARG_HAS_T_END] == 1
    n = ev.shape[0]
    none = np.empty((0, st[_C], st[_H], st[_W]), dtype=np.uint8)
    if has_t_end and n and ev[n - 1]["t"] >= t_end:
        return _S_T_END, ev[n - 1]["t"], 0, none
    if n and ev[0]["t"] < st[_T_END]:
        return _S_OVERLAP, ev[0]["t"], 0, none
    height, width = memory.shape
    tp = st[_T_PREV]
    for i in range(n):
        r = ev[i]
        xi = np.int64(r["x"])
        yi = np.int64(r["y"])
        ti = np.int64(r["t"])
        if xi < 0 or xi >= width or yi < 0 or yi >= height or ti < tp:
            return _S_BAD_EVENT, i, 0, none
        tp = ti
    if max_gap >= 0 and (n or has_t_end):
        known = st[_T0_KNOWN] == 1 or st[_T_LAST] > _INT64_MIN or st[_T_END] > _INT64_MIN
        if known:
            before = max(st[_T_LAST], st[_T_END])
            if st[_T0_KNOWN] == 1:
                before = max(before, st[_T0])
            after = ev[n - 1]["t"] if n else t_end
            if has_t_end:
                after = max(after, t_end)
            if after - before > max_gap:
                return _S_GAP, before, after, none
    t0_known = st[_T0_KNOWN] == 1 or n > 0
    if not t0_known:
        if has_t_end:
            st[_T_END] = max(st[_T_END], t_end)
        return _S_OK, 0, 0, none
    t0 = st[_T0] if st[_T0_KNOWN] == 1 else ev[0]["t"]
    cap = ring.shape[0]  # a power of two: the ring index is a mask
    if n:
        hi = (ev[n - 1]["t"] - t0) // dt_us + 1  # one past the last tick this packet writes
        if hi - st[_K_NEXT] > cap:
            return _S_GROW, hi - st[_K_NEXT], 0, none
        st[_T0] = t0
        st[_T0_KNOWN] = 1
        for i in range(n):
            r = ev[i]
            xi = np.int64(r["x"])
            yi = np.int64(r["y"])
            ti = np.int64(r["t"])
            if fl_hz is not None:  # noqa: SIM102  (a compile-time branch, as in _kernel)
                if flicker.flicker_drop(fl_hz, fl_tiles_x, fl_ring, fl_sums, fl_origin, xi, yi, r["p"], ti):
                    st[_N_FLICKER] += 1
                    continue
            if denoise_us > 0:
                memory[yi, xi] = ti + denoise_us
                if not (
                    (xi > 0 and memory[yi, xi - 1] > ti)
                    or (xi < width - 1 and memory[yi, xi + 1] > ti)
                    or (yi > 0 and memory[yi - 1, xi] > ti)
                    or (yi < height - 1 and memory[yi + 1, xi] > ti)
                ):
                    continue
            if ti < t0:  # before tick 0: feeds the denoiser only
                continue
            xo = xmap[xi]
            yo = ymap_row[yi]
            if xo < 0 or yo < 0:
                continue
            c = 0 if merge_polarity else (1 if r["p"] else 0)
            ring[((ti - t0) // dt_us) & (cap - 1), c * plane + yo + xo] = 1
        if st[_K_HI] < hi:
            st[_K_HI] = hi
        st[_T_PREV] = tp
        st[_T_LAST] = max(st[_T_LAST], ev[n - 1]["t"])
        st[_N_SEEN] += n
    if has_t_end:
        st[_T_END] = max(st[_T_END], t_end)
    # a tick is complete once no later event can fall in it: events at the last time may still follow
    seen = max(st[_T_LAST], st[_T_END])
    ready = 0 if seen == _INT64_MIN else max(0, (seen - t0) // dt_us - st[_K_NEXT])
    held = min(ready, st[_K_HI] - st[_K_NEXT])
    ticks = np.empty((held, st[_C], st[_H], st[_W]), dtype=np.uint8)
    _drain(st, ring, ticks.reshape(held, ring.shape[1]), ready)
    return _S_OK, ready, held, ticks


class StreamPreprocessor:
    """Preprocess a packet stream with carried state: ``push`` packets in time order, then ``flush``.

    Concatenating the arrays returned by every :meth:`push` and the final :meth:`flush` equals
    :func:`preprocess_recording` of all events pushed (with ``t_stop_us`` = the largest ``t_end_us`` given,
    when that is past the last event).

    One compiled call per packet checks it, runs the same denoise/map/bin rules as
    :func:`preprocess_recording` on the packet's own array (no field copies) and hands out the completed
    ticks; the denoise memory, the clock and the not yet complete ticks (a ring of tick frames) stay in
    the kernel's arrays between packets.
    """

    def __init__(
        self, spec: PreprocessSpec, t_start_us: int | None = None, *, max_gap_us: int | None = 10_000_000
    ) -> None:
        self.spec = spec
        self._tables = mapping_tables(spec)
        W, H = spec.sensor_size
        # tonic initialises every pixel's memory to filter_time (as if all fired at t = 0): kept for equality.
        self._memory = np.full((H, W), spec.denoise_us, dtype=np.int64)
        self._st = np.zeros(19, dtype=np.int64)
        self._st[[_T_PREV, _T_END, _T_LAST]] = _INT64_MIN
        w, h = spec.input_size
        self._st[[_DENOISE, _DT, _PLANE, _MERGE]] = (spec.denoise_us, spec.dt_us, w * h, spec.channels == 1)
        self._st[[_C, _H, _W]] = spec.frame_shape
        # A clock jump would otherwise allocate and emit (gap / dt) empty ticks at once.
        self.max_gap_us = max_gap_us
        if t_start_us is not None:
            self._st[_T0], self._st[_T0_KNOWN] = int(t_start_us), 1
        # ticks k_next .. k_hi-1 live in ring[k % capacity] as flat frames; 64 ticks cover any packet of up
        # to 64 dt (a longer one grows the ring to the next power of two)
        self._frame = int(np.prod(spec.frame_shape))
        self._frame_shape = spec.frame_shape
        self._xmap = self._tables[0]
        self._ymap_row = np.where(self._tables[1] >= 0, self._tables[1] * w, -1).astype(np.int64)
        self._ring = np.zeros((64, self._frame), dtype=np.uint8)
        self._flicker = flicker.kernel_arrays(spec.sensor_size, spec.anti_flicker_hz)


    @property
    def max_gap_us(self) -> int | None:
        """Largest forward jump of time a packet may make (µs); None: any, every empty tick is emitted."""
        return None if self._st[_MAX_GAP] < 0 else int(self._st[_MAX_GAP])

    @max_gap_us.setter
    def max_gap_us(self, value: int | None) -> None:
        self._st[_MAX_GAP] = -1 if value is None else int(value)

    @property
    def flicker_dropped(self) -> int:
        """Events the anti-flicker filter has dropped so far (0 with the filter off)."""
        return int(self._st[_N_FLICKER])

    @property
    def t_start_us(self) -> int | None:
        """Start of tick 0 in µs (None until known)."""
        return int(self._st[_T0]) if self._st[_T0_KNOWN] else None

    @property
    def t_next_us(self) -> int | None:
        """Start of the next tick to emit in µs (None until the first event or ``t_start_us``)."""
        if not self._st[_T0_KNOWN]:
            return None
        return int(self._st[_T0]) + int(self._st[_K_NEXT]) * self.spec.dt_us

    def push_lazy(self, events: Events, t_end_us: int | None = None) -> tuple[Spikes, int]:
        """:meth:`push`, with the completed ticks as (ticks, number of empty ticks that follow them).

        Ticks after the last one holding an event are counted, not allocated: a packet that moves time
        forward by seconds costs what its events cost.
        """
        if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE or events.ndim != 1:
            events = as_events(events)
        st = self._st
        if t_end_us is None:
            st[_ARG_HAS_T_END] = 0
        else:
            st[_ARG_HAS_T_END], st[_ARG_T_END] = 1, t_end_us
        while True:
            status, a, b, ticks = _stream_push(events, st, self._memory, self._xmap, self._ymap_row, self._ring, *self._flicker)
            if status == _S_OK:
                return ticks, a - b
            if status != _S_GROW:
                self._refuse(status, events, a, b, t_end_us)
            self._grow(a)

    def push(self, events: Events, t_end_us: int | None = None) -> Spikes:
        """Feed one packet (time-sorted, all ``t < t_end_us``); return the ticks it completed."""
        ticks, zeros = self.push_lazy(events, t_end_us)
        if zeros:
            ticks = np.concatenate([ticks, np.zeros((zeros, *self.spec.frame_shape), dtype=np.uint8)])
        return ticks

    def _grow(self, n_ticks: int) -> None:
        """A packet spans more ticks than the ring holds: re-lay the pending ticks in a larger ring."""
        cap = self._ring.shape[0]
        new_cap = 1 << max(2 * cap, int(n_ticks)).bit_length() - 1
        new_cap = new_cap if new_cap >= n_ticks else 2 * new_cap
        k_next, k_hi = int(self._st[_K_NEXT]), int(self._st[_K_HI])
        grown = np.zeros((new_cap, self._frame), dtype=np.uint8)
        for k in range(k_next, k_hi):
            grown[k % new_cap] = self._ring[k % cap]
        self._ring = grown

    def _refuse(self, status: int, events: Events, a: int, b: int, t_end_us: int | None) -> None:
        """Raise the PreprocessError for a packet the kernel refused (the carried state is unchanged)."""
        if status == _S_T_END:
            msg = (
                f"packet: events must be earlier than its t_end_us = {t_end_us} µs, found t = {a} µs;"
                " t_end_us is the exclusive end of the time the packet covers"
            )
        elif status == _S_OVERLAP:
            msg = (
                f"packet: first event at t = {a} µs is earlier than a previous packet's t_end_us = "
                f"{int(self._st[_T_END])} µs; packets must not overlap in time"
            )
        elif status == _S_GAP:
            msg = (
                f"packet: time jumps by {b - a} µs (from {a} to {b} µs), more than max_gap_us = "
                f"{self.max_gap_us}; the sender's clock jumped or the stream paused: start a new StreamPreprocessor"
                " (or pass max_gap_us=None to emit every empty tick)"
            )
        else:
            state = _State(self.spec)
            state.t_prev, state.n_seen = int(self._st[_T_PREV]), int(self._st[_N_SEEN])
            state.validate(self.spec, events)  # raises, naming the event
            msg = f"packet: event {a} refused"  # pragma: no cover - validate names it first
        raise PreprocessError(msg)

    def flush(self) -> Spikes:
        """Return the remaining ticks, through the one holding the last event or ending at the last ``t_end_us``."""
        st = self._st
        if not st[_T0_KNOWN]:
            return np.zeros((0, *self.spec.frame_shape), dtype=np.uint8)
        t0 = int(st[_T0])
        t_seen = max(int(st[_T_LAST]) + 1 if st[_T_LAST] > _INT64_MIN else t0, int(st[_T_END]))
        n = max(0, -((t0 - t_seen) // self.spec.dt_us) - int(st[_K_NEXT]))
        out = np.zeros((n, *self.spec.frame_shape), dtype=np.uint8)
        _drain(st, self._ring, out.reshape(n, self._frame), n)  # rows after the last one holding events stay zero
        return out


def warm_up(sensor_size: tuple[int, int] = (128, 128)) -> float:
    """Load (or compile, ~1.5 s on first use) the kernels now instead of on the first packet; returns seconds."""
    import time

    start = time.perf_counter()
    events = np.zeros(2, dtype=EVENT_DTYPE)
    for hz in ((), flicker.DEFAULT_HZ):  # the kernels with and without the anti-flicker filter
        spec = PreprocessSpec(sensor_size=sensor_size, input_size=(1, 1), mapping="scale", anti_flicker_hz=hz)
        events["t"] = [0, 2 * spec.dt_us]
        stream = StreamPreprocessor(spec)
        stream.push(events[:1])
        stream.push(events[1:])
        stream.flush()
        preprocess_recording(events, spec)
    return time.perf_counter() - start


__all__ = [
    "EVENT_DTYPE",
    "MAPPINGS",
    "PreprocessSpec",
    "StreamPreprocessor",
    "crop_box_problem",
    "denoise",
    "map_events",
    "mapping_tables",
    "preprocess_recording",
    "subject_box",
    "warm_up",
]
