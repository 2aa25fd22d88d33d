"""``s2gesture camera SOURCE``: a bridge from a live event source to a daemon in protocol v1.

Sources, by URI (docs/cameras.md):

* ``dv://HOST:PORT`` / ``dv+unix:///path``: an event stream of iniVation's DV software or any
  ``dv_processing.io.NetworkWriter``, read with dv-processing's ``NetworkReader``;
* ``inivation://[SERIAL]``: a USB camera (DVXplorer, DAVIS, DVS128) opened with dv-processing
  (``s2gesture camera --list`` shows what is connected);
* ``aestream+udp://HOST:PORT``: AEStream's UDP (SPIF) event packets - what ``aestream ... output udp``
  sends. They are decoded here: AEStream's own Python ``UDPInput`` only accumulates a frame of counts (no
  polarity, no time) and reads at most 512 bytes of a datagram, which a gesture model cannot use;
* ``aestream://camera`` / ``aestream://prophesee``: a USB camera through the ``aestream`` command line
  (``aestream input inivation|prophesee output udp``), received as above on a loopback port;
* ``file://PATH``: any recording format :func:`s2gesture.models.datasets.detect_format` knows, paced in
  real time through the same code path.

Time: the source's own µs timestamps go on the wire unchanged (plus one constant offset per connection, so
a source that restarts its clock never sends time backwards): no re-stamping with the host clock, so no
drift. AEStream packets without timestamps get the host's monotonic receive time.

Packets cover ``--packet-ms`` of camera time and carry ``t_end``; a window is sent once an event past it
arrives, or - when the source goes quiet - after ``--packet-ms`` of wall time without ``t_end``. A source
that goes away is reopened with backoff (said once per outage); each reconnection starts a new segment.
SIGTERM or Ctrl-C flushes the last packet and sends ``eos``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from s2gesture.daemon import wire
from s2gesture.daemon.errors import S2GestureError
from s2gesture.daemon.events import EVENT_DTYPE, Events

from . import bus, replay

SCHEMES = ("dv", "dv+unix", "inivation", "aestream+udp", "aestream", "file")
#: Linux SO_RXQ_OVFL: the kernel reports datagrams it dropped on a full receive buffer
SO_RXQ_OVFL = 40
#: reconnect backoff: first wait, factor, cap (s)
BACKOFF = (0.05, 2.0, 2.0)


class SourceLostError(S2GestureError):
    """The source went away (camera unplugged, DV restarted): reopen it."""


class SourceEndedError(S2GestureError):
    """The source has no more events (end of a file): finish."""


def _require(module: str, package: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        msg = f"this source needs the '{package}' package: pip install 's2gesture[cameras]' (or pip install {package})"
        raise bus.ClientError(msg) from exc


# ------------------------------------------------------------------------------------------------ sources


@dataclass
class Source:
    """An event source: ``open()`` returns the sensor size, ``read()`` events (EVENT_DTYPE, camera µs) or None."""

    uri: str
    sensor_size: tuple[int, int] | None = None
    drops: dict[str, int] = field(default_factory=dict)

    def open(self) -> tuple[int, int]:
        raise NotImplementedError

    def read(self, timeout_s: float) -> Events | None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the source (idempotent)."""


def _from_dv(batch: Any) -> Events:
    arr = batch.numpy()
    ev = np.empty(arr.shape[0], dtype=EVENT_DTYPE)
    ev["x"], ev["y"], ev["p"], ev["t"] = arr["x"], arr["y"], arr["polarity"], arr["timestamp"]
    return ev


class DvSource(Source):
    """dv-processing input: a ``NetworkReader`` (TCP or UNIX socket) or a USB camera."""

    def __init__(self, uri: str, *, host: str = "", port: int = 0, unix: str = "", serial: str | None = None) -> None:
        super().__init__(uri)
        self.host, self.port, self.unix, self.serial = host, port, unix, serial
        self.reader: Any = None

    def open(self) -> tuple[int, int]:
        dv = _require("dv_processing", "dv-processing")
        try:
            if self.serial is not None:
                self.reader = dv.io.camera.open(self.serial) if self.serial else dv.io.camera.open()
            elif self.unix:
                self.reader = dv.io.NetworkReader(dv.Path(self.unix))
            else:
                self.reader = dv.io.NetworkReader(self.host, self.port)
        except RuntimeError as exc:
            raise SourceLostError(f"{self.uri}: {str(exc).split(' [')[0]}") from exc
        if not self.reader.isEventStreamAvailable():
            msg = f"{self.uri}: the source sends no event stream (frames or IMU only?)"
            raise bus.ClientError(msg)
        size = self.reader.getEventResolution()
        return int(size[0]), int(size[1])

    def read(self, timeout_s: float) -> Events | None:
        deadline = time.monotonic() + timeout_s
        while True:
            batch = self.reader.getNextEventBatch()
            if batch is not None:
                return _from_dv(batch)
            if not self.reader.isRunning():
                raise SourceLostError(f"{self.uri}: the stream ended")
            if time.monotonic() >= deadline:
                return None
            # dv-processing's reader has no blocking read: its own thread fills a queue we poll
            time.sleep(0.0002)

    def close(self) -> None:
        self.reader = None


def decode_spif(words: np.ndarray, receive_us: int) -> Events:
    """AEStream / SPIF UDP words -> events.

    Each event is a little-endian u32 ``x << 16 | p << 15 | y``; bit 31 set means no timestamp follows
    (time = ``receive_us``), clear means the next u32 is the event's timestamp in µs.
    """
    no_ts = (words >> 31) & 1
    if no_ts.all():
        ev_words, t = words, np.full(words.shape[0], receive_us, dtype=np.int64)
    else:
        idx, ts, i = [], [], 0
        n = words.shape[0]
        while i < n:  # mixed packets are rare (AEStream sends one kind per stream); keep it simple
            idx.append(i)
            if no_ts[i] or i + 1 >= n:
                ts.append(receive_us)
                i += 1
            else:
                ts.append(int(words[i + 1]))
                i += 2
        ev_words, t = words[idx], np.asarray(ts, dtype=np.int64)
    ev = np.empty(ev_words.shape[0], dtype=EVENT_DTYPE)
    ev["x"] = ((ev_words >> 16) & 0x7FFF).astype(np.int16)
    ev["y"] = (ev_words & 0x7FFF).astype(np.int16)
    ev["p"] = ((ev_words >> 15) & 1).astype(bool)
    ev["t"] = t
    return ev


class UdpSource(Source):
    """AEStream's UDP event packets on a bound socket (kernel drops counted with SO_RXQ_OVFL)."""

    def __init__(self, uri: str, host: str, port: int, sensor_size: tuple[int, int] | None) -> None:
        super().__init__(uri, sensor_size)
        self.host, self.port = host, port
        self.sock: socket.socket | None = None
        self._ovfl = 0
        self._ts_high = 0  # unwraps 32-bit SPIF timestamps
        self._last_ts = -1

    def open(self) -> tuple[int, int]:
        if self.sensor_size is None:
            msg = f"{self.uri}: AEStream UDP packets carry no sensor size; give --sensor-size WxH (e.g. 640x480)"
            raise bus.ClientError(msg)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        with contextlib.suppress(OSError):  # not on every kernel: then overflows go uncounted
            sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            msg = f"{self.uri}: cannot bind UDP {self.host}:{self.port} ({exc.strerror}); is another bridge on it?"
            raise bus.ClientError(msg) from exc
        sock.setblocking(False)
        self.sock = sock
        return self.sensor_size

    def read(self, timeout_s: float) -> Events | None:
        assert self.sock is not None
        ready, _, _ = select.select([self.sock], [], [], timeout_s)
        if not ready:
            return None
        parts = []
        # drain what is queued (bounded, so the packetizer runs often)
        for _ in range(256):
            try:
                data, anc, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(4))
            except BlockingIOError:
                break
            now_us = time.monotonic_ns() // 1000
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(value) >= 4:
                    total = struct.unpack("I", value[:4])[0]
                    if total > self._ovfl:
                        self.drops["udp_overflow_datagrams"] = self.drops.get("udp_overflow_datagrams", 0) + total - self._ovfl
                        self._ovfl = total
            if len(data) % 4:
                self.drops["bad_datagram"] = self.drops.get("bad_datagram", 0) + 1
                continue
            ev = decode_spif(np.frombuffer(data, dtype="<u4"), now_us)
            parts.append(ev)
        if not parts:
            return None
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class AEStreamCameraSource(UdpSource):
    """A USB camera through the ``aestream`` command line, sending UDP to us on a loopback port."""

    def __init__(self, uri: str, driver: str, sensor_size: tuple[int, int] | None) -> None:
        super().__init__(uri, "127.0.0.1", 0, sensor_size)
        self.driver = driver
        self.proc: subprocess.Popen[bytes] | None = None

    def open(self) -> tuple[int, int]:
        exe = shutil.which("aestream") or str(Path(sys.executable).with_name("aestream"))
        if not Path(exe).exists():
            msg = f"{self.uri}: needs the 'aestream' command: pip install 's2gesture[cameras]' (or pip install aestream)"
            raise bus.ClientError(msg)
        size = super().open()
        assert self.sock is not None
        port = self.sock.getsockname()[1]
        self.proc = subprocess.Popen(
            [exe, "input", self.driver, "output", "udp", "127.0.0.1", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        return size

    def read(self, timeout_s: float) -> Events | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            err = (self.proc.stderr.read() if self.proc.stderr else b"").decode(errors="replace").strip()
            raise SourceLostError(f"{self.uri}: aestream exited with {self.proc.returncode}: {err[-300:] or 'no message'}")
        return super().read(timeout_s)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self.proc = None
        super().close()


class FileSource(Source):
    """A recording in any format we read, delivered in real time as a camera would."""

    def __init__(self, uri: str, path: Path, speed: float = 1.0) -> None:
        super().__init__(uri)
        self.path, self.speed = path, speed
        self.events: Events | None = None
        self.pos = 0
        self.origin = None

    def open(self) -> tuple[int, int]:
        from s2gesture.models.datasets import load_recording

        if not self.path.exists():
            msg = f"{self.uri}: recording {self.path} does not exist"
            raise bus.ClientError(msg)
        try:
            rec = load_recording(self.path)
        except S2GestureError as exc:
            raise bus.ClientError(str(exc)) from exc
        self.events, self.pos = rec.events, 0
        self.origin: tuple[float, int] | None = None
        return rec.sensor_size

    def _now_t(self) -> int:
        """The recording time that is due now (the clock starts at the first read)."""
        assert self.events is not None
        if self.origin is None:
            self.origin = (time.monotonic(), int(self.events["t"][0]))
        if math.isinf(self.speed):
            return 1 << 62
        wall0, t0 = self.origin
        return t0 + int((time.monotonic() - wall0) * 1e6 * self.speed)

    def read(self, timeout_s: float) -> Events | None:
        assert self.events is not None
        ev = self.events
        if self.pos >= ev.shape[0]:
            raise SourceEndedError(f"{self.uri}: end of recording")
        t_next = int(ev["t"][self.pos])
        now_t = self._now_t()
        if now_t < t_next:
            # wait for the next event, as a camera would deliver it (never longer than timeout_s)
            wait = (t_next - now_t) / 1e6 / self.speed
            time.sleep(min(wait, timeout_s))
            now_t = self._now_t()
            if now_t < t_next:
                return None
        end = int(np.searchsorted(ev["t"], now_t, side="right"))
        out = ev[self.pos : end]
        self.pos = end
        return out


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``WxH`` -> (W, H)."""
    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        msg = f"--sensor-size must be WxH (e.g. 640x480), found {text!r}"
        raise bus.ClientError(msg) from None
    if not (0 < w <= wire.MAX_SENSOR_SIDE and 0 < h <= wire.MAX_SENSOR_SIDE):
        msg = f"--sensor-size {text}: sides must be 1..{wire.MAX_SENSOR_SIDE}"
        raise bus.ClientError(msg)
    return w, h


def open_source(uri: str, *, sensor_size: tuple[int, int] | None = None, speed: float = 1.0) -> Source:
    """The :class:`Source` a URI names; raises ClientError naming the accepted forms."""
    forms = "dv://HOST:PORT, dv+unix:///path, inivation://[SERIAL], aestream+udp://HOST:PORT, aestream://camera, aestream://prophesee, file://PATH"
    u = urlparse(uri)
    if u.scheme not in SCHEMES:
        msg = f"camera source {uri!r}: unknown scheme {u.scheme!r}; expected one of {forms}"
        raise bus.ClientError(msg)
    if u.scheme in ("dv", "aestream+udp"):
        try:
            host, port = u.hostname, u.port
        except ValueError:
            host, port = None, None
        if not host or not port:
            msg = f"camera source {uri!r}: expected {u.scheme}://HOST:PORT (e.g. {u.scheme}://127.0.0.1:7777)"
            raise bus.ClientError(msg)
        if u.scheme == "dv":
            return DvSource(uri, host=host, port=port)
        return UdpSource(uri, host, port, sensor_size)
    if u.scheme == "dv+unix":
        if not u.path:
            msg = f"camera source {uri!r}: expected dv+unix:///path/to/socket"
            raise bus.ClientError(msg)
        return DvSource(uri, unix=u.path)
    if u.scheme == "inivation":
        return DvSource(uri, serial=(u.netloc or u.path.strip("/")))
    if u.scheme == "aestream":
        driver = {"camera": "inivation", "inivation": "inivation", "prophesee": "prophesee"}.get(u.netloc)
        if driver is None:
            msg = f"camera source {uri!r}: expected aestream://camera (iniVation) or aestream://prophesee"
            raise bus.ClientError(msg)
        return AEStreamCameraSource(uri, driver, sensor_size)
    path = Path(u.netloc + u.path) if u.netloc else Path(u.path)
    return FileSource(uri, path, speed)


# -------------------------------------------------------------------------------------------- transforms


@dataclass(frozen=True)
class Transform:
    """Region of interest (sensor pixels), then flips, then a rotation by a multiple of 90° clockwise."""

    sensor: tuple[int, int]
    roi: tuple[int, int, int, int] | None = None
    flip_x: bool = False
    flip_y: bool = False
    rotate: int = 0

    @property
    def out_size(self) -> tuple[int, int]:
        """Sensor size after the transform."""
        w, h = (self.roi[2], self.roi[3]) if self.roi else self.sensor
        return (h, w) if self.rotate in (90, 270) else (w, h)

    def apply(self, ev: Events, drops: dict[str, int]) -> Events:
        """Transformed events; events outside the sensor or the ROI are dropped (outside the sensor counted)."""
        W, H = self.sensor
        inside = (ev["x"] >= 0) & (ev["x"] < W) & (ev["y"] >= 0) & (ev["y"] < H)
        if not inside.all():
            drops["out_of_sensor"] = drops.get("out_of_sensor", 0) + int((~inside).sum())
            ev = ev[inside]
        if self.roi is not None:
            x0, y0, w, h = self.roi
            keep = (ev["x"] >= x0) & (ev["x"] < x0 + w) & (ev["y"] >= y0) & (ev["y"] < y0 + h)
            ev = ev[keep].copy()
            ev["x"] -= x0
            ev["y"] -= y0
            W, H = w, h
        if not (self.flip_x or self.flip_y or self.rotate):
            return ev
        ev = ev.copy()
        x, y = ev["x"].copy(), ev["y"].copy()
        if self.flip_x:
            x = W - 1 - x
        if self.flip_y:
            y = H - 1 - y
        if self.rotate == 90:
            x, y = H - 1 - y, x
        elif self.rotate == 180:
            x, y = W - 1 - x, H - 1 - y
        elif self.rotate == 270:
            x, y = y, W - 1 - x
        ev["x"], ev["y"] = x, y
        return ev


def parse_roi(text: str | None, sensor: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """``X,Y,W,H`` inside ``sensor`` -> a tuple; ClientError otherwise."""
    if not text:
        return None
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        msg = f"--roi must be X,Y,W,H in pixels (e.g. 160,120,320,240), found {text!r}"
        raise bus.ClientError(msg) from None
    if x < 0 or y < 0 or w < 1 or h < 1 or x + w > sensor[0] or y + h > sensor[1]:
        msg = f"--roi {text} does not fit the {sensor[0]}x{sensor[1]} sensor of the source"
        raise bus.ClientError(msg)
    return x, y, w, h


# ------------------------------------------------------------------------------------------------ bridge


@dataclass
class BridgeStats:
    """What the bridge did: events in/out, packets, reconnects, drops by reason."""

    events_in: int = 0
    events_out: int = 0
    packets: int = 0
    segments: int = 0
    reconnects: int = 0
    drops: dict[str, int] = field(default_factory=dict)
    #: wall time (monotonic s) each packet left, with the wall time its newest event arrived (for latency)
    latencies_s: list[float] = field(default_factory=list)

    @property
    def dropped(self) -> int:
        """Events dropped by the bridge (all reasons)."""
        return sum(self.drops.values())


class Packetizer:
    """Cuts a live event stream into ``packet_us`` windows of stream time and hands them to a writer."""

    def __init__(self, writer: replay.StreamWriter, packet_us: int, stats: BridgeStats, *, measure: bool = False) -> None:
        self.writer, self.packet_us, self.stats, self.measure = writer, packet_us, stats, measure
        self.pending: list[Events] = []
        self.window_end: int | None = None
        self.last_t = -1
        self.sensor: tuple[int, int] = (1, 1)
        self.segment: str | None = None
        self.arrived_s = 0.0

    def push(self, ev: Events, arrived_s: float) -> None:
        """Add events (stream time, sorted within the batch); send every window they close."""
        if ev.shape[0] == 0:
            return
        t = ev["t"]
        if t[0] < self.last_t or np.any(t[1:] < t[:-1]):
            # a camera must not go back in time within a connection; what does is dropped and counted
            running_max = np.maximum.accumulate(np.concatenate([[self.last_t], t]))[:-1]
            keep = t >= running_max
            self.stats.drops["time_backwards"] = self.stats.drops.get("time_backwards", 0) + int((~keep).sum())
            ev, t = ev[keep], t[keep]
            if ev.shape[0] == 0:
                return
        self.last_t = int(t[-1])
        if self.window_end is None:
            self.window_end = int(t[0]) + self.packet_us
        self.arrived_s = arrived_s
        while int(t[-1]) >= self.window_end:
            cut = int(np.searchsorted(t, self.window_end, side="left"))
            self.pending.append(ev[:cut])
            self._send(self.window_end)
            ev, t = ev[cut:], t[cut:]
            # skip empty windows at once: the next packet's t_end moves the daemon's clock on
            skip = (int(t[0]) - self.window_end) // self.packet_us + 1 if len(t) else 1
            self.window_end += skip * self.packet_us
        if ev.shape[0]:
            self.pending.append(ev)

    def flush(self, t_end: int | None = None) -> None:
        """Send what is pending (without ``t_end`` unless given)."""
        if any(p.shape[0] for p in self.pending):
            self._send(t_end)

    def _send(self, t_end: int | None) -> None:
        events = np.concatenate(self.pending) if len(self.pending) > 1 else (self.pending[0] if self.pending else np.zeros(0, EVENT_DTYPE))
        self.pending = []
        base = int(events["t"][0]) if events.shape[0] else (t_end or 0)
        self.writer.write_packet(events, self.sensor, t_end_us=t_end, segment=self.segment, t_base=base)
        self.stats.packets += 1
        self.stats.events_out += events.shape[0]
        if self.measure and events.shape[0]:
            self.stats.latencies_s.append(time.monotonic() - self.arrived_s)


def _status_line(stats: BridgeStats, rate: float, state: str, out: Any) -> None:
    line = (
        f"\r{rate / 1e3:8.1f} k events/s  {stats.packets} packets  {stats.dropped} dropped  "
        f"{stats.reconnects} reconnects  daemon {state}   "
    )
    out.write(line)
    out.flush()


def run(args: argparse.Namespace, out: Any = sys.stderr, stop: Callable[[], bool] | None = None) -> BridgeStats:
    """Bridge ``args.source`` to the daemon until the source ends or ``stop()`` / SIGTERM / Ctrl-C."""
    packet_us = replay.check_packet_ms(args.packet_ms)
    source = open_source(args.source, sensor_size=parse_size(args.sensor_size), speed=args.speed)
    stats = BridgeStats()
    stopping = {"flag": False}

    def on_term(signum: int, frame: Any) -> None:
        stopping["flag"] = True

    handled = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.signal(sig, on_term) for sig in handled} if _main_thread() else {}
    ctx = bus.context()
    status_sub = None
    try:
        sender, status = replay.connect(ctx, args, stream=args.stream, mode=args.mode)
        state = status.state if status is not None else "?"
        if not args.no_wait:
            status_sub = bus.open_output(ctx, args.output, topics=(), curve=bus.curve_from_args(args))
        writer = replay.StreamWriter(sender, args.stream, packet_us=packet_us, pacer=replay.Pacer(math.inf))
        pk = Packetizer(writer, packet_us, stats, measure=args.measure_latency)
        offset = 0  # stream time = camera time + offset (constant per connection: no drift)
        outage_since: float | None = None
        backoff = BACKOFF[0]
        last_status = time.monotonic()
        window_events = 0
        connection = 0
        quiet_s = packet_us / 1e6
        last_arrival = time.monotonic()
        deadline = time.monotonic() + args.duration_s if args.duration_s else math.inf
        try:
            while not stopping["flag"] and not (stop is not None and stop()) and time.monotonic() < deadline:
                # --- (re)open
                try:
                    sensor = source.open()
                except SourceLostError as exc:
                    if outage_since is None:
                        outage_since = time.monotonic()
                        print(f"s2gesture camera: {exc}; retrying with backoff (up to {BACKOFF[2]:g} s)", file=out)
                    if args.give_up_s and time.monotonic() - outage_since > args.give_up_s:
                        msg = f"{args.source}: unavailable for {args.give_up_s:g} s ({exc}); giving up"
                        raise bus.ClientError(msg) from exc
                    time.sleep(backoff)
                    backoff = min(backoff * BACKOFF[1], BACKOFF[2])
                    continue
                if outage_since is not None and connection:
                    print(f"\ns2gesture camera: {args.source} back after {time.monotonic() - outage_since:.2f} s", file=out)
                    stats.reconnects += 1
                outage_since, backoff = None, BACKOFF[0]
                roi = parse_roi(args.roi, sensor)
                tf = Transform(sensor, roi, args.flip_x, args.flip_y, args.rotate)
                pk.sensor = tf.out_size
                print(f"s2gesture camera: {args.source} open, sensor {sensor[0]}x{sensor[1]} -> stream {args.stream!r} "
                      f"{tf.out_size[0]}x{tf.out_size[1]}", file=out, flush=True)
                connection += 1
                pk.segment = f"{args.stream}-{connection:04d}"[: wire.MAX_SEGMENT_CHARS]
                first = True
                # --- read until the source goes away or we stop
                try:
                    while not stopping["flag"] and not (stop is not None and stop()) and time.monotonic() < deadline:
                        ev = source.read(min(0.05, quiet_s))
                        now = time.monotonic()
                        if ev is not None and ev.shape[0]:
                            last_arrival = now
                            stats.events_in += ev.shape[0]
                            window_events += ev.shape[0]
                            ev = tf.apply(ev, stats.drops)
                            if first and ev.shape[0]:
                                # a source whose clock restarted continues after the stream's last time
                                if int(ev["t"][0]) + offset <= pk.last_t:
                                    offset = pk.last_t + 1 - int(ev["t"][0])
                                first = False
                            if offset:
                                ev = ev.copy()
                                ev["t"] += offset
                            pk.push(ev, now)
                        elif pk.pending and now - last_arrival >= quiet_s:
                            pk.flush()
                        if now - last_status >= 1.0:
                            if status_sub is not None:
                                while (msg := bus.receive(status_sub, 0)) is not None:
                                    if isinstance(msg, wire.Status):
                                        state = msg.state
                            for k, v in source.drops.items():
                                stats.drops[k] = v
                            if not args.quiet:
                                _status_line(stats, window_events / (now - last_status), state, out)
                            window_events, last_status = 0, now
                except SourceLostError as exc:
                    pk.flush()
                    writer.write_eos(pk.segment)
                    stats.segments += 1
                    pk.segment = None
                    outage_since = time.monotonic()
                    print(f"\ns2gesture camera: {exc}; reconnecting with backoff", file=out)
                    source.close()
                    continue
                except SourceEndedError:
                    break
            pk.flush()
            if pk.segment is not None:
                writer.write_eos(pk.segment)
                stats.segments += 1
            for k, v in source.drops.items():
                stats.drops[k] = v
        finally:
            source.close()
            sender.close()
    finally:
        if status_sub is not None:
            status_sub.close()
        ctx.term()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return stats


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def list_cameras(out: Any = sys.stdout) -> int:
    """Print the USB cameras dv-processing finds; 0 when there is at least one."""
    dv = _require("dv_processing", "dv-processing")
    found = dv.io.camera.discover()
    if not found:
        print("no iniVation camera found (is it plugged in, and are the udev rules installed?)", file=out)
        return 1
    for d in found:
        print(f"inivation://{d.serialNumber}  {d}", file=out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``s2gesture camera`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="s2gesture camera",
        description="Bridge a live event camera (or DV / AEStream stream, or a recording in real time) to an "
        "s2gestured daemon in protocol v1.",
        epilog="Sources: dv://HOST:PORT, dv+unix:///path, inivation://[SERIAL], aestream+udp://HOST:PORT, "
        "aestream://camera, aestream://prophesee, file://PATH. See docs/cameras.md.",
    )
    parser.add_argument("source", nargs="?", help="the event source URI")
    parser.add_argument("--list", action="store_true", help="list connected iniVation USB cameras and exit")
    replay.add_daemon_arguments(parser, stream="camera")
    pk = parser.add_argument_group("packets")
    pk.add_argument("--packet-ms", type=float, default=5.0, help=f"camera time per packet, {replay.MIN_PACKET_MS:g}-{replay.MAX_PACKET_MS:g} ms (default 5)")
    pk.add_argument("--mode", choices=replay.MODES, default="auto", help="lossless (PUSH), live (XPUB) or auto: what the daemon says")
    geo = parser.add_argument_group("geometry")
    geo.add_argument("--sensor-size", metavar="WxH", help="sensor size where the source does not say it (AEStream UDP)")
    geo.add_argument("--roi", metavar="X,Y,W,H", help="keep only this region of the sensor (pixels)")
    geo.add_argument("--flip-x", action="store_true", help="mirror left-right (after --roi)")
    geo.add_argument("--flip-y", action="store_true", help="mirror top-bottom (after --roi)")
    geo.add_argument("--rotate", type=int, choices=(0, 90, 180, 270), default=0, help="rotate clockwise (after the flips)")
    run_ = parser.add_argument_group("running")
    run_.add_argument("--speed", type=float, default=1.0, help="file://: event time / wall time (default 1 = real time)")
    run_.add_argument("--give-up-s", type=float, default=0.0, help="exit when the source is unavailable this long (default 0 = never)")
    run_.add_argument("--duration-s", type=float, default=0.0, help="stop after this many seconds (default 0 = until SIGTERM)")
    run_.add_argument("--measure-latency", action="store_true", help="record event-arrival -> packet-sent times (benchmarks)")
    run_.add_argument("--quiet", action="store_true", help="no live status line")
    return parser


def cli(argv: list[str] | None = None) -> int:
    """``s2gesture camera``: 0 when the source ended or we were stopped, 1 when no daemon answers, 2 on bad input."""
    args = build_parser().parse_args(argv)
    try:
        if args.list:
            return list_cameras()
        if not args.source:
            print("s2gesture camera: give a SOURCE URI (e.g. dv://127.0.0.1:7777) or --list", file=sys.stderr)
            return 2
        stats = run(args)
    except bus.NoDaemonError as exc:
        print(f"s2gesture camera: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except S2GestureError as exc:
        print(f"s2gesture camera: {exc}", file=sys.stderr)
        return 2
    drops = ", ".join(f"{k} {v}" for k, v in sorted(stats.drops.items())) or "none"
    print(
        f"\nsent {stats.events_out} of {stats.events_in} events in {stats.packets} packets, {stats.segments} segments, "
        f"{stats.reconnects} reconnects; dropped: {drops}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
