"""Decisions: per-chunk class scores into debounced gesture onsets and one final decision per segment.

Pure code shared by the daemon and the offline evaluation (:func:`classify_recording`), so both give the
same final class for a recording. Decisions depend on the order of chunks only, never on wall time; the
times passed in are carried into the :class:`Decision` for reporting.

Streaming (onsets): each active chunk's scores are normalised to shares (sum 1) and smoothed with an
exponential moving average; an onset is reported when the same class leads the smoothed shares with at
least ``onset_confidence`` for ``min_chunks`` chunks in a row and differs from the class last reported.
A chunk with fewer than ``min_spikes`` output spikes is idle: it decays the average, breaks the streak and
re-arms the detector (the same gesture performed again after a pause is reported again). A leader whose
smoothed share reaches ``commit_confidence`` is reported after one chunk (strong evidence commits early: a
sequential test's upper bound; weak evidence still needs ``min_chunks`` in a row).

A model with a background class (the card's ``none``, passed as ``none_index``) never gets an onset for
it: a chunk where "none" leads is treated like an idle chunk (streak broken, detector re-armed), and a
segment's final decision is "none" when that class has the most evidence.

Final (``eos``): evidence over the whole segment, combined as ``final_mode`` says (see ``FINAL_MODES``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from .chunking import ChunkPlan, _Runs, plan_chunks, score_window


@dataclass(frozen=True)
class Decision:
    """A recognised gesture: class, confidence in [0, 1], event-time span (µs) of the evidence."""

    class_id: int
    confidence: float
    t_start_us: int
    t_end_us: int
    final: bool
    n_chunks: int


@dataclass(frozen=True)
class DecisionParams:
    """Parameters of the decision policy.

    The defaults are measured, not chosen by hand: benchmarks/tune_decision.py sweeps them with the bundled
    model on validation users (a seed no reported figure uses) and benchmarks/results/decision.md has their
    row (first-onset accuracy, wrong onsets, false decisions, time to decision) beside the alternatives.
    """

    #: weight of the past in the moving average of shares, in [0, 1) (0: each chunk alone)
    smoothing: float = 0.7
    #: smoothed share the leading class needs for an onset, in (0, 1]
    onset_confidence: float = 0.2
    #: chunks in a row the same class must lead before an onset is reported
    min_chunks: int = 3
    #: output spikes a chunk needs to count as activity (fewer: idle)
    min_spikes: int = 1
    #: how the final decision combines a segment's chunks: a key of FINAL_MODES
    final_mode: str = "sum"
    #: smoothed share that reports an onset after a single chunk, in (0, 1]; 1.0 only when one class
    #: has every output spike
    commit_confidence: float = 1.0

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 <= self.smoothing < 1.0:
            problems.append(f"smoothing must be in [0, 1), found {self.smoothing}")
        if not 0.0 < self.onset_confidence <= 1.0:
            problems.append(f"onset_confidence must be in (0, 1], found {self.onset_confidence}")
        if self.min_chunks < 1:
            problems.append(f"min_chunks must be >= 1, found {self.min_chunks}")
        if self.min_spikes < 1:
            problems.append(f"min_spikes must be >= 1 (an empty chunk is never evidence), found {self.min_spikes}")
        if not 0.0 < self.commit_confidence <= 1.0:
            problems.append(f"commit_confidence must be in (0, 1], found {self.commit_confidence}")
        if self.final_mode not in FINAL_MODES:
            problems.append(f"final_mode must be one of {sorted(FINAL_MODES)}, found {self.final_mode!r}")
        if problems:
            msg = "DecisionParams: " + "; ".join(problems)
            raise ValueError(msg)


@dataclass
class _Evidence:
    counts: np.ndarray  # summed output spikes per class
    shares: np.ndarray  # summed per-chunk shares of active chunks
    votes: np.ndarray  # per-class number of active chunks it led


def _final_sum(ev: _Evidence) -> np.ndarray:
    return ev.counts


def _final_mean_share(ev: _Evidence) -> np.ndarray:
    return ev.shares


def _final_vote(ev: _Evidence) -> np.ndarray:
    # ties between equal vote counts go to the class with more spikes
    weights: np.ndarray = ev.votes + ev.counts / (1.0 + ev.counts.sum()) * 0.5
    return weights


#: final_mode -> function giving one weight per class from a segment's evidence
FINAL_MODES: dict[str, Callable[[_Evidence], np.ndarray]] = {
    "sum": _final_sum,
    "mean_share": _final_mean_share,
    "vote": _final_vote,
}


class DecisionPolicy:
    """Streaming decision state of one stream segment; ``fresh()`` gives a new one with the same parameters."""

    def __init__(self, params: DecisionParams | None = None, *, none_index: int | None = None, **overrides: Any) -> None:
        base = params if params is not None else DecisionParams()
        self.params = replace(base, **overrides) if overrides else base
        #: output index of the background class (ModelCard.none_index), or None
        self.none_index = none_index
        self._mode = FINAL_MODES[self.params.final_mode]
        self._n_classes: int | None = None
        self.reset()

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Names of the policy's parameters."""
        return tuple(f.name for f in fields(DecisionParams))

    def fresh(self) -> DecisionPolicy:
        """A new policy with these parameters and no state."""
        return DecisionPolicy(self.params, none_index=self.none_index)

    def reset(self) -> None:
        """Forget the segment (after a final decision, a time reset or eviction)."""
        self._ema: np.ndarray | None = None
        self._ev: _Evidence | None = None
        self._streak_class = -1
        self._streak = 0
        self._streak_t_start = 0
        self._current = -1
        self._n_chunks = 0
        self._t_start: int | None = None
        self._t_end = 0

    @property
    def n_chunks(self) -> int:
        """Chunks seen in this segment (active or not)."""
        return self._n_chunks

    def update(self, scores: np.ndarray, t_start_us: int, t_end_us: int) -> Decision | None:
        """Feed one chunk's scores (zeros for a gated chunk); returns an onset Decision or None."""
        scores = np.asarray(scores, dtype=np.float64)
        if self._ev is None:
            n = len(scores)
            self._ev = _Evidence(np.zeros(n), np.zeros(n), np.zeros(n))
            self._ema = np.zeros(n)
        elif len(scores) != len(self._ev.counts):
            msg = f"scores have {len(scores)} classes, this segment had {len(self._ev.counts)}"
            raise ValueError(msg)
        assert self._ema is not None  # set with _ev (invariant, not validation)
        p = self.params
        self._n_chunks += 1
        if self._t_start is None:
            self._t_start = t_start_us
        self._t_end = t_end_us
        total = float(scores.sum())
        self._ev.counts += scores
        if total < p.min_spikes:
            self._ema *= p.smoothing
            self._streak_class, self._streak, self._current = -1, 0, -1
            return None
        share = scores / total
        self._ev.shares += share
        self._ev.votes[int(np.argmax(scores))] += 1
        self._ema = p.smoothing * self._ema + (1.0 - p.smoothing) * share
        top = int(np.argmax(self._ema))
        confidence = float(self._ema[top])
        if top == self.none_index:
            # nobody is gesturing: like an idle chunk, and the same gesture afterwards is a new onset
            self._streak_class, self._streak, self._current = -1, 0, -1
            return None
        if confidence < p.onset_confidence:
            self._streak_class, self._streak = -1, 0
            return None
        if top == self._streak_class:
            self._streak += 1
        else:
            self._streak_class, self._streak, self._streak_t_start = top, 1, t_start_us
        strong = confidence >= p.commit_confidence
        if (self._streak >= p.min_chunks or strong) and top != self._current:
            self._current = top
            return Decision(top, confidence, self._streak_t_start, t_end_us, False, self._n_chunks)
        return None

    def final(self) -> Decision:
        """The segment's final decision (class -1, confidence 0 when it had no output spikes at all)."""
        t_start = self._t_start if self._t_start is not None else 0
        if self._ev is None or float(self._ev.counts.sum()) <= 0:
            return Decision(-1, 0.0, t_start, self._t_end, True, self._n_chunks)
        weights = self._mode(self._ev)
        top = int(np.argmax(weights))
        total = float(weights.sum())
        confidence = float(weights[top] / total) if total > 0 else 0.0
        return Decision(top, confidence, t_start, self._t_end, True, self._n_chunks)


def classify_recording(
    spikes: np.ndarray,
    backend: _Runs,
    plan: ChunkPlan,
    policy: DecisionPolicy,
    *,
    t0_us: int = 0,
    dt_us: int = 1000,
) -> tuple[int, np.ndarray]:
    """Final class (-1: no evidence) and per-chunk scores ``[n_chunks, n_classes]`` of a whole spike tensor.

    The daemon publishes the same final class for the same events sent as one segment followed by ``eos``.
    ``policy`` is not changed (a fresh copy is used).
    """
    spikes = np.asarray(spikes)
    fresh = policy.fresh()
    n_classes = int(backend.n_outputs)
    rows = []
    for start, stop in plan_chunks(len(spikes), plan):
        scores = score_window(spikes[start:stop], backend, plan)
        if scores is None:
            scores = np.zeros(n_classes)
        fresh.update(scores, t0_us + start * dt_us, t0_us + stop * dt_us)
        rows.append(scores)
    table = np.array(rows, dtype=np.float64).reshape(len(rows), n_classes)
    return fresh.final().class_id, table
