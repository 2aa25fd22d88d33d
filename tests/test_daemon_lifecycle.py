"""The real daemon's lifecycle: reload, shutdown, live-mode drops, degraded backends, metrics, stack dumps."""

from __future__ import annotations

import signal
import time
import urllib.request
from pathlib import Path

import pytest
from daemon_helpers import free_tcp_port, random_events, recording_frames, start_daemon

from s2gesture.daemon import wire
from s2gesture.daemon.testing import write_tiny_model

pytestmark = pytest.mark.timeout(90)


def test_sighup_swaps_the_model_and_keeps_streams_and_old_model_on_error(tmp_path: Path) -> None:
    """SIGHUP loads a changed model (new hash, counters kept); a broken file keeps the running model."""
    model = tmp_path / "m.nir"
    first = write_tiny_model(model, seed=0)
    with start_daemon(tmp_path, model, mode="lossless") as d:
        d.send_all(d.sender(), recording_frames("cam", random_events(20_000, seed=1, duration_us=300_000), 128, 128))
        d.recv(lambda t, b: t == "s2g/v1/gesture/cam/" and b["final"])
        second = write_tiny_model(model, seed=1)
        assert second.hash != first.hash
        d.send_signal(signal.SIGHUP)
        status = d.wait_status(lambda b: b["model"]["hash"] == second.hash and b["state"] == "ready")
        assert status["streams"]["cam"]["events"] == 20_000
        model.write_bytes(b"not a model")
        d.send_signal(signal.SIGHUP)
        status = d.wait_status(lambda b: "error" in b and b["state"] == "ready")
        assert status["model"]["hash"] == second.hash and "reload failed" in status["error"]
        d.send_all(d.sender(), recording_frames("cam", random_events(20_000, seed=2, duration_us=300_000), 128, 128))
        _, final = d.recv(lambda t, b: t == "s2g/v1/gesture/cam/" and b["final"])
        assert final["model"]["hash"] == second.hash
        assert d.stop() == 0


def test_metrics_stack_dump_and_sigterm_drain(tmp_path: Path) -> None:
    """Metrics match the status on 127.0.0.1; SIGUSR1 dumps stacks; SIGTERM flushes open segments and exits 0."""
    write_tiny_model(tmp_path / "m.nir")
    port = free_tcp_port()
    args = ["--metrics-port", str(port)]
    with start_daemon(tmp_path, tmp_path / "m.nir", mode="lossless", transport="ipc", args=args) as d:
        frames = list(recording_frames("open", random_events(30_000, seed=3, duration_us=400_000), 128, 128, eos=False))
        d.send_all(d.sender(), frames)
        d.wait_status(lambda b: b["streams"].get("open", {}).get("packets") == len(frames))
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert 's2g_events_total{stream="open"} 30000.0' in text
        assert 's2g_state{state="ready"} 1.0' in text and "s2g_inference_seconds_bucket" in text
        assert 's2g_model_info{backend="emulator",hash=' in text
        d.send_signal(signal.SIGUSR1)  # stack dump on stderr, the daemon goes on
        d.wait_status(lambda b: b["state"] == "ready")
        d.send_signal(signal.SIGTERM)
        _, final = d.recv(lambda t, b: t == "s2g/v1/gesture/open/" and b["final"])
        _, stopping = d.recv(lambda t, b: t == wire.STATUS_TOPIC and b["state"] == "stopping")
        assert stopping["streams"]["open"]["events"] == 30_000 and final["n_chunks"] > 0
        assert d.stop() == 0
        log = d.log_path.read_text()
        assert "most recent call first" in log and "in _loop" in log  # faulthandler: the loop is visible


def test_live_mode_drops_the_oldest_when_behind_and_counts_it(tmp_path: Path) -> None:
    """A burst far beyond the maximum lag is cut from the oldest side; accepted + dropped = sent."""
    write_tiny_model(tmp_path / "m.nir")
    args = ["--set", "input.max_lag_ms=20", "--set", "input.queue_packets=8"]
    with start_daemon(tmp_path, tmp_path / "m.nir", mode="live", transport="ipc", args=args) as d:
        sender = d.sender()
        frames = list(recording_frames("burst", random_events(200_000, seed=4, duration_us=2_000_000), 128, 128,
                                       packet_us=2_000, eos=False))
        d.proc.send_signal(signal.SIGSTOP)  # the whole burst waits in the socket, as behind a slow backend
        try:
            d.send_all(sender, frames)
        finally:
            d.proc.send_signal(signal.SIGCONT)
        status = d.wait_status(
            lambda b: (s := b["streams"].get("burst")) is not None and s["queue"] == 0
            and s["packets"] + sum(s["dropped"].values()) == len(frames)
        )
        dropped = status["streams"]["burst"]["dropped"]
        assert set(dropped) <= {"lag", "queue_full"} and sum(dropped.values()) > 0
        assert d.stop() == 0


def test_live_mode_never_drops_an_eos_when_cutting_a_backlog(tmp_path: Path) -> None:
    """An eos queued between two bursts survives the oldest-first cut, so its segment still gets a final decision."""
    write_tiny_model(tmp_path / "m.nir")
    args = ["--set", "input.max_lag_ms=20", "--set", "input.queue_packets=8"]
    with start_daemon(tmp_path, tmp_path / "m.nir", mode="live", transport="ipc", args=args) as d:
        sender = d.sender()
        first = random_events(40_000, seed=5, duration_us=400_000)
        second = random_events(40_000, seed=6, duration_us=400_000)
        second["t"] += int(first["t"][-1]) + 1_000
        frames = list(recording_frames("two", first, 128, 128, packet_us=4_000, segment="a"))
        eos_seq = len(frames) - 1
        frames += list(recording_frames("two", second, 128, 128, packet_us=4_000, segment="b", seq0=len(frames), eos=False))
        d.proc.send_signal(signal.SIGSTOP)  # both bursts and the eos between them wait in the socket
        try:
            d.send_all(sender, frames)
        finally:
            d.proc.send_signal(signal.SIGCONT)
        final = d.recv(lambda topic, body: topic.startswith("s2g/v1/gesture/two/") and body.get("final") is True)[1]
        # answered by its eos (seq of the eos), not by segment "b" opening (which would carry a packet's seq)
        assert (final["segment"], final["seq"]) == ("a", eos_seq)
        status = d.wait_status(lambda b: (s := b["streams"].get("two")) is not None and s["queue"] == 0)
        assert sum(status["streams"]["two"]["dropped"].values()) > 0  # the backlog really was cut
        assert d.stop() == 0


def test_failing_backend_degrades_and_falls_back_to_the_emulator(tmp_path: Path) -> None:
    """A backend that cannot load puts the daemon in 'degraded' with the error; the emulator fallback serves."""
    write_tiny_model(tmp_path / "m.nir")
    args = ["--backend", "spinnaker2", "--set", "backend.fallback_to_emulator=true", "--set", "backend.retry_initial_s=0.2"]
    with start_daemon(tmp_path, tmp_path / "m.nir", mode="lossless", args=args) as d:
        status = d.wait_status(lambda b: b["state"] == "degraded")
        assert status["backend"] == "emulator" and "error" in status
        d.send_all(d.sender(), recording_frames("fb", random_events(20_000, seed=5, duration_us=300_000), 128, 128))
        _, final = d.recv(lambda t, b: t == "s2g/v1/gesture/fb/" and b["final"])
        assert final["backend"] == "emulator"
        d.wait_status(lambda b: b["state"] == "degraded" and b["uptime_s"] > 0.5)  # retries keep failing, it stays up
        assert d.stop() == 0


def test_failing_backend_without_fallback_stays_up_degraded_and_counts(tmp_path: Path) -> None:
    """Without a fallback the daemon stays up in 'degraded', retries, and counts packets it cannot serve."""
    write_tiny_model(tmp_path / "m.nir")
    args = ["--backend", "spinnaker2", "--set", "backend.retry_initial_s=0.1", "--set", "backend.retry_max_s=0.2"]
    with start_daemon(tmp_path, tmp_path / "m.nir", mode="lossless", args=args) as d:
        d.send_all(d.sender(), recording_frames("nb", random_events(2_000, seed=7, duration_us=50_000), 128, 128))
        status = d.wait_status(lambda b: b["streams"].get("nb", {}).get("dropped", {}).get("no_backend", 0) > 0)
        assert status["state"] == "degraded" and status["backend"] == "spinnaker2" and "spinnaker2" in status["error"]
        # retries every 0.1-0.2 s: wait for the second in the log (a loaded machine starts the first late)
        deadline = time.monotonic() + 20.0
        while d.log_tail(200).count("retrying backend") < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert d.wait_status(lambda b: True)["state"] == "degraded"  # still up, still degraded after retrying
        assert d.stop() == 0
        assert d.log_tail(200).count("retrying backend") >= 2


def test_silent_streams_are_flushed_then_evicted(tmp_path: Path) -> None:
    """A stream that stops without eos gets its final decision after flush_after_s, then leaves the status."""
    write_tiny_model(tmp_path / "m.nir")
    args = ["--set", "streams.flush_after_s=0.3", "--set", "streams.evict_after_s=1.0"]
    with start_daemon(tmp_path, tmp_path / "m.nir", mode="lossless", transport="ipc", args=args) as d:
        d.send_all(d.sender(), recording_frames("quiet", random_events(20_000, seed=8, duration_us=300_000), 128, 128, eos=False))
        _, final = d.recv(lambda t, b: t == "s2g/v1/gesture/quiet/" and b["final"])
        assert final["n_chunks"] > 0
        d.sender().send_multipart(wire.encode_eos("quiet", 999))  # a late eos repeats the answer
        _, again = d.recv(lambda t, b: t == "s2g/v1/gesture/quiet/" and b["final"])
        assert (again["class_id"], again["seq"], again["n_chunks"]) == (final["class_id"], 999, final["n_chunks"])
        d.wait_status(lambda b: "quiet" in b["streams"])
        d.wait_status(lambda b: "quiet" not in b["streams"])
        assert d.stop() == 0
