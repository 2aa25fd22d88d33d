"""The publisher: typed output messages (wire.Pred, wire.Gesture, wire.Status) onto the PUB socket."""

from __future__ import annotations

import contextlib
from typing import Any

import zmq

from . import wire
from .chunking import WindowRun
from .decision import Decision
from .pipeline import Pipeline
from .streams import Final, Window


class Publisher:
    """Builds each message from the serving pipeline's identity and sends it without ever blocking."""

    def __init__(self, sock: zmq.Socket[Any] | None) -> None:
        self.sock = sock
        #: messages a slow subscriber's high-water mark made ZeroMQ refuse
        self.refused = 0

    def send(self, message: wire.Output) -> None:
        """Send one message; PUB never blocks: a slow subscriber loses messages, the daemon does not wait."""
        if self.sock is None:
            return
        try:
            self.sock.send_multipart(wire.encode_message(message), zmq.NOBLOCK)
        except zmq.Again:
            self.refused += 1

    def pred(
        self, stream: str, seq: int, chunk: int, segment: str | None, window: Window, run: WindowRun,
        pipeline: Pipeline, latency_ms: float,
    ) -> None:
        """The scores of one window."""
        scores = run.scores
        total = float(scores.sum())
        top = int(scores.argmax()) if total > 0 else -1
        self.send(
            wire.Pred(
                stream=stream,
                seq=seq,
                chunk=chunk,
                t_start=window.t_start_us,
                t_end=window.t_end_us,
                scores=tuple(float(s) for s in scores),
                class_id=top,
                label=pipeline.label(top),
                confidence=round(float(scores[top] / total), 6) if total > 0 else 0.0,
                latency_ms=round(latency_ms, 3),
                backend=pipeline.backend_name,
                model=pipeline.model_identity,
                segment=segment,
                runs=run.runs,
            )
        )

    def gesture(self, stream: str, seq: int, segment: str | None, decision: Decision, pipeline: Pipeline) -> wire.Gesture:
        """A decision (an onset, or a segment's final answer)."""
        message = wire.Gesture(
            stream=stream,
            seq=seq,
            class_id=decision.class_id,
            label=pipeline.label(decision.class_id),
            confidence=round(decision.confidence, 6),
            t_start=decision.t_start_us,
            t_end=decision.t_end_us,
            final=decision.final,
            n_chunks=decision.n_chunks,
            backend=pipeline.backend_name,
            model=pipeline.model_identity,
            segment=segment,
        )
        self.send(message)
        return message

    def final(self, stream: str, final: Final, pipeline: Pipeline) -> wire.Gesture:
        """A segment's final decision."""
        return self.gesture(stream, final.seq, final.segment, final.decision, pipeline)

    def close(self) -> None:
        """Close the socket (a short linger lets the last status leave)."""
        if self.sock is not None:
            with contextlib.suppress(zmq.ZMQError):
                self.sock.close()
            self.sock = None
