"""Replay's pure parts: packetizing, placing recordings on one time axis, pacing, argument checks."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2gesture.clients import bus, replay
from s2gesture.daemon import wire
from s2gesture.daemon.events import EVENT_DTYPE, Recording


def _events(t_us: list[int] | np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.sort(np.asarray(t_us, dtype=np.int64))
    ev = np.zeros(len(t), dtype=EVENT_DTYPE)
    ev["x"] = rng.integers(0, 128, len(t))
    ev["y"] = rng.integers(0, 128, len(t))
    ev["p"] = rng.integers(0, 2, len(t)).astype(bool)
    ev["t"] = t
    return ev


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 200_000), min_size=1, max_size=300),
    st.integers(1_000, 10_000),
)
def test_packetize_covers_every_event_once_in_windows(times: list[int], packet_us: int) -> None:
    """Packets hold every event exactly once, in order, each inside its window, and every window is present."""
    ev = _events(times)
    packets = replay.packetize(ev, packet_us)
    joined = np.concatenate([p.events for p in packets])
    assert np.array_equal(joined, ev)
    t0 = int(ev["t"][0])
    for k, pkt in enumerate(packets):
        lo, hi = t0 + k * packet_us, t0 + (k + 1) * packet_us
        assert np.all((pkt.events["t"] >= lo) & (pkt.events["t"] < hi))
        assert pkt.t_end_us == (hi if k < len(packets) - 1 else None)
    assert len(packets) == (int(ev["t"][-1]) - t0) // packet_us + 1


def test_packets_encode_and_decode_back_to_the_recording() -> None:
    """A segment sent as packets decodes (through the daemon's own validator) to the shifted recording."""
    rng = np.random.default_rng(1)
    rec = Recording(_events(rng.integers(5_000, 90_000, 2_000), seed=1), (128, 128), label=3, name="r")
    seg = next(replay.place_segments([rec], gap_us=0, start_us=1_000_000))
    got = []
    for seq, pkt in enumerate(replay.packetize(seg.shifted_events(), 5_000)):
        frames = wire.encode_events("s", seq, 128, 128, pkt.events, t_end=pkt.t_end_us, segment=seg.segment_id)
        dec = wire.decode_input(frames)
        assert isinstance(dec, wire.EventPacket) and dec.segment == seg.segment_id
        got.append(dec.events)
    joined = np.concatenate(got)
    assert joined["t"][0] == 1_000_000
    assert np.array_equal(joined["t"] - 1_000_000, rec.events["t"] - rec.events["t"][0])
    assert np.array_equal(joined[["x", "y", "p"]], rec.events[["x", "y", "p"]])


def test_place_segments_keeps_time_non_decreasing_with_gaps() -> None:
    """Consecutive recordings are shifted so stream time never goes back and the gap is respected."""
    recs = [Recording(_events([100, 200, 5_000 + i]), (128, 128), label=i, name=f"r{i}") for i in range(4)]
    recs.insert(2, Recording(_events([]), (128, 128), name="empty"))
    segs = list(replay.place_segments(recs, gap_us=300, start_us=10))
    assert [s.recording.name for s in segs] == ["r0", "r1", "r2", "r3"]
    assert segs[0].t_first_us == 10
    for a, b in itertools.pairwise(segs):
        assert b.t_first_us == a.t_last_us + 1 + 300
    assert len({s.segment_id for s in segs}) == len(segs)


class FakeClock:
    """A clock whose sleep advances it: pacing is tested without waiting."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


@pytest.mark.parametrize("speed", [1.0, 4.0, 0.5])
def test_pacer_releases_packets_at_scaled_event_time(speed: float) -> None:
    """Each event time becomes due at origin + dt / speed, without drift from repeated small waits."""
    clock = FakeClock()
    pacer = replay.Pacer(speed, clock=clock, sleep=clock.sleep)
    pacer.wait_until(1_000_000)
    for t_us in range(1_000_000, 3_000_001, 1_000):
        pacer.wait_until(t_us)
        clock.now += 0.0001  # work between packets must not accumulate into lateness
    assert clock.now == pytest.approx(100.0 + 2.0 / speed + 0.0001, abs=2e-4)


def test_pacer_as_fast_as_possible_never_sleeps() -> None:
    """Infinite speed means no waiting at all."""
    clock = FakeClock()
    pacer = replay.Pacer(math.inf, clock=clock, sleep=clock.sleep)
    for t_us in (0, 10_000_000, 20_000_000):
        assert pacer.wait_until(t_us) == 0.0
    assert clock.slept == []


def test_bad_speed_and_packet_size_are_refused_with_the_range() -> None:
    """Speed <= 0 and packets outside 1-10 ms are errors that name the allowed range."""
    with pytest.raises(ValueError, match="speed must be > 0"):
        replay.Pacer(0)
    with pytest.raises(bus.ClientError, match=r"\[1, 10\] ms"):
        replay.check_packet_ms(20)
    assert replay.check_packet_ms(2.5) == 2_500


def test_replay_without_sources_explains_what_to_give(capsys: pytest.CaptureFixture[str]) -> None:
    """No SOURCE and no --synthetic is a usage error (exit 2) that says what to pass."""
    assert replay.cli(["--no-wait", "--timeout", "0.1"]) == 2
    assert "--synthetic N" in capsys.readouterr().err


def test_detect_format_by_path(tmp_path) -> None:
    """Folders are tonic layout, files go by suffix, unknown suffixes name --format."""
    assert replay.detect_format(tmp_path) == "tonic"
    assert replay.detect_format(tmp_path / "user01_led.aedat") == "aedat3"
    assert replay.detect_format(tmp_path / "x.AEDAT4") == "aedat4"
    assert replay.detect_format(tmp_path / "x.npz") == "npz"
    with pytest.raises(bus.ClientError, match="--format"):
        replay.detect_format(tmp_path / "x.bin")


def _small_recordings(n: int) -> list[Recording]:
    rng = np.random.default_rng(5)
    return [
        Recording(_events(np.sort(rng.integers(0, 200_000, 500)) + 1_000_000 * (i + 1), seed=i), (128, 128), label=i + 2, name=f"r{i}")
        for i in range(n)
    ]


def _args(*argv: str):
    return replay.build_parser().parse_args([*argv, "--no-wait"])


def test_sources_of_every_format_load_with_labels(tmp_path) -> None:
    """Files written by the dataset writers load through replay's sources: tonic, AEDAT 3.1 + CSV, AEDAT4, npz."""
    from s2gesture.models.datasets import aedat3, aedat4, npz, tonic_layout

    recs = _small_recordings(3)
    for rec in recs:
        tonic_layout.write_sample(tmp_path / "tonic", "test", 24, "led", int(rec.label), rec.events)
    got = replay.load_recordings(_args(str(tmp_path / "tonic")))
    assert [r.label for r in got] == [2, 3, 4]
    assert all(np.array_equal(a.events, b.events) for a, b in zip(got, recs, strict=True))

    events = np.concatenate([r.events for r in recs])
    segments = [(int(r.label), int(r.events["t"][0]), int(r.events["t"][-1]) + 1) for r in recs]
    aedat3.write_session(tmp_path / "aedat" / "user24_led.aedat", tmp_path / "aedat" / "user24_led_labels.csv", events, segments)
    for source in (tmp_path / "aedat" / "user24_led.aedat", tmp_path / "aedat"):
        got = replay.load_recordings(_args(str(source)))
        assert [r.label for r in got] == [2, 3, 4]
        assert np.array_equal(got[1].events, recs[1].events)

    aedat4.write_aedat4(tmp_path / "cam.aedat4", recs[0].events, (128, 128))
    npz.write_npz(tmp_path / "one.npz", recs[2])
    got = replay.load_recordings(_args(str(tmp_path / "cam.aedat4"), str(tmp_path / "one.npz"), "--limit", "2"))
    assert len(got) == 2 and got[1].label == 4
    assert np.array_equal(got[0].events, recs[0].events)


def test_dataset_sources_load_lazily(tmp_path) -> None:
    """A tonic-layout source loads a recording only when it is replayed (a dataset need not fit in memory)."""
    from s2gesture.models.datasets import tonic_layout

    for rec in _small_recordings(2):
        tonic_layout.write_sample(tmp_path, "test", 25, "lab", int(rec.label), rec.events)
    got = replay.load_recordings(_args(str(tmp_path)))
    assert isinstance(got, replay.LazyRecordings) and len(got) == 2
    (tmp_path / "DVSGesture" / "ibmGestureTest" / "user25_lab" / "3.npy").unlink()
    assert got[0].label == 2
    with pytest.raises(Exception, match=r"3\.npy"):
        got[1]


def test_synthetic_recordings_cover_every_class_per_block_and_are_seeded() -> None:
    """--synthetic 11 holds each class once; the same seed gives the same events."""
    a = replay.synthetic_recordings(11, seed=3, duration_s=0.3)
    assert sorted(r.label for r in a) == list(range(11))
    b = replay.synthetic_recordings(2, seed=3, duration_s=0.3)
    assert np.array_equal(a[0].events, b[0].events) and a[1].label == b[1].label
