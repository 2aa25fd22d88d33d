"""Clients against the real s2gestured process on real sockets: replay -> daemon -> listen, status exit
codes, and the robot controller's safety stop when the daemon stops or dies."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from daemon_helpers import DaemonProcess, free_tcp_port, random_events, start_daemon

from s2gesture.clients import replay, status
from s2gesture.daemon import wire
from s2gesture.daemon.events import Recording
from s2gesture.daemon.testing import write_tiny_model

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.nir"
    write_tiny_model(path, seed=0)
    return path


@pytest.fixture(scope="module")
def lossless_daemon(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[DaemonProcess]:
    """One daemon shared by the tests that leave it running (starting one takes seconds)."""
    with start_daemon(tmp_path_factory.mktemp("daemon"), model_path, mode="lossless") as d:
        yield d


def _recordings(n: int, seed: int = 0) -> list[Recording]:
    # dense random events: enough survive the denoise filter for the tiny model to spike
    return [
        Recording(random_events(150_000, seed=seed + i, duration_us=600_000), (128, 128), label=i % 11, name=f"rec{i}")
        for i in range(n)
    ]


class LineReader:
    """Lines of a child process's stdout, read by a thread so the test can wait with a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str] = queue.Queue()
        assert proc.stdout is not None
        stdout = proc.stdout
        self.thread = threading.Thread(target=lambda: [self.lines.put(line) for line in stdout], daemon=True)
        self.thread.start()

    def wait_for(self, predicate: Any, timeout_s: float = 15.0) -> str:
        """The next line matching ``predicate``; fails after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no matching line from {self.proc.args} within {timeout_s} s")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if predicate(line):
                return line


def _client(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "s2gesture.clients.cli", *args], stdout=subprocess.PIPE, text=True, bufsize=1
    )


def _replay_args(d: DaemonProcess, *extra: str) -> Any:
    return replay.build_parser().parse_args(
        ["--input", d.input_endpoint, "--output", d.output_endpoint, "--quiet", "--as-fast-as-possible", *extra]
    )


def test_replay_daemon_listen_end_to_end(lossless_daemon: DaemonProcess) -> None:
    """Recordings replayed losslessly come back through `listen --json` as one final decision per segment."""
    d = lossless_daemon
    listener = _client("listen", "--output", d.output_endpoint, "--json", "--show", "gesture,status")
    try:
        lines = LineReader(listener)
        # its first status line proves listen's subscription is joined: nothing after it is missed
        lines.wait_for(lambda line: json.loads(line)["topic"] == wire.STATUS_TOPIC)
        recs = _recordings(3)
        stats = replay.run(_replay_args(d), recordings=recs)
        assert stats.segments == 3 and stats.events == sum(len(r) for r in recs)
        finals = []
        for _ in range(3):
            line = lines.wait_for(lambda line: json.loads(line).get("final") is True)
            finals.append(json.loads(line))
        assert [f["segment"] for f in finals] == stats.segment_ids
        assert all(f["stream"] == "replay" and f["label"] for f in finals)
    finally:
        listener.terminate()
        listener.wait(5)
    # lossless: the daemon counted every event and dropped nothing
    body = d.wait_status(lambda b: b["streams"].get("replay", {}).get("events") == stats.events)
    assert not body["streams"]["replay"]["dropped"]


def test_replay_auto_mode_refuses_a_mismatch_with_the_daemon(lossless_daemon: DaemonProcess, capsys: pytest.CaptureFixture[str]) -> None:
    """Forcing --mode live against a lossless daemon is refused with the fix, before anything is sent."""
    d = lossless_daemon
    code = replay.cli(["--input", d.input_endpoint, "--output", d.output_endpoint, "--mode", "live", "--synthetic", "1", "--timeout", "5"])
    assert code == 2
    assert "--mode lossless" in capsys.readouterr().err


def test_status_exits_0_and_summarises_a_running_daemon(lossless_daemon: DaemonProcess, capsys: pytest.CaptureFixture[str]) -> None:
    """`s2gesture status` prints the summary (or JSON) and exits 0 while the daemon runs."""
    d = lossless_daemon
    assert status.cli(["--output", d.output_endpoint, "--timeout", "10"]) == 0
    out = capsys.readouterr().out
    assert "state:    ready" in out and "backend:  emulator" in out and "tiny-test" in out
    assert status.cli(["--output", d.output_endpoint, "--json", "--timeout", "10"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "ready"


def _robot_config(tmp_path: Path, output: str) -> Path:
    from s2gesture.daemon.card import GESTURE_CLASSES

    gestures = "\n".join(f'"{label}" = "go"' for label in GESTURE_CLASSES)
    path = tmp_path / "robot.toml"
    path.write_text(
        "schema_version = 1\n"
        f'[daemon]\noutput = "{output}"\n'
        "[policy]\nmin_confidence = 0.0\ndebounce_s = 0.01\nuse_final = true\nheartbeat_timeout_s = 1.0\n"
        '[publish]\ntopic = "robot/v1/cmd/"\nrepeat_s = 0.1\n'
        f"[gestures]\n{gestures}\n"
        "[commands.stop]\nlinear_m_s = 0.0\n[commands.go]\nlinear_m_s = 0.3\n"
    )
    return path


@pytest.mark.parametrize(
    ("signum", "detail"), [(signal.SIGTERM, "daemon is stopping"), (signal.SIGKILL, "no message from the daemon")]
)
def test_robot_safety_stop_when_the_daemon_stops(
    tmp_path: Path, model_path: Path, signum: int, detail: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The robot follows a gesture, then stops safely when the daemon stops (SIGTERM; status then exits 1) or dies silently (SIGKILL)."""
    publish = f"tcp://127.0.0.1:{free_tcp_port()}"
    with start_daemon(tmp_path, model_path, mode="lossless") as d:
        robot = _client("robot", "--config", str(_robot_config(tmp_path, d.output_endpoint)), "--publish", publish, "--json")
        ctx = zmq.Context()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"robot/v1/cmd/")
        sub.connect(publish)
        try:
            lines = LineReader(robot)
            assert json.loads(lines.wait_for(lambda s: True))["reason"] == "safety"  # starts stopped
            # the robot re-sends its command every 0.1 s: once one arrives, our subscription is joined
            assert sub.poll(15_000)
            # the robot announces the first heartbeat it hears: its subscription to the daemon is joined
            assert json.loads(lines.wait_for(lambda s: "daemon" in json.loads(s)))["daemon"] == "ready"
            replay.run(_replay_args(d), recordings=_recordings(1))
            go = json.loads(lines.wait_for(lambda s: json.loads(s)["command"] == "go"))
            assert go["reason"] == "gesture"
            d.send_signal(signum)
            stop = json.loads(lines.wait_for(lambda s: json.loads(s)["reason"] == "safety", timeout_s=10))
            assert stop["command"] == "stop" and stop["detail"].startswith(detail)
            # the same stop is on the command topic for the robot's driver
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                assert sub.poll(2000)
                topic, body = wire.decode_output(sub.recv_multipart())
                if body["seq"] == stop["seq"]:
                    assert topic == "robot/v1/cmd/" and body["command"] == "stop" and body["params"] == {"linear_m_s": 0.0}
                    break
            else:
                pytest.fail("the safety stop never appeared on robot/v1/cmd/")
            if signum == signal.SIGTERM:
                # a daemon that has stopped no longer answers: `s2gesture status` exits 1
                assert d.proc.wait(15) == 0
                assert status.cli(["--output", d.output_endpoint, "--timeout", "0.5"]) == 1
        finally:
            robot.send_signal(signal.SIGTERM)
            assert robot.wait(10) == 0
            sub.close()
            ctx.term()


def test_live_replay_in_scaled_real_time_reaches_a_live_daemon(tmp_path: Path, model_path: Path) -> None:
    """Against a live (SUB) daemon, replay picks the XPUB sender, waits for the subscription, and loses nothing."""
    with start_daemon(tmp_path, model_path, mode="live") as d:
        # a camera-like rate (50 k events/s) at 2x real time: well within what a live daemon keeps up with,
        # so nothing may be dropped (a denser stream would rightly be thinned by the live mode)
        recs = [
            Recording(random_events(30_000, seed=i, duration_us=600_000), (128, 128), label=i, name=f"live{i}")
            for i in range(2)
        ]
        args = replay.build_parser().parse_args(
            ["--input", d.input_endpoint, "--output", d.output_endpoint, "--quiet", "--speed", "2"]
        )
        started = time.monotonic()
        stats = replay.run(args, recordings=recs)
        # 2 x 0.6 s of events plus a 0.5 s gap at 2x real time: paced, not instantaneous
        assert time.monotonic() - started >= (2 * 0.6 + 0.5) / 2 * 0.9
        finals = d.collect(
            lambda t, b: t.startswith(wire.GESTURE_PREFIX) and b["final"],
            until=lambda t, b: t.startswith(wire.GESTURE_PREFIX) and b["final"] and b.get("segment") == stats.segment_ids[-1],
        )
        assert [f["segment"] for f in finals] == stats.segment_ids
        body = d.wait_status(lambda b: b["streams"].get("replay", {}).get("events") == stats.events)
        assert not body["streams"]["replay"]["dropped"] and body["mode"] == "live"
