"""sd_notify against a real AF_UNIX datagram socket: the helper alone, and the daemon's whole lifecycle."""

from __future__ import annotations

import os
import signal
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_helpers import start_daemon

from s2gesture.daemon.sdnotify import Notifier
from s2gesture.daemon.testing import write_tiny_model


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """A bound AF_UNIX datagram socket at a short path (sun_path is limited to 107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="s2g") as d:
        path = os.path.join(d, "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(20.0)
        yield sock, path
        sock.close()


def _until(sock: socket.socket, needle: str) -> list[str]:
    """Datagrams received until one contains ``needle`` (socket timeout = the deadline)."""
    seen = []
    while True:
        msg = sock.recv(4096).decode()
        seen.append(msg)
        if needle in msg.splitlines():
            return seen


def test_notifier_sends_datagrams(notify_socket: tuple[socket.socket, str]) -> None:
    """Each call sends one datagram of KEY=value lines to the socket."""
    sock, path = notify_socket
    n = Notifier(path)
    assert n.enabled and n.ready("up") and n.watchdog() and n.reloading() and n.stopping()
    assert sock.recv(100) == b"READY=1\nSTATUS=up"
    assert sock.recv(100) == b"WATCHDOG=1"
    reloading = sock.recv(100).decode().splitlines()
    assert reloading[0] == "RELOADING=1" and reloading[1].startswith("MONOTONIC_USEC=") and int(reloading[1][15:]) > 0
    assert sock.recv(100) == b"STOPPING=1"
    n.close()


def test_notifier_abstract_namespace() -> None:
    """An '@name' address reaches an abstract-namespace socket."""
    name = f"s2g-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    try:
        assert Notifier("@" + name).status("hello")
        assert sock.recv(100) == b"STATUS=hello"
    finally:
        sock.close()


def test_notifier_is_a_noop_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without NOTIFY_SOCKET nothing is sent and nothing fails."""
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier()
    assert not n.enabled and not n.ready() and n.watchdog_s is None


@pytest.mark.timeout(60)
def test_daemon_lifecycle_notifications(tmp_path: Path, notify_socket: tuple[socket.socket, str]) -> None:
    """READY after loading, WATCHDOG from the loop, RELOADING then READY on SIGHUP, STOPPING on SIGTERM."""
    sock, path = notify_socket
    write_tiny_model(tmp_path / "m.nir")
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "300000"}
    with start_daemon(tmp_path, tmp_path / "m.nir", env=env) as d:
        _until(sock, "READY=1")
        _until(sock, "WATCHDOG=1")
        d.send_signal(signal.SIGHUP)
        seen = _until(sock, "READY=1")
        assert any(m.startswith("RELOADING=1\nMONOTONIC_USEC=") for m in seen)
        d.send_signal(signal.SIGTERM)
        _until(sock, "STOPPING=1")
        assert d.stop() == 0
