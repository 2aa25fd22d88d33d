"""The backend supervisor: which pipeline serves, and what happens when its backend fails.

States: ``loading`` (before the first build), ``ready``, ``degraded`` (the configured backend failed; it
is retried with exponential backoff, and with ``fallback_to_emulator`` the emulator serves meanwhile).

A window whose spikes do not fit the chip is NOT a failure: :func:`chunking.run_window` splits it into
runs that fit (or thins one tick), the pred says ``runs``, and the counters say how often. Only an error
of the backend itself degrades the daemon. The clock is injected so the retry schedule is tested without
waiting.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from .chunking import WindowRun
from .errors import ChipMemoryError, ConfigError
from .pipeline import Job, Pipeline, WorkerPool, execute

#: (backend name or None for the configured one) -> a built pipeline
Builder = Callable[["str | None"], Pipeline]


class BackendSupervisor:
    """Builds, runs, retries and falls back; ``generation`` changes whenever the serving pipeline does.

    Runs go through :meth:`submit` and :meth:`collect`. Without a worker pool (one worker, or a backend
    that drives one board) a window runs inside ``submit``. With one, windows of different streams run
    at once on the pipeline's worker processes while the loop's thread decodes, preprocesses, decides
    and publishes. ``collect`` is called on the loop's thread only, so the failure handling (degrade,
    retry, fall back) never runs concurrently with anything.
    """

    def __init__(
        self,
        build: Builder,
        *,
        backend_name: str,
        fallback_to_emulator: bool,
        retry_initial_s: float,
        retry_max_s: float,
        clock: Callable[[], float] = time.monotonic,
        log: Any = None,
    ) -> None:
        self._build = build
        self.backend_name = backend_name
        self.fallback_to_emulator = fallback_to_emulator
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self._clock = clock
        self.log = log
        self.state = "loading"
        self.pipeline: Pipeline | None = None
        self.error = ""
        self.retry_at: float | None = None
        self._retry_delay = retry_initial_s
        self.generation = 0
        self.counters: Counter[str] = Counter()

    # ------------------------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """The first build; a ConfigError (the model or its options) propagates, anything else degrades."""
        try:
            self._serve(self._build(None))
        except ConfigError:
            raise
        except Exception as exc:  # a board SDK can fail in any way; the daemon must stay up and say so
            self._failed(f"{type(exc).__name__}: {exc}")

    def tick(self) -> None:
        """Retry the configured backend when its backoff has passed."""
        if self.retry_at is None or self._clock() < self.retry_at:
            return
        self.retry_at = None
        self._log("info", "retrying backend", backend=self.backend_name)
        try:
            pipeline = self._build(None)
        except Exception as exc:  # a board SDK can fail in any way
            self._failed(f"{type(exc).__name__}: {exc}")
            return
        self._serve(pipeline)
        self._log("info", "backend recovered", backend=self.backend_name)

    def replace(self, pipeline: Pipeline) -> None:
        """Serve ``pipeline`` (a reload) instead of the current one."""
        self.backend_name = pipeline.backend_name
        self._serve(pipeline)

    def close(self) -> None:
        """Wait for the runs in flight, release the serving backend and its workers."""
        self.quiesce()
        if self.pipeline is not None:
            self.pipeline.close()
            self.pipeline = None

    # ---------------------------------------------------------------------------------------- runs

    def run(self, spikes: np.ndarray) -> WindowRun | None:
        """Scores of one window (split into runs that fit the chip); None when the backend failed."""
        job = self.submit(spikes)
        return None if job is None else self.collect(job)[0]

    def submit(self, spikes: np.ndarray) -> Job | None:
        """Start one window's run (on a worker when the pipeline has them); None when no backend serves."""
        pipeline = self.pipeline
        if pipeline is None:
            return None
        pool = pipeline.pool
        if pool is None:
            return Job(self.generation, outcome=execute(spikes, pipeline.backend))
        job = Job(self.generation, pool=pool)
        pool.submit(job, spikes)
        return job

    @property
    def pool(self) -> WorkerPool | None:
        """The serving pipeline's worker processes (None: runs happen in this process)."""
        return self.pipeline.pool if self.pipeline is not None else None

    def in_flight(self) -> int:
        """Windows handed to the workers and not answered yet."""
        pool = self.pool
        return 0 if pool is None else pool.busy()

    def quiesce(self) -> None:
        """Wait for every run in flight (before the workers they run on are closed or replaced)."""
        pool = self.pool
        while pool is not None and pool.busy():
            pool.wait_any(None)

    def collect(self, job: Job) -> tuple[WindowRun | None, float]:
        """(scores, inference ms) of a submitted run, waiting for it; None when it failed or is stale.

        Called on the loop's thread: a failure degrades (and may fall back) here, never on a worker. A run
        of a pipeline that no longer serves is stale: the segment it belongs to is dropped anyway.
        """
        outcome = job.outcome()
        if job.generation != self.generation:
            return None, outcome.inference_ms
        exc = outcome.error
        if isinstance(exc, ChipMemoryError):  # even one thinned tick does not fit: that window is lost, not the backend
            self.counters["windows_refused"] += 1
            self._log("warning", "window does not fit the chip", error=str(exc))
            return None, outcome.inference_ms
        if exc is not None:  # the board can fail mid-run: degrade, retry, never die
            self.counters["run_failures"] += 1
            if self.state != "degraded":
                self._failed(f"run failed: {type(exc).__name__}: {exc}")
            return None, outcome.inference_ms
        result = outcome.run
        assert result is not None  # an outcome has a run or an error (invariant)
        self.counters["runs"] += result.runs
        if result.runs > 1:
            self.counters["windows_split"] += 1
        if result.thinned > 0:
            self.counters["windows_thinned"] += 1
        return result, outcome.inference_ms

    # ------------------------------------------------------------------------------------ internals

    def _swap(self, pipeline: Pipeline) -> None:
        """Serve ``pipeline`` from now on (sessions see the new generation and rebind)."""
        self.quiesce()  # no worker may still run on an instance about to be closed
        old, self.pipeline = self.pipeline, pipeline
        if old is not None and old is not pipeline:
            old.close()
        self.generation += 1

    def _serve(self, pipeline: Pipeline) -> None:
        self._swap(pipeline)
        self.counters["builds"] += 1
        self.state, self.error, self.retry_at = "ready", "", None
        self._retry_delay = self.retry_initial_s

    def _failed(self, error: str) -> None:
        self.state = "degraded"
        self.error = error
        self.counters["failures"] += 1
        self.retry_at = self._clock() + self._retry_delay
        self._log("error", "backend failed", error=error, retry_in_s=round(self._retry_delay, 2))
        self._retry_delay = min(self._retry_delay * 2, self.retry_max_s)
        self._fall_back()

    def _fall_back(self) -> None:
        """Serve on the emulator while the configured backend is down (when configured to)."""
        current = self.pipeline.backend_name if self.pipeline is not None else None
        if not self.fallback_to_emulator or self.backend_name == "emulator" or current == "emulator":
            return
        try:
            fallback = self._build("emulator")
        except Exception as exc:  # nothing left to serve with: stay degraded and keep retrying
            self.error += f"; emulator fallback failed: {type(exc).__name__}: {exc}"
            self._log("error", "emulator fallback failed", error=str(exc))
            return
        self._swap(fallback)
        self._log("warning", "serving on the emulator fallback", failed_backend=self.backend_name)

    @property
    def serving_name(self) -> str:
        """The backend that serves now (the configured one while none does)."""
        return self.pipeline.backend_name if self.pipeline is not None else self.backend_name

    def _log(self, level: str, event: str, **kw: Any) -> None:
        if self.log is not None:
            getattr(self.log, level)(event, **kw)
