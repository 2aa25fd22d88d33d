"""Chunking: the plan covers the recording, and streaming cuts exactly the planned windows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2gesture.daemon.chunking import ChunkPlan, StreamChunker, chunk_scores, is_active, plan_chunks


def test_plan_full_windows_and_tail() -> None:
    """Full windows every stride, then one tail window ending at the last tick."""
    plan = ChunkPlan(window=10, stride=4)
    assert plan_chunks(23, plan) == [(0, 10), (4, 14), (8, 18), (12, 22), (13, 23)]
    assert plan_chunks(22, plan) == [(0, 10), (4, 14), (8, 18), (12, 22)]
    assert plan_chunks(3, plan) == [(0, 3)]
    assert plan_chunks(0, plan) == []


def test_plan_is_fitted_to_backend_max_ticks() -> None:
    """A window longer than the backend's max_ticks is shrunk, and the stride with it."""
    assert ChunkPlan(600, 600, 5).fitted(250) == ChunkPlan(250, 250, 5)
    assert ChunkPlan(600, 100).fitted(1000) == ChunkPlan(600, 100)


@pytest.mark.parametrize("kwargs", [{"window": 0, "stride": 1}, {"window": 5, "stride": 6}, {"window": 5, "stride": 1, "min_activity": -1}])
def test_bad_plans_are_refused(kwargs: dict) -> None:
    """Windows under one tick, strides longer than the window and negative gates are refused."""
    with pytest.raises(ValueError, match="ChunkPlan"):
        ChunkPlan(**kwargs)


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(0, 120),
    window=st.integers(1, 30),
    stride_frac=st.floats(0.01, 1.0),
    pushes=st.lists(st.integers(0, 40), min_size=1, max_size=20),
)
def test_streaming_equals_plan(n: int, window: int, stride_frac: float, pushes: list[int]) -> None:
    """Pushing ticks in any packet sizes, then finishing, yields exactly plan_chunks' windows and contents."""
    stride = max(1, int(window * stride_frac))
    plan = ChunkPlan(window, stride, 0)
    rng = np.random.default_rng(n)
    ticks = rng.integers(0, 2, size=(n, 2, 3, 3), dtype=np.uint8)
    chunker = StreamChunker(plan, (2, 3, 3))
    got = []
    i = 0
    for k in pushes * (n // max(1, sum(pushes)) + 1):
        got += chunker.push(ticks[i : i + k])
        i += k
        if i >= n:
            break
    got += chunker.push(ticks[i:])
    got += chunker.finish()
    assert [(a, b) for a, b, _ in got] == plan_chunks(n, plan)
    for a, b, win in got:
        np.testing.assert_array_equal(win, ticks[a:b])
    assert chunker.n_ticks == 0


def test_scores_and_activity_gate() -> None:
    """Scores are output spike counts per class; windows under min_activity spikes are inactive."""
    out = np.zeros((7, 3), dtype=np.uint8)
    out[[0, 2, 5], 1] = 1
    out[4, 2] = 1
    np.testing.assert_array_equal(chunk_scores(out), [0.0, 3.0, 1.0])
    win = np.zeros((4, 2, 2, 2), dtype=np.uint8)
    win[0, 0, 0, 0] = win[3, 1, 1, 1] = 1
    assert is_active(win, ChunkPlan(4, 4, 2)) and not is_active(win, ChunkPlan(4, 4, 3))
    assert is_active(np.zeros_like(win), ChunkPlan(4, 4, 0))


def test_gated_windows_come_back_empty() -> None:
    """A window under the activity gate is returned with zero ticks (never copied); active ones in full."""
    plan = ChunkPlan(window=4, stride=2, min_activity=3)
    ticks = np.zeros((10, 1, 2, 2), dtype=np.uint8)
    ticks[6:8] = 1  # 8 spikes in ticks 6 and 7
    chunker = StreamChunker(plan, (1, 2, 2))
    got = chunker.push(ticks) + chunker.finish()
    assert [(a, b) for a, b, _ in got] == plan_chunks(10, plan)
    for a, b, win in got:
        active = is_active(ticks[a:b], plan)
        assert len(win) == (b - a if active else 0) and is_active(win, plan) == active
        if active:
            np.testing.assert_array_equal(win, ticks[a:b])


@given(
    window=st.integers(1, 12),
    stride_frac=st.floats(0.05, 1.0),
    pieces=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 60)), min_size=1, max_size=8),
    min_activity=st.integers(0, 2),
    seed=st.integers(0, 1000),
)
@settings(max_examples=150, deadline=None)
def test_push_zeros_equals_pushing_empty_ticks(
    window: int, stride_frac: float, pieces: list[tuple[int, int]], min_activity: int, seed: int
) -> None:
    """Counting empty ticks (push_zeros) cuts the same windows, with the same content, as pushing them."""
    plan = ChunkPlan(window, max(1, round(window * stride_frac)), min_activity)
    rng = np.random.default_rng(seed)
    lazy, eager = StreamChunker(plan, (2, 3)), StreamChunker(plan, (2, 3))
    got: list[tuple[int, int, np.ndarray]] = []
    want: list[tuple[int, int, np.ndarray]] = []
    for n_data, n_zero in pieces:
        data = (rng.random((n_data, 2, 3)) < 0.3).astype(np.uint8)
        got += lazy.push(data) + lazy.push_zeros(n_zero)
        want += eager.push(np.concatenate([data, np.zeros((n_zero, 2, 3), np.uint8)]))
    got += lazy.finish()
    want += eager.finish()
    assert [(a, b) for a, b, _ in got] == [(a, b) for a, b, _ in want]
    for (_, _, g), (_, _, w) in zip(got, want, strict=True):
        assert np.array_equal(g, w)
