"""Accuracy with intervals that resample users, and per-user / per-lighting breakdowns (numpy only).

Recordings of one person are not independent: the same body, clothing, speed and habits shape all of
them, so a model that fails on one user fails on many of that user's recordings together. An interval
that resamples *recordings* treats 330 recordings of 6 users as 330 independent tries and comes out far
too narrow. :func:`cluster_bootstrap` resamples *users* with replacement (each drawn user brings all of
their recordings), which is what "how would this model do on other people like these" asks.

Used by ``s2gesture evaluate`` (models/evaluate.py), ``s2gesture eval`` (clients/eval.py: this module
imports nothing but numpy, so the torch-free client may use it) and the model card
(:func:`card_accuracy_summary`). docs/evaluation.md, "Intervals that resample users", explains the method.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

#: the tonic / IBM DVS Gesture session naming: ``userNN_<lighting>`` (a folder, a file stem, or a name prefix)
SESSION_RE = re.compile(r"(?:^|[/\\])(user\d+)_([A-Za-z0-9]+(?:_[A-Za-z0-9]+)*?)(?=[/\\#.]|$)")
UNKNOWN = "unknown"
#: users with fewer recordings than this get no per-user interval (a binomial interval over 1-4 tries says little)
MIN_RECORDINGS_FOR_INTERVAL = 5
METHOD = "cluster bootstrap over users (percentile interval)"
#: below this many users a bootstrap over users is known to be too narrow (it cannot see users unlike the few
#: it has); the summary line says so
FEW_USERS = 10


def _as_inputs(
    correct: npt.ArrayLike, groups: Sequence[Any] | npt.ArrayLike, what: str
) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(correct)
    g = np.asarray(groups)
    if c.ndim != 1 or g.ndim != 1:
        msg = f"{what}: expected 1-d arrays of per-recording values, found shapes {c.shape} and {g.shape}"
        raise ValueError(msg)
    if c.shape != g.shape:
        msg = (
            f"{what}: expected one {what} entry per recording, found {g.shape[0]} for {c.shape[0]} recordings"
        )
        raise ValueError(msg)
    if c.size == 0:
        msg = f"{what}: no recordings to score; evaluate at least one labelled recording"
        raise ValueError(msg)
    if c.dtype != np.bool_:
        if not np.isin(c, (0, 1)).all():
            msg = (
                f"correct: expected booleans (or 0/1) per recording, found values {np.unique(c)[:5].tolist()}"
            )
            raise ValueError(msg)
        c = c.astype(bool)
    return c, g.astype(str)


def _per_group(correct: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    names, inverse = np.unique(groups, return_inverse=True)
    n = np.bincount(inverse, minlength=len(names)).astype(np.int64)
    k = np.bincount(inverse, weights=correct, minlength=len(names)).round().astype(np.int64)
    return names, k, n


def cluster_bootstrap(
    correct: npt.ArrayLike,
    users: Sequence[str] | npt.ArrayLike,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Accuracy and its ``level`` interval from ``n_boot`` resamples of the *users* (with replacement).

    Each resample draws as many users as there are, each bringing all of their recordings; its accuracy
    is correct / recordings over the drawn recordings (so ``mean``, the accuracy of the whole set, is the
    same statistic). The interval is the percentile interval of the resampled accuracies. One user gives
    ``lo == hi == mean``: with one person there is nothing to resample, and the interval says so rather
    than inventing a spread. Deterministic per ``seed``.
    """
    if n_boot < 1:
        msg = f"n_boot: expected >= 1 bootstrap resamples, found {n_boot}"
        raise ValueError(msg)
    if not 0.0 < level < 1.0:
        msg = f"level: expected a coverage between 0 and 1 (e.g. 0.95), found {level}"
        raise ValueError(msg)
    c, g = _as_inputs(correct, users, "users")
    _, k, n = _per_group(c, g)
    mean = float(k.sum() / n.sum())
    rng = np.random.default_rng([seed, 2012])
    n_users = len(n)
    # resample in blocks so many users x many resamples never needs one huge index array
    block = max(1, 2_000_000 // n_users)
    accs = np.empty(n_boot, dtype=np.float64)
    for a in range(0, n_boot, block):
        idx = rng.integers(0, n_users, size=(min(block, n_boot - a), n_users))
        accs[a : a + idx.shape[0]] = k[idx].sum(1) / n[idx].sum(1)
    tail = (1.0 - level) / 2.0
    lo, hi = (float(v) for v in np.quantile(accs, [tail, 1.0 - tail]))
    # A percentile interval can, for very unequal recording counts per user, leave the whole-set accuracy
    # just outside; the interval reported is never one that excludes the measured value.
    lo, hi = min(lo, mean), max(hi, mean)
    return {"mean": mean, "lo": lo, "hi": hi, "n_users": int(n_users), "n": int(n.sum()),
            "level": level, "n_boot": n_boot, "seed": seed, "method": METHOD}  # fmt: skip


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``k / n`` (independent tries)."""
    if n <= 0:
        msg = f"wilson_interval: expected n >= 1 tries, found {n}"
        raise ValueError(msg)
    z = _normal_quantile(0.5 + level / 2.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # the bounds at k = 0 and k = n are exactly 0 and 1; the float formula leaves a rounding residue there
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return lo, hi


def _normal_quantile(q: float) -> float:
    # inverse of the standard normal CDF by bisection on math.erf (numpy has no erfinv; no scipy needed)
    lo, hi = -10.0, 10.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def breakdown(
    correct: npt.ArrayLike,
    users: Sequence[str] | npt.ArrayLike,
    lightings: Sequence[str] | npt.ArrayLike,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Per-user and per-lighting accuracy, and the worst user.

    ``per_user``: one row per user (sorted by name) with ``n``, ``correct``, ``acc`` and, from
    :data:`MIN_RECORDINGS_FOR_INTERVAL` recordings on, a Wilson interval over that user's recordings
    (``lo``/``hi``, else None). ``per_lighting``: one row per lighting with ``n``, ``correct``, ``acc``,
    ``n_users`` and a cluster-bootstrap interval over the users seen under that lighting. ``worst_user``:
    the lowest accuracy (ties: more recordings first, then name).
    """
    c, u = _as_inputs(correct, users, "users")
    _, li = _as_inputs(correct, lightings, "lightings")
    names, k, n = _per_group(c, u)
    per_user = []
    for name, kk, nn in zip(names.tolist(), k.tolist(), n.tolist(), strict=True):
        row: dict[str, Any] = {"user": name, "n": nn, "correct": kk, "acc": kk / nn, "lo": None, "hi": None}
        if nn >= MIN_RECORDINGS_FOR_INTERVAL:
            row["lo"], row["hi"] = wilson_interval(kk, nn, level)
        per_user.append(row)
    per_lighting = []
    for name in np.unique(li).tolist():
        sel = li == name
        ci = cluster_bootstrap(c[sel], u[sel], n_boot=n_boot, seed=seed, level=level)
        per_lighting.append({"lighting": name, "n": ci["n"], "correct": int(c[sel].sum()), "acc": ci["mean"],
                             "n_users": ci["n_users"], "lo": ci["lo"], "hi": ci["hi"]})  # fmt: skip
    worst = min(per_user, key=lambda r: (r["acc"], -r["n"], r["user"]))
    return {
        "per_user": per_user,
        "per_lighting": per_lighting,
        "worst_user": {"user": worst["user"], "n": worst["n"], "acc": worst["acc"]},
    }


def accuracy_stats(
    correct: npt.ArrayLike,
    users: Sequence[str] | npt.ArrayLike,
    lightings: Sequence[str] | npt.ArrayLike,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """What the reports carry: ``user_ci`` (:func:`cluster_bootstrap`), the :func:`breakdown` and ``summary`` (one line)."""
    ci = cluster_bootstrap(correct, users, n_boot=n_boot, seed=seed, level=level)
    out = {"user_ci": ci, **breakdown(correct, users, lightings, n_boot=n_boot, seed=seed, level=level)}
    out["summary"] = summary_line(out)
    return out


def summary_line(stats: Mapping[str, Any]) -> str:
    """``accuracy 91.2 % [87.0, 94.8] (95 % CI over 20 users, cluster bootstrap); worst user user23 80.0 %``."""
    ci, worst = stats["user_ci"], stats["worst_user"]
    users = f"{ci['n_users']} user" + ("s" if ci["n_users"] != 1 else "")
    note = ""
    if ci["n_users"] == 1:
        note = ", no spread: one user"
    elif ci["n_users"] < FEW_USERS:
        note = f", too narrow below {FEW_USERS} users"
    return (
        f"accuracy {100 * ci['mean']:.1f} % [{100 * ci['lo']:.1f}, {100 * ci['hi']:.1f}] "
        f"({100 * ci['level']:.0f} % CI over {users}, cluster bootstrap{note}); "
        f"worst user {worst['user']} {100 * worst['acc']:.1f} %"
    )


def user_table(stats: Mapping[str, Any]) -> list[str]:
    """Markdown lines: one row per user (recordings, correct, accuracy, interval), then one per lighting."""
    lines = ["| user | recordings | correct | accuracy | 95 % interval (Wilson, this user's recordings) |",
             "|---|---|---|---|---|"]  # fmt: skip
    for r in stats["per_user"]:
        iv = "-" if r["lo"] is None else f"[{100 * r['lo']:.1f}, {100 * r['hi']:.1f}]"
        lines.append(f"| {r['user']} | {r['n']} | {r['correct']} | {100 * r['acc']:.1f} % | {iv} |")
    lines += [
        "",
        "| lighting | recordings | users | accuracy | 95 % interval (users resampled) |",
        "|---|---|---|---|---|",
    ]
    for r in stats["per_lighting"]:
        lines.append(
            f"| {r['lighting']} | {r['n']} | {r['n_users']} | {100 * r['acc']:.1f} % | "
            f"[{100 * r['lo']:.1f}, {100 * r['hi']:.1f}] |"
        )
    return lines


def card_accuracy_summary(
    correct: npt.ArrayLike,
    users: Sequence[str] | npt.ArrayLike,
    lightings: Sequence[str] | npt.ArrayLike,
    *,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """The accuracy block for a model card: JSON-able (plain floats, ints, strings, lists, dicts)."""
    s = accuracy_stats(correct, users, lightings, n_boot=n_boot, seed=seed, level=level)
    ci = s["user_ci"]
    return {
        "accuracy": ci["mean"],
        "interval": {
            "lo": ci["lo"],
            "hi": ci["hi"],
            "level": level,
            "method": METHOD,
            "n_boot": n_boot,
            "seed": seed,
        },
        "recordings": ci["n"],
        "users": ci["n_users"],
        "per_user": {r["user"]: {"n": r["n"], "acc": r["acc"]} for r in s["per_user"]},
        "per_lighting": {
            r["lighting"]: {"n": r["n"], "acc": r["acc"], "users": r["n_users"], "lo": r["lo"], "hi": r["hi"]}
            for r in s["per_lighting"]
        },
        "worst_user": s["worst_user"],
        "summary": s["summary"],
    }


def session_of(name: str, meta: Mapping[str, Any] | None = None) -> tuple[str, str]:
    """``(user, lighting)`` of a recording: its reader's ``meta`` first, else the ``userNN_<lighting>`` in its name.

    Users are spelled ``userNN`` (``meta['user'] = 3`` -> ``user03``, as models.binned.user_of does);
    what cannot be found is ``"unknown"``.
    """
    meta = meta or {}
    found = SESSION_RE.search(name or "")
    user: Any = meta.get("user")
    if user is None:
        user = found.group(1) if found else UNKNOWN
    elif isinstance(user, int | np.integer):
        user = f"user{int(user):02d}"
    lighting = meta.get("lighting")
    if lighting is None:
        lighting = found.group(2) if found else UNKNOWN
    return str(user), str(lighting)
