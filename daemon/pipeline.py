"""A resolved configuration with its model and loaded backend: everything the per-packet path reads.

:func:`check_model` is what ``s2gestured check-config`` and the start both run: load the model, create
the backend with its options, translate and map the graph, and check the input and output shapes against
the card. A problem there is a configuration problem (exit 78), never a reason to loop ``degraded``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import os
import signal
import time
import weakref
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from . import wire
from .backends import get_backend, options_from_card
from .card import Model, read_model
from .chunking import ChunkPlan, WindowRun, fit_plan, run_window
from .config import DaemonConfig
from .decision import DecisionParams
from .errors import (
    BackendError,
    ChipMemoryError,
    ConfigError,
    ModelCardError,
    PreprocessError,
    UnsupportedGraphError,
)
from .preprocess import PreprocessSpec, warm_up
from .streams import SessionRules, make_segment_factory
from .wire import WireLimits

DEFAULT_MODEL = "pretrained/psnn_int8.nir"
NO_CLASS_LABEL = "none"
#: errors of the model or its options: the same on every try, so they are configuration errors
MODEL_ERRORS = (UnsupportedGraphError, ChipMemoryError, ModelCardError)
#: backends computed on this machine run on backend.workers worker processes; a board backend drives one
#: device and runs in the daemon's process, whatever backend.workers says
PARALLEL_BACKENDS = frozenset({"emulator", "reference"})


class BackendWorkerError(BackendError):
    """A backend worker process failed a run (its own exception's kind and text), or died."""


@dataclass(frozen=True)
class Outcome:
    """What one backend run of a window gave: its scores, or the exception it raised; how long it took."""

    run: WindowRun | None
    error: BaseException | None
    inference_ms: float


def execute(spikes: np.ndarray, backend: Any) -> Outcome:
    """Run one window on ``backend`` (split to fit the chip); an exception is returned, not raised."""
    t0 = time.perf_counter_ns()
    try:
        run = run_window(spikes, backend)
    except Exception as exc:  # handed to the loop's thread, which decides what a failure means
        return Outcome(None, exc, (time.perf_counter_ns() - t0) / 1e6)
    return Outcome(run, None, (time.perf_counter_ns() - t0) / 1e6)


class Job:
    """One window handed to the backend: finished at once (in the loop's process) or running on a worker."""

    __slots__ = ("_outcome", "_pool", "generation")

    def __init__(self, generation: int, outcome: Outcome | None = None, pool: WorkerPool | None = None) -> None:
        self.generation = generation
        self._outcome = outcome
        self._pool = pool

    def done(self) -> bool:
        """Whether the run has finished (collecting it will not wait)."""
        return self._outcome is not None

    def finish(self, outcome: Outcome) -> None:
        """The worker's answer arrived."""
        self._outcome = outcome

    def outcome(self) -> Outcome:
        """The run's outcome, waiting for it if it still runs."""
        while self._outcome is None:
            assert self._pool is not None  # a job without an outcome runs on a pool (invariant)
            self._pool.wait_any(None)
        return self._outcome


#: the daemon's ends of every worker's pipe: a worker forked later inherits them and must close them, or a
#: worker whose daemon died would never see its pipe close (a sibling would hold it open)
_PARENT_ENDS: weakref.WeakSet[Connection] = weakref.WeakSet()


def _worker_main(conn: Connection, backend: Any, parent_pid: int) -> None:
    """A backend worker process: run the windows that arrive on ``conn`` until it closes or sends None."""
    for other in list(_PARENT_ENDS):
        with contextlib.suppress(OSError):
            other.close()
    # the parent's signal handling (its wakeup fd) is not ours: a SIGTERM to the whole service stops the
    # parent, which drains, then closes this pipe; SIGINT from a terminal likewise
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    while True:
        try:
            while not conn.poll(1.0):
                if os.getppid() != parent_pid:  # the daemon is gone (killed without closing the pipe)
                    return
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        shape, packed = msg
        spikes = np.unpackbits(np.frombuffer(packed, dtype=np.uint8), count=int(np.prod(shape))).reshape(shape)
        outcome = execute(spikes, backend)
        exc = outcome.error
        reply = (
            (outcome.run, None, outcome.inference_ms) if exc is None
            # exceptions of any type may not pickle: their kind and text travel instead
            else (None, (isinstance(exc, ChipMemoryError), f"{type(exc).__name__}: {exc}"), outcome.inference_ms)
        )
        try:
            conn.send(reply)
        except (BrokenPipeError, OSError):
            return


class _Worker:
    __slots__ = ("conn", "job", "proc")

    def __init__(self, proc: Any, conn: Connection) -> None:
        self.proc, self.conn = proc, conn
        self.job: Job | None = None


class WorkerPool:
    """Backend worker processes, forked once the pipeline's backend has loaded (each has its own copy).

    Worker processes, not a thread pool, measured (benchmarks/bench_workers.py and its notes in
    docs/daemon.md): a window spends a third of its time in Python (the chip-memory check, the per-layer
    glue), and with the loop's thread busy decoding packets a thread waiting for the GIL after each kernel
    call ran windows 3x slower than alone, so two threads did not beat one instance. Processes share no
    GIL; forked after the load they start at once with the loaded model and the compiled kernels, and a
    window travels as a packed bit array (51 kB for 200 ticks of 2x32x32).
    """

    def __init__(self, backend: Any, workers: int) -> None:
        ctx = mp.get_context("fork")
        self.workers: list[_Worker] = []
        for i in range(workers):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker_main, args=(child, backend, os.getpid()), name=f"s2gestured-backend-{i}",
                               daemon=True)
            proc.start()
            child.close()
            _PARENT_ENDS.add(parent)
            self.workers.append(_Worker(proc, parent))
        self._idle: deque[_Worker] = deque(self.workers)
        self.size = workers
        self._waiting: deque[tuple[Job, np.ndarray]] = deque()
        self._by_fd = {w.conn.fileno(): w for w in self.workers}

    def submit(self, job: Job, spikes: np.ndarray) -> None:
        """Run ``spikes`` for ``job`` on an idle worker, or queue it for the next one free."""
        if self._idle:
            self._send(self._idle.popleft(), job, spikes)
        else:
            self._waiting.append((job, spikes))

    def _send(self, worker: _Worker, job: Job, spikes: np.ndarray) -> None:
        worker.job = job
        try:
            worker.conn.send((spikes.shape, np.packbits(spikes, axis=None).tobytes()))
        except (BrokenPipeError, OSError):
            self._lost(worker)

    def fds(self) -> list[int]:
        """File descriptors that become readable when a worker answers (for the loop's poller)."""
        return list(self._by_fd)

    def busy(self) -> int:
        """Windows sent to a worker or waiting for one."""
        return sum(w.job is not None for w in self.workers) + len(self._waiting)

    def pump(self) -> None:
        """Take every answer that has arrived (never blocks)."""
        for worker in list(self.workers):
            if worker.job is not None and worker.conn.poll(0):
                self._receive(worker)

    def wait_any(self, timeout_s: float | None) -> None:
        """Block until a worker answers (or ``timeout_s``), then take the answers."""
        busy = [w.conn for w in self.workers if w.job is not None]
        if busy:
            mp_connection.wait(busy, timeout_s)
        self.pump()

    def _receive(self, worker: _Worker) -> None:
        try:
            run, error, ms = worker.conn.recv()
        except (EOFError, OSError):
            self._lost(worker)
            return
        exc: BaseException | None = None
        if error is not None:
            chip_memory, text = error
            exc = ChipMemoryError(text) if chip_memory else BackendWorkerError(text)
        self._done(worker, Outcome(run, exc, ms))

    def _lost(self, worker: _Worker) -> None:
        """A worker died (killed, out of memory): its window fails like a board that stopped answering."""
        worker.proc.join(0.1)
        self.workers.remove(worker)
        self._by_fd.pop(worker.conn.fileno(), None)
        job, worker.job = worker.job, None
        if job is not None:
            job.finish(Outcome(None, BackendWorkerError(f"backend worker exited with code {worker.proc.exitcode}"), 0.0))
        if not self.workers:
            while self._waiting:
                self._waiting.popleft()[0].finish(Outcome(None, BackendWorkerError("no backend worker left"), 0.0))

    def _done(self, worker: _Worker, outcome: Outcome) -> None:
        job, worker.job = worker.job, None
        if job is not None:
            job.finish(outcome)
        if self._waiting:
            nxt, spikes = self._waiting.popleft()
            self._send(worker, nxt, spikes)
        else:
            self._idle.append(worker)

    def close(self) -> None:
        """Stop the workers (they finish the window they run) and reap them."""
        for worker in self.workers:
            with contextlib.suppress(OSError):
                worker.conn.send(None)
        for worker in self.workers:
            worker.proc.join(5.0)
            if worker.proc.is_alive():
                worker.proc.kill()
                worker.proc.join()
            worker.conn.close()


def default_model_path() -> Path:
    """The bundled pretrained model, found as package data of s2gesture.models without importing it."""
    spec = importlib.util.find_spec("s2gesture.models")
    if spec is None or not spec.submodule_search_locations:
        msg = "package s2gesture.models is not installed, so there is no bundled model; set model.path"
        raise ConfigError(msg)
    return Path(next(iter(spec.submodule_search_locations))) / DEFAULT_MODEL


def load_model(config: DaemonConfig) -> Model:
    """Read the configured (or bundled) model and its card."""
    path = Path(config.model.path) if config.model.path else default_model_path()
    return read_model(path, card=config.model.card or None)


def check_model(config: DaemonConfig, model: Model, backend_name: str | None = None) -> Any:
    """Create and load the backend for ``model``; raises ConfigError for anything the config must fix.

    Unsupported nodes, a graph that does not fit the chip, unknown backend options and shapes that disagree
    with the card are configuration errors. Other failures (a board that does not answer) are returned to
    the caller as they are: they may pass on a retry.
    """
    name = backend_name or config.backend.name
    options = {**options_from_card(model.card), **config.backend.options}
    where = f"model {model.card.name} ({model.path}) on backend {name}"
    try:
        backend = get_backend(name, **options)
    except BackendError as exc:
        msg = f"{where}: {exc}; fix backend.options or the card's conversion"
        raise ConfigError(msg) from exc
    try:
        backend.load(model.graph)
    except MODEL_ERRORS as exc:
        backend.close()
        msg = f"{where}: {exc}"
        raise ConfigError(msg) from exc
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
    # each camera's mapping against this model's input (a crop box of the wrong aspect ratio), before serving
    for key in config.model.input_mapping:
        if key != "*":
            try:
                width, height = (int(v) for v in key.lower().split("x"))
                PreprocessSpec.from_card(
                    card_in, (width, height), config.model.input_mapping, anti_flicker_hz=config.input.anti_flicker_hz
                )
            except PreprocessError as exc:
                problems.append(f"model.input_mapping[{key}]: {exc}")
    if problems:
        backend.close()
        msg = f"{where}: " + "; ".join(problems)
        raise ConfigError(msg)
    return backend


@dataclass
class Pipeline:
    """A resolved configuration with its model and loaded backend."""

    config: DaemonConfig
    model: Model
    backend: Any
    backend_name: str
    plan: ChunkPlan
    decision: DecisionParams
    labels: tuple[str, ...]
    model_identity: dict[str, Any]
    limits: WireLimits
    rules: SessionRules
    #: worker processes with their own copy of the loaded backend (None: windows run in this process)
    pool: WorkerPool | None = None

    @classmethod
    def build(cls, config: DaemonConfig, model: Model, backend_name: str | None = None, *, workers: int = 1) -> Pipeline:
        """Create and load the backend for ``model``, warm it up, and fit the chunk plan to it.

        ``workers`` > 1 forks that many backend worker processes (the daemon passes backend.workers; other
        callers run windows in their own process).
        """
        name = backend_name or config.backend.name
        backend = check_model(config, model, name)
        try:
            plan = fit_plan(
                ChunkPlan(config.chunking.window_ticks, config.chunking.stride_ticks, config.chunking.min_activity),
                backend,
            )
            # one run and one preprocessed packet before READY: compiled kernels load now (a second or
            # more from numba's cache), not while the first live packets wait in the socket
            ticks = min(plan.window, 8)
            backend.run(np.zeros((ticks, *backend.input_shape), dtype=np.uint8), record=())
            # a busy window too: a backend may pick other kernels (dense, split runs) for dense input
            busy = np.random.default_rng(0).random((ticks, *backend.input_shape)) < 0.3
            run_window(busy.astype(np.uint8), backend)
            width, height = model.card.input.trained_sensor_size
            warm_up((int(width), int(height)))
            wire.warm_up()
            workers = workers if name in PARALLEL_BACKENDS else 1
            # forked after the warm-up: every worker starts with the model loaded, the kernels compiled
            # and its buffers allocated
            pool = WorkerPool(backend, workers) if workers > 1 else None
        except BaseException:
            backend.close()
            raise
        decision = config.decision.params()
        return cls(
            config=config,
            model=model,
            backend=backend,
            backend_name=name,
            plan=plan,
            decision=decision,
            labels=tuple(model.card.classes),
            model_identity=model.identity,
            limits=WireLimits(
                max_message_bytes=config.input.max_message_bytes,
                max_events=config.input.max_events_per_packet,
                max_sensor_side=config.input.max_sensor_side,
            ),
            rules=SessionRules(
                plan=plan,
                decision=decision,
                max_span_us=int(config.streams.max_packet_span_s * 1e6),
                max_gap_us=int(config.streams.max_gap_s * 1e6),
                none_index=model.card.none_index,
            ),
            pool=pool,
        )

    def segment_factory(self) -> Any:
        """Fresh preprocessing, chunking and decision state for a stream segment of this model."""
        card_input, overrides = self.model.card.input, self.config.model.input_mapping
        hz = self.config.input.anti_flicker_hz
        return make_segment_factory(
            self.rules, lambda sensor: PreprocessSpec.from_card(card_input, sensor, overrides, anti_flicker_hz=hz), self.plan
        )

    def label(self, class_id: int) -> str:
        """The card's label of a class (``none`` for -1: no evidence)."""
        return self.labels[class_id] if 0 <= class_id < len(self.labels) else NO_CLASS_LABEL

    def close(self) -> None:
        """Stop the workers, release the backend."""
        if self.pool is not None:
            self.pool.close()
        self.backend.close()
