"""``s2gesture mqtt``: forward a daemon's gesture decisions to an MQTT broker (Home Assistant, Node-RED, ...).

Topics (``--prefix``, default ``s2gesture``), in the conventions of Frigate and Home Assistant:

* ``s2gesture/<stream>/gesture``: one JSON object per decision (onsets and finals), the gesture message's
  keys (docs/protocol.md): ``label``, ``class_id``, ``confidence``, ``final``, ``t_start``/``t_end`` (µs),
  ``segment``, ``stream``, ``seq``, ``backend``, ``model``; QoS ``--qos`` (default 1), not retained;
* ``s2gesture/<stream>/pred``: the per-chunk predictions, only with ``--pred-rate HZ`` and at most that
  often per stream (a pred arrives per chunk, several per second per camera: too many for most brokers);
* ``s2gesture/availability``: ``online`` while the daemon is heard, ``offline`` when its heartbeat stops
  for ``--heartbeat-timeout`` s, when the bridge exits, and (as the broker's last will) when the bridge
  dies; retained, so a dashboard that connects later knows at once;
* ``s2gesture/state``: the daemon's state (``ready``, ``degraded``, ...), retained, on change.

The broker is ``--broker mqtt://HOST:PORT`` (or ``mqtts://`` for TLS, default port 8883), with
``--username`` and ``--password-file`` (or ``$S2G_MQTT_PASSWORD``; never on the command line, where
``ps`` shows it), ``--ca-file``, ``--cert-file``/``--key-file`` for client certificates. paho-mqtt is an
extra: ``pip install 's2gesture[bridges]'``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s2gesture.daemon import wire

from . import bus

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"
PASSWORD_ENV = "S2G_MQTT_PASSWORD"
#: messages paho may hold while the broker is away; beyond that they are dropped (and counted)
MAX_QUEUED = 1000


def _import_paho() -> Any:
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        msg = "s2gesture mqtt needs the paho-mqtt package: pip install 's2gesture[bridges]' (or pip install paho-mqtt)"
        raise bus.ClientError(msg) from None
    return mqtt


@dataclass(frozen=True)
class Broker:
    """Where the broker is and how to log in."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


def parse_broker(url: str) -> tuple[str, int, bool]:
    """``(host, port, tls)`` of ``mqtt://HOST[:PORT]`` or ``mqtts://HOST[:PORT]``."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        msg = f"--broker {url!r}: expected mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (TLS), e.g. {DEFAULT_BROKER}"
        raise bus.ClientError(msg)
    tls = parts.scheme == "mqtts"
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        msg = f"--broker {url!r}: the port must be a number in 1-65535"
        raise bus.ClientError(msg) from None
    return parts.hostname, port, tls


def _check_prefix(prefix: str) -> str:
    prefix = prefix.strip("/")
    if not prefix or any(c in prefix for c in "+#\0"):
        msg = f"--prefix {prefix!r}: expected a non-empty MQTT topic without the wildcards + and # (e.g. s2gesture)"
        raise bus.ClientError(msg)
    return prefix


@dataclass
class Forwarder:
    """Daemon messages in, ``(topic, payload, qos, retain)`` out. Pure: time is passed in (monotonic s)."""

    prefix: str = "s2gesture"
    qos: int = 1
    pred_rate_hz: float = 0.0
    heartbeat_timeout_s: float = 3.0
    _last_pred_s: dict[str, float] = field(default_factory=dict)
    _last_alive_s: float | None = None
    _state: str | None = None
    online: bool = False

    def availability(self, online: bool) -> tuple[str, str, int, bool]:
        """The retained availability message."""
        self.online = online
        return f"{self.prefix}/availability", "online" if online else "offline", 1, True

    def on_message(self, msg: wire.Output, now_s: float) -> list[tuple[str, str, int, bool]]:
        """What to publish for one daemon message."""
        out: list[tuple[str, str, int, bool]] = []
        if isinstance(msg, wire.Status):
            self._last_alive_s = now_s
            if not self.online:
                out.append(self.availability(True))
            if msg.state != self._state:
                self._state = msg.state
                out.append((f"{self.prefix}/state", msg.state, 1, True))
        elif isinstance(msg, wire.Gesture):
            out.append((f"{self.prefix}/{msg.stream}/gesture", _json(msg), self.qos, False))
        elif self.pred_rate_hz > 0:
            last = self._last_pred_s.get(msg.stream)
            if last is None or now_s - last >= 1.0 / self.pred_rate_hz:
                self._last_pred_s[msg.stream] = now_s
                out.append((f"{self.prefix}/{msg.stream}/pred", _json(msg), 0, False))
        return out

    def on_tick(self, now_s: float) -> list[tuple[str, str, int, bool]]:
        """``offline`` once the daemon's heartbeat has been missing for ``heartbeat_timeout_s``."""
        if self.online and self._last_alive_s is not None and now_s - self._last_alive_s > self.heartbeat_timeout_s:
            self._state = None
            return [self.availability(False)]
        return []


def _json(msg: wire.Pred | wire.Gesture) -> str:
    body = msg.to_body()
    body.pop("v", None)
    return json.dumps(body, separators=(",", ":"))


class MqttLink:
    """A connected paho client with a last will; raises ClientError when the broker refuses or is absent."""

    def __init__(self, broker: Broker, *, client_id: str, will: tuple[str, str], timeout_s: float) -> None:
        mqtt = _import_paho()
        self.broker = broker
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        self.client.max_queued_messages_set(MAX_QUEUED)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.will_set(will[0], will[1], qos=1, retain=True)
        if broker.username is not None:
            self.client.username_pw_set(broker.username, broker.password)
        if broker.tls:
            try:
                self.client.tls_set(ca_certs=broker.ca_file, certfile=broker.cert_file, keyfile=broker.key_file)
            except (OSError, ValueError) as exc:
                msg = f"TLS files for {broker.host}:{broker.port} cannot be used: {exc}"
                raise bus.ClientError(msg) from None
        self.connected = threading.Event()
        self.refused: str | None = None
        self.dropped = 0
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        where = f"{'mqtts' if broker.tls else 'mqtt'}://{broker.host}:{broker.port}"
        try:
            self.client.connect(broker.host, broker.port, keepalive=30)
        except (OSError, ValueError) as exc:
            msg = f"cannot reach the MQTT broker at {where}: {exc}; is it running, and is --broker right?"
            raise bus.ClientError(msg) from None
        self.client.loop_start()
        if not self.connected.wait(timeout_s) or self.refused:
            self.client.loop_stop()
            reason = self.refused or f"no CONNACK within {timeout_s:g} s"
            hint = " (check --username and --password-file)" if "auth" in reason.lower() else ""
            msg = f"the MQTT broker at {where} did not accept the connection: {reason}{hint}"
            raise bus.ClientError(msg)
        self.where = where

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self.refused = str(reason)
        self.connected.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self.connected.clear()

    def publish(self, topic: str, payload: str, qos: int, retain: bool) -> None:
        """Publish (queued by paho while the broker is away; counted when the queue is full)."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != 0:
            self.dropped += 1

    def close(self, last: tuple[str, str, int, bool] | None = None, timeout_s: float = 2.0) -> None:
        """Publish ``last`` (the clean ``offline``), wait for it to leave, disconnect."""
        if last is not None and self.connected.is_set():
            info = self.client.publish(*last[:2], qos=last[2], retain=last[3])
            info.wait_for_publish(timeout_s)
        self.client.disconnect()
        self.client.loop_stop()


def _read_password(args: argparse.Namespace) -> str | None:
    if args.password_file:
        path = Path(args.password_file)
        try:
            return path.read_text().rstrip("\r\n")
        except OSError as exc:
            msg = f"--password-file {path}: {exc.strerror or exc}"
            raise bus.ClientError(msg) from None
    return os.environ.get(PASSWORD_ENV)


def broker_from_args(args: argparse.Namespace) -> Broker:
    """The broker settings the options describe."""
    host, port, tls = parse_broker(args.broker)
    tls = tls or bool(args.ca_file)
    password = _read_password(args)
    if password is not None and args.username is None:
        msg = f"a password (--password-file or ${PASSWORD_ENV}) needs --username"
        raise bus.ClientError(msg)
    for option, value in (("--ca-file", args.ca_file), ("--cert-file", args.cert_file), ("--key-file", args.key_file)):
        if value and not Path(value).is_file():
            msg = f"{option} {value}: no such file"
            raise bus.ClientError(msg)
    return Broker(host, port, tls, args.username, password, args.ca_file, args.cert_file, args.key_file)


class _StopRequestedError(Exception):
    """SIGTERM arrived: leave the loop through the same path as Ctrl-C."""


def run(args: argparse.Namespace, out: Any = sys.stdout) -> int:
    """Forward until interrupted (or ``--max-seconds``); returns the exit code."""
    prefix = _check_prefix(args.prefix)
    if args.qos not in (0, 1, 2):
        msg = f"--qos must be 0, 1 or 2, found {args.qos}"
        raise bus.ClientError(msg)
    if args.pred_rate < 0:
        msg = f"--pred-rate must be >= 0 Hz (0: no preds), found {args.pred_rate:g}"
        raise bus.ClientError(msg)
    curve = bus.curve_from_args(args)
    broker = broker_from_args(args)
    forwarder = Forwarder(prefix, args.qos, args.pred_rate, args.heartbeat_timeout)
    bus.split_endpoints(args.output)  # a bad endpoint is reported before the broker is bothered
    will = (f"{prefix}/availability", "offline")
    link = MqttLink(broker, client_id=args.client_id or f"s2gesture-{os.getpid()}", will=will, timeout_s=args.timeout)
    topics = [wire.GESTURE_PREFIX] + ([wire.PRED_PREFIX] if args.pred_rate > 0 else [])
    ctx = bus.context()
    sub = bus.open_output(ctx, args.output, topics=topics, curve=curve)

    def on_term(signum: int, frame: Any) -> None:
        raise _StopRequestedError

    previous = signal.signal(signal.SIGTERM, on_term)
    started = time.monotonic()
    forwarded = 0
    try:
        print(f"s2gesture mqtt: connected to {link.where}; forwarding {args.output} to {prefix}/...", file=out, flush=True)
        # offline until the daemon's first heartbeat says otherwise
        link.publish(*forwarder.availability(False))
        while args.max_seconds is None or time.monotonic() - started < args.max_seconds:
            got = bus.receive(sub, 0.2)
            now = time.monotonic()
            messages = forwarder.on_message(got, now) if got is not None else []
            for message in messages + forwarder.on_tick(now):
                link.publish(*message)
                forwarded += message[0].endswith("/gesture")
    except (KeyboardInterrupt, _StopRequestedError):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        link.close(forwarder.availability(False))
        sub.close()
        ctx.term()
    dropped = f", {link.dropped} dropped while the broker was away" if link.dropped else ""
    print(f"s2gesture mqtt: forwarded {forwarded} gestures{dropped}", file=out, flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``s2gesture mqtt`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="s2gesture mqtt",
        description="Forward a daemon's gesture decisions (and optionally predictions) to an MQTT broker as JSON.",
        epilog=(
            "Topics: PREFIX/<stream>/gesture, PREFIX/<stream>/pred (with --pred-rate), PREFIX/availability "
            "(online/offline, retained, last will), PREFIX/state (retained). See docs/clients.md."
        ),
    )
    parser.add_argument("--output", default=bus.DEFAULT_OUTPUT, help=f"daemon output endpoint(s) (default {bus.DEFAULT_OUTPUT})")
    mq = parser.add_argument_group("broker")
    mq.add_argument("--broker", default=DEFAULT_BROKER, help=f"mqtt://HOST[:PORT] or mqtts://HOST[:PORT] for TLS (default {DEFAULT_BROKER})")
    mq.add_argument("--prefix", default="s2gesture", help="topic prefix (default s2gesture)")
    mq.add_argument("--qos", type=int, default=1, help="QoS of the gesture messages, 0-2 (default 1)")
    mq.add_argument("--pred-rate", type=float, default=0.0, metavar="HZ", help="also publish preds, at most HZ per stream (default 0: none)")
    mq.add_argument("--client-id", help="MQTT client id (default s2gesture-<pid>)")
    mq.add_argument("--username", help="broker user name")
    mq.add_argument("--password-file", help=f"file holding the broker password (or set ${PASSWORD_ENV})")
    mq.add_argument("--ca-file", help="CA certificate(s) to verify the broker (PEM; implies TLS)")
    mq.add_argument("--cert-file", help="client certificate for TLS client authentication (PEM)")
    mq.add_argument("--key-file", help="the client certificate's private key (PEM)")
    mq.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the broker to accept us (default 10)")
    parser.add_argument("--heartbeat-timeout", type=float, default=3.0, help="availability goes offline after this long without a daemon heartbeat (s)")
    parser.add_argument("--max-seconds", type=float, help="exit after this long (for demos and tests)")
    bus.add_curve_arguments(parser)
    return parser


def cli(argv: list[str] | None = None) -> int:
    """``s2gesture mqtt``: 0 on a clean exit, 2 on bad options or a broker that refuses us."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except bus.ClientError as exc:
        print(f"s2gesture mqtt: {exc}", file=sys.stderr)
        return 2
