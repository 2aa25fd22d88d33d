"""What the bridge tests share: a real mosquitto, a real paho subscriber, real Cyclone DDS readers on the ROS 2
bridge's topics, a direct ZeroMQ subscriber as the reference, and the bridges as child processes.

Used by tests/test_bridges.py, tests/test_camera_to_robots.py and benchmarks/bench_bridges.py. Nothing
sleeps: every wait is on a signal (a log line, a subscription acknowledged, a DDS match) with a deadline.
"""

from __future__ import annotations

import getpass
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from daemon_helpers import DaemonProcess, free_tcp_port

from s2gesture.clients import bus, ros2
from s2gesture.daemon import wire

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None)
#: discovery over loopback unicast: the tests must not depend on (or disturb) the host's multicast network
CYCLONEDDS_LOOPBACK = (
    "<CycloneDDS><Domain id='any'><General><Interfaces><NetworkInterface name='lo'/></Interfaces>"
    "<AllowMulticast>false</AllowMulticast></General><Discovery><ParticipantIndex>auto</ParticipantIndex>"
    "<MaxAutoParticipantIndex>60</MaxAutoParticipantIndex><Peers><Peer address='127.0.0.1'/></Peers>"
    "</Discovery></Domain></CycloneDDS>"
)


class Reference:
    """A direct ZeroMQ subscriber: what the daemon published, stamped on arrival by a receiving thread."""

    def __init__(self, d: DaemonProcess, stream: str) -> None:
        self.ctx = bus.context()
        topics = (wire.gesture_topic(stream).decode(), wire.pred_topic(stream).decode())
        self.sub = bus.open_output(self.ctx, d.output_endpoint, topics=topics)
        bus.wait_for_status(self.sub, 15)
        self.stream = stream
        self.arrived: queue.Queue[tuple[float, wire.Output]] = queue.Queue()
        self.stopped = threading.Event()
        # from here on only this thread touches the socket (ZeroMQ sockets are not thread-safe)
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()

    def _receive(self) -> None:
        while not self.stopped.is_set():
            got = bus.receive(self.sub, 0.05)
            if got is not None:
                self.arrived.put((time.monotonic(), got))

    def collect(self, finals: int, timeout_s: float = 30.0) -> tuple[list[tuple[float, wire.Gesture]], list[wire.Pred]]:
        """Gestures (with arrival times) and preds of the stream until ``finals`` final decisions arrived."""
        gestures: list[tuple[float, wire.Gesture]] = []
        preds: list[wire.Pred] = []
        deadline = time.monotonic() + timeout_s
        while sum(g.final for _, g in gestures) < finals:
            try:
                t, got = self.arrived.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"the daemon published {len(gestures)} gestures, not {finals} finals, within {timeout_s} s")
            if isinstance(got, wire.Gesture):
                gestures.append((t, got))
            elif isinstance(got, wire.Pred):
                preds.append(got)
        return gestures, preds

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(5)
        self.sub.close()
        self.ctx.term()


def bridge_process(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """``s2gesture ARGS...`` as a child process, stdout and stderr together as text."""
    return subprocess.Popen(
        [sys.executable, "-m", "s2gesture.clients.cli", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})},
    )  # fmt: skip


def stop_process(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """SIGTERM (unless it already exited), then its exit code and output (killed after 15 s)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return proc.returncode, out


def percentiles(ms: list[float]) -> str:
    """p50 and p99 of ``ms`` as text."""
    return f"p50 {np.percentile(ms, 50):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms (n={len(ms)})" if ms else "n=0"


@dataclass
class Broker:
    """A mosquitto on three loopback listeners: anonymous, password, TLS (with its CA)."""

    proc: subprocess.Popen[str]
    plain: int
    password: int
    tls: int
    ca: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@contextmanager
def start_broker(tmp: Path) -> Iterator[Broker]:
    """mosquitto started from a generated config in ``tmp`` (not the system service), stopped on exit."""
    if MOSQUITTO is None:
        pytest.fail("mosquitto is not installed (apt-get install mosquitto; .ci/run installs it)")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=s2g-test-ca", cwd=tmp)
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=tmp)
    (tmp / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.crt", "-days", "1", "-extfile", "san.ext", cwd=tmp)  # fmt: skip
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(tmp / "passwd"), "robot", "s3cret pass"], check=True, timeout=30)
    (tmp / "passwd").chmod(0o600)
    plain, password, tls = free_tcp_port(), free_tcp_port(), free_tcp_port()
    (tmp / "mosquitto.conf").write_text(
        # started as root, mosquitto would switch to its own user and could not read our tmp files
        f"user {getpass.getuser()}\n"
        "per_listener_settings true\npersistence false\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
        f"listener {plain} 127.0.0.1\nallow_anonymous true\n"
        f"listener {password} 127.0.0.1\nallow_anonymous false\npassword_file {tmp / 'passwd'}\n"
        f"listener {tls} 127.0.0.1\nallow_anonymous true\ncafile {tmp / 'ca.crt'}\n"
        f"certfile {tmp / 'server.crt'}\nkeyfile {tmp / 'server.key'}\n"
    )
    proc = subprocess.Popen(
        [MOSQUITTO, "-c", str(tmp / "mosquitto.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    log: queue.Queue[str] = queue.Queue()
    stderr = proc.stderr
    assert stderr is not None
    # a thread drains its log for the whole module (a full pipe would stall the broker)
    threading.Thread(target=lambda: [log.put(line) for line in stderr], daemon=True).start()
    lines: list[str] = []
    deadline = time.monotonic() + 20
    # mosquitto logs "... running" once every listener is open: that line is the readiness signal
    while not any("running" in line for line in lines):
        try:
            lines.append(log.get(timeout=max(0.0, deadline - time.monotonic())))
        except queue.Empty:
            proc.kill()
            proc.wait()
            pytest.fail(f"mosquitto did not start within 20 s: {''.join(lines)}")
    try:
        yield Broker(proc, plain, password, tls, tmp / "ca.crt")
    finally:
        proc.terminate()
        proc.wait(10)


class Subscriber:
    """A real paho subscriber on ``prefix/#``: (arrival time, topic, payload, retained) in a queue."""

    def __init__(self, port: int, prefix: str = "s2gesture") -> None:
        import paho.mqtt.client as paho

        self.messages: queue.Queue[tuple[float, str, str, bool]] = queue.Queue()
        self.skipped: list[tuple[float, str, str, bool]] = []
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{port}-{prefix}")
        subscribed = threading.Event()
        self.client.on_message = lambda c, u, m: self.messages.put((time.monotonic(), m.topic, m.payload.decode(), m.retain))
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe(f"{prefix}/#", qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10), "the test's MQTT subscription was not acknowledged"

    def wait_for(self, topic: str, payload: str | None = None, timeout_s: float = 20.0) -> tuple[float, str, str, bool]:
        """The next message on ``topic`` (with ``payload`` when given)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                msg = self.messages.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no MQTT message on {topic} {payload or ''} within {timeout_s} s")
            if msg[1] == topic and (payload is None or msg[2] == payload):
                return msg
            self.skipped.append(msg)

    def drain(self) -> list[tuple[float, str, str, bool]]:
        """Everything received so far and not returned by wait_for."""
        out, self.skipped = self.skipped, []
        while not self.messages.empty():
            out.append(self.messages.get_nowait())
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class DdsSubscriber:
    """Real Cyclone DDS readers on the bridge's three ROS 2 topics, samples queued with arrival times."""

    def __init__(self, domain_id: int) -> None:
        from cyclonedds.core import Listener
        from cyclonedds.domain import DomainParticipant
        from cyclonedds.qos import Policy, Qos
        from cyclonedds.sub import DataReader
        from cyclonedds.topic import Topic

        types = ros2.message_types()
        qos = Qos(Policy.Reliability.Reliable(max_blocking_time=100_000_000), Policy.History.KeepLast(100))
        self.participant = DomainParticipant(domain_id)
        self.samples: dict[str, queue.Queue[tuple[float, Any]]] = {}
        self.matched_events: dict[str, threading.Event] = {}
        self.readers = []
        for topic, kind in (("rt/s2gesture/gesture_label", types.String), ("rt/s2gesture/gesture", types.Gesture),
                            ("rt/diagnostics", types.DiagnosticArray)):  # fmt: skip
            q: queue.Queue[tuple[float, Any]] = queue.Queue()

            def on_data(reader: Any, q: queue.Queue[tuple[float, Any]] = q) -> None:
                now = time.monotonic()
                for sample in reader.take(N=100):
                    q.put((now, sample))

            matched = threading.Event()

            def on_matched(reader: Any, status: Any, matched: threading.Event = matched) -> None:
                # discovery runs in Cyclone's threads: the subscription-matched status is the signal
                if status.current_count > 0:
                    matched.set()

            listener = Listener(on_data_available=on_data, on_subscription_matched=on_matched)
            reader = DataReader(self.participant, Topic(self.participant, topic, kind, qos=qos), qos=qos, listener=listener)
            self.samples[topic] = q
            self.matched_events[topic] = matched
            self.readers.append(reader)

    def next(self, topic: str, timeout_s: float = 20.0) -> tuple[float, Any]:
        """The next sample on ``topic`` with its arrival time."""
        try:
            return self.samples[topic].get(timeout=timeout_s)
        except queue.Empty:
            pytest.fail(f"no DDS sample on {topic} within {timeout_s} s")

    def matched(self, timeout_s: float = 20.0) -> None:
        """Wait until every reader is matched with the bridge's writer (reliable + volatile: only then is nothing missed)."""
        deadline = time.monotonic() + timeout_s
        for topic, event in self.matched_events.items():
            if not event.wait(max(0.0, deadline - time.monotonic())):
                pytest.fail(f"the bridge's DDS writer on {topic} was not discovered within {timeout_s} s")
