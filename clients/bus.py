"""Client-side ZeroMQ helpers shared by replay, listen, status, robot, eval and demo.

How a client knows the daemon is there, without sleeping (ZeroMQ's slow-joiner problem):

* **Consumers** (listen, status, robot, eval) connect a SUB to the daemon's output and wait for the first
  ``s2g/v1/status/`` heartbeat (:func:`wait_for_status`). Its arrival proves two things at once: a daemon
  is alive, and *our* subscription has reached its PUB, so nothing published from then on is missed.
* **Senders** (replay, eval) must also know that what they send will arrive:

  - lossless mode (the daemon binds PULL, we connect PUSH): ``ZMQ_IMMEDIATE`` makes the PUSH queue only to
    completed connections, so ``POLLOUT`` becomes true exactly when a PULL peer has accepted us, and a full
    pipe blocks us (backpressure) instead of dropping. Nothing is lost and nothing queues up for a daemon
    that is not there.
  - live mode (the daemon binds SUB, we connect): we connect an XPUB instead of a PUB. An XPUB receives the
    peer's subscription as a message (``b"\\x01" + prefix``); when the daemon's ``dvs/v1/`` subscription
    arrives, packets sent from then on reach it. No guessing, no sleep.

  The heartbeat wait comes first (it says *which* daemon answered and in which state); the input wait
  second (it says our socket is joined). Both have deadlines and fail with :class:`NoDaemonError`.

What a consumer receives are the typed records of :mod:`s2gesture.daemon.wire` (``Pred``, ``Gesture``,
``Status``), validated on decode; anything that does not decode is skipped.

Remote daemons (docs/remote.md): every client takes ``--curve-server-key`` and ``--curve-keys``
(:func:`add_curve_arguments`, :func:`curve_from_args`); the socket helpers here make their sockets CURVE
clients with them. A CURVE handshake the daemon refuses is silent in ZeroMQ (the client just never
connects), so the deadline errors name the keys as the likely cause.
"""

from __future__ import annotations

import argparse
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

from s2gesture.daemon import wire
from s2gesture.daemon.errors import ProtocolError, S2GestureError

DEFAULT_INPUT = "tcp://127.0.0.1:5555"
DEFAULT_OUTPUT = "tcp://127.0.0.1:5556"
#: daemon states in which it accepts and classifies input
SERVING_STATES = frozenset({"ready", "degraded", "reloading"})


class ClientError(S2GestureError):
    """A client could not do its job (root of the clients' errors)."""


class NoDaemonError(ClientError):
    """No daemon answered on the given endpoints before the deadline."""


def split_endpoints(value: str | Sequence[str]) -> list[str]:
    """Endpoints from a comma-separated string or a list (``tcp://host:port`` or ``ipc://path``)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    endpoints = [e.strip() for e in items if e.strip()]
    for e in endpoints:
        if "://" not in e:
            msg = f"endpoint {e!r} has no transport; expected e.g. tcp://127.0.0.1:5556 or ipc:///run/s2gesture/out"
            raise ClientError(msg)
    if not endpoints:
        msg = f"no endpoint given in {value!r}; expected e.g. tcp://127.0.0.1:5556"
        raise ClientError(msg)
    return endpoints


def _deadline_ms(deadline: float) -> int:
    return max(0, int((deadline - time.monotonic()) * 1000))


# ------------------------------------------------------------------------------------------------ CURVE


@dataclass(frozen=True)
class CurveKeys:
    """A CURVE client's keys (Z85 bytes): the daemon's public key and our own keypair."""

    server_public: bytes
    public: bytes
    secret: bytes = field(repr=False)
    #: where our keypair came from (for error messages; never the secret itself)
    source: str = ""

    def apply(self, sock: zmq.Socket[Any]) -> None:
        """Make ``sock`` a CURVE client of the daemon (before it connects)."""
        sock.curve_serverkey = self.server_public
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret


def _is_z85_key(text: str) -> bool:
    from zmq.utils import z85

    if len(text) != 40:
        return False
    try:
        return len(z85.decode(text.encode("ascii"))) == 32
    except (ValueError, KeyError, TypeError, UnicodeEncodeError):
        return False


def _load_certificate(path: Path, option: str) -> tuple[bytes, bytes | None]:
    """``(public, secret or None)`` of a zmq.auth certificate file, or a ClientError naming the file."""
    import zmq.auth

    if not path.is_file():
        msg = f"{option} {path}: no such file; create keys with `s2gesture keys DIR --name NAME`"
        raise ClientError(msg)
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        msg = (
            f"{option} {path} is not a zmq.auth certificate file (expected 'public-key = \"...\"' lines "
            f"as written by `s2gesture keys`): {exc}"
        )
        raise ClientError(msg) from None
    if not _is_z85_key(public.decode("ascii", "replace")):
        msg = f"{option} {path}: its public-key is not a 40-character Z85 CURVE key"
        raise ClientError(msg)
    return public, secret


def load_server_key(value: str) -> bytes:
    """The daemon's public key from ``--curve-server-key``: a 40-character Z85 key or a certificate file."""
    if _is_z85_key(value):
        return value.encode("ascii")
    path = Path(value)
    if not path.exists() and len(value) == 40:
        msg = f"--curve-server-key {value!r} is neither a Z85 CURVE key nor an existing file"
        raise ClientError(msg)
    public, _ = _load_certificate(path, "--curve-server-key")
    return public


def load_client_keys(path: str | Path) -> tuple[bytes, bytes]:
    """Our ``(public, secret)`` from ``--curve-keys``: the ``NAME.key_secret`` file of `s2gesture keys`."""
    path = Path(path)
    public, secret = _load_certificate(path, "--curve-keys")
    if secret is None or not _is_z85_key(secret.decode("ascii", "replace")):
        hint = f"; pass {path.name}_secret instead" if path.suffix == ".key" else ""
        msg = f"--curve-keys {path} holds no secret-key (only the NAME.key_secret file does){hint}"
        raise ClientError(msg)
    return public, secret


def add_curve_arguments(parser: argparse.ArgumentParser) -> None:
    """``--curve-server-key`` and ``--curve-keys``: the options every client has for a CURVE daemon."""
    group = parser.add_argument_group(
        "remote daemon (CURVE, see docs/remote.md)",
        "A daemon bound to a non-loopback address speaks CURVE and admits only allow-listed client keys.",
    )
    group.add_argument(
        "--curve-server-key",
        metavar="FILE|Z85",
        help="the daemon's public key: its 40-character Z85 text or the NAME.key file from `s2gesture keys` "
        "(write --curve-server-key=KEY: a Z85 key may start with '-')",
    )
    group.add_argument(
        "--curve-keys",
        metavar="FILE",
        help="this client's keypair: the NAME.key_secret file from `s2gesture keys` (its public key must be in "
        "the daemon's curve.client_public_keys)",
    )


def curve_from_args(args: argparse.Namespace) -> CurveKeys | None:
    """The CURVE keys the options name (None when neither is given); both or neither."""
    server = getattr(args, "curve_server_key", None)
    mine = getattr(args, "curve_keys", None)
    if server is None and mine is None:
        return None
    if server is None or mine is None:
        given, missing = ("--curve-server-key", "--curve-keys") if server else ("--curve-keys", "--curve-server-key")
        msg = (
            f"{given} needs {missing} too: a CURVE client needs the daemon's public key and its own keypair "
            "(the daemon admits only allow-listed client keys)"
        )
        raise ClientError(msg)
    public, secret = load_client_keys(mine)
    return CurveKeys(load_server_key(server), public, secret, source=str(mine))


def curve_hint(curve: CurveKeys | None) -> str:
    """What to check when a CURVE client heard nothing (ZeroMQ gives a refused handshake no error)."""
    if curve is None:
        return ""
    return (
        f" With CURVE, also check that --curve-server-key is the daemon's public key and that the public key "
        f"of {curve.source or 'your --curve-keys'} ({curve.public.decode()}) is in its curve.client_public_keys."
    )


# ---------------------------------------------------------------------------------------- consumer side


def open_output(
    ctx: zmq.Context[Any],
    endpoints: str | Sequence[str],
    topics: Iterable[str] = (wire.OUTPUT_PREFIX,),
    *,
    curve: CurveKeys | None = None,
) -> zmq.Socket[Any]:
    """A SUB connected to the daemon's output, subscribed to ``topics`` (prefixes) and to the status topic."""
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    if curve is not None:
        curve.apply(sub)
        # remembered for the deadline error of wait_for_status
        _CURVE_OF[sub] = curve
    # unbounded receive queue: eval must not lose a final decision while it is busy sending
    sub.setsockopt(zmq.RCVHWM, 0)
    subscribed = set(topics) | {wire.STATUS_TOPIC}
    for topic in sorted(subscribed):
        sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
    for endpoint in split_endpoints(endpoints):
        sub.connect(endpoint)
    return sub


#: socket -> the CURVE keys it was opened with (a socket's attributes are its options, so not there)
_CURVE_OF: weakref.WeakKeyDictionary[zmq.Socket[Any], CurveKeys] = weakref.WeakKeyDictionary()


def receive(sub: zmq.Socket[Any], timeout_s: float) -> wire.Output | None:
    """The next decodable output message (a ``wire.Pred``, ``Gesture`` or ``Status``), or None after ``timeout_s``.

    Messages that do not decode or validate (a foreign publisher on a shared bus or proxy, a newer
    daemon's message this client cannot read) are skipped: one stray message must not end a listener,
    a robot controller or an evaluation.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
        if not sub.poll(remaining_ms, zmq.POLLIN):
            return None
        try:
            return wire.decode_message(sub.recv_multipart())
        except ProtocolError:
            continue


def wait_for_status(
    sub: zmq.Socket[Any],
    timeout_s: float,
    *,
    states: Iterable[str] | None = None,
    on_message: Callable[[wire.Output], None] | None = None,
) -> wire.Status:
    """The first status heartbeat (in one of ``states`` when given); raises NoDaemonError after ``timeout_s``.

    Other messages that arrive meanwhile go to ``on_message`` (or are dropped).
    """
    wanted = None if states is None else frozenset(states)
    deadline = time.monotonic() + timeout_s
    last_state = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            seen = f"; its last state was {last_state!r}" if last_state else ""
            last = sub.getsockopt(zmq.LAST_ENDPOINT)
            endpoint = last.decode() if isinstance(last, bytes) and last else "the output endpoint"
            want = f" in state {sorted(wanted)}" if wanted else ""
            msg = (
                f"no s2gestured status heartbeat{want} on {endpoint} within {timeout_s:g} s{seen}; "
                "is the daemon running (systemctl status s2gestured) and is --output its output endpoint?"
                + curve_hint(_CURVE_OF.get(sub))
            )
            raise NoDaemonError(msg)
        got = receive(sub, remaining)
        if got is None:
            continue
        if isinstance(got, wire.Status):
            last_state = got.state
            if wanted is None or last_state in wanted:
                return got
        elif on_message is not None:
            on_message(got)


# ------------------------------------------------------------------------------------------ sender side


@dataclass
class SendStats:
    """What an :class:`EventSender` did: messages and events sent, seconds spent blocked by backpressure."""

    messages: int = 0
    events: int = 0
    blocked_s: float = 0.0


class EventSender:
    """Sends protocol v1 input messages to a daemon, losslessly (PUSH) or live (XPUB); see the module doc.

    ``send`` blocks while a lossless daemon applies backpressure; meanwhile ``drain`` (a callable) is
    called whenever another socket it watches is readable, so a client can keep consuming the daemon's
    output while it waits (eval does: its results must not be delayed by its own sending).
    """

    def __init__(
        self,
        ctx: zmq.Context[Any],
        endpoints: str | Sequence[str],
        *,
        lossless: bool,
        stall_timeout_s: float = 30.0,
        curve: CurveKeys | None = None,
    ) -> None:
        self.lossless = lossless
        self.curve = curve
        self.stall_timeout_s = stall_timeout_s
        self.stats = SendStats()
        self.endpoints = split_endpoints(endpoints)
        if lossless:
            sock = ctx.socket(zmq.PUSH)
            # queue only to completed connections: POLLOUT then means "a PULL peer is there and has room"
            sock.setsockopt(zmq.IMMEDIATE, 1)
        else:
            sock = ctx.socket(zmq.XPUB)
            # the subscription messages are our readiness signal; see them all, duplicates included
            sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        # time for the last packets and the eos to leave on close (then ctx.term() returns regardless)
        sock.setsockopt(zmq.LINGER, 2000)
        if curve is not None:
            curve.apply(sock)
        for endpoint in self.endpoints:
            sock.connect(endpoint)
        self.sock = sock
        #: prefixes the daemon's SUB subscribed to (live mode)
        self.subscriptions: set[bytes] = set()

    def wait_ready(self, timeout_s: float, topics: Iterable[bytes] = (wire.INPUT_PREFIX.encode(),)) -> None:
        """Return once the daemon's input accepts packets on ``topics``; raises NoDaemonError after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        if self.lossless:
            if self.sock.poll(_deadline_ms(deadline), zmq.POLLOUT):
                return
            hint = "is the daemon running with a lossless (PULL) input on this endpoint?"
        else:
            wanted = set(topics)
            while True:
                # b"\x01" + prefix subscribes; a topic is covered once some subscribed prefix starts it
                if all(any(t.startswith(p) for p in self.subscriptions) for t in wanted):
                    return
                if not self.sock.poll(_deadline_ms(deadline), zmq.POLLIN):
                    break
                frame = self.sock.recv()
                if frame[:1] == b"\x01":
                    self.subscriptions.add(frame[1:])
                elif frame[:1] == b"\x00":
                    self.subscriptions.discard(frame[1:])
            hint = "is the daemon running with a live (SUB) input on this endpoint?"
        mode = "lossless PUSH" if self.lossless else "live XPUB"
        msg = (
            f"no daemon input accepted our {mode} connection to {', '.join(self.endpoints)} within {timeout_s:g} s; "
            f"{hint}{curve_hint(self.curve)}"
        )
        raise NoDaemonError(msg)

    def send(
        self,
        frames: list[bytes],
        *,
        n_events: int = 0,
        watch: zmq.Socket[Any] | None = None,
        drain: Callable[[], None] | None = None,
    ) -> None:
        """Send one multipart message; in lossless mode wait (draining ``watch``) while the daemon is full."""
        if self.lossless:
            try:
                # fast path: the pipe has room (the common case); no poller, no clock
                self.sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                self._send_when_room(frames, watch, drain)
        else:
            self.sock.send_multipart(frames, copy=False)
        self.stats.messages += 1
        self.stats.events += n_events

    def _send_when_room(
        self, frames: list[bytes], watch: zmq.Socket[Any] | None, drain: Callable[[], None] | None
    ) -> None:
        """Backpressure: wait for room (draining ``watch`` meanwhile), give up after ``stall_timeout_s``."""
        started = time.monotonic()
        last_progress = started
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLOUT)
        if watch is not None:
            poller.register(watch, zmq.POLLIN)
        while True:
            events = dict(poller.poll(100))
            if watch is not None and events.get(watch) and drain is not None:
                drain()
            if events.get(self.sock):
                try:
                    self.sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
                    break
                except zmq.Again:
                    continue
            now = time.monotonic()
            if events:
                last_progress = now
            elif now - last_progress > self.stall_timeout_s:
                msg = (
                    f"the daemon at {', '.join(self.endpoints)} accepted nothing for "
                    f"{self.stall_timeout_s:g} s; it stopped or is stuck (check `s2gesture status`)"
                )
                raise NoDaemonError(msg)
        self.stats.blocked_s += time.monotonic() - started

    def close(self) -> None:
        """Close the socket; it lingers up to 2 s so the last packets and the eos still go out."""
        self.sock.close()


def context() -> zmq.Context[Any]:
    """A fresh ZeroMQ context (clients own theirs so they can ``term()`` it last)."""
    return zmq.Context()
