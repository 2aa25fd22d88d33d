"""``s2gesture evaluate``: float vs int8 (snnTorch semantics) vs int8 on the emulator, on one test set.

For every model the report gives, on the same test recordings:

- **single-window accuracy**: the first ``window`` ticks (``SPINNAKER2.run_ticks``, 600: the chip's run) of each recording, and
  the same on random windows whose offsets are drawn per seed (>= 3 seeds: the spread is over the window
  offsets; the models are fixed);
- **full-recording accuracy**: the whole recording cut into chunks exactly as the daemon cuts them
  (``ChunkPlan`` from the daemon's default chunking config, fitted to the backend's ``max_ticks``) and
  decided by the daemon's own :func:`~s2gesture.daemon.decision.classify_recording`;
- for each quantized model, the cost of each chip-vs-snnTorch difference taken alone: quantization (int8 in
  snnTorch semantics), projection latency alone, reset timing alone, both (torch chip simulator), and the
  full chip on the emulator (the daemon's backend, which the torch chip simulator matches spike for spike);
- drops in percentage points against the float model, paired per seed (mean +- std over seeds);
- for every row, accuracy with a 95 % interval that resamples *users* (``user_ci``, a cluster bootstrap:
  recordings of one person are correlated), per-user and per-lighting accuracy and the worst user
  (:mod:`s2gesture.models.userstats`), on the full recordings (the first window where no full recording
  was run);
- confusion matrices (PNG), memory per layer (float32 vs int8, and per PE from the emulator's
  ``MappingReport``), PEs used.

Writes ``report.json``, ``report.md`` and PNGs into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import userstats
from .binned import BinnedSet
from .train import RUN_TICKS

if TYPE_CHECKING:
    from .network import PSNN

#: torch semantics evaluated for each quantized model: label -> semantics name (the ablation). The torch
#: chip simulator ("chip") matches the emulator spike for spike (tests/test_export.py), so by default the
#: full chip row comes from the emulator alone and "chip" is only run when asked for.
ABLATIONS: dict[str, str] = {
    "int8, snnTorch semantics (quantization alone)": "snntorch",
    "int8 + latency alone": "latency",
    "int8 + same-tick reset alone": "reset",
    "int8, chip semantics (torch simulator)": "chip",
}
DEFAULT_ABLATIONS = ("snntorch", "latency", "reset")


@dataclass
class Variant:
    """One quantized model under evaluation."""

    name: str
    model: PSNN
    graph: Any
    card: Any
    trained_for: str = "snntorch"
    record: dict[str, Any] = field(default_factory=dict)


class _ReplayRunner:
    """Backend stand-in that returns precomputed chunk outputs in call order (for torch models).

    classify_recording calls ``run`` once per active chunk, in order; the torch outputs of all those chunks
    are computed in one batch beforehand, so the daemon's own chunking and decision code still decides.
    """

    def __init__(self, outputs: list[np.ndarray], n_outputs: int) -> None:
        self._outputs = list(outputs)
        self.n_outputs = n_outputs

    def run(self, spikes: np.ndarray, record: tuple[str, ...] = ("spikes",)) -> Any:
        from s2gesture.daemon.backends import RunResult

        out = self._outputs.pop(0)
        return RunResult(output_spikes=out, ticks=int(out.shape[0]))


def daemon_chunk_plan(max_ticks: int) -> Any:
    """The daemon's default chunk plan, fitted to ``max_ticks``."""
    from s2gesture.daemon.chunking import ChunkPlan
    from s2gesture.daemon.config import ChunkingConfig

    c = ChunkingConfig()
    return ChunkPlan(c.window_ticks, c.stride_ticks, c.min_activity).fitted(max_ticks)


def daemon_policy(none_index: int | None = None) -> Any:
    """The daemon's default decision policy for a model whose background class is ``none_index`` (card.none_index)."""
    from s2gesture.daemon.decision import DecisionPolicy

    return DecisionPolicy(none_index=none_index)


def window_offsets(data: BinnedSet, window: int, seed: int | None) -> np.ndarray:
    """Start tick per recording: 0 for ``seed=None`` (first window), else uniform over the valid range."""
    if seed is None:
        return np.zeros(len(data), dtype=np.int64)
    rng = np.random.default_rng([seed, 7])
    return np.asarray([int(rng.integers(0, max(1, s.shape[0] - window + 1))) for s in data.spikes])


def windows_at(data: BinnedSet, offsets: np.ndarray, window: int) -> np.ndarray:
    """``[T, N, C, H, W]`` windows at ``offsets`` (zero-padded at the end)."""
    from .train import crop_window

    return np.stack(
        [crop_window(s, int(o), window) for s, o in zip(data.spikes, offsets, strict=True)], axis=1
    )


def torch_counts(model: PSNN, x: np.ndarray, semantics: str) -> np.ndarray:
    """Output spike counts ``[N, n]`` of a torch model."""
    from .train import predict_counts

    return predict_counts(model, x, semantics)


def emulator_counts(backend: Any, x: np.ndarray) -> np.ndarray:
    """Output spike counts ``[N, n]`` of the emulator, one run per window; a window too dense for the chip's
    spike buffers is split in time as the daemon splits it (``chunking.run_window``)."""
    from s2gesture.daemon.chunking import run_window

    return np.stack([run_window(np.ascontiguousarray(x[:, i]), backend).scores for i in range(x.shape[1])])


def full_recording_torch(
    model: PSNN, data: BinnedSet, semantics: str, plan: Any, none_index: int | None = None
) -> np.ndarray:
    """Final class per recording with the daemon's chunking and decision, torch model batched per recording."""
    import torch

    from s2gesture.daemon.chunking import is_active, plan_chunks
    from s2gesture.daemon.decision import classify_recording

    policy = daemon_policy(none_index)
    preds = []
    for spikes in data.spikes:
        chunks = [spikes[a:b] for a, b in plan_chunks(len(spikes), plan)]
        active = [c for c in chunks if is_active(c, plan)]
        by_length: dict[int, list[int]] = {}
        for i, c in enumerate(active):
            # the tail window is shorter only when the whole recording is; batch equal lengths together
            by_length.setdefault(c.shape[0], []).append(i)
        ordered: list[np.ndarray] = [np.zeros(0)] * len(active)
        for idxs in by_length.values():
            for b in range(0, len(idxs), 32):
                part = idxs[b : b + 32]
                with torch.no_grad():
                    x = torch.from_numpy(np.stack([active[i] for i in part], axis=1)).float()
                    out = model(x, semantics).numpy()
                for j, i in enumerate(part):
                    ordered[i] = out[:, j]
        runner = _ReplayRunner(ordered, model.cfg.n_classes)
        cls, _ = classify_recording(spikes, runner, plan, policy)
        preds.append(cls)
    return np.asarray(preds)


def full_recording_backend(backend: Any, data: BinnedSet, plan: Any, none_index: int | None = None) -> np.ndarray:
    """Final class per recording on a real backend (the daemon's path exactly)."""
    from s2gesture.daemon.decision import classify_recording

    policy = daemon_policy(none_index)
    return np.asarray([classify_recording(s, backend, plan, policy)[0] for s in data.spikes])


def emulated_final_classes(model_path: str | Path, recordings: list[Any]) -> np.ndarray:
    """Final class per recording of a ``.nir`` model on the emulator, exactly as a default-configured daemon decides.

    The offline side of every live-versus-offline comparison (``s2gesture eval`` tests and benchmarks).
    """
    from s2gesture.daemon.backends import get_backend, options_from_card
    from s2gesture.daemon.card import read_model
    from s2gesture.daemon.preprocess import PreprocessSpec

    from .binned import bin_recordings

    model = read_model(model_path)
    backend = get_backend("emulator", **options_from_card(model.card))
    backend.load(model.graph)
    try:
        spec = PreprocessSpec.from_card(model.card.input, recordings[0].sensor_size)
        return full_recording_backend(backend, bin_recordings(recordings, spec), daemon_chunk_plan(backend.max_ticks),
                                      model.card.none_index)  # fmt: skip
    finally:
        backend.close()


def confusion(labels: np.ndarray, preds: np.ndarray, n: int = 11) -> np.ndarray:
    """Confusion matrix ``[true, predicted]`` (a prediction of -1, no evidence, is not counted as a class)."""
    m = np.zeros((n, n), dtype=np.int64)
    for t, p in zip(labels, preds, strict=True):
        if 0 <= p < n:
            m[t, p] += 1
    return m


def recording_sessions(test: BinnedSet) -> tuple[list[str], list[str]]:
    """User and lighting of every test recording (``"unknown"`` where the set does not say)."""
    names = test.names or [""] * len(test)
    users = test.users or [""] * len(test)
    out_users, out_lightings = [], []
    for user, name in zip(users, names, strict=True):
        found_user, lighting = userstats.session_of(name, {"user": user} if user else None)
        out_users.append(found_user)
        out_lightings.append(lighting)
    return out_users, out_lightings


def _stats(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0}


#: what forked evaluation workers read (set before the pool forks, so the loaded backends are inherited)
_STATE: dict[str, Any] = {}


def _window_task(kind: str, key: Any, a: int, b: int) -> tuple[dict[str, np.ndarray], np.ndarray | None, float]:
    """Counts per window set and (optionally) full-recording classes of test recordings ``a:b`` for one row."""
    t0 = time.perf_counter()
    st = _STATE
    idx = np.arange(a, b)
    sub = st["test"].subset(idx)
    counts = {}
    for name, offsets in st["offsets"].items():
        x = windows_at(sub, offsets[idx], st["window"])
        if kind == "emulator":
            counts[name] = emulator_counts(st["backends"][key], x)
        else:
            model, sem = st["torch"][key]
            counts[name] = torch_counts(model, x, sem)
    full = None
    if kind == "emulator":
        full = full_recording_backend(st["backends"][key], sub, st["plan"], st["none_index"])
    elif st["torch_full"][key]:
        model, sem = st["torch"][key]
        full = full_recording_torch(model, sub, sem, st["plan"], st["none_index"])
    return counts, full, time.perf_counter() - t0


def _worker_init() -> None:
    """One torch thread per worker process (as torch's DataLoader workers do): the processes are the parallelism."""
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def _pool(workers: int) -> Any:
    """A process pool of ``workers`` forked processes (None when one worker or no fork on this platform)."""
    import multiprocessing as mp

    if workers <= 1 or "fork" not in mp.get_all_start_methods():
        return None
    import concurrent.futures as cf

    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork"), initializer=_worker_init)


def default_workers() -> int:
    """Processes for the emulator runs: the cores this process may use."""
    import os

    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def evaluate(
    float_model: PSNN,
    variants: list[Variant],
    test: BinnedSet,
    *,
    seeds: tuple[int, ...] = (0, 1, 2),
    window: int = RUN_TICKS,
    float_semantics: str = "snntorch",
    progress: Callable[[str], None] = print,
    ablations: tuple[str, ...] = DEFAULT_ABLATIONS,
    ablate_variants: tuple[str, ...] | None = None,
    torch_full: bool = False,
    workers: int | None = None,
    bar: bool = True,
    chunk: int = 4,
    torch_chunk: int = 16,
) -> dict[str, Any]:
    """The whole comparison as a JSON-able report (see the module docstring).

    ``ablations``: the torch semantics run for each variant in ``ablate_variants`` (default: all; the
    others get the snnTorch-semantics row only). Full-recording accuracy is measured for the float model,
    on the emulator, and for torch rows only with ``torch_full`` (else reported as None): torch on a CPU is
    ~50x slower than the compiled emulator.

    Every row runs in ``workers`` forked processes (default: every core this process may use) in units of
    ``chunk`` recordings (``torch_chunk`` for torch rows, which batch better), one torch thread each; a
    progress bar with an ETA counts the units (``bar``). Results do not depend on ``workers`` (each unit is
    a pure function of its recordings).
    """
    from tqdm import tqdm

    from s2gesture.daemon.backends import get_backend, options_from_card

    from .quantize import memory_table

    labels = test.labels
    n = len(test)
    users, lightings = recording_sessions(test)
    offsets = {"first": window_offsets(test, window, None)} | {
        f"seed{s}": window_offsets(test, window, s) for s in seeds
    }
    plan_probe = None
    mapping: dict[str, Any] = {}
    backends = {}
    for v in variants:
        b = get_backend("emulator", **options_from_card(v.card))
        mapping[v.name] = b.load(v.graph)
        backends[v.name] = b
        plan_probe = plan_probe or daemon_chunk_plan(b.max_ticks)
    plan = plan_probe or daemon_chunk_plan(RUN_TICKS)

    # rows in report order: (name, model name, kind, task kind, key)
    specs: list[tuple[str, str, str, str, Any]] = [
        (f"float ({float_semantics} semantics)", "float", "float", "torch", "float")
    ]
    torch_models: dict[Any, tuple[Any, str]] = {"float": (float_model, float_semantics)}
    torch_full_of: dict[Any, bool] = {"float": True}
    for v in variants:
        for label, sem in ABLATIONS.items():
            if sem not in ablations or (
                sem != "snntorch" and ablate_variants is not None and v.name not in ablate_variants
            ):
                continue
            torch_models[(v.name, sem)] = (v.model, sem)
            torch_full_of[(v.name, sem)] = torch_full
            specs.append((f"{v.name}: {label}", v.name, sem, "torch", (v.name, sem)))
        specs.append((f"{v.name}: int8 on the emulator (chip)", v.name, "emulator", "emulator", v.name))

    _STATE.clear()
    # every variant has the float model's classes; the cards say which one is the background class
    none_index = variants[0].card.none_index if variants else None
    _STATE.update(test=test, offsets=offsets, window=window, backends=backends, torch=torch_models,
                  torch_full=torch_full_of, plan=plan, none_index=none_index)  # fmt: skip
    def bounds_of(task: str) -> list[tuple[int, int]]:
        step = chunk if task == "emulator" else torch_chunk
        return [(a, min(a + step, n)) for a in range(0, n, step)]

    results: dict[int, list[Any]] = {r: [None] * len(bounds_of(spec[3])) for r, spec in enumerate(specs)}
    total = sum(len(v) for v in results.values())
    pbar = tqdm(total=total, desc="evaluate", unit="unit", disable=not bar, leave=False)
    pool = _pool(default_workers() if workers is None else workers)
    try:
        futures: dict[Any, tuple[int, int]] = {}
        # torch units first: they are the long ones, so the pool ends with short emulator units
        order = sorted(range(len(specs)), key=lambda r: specs[r][3] == "emulator")
        for r in order:
            spec = specs[r]
            for c, (a, b) in enumerate(bounds_of(spec[3])):
                if pool is None:
                    results[r][c] = _window_task(spec[3], spec[4], a, b)
                    pbar.update(1)
                else:
                    futures[pool.submit(_window_task, spec[3], spec[4], a, b)] = (r, c)
        if futures:
            import concurrent.futures as cf

            for fut in cf.as_completed(futures):
                r, c = futures[fut]
                results[r][c] = fut.result()
                pbar.update(1)
    finally:
        pbar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        _STATE.clear()

    rows: list[dict[str, Any]] = []
    confusions: dict[str, np.ndarray] = {}
    n_classes = int(float_model.cfg.n_classes)
    for r, (name, model_name, kind, _task, _key) in enumerate(specs):
        parts = results[r]
        counts = {k: np.concatenate([p[0][k] for p in parts]) if parts else np.zeros((0, n_classes)) for k in offsets}
        full = None if not parts or parts[0][1] is None else np.concatenate([p[1] for p in parts])
        preds = {k: c.argmax(1) for k, c in counts.items()}
        accs = {k: float((pr == labels).mean()) for k, pr in preds.items()}
        row = {
            "name": name,
            "model": model_name,
            "kind": kind,
            "first_window_acc": accs["first"],
            "seed_window_acc": [accs[f"seed{s}"] for s in seeds],
            "full_recording_acc": None if full is None else float((full == labels).mean()),
            "seconds": float(sum(p[2] for p in parts)),
            # per recording, for paired intervals between rows (same recordings, same windows)
            "first_preds": preds["first"].tolist(),
            "full_preds": None if full is None else full.tolist(),
        }
        row["window_acc"] = _stats(row["seed_window_acc"])
        # the interval over users is taken on what the daemon would answer (the full recording) where run
        basis, basis_preds = ("full recording", full) if full is not None else ("first window", preds["first"])
        row["user_stats_basis"] = basis
        row.update(userstats.accuracy_stats(basis_preds == labels, users, lightings))
        rows.append(row)
        confusions[f"{name} | first window"] = confusion(labels, preds["first"], n_classes)
        if full is not None:
            confusions[f"{name} | full recording"] = confusion(labels, full, n_classes)
        progress(
            f"{name}: first window {row['first_window_acc']:.4f}, random windows "
            f"{row['window_acc']['mean']:.4f} +- {row['window_acc']['std']:.4f}, full {row['full_recording_acc']}; "
            f"{basis}: {row['summary']}"
        )
    base = rows[0]
    for row in rows:
        paired = [a - f for a, f in zip(row["seed_window_acc"], base["seed_window_acc"], strict=True)]
        row["drop_pp"] = {
            "window": _stats([-100 * d for d in paired]),
            "first_window": 100 * (base["first_window_acc"] - row["first_window_acc"]),
            "full_recording": None
            if row["full_recording_acc"] is None
            else 100 * (base["full_recording_acc"] - row["full_recording_acc"]),
        }
    memory = {v.name: _memory_report(memory_table(v.model), mapping[v.name]) for v in variants}
    for b in backends.values():
        b.close()
    return {
        "test_set": test.summary() | {"lightings": sorted(set(lightings)), "n_users": len(set(users))},
        "n_test": len(test),
        "labels": labels.tolist(),
        "window_ticks": window,
        "seeds": list(seeds),
        "seed_varies": "offset of the random window in each recording (models fixed)",
        "chunk_plan": {"window": plan.window, "stride": plan.stride, "min_activity": plan.min_activity},
        "decision": vars(daemon_policy().params),
        "rows": rows,
        "confusions": {k: v.tolist() for k, v in confusions.items()},
        "memory": memory,
        "variants": {
            v.name: {"trained_for": v.trained_for, "quantization": _brief_record(v.record)} for v in variants
        },
    }


def _brief_record(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in ("scheme", "percentile", "layer_scales", "thresholds") if k in record}


def _memory_report(table: list[dict[str, Any]], mapping: Any) -> dict[str, Any]:
    pops = []
    for pop in mapping.populations:
        peak = max(pop.bytes_per_pe, key=lambda b: b["total"])
        pops.append(
            {
                "population": pop.name,
                "neurons": pop.neurons,
                "atoms_per_pe": pop.max_atoms_per_core,
                "pes": pop.pes,
                "max_bytes_per_pe": int(peak["total"]),
                "synapse_bytes_per_pe": int(peak["synapses"]),
            }
        )
    return {
        "weights": table,
        "pes_used": mapping.pes_used,
        "pes_available": mapping.pes_available,
        "max_ticks": mapping.max_ticks,
        "limiting": mapping.limiting,
        "populations": pops,
    }


def plot_confusions(
    confusions: dict[str, list[list[int]]], path: Path, classes: tuple[str, ...], keys: list[str]
) -> None:
    """Confusion matrices of ``keys`` side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(keys)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.0 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys, strict=False):
        m = np.asarray(confusions[key])
        ax.imshow(m, cmap="Blues")
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                if m[i, j]:
                    ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=6)
        ax.set_title(key, fontsize=7)
        ax.set_xticks(range(len(classes)))
        ax.set_yticks(range(len(classes)))
        ax.set_xlabel("predicted", fontsize=7)
        ax.set_ylabel("true", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_accuracies(report: dict[str, Any], path: Path) -> None:
    """Bar chart: random-window accuracy (mean +- std over seeds), first-window and full-recording accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["rows"]
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(rows) + 1.2))
    ax.barh(y - 0.25, [100 * r["window_acc"]["mean"] for r in rows], 0.25,
            xerr=[100 * r["window_acc"]["std"] for r in rows], label=f"random {report['window_ticks']}-tick window (mean ± std, seeds)")  # fmt: skip
    ax.barh(y, [100 * r["first_window_acc"] for r in rows], 0.25, label=f"first {report['window_ticks']} ticks")
    # whiskers on the full-recording bars: the interval over users, where it was taken on full recordings
    err = np.zeros((2, len(rows)))
    for i, r in enumerate(rows):
        if r.get("user_stats_basis") == "full recording":
            ci = r["user_ci"]
            err[:, i] = 100 * (ci["mean"] - ci["lo"]), 100 * (ci["hi"] - ci["mean"])
    ax.barh(
        y + 0.25,
        [100 * (r["full_recording_acc"] or 0.0) for r in rows],
        0.25,
        xerr=err,
        label="full recording (daemon chunks; 95 % CI over users)",
    )
    ax.set_yticks(y)
    ax.set_yticklabels([r["name"] for r in rows], fontsize=7)
    ax.invert_yaxis()
    lo = min(
        100 * min(r["first_window_acc"], r["window_acc"]["mean"], r["full_recording_acc"] or 1.0)
        for r in rows
    )
    lo = min(lo, float(np.min(np.asarray([100 * (r["full_recording_acc"] or 1.0) for r in rows]) - err[0])))
    left = max(0.0, 10 * np.floor((lo - 10) / 10))
    ax.set_xlim(left, 100)
    why = f"; axis starts at {left:.0f} % so the differences show" if left > 0 else ""
    ax.set_xlabel(f"accuracy (%) on {report['n_test']} held-out recordings{why}")
    # legend below the axes: it never covers a bar
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.5 / max(1.0, 0.32 * len(rows))), ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(report: dict[str, Any]) -> str:
    """The report as a markdown section."""
    n = report["n_test"]
    lines = [
        f"Test set: {n} recordings of held-out users {', '.join(report['test_set']['users'])}; "
        f"one recording = {100 / max(1, n):.2f} pp. Seeds {report['seeds']} vary the "
        f"{report['seed_varies']}. Windows of {report['window_ticks']} ticks; full recordings cut by the "
        f"daemon's chunk plan {report['chunk_plan']} and decided by its default policy.",
        "",
        "| model | random window (mean ± std) | drop (pp, paired) | first window | full recording | full drop (pp) |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        w, d = r["window_acc"], r["drop_pp"]["window"]
        full = "-" if r["full_recording_acc"] is None else f"{100 * r['full_recording_acc']:.2f} %"
        full_drop = (
            "-" if r["drop_pp"]["full_recording"] is None else f"{r['drop_pp']['full_recording']:+.2f}"
        )
        lines.append(
            f"| {r['name']} | {100 * w['mean']:.2f} ± {100 * w['std']:.2f} % | {d['mean']:+.2f} ± {d['std']:.2f} | "
            f"{100 * r['first_window_acc']:.2f} % | {full} | {full_drop} |"
        )
    lines += users_section(report)
    for name, mem in report["memory"].items():
        lines += [
            "",
            f"Memory of `{name}`: {mem['pes_used']} of {mem['pes_available']} PEs; max run {mem['max_ticks']} ticks "
            f"(limited by {mem['limiting']}).",
            "",
            "| layer | weights | float32 bytes | int8 bytes |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {t['layer']} | {t['weights']} | {t['float32_bytes']} | {t['int8_bytes']} |"
            for t in mem["weights"]
        ]
        lines += [
            "",
            "| population | neurons | neurons/PE | PEs | max bytes/PE | synapse bytes/PE |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {p['population']} | {p['neurons']} | {p['atoms_per_pe']} | {p['pes']} | {p['max_bytes_per_pe']} | "
            f"{p['synapse_bytes_per_pe']} |"
            for p in mem["populations"]
        ]
        break  # the layout is the same for every variant of one architecture
    if report.get("neurobench"):
        lines += neurobench_section(report["neurobench"])
    return "\n".join(lines) + "\n"


def users_section(report: dict[str, Any]) -> list[str]:
    """Markdown lines: each row's accuracy with its interval over users, then accuracy per user and per lighting."""
    rows = [r for r in report["rows"] if "user_ci" in r]
    if not rows:
        return []  # a report written before the per-user figures existed
    first = rows[0]["user_ci"]
    lines = [
        "",
        f"Intervals resample users ({100 * first['level']:.0f} %, cluster bootstrap, {first['n_boot']} resamples, "
        f"seed {first['seed']}): recordings of one person are correlated, so users, not recordings, are the "
        "independent tries (docs/evaluation.md, \"Intervals that resample users\"). Per row, on its full "
        "recordings (the first window where none were run):",
        "",
    ]
    lines += [f"- ({i}) {r['name']} [{r['user_stats_basis']}]: {r['summary']}" for i, r in enumerate(rows, 1)]
    cols = " | ".join(f"({i})" for i in range(1, len(rows) + 1))
    lines += ["", f"| user | recordings | {cols} |", "|---|---|" + "---|" * len(rows)]
    for j, u in enumerate(rows[0]["per_user"]):
        accs = " | ".join(f"{100 * r['per_user'][j]['acc']:.1f} %" for r in rows)
        lines.append(f"| {u['user']} | {u['n']} | {accs} |")
    lines += ["", f"| lighting | recordings | users | {cols} |", "|---|---|---|" + "---|" * len(rows)]
    for j, li in enumerate(rows[0]["per_lighting"]):
        accs = " | ".join(
            f"{100 * r['per_lighting'][j]['acc']:.1f} % [{100 * r['per_lighting'][j]['lo']:.1f}, "
            f"{100 * r['per_lighting'][j]['hi']:.1f}]"
            for r in rows
        )
        lines.append(f"| {li['lighting']} | {li['n']} | {li['n_users']} | {accs} |")
    return lines


def neurobench_section(metrics: dict[str, Any]) -> list[str]:
    """Markdown lines: NeuroBench's metrics per model from both counters, and the energy estimate."""
    lines = ["", f"NeuroBench metrics per sample ({metrics['windows']} first windows of {metrics['ticks']} ticks; "
             "docs/reproduce.md says how the two counters differ):", "",
             "| model | counter | Footprint (B) | ConnectionSparsity | ActivationSparsity | Effective MACs | Effective ACs | Dense | energy (model) |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, by in metrics.items():
        if not isinstance(by, dict):
            continue
        for who, m in by.items():
            if "error" in m:
                lines.append(f"| {name} | {who} | {m['error']} | | | | | | |")
                continue
            so = m["SynapticOperations"]
            en = m.get("energy_per_sample")
            energy = "-" if en is None else f"{1e3 * en['energy_j']:.3g} mJ ({1e3 * en['energy_j_low']:.3g} .. {1e3 * en['energy_j_high']:.3g})"
            lines.append(f"| {name} | {who} | {m.get('Footprint', m.get('Footprint_int8_weights_bytes'))} | "
                         f"{m['ConnectionSparsity']:.4f} | {m['ActivationSparsity']:.4f} | {so['Effective_MACs']:.4g} | "
                         f"{so['Effective_ACs']:.4g} | {so['Dense']:.4g} | {energy} |")  # fmt: skip
    return lines


def workload_metrics(variants: list[Variant], test: BinnedSet, windows: int, window: int = RUN_TICKS) -> dict[str, Any]:
    """Both counters' NeuroBench metrics (and the energy estimate) of each variant on the first ``windows`` test windows."""
    sub = test.subset(list(range(min(windows, len(test)))))
    x = windows_at(sub, window_offsets(sub, window, None), window)
    out: dict[str, Any] = {"windows": int(x.shape[1]), "ticks": window}
    for v in variants:
        out[v.name] = {"emulator": emulator_metrics(v, x)}
        try:
            out[v.name]["neurobench"] = neurobench_metrics(v.model, x, "chip")
        except ImportError as exc:
            out[v.name]["neurobench"] = {"error": f"neurobench not installed ({exc}); pip install --no-deps neurobench (the [bench] extra)"}
    return out


def write_report(report: dict[str, Any], out: Path, classes: tuple[str, ...]) -> None:
    """report.json, report.md, accuracy.png, confusion.png into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    (out / "report.md").write_text(markdown(report))
    plot_accuracies(report, out / "accuracy.png")
    keys = [
        k for k in report["confusions"] if k.endswith("full recording") and ("float" in k or "emulator" in k)
    ]
    plot_confusions(report["confusions"], out / "confusion.png", classes, keys[:6])


def load_variant(path: str | Path, name: str | None = None) -> Variant:
    """A quantized model from an integer ``.pt`` (quantizer output) or a ``.nir`` (exporter output)."""
    from s2gesture.daemon.card import read_model

    from .export import make_card, psnn_from_nir, to_nir_graph
    from .train import load_model_file

    path = Path(path)
    if path.suffix == ".nir":
        m = read_model(path)
        model = psnn_from_nir(m.graph, dt=m.card.conversion.dt)
        return Variant(
            name or m.card.name, model, m.graph, m.card, str(m.card.semantics.get("trained_for", "snntorch")),
            dict(m.card.quantization),
        )  # fmt: skip
    model, blob = load_model_file(path)
    if blob.get("kind") != "int8":
        msg = f"{path} is a {blob.get('kind')!r} model; pass integer models (.pt from `s2gesture quantize` or .nir)"
        raise ValueError(msg)
    card = make_card(name or path.stem, blob["quantization"], semantics=blob.get("semantics", "snntorch"),
                     tau_ticks=model.cfg.tau_ticks)  # fmt: skip
    return Variant(
        name or path.stem,
        model,
        to_nir_graph(model),
        card,
        blob.get("semantics", "snntorch"),
        blob["quantization"],
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``s2gesture evaluate`` argument parser."""
    p = argparse.ArgumentParser(prog="s2gesture evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="dataset root (tonic layout or the IBM raw release); its test split is used")
    p.add_argument("--float", dest="float_model", required=True, help="float model.pt (the reference)")
    p.add_argument(
        "--quantized", nargs="+", required=True, metavar="[NAME=]PATH", help="integer .pt or .nir models"
    )
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--window", type=int, default=RUN_TICKS, help=f"ticks per window (default {RUN_TICKS}: the chip's run)")
    p.add_argument("--limit", type=int, help="only N test recordings (spread over users and classes)")
    p.add_argument("--workers", type=int, default=None, help="processes for the emulator runs (default: every core)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--neurobench", type=int, default=8, metavar="N",
                   help="NeuroBench metrics and the energy estimate on the first N test windows (0: skip)")  # fmt: skip
    from .train import add_data_arguments

    add_data_arguments(p)
    return p


def cli(argv: list[str] | None = None) -> int:
    """``s2gesture evaluate``."""
    args = build_parser().parse_args(argv)
    from s2gesture.daemon.card import GESTURE_CLASSES
    from s2gesture.daemon.preprocess import PreprocessSpec

    from .binned import load_split
    from .train import load_model_file, setup_torch

    setup_torch(0, 2)
    if len(args.seeds) < 3:
        print("note: fewer than 3 seeds give no meaningful spread")
    float_model, blob = load_model_file(args.float_model)
    variants = []
    for item in args.quantized:
        name, _, path = item.rpartition("=")
        variants.append(load_variant(path, name or None))
    test = load_split(args.data, "test", PreprocessSpec(sensor_size=(128, 128)), limit=args.limit,
                      cache_dir=args.cache, strict=args.strict, progress=not args.no_progress)  # fmt: skip
    if test.skipped_rows:
        print(f"note: skipped {test.skipped_rows} bad label rows (--skip-bad-rows)")
    report = evaluate(float_model, variants, test, seeds=tuple(args.seeds), window=args.window,
                      float_semantics=blob.get("semantics", "snntorch"), workers=args.workers,
                      bar=not args.no_progress)  # fmt: skip
    if args.neurobench > 0:
        report["neurobench"] = workload_metrics(variants, test, args.neurobench, args.window)
    write_report(report, Path(args.out), GESTURE_CLASSES)
    print(f"report in {args.out}/report.md")
    return 0


def neurobench_metrics(model: PSNN, x: np.ndarray, semantics: str = "chip") -> dict[str, Any]:
    """NeuroBench's metrics of a torch P-SNN on windows ``x [T, N, C, H, W]``, computed by the neurobench package.

    Static metrics (Footprint, ConnectionSparsity, ParameterCount) are the package's own, on the model.
    The workload metrics use the package's per-layer counter (``single_layer_MACs``) on each weight layer's
    input, taken from a recorded run (the P-SNN calls its layers functionally, so NeuroBench's module hooks
    never fire; the counter is the same). Per NeuroBench's rule an input that is not 0/1 makes its layer's
    operations MACs: the sum-pooled inputs of conv3 and fc1 count once per non-zero pooled value, where the
    chip (and :func:`s2gesture.models.mapping.activity_counts`) spends one event per source spike.
    ActivationSparsity is 1 - spikes / (neurons x ticks) over the LIF layers, as the package defines it.
    """
    import torch
    import torch.nn.functional as F  # noqa: N812
    from neurobench.metrics.static import ConnectionSparsity, Footprint, ParameterCount
    from neurobench.metrics.utils.layers import single_layer_MACs
    from neurobench.models import TorchModel

    wrapped = TorchModel(model)
    static = {
        "Footprint": int(Footprint()(wrapped)),
        "ConnectionSparsity": float(ConnectionSparsity()(wrapped)),
        "ParameterCount": int(ParameterCount()(wrapped)),
    }
    xt = torch.from_numpy(np.ascontiguousarray(x)).float()
    T, N = xt.shape[:2]
    with torch.no_grad():
        _, recorded = model(xt, semantics, record=True)
        h = xt
        macs = acs = dense = 0
        per_layer: dict[str, int] = {}
        spikes = cells = 0
        for stage in model.stages:
            if stage.kind in ("conv", "linear"):
                inp = h.reshape(h.shape[0] * h.shape[1], *h.shape[2:])
                ops, spiking = single_layer_MACs(inp, model.weights[stage.name])
                total, _ = single_layer_MACs(inp, model.weights[stage.name], total=True)
                per_layer[stage.name] = int(ops)
                dense += int(total)
                if spiking:
                    acs += int(ops)
                else:
                    macs += int(ops)
                h = None  # the next LIF stage's recorded spikes replace it
            elif stage.kind == "lif":
                h = recorded[stage.name]
                spikes += int(h.sum())
                cells += int(h.numel())
            elif stage.kind == "sumpool":
                k = stage.params["k"]
                flat = h.reshape(h.shape[0] * h.shape[1], *h.shape[2:])
                out = F.avg_pool2d(flat, k, stride=k) * (k * k)
                h = out.reshape(h.shape[0], h.shape[1], *out.shape[1:])
            elif stage.kind == "flatten":
                h = h.reshape(h.shape[0], h.shape[1], -1)
    return {
        "package": "neurobench",
        "samples": int(N),
        "ticks": int(T),
        "semantics": semantics,
        **static,
        "ActivationSparsity": 1.0 - spikes / max(1, cells),
        "SynapticOperations": {"Effective_MACs": macs / N, "Effective_ACs": acs / N, "Dense": dense / N},
        "effective_ops_per_layer_per_sample": {k: v / N for k, v in per_layer.items()},
    }


def emulator_metrics(variant: Variant, x: np.ndarray) -> dict[str, Any]:
    """Our own counter on the emulator: NeuroBench's quantities from the chip run, plus the energy estimate.

    Runs each window of ``x [T, N, C, H, W]`` on the emulator recording every population's spikes and
    counts with :func:`s2gesture.models.mapping.activity_counts` (events = source spikes x stored synapses).
    """
    from s2gesture.daemon.backends import ChipOptions, get_backend, options_from_card
    from s2gesture.daemon.backends.translate import translate

    from .mapping import activity_counts, energy_estimate

    options = options_from_card(variant.card)
    net = translate(variant.graph, ChipOptions(**options))
    backend = get_backend("emulator", **options)
    mapping = backend.load(variant.graph)
    try:
        per = []
        for i in range(x.shape[1]):
            win = np.ascontiguousarray(x[:, i])
            res = backend.run(win, record=("spikes",))
            per.append(activity_counts(net, win, {k: res.spikes[k] for k in res.spikes}))
    finally:
        backend.close()
    n = max(1, len(per))
    events = {k: sum(p["synaptic_events"][k] for p in per) / n for k in per[0]["synaptic_events"]} if per else {}
    dense = sum(sum(p["dense_synaptic_ops"].values()) for p in per) / n
    spikes = sum(sum(p["spikes"].values()) for p in per)
    cells = sum(sum(p["neurons"].values()) * p["ticks"] for p in per)
    updates = sum(p["neuron_updates"] for p in per) / n
    ticks = sum(p["ticks"] for p in per) / n
    weights = [np.asarray(p.weight) for p in net.projections]
    n_w = sum(int(w.size) for w in weights)
    return {
        "package": "s2gesture emulator counter",
        "samples": len(per),
        "ticks": ticks,
        "Footprint_int8_weights_bytes": n_w,
        "ConnectionSparsity": sum(int((w == 0).sum()) for w in weights) / max(1, n_w),
        "ActivationSparsity": 1.0 - spikes / max(1, cells),
        "SynapticOperations": {"Effective_MACs": 0.0, "Effective_ACs": float(sum(events.values())), "Dense": dense},
        "synaptic_events_per_projection_per_sample": events,
        "neuron_updates_per_sample": updates,
        "energy_per_sample": energy_estimate(float(sum(events.values())), updates, ticks, mapping.pes_used),
    }
