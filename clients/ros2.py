"""``s2gesture ros2``: publish a daemon's gestures and status into ROS 2 over DDS (Cyclone DDS, no ROS install).

The bridge is a plain DDS participant that speaks the ROS 2 conventions of ``rmw_cyclonedds_cpp``, so any
ROS 2 node on the same ``ROS_DOMAIN_ID`` (and a DDS-compatible rmw) sees ordinary ROS topics:

* ``/s2gesture/gesture_label``: ``std_msgs/msg/String``, the label of every gesture decision (DDS topic
  ``rt/s2gesture/gesture_label``, type ``std_msgs::msg::dds_::String_``);
* ``/s2gesture/gesture``: ``s2gesture_msgs/msg/Gesture`` (``clients/ros2_msgs/s2gesture_msgs``: build it in
  your workspace to receive it typed): stream, class_id, label, confidence, t_start/t_end (µs of event
  time, -1 when unknown), final, segment ("" when none), stamp (wall time the bridge received it);
* ``/diagnostics``: ``diagnostic_msgs/msg/DiagnosticArray``, one status for the daemon (level OK when
  ready, WARN while loading/reloading/stopping, ERROR when degraded, STALE when its heartbeat stops)
  with backend, model, mode, latency and totals as key/values, and one status per camera stream.

QoS: reliable, keep-last 10, volatile (the ROS 2 default profile); ``--depth`` and ``--best-effort``
change it. ``--prefix`` moves the gesture topics (``/robot1/s2gesture`` -> ``rt/robot1/s2gesture/...``).
cyclonedds is an extra: ``pip install 's2gesture[bridges]'``.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

from s2gesture.daemon import wire

from . import bus

#: diagnostic_msgs/DiagnosticStatus levels
OK, WARN, ERROR, STALE = 0, 1, 2, 3
LEVELS: dict[str, int] = {"ready": OK, "loading": WARN, "reloading": WARN, "stopping": WARN, "degraded": ERROR}
TOPIC_RE = re.compile(r"(/[A-Za-z][A-Za-z0-9_]*)+")


def _import_cyclonedds() -> Any:
    try:
        import cyclonedds.domain
    except ImportError:
        msg = "s2gesture ros2 needs the cyclonedds package: pip install 's2gesture[bridges]' (or pip install cyclonedds)"
        raise bus.ClientError(msg) from None
    return cyclonedds


def _struct(name: str, typename: str, members: list[tuple[str, Any]]) -> Any:
    """An IDL struct class with real (not string) annotations: Cyclone DDS resolves them to build the CDR codec."""
    import types

    from cyclonedds.idl import IdlStruct

    def body(ns: dict[str, Any]) -> None:
        ns["__annotations__"] = dict(members)
        ns["__module__"] = __name__
        ns["__qualname__"] = name

    return dataclass(types.new_class(name, (IdlStruct,), {"typename": typename}, body))


@cache
def message_types() -> Any:
    """The ROS 2 message types as Cyclone DDS IDL structs (built on first use: cyclonedds is optional).

    Field order and types follow the ROS 2 ``.msg`` -> IDL mapping exactly: the CDR layout is the contract
    with ROS 2 nodes (``byte`` -> octet, ``float32`` -> float, nested messages in place).
    """
    _import_cyclonedds()
    from cyclonedds.idl import types as t

    time_ = _struct("Time", "builtin_interfaces::msg::dds_::Time_", [("sec", t.int32), ("nanosec", t.uint32)])
    string = _struct("String", "std_msgs::msg::dds_::String_", [("data", str)])
    header = _struct("Header", "std_msgs::msg::dds_::Header_", [("stamp", time_), ("frame_id", str)])
    gesture = _struct(
        "Gesture",
        "s2gesture_msgs::msg::dds_::Gesture_",
        [
            ("stream", str), ("class_id", t.int32), ("label", str), ("confidence", t.float32), ("t_start", t.int64),
            ("t_end", t.int64), ("final", bool), ("segment", str), ("stamp", time_),
        ],
    )  # fmt: skip
    key_value = _struct("KeyValue", "diagnostic_msgs::msg::dds_::KeyValue_", [("key", str), ("value", str)])
    status = _struct(
        "DiagnosticStatus",
        "diagnostic_msgs::msg::dds_::DiagnosticStatus_",
        [("level", t.byte), ("name", str), ("message", str), ("hardware_id", str), ("values", t.sequence[key_value])],
    )
    array = _struct(
        "DiagnosticArray", "diagnostic_msgs::msg::dds_::DiagnosticArray_", [("header", header), ("status", t.sequence[status])]
    )
    return argparse.Namespace(
        Time=time_, String=string, Header=header, Gesture=gesture, KeyValue=key_value, DiagnosticStatus=status,
        DiagnosticArray=array,
    )  # fmt: skip


def dds_topic(ros_topic: str) -> str:
    """The DDS topic name of a ROS 2 topic (``/a/b`` -> ``rt/a/b``)."""
    return "rt" + ros_topic


def check_topic(option: str, value: str) -> str:
    """A fully qualified ROS 2 topic name, or a ClientError with the rule."""
    value = value.rstrip("/") if value != "/" else value
    if not TOPIC_RE.fullmatch(value):
        msg = f"{option} {value!r}: expected a ROS 2 name like /s2gesture (starts with /, tokens of [A-Za-z0-9_] not starting with a digit)"
        raise bus.ClientError(msg)
    return value


def stamp(types: Any, wall_ns: int) -> Any:
    """A builtin_interfaces/Time of a wall-clock time in ns."""
    return types.Time(sec=wall_ns // 1_000_000_000, nanosec=wall_ns % 1_000_000_000)


def gesture_message(types: Any, msg: wire.Gesture, wall_ns: int) -> Any:
    """The s2gesture_msgs/Gesture of a gesture decision."""
    return types.Gesture(
        stream=msg.stream,
        class_id=msg.class_id,
        label=msg.label,
        confidence=msg.confidence,
        t_start=-1 if msg.t_start is None else msg.t_start,
        t_end=-1 if msg.t_end is None else msg.t_end,
        final=msg.final,
        segment=msg.segment or "",
        stamp=stamp(types, wall_ns),
    )


def _kv(types: Any, items: dict[str, Any]) -> list[Any]:
    return [types.KeyValue(key=str(k), value=str(v)) for k, v in items.items() if v is not None]


def diagnostics(types: Any, msg: wire.Status | None, wall_ns: int, *, name: str = "s2gestured", stale_s: float | None = None) -> Any:
    """The DiagnosticArray of a heartbeat (``msg``), or a STALE one when the heartbeat stopped ``stale_s`` ago."""
    header = types.Header(stamp=stamp(types, wall_ns), frame_id="")
    if msg is None:
        status = types.DiagnosticStatus(
            level=STALE, name=name, message=f"no heartbeat for {stale_s or 0:.1f} s", hardware_id="", values=[]
        )
        return types.DiagnosticArray(header=header, status=[status])
    level = LEVELS.get(msg.state, WARN)
    message = msg.state + (f": {msg.error}" if msg.error else "")
    values = {
        "state": msg.state, "backend": msg.backend, "model": msg.model_name, "mode": msg.mode,
        "uptime_s": f"{msg.uptime_s:.1f}", "pid": msg.pid, "version": msg.version,
        **{f"latency_ms.{k}": v for k, v in msg.latency_ms.items()},
        **{f"totals.{k}": v for k, v in msg.totals.items() if not isinstance(v, dict)},
        **{f"backend.{k}": v for k, v in (msg.backend_counters or {}).items()},
    }  # fmt: skip
    statuses = [types.DiagnosticStatus(level=level, name=name, message=message, hardware_id=msg.backend, values=_kv(types, values))]
    for sid, counters in msg.streams.items():
        dropped = counters.get("dropped") or {}
        n_dropped = sum(v for v in dropped.values() if isinstance(v, int)) if isinstance(dropped, dict) else dropped
        flat = {k: v for k, v in counters.items() if not isinstance(v, dict)}
        flat |= {f"dropped.{k}": v for k, v in dropped.items()} if isinstance(dropped, dict) else {}
        statuses.append(
            types.DiagnosticStatus(
                level=OK if not n_dropped else WARN,
                name=f"{name}: stream {sid}",
                message=f"{counters.get('packets', 0)} packets, {n_dropped} dropped",
                hardware_id=sid,
                values=_kv(types, flat),
            )
        )
    return types.DiagnosticArray(header=header, status=statuses)


class Ros2Link:
    """The DDS participant and the three writers."""

    def __init__(self, *, domain_id: int, prefix: str, diagnostics_topic: str, depth: int, reliable: bool) -> None:
        _import_cyclonedds()
        from cyclonedds.domain import DomainParticipant
        from cyclonedds.pub import DataWriter
        from cyclonedds.qos import Policy, Qos
        from cyclonedds.topic import Topic

        self.types = message_types()
        reliability = Policy.Reliability.Reliable(max_blocking_time=100_000_000) if reliable else Policy.Reliability.BestEffort
        # XCDR1 as ROS 2's rmw_cyclonedds_cpp writes it; keep-last history as in the ROS 2 default profile
        self.qos = Qos(
            reliability, Policy.History.KeepLast(depth), Policy.Durability.Volatile,
            Policy.DataRepresentation(use_cdrv0_representation=True),
        )  # fmt: skip
        try:
            self.participant = DomainParticipant(domain_id)
        except Exception as exc:  # cyclonedds raises DDSException for a bad domain or config
            msg = f"cannot join DDS domain {domain_id}: {exc} (check --domain-id and $CYCLONEDDS_URI)"
            raise bus.ClientError(msg) from None
        self.names = {
            "label": f"{prefix}/gesture_label",
            "gesture": f"{prefix}/gesture",
            "diagnostics": diagnostics_topic,
        }

        def writer(key: str, kind: Any) -> Any:
            return DataWriter(self.participant, Topic(self.participant, dds_topic(self.names[key]), kind, qos=self.qos), qos=self.qos)

        self.label = writer("label", self.types.String)
        self.gesture = writer("gesture", self.types.Gesture)
        self.diagnostics = writer("diagnostics", self.types.DiagnosticArray)

    def publish_gesture(self, msg: wire.Gesture) -> None:
        """The label on gesture_label and the typed message on gesture."""
        now = time.time_ns()
        self.label.write(self.types.String(data=msg.label))
        self.gesture.write(gesture_message(self.types, msg, now))

    def publish_diagnostics(self, msg: wire.Status | None, stale_s: float | None = None) -> None:
        """One DiagnosticArray (STALE when ``msg`` is None)."""
        self.diagnostics.write(diagnostics(self.types, msg, time.time_ns(), stale_s=stale_s))


class _StopRequestedError(Exception):
    """SIGTERM arrived: leave the loop through the same path as Ctrl-C."""


def run(args: argparse.Namespace, out: Any = sys.stdout) -> int:
    """Bridge until interrupted (or ``--max-seconds``); returns the exit code."""
    prefix = check_topic("--prefix", args.prefix)
    diag_topic = check_topic("--diagnostics-topic", args.diagnostics_topic)
    if not 0 <= args.domain_id <= 232:
        msg = f"--domain-id must be in 0-232 (ROS 2's range), found {args.domain_id}"
        raise bus.ClientError(msg)
    if args.depth < 1:
        msg = f"--depth must be >= 1, found {args.depth}"
        raise bus.ClientError(msg)
    curve = bus.curve_from_args(args)
    bus.split_endpoints(args.output)
    link = Ros2Link(
        domain_id=args.domain_id, prefix=prefix, diagnostics_topic=diag_topic, depth=args.depth, reliable=not args.best_effort
    )
    ctx = bus.context()
    sub = bus.open_output(ctx, args.output, topics=(wire.GESTURE_PREFIX,), curve=curve)

    def on_term(signum: int, frame: Any) -> None:
        raise _StopRequestedError

    previous = signal.signal(signal.SIGTERM, on_term)
    forwarded = 0
    last_alive: float | None = None
    last_diag = -1e18
    last_state: str | None = None
    stale_sent = False
    try:
        print(
            f"s2gesture ros2: domain {args.domain_id}, publishing {', '.join(link.names.values())}; daemon {args.output}",
            file=out,
            flush=True,
        )
        started = time.monotonic()
        while args.max_seconds is None or time.monotonic() - started < args.max_seconds:
            got = bus.receive(sub, 0.2)
            now = time.monotonic()
            if isinstance(got, wire.Gesture):
                link.publish_gesture(got)
                forwarded += 1
            elif isinstance(got, wire.Status):
                last_alive, stale_sent = now, False
                # diagnostics are a 1 Hz-ish channel by convention; a fast heartbeat is thinned, a state change is not
                if now - last_diag >= args.diagnostics_period or got.state != last_state:
                    link.publish_diagnostics(got)
                    last_diag, last_state = now, got.state
            if last_alive is not None and not stale_sent and now - last_alive > args.heartbeat_timeout:
                link.publish_diagnostics(None, stale_s=now - last_alive)
                stale_sent, last_state = True, None
    except (KeyboardInterrupt, _StopRequestedError):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        sub.close()
        ctx.term()
    print(f"s2gesture ros2: forwarded {forwarded} gestures", file=out, flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``s2gesture ros2`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="s2gesture ros2",
        description="Publish a daemon's gesture decisions and status into ROS 2 (DDS via Cyclone DDS; no ROS install needed).",
        epilog="Message definition for ROS 2 nodes: clients/ros2_msgs/s2gesture_msgs (colcon build). See docs/clients.md.",
    )
    parser.add_argument("--output", default=bus.DEFAULT_OUTPUT, help=f"daemon output endpoint(s) (default {bus.DEFAULT_OUTPUT})")
    dds = parser.add_argument_group("ROS 2 / DDS")
    env_domain = os.environ.get("ROS_DOMAIN_ID", "")
    default_domain = int(env_domain) if env_domain.isdigit() else 0
    dds.add_argument("--domain-id", type=int, default=default_domain, help=f"DDS domain, as ROS_DOMAIN_ID (default {default_domain})")
    dds.add_argument("--prefix", default="/s2gesture", help="namespace of the gesture topics (default /s2gesture)")
    dds.add_argument("--diagnostics-topic", default="/diagnostics", help="topic of the DiagnosticArray (default /diagnostics)")
    dds.add_argument("--depth", type=int, default=10, help="QoS keep-last history depth (default 10)")
    dds.add_argument("--best-effort", action="store_true", help="best-effort instead of reliable QoS")
    dds.add_argument("--diagnostics-period", type=float, default=1.0, help="at most one diagnostics message per this many s (default 1)")
    parser.add_argument("--heartbeat-timeout", type=float, default=3.0, help="diagnostics go STALE after this long without a daemon heartbeat (s)")
    parser.add_argument("--max-seconds", type=float, help="exit after this long (for demos and tests)")
    bus.add_curve_arguments(parser)
    return parser


def cli(argv: list[str] | None = None) -> int:
    """``s2gesture ros2``: 0 on a clean exit, 2 on bad options or a DDS domain that cannot be joined."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except bus.ClientError as exc:
        print(f"s2gesture ros2: {exc}", file=sys.stderr)
        return 2
