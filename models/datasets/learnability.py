"""Is the synthetic data learnable? A non-spiking baseline on event-count features, held-out users.

Each recording goes through the shared preprocessing (denoise 10 ms, 128x128 -> 32x32, 1 ms binary
ticks) and is summarised by spike counts: ``counts`` = total spikes per polarity on a 8x8 grid (128
features, no time at all), ``counts+time`` = the same on a 4x4 grid in 4 equal time slices (128
features, coarse order), ``counts32`` = total spikes per polarity and input pixel (2048 features: where ON
and OFF edges lie relative to each other). A standardised multinomial logistic regression (scikit-learn) is trained on
the training users and scored on the disjoint test users. Chance is 1/11 = 9.1 %.

Usage: python -m s2gesture.models.datasets.learnability --data DIR [--out docs/learnability_results.json]
(DIR from ``s2gesture synth``; without --data a dataset is generated into a temporary folder).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from s2gesture.daemon.preprocess import PreprocessSpec, preprocess_recording

from . import tonic_layout


def features(spikes: npt.NDArray[np.uint8]) -> dict[str, npt.NDArray[np.float64]]:
    """Count features of one recording's spikes ``[T, 2, 32, 32]`` (log1p-compressed)."""
    T = spikes.shape[0]
    total = spikes.sum(axis=0, dtype=np.int64)  # [2, 32, 32]
    grid8 = total.reshape(2, 8, 4, 8, 4).sum(axis=(2, 4)).ravel()
    slices = np.array_split(np.arange(T), 4)
    timed = [
        spikes[s].sum(axis=0, dtype=np.int64).reshape(2, 4, 8, 4, 8).sum(axis=(2, 4)).ravel() for s in slices
    ]
    return {
        "counts": np.log1p(grid8.astype(np.float64)),
        "counts+time": np.log1p(np.concatenate(timed).astype(np.float64)),
        "counts32": np.log1p(total.ravel().astype(np.float64)),
    }


def load_split(
    root: Path, split: str, spec: PreprocessSpec
) -> tuple[dict[str, Any], npt.NDArray[np.int64], list[int]]:
    """Features, labels and users of every recording of ``split``."""
    feats: dict[str, list[Any]] = {}
    labels, users = [], []
    for sample in tonic_layout.list_samples(root, split):
        rec = tonic_layout.load_sample(sample)
        for name, value in features(preprocess_recording(rec.events, spec)).items():
            feats.setdefault(name, []).append(value)
        labels.append(sample.label)
        users.append(sample.user)
    return {k: np.stack(v) for k, v in feats.items()}, np.array(labels), users


def evaluate(root: Path) -> dict[str, Any]:
    """Train on the train split, score on the test split; returns accuracies and confusion matrices."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import confusion_matrix
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    spec = PreprocessSpec(sensor_size=(128, 128))
    x_train, y_train, u_train = load_split(root, "train", spec)
    x_test, y_test, u_test = load_split(root, "test", spec)
    out: dict[str, Any] = {
        "n_train": len(y_train),
        "n_test": len(y_test),
        "train_users": sorted(set(u_train)),
        "test_users": sorted(set(u_test)),
        "chance": 1 / 11,
        "results": {},
    }
    for name in x_train:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
        model.fit(x_train[name], y_train)
        pred = model.predict(x_test[name])
        out["results"][name] = {
            "train_accuracy": float(model.score(x_train[name], y_train)),
            "test_accuracy": float(np.mean(pred == y_test)),
            "confusion": confusion_matrix(y_test, pred, labels=list(range(11))).tolist(),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the experiment and print (and optionally save) its numbers."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", help="dataset root written by `s2gesture synth` (default: generate one)")
    parser.add_argument("--train-users", type=int, default=10)
    parser.add_argument("--test-users", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.data:
        result = evaluate(Path(args.data))
    else:
        from s2gesture.models import synth

        with tempfile.TemporaryDirectory() as tmp:
            synth.generate(tmp, args.train_users, args.test_users, args.seed, repeats=args.repeats)
            result = evaluate(Path(tmp))
    result["seconds"] = time.perf_counter() - start
    for name, r in result["results"].items():
        print(
            f"{name:12s} train {r['train_accuracy']:.3f}  test {r['test_accuracy']:.3f}  (n_test={result['n_test']})"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
