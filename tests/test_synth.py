"""The synthetic DVS gesture generator: conventions, pixel model, determinism, tonic compatibility."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from s2gesture.clients.cli import main as s2gesture_main
from s2gesture.models import synth
from s2gesture.models.datasets import tonic_layout

# a mid-sized, average-speed subject in the centre (the random draws of make_user vary all of these)
CENTRED = replace(synth.make_user(0, 1), cx=63.5, cy=80.0, scale_px=28.0, speed=1.0, amplitude=1.0)
STILL = synth.Take(phase=0.7, sway_px=0.0, bob_px=0.6, idle_seed=11)


@pytest.mark.parametrize("label", [0, 1, 2, 3, 4, 5, 6])
def test_mirrored_scene_is_the_mirror_label(label: int) -> None:
    """Mirroring the rendered scene of a class left-right gives exactly the scene of MIRROR_LABEL[class]."""
    frames = [0, 37, 170, 333, 512]
    scene = synth.render_frames(label, CENTRED, STILL, frames)
    mirrored = synth.render_frames(synth.MIRROR_LABEL[label], CENTRED, STILL, frames)
    np.testing.assert_allclose(scene[:, :, ::-1], mirrored, atol=1e-9)
    if label != 0:
        assert not np.allclose(scene, mirrored, atol=1e-3)  # the pair really differs


def test_mirror_flag_flips_the_image() -> None:
    """scene_geometry(mirror=True) renders the left-right flipped image, for an off-centre user too."""
    user = replace(CENTRED, cx=50.0)
    take = replace(STILL, sway_px=1.2)
    frames = [3, 100, 250]
    plain = synth.render_frames(9, user, take, frames)
    flipped = synth.render_frames(9, user, take, frames, mirror=True)
    np.testing.assert_allclose(plain[:, :, ::-1], flipped, atol=1e-9)


def _hand_path(label: int, hand: int) -> np.ndarray:
    t_s = np.arange(2000) * 1e-3
    seg, _ = synth.scene_geometry(label, CENTRED, STILL, t_s)
    return seg[:, hand, 0:2]  # hand capsules are points: (ax, ay)


@pytest.mark.parametrize(
    ("label", "hand", "clockwise"), [(3, 6, True), (4, 6, False), (5, 7, True), (6, 7, False)]
)
def test_arm_circles_turn_the_documented_way(label: int, hand: int, clockwise: bool) -> None:
    """cw/ccw as seen by the camera: a clockwise path on the y-down image has a positive shoelace sum."""
    path = _hand_path(label, hand)
    path = path - path.mean(axis=0)  # about the circle's centre: an open path's sum depends on the origin
    x, y = path[:, 0], path[:, 1]
    area = float(np.sum(x[:-1] * y[1:] - x[1:] * y[:-1]))
    assert (area > 0) == clockwise


@pytest.mark.parametrize(("label", "hand", "side"), [(1, 6, -1), (2, 7, 1), (3, 6, -1), (6, 7, 1)])
def test_right_hand_is_on_the_image_left(label: int, hand: int, side: int) -> None:
    """The subject faces the camera: right-hand gestures happen at small x, left-hand ones at large x."""
    path = _hand_path(label, hand)
    assert np.all(np.sign(path[:, 0] - CENTRED.cx) == side)


def test_recording_is_deterministic_and_realistic() -> None:
    """Same arguments, same events; ON fraction ~0.5, sorted µs times, inside the 128x128 sensor."""
    a = synth.recording(3, 2, 0, "lab", 8, 0.5)
    b = synth.recording(3, 2, 0, "lab", 8, 0.5)
    np.testing.assert_array_equal(a.events, b.events)
    ev = a.events
    assert 2_000 < len(ev) < 200_000
    assert 0.4 < ev["p"].mean() < 0.6
    assert np.all(np.diff(ev["t"]) >= 0)
    assert a.sensor_size == (128, 128) and a.label == 8
    other = synth.recording(4, 2, 0, "lab", 8, 0.5)
    assert len(other) != len(a)


def test_pixel_model_thresholds_and_refractory() -> None:
    """Without noise, a pixel's consecutive events are >= the refractory period apart, and dimmer light gives fewer."""
    user, take, cam = synth.make_user(0, 3), synth.Take(), synth.make_camera(0)
    rng = np.random.default_rng(0)
    bright = synth.simulate(1, user, synth.LIGHTINGS["led"], cam, take, rng, duration_s=0.5, noise=False)
    jitter_free = replace(synth.LIGHTINGS["led"], jitter_us=0.0)
    clean = synth.simulate(
        1, user, jitter_free, cam, take, np.random.default_rng(0), duration_s=0.5, noise=False
    )
    key = clean["y"].astype(np.int64) * 128 + clean["x"]
    order = np.lexsort((clean["t"], key))
    same_pixel = key[order][1:] == key[order][:-1]
    gaps = np.diff(clean["t"][order])[same_pixel]
    assert gaps.min() >= cam.refractory_us - 1  # rounding to whole µs
    high_threshold = replace(jitter_free, threshold=0.4)
    fewer = synth.simulate(
        1, user, high_threshold, cam, take, np.random.default_rng(0), duration_s=0.5, noise=False
    )
    assert len(fewer) < 0.7 * len(clean)
    assert len(bright) == len(clean)


def test_train_and_test_users_are_disjoint() -> None:
    """Test users never appear in the training split."""
    jobs = synth.plan_jobs("x", 4, 3, 0, 1.0, 2, False)
    train = {j.user for j in jobs if j.split == "train"}
    test = {j.user for j in jobs if j.split == "test"}
    assert train == {1, 2, 3, 4} and test == {5, 6, 7} and len(jobs) == 14


def test_dataset_is_the_same_for_any_worker_count(tmp_path: Path) -> None:
    """One and two workers write byte-identical files."""
    for workers in (1, 2):
        synth.generate(
            tmp_path / f"w{workers}", 1, 1, 7, duration_s=0.03, repeats=1, workers=workers, progress=False
        )
    files = sorted(p.relative_to(tmp_path / "w1") for p in (tmp_path / "w1").rglob("*.npy"))
    assert len(files) == 22
    for rel in files:
        assert (tmp_path / "w1" / rel).read_bytes() == (tmp_path / "w2" / rel).read_bytes()


def test_generated_data_loads_in_tonic(tmp_path: Path) -> None:
    """tonic.datasets.DVSGesture(save_to=OUT) uses the generated files without downloading, with our labels and times."""
    import tonic

    summary = synth.generate(tmp_path, 1, 0, 2, duration_s=0.02, repeats=10, workers=2, progress=False)
    assert summary["train_files"] == 110
    ds = tonic.datasets.DVSGesture(save_to=str(tmp_path), train=True)
    assert len(ds) == 110
    ours = {str(s.path): s for s in tonic_layout.list_samples(tmp_path, "train")}
    for i in range(0, 110, 7):
        events, target = ds[i]
        rec = tonic_layout.load_sample(ours[ds.data[i]])
        assert (
            target == rec.label and ds.users[i] == rec.meta["user"] and ds.lighting[i] == rec.meta["lighting"]
        )
        np.testing.assert_array_equal(events, rec.events)
    assert sorted({s.label for s in ours.values()}) == list(range(11))


def test_cli_writes_the_layout_and_warns_below_tonics_minimum(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`s2gesture synth` writes userNN_<lighting>/<label>.npy for both splits and notes tonic's 100-file rule."""
    args = ["synth", "--out", str(tmp_path), "--train-users", "1", "--test-users", "1", "--seed", "1"]
    assert s2gesture_main([*args, "--duration-s", "0.02", "--repeats", "1", "--workers", "1", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "wrote 22 recordings" in captured.out and ">= 100" in captured.err
    assert (tmp_path / "DVSGesture" / "ibmGestureTrain.tar.gz").exists()
    assert [s.user for s in tonic_layout.list_samples(tmp_path, "test")] == [2] * 11


def test_cli_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    """Negative user counts and zero workers are refused with a message naming the option."""
    with pytest.raises(SystemExit):
        synth.cli(["--out", "x", "--train-users", "-1", "--test-users", "1", "--seed", "0"])
    assert "--train-users must be >= 0" in capsys.readouterr().err


def test_unknown_lighting_lists_the_known_ones() -> None:
    """A session tag that is no known lighting names the supported ones."""
    assert synth.lighting_of("natural3") == synth.LIGHTINGS["natural"]
    with pytest.raises(ValueError, match="fluorescent, fluorescent_led, lab, led, natural"):
        synth.lighting_of("sunny")


def test_aedat_option_writes_the_same_events_as_the_npy_files(tmp_path: Path) -> None:
    """--aedat sessions hold, segment by segment, exactly the events of the tonic-layout files."""
    from s2gesture.models.datasets import aedat3

    synth.generate(tmp_path, 1, 0, 4, duration_s=0.05, repeats=1, aedat=True, workers=1, progress=False)
    (session,) = (tmp_path / "aedat" / "train").glob("*.aedat")
    segments = aedat3.read_segments(session)
    assert [s.label for s in segments] == synth.session_order(4, 1, 0) != list(range(11))
    for seg in segments:
        npy = tmp_path / "DVSGesture" / "ibmGestureTrain" / session.stem / f"{seg.label}.npy"
        np.testing.assert_array_equal(seg.events, tonic_layout.load_sample(npy).events)


@pytest.mark.parametrize("kind", list(synth.DISTRACTORS))
def test_none_scenes_are_distinct_and_deterministic(kind: str) -> None:
    """Every distractor kind renders deterministically, records its kind, and differs from the idle scene."""
    a = synth.recording(31, 2, 0, "led", synth.NONE_LABEL, 0.5, distractor=kind)
    b = synth.recording(31, 2, 0, "led", synth.NONE_LABEL, 0.5, distractor=kind)
    assert a.meta["distractor"] == kind and a.label == synth.NONE_LABEL
    np.testing.assert_array_equal(a.events, b.events)
    if kind != "idle":
        idle = synth.recording(31, 2, 0, "led", synth.NONE_LABEL, 0.5, distractor="idle")
        assert len(a.events) != len(idle.events)


def test_flicker_fires_at_twice_the_mains_frequency() -> None:
    """A lamp on 50/60 Hz mains flickers at 100/120 Hz: its ON events (one burst as it brightens) peak there."""
    rec = synth.recording(31, 2, 0, "led", synth.NONE_LABEL, 1.0, distractor="flicker")
    on = rec.events[rec.events["p"]]
    t = on["t"] - rec.events["t"].min()
    counts = np.bincount((t // 1000).astype(np.int64))  # per ms
    spectrum = np.abs(np.fft.rfft(counts - counts.mean()))
    freqs = np.fft.rfftfreq(len(counts), d=1e-3)
    assert min(abs(freqs[np.argmax(spectrum)] - f) for f in (100.0, 120.0)) < 3.0


def test_bigger_sensor_keeps_the_subject() -> None:
    """On a 346x260 sensor the same user is the same size, centred: the event bounding box of the figure has the
    same width as on 128x128 and moves with the sensor's centre."""
    small = synth.recording(44, 3, 0, "led", 1, 1.0)
    big = synth.recording(44, 3, 0, "led", 1, 1.0, sensor_size=(346, 260))
    assert big.sensor_size == (346, 260)

    def box(rec: object, w: int) -> tuple[float, float]:
        ev = rec.events  # type: ignore[attr-defined]
        xs = np.bincount(ev["x"].astype(np.int64), minlength=w)
        busy = np.nonzero(xs > np.median(xs) + 300)[0]  # the moving figure, well above noise and hot pixels
        return float(busy.min()), float(busy.max())

    (s0, s1), (b0, b1) = box(small, 128), box(big, 346)
    assert abs((s1 - s0) - (b1 - b0)) <= 3
    assert abs((b0 - (345 - 127) / 2) - s0) <= 3


def test_synth_cli_with_none_and_sensor_size(tmp_path: Path) -> None:
    """`s2gesture synth --with-none --sensor-size` writes 12 labels per session; a bad size names the fix."""
    out = tmp_path / "d"
    code = s2gesture_main(["synth", "--out", str(out), "--train-users", "1", "--test-users", "0", "--seed", "5",
                           "--duration-s", "0.2", "--repeats", "1", "--workers", "1", "--quiet", "--with-none"])  # fmt: skip
    assert code == 0
    labels = sorted(s.label for s in tonic_layout.list_samples(out, "train"))
    assert labels == list(range(12))
    with pytest.raises(SystemExit):
        s2gesture_main(["synth", "--out", str(out), "--train-users", "1", "--test-users", "0", "--seed", "5",
                        "--sensor-size", "346by260"])  # fmt: skip


def test_extra_none_sessions_add_scenes_and_change_nothing_else(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--extra-none idle,any` adds, per training user, two sessions under further lightings holding one
    distractor scene each (the first of the asked kind); every other file is byte-identical to a plain
    `--with-none` dataset, test users get none, and an unknown kind is refused with the known ones."""
    common = ["--train-users", "2", "--test-users", "1", "--seed", "5", "--duration-s", "0.2", "--repeats", "1",
              "--workers", "2", "--quiet", "--with-none"]  # fmt: skip
    assert s2gesture_main(["synth", "--out", str(tmp_path / "plain"), *common]) == 0
    assert s2gesture_main(["synth", "--out", str(tmp_path / "extra"), *common, "--extra-none", "idle,any"]) == 0
    plain = {p.relative_to(tmp_path / "plain") for p in (tmp_path / "plain").rglob("*.npy")}
    extra = {p.relative_to(tmp_path / "extra") for p in (tmp_path / "extra").rglob("*.npy")}
    assert plain < extra and len(extra - plain) == 4
    for rel in plain:
        assert (tmp_path / "plain" / rel).read_bytes() == (tmp_path / "extra" / rel).read_bytes()
    added = sorted(extra - plain)
    assert all(rel.name == f"{synth.NONE_LABEL}.npy" and "ibmGestureTrain" in rel.parts for rel in added)
    for user in (1, 2):
        names = [rel.parent.name for rel in added if rel.parent.name.startswith(f"user{user:02d}_")]
        assert sorted(names) == sorted(f"user{user:02d}_{lt}" for lt in synth.session_lightings(user, 3)[1:])
    idle_job = next(j for j in synth.plan_jobs("x", 2, 1, 5, 0.2, 1, False, "tonic", True, extra_none=("idle", "any"))
                    if j.none_only == "idle")  # fmt: skip
    rec = synth.recording(5, idle_job.user, idle_job.session, idle_job.lighting, synth.NONE_LABEL, 0.2,
                          distractor="idle")  # fmt: skip
    path = tmp_path / "extra" / "DVSGesture" / "ibmGestureTrain" / f"user{idle_job.user:02d}_{idle_job.lighting}"
    np.testing.assert_array_equal(tonic_layout.load_sample(path / f"{synth.NONE_LABEL}.npy").events, rec.events)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        s2gesture_main(["synth", "--out", str(tmp_path / "bad"), *common, "--extra-none", "idle,nap"])
    err = capsys.readouterr().err
    assert "--extra-none" in err and "'nap'" in err and "idle, walk, shake, flicker, clutter, any" in err
