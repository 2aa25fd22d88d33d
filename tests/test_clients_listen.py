"""listen's and status's renderings of daemon messages (readable lines, JSON) and status exit codes."""

from __future__ import annotations

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


def test_readable_lines_name_kind_stream_label_confidence_and_span() -> None:
    """Onsets, finals, predictions and heartbeats each render as one informative line."""
    onset = listen.format_line(wire.gesture_topic("cam0").decode(), GESTURE)
    assert onset.startswith("gesture ") and "right arm clockwise" in onset and "0.81" in onset
    assert "t=1.200-1.800 s" in onset and "[segment 00003-u24]" in onset
    final = listen.format_line(wire.gesture_topic("cam0").decode(), {**GESTURE, "final": True})
    assert final.startswith("FINAL")
    pred = listen.format_line(wire.pred_topic("cam0").decode(), {**GESTURE, "latency_ms": 3.14})
    assert pred.startswith("pred") and "3.1 ms" in pred
    line = listen.format_line(wire.STATUS_TOPIC, STATUS)
    assert "ready" in line and "psnn_int8 ab" in line and "cam0 (1520 pkts, 2.1 M ev, 3 dropped)" in line


def test_json_lines_carry_the_topic_and_every_key() -> None:
    """--json output is one parseable object with the topic and the body's keys (bytes as hex)."""
    obj = json.loads(listen.format_json("s2g/v1/gesture/cam0/", {**GESTURE, "raw": b"\x01\xff"}))
    assert obj["topic"] == "s2g/v1/gesture/cam0/" and obj["label"] == "right arm clockwise" and obj["raw"] == "01ff"


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
    assert status.exit_code({**STATUS, "state": state}) == code


def test_status_summary_lists_streams_drops_and_latency() -> None:
    """The human summary shows state, model, per-stream counters with drop reasons, and latency percentiles."""
    text = status.summary(STATUS)
    assert "state:    ready" in text and "model:    psnn_int8 ab" in text
    assert "cam0: 1520 packets, 2.1 M events, 40 chunks, dropped: lag 3, last packet 0.2 s ago" in text
    assert "p50 3.10 ms, p99 9.50 ms (40 chunks)" in text
