"""Clients' figures: lossless replay rate, live-vs-offline accuracy, demo wall time, systemd exposure.

Writes ``benchmarks/results/clients.md``. Figures:

1. **Replay rate in lossless mode** (events/s): synthetic recordings replayed as fast as possible through a
   running ``s2gestured`` (PUSH -> PULL, backpressure), from the first packet sent to the last final
   decision received, so it is the rate the whole system sustains without losing anything. Baseline in the
   same run: the client alone (packetize + encode + send) into a bare PULL that only counts messages, at
   1, 5 and 10 ms packets. Median of ``--repeats`` runs.
2. **Accuracy through the live daemon vs offline** on the same model and recordings: ``s2gesture eval``'s
   path against the toolkit's emulated full-recording evaluation (``models.evaluate``); must be equal.
3. **Demo wall time**: ``s2gesture demo`` as a user runs it (default options), start to exit.
4. **systemd-analyze security --offline=true** exposure of both units.
"""

from __future__ import annotations

import argparse
import io
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def client_ceiling(recordings: list[Any], packet_us: int) -> float:
    """Events/s the replay client alone reaches into a PULL that only counts (no daemon)."""
    from s2gesture.clients import bus, replay

    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    pull.bind("tcp://127.0.0.1:*")
    endpoint = pull.getsockopt(zmq.LAST_ENDPOINT).decode()
    expected = sum(len(replay.packetize(r.events, packet_us)) + 1 for r in recordings)
    done = threading.Event()

    def sink() -> None:
        for _ in range(expected):
            pull.recv_multipart(copy=False)
        done.set()

    thread = threading.Thread(target=sink, daemon=True)
    thread.start()
    sender = bus.EventSender(ctx, endpoint, lossless=True)
    sender.wait_ready(5)
    writer = replay.StreamWriter(sender, "bench", packet_us=packet_us, pacer=replay.Pacer(float("inf")))
    started = time.perf_counter()
    for seg in replay.place_segments(recordings, gap_us=500_000):
        writer.write_segment(seg)
    done.wait(60)
    wall = time.perf_counter() - started
    sender.close()
    thread.join(5)
    pull.close()
    ctx.term()
    return writer.stats.events / wall


def through_daemon(daemon: Any, recordings: list[Any], stream: str) -> tuple[float, Any]:
    """Events/s from the first packet to the last final decision, through the daemon (lossless)."""
    from s2gesture.clients import eval as live_eval

    result = live_eval.evaluate_live(
        recordings, input_endpoint=daemon.input, output_endpoint=daemon.output, stream=stream, timeout_s=30
    )
    if result.n_decided != len(recordings):
        msg = f"only {result.n_decided} of {len(recordings)} segments got a final decision"
        raise RuntimeError(msg)
    last_wait_s = (result.segments[-1].final_wait_ms or 0.0) / 1e3
    return result.replay.events / (result.replay.wall_s + last_wait_s), result


def exposure(unit: str) -> float | None:
    """systemd-analyze security exposure of a unit (its binary path pointed at this venv's s2gestured)."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        text = (ROOT / "systemd" / unit).read_text().replace("/opt/s2gesture/bin/s2gestured", str(Path(sys.executable).parent / "s2gestured"))
        path = Path(tmp) / unit.replace("@.", "@bench.")
        path.write_text(text)
        proc = subprocess.run([tool, "security", "--offline=true", "--no-pager", str(path)], capture_output=True, text=True, cwd=tmp)
    found = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", proc.stdout)
    return float(found.group(1)) if found else None


def demo_wall_s(count: int, model: str | None) -> tuple[float, int, str]:
    """Wall time of `s2gesture demo --count N` as a subprocess; its exit code and last lines."""
    started = time.perf_counter()
    extra = ["--model", model] if model else []
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "s2gesture"), "demo", "--count", str(count), *extra], capture_output=True, text=True
    )
    return time.perf_counter() - started, proc.returncode, "\n".join(proc.stdout.splitlines()[-4:])


def main(argv: list[str] | None = None) -> int:
    """Measure, print and write benchmarks/results/clients.md."""
    from s2gesture.clients import demo, replay
    from s2gesture.models.evaluate import emulated_final_classes

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recordings", type=int, default=11, help="synthetic recordings per replay run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--demo-count", type=int, default=11)
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--model", help="serve this .nir (default: the bundled pretrained model, as the demo does)")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    recordings = replay.synthetic_recordings(args.recordings, seed=7)
    n_events = sum(len(r) for r in recordings)
    print(f"{len(recordings)} synthetic recordings, {n_events:,} events, generated in {time.perf_counter() - t0:.1f} s")

    ceilings = {ms: statistics.median(client_ceiling(recordings, ms * 1000) for _ in range(args.repeats)) for ms in (1, 5, 10)}
    for ms, rate in ceilings.items():
        print(f"client alone into a bare PULL, {ms} ms packets: {rate / 1e6:.2f} M events/s")

    workdir = Path(tempfile.mkdtemp(prefix="s2g-bench-"))
    log = io.StringIO()
    try:
        with demo.running_daemon(workdir, args.model, log) as daemon:
            status = demo.wait_until_serving(daemon, 120)
            model = status.get("model") or {}
            model_name = model.get("name", "?") if isinstance(model, dict) else str(model)
            rates = []
            result = None
            for i in range(args.repeats):
                rate, result = through_daemon(daemon, recordings, stream=f"bench{i}")
                rates.append(rate)
                print(f"through s2gestured (lossless, 5 ms packets), run {i + 1}: {rate / 1e6:.3f} M events/s")
            daemon_rate = statistics.median(rates)
            assert result is not None
            live_pred = np.array([s.predicted for s in result.segments])
            served = re.search(r'path = "([^"]+)"', (workdir / "s2gestured.toml").read_text())
            if args.model:
                note = f"given with --model: {args.model}"
            elif "missing" in daemon.model_note:
                note = "a tiny random-weight test model: the bundled pretrained model was missing"
            else:
                note = "the bundled pretrained model"
            lat = result.report()["pred_latency_ms"]
        # after the daemon stopped (two cores: it would slow the offline run down), before the cleanup
        offline_pred = emulated_final_classes(Path(served.group(1)), recordings) if served else None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    labels = np.array([r.label for r in recordings])
    live_acc = float(np.mean(live_pred == labels))
    offline_acc = float(np.mean(offline_pred == labels)) if offline_pred is not None else float("nan")
    same = offline_pred is not None and live_pred.tolist() == offline_pred.tolist()
    print(f"accuracy live {live_acc:.4f} vs offline {offline_acc:.4f} on {len(labels)} recordings; identical decisions: {same}")

    exposures = {u: exposure(u) for u in ("s2gestured.service", "s2gestured@.service")}
    print(f"systemd exposure: {exposures}")
    demo_line = "not measured (--skip-demo)"
    if not args.skip_demo:
        wall, code, tail = demo_wall_s(args.demo_count, args.model)
        print(f"s2gesture demo --count {args.demo_count}: {wall:.1f} s, exit {code}\n{tail}")
        demo_line = f"{wall:.1f} s for `s2gesture demo` (default options: {args.demo_count} synthetic 6 s recordings), exit code {code}"

    md = [
        "## Clients (replay, eval, demo, systemd)",
        "",
        f"Machine shared by other work while measuring (2 cores); medians of {args.repeats} runs. Model served: "
        f"{model_name} ({note}).",
        "",
        "| figure | value |",
        "|---|---|",
        f"| replay rate through s2gestured, lossless, first packet -> last final decision | **{daemon_rate / 1e6:.3f} M events/s** ({n_events:,} events, {len(recordings)} recordings of 6 s) |",
        *(f"| baseline: replay client alone into a bare PULL, {ms} ms packets | {rate / 1e6:.2f} M events/s |" for ms, rate in ceilings.items()),
        f"| daemon share of the client's ceiling (5 ms packets) | {daemon_rate / ceilings[5]:.2f} |",
        f"| real time factor of the lossless replay (DVS event rate of these recordings) | {daemon_rate / (n_events / (6.0 * len(recordings))):.1f}x |",
        f"| accuracy through the live daemon | {live_acc * 100:.2f} % ({len(labels)} synthetic test-user recordings) |",
        f"| accuracy offline (toolkit's emulated full-recording evaluation, same model and data) | {offline_acc * 100:.2f} % |",
        f"| identical final decision for every recording | {'yes' if same else 'NO'} |",
        f"| pred latency in the as-fast-as-possible replay (includes queueing behind backpressure) | p50 {lat.get('p50', float('nan')):.1f} ms, p99 {lat.get('p99', float('nan')):.1f} ms |",
        f"| demo wall time | {demo_line} |",
        *(f"| `systemd-analyze security --offline=true` {u} | {e} (target <= 2.0) |" for u, e in exposures.items()),
        "",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "clients.md").write_text("\n".join(md))
    print(f"wrote {RESULTS / 'clients.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
