"""Decision policy: debounced onsets, re-arming after idle, final modes, and parameter checks."""

from __future__ import annotations

import numpy as np
import pytest

from s2gesture.daemon.decision import FINAL_MODES, DecisionParams, DecisionPolicy


def _one_hot(c: int, n: int = 4, count: float = 10.0) -> np.ndarray:
    s = np.ones(n)
    s[c] = count
    return s


def test_onset_after_min_chunks_and_only_once() -> None:
    """A class leading for min_chunks chunks gives one onset, not one per chunk."""
    pol = DecisionPolicy(smoothing=0.0, onset_confidence=0.5, min_chunks=2)
    out = [pol.update(_one_hot(2), 100 * k, 100 * k + 600) for k in range(5)]
    onsets = [d for d in out if d is not None]
    assert len(onsets) == 1 and onsets[0].class_id == 2 and out[1] is onsets[0]
    assert onsets[0].t_start_us == 0 and onsets[0].t_end_us == 700 and not onsets[0].final


def test_change_of_class_and_idle_rearm() -> None:
    """A new leading class gives a new onset; after an idle chunk the same class is reported again."""
    pol = DecisionPolicy(smoothing=0.0, onset_confidence=0.5, min_chunks=1)
    assert pol.update(_one_hot(1), 0, 1).class_id == 1  # type: ignore[union-attr]
    assert pol.update(_one_hot(3), 1, 2).class_id == 3  # type: ignore[union-attr]
    assert pol.update(_one_hot(3), 2, 3) is None
    assert pol.update(np.zeros(4), 3, 4) is None
    assert pol.update(_one_hot(3), 4, 5).class_id == 3  # type: ignore[union-attr]


def test_none_class_never_onsets_rearms_and_can_be_final() -> None:
    """The background class gives no onset, re-arms the detector like idle, and wins the final when it dominates."""
    pol = DecisionPolicy(smoothing=0.0, onset_confidence=0.5, min_chunks=1, none_index=3)
    assert pol.update(_one_hot(3), 0, 1) is None  # "none" leads: no onset
    assert pol.update(_one_hot(1), 1, 2).class_id == 1  # type: ignore[union-attr]
    assert pol.update(_one_hot(3), 2, 3) is None
    assert pol.update(_one_hot(1), 3, 4).class_id == 1  # type: ignore[union-attr]  # re-armed by "none"
    for k in range(6):
        pol.update(_one_hot(3), 4 + k, 5 + k)
    assert pol.final().class_id == 3
    assert pol.fresh().none_index == 3
    plain = DecisionPolicy(smoothing=0.0, onset_confidence=0.5, min_chunks=1)
    assert plain.update(_one_hot(3), 0, 1).class_id == 3  # type: ignore[union-attr]  # without none_index: a class


def test_strong_evidence_commits_after_one_chunk() -> None:
    """A smoothed share at or above commit_confidence reports at once; weaker evidence waits for min_chunks."""
    strong = np.array([0.0, 9.0, 1.0, 0.0])  # share 0.9
    weak = np.array([0.0, 6.0, 4.0, 0.0])  # share 0.6
    pol = DecisionPolicy(smoothing=0.0, onset_confidence=0.5, min_chunks=3, commit_confidence=0.85)
    assert pol.update(strong, 0, 1).class_id == 1  # type: ignore[union-attr]
    pol = DecisionPolicy(smoothing=0.0, onset_confidence=0.5, min_chunks=3, commit_confidence=0.85)
    assert [pol.update(weak, k, k + 1) is None for k in range(3)] == [True, True, False]
    with pytest.raises(ValueError, match="commit_confidence"):
        DecisionParams(commit_confidence=0.0)


def test_low_confidence_gives_no_onset() -> None:
    """Flat scores never reach the onset confidence."""
    pol = DecisionPolicy(onset_confidence=0.5, min_chunks=1)
    assert all(pol.update(np.ones(4), k, k + 1) is None for k in range(10))


def test_final_modes() -> None:
    """Each final mode combines the chunks as documented, and an empty segment gives class -1."""
    chunks = [np.array([0, 100, 0.0]), np.array([1, 0, 2.0]), np.array([1, 0, 2.0])]
    expect = {"sum": 1, "mean_share": 2, "vote": 2}
    assert set(expect) == set(FINAL_MODES)
    for mode, cls in expect.items():
        pol = DecisionPolicy(final_mode=mode)
        for k, s in enumerate(chunks):
            pol.update(s, k * 10, k * 10 + 20)
        fin = pol.final()
        assert fin.final and fin.class_id == cls and fin.n_chunks == 3, mode
        assert (fin.t_start_us, fin.t_end_us) == (0, 40)
        assert 0 < fin.confidence <= 1
    empty = DecisionPolicy()
    empty.update(np.zeros(3), 0, 5)
    assert empty.final().class_id == -1 and empty.final().confidence == 0.0


def test_fresh_and_reset_forget_state() -> None:
    """fresh() keeps parameters and no state; reset() forgets the segment."""
    pol = DecisionPolicy(min_chunks=1, smoothing=0.0)
    pol.update(_one_hot(0), 0, 1)
    assert pol.fresh().params == pol.params and pol.fresh().n_chunks == 0
    pol.reset()
    assert pol.n_chunks == 0 and pol.final().class_id == -1


def test_bad_parameters_are_all_named() -> None:
    """Invalid parameters are refused, every problem in one message."""
    with pytest.raises(ValueError) as info:
        DecisionParams(smoothing=1.0, onset_confidence=0.0, min_chunks=0, min_spikes=0, final_mode="max")
    for name in ("smoothing", "onset_confidence", "min_chunks", "min_spikes", "final_mode"):
        assert name in str(info.value)


def test_mismatched_class_count_is_refused() -> None:
    """Scores with a different number of classes within one segment are an error."""
    pol = DecisionPolicy()
    pol.update(np.ones(3), 0, 1)
    with pytest.raises(ValueError, match="3"):
        pol.update(np.ones(4), 1, 2)


def test_classify_recording_equals_streaming_windows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """classify_recording gives the class and scores that streaming the same ticks through the chunker gives."""
    from s2gesture.daemon.backends import get_backend, options_from_card
    from s2gesture.daemon.card import read_model
    from s2gesture.daemon.chunking import ChunkPlan, StreamChunker, fit_plan, score_window
    from s2gesture.daemon.decision import classify_recording
    from s2gesture.daemon.testing import write_tiny_model

    write_tiny_model(tmp_path / "m.nir", seed=2)
    model = read_model(tmp_path / "m.nir")
    backend = get_backend("emulator", **options_from_card(model.card))
    backend.load(model.graph)
    plan = fit_plan(ChunkPlan(120, 50, 30), backend)
    rng = np.random.default_rng(5)
    spikes = (rng.random((333, 2, 32, 32)) < 0.03).astype(np.uint8)
    spikes[60:240] = 0  # an idle stretch: gated windows score zeros
    policy = DecisionPolicy(min_chunks=1)
    final, table = classify_recording(spikes, backend, plan, policy)
    assert policy.n_chunks == 0  # the caller's policy is untouched
    chunker, stream_policy, rows = StreamChunker(plan, (2, 32, 32)), policy.fresh(), []
    windows = [w for k in range(0, 333, 17) for w in chunker.push(spikes[k : k + 17])] + chunker.finish()
    for start, stop, win in windows:
        s = score_window(win, backend, plan)
        rows.append(np.zeros(11) if s is None else s)
        stream_policy.update(rows[-1], start, stop)
    np.testing.assert_array_equal(table, np.array(rows))
    assert final == stream_policy.final().class_id and (table.sum(axis=1) == 0).any()


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(st.lists(st.integers(0, 50), min_size=5, max_size=5), min_size=1, max_size=25),
    smoothing=st.sampled_from([0.0, 0.3, 0.7]),
    conf=st.sampled_from([0.2, 0.4, 0.9]),
    min_chunks=st.integers(1, 3),
)
def test_policy_properties(rows: list[list[int]], smoothing: float, conf: float, min_chunks: int) -> None:
    """At most one onset per chunk, each as confident as required and within [0, 1]; the sum mode is order-free."""
    pol = DecisionPolicy(smoothing=smoothing, onset_confidence=conf, min_chunks=min_chunks)
    onsets = [d for k, r in enumerate(rows) if (d := pol.update(np.array(r, float), k, k + 1)) is not None]
    assert len(onsets) <= len(rows)
    assert all(0 <= d.confidence <= 1 and d.confidence >= conf for d in onsets)
    fin = pol.final()
    total = np.array(rows, float).sum(axis=0)
    assert fin.class_id == (int(np.argmax(total)) if total.sum() > 0 else -1)
    reverse = DecisionPolicy(smoothing=smoothing, onset_confidence=conf, min_chunks=min_chunks)
    for k, r in enumerate(reversed(rows)):
        reverse.update(np.array(r, float), k, k + 1)
    assert reverse.final().class_id == fin.class_id
