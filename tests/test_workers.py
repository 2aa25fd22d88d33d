"""Backend workers: `s2gestured --workers N` runs windows of several streams at once, published as one worker would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from daemon_helpers import DaemonProcess, interleave, random_events, recording_frames, start_daemon

from s2gesture.daemon import wire
from s2gesture.daemon.testing import daemon_command, write_tiny_model

pytestmark = pytest.mark.timeout(120)

STREAMS = 5
#: short windows: many preds per stream, so their order means something
PLAN = ["--set", "chunking.window_ticks=40", "--set", "chunking.stride_ticks=20", "--set", "chunking.min_activity=1"]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny test model file."""
    path = tmp_path_factory.mktemp("model") / "tiny.nir"
    write_tiny_model(path, seed=0)
    return path


def _messages() -> list[list[bytes]]:
    """Several streams of different events, interleaved as cameras sending at once would."""
    streams = [
        list(recording_frames(f"cam{i}", random_events(40_000, seed=40 + i, duration_us=1_500_000), 128, 128, packet_us=5_000))
        for i in range(STREAMS)
    ]
    return interleave(*streams)


def _outputs(d: DaemonProcess, messages: list[list[bytes]]) -> dict[str, list[dict[str, Any]]]:
    """Every pred and gesture per stream, in arrival order, until each stream's final decision."""
    d.send_all(d.sender(), messages)
    out: dict[str, list[dict[str, Any]]] = {}
    finals = 0
    while finals < STREAMS:
        topic, body = d.recv(lambda t, b: t.startswith((wire.PRED_PREFIX, wire.GESTURE_PREFIX)), timeout_s=60)
        kind = "pred" if topic.startswith(wire.PRED_PREFIX) else "gesture"
        body = {k: v for k, v in body.items() if k != "latency_ms"}  # wall time, not a result
        out.setdefault(body["stream"], []).append({"kind": kind, **body})
        finals += kind == "gesture" and bool(body.get("final"))
    return out


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def test_two_workers_publish_every_stream_in_order_and_as_one_worker(tmp_path: Path, model_path: Path) -> None:
    """With --workers 2 each stream's preds arrive in chunk order and equal --workers 1 exactly, scores included."""
    messages = _messages()
    got = {}
    for workers in (1, 2):
        (tmp_path / f"w{workers}").mkdir()
        with start_daemon(tmp_path / f"w{workers}", model_path, mode="lossless", args=["--workers", str(workers), *PLAN]) as d:
            if workers == 2:
                assert len(_children(d.proc.pid)) == 2, "expected two backend worker processes"
            got[workers] = _outputs(d, messages)
            assert d.stop() == 0
    assert set(got[1]) == {f"cam{i}" for i in range(STREAMS)}
    for stream, outputs in got[2].items():
        chunks = [o["chunk"] for o in outputs if o["kind"] == "pred"]
        assert len(chunks) >= 5, f"{stream}: too few preds to show the order ({chunks})"
        assert chunks == sorted(chunks) and len(set(chunks)) == len(chunks), f"{stream}: preds out of order {chunks}"
        assert outputs == got[1][stream], f"{stream}: --workers 2 published something else than --workers 1"


def test_worker_processes_leave_with_the_daemon(tmp_path: Path, model_path: Path) -> None:
    """SIGTERM stops the daemon with exit 0 and no backend worker process outlives it."""
    with start_daemon(tmp_path, model_path, mode="lossless", args=["--workers", "2"]) as d:
        workers = _children(d.proc.pid)
        assert len(workers) == 2
        assert d.stop() == 0
    for pid in workers:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}/stat").exists() else ""
        assert ") Z " in stat, f"backend worker {pid} still runs after the daemon stopped"


def test_a_killed_worker_degrades_and_the_daemon_recovers(tmp_path: Path, model_path: Path) -> None:
    """A backend worker killed mid-service makes the daemon degraded; the retry serves again with new workers."""
    args = ["--workers", "2", "--set", "backend.retry_initial_s=0.5", *PLAN]
    with start_daemon(tmp_path, model_path, mode="lossless", args=args) as d:
        first = _children(d.proc.pid)
        os.kill(first[0], signal.SIGKILL)
        sender = d.sender()
        d.send_all(sender, recording_frames("a", random_events(6_000, seed=7, duration_us=1_500_000), 128, 128, packet_us=5_000))
        d.wait_status(lambda b: b["state"] == "degraded" and "worker" in (b.get("error") or ""))
        d.wait_status(lambda b: b["state"] == "ready")
        assert sorted(_children(d.proc.pid)) != sorted(first)
        d.send_all(sender, recording_frames("b", random_events(6_000, seed=8, duration_us=1_500_000), 128, 128, packet_us=5_000))
        preds = d.collect(lambda t, b: t.startswith(wire.PRED_PREFIX) and b["stream"] == "b",
                          lambda t, b: t.startswith(wire.GESTURE_PREFIX) and b["stream"] == "b" and b["final"], timeout_s=30)
        assert len(preds) >= 5, "the recovered daemon ran no windows of the new stream"
        assert d.stop() == 0


@pytest.mark.parametrize("value", ["0", "abc", "-2", "1.5"])
def test_bad_workers_flag_is_a_clear_config_error(value: str) -> None:
    """--workers that is not a whole number >= 1 exits 78 with one line naming the flag, the rule and the value."""
    proc = subprocess.run([*daemon_command(["--workers", value, "check-config"])], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 78
    assert f"argument --workers: expected a whole number of backend workers >= 1 (e.g. --workers 2), found '{value}'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_workers_setting_names_the_key_and_its_variable(tmp_path: Path) -> None:
    """backend.workers = 0 in the environment is refused naming the key, its environment variable and the bound."""
    env = {**os.environ, "S2G_BACKEND__WORKERS": "0"}
    proc = subprocess.run([sys.executable, "-m", "s2gesture.daemon.main", "check-config"], capture_output=True,
                          text=True, env=env, timeout=60, check=False)
    assert proc.returncode == 78
    assert "backend.workers (env S2G_BACKEND__WORKERS): Input should be greater than or equal to 1; given '0'" in proc.stderr
