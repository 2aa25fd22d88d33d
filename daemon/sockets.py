"""The daemon's ZeroMQ sockets: options, CURVE, binds that never take over what they should not, a monitor.

- The input's ZMQ_MAXMSGSIZE is a memory guard well above ``max_message_bytes``: a message over the
  configured limit but under the guard is read and counted as ``oversize`` (the connection and the
  packets behind it survive); only a frame over the guard makes ZeroMQ drop the connection.
- Every socket has a handshake timeout, so idle half-open TCP connections are closed instead of holding
  file descriptors until cameras are locked out; refused connections and failed handshakes are seen by
  a socket monitor, logged (rate-limited) and counted.
- An ipc:// bind refuses a path that is not a socket or that a live process listens on, and the socket
  files this daemon created are removed when it stops.
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import stat
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from . import wire
from .config import DaemonConfig
from .errors import S2GestureError

#: the input's ZeroMQ frame limit is this many times max_message_bytes (a memory guard, see above)
FRAME_GUARD_FACTOR = 8
#: monitor events that mean a peer could not connect
REFUSED_EVENTS: dict[int, str] = {
    zmq.EVENT_ACCEPT_FAILED: "accept_failed",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "handshake_failed",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "handshake_failed",
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "auth_failed",
}


class SocketBindError(S2GestureError):
    """An endpoint could not be bound (in use, no permission, not a socket): the service cannot start."""


def raise_fd_limit(wanted: int = 65536) -> int:
    """Raise the soft file-descriptor limit towards the hard one (every TCP peer costs one); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
    return soft


def _apply_curve(sock: zmq.Socket[Any], config: DaemonConfig) -> None:
    curve = config.curve
    if curve.server_secret_key is None:
        return
    sock.curve_server = True
    sock.curve_secretkey = curve.server_secret_key.get_secret_value().encode()
    if curve.server_public_key:
        sock.curve_publickey = curve.server_public_key.encode()


def _check_ipc_path(endpoint: str) -> None:
    """Refuse a path that is not a socket, or a socket a live process listens on (ZeroMQ would unlink it)."""
    path = endpoint[len("ipc://") :]
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        msg = f"cannot bind {endpoint}: {path} exists and is not a socket; choose another path or remove it yourself"
        raise SocketBindError(msg)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(0.5)
        probe.connect(path)
    except OSError:
        return  # a stale socket file from a process that is gone: binding replaces it
    finally:
        probe.close()
    msg = f"cannot bind {endpoint}: another process is listening there (is another s2gestured running?)"
    raise SocketBindError(msg)


def _attach(sock: zmq.Socket[Any], bind: tuple[str, ...], connect: tuple[str, ...], created: list[str]) -> None:
    for endpoint in bind:
        if endpoint.startswith("ipc://"):
            _check_ipc_path(endpoint)
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            msg = f"cannot bind {endpoint}: {exc}; is another s2gestured running there?"
            raise SocketBindError(msg) from exc
        if endpoint.startswith("ipc://"):
            created.append(endpoint[len("ipc://") :])
    for endpoint in connect:
        try:
            sock.connect(endpoint)
        except zmq.ZMQError as exc:
            msg = f"cannot connect to {endpoint}: {exc}; a connect endpoint needs a concrete host and port"
            raise SocketBindError(msg) from exc


class Sockets:
    """The input (SUB in live mode, PULL in lossless mode), the output PUB, and the input's monitor."""

    def __init__(self, ctx: zmq.Context[Any], config: DaemonConfig) -> None:
        self.ipc_paths: list[str] = []
        self.inp = ctx.socket(zmq.SUB if config.input.mode == "live" else zmq.PULL)
        self.out = ctx.socket(zmq.PUB)
        self.monitor: zmq.Socket[Any] | None = None
        handshake_ms = int(config.input.handshake_timeout_s * 1000)
        try:
            inp, out = self.inp, self.out
            inp.setsockopt(zmq.LINGER, 0)
            inp.setsockopt(zmq.MAXMSGSIZE, config.input.max_message_bytes * FRAME_GUARD_FACTOR)
            inp.setsockopt(zmq.RCVHWM, config.input.rcvhwm)
            inp.setsockopt(zmq.RECONNECT_IVL_MAX, 5000)
            inp.setsockopt(zmq.HEARTBEAT_IVL, 5000)
            inp.setsockopt(zmq.HEARTBEAT_TIMEOUT, 15000)
            inp.setsockopt(zmq.HANDSHAKE_IVL, handshake_ms)
            if config.input.mode == "live":
                inp.setsockopt(zmq.SUBSCRIBE, wire.INPUT_PREFIX.encode())
            _apply_curve(inp, config)
            # a short linger lets the final status leave without ever hanging shutdown
            out.setsockopt(zmq.LINGER, 500)
            out.setsockopt(zmq.SNDHWM, config.output.sndhwm)
            out.setsockopt(zmq.HEARTBEAT_IVL, 5000)
            out.setsockopt(zmq.HEARTBEAT_TIMEOUT, 15000)
            out.setsockopt(zmq.HANDSHAKE_IVL, handshake_ms)
            _apply_curve(out, config)
            events = 0
            for event in REFUSED_EVENTS:
                events |= event
            self.monitor = inp.get_monitor_socket(events)
            _attach(inp, config.input.bind, config.input.connect, self.ipc_paths)
            _attach(out, config.output.bind, config.output.connect, self.ipc_paths)
        except BaseException:
            # an open socket would block ctx.term() at shutdown forever
            self.close(linger_ms=0)
            raise

    def refused(self) -> list[tuple[str, str]]:
        """(kind, endpoint) of each refused connection the monitor reported since the last call."""
        seen: list[tuple[str, str]] = []
        while self.monitor is not None:
            try:
                if not self.monitor.poll(0):
                    break
                event = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.ZMQError:
                break
            kind = REFUSED_EVENTS.get(int(event["event"]))
            if kind is not None:
                endpoint = event.get("endpoint", b"")
                seen.append((kind, endpoint.decode(errors="replace") if isinstance(endpoint, bytes) else str(endpoint)))
        return seen

    def close(self, linger_ms: int | None = None) -> None:
        """Close every socket and remove the ipc socket files this daemon bound."""
        if self.monitor is not None:
            with contextlib.suppress(zmq.ZMQError):
                self.inp.disable_monitor()
            self.monitor.close(0)
            self.monitor = None
        for sock in (self.inp, self.out):
            if not sock.closed:
                sock.close(linger_ms)
        for path in self.ipc_paths:
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(os.lstat(path).st_mode):
                    os.unlink(path)
        self.ipc_paths = []


def start_authenticator(ctx: zmq.Context[Any], config: DaemonConfig) -> Any:
    """The ZAP handler with the allow-list of client public keys (only when CURVE is configured)."""
    if config.curve.server_secret_key is None:
        return None
    from zmq.auth.thread import ThreadAuthenticator

    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve_callback(domain="*", credentials_provider=_AllowList(config.curve.client_public_keys))
    return auth


class _AllowList:
    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = {k.encode() for k in keys}

    def callback(self, domain: str, key: bytes) -> bool:
        from zmq.utils import z85

        return z85.encode(key) in self.keys if len(key) == 32 else key in self.keys
