"""``s2gesture replay``: publish recordings to a daemon in protocol v1, like a camera would.

One recording is one segment of one stream: its events go out in packets that each cover ``packet_ms``
of event time (``t_end`` set, so an empty packet still advances the daemon's clock), followed by an
``eos`` carrying the segment id, which makes the daemon publish a final decision for it.

Event time on the wire must never go backwards within a stream (docs/protocol.md), so each recording is
shifted onto one continuous time axis: it starts ``gap_ms`` after the previous one ended. The shift is a
constant per recording, so the daemon sees exactly the recording's events and tick grid (which starts at
its first event), and its classification equals the offline one on the same events.

Pacing: packet ``k`` leaves when its window has ended in (scaled) wall time, as a camera delivers it
(``--speed 1`` real time, ``--speed 4`` four times faster), or as fast as the daemon accepts
(``--as-fast-as-possible``, meant for the lossless input: PUSH to the daemon's PULL, backpressure, nothing
lost). How the client waits for the daemon without sleeping is explained in :mod:`s2gesture.clients.bus`.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from s2gesture.daemon import wire
from s2gesture.daemon.errors import S2GestureError
from s2gesture.daemon.events import Recording

from . import bus

MIN_PACKET_MS = 1.0
MAX_PACKET_MS = 10.0


# ------------------------------------------------------------------------------------------ packetizing


@dataclass(frozen=True)
class Packet:
    """One packet of a segment: an event slice (absolute µs times) and the time it covers up to."""

    events: np.ndarray
    #: exclusive end of the packet's window (µs); None on the last packet (nothing beyond its last event)
    t_end_us: int | None


def packet_bounds(t_first_us: int, t_last_us: int, packet_us: int) -> np.ndarray:
    """Window edges ``t_first + k*packet_us`` (µs) up to the first edge after ``t_last_us``."""
    if packet_us < 1:
        msg = f"packet_us must be >= 1 µs, found {packet_us}"
        raise ValueError(msg)
    if t_last_us < t_first_us:
        msg = f"t_last_us ({t_last_us}) must not be before t_first_us ({t_first_us})"
        raise ValueError(msg)
    n = (t_last_us - t_first_us) // packet_us + 1
    return t_first_us + packet_us * np.arange(n + 1, dtype=np.int64)


def packetize(events: np.ndarray, packet_us: int) -> list[Packet]:
    """Cut time-sorted events into packets of ``packet_us`` of event time (empty windows included).

    Every packet but the last says how far it covers (``t_end``); the last one does not, so the daemon's
    tick count for the segment is the same as for the whole recording processed offline.
    """
    if len(events) == 0:
        return []
    t = events["t"]
    bounds = packet_bounds(int(t[0]), int(t[-1]), packet_us)
    # plan (indices) then apply (views), as tonic's slicers do
    idx = np.searchsorted(t, bounds, side="left")
    last = len(bounds) - 2
    return [
        Packet(events[idx[k] : idx[k + 1]], None if k == last else int(bounds[k + 1])) for k in range(last + 1)
    ]


# -------------------------------------------------------------------------------------------- segments


@dataclass(frozen=True)
class Segment:
    """A recording placed on the stream's time axis: events shifted by ``offset_us``, with an id."""

    segment_id: str
    recording: Recording
    offset_us: int

    @property
    def t_first_us(self) -> int:
        """Absolute time of the segment's first event on the stream axis (µs)."""
        return int(self.recording.events["t"][0]) + self.offset_us

    @property
    def t_last_us(self) -> int:
        """Absolute time of the segment's last event on the stream axis (µs)."""
        return int(self.recording.events["t"][-1]) + self.offset_us

    def shifted_events(self) -> np.ndarray:
        """A copy of the recording's events with times on the stream axis."""
        ev = self.recording.events.copy()
        ev["t"] += self.offset_us
        return ev


def segment_id(index: int, recording: Recording) -> str:
    """A segment id unique within a replay: running index plus the recording's name."""
    name = recording.name.replace("/", "_")
    return f"{index:05d}-{name}"[: wire.MAX_SEGMENT_CHARS] if name else f"{index:05d}"


def place_segments(
    recordings: Iterable[Recording], *, gap_us: int, start_us: int = 0, first_index: int = 0
) -> Iterator[Segment]:
    """Put recordings one after the other on one time axis, ``gap_us`` apart; empty ones are skipped."""
    if gap_us < 0:
        msg = f"gap_us must be >= 0, found {gap_us}"
        raise ValueError(msg)
    cursor = start_us
    for i, rec in enumerate(recordings, start=first_index):
        if len(rec) == 0:
            continue
        offset = cursor - int(rec.events["t"][0])
        seg = Segment(segment_id(i, rec), rec, offset)
        yield seg
        cursor = seg.t_last_us + 1 + gap_us


# ---------------------------------------------------------------------------------------------- pacing


class Pacer:
    """Holds packets back until their event time, scaled by ``speed``, has passed in wall time.

    ``speed = inf`` never waits. The wall clock starts at the first event time passed to ``wait_until``.
    Waiting is sleeping until a deadline computed from the start (never cumulative small sleeps, which drift).
    """

    def __init__(
        self,
        speed: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not speed > 0:
            msg = f"speed must be > 0 (1 = real time, inf = as fast as possible), found {speed}"
            raise ValueError(msg)
        self.speed = speed
        self._clock = clock
        self._sleep = sleep
        self._origin: tuple[float, int] | None = None

    def due_s(self, t_us: int) -> float:
        """Wall-clock time (of ``clock``) at which event time ``t_us`` is due."""
        if self._origin is None:
            self._origin = (self._clock(), t_us)
        wall0, t0 = self._origin
        return wall0 + (t_us - t0) / 1e6 / self.speed

    def wait_until(self, t_us: int) -> float:
        """Sleep until event time ``t_us`` is due; returns the seconds slept."""
        if math.isinf(self.speed):
            return 0.0
        delay = self.due_s(t_us) - self._clock()
        if delay > 0:
            self._sleep(delay)
            return delay
        return 0.0


# --------------------------------------------------------------------------------------------- sources


class LazyRecordings(Sequence[Recording]):
    """Recordings loaded one at a time when accessed: a dataset need not fit in memory to be replayed."""

    def __init__(self, loaders: Sequence[Callable[[], Recording]]) -> None:
        self._loaders = list(loaders)

    def __len__(self) -> int:
        return len(self._loaders)

    def __getitem__(self, index: int) -> Recording:  # type: ignore[override]
        if isinstance(index, slice):
            return LazyRecordings(self._loaders[index])  # type: ignore[return-value]
        return self._loaders[index]()


#: recording-source name -> (description, loader(path, args) -> recordings)
Loader = Callable[[Path, argparse.Namespace], Sequence[Recording]]


def _load_tonic(path: Path, args: argparse.Namespace) -> Sequence[Recording]:
    from s2gesture.models.datasets import tonic_layout

    if path.is_file():
        return [tonic_layout.load_sample(path)]
    splits = ("train", "test") if args.split == "all" else (args.split,)
    samples = [s for split in splits for s in tonic_layout.list_samples(path, split)]
    return LazyRecordings([lambda s=s: tonic_layout.load_sample(s) for s in samples])


def _load_aedat3(path: Path, args: argparse.Namespace) -> Sequence[Recording]:
    from s2gesture.models.datasets import aedat3

    files = sorted(path.glob("*.aedat")) if path.is_dir() else [path]
    loaders: list[Callable[[], Recording]] = []
    for file in files:
        labels = aedat3.labels_path_for(file)
        if not labels.exists():
            # an unlabelled recording replays whole (eval will refuse it: it has no label)
            loaders.append(lambda f=file: aedat3.load_recording(f))
            continue
        index = aedat3.read_index(file)  # packet offsets only: segments are read when replayed
        n = len(aedat3.read_labels(labels))
        loaders += [lambda f=file, i=i, ix=index: aedat3.read_segment(f, i, index=ix) for i in range(n)]
    return LazyRecordings(loaders)


def _load_aedat4(path: Path, args: argparse.Namespace) -> Sequence[Recording]:
    from s2gesture.models.datasets import aedat4

    return [aedat4.read_aedat4(path)]


def _load_npz(path: Path, args: argparse.Namespace) -> Sequence[Recording]:
    from s2gesture.models.datasets import npz

    return [npz.read_npz(path)]


def _load_file(path: Path, args: argparse.Namespace) -> Sequence[Recording]:
    from s2gesture.models.datasets import load_recording

    return [load_recording(path)]


SOURCES: dict[str, tuple[str, Loader]] = {
    "tonic": ("tonic's DVSGesture layout: a folder of userNN_<lighting>/<label>.npy (or one .npy)", _load_tonic),
    "aedat3": ("IBM DVS Gesture raw release: userNN_<lighting>.aedat + _labels.csv (or a folder of them), one segment per label", _load_aedat3),
    "aedat4": ("an AEDAT4 file from an iniVation camera (unlabelled)", _load_aedat4),
    "npz": ("s2gesture's own .npz recording", _load_npz),
    # --- formats read through models.datasets' one reader entry (Prophesee RAW/DAT, ROS bags)
    "prophesee": ("a Prophesee Metavision .raw (EVT 2.0 / 3.0) or .dat file (unlabelled)", _load_file),
    "rosbag": ("a ROS 1 .bag or ROS 2 bag (.db3/.mcap or its folder) of event messages (unlabelled)", _load_file),
}


def detect_format(path: Path) -> str:
    """The source format of ``path``: :func:`s2gesture.models.datasets.detect_format`, as a client error."""
    from s2gesture.daemon.errors import EventDataError
    from s2gesture.models.datasets import detect_format as detect

    try:
        return detect(path)
    except EventDataError as exc:
        msg = f"cannot tell the format of {path}: {exc}; pass --format {{{','.join(SOURCES)}}}"
        raise bus.ClientError(msg) from exc


#: synthetic replay users: far above any training split's ids, so they are never users a model was trained on
SYNTHETIC_FIRST_USER = 101


def synthetic_recordings(n: int, seed: int, *, duration_s: float = 6.0, none: int = 0) -> list[Recording]:
    """``n`` synthetic test-user recordings generated in memory (numpy only, seeded), then ``none`` scenes
    of nobody gesturing (label 11, "none": walk-by, camera shake, a person standing, ... in turn).

    Every block of 11 holds each class once, in an order shuffled by ``seed``; each block is a new user
    (ids from :data:`SYNTHETIC_FIRST_USER`) under the generator's lighting rotation.
    """
    from s2gesture.models import synth

    if n < 1:
        msg = f"--synthetic must be >= 1 recording, found {n}"
        raise bus.ClientError(msg)
    rng = np.random.default_rng(seed)
    recordings = []
    for block in range(math.ceil(n / synth.N_CLASSES)):
        user = SYNTHETIC_FIRST_USER + block
        lighting = synth.session_lightings(user, 1)[0]
        for label in rng.permutation(synth.N_CLASSES):
            if len(recordings) == n:
                break
            recordings.append(synth.recording(seed, user, 0, lighting, int(label), duration_s))
    kinds = ("walk", "shake", "idle", "clutter", "flicker")
    for k in range(none):
        user = SYNTHETIC_FIRST_USER + 50 + k
        recordings.append(synth.recording(seed, user, 0, synth.session_lightings(user, 1)[0], synth.NONE_LABEL,
                                          duration_s, distractor=kinds[k % len(kinds)]))  # fmt: skip
    return recordings


def check_sources(args: argparse.Namespace) -> None:
    """Cheap checks of the command line's sources (before waiting for a daemon or generating anything)."""
    if args.synthetic:
        return
    if not args.source:
        msg = "nothing to replay: give one or more SOURCE paths or --synthetic N"
        raise bus.ClientError(msg)
    for raw in args.source:
        if not Path(raw).exists():
            msg = f"recording source {raw} does not exist"
            raise bus.ClientError(msg)


def load_recordings(args: argparse.Namespace) -> Sequence[Recording]:
    """Recordings named by the command line: ``--synthetic N`` or the ``SOURCE`` paths."""
    check_sources(args)
    if args.synthetic:
        return synthetic_recordings(args.synthetic, args.seed, duration_s=args.duration_s)
    parts: list[Sequence[Recording]] = []
    for raw in args.source:
        path = Path(raw)
        fmt = args.format or detect_format(path)
        parts.append(SOURCES[fmt][1](path, args))
    # keep laziness across several sources: one loader per recording, each loading on access
    loaders = [lambda part=part, i=i: part[i] for part in parts for i in range(len(part))]
    recordings = LazyRecordings(loaders)
    return recordings[: args.limit] if args.limit else recordings


# ---------------------------------------------------------------------------------------------- sending


@dataclass
class ReplayStats:
    """What a replay sent: segments, packets and events, and the wall time it took (s)."""

    segments: int = 0
    packets: int = 0
    events: int = 0
    wall_s: float = 0.0
    segment_ids: list[str] = field(default_factory=list)
    #: what the daemon dropped of this stream, by reason (from its status, once it accounted for the last packet)
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        """Events sent per wall-clock second."""
        return self.events / self.wall_s if self.wall_s > 0 else 0.0


class StreamWriter:
    """Encodes the segments of one stream into packets and sends them with a sender and a pacer."""

    def __init__(
        self,
        sender: bus.EventSender,
        stream: str,
        *,
        packet_us: int,
        pacer: Pacer,
        watch: Any = None,
        drain: Callable[[], None] | None = None,
    ) -> None:
        wire.events_topic(stream)  # validates the stream id before anything is sent
        self.sender = sender
        self.stream = stream
        self.packet_us = packet_us
        self.pacer = pacer
        self.watch = watch
        self.drain = drain
        self.seq = 0
        self.stats = ReplayStats()

    def _send(self, frames: list[bytes], n_events: int) -> None:
        self.sender.send(frames, n_events=n_events, watch=self.watch, drain=self.drain)
        self.seq += 1

    # --- shared with `s2gesture camera` (clients/camera.py): one packet, one eos
    def write_packet(
        self, events: np.ndarray, sensor_size: tuple[int, int], *, t_end_us: int | None, segment: str | None, t_base: int = 0
    ) -> None:
        """Encode and send one event packet (absolute µs times) of the current segment."""
        width, height = sensor_size
        frames = wire.encode_events(self.stream, self.seq, width, height, events, t_base=t_base, t_end=t_end_us, segment=segment)
        self._send(frames, len(events))
        self.stats.packets += 1
        self.stats.events += len(events)

    def write_eos(self, segment: str | None) -> None:
        """Send the ``eos`` that closes ``segment`` (the daemon publishes its final decision)."""
        self._send(wire.encode_eos(self.stream, self.seq, segment=segment), 0)
        self.stats.segments += 1
        if segment is not None:
            self.stats.segment_ids.append(segment)
    # --- end of the shared part

    def write_segment(self, seg: Segment, progress: Callable[[int], None] | None = None) -> None:
        """Send one segment's packets (paced) and its ``eos``."""
        for pkt in packetize(seg.shifted_events(), self.packet_us):
            # a packet is due once its window has passed (a camera cannot send the future)
            due = pkt.t_end_us if pkt.t_end_us is not None else int(pkt.events["t"][-1]) + 1
            self.pacer.wait_until(due)
            self.write_packet(pkt.events, seg.recording.sensor_size, t_end_us=pkt.t_end_us, segment=seg.segment_id)
            if progress is not None:
                progress(len(pkt.events))
        self.write_eos(seg.segment_id)


def input_topics(stream: str) -> list[bytes]:
    """The topics a replay of ``stream`` sends on (what the daemon's subscription must cover)."""
    return [wire.events_topic(stream), wire.eos_topic(stream)]


#: --mode value -> whether the sender is lossless (PUSH) or live (XPUB); "auto" asks the daemon's status
MODES = ("auto", "lossless", "live")


def resolve_mode(mode: str, status: wire.Status | None) -> bool:
    """Whether to send losslessly: ``mode``, or for ``auto`` the ``mode`` the daemon's heartbeat reports."""
    if mode not in MODES:
        msg = f"--mode must be one of {', '.join(MODES)}, found {mode!r}"
        raise bus.ClientError(msg)
    daemon_mode = status.mode if status else None
    if mode == "auto":
        # without a heartbeat (--no-wait) there is nothing to ask: lossless never loses data silently
        return daemon_mode != "live"
    if daemon_mode in ("live", "lossless") and daemon_mode != mode:
        msg = (
            f"--mode {mode} but the daemon's input is {daemon_mode}: a {'PUSH' if mode == 'lossless' else 'PUB'} "
            f"cannot talk to its {'SUB' if daemon_mode == 'live' else 'PULL'}; use --mode {daemon_mode} "
            f"(or run the daemon with input.mode = \"{mode}\", env S2G_INPUT__MODE={mode})"
        )
        raise bus.ClientError(msg)
    return mode == "lossless"


def connect(
    ctx: Any, args: argparse.Namespace, *, stream: str, mode: str = "auto"
) -> tuple[bus.EventSender, wire.Status | None]:
    """Wait for the daemon's heartbeat (unless ``--no-wait``), then for our input connection to be joined."""
    status = None
    curve = bus.curve_from_args(args)
    if not args.no_wait:
        sub = bus.open_output(ctx, args.output, topics=(), curve=curve)
        try:
            status = bus.wait_for_status(sub, args.timeout, states=bus.SERVING_STATES)
        finally:
            sub.close()
    lossless = resolve_mode(mode, status)
    sender = bus.EventSender(ctx, args.input, lossless=lossless, stall_timeout_s=args.stall_timeout, curve=curve)
    try:
        sender.wait_ready(args.timeout, topics=input_topics(stream))
    except BaseException:
        sender.close()
        raise
    return sender, status


def await_accounted(ctx: Any, args: argparse.Namespace, stream: str, last_seq: int, *, timeout_s: float) -> wire.Status:
    """The first status in which the daemon has read ``stream`` up to ``last_seq`` and queues nothing of it.

    Closing the socket earlier would let ZeroMQ's linger discard what a busy or paused daemon has not read
    yet; a replay that exits 0 must mean every packet reached the daemon (processed or counted as dropped).
    """
    sub = bus.open_output(ctx, args.output, topics=(), curve=bus.curve_from_args(args))
    deadline = time.monotonic() + timeout_s
    seen: int | None = None
    try:
        while (left := deadline - time.monotonic()) > 0:
            got = bus.receive(sub, left)
            if not isinstance(got, wire.Status):
                continue
            entry = got.streams.get(stream) or {}
            seen = entry.get("last_seq")
            if isinstance(seen, int) and seen >= last_seq and not entry.get("queue"):
                return got
    finally:
        sub.close()
    read = "none of them" if seen is None else f"up to seq {seen}"
    msg = (
        f"the daemon had not accounted for stream {stream!r} within {timeout_s:g} s: sent seq 0..{last_seq}, "
        f"it read {read}; the packets after that may be lost (is it stalled? raise --drain-timeout)"
    )
    raise bus.ClientError(msg)


# --------------------------------------------------------------------------------------------- the CLI


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by replay and eval: sources, endpoints, packets and timeouts."""
    src = parser.add_argument_group("recordings")
    src.add_argument("source", nargs="*", help="recording files or folders (tonic layout, .aedat + _labels.csv, .aedat4, .npz, Prophesee .raw/.dat, ROS .bag/.db3/.mcap)")
    src.add_argument("--format", choices=sorted(SOURCES), help="source format (default: detected from the path)")
    src.add_argument("--split", choices=("train", "test", "all"), default="test", help="tonic layout: which split (default test)")
    src.add_argument("--synthetic", type=int, metavar="N", default=0, help="replay N synthetic test-user recordings generated in memory")
    src.add_argument("--seed", type=int, default=0, help="seed of --synthetic (default 0)")
    src.add_argument("--duration-s", type=float, default=6.0, help="seconds per --synthetic recording (default 6)")
    src.add_argument("--limit", type=int, default=0, metavar="N", help="replay only the first N recordings")
    add_daemon_arguments(parser, stream="replay")
    pk = parser.add_argument_group("packets")
    pk.add_argument("--packet-ms", type=float, default=5.0, help=f"event time per packet, {MIN_PACKET_MS:g}-{MAX_PACKET_MS:g} ms (default 5)")
    pk.add_argument("--gap-ms", type=float, default=500.0, help="event time between recordings (default 500 ms)")


def add_daemon_arguments(parser: argparse.ArgumentParser, *, stream: str) -> None:
    """The daemon's endpoints, stream id, timeouts and CURVE keys (replay, eval and camera)."""
    net = parser.add_argument_group("daemon")
    net.add_argument("--input", default=bus.DEFAULT_INPUT, help=f"daemon input endpoint(s), comma-separated (default {bus.DEFAULT_INPUT})")
    net.add_argument("--output", default=bus.DEFAULT_OUTPUT, help=f"daemon output endpoint(s) for the heartbeat (default {bus.DEFAULT_OUTPUT})")
    net.add_argument("--stream", default=stream, help=f"stream id (default {stream!r})")
    net.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the daemon (default 10)")
    net.add_argument("--stall-timeout", type=float, default=60.0, help="lossless: give up when the daemon accepts nothing for this long (s)")
    net.add_argument("--no-wait", action="store_true", help="do not wait for a status heartbeat (the daemon's output is elsewhere)")
    net.add_argument(
        "--drain-timeout", type=float, default=30.0, metavar="S",
        help="after sending, wait up to S seconds until the daemon has accounted for the last packet (default 30)",
    )
    bus.add_curve_arguments(parser)


def build_parser() -> argparse.ArgumentParser:
    """The ``s2gesture replay`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="s2gesture replay",
        description="Publish recordings to an s2gestured daemon in protocol v1 (one segment + eos per recording).",
        epilog=(
            "Real time (--speed 1) suits a live daemon (SUB input). For evaluation use the lossless input: "
            "the daemon binds PULL and replay connects PUSH; --as-fast-as-possible then runs at the daemon's "
            "pace with nothing lost."
        ),
    )
    add_common_arguments(parser)
    pace = parser.add_argument_group("pacing")
    pace.add_argument("--speed", type=float, default=1.0, help="event time / wall time (default 1 = real time)")
    pace.add_argument("--as-fast-as-possible", action="store_true", help="no pacing: send as fast as the daemon accepts")
    pace.add_argument(
        "--mode",
        choices=MODES,
        default="auto",
        help="lossless: PUSH to the daemon's PULL (backpressure, nothing lost); live: XPUB to its SUB; "
        "auto (default): what the daemon's heartbeat says",
    )
    pace.add_argument("--loop", action="store_true", help="replay the recordings again and again until interrupted")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def check_packet_ms(packet_ms: float) -> int:
    """``--packet-ms`` in µs, after checking its range."""
    if not MIN_PACKET_MS <= packet_ms <= MAX_PACKET_MS:
        msg = f"--packet-ms must be in [{MIN_PACKET_MS:g}, {MAX_PACKET_MS:g}] ms, found {packet_ms:g}"
        raise bus.ClientError(msg)
    return round(packet_ms * 1000)


def run(args: argparse.Namespace, out: Any = sys.stdout, recordings: Sequence[Recording] | None = None) -> ReplayStats:
    """Replay as ``args`` say (``recordings`` instead of the sources when given); returns what was sent."""
    from tqdm import tqdm

    packet_us = check_packet_ms(args.packet_ms)
    speed = math.inf if args.as_fast_as_possible else args.speed
    if recordings is None:
        check_sources(args)
    ctx = bus.context()
    try:
        # the daemon first: a wrong endpoint or mode is reported before seconds of loading or generating
        sender, status = connect(ctx, args, stream=args.stream, mode=args.mode)
        try:
            if recordings is None:
                recordings = load_recordings(args)
            if not recordings:
                msg = "the sources hold no recordings"
                raise bus.ClientError(msg)
        except BaseException:
            sender.close()
            raise
        if status is not None:
            print(
                f"daemon {status.state}: backend {status.backend}, model {status.model_name}, "
                f"input {status.mode or '?'}",
                file=out,
            )
        writer = StreamWriter(sender, args.stream, packet_us=packet_us, pacer=Pacer(speed))
        started = time.monotonic()
        loop_index = 0
        start_us = 0
        try:
            while True:
                # progress in recordings: counting events first would load a whole dataset into memory
                bar = tqdm(total=len(recordings), unit="rec", disable=args.quiet, desc=f"replay {args.stream}")
                first = loop_index * len(recordings)
                last_seg = None
                for seg in place_segments(recordings, gap_us=round(args.gap_ms * 1000), start_us=start_us, first_index=first):
                    writer.write_segment(seg)
                    bar.update(1)
                    bar.set_postfix(events=f"{writer.stats.events / 1e6:.2f}M", refresh=False)
                    last_seg = seg
                bar.close()
                loop_index += 1
                if not args.loop or last_seg is None:
                    break
                start_us = last_seg.t_last_us + 1 + round(args.gap_ms * 1000)
            if not args.no_wait and writer.seq:
                final = await_accounted(ctx, args, args.stream, writer.seq - 1, timeout_s=args.drain_timeout)
                writer.stats.dropped = dict(final.streams.get(args.stream, {}).get("dropped") or {})
        finally:
            writer.stats.wall_s = time.monotonic() - started
            sender.close()
        return writer.stats
    finally:
        ctx.term()


def cli(argv: list[str] | None = None) -> int:
    """``s2gesture replay``: returns 0 on success, 1 when no daemon answers, 2 on bad arguments."""
    args = build_parser().parse_args(argv)
    try:
        stats = run(args)
    except bus.NoDaemonError as exc:
        print(f"s2gesture replay: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except S2GestureError as exc:
        print(f"s2gesture replay: {exc}", file=sys.stderr)
        return 2
    print(
        f"sent {stats.segments} segments, {stats.packets} packets, {stats.events} events "
        f"in {stats.wall_s:.2f} s ({stats.events_per_s / 1e6:.2f} M events/s)"
    )
    if stats.dropped:
        lost = ", ".join(f"{reason} {n}" for reason, n in sorted(stats.dropped.items()))
        print(
            f"s2gesture replay: warning: the daemon dropped {sum(stats.dropped.values())} of these packets ({lost}); "
            "a live-mode daemon drops the oldest when it falls behind: use input.mode = \"lossless\" to lose nothing",
            file=sys.stderr,
        )
    return 0
