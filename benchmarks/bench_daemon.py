"""Benchmark of s2gestured as a process on real sockets; writes benchmarks/results/daemon.md.

Figures (issue 5): sustained ingest with zero loss in lossless mode and in live mode before the first drop
(events/s, the daemon is one Python thread); end-to-end latency p50/p99 (packet completing a window
received -> its pred published, as the daemon measures it, and sender -> subscriber as a client sees it)
at 1 M events/s paced in real time; time from start to READY (sd_notify); peak RSS; a fuzz run of hostile
packets (the daemon must stay up and count every one). Baseline measured in the same run: the transport
ceiling (the same packets PUSHed to a plain PULL socket that only runs wire.decode_input).

Usage: python benchmarks/bench_daemon.py [--quick] [--model PATH]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import zmq
from _common import write_section  # benchmarks/ is sys.path[0] when a script runs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from daemon_helpers import (  # noqa: E402
    daemon_command,
    random_events,
    recording_frames,
    start_daemon,
)

from s2gesture.daemon import wire  # noqa: E402
from s2gesture.daemon.testing import write_tiny_model  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "daemon.md"


def gesture_like_events(n: int, duration_us: int, seed: int) -> np.ndarray:
    """Events clustered around a few moving blobs (denser than noise, so denoise keeps most of them)."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, duration_us, n))
    phase = t / 1e6 * 2 * np.pi
    blob = rng.integers(0, 3, n)
    cx = 64 + 30 * np.cos(phase * (1 + blob)) + rng.normal(0, 4, n)
    cy = 64 + 30 * np.sin(phase * (1 + blob)) + rng.normal(0, 4, n)
    ev = random_events(n, seed=seed)
    ev["x"] = np.clip(cx, 0, 127).astype(np.int16)
    ev["y"] = np.clip(cy, 0, 127).astype(np.int16)
    ev["t"] = t
    return ev


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of a process in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ------------------------------------------------------------------------------------------ baseline


def transport_ceiling(frames: list[list[bytes]], n_events: int) -> float:
    """events/s of PUSH -> PULL + wire.decode_input alone (no processing): the ceiling for the daemon."""
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    port = pull.bind_to_random_port("tcp://127.0.0.1")
    push = ctx.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{port}")

    def send() -> None:
        for f in frames:
            push.send_multipart(f)

    t0 = time.perf_counter()
    th = threading.Thread(target=send)
    th.start()
    events = 0
    for _ in frames:
        pkt = wire.decode_input(pull.recv_multipart())
        events += len(getattr(pkt, "events", ()))
    dt = time.perf_counter() - t0
    th.join()
    push.close(0)
    pull.close(0)
    ctx.term()
    assert events == n_events
    return n_events / dt


# ------------------------------------------------------------------------------------------ ingest


def lossless_ingest(tmp: Path, model: Path, frames: list[list[bytes]], n_events: int) -> tuple[float, float]:
    """(events/s, peak RSS MiB) of the daemon accepting and fully processing a recording, nothing lost."""
    with start_daemon(tmp, model, mode="lossless", transport="ipc", status_interval_s=0.2) as d:
        sender = d.sender()
        t0 = time.perf_counter()
        d.send_all(sender, frames)
        d.recv(lambda t, b: t == "s2g/v1/gesture/bench/" and b["final"], timeout_s=600)
        dt = time.perf_counter() - t0
        status = d.wait_status()
        s = status["streams"]["bench"]
        assert s["events"] == n_events and not s["dropped"], s
        rss = peak_rss_mb(d.proc.pid)
        assert d.stop() == 0
    return n_events / dt, rss


def paced_send(sock: zmq.Socket[Any], frames: list[list[bytes]], packet_us: int, speed: float) -> list[float]:
    """Send packets in (scaled) real time; returns each packet's send time (time.monotonic)."""
    sent = []
    t0 = time.monotonic()
    for k, f in enumerate(frames):
        delay = t0 + k * packet_us / 1e6 / speed - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # a camera's pace; the sender falls back into step if it was late
        sock.send_multipart(f)
        sent.append(time.monotonic())
    return sent


def live_before_first_drop(tmp: Path, model: Path, seed: int, rates: list[float], seconds: float) -> list[tuple[float, int, float]]:
    """For each input rate (events/s, paced): (rate, packets dropped, events/s accepted)."""
    out = []
    for rate in rates:
        packet_us = 2000
        duration_us = int(seconds * 1e6)
        ev = gesture_like_events(int(rate * seconds), duration_us, seed)
        frames = list(recording_frames("live", ev, 128, 128, packet_us=packet_us))
        with start_daemon(tmp, model, mode="live", transport="ipc", status_interval_s=0.2) as d:
            sender = d.sender()
            t0 = time.monotonic()
            paced_send(sender, frames, packet_us, 1.0)
            d.recv(lambda t, b: t == "s2g/v1/gesture/live/" and b["final"], timeout_s=120)
            dt = time.monotonic() - t0
            status = d.wait_status()
            s = status["streams"]["live"]
            dropped = sum(s["dropped"].values())
            out.append((rate, dropped, s["events"] / dt))
            assert d.stop() == 0
        if dropped:
            break
    return out


# ------------------------------------------------------------------------------------------ latency


def latency_at(tmp: Path, model: Path, rate: float, seconds: float, seed: int) -> dict[str, float]:
    """Latency percentiles (ms) at ``rate`` events/s paced in real time, 1 ms packets."""
    packet_us = 1000
    ev = gesture_like_events(int(rate * seconds), int(seconds * 1e6), seed)
    frames = list(recording_frames("lat", ev, 128, 128, packet_us=packet_us, eos=False))
    with start_daemon(tmp, model, mode="live", transport="tcp", status_interval_s=0.5) as d:
        sender = d.sender()
        received: list[tuple[float, dict[str, Any]]] = []
        done = threading.Event()

        def listen() -> None:
            assert d.sub is not None
            while not done.is_set():
                if d.sub.poll(100):
                    topic, body = wire.decode_output(d.sub.recv_multipart())
                    if topic == "s2g/v1/pred/lat/":
                        received.append((time.monotonic(), body))

        th = threading.Thread(target=listen)
        th.start()
        sent = paced_send(sender, frames, packet_us, 1.0)
        d.wait_status(lambda b: b["streams"].get("lat", {}).get("queue", 1) == 0 and b["uptime_s"] > 0)
        d.wait_status()
        done.set()
        th.join()
        status = d.wait_status()
        assert d.stop() == 0
    internal = np.array([b["latency_ms"] for _, b in received])
    external = np.array([(t - sent[b["seq"]]) * 1000 for t, b in received])
    dropped = sum(status["streams"]["lat"]["dropped"].values())
    return {
        "preds": len(received),
        "dropped": dropped,
        "p50": float(np.percentile(internal, 50)),
        "p99": float(np.percentile(internal, 99)),
        "ext_p50": float(np.percentile(external, 50)),
        "ext_p99": float(np.percentile(external, 99)),
        "inference_p50": status["inference_ms"].get("p50", float("nan")),
        "inference_p99": status["inference_ms"].get("p99", float("nan")),
    }


# ------------------------------------------------------------------------------------------ READY


def time_to_ready(tmp: Path, model: Path, repeats: int) -> list[float]:
    """Seconds from process start to READY=1 on a real NOTIFY_SOCKET."""
    out = []
    for k in range(repeats):
        with tempfile.TemporaryDirectory(prefix="s2g") as short:
            path = os.path.join(short, "n")
            ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            ns.bind(path)
            ns.settimeout(120)
            args = ["--mode", "lossless", "--input-bind", f"ipc://{short}/i", "--output-bind", f"ipc://{short}/o",
                    "--model", str(model)]
            t0 = time.monotonic()
            proc = subprocess.Popen(daemon_command(args), env={**os.environ, "NOTIFY_SOCKET": path},
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while b"READY=1" not in ns.recv(4096).split(b"\n"):
                pass
            out.append(time.monotonic() - t0)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, f"run {k}"
            ns.close()
    return out


# ------------------------------------------------------------------------------------------ fuzz


def fuzz_frames(n: int, seed: int) -> list[list[bytes]]:
    """``n`` hostile messages: random bytes, random topics, and one-key mutations of valid packets."""
    rng = np.random.default_rng(seed)
    good = msgpack.unpackb(wire.encode_events("fz", 0, 128, 128, random_events(16, seed=seed))[1])
    values: list[Any] = [None, True, -1, 2**63, 1.5, "x", b"\x00" * 3, [1], {"a": 1}, 10**6, 0]
    keys = [*good.keys(), "extra"]
    out = []
    for k in range(n):
        kind = k % 4
        if kind == 0:
            out.append([b"dvs/v1/events/fz/", rng.bytes(int(rng.integers(0, 200)))])
        elif kind == 1:
            out.append([rng.bytes(int(rng.integers(0, 40))), rng.bytes(int(rng.integers(0, 50)))])
        else:
            body = dict(good)
            key = keys[int(rng.integers(0, len(keys)))]
            if rng.random() < 0.2:
                body.pop(key, None)
            else:
                body[key] = values[int(rng.integers(0, len(values)))]
            body["seq"] = k if key != "seq" else body.get("seq")
            out.append([b"dvs/v1/events/fz/", msgpack.packb(body, use_bin_type=True)])
    return out


def fuzz_run(tmp: Path, model: Path, n: int, seed: int) -> dict[str, Any]:
    """Send ``n`` hostile messages losslessly; the daemon must stay up and account for every one."""
    frames = fuzz_frames(n, seed)
    with start_daemon(tmp, model, mode="lossless", transport="ipc", status_interval_s=0.2) as d:
        t0 = time.perf_counter()
        d.send_all(d.sender(), frames)

        def accounted(b: dict[str, Any]) -> bool:
            total = sum(s["packets"] + sum(s["dropped"].values()) for s in b["streams"].values())
            return total == n

        status = d.wait_status(accounted, timeout_s=300)
        dt = time.perf_counter() - t0
        alive = d.proc.poll() is None and status["state"] == "ready"
        reasons: dict[str, int] = {}
        for s in status["streams"].values():
            for r, c in s["dropped"].items():
                reasons[r] = reasons.get(r, 0) + c
        accepted = sum(s["packets"] for s in status["streams"].values())
        code = d.stop()
    return {"sent": n, "accepted": accepted, "dropped": sum(reasons.values()), "reasons": reasons,
            "alive": alive, "exit": code, "msgs_per_s": n / dt}


# ------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    """Run every measurement, print it and write benchmarks/results/daemon.md."""
    parser = argparse.ArgumentParser(prog="bench_daemon.py")
    parser.add_argument("--quick", action="store_true", help="smaller runs (smoke test of the script)")
    parser.add_argument("--model", help="model to serve (default: the bundled pretrained one, else the tiny test model)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="s2gbench"))
    bundled = ROOT / "models" / "pretrained" / "psnn_int8.nir"
    if args.model:
        model, model_note = Path(args.model), args.model
    elif bundled.is_file():
        model, model_note = bundled, "bundled pretrained psnn_int8.nir"
    else:
        model = tmp / "tiny.nir"
        write_tiny_model(model)
        model_note = "tiny test model (the pretrained model was not there)"
    repeats = 1 if args.quick else args.repeats
    n_events = 1_000_000 if args.quick else 5_000_000
    seconds = n_events / 1e6  # event time of the recording at 1 M events/s
    ev = gesture_like_events(n_events, int(seconds * 1e6), seed=1)
    frames = list(recording_frames("bench", ev, 128, 128, packet_us=5_000))
    lines = [f"model: {model_note}; machine: {os.cpu_count()} CPUs shared; repeats {repeats}, medians"]
    print(lines[0], flush=True)

    ceiling = statistics.median(transport_ceiling(frames, n_events) for _ in range(repeats))
    print(f"transport ceiling (PUSH/PULL + decode_input): {ceiling / 1e6:.2f} M events/s", flush=True)
    runs = []
    for k in range(repeats):
        (tmp / f"l{k}").mkdir()
        runs.append(lossless_ingest(tmp / f"l{k}", model, frames, n_events))
    lossless = statistics.median(r[0] for r in runs)
    rss = max(r[1] for r in runs)
    print(f"lossless ingest: {lossless / 1e6:.2f} M events/s ({lossless / ceiling:.2f} of the ceiling); peak RSS {rss:.0f} MiB", flush=True)

    (tmp / "live").mkdir()
    rates = [0.5e6, 1e6, 2e6] if args.quick else [1e6, 2e6, 3e6, 5e6, 8e6]
    live = live_before_first_drop(tmp / "live", model, 2, rates, 1.0 if args.quick else 3.0)
    best = max((r for r in live if r[1] == 0), key=lambda r: r[0], default=None)
    for rate, dropped, acc in live:
        print(f"live at {rate / 1e6:.1f} M events/s offered: {dropped} packets dropped, {acc / 1e6:.2f} M events/s accepted", flush=True)

    (tmp / "lat").mkdir()
    lat = latency_at(tmp / "lat", model, 1e6, 2.0 if args.quick else 5.0, seed=3)
    print(f"latency at 1 M events/s: daemon p50 {lat['p50']:.2f} ms p99 {lat['p99']:.2f} ms; "
          f"sender->subscriber p50 {lat['ext_p50']:.2f} ms p99 {lat['ext_p99']:.2f} ms; "
          f"inference p50 {lat['inference_p50']:.2f} ms p99 {lat['inference_p99']:.2f} ms; {lat['preds']} preds, "
          f"{lat['dropped']} dropped", flush=True)

    (tmp / "ready").mkdir()
    ready = time_to_ready(tmp / "ready", model, repeats)
    print(f"start -> READY: median {statistics.median(ready):.2f} s ({', '.join(f'{r:.2f}' for r in ready)})", flush=True)

    (tmp / "fuzz").mkdir()
    fz = fuzz_run(tmp / "fuzz", model, 10_000 if args.quick else 100_000, seed=4)
    print(f"fuzz: {fz}", flush=True)

    ok = lambda good: "yes" if good else "**no**"  # noqa: E731
    md = [
        "## s2gestured (daemon)",
        "",
        f"Measured by `benchmarks/bench_daemon.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {lines[0]}.",
        "Synthetic gesture-like events from a 128x128 sensor; default config (window 200 ticks, stride 100, emulator).",
        "",
        "| figure | value | target | met |",
        "|---|---|---|---|",
        f"| transport ceiling (baseline: PUSH/PULL + `decode_input` only) | {ceiling / 1e6:.2f} M events/s | | |",
        f"| lossless ingest, zero loss, full pipeline | {lossless / 1e6:.2f} M events/s ({lossless / ceiling:.2f} x ceiling) | >= 5 M | {ok(lossless >= 5e6)} |",
        f"| live ingest before the first drop (paced, highest rate without drops) | {'none' if best is None else f'{best[0] / 1e6:.1f} M events/s offered, {best[2] / 1e6:.2f} M accepted'} | >= 5 M | {ok(best is not None and best[0] >= 5e6)} |",
        f"| end-to-end latency at 1 M events/s, daemon (packet received -> pred sent) | p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms | p99 <= 20 ms | {ok(lat['p99'] <= 20)} |",
        f"| same, sender -> subscriber (includes ZeroMQ both ways) | p50 {lat['ext_p50']:.2f} ms, p99 {lat['ext_p99']:.2f} ms | | |",
        f"| backend run per window (inference) | p50 {lat['inference_p50']:.2f} ms, p99 {lat['inference_p99']:.2f} ms | | |",
        f"| start -> READY (sd_notify) | median {statistics.median(ready):.2f} s | <= 2 s | {ok(statistics.median(ready) <= 2)} |",
        f"| peak RSS (VmHWM) during lossless ingest | {rss:.0f} MiB | <= 250 MB | {ok(rss * 1.048576 <= 250)} |",
        f"| fuzz: hostile packets sent / accounted (accepted + dropped) | {fz['sent']:,} / {fz['accepted'] + fz['dropped']:,}, daemon up: {fz['alive']}, exit {fz['exit']} | no crash | {ok(fz['alive'] and fz['exit'] == 0)} |",
        "",
        "Live mode, paced input (rate offered -> packets dropped, events/s accepted): "
        + "; ".join(f"{r / 1e6:.1f} M -> {d} dropped, {a / 1e6:.2f} M" for r, d, a in live) + ".",
        "",
        "Fuzz drops by reason: " + ", ".join(f"{k} {v:,}" for k, v in sorted(fz["reasons"].items())) + ".",
        "",
    ]
    write_section(RESULTS, md, echo=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
