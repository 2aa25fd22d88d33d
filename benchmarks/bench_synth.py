"""Synthetic gesture generator: seconds per 6-second recording on one core, and a small dataset on all cores.

Per-recording time is measured in this process (pinned to one core) over every class, after one warm-up
call (numba's cache loads the compiled kernels; compile time is reported separately when the cache was
cold). The dataset figure runs `generate` with 1 and 2 worker processes on the same small dataset, so the
speed-up from using both cores is a ratio measured in the same run.

Usage: python benchmarks/bench_synth.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import write_section  # benchmarks/ is sys.path[0] when a script runs

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "synth.md"


def main(argv: list[str] | None = None) -> int:
    """Measure and write benchmarks/results/synth.md."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer recordings")
    args = parser.parse_args(argv)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []

    from s2gesture.models import synth

    start = time.perf_counter()
    synth.recording(0, 1, 0, "led", 0, 0.05)
    first_call = time.perf_counter() - start

    if cores:
        os.sched_setaffinity(0, {cores[0]})
    per_class: dict[int, list[float]] = {}
    counts = []
    users = range(1, 2 if args.quick else 4)
    for user in users:
        for label in range(synth.N_CLASSES):
            start = time.perf_counter()
            rec = synth.recording(5, user, 0, synth.session_lightings(user, 1)[0], label, 6.0)
            per_class.setdefault(label, []).append(time.perf_counter() - start)
            counts.append(len(rec))
    all_times = [t for ts in per_class.values() for t in ts]
    if cores:
        os.sched_setaffinity(0, set(cores))

    wall = {}
    n_users = 2 if args.quick else 4
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            summary = synth.generate(
                Path(tmp), n_users - 1, 1, 9, duration_s=2.0, repeats=1, workers=workers, progress=False
            )
            wall[workers] = summary["wall_s"]
    n_rec = n_users * synth.N_CLASSES

    lines = [
        "## Synthetic gesture generator",
        "",
        f"Median over {len(all_times)} recordings of 6 s ({len(users)} users x 11 classes), one core pinned.",
        "",
        f"Load average of the shared 2-core machine when the run ended: {os.getloadavg()[0]:.1f} (other work running).",
        "",
        "| figure | value |",
        "|---|---|",
        f"| seconds per 6 s recording, one core | **{statistics.median(all_times):.2f} s** (max {max(all_times):.2f} s; target <= 2 s) |",
        f"| events per 6 s recording (median, incl. noise) | {int(np.median(counts)):,} |",
        "| slowest / fastest class (median s) | "
        + f"{max(per_class, key=lambda k: statistics.median(per_class[k]))} / "
        + f"{min(per_class, key=lambda k: statistics.median(per_class[k]))} |",
        f"| first call in a fresh process (imports + numba cache load or compile) | {first_call:.2f} s |",
        f"| dataset of {n_rec} recordings x 2 s: 1 worker / 2 workers | {wall[1]:.1f} s / {wall[2]:.1f} s "
        f"(speed-up {wall[1] / wall[2]:.2f}x on {len(cores) or '?'} cores) |",
        "",
    ]
    write_section(RESULTS, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
