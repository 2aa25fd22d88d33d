"""``s2gesture listen``: print a daemon's predictions, gestures and status as readable lines or JSON.

Readable lines (one per message)::

    gesture  cam0   right hand wave       0.82  t=1.200-1.800 s            [segment 00003-user24_led_1]
    FINAL    cam0   right hand wave       0.91  t=0.000-6.000 s            [segment 00003-user24_led_1]
    pred     cam0   air drums             0.41  t=0.600-1.200 s  3.1 ms
    status   ready  emulator  psnn_int8  up 12 s  streams: cam0 (1520 pkts, 2.1 M ev, 0 dropped)

``--json`` prints one JSON object per message: ``{"topic": ..., **body}`` (bytes as hex), suited to ``jq``.
The body is re-encoded from the validated record (``wire.Pred/Gesture/Status.to_body()``), so keys this
client does not know are not printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from typing import Any

from s2gesture.daemon import wire

from . import bus

#: --show choice -> topic prefix
KINDS: dict[str, str] = {"pred": wire.PRED_PREFIX, "gesture": wire.GESTURE_PREFIX, "status": wire.STATUS_TOPIC}


def _span(msg: wire.Pred | wire.Gesture) -> str:
    if msg.t_start is not None and msg.t_end is not None:
        return f"t={msg.t_start / 1e6:.3f}-{msg.t_end / 1e6:.3f} s"
    return ""


def _segment(msg: wire.Pred | wire.Gesture) -> str:
    return f"  [segment {msg.segment}]" if msg.segment else ""


def format_pred(msg: wire.Pred) -> str:
    """One line for a ``pred`` message."""
    runs = f"  {msg.runs} runs" if msg.runs > 1 else ""
    return (
        f"pred     {msg.stream:<8} {msg.label:<28} {msg.confidence:.2f}  {_span(msg):<22}"
        f"  {msg.latency_ms:.1f} ms{runs}{_segment(msg)}"
    )


def format_gesture(msg: wire.Gesture) -> str:
    """One line for a ``gesture`` message (onsets as ``gesture``, end-of-segment decisions as ``FINAL``)."""
    kind = "FINAL   " if msg.final else "gesture "
    return f"{kind} {msg.stream:<8} {msg.label:<28} {msg.confidence:.2f}  {_span(msg):<22}{_segment(msg)}"


def _model(model: Mapping[str, Any] | None) -> str:
    if model is None:
        return "?"
    name, digest = model.get("name", "?"), str(model.get("hash", ""))
    return f"{name}{' ' + digest[:12] if digest else ''}"


def _si(n: float) -> str:
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n:g}"


def n_dropped(counters: Mapping[str, Any]) -> Any:
    """A stream's dropped packets in total (the daemon sends them per reason)."""
    dropped = counters.get("dropped") or {}
    return sum(v for v in dropped.values() if isinstance(v, int | float)) if isinstance(dropped, Mapping) else dropped


def format_status(msg: wire.Status) -> str:
    """One line for a ``status`` heartbeat (with the backend's error when it has one)."""
    parts = [
        f"{sid} ({st.get('packets', 0)} pkts, {_si(float(st.get('events', 0)))} ev, {n_dropped(st)} dropped)"
        for sid, st in msg.streams.items()
    ]
    error = f"  error: {msg.error}" if msg.error else ""
    return (
        f"status   {msg.state:<9} {msg.backend or '?'}  {_model(msg.model)}  up {msg.uptime_s:.0f} s  "
        f"streams: {', '.join(parts) if parts else 'none'}{error}"
    )


def format_line(msg: wire.Output) -> str:
    """The readable line of any output message."""
    if isinstance(msg, wire.Pred):
        return format_pred(msg)
    if isinstance(msg, wire.Gesture):
        return format_gesture(msg)
    return format_status(msg)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def format_json(msg: wire.Output) -> str:
    """One JSON line: the topic and the body's keys."""
    return json.dumps({"topic": msg.topic().decode(), **_jsonable(msg.to_body())}, separators=(",", ":"))


def build_parser() -> argparse.ArgumentParser:
    """The ``s2gesture listen`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="s2gesture listen", description="Print predictions, gestures and status published by an s2gestured daemon."
    )
    parser.add_argument("--output", default=bus.DEFAULT_OUTPUT, help=f"daemon output endpoint(s) (default {bus.DEFAULT_OUTPUT})")
    parser.add_argument(
        "--show",
        default="gesture,status",
        help=f"comma-separated kinds of message to print, of {', '.join(KINDS)} (default gesture,status)",
    )
    parser.add_argument("--stream", action="append", default=[], help="only this stream (repeatable; default all)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--count", type=int, default=0, help="exit after printing this many messages (0: never)")
    parser.add_argument("--timeout", type=float, default=0.0, help="exit with 1 when nothing arrives for this long (s; 0: wait forever)")
    bus.add_curve_arguments(parser)
    return parser


def parse_kinds(value: str) -> list[str]:
    """Topic prefixes for a ``--show`` value."""
    kinds = [k.strip() for k in value.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        msg = f"--show {value!r}: expected a comma-separated subset of {', '.join(KINDS)}"
        raise bus.ClientError(msg)
    return [KINDS[k] for k in kinds]


def run(args: argparse.Namespace, out: Any = sys.stdout) -> int:
    """Print messages until interrupted, ``--count`` is reached or ``--timeout`` passes in silence."""
    prefixes = parse_kinds(args.show)
    if args.stream:
        # subscribe per stream so the daemon's PUB filters for us (tcp and ipc filter at the sender)
        topics = [p + f"{s}/" if p != wire.STATUS_TOPIC else p for p in prefixes for s in args.stream]
    else:
        topics = prefixes
    show_status = wire.STATUS_TOPIC in prefixes
    fmt = format_json if args.json else format_line
    curve = bus.curve_from_args(args)
    ctx = bus.context()
    sub = bus.open_output(ctx, args.output, topics=set(topics), curve=curve)
    printed = 0
    try:
        while True:
            got = bus.receive(sub, args.timeout if args.timeout > 0 else 3600.0)
            if got is None:
                if args.timeout > 0:
                    print(
                        f"s2gesture listen: nothing from {args.output} for {args.timeout:g} s.{bus.curve_hint(curve)}",
                        file=sys.stderr,
                    )
                    return 1
                continue
            # the status topic is always subscribed (bus.open_output), shown only when asked for
            if isinstance(got, wire.Status) and not show_status:
                continue
            print(fmt(got), file=out, flush=True)
            printed += 1
            if args.count and printed >= args.count:
                return 0
    except KeyboardInterrupt:
        return 0
    finally:
        sub.close()
        ctx.term()


def cli(argv: list[str] | None = None) -> int:
    """``s2gesture listen``: 0 when done or interrupted, 1 on silence past ``--timeout``, 2 on bad arguments."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except bus.ClientError as exc:
        print(f"s2gesture listen: {exc}", file=sys.stderr)
        return 2
