"""Preprocessing: equal to tonic where tonic is the reference, streaming equal to whole recordings."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2gesture.daemon.card import InputSpec
from s2gesture.daemon.errors import PreprocessError
from s2gesture.daemon.events import make_events
from s2gesture.daemon.preprocess import (
    MAPPINGS,
    PreprocessSpec,
    StreamPreprocessor,
    denoise,
    map_events,
    mapping_tables,
    preprocess_recording,
)


def clustered_events(
    seed: int, n: int = 6000, size: tuple[int, int] = (128, 128), t0_us: int = 0
) -> np.ndarray:
    """Half the events around a few moving blobs (kept by the denoiser), half uniform noise (mostly dropped)."""
    rng = np.random.default_rng(seed)
    W, H = size
    t = np.sort(rng.integers(t0_us, t0_us + 400_000, n))
    blob = rng.random(n) < 0.5
    cx = (W / 2 + W / 3 * np.sin(t / 60_000.0 + rng.integers(0, 3, n) * 2.0)).astype(int)
    cy = (H / 2 + H / 3 * np.cos(t / 80_000.0)).astype(int)
    x = np.where(blob, cx + rng.integers(-2, 3, n), rng.integers(0, W, n))
    y = np.where(blob, cy + rng.integers(-2, 3, n), rng.integers(0, H, n))
    x, y = np.clip(x, 0, W - 1), np.clip(y, 0, H - 1)
    # Touch the far corner so tonic's data-derived sensor size equals the real one.
    x[-1], y[-1] = W - 1, H - 1
    return make_events(x, y, rng.random(n) < 0.5, t)


def tonic_pipeline(events: np.ndarray, sensor: tuple[int, int], denoise_us: int, dt_us: int) -> np.ndarray:
    """tonic's Denoise -> Downsample(0.25) -> ToFrame(time_window) counts for a 128x128 sensor."""
    import tonic.transforms as tt

    out = tt.Denoise(filter_time=denoise_us)(events)
    out = tt.Downsample(spatial_factor=0.25)(out)
    frames = tt.ToFrame(
        sensor_size=(32, 32, 2), time_window=dt_us, include_incomplete=True, start_time=int(events["t"][0])
    )(out)
    return np.asarray(frames)


@pytest.mark.parametrize("seed", [0, 1])
def test_denoise_equals_tonic(seed: int) -> None:
    """Our compiled denoiser keeps exactly the events tonic's Denoise keeps, in order."""
    import tonic.transforms as tt

    events = clustered_events(seed)
    ours = denoise(events, (128, 128), 10_000)
    ref = tt.Denoise(filter_time=10_000)(events)
    assert 0 < len(ours) < len(events)
    np.testing.assert_array_equal(ours, ref)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), window=st.integers(1, 30_000), t0=st.integers(0, 50_000))
def test_denoise_equals_tonic_property(seed: int, window: int, t0: int) -> None:
    """For any window and start time (including tonic's always-keep start), both keep the same events."""
    import tonic.transforms as tt

    events = clustered_events(seed, n=400, size=(16, 12), t0_us=t0)
    np.testing.assert_array_equal(denoise(events, (16, 12), window), tt.Denoise(filter_time=window)(events))


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1), w=st.integers(1, 16), h=st.integers(1, 12), window=st.integers(1, 20_000)
)
def test_denoise_sensor_size_bound_agrees_with_tonic_data_bound(
    seed: int, w: int, h: int, window: int
) -> None:
    """Events in any corner sub-rectangle of the sensor: tonic (data-max bound) agrees unless all sit on (0, 0)."""
    import tonic.transforms as tt

    rng = np.random.default_rng(seed)
    n = 300
    events = make_events(
        rng.integers(0, w, n), rng.integers(0, h, n), rng.random(n) < 0.5, np.sort(rng.integers(0, 60_000, n))
    )
    ours = denoise(events, (16, 12), window)
    ref = tt.Denoise(filter_time=window)(events)
    if w == h == 1:
        assert len(ref) == 0
    else:
        np.testing.assert_array_equal(ours, ref)


def test_denoise_deliberate_difference_single_pixel() -> None:
    """The one documented difference: events only at pixel (0, 0) early on, which tonic (1x1 'sensor') drops."""
    import tonic.transforms as tt

    events = make_events([0, 0], [0, 0], [True, False], [100, 200])
    assert len(tt.Denoise(filter_time=10_000)(events)) == 0
    assert len(denoise(events, (128, 128), 10_000)) == 2


def test_denoise_zero_window_keeps_everything() -> None:
    """denoise_us = 0 disables the filter."""
    events = clustered_events(3, n=500)
    np.testing.assert_array_equal(denoise(events, (128, 128), 0), events)


def test_downsample_128_to_32_equals_tonic() -> None:
    """center-crop-scale on a square sensor is tonic's Downsample(spatial_factor=0.25)."""
    import tonic.transforms as tt

    events = clustered_events(4)
    spec = PreprocessSpec(sensor_size=(128, 128))
    np.testing.assert_array_equal(map_events(events, spec), tt.Downsample(spatial_factor=0.25)(events))


@pytest.mark.parametrize("sensor", [(346, 260), (320, 240), (640, 480)])
def test_center_crop_scale_matches_tonic_crop_and_downsample(sensor: tuple[int, int]) -> None:
    """Non-square sensors: tonic CenterCrop + Downsample(target_size), except where tonic's float factor rounds down."""
    import tonic.transforms as tt

    W, H = sensor
    events = clustered_events(5, size=sensor)
    spec = PreprocessSpec(sensor_size=sensor)
    ours = map_events(events, spec)
    crop = tt.CenterCrop(sensor_size=(W, H, 2), size=(H, H))(events)
    ref = tt.Downsample(sensor_size=(H, H, 2), target_size=(32, 32))(crop)
    assert len(ours) == len(ref) > 0
    exact_x = (crop["x"].astype(np.int64) * 32) // H
    exact_y = (crop["y"].astype(np.int64) * 32) // H
    np.testing.assert_array_equal(ours["x"], exact_x)
    np.testing.assert_array_equal(ours["y"], exact_y)
    # tonic's float product x * (32 / H) can land just below an integer; everywhere else it agrees.
    float_ok = np.floor(np.arange(H) * (32 / H)).astype(int) == (np.arange(H) * 32) // H
    agree = float_ok[crop["x"]] & float_ok[crop["y"]]
    np.testing.assert_array_equal(ours[agree], ref[agree])
    assert ours["x"].max() == 31 and ours["y"].max() == 31


def test_mapping_tables_cover_the_input_evenly() -> None:
    """Every input pixel receives sensor pixels, and the crop is centred, for each mapping and sensor."""
    for mapping in MAPPINGS:
        for sensor in [(128, 128), (346, 260), (320, 240), (240, 320)]:
            xmap, ymap = mapping_tables(PreprocessSpec(sensor_size=sensor, mapping=mapping))
            for table in (xmap, ymap):
                used = np.flatnonzero(table >= 0)
                assert set(table[used]) == set(range(32))
                left, right = used[0], len(table) - 1 - used[-1]
                assert abs(left - right) <= 1


def test_binning_equals_tonic_toframe_clipped() -> None:
    """Denoise + map + bin equals tonic's Denoise, Downsample, ToFrame(time_window) clipped to 1."""
    events = clustered_events(6)
    spec = PreprocessSpec(sensor_size=(128, 128), denoise_us=10_000, dt_us=1000)
    ours = preprocess_recording(events, spec)
    ref = tonic_pipeline(events, (128, 128), 10_000, 1000)
    assert ours.dtype == np.uint8 and ours.shape[1:] == (2, 32, 32)
    assert ref.max() > 1  # tonic counts; ours is binary
    np.testing.assert_array_equal(ours[: len(ref)], np.clip(ref, 0, 1))


def test_binning_edge_difference_last_event_on_a_tick_boundary() -> None:
    """When the last event lies exactly k ticks after the first, tonic drops its tick; ours keeps it."""
    import tonic.transforms as tt

    events = make_events([1, 2, 3], [1, 1, 1], [True, True, False], [0, 1500, 3000])
    spec = PreprocessSpec(sensor_size=(4, 4), input_size=(4, 4), mapping="scale", denoise_us=0, dt_us=1000)
    ours = preprocess_recording(events, spec)
    ref = tt.ToFrame(sensor_size=(4, 4, 2), time_window=1000, include_incomplete=True)(events)
    assert ours.shape[0] == 4 and ref.shape[0] == 3
    np.testing.assert_array_equal(ours[:3], ref)
    assert ours[3, 0, 1, 3] == 1


def test_channel_order_is_off_then_on_and_channels_1_merges() -> None:
    """Channel 0 holds OFF (p False), channel 1 ON; with channels=1 both land in channel 0."""
    events = make_events([0, 1], [0, 0], [False, True], [0, 10])
    spec = PreprocessSpec(sensor_size=(2, 1), input_size=(2, 1), mapping="scale", denoise_us=0, dt_us=100)
    frames = preprocess_recording(events, spec)
    assert frames[0, 0, 0].tolist() == [1, 0] and frames[0, 1, 0].tolist() == [0, 1]
    merged = preprocess_recording(events, PreprocessSpec(**{**spec.__dict__, "channels": 1}))
    assert merged.shape == (1, 1, 1, 2) and merged[0, 0, 0].tolist() == [1, 1]


def test_t_start_and_t_stop_define_the_ticks() -> None:
    """t_start_us sets tick 0, t_stop_us sets T = ceil((stop - start) / dt) and drops later events."""
    events = make_events([0, 0, 0], [0, 0, 0], [True] * 3, [500, 2500, 9000])
    spec = PreprocessSpec(sensor_size=(1, 1), input_size=(1, 1), mapping="scale", denoise_us=0, dt_us=1000)
    frames = preprocess_recording(events, spec, t_start_us=0, t_stop_us=4500)
    assert frames.shape[0] == 5
    assert frames[:, 1, 0, 0].tolist() == [1, 0, 1, 0, 0]
    assert preprocess_recording(events, spec, t_start_us=10_000).shape[0] == 0
    assert preprocess_recording(events[:0], spec).shape == (0, 2, 1, 1)


def _stream(
    events: np.ndarray, spec: PreprocessSpec, cuts: list[int], ends: list[int | None], t_start: int | None
):
    stream = StreamPreprocessor(spec, t_start_us=t_start)
    parts = []
    for packet, t_end in zip(np.split(events, cuts), ends, strict=True):
        parts.append(stream.push(packet, t_end_us=t_end))
        if len(parts[-1]):
            # Every emitted tick ends no later than the data seen so far.
            assert stream.t_next_us is not None
            assert stream.t_next_us <= max(int(packet["t"][-1]) if len(packet) else 0, t_end or 0)
    parts.append(stream.flush())
    return np.concatenate(parts)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n_cuts=st.integers(0, 12),
    dt_us=st.sampled_from([1, 7, 1000, 2500]),
    denoise_us=st.sampled_from([0, 500, 10_000]),
    channels=st.sampled_from([1, 2]),
    use_t_end=st.booleans(),
    t_start=st.one_of(st.none(), st.integers(-5_000, 300_000)),
)
def test_streaming_equals_whole_recording(
    seed: int, n_cuts: int, dt_us: int, denoise_us: int, channels: int, use_t_end: bool, t_start: int | None
) -> None:
    """Any cut of a recording into packets (empty ones, equal-time splits, t_end_us hints) gives the same ticks."""
    rng = np.random.default_rng(seed)
    events = clustered_events(seed, n=int(rng.integers(0, 1500)), size=(40, 30))
    if dt_us == 1:
        events = events[events["t"] < 20_000]
    spec = PreprocessSpec(
        sensor_size=(40, 30), input_size=(8, 8), denoise_us=denoise_us, dt_us=dt_us, channels=channels
    )
    cuts = sorted(rng.integers(0, len(events) + 1, n_cuts).tolist())
    bounds = [0, *cuts, len(events)]
    t = events["t"]
    ends: list[int | None] = []
    for lo, hi in itertools.pairwise(bounds):
        if hi == len(events):
            # Last packet: a promise past the last event extends the recording with empty ticks.
            promised = [e for e in ends if e is not None]
            extra = int(rng.integers(0, 3 * dt_us))
            ends.append(max([int(t[-1]) + 1 + extra, *promised]) if use_t_end and len(events) else None)
        elif use_t_end and (hi == lo or int(t[hi]) > int(t[hi - 1])):
            ends.append(int(t[hi]))  # the next packet starts exactly there
        else:
            ends.append(None)  # equal-time split: no exclusive end exists between the packets
    streamed = _stream(events, spec, cuts, ends, t_start)
    t_stop = ends[-1]
    whole = preprocess_recording(events, spec, t_start_us=t_start, t_stop_us=t_stop)
    np.testing.assert_array_equal(streamed, whole)


def test_stream_emits_ticks_as_soon_as_they_are_complete() -> None:
    """A tick is emitted once an event at or after its end arrives, or t_end_us passes it."""
    spec = PreprocessSpec(sensor_size=(1, 1), input_size=(1, 1), mapping="scale", denoise_us=0, dt_us=1000)
    stream = StreamPreprocessor(spec, t_start_us=0)
    assert stream.push(make_events([0], [0], [True], [999])).shape[0] == 0
    assert stream.push(make_events([0], [0], [True], [1000])).shape[0] == 1
    assert stream.push(make_events([], [], [], []), t_end_us=3500).shape[0] == 2
    assert stream.t_next_us == 3000
    assert stream.flush().shape[0] == 1


def test_stream_rejects_out_of_order_packets_and_keeps_its_state() -> None:
    """A packet earlier than the previous one raises PreprocessError and changes nothing."""
    events = clustered_events(7, n=2000, size=(20, 20))
    spec = PreprocessSpec(sensor_size=(20, 20), input_size=(10, 10), dt_us=1000)
    stream = StreamPreprocessor(spec)
    first = stream.push(events[:1000])
    with pytest.raises(PreprocessError, match="earlier than the previous"):
        stream.push(events[500:600])
    with pytest.raises(PreprocessError, match="t_end_us"):
        stream.push(events[1000:1100], t_end_us=int(events["t"][1050]))
    rest = stream.push(events[1000:])
    np.testing.assert_array_equal(
        np.concatenate([first, rest, stream.flush()]), preprocess_recording(events, spec)
    )


def test_out_of_sensor_events_name_the_event() -> None:
    """An event outside the spec's sensor size raises PreprocessError naming its index and coordinates."""
    events = make_events([1, 130], [1, 5], [True, True], [0, 10])
    spec = PreprocessSpec(sensor_size=(128, 128))
    with pytest.raises(PreprocessError, match=r"event 1: \(x, y\) = \(130, 5\)"):
        preprocess_recording(events, spec)
    with pytest.raises(PreprocessError, match="event 1"):
        StreamPreprocessor(spec).push(events)


def test_unsorted_recording_is_rejected() -> None:
    """A recording whose timestamps decrease raises PreprocessError naming the event."""
    events = make_events([1, 2, 3], [1, 1, 1], [True] * 3, [0, 50, 20])
    with pytest.raises(PreprocessError, match="event 2: t = 20"):
        preprocess_recording(events, PreprocessSpec(sensor_size=(8, 8)))


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("mapping", "crop", "supported: center-crop-scale, scale, center-crop"),
        ("dt_us", 0, "positive integer tick"),
        ("denoise_us", -1, "0 disables"),
        ("channels", 3, "expected 1"),
        ("sensor_size", (128,), "width, height"),
    ],
)
def test_spec_validation_names_the_field(field: str, value: object, match: str) -> None:
    """Each invalid spec field raises PreprocessError naming the field and what is expected."""
    with pytest.raises(PreprocessError, match=match):
        PreprocessSpec(**{"sensor_size": (128, 128), field: value})  # type: ignore[arg-type]


def test_spec_from_card() -> None:
    """from_card copies the model card's input spec, takes the sensor size from the caller and serves with
    the daemon's anti-flicker default unless told otherwise."""
    card_input = InputSpec(dt_us=2000, denoise_us=0, mapping="scale")
    spec = PreprocessSpec.from_card(card_input, (346, 260))
    assert spec == PreprocessSpec(sensor_size=(346, 260), mapping="scale", dt_us=2000, denoise_us=0, anti_flicker_hz=(100, 120))
    assert PreprocessSpec.from_card(card_input, (346, 260), anti_flicker_hz=()).anti_flicker_hz == ()
    assert spec.frame_shape == (2, 32, 32)


def test_warm_up_runs_every_kernel_path() -> None:
    """warm_up() compiles or loads the kernels and reports the seconds it took."""
    from s2gesture.daemon.preprocess import warm_up

    assert 0.0 <= warm_up((346, 260)) < 60.0


def test_stream_refuses_a_clock_jump_and_keeps_its_state() -> None:
    """A packet far beyond the last time raises (no gigabytes of empty ticks) and the stream goes on."""
    spec = PreprocessSpec(sensor_size=(4, 4), input_size=(4, 4), mapping="scale", denoise_us=0)
    stream = StreamPreprocessor(spec, max_gap_us=1_000_000)
    stream.push(make_events([1], [1], [True], [0]))
    with pytest.raises(PreprocessError, match="time jumps by 3600000000 µs"):
        stream.push(make_events([1], [1], [True], [3_600_000_000]))
    with pytest.raises(PreprocessError, match="time jumps"):
        stream.push(make_events([], [], [], []), t_end_us=5_000_000)
    assert stream.push(make_events([2], [2], [False], [1500])).shape[0] == 1
    unlimited = StreamPreprocessor(spec, max_gap_us=None)
    unlimited.push(make_events([1], [1], [True], [0]))
    assert unlimited.push(make_events([1], [1], [True], [2_000_000])).shape[0] == 2000


def test_recording_with_absurd_duration_is_refused() -> None:
    """Timestamps spanning years would need terabytes of spikes: PreprocessError names the duration and the fix."""
    events = make_events([1, 1], [1, 1], [True, True], [0, 10**14])
    with pytest.raises(PreprocessError, match="check the timestamps for a jump"):
        preprocess_recording(events, PreprocessSpec(sensor_size=(4, 4)))
