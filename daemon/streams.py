"""Per-stream state of the daemon: counters, the bounded input queue and the open segment.

A stream is one camera (or replay) id. Its counters live as long as the stream (until eviction); its
segment (preprocessor, chunker, decision policy) lives from the first packet to ``eos``, a flush of a
silent stream, time going backwards, a sensor change or a reload.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .chunking import StreamChunker
from .decision import Decision, DecisionPolicy
from .preprocess import StreamPreprocessor
from .wire import EosPacket, EventPacket


@dataclass
class Queued:
    """One accepted packet waiting to be processed, with its receive time (perf_counter ns)."""

    packet: EventPacket | EosPacket
    received_ns: int


@dataclass
class Segment:
    """Processing state of a stream between two segment boundaries."""

    sensor_size: tuple[int, int]
    preprocessor: StreamPreprocessor
    chunker: StreamChunker
    policy: DecisionPolicy
    segment_id: str | None
    dt_us: int
    #: earliest time (µs) the next packet's events may have: max(last event, last t_end)
    t_floor_us: int = -1
    last_seq: int = -1

    def tick_time_us(self, tick: int) -> int:
        """Absolute µs time of the start of tick ``tick`` of this segment."""
        t0 = self.preprocessor.t_start_us
        return (0 if t0 is None else t0) + tick * self.dt_us


@dataclass
class StreamState:
    """Everything the daemon holds for one stream id."""

    stream: str
    created_s: float
    last_packet_s: float
    packets: int = 0
    events: int = 0
    chunks: int = 0
    chunks_skipped: int = 0
    chunks_failed: int = 0
    gestures: int = 0
    seq_gaps: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    last_seq: int | None = None
    queue: deque[Queued] = field(default_factory=deque)
    segment: Segment | None = None
    #: (segment id, final decision) of a segment closed without its eos (silence, gap): its late eos repeats it
    closed_unanswered: tuple[str | None, Decision] | None = None

    def note_seq(self, seq: int) -> None:
        """Count packets lost upstream (a jump in ``seq``); a restart from a lower seq counts as one gap."""
        if self.last_seq is not None and seq != self.last_seq + 1:
            self.seq_gaps += seq - self.last_seq - 1 if seq > self.last_seq else 1
        self.last_seq = seq

    def drop(self, reason: str, n: int = 1) -> None:
        """Count ``n`` packets dropped for ``reason``."""
        self.dropped[reason] += n

    def summary(self, now_s: float) -> dict[str, Any]:
        """The stream's entry in the status heartbeat."""
        return {
            "packets": self.packets,
            "events": self.events,
            "dropped": dict(self.dropped),
            "last_packet_age_s": round(max(0.0, now_s - self.last_packet_s), 3),
            "chunks": self.chunks,
            "chunks_skipped": self.chunks_skipped,
            "chunks_failed": self.chunks_failed,
            "gestures": self.gestures,
            "seq_gaps": self.seq_gaps,
            "queue": len(self.queue),
            "segment": None if self.segment is None else self.segment.segment_id,
        }


class LatencyWindow:
    """The last ``size`` samples (ms) for percentiles, plus cumulative histogram buckets (s) for Prometheus."""

    BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)

    def __init__(self, size: int = 4096) -> None:
        self._ring = np.zeros(size, dtype=np.float64)
        self._n = 0
        self.count = 0
        self.sum_s = 0.0
        self.buckets = np.zeros(len(self.BUCKETS_S) + 1, dtype=np.int64)

    def add(self, ms: float) -> None:
        """Record one sample in milliseconds."""
        self._ring[self._n % len(self._ring)] = ms
        self._n += 1
        self.count += 1
        self.sum_s += ms / 1000.0
        self.buckets[int(np.searchsorted(self.BUCKETS_S, ms / 1000.0))] += 1

    def percentiles(self) -> dict[str, float]:
        """p50, p90, p99 and max of the recent samples (empty dict before the first)."""
        if self._n == 0:
            return {}
        data = self._ring[: min(self._n, len(self._ring))]
        p50, p90, p99 = np.percentile(data, [50, 90, 99])
        return {
            "p50": round(float(p50), 3),
            "p90": round(float(p90), 3),
            "p99": round(float(p99), 3),
            "max": round(float(data.max()), 3),
            "n": int(self.count),
        }
