"""The real daemon against what real cameras and hostile peers do: dense lamps, pauses, oversize frames,
too many streams, overload, half-open connections, bad models and configs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from daemon_helpers import (
    daemon_command,
    free_tcp_port,
    interleave,
    lamp_events,
    random_events,
    recording_frames,
    start_daemon,
)

from s2gesture.daemon import wire
from s2gesture.daemon.pipeline import default_model_path
from s2gesture.daemon.testing import write_tiny_model

pytestmark = pytest.mark.timeout(120)


def _preds(messages: list[tuple[str, dict[str, Any]]], stream: str) -> list[tuple[int, int, list[float]]]:
    return [(b["t_start"], b["t_end"], b["scores"]) for t, b in messages if t == f"s2g/v1/pred/{stream}/"]


def test_a_lamp_next_to_a_normal_camera_never_degrades_and_leaves_it_untouched(tmp_path: Path) -> None:
    """10 s of a 200 k events/s lamp beside a normal camera: always ready, both predicted, normal preds as alone."""
    duration = 10_000_000
    normal = random_events(150_000, seed=11, duration_us=duration)
    lamp = lamp_events(2_000_000, seed=12, duration_us=duration)
    with start_daemon(tmp_path, default_model_path(), mode="lossless", transport="ipc", timeout_s=60) as d:
        sender = d.sender()
        d.send_all(sender, list(recording_frames("alone", normal, 128, 128, packet_us=5_000)))
        alone: list[tuple[str, dict[str, Any]]] = []
        while not (alone and alone[-1][0] == "s2g/v1/gesture/alone/" and alone[-1][1]["final"]):
            alone.append(d.recv(timeout_s=60))
        both = interleave(
            list(recording_frames("normal", normal, 128, 128, packet_us=5_000)),
            list(recording_frames("lamp", lamp, 128, 128, packet_us=5_000)),
        )
        d.send_all(sender, both)
        seen: list[tuple[str, dict[str, Any]]] = []
        finals: set[str] = set()
        while finals != {"normal", "lamp"}:
            topic, body = d.recv(timeout_s=60)
            seen.append((topic, body))
            if topic.startswith("s2g/v1/gesture/") and body["final"]:
                finals.add(body["stream"])
        status = d.wait_status()
        assert d.stop() == 0
    states = {b["state"] for t, b in seen if t == wire.STATUS_TOPIC}
    assert states == {"ready"}, states
    lamp_preds = [b for t, b in seen if t == "s2g/v1/pred/lamp/"]
    assert len(lamp_preds) >= 90 and all(b["runs"] >= 2 for b in lamp_preds if sum(b["scores"]) > 0)
    assert _preds(seen, "normal") == _preds(alone, "alone") and len(_preds(alone, "alone")) >= 90
    assert status["backend_counters"]["windows_split"] >= 90 and status["backend_counters"].get("failures", 0) == 0
    assert status["streams"]["lamp"]["chunks_split"] >= 90 and "error" not in status


def test_an_oversize_message_is_counted_and_keeps_the_connection(tmp_path: Path) -> None:
    """A message over max_message_bytes is dropped as 'oversize'; the packets behind it on the same socket arrive."""
    write_tiny_model(tmp_path / "m.nir")
    args = ["--set", "input.max_message_bytes=65536"]
    with start_daemon(tmp_path, tmp_path / "m.nir", mode="lossless", transport="ipc", args=args) as d:
        sender = d.sender()
        frames = list(recording_frames("big", random_events(30_000, seed=3, duration_us=300_000), 128, 128, packet_us=10_000))
        huge = wire.encode_events("big", 0, 128, 128, random_events(20_000, seed=4, duration_us=5_000))
        assert len(huge[1]) > 65536
        d.send_all(sender, [huge, *frames])
        _, final = d.recv(lambda t, b: t == "s2g/v1/gesture/big/" and b["final"], timeout_s=20)
        status = d.wait_status(lambda b: b["streams"].get("big", {}).get("last_seq") == len(frames) - 1)
        assert status["streams"]["big"]["dropped"] == {"oversize": 1}
        assert status["streams"]["big"]["packets"] == len(frames) - 1 and final["seq"] == len(frames) - 1
        assert d.stop() == 0


def test_max_streams_admits_exactly_that_many(tmp_path: Path) -> None:
    """max_streams=2 serves two streams; a third live stream is refused as too_many_streams."""
    write_tiny_model(tmp_path / "m.nir")
    with start_daemon(tmp_path, tmp_path / "m.nir", mode="live", transport="ipc", args=["--set", "input.max_streams=2"]) as d:
        sender = d.sender()
        for name in ("s1", "s2", "s3"):
            d.send_all(sender, list(recording_frames(name, random_events(2_000, seed=1, duration_us=50_000), 128, 128, eos=False)))
        status = d.wait_status(lambda b: b["totals"]["dropped_by_reason"].get("too_many_streams", 0) >= 5)
        assert set(status["streams"]) - {"*"} == {"s1", "s2"}
        assert d.stop() == 0


def test_live_overload_keeps_latency_within_the_lag_bound(tmp_path: Path) -> None:
    """16 streams sent far faster than real time: every pred's latency stays within max_lag + chunk compute."""
    write_tiny_model(tmp_path / "m.nir")
    # one backend process: with the default (one per CPU) the sender, the daemon and two workers share the 2 cores
    # of the CI machine, and their time slices (measured: 2 of 7 runs 5-50 ms over the bound) are not the intake's
    # lag bound, which is what this test checks
    args = ["--set", "input.max_lag_ms=100", "--set", "chunking.stride_ticks=20", "--set", "chunking.window_ticks=100",
            "--set", "streams.flush_after_s=0.5", "--workers", "1"]
    with start_daemon(tmp_path, tmp_path / "m.nir", mode="live", transport="ipc", args=args) as d:
        sender = d.sender()
        streams = [list(recording_frames(f"o{i}", random_events(200_000, seed=i, duration_us=4_000_000), 128, 128,
                                         packet_us=1_000, eos=False)) for i in range(16)]
        d.send_all(sender, interleave(*streams))
        # every stream flushed (queue empty, segment closed by silence): all that will be published is out
        status = d.wait_status(lambda b: len([k for k in b["streams"] if k.startswith("o")]) == 16
                               and all(s.get("queue", 0) == 0 and s.get("last_seq") is not None and s["segment"] is None
                                       for k, s in b["streams"].items() if k.startswith("o")), timeout_s=90)
        assert d.stop() == 0
    assert status["latency_ms"].get("n", 0) >= 1  # windows did run: the bound below is about them
    lat, inference = status["latency_ms"], status["inference_ms"]
    assert status["totals"]["dropped"] > 0  # it really was overloaded
    assert lat["max"] <= 100 + 3 * inference["max"] + 50, (lat, inference)


def test_a_daemon_pause_at_the_end_of_a_lossless_replay_loses_nothing(tmp_path: Path) -> None:
    """The daemon stopped for 4 s while replay finishes: replay waits, every packet and final is accounted."""
    write_tiny_model(tmp_path / "m.nir")
    with start_daemon(tmp_path, tmp_path / "m.nir", mode="lossless", transport="ipc") as d:
        replay = subprocess.Popen(
            [sys.executable, "-m", "s2gesture.clients.cli", "replay", "--synthetic", "2", "--seed", "5",
             "--input", d.input_endpoint, "--output", d.output_endpoint, "--stream", "tail", "--speed", "2", "--quiet"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        # near the end (2,400 packets in all): the rest fits in the socket buffers and replay finishes sending
        d.wait_status(lambda b: b["streams"].get("tail", {}).get("packets", 0) >= 2_100, timeout_s=60)
        d.proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(4.0)  # the pause under test: the daemon reads nothing while replay sends its tail
        finally:
            d.proc.send_signal(signal.SIGCONT)
        out, err = replay.communicate(timeout=60)
        assert replay.returncode == 0, err
        sent = int(out.split(" packets")[0].split()[-1])
        status = d.wait_status(lambda b: (t := b["streams"].get("tail", {})).get("packets", 0)
                               + sum(t.get("dropped", {}).values()) >= sent, timeout_s=10)
        tail = status["streams"]["tail"]
        assert tail["packets"] + sum(tail["dropped"].values()) == sent and not tail["dropped"]
        assert tail["gestures"] >= 2  # both segments got their final decision
        assert d.stop() == 0


def test_idle_half_open_connections_are_closed_and_cameras_still_connect(tmp_path: Path) -> None:
    """300 raw TCP connections that never handshake are dropped after the timeout; a real sender gets through."""
    write_tiny_model(tmp_path / "m.nir")
    args = ["--set", "input.handshake_timeout_s=0.5"]
    with start_daemon(tmp_path, tmp_path / "m.nir", mode="lossless", args=args) as d:
        host, port = d.input_endpoint.removeprefix("tcp://").rsplit(":", 1)
        idle = []
        try:
            for _ in range(300):
                idle.append(socket.create_connection((host, int(port))))
            d.send_all(d.sender(), recording_frames("cam", random_events(5_000, seed=2, duration_us=100_000), 128, 128))
            d.recv(lambda t, b: t == "s2g/v1/gesture/cam/" and b["final"], timeout_s=30)
            status = d.wait_status(lambda b: b["totals"].get("connections_refused", 0) >= 100, timeout_s=30)
        finally:
            for s in idle:
                s.close()
        assert status["state"] == "ready"
        assert d.stop() == 0
    assert "connection refused" in d.log_path.read_text()


def test_ipc_bind_never_deletes_a_file_and_removes_its_sockets_on_exit(tmp_path: Path) -> None:
    """A regular file at the ipc path is refused (exit 69, file intact); a clean stop removes the socket files."""
    write_tiny_model(tmp_path / "m.nir")
    precious = tmp_path / "in.sock"
    precious.write_text("not a socket")
    proc = subprocess.run(
        daemon_command(["--mode", "lossless", "--input-bind", f"ipc://{precious}", "--output-bind",
                        f"ipc://{tmp_path}/out.sock", "--model", str(tmp_path / "m.nir")]),
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 69 and "is not a socket" in proc.stdout + proc.stderr
    assert precious.read_text() == "not a socket"
    precious.unlink()
    with start_daemon(tmp_path, tmp_path / "m.nir", mode="lossless", transport="ipc") as d:
        assert (tmp_path / "in.sock").exists()
        assert d.stop() == 0
    assert not (tmp_path / "in.sock").exists() and not (tmp_path / "out.sock").exists()


def _check_config(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(daemon_command(["check-config", *args]), capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_check_config_does_what_start_does(tmp_path: Path) -> None:
    """Bogus backend options exit 78 from check-config and from start, with the same message; a good model exits 0."""
    write_tiny_model(tmp_path / "m.nir")
    ok = _check_config("--model", str(tmp_path / "m.nir"))
    assert ok.returncode == 0 and "longest run" in ok.stdout
    bad = _check_config("--model", str(tmp_path / "m.nir"), "--set", "backend.options={bogus=1}")
    assert bad.returncode == 78 and "bogus" in bad.stderr
    start = subprocess.run(
        daemon_command(["--model", str(tmp_path / "m.nir"), "--set", "backend.options={bogus=1}",
                        "--input-bind", f"tcp://127.0.0.1:{free_tcp_port()}", "--output-bind", f"tcp://127.0.0.1:{free_tcp_port()}"]),
        capture_output=True, text=True, timeout=60,
    )
    assert start.returncode == 78 and "bogus" in start.stdout + start.stderr


def test_check_config_refuses_a_graph_the_chip_cannot_run(tmp_path: Path) -> None:
    """An unsupported NIR node is refused by check-config (exit 78) naming the node."""
    import nir

    from s2gesture.daemon.card import read_model, write_model

    write_tiny_model(tmp_path / "m.nir")
    model = read_model(tmp_path / "m.nir")
    nodes = dict(model.graph.nodes)
    nodes["lif1"] = nir.Threshold(threshold=np.ones((4, 15, 15), dtype=np.float32))
    write_model(tmp_path / "bad.nir", nir.NIRGraph(nodes=nodes, edges=model.graph.edges), model.card)
    bad = _check_config("--model", str(tmp_path / "bad.nir"))
    assert bad.returncode == 78 and "lif1" in bad.stderr, bad.stderr


def test_metrics_on_a_non_loopback_address_need_an_explicit_opt_in() -> None:
    """metrics.address 0.0.0.0 is refused unless metrics.allow_remote is set."""
    refused = _check_config("--set", "metrics.enabled=true", "--set", "metrics.address=0.0.0.0")
    assert refused.returncode == 78 and "allow_remote" in refused.stderr


def test_secrets_are_masked_whatever_their_shape(tmp_path: Path) -> None:
    """A curve section given as a string, or a key list given as a string, is never echoed back in the error."""
    secret = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
    whole = tmp_path / "whole.toml"
    whole.write_text(f'schema_version = 1\ncurve = "{secret}"\n')
    listed = tmp_path / "listed.toml"
    listed.write_text(f'schema_version = 1\n[curve]\nclient_public_keys = "{secret}"\n')
    for path in (whole, listed):
        got = _check_config("--config", str(path))
        assert got.returncode == 78 and secret not in got.stderr and "curve" in got.stderr, got.stderr
