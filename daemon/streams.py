"""One camera's stream inside the daemon: its counters and its open segment, with the segment rules.

A stream is one camera (or replay) id. Its :class:`StreamSession` lives until eviction and holds at most
one open segment (preprocessor, chunker, decision policy) from the first packet to a boundary: ``eos``, a
sensor change or a new segment id, a long gap in event time, time going backwards, a silence flush, a
reload. The session is pure: it never touches a socket or a backend, so the segment rules are tested by
calling it directly.

    windows = session.accept(packet, received_ns)    # -> list[Window], or a Boundary to close first
    decision = session.record(window, run)           # after the backend ran the window
    tail = session.tail(); final = session.finish("eos", eos)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .chunking import ChunkPlan, StreamChunker, WindowRun
from .decision import Decision, DecisionParams, DecisionPolicy
from .errors import PreprocessError, S2GestureError
from .preprocess import StreamPreprocessor
from .wire import EosPacket, EventPacket


class RejectedPacketError(S2GestureError):
    """A decoded packet that the stream cannot take (bad time, bad sensor); ``reason`` is the drop key."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Window:
    """One window of ticks ready for the backend, with the event time it covers and its last packet."""

    start: int
    stop: int
    spikes: np.ndarray
    t_start_us: int
    t_end_us: int
    #: perf_counter ns at which the packet that completed the window was received
    received_ns: int
    #: seq of the last packet the segment had taken when the window was cut (what its pred answers: the
    #: segment may have taken more by the time a backend worker's run is published)
    seq: int = -1

    @property
    def active(self) -> bool:
        """Whether the window passed the activity gate (an inactive one comes back empty and is not run)."""
        return len(self.spikes) > 0


@dataclass(frozen=True)
class Boundary:
    """The packet cannot join the open segment: close it (``reason``), then offer the packet again."""

    reason: str


@dataclass(frozen=True)
class Final:
    """A segment's final decision, with the segment id and seq it answers."""

    decision: Decision
    segment: str | None
    seq: int
    reason: str


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


#: (sensor size, segment id) -> a fresh segment for the model being served
SegmentFactory = Callable[[tuple[int, int], "str | None"], Segment]


@dataclass(frozen=True)
class SessionRules:
    """The segment rules resolved from the configuration once."""

    plan: ChunkPlan
    decision: DecisionParams
    #: a packet may cover at most this much event time (its ticks are materialised at once)
    max_span_us: int
    #: a jump in event time longer than this ends the segment instead of filling the gap with empty ticks
    max_gap_us: int
    #: output index of the model's background class "none" (ModelCard.none_index): never an onset
    none_index: int | None = None


@dataclass
class StreamStats:
    """The counters of one stream (they live until the stream is evicted)."""

    packets: int = 0
    events: int = 0
    #: of those, dropped by the anti-flicker filter as a lamp's (input.anti_flicker_hz)
    events_flicker: int = 0
    chunks: int = 0
    chunks_skipped: int = 0
    chunks_failed: int = 0
    #: windows whose spikes did not fit one chip run and were split (or thinned)
    chunks_split: int = 0
    gestures: int = 0
    #: packets lost before the daemon saw them (jumps in seq not explained by the daemon's own drops)
    seq_gaps: int = 0
    last_seq: int | None = None

    def note_seq(self, seq: int, dropped_here: int) -> None:
        """Count packets lost upstream; ``dropped_here`` packets since the last one were dropped by the daemon."""
        if self.last_seq is not None and seq != self.last_seq + 1:
            gap = seq - self.last_seq - 1 if seq > self.last_seq else 1
            self.seq_gaps += max(0, gap - dropped_here)
        self.last_seq = seq


class StreamSession:
    """Everything the daemon holds for one stream id: counters and the open segment."""

    def __init__(self, stream: str, rules: SessionRules, new_segment: SegmentFactory) -> None:
        self.stream = stream
        self.rules = rules
        self.stats = StreamStats()
        self.segment: Segment | None = None
        self._new_segment = new_segment
        #: which serving pipeline the segment rules belong to (the service rebinds when it changes)
        self.generation = 0
        #: (segment id, final) of a segment closed without its eos (silence, gap): its late eos repeats it
        self._closed_unanswered: tuple[str | None, Decision] | None = None

    # ------------------------------------------------------------------------------------- intake

    def accept(self, packet: EventPacket, received_ns: int) -> list[Window] | Boundary:
        """Feed one packet; the windows it completes, or a Boundary when the open segment must close first.

        Raises :class:`RejectedPacketError` for a packet the stream cannot take (it is dropped; a packet going
        back in time also ends the segment: close it with reason ``time_backwards``).
        """
        events = packet.events
        n = len(events)
        # the first and last event read once (a field view of the array costs more than these two reads)
        last_event_t = int(events[n - 1]["t"]) if n else None
        first_t = int(events[0]["t"]) if n else packet.t_end_us
        last_t = packet.t_end_us if packet.t_end_us is not None else last_event_t
        if first_t is not None and last_t is not None and last_t - first_t > self.rules.max_span_us:
            # ticks are materialised for the whole span: a packet claiming hours would exhaust memory
            msg = f"packet spans {last_t - first_t} µs, the limit is streams.max_packet_span_s"
            raise RejectedPacketError("bad_time", msg)
        seg = self.segment
        if seg is not None:
            if seg.sensor_size != (packet.width, packet.height) or seg.segment_id != packet.segment:
                return Boundary("segment_change")
            if first_t is not None and seg.t_floor_us >= 0:
                if first_t < seg.t_floor_us:
                    msg = f"t={first_t} µs < {seg.t_floor_us} µs"
                    raise RejectedPacketError("time_backwards", msg)
                if first_t - seg.t_floor_us > self.rules.max_gap_us:
                    return Boundary("time_gap")
        if seg is None:
            try:
                seg = self._new_segment((packet.width, packet.height), packet.segment)
            except PreprocessError as exc:  # e.g. a sensor smaller than a crop mapping needs
                raise RejectedPacketError("bad_sensor", str(exc)) from exc
            self.segment = seg
            self._closed_unanswered = None
        flicker_before = seg.preprocessor.flicker_dropped
        try:
            ticks, empty_after = seg.preprocessor.push_lazy(events, packet.t_end_us)
        except PreprocessError as exc:
            raise RejectedPacketError("preprocess", str(exc)) from exc
        self.stats.packets += 1
        self.stats.events += n
        self.stats.events_flicker += seg.preprocessor.flicker_dropped - flicker_before
        if last_event_t is not None:
            seg.t_floor_us = max(seg.t_floor_us, last_event_t)
        if packet.t_end_us is not None:
            seg.t_floor_us = max(seg.t_floor_us, packet.t_end_us)
        seg.last_seq = packet.seq
        cut = seg.chunker.push(ticks) if len(ticks) else []
        if empty_after:  # time moved on without events: counted, not materialised
            cut += seg.chunker.push_zeros(empty_after)
        return [self._window(seg, s, e, w, received_ns) for s, e, w in cut]

    def tail(self, received_ns: int) -> list[Window]:
        """The windows the open segment still holds (its partial bins and tail window), before ``finish``."""
        seg = self.segment
        if seg is None:
            return []
        ticks = seg.preprocessor.flush()
        cut = seg.chunker.push(ticks) if len(ticks) else []
        cut += seg.chunker.finish()
        return [self._window(seg, s, e, w, received_ns) for s, e, w in cut]

    def _window(self, seg: Segment, start: int, stop: int, spikes: np.ndarray, received_ns: int) -> Window:
        return Window(start, stop, spikes, seg.tick_time_us(start), seg.tick_time_us(stop), received_ns, seg.last_seq)

    # ------------------------------------------------------------------------------------ decisions

    def record(self, window: Window, run: WindowRun) -> Decision | None:
        """The backend's answer for ``window`` into the decision policy; an onset Decision or None."""
        seg = self.segment
        if seg is None:  # closed meanwhile (a reload or fallback dropped it)
            return None
        self.stats.chunks += 1
        if run.runs > 1 or run.thinned > 0:
            self.stats.chunks_split += 1
        return seg.policy.update(run.scores, window.t_start_us, window.t_end_us)

    def skip(self, window: Window, n_classes: int) -> Decision | None:
        """A window the gate skipped (or no backend could run): zero scores for the policy."""
        seg = self.segment
        if seg is None:
            return None
        self.stats.chunks_skipped += 1
        return seg.policy.update(np.zeros(n_classes), window.t_start_us, window.t_end_us)

    def finish(self, reason: str, eos: EosPacket | None = None) -> Final | None:
        """Close the open segment (run its ``tail`` first); the final decision to publish, if any.

        An eos for a segment already closed by silence or a gap repeats that answer; an eos with nothing
        before it still gets one (class -1: no evidence). A close without eos and without a segment: None.
        """
        seg, self.segment = self.segment, None
        if seg is None:
            if eos is None:
                return None
            closed, self._closed_unanswered = self._closed_unanswered, None
            if closed is not None and (eos.segment is None or eos.segment == closed[0]):
                return Final(closed[1], closed[0], eos.seq, reason)
            return Final(DecisionPolicy(self.rules.decision, none_index=self.rules.none_index).final(), eos.segment, eos.seq, reason)
        seq = eos.seq if eos is not None else seg.last_seq
        segment_id = seg.segment_id if seg.segment_id is not None else (eos.segment if eos is not None else None)
        final = seg.policy.final()
        self._closed_unanswered = None if eos is not None else (segment_id, final)
        return Final(final, segment_id, seq, reason)

    def rebind(self, rules: SessionRules, new_segment: SegmentFactory) -> None:
        """Serve with another pipeline's rules; the open segment (cut for the old plan) is dropped."""
        self.rules, self._new_segment, self.segment = rules, new_segment, None

    def drop_segment(self) -> None:
        """Forget the open segment without a decision (its plan belongs to a backend that is gone)."""
        self.segment = None

    def summary(self, now_s: float, last_packet_s: float, queued: int, dropped: Counter[str]) -> dict[str, Any]:
        """The stream's entry in the status heartbeat."""
        s = self.stats
        return {
            "packets": s.packets,
            "events": s.events,
            "events_flicker": s.events_flicker,
            "dropped": dict(dropped),
            "last_packet_age_s": round(max(0.0, now_s - last_packet_s), 3),
            "chunks": s.chunks,
            "chunks_skipped": s.chunks_skipped,
            "chunks_failed": s.chunks_failed,
            "chunks_split": s.chunks_split,
            "gestures": s.gestures,
            "seq_gaps": s.seq_gaps,
            "last_seq": s.last_seq,
            "queue": queued,
            "segment": None if self.segment is None else self.segment.segment_id,
        }


def make_segment_factory(
    rules: SessionRules, spec_for: Callable[[tuple[int, int]], Any], backend_plan: ChunkPlan
) -> SegmentFactory:
    """The factory of fresh segments for a served model (``spec_for(sensor)`` -> its PreprocessSpec)."""

    def new_segment(sensor_size: tuple[int, int], segment_id: str | None) -> Segment:
        spec = spec_for(sensor_size)
        return Segment(
            sensor_size=sensor_size,
            # the session ends a segment itself on gaps over max_gap_us, so the preprocessor's own guard
            # must allow that gap plus one packet's span (its default, 10 s, would refuse longer settings)
            preprocessor=StreamPreprocessor(spec, max_gap_us=rules.max_gap_us + rules.max_span_us),
            chunker=StreamChunker(backend_plan, spec.frame_shape),
            policy=DecisionPolicy(rules.decision, none_index=rules.none_index),
            segment_id=segment_id,
            dt_us=spec.dt_us,
        )

    return new_segment


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
