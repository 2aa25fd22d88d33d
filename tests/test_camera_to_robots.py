"""End to end on real sockets: a DV network stream of a recorded DVXplorer-sized file -> `s2gesture camera dv://`
-> the real daemon -> the `s2gesture ros2` and `s2gesture mqtt` bridges -> a Cyclone DDS subscriber and a paho
MQTT subscriber (through a real mosquitto). Every process is the real one; only the camera is a recording.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from bridge_helpers import (
    CYCLONEDDS_LOOPBACK,
    Broker,
    DdsSubscriber,
    Reference,
    Subscriber,
    bridge_process,
    start_broker,
    stop_process,
)
from daemon_helpers import DaemonProcess, free_tcp_port, random_events, start_daemon

# the DV software stand-in (a dv_processing NetworkWriter streaming a recording), shared with the camera tests
from test_camera import DV_SERVER, Lines

from s2gesture.daemon.testing import write_tiny_model
from s2gesture.models.datasets import aedat4

pytest.importorskip("dv_processing")
pytest.importorskip("cyclonedds")
pytest.importorskip("paho.mqtt")

pytestmark = pytest.mark.timeout(90)

SENSOR = (640, 480)  # a DVXplorer
STREAM = "dvx"


def _moving_hands(n: int, seed: int, t0_us: int, duration_us: int) -> np.ndarray:
    """Events around three blobs circling the 640x480 sensor: dense enough that denoising keeps them (uniform noise
    at this size is one event per pixel and is filtered away), so the tiny model has something to decide on."""
    rng = np.random.default_rng(seed)
    ev = random_events(n, seed=seed, width=SENSOR[0], height=SENSOR[1], t0_us=t0_us, duration_us=duration_us)
    phase = (ev["t"] - t0_us) / 1e6 * 2 * np.pi
    blob = rng.integers(1, 4, n)
    ev["x"] = np.clip(320 + 150 * np.cos(phase * blob) + rng.normal(0, 12, n), 0, SENSOR[0] - 1).astype(np.int16)
    ev["y"] = np.clip(240 + 150 * np.sin(phase * blob) + rng.normal(0, 12, n), 0, SENSOR[1] - 1).astype(np.int16)
    return ev


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    tmp = tmp_path_factory.mktemp("e2e")
    write_tiny_model(tmp / "tiny.nir", seed=0)
    # an eager decision policy: the tiny test model is not confident, and onsets (not only the final decision)
    # should travel through the bridges too
    eager = {"S2G_DECISION__ONSET_CONFIDENCE": "0.05", "S2G_DECISION__MIN_CHUNKS": "1"}
    with start_daemon(tmp, tmp / "tiny.nir", mode="lossless", env=eager) as d:
        yield d


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with start_broker(tmp_path_factory.mktemp("mosquitto")) as b:
        yield b


def test_dv_stream_to_ros2_and_mqtt_subscribers(daemon: DaemonProcess, broker: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gesture decisions that reach the DDS and the MQTT subscriber are exactly those the daemon published for the DV stream."""
    monkeypatch.setenv("CYCLONEDDS_URI", CYCLONEDDS_LOOPBACK)
    dds_env = {"CYCLONEDDS_URI": CYCLONEDDS_LOOPBACK}
    domain = 100 + (os.getpid() + 37) % 100  # a domain of its own, apart from test_bridges' and a real ROS graph
    events = _moving_hands(600_000, seed=11, t0_us=1_700_000_000_000_000, duration_us=3_000_000)
    recording = aedat4.write_aedat4(tmp_path / "dvxplorer.aedat4", events, SENSOR)

    dds = DdsSubscriber(domain)
    mq = Subscriber(broker.plain)
    ref = Reference(daemon, STREAM)
    ros2_bridge = bridge_process("ros2", "--output", daemon.output_endpoint, "--domain-id", str(domain), env=dds_env)
    mqtt_bridge = bridge_process("mqtt", "--output", daemon.output_endpoint, "--broker", f"mqtt://127.0.0.1:{broker.plain}",
                                 "--client-id", "e2e-bridge")  # fmt: skip
    port = free_tcp_port()
    server = subprocess.Popen([sys.executable, "-c", DV_SERVER, str(recording), str(port)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    camera: subprocess.Popen[str] | None = None
    try:
        # both bridges have heard the daemon and their subscribers are joined before the camera starts
        dds.next("rt/diagnostics", timeout_s=30)
        dds.matched()
        mq.wait_for("s2gesture/availability", "online")
        server_lines = Lines(server.stdout)
        server_lines.wait_for("listening")
        camera = subprocess.Popen(
            [sys.executable, "-m", "s2gesture.clients.cli", "camera", f"dv://127.0.0.1:{port}", "--input", daemon.input_endpoint,
             "--output", daemon.output_endpoint, "--stream", STREAM, "--mode", "lossless", "--quiet"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        camera_lines = Lines(camera.stderr)
        camera_lines.wait_for("open, sensor 640x480")
        server_lines.wait_for("sent")
        body = daemon.wait_status(lambda b: b["streams"].get(STREAM, {}).get("events", 0) >= len(events), timeout_s=30)
        assert body["streams"][STREAM]["events"] == len(events)
        camera.terminate()  # SIGTERM: the bridge flushes and sends eos, so the segment's final decision follows
        assert camera.wait(20) == 0
        gestures, _ = ref.collect(finals=1)
        labels = [dds.next("rt/s2gesture/gesture_label") for _ in gestures]
        typed = [dds.next("rt/s2gesture/gesture") for _ in gestures]
        mqtt_msgs = [mq.wait_for(f"s2gesture/{STREAM}/gesture") for _ in gestures]
    finally:
        ref.close()
        ros2_code, ros2_out = stop_process(ros2_bridge)
        mqtt_code, mqtt_out = stop_process(mqtt_bridge)
        mq.close()
        if camera is not None and camera.poll() is None:
            camera.kill()
        server.kill()
        server.wait()
    decisions = [g for _, g in gestures]
    print(f"{len(decisions)} decisions: {[(g.label, g.final) for g in decisions]}")
    assert decisions[-1].final and decisions[-1].segment == f"{STREAM}-0001"
    assert any(not g.final for g in decisions)  # onsets during the stream, not only the final decision
    assert all(g.stream == STREAM for g in decisions)
    # DDS: the label topic and the typed topic carry each decision, in order
    assert [s.data for _, s in labels] == [g.label for g in decisions]
    for g, (_, m) in zip(decisions, typed, strict=True):
        assert (m.stream, m.class_id, m.label, m.final, m.segment) == (g.stream, g.class_id, g.label, g.final, g.segment or "")
        assert m.confidence == np.float32(g.confidence)
        assert (m.t_start, m.t_end) == (-1 if g.t_start is None else g.t_start, -1 if g.t_end is None else g.t_end)
    # MQTT: the JSON body is the daemon's message (without the protocol version)
    for g, (_, _, payload, retained) in zip(decisions, mqtt_msgs, strict=True):
        expected = g.to_body()
        del expected["v"]
        assert json.loads(payload) == expected and not retained
    # and nothing else: each bridge forwarded exactly the daemon's decisions
    assert ros2_code == 0 and f"forwarded {len(decisions)} gestures" in ros2_out, ros2_out
    assert mqtt_code == 0 and f"forwarded {len(decisions)} gestures" in mqtt_out, mqtt_out
