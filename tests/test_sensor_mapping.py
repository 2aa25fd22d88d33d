"""Mapping 'subject' (keep the subject's size on any sensor): tables, streaming, errors, the daemon, calibrate."""

from __future__ import annotations

import json
from pathlib import Path

import msgpack
import numpy as np
import pytest
from daemon_helpers import recording_frames, start_daemon

from s2gesture.clients.bus import ClientError
from s2gesture.clients.calibrate import (
    Calibration,
    calibrate_from_events,
    calibrate_from_lens,
    cli,
    subject_box,
    write_table,
)
from s2gesture.daemon.backends import get_backend, options_from_card
from s2gesture.daemon.card import InputSpec, ModelCard, read_model
from s2gesture.daemon.chunking import ChunkPlan, fit_plan
from s2gesture.daemon.config import load_config
from s2gesture.daemon.decision import DecisionPolicy, classify_recording
from s2gesture.daemon.errors import ConfigError, ModelCardError, PreprocessError
from s2gesture.daemon.events import EVENT_DTYPE
from s2gesture.daemon.preprocess import (
    PreprocessSpec,
    StreamPreprocessor,
    denoise,
    mapping_tables,
    preprocess_recording,
)
from s2gesture.daemon.testing import write_tiny_model

pytestmark = pytest.mark.timeout(120)


def _tables(**kw: object) -> tuple[list[int], list[int]]:
    xmap, ymap = mapping_tables(PreprocessSpec(**kw))  # type: ignore[arg-type]
    return xmap.tolist(), ymap.tolist()


def _person(sensor: tuple[int, int], seed: int = 0, offset: tuple[int, int] = (0, 0), n: int = 60_000) -> np.ndarray:
    """A dense moving blob (a 30x50 px "person" swinging an arm) plus 1 Hz/pixel background over 2 s."""
    rng = np.random.default_rng(seed)
    W, H = sensor
    cx, cy = W // 2 + offset[0], H // 2 + offset[1]
    t = np.sort(rng.integers(0, 2_000_000, n))
    body_x = cx + rng.integers(-15, 15, n)
    body_y = cy + rng.integers(-25, 25, n)
    noise_n = W * H * 2
    ev = np.empty(n + noise_n, dtype=EVENT_DTYPE)
    ev["x"] = np.concatenate([body_x, rng.integers(0, W, noise_n)])
    ev["y"] = np.concatenate([body_y, rng.integers(0, H, noise_n)])
    ev["p"] = rng.integers(0, 2, n + noise_n).astype(bool)
    ev["t"] = np.concatenate([t, rng.integers(0, 2_000_000, noise_n)])
    return ev[np.argsort(ev["t"], kind="stable")]


# --- tables ----------------------------------------------------------------------------------------------


def test_subject_tables_hand_computed_centred_box() -> None:
    """A 10x6 sensor, a 2x2 input trained on 4x4: the centred 4x4 box at (3, 1) maps 2 sensor px per input px."""
    x, y = _tables(sensor_size=(10, 6), input_size=(2, 2), mapping="subject", trained_sensor_size=(4, 4))
    assert x == [-1, -1, -1, 0, 0, 1, 1, -1, -1, -1]
    assert y == [-1, 0, 0, 1, 1, -1]


def test_subject_tables_hand_computed_explicit_box() -> None:
    """crop_box (1, 0, 6, 6) on a 10x6 sensor scales x 1..6 and y 0..5 onto a 3x3 input by (x - x0) * 3 // 6."""
    x, y = _tables(sensor_size=(10, 6), input_size=(3, 3), mapping="subject", crop_box=(1, 0, 6, 6))
    assert x == [-1, 0, 0, 1, 1, 2, 2, -1, -1, -1]
    assert y == [0, 0, 1, 1, 2, 2]


def test_subject_box_bigger_than_a_small_sensor_keeps_empty_margins() -> None:
    """A 2x2 sensor under a 4x4 trained box (x0 = -1) fills only the input pixels its own pixels cover."""
    x, y = _tables(sensor_size=(2, 2), input_size=(4, 4), mapping="subject", trained_sensor_size=(4, 4))
    assert x == [1, 2] and y == [1, 2]


def test_subject_on_the_trained_sensor_is_the_training_mapping() -> None:
    """On the 128x128 sensor it was trained on, 'subject' is exactly the field-of-view mapping training used."""
    for size in [(128, 128), (240, 180)]:
        a = mapping_tables(PreprocessSpec(sensor_size=size, mapping="subject", trained_sensor_size=size))
        b = mapping_tables(PreprocessSpec(sensor_size=size, mapping="center-crop-scale"))
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_subject_keeps_four_sensor_pixels_per_input_pixel_on_big_sensors() -> None:
    """On 346x260 and 320x240 each input pixel takes 4x4 sensor pixels of the centred 128x128 box."""
    for W, H in [(346, 260), (320, 240)]:
        xmap, ymap = mapping_tables(PreprocessSpec(sensor_size=(W, H), mapping="subject"))
        for table, n in ((xmap, W), (ymap, H)):
            used = np.flatnonzero(table >= 0)
            assert used[0] == (n - 128) // 2 and len(used) == 128
            assert np.bincount(table[used]).tolist() == [4] * 32


# --- streaming --------------------------------------------------------------------------------------------


def test_streaming_with_subject_mapping_equals_whole_recording() -> None:
    """A 346x260 recording cut into random packets preprocesses to the same ticks as the whole recording."""
    events = _person((346, 260), seed=5, offset=(40, -20))
    spec = PreprocessSpec(sensor_size=(346, 260), mapping="subject", crop_box=(150, 60, 128, 128))
    whole = preprocess_recording(events, spec)
    rng = np.random.default_rng(6)
    cuts = np.sort(rng.choice(np.arange(1, len(events)), 40, replace=False))
    stream = StreamPreprocessor(spec)
    parts = [stream.push(p) for p in np.split(events, cuts)] + [stream.flush()]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert whole.sum() > 0


# --- errors -----------------------------------------------------------------------------------------------


def test_crop_box_off_the_sensor_names_box_sensor_and_fix() -> None:
    """A crop box reaching past the sensor is refused with the box, the sensor size and where it would fit."""
    with pytest.raises(PreprocessError) as info:
        PreprocessSpec(sensor_size=(346, 260), mapping="subject", crop_box=(300, 10, 128, 128))
    text = str(info.value)
    assert "[300, 10, 128, 128]" in text and "346x260" in text and "move it to [218, 10, 128, 128]" in text


def test_crop_box_of_the_wrong_aspect_ratio_is_refused() -> None:
    """A box that would stretch the subject names both ratios and the height that fits."""
    with pytest.raises(PreprocessError, match=r"aspect ratio 128:64 .* 32:32.*height of 128"):
        PreprocessSpec(sensor_size=(346, 260), mapping="subject", crop_box=(0, 0, 128, 64))


def test_crop_box_with_a_field_of_view_mapping_is_refused() -> None:
    """A crop box is only meaningful for 'subject': with another mapping the spec says so."""
    with pytest.raises(PreprocessError, match="only used by mapping 'subject'"):
        PreprocessSpec(sensor_size=(346, 260), mapping="center-crop-scale", crop_box=(0, 0, 128, 128))


def test_config_crop_box_off_its_sensor_is_a_config_error(tmp_path: Path) -> None:
    """model.input_mapping checks each box against the sensor its key names, one line naming both."""
    cfg = tmp_path / "d.toml"
    cfg.write_text('schema_version = 1\n[model.input_mapping."320x240"]\ncrop_box = [0, 200, 128, 128]\n')
    with pytest.raises(ConfigError) as info:
        load_config(cfg, environ={})
    text = str(info.value)
    assert "model.input_mapping" in text and "[0, 200, 128, 128]" in text and "320x240" in text
    assert "move it to [0, 112, 128, 128]" in text and "s2gesture calibrate" in text


def test_config_bad_sensor_key_and_unknown_mapping(tmp_path: Path) -> None:
    """A key that is no sensor size and a mapping name that does not exist are both reported."""
    cfg = tmp_path / "d.toml"
    cfg.write_text('schema_version = 1\n[model.input_mapping.davis]\nmapping = "subject"\n'
                   '[model.input_mapping."346x260"]\nmapping = "zoom"\n')
    with pytest.raises(ConfigError) as info:
        load_config(cfg, environ={})
    assert "'davis' is not a sensor size" in str(info.value) and "'zoom' is unknown" in str(info.value)


def test_card_crop_box_problems_are_listed() -> None:
    """A card with a crop box under a field-of-view mapping and of the wrong shape lists both problems."""
    with pytest.raises(ModelCardError) as info:
        ModelCard.from_dict({"name": "m", "classes": ["a"], "input": {"mapping": "scale", "crop_box": [0, 0, 64, 32]}})
    text = str(info.value)
    assert "input.crop_box" in text and "only used by mapping 'subject'" in text and "aspect ratio 64:32" in text


def test_card_round_trips_subject_mapping() -> None:
    """A card with mapping 'subject' and a crop box survives to_dict/JSON/from_dict unchanged."""
    card = ModelCard(name="m", classes=("a",), input=InputSpec(mapping="subject", crop_box=(1, 2, 64, 64),
                                                               trained_pixels_per_metre=58.0))
    back = ModelCard.from_dict(json.loads(json.dumps(card.to_dict())))
    assert back == card and back.input.crop_box == (1, 2, 64, 64)


# --- the daemon -------------------------------------------------------------------------------------------


def test_daemon_serves_a_346x260_stream_with_the_configured_subject_mapping(tmp_path: Path) -> None:
    """A 346x260 stream gets per-chunk scores equal to the offline path with the configured crop box."""
    model_path = tmp_path / "tiny.nir"
    write_tiny_model(model_path, seed=0)
    box = (120, 70, 128, 128)
    cfg = tmp_path / "d.toml"
    cfg.write_text(f'schema_version = 1\n[model.input_mapping."346x260"]\nmapping = "subject"\ncrop_box = {list(box)}\n')
    events = _person((346, 260), seed=8, offset=(10, 5))
    events = events[events["t"] < 1_000_000]
    frames = list(recording_frames("davis", events, 346, 260, packet_us=10_000))
    t_stop = msgpack.unpackb(frames[-2][1])["t_end"]

    model = read_model(model_path)
    backend = get_backend("emulator", **options_from_card(model.card))
    backend.load(model.graph)
    config = load_config(cfg, environ={})
    spec = PreprocessSpec.from_card(model.card.input, (346, 260), config.model.input_mapping)
    assert spec.crop_box == box
    spikes = preprocess_recording(events, spec, t_stop_us=t_stop)
    field_of_view = preprocess_recording(events, PreprocessSpec.from_card(model.card.input, (346, 260)), t_stop_us=t_stop)
    assert not np.array_equal(spikes, field_of_view)  # the override changes what the model sees
    c = config.chunking
    plan = fit_plan(ChunkPlan(c.window_ticks, c.stride_ticks, c.min_activity), backend)
    final, table = classify_recording(spikes, backend, plan, DecisionPolicy(config.decision.params()),
                                      t0_us=int(events["t"][0]), dt_us=spec.dt_us)
    backend.close()

    with start_daemon(tmp_path, model_path, mode="lossless", transport="ipc", args=["--config", str(cfg)]) as d:
        d.send_all(d.sender(), frames)
        def is_final(t: str, b: dict[str, object]) -> bool:
            return t == "s2g/v1/gesture/davis/" and b.get("final") is True

        messages = d.collect(lambda t, b: t == "s2g/v1/pred/davis/" or is_final(t, b), is_final)
        assert d.stop() == 0
    preds, last = messages[:-1], messages[-1]
    active = table[table.sum(axis=1) > 0]
    assert len(preds) == len(active) > 3
    np.testing.assert_array_equal(np.array([p["scores"] for p in preds]), active)
    assert last["class_id"] == final


# --- calibrate --------------------------------------------------------------------------------------------


def test_subject_box_is_found_around_an_off_centre_person_despite_background() -> None:
    """The events' subject box covers the dense blob and not the sensor-wide background."""
    events = _person((346, 260), seed=1, offset=(80, 30))
    x0, y0, x1, y1 = subject_box(events, (346, 260))
    cx, cy = 173 + 80, 130 + 30
    assert cx - 17 <= x0 <= cx - 13 and cx + 13 <= x1 <= cx + 17
    assert cy - 27 <= y0 <= cy - 23 and cy + 23 <= y1 <= cy + 27


def test_calibrate_on_a_generated_recording_boxes_the_subject() -> None:
    """On a generated 346x260 scene the crop box is the training's 128x128, on the sensor, around the subject."""
    from s2gesture.models import synth

    rec = synth.recording(910_101, 2, 0, "led", 7, 2.0, sensor_size=(346, 260))
    cal = calibrate_from_events(rec.events, rec.sensor_size, InputSpec())
    x0, y0, bw, bh = cal.crop_box
    assert cal.subject is not None and (bw, bh) == (128, 128)
    assert x0 >= 0 and x0 + bw <= 346 and y0 >= 0 and y0 + bh <= 260
    sx0, sy0, sx1, sy1 = cal.subject
    assert x0 <= sx0 and sx1 <= x0 + bw and y0 <= sy0 and sy1 <= y0 + bh
    # most of what survives the denoise filter (the person, not the sensor-wide background) is in the box
    ev = denoise(rec.events, rec.sensor_size, 10_000)
    inside = (ev["x"] >= x0) & (ev["x"] < x0 + bw) & (ev["y"] >= y0) & (ev["y"] < y0 + bh)
    assert inside.mean() > 0.8


def test_calibrate_scales_the_box_with_the_subject_height() -> None:
    """A subject twice the training subjects' height gets a box twice the training's size (moved onto the sensor)."""
    events = _person((346, 260), seed=2)
    cal = calibrate_from_events(events, (346, 260), InputSpec(), trained_subject_px=25.0)
    assert cal.crop_box[2:] == (256, 256) and cal.crop_box[1] == 2  # 260 - 256 = 4 px of room, centred
    assert any("moved" in line for line in cal.rule) or cal.crop_box[0] == 45


def test_calibrate_from_lens_facts() -> None:
    """f = 4 mm, 20 µm pixels at 2 m see 100 px/m; against 50 px/m in training the box is 256x256."""
    cal = calibrate_from_lens((640, 480), InputSpec(), focal_length_mm=4.0, pixel_pitch_um=20.0, distance_m=2.0,
                              trained_ppm=50.0)
    assert cal.crop_box == (192, 112, 256, 256) and cal.subject is None


def test_calibrate_cli_writes_a_table_the_daemon_accepts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`s2gesture calibrate --write` puts the sensor's table into the TOML file and the daemon's config loads it."""
    model_path = tmp_path / "tiny.nir"
    write_tiny_model(model_path)
    cfg = tmp_path / "s2gestured.toml"
    cfg.write_text('schema_version = 1\n# my settings\n[chunking]\nstride_ticks = 50\n')
    args = ["--model", str(model_path), "--sensor-size", "640x480", "--focal-length-mm", "4", "--pixel-pitch-um", "20",
            "--distance-m", "2", "--trained-ppm", "50", "--write", str(cfg)]
    assert cli(args) == 0
    assert "crop_box = [192, 112, 256, 256]" in capsys.readouterr().out
    assert cli([*args[:-4], "--trained-ppm", "100", "--write", str(cfg)]) == 0  # replaced, not duplicated
    text = cfg.read_text()
    assert "# my settings" in text and text.count('[model.input_mapping."640x480"]') == 1
    config = load_config(cfg, environ={})
    assert config.model.input_mapping["640x480"].crop_box == (256, 176, 128, 128)
    assert config.chunking.stride_ticks == 50


def test_calibrate_cli_without_the_lens_reference_says_what_to_give(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Lens facts on a card without trained_pixels_per_metre exit 2 with one line naming --trained-ppm."""
    model_path = tmp_path / "tiny.nir"
    write_tiny_model(model_path)
    code = cli(["--model", str(model_path), "--sensor-size", "346x260", "--focal-length-mm", "4",
                "--pixel-pitch-um", "18.5", "--distance-m", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "--trained-ppm" in err and "Traceback" not in err


def test_write_table_refuses_a_box_the_daemon_would_not_accept(tmp_path: Path) -> None:
    """A table whose box is off its sensor is not written; the file stays as it was."""
    cfg = tmp_path / "s2gestured.toml"
    cfg.write_text("schema_version = 1\n")
    bad = Calibration((100, 100), (50, 50, 64, 64), None, [])
    with pytest.raises(ClientError, match="outside the 100x100 sensor"):
        write_table(cfg, bad)
    assert cfg.read_text() == "schema_version = 1\n"
