"""Run every benchmark script and assemble BENCHMARKS.md from their result sections.

Each ``benchmarks/bench_<part>.py`` measures its figures (ratios against a baseline measured in the same
run, since the machine is shared and noisy) and writes ``benchmarks/results/<part>.md``. This script runs
them one after the other (never in parallel: they would disturb each other's timings) and concatenates
the sections. ``--only NAME`` runs one; ``--assemble`` only rebuilds BENCHMARKS.md from existing sections.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
#: scripts run in this order; result sections appear in SECTIONS order (a script may write several)
ORDER = ["preprocess", "synth", "emulator", "training", "daemon", "replay"]
SECTIONS = ["preprocess", "synth", "emulator", "training", "daemon", "decision", "clients"]


def scripts() -> list[Path]:
    """Benchmark scripts in a stable order (known parts first, then any others)."""
    found = {p.stem.removeprefix("bench_"): p for p in HERE.glob("bench_*.py")}
    names = [n for n in ORDER if n in found] + sorted(set(found) - set(ORDER))
    return [found[n] for n in names]


def assemble() -> Path:
    """Write BENCHMARKS.md from the per-part sections."""
    sections = [RESULTS / f"{name}.md" for name in SECTIONS]
    sections += sorted(set(RESULTS.glob("*.md")) - set(sections))
    header = [
        "# Benchmarks",
        "",
        "Figures measured by `make bench` (`benchmarks/run_all.py`): each script in `benchmarks/` writes a",
        "section below. Where a figure is a ratio, its baseline was measured in the same run on the same",
        "machine. Machine of the last full run: "
        f"{platform.machine()}, {platform.processor() or 'unknown CPU'}, Python {platform.python_version()}.",
        "",
    ]
    body = [s.read_text().rstrip() + "\n" for s in sections if s.exists()]
    out = ROOT / "BENCHMARKS.md"
    out.write_text("\n".join(header) + "\n" + "\n".join(body))
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and assemble BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", default=[], help="run only this part (repeatable)")
    parser.add_argument("--assemble", action="store_true", help="do not run anything, only rebuild BENCHMARKS.md")
    args = parser.parse_args(argv)
    failed = []
    if not args.assemble:
        RESULTS.mkdir(exist_ok=True)
        for script in scripts():
            part = script.stem.removeprefix("bench_")
            if args.only and part not in args.only:
                continue
            print(f"== {script.name}", flush=True)
            start = time.perf_counter()
            rc = subprocess.call([sys.executable, str(script)], cwd=ROOT)
            print(f"== {script.name}: exit {rc} after {time.perf_counter() - start:.0f} s", flush=True)
            if rc:
                failed.append(script.name)
    print(f"wrote {assemble()}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
