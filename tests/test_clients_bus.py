"""Client socket helpers on real ZeroMQ sockets: readiness signals without sleeps, backpressure, deadlines."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import zmq

from s2gesture.clients import bus, status
from s2gesture.daemon import wire
from s2gesture.daemon.events import EVENT_DTYPE


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


def _bind(ctx: zmq.Context, kind: int) -> tuple[zmq.Socket, str]:
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind("tcp://127.0.0.1:*")
    return sock, sock.getsockopt(zmq.LAST_ENDPOINT).decode()


def _unserved_endpoint(tmp_path: Path) -> str:
    # an ipc path nobody binds: a TCP port bound and closed for the purpose can still accept for a moment
    # (zmq closes sockets in its I/O thread) or be taken by another process, and a sender would then connect
    return f"ipc://{tmp_path}/nobody"


def test_lossless_sender_waits_for_a_pull_peer_and_loses_nothing(ctx: zmq.Context, tmp_path: Path) -> None:
    """PUSH with IMMEDIATE is ready only once a PULL is there; a slow reader blocks the sender instead of losing."""
    endpoint = _unserved_endpoint(tmp_path)
    sender = bus.EventSender(ctx, endpoint, lossless=True, stall_timeout_s=5)
    with pytest.raises(bus.NoDaemonError, match="lossless"):
        sender.wait_ready(0.2)
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    pull.setsockopt(zmq.RCVHWM, 4)
    pull.bind(endpoint)
    sender.wait_ready(5)
    ev = np.zeros(0, dtype=EVENT_DTYPE)
    n = 3000
    got = []
    for seq in range(n):
        sender.send(wire.encode_events("s", seq, 128, 128, ev, t_end=seq), n_events=0)
        while pull.poll(0):
            got.append(wire.decode_input(pull.recv_multipart()).seq)
    while len(got) < n and pull.poll(2000):
        got.append(wire.decode_input(pull.recv_multipart()).seq)
    assert got == list(range(n))
    sender.close()


def test_live_sender_is_ready_when_the_subscription_arrives(ctx: zmq.Context) -> None:
    """The XPUB sender waits for the daemon's SUB subscription; the first packet after that arrives."""
    sub, endpoint = _bind(ctx, zmq.SUB)
    sender = bus.EventSender(ctx, endpoint, lossless=False)
    with pytest.raises(bus.NoDaemonError, match="live"):
        sender.wait_ready(0.3, topics=[wire.events_topic("cam0")])
    sub.setsockopt(zmq.SUBSCRIBE, wire.INPUT_PREFIX.encode())
    # a SUB attaches new peers (and sends them its subscriptions) when its owner services it, as the
    # daemon's poll loop does; here the test is that owner
    deadline = time.monotonic() + 5
    while True:
        sub.poll(10)
        try:
            sender.wait_ready(0.01, topics=[wire.events_topic("cam0"), wire.eos_topic("cam0")])
            break
        except bus.NoDaemonError:
            if time.monotonic() > deadline:
                raise
    sender.send(wire.encode_eos("cam0", 0, segment="a"))
    assert sub.poll(2000)
    packet = wire.decode_input(sub.recv_multipart())
    assert isinstance(packet, wire.EosPacket) and packet.segment == "a"
    sender.close()


GESTURE = {"v": 1, "stream": "c", "seq": 3, "class_id": 2, "label": "x", "confidence": 0.5, "final": False}


def test_wait_for_status_takes_the_heartbeat_and_passes_other_messages_on(ctx: zmq.Context) -> None:
    """Messages before the heartbeat go to on_message as records; the first status in a wanted state is returned."""
    pub, endpoint = _bind(ctx, zmq.PUB)
    sub = bus.open_output(ctx, endpoint, topics=(wire.GESTURE_PREFIX,))
    seen: list[wire.Output] = []
    deadline = time.monotonic() + 5
    got = None
    # a PUB sends before the subscription arrives into the void (slow joiner): keep publishing until heard
    while got is None and time.monotonic() < deadline:
        pub.send_multipart(wire.encode_output(wire.gesture_topic("c"), GESTURE))
        pub.send_multipart(wire.encode_output(wire.STATUS_TOPIC, {"v": 1, "state": "loading"}))
        pub.send_multipart(wire.encode_output(wire.STATUS_TOPIC, {"v": 1, "state": "ready", "mode": "live"}))
        try:
            got = bus.wait_for_status(sub, 0.05, states={"ready"}, on_message=seen.append)
        except bus.NoDaemonError:
            continue
    assert isinstance(got, wire.Status) and got.state == "ready" and got.mode == "live"
    gestures = [m for m in seen if isinstance(m, wire.Gesture)]
    assert gestures and gestures[0].stream == "c" and gestures[0].class_id == 2 and gestures[0].label == "x"
    sub.close()


def test_status_exits_1_quickly_when_no_daemon_answers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`s2gesture status` on an endpoint nobody serves exits 1 after --timeout and says what to check."""
    endpoint = _unserved_endpoint(tmp_path)
    started = time.monotonic()
    assert status.cli(["--output", endpoint, "--timeout", "0.3"]) == 1
    assert time.monotonic() - started < 3
    assert "no s2gestured status heartbeat" in capsys.readouterr().err


def test_bad_endpoint_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """An endpoint without a transport is refused with an example of a valid one."""
    assert status.cli(["--output", "127.0.0.1:5556"]) == 2
    assert "tcp://127.0.0.1:5556" in capsys.readouterr().err


def test_receive_skips_messages_that_do_not_decode(ctx: zmq.Context) -> None:
    """Undecodable or invalid messages on the daemon's output (a foreign publisher) are skipped, not raised."""
    pub, endpoint = _bind(ctx, zmq.PUB)
    sub = bus.open_output(ctx, endpoint)
    deadline = time.monotonic() + 5
    got = None
    while got is None and time.monotonic() < deadline:  # slow joiner: publish until the subscription is heard
        pub.send_multipart([wire.STATUS_TOPIC.encode(), b"\xc1 not msgpack"])
        pub.send_multipart(wire.encode_output(wire.STATUS_TOPIC, {"v": 1, "state": "on fire"}))
        pub.send_multipart(wire.encode_output(wire.gesture_topic("c"), {**GESTURE, "confidence": "high"}))
        pub.send_multipart(wire.encode_output(wire.gesture_topic("c"), {**GESTURE, "stream": "other"}))
        pub.send_multipart(wire.encode_output(wire.STATUS_TOPIC, {"v": 1, "state": "ready"}))
        got = bus.receive(sub, 0.05)
    assert isinstance(got, wire.Status) and got.state == "ready"
    sub.close()


def test_receive_returns_typed_records_of_every_kind(ctx: zmq.Context) -> None:
    """A pred, a gesture and a status sent by a PUB arrive as wire.Pred, wire.Gesture and wire.Status."""
    pub, endpoint = _bind(ctx, zmq.PUB)
    sub = bus.open_output(ctx, endpoint)
    pred = wire.Pred("c", 9, 4, 0, 600_000, (0.25, 0.75), 1, "y", 0.75, 2.5, "emulator", {"name": "m"}, runs=2)
    gesture = wire.Gesture.from_body(GESTURE)
    status = wire.Status.from_body({"v": 1, "state": "degraded", "error": "backend failed: boom"})
    seen: dict[type, wire.Output] = {}
    deadline = time.monotonic() + 5
    while len(seen) < 3 and time.monotonic() < deadline:  # slow joiner: publish until all three are heard
        for msg in (pred, gesture, status):
            pub.send_multipart(wire.encode_message(msg))
        while (got := bus.receive(sub, 0.05)) is not None:
            seen[type(got)] = got
    assert seen == {wire.Pred: pred, wire.Gesture: gesture, wire.Status: status}
    sub.close()
