"""The ROS 2 (Cyclone DDS) and MQTT (mosquitto) bridges against a real daemon, a real broker and real subscribers.

Every gesture the daemon publishes on ZeroMQ must come out of each bridge, in order and with the same
fields; a direct ZeroMQ subscriber in the test is the reference (and the latency baseline, printed).
"""

from __future__ import annotations

import getpass
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from daemon_helpers import DaemonProcess, free_tcp_port, random_events, start_daemon

from s2gesture.clients import bus, mqtt, replay, ros2
from s2gesture.daemon import wire
from s2gesture.daemon.events import Recording
from s2gesture.daemon.testing import write_tiny_model

pytestmark = pytest.mark.timeout(120)

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None)
MSG_FILE = Path(ros2.__file__).with_name("ros2_msgs") / "s2gesture_msgs" / "msg" / "Gesture.msg"
#: discovery over loopback unicast: the tests must not depend on (or disturb) the host's multicast network
CYCLONEDDS_LOOPBACK = (
    "<CycloneDDS><Domain id='any'><General><Interfaces><NetworkInterface name='lo'/></Interfaces>"
    "<AllowMulticast>false</AllowMulticast></General><Discovery><ParticipantIndex>auto</ParticipantIndex>"
    "<MaxAutoParticipantIndex>60</MaxAutoParticipantIndex><Peers><Peer address='127.0.0.1'/></Peers>"
    "</Discovery></Domain></CycloneDDS>"
)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    tmp = tmp_path_factory.mktemp("bridges")
    write_tiny_model(tmp / "tiny.nir", seed=0)
    with start_daemon(tmp, tmp / "tiny.nir", mode="lossless") as d:
        yield d


def _recordings(n: int, seed: int) -> list[Recording]:
    # dense random events: enough survive the denoise filter for the tiny model to decide
    return [
        Recording(random_events(150_000, seed=seed + i, duration_us=600_000), (128, 128), label=i % 11, name=f"b{i}")
        for i in range(n)
    ]


def _replay(d: DaemonProcess, stream: str, recordings: list[Recording]) -> replay.ReplayStats:
    args = replay.build_parser().parse_args(
        ["--input", d.input_endpoint, "--output", d.output_endpoint, "--quiet", "--as-fast-as-possible", "--stream", stream]
    )
    return replay.run(args, recordings=recordings)


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


def _bridge(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "s2gesture.clients.cli", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})},
    )  # fmt: skip


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return proc.returncode, out


def _percentiles(ms: list[float]) -> str:
    return f"p50 {np.percentile(ms, 50):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms (n={len(ms)})" if ms else "n=0"


# ------------------------------------------------------------------------------------------------ MQTT


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


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """mosquitto started for this module from a generated config (not the system service)."""
    if MOSQUITTO is None:
        pytest.fail("mosquitto is not installed (apt-get install mosquitto; .ci/run installs it)")
    tmp = tmp_path_factory.mktemp("mosquitto")
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


def test_mqtt_bridge_forwards_every_gesture_and_rate_limits_preds(daemon: DaemonProcess, broker: Broker) -> None:
    """Each gesture reaches the MQTT subscriber as JSON equal to the daemon's message; preds are rate-limited."""
    sub = Subscriber(broker.plain)
    ref = Reference(daemon, "mq")
    bridge = _bridge("mqtt", "--output", daemon.output_endpoint, "--broker", f"mqtt://127.0.0.1:{broker.plain}",
                     "--pred-rate", "2", "--client-id", "bridge-main")  # fmt: skip
    try:
        # online means the bridge heard the daemon's heartbeat: its subscription is joined
        sub.wait_for("s2gesture/availability", "online")
        started = time.monotonic()
        _replay(daemon, "mq", _recordings(2, seed=10))
        gestures, preds = ref.collect(finals=2)
        got = [sub.wait_for("s2gesture/mq/gesture") for _ in gestures]
        elapsed = time.monotonic() - started
        rest = sub.drain()
    finally:
        ref.close()
        code, out = _stop(bridge)
    for (_, expected), (_, _, payload, retained) in zip(gestures, got, strict=True):
        body = expected.to_body()
        del body["v"]
        assert json.loads(payload) == body and not retained
    mqtt_preds = [m for m in rest if m[1] == "s2gesture/mq/pred"]
    print(f"preds: daemon {len(preds)}, forwarded {len(mqtt_preds)} at --pred-rate 2 in {elapsed:.1f} s")
    assert 1 <= len(mqtt_preds) <= 1 + 2 * elapsed and len(mqtt_preds) < len(preds)
    added = [(t_mqtt - t_zmq) * 1e3 for (t_zmq, _), (t_mqtt, *_) in zip(gestures, got, strict=True)]
    print(f"gesture -> MQTT subscriber, added over the direct ZeroMQ subscriber: {_percentiles(added)}")
    assert code == 0, out
    assert f"forwarded {len(gestures)} gestures" in out
    # a clean exit says offline (retained) before disconnecting
    sub.wait_for("s2gesture/availability", "offline")
    sub.close()


def test_mqtt_last_will_says_offline_when_the_bridge_dies(daemon: DaemonProcess, broker: Broker) -> None:
    """A killed bridge cannot say goodbye: the broker publishes its last will, a retained 'offline'."""
    sub = Subscriber(broker.plain, prefix="willtest")
    bridge = _bridge("mqtt", "--output", daemon.output_endpoint, "--broker", f"mqtt://127.0.0.1:{broker.plain}",
                     "--prefix", "willtest")  # fmt: skip
    try:
        sub.wait_for("willtest/availability", "online")
        bridge.kill()
        bridge.wait(10)
        _, _, payload, _ = sub.wait_for("willtest/availability")
        assert payload == "offline"
    finally:
        _stop(bridge)
    # retained: a dashboard connecting now learns it at once
    late = Subscriber(broker.plain, prefix="willtest")
    _, _, payload, retained = late.wait_for("willtest/availability")
    assert payload == "offline" and retained
    late.close()
    sub.close()


def test_mqtt_username_password_and_tls(daemon: DaemonProcess, broker: Broker, tmp_path: Path) -> None:
    """The right password and a TLS broker verified by its CA connect; a wrong password or no CA exit 2, named."""
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text("s3cret pass\n")
    bad.write_text("guess\n")
    common = ["--output", daemon.output_endpoint, "--max-seconds", "1", "--timeout", "10"]
    ok = _bridge("mqtt", *common, "--broker", f"mqtt://127.0.0.1:{broker.password}", "--username", "robot", "--password-file", str(good))
    code, out = _stop_after_exit(ok)
    assert code == 0 and "connected to mqtt://127.0.0.1" in out, out
    refused = _bridge("mqtt", *common, "--broker", f"mqtt://127.0.0.1:{broker.password}", "--username", "robot", "--password-file", str(bad))
    code, out = _stop_after_exit(refused)
    assert code == 2 and "did not accept the connection" in out and "--password-file" in out and "guess" not in out
    tls = _bridge("mqtt", *common, "--broker", f"mqtts://127.0.0.1:{broker.tls}", "--ca-file", str(broker.ca))
    code, out = _stop_after_exit(tls)
    assert code == 0 and "connected to mqtts://127.0.0.1" in out, out
    untrusted = _bridge("mqtt", *common, "--broker", f"mqtts://127.0.0.1:{broker.tls}")
    code, out = _stop_after_exit(untrusted)
    assert code == 2 and "cannot reach the MQTT broker" in out and "Traceback" not in out


def _stop_after_exit(proc: subprocess.Popen[str]) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=60)
    return proc.returncode, out


def test_mqtt_forwarder_tracks_the_heartbeat_and_state() -> None:
    """Online at the first heartbeat, state retained on change only, offline after heartbeat_timeout_s of silence."""
    fw = mqtt.Forwarder(heartbeat_timeout_s=3.0)
    ready = wire.Status.from_body({"v": 1, "state": "ready"})
    first = fw.on_message(ready, 10.0)
    assert ("s2gesture/availability", "online", 1, True) in first and ("s2gesture/state", "ready", 1, True) in first
    assert fw.on_message(ready, 11.0) == []
    degraded = fw.on_message(wire.Status.from_body({"v": 1, "state": "degraded"}), 12.0)
    assert degraded == [("s2gesture/state", "degraded", 1, True)]
    assert fw.on_tick(14.9) == []
    assert fw.on_tick(15.1) == [("s2gesture/availability", "offline", 1, True)]
    assert fw.on_tick(20.0) == []


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--broker", "http://x"], "mqtt://HOST[:PORT]"),
        (["--prefix", "a/#"], "wildcards"),
        (["--qos", "3"], "--qos must be 0, 1 or 2"),
        (["--password-file", "/nonexistent/pw"], "--password-file /nonexistent/pw"),
        (["--broker", "mqtt://127.0.0.1:1", "--timeout", "1"], "cannot reach the MQTT broker"),
    ],
)
def test_mqtt_bad_options_are_named(args: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Bad broker URLs, prefixes, QoS, password files and an absent broker exit 2 with the fix, no traceback."""
    assert mqtt.cli(args) == 2
    assert needle in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------- ROS 2


def _msg_fields(path: Path) -> list[tuple[str, str]]:
    rows = [line.split("#")[0].split() for line in path.read_text().splitlines()]
    return [(r[1], r[0]) for r in rows if len(r) == 2]


def test_shipped_msg_matches_the_wire_layout_of_the_bridge() -> None:
    """Gesture.msg lists the same fields, in the same order and of the same types, as the bridge's DDS struct."""
    from cyclonedds.idl import types as t

    types = ros2.message_types()
    idl = {t.int32: "int32", t.int64: "int64", t.float32: "float32", bool: "bool", str: "string", types.Time: "builtin_interfaces/Time"}
    hints = types.Gesture.__annotations__
    bridge = [(f.name, idl[hints[f.name]]) for f in fields(types.Gesture)]
    assert _msg_fields(MSG_FILE) == bridge
    package = (MSG_FILE.parent.parent / "package.xml").read_text()
    assert "<name>s2gesture_msgs</name>" in package and "builtin_interfaces" in package
    assert '"msg/Gesture.msg"' in (MSG_FILE.parent.parent / "CMakeLists.txt").read_text()


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


@pytest.fixture
def dds_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Loopback-only Cyclone DDS configuration for this process and the bridge."""
    monkeypatch.setenv("CYCLONEDDS_URI", CYCLONEDDS_LOOPBACK)
    return {"CYCLONEDDS_URI": CYCLONEDDS_LOOPBACK}


def test_ros2_bridge_publishes_labels_typed_gestures_and_diagnostics(daemon: DaemonProcess, dds_env: dict[str, str]) -> None:
    """A Cyclone DDS subscriber gets every gesture as String and s2gesture_msgs/Gesture, and the status as diagnostics."""
    domain = 100 + os.getpid() % 100  # a domain of its own: parallel runs and a real ROS graph stay apart
    dds = DdsSubscriber(domain)
    ref = Reference(daemon, "ros")
    bridge = _bridge("ros2", "--output", daemon.output_endpoint, "--domain-id", str(domain), env=dds_env)
    try:
        # a diagnostics sample proves the bridge heard the daemon and DDS discovery is done
        _, diag = dds.next("rt/diagnostics", timeout_s=30)
        dds.matched()
        _replay(daemon, "ros", _recordings(2, seed=20))
        gestures, _ = ref.collect(finals=2)
        labels = [dds.next("rt/s2gesture/gesture_label") for _ in gestures]
        typed = [dds.next("rt/s2gesture/gesture") for _ in gestures]
    finally:
        ref.close()
        code, out = _stop(bridge)
    assert code == 0, out
    assert [s.data for _, s in labels] == [g.label for _, g in gestures]
    wall_now = time.time()
    for (_, g), (_, m) in zip(gestures, typed, strict=True):
        assert (m.stream, m.class_id, m.label, m.final, m.segment) == (g.stream, g.class_id, g.label, g.final, g.segment or "")
        assert m.confidence == np.float32(g.confidence)
        assert (m.t_start, m.t_end) == (-1 if g.t_start is None else g.t_start, -1 if g.t_end is None else g.t_end)
        assert 0 <= wall_now - (m.stamp.sec + m.stamp.nanosec * 1e-9) < 60
    main = diag.status[0]
    assert main.name == "s2gestured" and main.level == ros2.OK and main.hardware_id == "emulator"
    values = {kv.key: kv.value for kv in main.values}
    assert values["state"] == "ready" and values["backend"] == "emulator" and values["mode"] == "lossless"
    added = [(t_dds - t_zmq) * 1e3 for (t_zmq, _), (t_dds, _) in zip(gestures, typed, strict=True)]
    print(f"gesture -> DDS subscriber, added over the direct ZeroMQ subscriber: {_percentiles(added)}")
    assert re.search(rf"forwarded {len(gestures)} gestures", out)


def test_ros2_diagnostics_levels_and_stale() -> None:
    """Ready is OK, degraded is ERROR with the backend's error in the message, a lost heartbeat is STALE; streams get their own status."""
    types = ros2.message_types()
    body = {"v": 1, "state": "degraded", "backend": "emulator", "error": "spike buffer overflow",
            "streams": {"cam0": {"packets": 10, "dropped": {"lag": 2}}}}  # fmt: skip
    arr = ros2.diagnostics(types, wire.Status.from_body(body), 1_700_000_000_123_456_789)
    assert arr.header.stamp.sec == 1_700_000_000 and arr.header.stamp.nanosec == 123_456_789
    assert arr.status[0].level == ros2.ERROR and arr.status[0].message == "degraded: spike buffer overflow"
    stream = arr.status[1]
    assert stream.name == "s2gestured: stream cam0" and stream.level == ros2.WARN
    assert {kv.key: kv.value for kv in stream.values}["dropped.lag"] == "2"
    ok = ros2.diagnostics(types, wire.Status.from_body({"v": 1, "state": "ready"}), 0)
    assert ok.status[0].level == ros2.OK
    stale = ros2.diagnostics(types, None, 0, stale_s=4.2)
    assert stale.status[0].level == ros2.STALE and "4.2 s" in stale.status[0].message


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["--prefix", "s2gesture"], "expected a ROS 2 name"), (["--domain-id", "300"], "0-232"), (["--depth", "0"], "--depth")],
)
def test_ros2_bad_options_are_named(args: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A prefix without a leading slash, a domain outside ROS 2's range or a zero depth exit 2 with the rule."""
    assert ros2.cli(args) == 2
    assert needle in capsys.readouterr().err
