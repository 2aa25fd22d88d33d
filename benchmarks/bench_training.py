"""Training-step speed of the P-SNN: our layer-wise stepping against a plain per-tick snnTorch loop.

Baseline (measured in the same run): the textbook snnTorch loop, ``snntorch.Leaky`` modules stepped through
the whole network one tick at a time. Ours (:class:`s2gesture.models.network.PSNN`): each projection applied
to all ticks at once, only the LIF layers loop over time; in snnTorch semantics and in chip semantics, with
the LIF layers as autograd operations (the previous way) and in the compiled kernel with channels-last
convolutions (``s2gesture.models.semantics.FAST_CPU_PATH``, the default).
Both run forward + backward on the same batch of binary spikes, one torch thread (the machine is shared).
Also reported: time per epoch of the pretrained recipe's runs (from their metrics.json when present).

Run: ``.venv/bin/python benchmarks/bench_training.py [--repeats 3] [--batch 16] [--ticks 300]``; writes
``benchmarks/results/training.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np


def _baseline_net():  # type: ignore[no-untyped-def]
    import snntorch as snn
    import torch
    from snntorch import surrogate
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            grad = surrogate.fast_sigmoid(25)
            self.c1 = nn.Conv2d(2, 16, 5, 2, 1, bias=False)
            self.c2 = nn.Conv2d(16, 16, 3, 1, 1, bias=False)
            self.c3 = nn.Conv2d(16, 8, 3, 1, 1, bias=False)
            self.f1 = nn.Linear(72, 256, bias=False)
            self.f2 = nn.Linear(256, 11, bias=False)
            self.l = nn.ModuleList(
                [
                    snn.Leaky(beta=0.93, threshold=1.0, reset_mechanism="subtract", spike_grad=grad)
                    for _ in range(5)
                ]
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            mems = [lif.init_leaky() for lif in self.l]
            out = []
            for t in range(x.shape[0]):
                s, mems[0] = self.l[0](self.c1(x[t]), mems[0])
                s, mems[1] = self.l[1](self.c2(s), mems[1])
                s = torch.nn.functional.avg_pool2d(s, 2) * 4
                s, mems[2] = self.l[2](self.c3(s), mems[2])
                s = (torch.nn.functional.avg_pool2d(s, 2) * 4).flatten(1)
                s, mems[3] = self.l[3](self.f1(s), mems[3])
                s, mems[4] = self.l[4](self.f2(s), mems[4])
                out.append(s)
            return torch.stack(out)

    return Net()


def _time_step(run, x, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = run(x)
        out.sum().backward()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    """Measure, print, write the markdown section."""
    import torch

    from s2gesture.models import semantics
    from s2gesture.models.network import PSNN

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--ticks", type=int, default=300)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "training.md"))
    p.add_argument(
        "--runs", default="build/pretrained", help="recipe work folder with float/ and chip/ metrics"
    )
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    # ~0.6 % input density: the measured density of the synthetic gestures after preprocessing
    x = torch.from_numpy((rng.random((args.ticks, args.batch, 2, 32, 32)) < 0.006).astype(np.float32))
    ours = PSNN()
    base = _baseline_net()
    rows = {"snnTorch per-tick loop (baseline)": _time_step(base, x, args.repeats)}
    for fast, how in ((False, "LIF as autograd ops"), (True, "compiled LIF, channels-last convolutions")):
        semantics.FAST_CPU_PATH = fast
        for sem in ("snntorch", "chip"):
            rows[f"P-SNN layer-wise, {how}, {sem} semantics"] = _time_step(
                lambda v, sem=sem: ours(v, sem), x, args.repeats
            )
    semantics.FAST_CPU_PATH = True
    ref = rows["snnTorch per-tick loop (baseline)"]
    lines = [
        "## Training (model toolkit)",
        "",
        f"Forward + backward of one batch ({args.batch} windows x {args.ticks} ticks of 2x32x32 spikes, 0.6 % "
        f"density), 1 torch thread, median of {args.repeats}; the baseline is measured in the same run. Load "
        f"average of the shared 2-core machine when the run ended: {os.getloadavg()[0]:.1f}.",
        "",
        "| step | s per batch | speed-up vs baseline |",
        "|---|---|---|",
    ]
    for name, s in rows.items():
        lines.append(f"| {name} | {s:.2f} | {ref / s:.1f}x |")
        print(f"{name}: {s:.3f} s per batch ({ref / s:.1f}x)")
    runs = Path(args.runs)
    epoch_lines = []
    for name in ("float", "chip"):
        m = runs / name / "metrics.json"
        if m.is_file():
            metrics = json.loads(m.read_text())
            epoch_lines.append(
                f"| {name} ({metrics['config']['semantics']} semantics) | {metrics['train']['recordings']} | "
                f"{metrics['epoch_s_median']:.1f} | {len(metrics['history']['loss'])} |"
            )
    if epoch_lines:
        lines += ["", "Pretrained recipe (one random 300-tick window per training recording per epoch, "
                  "validation included):", "", "| run | training recordings | s per epoch (median) | epochs |",
                  "|---|---|---|---|", *epoch_lines]  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
