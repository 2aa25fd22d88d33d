"""How much the bundled recipe's result depends on the training seed: the float stage trained with 3 seeds.

The float step of ``models/pretrained_recipe.py`` (same data, settings and time constants) is trained once
per seed (weight init, window sampling and augmentation all follow it); seed 0 is the recipe's own run when
``--reuse-seed0 DIR`` names its ``float`` folder. Each float model is scored in snnTorch semantics on the
first ``--window`` ticks of every recording of held-out users (``--users`` users of generator seed
``--heldout-seed``, default 58113, under all five lightings, the 11 gestures; never used for training,
validation or tuning), with a 95 % interval that resamples users, and on the recipe's validation users.
Reported: per seed and the spread (min, max, standard deviation) over seeds.

Training is resumable (each seed's folder keeps its checkpoint): an interrupted run continues.
Writes benchmarks/results/training_seeds.md and training_seeds.json.

Usage: python benchmarks/bench_training_seeds.py [--seeds 0 1 2] [--reuse-seed0 build/pretrained/float] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "training_seeds.md"
RESULTS_JSON = RESULTS.with_suffix(".json")


def heldout_set(users: int, seed: int, sessions: int, spec: Any) -> Any:
    """The held-out users' gesture recordings (bench_heldout's generator jobs), binned like training data."""
    from bench_heldout import generate

    from s2gesture.models.binned import bin_recordings

    gestures, _ = generate(users, sessions, seed, 0, 0)
    return gestures, bin_recordings(gestures, spec)


def score(model: Any, data: Any, recordings: list[Any], window: int) -> dict[str, Any]:
    """First-window accuracy in snnTorch semantics with the cluster bootstrap over users."""
    from s2gesture.models import userstats
    from s2gesture.models.train import first_windows, predict_counts

    pred = predict_counts(model, first_windows(data, window), "snntorch").argmax(1)
    correct = pred == np.asarray(data.labels)
    sessions = [userstats.session_of(r.name, r.meta) for r in recordings]
    stats = userstats.accuracy_stats(correct, [u for u, _ in sessions], [li for _, li in sessions])
    return {"accuracy": float(correct.mean()), "user_ci": stats["user_ci"], "worst_user": stats["worst_user"]}


def main(argv: list[str] | None = None) -> int:
    """Train (or reuse) each seed's float model, score it on held-out users, report the spread."""
    parser = argparse.ArgumentParser(prog="bench_training_seeds.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--work", default=str(ROOT / "build" / "seeds"), help="one folder per seed (resumable)")
    parser.add_argument("--data", default=None, help="the recipe's synthetic data folder (default: WORK/data, generated)")
    parser.add_argument("--reuse-seed0", default=None, help="the recipe's float folder: seed 0 is not trained again")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--heldout-seed", type=int, default=58113)
    parser.add_argument("--window", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="2 seeds x 1 epoch on 3 users: a smoke run, not the figure")
    args = parser.parse_args(argv)

    from s2gesture.daemon.card import CLASSES_WITH_NONE
    from s2gesture.daemon.preprocess import PreprocessSpec
    from s2gesture.models import pretrained_recipe as recipe
    from s2gesture.models import synth
    from s2gesture.models.binned import load_split
    from s2gesture.models.train import TrainConfig, load_model_file, setup_torch

    work = Path(args.work)
    data = Path(args.data) if args.data else work / "data"
    users = dict(train_users=3, test_users=2, repeats=1) if args.quick else dict(
        train_users=recipe.TRAIN_USERS, test_users=recipe.TEST_USERS, repeats=recipe.REPEATS)  # fmt: skip
    if not (data / "DVSGesture").is_dir():
        synth.generate(data, users["train_users"], users["test_users"], recipe.DATA_SEED, duration_s=recipe.DURATION_S,
                       repeats=users["repeats"], workers=2, progress=False, with_none=recipe.WITH_NONE)  # fmt: skip
    spec = PreprocessSpec(sensor_size=(128, 128))
    train, test = load_split(data, "train", spec), load_split(data, "test", spec)
    t0 = time.perf_counter()
    recordings, heldout = heldout_set(2 if args.quick else args.users, args.heldout_seed, 1 if args.quick else 5, spec)
    print(f"{len(recordings)} held-out recordings in {time.perf_counter() - t0:.0f} s", flush=True)

    rows = []
    for seed in args.seeds:
        folder = Path(args.reuse_seed0) if seed == 0 and args.reuse_seed0 else work / f"seed{seed}"
        t1 = time.perf_counter()
        if not (folder / "model.pt").is_file():
            setup_torch(seed, 1)
            cfg = TrainConfig(epochs=1 if args.quick else recipe.EPOCHS, batch_size=recipe.BATCH, lr=recipe.LR,
                              window=recipe.WINDOW, window_min=recipe.WINDOW_MIN, seed=seed, **recipe.AUGMENT)  # fmt: skip
            recipe.train_stage(folder, train, test, cfg, spec, n_classes=len(CLASSES_WITH_NONE), tau_ticks=recipe.TAU_TICKS)
        model, _ = load_model_file(folder / "model.pt")
        metrics = json.loads((folder / "metrics.json").read_text())
        row = {"seed": seed, "folder": str(folder), "val_first_window": metrics["final_val_acc"],
               "train_s": metrics["wall_s"], **score(model, heldout, recordings, args.window)}  # fmt: skip
        rows.append(row)
        print(f"seed {seed}: held-out {100 * row['accuracy']:.1f} %, validation {100 * row['val_first_window']:.1f} % "
              f"({time.perf_counter() - t1:.0f} s)", flush=True)  # fmt: skip

    acc = np.array([r["accuracy"] for r in rows])
    val = np.array([r["val_first_window"] for r in rows])
    result: dict[str, Any] = {
        "rows": rows, "heldout_seed": args.heldout_seed, "users": args.users, "window": args.window,
        "epochs": recipe.EPOCHS, "tau_ticks": recipe.TAU_TICKS, "quick": args.quick,
        "spread": {"heldout_min": float(acc.min()), "heldout_max": float(acc.max()), "heldout_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                   "val_min": float(val.min()), "val_max": float(val.max())},
    }  # fmt: skip
    if args.quick:
        print(json.dumps(result["spread"]))
        return 0
    RESULTS_JSON.write_text(json.dumps(result, indent=1))
    RESULTS.write_text(report_md(result))
    print(RESULTS.read_text())
    return 0


def report_md(r: dict[str, Any]) -> str:
    """The BENCHMARKS.md section."""
    s = r["spread"]
    lines = [
        "## Training seeds: the recipe's float stage three times (bench_training_seeds.py)",
        "",
        f"The float step of `make pretrained` ({r['epochs']} epochs, time constants {r['tau_ticks']}) trained with "
        f"each seed; accuracy on the first {r['window']} ticks of every gesture of {r['users']} held-out users "
        f"(generator seed {r['heldout_seed']}, all 5 lightings; never used for training or tuning), snnTorch "
        "semantics, 95 % interval over users; and on the recipe's 4 validation users.",
        "",
        "| seed | held-out users [95 % CI] | worst user | validation users | training wall |",
        "|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        ci = row["user_ci"]
        lines.append(f"| {row['seed']} | {100 * row['accuracy']:.1f} % [{100 * ci['lo']:.1f}, {100 * ci['hi']:.1f}] | "
                     f"{100 * row['worst_user']['acc']:.1f} % | {100 * row['val_first_window']:.1f} % | {row['train_s'] / 60:.0f} min |")  # fmt: skip
    lines += ["", f"Spread over seeds: held-out {100 * s['heldout_min']:.1f}-{100 * s['heldout_max']:.1f} % "
              f"(standard deviation {100 * s['heldout_std']:.1f} pp); validation {100 * s['val_min']:.1f}-{100 * s['val_max']:.1f} %."]  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "benchmarks"))
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
