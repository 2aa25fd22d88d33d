"""Intake: the daemon's input queues, their bounds, backpressure, fairness and every drop counted by reason.

Messages are queued raw (``[topic, body]`` as received) per stream and decoded only when their turn comes:
under overload most of them are dropped, and a drop must cost less than a decode, or the daemon falls
behind on reading and the time data spends in ZeroMQ's buffers becomes latency nobody can see. The
service keeps the socket drained between backend runs for the same reason.

- **live** (SUB): a full stream queue, the global byte bound or an age over ``max_lag`` drops the OLDEST
  queued event packets, across all streams, counted per stream as ``queue_full`` or ``lag``. An ``eos``
  is never dropped (it carries no events, and its segment would lose its final decision).
- **lossless** (PULL): nothing is dropped; when a bound is reached :meth:`Intake.paused` tells the service
  to stop reading, so ZeroMQ's high-water mark slows the sender. A new stream beyond ``max_streams`` is
  held (the sender is slowed) until a finished stream can be forgotten.

Streams are served round-robin, one message each, so one busy camera cannot starve the others.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from . import wire

#: drop-counter key of messages whose stream id cannot be read (never a valid stream id)
UNKNOWN_STREAM = "*"
_EOS_PREFIX = wire.EOS_PREFIX.encode()
#: bytes a queued event costs in memory, to turn the configured event bound into a byte bound
BYTES_PER_EVENT = 13


@dataclass(frozen=True)
class IntakeBounds:
    """Input bounds, resolved once at start (they belong to the sockets, which a reload does not rebind)."""

    lossless: bool
    queue_packets: int
    max_lag_ns: int
    max_queued_bytes: int
    max_streams: int


@dataclass
class Queued:
    """One message waiting for its turn: raw frames and the perf_counter ns at which it was read."""

    frames: Sequence[bytes]
    received_ns: int
    #: bytes of the raw message, and whether it is an end-of-stream marker (never dropped by the live bounds);
    #: computed once, since the live bounds look at them for every queued message
    nbytes: int = field(init=False)
    is_eos: bool = field(init=False)

    def __post_init__(self) -> None:
        frames = self.frames
        # two frames is every valid message: no generator, no copy of the topic (this runs for each packet)
        self.nbytes = len(frames[0]) + len(frames[1]) if len(frames) == 2 else sum(len(f) for f in frames)
        self.is_eos = bool(frames) and frames[0][:len(_EOS_PREFIX)] == _EOS_PREFIX


@dataclass
class StreamQueue:
    """One stream's queue and drop counters."""

    items: deque[Queued] = field(default_factory=deque)
    dropped: Counter[str] = field(default_factory=Counter)
    last_message_s: float = 0.0
    #: messages this stream lost in the daemon since its last decoded packet (to tell seq gaps upstream apart)
    dropped_since_decode: int = 0


class Intake:
    """Per-stream raw queues with the live or lossless bounds."""

    def __init__(self, bounds: IntakeBounds) -> None:
        self.bounds = bounds
        self.streams: dict[str, StreamQueue] = {}
        #: drops of streams forgotten since (their counters leave with them, the totals keep them)
        self.dropped_gone: Counter[str] = Counter()
        self.queued_bytes = 0
        #: lossless: a message of a new stream waiting for a free stream slot
        self.held: tuple[str, Queued] | None = None
        self._ring: deque[str] = deque()
        #: streams forgotten to make room so far (the service drops their sessions when this changes)
        self.forgotten = 0

    # --------------------------------------------------------------------------------------- admission

    def admit(self, stream: str, now_s: float, can_forget: Callable[[str], bool]) -> bool:
        """Whether ``stream`` has (or now gets) a slot; a full table first forgets a stream ``can_forget`` allows."""
        if stream in self.streams:
            return True
        counted = len(self.streams) - (UNKNOWN_STREAM in self.streams)
        if stream != UNKNOWN_STREAM and counted >= self.bounds.max_streams:
            idle = [s for s, q in self.streams.items() if s != UNKNOWN_STREAM and not q.items and can_forget(s)]
            if not idle:
                return False
            self.forget(min(idle, key=lambda s: self.streams[s].last_message_s))
            self.forgotten += 1
        self.streams[stream] = StreamQueue(last_message_s=now_s)
        return True

    def forget(self, stream: str) -> None:
        """Remove a stream (its drops stay in the totals)."""
        q = self.streams.pop(stream, None)
        if q is None:
            return
        self.dropped_gone.update(q.dropped)
        for item in q.items:
            self.queued_bytes -= item.nbytes

    # ------------------------------------------------------------------------------------------ queues

    def offer(self, stream: str, item: Queued, now_s: float) -> None:
        """Queue a message of an admitted stream, applying the live bounds."""
        q = self.streams[stream]
        q.last_message_s = now_s
        if not q.items:
            self._ring.append(stream)
        q.items.append(item)
        self.queued_bytes += item.nbytes
        if self.bounds.lossless:
            return
        while len(q.items) > self.bounds.queue_packets and self._drop_oldest(stream):
            self.drop(stream, "queue_full")
        while self.queued_bytes > self.bounds.max_queued_bytes:
            victim = self._oldest_stream()
            if victim is None or not self._drop_oldest(victim):
                break
            self.drop(victim, "queue_full")

    def hold(self, stream: str, item: Queued) -> None:
        """Lossless: keep a message of a stream that has no slot yet; intake pauses until it gets one."""
        self.held = (stream, item)

    def paused(self) -> bool:
        """Lossless: whether the service should stop reading (a bound is reached or a message is held)."""
        if not self.bounds.lossless:
            return False
        if self.held is not None or self.queued_bytes >= self.bounds.max_queued_bytes:
            return True
        return any(len(q.items) >= self.bounds.queue_packets for q in self.streams.values())

    def expire(self, now_ns: int) -> None:
        """Live: drop queued event messages older than ``max_lag`` (an eos stays), counted as ``lag``."""
        if self.bounds.lossless:
            return
        limit = now_ns - self.bounds.max_lag_ns
        for stream, q in self.streams.items():
            if not q.items or q.items[0].received_ns >= limit:
                continue
            kept: deque[Queued] = deque()
            while q.items and q.items[0].received_ns < limit:
                item = q.items.popleft()
                if item.is_eos:
                    kept.append(item)
                    continue
                self.queued_bytes -= item.nbytes
                self.drop(stream, "lag")
            q.items.extendleft(reversed(kept))

    def next(self) -> tuple[str, Queued] | None:
        """The next message to serve, round-robin over the streams that have one."""
        while self._ring:
            stream = self._ring.popleft()
            q = self.streams.get(stream)
            if q is None or not q.items:
                continue
            item = q.items.popleft()
            self.queued_bytes -= item.nbytes
            if q.items:
                self._ring.append(stream)
            return stream, item
        return None

    def pending(self) -> bool:
        """Whether any message waits."""
        return any(q.items for q in self.streams.values())

    def queued(self, stream: str) -> int:
        """Messages queued for ``stream``."""
        q = self.streams.get(stream)
        return len(q.items) if q is not None else 0

    # ------------------------------------------------------------------------------------------- drops

    def drop(self, stream: str, reason: str, n: int = 1, *, seq_seen: bool = False) -> None:
        """Count ``n`` messages of ``stream`` dropped for ``reason`` (``seq_seen``: its seq was already noted)."""
        q = self.streams.get(stream)
        if q is None:
            q = self.streams.setdefault(UNKNOWN_STREAM, StreamQueue())
        q.dropped[reason] += n
        if not seq_seen:
            q.dropped_since_decode += n

    def take_dropped_since_decode(self, stream: str) -> int:
        """Messages of ``stream`` dropped here since its last decoded packet (and reset the count)."""
        q = self.streams.get(stream)
        if q is None:
            return 0
        n, q.dropped_since_decode = q.dropped_since_decode, 0
        return n

    def dropped_totals(self) -> Counter[str]:
        """Every drop since start by reason, forgotten streams included."""
        total = Counter(self.dropped_gone)
        for q in self.streams.values():
            total.update(q.dropped)
        return total

    def _drop_oldest(self, stream: str) -> bool:
        q = self.streams[stream]
        for i, item in enumerate(q.items):
            if not item.is_eos:
                del q.items[i]
                self.queued_bytes -= item.nbytes
                return True
        return False

    def _oldest_stream(self) -> str | None:
        """The stream whose oldest queued event message is the oldest of all (drop-oldest across streams)."""
        best, best_t = None, None
        for stream, q in self.streams.items():
            for item in q.items:
                if not item.is_eos:
                    if best_t is None or item.received_ns < best_t:
                        best, best_t = stream, item.received_ns
                    break
        return best
