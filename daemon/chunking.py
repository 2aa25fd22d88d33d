"""Chunking: cut a spike tensor into backend runs of at most ``max_ticks`` ticks (plan, then apply).

Pure code shared by the daemon (streaming, :class:`StreamChunker`) and the offline evaluation
(:func:`plan_chunks` on a whole recording), so both cut a recording into the same windows:

- full windows ``[k*stride, k*stride + window)`` for every ``k`` whose window fits in the recording;
- one tail window ``[max(0, n - window), n)`` when ticks remain after the last full window (or the
  recording is shorter than one window), so the end of a gesture is never ignored.

Each window is a fresh backend run (the chip resets state between runs). A window with fewer than
``min_activity`` input spikes is not sent to the backend (activity gate); it scores as all zeros.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .errors import ChipMemoryError


@dataclass(frozen=True)
class ChunkPlan:
    """How to cut ticks into windows: ``window`` ticks per run, a new run every ``stride`` ticks."""

    window: int
    stride: int
    #: input spikes a window needs before it is run on the backend (0 runs every window)
    min_activity: int = 1

    def __post_init__(self) -> None:
        if self.window < 1:
            msg = f"ChunkPlan.window must be >= 1 tick, found {self.window}"
            raise ValueError(msg)
        if not 1 <= self.stride <= self.window:
            msg = (
                f"ChunkPlan.stride must be in [1, window={self.window}] ticks, found {self.stride}; "
                "a stride longer than the window would skip input"
            )
            raise ValueError(msg)
        if self.min_activity < 0:
            msg = f"ChunkPlan.min_activity must be >= 0 spikes, found {self.min_activity}"
            raise ValueError(msg)

    def fitted(self, max_ticks: int) -> ChunkPlan:
        """This plan with the window (and stride) shrunk to a backend's ``max_ticks``."""
        if max_ticks < 1:
            msg = f"backend max_ticks must be >= 1, found {max_ticks}"
            raise ValueError(msg)
        window = min(self.window, max_ticks)
        return ChunkPlan(window=window, stride=min(self.stride, window), min_activity=self.min_activity)


def fit_plan(plan: ChunkPlan, backend: Any) -> ChunkPlan:
    """``plan`` fitted to a loaded backend's ``max_ticks`` (the longest input chunk it runs).

    The daemon and the offline evaluation both call this, so they cut recordings identically.
    """
    return plan.fitted(max(1, int(backend.max_ticks)))


def plan_chunks(n_ticks: int, plan: ChunkPlan) -> list[tuple[int, int]]:
    """``(start, stop)`` tick indices of every window of a recording of ``n_ticks`` ticks."""
    if n_ticks < 0:
        msg = f"n_ticks must be >= 0, found {n_ticks}"
        raise ValueError(msg)
    chunks = [(s, s + plan.window) for s in range(0, n_ticks - plan.window + 1, plan.stride)]
    last_stop = chunks[-1][1] if chunks else 0
    if n_ticks > last_stop:
        chunks.append((max(0, n_ticks - plan.window), n_ticks))
    return chunks


def chunk_scores(output_spikes: np.ndarray) -> np.ndarray:
    """Class scores of one run: output spike counts per class, float64 ``[n_classes]``."""
    out = np.asarray(output_spikes)
    if out.ndim != 2:
        msg = f"output_spikes must be [T_out, n_classes], found shape {out.shape}"
        raise ValueError(msg)
    scores: np.ndarray = out.sum(axis=0, dtype=np.float64)
    return scores


class _Runs(Protocol):
    n_outputs: int

    def run(self, spikes: np.ndarray, record: tuple[str, ...] = ...) -> Any: ...


def is_active(window: np.ndarray, plan: ChunkPlan) -> bool:
    """Whether a window has enough input spikes to be worth a backend run."""
    return plan.min_activity == 0 or int(np.count_nonzero(window)) >= plan.min_activity


@dataclass(frozen=True)
class WindowRun:
    """Class scores of one window and how it was run: ``runs`` > 1 when its spikes did not fit one run."""

    scores: np.ndarray
    runs: int = 1
    #: fraction of the window's input spikes left out because even one tick did not fit the chip
    thinned: float = 0.0


def run_window(window: np.ndarray, backend: _Runs) -> WindowRun:
    """Run one window on ``backend``, split into runs that fit the chip when its spikes overflow a buffer.

    A dense window (a flickering lamp, a camera much busier than the training data) is a property of the
    input, not a backend failure. The chip resets between runs anyway, so the window is halved in time
    until every part fits (each part a fresh run, scores summed). A single tick that still does not fit is
    thinned deterministically (every k-th active input kept) and the fraction left out is reported.
    """
    try:
        return WindowRun(chunk_scores(backend.run(window, record=()).output_spikes))
    except ChipMemoryError:
        if len(window) > 1:
            half = len(window) // 2
            first, second = run_window(window[:half], backend), run_window(window[half:], backend)
            total = int(np.count_nonzero(window))
            lost = first.thinned * int(np.count_nonzero(window[:half])) + second.thinned * int(
                np.count_nonzero(window[half:])
            )
            return WindowRun(first.scores + second.scores, first.runs + second.runs, lost / total if total else 0.0)
        return _run_thinned(window, backend)


def _run_thinned(tick: np.ndarray, backend: _Runs) -> WindowRun:
    flat = tick.reshape(-1)
    active = np.flatnonzero(flat)
    for keep_every in range(2, max(3, len(active) + 1)):
        thinned = np.zeros_like(flat)
        thinned[active[::keep_every]] = 1
        try:
            result = backend.run(thinned.reshape(tick.shape), record=())
        except ChipMemoryError:
            continue
        kept = len(active[::keep_every])
        return WindowRun(chunk_scores(result.output_spikes), 1, 1.0 - kept / len(active))
    msg = f"a single tick with {len(active)} input spikes does not fit the chip even thinned to one spike"
    raise ChipMemoryError(msg)


def score_window(window: np.ndarray, backend: _Runs, plan: ChunkPlan) -> np.ndarray | None:
    """Scores of one window run on ``backend`` (split to fit), or None when the activity gate skips it."""
    if not is_active(window, plan):
        return None
    return run_window(window, backend).scores


class StreamChunker:
    """Streaming :func:`plan_chunks`: push ticks as they arrive, get each window as soon as it is complete.

    Memory is bounded: it keeps at most ``2 * window`` ticks, whatever the stream's length. A window the
    activity gate will skip comes back empty (zero ticks), so it is never copied nor run.
    """

    def __init__(self, plan: ChunkPlan, tick_shape: tuple[int, ...]) -> None:
        self.plan = plan
        self.tick_shape = tuple(tick_shape)
        self._buf = np.zeros((2 * plan.window, *self.tick_shape), dtype=np.uint8)
        self._b0 = 0  # absolute tick index of _buf[0]
        self._n = 0  # ticks pushed so far
        self._next_start = 0  # start of the next full window
        self._last_stop = 0  # stop of the last window handed out

    @property
    def n_ticks(self) -> int:
        """Ticks pushed so far."""
        return self._n

    def push(self, ticks: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
        """Append ticks ``[k, *tick_shape]``; returns the ``(start, stop, window)`` completed by them."""
        if ticks.shape[1:] != self.tick_shape:
            msg = f"ticks must have shape [k, {', '.join(map(str, self.tick_shape))}], found {ticks.shape}"
            raise ValueError(msg)
        done: list[tuple[int, int, np.ndarray]] = []
        w = self.plan.window
        i = 0
        while i < len(ticks):
            # write only up to the end of the next window so each completed window is cut exactly there
            take = min(len(ticks) - i, self._next_start + w - self._n)
            self._append(ticks[i : i + take])
            i += take
            if self._n == self._next_start + w:
                done.append(self._cut(self._next_start, self._n))
                self._next_start += self.plan.stride
        return done

    def push_zeros(self, n: int) -> list[tuple[int, int, np.ndarray]]:
        """:meth:`push` of ``n`` empty ticks, without materialising them: same windows, O(windows) work.

        Windows that lie wholly in the empty stretch come back empty (the gate skips them); only the first
        ``window`` empty ticks after real data are written, because later windows cannot reach that data.
        """
        w = self.plan.window
        if self.plan.min_activity == 0:  # empty windows are run too: they must exist
            return self.push(np.zeros((n, *self.tick_shape), dtype=np.uint8))
        written = min(n, w)
        done = self.push(np.zeros((written, *self.tick_shape), dtype=np.uint8)) if written else []
        n -= written
        if not n:
            return done
        # from here every window that can still complete starts after the last real tick
        empty = np.zeros((0, *self.tick_shape), dtype=np.uint8)
        while n:
            take = min(n, self._next_start + w - self._n)
            self._n += take
            n -= take
            if self._n == self._next_start + w:
                done.append((self._next_start, self._n, empty.copy()))
                self._last_stop = self._n
                self._next_start += self.plan.stride
        # the buffer now stands for the last `window` ticks, all empty
        self._b0 = self._n - w
        self._buf[:w] = 0
        return done

    def finish(self) -> list[tuple[int, int, np.ndarray]]:
        """The tail window of :func:`plan_chunks` if ticks remain; then the chunker starts over."""
        done = []
        if self._n > self._last_stop:
            done.append(self._cut(max(0, self._n - self.plan.window), self._n))
        self.reset()
        return done

    def reset(self) -> None:
        """Forget every tick (a new segment, or time went backwards)."""
        self._b0 = self._n = self._next_start = self._last_stop = 0

    def _append(self, ticks: np.ndarray) -> None:
        w = self.plan.window
        pos = self._n - self._b0
        if pos + len(ticks) > len(self._buf):
            # keep the last `window` ticks (every future window and the tail start at or after them)
            keep_from = max(self._b0, self._n - w)
            self._buf[: self._n - keep_from] = self._buf[keep_from - self._b0 : pos]
            self._b0 = keep_from
            pos = self._n - self._b0
        self._buf[pos : pos + len(ticks)] = ticks
        self._n += len(ticks)

    def _cut(self, start: int, stop: int) -> tuple[int, int, np.ndarray]:
        self._last_stop = stop
        view = self._buf[start - self._b0 : stop - self._b0]
        if not is_active(view, self.plan):
            # the gate will skip it: no copy (a long quiet stretch would otherwise copy every window)
            return start, stop, view[:0].copy()
        return start, stop, view.copy()
