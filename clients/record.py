"""``s2gesture record``: record your own gesture takes from a live event source, in tonic's layout.

A person is prompted through ``--takes`` rounds of the ``--labels`` gestures: for each take the label is
printed, then a countdown, then ``--seconds`` of events are kept from the live stream and written as one
``.npy`` of tonic's DVSGesture layout (``DIR/DVSGesture/ibmGestureTrain/userNN_takeKK/<label>.npy``), with a
PNG preview strip in ``DIR/previews/``. Inputs are those of ``s2gesture camera`` (``dv://``, ``inivation://``,
``aestream://``, ``file://`` ...), opened by the same code; a recorded file replays in real time, or faster
with ``--speed``. The source is read all the time, so a camera's buffer never fills while a person gets ready.

Time is the source's own clock (µs on its events), moved on by the wall clock where the source is quiet: the
countdown and the take cover exactly ``--countdown`` and ``--seconds`` of camera time, whatever the replay
speed. Each take's events start at 0 µs.

Class labels: a label is the index of its name in ``DIR/classes.json`` (written here). A new folder starts
from the bundled model's classes (the 11 DVS Gesture classes and ``none``); a name that is not among them is
a new class, appended. ``s2gesture finetune`` reads the names, so the indices only have to agree within DIR.

The tonic layout is a 128x128 sensor: a camera of another size is mapped onto it with the daemon's
``center-crop-scale`` rule (its centre cropped to a square, then scaled), the mapping the daemon applies
to the model input; the camera's own size is kept in ``classes.json``.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import select
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from s2gesture.daemon.card import CLASSES_WITH_NONE
from s2gesture.daemon.errors import S2GestureError
from s2gesture.daemon.events import EVENT_DTYPE, Events

from . import bus, camera

CLASSES_FILE = "classes.json"
PREVIEW_FOLDER = "previews"
#: the layout's sensor (tonic's DVSGesture is 128x128)
LAYOUT_SENSOR = (128, 128)
MAX_NAME_CHARS = 40
#: a typed name this close to a known class is refused as a likely typo (difflib ratio)
TYPO_CUTOFF = 0.85
SPLITS = ("train", "test")


class RecordError(bus.ClientError):
    """Recording cannot go on (bad labels, an existing take, a silent or ended input)."""


# ------------------------------------------------------------------------------------------------ labels


def normalise(name: str) -> str:
    """A class name as compared: lower case, ``_`` and ``-`` as spaces, single spaces."""
    return " ".join(name.lower().replace("_", " ").replace("-", " ").split())


def read_classes(folder: str | Path) -> dict[str, Any]:
    """``DIR/classes.json`` as a dict (``classes``: names in label order), or the default for a new folder."""
    path = Path(folder) / CLASSES_FILE
    if not path.is_file():
        return {"classes": list(CLASSES_WITH_NONE), "new_classes": [], "users": [], "takes": {}}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        msg = f"{path}: expected the JSON written by `s2gesture record`, found unreadable JSON ({exc}); fix or remove it"
        raise RecordError(msg) from exc
    names = data.get("classes") if isinstance(data, dict) else None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        msg = f"{path}: expected an object with 'classes': a list of class names, found {str(data)[:120]!r}; fix or remove it"
        raise RecordError(msg)
    data.setdefault("new_classes", [])
    data.setdefault("users", [])
    data.setdefault("takes", {})
    return data  # type: ignore[no-any-return]


def write_classes(folder: str | Path, data: dict[str, Any]) -> Path:
    """Write ``classes.json`` atomically."""
    path = Path(folder) / CLASSES_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def resolve_labels(text: str, classes: list[str]) -> tuple[list[int], list[str]]:
    """``--labels`` -> (label index per name, names that are new classes); ``classes`` grows by the new names.

    Known names match case-insensitively with ``_``/``-`` as spaces; a name close to a known one is refused
    as a probable typo.
    """
    names = [n.strip() for n in text.split(",")]
    if not text.strip() or any(not n for n in names):
        msg = f"--labels: expected comma-separated gesture names (e.g. 'right hand wave,clap twice'), found {text!r}"
        raise RecordError(msg)
    known = {normalise(c): i for i, c in enumerate(classes)}
    seen: set[str] = set()
    labels, new = [], []
    for name in names:
        key = normalise(name)
        if key in seen:
            msg = f"--labels: {name!r} is listed twice; list each gesture once (--takes sets how many takes)"
            raise RecordError(msg)
        seen.add(key)
        if key in known:
            labels.append(known[key])
            continue
        if len(name) > MAX_NAME_CHARS or not name.isprintable() or "/" in name:
            msg = f"--labels: new class name {name!r} must be printable, without '/', at most {MAX_NAME_CHARS} characters"
            raise RecordError(msg)
        near = difflib.get_close_matches(key, list(known), n=1, cutoff=TYPO_CUTOFF)
        if near:
            msg = (
                f"--labels: {name!r} is not a known class but is close to {classes[known[near[0]]]!r}; "
                f"write it exactly, or give the new gesture a more distinct name"
            )
            raise RecordError(msg)
        classes.append(name)
        known[key] = len(classes) - 1
        labels.append(len(classes) - 1)
        new.append(name)
    return labels, new


# ------------------------------------------------------------------------------------------------ stream


@dataclass
class LiveStream:
    """Events of a source in stream order, consumed by time: ``until(t)`` hands out every event before ``t``.

    The clock is the newest event time, moved on at ``rate`` x the wall clock since the first event (so a
    quiet camera still lets a countdown end); ``rate`` is 0 for a file replayed as fast as it reads.
    """

    source: camera.Source
    transform: camera.Transform
    rate: float
    read_s: float = 0.02
    pending: list[Events] = field(default_factory=list)
    drops: dict[str, int] = field(default_factory=dict)
    last_t: int | None = None
    anchor: tuple[int, float] | None = None
    ended: bool = False

    def now(self) -> int | None:
        """Stream time in µs (None before the first event)."""
        if self.anchor is None or self.last_t is None:
            return None
        t0, wall0 = self.anchor
        moved = int((time.monotonic() - wall0) * 1e6 * self.rate) if self.rate else 0
        return max(self.last_t, t0 + moved)

    def pump(self) -> None:
        """Read once from the source (at most ``read_s``)."""
        if self.ended:
            return
        try:
            ev = self.source.read(self.read_s)
        except camera.SourceEndedError:
            self.ended = True
            return
        if ev is None or ev.shape[0] == 0:
            return
        ev = self.transform.apply(ev, self.drops)
        if ev.shape[0] == 0:
            return
        if self.last_t is not None and int(ev["t"][0]) < self.last_t:
            # a source's time must not run backwards within a recording; such events are dropped and counted
            keep = ev["t"] >= self.last_t
            self.drops["time_backwards"] = self.drops.get("time_backwards", 0) + int((~keep).sum())
            ev = ev[keep]
            if ev.shape[0] == 0:
                return
        if self.anchor is None:
            self.anchor = (int(ev["t"][0]), time.monotonic())
        self.last_t = int(ev["t"][-1])
        self.pending.append(ev)

    def first_time(self, give_up_s: float, uri: str, out: TextIO) -> int:
        """Wait (wall time, at most ``give_up_s``) for the first event; its time."""
        start = time.monotonic()
        said = False
        while self.last_t is None:
            self.pump()
            if self.ended and self.last_t is None:
                msg = f"{uri}: the input ended before any event; give a recording with events or a live camera"
                raise RecordError(msg)
            waited = time.monotonic() - start
            if not said and waited > 2.0:
                print(f"waiting for events from {uri} ...", file=out, flush=True)
                said = True
            if waited > give_up_s:
                msg = f"{uri}: no events within {give_up_s:g} s; is the camera streaming (lens cap, DV output on)?"
                raise RecordError(msg)
        return int(self.pending[0]["t"][0])

    def until(self, t_end: int, *, keep: bool = True) -> tuple[Events, bool]:
        """Events with ``t < t_end`` (read as they come); False when the input ended before ``t_end``."""
        while True:
            now = self.now()
            buffered_past = bool(self.pending) and int(self.pending[-1]["t"][-1]) >= t_end
            if buffered_past or (now is not None and now >= t_end) or self.ended:
                break
            self.pump()
        ev = np.concatenate(self.pending) if self.pending else np.zeros(0, EVENT_DTYPE)
        cut = int(np.searchsorted(ev["t"], t_end, side="left"))
        taken, rest = ev[:cut], ev[cut:]
        self.pending = [rest] if rest.shape[0] else []
        complete = not self.ended or (self.last_t is not None and self.last_t >= t_end)
        return (taken if keep else taken[:0]), complete

    def discard_until_enter(self, stdin: TextIO) -> int:
        """Drain the source (events dropped) until a line arrives on ``stdin``; the stream time then."""
        while True:
            ready, _, _ = select.select([stdin], [], [], 0.0)
            if ready:
                stdin.readline()
                break
            self.pump()
            if self.ended:
                break
        now = self.now()
        t = now if now is not None else 0
        self.until(t, keep=False)
        return t


# ------------------------------------------------------------------------------------------------ takes


@dataclass(frozen=True)
class TakePlan:
    """One take to record: take number, label index and name, and the file it goes to."""

    take: int
    label: int
    name: str
    path: Path
    session: str


def session_tag(take: int) -> str:
    """The lighting part of a take's session folder: ``take03``."""
    return f"take{take:02d}"


def plan_takes(out: Path, split: str, user: int, labels: list[int], classes: list[str], takes: int, first: int) -> list[TakePlan]:
    """Every take in recording order: rounds of all labels, so each round varies the order of nothing but time."""
    from s2gesture.models.datasets.tonic_layout import SPLIT_FOLDERS, dataset_dir, session_name

    plans = []
    for k in range(first, first + takes):
        session = session_name(user, session_tag(k))
        for label in labels:
            path = dataset_dir(out) / SPLIT_FOLDERS[split] / session / f"{label}.npy"
            plans.append(TakePlan(k, label, classes[label], path, session))
    return plans


def next_free_take(out: Path, split: str, user: int) -> int:
    """The first take number with no session folder yet for ``user``."""
    from s2gesture.models.datasets.tonic_layout import SPLIT_FOLDERS, dataset_dir

    folder = dataset_dir(out) / SPLIT_FOLDERS[split]
    used = [int(p.name.rsplit("take", 1)[1]) for p in folder.glob(f"user{user:02d}_take*") if p.name.rsplit("take", 1)[1].isdigit()]
    return max(used, default=0) + 1


def to_layout(events: Events, sensor: tuple[int, int]) -> Events:
    """Events of a ``sensor`` mapped onto the layout's 128x128 (the daemon's centre-crop-and-scale)."""
    if tuple(sensor) == LAYOUT_SENSOR:
        return events
    from s2gesture.daemon.preprocess import PreprocessSpec, map_events

    spec = PreprocessSpec(sensor_size=sensor, input_size=LAYOUT_SENSOR, mapping="center-crop-scale", denoise_us=0)
    return map_events(events, spec)


def write_preview(out: Path, plan: TakePlan, user: int, events: Events) -> Path | None:
    """The take's PNG strip in ``DIR/previews`` (None when Pillow's rendering is unavailable)."""
    from s2gesture.daemon.events import Recording
    from s2gesture.models.show import save_strip

    folder = out / PREVIEW_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rec = Recording(events, LAYOUT_SENSOR, label=None, name=f"user{user:02d} take {plan.take}: {plan.name}")
    return save_strip(rec, folder / f"{plan.session}_{plan.label}.png")


@dataclass
class RecordResult:
    """What a recording run wrote."""

    paths: list[Path] = field(default_factory=list)
    previews: list[Path] = field(default_factory=list)
    new_classes: list[str] = field(default_factory=list)
    events: list[int] = field(default_factory=list)
    drops: dict[str, int] = field(default_factory=dict)


def _source_uri(text: str) -> str:
    """A plain path means ``file://PATH``."""
    return text if "://" in text else f"file://{Path(text).resolve()}"


def run(args: argparse.Namespace, out: TextIO = sys.stderr, stdin: TextIO | None = None) -> RecordResult:
    """Record the takes ``args`` ask for; raises RecordError (or ClientError) naming what is wrong."""
    from s2gesture.models.datasets.tonic_layout import write_markers, write_sample

    folder = Path(args.out)
    if folder.exists() and not folder.is_dir():
        msg = f"--out {folder}: expected a folder (the dataset root), found a file; give a folder path"
        raise RecordError(msg)
    for name, value, low in (("--takes", args.takes, 1), ("--seconds", args.seconds, 0.05), ("--countdown", args.countdown, 0.0)):
        if not (value >= low) or math.isinf(value):
            msg = f"{name}: expected a finite number >= {low:g}, found {value:g}"
            raise RecordError(msg)
    if not 0 <= args.user <= 9999:
        msg = f"--user: expected a user number 0..9999 (it names the userNN folders), found {args.user}"
        raise RecordError(msg)
    if not args.speed > 0:
        msg = f"--speed: expected > 0 (1 = real time, inf = as fast as the file reads), found {args.speed:g}"
        raise RecordError(msg)
    info = read_classes(folder)
    classes: list[str] = list(info["classes"])
    labels, new = resolve_labels(args.labels, classes)
    first = args.first_take or next_free_take(folder, args.split, args.user)
    plans = plan_takes(folder, args.split, args.user, labels, classes, int(args.takes), first)
    existing = [p for p in plans if p.path.exists()]
    if existing and not args.overwrite:
        free = next_free_take(folder, args.split, args.user)
        msg = (
            f"take {existing[0].take} of {existing[0].name!r} for user {args.user} already exists ({existing[0].path}); "
            f"record more takes with --first-take {free}, or replace it with --overwrite"
        )
        raise RecordError(msg)
    uri = _source_uri(args.input)
    interactive = not args.yes and (stdin or sys.stdin).isatty()
    source = camera.open_source(uri, sensor_size=camera.parse_size(args.sensor_size), speed=args.speed)
    result = RecordResult(new_classes=new)
    try:
        try:
            sensor = source.open()
        except camera.SourceLostError as exc:
            msg = f"{exc}; check that the camera is connected and streaming"
            raise RecordError(msg) from exc
        roi = camera.parse_roi(args.roi, sensor)
        tf = camera.Transform(sensor, roi, args.flip_x, args.flip_y, args.rotate)
        is_file = uri.startswith("file://")
        rate = (0.0 if math.isinf(args.speed) else float(args.speed)) if is_file else 1.0
        stream = LiveStream(source, tf, rate)
        print(
            f"recording {len(plans)} takes ({args.takes} x {len(labels)} gestures, {args.seconds:g} s each) from {uri} "
            f"(sensor {tf.out_size[0]}x{tf.out_size[1]}) into {folder}",
            file=out,
            flush=True,
        )
        for name in new:
            print(f"new class {name!r} (label {classes.index(name)})", file=out)
        t = stream.first_time(args.give_up_s, uri, out)
        stream.until(t, keep=False)
        write_markers(folder)
        countdown_us = round(args.countdown * 1e6)
        take_us = round(args.seconds * 1e6)
        for i, plan in enumerate(plans, 1):
            print(f"\n[{i}/{len(plans)}] take {plan.take}: {plan.name!r}", file=out, flush=True)
            if interactive:
                print("press Enter when ready", file=out, flush=True)
                t = stream.discard_until_enter(stdin or sys.stdin)
            # countdown in whole seconds of stream time, the last step as long as what is left
            steps = math.ceil(countdown_us / 1e6) if countdown_us else 0
            for s in range(steps, 0, -1):
                print(f"  {s}...", file=out, flush=True)
                t_next = t + min(1_000_000, countdown_us - (steps - s) * 1_000_000)
                _, ok = stream.until(t_next, keep=False)
                if not ok:
                    _ended(uri, plan, 0.0, args)
                t = t_next
            print(f"  GO: {plan.name} ({args.seconds:g} s)", file=out, flush=True)
            events, ok = stream.until(t + take_us)
            if not ok:
                got = (stream.last_t - t) / 1e6 if stream.last_t is not None else 0.0
                _ended(uri, plan, max(got, 0.0), args)
            if events.shape[0] == 0:
                msg = (
                    f"take {plan.take} of {plan.name!r}: no events in {args.seconds:g} s from {uri}; is the camera "
                    f"pointed at you and streaming? (the takes before it are saved)"
                )
                raise RecordError(msg)
            events = events.copy()
            events["t"] -= t
            t += take_us
            events = to_layout(events, tf.out_size)
            if events.shape[0] == 0:
                msg = f"take {plan.take} of {plan.name!r}: every event lies outside the centre square the model sees; aim the camera at the gesture or use --roi"
                raise RecordError(msg)
            plan.path.parent.mkdir(parents=True, exist_ok=True)
            path = write_sample(folder, args.split, args.user, session_tag(plan.take), plan.label, events)
            result.paths.append(path)
            result.events.append(int(events.shape[0]))
            if not args.no_preview:
                png = write_preview(folder, plan, args.user, events)
                if png is not None:
                    result.previews.append(png)
            print(f"  stop: {events.shape[0]} events -> {path}", file=out, flush=True)
            _record_progress(folder, info, classes, new, args, tf.out_size, sensor, plan)
    finally:
        source.close()
    result.drops = dict(stream.drops) if "stream" in locals() else {}
    return result


def _ended(uri: str, plan: TakePlan, got_s: float, args: argparse.Namespace) -> None:
    msg = (
        f"{uri}: the input ended {got_s:.2f} s into take {plan.take} of {plan.name!r} (each take needs "
        f"{args.countdown:g} s countdown + {args.seconds:g} s); the takes before it are saved"
    )
    raise RecordError(msg)


def _record_progress(
    folder: Path, info: dict[str, Any], classes: list[str], new: list[str], args: argparse.Namespace,
    out_size: tuple[int, int], sensor: tuple[int, int], plan: TakePlan,
) -> None:
    """Update classes.json after each written take (so an interrupted run leaves a usable folder)."""
    info["classes"] = list(classes)
    info["new_classes"] = sorted(set(info.get("new_classes", [])) | set(new), key=classes.index)
    if args.user not in info["users"]:
        info["users"] = sorted([*info["users"], args.user])
    key = f"{args.split}/{plan.session}"
    done = info["takes"].setdefault(key, [])
    if plan.label not in done:
        done.append(plan.label)
        done.sort()
    info["camera"] = {"sensor_size": list(sensor), "after_roi_and_rotation": list(out_size),
                      "layout_sensor": list(LAYOUT_SENSOR), "mapping": "center-crop-scale"}  # fmt: skip
    info["seconds_per_take"] = args.seconds
    write_classes(folder, info)


def build_parser() -> argparse.ArgumentParser:
    """The ``s2gesture record`` argument parser."""
    p = argparse.ArgumentParser(
        prog="s2gesture record",
        description="Record your own gesture takes from a live camera (or a recording replayed in real time) into "
        "tonic's layout, with a preview strip per take; `s2gesture finetune` trains on the folder.",
        epilog="Example: s2gesture record --input inivation:// --labels 'right hand wave,thumbs up' --takes 10 "
        "--out ~/gestures --user 1. See docs/own_gestures.md.",
    )
    p.add_argument("--input", required=True, metavar="URI",
                   help="event source as for `s2gesture camera`: dv://HOST:PORT, inivation://[SERIAL], aestream://camera, "
                   "aestream+udp://HOST:PORT, file://PATH (a plain path is a file)")  # fmt: skip
    p.add_argument("--labels", required=True, help="comma-separated gesture names; names that are not known classes become new classes")
    p.add_argument("--takes", type=int, default=5, help="takes of every gesture (default 5)")
    p.add_argument("--out", required=True, metavar="DIR", help="dataset folder (tonic layout; created, or added to)")
    p.add_argument("--user", type=int, default=1, help="user number of these takes (folder userNN_takeKK; default 1)")
    p.add_argument("--seconds", type=float, default=3.0, help="length of a take in seconds of camera time (default 3)")
    p.add_argument("--countdown", type=float, default=3.0, help="countdown before each take in seconds (default 3)")
    p.add_argument("--split", choices=SPLITS, default="train", help="train takes, or held-out test takes (default train)")
    p.add_argument("--first-take", type=int, default=0, help="number of the first take (default: after the user's last)")
    p.add_argument("--overwrite", action="store_true", help="replace takes that already exist")
    p.add_argument("--yes", "-y", action="store_true", help="do not wait for Enter before each take (also without a terminal)")
    p.add_argument("--no-preview", action="store_true", help="no PNG preview strips")
    p.add_argument("--speed", type=float, default=1.0, help="file://: event time / wall time (default 1; inf = as fast as it reads)")
    p.add_argument("--give-up-s", type=float, default=10.0, help="fail when the source sends nothing this long at the start (default 10)")
    geo = p.add_argument_group("geometry (as `s2gesture camera`)")
    geo.add_argument("--sensor-size", metavar="WxH", help="sensor size where the source does not say it (AEStream UDP)")
    geo.add_argument("--roi", metavar="X,Y,W,H", help="keep only this region of the sensor (pixels)")
    geo.add_argument("--flip-x", action="store_true", help="mirror left-right (after --roi)")
    geo.add_argument("--flip-y", action="store_true", help="mirror top-bottom (after --roi)")
    geo.add_argument("--rotate", type=int, choices=(0, 90, 180, 270), default=0, help="rotate clockwise (after the flips)")
    return p


def cli(argv: list[str] | None = None) -> int:
    """``s2gesture record``: 0 when every take was written, 2 on bad input or a take that could not be recorded."""
    args = build_parser().parse_args(argv)
    try:
        result = run(args)
    except KeyboardInterrupt:
        print("\ns2gesture record: interrupted; the takes written so far are kept", file=sys.stderr)
        return 130
    except S2GestureError as exc:
        print(f"s2gesture record: {exc}", file=sys.stderr)
        return 2
    n = len(result.paths)
    print(f"\nwrote {n} takes ({sum(result.events)} events) and {len(result.previews)} previews into {args.out}")
    if result.new_classes:
        print(f"new classes: {', '.join(result.new_classes)} (fine-tune with --new-classes '{','.join(result.new_classes)}')")
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
