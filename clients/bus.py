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
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
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


# ---------------------------------------------------------------------------------------- consumer side


def open_output(
    ctx: zmq.Context[Any], endpoints: str | Sequence[str], topics: Iterable[str] = (wire.OUTPUT_PREFIX,)
) -> zmq.Socket[Any]:
    """A SUB connected to the daemon's output, subscribed to ``topics`` (prefixes) and to the status topic."""
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    # unbounded receive queue: eval must not lose a final decision while it is busy sending
    sub.setsockopt(zmq.RCVHWM, 0)
    subscribed = set(topics) | {wire.STATUS_TOPIC}
    for topic in sorted(subscribed):
        sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
    for endpoint in split_endpoints(endpoints):
        sub.connect(endpoint)
    return sub


def receive(sub: zmq.Socket[Any], timeout_s: float) -> tuple[str, dict[str, Any]] | None:
    """The next decodable output message, or None when none arrives within ``timeout_s``.

    Messages that do not decode (a foreign publisher on a shared bus or proxy) are skipped: one stray
    message must not end a listener, a robot controller or an evaluation.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
        if not sub.poll(remaining_ms, zmq.POLLIN):
            return None
        try:
            return wire.decode_output(sub.recv_multipart())
        except ProtocolError:
            continue


def wait_for_status(
    sub: zmq.Socket[Any],
    timeout_s: float,
    *,
    states: Iterable[str] | None = None,
    on_message: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
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
            )
            raise NoDaemonError(msg)
        got = receive(sub, remaining)
        if got is None:
            continue
        topic, body = got
        if topic == wire.STATUS_TOPIC:
            last_state = body.get("state")
            if wanted is None or last_state in wanted:
                return body
        elif on_message is not None:
            on_message(topic, body)


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
    ) -> None:
        self.lossless = lossless
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
        msg = f"no daemon input accepted our {mode} connection to {', '.join(self.endpoints)} within {timeout_s:g} s; {hint}"
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
