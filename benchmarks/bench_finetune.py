"""Fine-tuning to a new user: accuracy with 5 / 10 / 20 takes per class, and with one added gesture class.

The new user is generated with a seed nobody tuned on (``--user-seed``, default 777_123): their takes are
synthetic recordings of sessions 0.. (training) and 100.. (held out), under all five lightings in turn. The
added gesture is a hand wave at hip height: the generator's right-hand wave flipped top-bottom, which no
training class shows. Every figure is measured in this run against the un-fine-tuned model on the same
held-out takes: accuracy on the first ``--window`` ticks of each held-out take, in chip semantics, float and
int8 (the fine-tuned int8 model is the exported QAT model; the base int8 model is percentile-100 PTQ).

The base model is ``models/pretrained/psnn_float.pt`` when it exists; otherwise a small one is trained here
on generated users 1..``--base-users`` (seed 1) for ``--base-epochs`` epochs, and the output says so.

Usage: python benchmarks/bench_finetune.py [--quick] [--base MODEL.pt] [--user-seed N] [--epochs N] [--out PATH]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import write_section  # benchmarks/ is sys.path[0] when a script runs

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "finetune.md"
LIGHTINGS = ("fluorescent", "fluorescent_led", "lab", "led", "natural")
NEW_NAME = "hip wave"


def _takes(seed: int, user: int, label: int, sessions: range, duration_s: float, flip: bool = False) -> list:
    from s2gesture.daemon.events import Recording
    from s2gesture.models import synth

    recs = []
    for s in sessions:
        rec = synth.recording(seed, user, s, LIGHTINGS[s % len(LIGHTINGS)], label, duration_s)
        ev = rec.events.copy()
        ev["t"] -= int(ev["t"][0])
        if flip:
            ev["y"] = 127 - ev["y"]
        recs.append(Recording(ev, (128, 128), label=label, name=f"user{user:02d}_s{s}/{label}", meta={"user": user}))
    return recs


def _binned(recs: list, labels: list[int], spec: object) -> object:
    import dataclasses

    from s2gesture.models.binned import bin_recordings

    recs = [dataclasses.replace(r, label=lab) for r, lab in zip(recs, labels, strict=True)]
    return bin_recordings(recs, spec)


def _acc(model: object, data: object, window: int, mask: np.ndarray | None = None) -> float:
    from s2gesture.models.train import first_windows, predict_counts

    pred = predict_counts(model, first_windows(data, window), "chip").argmax(1)  # type: ignore[attr-defined]
    ok = pred == data.labels  # type: ignore[attr-defined]
    return float(ok[mask].mean() if mask is not None else ok.mean())


def train_base(args: argparse.Namespace, spec: object, work: Path) -> tuple[object, str]:
    """A small chip-semantics base model on generated users 1..base_users (when none is shipped)."""
    from s2gesture.models import synth
    from s2gesture.models.network import PSNN, PSNNConfig
    from s2gesture.models.train import TrainConfig, init_from_data_, train_model

    recs, labels = [], []
    for user in range(1, args.base_users + 1):
        for label in range(synth.N_CLASSES):
            r = _takes(1, user, label, range(args.base_sessions), args.duration)
            recs += r
            labels += [label] * len(r)
    data = _binned(recs, labels, spec)
    cfg = TrainConfig(epochs=args.base_epochs, batch_size=16, lr=3e-3, window=args.window, eval_window=args.window,
                      semantics="chip", seed=0, threads=args.threads, prefetch=0, mirror_p=0.5)  # fmt: skip
    model = PSNN(PSNNConfig(channels=tuple(args.base_channels), hidden=args.base_hidden))
    init_from_data_(model, data, cfg)
    train_model(model, data, None, cfg, work / "base", progress=False)
    model.eval()
    what = (f"trained here (no models/pretrained/psnn_float.pt yet): {len(data)} recordings of {args.base_users} generated "
            f"users (seed 1), {args.base_epochs} epochs, channels {tuple(args.base_channels)}, hidden {args.base_hidden}")  # fmt: skip
    return model, what


def main(argv: list[str] | None = None) -> int:
    """Measure and write benchmarks/results/finetune.md."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", help="float base model .pt (default: the shipped psnn_float.pt, else train one)")
    parser.add_argument("--base-epochs", type=int, default=4, help="epochs of the base trained here when none is shipped")
    parser.add_argument("--base-users", type=int, default=6)
    parser.add_argument("--base-sessions", type=int, default=2)
    parser.add_argument("--base-channels", type=int, nargs=3, default=(16, 16, 8))
    parser.add_argument("--base-hidden", type=int, default=256)
    parser.add_argument("--user-seed", type=int, default=777_123, help="seed of the new user (never tuned on)")
    parser.add_argument("--takes", type=int, nargs="+", default=(5, 10, 20), help="takes per class to fine-tune on")
    parser.add_argument("--new-takes", type=int, default=10, help="takes per class in the added-class run")
    parser.add_argument("--held-out", type=int, default=6, help="held-out takes per class")
    parser.add_argument("--duration", type=float, default=0.6, help="seconds per take")
    parser.add_argument("--window", type=int, default=100, help="ticks per training and evaluation window")
    parser.add_argument("--epochs", type=int, default=None, help="float fine-tuning epochs (default: s2gesture finetune's)")
    parser.add_argument("--qat-epochs", type=int, default=None, help="QAT epochs (default: s2gesture finetune's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="5 / 10 takes, 3 held out, 2 base epochs")
    parser.add_argument("--out", default=str(RESULTS), help="results file (default benchmarks/results/finetune.md; "
                        "another path for a run on a tuning seed)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.quick:
        args.takes, args.held_out, args.base_epochs, args.new_takes = (5, 10), 3, 2, 5
    t_start = time.perf_counter()

    from s2gesture.daemon.preprocess import PreprocessSpec
    from s2gesture.models import synth
    from s2gesture.models.finetune import (
        DEFAULT_FLOAT,
        FinetuneSettings,
        finetune,
        grow_output,
        model_classes,
    )
    from s2gesture.models.quantize import quantize_ptq
    from s2gesture.models.train import load_model_file, setup_torch

    defaults = FinetuneSettings()
    args.epochs = defaults.epochs if args.epochs is None else args.epochs
    args.qat_epochs = defaults.qat_epochs if args.qat_epochs is None else args.qat_epochs
    setup_torch(0, args.threads)
    spec = PreprocessSpec(sensor_size=(128, 128))
    work = Path(tempfile.mkdtemp(prefix="bench_finetune_"))
    base_path = Path(args.base) if args.base else DEFAULT_FLOAT
    if base_path.is_file():
        base, blob = load_model_file(base_path)
        base_what = f"{base_path.relative_to(ROOT) if base_path.is_relative_to(ROOT) else base_path}"
        model_classes(blob, base.cfg.n_classes, str(base_path))  # refuses a file whose class names do not fit
    else:
        print("no models/pretrained/psnn_float.pt: training a small base model here (--base-epochs)", flush=True)
        base, base_what = train_base(args, spec, work)
    n_old = base.cfg.n_classes  # type: ignore[attr-defined]
    gestures = list(range(min(synth.N_CLASSES, n_old)))
    seed, user = args.user_seed, 1
    kmax = max(*args.takes, args.new_takes)
    train_recs = {g: _takes(seed, user, g, range(kmax), args.duration) for g in gestures}
    test_recs = {g: _takes(seed, user, g, range(100, 100 + args.held_out), args.duration) for g in gestures}
    new_train = _takes(seed, user, 1, range(500, 500 + args.new_takes), args.duration, flip=True)
    new_test = _takes(seed, user, 1, range(600, 600 + args.held_out), args.duration, flip=True)
    test = _binned([r for g in gestures for r in test_recs[g]], [g for g in gestures for _ in test_recs[g]], spec)
    base_int, _ = quantize_ptq(base)  # type: ignore[arg-type]
    before = {"float": _acc(base, test, args.window), "int8": _acc(base_int, test, args.window)}
    settings = FinetuneSettings(epochs=args.epochs, qat_epochs=args.qat_epochs, window=args.window, batch_size=16,
                                seed=0, threads=args.threads)  # fmt: skip
    rows = []
    import copy

    for k in args.takes:
        train = _binned([r for g in gestures for r in train_recs[g][:k]], [g for g in gestures for _ in range(k)], spec)
        t0 = time.perf_counter()
        f_model, i_model, _, _ = finetune(copy.deepcopy(base), train, None, settings, work / f"k{k}", progress=False, verbose=False)
        rows.append((k, _acc(f_model, test, args.window), _acc(i_model, test, args.window), time.perf_counter() - t0, len(train)))
        print(f"{k} takes/class: float {rows[-1][1]:.3f} int8 {rows[-1][2]:.3f} ({rows[-1][3]:.0f} s)", flush=True)
    # one added class: the new user's takes of every gesture plus the new one
    k = args.new_takes
    new_label = n_old
    train = _binned([r for g in gestures for r in train_recs[g][:k]] + new_train,
                    [g for g in gestures for _ in range(k)] + [new_label] * len(new_train), spec)  # fmt: skip
    test_new = _binned([r for g in gestures for r in test_recs[g]] + new_test,
                       [g for g in gestures for _ in test_recs[g]] + [new_label] * len(new_test), spec)  # fmt: skip
    is_new = test_new.labels == new_label
    t0 = time.perf_counter()
    grown = grow_output(copy.deepcopy(base), 1, seed=0)  # type: ignore[arg-type]
    f_model, i_model, _, _ = finetune(grown, train, None, settings, work / "new", progress=False, verbose=False)
    new_s = time.perf_counter() - t0
    base_on_new = _acc(base_int, test_new, args.window)  # the base cannot answer the new class: its takes count as errors
    new = {"all": _acc(i_model, test_new, args.window), "new": _acc(i_model, test_new, args.window, is_new),
           "old": _acc(i_model, test_new, args.window, ~is_new), "float_all": _acc(f_model, test_new, args.window)}  # fmt: skip
    wall = time.perf_counter() - t_start
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    chance = 1 / len(gestures)
    lines = [
        "## Fine-tuning to a new user and a new gesture",
        "",
        f"`benchmarks/bench_finetune.py`: a new generated user (seed {seed}, never tuned on), takes of "
        f"{args.duration:g} s under the five lightings in turn; {args.held_out} held-out takes per class "
        f"(sessions 100..), accuracy on the first {args.window} ticks in chip semantics. Base model: {base_what}. "
        f"Fine-tuning: {args.epochs} float epochs + {args.qat_epochs} QAT epochs in chip semantics "
        f"(`s2gesture finetune`'s code). Baseline: the same base model, un-fine-tuned, on the same held-out takes "
        f"in this run (int8 = percentile-100 PTQ). Chance: {chance:.3f}. Run took {wall / 60:.1f} min; load "
        f"average at the end {load:.1f} (shared 2-core machine).",
        "",
        "| takes per class | fine-tune s | held-out float | held-out int8 | un-fine-tuned float / int8 |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {k} ({n} takes) | {s:.0f} | {f:.3f} | **{i:.3f}** | {before['float']:.3f} / {before['int8']:.3f} |"
              for k, f, i, s, n in rows]  # fmt: skip
    lines += [
        "",
        f"One added class, '{NEW_NAME}' (the generator's right-hand wave flipped top-bottom, a gesture no training "
        f"class shows), {k} takes of it and of every known gesture, {new_s:.0f} s:",
        "",
        "| held-out takes | fine-tuned int8 | un-fine-tuned int8 |",
        "|---|---|---|",
        f"| all {len(test_new)} (incl. the new class) | **{new['all']:.3f}** (float {new['float_all']:.3f}) | {base_on_new:.3f} |",
        f"| the new class ({int(is_new.sum())}) | **{new['new']:.3f}** | 0 (no such output) |",
        f"| the known classes ({int((~is_new).sum())}) | {new['old']:.3f} | {before['int8']:.3f} |",
        "",
    ]
    write_section(Path(args.out), lines)
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
