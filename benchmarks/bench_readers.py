"""Recording readers against the raw decoders they stand on, same files, same run, one core.

Figures (each a ratio to a baseline timed in the same loop, alternating, so both see the same load):

* AEDAT4: ``read_aedat4`` (uncompressed files: the FlatBuffers read in place; compressed: ``aedat``'s
  decoder then one compiled pass) against iterating the raw ``aedat`` decoder over the same file (the
  decode alone, no single array), against that decode plus ``np.concatenate`` (the least a user does
  to get one array), and against dv-processing's ``MonoCameraRecording`` when installed; for an
  uncompressed file and an LZ4 one written by dv-processing.
* AEDAT 3.1: ``aedat3.read_events`` against reading the file's bytes (``np.fromfile``).
* tonic layout (``.npy`` of x, y, p, t_ms): ``load_sample`` against ``np.load`` of the same file.

Data: synthetic gestures (s2gesture synth, 128x128), ~0.7 M events per file. Writes
``benchmarks/results/readers.md``.

    .venv/bin/python benchmarks/bench_readers.py [--repeats 9] [--recordings 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
RESULTS = ROOT / "benchmarks" / "results" / "readers.md"


def alternate(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds of each function per round, the functions alternating within every round."""
    for fn in fns.values():
        fn()
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            out[name].append(time.perf_counter() - t0)
    return out


def ratio_range(times: dict[str, list[float]], ours: str, base: str) -> tuple[float, float, float]:
    """(min, median, max) over rounds of base_time / ours_time: > 1 means ours is faster."""
    r = sorted(b / a for a, b in zip(times[ours], times[base], strict=True))
    return r[0], statistics.median(r), r[-1]


def dv_write(path: Path, events: np.ndarray, size: tuple[int, int], compression: str) -> bool:
    """Write ``events`` with dv-processing (False when it is not installed)."""
    try:
        import dv_processing as dv
    except ImportError:
        return False
    cfg = dv.io.MonoCameraWriter.EventOnlyConfig("DVXplorer", size)
    cfg.compression = getattr(dv.CompressionType, compression)
    writer = dv.io.MonoCameraWriter(str(path), cfg)
    store = dv.EventStore()
    # batches of 10 k events keep the packets the size DV writes
    for start in range(0, events.shape[0], 10_000):
        part = events[start : start + 10_000]
        batch = dv.EventStore()
        for t, x, y, p in zip(part["t"].tolist(), part["x"].tolist(), part["y"].tolist(), part["p"].tolist(), strict=True):
            batch.push_back(t, x, y, p)
        store.add(batch)
    writer.writeEvents(store)
    del writer
    return True


def dv_read(path: Path) -> int:
    import dv_processing as dv

    rec = dv.io.MonoCameraRecording(str(path))
    parts = []
    while rec.isRunning():
        batch = rec.getNextEventBatch()
        if batch is None:
            break
        parts.append(batch.numpy())
    return int(sum(len(p) for p in parts))


def numpy_aedat3(index: object) -> np.ndarray:
    """The plain numpy decode of every AEDAT 3.1 packet (valid bit, fields, timestamps), as a baseline."""
    from s2gesture.daemon.events import EVENT_DTYPE
    from s2gesture.models.datasets.aedat3 import POLARITY_SIZE

    mm = np.memmap(index.path, dtype=np.uint8, mode="r")  # type: ignore[attr-defined]
    parts = []
    for row in index.packets:  # type: ignore[attr-defined]
        words = np.frombuffer(mm[int(row["offset"]) : int(row["offset"]) + int(row["number"]) * POLARITY_SIZE], dtype="<u4").reshape(-1, 2)
        data = words[:, 0]
        t = (np.int64(row["overflow"]) << 31) | words[:, 1].view("<i4").astype(np.int64)
        keep = (data & 1) == 1
        ev = np.empty(int(keep.sum()), dtype=EVENT_DTYPE)
        d = data[keep]
        ev["x"], ev["y"], ev["p"], ev["t"] = (d >> 17) & 0x7FFF, (d >> 2) & 0x7FFF, (d >> 1) & 1, t[keep]
        parts.append(ev)
    return np.concatenate(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--recordings", type=int, default=4)
    args = parser.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[-1]})

    import aedat
    from bench_preprocess import dataset

    from s2gesture.models.datasets import aedat3, aedat4, tonic_layout

    events = dataset(args.recordings)
    events["t"] -= int(events["t"][0]) - 1  # AEDAT 3.1 wants t >= 0
    n = events.shape[0]
    size = (128, 128)
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        files = {"uncompressed (s2gesture writer)": aedat4.write_aedat4(d / "ours.aedat4", events, size)}
        if dv_write(d / "lz4.aedat4", events, size, "LZ4"):
            files["LZ4 (dv-processing writer)"] = d / "lz4.aedat4"
        for label, path in files.items():
            def raw(path: Path = path) -> int:
                return sum(p["events"].shape[0] for p in aedat.Decoder(str(path)) if "events" in p)

            def raw_concat(path: Path = path) -> np.ndarray:
                return np.concatenate([p["events"] for p in aedat.Decoder(str(path)) if "events" in p])

            fns: dict[str, Callable[[], object]] = {
                "ours": lambda path=path: aedat4.read_aedat4(path),
                "aedat": raw,
                "aedat+concat": raw_concat,
            }
            try:
                import dv_processing  # noqa: F401

                fns["dv"] = lambda path=path: dv_read(path)
            except ImportError:
                pass
            if not np.array_equal(aedat4.read_aedat4(path).events, events):
                msg = f"AEDAT4 {label}: read_aedat4 differs from the written events"
                raise SystemExit(msg)
            times = alternate(fns, args.repeats)
            ours = statistics.median(times["ours"])
            for base in [k for k in fns if k != "ours"]:
                lo, med, hi = ratio_range(times, "ours", base)
                rows.append(
                    f"| AEDAT4 {label}: `read_aedat4` vs {base} | {n / ours / 1e6:.0f} M ev/s vs "
                    f"{n / statistics.median(times[base]) / 1e6:.0f} M ev/s | **{med:.2f}x** ({lo:.2f}-{hi:.2f}) |"
                )
        a3 = aedat3.write_aedat(d / "r.aedat", events)
        index = aedat3.read_index(a3)
        if not np.array_equal(aedat3.read_events(index), events):
            raise SystemExit("AEDAT 3.1: read_events differs from the written events")
        times = alternate(
            {
                "ours": lambda: aedat3.read_events(aedat3.read_index(a3)),
                "bytes": lambda: np.fromfile(a3, np.uint8),
                "numpy": lambda: numpy_aedat3(aedat3.read_index(a3)),
            },
            args.repeats,
        )
        for base, what in (("bytes", "reading the file's bytes (`np.fromfile`, no decoding: the floor)"), ("numpy", "index + a numpy field-by-field decode of every packet")):
            lo, med, hi = ratio_range(times, "ours", base)
            rows.append(
                f"| AEDAT 3.1: index + `read_events` vs {what} | "
                f"{n / statistics.median(times['ours']) / 1e6:.0f} M ev/s vs {n / statistics.median(times[base]) / 1e6:.0f} M ev/s | "
                f"**{med:.2f}x** ({lo:.2f}-{hi:.2f}) |"
            )
        npy = tonic_layout.write_sample(d / "tonic", "train", 1, "lab", 3, events)
        times = alternate({"ours": lambda: tonic_layout.load_sample(npy), "np.load": lambda: np.load(npy)}, args.repeats)
        lo, med, hi = ratio_range(times, "ours", "np.load")
        rows.append(
            f"| tonic layout: `load_sample` vs `np.load` of the same `.npy` | "
            f"{n / statistics.median(times['ours']) / 1e6:.0f} M ev/s vs {n / statistics.median(times['np.load']) / 1e6:.0f} M ev/s | "
            f"**{med:.2f}x** ({lo:.2f}-{hi:.2f}) |"
        )
    lines = [
        "## Readers (AEDAT4, AEDAT 3.1, tonic layout)",
        "",
        f"{n:,} synthetic gesture events per file (128x128); one pinned core, {args.repeats} alternating rounds; ratio = "
        "baseline time / our time (> 1: ours faster), median (min-max over rounds). 1-minute load average "
        f"{os.getloadavg()[0]:.1f} (shared machine). Every reader's output is checked equal to the written events first.",
        "",
        "| reader vs baseline | rate | ratio |",
        "|---|---|---|",
        *rows,
        "",
        "AEDAT4 target: >= 0.9x the raw `aedat` decoder. The baselines build no `EVENT_DTYPE` array (the raw "
        "decoder not even one array), so a ratio near 1 means the conversion is hidden in the reading.",
        "",
    ]
    text = "\n".join(lines)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
