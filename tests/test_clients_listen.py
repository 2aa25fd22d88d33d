"""listen's and status's renderings of daemon messages (readable lines, JSON) and status exit codes."""

from __future__ import annotations

import dataclasses
import json

import pytest

from s2gesture.clients import bus, listen, status
from s2gesture.daemon import wire

GESTURE = {
    "v": 1, "stream": "cam0", "seq": 7, "class_id": 3, "label": "right arm clockwise", "confidence": 0.8125,
    "t_start": 1_200_000, "t_end": 1_800_000, "final": False, "segment": "00003-u24", "backend": "emulator",
    "model": {"name": "psnn_int8", "hash": "0123456789abcdef"},
}  # fmt: skip
STATUS = {
    "v": 1, "state": "ready", "uptime_s": 12.3, "backend": "emulator", "model": {"name": "psnn_int8", "hash": "ab"},
    "streams": {"cam0": {"packets": 1520, "events": 2_100_000, "dropped": {"lag": 3}, "chunks": 40, "last_packet_age_s": 0.2}},
    "latency_ms": {"p50": 3.1, "p99": 9.5, "n": 40},
}  # fmt: skip


PRED = {
    **GESTURE, "chunk": 4, "scores": [0.1, 0.8125], "latency_ms": 3.14, "runs": 1,
}  # fmt: skip


def test_readable_lines_name_kind_stream_label_confidence_and_span() -> None:
    """Onsets, finals, predictions and heartbeats each render as one informative line."""
    onset = listen.format_line(wire.Gesture.from_body(GESTURE))
    assert onset.startswith("gesture ") and "right arm clockwise" in onset and "0.81" in onset
    assert "t=1.200-1.800 s" in onset and "[segment 00003-u24]" in onset
    final = listen.format_line(wire.Gesture.from_body({**GESTURE, "final": True}))
    assert final.startswith("FINAL")
    pred = listen.format_line(wire.Pred.from_body(PRED))
    assert pred.startswith("pred") and "3.1 ms" in pred and "runs" not in pred
    split = listen.format_line(wire.Pred.from_body({**PRED, "runs": 3}))
    assert "3 runs" in split
    line = listen.format_line(wire.Status.from_body(STATUS))
    assert "ready" in line and "psnn_int8 ab" in line and "cam0 (1520 pkts, 2.1 M ev, 3 dropped)" in line
    assert "error" not in line


def test_status_line_and_summary_show_the_backend_error() -> None:
    """A degraded daemon's heartbeat line and summary both print the backend's error, not only the state."""
    msg = wire.Status.from_body({**STATUS, "state": "degraded", "error": "spike buffer overflow in layer 2"})
    assert "degraded" in listen.format_line(msg) and "error: spike buffer overflow in layer 2" in listen.format_line(msg)
    assert "error:    spike buffer overflow in layer 2" in status.summary(msg)


def test_json_lines_carry_the_topic_and_every_known_key() -> None:
    """--json output is one parseable object with the topic and the record's keys; unknown keys are not echoed."""
    obj = json.loads(listen.format_json(wire.Gesture.from_body({**GESTURE, "raw": b"\x01\xff"})))
    assert obj["topic"] == "s2g/v1/gesture/cam0/" and obj["label"] == "right arm clockwise"
    assert obj["t_start"] == 1_200_000 and obj["final"] is False and obj["model"]["hash"] == "0123456789abcdef"
    assert "raw" not in obj
    status_obj = json.loads(listen.format_json(wire.Status.from_body(STATUS)))
    assert status_obj["topic"] == wire.STATUS_TOPIC and status_obj["streams"]["cam0"]["dropped"] == {"lag": 3}


def test_show_option_accepts_only_known_kinds() -> None:
    """--show maps kinds to topic prefixes and refuses unknown ones with the valid list."""
    assert listen.parse_kinds("pred,status") == [wire.PRED_PREFIX, wire.STATUS_TOPIC]
    with pytest.raises(bus.ClientError, match="pred, gesture, status"):
        listen.parse_kinds("gestures")


@pytest.mark.parametrize(
    ("state", "code"), [("ready", 0), ("loading", 0), ("reloading", 0), ("degraded", 3), ("stopping", 3), ("weird", 3)]
)
def test_status_exit_code_per_state(state: str, code: int) -> None:
    """Health checks can tell a serving daemon (0) from an unhealthy one (3); no answer is 1 (process test)."""
    heartbeat = wire.Status.from_body(STATUS)
    assert status.exit_code(dataclasses.replace(heartbeat, state=state)) == code


def test_status_summary_says_how_much_lamp_flicker_was_removed() -> None:
    """A stream whose events the anti-flicker filter dropped says so; one without (or an older daemon) does not."""
    body = {**STATUS, "streams": {"cam0": {**STATUS["streams"]["cam0"], "events_flicker": 400_000},  # type: ignore[dict-item]
                                  "cam1": {"packets": 3, "events": 10, "events_flicker": 0, "chunks": 0}}}  # fmt: skip
    text = status.summary(wire.Status.from_body(body))
    assert "cam0: 1520 packets, 2.1 M events (400.0 k removed as lamp flicker), 40 chunks" in text
    assert "cam1: 3 packets, 10 events, 0 chunks" in text


def test_status_summary_lists_streams_drops_and_latency() -> None:
    """The human summary shows state, model, per-stream counters with drop reasons, and latency percentiles."""
    text = status.summary(wire.Status.from_body(STATUS))
    assert "state:    ready" in text and "model:    psnn_int8 ab" in text
    assert "cam0: 1520 packets, 2.1 M events, 40 chunks, dropped: lag 3, last packet 0.2 s ago" in text
    assert "p50 3.10 ms, p99 9.50 ms (40 chunks)" in text
