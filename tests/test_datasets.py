"""Readers and writers: every format round-trips, corrupt files name file/offset/field, reads stay lazy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from s2gesture.clients.cli import main as s2gesture_main
from s2gesture.daemon.errors import EventDataError
from s2gesture.daemon.events import Recording, make_events
from s2gesture.models.datasets import aedat3, aedat4, load_recording, npz, tonic_layout

TMP_OK = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def random_events(
    seed: int, n: int, size: tuple[int, int] = (128, 128), t0: int = 0, span: int = 10**7
) -> np.ndarray:
    """Sorted random events inside ``size``."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(t0, t0 + span, n))
    return make_events(rng.integers(0, size[0], n), rng.integers(0, size[1], n), rng.random(n) < 0.5, t)


# --- tonic layout ---------------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 2**42), min_size=1, max_size=200))
def test_tonic_time_encoding_is_exact(t_us: list[int]) -> None:
    """tonic's int64(t_ms * 1000) recovers every µs timestamp our writer encodes."""
    t = np.array(t_us, dtype=np.int64)
    np.testing.assert_array_equal((tonic_layout.t_us_to_ms(t) * 1000).astype(np.int64), t)


@TMP_OK
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(0, 500))
def test_tonic_layout_round_trip(tmp_path: Path, seed: int, n: int) -> None:
    """write_sample then load_sample gives the same events, label, user and lighting."""
    events = random_events(seed, n, t0=seed)
    tonic_layout.write_sample(tmp_path, "test", 27, "natural", 4, events)
    (sample,) = [s for s in tonic_layout.list_samples(tmp_path, "test") if s.user == 27 and s.label == 4]
    rec = tonic_layout.load_sample(sample)
    np.testing.assert_array_equal(rec.events, events)
    assert (rec.label, rec.meta["user"], rec.meta["lighting"]) == (4, 27, "natural")


def test_tonic_layout_matches_tonic_loader_arithmetic(tmp_path: Path) -> None:
    """Our reader converts a foreign float file exactly as tonic's DVSGesture.__getitem__ does."""
    from numpy.lib import recfunctions

    from s2gesture.daemon.events import EVENT_DTYPE

    rng = np.random.default_rng(1)
    raw = np.stack(
        [
            rng.integers(0, 128, 300),
            rng.integers(0, 128, 300),
            rng.integers(0, 2, 300),
            np.sort(rng.uniform(0, 6000, 300)),
        ],
        axis=1,
    )
    folder = tmp_path / "DVSGesture" / "ibmGestureTrain" / "user01_lab"
    folder.mkdir(parents=True)
    np.save(folder / "3.npy", raw)
    ref = raw.copy()
    ref[:, 3] *= 1000
    expected = recfunctions.unstructured_to_structured(ref, EVENT_DTYPE)
    np.testing.assert_array_equal(tonic_layout.load_sample(folder / "3.npy").events, expected)


def test_tonic_layout_errors_name_the_file(tmp_path: Path) -> None:
    """A truncated .npy, a wrong shape or a badly named folder raises EventDataError naming the path."""
    path = tonic_layout.write_sample(tmp_path, "train", 1, "led", 0, random_events(0, 100))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(EventDataError, match=r"0\.npy: not a readable"):
        tonic_layout.load_sample(path)
    np.save(path, np.zeros((5, 3)))
    with pytest.raises(EventDataError, match=r"expected an \(N, 4\)"):
        tonic_layout.load_sample(path)
    (tmp_path / "DVSGesture" / "ibmGestureTrain" / "junk").mkdir()
    with pytest.raises(EventDataError, match="not named userNN_<lighting>"):
        tonic_layout.list_samples(tmp_path, "train")
    with pytest.raises(EventDataError, match="no folder"):
        tonic_layout.list_samples(tmp_path / "nowhere", "test")


# --- AEDAT 3.1 ------------------------------------------------------------------------------------------


@TMP_OK
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(0, 3000), t0=st.sampled_from([0, 2**31 - 5000, 2**33]))
def test_aedat3_round_trip(tmp_path: Path, seed: int, n: int, t0: int) -> None:
    """Events written as AEDAT 3.1 read back identically, also across the 2^31 µs timestamp overflow."""
    events = random_events(seed, n, t0=t0, span=20_000)
    path = aedat3.write_aedat(tmp_path / "r.aedat", events, packet_events=700)
    index = aedat3.read_index(path)
    assert index.sensor_size == (128, 128)
    np.testing.assert_array_equal(aedat3.read_events(index), events)


def _session(tmp_path: Path, n_segments: int = 4) -> tuple[Path, list[np.ndarray]]:
    parts, segments = [], []
    for i in range(n_segments):
        ev = random_events(i, 2000, t0=1_000_000 * (i + 1), span=600_000)
        parts.append(ev)
        segments.append((i * 2, 1_000_000 * (i + 1), 1_000_000 * (i + 1) + 600_000))
    aedat_path = tmp_path / "user05_led.aedat"
    aedat3.write_session(
        aedat_path, aedat3.labels_path_for(aedat_path), np.concatenate(parts), segments, packet_events=500
    )
    return aedat_path, parts


def test_aedat3_segments_follow_the_labels(tmp_path: Path) -> None:
    """Each row of _labels.csv becomes one Recording with the 0-based label and exactly its events."""
    path, parts = _session(tmp_path)
    recs = aedat3.read_segments(path)
    assert [r.label for r in recs] == [0, 2, 4, 6]
    for rec, ev in zip(recs, parts, strict=True):
        np.testing.assert_array_equal(rec.events, ev)
    assert aedat3.labels_path_for(path).read_text().splitlines()[1] == "1,1000000,1600000"
    np.testing.assert_array_equal(load_recording(path, segment=2).events, parts[2])
    with pytest.raises(EventDataError, match="segment 9 does not exist"):
        aedat3.read_segment(path, 9)


def test_aedat3_segment_reads_only_its_packets(tmp_path: Path) -> None:
    """Garbage in the bodies of other gestures' packets does not matter: only overlapping packets are decoded."""
    path, parts = _session(tmp_path)
    index = aedat3.read_index(path)
    data = bytearray(path.read_bytes())
    seg_start, seg_end = 3_000_000, 3_600_000
    for row in index.packets:
        if row["t_last"] < seg_start or row["t_first"] >= seg_end:
            body = int(row["offset"])
            # Corrupt all but the first and last event (whose times the index holds) with impossible x.
            data[body + 11 : body + (int(row["number"]) - 1) * 8 : 8] = b"\xff" * (int(row["number"]) - 2)
    path.write_bytes(bytes(data))
    np.testing.assert_array_equal(aedat3.read_segment(path, 2).events, parts[2])
    with pytest.raises(EventDataError, match="outside the sensor"):
        aedat3.read_segment(path, 0)


@pytest.mark.parametrize("cut", [5, 30, 62, 80, 2000, -3])
def test_aedat3_truncation_names_offset_and_field(tmp_path: Path, cut: int) -> None:
    """A file cut anywhere raises EventDataError naming the file, a byte offset and the field."""
    path = aedat3.write_aedat(tmp_path / "t.aedat", random_events(0, 1000), packet_events=256)
    data = path.read_bytes()
    path.write_bytes(data[:cut])
    with pytest.raises(
        EventDataError, match=r"t\.aedat: offset \d+: field (header|version|packet header|events)"
    ):
        aedat3.read_index(path)


def test_aedat3_corrupt_packet_header_is_named(tmp_path: Path) -> None:
    """An impossible eventNumber/eventCapacity is reported with the packet's offset."""
    path = aedat3.write_aedat(tmp_path / "c.aedat", random_events(0, 100))
    index = aedat3.read_index(path)
    data = bytearray(path.read_bytes())
    head = index.header_size
    data[head + 20 : head + 24] = (10**6).to_bytes(4, "little")  # eventCapacity < eventNumber? no: > size
    data[head + 24 : head + 28] = (2 * 10**6).to_bytes(4, "little")  # eventNumber > eventCapacity
    path.write_bytes(bytes(data))
    with pytest.raises(EventDataError, match=rf"offset {head}: field eventNumber/eventCapacity/eventValid"):
        aedat3.read_index(path)


def test_aedat3_labels_errors_name_line_and_field(tmp_path: Path) -> None:
    """Bad label rows name the CSV line and field; strict=False skips them."""
    path = tmp_path / "x_labels.csv"
    path.write_text("class,startTime_usec,endTime_usec\n1,100,200\n12,300,400\n3,500,450\n4,x,9\n2,600,700\n")
    with pytest.raises(EventDataError, match=r"line 3: field class: expected 1\.\.11, found 12"):
        aedat3.read_labels(path)
    assert [(s.label, s.line) for s in aedat3.read_labels(path, strict=False)] == [(0, 2), (1, 6)]
    path.write_text("label,start,end\n")
    with pytest.raises(EventDataError, match="line 1: expected the header"):
        aedat3.read_labels(path)


def test_aedat3_reads_camera_size_from_header(tmp_path: Path) -> None:
    """The '#Source' line sets the sensor size (DAVIS346 -> 346x260)."""
    events = random_events(3, 400, size=(346, 260))
    path = aedat3.write_aedat(tmp_path / "d.aedat", events, camera="DAVIS346")
    index = aedat3.read_index(path)
    assert index.sensor_size == (346, 260)
    np.testing.assert_array_equal(aedat3.read_events(index), events)


# --- AEDAT4 ---------------------------------------------------------------------------------------------


@TMP_OK
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(0, 3000),
    size=st.sampled_from([(128, 128), (346, 260), (640, 480)]),
)
def test_aedat4_round_trip_through_the_aedat_package(
    tmp_path: Path, seed: int, n: int, size: tuple[int, int]
) -> None:
    """Our AEDAT4 writer's files decode with the aedat package back to the same events and sensor size."""
    events = random_events(seed, n, size=size, t0=1_700_000_000_000_000)
    path = aedat4.write_aedat4(tmp_path / "r.aedat4", events, size, packet_events=1000)
    rec = aedat4.read_aedat4(path)
    assert rec.sensor_size == size
    np.testing.assert_array_equal(rec.events, events)


def test_aedat4_time_window_and_errors(tmp_path: Path) -> None:
    """A time window keeps only its events; truncated or foreign files raise EventDataError naming the file."""
    events = random_events(5, 5000, size=(320, 240))
    path = aedat4.write_aedat4(tmp_path / "w.aedat4", events, (320, 240), packet_events=512)
    part = aedat4.read_aedat4(path, t_start_us=2_000_000, t_stop_us=4_000_000)
    np.testing.assert_array_equal(part.events, events[(events["t"] >= 2_000_000) & (events["t"] < 4_000_000)])
    data = path.read_bytes()
    (tmp_path / "cut.aedat4").write_bytes(data[: len(data) - 1000])
    with pytest.raises(EventDataError, match=r"cut\.aedat4: packet \d+"):
        aedat4.read_aedat4(tmp_path / "cut.aedat4")
    (tmp_path / "no.aedat4").write_bytes(b"#!AER-DAT3.1\r\n")
    with pytest.raises(EventDataError, match=r"no\.aedat4: offset 0: field header"):
        aedat4.read_aedat4(tmp_path / "no.aedat4")


# --- npz and the registry -------------------------------------------------------------------------------


@TMP_OK
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(0, 400), label=st.one_of(st.none(), st.integers(0, 10)))
def test_npz_round_trip(tmp_path: Path, seed: int, n: int, label: int | None) -> None:
    """A Recording written as .npz reads back equal: events, sensor size, label, name and meta."""
    rec = Recording(
        random_events(seed, n, size=(346, 260)),
        (346, 260),
        label=label,
        name="r",
        meta={"user": 3, "k": [1, 2]},
    )
    back = npz.read_npz(npz.write_npz(tmp_path / "r.npz", rec))
    np.testing.assert_array_equal(back.events, rec.events)
    assert (back.sensor_size, back.label, back.name, dict(back.meta)) == (
        (346, 260),
        label,
        "r",
        {"user": 3, "k": [1, 2]},
    )


def test_npz_errors(tmp_path: Path) -> None:
    """A truncated .npz or one missing a key raises EventDataError naming the file and field."""
    path = npz.write_npz(tmp_path / "a.npz", Recording(random_events(0, 1000), (128, 128)))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(EventDataError, match=r"a\.npz: not a readable"):
        npz.read_npz(path)
    np.savez(tmp_path / "b.npz", x=np.zeros(3))
    with pytest.raises(EventDataError, match="field format: missing"):
        npz.read_npz(tmp_path / "b.npz")


def test_load_recording_lists_supported_formats(tmp_path: Path) -> None:
    """An unknown extension names the supported ones."""
    with pytest.raises(EventDataError, match=r"\.npy, \.npz, \.aedat, \.aedat4"):
        load_recording(tmp_path / "x.bin")


# --- show -----------------------------------------------------------------------------------------------


def test_show_writes_png_strip_and_gif(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`s2gesture show` renders a PNG strip and an animated GIF with the expected geometry."""
    from PIL import Image

    path = tonic_layout.write_sample(tmp_path, "train", 1, "led", 3, random_events(0, 3000, span=600_000))
    assert (
        s2gesture_main(["show", str(path), "--out", str(tmp_path / "s.png"), "--frames", "5", "--zoom", "1"])
        == 0
    )
    with Image.open(tmp_path / "s.png") as img:
        assert img.size == (5 * (128 + 4) + 4, 128 + 16 + 14 + 4)
        assert np.asarray(img).max() > 200  # events were drawn
    assert s2gesture_main(["show", str(path), "--out", str(tmp_path / "s.gif"), "--window-ms", "100"]) == 0
    with Image.open(tmp_path / "s.gif") as gif:
        assert gif.n_frames == 6 and gif.size == (256, 256)
    assert "3000 events" in capsys.readouterr().out


# --- IBM raw release ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ibm_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic dataset in the IBM raw release's layout (2 train users, 1 test user)."""
    from s2gesture.models import synth

    root = tmp_path_factory.mktemp("ibm")
    synth.generate(root, 2, 1, 3, duration_s=0.4, repeats=1, workers=1, progress=False, layout="ibm")
    return root


def test_synth_ibm_layout_is_the_release_layout(ibm_release: Path) -> None:
    """synth --layout ibm writes one flat DvsGesture folder: sessions, labels CSVs and both split files, no .npy."""
    from s2gesture.models.datasets import ibm

    folder = ibm_release / "DvsGesture"
    assert sorted(p.name for p in folder.glob("*.txt")) == ["trials_to_test.txt", "trials_to_train.txt"]
    assert not list(ibm_release.rglob("*.npy"))
    train = ibm.split_sessions(ibm_release, "train")
    test = ibm.split_sessions(folder, "test")  # the release folder itself works as a root too
    assert [p.name[:6] for p in train] == ["user01", "user02"] and [p.name[:6] for p in test] == ["user03"]
    assert all(aedat3.labels_path_for(p).is_file() for p in train + test)


def test_ibm_gestures_follow_the_split_files_not_the_user_numbers(ibm_release: Path, tmp_path: Path) -> None:
    """Moving a session from one split file to the other moves its gestures: the split is read, not inferred."""
    import shutil

    from s2gesture.models.datasets import ibm

    root = tmp_path / "r"
    shutil.copytree(ibm_release, root)
    folder = root / "DvsGesture"
    (folder / "trials_to_train.txt").write_text("user01_fluorescent_led.aedat\n")
    (folder / "trials_to_test.txt").write_text("user02_lab.aedat\nuser03_led.aedat\n")
    train, _ = ibm.list_gestures(root, "train")
    test, _ = ibm.list_gestures(root, "test")
    assert {g.user for g in train} == {1} and {g.user for g in test} == {2, 3}
    assert len(train) == 11 and len(test) == 22
    rec = next(ibm.load_gestures(test[:1]))
    seg = test[0].segment
    assert rec.label == seg.label and len(rec) and rec.events["t"].min() >= seg.start_us and rec.events["t"].max() < seg.end_us


def test_ibm_bad_label_row_strict_names_line_and_flag_skip_counts_it(ibm_release: Path, tmp_path: Path) -> None:
    """A bad row stops a strict read naming file, line and --skip-bad-rows; the lenient read skips and counts it."""
    import shutil

    from s2gesture.models.datasets import ibm

    root = tmp_path / "r"
    shutil.copytree(ibm_release, root)
    labels = root / "DvsGesture" / "user02_lab_labels.csv"
    labels.write_text(labels.read_text() + "12,999,1000\r\n")
    with pytest.raises(EventDataError, match=r"user02_lab_labels.csv: line 13: field class.*--skip-bad-rows"):
        ibm.list_gestures(root, "train")
    gestures, skipped = ibm.list_gestures(root, "train", strict=False)
    assert skipped == 1 and len(gestures) == 22


def test_ibm_split_file_naming_a_missing_session_is_named(ibm_release: Path, tmp_path: Path) -> None:
    """A split file line naming no file gives file, line and what was found."""
    import shutil

    from s2gesture.models.datasets import ibm

    root = tmp_path / "r"
    shutil.copytree(ibm_release, root)
    (root / "DvsGesture" / "trials_to_test.txt").write_text("user03_led.aedat\nuser09_lab.aedat\n")
    with pytest.raises(EventDataError, match=r"trials_to_test.txt: line 2: .*'user09_lab.aedat' \(no such file\)"):
        ibm.split_sessions(root, "test")
    with pytest.raises(EventDataError, match="neither split file"):
        ibm.split_sessions(tmp_path, "test")
