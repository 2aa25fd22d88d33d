"""The typed output records (wire.Pred, wire.Gesture, wire.Status): round trips, validation, fuzzed bodies."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2gesture.daemon import wire
from s2gesture.daemon.errors import ProtocolError

MODEL = {"name": "psnn_int8", "hash": "0123456789abcdef", "classes": ["a", "b", "c"]}

PRED = wire.Pred(
    stream="cam0", seq=41, chunk=7, t_start=1_200_000, t_end=1_800_000, scores=(0.125, 0.75, 0.125), class_id=1,
    label="b", confidence=0.75, latency_ms=3.25, backend="emulator", model=MODEL, segment="00003-u24", runs=2,
)  # fmt: skip
GESTURE = wire.Gesture(
    stream="cam0", seq=42, class_id=2, label="c", confidence=0.5, t_start=600_000, t_end=1_800_000, final=True,
    n_chunks=3, backend="emulator", model=MODEL, segment="00003-u24",
)  # fmt: skip
STATUS = wire.Status(
    state="degraded", uptime_s=12.5, backend="emulator", model=MODEL,
    streams={"cam0": {"packets": 10, "events": 2000, "dropped": {"lag": 1}}}, totals={"packets": 10},
    latency_ms={"p50": 3.0, "p99": 9.0}, inference_ms={"p50": 2.0}, mode="lossless", window_ticks=600,
    stride_ticks=300, pid=1234, version="0.1.0", error="spike buffer overflow", backend_counters={"split": 4},
)  # fmt: skip
RECORDS: list[wire.Output] = [PRED, GESTURE, STATUS]


def _frames_through_msgpack(message: wire.Output) -> list[bytes]:
    """The frames as a peer receives them (bytes, copied)."""
    return [bytes(f) for f in wire.encode_message(message)]


@pytest.mark.parametrize("message", RECORDS, ids=lambda m: type(m).__name__)
def test_each_record_round_trips_through_its_frames(message: wire.Output) -> None:
    """encode_message then decode_message gives back an equal record of the same type on the same topic."""
    frames = _frames_through_msgpack(message)
    assert frames[0] == message.topic()
    back = wire.decode_message(frames)
    assert type(back) is type(message) and back == message


@pytest.mark.parametrize("message", RECORDS, ids=lambda m: type(m).__name__)
def test_optional_keys_are_left_out_and_default_on_decode(message: wire.Output) -> None:
    """A record with its optional fields unset encodes without them and decodes to the same defaults."""
    if isinstance(message, wire.Status):
        bare: wire.Output = dataclasses.replace(message, error=None, backend_counters=None)
        absent = {"error", "backend_counters"}
    else:
        bare = dataclasses.replace(message, segment=None)
        absent = {"segment"}
    body = bare.to_body()
    assert absent.isdisjoint(body)
    assert type(bare).from_body(body) == bare


def test_pred_without_runs_decodes_as_one_run() -> None:
    """A pred from a daemon that does not send ``runs`` yet reads as a single backend run."""
    body = PRED.to_body()
    del body["runs"]
    assert wire.Pred.from_body(body).runs == 1


@pytest.mark.parametrize("message", RECORDS, ids=lambda m: type(m).__name__)
def test_unknown_keys_are_ignored(message: wire.Output) -> None:
    """A newer daemon's extra keys do not stop an older client: the record decodes as without them."""
    body = {**message.to_body(), "thinned": 0.4, "future_map": {"x": [1, 2]}, "zz": None}
    assert type(message).from_body(body) == message


@pytest.mark.parametrize(
    ("message", "key", "value", "reason"),
    [
        (PRED, "confidence", 1.5, "bad_value"),
        (PRED, "scores", [0.1, "x"], "bad_type"),
        (PRED, "runs", 0, "bad_value"),
        (PRED, "seq", True, "bad_type"),
        (GESTURE, "label", 3, "bad_type"),
        (GESTURE, "final", "yes", "bad_type"),
        (GESTURE, "v", 2, "unknown_version"),
        (STATUS, "state", "on fire", "bad_value"),
        (STATUS, "streams", {"cam0": 3}, "bad_type"),
    ],
)
def test_bad_values_are_refused_naming_the_key(message: wire.Output, key: str, value: Any, reason: str) -> None:
    """A wrong type or range is a ProtocolError whose reason is the drop key and whose text names the field."""
    body = {**message.to_body(), key: value}
    with pytest.raises(ProtocolError) as info:
        type(message).from_body(body)
    assert info.value.reason == reason
    assert key in str(info.value) or reason == "unknown_version"


def test_missing_required_key_is_named() -> None:
    """A gesture without its label is refused as missing_key, naming 'label'."""
    body = GESTURE.to_body()
    del body["label"]
    with pytest.raises(ProtocolError, match="'label'") as info:
        wire.Gesture.from_body(body)
    assert info.value.reason == "missing_key"


def test_topic_and_body_must_agree() -> None:
    """A gesture body under another stream's topic, or on a foreign topic, is refused by decode_message."""
    frames = _frames_through_msgpack(GESTURE)
    with pytest.raises(ProtocolError) as info:
        wire.decode_message([wire.gesture_topic("cam1"), frames[1]])
    assert info.value.reason == "stream_mismatch"
    with pytest.raises(ProtocolError) as info:
        wire.decode_message([b"robot/v1/cmd/", frames[1]])
    assert info.value.reason == "bad_topic"


# ------------------------------------------------------------------------------------------------ fuzz

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.binary(max_size=20),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)


def _mutated(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Bodies near a valid one: some keys replaced by arbitrary values, some removed, some added."""
    keys = sorted(base)
    return st.builds(
        lambda repl, drop, extra: {k: v for k, v in {**base, **repl}.items() if k not in drop} | extra,
        st.dictionaries(st.sampled_from(keys), _values, max_size=4),
        st.sets(st.sampled_from(keys), max_size=3),
        st.dictionaries(st.text(max_size=8), _values, max_size=2),
    )


@pytest.mark.parametrize("message", RECORDS, ids=lambda m: type(m).__name__)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_from_body_raises_only_protocol_errors(message: wire.Output, data: st.DataObject) -> None:
    """Whatever a peer sends as a body, from_body returns a record or raises ProtocolError, nothing else."""
    body = data.draw(st.one_of(_mutated(message.to_body()), st.dictionaries(st.text(max_size=10), _values, max_size=6)))
    try:
        record = type(message).from_body(body)
    except ProtocolError as exc:
        assert exc.reason in wire.REASONS
        return
    # what decodes is a record that encodes again and reads back the same
    assert type(message).from_body(record.to_body()) == record


@settings(max_examples=300, deadline=None)
@given(topic=st.sampled_from([wire.pred_topic("cam0"), wire.gesture_topic("cam0"), wire.status_topic(), b"s2g/v1/x/"]),
       payload=st.one_of(st.binary(max_size=64), _values.map(lambda v: msgpack.packb(v, use_bin_type=True))))  # fmt: skip
def test_decode_message_raises_only_protocol_errors(topic: bytes, payload: bytes) -> None:
    """Arbitrary bytes or msgpack values under any output topic decode or raise ProtocolError, nothing else."""
    try:
        wire.decode_message([topic, payload])
    except ProtocolError as exc:
        assert exc.reason in wire.REASONS
