"""The ROS 2 (Cyclone DDS) and MQTT (mosquitto) bridges against a real daemon, a real broker and real subscribers.

Every gesture the daemon publishes on ZeroMQ must come out of each bridge, in order and with the same
fields; a direct ZeroMQ subscriber in the test is the reference (and the latency baseline, printed).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from bridge_helpers import (
    CYCLONEDDS_LOOPBACK,
    Broker,
    DdsSubscriber,
    Reference,
    Subscriber,
    start_broker,
)
from bridge_helpers import bridge_process as _bridge
from bridge_helpers import percentiles as _percentiles
from bridge_helpers import stop_process as _stop
from daemon_helpers import DaemonProcess, random_events, start_daemon

from s2gesture.clients import mqtt, replay, ros2
from s2gesture.daemon import wire
from s2gesture.daemon.events import Recording
from s2gesture.daemon.testing import write_tiny_model

pytestmark = pytest.mark.timeout(120)

MSG_FILE = Path(ros2.__file__).with_name("ros2_msgs") / "s2gesture_msgs" / "msg" / "Gesture.msg"


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


# ------------------------------------------------------------------------------------------------ MQTT


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """mosquitto started for this module from a generated config (not the system service)."""
    with start_broker(tmp_path_factory.mktemp("mosquitto")) as b:
        yield b


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
