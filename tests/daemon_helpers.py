"""Start the real ``s2gestured`` as a subprocess on free loopback ports (or short ipc paths) and talk to it.

Used by the daemon's and the clients' process-level tests. Nothing sleeps: every wait is on a message
(the status heartbeat, a subscription arriving on an XPUB) with a deadline.

    with start_daemon(tmp_path, model_path, mode="lossless") as d:
        sender = d.sender()
        for frames in recording_frames("cam0", events, 128, 128): sender.send_multipart(frames)
        topic, body = d.recv(lambda t, b: t.startswith("s2g/v1/gesture/") and b["final"])
        assert d.stop() == 0
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from s2gesture.daemon import wire
from s2gesture.daemon.events import EVENT_DTYPE
from s2gesture.daemon.testing import RunningDaemon, run_daemon
from s2gesture.daemon.testing import daemon_command as daemon_command  # re-exported for the tests

Predicate = Callable[[str, dict[str, Any]], bool]


def free_tcp_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def random_events(
    n: int, *, seed: int = 0, width: int = 128, height: int = 128, t0_us: int = 0, duration_us: int = 1_000_000
) -> np.ndarray:
    """``n`` uniformly random, time-sorted events (EVENT_DTYPE) over ``duration_us``."""
    rng = np.random.default_rng(seed)
    ev = np.empty(n, dtype=EVENT_DTYPE)
    ev["x"] = rng.integers(0, width, n)
    ev["y"] = rng.integers(0, height, n)
    ev["p"] = rng.integers(0, 2, n).astype(bool)
    ev["t"] = t0_us + np.sort(rng.integers(0, duration_us, n))
    return ev


def lamp_events(n: int, *, seed: int, duration_us: int) -> np.ndarray:
    """A flickering lamp: ``n`` OFF events in the top-left 64x64 quadrant of a 128x128 camera (valid, dense)."""
    rng = np.random.default_rng(seed)
    ev = np.empty(n, dtype=EVENT_DTYPE)
    ev["x"], ev["y"], ev["p"] = rng.integers(0, 64, n), rng.integers(0, 64, n), 0
    ev["t"] = np.sort(rng.integers(0, duration_us, n))
    return ev


def interleave(*streams: list[list[bytes]]) -> list[list[bytes]]:
    """The messages of several streams in turn, as cameras sending at once would."""
    out: list[list[bytes]] = []
    for i in range(max(len(s) for s in streams)):
        out += [s[i] for s in streams if i < len(s)]
    return out


def recording_frames(
    stream: str,
    events: np.ndarray,
    width: int,
    height: int,
    *,
    packet_us: int = 10_000,
    segment: str | None = None,
    seq0: int = 0,
    eos: bool = True,
) -> Iterator[list[bytes]]:
    """Protocol v1 messages of one recording: packets of ``packet_us`` (with t_end), then eos."""
    t = events["t"]
    seq = seq0
    if len(events):
        t0 = int(t[0])
        t_last = int(t[-1])
        edges = np.arange(t0, t_last + packet_us + 1, packet_us)
        cuts = np.searchsorted(t, edges)
        for k in range(len(edges) - 1):
            part = events[cuts[k] : cuts[k + 1]]
            yield wire.encode_events(stream, seq, width, height, part, t_end=int(edges[k + 1]), segment=segment)
            seq += 1
    if eos:
        yield wire.encode_eos(stream, seq, segment=segment)


@dataclass
class DaemonProcess:
    """A running ``s2gestured`` with a SUB socket on its output."""

    proc: subprocess.Popen[bytes]
    input_endpoint: str
    output_endpoint: str
    mode: str
    log_path: Path
    ctx: zmq.Context[Any] = field(default_factory=zmq.Context)
    sub: zmq.Socket[Any] | None = None
    #: (client public, client secret, server public) Z85 keys when the daemon runs CURVE
    curve: tuple[bytes, bytes, bytes] | None = None
    _senders: list[zmq.Socket[Any]] = field(default_factory=list)

    def connect_output(self) -> None:
        """Subscribe to every output topic."""
        self.sub = self.ctx.socket(zmq.SUB)
        self.apply_curve(self.sub)
        self.sub.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.RCVHWM, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, wire.OUTPUT_PREFIX.encode())
        self.sub.connect(self.output_endpoint)

    def apply_curve(self, sock: zmq.Socket[Any], keys: tuple[bytes, bytes, bytes] | None = None) -> None:
        """Make ``sock`` a CURVE client with ``keys`` (default: the daemon's allowed test client)."""
        keys = keys or self.curve
        if keys is not None:
            sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = keys

    def recv(self, predicate: Predicate | None = None, timeout_s: float = 10.0) -> tuple[str, dict[str, Any]]:
        """The next output message matching ``predicate``; fails after ``timeout_s`` or if the daemon died."""
        assert self.sub is not None
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no matching message within {timeout_s} s\n{self.log_tail()}")
            if self.sub.poll(int(min(left, 0.2) * 1000)):
                topic, body = wire.decode_output(self.sub.recv_multipart())
                if predicate is None or predicate(topic, body):
                    return topic, body
            elif self.proc.poll() is not None:
                raise RuntimeError(f"s2gestured exited with {self.proc.returncode}\n{self.log_tail()}")

    def wait_status(self, predicate: Callable[[dict[str, Any]], bool] | None = None, timeout_s: float = 15.0) -> dict[str, Any]:
        """The next status heartbeat matching ``predicate`` (default: any)."""
        _, body = self.recv(
            lambda t, b: t == wire.STATUS_TOPIC and (predicate is None or predicate(b)), timeout_s=timeout_s
        )
        return body

    def collect(self, predicate: Predicate, until: Predicate, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """Bodies of messages matching ``predicate`` until one matching ``until`` (included if it matches)."""
        out = []
        while True:
            topic, body = self.recv(lambda t, b: predicate(t, b) or until(t, b), timeout_s=timeout_s)
            if predicate(topic, body):
                out.append(body)
            if until(topic, body):
                return out

    def sender(self, timeout_s: float = 10.0, curve: tuple[bytes, bytes, bytes] | None = None) -> zmq.Socket[Any]:
        """A socket to send input on: PUSH (lossless) or an XPUB that has seen the daemon's subscription (live)."""
        if self.mode == "lossless":
            sock = self.ctx.socket(zmq.PUSH)
            self.apply_curve(sock, curve)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(self.input_endpoint)
        else:
            sock = self.ctx.socket(zmq.XPUB)
            self.apply_curve(sock, curve)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, 0)
            sock.connect(self.input_endpoint)
            # the daemon's SUB announces its subscription: only then is nothing lost (no sleep needed)
            if not sock.poll(int(timeout_s * 1000)):
                raise TimeoutError(f"the daemon did not subscribe within {timeout_s} s\n{self.log_tail()}")
            sock.recv()
        self._senders.append(sock)
        return sock

    def send_all(self, sock: zmq.Socket[Any], messages: Iterator[list[bytes]] | Sequence[list[bytes]]) -> int:
        """Send every message; returns how many."""
        n = 0
        for frames in messages:
            sock.send_multipart(frames)
            n += 1
        return n

    def send_signal(self, signum: int) -> None:
        """Send a signal to the daemon."""
        self.proc.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM, timeout_s: float = 15.0) -> int:
        """Send ``signum`` and return the exit code (kills and fails if it does not exit in time)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise TimeoutError(f"s2gestured did not exit within {timeout_s} s\n{self.log_tail()}") from None
        return int(self.proc.returncode)

    def log_tail(self, n: int = 40) -> str:
        """The last lines of the daemon's stdout+stderr."""
        return RunningDaemon(self.proc, self.input_endpoint, self.output_endpoint, self.log_path).log_tail(n)

    def close(self) -> None:
        """Stop the daemon if still running and close the sockets (linger 0)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for sock in [*self._senders, self.sub]:
            if sock is not None:
                sock.close(0)
        self.ctx.term()

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()




def start_daemon(
    tmp_path: Path,
    model_path: str | Path,
    *,
    mode: str = "live",
    transport: str = "tcp",
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    status_interval_s: float = 0.1,
    wait_ready: bool = True,
    timeout_s: float = 30.0,
    curve: tuple[bytes, bytes, bytes] | None = None,
) -> DaemonProcess:
    """Start ``s2gestured`` on free loopback ports (or ipc paths under ``tmp_path``) and wait for its heartbeat."""
    if transport == "tcp":
        inp = f"tcp://127.0.0.1:{free_tcp_port()}"
        out = f"tcp://127.0.0.1:{free_tcp_port()}"
    else:
        inp, out = f"ipc://{tmp_path}/in.sock", f"ipc://{tmp_path}/out.sock"
    log_path = tmp_path / "s2gestured.log"
    full_env = {"S2G_LOG__FORMAT": "json", **(env or {})}
    running = run_daemon(
        ["--mode", mode, "--input-bind", inp, "--output-bind", out, "--model", str(model_path),
         "--status-interval", str(status_interval_s), *args],
        input=inp, output=out, log_path=log_path, env=full_env,
    )
    d = DaemonProcess(running.proc, inp, out, mode, log_path, curve=curve)
    d.connect_output()
    if wait_ready:
        try:
            d.wait_status(lambda b: b["state"] in ("ready", "degraded"), timeout_s=timeout_s)
        except BaseException:
            d.close()
            raise
    return d
