"""CURVE on the daemon's sockets: only allow-listed client keys get through; secrets come as credentials."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
import zmq
from daemon_helpers import random_events, recording_frames, start_daemon

from s2gesture.daemon.testing import write_tiny_model

pytestmark = pytest.mark.timeout(90)


def test_curve_admits_allowed_clients_only(tmp_path: Path) -> None:
    """With CURVE keys, an allowed client is served and a client with an unknown key never reaches the daemon."""
    write_tiny_model(tmp_path / "m.nir")
    server_pub, server_sec = zmq.curve_keypair()
    client_pub, client_sec = zmq.curve_keypair()
    intruder_pub, intruder_sec = zmq.curve_keypair()
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "curve__server_secret_key").write_bytes(server_sec)
    (creds / "curve__client_public_keys").write_bytes(client_pub + b"\n")
    env = {"CREDENTIALS_DIRECTORY": str(creds), "S2G_CURVE__SERVER_PUBLIC_KEY": server_pub.decode()}
    keys = (client_pub, client_sec, server_pub)
    with start_daemon(tmp_path, tmp_path / "m.nir", mode="lossless", env=env, curve=keys) as d:
        intruder = d.sender(curve=(intruder_pub, intruder_sec, server_pub))
        for frames in recording_frames("intruder", random_events(5_000, seed=1), 128, 128):
            # a refused handshake leaves PUSH without a peer: sending must not wait for one
            with contextlib.suppress(zmq.Again):
                intruder.send_multipart(frames, zmq.NOBLOCK)
        d.send_all(d.sender(), recording_frames("friend", random_events(20_000, seed=2, duration_us=300_000), 128, 128))
        d.recv(lambda t, b: t == "s2g/v1/gesture/friend/" and b["final"])
        status = d.wait_status()
        assert "friend" in status["streams"] and "intruder" not in status["streams"]
        assert d.stop() == 0


def test_open_bind_without_curve_is_refused_before_start(tmp_path: Path) -> None:
    """Binding a non-loopback address without CURVE keys exits 78 and says what to set."""
    write_tiny_model(tmp_path / "m.nir")
    out = subprocess.run(
        [sys.executable, "-m", "s2gesture.daemon.main", "--input-bind", "tcp://0.0.0.0:5555", "--model", str(tmp_path / "m.nir")],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 78 and "requires CURVE" in out.stderr and "curve.server_secret_key" in out.stderr


def test_ipc_path_of_a_running_daemon_is_not_taken_over(tmp_path: Path) -> None:
    """A second daemon on the same ipc paths exits 69 instead of silently stealing the first one's sockets."""
    write_tiny_model(tmp_path / "m.nir")
    with start_daemon(tmp_path, tmp_path / "m.nir", transport="ipc") as first:
        second = subprocess.run(
            [sys.executable, "-m", "s2gesture.daemon.main", "--model", str(tmp_path / "m.nir"),
             "--input-bind", first.input_endpoint, "--output-bind", first.output_endpoint, "--log-format", "json"],
            capture_output=True, text=True, timeout=60,
        )
        assert second.returncode == 69 and "another process is listening" in second.stdout
        first.wait_status(lambda b: b["state"] == "ready")
        assert first.stop() == 0
