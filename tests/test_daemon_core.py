"""The daemon core's parts driven directly, without sockets: StreamSession, Intake, BackendSupervisor, run_window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from daemon_helpers import random_events

from s2gesture.daemon import wire
from s2gesture.daemon.chunking import run_window
from s2gesture.daemon.config import load_config
from s2gesture.daemon.errors import BackendError, ChipMemoryError
from s2gesture.daemon.events import EVENT_DTYPE
from s2gesture.daemon.intake import Intake, IntakeBounds, Queued
from s2gesture.daemon.pipeline import Pipeline, default_model_path, load_model
from s2gesture.daemon.preprocess import PreprocessSpec, StreamPreprocessor
from s2gesture.daemon.streams import Boundary, RejectedPacketError, StreamSession
from s2gesture.daemon.supervisor import BackendSupervisor
from s2gesture.daemon.testing import write_tiny_model


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    """A pipeline serving the tiny test model on the emulator."""
    path = tmp_path_factory.mktemp("m") / "tiny.nir"
    write_tiny_model(path)
    config = load_config(None, {"model": {"path": str(path)}}, environ={})
    return Pipeline.build(config, load_model(config))


@pytest.fixture(scope="module")
def bundled() -> Pipeline:
    """A pipeline serving the bundled pretrained model on the emulator."""
    config = load_config(None, {"model": {"path": str(default_model_path())}}, environ={})
    return Pipeline.build(config, load_model(config))


def _session(p: Pipeline, stream: str = "cam") -> StreamSession:
    return StreamSession(stream, p.rules, p.segment_factory())


def _packet(events: np.ndarray, seq: int, *, sensor: tuple[int, int] = (128, 128), t_end: int | None = None,
            segment: str | None = None) -> wire.EventPacket:
    return wire.EventPacket("cam", seq, sensor[0], sensor[1], events, t_end_us=t_end, segment=segment)


def _lamp(n: int, *, seed: int = 0, duration_us: int = 1_000_000, t0_us: int = 0) -> np.ndarray:
    """A flickering lamp: ``n`` OFF events in the top-left 64x64 block."""
    rng = np.random.default_rng(seed)
    ev = np.empty(n, dtype=EVENT_DTYPE)
    ev["x"], ev["y"], ev["p"] = rng.integers(0, 64, n), rng.integers(0, 64, n), 0
    ev["t"] = t0_us + np.sort(rng.integers(0, duration_us, n))
    return ev


# ----------------------------------------------------------------------------------- StreamSession


def test_session_cuts_windows_and_closes_with_the_eos_seq(tiny_pipeline: Pipeline) -> None:
    """Packets become windows of the plan; finish after eos answers with the eos seq and the segment id."""
    s = _session(tiny_pipeline)
    ev = random_events(20_000, seed=1, duration_us=500_000)
    windows = []
    for seq, part in enumerate(np.array_split(ev, 10)):
        got = s.accept(_packet(part, seq, segment="a"), 0)
        assert isinstance(got, list)
        windows += got
    plan = tiny_pipeline.plan
    assert [(w.start, w.stop) for w in windows][:2] == [(0, plan.window), (plan.stride, plan.stride + plan.window)]
    for w in windows:
        assert (w.active and s.record(w, run_window(w.spikes, tiny_pipeline.backend)) is None) or True
    final = s.finish("eos", wire.EosPacket("cam", 10, segment="a"))
    assert final is not None and (final.seq, final.segment, final.decision.final) == (10, "a", True)
    assert s.segment is None and s.stats.packets == 10 and s.stats.chunks == len(windows)


def test_session_boundaries_sensor_gap_and_backwards(tiny_pipeline: Pipeline) -> None:
    """A new sensor or segment id and a long gap are boundaries; time going backwards is a rejection."""
    s = _session(tiny_pipeline)
    ev = random_events(1_000, seed=2, duration_us=100_000)
    assert isinstance(s.accept(_packet(ev, 0), 0), list)
    assert s.accept(_packet(ev[:0], 1, sensor=(346, 260), t_end=100_001), 0) == Boundary("segment_change")
    assert s.accept(_packet(ev[:0], 1, segment="other", t_end=100_001), 0) == Boundary("segment_change")
    late = ev.copy()
    late["t"] += tiny_pipeline.rules.max_gap_us + 200_000
    assert s.accept(_packet(late, 1), 0) == Boundary("time_gap")
    with pytest.raises(RejectedPacketError) as info:
        s.accept(_packet(ev[:10], 1), 0)
    assert info.value.reason == "time_backwards"


def test_late_eos_repeats_the_answer_of_a_flushed_segment(tiny_pipeline: Pipeline) -> None:
    """A segment closed by silence answers its late eos with the same decision; an empty eos gets class -1."""
    s = _session(tiny_pipeline)
    s.accept(_packet(random_events(5_000, seed=3, duration_us=300_000), 0, segment="x"), 0)
    for w in s.tail(0):
        if w.active:
            s.record(w, run_window(w.spikes, tiny_pipeline.backend))
    flushed = s.finish("flush")
    late = s.finish("eos", wire.EosPacket("cam", 1, segment="x"))
    assert flushed is not None and late is not None
    assert late.decision == flushed.decision and late.seq == 1
    empty = s.finish("eos", wire.EosPacket("cam", 2, segment="y"))
    assert empty is not None and empty.decision.class_id == -1 and empty.segment == "y"
    assert s.finish("flush") is None


def test_packet_spanning_too_much_time_is_rejected(tiny_pipeline: Pipeline) -> None:
    """A packet claiming more event time than max_packet_span_s is rejected before any tick is made."""
    s = _session(tiny_pipeline)
    with pytest.raises(RejectedPacketError) as info:
        s.accept(_packet(random_events(10, seed=4), 0, t_end=10**12), 0)
    assert info.value.reason == "bad_time" and s.segment is None


# ------------------------------------------------------------------------------------------- Intake


def _item(stream: str, t_ns: int, *, eos: bool = False, size: int = 100) -> Queued:
    topic = (wire.EOS_PREFIX if eos else wire.EVENTS_PREFIX) + f"{stream}/"
    return Queued([topic.encode(), b"x" * size], t_ns)


def _bounds(**kw: object) -> IntakeBounds:
    base: dict[str, object] = {"lossless": False, "queue_packets": 4, "max_lag_ns": 10**9, "max_queued_bytes": 10**9,
                               "max_streams": 2}
    return IntakeBounds(**{**base, **kw})  # type: ignore[arg-type]


def test_intake_admits_exactly_max_streams() -> None:
    """max_streams=2 admits two streams, not three; '*' does not take a slot."""
    intake = Intake(_bounds())
    assert intake.admit("a", 0, lambda s: False) and intake.admit("b", 0, lambda s: False)
    intake.drop("*", "bad_topic")
    assert not intake.admit("c", 0, lambda s: False)
    assert intake.admit("c", 0, lambda s: s == "a") and "a" not in intake.streams


def test_intake_drops_the_oldest_and_never_an_eos() -> None:
    """A full live queue loses its oldest event packets; an eos among them survives; counts by reason."""
    intake = Intake(_bounds(queue_packets=3))
    intake.admit("a", 0, lambda s: False)
    intake.offer("a", _item("a", 1), 0)
    intake.offer("a", _item("a", 2, eos=True), 0)
    for t in (3, 4, 5):
        intake.offer("a", _item("a", t), 0)
    served = [intake.next() for _ in range(3)]
    assert [(item.received_ns, item.is_eos) for _, item in served if item] == [(2, True), (4, False), (5, False)]
    assert intake.streams["a"].dropped == {"queue_full": 2}


def test_intake_global_bound_drops_oldest_across_streams_and_expires_by_age() -> None:
    """Over the byte bound the oldest packet of all streams goes; packets older than max_lag expire as 'lag'."""
    intake = Intake(_bounds(queue_packets=100, max_queued_bytes=500, max_lag_ns=100))
    for s in ("a", "b"):
        intake.admit(s, 0, lambda _: False)
    for t, s in ((1, "a"), (2, "b"), (3, "a"), (4, "b"), (5, "a")):
        intake.offer(s, _item(s, t), 0)
    assert intake.streams["a"].dropped == {"queue_full": 1}  # t=1 was the oldest of all
    intake.expire(now_ns=103)  # t < 3 expires
    assert intake.streams["b"].dropped == {"lag": 1}
    order = [intake.next() for _ in range(3)]
    assert [(s, item.received_ns) for s, item in order if item] == [("a", 3), ("b", 4), ("a", 5)]
    assert intake.take_dropped_since_decode("a") == 1 and intake.take_dropped_since_decode("a") == 0


def test_intake_round_robin_serves_streams_in_turn() -> None:
    """A busy stream cannot starve a quiet one: messages are served one per stream in turn."""
    intake = Intake(_bounds(queue_packets=100))
    for s in ("busy", "quiet"):
        intake.admit(s, 0, lambda _: False)
    for t in range(5):
        intake.offer("busy", _item("busy", t), 0)
    intake.offer("quiet", _item("quiet", 10), 0)
    first_two = [intake.next()[0] for _ in range(2)]  # type: ignore[index]
    assert first_two == ["busy", "quiet"]


def test_lossless_intake_pauses_instead_of_dropping() -> None:
    """In lossless mode nothing is dropped: a full queue or a held message pauses reading."""
    intake = Intake(_bounds(lossless=True, queue_packets=2))
    intake.admit("a", 0, lambda _: False)
    intake.offer("a", _item("a", 1), 0)
    assert not intake.paused()
    intake.offer("a", _item("a", 2), 0)
    intake.offer("a", _item("a", 3), 0)
    assert intake.paused() and intake.queued("a") == 3 and not intake.streams["a"].dropped
    intake.next(), intake.next(), intake.next()
    assert not intake.paused()
    intake.hold("c", _item("c", 4))
    assert intake.paused()


# ---------------------------------------------------------------------------- windows and supervisor


def _lamp_window(p: Pipeline) -> np.ndarray:
    spec = PreprocessSpec.from_card(p.model.card.input, (128, 128))
    ticks = StreamPreprocessor(spec).push(_lamp(200_000), 1_000_000)
    return ticks[: p.plan.window]


def test_a_window_too_dense_for_the_chip_is_split_into_runs_that_fit(bundled: Pipeline) -> None:
    """A lamp window overflows the spike buffers in one run; run_window splits it and sums the halves exactly."""
    window = _lamp_window(bundled)
    with pytest.raises(ChipMemoryError):
        bundled.backend.run(window, record=())
    result = run_window(window, bundled.backend)
    assert result.runs >= 2 and result.thinned == 0.0
    half = len(window) // 2
    parts = [run_window(window[:half], bundled.backend), run_window(window[half:], bundled.backend)]
    assert np.array_equal(result.scores, parts[0].scores + parts[1].scores)
    assert result.runs == parts[0].runs + parts[1].runs


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_supervisor_keeps_ready_on_dense_windows(bundled: Pipeline) -> None:
    """A dense window is not a backend failure: state stays ready, the split is counted."""
    sup = BackendSupervisor(lambda name: bundled, backend_name="emulator", fallback_to_emulator=False,
                            retry_initial_s=1, retry_max_s=4)
    sup.start()
    run = sup.run(_lamp_window(bundled))
    assert run is not None and run.runs >= 2
    assert sup.state == "ready" and sup.counters["windows_split"] == 1 and sup.counters["failures"] == 0
    sup.pipeline = None  # the module's pipeline is shared: do not close it


def test_supervisor_retries_with_backoff_and_recovers(tiny_pipeline: Pipeline) -> None:
    """A board that fails twice: degraded, retries after 1 s then 2 s (injected clock), then ready."""
    clock = _Clock()
    failures = [BackendError("board 1 does not answer"), BackendError("still not")]

    def build(name: str | None) -> Pipeline:
        if failures:
            raise failures.pop(0)
        return tiny_pipeline

    sup = BackendSupervisor(build, backend_name="spinnaker2", fallback_to_emulator=False, retry_initial_s=1.0,
                            retry_max_s=60, clock=clock)
    sup.start()
    assert sup.state == "degraded" and sup.retry_at == 101.0 and "board 1" in sup.error
    sup.tick()
    assert sup.retry_at == 101.0  # not due yet
    clock.now = 101.0
    sup.tick()
    assert sup.state == "degraded" and sup.retry_at == 103.0
    clock.now = 103.0
    sup.tick()
    assert sup.state == "ready" and sup.pipeline is tiny_pipeline and sup.error == "" and sup.generation == 1
    sup.pipeline = None


def test_supervisor_falls_back_to_the_emulator_and_changes_generation(tiny_pipeline: Pipeline) -> None:
    """With fallback enabled a failed board build serves on the emulator (a new generation), still degraded."""
    asked: list[str | None] = []

    def build(name: str | None) -> Pipeline:
        asked.append(name)
        if name is None:
            raise BackendError("no board")
        return tiny_pipeline

    sup = BackendSupervisor(build, backend_name="spinnaker2", fallback_to_emulator=True, retry_initial_s=1.0,
                            retry_max_s=60, clock=_Clock())
    sup.start()
    assert asked == [None, "emulator"] and sup.state == "degraded" and sup.pipeline is tiny_pipeline
    assert sup.generation == 1
    sup.pipeline = None


def test_check_model_refuses_bogus_backend_options(tmp_path: Path) -> None:
    """An unknown backend option is a configuration error naming the option (exit 78 at start and check-config)."""
    from s2gesture.daemon.errors import ConfigError
    from s2gesture.daemon.pipeline import check_model

    write_tiny_model(tmp_path / "m.nir")
    config = load_config(None, {"model": {"path": str(tmp_path / "m.nir")}, "backend": {"options": {"bogus": 1}}},
                         environ={})
    with pytest.raises(ConfigError, match="bogus"):
        check_model(config, load_model(config))
