"""Benchmark of ``s2gesture view``; writes benchmarks/results/view.md (and docs/view_demo.png).

Figures:

1. **Daemon CPU at 1 M events/s, with and without the view attached.** A live daemon (bundled model,
   emulator) gets gesture-like events paced in real time (1 ms packets, a segment + eos every 0.25 s).
   Baseline: the sender publishes to the daemon only. With the view: the same sender also publishes to
   the view's ``--input`` (PUB fan-out), the view subscribes to the daemon's output, and a headless
   Chromium shows the overview page. Daemon CPU is utime + stime from /proc over the send period;
   alternating runs, medians. The daemon's own latency and drops are reported for both.
2. **Gesture message -> label on screen** (p50/p99, ms): the bench's own SUB on the daemon's output
   notes when each gesture arrives; the page notes (``window.s2gShown``) the animation frame after it
   set the label; same machine, same wall clock. Measured during the 1 M events/s runs.
3. **Page weight**: bytes of the static files (raw and gzip), what the browser fetched to show the page,
   and the WebSocket bytes per second at 1 M events/s.
4. **Screenshot** of the page during ``s2gesture demo --view`` -> docs/view_demo.png (``--no-screenshot``
   skips it).

Usage: python benchmarks/bench_view.py [--seconds 15] [--repeats 2] [--no-screenshot]
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import zmq
from _common import write_section  # benchmarks/ is sys.path[0] when a script runs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_daemon import gesture_like_events  # noqa: E402
from daemon_helpers import free_tcp_port, recording_frames, start_daemon  # noqa: E402

from s2gesture.clients import bus  # noqa: E402
from s2gesture.daemon import wire  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "view.md"
SCREENSHOT = ROOT / "docs" / "view_demo.png"
RATE = 1_000_000
PACKET_US = 1000
SEGMENT_US = 250_000


def clock_ticks() -> float:
    import os

    return float(os.sysconf("SC_CLK_TCK"))


def cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / clock_ticks()


def tree_cpu_s(root: int) -> float:
    """CPU seconds of ``root`` and its descendants alive now (Chromium runs several processes)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            rest = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(rest[1]), []).append(int(stat.parent.name))
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        try:
            total += cpu_s(pid)
        except OSError:
            continue
        todo += children.get(pid, [])
    return total


def feed(seconds: float, seed: int) -> list[list[bytes]]:
    """1 M events/s of gesture-like events, 1 ms packets, a segment and its eos every 0.25 s."""
    frames: list[list[bytes]] = []
    n_seg = round(seconds * 1e6 / SEGMENT_US)
    seq = 0
    for k in range(n_seg):
        ev = gesture_like_events(int(RATE * SEGMENT_US / 1e6), SEGMENT_US, seed + k)
        ev["t"] += k * SEGMENT_US
        part = list(recording_frames("bench", ev, 128, 128, packet_us=PACKET_US, segment=f"s{k:04d}", seq0=seq))
        seq += len(part)
        frames += part
    return frames


def paced_send(sock: zmq.Socket[Any], frames: list[list[bytes]]) -> None:
    """Send in real time: a packet per millisecond of event time (eos packets go right after their segment)."""
    t0 = time.monotonic()
    k = 0
    for f in frames:
        if f[0].startswith(wire.EVENTS_PREFIX.encode()):
            delay = t0 + k * PACKET_US / 1e6 - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # a camera's pace
            k += 1
        sock.send_multipart(f)


def xpub(ctx: zmq.Context[Any], endpoints: list[str]) -> zmq.Socket[Any]:
    """An XPUB connected to ``endpoints``, returned once each peer's subscription has arrived."""
    sock = ctx.socket(zmq.XPUB)
    sock.setsockopt(zmq.XPUB_VERBOSE, 1)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.LINGER, 2000)
    for e in endpoints:
        sock.connect(e)
    got = 0
    while got < len(endpoints):
        if not sock.poll(20_000):
            msg = "a subscriber did not join within 20 s"
            raise RuntimeError(msg)
        if sock.recv()[:1] == b"\x01":
            got += 1
    return sock


def start_browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)


def start_view(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "s2gesture.clients.cli", "view", *args], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "http://" not in line:
        msg = f"s2gesture view did not start: {line!r}"
        raise RuntimeError(msg)
    return proc, line.split()[2]


def wait_js(driver: Any, script: str, predicate: Any, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if predicate(value):
            return value
        time.sleep(0.05)
    msg = f"page condition not met within {timeout_s} s: {script}"
    raise RuntimeError(msg)


def one_run(tmp: Path, model: Path, frames: list[list[bytes]], seconds: float, with_view: bool, driver: Any) -> dict[str, Any]:
    """Daemon CPU (and, with the view, the view's, the browser's and the screen latencies) for one feed."""
    ctx = zmq.Context()
    view_proc = None
    out: dict[str, Any] = {}
    published: dict[tuple[int, bool], float] = {}
    with start_daemon(tmp, model, mode="live", transport="tcp", status_interval_s=0.5) as d:
        endpoints = [d.input_endpoint]
        if with_view:
            view_in = f"tcp://127.0.0.1:{free_tcp_port()}"
            view_proc, url = start_view("--output", d.output_endpoint, "--input", view_in, "--http", "127.0.0.1:0")
            endpoints.append(view_in)
            driver.get(url)
            wait_js(driver, "return document.getElementById('state').textContent", lambda s: s == "ready", 20)
        stop = threading.Event()
        joined = threading.Event()

        def note_gestures() -> None:
            sub = bus.open_output(ctx, d.output_endpoint, topics=(wire.GESTURE_PREFIX,))
            bus.wait_for_status(sub, 20)
            joined.set()
            while not stop.is_set():
                if sub.poll(100):
                    frames_ = sub.recv_multipart()
                    t_ms = time.time() * 1e3
                    msg = wire.decode_message(frames_)
                    if isinstance(msg, wire.Gesture):
                        published[(msg.seq, msg.final)] = t_ms
            sub.close()

        th = threading.Thread(target=note_gestures, daemon=True)
        th.start()
        joined.wait(20)
        sock = xpub(ctx, endpoints)
        bytes0 = driver.execute_script("return window.s2gView.bytes || 0") if with_view else 0
        c0 = cpu_s(d.proc.pid)
        v0 = cpu_s(view_proc.pid) if view_proc else 0.0
        b0 = tree_cpu_s(driver.service.process.pid) if with_view else 0.0
        t0 = time.monotonic()
        paced_send(sock, frames)
        wall = time.monotonic() - t0
        out["daemon_cpu"] = (cpu_s(d.proc.pid) - c0) / wall
        if view_proc is not None:
            out["view_cpu"] = (cpu_s(view_proc.pid) - v0) / wall
            out["browser_cpu"] = (tree_cpu_s(driver.service.process.pid) - b0) / wall
            out["ws_bytes_per_s"] = (driver.execute_script("return window.s2gView.bytes || 0") - bytes0) / wall
        status = d.wait_status(lambda b: b["streams"].get("bench", {}).get("queue", 1) == 0)
        s = status["streams"]["bench"]
        out["dropped"] = sum(s["dropped"].values())
        out["events_accepted"] = s["events"]
        out["daemon_latency"] = status["latency_ms"]
        out["wall"] = wall
        time.sleep(1.0)  # the last gestures reach the page
        stop.set()
        th.join(5)
        if with_view:
            shown = driver.execute_script("return window.s2gShown.filter(g => g.stream === 'bench')")
            by_key = {(g["seq"], g["final"]): g["shown_ms"] for g in shown}
            out["screen_ms"] = [by_key[k] - t for k, t in published.items() if k in by_key]
            out["gestures_published"] = len(published)
            out["gestures_shown"] = sum(1 for k in published if k in by_key)
        sock.close()
        if view_proc is not None:
            view_proc.terminate()
            view_proc.wait(15)
        d.stop()
    ctx.term()
    return out


def page_weight(driver: Any, url: str) -> dict[str, Any]:
    """Static file bytes (raw, gzip) and the browser's transfer sizes for the page."""
    files = {}
    for name in ("index.html", "view.js", "view.css"):
        data = resources.files("s2gesture.clients").joinpath("view_static", name).read_bytes()
        files[name] = (len(data), len(gzip.compress(data, 9)))
    driver.get(url)
    time.sleep(1.0)  # the resource timing entries settle after load
    entries = driver.execute_script(
        "return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))"
        ".map(e => [e.name, e.transferSize, e.decodedBodySize])"
    )
    return {"files": files, "entries": entries}


def demo_screenshot(driver: Any) -> str:
    """Run ``s2gesture demo --view`` and save the page after a few decisions to docs/view_demo.png."""
    port = free_tcp_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "s2gesture.clients.cli", "demo", "--view", f"127.0.0.1:{port}", "--count", "11", "--duration-s", "3"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert demo.stdout is not None
    for line in demo.stdout:
        if line.startswith("live view:"):
            url = line.split()[2]
            break
    else:
        msg = "the demo printed no live view URL"
        raise RuntimeError(msg)
    driver.set_window_size(1000, 1130)
    # the single-stream page: the demo has one stream, and this is its larger layout
    driver.get(url.rstrip("/") + "/stream/demo")
    wait_js(driver, "return document.querySelectorAll('ol.decisions li.final').length", lambda n: n >= 4, 120)
    time.sleep(1.2)  # mid-gesture: an event image and a filled strip chart
    driver.save_screenshot(str(SCREENSHOT))
    rest = demo.stdout.read()
    demo.wait(120)
    return next((ln for ln in rest.splitlines() if ln.startswith("accuracy")), "")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q)) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds of 1 M events/s per run (default 15)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per configuration, alternating (default 2)")
    parser.add_argument("--no-screenshot", action="store_true", help="do not run the demo for docs/view_demo.png")
    parser.add_argument("--screenshot-only", action="store_true", help="only run the demo for docs/view_demo.png")
    args = parser.parse_args(argv)
    if args.screenshot_only:
        driver = start_browser()
        try:
            print(demo_screenshot(driver))
        finally:
            driver.quit()
        return 0
    from s2gesture.daemon.service import default_model_path

    model = default_model_path()
    if not model.is_file():
        print(f"bench_view: the bundled model {model} is missing; run `make pretrained`", file=sys.stderr)
        return 1
    frames = feed(args.seconds, seed=7)
    driver = start_browser()
    runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    try:
        with tempfile.TemporaryDirectory(prefix="s2g-bench-view-") as tmp:
            for r in range(args.repeats):
                for with_view in (False, True):
                    res = one_run(Path(tmp), model, frames, args.seconds, with_view, driver)
                    runs[with_view].append(res)
                    print(f"run {r + 1} {'with' if with_view else 'without'} view: {res.get('daemon_cpu'):.3f} CPU, "
                          f"dropped {res['dropped']}", flush=True)
            view_proc, url = start_view("--output", "tcp://127.0.0.1:1", "--http", "127.0.0.1:0")
            weight = page_weight(driver, url)
            view_proc.terminate()
            view_proc.wait(15)
        demo_line = "" if args.no_screenshot else demo_screenshot(driver)
    finally:
        driver.quit()

    def med(with_view: bool, key: str) -> float:
        return statistics.median(r[key] for r in runs[with_view])

    base, viewed = med(False, "daemon_cpu"), med(True, "daemon_cpu")
    screen = [x for r in runs[True] for x in r["screen_ms"]]
    shown = sum(r["gestures_shown"] for r in runs[True])
    pub = sum(r["gestures_published"] for r in runs[True])

    def lat(with_view: bool) -> str:
        p50 = statistics.median(r["daemon_latency"].get("p50", float("nan")) for r in runs[with_view])
        p99 = statistics.median(r["daemon_latency"].get("p99", float("nan")) for r in runs[with_view])
        return f"p50 {p50:.2f} ms, p99 {p99:.2f} ms"

    files = weight["files"]
    raw = sum(v[0] for v in files.values())
    gz = sum(v[1] for v in files.values())
    fetched = sum(int(e[1] or 0) for e in weight["entries"])
    lines = [
        "## s2gesture view (live web page)",
        "",
        f"Measured by `benchmarks/bench_view.py` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: 2 CPUs shared with "
        f"the daemon, the view, the sender and Chromium; bundled model, emulator backend, live input; "
        f"{args.seconds:g} s of 1 M events/s per run (1 ms packets, a segment every 0.25 s); "
        f"{args.repeats} alternating runs per configuration, medians.",
        "",
        "| figure | without the view (baseline) | with the view attached |",
        "|---|---|---|",
        f"| daemon CPU at 1 M events/s (cores) | {base:.3f} | {viewed:.3f} ({viewed / base:.2f} x) |",
        f"| daemon latency, packet -> pred (its own percentiles) | {lat(False)} | {lat(True)} |",
        f"| events dropped by the daemon | {sum(r['dropped'] for r in runs[False])} | {sum(r['dropped'] for r in runs[True])} |",
        f"| view process CPU (cores) | | {med(True, 'view_cpu'):.3f} |",
        f"| headless Chromium CPU, all processes (cores) | | {med(True, 'browser_cpu'):.3f} |",
        f"| WebSocket traffic to one overview page | | {med(True, 'ws_bytes_per_s') / 1e3:.0f} kB/s |",
        "",
        f"Gesture message -> label on screen (the bench's SUB on the daemon's output -> the page's next animation "
        f"frame after setting the label), during the runs above: p50 {pct(screen, 50):.1f} ms, p99 {pct(screen, 99):.1f} ms, "
        f"max {max(screen) if screen else float('nan'):.1f} ms over {len(screen)} gestures ({shown} of {pub} published were shown).",
        "",
        f"Page weight: {raw / 1e3:.1f} kB of static files ({gz / 1e3:.1f} kB gzipped: "
        + ", ".join(f"{k} {v[0] / 1e3:.1f} kB" for k, v in files.items())
        + f"); the browser fetched {fetched / 1e3:.1f} kB to show the page (no CDN, no other requests: "
        f"{len(weight['entries'])} entries).",
    ]
    if demo_line:
        lines += ["", f"Screenshot: docs/view_demo.png, during `s2gesture demo --view` ({demo_line})."]
    write_section(RESULTS, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
