"""Wire protocol v1: round trips, and every defect of hostile input is refused with its reason."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s2gesture.daemon import wire
from s2gesture.daemon.errors import ProtocolError
from s2gesture.daemon.wire import EVENT_DTYPE, EosPacket, EventPacket, decode_input, encode_eos, encode_events


def _events(n: int, seed: int = 0, width: int = 128, height: int = 128, t0: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ev = np.empty(n, dtype=EVENT_DTYPE)
    ev["x"] = rng.integers(0, width, n)
    ev["y"] = rng.integers(0, height, n)
    ev["p"] = rng.integers(0, 2, n).astype(bool)
    ev["t"] = t0 + np.sort(rng.integers(0, 50_000, n))
    return ev


def _body(frames: list[bytes]) -> dict:
    return msgpack.unpackb(frames[1], raw=False)


def _frames(body: dict, topic: bytes = b"dvs/v1/events/cam0/") -> list[bytes]:
    return [topic, msgpack.packb(body, use_bin_type=True)]


def test_events_round_trip_with_time_base() -> None:
    """Events encoded with a time base and t_end decode to the same absolute events and t_end."""
    ev = _events(500, seed=1)
    frames = encode_events("cam0", 7, 128, 128, ev, t_base=900, t_end=60_000, segment="s1")
    assert frames[0] == b"dvs/v1/events/cam0/"
    pkt = decode_input(frames)
    assert isinstance(pkt, EventPacket)
    assert (pkt.stream, pkt.seq, pkt.width, pkt.height, pkt.segment, pkt.t_end_us) == ("cam0", 7, 128, 128, "s1", 60_000)
    np.testing.assert_array_equal(pkt.events, ev)
    assert _body(frames)["t_base"] == 900


def test_empty_packet_and_eos_round_trip() -> None:
    """An empty packet (a clock tick) and an eos marker decode to what was encoded."""
    pkt = decode_input(encode_events("a.b-c_1", 0, 346, 260, _events(0), t_end=5))
    assert isinstance(pkt, EventPacket) and len(pkt.events) == 0 and pkt.t_end_us == 5
    eos = decode_input(encode_eos("cam0", 3, segment="g9"))
    assert eos == EosPacket("cam0", 3, "g9")


def test_output_round_trip() -> None:
    """Output messages round-trip through encode_output/decode_output with their topic."""
    body = {"v": 1, "state": "ready", "streams": {"cam0": {"packets": 3}}, "scores": [0.5, 1.0]}
    topic, back = wire.decode_output(wire.encode_output(wire.status_topic(), body))
    assert topic == "s2g/v1/status/" and back == body
    assert wire.pred_topic("c") == b"s2g/v1/pred/c/" and wire.gesture_topic("c") == b"s2g/v1/gesture/c/"


def _valid_body(n: int = 4) -> dict:
    return _body(encode_events("cam0", 1, 128, 128, _events(n, seed=2)))


def _mutated(**changes: object) -> dict:
    body = _valid_body()
    for key, value in changes.items():
        if value is _DEL:
            del body[key]
        else:
            body[key] = value
    return body


_DEL = object()


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        ([b"dvs/v1/events/cam0/"], "bad_frames"),
        ([b"dvs/v1/events/cam0", b""], "bad_topic"),
        ([b"dvs/v1/stuff/cam0/", b""], "bad_topic"),
        ([b"\xff\xfe/v1/events/cam0/", b""], "bad_topic"),
        ([b"dvs/v2/events/cam0/", b""], "unknown_version"),
        ([b"dvs/v1/events/bad stream/", b""], "bad_stream"),
        ([b"dvs/v1/events/cam0/", b"\xc1"], "bad_msgpack"),
        ([b"dvs/v1/events/cam0/", b"\x01\x02"], "bad_msgpack"),
        ([b"dvs/v1/events/cam0/", msgpack.packb([1, 2])], "not_a_map"),
        (_frames(_mutated(v=2)), "unknown_version"),
        (_frames(_mutated(v=True)), "bad_type"),
        (_frames(_mutated(stream="cam1")), "stream_mismatch"),
        (_frames(_mutated(seq=_DEL)), "missing_key"),
        (_frames(_mutated(seq=-1)), "bad_value"),
        (_frames(_mutated(width=0)), "bad_value"),
        (_frames(_mutated(width=2000)), "bad_value"),
        (_frames(_mutated(n=1.5)), "bad_type"),
        (_frames(_mutated(n=5)), "bad_length"),
        (_frames(_mutated(x=b"\x00" * 7)), "bad_length"),
        (_frames(_mutated(t="abc")), "bad_type"),
        (_frames(_mutated(x=np.full(4, 128, "<u2").tobytes())), "out_of_sensor"),
        (_frames(_mutated(y=np.full(4, 999, "<u2").tobytes())), "out_of_sensor"),
        (_frames(_mutated(p=bytes([0, 1, 2, 0]))), "bad_polarity"),
        (_frames(_mutated(t=np.array([5, 4, 6, 7], "<i8").tobytes())), "time_backwards"),
        (_frames(_mutated(t_end=0)), "time_backwards"),
        (_frames(_mutated(t=np.array([-5, 4, 6, 7], "<i8").tobytes())), "bad_time"),
        (_frames(_mutated(t_base=-1)), "bad_time"),
        (_frames(_mutated(n=2_000_000)), "oversize"),
        (_frames(_mutated(segment="x" * 500)), "bad_value"),
        ([b"dvs/v1/events/cam0/", b"\x00" * (17 * 1024 * 1024)], "oversize"),
    ],
)
def test_defects_are_refused_with_their_reason(frames: list[bytes], reason: str) -> None:
    """Each kind of defect raises ProtocolError with the reason that names it."""
    with pytest.raises(ProtocolError) as info:
        decode_input(frames)
    assert info.value.reason == reason, str(info.value)
    assert info.value.reason in wire.REASONS


def test_unknown_keys_are_ignored() -> None:
    """Consumers ignore unknown keys: an extra key does not make a packet invalid."""
    pkt = decode_input(_frames(_mutated(camera_model="DVXplorer", extra={"a": 1})))
    assert isinstance(pkt, EventPacket) and len(pkt.events) == 4


def test_topic_stream_helper() -> None:
    """topic_stream gives the stream id of a valid input topic and None otherwise."""
    assert wire.topic_stream(b"dvs/v1/eos/cam7/") == "cam7"
    assert wire.topic_stream(b"junk") is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topic=st.binary(max_size=40), body=st.binary(max_size=400))
def test_random_bytes_never_escape_as_other_errors(topic: bytes, body: bytes) -> None:
    """Random topic and body bytes either decode or raise ProtocolError with a known reason."""
    try:
        decode_input([topic, body])
    except ProtocolError as exc:
        assert exc.reason in wire.REASONS
    with pytest.raises(ProtocolError):
        decode_input([b"dvs/v1/events/cam0/", body + b"\xc1"])


_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(), st.text(max_size=20),
    st.binary(max_size=40), st.lists(st.integers(-100, 100), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(-100, 100), max_size=3),
)


@settings(max_examples=400, deadline=None)
@given(
    n=st.integers(0, 8),
    key=st.sampled_from(["v", "stream", "seq", "width", "height", "t_base", "n", "x", "y", "p", "t", "t_end", "segment", "zz"]),
    value=_VALUES,
    delete=st.booleans(),
)
def test_structured_mutations_are_refused_or_valid(n: int, key: str, value: object, delete: bool) -> None:
    """A valid packet with one key replaced or removed either decodes consistently or is refused by reason."""
    body = _valid_body(n)
    if delete:
        body.pop(key, None)
    else:
        body[key] = value
    try:
        pkt = decode_input(_frames(body))
    except ProtocolError as exc:
        assert exc.reason in wire.REASONS
        return
    if isinstance(pkt, EventPacket):
        assert len(pkt.events) == body["n"]
        assert np.all(pkt.events["x"] < pkt.width) and np.all(pkt.events["y"] < pkt.height)
        assert np.all(np.diff(pkt.events["t"]) >= 0)


def test_t_end_at_the_last_event_is_accepted_and_before_it_is_not() -> None:
    """t_end equal to the last event (inclusive reading) decodes as no promise; earlier than it is time_backwards."""
    ev = _events(20)
    last = int(ev["t"][-1])
    pkt = decode_input(encode_events("cam", 0, 128, 128, ev, t_end=last))
    assert isinstance(pkt, EventPacket) and pkt.t_end_us is None and len(pkt.events) == len(ev)
    with pytest.raises(ProtocolError) as info:
        decode_input(encode_events("cam", 0, 128, 128, ev, t_end=last - 1))
    assert info.value.reason == "time_backwards"
