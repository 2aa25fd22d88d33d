"""`s2gesture camera` against the real libraries and the real daemon: a dv-processing NetworkWriter streaming a
recorded file (the DV software), the `aestream` command sending real UDP packets, recordings in real time."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from daemon_helpers import DaemonProcess, free_tcp_port, start_daemon

from s2gesture.clients import camera
from s2gesture.daemon import wire
from s2gesture.daemon.events import EVENT_DTYPE
from s2gesture.daemon.testing import write_tiny_model
from s2gesture.models.datasets import aedat4, prophesee

dv = pytest.importorskip("dv_processing")
pytestmark = pytest.mark.timeout(90)

SENSOR = (640, 480)  # a DVXplorer

#: the DV software: stream a recorded AEDAT4 file through a NetworkWriter once a client is connected,
#: then keep serving until killed (a separate process: the writer must outlive nothing of ours)
DV_SERVER = """
import sys, time, dv_processing as dv
path, port = sys.argv[1], int(sys.argv[2])
rec = dv.io.MonoCameraRecording(path)
stream = dv.io.Stream.EventStream(0, "events", rec.getCameraName(), rec.getEventResolution())
writer = dv.io.NetworkWriter("127.0.0.1", port, stream)
print("listening", flush=True)
while writer.getClientCount() == 0:
    time.sleep(0.001)
while (batch := rec.getNextEventBatch()) is not None:
    writer.writeEvents(batch)
print("sent", flush=True)
sys.stdin.read()
"""


def _events(n: int, seed: int, t0: int, duration_us: int = 600_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ev = np.empty(n, dtype=EVENT_DTYPE)
    ev["x"] = rng.integers(0, SENSOR[0], n)
    ev["y"] = rng.integers(0, SENSOR[1], n)
    ev["p"] = rng.integers(0, 2, n).astype(bool)
    ev["t"] = t0 + np.sort(rng.integers(0, duration_us, n))
    return ev


class Lines:
    """A child's stdout or stderr lines, read by a thread so the test waits with a deadline."""

    def __init__(self, stream) -> None:  # type: ignore[no-untyped-def]
        self.q: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=lambda: [self.q.put(line) for line in stream], daemon=True).start()

    def wait_for(self, needle: str, timeout_s: float = 20.0) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self.q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no line with {needle!r}; seen {self.seen[-10:]}") from None
            self.seen.append(line)
            if needle in line:
                return line


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    model = tmp_path_factory.mktemp("model") / "tiny.nir"
    write_tiny_model(model, seed=0)
    with start_daemon(tmp_path_factory.mktemp("daemon"), model, mode="lossless") as d:
        yield d


def _dv_server(path: Path, port: int) -> tuple[subprocess.Popen[str], Lines]:
    proc = subprocess.Popen([sys.executable, "-c", DV_SERVER, str(path), str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lines = Lines(proc.stdout)
    lines.wait_for("listening")
    return proc, lines


def _bridge(d: DaemonProcess, source: str, stream: str, *extra: str) -> tuple[subprocess.Popen[str], Lines]:
    cmd = [sys.executable, "-m", "s2gesture.clients.camera", source, "--input", d.input_endpoint, "--output", d.output_endpoint,
           "--stream", stream, "--quiet", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return proc, Lines(proc.stderr)


def _stream_events(d: DaemonProcess, stream: str, n: int) -> dict:
    return d.wait_status(lambda b: b["streams"].get(stream, {}).get("events", 0) >= n, timeout_s=30)


def _stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(20)


def test_dv_network_stream_reaches_the_daemon_and_sigterm_sends_eos(daemon: DaemonProcess, tmp_path: Path) -> None:
    """Every event of a DVXplorer-sized recording streamed by a dv NetworkWriter is counted by the daemon; SIGTERM closes the segment."""
    ev = _events(60_000, seed=1, t0=1_700_000_000_000_000)
    path = aedat4.write_aedat4(tmp_path / "rec.aedat4", ev, SENSOR)
    port = free_tcp_port()
    server, server_lines = _dv_server(path, port)
    try:
        bridge, lines = _bridge(daemon, f"dv://127.0.0.1:{port}", "dvcam", "--mode", "lossless")
        lines.wait_for("open, sensor 640x480")
        server_lines.wait_for("sent")
        body = _stream_events(daemon, "dvcam", len(ev))
        assert body["streams"]["dvcam"]["events"] == len(ev)
        assert _stop(bridge) == 0
        _, final = daemon.recv(lambda t, b: t == "s2g/v1/gesture/dvcam/" and b.get("final") is True, timeout_s=20)
        assert final["segment"] == "dvcam-0001"
        summary = lines.wait_for("sent ")
        assert f"sent {len(ev)} of {len(ev)} events" in summary and "dropped: none" in summary
    finally:
        server.kill()
        server.wait()


def test_dv_source_restart_reconnects_once_announced_and_continues(daemon: DaemonProcess, tmp_path: Path) -> None:
    """When the DV writer goes away and comes back, the bridge says so once, reconnects, and both runs' events arrive in order."""
    first = _events(20_000, seed=2, t0=5_000_000)
    second = _events(20_000, seed=3, t0=1_000_000)  # a restarted DV clock: earlier than the first run
    p1 = aedat4.write_aedat4(tmp_path / "a.aedat4", first, SENSOR)
    p2 = aedat4.write_aedat4(tmp_path / "b.aedat4", second, SENSOR)
    port = free_tcp_port()
    server, server_lines = _dv_server(p1, port)
    bridge, lines = _bridge(daemon, f"dv://127.0.0.1:{port}", "restart", "--mode", "lossless")
    try:
        lines.wait_for("open, sensor")
        server_lines.wait_for("sent")
        _stream_events(daemon, "restart", len(first))
        server.kill()
        server.wait()
        lines.wait_for("reconnecting")
        _, final = daemon.recv(lambda t, b: t == "s2g/v1/gesture/restart/" and b.get("final") is True, timeout_s=20)
        assert final["segment"] == "restart-0001"
        server, server_lines = _dv_server(p2, port)
        lines.wait_for("back after")
        server_lines.wait_for("sent")
        body = _stream_events(daemon, "restart", len(first) + len(second))
        # nothing was dropped for going back in time: the second connection is shifted after the first
        assert body["streams"]["restart"]["events"] == len(first) + len(second)
        assert _stop(bridge) == 0
        summary = lines.wait_for("sent ")
        assert "1 reconnects" in summary and "dropped: none" in summary
        assert sum("retrying" in line or "reconnecting" in line for line in lines.seen) == 1
    finally:
        server.kill()
        server.wait()
        if bridge.poll() is None:
            bridge.kill()


def _lz4_copy(src: Path, dst: Path) -> Path:
    """AEStream reads LZ4-compressed AEDAT4 only: rewrite the recording with dv-processing's writer."""
    rec = dv.io.MonoCameraRecording(str(src))
    writer = dv.io.MonoCameraWriter(str(dst), dv.io.MonoCameraWriter.EventOnlyConfig("cam", rec.getEventResolution()))
    while (batch := rec.getNextEventBatch()) is not None:
        writer.writeEvents(batch)
    del writer
    return dst


def test_aestream_udp_packets_decode_to_the_recorded_events(tmp_path: Path) -> None:
    """The `aestream` command's UDP packets of a recording decode (decode_spif) to exactly its x, y and polarity."""
    import socket

    ev = _events(5_000, seed=4, t0=1_000)
    path = _lz4_copy(aedat4.write_aedat4(tmp_path / "u.aedat4", ev, SENSOR), tmp_path / "u_lz4.aedat4")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    exe = Path(sys.executable).with_name("aestream")
    proc = subprocess.run([str(exe), "input", "file", str(path), "output", "udp", "127.0.0.1", str(sock.getsockname()[1])],
                          capture_output=True, text=True, timeout=30, check=True)
    assert f"Sent a total of {len(ev)} events" in proc.stdout
    got = []
    while sum(len(g) for g in got) < len(ev):
        got.append(camera.decode_spif(np.frombuffer(sock.recv(65536), dtype="<u4"), 7))
    sock.close()
    dec = np.concatenate(got)
    for f in ("x", "y", "p"):
        np.testing.assert_array_equal(dec[f], ev[f])
    assert (dec["t"] == 7).all()  # no timestamps in AEStream's packets: the receive time


def test_aestream_udp_bridge_delivers_every_event_to_the_daemon(daemon: DaemonProcess, tmp_path: Path) -> None:
    """aestream -> UDP on loopback -> `camera aestream+udp://` -> daemon: every event counted, none dropped."""
    ev = _events(8_000, seed=5, t0=1_000)
    path = _lz4_copy(aedat4.write_aedat4(tmp_path / "v.aedat4", ev, SENSOR), tmp_path / "v_lz4.aedat4")
    port = free_tcp_port()  # a free port number; UDP on it is just as free on loopback in practice
    bridge, lines = _bridge(daemon, f"aestream+udp://127.0.0.1:{port}", "udpcam", "--sensor-size", "640x480", "--mode", "lossless")
    try:
        lines.wait_for("open, sensor 640x480")
        exe = Path(sys.executable).with_name("aestream")
        subprocess.run([str(exe), "input", "file", str(path), "output", "udp", "127.0.0.1", str(port)], capture_output=True, timeout=30, check=True)
        body = _stream_events(daemon, "udpcam", len(ev))
        assert body["streams"]["udpcam"]["events"] == len(ev)
        assert _stop(bridge) == 0
        assert "dropped: none" in lines.wait_for("sent ")
    finally:
        if bridge.poll() is None:
            bridge.kill()


def test_file_source_replays_a_prophesee_recording_in_real_time(daemon: DaemonProcess, tmp_path: Path) -> None:
    """`camera file://x.raw` paces a recording by its own clock and ends with eos: all events, one final decision."""
    ev = _events(30_000, seed=6, t0=0, duration_us=400_000)
    path = prophesee.write_raw(tmp_path / "p.raw", ev, SENSOR, encoding="evt3")
    started = time.monotonic()
    bridge, _ = _bridge(daemon, f"file://{path}", "filecam", "--mode", "lossless")
    assert bridge.wait(30) == 0
    assert time.monotonic() - started >= 0.4  # real time: not faster than the recording
    # the final decision first: waiting for a status would skip past it
    _, final = daemon.recv(lambda t, b: t == "s2g/v1/gesture/filecam/" and b.get("final") is True, timeout_s=20)
    assert final["segment"] == "filecam-0001"
    body = _stream_events(daemon, "filecam", len(ev))
    assert body["streams"]["filecam"]["events"] == len(ev)


def test_transforms_roi_flip_rotate_map_pixels_and_size() -> None:
    """ROI, then flips, then rotation: a corner pixel lands where the geometry says, and 90° swaps the size."""
    ev = np.zeros(2, dtype=EVENT_DTYPE)
    ev["x"], ev["y"] = [10, 699], [20, 5]  # the second is outside a 640-wide sensor
    drops: dict[str, int] = {}
    tf = camera.Transform((640, 480), roi=(10, 20, 100, 50), flip_x=True, rotate=90)
    out = tf.apply(ev, drops)
    assert tf.out_size == (50, 100) and drops == {"out_of_sensor": 1}
    # (10,20) -> roi (0,0) -> flip_x (99,0) -> rotate 90 cw: (H-1-y, x) = (49, 99)
    assert (int(out["x"][0]), int(out["y"][0])) == (49, 99)


def test_bad_uris_and_options_name_the_accepted_forms(capsys: pytest.CaptureFixture[str]) -> None:
    """Unknown schemes, a dv:// without a port and UDP without a sensor size are exit 2 with the fix."""
    assert camera.cli(["rtsp://cam", "--no-wait"]) == 2
    assert "dv://HOST:PORT" in capsys.readouterr().err
    assert camera.cli(["dv://127.0.0.1", "--no-wait"]) == 2
    assert "expected dv://HOST:PORT" in capsys.readouterr().err
    assert wire.MAX_SENSOR_SIDE > 0
    with pytest.raises(camera.bus.ClientError, match="--sensor-size WxH"):
        camera.UdpSource("aestream+udp://127.0.0.1:1", "127.0.0.1", 1, None).open()
