"""The service: one poll loop, and the one place that wires the stages, top to bottom as the data flows.

    ingest (Intake: raw queues, bounds) -> decode (wire) -> preprocess + chunk (StreamSession)
    -> run (BackendSupervisor: split to fit, retry, fall back) -> decide (StreamSession) -> publish (Publisher)

One thread owns every socket: the input, its monitor, and a socketpair on which signals arrive
(``signal.set_wakeup_fd``) like any other file descriptor. Configuration is resolved once into a
:class:`Pipeline`; the per-packet path reads only its attributes.
"""

from __future__ import annotations

import signal
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import zmq

from . import wire
from .card import Model
from .config import DaemonConfig, is_local_endpoint
from .errors import ProtocolError
from .intake import BYTES_PER_EVENT, UNKNOWN_STREAM, Intake, IntakeBounds, Queued
from .logs import RateLimiter, get_logger, setup_logging
from .pipeline import Job, Pipeline, default_model_path, load_model
from .publisher import Publisher
from .sdnotify import Notifier
from .signals import SignalPipe
from .sockets import SocketBindError, Sockets, raise_fd_limit, start_authenticator
from .status import Telemetry
from .streams import Boundary, RejectedPacketError, StreamSession, Window
from .supervisor import BackendSupervisor
from .wire import EosPacket, EventPacket

__all__ = ["Pipeline", "Service", "SocketBindError", "default_model_path"]

#: drop-log key shared by every stream that has not sent one valid packet (rate-limits garbage under made-up ids)
NEVER_VALID = "(never valid)"
#: messages read from the socket in one go before the loop looks at signals and timers again
READ_BATCH = 10_000
#: windows handed to the backend workers and not answered, per worker: one running and one waiting
#: keeps every worker busy; beyond that, the loop stops taking packets (the live bounds then drop)
IN_FLIGHT_PER_WORKER = 2


class Service:
    """The daemon: the poll loop over the input, its monitor and the signal socketpair."""

    def __init__(
        self, config: DaemonConfig, reload_config: Callable[[], DaemonConfig], notifier: Notifier | None = None
    ) -> None:
        self.config = config
        self._reload_config = reload_config
        self.notifier = notifier or Notifier()
        self.log = get_logger(backend=config.backend.name)
        self.model: Model | None = None
        i = config.input
        self.intake = Intake(
            IntakeBounds(i.mode == "lossless", i.queue_packets, int(i.max_lag_ms * 1e6),
                         i.max_queued_events * BYTES_PER_EVENT, i.max_streams)
        )
        self.sessions: dict[str, StreamSession] = {}
        self._forgotten_seen = 0
        self.supervisor = self._supervisor(config)
        self.publisher = Publisher(None)
        self.telemetry = Telemetry(config.input.mode)
        self.e2e, self.inference, self.totals = self.telemetry.e2e, self.telemetry.inference, self.telemetry.totals
        self._stop = False
        self._reload_requested = False
        self._state_override: str | None = None  # "reloading" / "stopping" while those run
        self._drop_log = RateLimiter(config.log.drop_log_interval_s)
        #: per stream, its windows in order with their runs (done or on a worker): published in that order
        self._pending: dict[str, deque[tuple[StreamSession, Window, Job | None]]] = {}
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.sockets: Sockets | None = None
        self._auth: Any = None
        self._metrics: Any = None

    def _supervisor(self, config: DaemonConfig) -> BackendSupervisor:
        def build(name: str | None) -> Pipeline:
            if self.model is None:  # loaded by _start before the first build (invariant)
                raise RuntimeError("no model loaded")
            return Pipeline.build(config, self.model, name, workers=config.backend.workers)

        b = config.backend
        return BackendSupervisor(
            build, backend_name=b.name, fallback_to_emulator=b.fallback_to_emulator,
            retry_initial_s=b.retry_initial_s, retry_max_s=b.retry_max_s, log=self.log,
        )

    @property
    def state(self) -> str:
        """loading, ready, degraded, reloading or stopping."""
        return self._state_override or self.supervisor.state

    # ---------------------------------------------------------------------------- the pipeline

    def _serve(self, stream: str, item: Queued) -> None:
        """ingest -> preprocess -> chunk -> run -> decide -> publish, for one queued message."""
        session = self._session(stream)
        packet = self._decode(session, item)
        if packet is None:
            return
        if isinstance(packet, EosPacket):
            self._close(session, "eos", item.received_ns, packet)
            return
        for window in self._accept(session, packet, item.received_ns):
            self._submit(session, window)
            self._ingest()  # keep ZeroMQ's buffers empty: time spent there is latency nobody can see
            if self._pending:  # what the workers answered meanwhile goes out now, not at the end of the turn
                self._collect()

    def _decode(self, session: StreamSession, item: Queued) -> EventPacket | EosPacket | None:
        pipeline = self.supervisor.pipeline
        try:
            packet = wire.decode_input(item.frames, pipeline.limits if pipeline is not None else wire.DEFAULT_LIMITS)
        except ProtocolError as exc:
            self._reject(session.stream, exc.reason, str(exc))
            return None
        session.stats.note_seq(packet.seq, self.intake.take_dropped_since_decode(session.stream))
        if pipeline is None and isinstance(packet, EventPacket):
            self._reject(session.stream, "no_backend", "no backend is serving", seq_seen=True)
            return None
        return packet

    def _accept(self, session: StreamSession, packet: EventPacket, received_ns: int) -> list[Window]:
        try:
            result = session.accept(packet, received_ns)
            if isinstance(result, Boundary):  # a new sensor or segment id, a long gap: close, then start anew
                self._close(session, result.reason, received_ns)
                result = session.accept(packet, received_ns)
        except RejectedPacketError as exc:
            self._reject(session.stream, exc.reason, str(exc), seq_seen=True)
            if exc.reason in ("time_backwards", "preprocess"):  # the stream's window starts over
                self._close(session, exc.reason, received_ns)
            return []
        if isinstance(result, Boundary):  # cannot happen for a fresh segment; never loop
            return []
        self.totals["packets"] += 1
        self.totals["events"] += len(packet.events)
        return result

    def _submit(self, session: StreamSession, window: Window) -> None:
        """Hand a window to the backend (a worker, or run now); its result is published in stream order."""
        supervisor = self.supervisor
        if supervisor.pipeline is None:  # the segment was cut for a backend that is gone; _close drops it
            return
        pool = supervisor.pool
        if pool is not None:
            while pool.busy() >= IN_FLIGHT_PER_WORKER * pool.size:  # every worker has its next window
                pool.wait_any(0.05)
                self._ingest()
                self._collect()
        job = supervisor.submit(window.spikes) if window.active else None
        queue = self._pending.get(session.stream)
        if queue is None:
            queue = self._pending[session.stream] = deque()
        queue.append((session, window, job))
        self._collect_stream(session.stream, queue)

    def _collect(self) -> None:
        """Publish every run that has finished, each stream's in order."""
        pool = self.supervisor.pool
        if pool is not None:
            pool.pump()
        for stream, queue in list(self._pending.items()):
            self._collect_stream(stream, queue)

    def _collect_stream(self, stream: str, queue: deque[tuple[StreamSession, Window, Job | None]]) -> None:
        while queue and (queue[0][2] is None or queue[0][2].done()):
            session, window, job = queue.popleft()
            self._finish_window(session, window, job)
        if not queue:
            self._pending.pop(stream, None)

    def _drain(self, stream: str) -> None:
        """Wait for and publish every run of ``stream`` in flight (before its segment closes)."""
        queue = self._pending.pop(stream, None)
        while queue:
            session, window, job = queue.popleft()
            self._finish_window(session, window, job)  # waits for a run still on a worker

    def _finish_window(self, session: StreamSession, window: Window, job: Job | None) -> None:
        """decide -> publish for one window whose run (if it needed one) has finished."""
        pipeline = self.supervisor.pipeline
        if pipeline is None:
            return
        if job is None:
            decision = session.skip(window, len(pipeline.labels))
        else:
            run, inference_ms = self.supervisor.collect(job)
            if self._rebind(session) or run is None:  # the backend failed (and maybe a fallback took over)
                session.stats.chunks_failed += 1
                return
            self.inference.add(inference_ms)
            decision = session.record(window, run)
            seg = session.segment
            latency_ms = (time.perf_counter_ns() - window.received_ns) / 1e6
            self.publisher.pred(session.stream, window.seq if seg else -1, session.stats.chunks,
                                seg.segment_id if seg else None, window, run, pipeline, latency_ms)
            self.e2e.add(latency_ms)
        if decision is not None and session.segment is not None:
            session.stats.gestures += 1
            seg = session.segment
            sent = self.publisher.gesture(session.stream, window.seq, seg.segment_id, decision, pipeline)
            self.log.info("gesture", stream=session.stream, label=sent.label, confidence=sent.confidence)

    def _close(self, session: StreamSession, reason: str, received_ns: int, eos: EosPacket | None = None) -> None:
        """Run what the segment holds, publish its final decision (eos, flush, gap, reload, shutdown)."""
        self._drain(session.stream)
        pipeline = self.supervisor.pipeline
        if pipeline is None:
            session.drop_segment()
            return
        for window in session.tail(received_ns):
            self._submit(session, window)
        self._drain(session.stream)
        final = session.finish(reason, eos)
        if final is None or self.supervisor.pipeline is None:
            return
        session.stats.gestures += 1
        self.publisher.final(session.stream, final, self.supervisor.pipeline)
        if reason != "eos":
            allowed, suppressed = self._drop_log.allow((session.stream, "segment closed", reason), time.monotonic())
            if allowed:
                self.log.info("segment closed", stream=session.stream, reason=reason, suppressed=suppressed)

    # ------------------------------------------------------------------------------ the streams

    def _session(self, stream: str) -> StreamSession:
        session = self.sessions.get(stream)
        if session is None:
            pipeline = self.supervisor.pipeline
            session = self.sessions[stream] = StreamSession(stream, *self._segment_rules(pipeline))
            session.generation = self.supervisor.generation
        self._rebind(session)
        return session

    def _segment_rules(self, pipeline: Pipeline | None) -> tuple[Any, Any]:
        if pipeline is None:
            return None, _no_segments
        return pipeline.rules, pipeline.segment_factory()

    def _rebind(self, session: StreamSession) -> bool:
        """A session cut for another pipeline (a fallback took over) drops its segment; True when it did."""
        if session.generation == self.supervisor.generation:
            return False
        session.rebind(*self._segment_rules(self.supervisor.pipeline))
        session.generation = self.supervisor.generation
        return True

    def _reject(self, stream: str, reason: str, message: str, *, seq_seen: bool = False) -> None:
        self.intake.drop(stream, reason, seq_seen=seq_seen)
        session = self.sessions.get(stream)
        # streams that never sent a valid packet share one key per reason: garbage under ever new stream ids
        # (each evicting the last) would otherwise log every packet
        key = stream if session is not None and session.stats.packets else NEVER_VALID
        allowed, suppressed = self._drop_log.allow((key, reason), time.monotonic())
        if allowed:
            self.log.warning("packet dropped", stream=stream, reason=reason, detail=message[:200], suppressed=suppressed)

    def _can_forget(self, stream: str) -> bool:
        """Whether a stream's slot may go to a new one: never sent a valid packet, or its segment is closed."""
        session = self.sessions.get(stream)
        if session is None or session.stats.packets == 0:
            return True
        return self.intake.bounds.lossless and session.segment is None

    def _forget(self, stream: str) -> None:
        self.sessions.pop(stream, None)
        self.intake.forget(stream)
        self._drop_log.forget(stream)

    # ---------------------------------------------------------------------------------- ingest

    def _ingest(self) -> None:
        """Read what the input socket holds (bounded) into the intake's raw queues."""
        sockets, intake = self.sockets, self.intake
        if sockets is None:
            return
        now_s = time.monotonic()
        oversize = self.config.input.max_message_bytes
        inp = sockets.inp
        for _ in range(READ_BATCH):
            if intake.held is not None and not self._place_held(now_s):
                return
            if intake.paused():
                return  # lossless: ZeroMQ's high-water mark now slows the sender
            if not inp.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                break  # asking is cheaper than the exception an empty read raises
            try:
                frames = inp.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            item = Queued(frames, time.perf_counter_ns())
            stream = wire.topic_stream(frames[0]) if frames else None
            if stream is None or len(frames) != 2 or item.nbytes > oversize:  # garbage costs no queue slot
                if stream is not None and len(frames) == 2:
                    reason, detail = "oversize", f"message of {item.nbytes} bytes exceeds input.max_message_bytes={oversize}"
                else:
                    reason, detail = _defect(frames)
                counted = stream if stream is not None and intake.admit(stream, now_s, self._can_forget) else UNKNOWN_STREAM
                self._reject(counted, reason, detail)
                continue
            if not intake.admit(stream, now_s, self._can_forget):
                try:  # no slot: garbage is counted under '*' at once, and only a valid packet waits or is refused
                    wire.decode_input(frames)
                except ProtocolError as exc:
                    self._reject(UNKNOWN_STREAM, exc.reason, f"stream {stream}: {exc}")
                    continue
                if intake.bounds.lossless:
                    intake.hold(stream, item)  # the sender is slowed until a finished stream frees a slot
                    self._log_once("stream limit reached; new streams wait", stream=stream)
                    return
                self._reject(UNKNOWN_STREAM, "too_many_streams", f"stream {stream}: limit reached")
                continue
            self._drop_forgotten_sessions()
            intake.offer(stream, item, now_s)
        intake.expire(time.perf_counter_ns())

    def _place_held(self, now_s: float) -> bool:
        assert self.intake.held is not None  # checked by the caller (invariant)
        stream, item = self.intake.held
        if not self.intake.admit(stream, now_s, self._can_forget):
            return False
        self._drop_forgotten_sessions()
        self.intake.held = None
        self.intake.offer(stream, item, now_s)
        return True

    def _drop_forgotten_sessions(self) -> None:
        if self.intake.forgotten == self._forgotten_seen:
            return
        self._forgotten_seen = self.intake.forgotten
        for stream in [s for s in self.sessions if s not in self.intake.streams]:
            self.sessions.pop(stream)
            self._drop_log.forget(stream)

    def _log_once(self, event: str, **kw: Any) -> None:
        allowed, suppressed = self._drop_log.allow(("*", event), time.monotonic())
        if allowed:
            self.log.warning(event, suppressed=suppressed, **kw)

    # ------------------------------------------------------------------------------- lifecycle

    def run(self) -> int:
        """Start, serve until SIGTERM/SIGINT, shut down; returns the exit code."""
        signals = SignalPipe()
        try:
            self._start()
            self._loop(signals)
            return 0
        finally:
            self._shutdown()
            signals.close()

    def _start(self) -> None:
        config = self.config
        self.model = load_model(config)
        self.log = self.log.bind(model=self.model.card.name, model_hash=self.model.hash)
        self.supervisor.log = self.log
        fd_limit = raise_fd_limit()
        self._auth = start_authenticator(self.ctx, config)
        self.sockets = Sockets(self.ctx, config)
        self.publisher = Publisher(self.sockets.out)
        self._publish_status()  # "loading": lets clients see the daemon while a board loads
        self.notifier.extend_timeout(120)  # a board load can outlast TimeoutStartSec
        self.supervisor.start()
        if config.metrics.enabled:
            from .metrics import start_metrics

            if not is_local_endpoint(f"tcp://{config.metrics.address}:{config.metrics.port}"):
                self.log.warning("metrics served on a non-loopback address, without authentication",
                                 address=config.metrics.address)
            try:
                self._metrics = start_metrics(self, config.metrics.address, config.metrics.port)
            except OSError as exc:
                msg = f"cannot serve metrics on {config.metrics.address}:{config.metrics.port}: {exc}; pick a free metrics.port"
                raise SocketBindError(msg) from exc
        if self.supervisor.pipeline is not None:
            self.notifier.ready(self._status_line())
        pipeline = self.supervisor.pipeline
        self.log.info(
            "started", state=self.state, mode=config.input.mode, fd_limit=fd_limit,
            input=list(config.input.bind + config.input.connect),
            output=list(config.output.bind + config.output.connect),
            window_ticks=None if pipeline is None else pipeline.plan.window,
            startup_s=self.telemetry.uptime_s(),
        )
        self._publish_status()

    def _loop(self, signals: SignalPipe) -> None:
        assert self.sockets is not None  # opened by _start (invariant)
        poller = zmq.Poller()
        poller.register(self.sockets.inp, zmq.POLLIN)
        if self.sockets.monitor is not None:
            poller.register(self.sockets.monitor, zmq.POLLIN)
        poller.register(signals.fileno(), zmq.POLLIN)
        interval = self.config.output.status_interval_s
        next_status = time.monotonic() + interval
        next_housekeeping = time.monotonic() + 0.5
        watchdog_every = (self.notifier.watchdog_s or 0) / 3 or None
        last_ping = 0.0
        monitor = self.sockets.monitor
        polled_fds: list[int] = []  # the backend workers' answers wake the loop like any input
        while not self._stop:
            pool = self.supervisor.pool
            fds = pool.fds() if pool is not None else []
            if fds != polled_fds:
                for fd in polled_fds:
                    poller.unregister(fd)
                for fd in fds:
                    poller.register(fd, zmq.POLLIN)
                polled_fds = fds
            now = time.monotonic()
            wake = min(next_status, next_housekeeping, self.supervisor.retry_at or next_status)
            if watchdog_every is not None:
                wake = min(wake, last_ping + watchdog_every)
            busy = self.intake.pending() and not self._stop
            ready = dict(poller.poll(0 if busy else max(0, int((wake - now) * 1000))))
            if signals.fileno() in ready:
                self._on_signals(signals.read())
            self._ingest()
            # one message per stream per turn, then signals and timers again: a busy stream cannot starve
            for _ in range(max(1, len(self.sessions))):
                got = self.intake.next()
                if got is None:
                    break
                self._serve(*got)
            if self._pending:
                self._collect()
            now = time.monotonic()
            if monitor is not None and monitor in ready:  # reading the monitor costs a poll of its own
                self._watch_connections()
            if self._reload_requested:
                self._reload()
            self.supervisor.tick()
            if now >= next_housekeeping:
                self._housekeeping(now)
                next_housekeeping = now + 0.5
            if now >= next_status:
                self._publish_status()
                next_status = now + interval
            if watchdog_every is not None and now - last_ping >= watchdog_every:
                # reached only when the loop turns: a hung backend run stops the pings and systemd steps in
                self.notifier.watchdog()
                last_ping = now

    def _on_signals(self, signums: list[int]) -> None:
        for signum in signums:
            if signum in (signal.SIGTERM, signal.SIGINT):
                self.log.info("stopping", signal=signal.Signals(signum).name)
                self._stop = True
            elif signum == signal.SIGHUP:
                self._reload_requested = True

    def _watch_connections(self) -> None:
        if self.sockets is None:
            return
        for kind, endpoint in self.sockets.refused():
            self.totals["connections_refused"] += 1
            allowed, suppressed = self._drop_log.allow(("*", "connection refused", kind), time.monotonic())
            if allowed:
                self.log.warning("connection refused", kind=kind, endpoint=endpoint, suppressed=suppressed)

    def _shutdown(self) -> None:
        """Stop intake, drain queues, flush open segments, publish the final status, close everything."""
        self.notifier.stopping()
        try:
            if self.sockets is not None:
                while (got := self.intake.next()) is not None:
                    self._serve(*got)
                for session in list(self.sessions.values()):
                    self._close(session, "shutdown", time.perf_counter_ns())
        except Exception as exc:  # shutdown must finish whatever happened above
            self.log.error("error while draining", error=f"{type(exc).__name__}: {exc}")
        self._state_override = "stopping"
        if self.sockets is not None:
            self._publish_status()
        if self._metrics is not None:
            self._metrics.close()
        self.supervisor.close()
        if self.sockets is not None:
            self.sockets.close()
        if self._auth is not None:
            self._auth.stop()
        self.ctx.term()
        self.notifier.close()
        self.log.info("stopped", uptime_s=self.telemetry.uptime_s())

    # ---------------------------------------------------------------------------------- reload

    def _reload(self) -> None:
        """SIGHUP: re-read config and model, swap between chunks; keep the old ones on any error."""
        self._reload_requested = False
        self.notifier.reloading()
        self._state_override = "reloading"
        self._publish_status()
        try:
            config = self._reload_config()
            model = load_model(config)
            pipeline = Pipeline.build(config, model, workers=config.backend.workers)
        except Exception as exc:  # whatever failed, the running pipeline stays
            self._state_override = None
            self.supervisor.error = f"reload failed: {exc}"
            self.log.error("reload failed; keeping the running config and model", error=str(exc))
            self.notifier.ready(self._status_line())
            self._publish_status()
            return
        ignored = [key for key in ("input", "output", "curve", "metrics") if getattr(config, key) != getattr(self.config, key)]
        if ignored:
            self.log.warning("reload does not rebind sockets; restart to apply", sections=ignored)
            # what the sockets still run with is what status reports and the decoder enforces
            config = config.model_copy(update={key: getattr(self.config, key) for key in ignored})
            pipeline.config = config
        if config.log != self.config.log:
            setup_logging(config.log.level, config.log.format)
        # open segments were cut for the old model's input and plan: each gets its final decision from the
        # old model, then starts afresh on the new one (counters are kept)
        for session in list(self.sessions.values()):
            if session.segment is not None:
                self._close(session, "reload", time.perf_counter_ns())
        self.config, self.model = config, model
        self.supervisor.replace(pipeline)
        self.supervisor.fallback_to_emulator = config.backend.fallback_to_emulator
        self._state_override = None
        self.log = get_logger(backend=pipeline.backend_name, model=model.card.name, model_hash=model.hash)
        self.supervisor.log = self.log
        self.log.info("reloaded", window_ticks=pipeline.plan.window)
        self.notifier.ready(self._status_line())
        self._publish_status()

    # ------------------------------------------------------------------------- housekeeping

    def _housekeeping(self, now_s: float) -> None:
        """Flush silent streams (final decision) and forget long-silent ones.

        Silence needs an empty queue and no input waiting in the socket: a daemon that was paused (or a
        lossless sender held back by backpressure) must not split a segment that is still arriving.
        """
        if self.sockets is None or self.intake.paused() or self.sockets.inp.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            return
        flush_after = self.config.streams.flush_after_s
        evict_after = self.config.streams.evict_after_s
        for stream, q in list(self.intake.streams.items()):
            session = self.sessions.get(stream)
            silent = now_s - q.last_message_s
            if q.items:
                continue
            if silent >= evict_after and stream != UNKNOWN_STREAM:
                if session is not None and session.segment is not None:
                    self._close(session, "evict", time.perf_counter_ns())
                self._forget(stream)
                self.log.info("stream evicted", stream=stream, silent_s=round(silent, 1))
            elif silent >= flush_after and session is not None and session.segment is not None:
                self._close(session, "flush", time.perf_counter_ns())

    # ----------------------------------------------------------------------------------- status

    def status(self) -> wire.Status:
        """The status heartbeat (docs/protocol.md)."""
        return self.telemetry.status(self.state, self.supervisor, self.intake, self.sessions, self.model, self.publisher)

    def _publish_status(self) -> None:
        self.publisher.send(self.status())
        self.notifier.status(self._status_line())

    def _status_line(self) -> str:
        return self.telemetry.line(self.state, self.supervisor, self.model, len(self.sessions))

    @property
    def status_snapshot(self) -> dict[str, Any]:
        """The last published status (read by the metrics thread; replaced whole, never mutated)."""
        return self.telemetry.snapshot


def _defect(frames: list[bytes]) -> tuple[str, str]:
    """(reason, message) of a message that does not decode."""
    try:
        wire.decode_input(frames)
    except ProtocolError as exc:
        return exc.reason, str(exc)
    return "bad_frames", "message did not decode"


def _no_segments(sensor_size: tuple[int, int], segment_id: str | None) -> Any:
    msg = "no backend is serving: no segment can be opened"
    raise RuntimeError(msg)
