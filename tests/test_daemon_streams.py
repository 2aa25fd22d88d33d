"""The real daemon on real sockets: exact agreement with the offline path, many streams, hostile input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgpack
import numpy as np
import pytest
from daemon_helpers import DaemonProcess, random_events, recording_frames, start_daemon

from s2gesture.daemon import wire
from s2gesture.daemon.backends import get_backend, options_from_card
from s2gesture.daemon.card import read_model
from s2gesture.daemon.chunking import ChunkPlan, fit_plan
from s2gesture.daemon.config import load_config
from s2gesture.daemon.decision import DecisionPolicy, classify_recording
from s2gesture.daemon.preprocess import PreprocessSpec, preprocess_recording
from s2gesture.daemon.testing import write_tiny_model

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny test model file."""
    path = tmp_path_factory.mktemp("model") / "tiny.nir"
    write_tiny_model(path, seed=0)
    return path


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[DaemonProcess]:
    """One lossless daemon shared by the tests of this module (each uses its own stream ids)."""
    with start_daemon(tmp_path_factory.mktemp("d"), model_path, mode="lossless", transport="ipc") as d:
        yield d
        assert d.stop() == 0


def _is(kind: str, stream: str, final: bool | None = None):  # type: ignore[no-untyped-def]
    prefix = f"s2g/v1/{kind}/{stream}/"
    return lambda t, b: t == prefix and (final is None or b.get("final") == final)


def _offline(model_path: Path, events: np.ndarray, t_stop_us: int) -> tuple[int, np.ndarray]:
    """Final class and per-chunk scores of the offline path with the daemon's default config."""
    cfg = load_config(None, environ={})
    model = read_model(model_path)
    backend = get_backend("emulator", **options_from_card(model.card))
    backend.load(model.graph)
    spec = PreprocessSpec.from_card(model.card.input, (128, 128))
    spikes = preprocess_recording(events, spec, t_stop_us=t_stop_us)
    c = cfg.chunking
    plan = fit_plan(ChunkPlan(c.window_ticks, c.stride_ticks, c.min_activity), backend)
    policy = DecisionPolicy(cfg.decision.params())
    return classify_recording(spikes, backend, plan, policy, t0_us=int(events["t"][0]), dt_us=spec.dt_us)


def test_one_stream_matches_offline_classification(daemon: DaemonProcess, model_path: Path) -> None:
    """Per-chunk scores and the final class published equal classify_recording on the same events."""
    events = random_events(150_000, seed=3, duration_us=1_234_567)
    frames = list(recording_frames("solo", events, 128, 128, packet_us=7_000, segment="rec-1"))
    t_stop = msgpack.unpackb(frames[-2][1])["t_end"]
    daemon.send_all(daemon.sender(), frames)
    preds = daemon.collect(_is("pred", "solo"), _is("gesture", "solo", final=True))
    _, table = _offline(model_path, events, t_stop)
    active = table[table.sum(axis=1) > 0]
    assert len(preds) == len(active) > 3
    np.testing.assert_array_equal(np.array([p["scores"] for p in preds]), active)
    assert all(p["segment"] == "rec-1" and p["backend"] == "emulator" and p["latency_ms"] >= 0 for p in preds)
    window_us = load_config(None, environ={}).chunking.window_ticks * 1000
    assert all(p["t_end"] - p["t_start"] == window_us for p in preds[:-1])


def test_final_decision_is_published_with_identity(daemon: DaemonProcess, model_path: Path) -> None:
    """The eos answer carries final: true, the segment, the model name and hash, and the offline class."""
    events = random_events(60_000, seed=4, duration_us=700_000)
    frames = list(recording_frames("fin", events, 128, 128, segment="s9"))
    t_stop = msgpack.unpackb(frames[-2][1])["t_end"]
    daemon.send_all(daemon.sender(), frames)
    _, body = daemon.recv(_is("gesture", "fin", final=True))
    expected_class, _ = _offline(model_path, events, t_stop)
    assert body["class_id"] == expected_class and body["segment"] == "s9" and body["final"] is True
    assert body["model"] == {"name": "tiny-test", "hash": read_model(model_path).hash}
    assert body["label"] == read_model(model_path).card.classes[expected_class]


def test_many_streams_are_independent(daemon: DaemonProcess) -> None:
    """Interleaved packets of several streams each get their own final decision and counters."""
    names = [f"multi{k}" for k in range(5)]
    streams = [list(recording_frames(n, random_events(20_000, seed=10 + k, duration_us=400_000), 128, 128))
               for k, n in enumerate(names)]
    sender = daemon.sender()
    for group in zip(*streams, strict=False):
        for frames in group:
            sender.send_multipart(frames)
    finals = {}
    while len(finals) < len(names):
        _, body = daemon.recv(lambda t, b: t.startswith("s2g/v1/gesture/multi") and b["final"])
        finals[body["stream"]] = body
    status = daemon.wait_status(lambda b: all(b["streams"].get(n, {}).get("events") == 20_000 for n in names))
    for n, frames in zip(names, streams, strict=True):
        assert status["streams"][n]["packets"] == len(frames) - 1 and status["streams"][n]["dropped"] == {}


def test_hostile_input_is_counted_by_reason_and_the_daemon_keeps_serving(daemon: DaemonProcess) -> None:
    """Garbage of every kind is dropped and counted per stream and reason; a valid stream still gets its answer."""
    rng = np.random.default_rng(7)
    sender = daemon.sender()
    good = random_events(10, seed=1)
    body = msgpack.unpackb(wire.encode_events("evil", 0, 128, 128, good)[1])
    bad_bodies = {
        "bad_msgpack": b"\xc1\xc1",
        "not_a_map": msgpack.packb([1, 2, 3]),
        "missing_key": msgpack.packb({k: v for k, v in body.items() if k != "n"}),
        "bad_length": msgpack.packb({**body, "n": 11}),
        "out_of_sensor": msgpack.packb({**body, "width": 2}),
        "bad_polarity": msgpack.packb({**body, "p": bytes([7] * 10)}),
        "unknown_version": msgpack.packb({**body, "v": 9}),
        "stream_mismatch": msgpack.packb({**body, "stream": "other"}),
    }
    for frames in [[b"dvs/v1/events/evil/", b] for b in bad_bodies.values()]:
        sender.send_multipart(frames)
    for _ in range(200):
        sender.send_multipart([b"dvs/v1/events/evil/", rng.bytes(int(rng.integers(0, 300)))])
    huge = wire.encode_events("evil", 1, 128, 128, good, t_end=2**61)  # would need 2**51 ticks of memory
    sender.send_multipart(huge)
    sender.send_multipart([b"dvs/v1/events/evil/", b"x", b"y"])
    sender.send_multipart([b"not a topic", b"x"])
    sender.send_multipart([b"dvs/v1/events/" + b"z" * 100 + b"/", b"x"])
    daemon.send_all(sender, recording_frames("afterwards", random_events(20_000, seed=2, duration_us=400_000), 128, 128))
    daemon.recv(_is("gesture", "afterwards", final=True))
    status = daemon.wait_status(lambda b: "evil" in b["streams"])
    dropped = status["streams"]["evil"]["dropped"]
    for reason in bad_bodies:
        assert dropped.get(reason, 0) >= 1, (reason, dropped)
    assert dropped.get("bad_time", 0) >= 1
    assert sum(dropped.values()) == len(bad_bodies) + 202
    assert status["streams"]["*"]["dropped"] == {"bad_topic": 1, "bad_stream": 1}
    assert status["state"] == "ready" and daemon.proc.poll() is None
    # logged once per (stream, reason) per interval, never once per packet
    drop_lines = [ln for ln in daemon.log_path.read_text().splitlines() if '"packet dropped"' in ln and '"evil"' in ln]
    assert len(drop_lines) == len({(ln.split('"reason": ')[1].split(",")[0]) for ln in drop_lines}) < 20


def test_time_going_backwards_drops_the_packet_and_restarts_the_window(daemon: DaemonProcess) -> None:
    """A packet earlier than the stream's clock is dropped as time_backwards; later packets are served."""
    sender = daemon.sender()
    first = random_events(5_000, seed=5, t0_us=1_000_000, duration_us=100_000)
    sender.send_multipart(wire.encode_events("back", 0, 128, 128, first, t_end=1_100_000))
    sender.send_multipart(wire.encode_events("back", 1, 128, 128, random_events(100, seed=6, t0_us=0, duration_us=1000)))
    daemon.send_all(sender, recording_frames("back", random_events(40_000, seed=7, duration_us=500_000), 128, 128, seq0=2))
    # the reset closes the first window with its own final decision; the eos answers the new window
    _, reset_final = daemon.recv(_is("gesture", "back", final=True))
    _, final = daemon.recv(_is("gesture", "back", final=True))
    status = daemon.wait_status(lambda b: b["streams"].get("back", {}).get("packets", 0) > 2)
    assert status["streams"]["back"]["dropped"] == {"time_backwards": 1}
    assert reset_final["seq"] == 0  # the last packet the first window accepted
    assert final["t_start"] < 1_000_000  # the decision covers the new window, not the dropped one


def test_a_long_gap_in_event_time_closes_the_segment(daemon: DaemonProcess) -> None:
    """Events resuming after more than streams.max_gap_s give the first part its final decision."""
    sender = daemon.sender()
    part1 = random_events(20_000, seed=8, duration_us=300_000)
    part2 = random_events(20_000, seed=9, t0_us=60_000_000, duration_us=300_000)
    daemon.send_all(sender, recording_frames("gap", part1, 128, 128, eos=False))
    daemon.send_all(sender, recording_frames("gap", part2, 128, 128, seq0=100))
    first = daemon.recv(_is("gesture", "gap", final=True))[1]
    second = daemon.recv(_is("gesture", "gap", final=True))[1]
    assert first["t_end"] <= 400_000 < 60_000_000 <= second["t_start"]


def test_a_sensor_the_mapping_cannot_use_is_dropped_not_fatal(tmp_path: Path) -> None:
    """A valid packet from a sensor smaller than a center-crop model's input is dropped as bad_sensor; the daemon serves on."""
    from dataclasses import replace

    from s2gesture.daemon.card import InputSpec, write_model
    from s2gesture.daemon.testing import tiny_gesture_card, tiny_gesture_graph

    card = replace(tiny_gesture_card("crop"), input=InputSpec(mapping="center-crop"))
    write_model(tmp_path / "crop.nir", tiny_gesture_graph(0), card)
    with start_daemon(tmp_path, tmp_path / "crop.nir", mode="lossless", transport="ipc") as d:
        sender = d.sender()
        tiny = random_events(50, seed=3, width=4, height=4)
        sender.send_multipart(wire.encode_events("small", 0, 4, 4, tiny))
        d.send_all(sender, recording_frames("big", random_events(20_000, seed=2, duration_us=400_000), 128, 128))
        d.recv(_is("gesture", "big", final=True))
        status = d.wait_status(lambda b: "small" in b["streams"])
        assert status["streams"]["small"]["dropped"] == {"bad_sensor": 1}
        assert d.proc.poll() is None
        assert d.stop() == 0


def test_made_up_stream_ids_past_the_limit_are_logged_per_reason_not_per_packet(tmp_path: Path) -> None:
    """Bad packets under ever new stream ids, once the stream table is full, are counted under '*' and logged once."""
    write_tiny_model(tmp_path / "m.nir")
    with start_daemon(tmp_path, tmp_path / "m.nir", mode="lossless", transport="ipc", args=["--set", "input.max_streams=2"]) as d:
        sender = d.sender()
        for name in ("a", "b"):
            sender.send_multipart(wire.encode_events(name, 0, 128, 128, random_events(10, seed=1)))
        body = msgpack.unpackb(wire.encode_events("x", 0, 128, 128, random_events(10, seed=1))[1])
        for i in range(300):
            stream = f"made-up-{i}"
            sender.send_multipart([f"dvs/v1/events/{stream}/".encode(), msgpack.packb({**body, "stream": stream, "n": 11})])
        status = d.wait_status(lambda b: b["totals"]["dropped"] >= 300)
        # every drop is counted, including those of made-up streams evicted since to make room
        assert status["totals"]["dropped_by_reason"] == {"bad_length": 300}
        assert set(status["streams"]) <= {"a", "b", "*"} | {f"made-up-{i}" for i in range(300)}
        assert d.stop() == 0
        lines = [ln for ln in d.log_path.read_text().splitlines() if '"packet dropped"' in ln]
        assert len(lines) == 1


def test_a_pause_shorter_than_max_gap_s_stays_in_one_segment(tmp_path: Path) -> None:
    """With streams.max_gap_s raised to 30 s, a 20 s pause in event time keeps the segment (no drop, one final)."""
    write_tiny_model(tmp_path / "m.nir")
    with start_daemon(tmp_path, tmp_path / "m.nir", mode="lossless", transport="ipc", args=["--set", "streams.max_gap_s=30"]) as d:
        sender = d.sender()
        part1 = random_events(20_000, seed=8, duration_us=300_000)
        part2 = random_events(20_000, seed=9, t0_us=20_300_000, duration_us=300_000)
        frames = list(recording_frames("pause", part1, 128, 128, eos=False))
        frames += list(recording_frames("pause", part2, 128, 128, seq0=len(frames)))
        d.send_all(sender, frames)
        _, final = d.recv(_is("gesture", "pause", final=True))
        status = d.wait_status(lambda b: b["streams"].get("pause", {}).get("packets", 0) == len(frames) - 1)
        assert status["streams"]["pause"]["dropped"] == {}
        assert final["seq"] == len(frames) - 1  # answered by the eos: the pause did not close the segment
        assert d.stop() == 0
