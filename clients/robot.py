"""``s2gesture robot``: an example controller that turns recognised gestures into robot commands.

A template to adapt: the mapping lives in a TOML file (``clients/robot_example.toml``, commented), the
decision logic in one small pure class (:class:`RobotPolicy`, tested with a fake clock), and the loop in
:func:`run` only moves messages between sockets:

    daemon ──s2g/v1/gesture/, s2g/v1/status/──► RobotPolicy ──robot/v1/cmd/──► your robot's driver

Safety first: the robot starts with the safety command, falls back to it when the daemon goes silent
for ``heartbeat_timeout_s`` (no heartbeat: maybe dead, maybe the network), when the daemon says it is
stopping or degraded, and when the controller itself exits. The current command is re-sent every
``repeat_s`` so a driver can stop on its own when commands stop coming.

Commands go out as ``[topic, msgpack map]`` like every s2gesture message: ``v`` (1), ``command``,
``params`` (the command's table from the config), ``reason`` (``gesture``, ``safety``), ``detail``
(why, in words), ``gesture``/``confidence``/``stream`` for gesture commands, ``seq`` (+1 per new
command) and ``repeat`` (true when re-sent).
"""

from __future__ import annotations

import argparse
import difflib
import json
import signal
import sys
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import zmq

from s2gesture.daemon import wire

from . import bus

EXAMPLE_CONFIG = Path(__file__).with_name("robot_example.toml")
SCHEMA_VERSION = 1


# ---------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class RobotConfig:
    """The controller's configuration (see robot_example.toml for what each key means)."""

    gestures: Mapping[str, str]
    commands: Mapping[str, Mapping[str, Any]]
    output: str = bus.DEFAULT_OUTPUT
    streams: tuple[str, ...] = ()
    min_confidence: float = 0.4
    debounce_s: float = 1.0
    use_final: bool = False
    heartbeat_timeout_s: float = 3.0
    stop_on_states: tuple[str, ...] = ("stopping", "degraded")
    safety_command: str = "stop"
    endpoint: str = "tcp://127.0.0.1:5570"
    topic: str = "robot/v1/cmd/"
    repeat_s: float = 0.5


#: TOML table -> the RobotConfig fields it may hold
SECTIONS: dict[str, tuple[str, ...]] = {
    "daemon": ("output", "streams"),
    "policy": ("min_confidence", "debounce_s", "use_final", "heartbeat_timeout_s", "stop_on_states", "safety_command"),
    "publish": ("endpoint", "topic", "repeat_s"),
}
_TYPES: dict[str, type | tuple[type, ...]] = {
    "output": str,
    "streams": list,
    "min_confidence": (int, float),
    "debounce_s": (int, float),
    "use_final": bool,
    "heartbeat_timeout_s": (int, float),
    "stop_on_states": list,
    "safety_command": str,
    "endpoint": str,
    "topic": str,
    "repeat_s": (int, float),
}


def _unknown(where: str, key: str, known: Sequence[str]) -> str:
    near = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean '{near[0]}'?)" if near else ""
    return f"{where}: unknown key '{key}'{hint}; known keys: {', '.join(known)}"


def parse_config(data: Mapping[str, Any], source: str = "config") -> RobotConfig:
    """A checked RobotConfig from parsed TOML; every problem is reported at once (ConfigError-like ClientError)."""
    problems: list[str] = []
    if data.get("schema_version") != SCHEMA_VERSION:
        problems.append(f"schema_version must be {SCHEMA_VERSION}, found {data.get('schema_version')!r}")
    values: dict[str, Any] = {}
    top_known = ["schema_version", *SECTIONS, "gestures", "commands"]
    for key in data:
        if key not in top_known:
            problems.append(_unknown(source, key, top_known))
    for section, keys in SECTIONS.items():
        table = data.get(section, {})
        if not isinstance(table, dict):
            problems.append(f"[{section}] must be a table, found {type(table).__name__}")
            continue
        for key, value in table.items():
            if key not in keys:
                problems.append(_unknown(f"[{section}]", key, keys))
                continue
            kind = _TYPES[key]
            if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
                expected = " or ".join(t.__name__ for t in (kind if isinstance(kind, tuple) else (kind,)))
                problems.append(f"[{section}] {key} has type {type(value).__name__}, expected {expected}")
                continue
            values[key] = tuple(value) if isinstance(value, list) else value
    gestures = data.get("gestures", {})
    commands = data.get("commands", {})
    if not isinstance(gestures, dict) or not all(isinstance(v, str) for v in gestures.values()):
        problems.append('[gestures] must map gesture labels to command names, e.g. "right hand wave" = "stop"')
        gestures = {}
    if not isinstance(commands, dict) or not all(isinstance(v, dict) for v in commands.values()):
        problems.append("[commands] must hold one table per command, e.g. [commands.stop] linear_m_s = 0.0")
        commands = {}
    for label, name in gestures.items():
        if name not in commands:
            problems.append(_unknown(f'[gestures] "{label}"', name, list(commands)).replace("unknown key", "unknown command"))
    safety = values.get("safety_command", RobotConfig.safety_command)
    if safety not in commands:
        problems.append(f"[policy] safety_command {safety!r} has no [commands.{safety}] table; add one")
    for key in ("debounce_s", "heartbeat_timeout_s", "repeat_s"):
        if key in values and not values[key] > 0:
            problems.append(f"{key} must be > 0 s, found {values[key]}")
    if "min_confidence" in values and not 0.0 <= values["min_confidence"] <= 1.0:
        problems.append(f"[policy] min_confidence must be in [0, 1], found {values['min_confidence']}")
    topic = values.get("topic", RobotConfig.topic)
    if not topic.endswith("/"):
        problems.append(f"[publish] topic must end with '/' (so prefix subscriptions cannot over-match), found {topic!r}")
    if problems:
        msg = f"{source}: {len(problems)} problem(s):\n  " + "\n  ".join(problems)
        raise bus.ClientError(msg)
    return RobotConfig(gestures=dict(gestures), commands={k: dict(v) for k, v in commands.items()}, **values)


def load_config(path: str | Path) -> RobotConfig:
    """Read and check a robot TOML config."""
    path = Path(path)
    if not path.is_file():
        msg = f"robot config {path} does not exist; start from {EXAMPLE_CONFIG}"
        raise bus.ClientError(msg)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        msg = f"robot config {path} is not valid TOML: {exc}"
        raise bus.ClientError(msg) from exc
    return parse_config(data, str(path))


# ---------------------------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class Command:
    """A command for the robot and why it was issued."""

    name: str
    params: Mapping[str, Any]
    reason: str  # "gesture" or "safety"
    detail: str
    gesture: str | None = None
    confidence: float | None = None
    stream: str | None = None
    seq: int = 0

    def body(self, *, repeat: bool = False) -> dict[str, Any]:
        """The msgpack map published for this command."""
        out: dict[str, Any] = {"v": 1, "command": self.name, "params": dict(self.params), "reason": self.reason}
        out["detail"] = self.detail
        out["seq"] = self.seq
        out["repeat"] = repeat
        for key in ("gesture", "confidence", "stream"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


@dataclass
class RobotPolicy:
    """Gesture and heartbeat messages in, commands out. Pure: time is passed in (``now_s``, monotonic s).

    The safety command is issued when the robot is not already in it (startup, silence, a stopping or
    degraded daemon, exit); only a mapped gesture takes it out again.
    """

    config: RobotConfig
    now_s: float
    current: Command = field(init=False)
    _last_alive_s: float | None = field(init=False, default=None)
    _issued_s: float = field(init=False, default=-1e18)
    _seq: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.current = self._safety("controller started; waiting for a gesture")

    def _new(self, **kwargs: Any) -> Command:
        self._seq += 1
        return Command(seq=self._seq, **kwargs)

    def _safety(self, detail: str) -> Command:
        name = self.config.safety_command
        return self._new(name=name, params=self.config.commands[name], reason="safety", detail=detail)

    @property
    def safe(self) -> bool:
        """Whether the current command is the safety fallback."""
        return self.current.reason == "safety"

    def _issue(self, cmd: Command, now_s: float) -> Command:
        self.current = cmd
        self._issued_s = now_s
        return cmd

    def safety_stop(self, detail: str, now_s: float) -> Command | None:
        """Fall back to the safety command (None when already there)."""
        if self.safe:
            return None
        return self._issue(self._safety(detail), now_s)

    def on_message(self, msg: wire.Output, now_s: float) -> Command | None:
        """Feed one daemon message; returns a new command, or None when nothing changes."""
        # any message proves the daemon alive; the status heartbeat guarantees one per second
        self._last_alive_s = now_s
        if isinstance(msg, wire.Status):
            if msg.state in self.config.stop_on_states:
                return self.safety_stop(f"daemon is {msg.state}", now_s)
            return None
        if isinstance(msg, wire.Gesture):
            return self.on_gesture(msg, now_s)
        return None

    def on_gesture(self, msg: wire.Gesture, now_s: float) -> Command | None:
        """A gesture decision; returns the command it maps to unless filtered, debounced or unchanged."""
        cfg = self.config
        if msg.final and not cfg.use_final:
            return None
        if cfg.streams and msg.stream not in cfg.streams:
            return None
        if msg.confidence < cfg.min_confidence:
            return None
        label = msg.label
        name = cfg.gestures.get(label)
        if name is None:
            return None
        if now_s - self._issued_s < cfg.debounce_s and not self.safe:
            return None
        # the same command again is no change (it is being re-sent anyway); a safety state is always left
        if name == self.current.name and not self.safe:
            return None
        cmd = self._new(
            name=name,
            params=cfg.commands[name],
            reason="gesture",
            detail=f"{label} ({msg.confidence:.2f})",
            gesture=label,
            confidence=msg.confidence,
            stream=msg.stream,
        )
        return self._issue(cmd, now_s)

    def on_tick(self, now_s: float) -> Command | None:
        """Call regularly: the safety command once the daemon has been silent for ``heartbeat_timeout_s``."""
        if self._last_alive_s is None:
            return None  # never heard of the daemon: still in the startup safety state
        silent_s = now_s - self._last_alive_s
        if silent_s > self.config.heartbeat_timeout_s:
            return self.safety_stop(f"no message from the daemon for {silent_s:.1f} s", now_s)
        return None


# ------------------------------------------------------------------------------------------------ loop


def format_command(cmd: Command, *, wall_s: float | None = None) -> str:
    """One readable line for a command."""
    stamp = time.strftime("%H:%M:%S", time.localtime(wall_s if wall_s is not None else time.time()))
    params = " ".join(f"{k}={v}" for k, v in cmd.params.items())
    tag = "SAFETY " if cmd.reason == "safety" else ""
    return f"{stamp} {tag}{cmd.name:<12} {params:<36} <- {cmd.detail}"


class _StopRequestedError(Exception):
    """SIGTERM arrived: leave the loop through the same path as Ctrl-C."""


def run(
    config: RobotConfig,
    *,
    json_lines: bool = False,
    out: Any = sys.stdout,
    max_s: float | None = None,
    curve: bus.CurveKeys | None = None,
) -> int:
    """Run the controller until interrupted (or for ``max_s`` seconds); returns the exit code."""
    ctx = bus.context()
    sub = bus.open_output(ctx, config.output, topics=(wire.GESTURE_PREFIX,), curve=curve)
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 500)
    pub.bind(config.endpoint)
    policy = RobotPolicy(config, time.monotonic())
    topic = config.topic.encode()

    def emit(cmd: Command, *, repeat: bool = False) -> None:
        pub.send_multipart(wire.encode_output(topic, cmd.body(repeat=repeat)))
        if not repeat:
            line = json.dumps(cmd.body()) if json_lines else format_command(cmd)
            print(line, file=out, flush=True)

    def on_term(signum: int, frame: Any) -> None:
        raise _StopRequestedError

    def announce(status: wire.Status) -> None:
        name = status.model_name
        info = {"daemon": status.state, "backend": status.backend, "model": name}
        line = json.dumps(info) if json_lines else f"daemon {status.state}: backend {status.backend}, model {name}"
        print(line, file=out, flush=True)

    heard = False
    previous = signal.signal(signal.SIGTERM, on_term)
    started = time.monotonic()
    try:
        emit(policy.current)
        last_sent = time.monotonic()
        while max_s is None or time.monotonic() - started < max_s:
            got = bus.receive(sub, min(0.1, config.repeat_s))
            now = time.monotonic()
            if isinstance(got, wire.Status) and not heard:
                # the first heartbeat: from here on no gesture the daemon publishes can be missed
                heard = True
                announce(got)
            elif got is None and heard and policy.safe and policy.current.detail.startswith("no message"):
                heard = False
            changed = [policy.on_message(got, now) if got is not None else None, policy.on_tick(now)]
            for cmd in changed:
                if cmd is not None:
                    emit(cmd)
                    last_sent = now
            if now - last_sent >= config.repeat_s:
                emit(policy.current, repeat=True)
                last_sent = now
    except (KeyboardInterrupt, _StopRequestedError):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        # the robot must not keep moving on the last command once nobody controls it
        final = policy.safety_stop("controller exiting", time.monotonic())
        if final is not None:
            emit(final)
        else:
            emit(policy.current, repeat=True)
        sub.close()
        pub.close()
        ctx.term()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``s2gesture robot`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="s2gesture robot",
        description="Example robot controller: recognised gestures -> commands on a ZeroMQ topic, with a safety stop.",
        epilog=f"Start from the commented example config: {EXAMPLE_CONFIG}",
    )
    parser.add_argument("--config", default=str(EXAMPLE_CONFIG), help="TOML config (default: the shipped example)")
    parser.add_argument("--output", help="daemon output endpoint(s) (overrides [daemon] output)")
    parser.add_argument("--publish", help="where to bind the command PUB (overrides [publish] endpoint)")
    parser.add_argument("--json", action="store_true", help="print commands as JSON lines")
    parser.add_argument("--max-seconds", type=float, help="exit after this long (for demos and tests)")
    parser.add_argument("--check", action="store_true", help="only check the config and print the mapping")
    bus.add_curve_arguments(parser)
    return parser


def cli(argv: list[str] | None = None) -> int:
    """``s2gesture robot``: 0 on a clean exit, 2 on a bad config."""
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
        curve = bus.curve_from_args(args)
    except bus.ClientError as exc:
        print(f"s2gesture robot: {exc}", file=sys.stderr)
        return 2
    overrides = {k: v for k, v in (("output", args.output), ("endpoint", args.publish)) if v}
    if overrides:
        config = RobotConfig(**{f.name: getattr(config, f.name) for f in fields(config)} | overrides)
    if args.check:
        for label, name in config.gestures.items():
            print(f"{label!r:<32} -> {name} {dict(config.commands[name])}")
        print(f"safety: {config.safety_command} after {config.heartbeat_timeout_s:g} s without heartbeat")
        return 0
    return run(config, json_lines=args.json, max_s=args.max_seconds, curve=curve)
