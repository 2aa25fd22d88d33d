"""``s2gesture status``: print one status summary of a running daemon; for scripts and health checks.

Exit codes (documented in docs/clients.md):

* 0: a daemon answered and is ``ready`` (or ``loading``/``reloading``: up and on its way);
* 1: no daemon answered within ``--timeout`` seconds;
* 3: a daemon answered but is ``degraded`` or ``stopping`` (alive, not serving well);
* 2: bad arguments (argparse's convention).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping

from s2gesture.daemon import wire

from . import bus
from .listen import _jsonable, _model, _si

#: daemon state -> exit code of `s2gesture status`
EXIT_CODES: dict[str, int] = {"ready": 0, "loading": 0, "reloading": 0, "degraded": 3, "stopping": 3}
EXIT_NO_DAEMON = 1
EXIT_UNKNOWN_STATE = 3


def summary(msg: wire.Status) -> str:
    """A multi-line human summary of a status heartbeat."""
    lines = [
        f"state:    {msg.state}",
        f"backend:  {msg.backend or '?'}",
        f"model:    {_model(msg.model)}",
        f"uptime:   {msg.uptime_s:.1f} s",
    ]
    if msg.error:
        lines.append(f"error:    {msg.error}")
    lat = msg.latency_ms
    if lat:
        parts = [f"{k} {float(v):.2f} ms" for k, v in lat.items() if k != "n" and isinstance(v, int | float)]
        count = f" ({lat['n']} chunks)" if "n" in lat else ""
        lines.append("latency:  " + ", ".join(parts) + count)
    if msg.backend_counters:
        lines.append("counters: " + ", ".join(f"{k} {v}" for k, v in msg.backend_counters.items()))
    if msg.streams:
        lines.append("streams:")
        for sid, st in msg.streams.items():
            dropped = st.get("dropped") or {}
            drops = ", ".join(f"{k} {v}" for k, v in dropped.items()) if isinstance(dropped, Mapping) and dropped else "none"
            age = st.get("last_packet_age_s")
            age_s = f", last packet {age:.1f} s ago" if isinstance(age, int | float) else ""
            lamp = st.get("events_flicker")  # absent in older daemons
            lamp_s = f" ({_si(float(lamp))} removed as lamp flicker)" if isinstance(lamp, int) and lamp > 0 else ""
            lines.append(
                f"  {sid}: {st.get('packets', 0)} packets, {_si(float(st.get('events', 0)))} events{lamp_s}, "
                f"{st.get('chunks', 0)} chunks, dropped: {drops}{age_s}"
            )
    else:
        lines.append("streams:  none")
    return "\n".join(lines)


def exit_code(msg: wire.Status) -> int:
    """The exit code for a daemon reporting ``msg``."""
    return EXIT_CODES.get(msg.state, EXIT_UNKNOWN_STATE)


def build_parser() -> argparse.ArgumentParser:
    """The ``s2gesture status`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="s2gesture status",
        description="Print a running s2gestured's status; exit 1 when none answers, 3 when degraded or stopping.",
    )
    parser.add_argument("--output", default=bus.DEFAULT_OUTPUT, help=f"daemon output endpoint(s) (default {bus.DEFAULT_OUTPUT})")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for a heartbeat (default 3)")
    parser.add_argument("--json", action="store_true", help="print the status body as JSON")
    parser.add_argument("--quiet", "-q", action="store_true", help="print nothing; only the exit code")
    bus.add_curve_arguments(parser)
    return parser


def cli(argv: list[str] | None = None) -> int:
    """``s2gesture status``: see the module docstring for exit codes."""
    args = build_parser().parse_args(argv)
    try:
        curve = bus.curve_from_args(args)
        ctx = bus.context()
        sub = bus.open_output(ctx, args.output, topics=(), curve=curve)
    except bus.ClientError as exc:
        print(f"s2gesture status: {exc}", file=sys.stderr)
        return 2
    try:
        heartbeat = bus.wait_for_status(sub, args.timeout)
    except bus.NoDaemonError as exc:
        if not args.quiet:
            print(f"s2gesture status: {exc}", file=sys.stderr)
        return EXIT_NO_DAEMON
    finally:
        sub.close()
        ctx.term()
    if not args.quiet:
        print(json.dumps(_jsonable(heartbeat.to_body()), indent=2) if args.json else summary(heartbeat))
    return exit_code(heartbeat)
