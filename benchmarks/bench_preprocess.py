"""Preprocessing throughput: denoise + map + bin on a 128x128 stream, one core, against tonic's transforms.

Data: synthetic DVS gesture recordings (s2gesture synth, 6 s each) concatenated in time, so the event
statistics (clusters along moving limbs plus background noise) are those the daemon sees. Ours runs on all
of it; tonic's Denoise (a Python loop) runs on a prefix, and both rates are per event. Also measured:
streaming with 5 ms packets (the daemon's path), the same with the daemon's default anti-flicker filter
(100 and 120 Hz) against without it in the same rounds, and the time a fresh process needs to import the module
and preprocess its first packet (numba's on-disk cache, no compilation).

Usage: python benchmarks/bench_preprocess.py [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import write_section  # benchmarks/ is sys.path[0] when a script runs

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "preprocess.md"


def dataset(n_recordings: int) -> np.ndarray:
    """Concatenated synthetic recordings (µs timestamps strictly after one another)."""
    from s2gesture.models import synth

    parts = []
    offset = 0
    for i in range(n_recordings):
        rec = synth.recording(
            seed=11, user=1 + i % 5, session=0, lighting="lab", label=i % 11, duration_s=6.0
        )
        ev = rec.events.copy()
        ev["t"] += offset - int(ev["t"][0])
        offset = int(ev["t"][-1]) + 1000
        parts.append(ev)
    return np.concatenate(parts)


def timed(fn, repeats: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def tonic_pipeline(events: np.ndarray) -> np.ndarray:
    import tonic.transforms as tt

    out = tt.Denoise(filter_time=10_000)(events)
    out = tt.Downsample(spatial_factor=0.25)(out)
    frames = tt.ToFrame(
        sensor_size=(32, 32, 2), time_window=1000, include_incomplete=True, start_time=int(events["t"][0])
    )(out)
    return np.clip(frames, 0, 1)


def startup_seconds() -> float:
    """Fresh interpreter: import preprocess and run one packet (the compiled kernel comes from the cache)."""
    probe = (
        "import time; t=time.perf_counter()\n"
        "import numpy as np\n"
        "from s2gesture.daemon.events import make_events\n"
        "from s2gesture.daemon.preprocess import PreprocessSpec, StreamPreprocessor\n"
        "s=StreamPreprocessor(PreprocessSpec(sensor_size=(128,128)))\n"
        "s.push(make_events([1,2],[1,1],[True,False],[0,5000]))\n"
        "print(time.perf_counter()-t)"
    )
    runs = [
        float(
            subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
        )
        for _ in range(3)
    ]
    return statistics.median(runs)


def main(argv: list[str] | None = None) -> int:
    """Measure and write benchmarks/results/preprocess.md."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer recordings and repeats")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, as the figure says

    from s2gesture.daemon.preprocess import PreprocessSpec, StreamPreprocessor, preprocess_recording

    events = dataset(3 if args.quick else 10)
    n = len(events)
    spec = PreprocessSpec(sensor_size=(128, 128), input_size=(32, 32), denoise_us=10_000, dt_us=1000)
    preprocess_recording(events[:1000], spec)  # load the kernel
    repeats = 3 if args.quick else 7

    # The daemon's path: 5 ms packets through StreamPreprocessor.push_lazy (what daemon/streams.py calls),
    # alternating with the whole recording in every round so that both see the same machine load.
    cuts = np.searchsorted(events["t"], np.arange(int(events["t"][0]), int(events["t"][-1]), 5000)[1:])
    packets = np.split(events, cuts)

    def stream(spec: PreprocessSpec = spec) -> None:
        sp = StreamPreprocessor(spec)
        for packet in packets:
            sp.push_lazy(packet)
        sp.flush()

    flicker_spec = dataclasses.replace(spec, anti_flicker_hz=(100, 120))  # what the daemon serves with
    stream()
    whole_t, stream_t, flicker_t = [], [], []
    for _ in range(repeats):
        (w,) = timed(lambda: preprocess_recording(events, spec), 1)
        (s_,) = timed(stream, 1)
        (f_,) = timed(lambda: stream(flicker_spec), 1)
        whole_t.append(w)
        stream_t.append(s_)
        flicker_t.append(f_)
    flicker_cost = sorted(b / a for a, b in zip(stream_t, flicker_t, strict=True))
    ours = statistics.median(whole_t)
    streamed = statistics.median(stream_t)
    slowdown = sorted(b / a for a, b in zip(whole_t, stream_t, strict=True))

    n_tonic = min(n, 60_000 if args.quick else 200_000)
    sub = events[:n_tonic]
    # Interleave tonic and ours on the same prefix, so that both see the same machine load; the speed-up
    # is the median of the per-pair ratios.
    pairs = []
    for _ in range(1 if args.quick else 5):
        (t_tonic,) = timed(lambda: tonic_pipeline(sub), 1)
        (t_ours,) = timed(lambda: preprocess_recording(sub, spec), 1)
        pairs.append((t_tonic, t_ours))
    tonic_s = statistics.median(p[0] for p in pairs)
    speedup = statistics.median(p[0] / p[1] for p in pairs)
    ref = tonic_pipeline(sub)
    same = bool(np.array_equal(preprocess_recording(sub, spec)[: len(ref)], ref))
    startup = startup_seconds()

    rate_ours = n / ours
    rate_stream = n / streamed
    rate_tonic = n_tonic / tonic_s
    lines = [
        "## Preprocessing (denoise 10 ms + 128x128 -> 32x32 + 1 ms binary bins)",
        "",
        f"One core (affinity pinned), medians of {repeats} runs; data: {n:,} events of synthetic 6 s gestures "
        f"({n / (events['t'][-1] - events['t'][0]) * 1e6 / 1e3:.0f} k events/s of sensor time).",
        "",
        f"Load average of the shared 2-core machine when the run ended: {os.getloadavg()[0]:.1f} (other work running).",
        "",
        "| figure | value |",
        "|---|---|",
        f"| whole recording, `preprocess_recording` | **{rate_ours / 1e6:.1f} M events/s** |",
        f"| stream, `StreamPreprocessor.push_lazy`, 5 ms packets ({len(packets):,} packets, {n / len(packets):.0f} events each) | **{rate_stream / 1e6:.1f} M events/s** (target >= 20) |",
        f"| stream time / whole-recording time, same round (median, min-max of {repeats}) | **{statistics.median(slowdown):.2f}x** ({slowdown[0]:.2f}-{slowdown[-1]:.2f}; target <= 1.5x) |",
        f"| stream with the anti-flicker filter (100 + 120 Hz, the daemon's default) | **{n / statistics.median(flicker_t) / 1e6:.1f} M events/s**; "
        f"{statistics.median(flicker_cost):.2f}x the time without it, same rounds ({flicker_cost[0]:.2f}-{flicker_cost[-1]:.2f}) |",
        f"| per packet | {streamed / len(packets) * 1e6:.1f} µs (whole recording: {ours / len(packets) * 1e6:.1f} µs of kernel per packet's events) |",
        f"| tonic Denoise + Downsample + ToFrame (+ clip), same events (first {n_tonic:,}) | {rate_tonic / 1e6:.3f} M events/s |",
        f"| ours on that prefix (interleaved with tonic) | {n_tonic / statistics.median(p[1] for p in pairs) / 1e6:.1f} M events/s |",
        f"| speed-up over tonic (median of {len(pairs)} interleaved pairs) | **{speedup:.0f}x** (target >= 50x) |",
        f"| identical frames to tonic on that prefix | {'yes' if same else 'NO'} |",
        f"| fresh process: import + first packet (numba cache warm) | {startup:.2f} s |",
        "",
    ]
    write_section(RESULTS, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
