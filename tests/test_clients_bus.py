"""Client socket helpers on real ZeroMQ sockets: readiness signals without sleeps, backpressure, deadlines."""

from __future__ import annotations

import time
from collections.abc import Iterator

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


def _free_endpoint(ctx: zmq.Context) -> str:
    sock, endpoint = _bind(ctx, zmq.PULL)
    sock.close()
    return endpoint


def test_lossless_sender_waits_for_a_pull_peer_and_loses_nothing(ctx: zmq.Context) -> None:
    """PUSH with IMMEDIATE is ready only once a PULL is there; a slow reader blocks the sender instead of losing."""
    endpoint = _free_endpoint(ctx)
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


def test_wait_for_status_takes_the_heartbeat_and_passes_other_messages_on(ctx: zmq.Context) -> None:
    """Messages before the heartbeat go to on_message; the first status in a wanted state is returned."""
    pub, endpoint = _bind(ctx, zmq.PUB)
    sub = bus.open_output(ctx, endpoint, topics=(wire.GESTURE_PREFIX,))
    seen: list[str] = []
    deadline = time.monotonic() + 5
    body = None
    # a PUB sends before the subscription arrives into the void (slow joiner): keep publishing until heard
    while body is None and time.monotonic() < deadline:
        pub.send_multipart(wire.encode_output(wire.gesture_topic("c"), {"label": "x"}))
        pub.send_multipart(wire.encode_output(wire.STATUS_TOPIC, {"v": 1, "state": "loading"}))
        pub.send_multipart(wire.encode_output(wire.STATUS_TOPIC, {"v": 1, "state": "ready"}))
        try:
            body = bus.wait_for_status(sub, 0.05, states={"ready"}, on_message=lambda t, b: seen.append(t))
        except bus.NoDaemonError:
            continue
    assert body is not None and body["state"] == "ready"
    assert wire.gesture_topic("c").decode() in seen
    sub.close()


def test_status_exits_1_quickly_when_no_daemon_answers(ctx: zmq.Context, capsys: pytest.CaptureFixture[str]) -> None:
    """`s2gesture status` on an endpoint nobody serves exits 1 after --timeout and says what to check."""
    endpoint = _free_endpoint(ctx)
    started = time.monotonic()
    assert status.cli(["--output", endpoint, "--timeout", "0.3"]) == 1
    assert time.monotonic() - started < 3
    assert "no s2gestured status heartbeat" in capsys.readouterr().err


def test_bad_endpoint_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """An endpoint without a transport is refused with an example of a valid one."""
    assert status.cli(["--output", "127.0.0.1:5556"]) == 2
    assert "tcp://127.0.0.1:5556" in capsys.readouterr().err


def test_receive_skips_messages_that_do_not_decode(ctx: zmq.Context) -> None:
    """A stray undecodable message on the daemon's output (a foreign publisher) is skipped, not raised."""
    pub, endpoint = _bind(ctx, zmq.PUB)
    sub = bus.open_output(ctx, endpoint)
    deadline = time.monotonic() + 5
    got = None
    while got is None and time.monotonic() < deadline:  # slow joiner: publish until the subscription is heard
        pub.send_multipart([wire.STATUS_TOPIC.encode(), b"\xc1 not msgpack"])
        pub.send_multipart(wire.encode_output(wire.STATUS_TOPIC, {"v": 1, "state": "ready"}))
        got = bus.receive(sub, 0.05)
    assert got is not None and got[1]["state"] == "ready"
    sub.close()
