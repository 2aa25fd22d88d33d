"""Benchmark of ``s2gesture camera`` and the recording readers; writes benchmarks/results/camera.md.

Figures:

1. **Bridge at 1 M events/s, dv:// and aestream UDP.** A source process sends a 640x480 (DVXplorer-sized)
   stream paced in real time, 1 ms batches of 1000 events: a ``dv_processing.io.NetworkWriter`` (what DV
   sends) or SPIF UDP datagrams (what ``aestream ... output udp`` sends: 4-byte words, no timestamps). The
   bridge (``camera.run``, this process, ``--measure-latency``) feeds a live daemon (bundled model,
   emulator). Reported: events/s through the bridge, the bridge's CPU (this process: the bridge and its
   libraries' threads), added latency (a batch's arrival in the bridge -> the packet it closes leaves on
   the socket, p50/p99; the packet window itself, ``--packet-ms``, comes on top by design), and events
   lost: sent by the source vs received by the bridge vs sent to the daemon vs counted by the daemon.
2. **Reconnect after the DV source restarts**: the writer process is killed and started again on the same
   port; time until the bridge notices, and from the new writer listening to the bridge open again
   (the reconnect backoff starts at 50 ms and doubles up to 2 s).
3. **Reader throughput per format** against the library alone, same files, same run: Prophesee EVT 2.0,
   EVT 3.0 and DAT (our reader vs ``expelliarmus`` decoding), ROS bags (our reader vs ``rosbags``
   reading and deserializing every message; for evt3 packets also the expelliarmus decode). Our reader's
   figure includes building the validated :class:`Recording` (daemon/events.check_events).

Usage: python benchmarks/bench_camera.py [--seconds 6] [--restarts 3] [--reader-events 2000000]
"""

from __future__ import annotations

import argparse
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from _common import write_section  # benchmarks/ is sys.path[0] when a script runs

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from daemon_helpers import DaemonProcess, free_tcp_port, random_events, start_daemon  # noqa: E402

from s2gesture.clients import camera  # noqa: E402
from s2gesture.daemon.events import EVENT_DTYPE  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "camera.md"
SENSOR = (640, 480)
RATE = 1_000_000
BATCH_US = 1000

#: the DV software: a NetworkWriter sending a recording's 1 ms packets paced by their timestamps
DV_PACED = """
import sys, time, dv_processing as dv
path, port = sys.argv[1], int(sys.argv[2])
rec = dv.io.MonoCameraRecording(path)
batches = []
while (b := rec.getNextEventBatch()) is not None:
    batches.append(b)
stream = dv.io.Stream.EventStream(0, "events", "DVXplorer_bench", rec.getEventResolution())
writer = dv.io.NetworkWriter("127.0.0.1", port, stream)
print(f"listening {time.monotonic():.6f}", flush=True)
while writer.getClientCount() == 0:
    time.sleep(0.0005)
t0, start, n, late = batches[0].getLowestTime(), time.monotonic(), 0, 0.0
for b in batches:
    due = start + (b.getLowestTime() - t0) / 1e6
    now = time.monotonic()
    if now < due:
        time.sleep(due - now)
    else:
        late = max(late, now - due)
    writer.writeEvents(b)
    n += b.size()
print(f"sent {n} {late * 1e3:.2f}", flush=True)
sys.stdin.read()
"""

#: AEStream's UDP output: SPIF words (x << 16 | p << 15 | y, bit 31 set: no timestamp), one datagram per ms
UDP_PACED = """
import socket, sys, time
import numpy as np
port, seconds, rate, seed = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(seed)
per = rate // 1000
n = int(seconds * 1000)
x = rng.integers(0, 640, (n, per)).astype(np.uint32)
y = rng.integers(0, 480, (n, per)).astype(np.uint32)
p = rng.integers(0, 2, (n, per)).astype(np.uint32)
words = ((1 << 31) | (x << 16) | (p << 15) | y).astype("<u4")
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
print("ready", flush=True)
sys.stdin.readline()
start, late = time.monotonic(), 0.0
for k in range(n):
    due = start + k / 1000
    now = time.monotonic()
    if now < due:
        time.sleep(due - now)
    else:
        late = max(late, now - due)
    sock.sendto(words[k].tobytes(), ("127.0.0.1", port))
print(f"sent {n * per} {late * 1e3:.2f}", flush=True)
"""


class LineLog:
    """A file-like ``out`` for ``camera.run`` that keeps each line with the monotonic time it was written."""

    def __init__(self) -> None:
        self.lines: list[tuple[float, str]] = []
        self.cond = threading.Condition()

    def write(self, text: str) -> None:
        with self.cond:
            for part in text.splitlines():
                if part.strip():
                    self.lines.append((time.monotonic(), part.strip()))
            self.cond.notify_all()

    def flush(self) -> None:
        """Nothing buffered."""

    def wait_for(self, needle: str, after: int = 0, timeout_s: float = 20.0) -> tuple[int, float]:
        """Index and time of the first line from ``after`` on containing ``needle``."""
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while True:
                for i in range(after, len(self.lines)):
                    if needle in self.lines[i][1]:
                        return i, self.lines[i][0]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"bridge never said {needle!r}: {self.lines[-5:]}")
                self.cond.wait(left)


def moving_hands(n: int, seed: int, duration_us: int) -> np.ndarray:
    """Events around three blobs circling a 640x480 sensor (what a hand gesture looks like to the daemon)."""
    rng = np.random.default_rng(seed)
    ev = random_events(n, seed=seed, width=SENSOR[0], height=SENSOR[1], duration_us=duration_us)
    phase = ev["t"] / 1e6 * 2 * np.pi
    blob = rng.integers(1, 4, n)
    ev["x"] = np.clip(320 + 150 * np.cos(phase * blob) + rng.normal(0, 12, n), 0, SENSOR[0] - 1).astype(np.int16)
    ev["y"] = np.clip(240 + 150 * np.sin(phase * blob) + rng.normal(0, 12, n), 0, SENSOR[1] - 1).astype(np.int16)
    return ev


def start_child(script: str, *args: str) -> tuple[subprocess.Popen[str], list[str], threading.Event]:
    """A source process; its stdout lines land in a list, ``ready`` is set at each new line."""
    proc = subprocess.Popen([sys.executable, "-c", script, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    new = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.strip())
            new.set()

    threading.Thread(target=read, daemon=True).start()
    return proc, lines, new


def wait_line(lines: list[str], new: threading.Event, prefix: str, timeout_s: float = 60.0) -> str:
    """The first line starting with ``prefix`` (waiting on the reader thread's signal)."""
    deadline = time.monotonic() + timeout_s
    while True:
        for line in lines:
            if line.startswith(prefix):
                return line
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"source never said {prefix!r}: {lines[-5:]}")
        new.wait(left)
        new.clear()


class Bridge:
    """``camera.run`` in a thread of this process, stopped through its ``stop`` callable."""

    def __init__(self, d: DaemonProcess, source: str, *extra: str) -> None:
        argv = [source, "--input", d.input_endpoint, "--output", d.output_endpoint, "--stream", "bench", "--quiet",
                "--measure-latency", *extra]  # fmt: skip
        self.args = camera.build_parser().parse_args(argv)
        self.log = LineLog()
        self.stopping = threading.Event()
        self.stats: camera.BridgeStats | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.stats = camera.run(self.args, out=self.log, stop=self.stopping.is_set)
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def stop(self) -> camera.BridgeStats:
        self.stopping.set()
        self.thread.join(30)
        if self.error is not None:
            raise self.error
        assert self.stats is not None
        return self.stats


def cpu_s() -> float:
    """CPU seconds of this process (all threads)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def daemon_events(d: DaemonProcess, stream: str, at_least: int, timeout_s: float = 15.0) -> dict[str, Any]:
    """The stream's counters from the first heartbeat that shows ``at_least`` events (or the last one seen)."""
    last: dict[str, Any] = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            body = d.wait_status(timeout_s=max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            break
        last = body["streams"].get(stream, last)
        if last.get("events", 0) >= at_least:
            break
    return last


def dropped_total(counters: dict[str, Any]) -> int:
    dropped = counters.get("dropped", {})
    return int(sum(dropped.values())) if isinstance(dropped, dict) else int(dropped or 0)


def paced_run(d: DaemonProcess, kind: str, tmp: Path, seconds: float) -> dict[str, Any]:
    """One 1 M events/s run through the bridge: throughput, CPU, latency, losses."""
    n = int(RATE * seconds)
    if kind == "dv":
        from s2gesture.models.datasets import aedat4

        path = aedat4.write_aedat4(tmp / "paced.aedat4", moving_hands(n, 3, int(seconds * 1e6)), SENSOR, packet_events=RATE // 1000)
        port = free_tcp_port()
        src, lines, new = start_child(DV_PACED, str(path), str(port))
        wait_line(lines, new, "listening")
        bridge = Bridge(d, f"dv://127.0.0.1:{port}")
    else:
        port = free_tcp_port()
        src, lines, new = start_child(UDP_PACED, str(port), str(seconds), str(RATE), "5")
        wait_line(lines, new, "ready")
        bridge = Bridge(d, f"aestream+udp://127.0.0.1:{port}", "--sensor-size", "640x480")
    bridge.log.wait_for("open, sensor")
    cpu0, wall0 = cpu_s(), time.monotonic()
    if kind == "udp":
        assert src.stdin is not None
        src.stdin.write("go\n")
        src.stdin.flush()
    sent_line = wait_line(lines, new, "sent", timeout_s=seconds * 3 + 30)
    cpu1, wall1 = cpu_s(), time.monotonic()
    sent, late_ms = int(sent_line.split()[1]), float(sent_line.split()[2])
    counters = daemon_events(d, "bench", sent)
    stats = bridge.stop()
    src.kill()
    src.wait()
    lat = np.asarray(stats.latencies_s) * 1e3
    return {
        "kind": kind, "sent": sent, "late_ms": late_ms, "in": stats.events_in, "out": stats.events_out,
        "bridge_drops": dict(stats.drops), "packets": stats.packets, "daemon_events": int(counters.get("events", 0)),
        "daemon_dropped": dropped_total(counters), "cpu": (cpu1 - cpu0) / (wall1 - wall0), "rate": stats.events_in / (wall1 - wall0),
        "p50": float(np.percentile(lat, 50)) if lat.size else float("nan"),
        "p99": float(np.percentile(lat, 99)) if lat.size else float("nan"), "n_lat": int(lat.size),
    }  # fmt: skip


def reconnect_runs(d: DaemonProcess, tmp: Path, restarts: int) -> list[dict[str, float]]:
    """Kill and restart the DV writer ``restarts`` times; how long the bridge takes to notice and to reconnect."""
    from s2gesture.models.datasets import aedat4

    path = aedat4.write_aedat4(tmp / "restart.aedat4", moving_hands(200_000, 4, 200_000), SENSOR, packet_events=1000)
    port = free_tcp_port()
    src, lines, new = start_child(DV_PACED, str(path), str(port))
    wait_line(lines, new, "listening")
    bridge = Bridge(d, f"dv://127.0.0.1:{port}")
    idx, _ = bridge.log.wait_for("open, sensor")
    out = []
    try:
        for _ in range(restarts):
            wait_line(lines, new, "sent")
            src.kill()
            killed = time.monotonic()
            src.wait()
            idx, noticed = bridge.log.wait_for("reconnecting", after=idx + 1)
            src, lines, new = start_child(DV_PACED, str(path), str(port))
            listening = float(wait_line(lines, new, "listening").split()[1])
            idx, opened = bridge.log.wait_for("open, sensor", after=idx + 1)
            out.append({"notice": noticed - killed, "reconnect": opened - listening, "outage": opened - killed})
    finally:
        bridge.stop()
        src.kill()
        src.wait()
    return out


# ------------------------------------------------------------------------------------------------ readers


def best_of(fn: Any, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls (the machine is shared: the minimum is the least disturbed)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def rosbag_library(path: Path) -> int:
    """rosbags alone: open the bag, read and deserialize every event message (no conversion)."""
    from rosbags.highlevel import AnyReader

    from s2gesture.models.datasets import rosbag

    bag = path.parent if path.suffix == ".mcap" else path
    with AnyReader([bag], default_typestore=rosbag.typestore(bag.suffix == ".bag")) as reader:
        conns = [c for c in reader.connections if c.msgtype in rosbag.EVENT_TYPES]
        n, chunks = 0, []
        for conn, _, data in reader.messages(connections=conns):
            msg = reader.deserialize(data, conn.msgtype)
            if conn.msgtype == rosbag.DVS_TYPE:
                n += len(msg.events)
            elif msg.encoding == "evt3":
                chunks.append(np.asarray(msg.events).tobytes())
            else:
                n += len(msg.events) // 8
    if chunks:  # the evt3 stream still needs decoding: expelliarmus, as our reader does
        import expelliarmus

        with tempfile.NamedTemporaryFile(suffix=".raw") as tmp:
            tmp.write(b"% evt 3.0\n% end\n" + b"".join(chunks))
            tmp.flush()
            n += len(expelliarmus.Wizard(encoding="evt3").read(tmp.name))
    return n


def reader_rows(tmp: Path, n: int, repeats: int) -> list[tuple[str, int, float, float]]:
    """(format, events, library s, ours s) per format."""
    import expelliarmus

    from s2gesture.models.datasets import load_recording, prophesee, rosbag

    rng = np.random.default_rng(9)
    ev = np.empty(n, EVENT_DTYPE)
    ev["x"], ev["y"] = rng.integers(0, SENSOR[0], n), rng.integers(0, SENSOR[1], n)
    ev["p"] = rng.integers(0, 2, n).astype(bool)
    ev["t"] = np.sort(rng.integers(0, 10_000_000, n))
    rows = []
    files = {
        "Prophesee RAW EVT 2.0": ("evt2", prophesee.write_raw(tmp / "r2.raw", ev, SENSOR, encoding="evt2")),
        "Prophesee RAW EVT 3.0": ("evt3", prophesee.write_raw(tmp / "r3.raw", ev, SENSOR, encoding="evt3")),
        "Prophesee DAT": ("dat", prophesee.write_dat(tmp / "r.dat", ev, SENSOR)),
    }
    for name, (enc, path) in files.items():
        load_recording(path)  # the compiled conversion is loaded (or compiled) once per process, not per file
        lib = best_of(lambda enc=enc, path=path: expelliarmus.Wizard(encoding=enc).read(str(path)), repeats)
        ours = best_of(lambda path=path: load_recording(path), repeats)
        rows.append((name, n, lib, ours))
    small = ev[: max(1, n // 10)]  # dvs_msgs/EventArray: one Python object per event in the library itself
    raw3 = files["Prophesee RAW EVT 3.0"][1]
    _, start = prophesee.read_header(raw3)
    bags = {
        "ROS 1 .bag, dvs_msgs/EventArray": (small, rosbag.write_bag(tmp / "dvs.bag", small, SENSOR)),
        "ROS 2 .mcap, EventPacket mono": (ev, rosbag.write_bag(tmp / "mono.mcap", ev, SENSOR, msgtype=rosbag.PACKET_TYPE)),
        "ROS 2 .mcap, EventPacket evt3": (ev, rosbag.write_bag(tmp / "evt3.mcap", ev, SENSOR, msgtype=rosbag.PACKET_TYPE,
                                                                encoding="evt3", evt3_payload=raw3.read_bytes()[start:])),
    }  # fmt: skip
    for name, (events, path) in bags.items():
        target = next(path.glob("*.mcap")) if path.is_dir() else path
        if len(load_recording(target)) != len(events) or rosbag_library(target) != len(events):
            msg = f"{name}: the readers disagree on the number of events"
            raise RuntimeError(msg)
        lib = best_of(lambda target=target: rosbag_library(target), repeats)
        ours = best_of(lambda target=target: load_recording(target), repeats)
        rows.append((name, len(events), lib, ours))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0, help="seconds of 1 M events/s per source (default 6)")
    parser.add_argument("--restarts", type=int, default=3, help="DV source restarts to time (default 3)")
    parser.add_argument("--reader-events", type=int, default=2_000_000, help="events per reader test file (default 2 M)")
    parser.add_argument("--repeats", type=int, default=5, help="timed reads per file and reader (default 5)")
    args = parser.parse_args(argv)
    from s2gesture.daemon.service import default_model_path

    model = default_model_path()
    if not model.is_file():
        print(f"bench_camera: the bundled model {model} is missing; run `make pretrained`", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with tempfile.TemporaryDirectory(prefix="s2g-bench-camera-") as tmp_name:
        tmp = Path(tmp_name)
        for sub in ("dv", "udp", "restart"):
            (tmp / sub).mkdir()
        rows = reader_rows(tmp, args.reader_events, args.repeats)
        for row in rows:
            print(f"{row[0]}: library {row[2] * 1e3:.1f} ms, ours {row[3] * 1e3:.1f} ms ({row[2] / row[3]:.2f} x)", flush=True)
        paced = []
        for kind in ("dv", "udp"):
            # a fresh daemon per source: its stream counters start at zero
            with start_daemon(tmp / kind, model, mode="live", status_interval_s=0.5) as d:
                paced.append(paced_run(d, kind, tmp, args.seconds))
            print(paced[-1], flush=True)
        with start_daemon(tmp / "restart", model, mode="live", status_interval_s=0.5) as d:
            restarts = reconnect_runs(d, tmp, args.restarts)
        print(restarts, flush=True)

    def drops(r: dict[str, Any]) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(r["bridge_drops"].items())) or "none"

    names = {"dv": "dv:// (dv-processing NetworkWriter, TCP)", "udp": "aestream+udp:// (SPIF datagrams)"}
    lines = [
        "## s2gesture camera (bridges from event sources) and recording readers",
        "",
        f"Measured by `benchmarks/bench_camera.py` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: 2 CPUs shared "
        f"by the source process, the bridge and a live daemon (bundled model, emulator backend). Each source sends "
        f"{args.seconds:g} s of a 640x480 stream at 1 M events/s in 1 ms batches, paced in real time; the bridge "
        "runs `camera.run` with its defaults (5 ms packets).",
        "",
        "| source | events/s through the bridge | bridge CPU (cores) | added latency, batch in -> packet out | "
        "sent by the source | received by the bridge | sent to the daemon | counted by the daemon | lost by the bridge |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in paced:
        lost = r["sent"] - r["out"]
        lines.append(
            f"| {names[r['kind']]} | {r['rate'] / 1e6:.3f} M | {r['cpu']:.3f} | p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms "
            f"(n={r['n_lat']}) | {r['sent']} | {r['in']} | {r['out']} | {r['daemon_events']} (daemon drops "
            f"{r['daemon_dropped']}) | {lost} (bridge drops: {drops(r)}) |"
        )
    lines += [
        "",
        "Added latency is the bridge's own work: from the moment a batch is read from the source to the moment the "
        "packet it completes is written to the daemon's socket. Events wait for their 5 ms window to close on top "
        "of that (`--packet-ms`). The source's worst lateness against its schedule: "
        + ", ".join(f"{r['kind']} {r['late_ms']:.1f} ms" for r in paced) + ".",
        "",
    ]
    notice = [r["notice"] * 1e3 for r in restarts]
    reconnect = [r["reconnect"] * 1e3 for r in restarts]
    outage = [r["outage"] * 1e3 for r in restarts]
    lines += [
        f"Reconnect after the DV source restarts ({len(restarts)} restarts: the writer process killed, then started "
        f"again on the same port): the bridge notices in median {statistics.median(notice):.0f} ms (max {max(notice):.0f}); "
        f"from the new writer listening to the bridge open again: median {statistics.median(reconnect):.0f} ms "
        f"(max {max(reconnect):.0f}); whole outage, kill -> open, including the new process's start: median "
        f"{statistics.median(outage):.0f} ms.",
        "",
        f"Reader throughput (best of {args.repeats} reads of the same file; the library alone in the same run):",
        "",
        "| format | events | library alone | our reader -> Recording | ratio (target >= 0.9 x) |",
        "|---|---|---|---|---|",
    ]
    for name, n, lib, ours in rows:
        lines.append(f"| {name} | {n} | {n / lib / 1e6:.1f} M events/s ({lib * 1e3:.1f} ms) | "
                     f"{n / ours / 1e6:.1f} M events/s ({ours * 1e3:.1f} ms) | {lib / ours:.2f} x |")  # fmt: skip
    lines += [
        "",
        "Library alone: Prophesee files, `expelliarmus.Wizard(encoding).read` (its 16-byte records); ROS bags, "
        "`rosbags` AnyReader reading and deserializing every event message (plus the expelliarmus decode of the "
        "evt3 stream). Our reader adds the header, the conversion to EVENT_DTYPE with the bounds and order checks "
        "in one compiled pass, and the validated `Recording` (daemon/events.check_events walks the events again).",
    ]
    write_section(RESULTS, lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
