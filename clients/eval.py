"""``s2gesture eval``: accuracy and latency of a *running* daemon on a labelled dataset.

Each labelled recording is replayed as one segment through the daemon's lossless input (PUSH to its
PULL: backpressure, nothing dropped), and the daemon's final decision for the segment (the ``gesture``
message with ``final: true`` it publishes on ``eos``) is compared with the label. Because the daemon's
segment processing is the same code as the offline evaluation (``s2gesture.daemon.chunking`` and
``.decision``: ``classify_recording``), the accuracy equals ``s2gesture evaluate``'s emulated-chip
accuracy on the same model, data and chunking (tests/test_clients_eval.py checks it).

Reported (JSON, and a PNG with the confusion matrix and the latency distributions):

* accuracy, confusion matrix (rows: true class, columns: predicted; a last column counts segments with
  no decision), per-segment results;
* the accuracy's 95 % interval over *users* (``user_ci``: a cluster bootstrap, since recordings of one
  person are correlated), accuracy per user and per lighting, and the worst user
  (:mod:`s2gesture.models.userstats`, numpy only); users and lightings come from the recordings' reader
  metadata or their ``userNN_<lighting>`` names;
* time from gesture onset (the segment's first event) to the first *correct* onset decision, in event
  time (ms): how long someone has to gesture before the daemon says the right thing;
* the daemon's processing latency (``latency_ms`` of every ``pred``: last event of a window received ->
  prediction published) and the client-side wall time from sending ``eos`` to receiving the final
  decision, as percentiles.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from s2gesture.daemon import wire
from s2gesture.daemon.card import NONE_CLASS
from s2gesture.daemon.events import Recording
from s2gesture.models import userstats

from . import bus, replay

PERCENTILES = (50, 90, 99)


@dataclass
class SegmentResult:
    """What the daemon said about one labelled segment."""

    segment: str
    name: str
    label: int
    t_first_us: int
    predicted: int | None = None
    predicted_label: str | None = None
    confidence: float | None = None
    #: event time from the segment's first event to the end of the first correct onset's evidence (ms)
    time_to_correct_ms: float | None = None
    onsets: int = 0
    #: onsets naming another class than the label (for a "none" segment: every onset is a false alarm)
    wrong_onsets: int = 0
    #: event time the segment covers (s)
    duration_s: float = 0.0
    #: wall time from sending eos to receiving the final decision (ms)
    final_wait_ms: float | None = None
    #: who recorded it and under which lighting ("unknown" where the recording does not say)
    user: str = userstats.UNKNOWN
    lighting: str = userstats.UNKNOWN
    eos_sent_s: float | None = field(default=None, repr=False)

    @property
    def correct(self) -> bool:
        """Whether the final decision is the label."""
        return self.predicted == self.label


@dataclass
class EvalResult:
    """Everything one live evaluation measured."""

    segments: list[SegmentResult]
    classes: list[str]
    pred_latency_ms: list[float]
    replay: replay.ReplayStats
    #: the daemon's last status heartbeat
    daemon: wire.Status

    @property
    def n_decided(self) -> int:
        """Segments that got a final decision."""
        return sum(s.predicted is not None for s in self.segments)

    @property
    def accuracy(self) -> float:
        """Fraction of segments whose final decision is the label (missing decisions count as wrong)."""
        return sum(s.correct for s in self.segments) / len(self.segments) if self.segments else math.nan

    def confusion(self) -> np.ndarray:
        """``[n_classes, n_classes + 1]`` counts: true class x predicted class (last column: none)."""
        n = len(self.classes)
        cm = np.zeros((n, n + 1), dtype=np.int64)
        for s in self.segments:
            col = s.predicted if s.predicted is not None and 0 <= s.predicted < n else n
            cm[s.label, col] += 1
        return cm

    def user_stats(self) -> dict[str, Any]:
        """``user_ci``, ``per_user``, ``per_lighting``, ``worst_user`` and the one-line ``summary`` (empty: no segments)."""
        if not self.segments:
            return {}
        return userstats.accuracy_stats(
            [s.correct for s in self.segments], [s.user for s in self.segments], [s.lighting for s in self.segments]
        )

    def onset_stats(self) -> dict[str, Any]:
        """Wrong onsets per gesture segment and, for segments labelled with the model's "none" class, false
        gesture decisions (every onset, and every final that is neither "none" nor absent) per 10 minutes."""
        none = self.classes.index(NONE_CLASS) if NONE_CLASS in self.classes else None
        gestures = [s for s in self.segments if s.label != none]
        idle = [s for s in self.segments if s.label == none]
        out: dict[str, Any] = {
            "wrong_onsets_per_segment": sum(s.wrong_onsets for s in gestures) / len(gestures) if gestures else None,
        }
        if idle:
            false = sum(s.onsets + (s.predicted not in (None, -1, none)) for s in idle)
            minutes = sum(s.duration_s for s in idle) / 60
            out["none_segments"] = {"n": len(idle), "minutes": minutes, "false_decisions": false,
                                    "false_per_10min": false / minutes * 10 if minutes else None,
                                    "final_none": sum(s.predicted == none for s in idle)}  # fmt: skip
        return out

    def report(self) -> dict[str, Any]:
        """The JSON report."""
        ttc = [s.time_to_correct_ms for s in self.segments if s.time_to_correct_ms is not None]
        waits = [s.final_wait_ms for s in self.segments if s.final_wait_ms is not None]
        return {
            "n_segments": len(self.segments),
            "n_decided": self.n_decided,
            "accuracy": self.accuracy,
            "correct": sum(s.correct for s in self.segments),
            "classes": self.classes,
            "confusion": self.confusion().tolist(),
            **self.user_stats(),
            "confusion_note": "rows: true class; columns: predicted class, last column: no final decision",
            "time_to_first_correct_ms": {**percentiles(ttc), "segments_with_correct_onset": len(ttc)},
            **self.onset_stats(),
            "pred_latency_ms": percentiles(self.pred_latency_ms),
            "final_wait_ms": percentiles(waits),
            "replay": {
                "events": self.replay.events,
                "packets": self.replay.packets,
                "wall_s": self.replay.wall_s,
                "events_per_s": self.replay.events_per_s,
            },
            "daemon": {"backend": self.daemon.backend, "model": self.daemon.model, "state": self.daemon.state},
            "segments": [
                {k: v for k, v in asdict(s).items() if k != "eos_sent_s"} | {"correct": s.correct} for s in self.segments
            ],
        }


def percentiles(values: Sequence[float]) -> dict[str, float | int]:
    """``n``, mean and p50/p90/p99/max of ``values`` (empty: only ``n``)."""
    if not values:
        return {"n": 0}
    arr = np.asarray(values, dtype=np.float64)
    out: dict[str, float | int] = {"n": len(arr), "mean": float(arr.mean())}
    out |= {f"p{q}": float(np.percentile(arr, q)) for q in PERCENTILES}
    out["max"] = float(arr.max())
    return out


class Collector:
    """Sorts the daemon's output into per-segment results while the replay runs."""

    def __init__(
        self,
        sub: Any,
        stream: str,
        results: dict[str, SegmentResult],
        on_final: Callable[[SegmentResult, wire.Gesture], None] | None = None,
        status: wire.Status | None = None,
    ) -> None:
        self.sub = sub
        self.stream = stream
        self.results = results
        self.on_final = on_final
        self.pred_latency_ms: list[float] = []
        self.finals = 0
        #: the latest heartbeat
        self.status = status

    def drain(self) -> None:
        """Handle every message waiting on the socket (never blocks)."""
        while True:
            got = bus.receive(self.sub, 0)
            if got is None:
                return
            self.handle(got)

    def handle(self, msg: wire.Output) -> None:
        """Record one output message."""
        if isinstance(msg, wire.Status):
            self.status = msg
            return
        if msg.stream != self.stream:
            return
        if isinstance(msg, wire.Pred):
            self.pred_latency_ms.append(msg.latency_ms)
            return
        res = self.results.get(str(msg.segment))
        if res is None:
            return
        if msg.final:
            if res.predicted is not None:
                return  # a repeated final (e.g. after a flush) does not change the first answer
            res.predicted = msg.class_id
            res.predicted_label = msg.label
            res.confidence = msg.confidence
            if res.eos_sent_s is not None:
                res.final_wait_ms = (time.monotonic() - res.eos_sent_s) * 1e3
            self.finals += 1
            if self.on_final is not None:
                self.on_final(res, msg)
            return
        res.onsets += 1
        res.wrong_onsets += msg.class_id != res.label
        if msg.class_id == res.label and res.time_to_correct_ms is None and msg.t_end is not None:
            res.time_to_correct_ms = max(0.0, (msg.t_end - res.t_first_us) / 1e3)


def evaluate_live(
    recordings: Sequence[Recording],
    *,
    input_endpoint: str = bus.DEFAULT_INPUT,
    output_endpoint: str = bus.DEFAULT_OUTPUT,
    stream: str = "eval",
    packet_us: int = 5_000,
    gap_us: int = 500_000,
    speed: float = math.inf,
    timeout_s: float = 10.0,
    final_timeout_s: float = 60.0,
    on_final: Callable[[SegmentResult, wire.Gesture], None] | None = None,
    progress: Callable[[int], None] | None = None,
    curve: bus.CurveKeys | None = None,
) -> EvalResult:
    """Replay labelled ``recordings`` losslessly through a running daemon and collect its decisions."""
    ctx = bus.context()
    try:
        topics = (wire.PRED_PREFIX + f"{stream}/", wire.GESTURE_PREFIX + f"{stream}/")
        sub = bus.open_output(ctx, output_endpoint, topics=topics, curve=curve)
        try:
            # the heartbeat proves our SUB is joined: no final decision published from now on is missed
            status = bus.wait_for_status(sub, timeout_s, states=bus.SERVING_STATES)
            if status.mode == "live":
                msg = (
                    "eval needs the daemon's lossless input (nothing may be dropped), but this daemon's input is "
                    'live; run it with input.mode = "lossless" (env S2G_INPUT__MODE=lossless)'
                )
                raise bus.ClientError(msg)
            sender = bus.EventSender(ctx, input_endpoint, lossless=True, stall_timeout_s=final_timeout_s, curve=curve)
            try:
                sender.wait_ready(timeout_s)
                results: dict[str, SegmentResult] = {}
                collector = Collector(sub, stream, results, on_final, status)
                writer = replay.StreamWriter(
                    sender, stream, packet_us=packet_us, pacer=replay.Pacer(speed), watch=sub, drain=collector.drain
                )
                started = time.monotonic()
                # recordings load one at a time (a dataset need not fit in memory)
                for seg in replay.place_segments(recordings, gap_us=gap_us):
                    rec = seg.recording
                    if rec.label is None:
                        msg = f"eval needs labelled recordings; {rec.name!r} has no label (an unlabelled AEDAT file?)"
                        raise bus.ClientError(msg)
                    user, lighting = userstats.session_of(rec.name, rec.meta)
                    span_s = float(rec.events["t"][-1] - rec.events["t"][0]) / 1e6 if len(rec.events) else 0.0
                    results[seg.segment_id] = SegmentResult(
                        seg.segment_id, rec.name, int(rec.label), seg.t_first_us, user=user, lighting=lighting,
                        duration_s=span_s,
                    )
                    writer.write_segment(seg)
                    results[seg.segment_id].eos_sent_s = time.monotonic()
                    if progress is not None:
                        progress(1)
                    collector.drain()
                writer.stats.wall_s = time.monotonic() - started
                deadline = time.monotonic() + final_timeout_s
                while collector.finals < len(results) and time.monotonic() < deadline:
                    got = bus.receive(sub, min(0.5, max(0.0, deadline - time.monotonic())))
                    if got is not None:
                        collector.handle(got)
            finally:
                sender.close()
        finally:
            sub.close()
    finally:
        ctx.term()
    classes = _classes(status, collector)
    return EvalResult(list(results.values()), classes, collector.pred_latency_ms, writer.stats, collector.status or status)


def _classes(status: wire.Status, collector: Collector) -> list[str]:
    from s2gesture.daemon.card import GESTURE_CLASSES

    model = status.model
    if isinstance(model, dict) and isinstance(model.get("classes"), list):
        return [str(c) for c in model["classes"]]
    n = max([len(GESTURE_CLASSES)] + [res.label + 1 for res in collector.results.values()])
    names = list(GESTURE_CLASSES) if n == len(GESTURE_CLASSES) else [f"class {i}" for i in range(n)]
    # the labels the daemon published are the card's: prefer them where seen
    for res in collector.results.values():
        if res.predicted is not None and res.predicted_label and 0 <= res.predicted < n:
            names[res.predicted] = res.predicted_label
    return names


def write_png(result: EvalResult, path: Path) -> Path:
    """Confusion matrix, time-to-first-correct and latency histograms in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = result.confusion()
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2), gridspec_kw={"width_ratios": [1.3, 1, 1]})
    ax = axes[0]
    ax.imshow(cm, cmap="Blues")
    n = len(result.classes)
    ax.set_xticks(range(n + 1), [*(c[:14] for c in result.classes), "none"], rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n), [c[:18] for c in result.classes], fontsize=7)
    for (i, j), v in np.ndenumerate(cm):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7, color="white" if v > cm.max() / 2 else "black")
    ax.set_xlabel("predicted (final decision)")
    ax.set_ylabel("true")
    ci = result.user_stats().get("user_ci")
    interval = f" [{100 * ci['lo']:.1f}, {100 * ci['hi']:.1f}] over {ci['n_users']} users" if ci else ""
    ax.set_title(f"accuracy {result.accuracy * 100:.1f} %{interval} ({len(result.segments)} segments)")
    ttc = [s.time_to_correct_ms for s in result.segments if s.time_to_correct_ms is not None]
    axes[1].hist(ttc or [0], bins=20, color="tab:green")
    axes[1].set_xlabel("gesture onset -> first correct decision (ms, event time)")
    axes[1].set_title(f"{len(ttc)} segments with a correct onset")
    axes[2].hist(result.pred_latency_ms or [0], bins=30, color="tab:orange")
    axes[2].set_xlabel("daemon latency per prediction (ms)")
    lat = percentiles(result.pred_latency_ms)
    axes[2].set_title(f"p50 {lat.get('p50', 0):.1f} ms, p99 {lat.get('p99', 0):.1f} ms")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def build_parser() -> argparse.ArgumentParser:
    """The ``s2gesture eval`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="s2gesture eval",
        description="Replay a labelled dataset through a running s2gestured (lossless input) and report accuracy and latency.",
        epilog="The daemon must run with a lossless input (input.mode = \"lossless\", S2G_INPUT__MODE=lossless).",
    )
    replay.add_common_arguments(parser)
    parser.set_defaults(stream="eval")
    parser.add_argument("--speed", type=float, default=math.inf, help="pace at this multiple of real time (default: as fast as possible)")
    parser.add_argument("--final-timeout", type=float, default=60.0, help="seconds to wait for the last final decisions")
    parser.add_argument("--out", default="eval_report", help="report path prefix: writes PREFIX.json and PREFIX.png")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def cli(argv: list[str] | None = None) -> int:
    """``s2gesture eval``: 0 on success, 1 when no daemon answers or decisions are missing, 2 on bad input."""
    from tqdm import tqdm

    from s2gesture.daemon.errors import S2GestureError

    args = build_parser().parse_args(argv)
    try:
        packet_us = replay.check_packet_ms(args.packet_ms)
        recordings = replay.load_recordings(args)
        bar = tqdm(total=len(recordings), unit="rec", disable=args.quiet, desc="eval")
        result = evaluate_live(
            recordings,
            input_endpoint=args.input,
            output_endpoint=args.output,
            stream=args.stream,
            packet_us=packet_us,
            gap_us=round(args.gap_ms * 1000),
            speed=args.speed,
            timeout_s=args.timeout,
            final_timeout_s=args.final_timeout,
            progress=bar.update,
            curve=bus.curve_from_args(args),
        )
        bar.close()
    except bus.NoDaemonError as exc:
        print(f"s2gesture eval: {exc}", file=sys.stderr)
        return 1
    except S2GestureError as exc:
        print(f"s2gesture eval: {exc}", file=sys.stderr)
        return 2
    report = result.report()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path = out.with_name(out.name + ".json")
    json_path.write_text(json.dumps(report, indent=2))
    png_path = write_png(result, out.with_name(out.name + ".png"))
    ttc = report["time_to_first_correct_ms"]
    lat = report["pred_latency_ms"]
    print(
        f"accuracy {result.accuracy * 100:.2f} % ({report['correct']}/{report['n_segments']} segments, "
        f"{report['n_decided']} decided)"
    )
    if report.get("summary"):
        print(report["summary"])
        print(user_table_text(report))
    if ttc.get("n"):
        print(f"onset -> first correct decision: p50 {ttc['p50']:.0f} ms, p90 {ttc['p90']:.0f} ms ({ttc['n']} segments)")
    if report.get("wrong_onsets_per_segment") is not None:
        print(f"wrong onsets per gesture segment: {report['wrong_onsets_per_segment']:.2f}")
    if report.get("none_segments"):
        ns = report["none_segments"]
        print(f"'none' segments: {ns['n']} ({ns['minutes']:.1f} min), {ns['false_decisions']} false gesture decisions "
              f"({ns['false_per_10min']:.2f} per 10 min), final 'none' for {ns['final_none']}")  # fmt: skip
    if lat.get("n"):
        print(f"daemon latency per prediction: p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms ({lat['n']} predictions)")
    print(f"replayed {result.replay.events} events in {result.replay.wall_s:.2f} s; report: {json_path}, {png_path}")
    return 0 if result.n_decided == len(result.segments) else 1


def user_table_text(report: dict[str, Any]) -> str:
    """Accuracy per user, then per lighting, as aligned plain-text columns."""
    lines = [f"{'user':<12} {'recordings':>10} {'correct':>8} {'accuracy':>9}  95 % interval (this user's recordings)"]
    for r in report["per_user"]:
        iv = "-" if r["lo"] is None else f"[{100 * r['lo']:.1f}, {100 * r['hi']:.1f}]"
        lines.append(f"{r['user']:<12} {r['n']:>10} {r['correct']:>8} {100 * r['acc']:>7.1f} %  {iv}")
    lines.append(f"{'lighting':<16} {'recordings':>10} {'users':>6} {'accuracy':>9}  95 % interval (users resampled)")
    for r in report["per_lighting"]:
        lines.append(
            f"{r['lighting']:<16} {r['n']:>10} {r['n_users']:>6} {100 * r['acc']:>7.1f} %  "
            f"[{100 * r['lo']:.1f}, {100 * r['hi']:.1f}]"
        )
    return "\n".join(lines)
