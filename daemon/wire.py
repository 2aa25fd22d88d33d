"""Wire protocol v1: ZeroMQ multipart ``[topic, body]`` with one msgpack map per body (docs/protocol.md).

Encoders build what cameras, replay clients and the daemon send; ``decode_input`` is the daemon's gate
for untrusted input: it checks every field and raises :class:`ProtocolError` whose ``reason`` is the
drop-counter key (``bad_topic``, ``bad_msgpack``, ``not_a_map``, ``missing_key``, ``bad_type``,
``unknown_version``, ``bad_stream``, ``stream_mismatch``, ``bad_value``, ``bad_length``, ``out_of_sensor``,
``bad_polarity``, ``bad_time``, ``time_backwards``, ``oversize``, ``bad_frames``).

Time: the absolute time of an event is ``t_base + t`` microseconds; the optional ``t_end`` is on the same
axis as ``t`` (absolute ``t_base + t_end``) and exclusive: every event of the packet is earlier, and the
next packet's events are not earlier. A ``t_end`` equal to the last event's time (the inclusive reading)
is accepted and decodes as no ``t_end``; one before the last event is dropped as ``time_backwards``.
Decoded packets carry absolute times only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
import numpy as np

from .errors import ProtocolError
from .events import EVENT_DTYPE

VERSION = 1

EVENTS_PREFIX = "dvs/v1/events/"
EOS_PREFIX = "dvs/v1/eos/"
#: what a daemon's input socket subscribes to: every v1 input topic
INPUT_PREFIX = "dvs/v1/"
PRED_PREFIX = "s2g/v1/pred/"
GESTURE_PREFIX = "s2g/v1/gesture/"
STATUS_TOPIC = "s2g/v1/status/"
#: what a consumer subscribes to for every v1 output
OUTPUT_PREFIX = "s2g/v1/"

STREAM_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_SEGMENT_CHARS = 128
#: sensor sides above this do not fit the int16 x/y of EVENT_DTYPE
MAX_SENSOR_SIDE = 32767
#: absolute times stay far from int64 overflow so t_base + t and window arithmetic cannot wrap
MAX_TIME_US = 1 << 62
REASONS = (
    "bad_frames",
    "oversize",
    "bad_topic",
    "unknown_version",
    "bad_msgpack",
    "not_a_map",
    "missing_key",
    "bad_type",
    "bad_value",
    "bad_stream",
    "stream_mismatch",
    "bad_length",
    "out_of_sensor",
    "bad_polarity",
    "bad_time",
    "time_backwards",
)


@dataclass(frozen=True)
class WireLimits:
    """Bounds on one untrusted input message (the socket's ZMQ_MAXMSGSIZE should equal ``max_message_bytes``)."""

    max_message_bytes: int = 16 * 1024 * 1024
    max_events: int = 1_000_000
    max_keys: int = 64
    #: largest sensor side accepted: per-stream denoise memory grows with width x height
    max_sensor_side: int = 1280


DEFAULT_LIMITS = WireLimits()


# not frozen: a frozen dataclass sets each field through object.__setattr__, ~3 µs per packet at 1 kHz
@dataclass(eq=False, slots=True)
class EventPacket:
    """A validated event packet; ``events`` is an EVENT_DTYPE array with absolute ``t`` in µs (treat as read-only)."""

    stream: str
    seq: int
    width: int
    height: int
    events: np.ndarray
    #: absolute µs time the packet covers up to (``t_base + t_end``), or None when not sent
    t_end_us: int | None = None
    segment: str | None = None


@dataclass(frozen=True)
class EosPacket:
    """End of a recording or segment: classify what the stream holds and publish a final decision."""

    stream: str
    seq: int
    segment: str | None = None


# ----------------------------------------------------------------------------------------------- topics


def _check_stream(stream: str) -> None:
    if not isinstance(stream, str) or not STREAM_RE.fullmatch(stream):
        msg = f"stream id {stream!r} is not valid; expected 1-64 characters of [A-Za-z0-9_.-]"
        raise ProtocolError("bad_stream", msg)


def events_topic(stream: str) -> bytes:
    """Topic of event packets of ``stream``."""
    _check_stream(stream)
    return f"{EVENTS_PREFIX}{stream}/".encode()


def eos_topic(stream: str) -> bytes:
    """Topic of end-of-stream markers of ``stream``."""
    _check_stream(stream)
    return f"{EOS_PREFIX}{stream}/".encode()


def pred_topic(stream: str) -> bytes:
    """Topic of per-chunk predictions of ``stream``."""
    _check_stream(stream)
    return f"{PRED_PREFIX}{stream}/".encode()


def gesture_topic(stream: str) -> bytes:
    """Topic of gesture decisions of ``stream``."""
    _check_stream(stream)
    return f"{GESTURE_PREFIX}{stream}/".encode()


def status_topic() -> bytes:
    """Topic of the daemon's status heartbeat."""
    return STATUS_TOPIC.encode()


# --------------------------------------------------------------------------------------------- encoders


def _pack(body: Mapping[str, Any]) -> bytes:
    return msgpack.packb(body, use_bin_type=True)  # type: ignore[no-any-return]


def encode_events(
    stream: str,
    seq: int,
    width: int,
    height: int,
    events: np.ndarray,
    *,
    t_base: int = 0,
    t_end: int | None = None,
    segment: str | None = None,
) -> list[bytes]:
    """Multipart ``[topic, body]`` of one event packet; ``events`` has absolute ``t`` (µs), ``t_end`` is absolute too."""
    _check_stream(stream)
    events = np.asarray(events)
    if events.dtype.names is None or not {"x", "y", "p", "t"} <= set(events.dtype.names):
        msg = f"events must be a structured array with fields x, y, p, t (EVENT_DTYPE), found dtype {events.dtype}"
        raise ProtocolError("bad_type", msg)
    t_rel = events["t"].astype("<i8") - int(t_base)
    body: dict[str, Any] = {
        "v": VERSION,
        "stream": stream,
        "seq": int(seq),
        "width": int(width),
        "height": int(height),
        "t_base": int(t_base),
        "n": len(events),
        "x": events["x"].astype("<u2").tobytes(),
        "y": events["y"].astype("<u2").tobytes(),
        "p": events["p"].astype("u1").tobytes(),
        "t": t_rel.tobytes(),
    }
    if t_end is not None:
        body["t_end"] = int(t_end) - int(t_base)
    if segment is not None:
        body["segment"] = segment
    return [events_topic(stream), _pack(body)]


def encode_eos(stream: str, seq: int, segment: str | None = None) -> list[bytes]:
    """Multipart ``[topic, body]`` of an end-of-stream marker."""
    body: dict[str, Any] = {"v": VERSION, "stream": stream, "seq": int(seq)}
    if segment is not None:
        body["segment"] = segment
    return [eos_topic(stream), _pack(body)]


def encode_output(topic: bytes | str, body: Mapping[str, Any]) -> list[bytes]:
    """Multipart ``[topic, body]`` of a daemon output message (pred, gesture, status)."""
    return [topic.encode() if isinstance(topic, str) else bytes(topic), _pack(body)]


def decode_output(frames: Sequence[bytes]) -> tuple[str, dict[str, Any]]:
    """``(topic, body)`` of a daemon output message (trusted peer: no field validation)."""
    if len(frames) != 2:
        msg = f"an output message has 2 frames [topic, body], found {len(frames)}"
        raise ProtocolError("bad_frames", msg)
    try:
        topic = bytes(frames[0]).decode("ascii")
        body = msgpack.unpackb(bytes(frames[1]), raw=False)
    except Exception as exc:  # msgpack raises several unrelated types
        msg = f"output message is not ascii topic + msgpack body: {type(exc).__name__}: {exc}"
        raise ProtocolError("bad_msgpack", msg) from exc
    if not isinstance(body, dict):
        msg = f"output body must be a msgpack map, found {type(body).__name__}"
        raise ProtocolError("not_a_map", msg)
    return topic, body


# --------------------------------------------------------------------------------------------- decoding


def _require(body: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    if key not in body:
        msg = f"packet has no key {key!r} ({what})"
        raise ProtocolError("missing_key", msg)
    value = body[key]
    # bool is an int subclass in Python: a msgpack true is never a valid count or coordinate
    if isinstance(value, bool) or not isinstance(value, kind):
        msg = f"key {key!r} must be {what}, found {type(value).__name__}"
        raise ProtocolError("bad_type", msg)
    return value


def _int(body: Mapping[str, Any], key: str, what: str) -> int:
    """An int key; the common case is one dict lookup and one type test (msgpack gives exact ints)."""
    value = body.get(key)
    if type(value) is int:
        return value
    return int(_require(body, key, int, what))


def _optional(body: Mapping[str, Any], key: str, kind: type, what: str) -> Any:
    if body.get(key) is None:
        return None
    return _require(body, key, kind, what)


def _topic_of(frame: bytes) -> tuple[str, str]:
    """``(kind, stream)`` of an input topic; kind is "events" or "eos"."""
    try:
        topic = frame.decode("ascii")
    except UnicodeDecodeError as exc:
        msg = f"topic {frame[:80]!r} is not ASCII"
        raise ProtocolError("bad_topic", msg) from exc
    parts = topic.split("/")
    # "dvs/v1/events/<stream>/" splits into ["dvs", "v1", "events", stream, ""]
    if len(parts) != 5 or parts[0] != "dvs" or parts[4] != "":
        msg = f"topic {topic[:80]!r} is not dvs/v1/events/<stream>/ or dvs/v1/eos/<stream>/"
        raise ProtocolError("bad_topic", msg)
    if parts[1] != f"v{VERSION}":
        msg = f"topic {topic[:80]!r} has version {parts[1]!r}; this daemon speaks v{VERSION}"
        raise ProtocolError("unknown_version", msg)
    if parts[2] not in ("events", "eos"):
        msg = f"topic {topic[:80]!r}: kind {parts[2]!r} is not 'events' or 'eos'"
        raise ProtocolError("bad_topic", msg)
    if not STREAM_RE.fullmatch(parts[3]):
        msg = f"topic {topic[:80]!r}: stream id {parts[3][:80]!r} is not 1-64 characters of [A-Za-z0-9_.-]"
        raise ProtocolError("bad_stream", msg)
    return parts[2], parts[3]


#: a valid input topic in one match (the byte-level twin of _topic_of, which names what is wrong)
_TOPIC_RE = re.compile(rb"dvs/v1/(events|eos)/([A-Za-z0-9_.-]{1,64})/")


def _topic_fast(frame: bytes) -> tuple[str, str]:
    m = _TOPIC_RE.fullmatch(frame)
    if m is None:
        return _topic_of(frame)  # raises with the reason
    return m[1].decode(), m[2].decode()


def topic_stream(frame: bytes) -> str | None:
    """The stream id of an input topic, or None when the topic is not valid (for counting drops per stream)."""
    m = _TOPIC_RE.fullmatch(frame) if type(frame) is bytes else None
    if m is not None:
        return m[2].decode()
    try:
        return _topic_of(bytes(frame))[1]
    except ProtocolError:
        return None


def decode_input(frames: Sequence[bytes], limits: WireLimits = DEFAULT_LIMITS) -> EventPacket | EosPacket:
    """Validate and decode one input message; raises ProtocolError(reason, message) on any defect."""
    if len(frames) != 2:
        msg = f"an input message has 2 frames [topic, body], found {len(frames)}"
        raise ProtocolError("bad_frames", msg)
    topic_frame, body_frame = bytes(frames[0]), frames[1]
    size = len(topic_frame) + len(body_frame)
    if size > limits.max_message_bytes:
        msg = f"message of {size} bytes exceeds the limit of {limits.max_message_bytes} bytes"
        raise ProtocolError("oversize", msg)
    kind, topic_stream_id = _topic_fast(topic_frame)
    try:
        body = msgpack.unpackb(
            body_frame,
            raw=False,
            max_bin_len=limits.max_events * 8,
            max_str_len=4096,
            max_array_len=limits.max_keys,
            max_map_len=limits.max_keys,
            max_ext_len=0,
            strict_map_key=True,
        )
    except Exception as exc:  # ExtraData, FormatError, StackError, ValueError, UnicodeDecodeError, ...
        msg = f"body is not one valid msgpack object: {type(exc).__name__}: {str(exc)[:120]}"
        raise ProtocolError("bad_msgpack", msg) from exc
    if type(body) is not dict:
        msg = f"body must be a msgpack map, found {type(body).__name__}"
        raise ProtocolError("not_a_map", msg)
    v = _int(body, "v", "the protocol version, an int")
    if v != VERSION:
        msg = f"packet version v={v}; this daemon speaks v{VERSION}"
        raise ProtocolError("unknown_version", msg)
    stream = body.get("stream")
    if type(stream) is not str:
        stream = _require(body, "stream", str, "the stream id, a str")
    if stream != topic_stream_id:
        msg = f"body stream {stream[:80]!r} differs from the topic's stream {topic_stream_id!r}"
        raise ProtocolError("stream_mismatch", msg)
    seq = _int(body, "seq", "the packet counter, an int")
    if not 0 <= seq < 1 << 63:
        msg = f"seq must be in [0, 2**63), found {seq}"
        raise ProtocolError("bad_value", msg)
    segment = body.get("segment")
    if segment is not None:
        segment = _require(body, "segment", str, "a segment id, a str")
        if len(segment) > MAX_SEGMENT_CHARS:
            msg = f"segment id has {len(segment)} characters, the limit is {MAX_SEGMENT_CHARS}"
            raise ProtocolError("bad_value", msg)
    if kind == "eos":
        return EosPacket(stream=stream, seq=seq, segment=segment)
    return _decode_events(body, stream, seq, segment, limits)


#: (key, bytes per value) of the packed event fields, in the order the fill kernel takes them
_FIELDS = (("x", 2), ("y", 2), ("p", 1), ("t", 8))
_FILL: list[Any] = []


def _fill_kernel() -> Any:
    """The one pass over a packet's packed fields: check each event as it is written into EVENT_DTYPE.

    Returns ``(status, index, a, b)``: 0 when every event was written; otherwise the first defect
    (1 out of the sensor: a, b = x, y; 2 polarity: a = p; 3 absolute time out of range: a = relative t;
    4 time going backwards: a, b = t, the previous t). Reading the little-endian bytes directly costs
    no ``np.frombuffer`` views and no temporaries: at 27 events per 1 ms packet the per-call costs of
    numpy (four views, three reductions, a diff and a comparison) were most of a packet's decode.
    Compiled on first use: importing the wire module (the clients do) needs no numba.
    """
    if not _FILL:
        import numba

        @numba.njit(cache=True, nogil=True, boundscheck=False)  # type: ignore[misc]
        def fill(xb: Any, yb: Any, pb: Any, tb: Any, width: Any, height: Any, t_base: Any, t_lo: Any, t_hi: Any,
                 out: Any) -> Any:
            prev = t_lo
            for i in range(out.shape[0]):
                x = np.int64(xb[2 * i]) | (np.int64(xb[2 * i + 1]) << 8)
                y = np.int64(yb[2 * i]) | (np.int64(yb[2 * i + 1]) << 8)
                if x >= width or y >= height:
                    return 1, i, x, y
                p = pb[i]
                if p > 1:
                    return 2, i, np.int64(p), 0
                t = np.int64(0)
                for k in range(8):
                    t |= np.int64(tb[8 * i + k]) << (8 * k)
                if t < t_lo or t >= t_hi:
                    return 3, i, t, 0
                if t < prev:
                    return 4, i, t, prev
                prev = t
                out[i].x = x
                out[i].y = y
                out[i].p = p != 0
                out[i].t = t + t_base
            return 0, 0, 0, 0

        _FILL.append(fill)
    return _FILL[0]


def warm_up() -> None:
    """Load (or compile) the decode kernel now, not on the first live packet."""
    decode_input(encode_events("warm", 0, 2, 2, np.zeros(2, dtype=EVENT_DTYPE), t_end=1))


def _decode_events(
    body: Mapping[str, Any], stream: str, seq: int, segment: str | None, limits: WireLimits
) -> EventPacket:
    width = _int(body, "width", "the sensor width in pixels, an int")
    height = _int(body, "height", "the sensor height in pixels, an int")
    max_side = min(limits.max_sensor_side, MAX_SENSOR_SIDE)
    if not (1 <= width <= max_side and 1 <= height <= max_side):
        key, side = ("width", width) if not 1 <= width <= max_side else ("height", height)
        msg = f"{key} must be in [1, {max_side}] pixels, found {side}"
        raise ProtocolError("bad_value", msg)
    t_base = _int(body, "t_base", "the time base in µs, an int")
    if not 0 <= t_base < MAX_TIME_US:
        msg = f"t_base must be in [0, 2**62) µs, found {t_base}"
        raise ProtocolError("bad_time", msg)
    n = _int(body, "n", "the number of events, an int")
    if n < 0:
        msg = f"n must be >= 0, found {n}"
        raise ProtocolError("bad_value", msg)
    if n > limits.max_events:
        msg = f"packet has n={n} events, the limit is {limits.max_events}; send smaller packets"
        raise ProtocolError("oversize", msg)
    raws = []
    for key, itemsize in _FIELDS:
        raw = body.get(key)
        if type(raw) is not bytes:
            raw = _require(body, key, bytes, f"{n} packed values, msgpack bin")
        if len(raw) != n * itemsize:
            msg = f"key {key!r} has {len(raw)} bytes; n={n} events need {n * itemsize}"
            raise ProtocolError("bad_length", msg)
        raws.append(raw)
    t_end_rel = body.get("t_end")
    if t_end_rel is not None and type(t_end_rel) is not int:
        t_end_rel = _require(body, "t_end", int, "the time the packet covers up to in µs, an int")
    # the only copy of the events: straight from the message's bytes into the array the stream keeps
    events = np.empty(n, dtype=EVENT_DTYPE)
    if n:
        status, i, a, b = _fill_kernel()(*raws, width, height, t_base, -t_base, MAX_TIME_US - t_base, events)
        if status:
            _refuse_event(status, i, a, b, width, height, t_base)
    t_end_us = None
    if t_end_rel is not None:
        t_end_us = t_base + t_end_rel
        if not 0 <= t_end_us < MAX_TIME_US:
            msg = f"t_base + t_end must lie in [0, 2**62) µs, found {t_end_us}"
            raise ProtocolError("bad_time", msg)
        t_last = int(events[-1]["t"]) if n else None
        if t_last is not None and t_end_us < t_last:
            msg = (
                f"t_end {t_end_us} µs is before the packet's last event at {t_last} µs; "
                "t_end is the end of the time the packet covers"
            )
            raise ProtocolError("time_backwards", msg)
        if t_end_us == t_last:
            # an inclusive reading of "covers time up to here" (t_end = the last event): it promises nothing
            # beyond the events themselves, since later packets may still carry events at that microsecond
            t_end_us = None
    return EventPacket(
        stream=stream, seq=seq, width=width, height=height, events=events, t_end_us=t_end_us, segment=segment
    )


def _refuse_event(status: int, i: int, a: int, b: int, width: int, height: int, t_base: int) -> None:
    """The ProtocolError for the first defective event the fill kernel found."""
    if status == 1:
        msg = f"event {i} at ({a}, {b}) lies outside the {width}x{height} sensor"
        raise ProtocolError("out_of_sensor", msg)
    if status == 2:
        msg = f"event {i}: polarity must be 0 or 1, found {a}"
        raise ProtocolError("bad_polarity", msg)
    if status == 3:
        msg = f"event {i}: absolute time t_base + t = {t_base + a} µs; event times must lie in [0, 2**62) µs"
        raise ProtocolError("bad_time", msg)
    msg = f"event {i}: t = {a} µs after {b} µs: event times go backwards within the packet; t must be non-decreasing"
    raise ProtocolError("time_backwards", msg)


# ------------------------------------------------------------------------------------- typed output
#
# The daemon's three output messages as frozen records. ``to_body`` is what the daemon sends;
# ``from_body`` is what every client reads: it checks each key it knows (type, range) and ignores keys it
# does not know, so adding an optional key stays compatible (docs/protocol.md, "versioning").

_MISSING = object()


def _field(body: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str, default: Any = _MISSING) -> Any:
    """One key of an output body, type-checked; ``default`` makes it optional (absent or None)."""
    value: Any = body.get(key)
    if value is None:
        if default is not _MISSING:
            return default
        msg = f"output message has no key {key!r} ({what})"
        raise ProtocolError("missing_key", msg)
    accepted = kind if isinstance(kind, tuple) else (kind,)
    # bool is an int subclass: a msgpack true is never a count; an int is a valid float
    if (isinstance(value, bool) and bool not in accepted) or not isinstance(value, accepted):
        if float in accepted and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        msg = f"output key {key!r} must be {what}, found {type(value).__name__}"
        raise ProtocolError("bad_type", msg)
    if accepted == (float, int):
        number: float = body[key]
        return float(number)
    return value


def _check_v(body: Mapping[str, Any]) -> None:
    v = _field(body, "v", int, "the protocol version, an int")
    if v != VERSION:
        msg = f"output message version v={v}; this client speaks v{VERSION}"
        raise ProtocolError("unknown_version", msg)


def _model_of(body: Mapping[str, Any]) -> dict[str, Any]:
    model = _field(body, "model", dict, "the model identity, a map", default={})
    return dict(model)


def _confidence(body: Mapping[str, Any]) -> float:
    c = _field(body, "confidence", (float, int), "a confidence in [0, 1], a float")
    if not 0.0 <= c <= 1.0:
        msg = f"confidence must be in [0, 1], found {c}"
        raise ProtocolError("bad_value", msg)
    return float(c)


@dataclass(frozen=True)
class Pred:
    """``s2g/v1/pred/<stream>/``: the class scores of one chunk (one backend run, or several when split)."""

    stream: str
    seq: int
    chunk: int
    t_start: int
    t_end: int
    scores: tuple[float, ...]
    class_id: int
    label: str
    confidence: float
    latency_ms: float
    backend: str
    model: dict[str, Any]
    segment: str | None = None
    #: backend runs this window took: > 1 when its spikes did not fit the chip in one run
    runs: int = 1

    def topic(self) -> bytes:
        """The message's topic."""
        return pred_topic(self.stream)

    def to_body(self) -> dict[str, Any]:
        """The msgpack map the daemon sends."""
        body: dict[str, Any] = {
            "v": VERSION,
            "stream": self.stream,
            "seq": self.seq,
            "chunk": self.chunk,
            "t_start": self.t_start,
            "t_end": self.t_end,
            "scores": list(self.scores),
            "class_id": self.class_id,
            "label": self.label,
            "confidence": self.confidence,
            "latency_ms": self.latency_ms,
            "backend": self.backend,
            "model": self.model,
            "runs": self.runs,
        }
        if self.segment is not None:
            body["segment"] = self.segment
        return body

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Pred:
        """Validate and read a pred body; raises ProtocolError naming the key."""
        _check_v(body)
        scores = _field(body, "scores", list, "one score per class, a list of floats")
        if not all(isinstance(s, int | float) and not isinstance(s, bool) for s in scores):
            msg = "output key 'scores' must hold only numbers"
            raise ProtocolError("bad_type", msg)
        runs = _field(body, "runs", int, "the number of backend runs, an int", default=1)
        if runs < 1:
            msg = f"runs must be >= 1, found {runs}"
            raise ProtocolError("bad_value", msg)
        return cls(
            stream=_field(body, "stream", str, "the stream id, a str"),
            seq=_field(body, "seq", int, "the last input packet's seq, an int"),
            chunk=_field(body, "chunk", int, "the stream's chunk counter, an int", default=0),
            t_start=_field(body, "t_start", int, "the window start in µs, an int"),
            t_end=_field(body, "t_end", int, "the window end in µs, an int"),
            scores=tuple(float(s) for s in scores),
            class_id=_field(body, "class_id", int, "the top class (-1: no evidence), an int"),
            label=_field(body, "label", str, "the top class's label, a str"),
            confidence=_confidence(body),
            latency_ms=_field(body, "latency_ms", (float, int), "the receive-to-publish latency in ms", default=0.0),
            backend=_field(body, "backend", str, "the backend name, a str", default=""),
            model=_model_of(body),
            segment=_field(body, "segment", str, "the segment id, a str", default=None),
            runs=runs,
        )


@dataclass(frozen=True)
class Gesture:
    """``s2g/v1/gesture/<stream>/``: a decision: an onset (``final`` false) or a segment's final answer."""

    stream: str
    seq: int
    class_id: int
    label: str
    confidence: float
    t_start: int | None
    t_end: int | None
    final: bool
    n_chunks: int
    backend: str
    model: dict[str, Any]
    segment: str | None = None

    def topic(self) -> bytes:
        """The message's topic."""
        return gesture_topic(self.stream)

    def to_body(self) -> dict[str, Any]:
        """The msgpack map the daemon sends."""
        body: dict[str, Any] = {
            "v": VERSION,
            "stream": self.stream,
            "seq": self.seq,
            "class_id": self.class_id,
            "label": self.label,
            "confidence": self.confidence,
            "t_start": self.t_start,
            "t_end": self.t_end,
            "final": self.final,
            "n_chunks": self.n_chunks,
            "backend": self.backend,
            "model": self.model,
        }
        if self.segment is not None:
            body["segment"] = self.segment
        return body

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Gesture:
        """Validate and read a gesture body; raises ProtocolError naming the key."""
        _check_v(body)
        return cls(
            stream=_field(body, "stream", str, "the stream id, a str"),
            seq=_field(body, "seq", int, "the last input packet's seq, an int"),
            class_id=_field(body, "class_id", int, "the class (-1: none), an int"),
            label=_field(body, "label", str, "the class label, a str"),
            confidence=_confidence(body),
            t_start=_field(body, "t_start", int, "the evidence start in µs, an int", default=None),
            t_end=_field(body, "t_end", int, "the evidence end in µs, an int", default=None),
            final=_field(body, "final", bool, "whether this is the segment's final decision, a bool", default=False),
            n_chunks=_field(body, "n_chunks", int, "the chunks behind the decision, an int", default=0),
            backend=_field(body, "backend", str, "the backend name, a str", default=""),
            model=_model_of(body),
            segment=_field(body, "segment", str, "the segment id, a str", default=None),
        )


#: daemon states a status can report
STATES = ("loading", "ready", "reloading", "degraded", "stopping")


@dataclass(frozen=True)
class Status:
    """``s2g/v1/status/``: the heartbeat: state, backend, model, per-stream counters, latency."""

    state: str
    uptime_s: float
    backend: str
    model: dict[str, Any] | None
    streams: dict[str, dict[str, Any]]
    totals: dict[str, Any]
    latency_ms: dict[str, float]
    inference_ms: dict[str, float]
    mode: str
    window_ticks: int | None
    stride_ticks: int | None
    pid: int
    version: str
    error: str | None = None
    #: backend health counters: windows split into several runs, backend failures, rebuilds
    backend_counters: dict[str, int] | None = None

    def topic(self) -> bytes:
        """The message's topic."""
        return status_topic()

    def to_body(self) -> dict[str, Any]:
        """The msgpack map the daemon sends."""
        body: dict[str, Any] = {
            "v": VERSION,
            "state": self.state,
            "uptime_s": self.uptime_s,
            "backend": self.backend,
            "model": self.model,
            "streams": self.streams,
            "totals": self.totals,
            "latency_ms": self.latency_ms,
            "inference_ms": self.inference_ms,
            "mode": self.mode,
            "window_ticks": self.window_ticks,
            "stride_ticks": self.stride_ticks,
            "pid": self.pid,
            "version": self.version,
        }
        if self.error is not None:  # an empty error string is still sent: it must read back the same
            body["error"] = self.error
        if self.backend_counters is not None:
            body["backend_counters"] = self.backend_counters
        return body

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Status:
        """Validate and read a status body; raises ProtocolError naming the key."""
        _check_v(body)
        state = _field(body, "state", str, f"the daemon state, one of {STATES}")
        if state not in STATES:
            msg = f"state must be one of {STATES}, found {state[:40]!r}"
            raise ProtocolError("bad_value", msg)
        streams = _field(body, "streams", dict, "per-stream counters, a map", default={})
        if not all(isinstance(k, str) and isinstance(v, dict) for k, v in streams.items()):
            msg = "output key 'streams' must map stream ids to maps of counters"
            raise ProtocolError("bad_type", msg)
        model = body.get("model")
        if model is not None and not isinstance(model, dict):
            msg = f"output key 'model' must be a map or nil, found {type(model).__name__}"
            raise ProtocolError("bad_type", msg)
        return cls(
            state=state,
            uptime_s=_field(body, "uptime_s", (float, int), "seconds since start, a float", default=0.0),
            backend=_field(body, "backend", str, "the backend name, a str", default=""),
            model=None if model is None else dict(model),
            streams={k: dict(v) for k, v in streams.items()},
            totals=dict(_field(body, "totals", dict, "totals, a map", default={})),
            latency_ms=dict(_field(body, "latency_ms", dict, "latency percentiles in ms, a map", default={})),
            inference_ms=dict(_field(body, "inference_ms", dict, "inference percentiles in ms, a map", default={})),
            mode=_field(body, "mode", str, "the input mode, a str", default=""),
            window_ticks=_field(body, "window_ticks", int, "the window in ticks, an int", default=None),
            stride_ticks=_field(body, "stride_ticks", int, "the stride in ticks, an int", default=None),
            pid=_field(body, "pid", int, "the daemon's process id, an int", default=0),
            version=_field(body, "version", str, "the daemon's version, a str", default=""),
            error=_field(body, "error", str, "the last backend error, a str", default=None),
            backend_counters=_field(body, "backend_counters", dict, "backend counters, a map", default=None),
        )

    @property
    def model_name(self) -> str:
        """The model's name from its identity ("?" when unknown)."""
        return str((self.model or {}).get("name", "?"))


Output = Pred | Gesture | Status


def encode_message(message: Output) -> list[bytes]:
    """Multipart ``[topic, body]`` of a typed output message."""
    return [message.topic(), _pack(message.to_body())]


def decode_message(frames: Sequence[bytes]) -> Output:
    """A typed output message from its frames; raises ProtocolError for anything else (foreign or malformed)."""
    topic, body = decode_output(frames)
    if topic.startswith(PRED_PREFIX):
        message: Pred | Gesture = Pred.from_body(body)
    elif topic.startswith(GESTURE_PREFIX):
        message = Gesture.from_body(body)
    elif topic == STATUS_TOPIC:
        return Status.from_body(body)
    else:
        msg = f"topic {topic[:80]!r} is not an s2g/v1 pred, gesture or status topic"
        raise ProtocolError("bad_topic", msg)
    if message.topic().decode() != topic:
        msg = f"body stream {message.stream[:80]!r} differs from the topic {topic[:80]!r}"
        raise ProtocolError("stream_mismatch", msg)
    return message
