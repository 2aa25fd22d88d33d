"""Accuracy intervals that resample users, the per-user / per-lighting breakdown and the card summary."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2gesture.models.userstats import (
    accuracy_stats,
    breakdown,
    card_accuracy_summary,
    cluster_bootstrap,
    session_of,
    summary_line,
    wilson_interval,
)

# per recording: (user index, correct)
recordings = st.lists(st.tuples(st.integers(0, 7), st.booleans()), min_size=1, max_size=60)


def _split(recs: list[tuple[int, bool]]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([c for _, c in recs], dtype=bool), np.array([f"user{u:02d}" for u, _ in recs])


@settings(max_examples=60, deadline=None)
@given(recs=recordings, seed=st.integers(0, 2**31), level=st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_interval_contains_the_whole_set_accuracy(
    recs: list[tuple[int, bool]], seed: int, level: float
) -> None:
    """lo <= mean <= hi, mean is correct / recordings, and the bounds are accuracies."""
    correct, users = _split(recs)
    ci = cluster_bootstrap(correct, users, n_boot=300, seed=seed, level=level)
    assert 0.0 <= ci["lo"] <= ci["mean"] <= ci["hi"] <= 1.0
    assert ci["mean"] == correct.sum() / len(correct)
    assert ci["n"] == len(correct) and ci["n_users"] == len(set(users.tolist()))


@settings(max_examples=40, deadline=None)
@given(flags=st.lists(st.booleans(), min_size=1, max_size=40), seed=st.integers(0, 2**31))
def test_one_user_gives_a_degenerate_interval(flags: list[bool], seed: int) -> None:
    """All recordings from one user: every resample is that user, so lo == hi == mean."""
    ci = cluster_bootstrap(np.array(flags), ["user07"] * len(flags), n_boot=200, seed=seed)
    assert ci["lo"] == ci["hi"] == ci["mean"] == sum(flags) / len(flags)
    assert ci["n_users"] == 1


@settings(max_examples=30, deadline=None)
@given(recs=recordings, seed=st.integers(0, 2**31))
def test_deterministic_per_seed(recs: list[tuple[int, bool]], seed: int) -> None:
    """The same data and seed give the same interval, and the order of the recordings does not matter."""
    correct, users = _split(recs)
    a = cluster_bootstrap(correct, users, n_boot=200, seed=seed)
    b = cluster_bootstrap(correct, users, n_boot=200, seed=seed)
    order = np.random.default_rng(seed).permutation(len(correct))
    c = cluster_bootstrap(correct[order], users[order], n_boot=200, seed=seed)
    assert a == b == c


def test_seeds_differ_when_users_differ() -> None:
    """Different seeds draw different resamples (the interval is not a constant)."""
    rng = np.random.default_rng(3)
    users = np.repeat([f"user{i:02d}" for i in range(10)], 10)
    correct = rng.random(100) < np.repeat(rng.uniform(0.4, 1.0, 10), 10)
    bounds = {(cluster_bootstrap(correct, users, n_boot=200, seed=s)["lo"]) for s in range(5)}
    assert len(bounds) > 1


def test_users_that_differ_strongly_widen_the_interval_beyond_a_recording_bootstrap() -> None:
    """10 perfect users and 10 at 40 %: resampling users gives a wider interval than resampling recordings."""
    users = np.repeat([f"user{i:02d}" for i in range(20)], 15)
    per_user_correct = [15] * 10 + [6] * 10
    correct = np.concatenate([np.arange(15) < k for k in per_user_correct])
    by_user = cluster_bootstrap(correct, users, n_boot=4000, seed=1)
    by_recording = cluster_bootstrap(correct, np.arange(len(correct)).astype(str), n_boot=4000, seed=1)
    assert by_user["mean"] == by_recording["mean"] == 0.7
    width_user, width_rec = by_user["hi"] - by_user["lo"], by_recording["hi"] - by_recording["lo"]
    print(f"user-level width {width_user:.3f}, recording-level width {width_rec:.3f}")
    # the design effect here is 1 + (15 - 1) * ICC with ICC ~0.7: about 3x the variance, 1.8x the width
    assert width_user > 1.4 * width_rec


def test_breakdown_rows_add_up_and_name_the_worst_user() -> None:
    """Per-user and per-lighting counts add back to the whole set; the worst user has the lowest accuracy."""
    users = ["user01"] * 6 + ["user02"] * 6 + ["user03"] * 2
    lightings = ["led", "lab"] * 7
    correct = np.array([1, 1, 1, 1, 1, 0, 1, 0, 1, 0, 1, 0, 0, 1], dtype=bool)
    out = breakdown(correct, users, lightings, n_boot=200)
    by_user = {r["user"]: r for r in out["per_user"]}
    assert [by_user[u]["n"] for u in ("user01", "user02", "user03")] == [6, 6, 2]
    assert by_user["user01"]["acc"] == 5 / 6 and by_user["user02"]["acc"] == 0.5
    assert by_user["user03"]["lo"] is None  # too few recordings for an interval
    assert by_user["user02"]["lo"] < 0.5 < by_user["user02"]["hi"]
    # user02 and user03 tie at 50 %: the one with more recordings is named
    assert out["worst_user"] == {"user": "user02", "n": 6, "acc": 0.5}
    assert sum(r["n"] for r in out["per_lighting"]) == len(correct)
    assert sum(r["correct"] for r in out["per_lighting"]) == int(correct.sum())
    assert {r["lighting"]: r["n_users"] for r in out["per_lighting"]} == {"lab": 3, "led": 3}


def test_wilson_interval_matches_the_textbook_value() -> None:
    """Wilson 95 % for 8 of 10 is [0.490, 0.943] (Agresti and Coull's example values)."""
    lo, hi = wilson_interval(8, 10)
    assert round(lo, 3) == 0.490 and round(hi, 3) == 0.943
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0


def test_summary_line_and_card_summary_are_json_and_agree() -> None:
    """The card block survives json round trip and its line quotes the interval and the worst user."""
    users = np.repeat([f"user{i:02d}" for i in range(20)], 11)
    correct = np.ones(len(users), dtype=bool)
    correct[users == "user07"] = np.arange(11) < 6
    card = card_accuracy_summary(correct, users, ["led"] * len(users), n_boot=500)
    assert json.loads(json.dumps(card)) == card
    assert card["users"] == 20 and card["recordings"] == 220
    assert card["worst_user"]["user"] == "user07"
    assert card["summary"].startswith(f"accuracy {100 * correct.mean():.1f} % [")
    assert "95 % CI over 20 users, cluster bootstrap" in card["summary"]
    assert card["summary"].endswith("worst user user07 54.5 %")
    assert summary_line(accuracy_stats(correct, users, ["led"] * 220, n_boot=500)) == card["summary"]
    few = accuracy_stats(correct[:33], users[:33], ["led"] * 33, n_boot=100)["summary"]
    assert "over 3 users, cluster bootstrap, too narrow below 10 users)" in few
    one = accuracy_stats(correct[:11], users[:11], ["led"] * 11, n_boot=100)["summary"]
    assert "over 1 user, cluster bootstrap, no spread: one user)" in one


def test_session_of_reads_meta_then_the_layout_names() -> None:
    """Users and lightings come from reader meta, else from userNN_<lighting> in tonic paths and IBM names."""
    assert session_of("/d/DVSGesture/ibmGestureTest/user24_led/3.npy") == ("user24", "led")
    assert session_of("user29_fluorescent_led#4") == ("user29", "fluorescent_led")
    assert session_of("anything", {"user": 3, "lighting": "lab"}) == ("user03", "lab")
    assert session_of("clip.aedat4") == ("unknown", "unknown")


@pytest.mark.parametrize(
    ("correct", "users", "needle"),
    [
        ([], [], "no recordings"),
        ([True, False], ["user01"], "one users entry per recording"),
        ([2, 1], ["a", "b"], "booleans"),
    ],
)
def test_bad_input_names_the_problem(correct: list, users: list, needle: str) -> None:
    """Empty, mismatched or non-boolean input raises one ValueError saying what was expected."""
    with pytest.raises(ValueError, match=needle):
        cluster_bootstrap(correct, users)


def test_module_imports_without_torch() -> None:
    """The torch-free client may import the module: it loads neither torch nor tonic."""
    code = "import s2gesture.models.userstats, sys; print(sorted(m for m in ('torch', 'tonic') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
