"""The daemon's telemetry: counters, latency windows, and the status heartbeat built from every part."""

from __future__ import annotations

import os
import time
from typing import Any

from . import __version__, wire
from .card import Model
from .intake import Intake
from .publisher import Publisher
from .streams import LatencyWindow, StreamSession
from .supervisor import BackendSupervisor


class Telemetry:
    """What the daemon measures about itself, and the ``status`` message made of it."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        #: last packet of a window received -> its pred published (ms)
        self.e2e = LatencyWindow()
        #: backend time per window (ms)
        self.inference = LatencyWindow()
        self.totals = {"packets": 0, "events": 0, "connections_refused": 0}
        self.started = time.monotonic()
        #: the last published status (read by the metrics thread; replaced whole, never mutated)
        self.snapshot: dict[str, Any] = {}
        self._rate = (time.monotonic(), 0)

    def uptime_s(self) -> float:
        """Seconds since start."""
        return round(time.monotonic() - self.started, 3)

    def status(
        self, state: str, supervisor: BackendSupervisor, intake: Intake, sessions: dict[str, StreamSession],
        model: Model | None, publisher: Publisher,
    ) -> wire.Status:
        """The status heartbeat (docs/protocol.md)."""
        now = time.monotonic()
        p = supervisor.pipeline
        dropped = intake.dropped_totals()
        streams = {}
        for stream, q in intake.streams.items():
            session = sessions.get(stream)
            if session is None:
                streams[stream] = {"packets": 0, "events": 0, "dropped": dict(q.dropped), "queue": len(q.items),
                                   "last_packet_age_s": round(max(0.0, now - q.last_message_s), 3)}
            else:
                streams[stream] = session.summary(now, q.last_message_s, len(q.items), q.dropped)
        message = wire.Status(
            state=state,
            uptime_s=round(now - self.started, 3),
            backend=supervisor.serving_name,
            model=model.identity if model is not None else None,
            streams=streams,
            totals={
                **self.totals,
                "dropped": sum(dropped.values()),
                "dropped_by_reason": dict(dropped),
                # packets lost before they reached the daemon (a sender's or ZeroMQ's high-water mark)
                "lost_upstream": sum(s.stats.seq_gaps for s in sessions.values()),
                "outputs_refused": publisher.refused,
            },
            latency_ms=self.e2e.percentiles(),
            inference_ms=self.inference.percentiles(),
            mode=self.mode,
            window_ticks=p.plan.window if p is not None else None,
            stride_ticks=p.plan.stride if p is not None else None,
            pid=os.getpid(),
            version=__version__,
            error=supervisor.error[:500] or None,
            backend_counters=dict(supervisor.counters),
        )
        self.snapshot = message.to_body()
        return message

    def line(self, state: str, supervisor: BackendSupervisor, model: Model | None, n_streams: int) -> str:
        """One line for systemd's status (events/s since the last line)."""
        t, n = self._rate
        now = time.monotonic()
        rate = (self.totals["events"] - n) / max(1e-9, now - t)
        self._rate = (now, self.totals["events"])
        name = model.card.name if model is not None else "?"
        text = f"{state}: {supervisor.serving_name}, model {name}, {n_streams} streams, {rate:,.0f} events/s"
        if supervisor.error:
            text += f"; {supervisor.error[:200]}"
        return text
