"""``s2gesture listen``: print a daemon's predictions, gestures and status as readable lines or JSON.

Readable lines (one per message)::

    gesture  cam0   right hand wave       0.82  t=1.200-1.800 s            [segment 00003-user24_led_1]
    FINAL    cam0   right hand wave       0.91  t=0.000-6.000 s            [segment 00003-user24_led_1]
    pred     cam0   air drums             0.41  t=0.600-1.200 s  3.1 ms
    status   ready  emulator  psnn_int8  up 12 s  streams: cam0 (1520 pkts, 2.1 M ev, 0 dropped)

``--json`` prints one JSON object per message: ``{"topic": ..., **body}`` (bytes as hex), suited to ``jq``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from typing import Any

from s2gesture.daemon import wire

from . import bus

#: --show choice -> topic prefix
KINDS: dict[str, str] = {"pred": wire.PRED_PREFIX, "gesture": wire.GESTURE_PREFIX, "status": wire.STATUS_TOPIC}


def _span(body: Mapping[str, Any]) -> str:
    t0, t1 = body.get("t_start"), body.get("t_end")
    if isinstance(t0, int) and isinstance(t1, int):
        return f"t={t0 / 1e6:.3f}-{t1 / 1e6:.3f} s"
    return ""


def _segment(body: Mapping[str, Any]) -> str:
    return f"  [segment {body['segment']}]" if body.get("segment") else ""


def format_pred(body: Mapping[str, Any]) -> str:
    """One line for a ``pred`` message."""
    latency = body.get("latency_ms")
    lat = f"  {latency:.1f} ms" if isinstance(latency, (int, float)) else ""
    return (
        f"pred     {body.get('stream', '?'):<8} {body.get('label', '?')!s:<28} "
        f"{float(body.get('confidence', 0.0)):.2f}  {_span(body):<22}{lat}{_segment(body)}"
    )


def format_gesture(body: Mapping[str, Any]) -> str:
    """One line for a ``gesture`` message (onsets as ``gesture``, end-of-segment decisions as ``FINAL``)."""
    kind = "FINAL   " if body.get("final") else "gesture "
    return (
        f"{kind} {body.get('stream', '?'):<8} {body.get('label', '?')!s:<28} "
        f"{float(body.get('confidence', 0.0)):.2f}  {_span(body):<22}{_segment(body)}"
    )


def _model(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if isinstance(model, Mapping):
        name, digest = model.get("name", "?"), str(model.get("hash", ""))
        return f"{name}{' ' + digest[:12] if digest else ''}"
    return str(model)


def _si(n: float) -> str:
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n:g}"


def format_status(body: Mapping[str, Any]) -> str:
    """One line for a ``status`` heartbeat."""
    streams = body.get("streams") or {}
    parts = []
    if isinstance(streams, Mapping):
        for sid, st in streams.items():
            if not isinstance(st, Mapping):
                continue
            dropped = st.get("dropped") or {}
            n_dropped = sum(dropped.values()) if isinstance(dropped, Mapping) else dropped
            parts.append(
                f"{sid} ({st.get('packets', 0)} pkts, {_si(float(st.get('events', 0)))} ev, {n_dropped} dropped)"
            )
    uptime = body.get("uptime_s")
    up = f"up {uptime:.0f} s" if isinstance(uptime, (int, float)) else ""
    return (
        f"status   {body.get('state', '?'):<9} {body.get('backend', '?')}  {_model(body)}  {up}  "
        f"streams: {', '.join(parts) if parts else 'none'}"
    )


#: topic prefix -> formatter (registry rather than a ladder; unknown topics print generically)
FORMATTERS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    wire.PRED_PREFIX: format_pred,
    wire.GESTURE_PREFIX: format_gesture,
    wire.STATUS_TOPIC: format_status,
}


def format_line(topic: str, body: Mapping[str, Any]) -> str:
    """The readable line of any output message."""
    for prefix, fmt in FORMATTERS.items():
        if topic.startswith(prefix):
            return fmt(body)
    return f"{topic} {body}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def format_json(topic: str, body: Mapping[str, Any]) -> str:
    """One JSON line: the topic and the body's keys."""
    return json.dumps({"topic": topic, **_jsonable(body)}, separators=(",", ":"))


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
    ctx = bus.context()
    sub = bus.open_output(ctx, args.output, topics=set(topics))
    printed = 0
    try:
        while True:
            got = bus.receive(sub, args.timeout if args.timeout > 0 else 3600.0)
            if got is None:
                if args.timeout > 0:
                    print(f"s2gesture listen: nothing from {args.output} for {args.timeout:g} s", file=sys.stderr)
                    return 1
                continue
            topic, body = got
            # the status topic is always subscribed (bus.open_output), shown only when asked for
            if topic == wire.STATUS_TOPIC and not show_status:
                continue
            print(fmt(topic, body), file=out, flush=True)
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
