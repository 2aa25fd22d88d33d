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


def temporal_baseline(root: Path, *, steps: int = 600, window: int = 50, seed: int = 0) -> dict[str, Any]:
    """A small non-spiking conv + GRU on 10 ms count frames (torch), trained on 0.5 s windows.

    Not the P-SNN: a check that the information that counts miss (direction, phase) is there to learn.
    Test recordings are scored by averaging the logits of windows every 1 s.
    """
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    spec = PreprocessSpec(sensor_size=(128, 128))

    def load(split: str) -> tuple[list[npt.NDArray[np.float32]], npt.NDArray[np.int64]]:
        xs, ys = [], []
        for sample in tonic_layout.list_samples(root, split):
            spikes = preprocess_recording(tonic_layout.load_sample(sample).events, spec)
            T = spikes.shape[0] // 10 * 10
            xs.append(spikes[:T].reshape(T // 10, 10, 2, 32, 32).sum(axis=1).astype(np.float32))
            ys.append(sample.label)
        return xs, np.array(ys)

    x_train, y_train = load("train")
    x_test, y_test = load("test")

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1 = torch.nn.Conv2d(2, 8, 5, 2, 1)
            self.c2 = torch.nn.Conv2d(8, 16, 3, 1, 1)
            self.gru = torch.nn.GRU(16 * 3 * 3, 32, batch_first=True)
            self.fc = torch.nn.Linear(32, 11)

        def forward(self, x: Any) -> Any:
            B, W = x.shape[:2]
            h = torch.relu(self.c1(torch.log1p(x.reshape(B * W, 2, 32, 32))))
            h = torch.nn.functional.avg_pool2d(torch.relu(self.c2(h)), 4).reshape(B, W, -1)
            out, _ = self.gru(h)
            return self.fc(out[:, -1])

    net = Net()
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        idx = rng.integers(0, len(x_train), 16)
        starts = [int(rng.integers(0, x_train[i].shape[0] - window)) for i in idx]
        xb = torch.tensor(np.stack([x_train[i][s : s + window] for i, s in zip(idx, starts, strict=True)]))
        loss = torch.nn.functional.cross_entropy(net(xb), torch.tensor(y_train[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    correct = 0
    with torch.no_grad():
        for x, y in zip(x_test, y_test, strict=True):
            windows = np.stack([x[s : s + window] for s in range(0, x.shape[0] - window, 100)])
            correct += int(int(net(torch.tensor(windows)).mean(0).argmax()) == y)
    return {"test_accuracy": correct / len(y_test), "n_test": len(y_test), "steps": steps}


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
    parser.add_argument(
        "--temporal", action="store_true", help="also run the conv + GRU baseline (needs torch)"
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.data:
        result = evaluate(Path(args.data))
        if args.temporal:
            result["temporal"] = temporal_baseline(Path(args.data))
    else:
        from s2gesture.models import synth

        with tempfile.TemporaryDirectory() as tmp:
            synth.generate(tmp, args.train_users, args.test_users, args.seed, repeats=args.repeats)
            result = evaluate(Path(tmp))
            if args.temporal:
                result["temporal"] = temporal_baseline(Path(tmp))
    result["seconds"] = time.perf_counter() - start
    for name, r in result["results"].items():
        print(
            f"{name:12s} train {r['train_accuracy']:.3f}  test {r['test_accuracy']:.3f}  (n_test={result['n_test']})"
        )
    if "temporal" in result:
        print(f"conv+GRU     test {result['temporal']['test_accuracy']:.3f}  (n_test={result['n_test']})")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
