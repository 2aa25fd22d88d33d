"""The service: the one place that wires the stages, reading top to bottom as the data flows.

ingest (ZeroMQ, wire.decode_input) -> preprocess (StreamPreprocessor) -> chunk (StreamChunker)
-> run (backend) -> decide (DecisionPolicy) -> publish (pred, gesture, status).

One thread and one poll loop own every socket: the input socket(s), and a socketpair on which signals
arrive (``signal.set_wakeup_fd``) like any other file descriptor. Configuration is resolved once into a
:class:`Pipeline`; the per-packet and per-chunk paths read only its attributes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from . import __version__, wire
from .backends import get_backend, options_from_card
from .card import Model, read_model
from .chunking import ChunkPlan, StreamChunker, chunk_scores, fit_plan, is_active
from .config import DaemonConfig
from .decision import Decision, DecisionParams, DecisionPolicy
from .errors import ConfigError, PreprocessError, ProtocolError, S2GestureError
from .logs import RateLimiter, get_logger, setup_logging
from .preprocess import PreprocessSpec, StreamPreprocessor
from .sdnotify import Notifier
from .streams import LatencyWindow, Queued, Segment, StreamState
from .wire import EosPacket, EventPacket, WireLimits

#: status key for packets whose stream id could not be read (never a valid stream id)
UNKNOWN_STREAM = "*"
#: drop-log key shared by every stream that has not sent one valid packet (rate-limits garbage under made-up ids)
NEVER_VALID = "(never valid)"
DEFAULT_MODEL = "pretrained/psnn_int8.nir"
NO_CLASS_LABEL = "none"


class SocketBindError(S2GestureError):
    """An endpoint could not be bound (in use, no permission): the service cannot start."""


def default_model_path() -> Path:
    """The bundled pretrained model, found as package data of s2gesture.models without importing it."""
    spec = importlib.util.find_spec("s2gesture.models")
    if spec is None or not spec.submodule_search_locations:
        msg = "package s2gesture.models is not installed, so there is no bundled model; set model.path"
        raise ConfigError(msg)
    return Path(next(iter(spec.submodule_search_locations))) / DEFAULT_MODEL


# ------------------------------------------------------------------------------------------ pipeline


@dataclass
class Pipeline:
    """A resolved configuration with its model and loaded backend: everything the hot path reads."""

    config: DaemonConfig
    model: Model
    backend: Any
    backend_name: str
    plan: ChunkPlan
    decision: DecisionParams
    labels: tuple[str, ...]
    model_identity: dict[str, str]
    limits: WireLimits
    max_span_us: int
    max_gap_us: int

    @staticmethod
    def load_model(config: DaemonConfig) -> Model:
        """Read the configured (or bundled) model and its card."""
        path = Path(config.model.path) if config.model.path else default_model_path()
        return read_model(path, card=config.model.card or None)

    @classmethod
    def build(cls, config: DaemonConfig, model: Model, backend_name: str | None = None) -> Pipeline:
        """Create and load the backend for ``model``, warm it up, and fit the chunk plan to it."""
        name = backend_name or config.backend.name
        options = {**options_from_card(model.card), **config.backend.options}
        backend = get_backend(name, **options)
        try:
            backend.load(model.graph)
            plan = fit_plan(
                ChunkPlan(config.chunking.window_ticks, config.chunking.stride_ticks, config.chunking.min_activity),
                backend,
            )
            # one run before READY: compiled kernels load now, not on the first live chunk
            backend.run(np.zeros((min(plan.window, 8), *backend.input_shape), dtype=np.uint8), record=())
        except BaseException:
            backend.close()
            raise
        problems = []
        if int(backend.n_outputs) != len(model.card.classes):
            problems.append(
                f"the graph has {backend.n_outputs} outputs but the card names {len(model.card.classes)} classes; "
                "fix the card's 'classes'"
            )
        card_in = model.card.input
        frame_shape = (int(card_in.channels), int(card_in.height), int(card_in.width))
        if tuple(backend.input_shape) != frame_shape:
            problems.append(
                f"the graph takes input {tuple(backend.input_shape)} but the card's input spec makes {frame_shape} "
                "(channels, height, width); fix the card's 'input'"
            )
        if problems:
            backend.close()
            msg = f"model {model.card.name}: " + "; ".join(problems)
            raise ConfigError(msg)
        return cls(
            config=config,
            model=model,
            backend=backend,
            backend_name=name,
            plan=plan,
            decision=config.decision.params(),
            labels=tuple(model.card.classes),
            model_identity=model.identity,
            limits=WireLimits(
                max_message_bytes=config.input.max_message_bytes,
                max_events=config.input.max_events_per_packet,
                max_sensor_side=config.input.max_sensor_side,
            ),
            max_span_us=int(config.streams.max_packet_span_s * 1e6),
            max_gap_us=int(config.streams.max_gap_s * 1e6),
        )

    def new_segment(self, sensor_size: tuple[int, int], segment_id: str | None) -> Segment:
        """Fresh preprocessing, chunking and decision state for a stream of this sensor size."""
        spec = PreprocessSpec.from_card(self.model.card.input, sensor_size)
        return Segment(
            sensor_size=sensor_size,
            # the daemon ends a segment itself on gaps over max_gap_us, so the preprocessor's own guard
            # must allow that gap plus one packet's span (its default, 10 s, would refuse longer settings)
            preprocessor=StreamPreprocessor(spec, max_gap_us=self.max_gap_us + self.max_span_us),
            chunker=StreamChunker(self.plan, spec.frame_shape),
            policy=DecisionPolicy(self.decision),
            segment_id=segment_id,
            dt_us=spec.dt_us,
        )

    def label(self, class_id: int) -> str:
        """The card's label of a class (``none`` for -1: no evidence)."""
        return self.labels[class_id] if 0 <= class_id < len(self.labels) else NO_CLASS_LABEL

    def close(self) -> None:
        """Release the backend."""
        self.backend.close()


@dataclass(frozen=True)
class Intake:
    """Input bounds, resolved once at start (they belong to the sockets, which a reload does not rebind)."""

    lossless: bool
    queue_packets: int
    max_lag_us: int
    max_queued_events: int
    max_streams: int

    @classmethod
    def from_config(cls, config: DaemonConfig) -> Intake:
        """The intake bounds of ``config``."""
        i = config.input
        return cls(i.mode == "lossless", i.queue_packets, int(i.max_lag_ms * 1000), i.max_queued_events, i.max_streams)


# ------------------------------------------------------------------------------------------- sockets


def _apply_curve(sock: zmq.Socket[Any], config: DaemonConfig) -> None:
    curve = config.curve
    if curve.server_secret_key is None:
        return
    sock.curve_server = True
    sock.curve_secretkey = curve.server_secret_key.get_secret_value().encode()
    if curve.server_public_key:
        sock.curve_publickey = curve.server_public_key.encode()


def _ipc_in_use(endpoint: str) -> bool:
    """Whether a live process listens on an ipc:// path (ZeroMQ would silently take the path over)."""
    path = endpoint[len("ipc://") :]
    if not os.path.exists(path):
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(0.5)
        probe.connect(path)
    except OSError:
        return False  # a stale file from a process that is gone: binding replaces it
    finally:
        probe.close()
    return True


def _attach(sock: zmq.Socket[Any], bind: tuple[str, ...], connect: tuple[str, ...]) -> None:
    for endpoint in bind:
        if endpoint.startswith("ipc://") and _ipc_in_use(endpoint):
            msg = f"cannot bind {endpoint}: another process is listening there (is another s2gestured running?)"
            raise SocketBindError(msg)
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            msg = f"cannot bind {endpoint}: {exc}; is another s2gestured running there?"
            raise SocketBindError(msg) from exc
    for endpoint in connect:
        try:
            sock.connect(endpoint)
        except zmq.ZMQError as exc:
            msg = f"cannot connect to {endpoint}: {exc}; a connect endpoint needs a concrete host and port"
            raise SocketBindError(msg) from exc


def open_sockets(ctx: zmq.Context[Any], config: DaemonConfig) -> tuple[zmq.Socket[Any], zmq.Socket[Any]]:
    """The input (SUB in live mode, PULL in lossless mode) and output (PUB) sockets, bound and connected."""
    inp = ctx.socket(zmq.SUB if config.input.mode == "live" else zmq.PULL)
    out = ctx.socket(zmq.PUB)
    try:
        inp.setsockopt(zmq.LINGER, 0)
        inp.setsockopt(zmq.MAXMSGSIZE, config.input.max_message_bytes)
        inp.setsockopt(zmq.RCVHWM, config.input.rcvhwm)
        inp.setsockopt(zmq.RECONNECT_IVL_MAX, 5000)
        inp.setsockopt(zmq.HEARTBEAT_IVL, 5000)
        inp.setsockopt(zmq.HEARTBEAT_TIMEOUT, 15000)
        if config.input.mode == "live":
            inp.setsockopt(zmq.SUBSCRIBE, wire.INPUT_PREFIX.encode())
        _apply_curve(inp, config)
        # a short linger lets the final status leave without ever hanging shutdown
        out.setsockopt(zmq.LINGER, 500)
        out.setsockopt(zmq.SNDHWM, config.output.sndhwm)
        out.setsockopt(zmq.HEARTBEAT_IVL, 5000)
        out.setsockopt(zmq.HEARTBEAT_TIMEOUT, 15000)
        _apply_curve(out, config)
        _attach(inp, config.input.bind, config.input.connect)
        _attach(out, config.output.bind, config.output.connect)
    except BaseException:
        # an open socket would block ctx.term() at shutdown forever
        inp.close(0)
        out.close(0)
        raise
    return inp, out


def start_authenticator(ctx: zmq.Context[Any], config: DaemonConfig) -> Any:
    """The ZAP handler with the allow-list of client public keys (only when CURVE is configured)."""
    if config.curve.server_secret_key is None:
        return None
    from zmq.auth.thread import ThreadAuthenticator

    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve_callback(domain="*", credentials_provider=_AllowList(config.curve.client_public_keys))
    return auth


class _AllowList:
    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = {k.encode() for k in keys}

    def callback(self, domain: str, key: bytes) -> bool:
        from zmq.utils import z85

        return z85.encode(key) in self.keys if len(key) == 32 else key in self.keys


# ------------------------------------------------------------------------------------------- service


class Service:
    """The daemon: one poll loop over the input socket(s) and the signal socketpair."""

    def __init__(
        self,
        config: DaemonConfig,
        reload_config: Callable[[], DaemonConfig],
        notifier: Notifier | None = None,
    ) -> None:
        self.config = config
        self._reload_config = reload_config
        self.notifier = notifier or Notifier()
        self.log = get_logger()
        self.state = "loading"
        self.streams: dict[str, StreamState] = {}
        self.pipeline: Pipeline | None = None
        self.model: Model | None = None
        self.e2e = LatencyWindow()
        self.inference = LatencyWindow()
        self._started = time.monotonic()
        self._stop = False
        self._reload_requested = False
        self._drop_log = RateLimiter(config.log.drop_log_interval_s)
        #: drops counted by streams that were evicted since (their counters leave with them)
        self._dropped_gone: Counter[str] = Counter()
        self._retry_at: float | None = None
        self._retry_delay = config.backend.retry_initial_s
        self._last_error = ""
        self._status_snapshot: dict[str, Any] = {}
        self._packets_total = 0
        self._events_total = 0
        self._queued_events = 0
        self._intake = Intake.from_config(config)
        self._rate = (time.monotonic(), 0)
        self.ctx: zmq.Context[Any] = zmq.Context()
        self.inp: zmq.Socket[Any] | None = None
        self.out: zmq.Socket[Any] | None = None
        self._auth: Any = None
        self._metrics: Any = None

    # -------------------------------------------------------------------------------- lifecycle

    def run(self) -> int:
        """Start, serve until SIGTERM/SIGINT, shut down; returns the exit code."""
        sig_r, sig_w = socket.socketpair()
        sig_r.setblocking(False)
        sig_w.setblocking(False)
        old_handlers = self._install_signals(sig_w)
        try:
            self._start()
            self._loop(sig_r)
            return 0
        finally:
            self._shutdown()
            signal.set_wakeup_fd(-1)
            for signum, handler in old_handlers.items():
                signal.signal(signum, handler)
            sig_r.close()
            sig_w.close()

    def _install_signals(self, sig_w: socket.socket) -> dict[int, Any]:
        # Handlers do nothing: set_wakeup_fd writes the signal number to the socketpair, and the poll loop
        # reads it like any other input. Python handlers are still needed so the default action is not taken.
        old: dict[int, Any] = {}
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            old[signum] = signal.signal(signum, lambda *_: None)
        signal.set_wakeup_fd(sig_w.fileno(), warn_on_full_buffer=False)
        return old

    def _start(self) -> None:
        config = self.config
        self.log = get_logger(backend=config.backend.name)
        self.model = Pipeline.load_model(config)
        self.log = self.log.bind(model=self.model.card.name, model_hash=self.model.hash)
        self._auth = start_authenticator(self.ctx, config)
        self.inp, self.out = open_sockets(self.ctx, config)
        self._publish_status()  # "loading": lets clients see the daemon while a board loads
        self.notifier.extend_timeout(120)  # a board load can outlast TimeoutStartSec
        self._load_backend(config, self.model)
        if config.metrics.enabled:
            from .metrics import start_metrics

            try:
                self._metrics = start_metrics(self, config.metrics.address, config.metrics.port)
            except OSError as exc:
                msg = f"cannot serve metrics on {config.metrics.address}:{config.metrics.port}: {exc}; pick a free metrics.port"
                raise SocketBindError(msg) from exc
        if self.pipeline is not None:
            self.notifier.ready(self._status_line())
        self.log.info(
            "started",
            state=self.state,
            mode=config.input.mode,
            input=list(config.input.bind + config.input.connect),
            output=list(config.output.bind + config.output.connect),
            window_ticks=None if self.pipeline is None else self.pipeline.plan.window,
            startup_s=round(time.monotonic() - self._started, 3),
        )
        self._publish_status()

    def _load_backend(self, config: DaemonConfig, model: Model) -> None:
        """Load the configured backend; on failure go degraded, retry later, optionally fall back."""
        try:
            self.pipeline = Pipeline.build(config, model)
            self.state = "ready"
            self._retry_at = None
            self._retry_delay = config.backend.retry_initial_s
            self._last_error = ""
            return
        except ConfigError:
            raise
        except Exception as exc:  # a board SDK can fail in any way; the daemon must stay up and say so
            self._backend_failed(config, f"{type(exc).__name__}: {exc}")

    def _fall_back(self, config: DaemonConfig, model: Model) -> None:
        """Serve on the emulator while the configured backend is down (when configured to)."""
        current = self.pipeline.backend_name if self.pipeline is not None else None
        if not config.backend.fallback_to_emulator or config.backend.name == "emulator" or current == "emulator":
            return
        try:
            fallback = Pipeline.build(config, model, backend_name="emulator")
        except Exception as exc:  # nothing left to serve with: stay degraded and keep retrying
            self._last_error += f"; emulator fallback failed: {type(exc).__name__}: {exc}"
            self.log.error("emulator fallback failed", error=str(exc))
            return
        if self.pipeline is not None:
            self.pipeline.close()
        self.pipeline = fallback
        # open segments were cut for the failed backend's plan; it cannot run their rest, so they are dropped
        for state in self.streams.values():
            state.segment = None
        self.log.warning("serving on the emulator fallback", failed_backend=config.backend.name)

    def _backend_failed(self, config: DaemonConfig, error: str) -> None:
        self.state = "degraded"
        self._last_error = error
        self._retry_at = time.monotonic() + self._retry_delay
        self.log.error("backend failed", error=error, retry_in_s=round(self._retry_delay, 2))
        self._retry_delay = min(self._retry_delay * 2, config.backend.retry_max_s)
        self.notifier.status(f"degraded: {error[:200]}")
        if self.model is not None:
            self._fall_back(config, self.model)

    def _loop(self, sig_r: socket.socket) -> None:
        assert self.inp is not None  # opened by _start (invariant)
        poller = zmq.Poller()
        poller.register(self.inp, zmq.POLLIN)
        poller.register(sig_r.fileno(), zmq.POLLIN)
        interval = self.config.output.status_interval_s
        next_status = time.monotonic() + interval
        next_housekeeping = time.monotonic() + 0.5
        watchdog_every = (self.notifier.watchdog_s or 0) / 3 or None
        last_ping = 0.0
        while not self._stop:
            now = time.monotonic()
            wake = min(next_status, next_housekeeping, self._retry_at or next_status)
            if watchdog_every is not None:
                wake = min(wake, last_ping + watchdog_every)
            ready = dict(poller.poll(max(0, int((wake - now) * 1000)) if not self._pending() else 0))
            if sig_r.fileno() in ready:
                self._read_signals(sig_r)
            if self.inp in ready:
                self._ingest()
            self._process_queues()
            now = time.monotonic()
            if self._reload_requested:
                self._reload()
            if self._retry_at is not None and now >= self._retry_at:
                self._retry_backend()
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

    def _pending(self) -> bool:
        return any(s.queue for s in self.streams.values())

    def _read_signals(self, sig_r: socket.socket) -> None:
        try:
            data = sig_r.recv(64)
        except BlockingIOError:
            return
        for signum in data:
            if signum in (signal.SIGTERM, signal.SIGINT):
                self.log.info("stopping", signal=signal.Signals(signum).name)
                self._stop = True
            elif signum == signal.SIGHUP:
                self._reload_requested = True

    def _shutdown(self) -> None:
        """Stop intake, drain queues, flush open segments, publish the final status, close everything."""
        self.notifier.stopping()
        self.state = "stopping"
        try:
            if self.out is not None:
                self._process_queues()
                for state in list(self.streams.values()):
                    self._finish_segment(state, reason="shutdown")
                self._publish_status()
        except Exception as exc:  # shutdown must finish whatever happened above
            self.log.error("error while draining", error=f"{type(exc).__name__}: {exc}")
        if self._metrics is not None:
            self._metrics.close()
        if self.pipeline is not None:
            self.pipeline.close()
        for sock in (self.inp, self.out):
            if sock is not None:
                sock.close()
        if self._auth is not None:
            self._auth.stop()
        self.ctx.term()
        self.notifier.close()
        self.log.info("stopped", uptime_s=round(time.monotonic() - self._started, 3))

    # ---------------------------------------------------------------------------------- reload

    def _reload(self) -> None:
        """SIGHUP: re-read config and model, swap between chunks; keep the old ones on any error."""
        self._reload_requested = False
        self.notifier.reloading()
        previous_state, self.state = self.state, "reloading"
        self._publish_status()
        try:
            config = self._reload_config()
            model = Pipeline.load_model(config)
            pipeline = Pipeline.build(config, model)
        except Exception as exc:  # whatever failed, the running pipeline stays
            self.state = previous_state
            self._last_error = f"reload failed: {exc}"
            self.log.error("reload failed; keeping the running config and model", error=str(exc))
            self.notifier.ready(self._status_line())
            self._publish_status()
            return
        ignored = [
            key
            for key in ("input", "output", "curve", "metrics")
            if getattr(config, key) != getattr(self.config, key)
        ]
        if ignored:
            self.log.warning("reload does not rebind sockets; restart to apply", sections=ignored)
            # what the sockets still run with is what status reports and the decoder enforces
            config = config.model_copy(update={key: getattr(self.config, key) for key in ignored})
        if config.log != self.config.log:
            setup_logging(config.log.level, config.log.format)
        # open segments were cut for the old model's input and plan: each gets its final decision from the
        # old model, then starts afresh on the new one (counters are kept)
        self._close_open_segments(reason="reload")
        old = self.pipeline
        self.config, self.model, self.pipeline = config, model, pipeline
        if old is not None:
            old.close()
        self.state = "ready"
        self._retry_at = None
        self._last_error = ""
        self.log = get_logger(backend=pipeline.backend_name, model=model.card.name, model_hash=model.hash)
        self.log.info("reloaded", window_ticks=pipeline.plan.window)
        self.notifier.ready(self._status_line())
        self._publish_status()

    def _retry_backend(self) -> None:
        assert self.model is not None
        self._retry_at = None
        self.log.info("retrying backend", backend=self.config.backend.name)
        fallback = self.pipeline
        try:
            pipeline = Pipeline.build(self.config, self.model)
        except Exception as exc:  # a board SDK can fail in any way
            self._backend_failed(self.config, f"{type(exc).__name__}: {exc}")
            return
        if fallback is not None:
            fallback.close()
        first = self.pipeline is None
        self.pipeline, self.state, self._last_error = pipeline, "ready", ""
        self._retry_delay = self.config.backend.retry_initial_s
        self.log.info("backend recovered")
        if first:
            self.notifier.ready(self._status_line())
        else:
            self.notifier.status(self._status_line())

    # ---------------------------------------------------------------------------------- ingest

    def _stream(self, stream_id: str, now_s: float) -> StreamState | None:
        state = self.streams.get(stream_id)
        if state is None:
            if len(self.streams) >= self._intake.max_streams + 1 and not self._evict_garbage_stream():
                return None
            state = self.streams[stream_id] = StreamState(stream_id, now_s, now_s)
        return state

    def _evict_garbage_stream(self) -> bool:
        """Make room by forgetting the longest-silent stream that never sent a valid packet.

        Without this, hostile input under many made-up stream ids would lock real cameras out until eviction.
        """
        garbage = [s for s in self.streams.values() if s.stream != UNKNOWN_STREAM and s.packets == 0 and not s.queue]
        if not garbage:
            return False
        victim = min(garbage, key=lambda s: s.last_packet_s)
        self._dropped_gone.update(victim.dropped)
        del self.streams[victim.stream]
        self._drop_log.forget(victim.stream)
        return True

    def _ingest(self) -> None:
        """Read what the input socket holds (bounded), validate, and queue per stream."""
        assert self.inp is not None  # opened by _start (invariant)
        intake = self._intake
        limits = self.pipeline.limits if self.pipeline is not None else wire.DEFAULT_LIMITS
        now_s = time.monotonic()
        for _ in range(10_000):
            try:
                frames = self.inp.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            received_ns = time.perf_counter_ns()
            try:
                packet = wire.decode_input(frames, limits)
            except ProtocolError as exc:
                sid = wire.topic_stream(frames[0]) if frames else None
                self._reject(sid or UNKNOWN_STREAM, exc.reason, str(exc), now_s)
                continue
            state = self._stream(packet.stream, now_s)
            if state is None:
                self._reject(UNKNOWN_STREAM, "too_many_streams", f"stream {packet.stream}: limit reached", now_s)
                continue
            state.last_packet_s = now_s
            state.note_seq(packet.seq)
            self._enqueue(state, Queued(packet, received_ns))
            if intake.lossless:
                if len(state.queue) >= intake.queue_packets or self._queued_events >= intake.max_queued_events:
                    return  # stop reading: ZeroMQ's high-water mark now slows the sender
            else:
                self._bound_live_queue(state, intake.queue_packets, intake.max_lag_us)
                while self._queued_events > intake.max_queued_events:
                    # over the global bound: the longest queue loses its oldest packet
                    longest = max(self.streams.values(), key=lambda s: sum(isinstance(q.packet, EventPacket) for q in s.queue))
                    if not self._drop_oldest_events(longest):
                        break
                    longest.drop("queue_full")

    def _enqueue(self, state: StreamState, item: Queued) -> None:
        state.queue.append(item)
        if isinstance(item.packet, EventPacket):
            self._queued_events += len(item.packet.events)

    def _dequeue(self, state: StreamState) -> Queued:
        item = state.queue.popleft()
        if isinstance(item.packet, EventPacket):
            self._queued_events -= len(item.packet.events)
        return item

    def _bound_live_queue(self, state: StreamState, bound: int, max_lag_us: int) -> None:
        """Live mode: drop the OLDEST queued event data past the queue bound or the maximum lag, counted.

        An eos is never dropped: it carries no events, and losing it would cost the segment its final
        decision (it would only come, later, from the silence flush).
        """
        queue = state.queue
        while len(queue) > bound and self._drop_oldest_events(state):
            state.drop("queue_full")
        newest = queue[-1].packet
        if not isinstance(newest, EventPacket) or not len(newest.events):
            return
        t_newest = int(newest.events["t"][-1])
        while len(queue) > 1:
            oldest = next((item.packet for item in queue if isinstance(item.packet, EventPacket)), None)
            if oldest is None or oldest is newest or not len(oldest.events):
                break
            if t_newest - int(oldest.events["t"][0]) <= max_lag_us:
                break
            self._drop_oldest_events(state)
            state.drop("lag")

    def _drop_oldest_events(self, state: StreamState) -> bool:
        """Remove the oldest queued event packet of ``state`` (eos packets stay); False when there is none."""
        for i, item in enumerate(state.queue):
            if isinstance(item.packet, EventPacket):
                del state.queue[i]
                self._queued_events -= len(item.packet.events)
                return True
        return False

    def _reject(self, stream_id: str, reason: str, message: str, now_s: float) -> None:
        state = self._stream(stream_id, now_s) or self._stream(UNKNOWN_STREAM, now_s)
        if state is None:
            state = self.streams.setdefault(UNKNOWN_STREAM, StreamState(UNKNOWN_STREAM, now_s, now_s))
        state.drop(reason)
        # streams that never sent a valid packet share one key per reason: garbage under ever new stream ids
        # (each evicting the last) would otherwise log every packet
        key_stream = state.stream if state.packets else NEVER_VALID
        allowed, suppressed = self._drop_log.allow((key_stream, reason), now_s)
        if allowed:
            self.log.warning("packet dropped", stream=stream_id, reason=reason, detail=message[:200], suppressed=suppressed)

    # ------------------------------------------------------------------------ process a stream

    def _process_queues(self) -> None:
        for state in list(self.streams.values()):
            while state.queue:
                item = self._dequeue(state)
                if isinstance(item.packet, EosPacket):
                    self._finish_segment(state, reason="eos", eos=item.packet, received_ns=item.received_ns)
                else:
                    self._process_packet(state, item.packet, item.received_ns)

    def _process_packet(self, state: StreamState, packet: EventPacket, received_ns: int) -> None:
        """ingest -> preprocess -> chunk -> run -> decide -> publish, for one accepted packet."""
        pipeline = self.pipeline
        if pipeline is None:
            state.drop("no_backend")
            return
        events = packet.events
        first_t = int(events["t"][0]) if len(events) else packet.t_end_us
        last_t = packet.t_end_us if packet.t_end_us is not None else (int(events["t"][-1]) if len(events) else None)
        if first_t is not None and last_t is not None and last_t - first_t > pipeline.max_span_us:
            # ticks are materialised for the whole span: a packet claiming hours would exhaust memory
            msg = f"packet spans {last_t - first_t} µs, the limit is streams.max_packet_span_s"
            self._reject(state.stream, "bad_time", msg, time.monotonic())
            return
        sensor = (packet.width, packet.height)
        seg = state.segment
        if seg is not None and (seg.sensor_size != sensor or seg.segment_id != packet.segment):
            # a new sensor or a new segment id closes the previous segment as an eos would
            self._finish_segment(state, reason="segment_change")
            seg = None
        if seg is not None and first_t is not None and seg.t_floor_us >= 0 and first_t - seg.t_floor_us > pipeline.max_gap_us:
            # a long silence in event time ends the segment instead of filling the gap with empty ticks
            self._finish_segment(state, reason="time_gap")
            seg = None
        if seg is None:
            try:
                seg = state.segment = pipeline.new_segment(sensor, packet.segment)
            except PreprocessError as exc:  # e.g. a sensor smaller than a crop mapping needs
                self._reject(state.stream, "bad_sensor", str(exc), time.monotonic())
                return
            state.closed_unanswered = None
        if first_t is not None and first_t < seg.t_floor_us:
            # out-of-order time: the packet is dropped and the stream's window starts over
            self._reject(state.stream, "time_backwards", f"t={first_t} µs < {seg.t_floor_us} µs", time.monotonic())
            self._finish_segment(state, reason="time_backwards")
            return
        try:
            ticks = seg.preprocessor.push(events, packet.t_end_us)
        except PreprocessError as exc:
            self._reject(state.stream, "preprocess", str(exc), time.monotonic())
            self._finish_segment(state, reason="preprocess_error")
            return
        state.packets += 1
        state.events += len(events)
        self._packets_total += 1
        self._events_total += len(events)
        if len(events):
            seg.t_floor_us = max(seg.t_floor_us, int(events["t"][-1]))
        if packet.t_end_us is not None:
            seg.t_floor_us = max(seg.t_floor_us, packet.t_end_us)
        seg.last_seq = packet.seq
        if len(ticks):
            for start, stop, window in seg.chunker.push(ticks):
                self._run_chunk(state, seg, pipeline, start, stop, window, received_ns)

    def _run_chunk(
        self,
        state: StreamState,
        seg: Segment,
        pipeline: Pipeline,
        start: int,
        stop: int,
        window: np.ndarray,
        received_ns: int,
    ) -> None:
        """run -> decide -> publish for one window."""
        t_start_us, t_end_us = seg.tick_time_us(start), seg.tick_time_us(stop)
        if not is_active(window, pipeline.plan):
            state.chunks_skipped += 1
            self._decide(state, seg, pipeline, np.zeros(len(pipeline.labels)), t_start_us, t_end_us)
            return
        t0 = time.perf_counter_ns()
        try:
            result = pipeline.backend.run(window, record=())
        except Exception as exc:  # the board can fail mid-run: degrade, retry, never die
            state.chunks_failed += 1
            if self.state != "degraded":
                self._backend_failed(self.config, f"run failed: {type(exc).__name__}: {exc}")
            return
        t1 = time.perf_counter_ns()
        scores = chunk_scores(result.output_spikes)
        state.chunks += 1
        self.inference.add((t1 - t0) / 1e6)
        decision = seg.policy.update(scores, t_start_us, t_end_us)
        top = int(np.argmax(scores))
        total = float(scores.sum())
        self._send(
            wire.pred_topic(state.stream),
            {
                "v": wire.VERSION,
                "stream": state.stream,
                "seq": seg.last_seq,
                "chunk": state.chunks,
                "t_start": t_start_us,
                "t_end": t_end_us,
                "scores": scores.tolist(),
                "class_id": top if total > 0 else -1,
                "label": pipeline.label(top if total > 0 else -1),
                "confidence": round(float(scores[top] / total), 6) if total > 0 else 0.0,
                **({"segment": seg.segment_id} if seg.segment_id is not None else {}),
                "latency_ms": round((time.perf_counter_ns() - received_ns) / 1e6, 3),
                "backend": pipeline.backend_name,
                "model": pipeline.model_identity,
            },
        )
        self.e2e.add((time.perf_counter_ns() - received_ns) / 1e6)
        if decision is not None:
            self._publish_gesture(state, seg.segment_id, seg.last_seq, pipeline, decision)

    def _decide(
        self, state: StreamState, seg: Segment, pipeline: Pipeline, scores: np.ndarray, t0: int, t1: int
    ) -> None:
        decision = seg.policy.update(scores, t0, t1)
        if decision is not None:
            self._publish_gesture(state, seg.segment_id, seg.last_seq, pipeline, decision)

    def _finish_segment(
        self, state: StreamState, *, reason: str, eos: EosPacket | None = None, received_ns: int | None = None
    ) -> None:
        """eos (or flush): run what the stream holds, publish the final decision, start a new segment."""
        seg, pipeline = state.segment, self.pipeline
        state.segment = None
        if pipeline is None:
            return
        received_ns = time.perf_counter_ns() if received_ns is None else received_ns
        if seg is None:
            if eos is None:
                return
            closed = state.closed_unanswered
            state.closed_unanswered = None
            if closed is not None and (eos.segment is None or eos.segment == closed[0]):
                # the segment was already closed (silence, gap, shutdown): its eos repeats that answer
                self._publish_gesture(state, closed[0], eos.seq, pipeline, closed[1])
                return
            # an eos with nothing before it still gets its answer: no evidence (class -1)
            final = DecisionPolicy(pipeline.decision).final()
            self._publish_gesture(state, eos.segment, eos.seq, pipeline, final)
            return
        ticks = seg.preprocessor.flush()
        windows = seg.chunker.push(ticks) if len(ticks) else []
        windows += seg.chunker.finish()
        for start, stop, window in windows:
            self._run_chunk(state, seg, pipeline, start, stop, window, received_ns)
        seq = eos.seq if eos is not None else seg.last_seq
        segment_id = seg.segment_id if seg.segment_id is not None else (eos.segment if eos is not None else None)
        final = seg.policy.final()
        self._publish_gesture(state, segment_id, seq, pipeline, final)
        state.closed_unanswered = None if reason == "eos" else (segment_id, final)
        if reason != "eos":
            self.log.info("segment closed", stream=state.stream, reason=reason)

    def _close_open_segments(self, reason: str) -> None:
        """Finish every open segment (final decision published; a later eos repeats it)."""
        for state in self.streams.values():
            if state.segment is not None:
                self._finish_segment(state, reason=reason)

    def _publish_gesture(
        self, state: StreamState, segment_id: str | None, seq: int, pipeline: Pipeline, decision: Decision
    ) -> None:
        state.gestures += 1
        body: dict[str, Any] = {
            "v": wire.VERSION,
            "stream": state.stream,
            "seq": seq,
            "class_id": decision.class_id,
            "label": pipeline.label(decision.class_id),
            "confidence": round(decision.confidence, 6),
            "t_start": decision.t_start_us,
            "t_end": decision.t_end_us,
            "final": decision.final,
            "n_chunks": decision.n_chunks,
            "backend": pipeline.backend_name,
            "model": pipeline.model_identity,
        }
        if segment_id is not None:
            body["segment"] = segment_id
        self._send(wire.gesture_topic(state.stream), body)
        if not decision.final:
            self.log.info("gesture", stream=state.stream, label=body["label"], confidence=body["confidence"])

    def _send(self, topic: bytes, body: dict[str, Any]) -> None:
        assert self.out is not None
        # PUB never blocks: a slow subscriber loses messages at its high-water mark, the daemon does not wait
        with contextlib.suppress(zmq.Again):
            self.out.send_multipart(wire.encode_output(topic, body), zmq.NOBLOCK)

    # ------------------------------------------------------------------------- housekeeping

    def _housekeeping(self, now_s: float) -> None:
        """Flush silent streams (final decision) and evict long-silent ones."""
        flush_after = self.config.streams.flush_after_s
        evict_after = self.config.streams.evict_after_s
        for sid, state in list(self.streams.items()):
            silent = now_s - state.last_packet_s
            if silent >= evict_after and not state.queue:
                if state.segment is not None:
                    self._finish_segment(state, reason="evict")
                self._dropped_gone.update(state.dropped)
                del self.streams[sid]
                self._drop_log.forget(sid)
                self.log.info("stream evicted", stream=sid, silent_s=round(silent, 1))
            elif silent >= flush_after and state.segment is not None and not state.queue:
                self._finish_segment(state, reason="flush")

    def status_body(self) -> dict[str, Any]:
        """The status heartbeat (PROTOCOL.md)."""
        now = time.monotonic()
        p = self.pipeline
        # every drop since start, evicted streams included
        dropped = Counter(self._dropped_gone)
        for stream in self.streams.values():
            dropped.update(stream.dropped)
        body: dict[str, Any] = {
            "v": wire.VERSION,
            "state": self.state,
            "uptime_s": round(now - self._started, 3),
            "backend": p.backend_name if p is not None else self.config.backend.name,
            "model": self.model.identity if self.model is not None else None,
            "streams": {sid: s.summary(now) for sid, s in self.streams.items()},
            "totals": {
                "packets": self._packets_total,
                "events": self._events_total,
                "dropped": sum(dropped.values()),
                "dropped_by_reason": dict(dropped),
            },
            "latency_ms": self.e2e.percentiles(),
            "inference_ms": self.inference.percentiles(),
            "mode": self.config.input.mode,
            "window_ticks": p.plan.window if p is not None else None,
            "stride_ticks": p.plan.stride if p is not None else None,
            "pid": os.getpid(),
            "version": __version__,
        }
        if self._last_error:
            body["error"] = self._last_error[:500]
        return body

    def _publish_status(self) -> None:
        body = self.status_body()
        self._status_snapshot = body
        if self.out is not None:
            self._send(wire.status_topic(), body)
        self.notifier.status(self._status_line())

    def _status_line(self) -> str:
        t, n = self._rate
        now = time.monotonic()
        rate = (self._events_total - n) / max(1e-9, now - t)
        self._rate = (now, self._events_total)
        name = self.model.card.name if self.model is not None else "?"
        backend = self.pipeline.backend_name if self.pipeline is not None else self.config.backend.name
        return f"{self.state}: {backend}, model {name}, {len(self.streams)} streams, {rate:,.0f} events/s"

    @property
    def status_snapshot(self) -> dict[str, Any]:
        """The last published status (read by the metrics thread; replaced whole, never mutated)."""
        return self._status_snapshot
