"""Prophesee RAW/DAT and ROS bag readers: round trips through the libraries' writers, a hand-encoded EVT 2.0
golden file, format detection, and errors that name the file, offset and field."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from s2gesture.clients import replay
from s2gesture.daemon.errors import EventDataError
from s2gesture.daemon.events import EVENT_DTYPE
from s2gesture.models.datasets import detect_format, load_recording, prophesee, rosbag

pytest.importorskip("expelliarmus")
pytest.importorskip("rosbags")


def _events(n: int, seed: int, size: tuple[int, int] = (640, 480), t0: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ev = np.empty(n, dtype=EVENT_DTYPE)
    ev["x"], ev["y"] = rng.integers(0, size[0], n), rng.integers(0, size[1], n)
    ev["p"] = rng.integers(0, 2, n).astype(bool)
    ev["t"] = t0 + np.sort(rng.integers(0, 3_000_000, n))
    return ev


@pytest.mark.parametrize("encoding", ["evt2", "evt3", "dat"])
def test_prophesee_files_round_trip_exactly_with_their_sensor_size(tmp_path: Path, encoding: str) -> None:
    """Events written by expelliarmus (EVT 2.0, EVT 3.0, DAT) read back bit-exact with the header's sensor size."""
    ev = _events(50_000, seed=1)
    if encoding == "dat":
        path = prophesee.write_dat(tmp_path / "r.dat", ev, (640, 480))
    else:
        path = prophesee.write_raw(tmp_path / "r.raw", ev, (640, 480), encoding=encoding)
    assert detect_format(path) == "prophesee"
    rec = load_recording(path)
    assert rec.sensor_size == (640, 480) and rec.meta["encoding"] == encoding
    np.testing.assert_array_equal(rec.events, ev)


def test_hand_encoded_evt2_golden_file_decodes_to_its_events(tmp_path: Path) -> None:
    """An EVT 2.0 file encoded here from the format's word layout (not by a library) decodes to the same events."""
    # EVT 2.0: 32-bit words, type in bits 28-31; CD_OFF 0x0 / CD_ON 0x1 with t[5:0] in 22-27, x in 11-21,
    # y in 0-10; EVT_TIME_HIGH 0x8 with t[33:6] in 0-27
    events = [(5, 3, 1, 100), (7, 9, 0, 130), (1279, 719, 1, 70_000)]
    words, high = [], -1
    for x, y, p, t in events:
        if t >> 6 != high:
            high = t >> 6
            words.append(0x8 << 28 | high)
        words.append((0x1 if p else 0x0) << 28 | (t & 0x3F) << 22 | x << 11 | y)
    path = tmp_path / "golden.raw"
    path.write_bytes(b"% evt 2.0\n% format EVT2;height=720;width=1280\n% end\n" + struct.pack(f"<{len(words)}I", *words))
    rec = load_recording(path)
    assert rec.sensor_size == (1280, 720)
    assert [(int(e["x"]), int(e["y"]), int(e["p"]), int(e["t"])) for e in rec.events] == events


def test_prophesee_errors_name_file_offset_and_field(tmp_path: Path) -> None:
    """A truncated payload, a missing encoding line and an event outside the sensor each name where and what."""
    ev = _events(1000, seed=2)
    path = prophesee.write_raw(tmp_path / "t.raw", ev, (640, 480), encoding="evt2")
    _, start = prophesee.read_header(path)
    path.write_bytes(path.read_bytes() + b"\x01")
    size = path.stat().st_size
    with pytest.raises(EventDataError, match=rf"t\.raw: offset {size - 1}: field events: 1 trailing bytes"):
        load_recording(path)
    bare = tmp_path / "bare.raw"
    bare.write_bytes(b"% date today\n" + b"\0" * 8)
    with pytest.raises(EventDataError, match=r"bare\.raw: offset 0: field header: no '% evt 2.0'"):
        load_recording(bare)
    small = prophesee.write_raw(tmp_path / "small.raw", ev, (640, 480), encoding="evt3")
    small.write_bytes(small.read_bytes().replace(b"% geometry 640x480", b"% geometry 64x48"))
    with pytest.raises(EventDataError, match=r"small\.raw: event \d+: field [xy]: .* outside the 64x48 sensor"):
        load_recording(small)
    assert start > 0


@pytest.mark.parametrize(
    ("name", "msgtype"),
    [("ros1.bag", rosbag.DVS_TYPE), ("ros2_db3", rosbag.DVS_TYPE), ("ros2.mcap", rosbag.PACKET_TYPE), ("ros1_packet.bag", rosbag.PACKET_TYPE)],
)
def test_ros_bags_round_trip_dvs_and_mono_packets(tmp_path: Path, name: str, msgtype: str) -> None:
    """dvs_msgs/EventArray and event_camera_msgs/EventPacket (mono) bags, ROS 1 and ROS 2, read back exactly."""
    ev = _events(5_000, seed=3, size=(346, 260), t0=1_600_000_000_000_000)
    path = rosbag.write_bag(tmp_path / name, ev, (346, 260), msgtype=msgtype)
    assert detect_format(path) == "rosbag"
    rec = load_recording(path)
    assert rec.sensor_size == (346, 260) and rec.meta["topic"] == "/events"
    np.testing.assert_array_equal(rec.events, ev)


def test_ros2_bag_of_evt3_packets_decodes_as_one_stream(tmp_path: Path) -> None:
    """evt3 EventPackets split mid-stream decode to the EVT 3.0 file's events (state runs across packets)."""
    ev = _events(20_000, seed=4, size=(1280, 720))
    raw = prophesee.write_raw(tmp_path / "s.raw", ev, (1280, 720), encoding="evt3")
    _, start = prophesee.read_header(raw)
    bag = rosbag.write_bag(tmp_path / "evt3.mcap", ev, (1280, 720), msgtype=rosbag.PACKET_TYPE, encoding="evt3",
                           evt3_payload=raw.read_bytes()[start:])
    rec = load_recording(bag)
    np.testing.assert_array_equal(rec.events, ev)


def test_bag_without_event_topic_names_what_it_has(tmp_path: Path) -> None:
    """A bag whose topics hold no event messages says which topics and types it found."""
    from rosbags.rosbag2 import Writer

    store = rosbag.typestore()
    String = store.types["std_msgs/msg/String"]
    with Writer(tmp_path / "chat", version=9) as w:
        conn = w.add_connection("/chatter", "std_msgs/msg/String", typestore=store)
        w.write(conn, 1, store.serialize_cdr(String(data="hi"), "std_msgs/msg/String"))
    with pytest.raises(EventDataError, match=r"chat: field topic: no dvs_msgs/msg/EventArray .*'/chatter'"):
        load_recording(tmp_path / "chat")


def test_replay_reads_the_new_formats_through_the_one_detection(tmp_path: Path) -> None:
    """replay's sources take a .raw file and a ROS 2 bag folder by detection alone."""
    ev = _events(2_000, seed=5)
    raw = prophesee.write_raw(tmp_path / "a.raw", ev, (640, 480), encoding="evt2")
    bag = rosbag.write_bag(tmp_path / "bag", ev, (640, 480), msgtype=rosbag.PACKET_TYPE)
    args = replay.build_parser().parse_args([str(raw), str(bag), "--no-wait"])
    got = replay.load_recordings(args)
    assert len(got) == 2
    for rec in got:
        np.testing.assert_array_equal(rec.events, ev)
    with pytest.raises(replay.bus.ClientError, match=r"\.raw, \.dat, \.bag"):
        replay.detect_format(tmp_path / "x.txt")
