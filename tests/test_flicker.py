"""Anti-flicker: a lamp's events go, a person's stay, the same in every path, and the daemon applies it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from daemon_helpers import recording_frames, start_daemon

from s2gesture.daemon import flicker
from s2gesture.daemon.config import load_config
from s2gesture.daemon.errors import ConfigError, PreprocessError
from s2gesture.daemon.events import EVENT_DTYPE
from s2gesture.daemon.flicker import flicker_mask
from s2gesture.daemon.preprocess import PreprocessSpec, StreamPreprocessor, preprocess_recording
from s2gesture.daemon.testing import write_tiny_model
from s2gesture.models import synth

pytestmark = pytest.mark.timeout(120)

T0 = 1_000_000


def lamp(hz: float, *, seconds: float = 1.0, box: tuple[int, int, int, int] = (16, 16, 48, 40), p_fire: float = 0.1,
         jitter_us: float = 300.0, seed: int = 0) -> np.ndarray:  # fmt: skip
    """A lamp at ``hz`` over ``box`` = (x0, y0, w, h): each half period a random ``p_fire`` of its pixels fire,
    ON as it brightens, OFF as it dims (what synth's flicker scenes do)."""
    rng = np.random.default_rng(seed)
    x0, y0, w, h = box
    half = 1e6 / hz / 2
    n_half = int(seconds * 1e6 / half)
    k = rng.binomial(w * h, p_fire, n_half)
    idx = np.repeat(np.arange(n_half), k)
    pix = rng.integers(0, w * h, idx.shape[0])
    t = np.clip(np.round(idx * half + rng.normal(0, jitter_us, idx.shape[0])), 0, None).astype(np.int64)
    order = np.argsort(t, kind="stable")
    ev = np.empty(idx.shape[0], EVENT_DTYPE)
    ev["x"], ev["y"], ev["p"], ev["t"] = (x0 + pix % w)[order], (y0 + pix // w)[order], (idx % 2 == 0)[order], t[order] + T0
    return ev


def merge(*parts: np.ndarray) -> np.ndarray:
    ev = np.concatenate(parts)
    return ev[np.argsort(ev["t"], kind="stable")]


@pytest.mark.parametrize("hz", [100, 120])
def test_a_lamp_is_removed_once_locked(hz: int) -> None:
    """After the lock-in (a third of a second at most) at least 95 % of a lamp's events are dropped."""
    ev = lamp(hz, seconds=2.0)
    keep = flicker_mask(ev, (128, 128))
    late = ev["t"] >= T0 + 400_000
    assert (~keep[late]).mean() >= 0.95
    assert keep[ev["t"] < T0 + 50_000].all()  # too early to lock: no tile has seen 12 periods


def test_a_lamp_at_an_unlisted_frequency_is_kept() -> None:
    """A 100 Hz lamp is not in phase with 120 Hz: a filter listening for 120 Hz only leaves it alone."""
    ev = lamp(100, seconds=2.0)
    assert (~flicker_mask(ev, (128, 128), hz=(120,))).mean() < 0.01
    assert flicker_mask(ev, (128, 128), hz=()).all()


def test_gestures_lose_almost_nothing() -> None:
    """Generated gestures (people moving, camera noise, no lamp): under 1 % of events dropped."""
    for label in (0, 3, 8):
        rec = synth.recording(4242, 3, 0, "led", label, 1.5)
        keep = flicker_mask(rec.events, rec.sensor_size)
        assert (~keep).mean() < 0.01, label


def test_a_person_under_a_lamp_keeps_most_of_their_events() -> None:
    """In a lit area the person's events outside the lamp's phase survive: most of a gesture under a lamp is kept."""
    rec = synth.recording(4242, 3, 0, "led", 1, 2.0)
    person = rec.events.copy()
    person["t"] += T0 - int(person["t"][0])
    ev = merge(person, lamp(100, seconds=2.0, box=(0, 0, 128, 128), p_fire=0.05))
    keep = flicker_mask(ev, (128, 128))
    is_person = np.zeros(len(ev), bool)
    is_person[np.isin(ev["t"] * 1000 + ev["x"] * 7 + ev["y"], person["t"] * 1000 + person["x"] * 7 + person["y"])] = True
    assert keep[is_person].mean() >= 0.5
    assert (~keep[~is_person & (ev["t"] >= T0 + 400_000)]).mean() >= 0.9


def test_one_sweep_of_an_edge_is_not_a_lamp() -> None:
    """An edge crossing a tile once makes one coherent burst (ON then OFF 5 ms later): one period, not a lamp."""
    t = np.concatenate([T0 + np.arange(40) * 10, T0 + 5000 + np.arange(40) * 10]).astype(np.int64)
    ev = np.empty(80, EVENT_DTYPE)
    ev["x"], ev["y"], ev["p"], ev["t"] = np.arange(80) % 8, np.arange(80) // 10, np.arange(80) < 40, t
    assert flicker_mask(ev, (128, 128)).all()


def test_a_flood_on_one_tile_neither_overflows_nor_locks() -> None:
    """1.2 million events on one pixel within a microsecond (past the per-period cap), then a lamp: the flood is
    one period, so kept, and the lamp after it still locks."""
    flood = np.zeros(1_200_000, EVENT_DTYPE)
    flood["x"], flood["y"], flood["p"], flood["t"] = 20, 20, True, T0 - 200_000
    ev = merge(flood, lamp(100, seconds=1.0))
    keep = flicker_mask(ev, (128, 128))
    assert keep[: len(flood)].all()
    late = ev["t"] >= T0 + 400_000
    assert (~keep[late]).mean() >= 0.95


@pytest.mark.parametrize("shift_us", [1_764_000_000 * 1_000_000 + 123_457, 1_907_398_293 - T0, 4_167])
def test_where_time_zero_lies_changes_nothing(shift_us: int) -> None:
    """The same events with every timestamp moved (epoch time in µs since 1970, a replay's own timeline, a
    third of a 120 Hz period) are filtered the same, in the mask and in the stream path: phases count from
    the first event, so the daemon and the offline evaluation agree whatever clock the camera keeps."""
    ev = merge(lamp(120, seconds=1.0, seed=5), lamp(100, seconds=1.0, box=(70, 60, 40, 50), seed=6))
    shifted = ev.copy()
    shifted["t"] += shift_us
    keep = flicker_mask(ev, (128, 128))
    assert 0.02 < keep.mean() < 0.5  # the filter locks and removes most: the equality below means something
    assert np.array_equal(flicker_mask(shifted, (128, 128)), keep)
    spec = PreprocessSpec(sensor_size=(128, 128), anti_flicker_hz=(100, 120))
    whole = preprocess_recording(ev, spec)
    stream = StreamPreprocessor(spec)
    out = [stream.push(part) for part in np.array_split(shifted, 17)]
    out.append(stream.flush())
    assert np.array_equal(np.concatenate(out), whole)


def test_preprocessing_paths_agree_exactly() -> None:
    """In preprocess_recording, in a stream cut anywhere, and as mask + unfiltered preprocessing: the same spikes."""
    ev = merge(lamp(100, seconds=1.5, seed=3), lamp(120, seconds=1.5, box=(70, 60, 40, 50), seed=4))
    spec = PreprocessSpec(sensor_size=(128, 128), anti_flicker_hz=(100, 120))
    whole = preprocess_recording(ev, spec)
    keep = flicker_mask(ev, (128, 128))
    masked = preprocess_recording(ev[keep], PreprocessSpec(sensor_size=(128, 128)), t_start_us=int(ev["t"][0]),
                                  t_stop_us=int(ev["t"][0]) + whole.shape[0] * 1000)  # fmt: skip
    assert np.array_equal(whole, masked)
    unfiltered = preprocess_recording(ev, PreprocessSpec(sensor_size=(128, 128)))
    assert unfiltered.sum() > 5 * whole.sum()  # the filter did something for the equality to mean anything
    for seed in range(3):
        stream = StreamPreprocessor(spec)
        cuts = np.sort(np.random.default_rng(seed).integers(0, len(ev), 40))
        out = [stream.push(part) for part in np.split(ev, cuts)]
        out.append(stream.flush())
        assert np.array_equal(np.concatenate(out), whole)


@pytest.mark.parametrize("why", ["off the sensor", "before the last t_end"])
def test_a_refused_packet_leaves_the_filter_untouched(why: str) -> None:
    """A packet the stream refuses (an event off the sensor; events before the time already closed) is not
    counted by the filter either: what follows is filtered as if it had never come."""
    ev = lamp(100, seconds=1.0)
    spec = PreprocessSpec(sensor_size=(128, 128), anti_flicker_hz=(100,))
    a, b = StreamPreprocessor(spec), StreamPreprocessor(spec)
    first, second = ev[ev["t"] < T0 + 500_000], ev[ev["t"] >= T0 + 500_000]
    bad = second[:200].copy()
    if why == "off the sensor":
        bad["x"][-1] = 500
    else:
        bad = first[-200:].copy()  # in time order, but before the t_end the first push closed
    for stream in (a, b):
        stream.push(first, t_end_us=int(second["t"][0]))
    with pytest.raises(PreprocessError):
        a.push(bad)
    assert np.array_equal(a.push(second), b.push(second))


def test_bad_frequencies_are_refused_with_the_fix() -> None:
    """The spec and the daemon's config name the key, the valid range and how to turn the filter off."""
    with pytest.raises(PreprocessError, match=r"anti_flicker_hz.*1\.\.5000 Hz.*\[\] turns the filter off"):
        PreprocessSpec(sensor_size=(128, 128), anti_flicker_hz=(0,))
    with pytest.raises(ConfigError, match=r"input\.anti_flicker_hz.*100 for 50 Hz mains"):
        load_config(None, {"input": {"anti_flicker_hz": [100, 99999]}}, environ={})
    for bad in ([True], [100.0], "100", 100):  # true is not 1 Hz, nor a string a list
        with pytest.raises(ConfigError, match=r"input\.anti_flicker_hz.*expected a list of flicker frequencies"):
            load_config(None, {"input": {"anti_flicker_hz": bad}}, environ={})
    assert load_config(None, environ={}).input.anti_flicker_hz == flicker.DEFAULT_HZ
    assert load_config(None, {"input": {"anti_flicker_hz": [120, 100, 120]}}, environ={}).input.anti_flicker_hz == (100, 120)


def _windows_run(tmp_path: Path, model: Path, events: np.ndarray, env: dict[str, str]) -> tuple[int, int]:
    """Preds published for the recording, and the stream's ``events_flicker`` in the status after it."""
    tmp_path.mkdir()
    with start_daemon(tmp_path, model, mode="lossless", transport="ipc", env=env) as d:
        sock = d.sender()
        d.send_all(sock, recording_frames("lamp", events, 128, 128, segment="s"))
        preds = d.collect(lambda t, b: t == "s2g/v1/pred/lamp/",
                          lambda t, b: t == "s2g/v1/gesture/lamp/" and b.get("final") is True, timeout_s=30)  # fmt: skip
        status = d.wait_status(lambda b: b["streams"].get("lamp", {}).get("events") == len(events))
        assert d.stop() == 0
    return len(preds), status["streams"]["lamp"]["events_flicker"]


def test_the_daemon_filters_by_default_and_can_be_told_not_to(tmp_path: Path) -> None:
    """A real s2gestured on a 3 s lamp: with the default the lamp leaves the activity gate with nothing to run
    after its lock-in, and the status counts the events dropped; with ``input.anti_flicker_hz = []`` every
    window of it runs."""
    model = tmp_path / "tiny.nir"
    write_tiny_model(model, seed=0)
    ev = lamp(100, seconds=3.0, box=(0, 0, 128, 128), p_fire=0.05)
    filtered, flicker_events = _windows_run(tmp_path / "on", model, ev, {})
    unfiltered, none_dropped = _windows_run(tmp_path / "off", model, ev, {"S2G_INPUT__ANTI_FLICKER_HZ": "[]"})
    assert unfiltered >= 25  # 3 s at a 100 ms stride
    assert filtered <= 4  # the windows of the lock-in only
    # the status counts what the filter dropped: the offline rule's count, exactly
    assert flicker_events == int((~flicker_mask(ev, (128, 128))).sum()) > 0
    assert none_dropped == 0
