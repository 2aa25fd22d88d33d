"""Benchmark of the daemon core under what real cameras do; writes benchmarks/results/daemon_core.md.

Each figure is measured for this checkout and, in the same run, for a baseline revision of the project
(default: the first release's last commit), checked out into a temporary git worktree and run with the
same interpreter and libraries:

- core size: lines of ``Service`` and of the largest class in ``daemon/``;
- the lamp: a 200 k events/s flickering lamp in one quadrant beside a normal camera for 10 s (lossless):
  predictions per stream, daemon states seen, whether the normal stream's predictions equal a run alone;
- overload: 64 streams x 50 k events/s, 5 ms packets paced in real time for 6 s (live mode): sender ->
  pred latency p50/p99 against ``input.max_lag_ms``, and what was dropped;
- lossless replay with the daemon stopped for 4 s near the end: packets sent vs accounted;
- the hostile-packet fuzz run of bench_daemon.py (100,000 packets): all accounted, exit 0.

Usage: python benchmarks/bench_daemon_core.py [--quick] [--baseline REV]
"""

from __future__ import annotations

import argparse
import ast
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq
from _common import write_section  # benchmarks/ is sys.path[0] when a script runs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_daemon import fuzz_run  # noqa: E402
from daemon_helpers import interleave, lamp_events, random_events, recording_frames, start_daemon  # noqa: E402

from s2gesture.daemon import wire  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "daemon_core.md"
MODEL = ROOT / "models" / "pretrained" / "psnn_int8.nir"
BASELINE = "578e041"


# ------------------------------------------------------------------------------------------ versions


def baseline_env(rev: str, tmp: Path) -> dict[str, str]:
    """PYTHONPATH under which ``s2gesture`` is the code of ``rev`` (a git worktree in ``tmp``)."""
    tree = tmp / "baseline"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-f", "--detach", str(tree), rev],
                   check=True, capture_output=True)
    pkg = tmp / "pkg" / "s2gesture"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for part in ("daemon", "models", "clients"):
        (pkg / part).symlink_to(tree / part)
    return {"PYTHONPATH": str(tmp / "pkg")}


def class_sizes(source_dir: Path) -> tuple[int, tuple[str, int]]:
    """(lines of Service, (name, lines) of the largest class) of the daemon/ folder."""
    service, largest = 0, ("", 0)
    for path in sorted(source_dir.glob("**/*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                n = node.end_lineno - node.lineno + 1
                if node.name == "Service":
                    service = n
                if n > largest[1]:
                    largest = (f"{path.relative_to(source_dir)}:{node.name}", n)
    return service, largest


def latest_status(d: Any, settle_s: float = 0.5) -> dict[str, Any]:
    """The newest status heartbeat (the subscriber's queue holds every one since start)."""
    assert d.sub is not None
    body = d.wait_status()
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline or d.sub.poll(0):
        if not d.sub.poll(50):
            continue
        topic, got = wire.decode_output(d.sub.recv_multipart())
        if topic == wire.STATUS_TOPIC:
            body = got
    return body


# ------------------------------------------------------------------------------------------- lamp


def lamp_run(tmp: Path, env: dict[str, str], seconds: float) -> dict[str, Any]:
    tmp.mkdir(parents=True, exist_ok=True)
    duration = int(seconds * 1e6)
    normal = random_events(int(15_000 * seconds), seed=11, duration_us=duration)
    lamp = lamp_events(int(200_000 * seconds), seed=12, duration_us=duration)
    out: dict[str, Any] = {}
    with start_daemon(tmp, MODEL, mode="lossless", transport="ipc", env=env, timeout_s=120,
                      args=["--set", "backend.retry_initial_s=1"]) as d:
        sender = d.sender()
        d.send_all(sender, list(recording_frames("alone", normal, 128, 128, packet_us=5_000)))
        alone = []
        while True:
            topic, body = d.recv(timeout_s=120)
            if topic == "s2g/v1/pred/alone/":
                alone.append((body["t_start"], body["scores"]))
            if topic == "s2g/v1/gesture/alone/" and body["final"]:
                break
        d.send_all(sender, interleave(list(recording_frames("normal", normal, 128, 128, packet_us=5_000)),
                                      list(recording_frames("lamp", lamp, 128, 128, packet_us=5_000))))
        preds: dict[str, list[Any]] = {"normal": [], "lamp": []}
        states: list[str] = []
        finals: set[str] = set()
        deadline = time.monotonic() + 60 + 6 * seconds
        while finals != {"normal", "lamp"} and time.monotonic() < deadline:
            try:
                topic, body = d.recv(timeout_s=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            if topic == wire.STATUS_TOPIC and (not states or states[-1] != body["state"]):
                states.append(body["state"])
            elif topic.startswith(wire.PRED_PREFIX) and body["stream"] in preds:
                preds[body["stream"]].append((body["t_start"], body["scores"]))
            elif topic.startswith(wire.GESTURE_PREFIX) and body["final"]:
                finals.add(body["stream"])
        status = latest_status(d)
        out["exit"] = d.stop()
    out.update(
        preds_normal=len(preds["normal"]), preds_lamp=len(preds["lamp"]), preds_alone=len(alone),
        states=states, normal_equal=preds["normal"] == alone,
        dropped=status["totals"]["dropped_by_reason"],
        rebuilds=(status.get("backend_counters") or {}).get("builds", "n/a"),
    )
    return out


# --------------------------------------------------------------------------------------- overload


def overload_run(tmp: Path, env: dict[str, str], streams: int, rate: float, seconds: float, max_lag_ms: float) -> dict[str, Any]:
    tmp.mkdir(parents=True, exist_ok=True)
    packet_us = 5_000
    per_packet = int(rate * packet_us / 1e6)
    n_packets = int(seconds * 1e6 / packet_us)
    frames = []
    for s in range(streams):
        ev = random_events(per_packet * n_packets, seed=100 + s, duration_us=int(seconds * 1e6))
        frames.append(list(recording_frames(f"c{s}", ev, 128, 128, packet_us=packet_us, eos=False)))
    sent: dict[tuple[str, int], float] = {}
    arrived: list[tuple[str, int, float]] = []
    args = ["--set", f"input.max_lag_ms={max_lag_ms}", "--set", "backend.retry_initial_s=1"]
    with start_daemon(tmp, MODEL, mode="live", transport="ipc", env=env, args=args, timeout_s=120) as d:
        sender = d.sender()
        stop = threading.Event()
        ctx = zmq.Context.instance()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.RCVHWM, 0)
        sub.setsockopt(zmq.SUBSCRIBE, wire.PRED_PREFIX.encode())
        sub.connect(d.output_endpoint)

        def listen() -> None:
            while not stop.is_set():
                if sub.poll(100):
                    _, body = wire.decode_output(sub.recv_multipart())
                    arrived.append((body["stream"], body["seq"], time.perf_counter()))

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        time.sleep(0.5)  # the listener's subscription reaches the daemon's PUB (slow joiner)
        t0 = time.perf_counter()
        for k in range(n_packets):
            due = t0 + k * packet_us / 1e6
            while time.perf_counter() < due:
                time.sleep(max(0.0, min(0.001, due - time.perf_counter())))
            for s in range(streams):
                f = frames[s][k]
                sender.send_multipart(f)
                sent[(f"c{s}", k)] = time.perf_counter()
        # long enough for the last windows, shorter than streams.flush_after_s (2 s): the tail windows a
        # silence flush runs would otherwise count the flush delay as latency
        time.sleep(max_lag_ms / 1000 + 0.5)
        stop.set()
        listener.join()
        sub.close(0)
        status = latest_status(d)
        d.stop()
    lat = np.array([(t - sent[(s, q)]) * 1000 for s, q, t in arrived if (s, q) in sent])
    return {
        "preds": len(lat),
        "p50": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p99": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
        "max": float(lat.max()) if len(lat) else float("nan"),
        "sent": streams * n_packets,
        "accepted": status["totals"]["packets"],
        "dropped": status["totals"]["dropped_by_reason"],
        "inference_p99": (status.get("inference_ms") or {}).get("p99"),
        # received by the daemon -> pred published, as the daemon measures it (no time in socket buffers)
        "daemon_p99": (status.get("latency_ms") or {}).get("p99"),
    }


# --------------------------------------------------------------------------------- paused replay


def paused_replay(tmp: Path, env: dict[str, str]) -> dict[str, Any]:
    tmp.mkdir(parents=True, exist_ok=True)
    with start_daemon(tmp, MODEL, mode="lossless", transport="ipc", env=env, timeout_s=120) as d:
        replay = subprocess.Popen(
            [sys.executable, "-m", "s2gesture.clients.cli", "replay", "--synthetic", "2", "--seed", "5",
             "--input", d.input_endpoint, "--output", d.output_endpoint, "--stream", "tail", "--speed", "2",
             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env},
        )
        # near the end (2,400 packets in all): the rest fits in the socket buffers and replay finishes sending
        d.wait_status(lambda b: b["streams"].get("tail", {}).get("packets", 0) >= 2_100, timeout_s=60)
        d.proc.send_signal(signal.SIGSTOP)
        time.sleep(4.0)
        d.proc.send_signal(signal.SIGCONT)
        out, _ = replay.communicate(timeout=120)
        try:
            sent = int(out.split(" packets")[0].split()[-1])
        except (ValueError, IndexError):
            sent = -1
        status = latest_status(d, settle_s=2.0)  # a daemon that lost the tail has nothing more to count
        tail = status["streams"].get("tail", {})
        d.stop()
    return {"replay_exit": replay.returncode, "sent": sent,
            "accounted": tail.get("packets", 0) + sum(tail.get("dropped", {}).values())}


# ------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Measure this checkout against the baseline revision and write benchmarks/results/daemon_core.md."""
    parser = argparse.ArgumentParser(prog="bench_daemon_core.py", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (smoke test of the script)")
    parser.add_argument("--baseline", default=BASELINE, help=f"git revision to compare with (default {BASELINE})")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="s2gcore"))
    versions = {"this checkout": {}, f"baseline {args.baseline}": baseline_env(args.baseline, tmp)}
    seconds = 3.0 if args.quick else 10.0
    rows: dict[str, dict[str, Any]] = {}
    for name, env in versions.items():
        src = ROOT / "daemon" if not env else Path(env["PYTHONPATH"]) / "s2gesture" / "daemon"
        service, largest = class_sizes(src.resolve())
        print(f"[{name}] Service {service} lines, largest class {largest}", flush=True)
        lamp = lamp_run(tmp / f"lamp-{len(rows)}", env, seconds)
        print(f"[{name}] lamp {lamp}", flush=True)
        over = overload_run(tmp / f"over-{len(rows)}", env, 16 if args.quick else 64, 50_000, 3.0 if args.quick else 6.0, 200)
        print(f"[{name}] overload {over}", flush=True)
        paused = paused_replay(tmp / f"pause-{len(rows)}", env)
        print(f"[{name}] paused replay {paused}", flush=True)
        rows[name] = {"service": service, "largest": largest, "lamp": lamp, "over": over, "paused": paused}
    fuzz_dir = tmp / "fuzz"
    fuzz_dir.mkdir()
    from s2gesture.daemon.testing import write_tiny_model

    write_tiny_model(fuzz_dir / "tiny.nir")
    fuzz = fuzz_run(fuzz_dir, fuzz_dir / "tiny.nir", 20_000 if args.quick else 100_000, seed=7)
    print(f"fuzz {fuzz}", flush=True)
    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tmp / "baseline")], check=False)

    lines = [
        "## Daemon core: dense cameras, pauses, overload",
        "",
        f"`benchmarks/bench_daemon_core.py`{' --quick' if args.quick else ''}: this checkout and, in the same run, the baseline "
        f"revision {args.baseline} (the first release), same interpreter and libraries, bundled int8 model on the emulator; "
        "2 shared cores.",
        "",
        "| figure | this checkout | baseline |",
        "|---|---|---|",
    ]
    a, b = rows["this checkout"], rows[f"baseline {args.baseline}"]

    def row(label: str, fa: str, fb: str) -> None:
        lines.append(f"| {label} | {fa} | {fb} |")

    row("lines of `Service`", str(a["service"]), str(b["service"]))
    row("largest class in daemon/", f"{a['largest'][0]} ({a['largest'][1]})", f"{b['largest'][0]} ({b['largest'][1]})")
    for key, label in (("preds_normal", "lamp test: preds, normal camera"), ("preds_lamp", "lamp test: preds, lamp camera")):
        row(f"{label} ({seconds:g} s)", str(a["lamp"][key]), str(b["lamp"][key]))
    row("lamp test: daemon states seen", " -> ".join(a["lamp"]["states"]), " -> ".join(b["lamp"]["states"]))
    row("lamp test: normal preds equal a run alone", str(a["lamp"]["normal_equal"]), str(b["lamp"]["normal_equal"]))
    row("lamp test: dropped", str(a["lamp"]["dropped"] or "none"), str(b["lamp"]["dropped"] or "none"))
    oa, ob = a["over"], b["over"]
    n_streams = 16 if args.quick else 64
    row(f"overload {n_streams} x 50 k ev/s: send -> pred p50 / p99 / max (ms), max_lag_ms 200",
        f"{oa['p50']:.0f} / {oa['p99']:.0f} / {oa['max']:.0f}", f"{ob['p50']:.0f} / {ob['p99']:.0f} / {ob['max']:.0f}")
    row("overload: preds / packets accepted of sent", f"{oa['preds']} / {oa['accepted']} of {oa['sent']}",
        f"{ob['preds']} / {ob['accepted']} of {ob['sent']}")
    row("overload: dropped by reason", str(oa["dropped"]), str(ob["dropped"]))
    row("overload: received -> pred p99 as the daemon measures it (ms)", str(oa.get("daemon_p99")), str(ob.get("daemon_p99")))
    row("overload: inference p99 (ms)", str(oa["inference_p99"]), str(ob["inference_p99"]))
    pa, pb = a["paused"], b["paused"]
    row("lossless replay, daemon stopped 4 s near the end: sent / accounted / replay exit",
        f"{pa['sent']} / {pa['accounted']} / {pa['replay_exit']}", f"{pb['sent']} / {pb['accounted']} / {pb['replay_exit']}")
    lines += [
        "",
        f"Fuzz (this checkout): {fuzz['sent']:,} hostile packets, {fuzz['accepted']:,} accepted + {fuzz['dropped']:,} "
        f"dropped by reason = all accounted; alive: {fuzz['alive']}; exit code {fuzz['exit']}; "
        f"{fuzz['msgs_per_s']:,.0f} messages/s.",
        "",
    ]
    write_section(RESULTS, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
