"""``s2gesture view``: a live web page of what each camera sees and what the daemon decides.

The server subscribes to the daemon's output (``--output``: predictions, gestures, status) and, when
``--input`` is given, binds a SUB there that cameras and replay clients publish their events to *as well*
(``s2gesture replay --input tcp://DAEMON:5555,tcp://VIEW:5557``): a PUB/XPUB fans every packet out to each
connected SUB through its own queue, so a slow or absent viewer drops packets on its own pipe only and
never holds back the daemon's. The daemon is not touched: it offers no tap, and a proxy in front of it
would put the viewer on the daemon's critical path. A lossless (PUSH) sender cannot fan out (PUSH
deals packets round-robin); :func:`tee` copies such a feed with a ZeroMQ proxy outside the daemon
(``s2gesture demo --view`` does this).

The browser gets JSON over one WebSocket per page (``/ws``): a snapshot on connect, then updates: event
images (PNG, data only), predictions, gestures and status. Nothing the network sends is executed or
unpickled: ZeroMQ messages are decoded by :mod:`s2gesture.daemon.wire` (msgpack, validated), the page
sets text with ``textContent`` and serves a Content-Security-Policy without inline scripts. Everything
the page loads ships in the package (``view_static/``): no CDN, no build step.

Loopback by default; any other ``--http`` address needs ``--token`` (or ``S2G_VIEW_TOKEN``), checked on
every request (query ``?token=`` once, then an HttpOnly cookie). WebSockets from another origin are refused,
so a web page the user happens to visit cannot read the cameras through the browser.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hmac
import io
import ipaddress
import json
import math
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from s2gesture.daemon import wire
from s2gesture.daemon.errors import ProtocolError

from . import bus

DEFAULT_HTTP = "127.0.0.1:8080"
DEFAULT_VIEW_INPUT = "tcp://127.0.0.1:5557"
TOKEN_ENV = "S2G_VIEW_TOKEN"
COOKIE = "s2g_view_token"
#: static files the page loads, name -> content type
STATIC = {
    "index.html": "text/html; charset=utf-8",
    "view.js": "text/javascript; charset=utf-8",
    "view.css": "text/css; charset=utf-8",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
#: ON and OFF event colours (RGB) of the event image, and the page's legend
ON_RGB = np.array([255, 196, 40], dtype=np.float32)
OFF_RGB = np.array([60, 150, 255], dtype=np.float32)
#: events per pixel per frame that saturate the colour
SATURATION = 4.0
#: packet bytes per stream and frame the view decodes (~30 k events); beyond it, every k-th packet (a
#: 1 M events/s camera sends ~1 MB per frame at 10 fps, and decoding it all would cost the view a core)
DECODE_BUDGET_BYTES = 256 * 1024
#: a WebSocket client further behind than this many messages loses updates (the server never blocks)
CLIENT_QUEUE = 256


class ViewError(bus.ClientError):
    """The view cannot start as asked (bad address, missing token, missing aiohttp)."""


def _finite(value: Any) -> Any:
    """``value`` with non-finite floats as None and bytes as hex: JSON that JavaScript's parser accepts."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def dumps(message: dict[str, Any]) -> str:
    """One WebSocket text message."""
    return json.dumps(_finite(message), separators=(",", ":"), allow_nan=False)


def now_ms() -> float:
    """Wall-clock milliseconds since the epoch (the page compares them with its own clock)."""
    return time.time() * 1e3


# ------------------------------------------------------------------------------------ model geometry


@dataclass(frozen=True)
class ModelGeometry:
    """What the page draws on the event image: the model's mapping of the sensor, and the class names."""

    mapping: str
    input_size: tuple[int, int]
    classes: tuple[str, ...]
    source: str

    def box(self, sensor: tuple[int, int]) -> list[int]:
        """``[x0, y0, x1, y1]`` (exclusive) of the sensor region the model sees."""
        from s2gesture.daemon.preprocess import PreprocessSpec, mapping_tables

        try:
            xmap, ymap = mapping_tables(PreprocessSpec(sensor_size=sensor, input_size=self.input_size, mapping=self.mapping))
        except Exception:  # a sensor smaller than a center-crop: nothing the model sees can be drawn
            return [0, 0, 0, 0]
        xs, ys = np.flatnonzero(xmap >= 0), np.flatnonzero(ymap >= 0)
        if not len(xs) or not len(ys):
            return [0, 0, 0, 0]
        return [int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1]


def load_geometry(model: str | None) -> ModelGeometry:
    """The geometry of ``model`` (a .nir with a card), or the defaults of the model card format."""
    from s2gesture.daemon.card import GESTURE_CLASSES, InputSpec

    if model is None:
        spec = InputSpec()
        return ModelGeometry(spec.mapping, (spec.width, spec.height), tuple(GESTURE_CLASSES), "model card defaults")
    from s2gesture.daemon.card import read_model

    path = Path(model)
    if not path.is_file():
        msg = f"--model {path} does not exist; give the .nir file the daemon serves (or leave --model out)"
        raise ViewError(msg)
    card = read_model(path).card
    inp = card.input
    return ModelGeometry(str(inp.mapping), (int(inp.width), int(inp.height)), tuple(card.classes), str(path))


# -------------------------------------------------------------------------------------------- state


@dataclass
class StreamView:
    """What the page shows of one stream."""

    sid: str
    sensor: tuple[int, int] | None = None
    on: np.ndarray | None = None
    off: np.ndarray | None = None
    events: int = 0
    events_since_frame: int = 0
    last_event_s: float = 0.0
    dirty: bool = False
    preds: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=2000))
    decisions: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=12))
    current: dict[str, Any] | None = None
    frame: dict[str, Any] | None = None
    #: packets and bytes received this frame, and 1 in how many packets is decoded (from the last frame)
    packets_frame: int = 0
    bytes_frame: int = 0
    sample_every: int = 1

    def wants(self, nbytes: int) -> bool:
        """Count a received packet of ``nbytes``; whether to decode it (every ``sample_every``-th)."""
        self.packets_frame += 1
        self.bytes_frame += nbytes
        return self.packets_frame % self.sample_every == 0

    def next_frame(self) -> None:
        """Adapt the sampling to the bytes of the frame that ended."""
        self.sample_every = max(1, math.ceil(self.bytes_frame / DECODE_BUDGET_BYTES))
        self.packets_frame = self.bytes_frame = 0

    def add_events(self, packet: wire.EventPacket) -> None:
        """Accumulate a packet's events per pixel and polarity (the counters scaled by the sampling)."""
        size = (packet.width, packet.height)
        if self.sensor != size or self.on is None or self.off is None:
            self.sensor = size
            self.on = np.zeros(size[0] * size[1], dtype=np.float32)
            self.off = np.zeros(size[0] * size[1], dtype=np.float32)
        ev = packet.events
        if len(ev):
            flat = ev["y"].astype(np.int64) * size[0] + ev["x"]
            pol = ev["p"].astype(bool)
            n = size[0] * size[1]
            self.on += np.bincount(flat[pol], minlength=n)
            self.off += np.bincount(flat[~pol], minlength=n)
            self.events += len(ev) * self.sample_every
            self.events_since_frame += len(ev) * self.sample_every
            self.last_event_s = time.monotonic()
            self.dirty = True

    def render_png(self) -> bytes:
        """The accumulated events as a PNG (ON and OFF colours on black), then decay for a short trail."""
        from PIL import Image

        if self.sensor is None or self.on is None or self.off is None:
            msg = "render_png before any events"
            raise ViewError(msg)
        w, h = self.sensor
        on = np.minimum(self.on / SATURATION, 1.0)[:, None]
        off = np.minimum(self.off / SATURATION, 1.0)[:, None]
        rgb = np.minimum(on * ON_RGB + off * OFF_RGB, 255.0).astype(np.uint8).reshape(h, w, 3)
        buf = io.BytesIO()
        Image.fromarray(rgb, "RGB").save(buf, format="PNG", compress_level=1)
        # halve each frame: the image shows about the last two frame periods, fading
        self.on *= 0.5
        self.off *= 0.5
        self.on[self.on < 0.05] = 0.0
        self.off[self.off < 0.05] = 0.0
        return buf.getvalue()

    def snapshot(self, window_s: float) -> dict[str, Any]:
        """Everything a page that just connected needs for this stream."""
        horizon = now_ms() - window_s * 1e3
        return {
            "stream": self.sid,
            "preds": [p for p in self.preds if p["t_ms"] >= horizon],
            "decisions": list(self.decisions),
            "current": self.current,
            "frame": self.frame,
        }


@dataclass
class DaemonView:
    """The daemon's last heartbeat and what follows from successive ones (rates, restarts, silence)."""

    status: dict[str, Any] | None = None
    received_s: float = 0.0
    interval_s: float = 1.0
    alive: bool = False
    events_per_s: float = 0.0
    stream_rates: dict[str, float] = field(default_factory=dict)
    restarts: int = 0
    _prev: tuple[float, int, dict[str, int], int] | None = None

    def update(self, status: wire.Status) -> dict[str, Any]:
        """Take a heartbeat; returns the page's status message."""
        t = time.monotonic()
        events = int(status.totals.get("events", 0) or 0)
        per_stream = {sid: int(s.get("events", 0) or 0) for sid, s in status.streams.items()}
        if self._prev is not None:
            t0, e0, s0, pid0 = self._prev
            if status.pid != pid0:
                self.restarts += 1
            dt = t - t0
            if dt > 0 and status.pid == pid0:
                self.events_per_s = max(0.0, (events - e0) / dt)
                self.stream_rates = {sid: max(0.0, (n - s0.get(sid, 0)) / dt) for sid, n in per_stream.items()}
                # a heartbeat period estimate for the silence watchdog (bounded: one late beat is no trend)
                self.interval_s = min(5.0, max(0.05, 0.8 * self.interval_s + 0.2 * dt))
        self._prev = (t, events, per_stream, status.pid)
        self.received_s = t
        self.alive = True
        self.status = status.to_body()
        return self.message()

    def silence_s(self) -> float:
        """Seconds since the last heartbeat."""
        return time.monotonic() - self.received_s if self.received_s else math.inf

    def message(self) -> dict[str, Any]:
        """The page's status message."""
        return {
            "type": "status",
            "alive": self.alive,
            "status": self.status,
            "events_per_s": self.events_per_s,
            "stream_rates": self.stream_rates,
            "restarts": self.restarts,
            "silence_s": None if not self.received_s else round(self.silence_s(), 1),
        }


# --------------------------------------------------------------------------------------------- the hub


class Client:
    """One connected page: its stream filter and its outgoing queue."""

    def __init__(self, stream: str | None) -> None:
        self.stream = stream
        self.queue: asyncio.Queue[str] = asyncio.Queue(CLIENT_QUEUE)
        self.dropped = 0
        self.ws: Any = None

    def offer(self, text: str) -> None:
        """Queue ``text``; a page that cannot keep up loses it (the daemon's data never waits for a browser)."""
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.dropped += 1


@dataclass
class ViewConfig:
    """What ``s2gesture view`` was asked to do."""

    output: str = bus.DEFAULT_OUTPUT
    input: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    fps: float = 10.0
    window_s: float = 10.0
    geometry: ModelGeometry | None = None


class ViewServer:
    """The web server and its ZeroMQ subscriptions, on one asyncio loop."""

    def __init__(self, config: ViewConfig) -> None:
        self.config = config
        self.geometry = config.geometry or load_geometry(None)
        self.streams: dict[str, StreamView] = {}
        self.daemon = DaemonView()
        self.clients: set[Client] = set()
        self.counters = {"output_messages": 0, "output_undecodable": 0, "input_packets": 0, "input_undecodable": 0}
        self.url = ""
        self._static = {name: (resources.files("s2gesture.clients").joinpath("view_static", name).read_bytes(), ctype) for name, ctype in STATIC.items()}
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: Any = None
        self._zctx: Any = None

    # -- state -> pages

    def stream(self, sid: str) -> StreamView:
        """The view of stream ``sid`` (created on first sight)."""
        view = self.streams.get(sid)
        if view is None:
            view = self.streams[sid] = StreamView(sid)
        return view

    def broadcast(self, message: dict[str, Any], stream: str | None = None) -> None:
        """Send ``message`` to every page showing ``stream`` (None: every page)."""
        if not self.clients:
            return
        text = dumps(message)
        for client in self.clients:
            if stream is None or client.stream is None or client.stream == stream:
                client.offer(text)

    def snapshot(self, stream: str | None) -> dict[str, Any]:
        """The first message a page gets: configuration, the status, and each stream's recent history."""
        sids = [stream] if stream is not None else sorted(self.streams)
        return {
            "type": "hello",
            "now_ms": now_ms(),
            "classes": list(self.geometry.classes),
            "mapping": {"name": self.geometry.mapping, "input_size": list(self.geometry.input_size), "source": self.geometry.source},
            "window_s": self.config.window_s,
            "input": self.config.input,
            "output": self.config.output,
            "colours": {"on": ON_RGB.astype(int).tolist(), "off": OFF_RGB.astype(int).tolist()},
            "status": self.daemon.message(),
            "streams": [self.stream(s).snapshot(self.config.window_s) for s in sids],
        }

    def on_output(self, message: wire.Output) -> None:
        """Handle one decoded daemon message."""
        if isinstance(message, wire.Status):
            self.broadcast(self.daemon.update(message))
            return
        received = now_ms()
        view = self.stream(message.stream)
        if isinstance(message, wire.Pred):
            pred = {
                "type": "pred",
                "stream": message.stream,
                "t_ms": received,
                "scores": list(message.scores),
                "class_id": message.class_id,
                "label": message.label,
                "confidence": message.confidence,
                "latency_ms": message.latency_ms,
                "runs": message.runs,
                "t_end": message.t_end,
            }
            view.preds.append(pred)
            self.broadcast(pred, message.stream)
            return
        gesture = {
            "type": "gesture",
            "stream": message.stream,
            "received_ms": received,
            "seq": message.seq,
            "class_id": message.class_id,
            "label": message.label,
            "confidence": message.confidence,
            "final": message.final,
            "segment": message.segment,
            "t_start": message.t_start,
            "t_end": message.t_end,
            "n_chunks": message.n_chunks,
            "backend": message.backend,
        }
        view.current = gesture
        view.decisions.appendleft(gesture)
        self.broadcast(gesture, message.stream)

    def on_frame_tick(self, period_s: float) -> None:
        """Render the streams that got events since the last tick; announce a silent daemon."""
        for view in self.streams.values():
            sampled = view.sample_every
            view.next_frame()
            if not view.dirty or view.sensor is None:
                continue
            png = view.render_png()
            view.dirty = bool(view.on is not None and view.on.any()) or bool(view.off is not None and view.off.any())
            view.frame = {
                "type": "frame",
                "stream": view.sid,
                "png": base64.b64encode(png).decode("ascii"),
                "width": view.sensor[0],
                "height": view.sensor[1],
                "box": self.geometry.box(view.sensor),
                "events_per_s": view.events_since_frame / period_s,
                "events": view.events,
                "sample_every": sampled,
            }
            view.events_since_frame = 0
            self.broadcast(view.frame, view.sid)
        d = self.daemon
        if d.alive and d.silence_s() > max(2.0, 3.5 * d.interval_s):
            d.alive = False
            self.broadcast(d.message())

    # -- loops

    async def _output_loop(self) -> None:
        import zmq.asyncio

        sub = self._zctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        # a bounded queue: a viewer that falls behind loses messages instead of growing without limit
        sub.setsockopt(zmq.RCVHWM, 10_000)
        sub.setsockopt(zmq.SUBSCRIBE, wire.OUTPUT_PREFIX.encode())
        # ZeroMQ reconnects by itself; a short maximum interval finds a restarted daemon quickly
        sub.setsockopt(zmq.RECONNECT_IVL, 100)
        sub.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        for endpoint in bus.split_endpoints(self.config.output):
            sub.connect(endpoint)
        try:
            while True:
                frames = await sub.recv_multipart()
                self.counters["output_messages"] += 1
                try:
                    message = wire.decode_message(frames)
                except ProtocolError:
                    self.counters["output_undecodable"] += 1
                    continue
                self.on_output(message)
        finally:
            sub.close(0)

    async def _input_loop(self, sub: Any) -> None:
        prefix = wire.EVENTS_PREFIX.encode()
        try:
            while True:
                frames = await sub.recv_multipart()
                # the stream from the topic alone: packets the sampling skips cost no decoding
                topic = bytes(frames[0])
                sid = topic[len(prefix) : -1].decode("ascii", "replace")
                if not (topic.startswith(prefix) and topic.endswith(b"/") and wire.STREAM_RE.fullmatch(sid)):
                    self.counters["input_undecodable"] += 1
                    continue
                if not self.stream(sid).wants(len(frames[-1])):
                    continue
                try:
                    packet = wire.decode_input(frames)
                except ProtocolError:
                    self.counters["input_undecodable"] += 1
                    continue
                if isinstance(packet, wire.EventPacket):
                    self.counters["input_packets"] += 1
                    self.stream(packet.stream).add_events(packet)
        finally:
            sub.close(0)

    async def _frame_loop(self) -> None:
        period = 1.0 / self.config.fps
        while True:
            await asyncio.sleep(period)
            self.on_frame_tick(period)

    # -- HTTP

    def _app(self) -> Any:
        from aiohttp import web

        token = self.config.token

        @web.middleware
        async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
            given = request.query.get("token") or request.cookies.get(COOKIE)
            if token is not None and not (given and hmac.compare_digest(given.encode(), token.encode())):
                raise web.HTTPUnauthorized(
                    text="this s2gesture view needs its token: open the page as http://HOST:PORT/?token=TOKEN\n"
                )
            response = await handler(request)
            if not response.prepared:
                response.headers["Content-Security-Policy"] = CSP
                response.headers["X-Content-Type-Options"] = "nosniff"
                response.headers["Referrer-Policy"] = "no-referrer"
                response.headers["Cache-Control"] = "no-store"
                if token is not None and request.query.get("token"):
                    response.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
            return response

        async def page(request: web.Request) -> web.Response:
            sid = request.match_info.get("sid")
            if sid is not None and not wire.STREAM_RE.fullmatch(sid):
                raise web.HTTPNotFound(text=f"no stream {sid[:64]!r}: stream ids are 1-64 characters of [A-Za-z0-9_.-]\n")
            body, ctype = self._static["index.html"]
            return web.Response(body=body, headers={"Content-Type": ctype})

        async def static(request: web.Request) -> web.Response:
            name = request.match_info["name"]
            if name not in self._static or name == "index.html":
                raise web.HTTPNotFound()
            body, ctype = self._static[name]
            return web.Response(body=body, headers={"Content-Type": ctype})

        async def state(request: web.Request) -> web.Response:
            snap = self.snapshot(request.query.get("stream"))
            snap["counters"] = dict(self.counters)
            return web.Response(text=dumps(snap), content_type="application/json")

        async def socket(request: web.Request) -> web.StreamResponse:
            origin = request.headers.get("Origin")
            if origin is not None and origin.split("://", 1)[-1] != request.host:
                raise web.HTTPForbidden(text=f"WebSocket from origin {origin[:100]!r} refused: only this page may connect\n")
            stream = request.query.get("stream") or None
            if stream is not None and not wire.STREAM_RE.fullmatch(stream):
                raise web.HTTPBadRequest(text="stream must be 1-64 characters of [A-Za-z0-9_.-]\n")
            ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=4096)
            await ws.prepare(request)
            client = Client(stream)
            client.ws = ws
            # the snapshot first, then the client joins: no await in between, so nothing is missed or doubled
            client.offer(dumps(self.snapshot(stream)))
            self.clients.add(client)

            async def writer() -> None:
                while True:
                    await ws.send_str(await client.queue.get())

            task = asyncio.create_task(writer())
            try:
                async for _ in ws:
                    pass  # the page sends nothing we act on
            finally:
                self.clients.discard(client)
                task.cancel()
                with suppress(asyncio.CancelledError, Exception):
                    await task
            return ws

        async def no_icon(request: web.Request) -> web.Response:
            return web.Response(status=204)

        app = web.Application(middlewares=[guard], client_max_size=4096)
        app.add_routes(
            [
                web.get("/", page),
                web.get("/stream/{sid}", page),
                web.get("/static/{name}", static),
                web.get("/api/state", state),
                web.get("/ws", socket),
                web.get("/favicon.ico", no_icon),
            ]
        )
        return app

    async def start(self) -> str:
        """Bind everything and start the loops; returns the page's URL."""
        import zmq.asyncio
        from aiohttp import web

        self._zctx = zmq.asyncio.Context()
        input_sub = None
        if self.config.input:
            input_sub = self._zctx.socket(zmq.SUB)
            input_sub.setsockopt(zmq.LINGER, 0)
            # small: the view needs recent packets only; when it lags, the publisher drops on our pipe alone
            input_sub.setsockopt(zmq.RCVHWM, 200)
            input_sub.setsockopt(zmq.MAXMSGSIZE, wire.DEFAULT_LIMITS.max_message_bytes)
            input_sub.setsockopt(zmq.SUBSCRIBE, wire.EVENTS_PREFIX.encode())
            for endpoint in bus.split_endpoints(self.config.input):
                try:
                    input_sub.bind(endpoint)
                except zmq.ZMQError as exc:
                    input_sub.close(0)
                    msg = f"--input {endpoint}: cannot bind ({exc}); is another view or a daemon using it? pick another endpoint"
                    raise ViewError(msg) from None
        self._runner = web.AppRunner(self._app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            if input_sub is not None:
                input_sub.close(0)
            msg = f"--http {self.config.host}:{self.config.port}: cannot listen ({exc.strerror}); pick another port"
            raise ViewError(msg) from None
        host, port = self._runner.addresses[0][:2]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}/" + (f"?token={self.config.token}" if self.config.token else "")
        self._tasks = [asyncio.create_task(self._output_loop()), asyncio.create_task(self._frame_loop())]
        if input_sub is not None:
            self._tasks.append(asyncio.create_task(self._input_loop(input_sub)))
        return self.url

    async def stop(self) -> None:
        """Stop the loops, close the sockets and the server."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError, Exception):
                await task
        # open pages first: the server's shutdown would otherwise wait for them (a minute by default)
        for client in list(self.clients):
            if client.ws is not None:
                with suppress(Exception):
                    await client.ws.close(code=1001, message=b"the view is stopping")
        if self._runner is not None:
            await self._runner.cleanup()
        if self._zctx is not None:
            self._zctx.term()


# ------------------------------------------------------------------------------------- in a thread


class ViewThread:
    """A :class:`ViewServer` on its own loop in a daemon thread (for ``s2gesture demo --view``)."""

    def __init__(self, config: ViewConfig) -> None:
        self.server = ViewServer(config)
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="s2gesture-view", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            try:
                await self.server.start()
            except BaseException as exc:
                self._error = exc
                self._started.set()
                return
            self._started.set()
            try:
                await self._stop.wait()
            finally:
                await self.server.stop()

        self._loop.run_until_complete(main())
        self._loop.close()

    def start(self, timeout_s: float = 10.0) -> str:
        """Start the server; returns its URL (raises what the server raised on start)."""
        self._thread.start()
        if not self._started.wait(timeout_s):
            msg = f"the view did not start within {timeout_s:g} s"
            raise ViewError(msg)
        if self._error is not None:
            raise self._error
        return self.server.url

    def stop(self) -> None:
        """Stop the server and join the thread."""
        if self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@contextmanager
def tee(listen: str, forward: str, copy_to: str) -> Iterator[str]:
    """A lossless relay ``listen`` (PULL, bound) -> ``forward`` (PUSH) that copies every message to ``copy_to`` (PUB).

    For feeds a PUB cannot fan out: a lossless sender's PUSH deals packets round-robin, so the view gets
    them through this relay instead. Backpressure passes through (the relay stops reading while the
    daemon is full); the copy is a PUB, so a slow view loses copies and never slows the feed. Runs
    libzmq's proxy in a thread (no Python per message). Yields ``listen``.
    """
    ctx = zmq.Context.instance()
    front = ctx.socket(zmq.PULL)
    back = ctx.socket(zmq.PUSH)
    copy = ctx.socket(zmq.PUB)
    control = ctx.socket(zmq.PAIR)
    steer = ctx.socket(zmq.PAIR)
    address = f"inproc://s2g-view-tee-{id(front)}"
    control.bind(address)
    steer.connect(address)
    for sock in (front, back, copy, control, steer):
        sock.setsockopt(zmq.LINGER, 2000 if sock is back else 0)
    front.bind(listen)
    back.connect(forward)
    copy.setsockopt(zmq.SNDHWM, 200)
    copy.connect(copy_to)
    thread = threading.Thread(target=zmq.proxy_steerable, args=(front, back, copy, control), daemon=True, name="s2g-tee")
    thread.start()
    try:
        yield listen
    finally:
        steer.send(b"TERMINATE")
        thread.join(5)
        for sock in (front, back, copy, control, steer):
            sock.close()


@contextmanager
def demo_view(http: str | None, output: str, daemon_input: str, workdir: Path, model: str | None, out: Any) -> Iterator[str]:
    """For ``s2gesture demo --view HOST:PORT``: the page and a tee for its lossless feed; yields the input to send to.

    With ``http`` None nothing starts and the daemon's own input is yielded.
    """
    if http is None:
        yield daemon_input
        return
    require_aiohttp()
    host, port = parse_http(http)
    check_exposure(host, port, None)
    view_input = f"ipc://{workdir}/view-in"
    config = ViewConfig(output=output, input=view_input, host=host, port=port, geometry=load_geometry(model))
    thread = ViewThread(config)
    url = thread.start()
    print(f"live view: {url}  (open it in a browser; the replay runs in real time while --view is on)", file=out, flush=True)
    try:
        with tee(f"ipc://{workdir}/tee", daemon_input, view_input) as listen:
            yield listen
    finally:
        thread.stop()


# ----------------------------------------------------------------------------------------------- CLI


def parse_http(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT``) of ``--http``."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        msg = f"--http {value!r}: expected HOST:PORT such as {DEFAULT_HTTP} (port 0: any free port)"
        raise ViewError(msg)
    return host, int(port)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, port: int, token: str | None) -> None:
    """Refuse a non-loopback address without a token: the page shows what the cameras see."""
    if token is not None and len(token) < 8:
        msg = f"--token is {len(token)} characters; use at least 8 (e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`)"
        raise ViewError(msg)
    if not is_loopback(host) and token is None:
        msg = (
            f"--http {host}:{port} is not a loopback address: anyone who reaches it would see the cameras and the "
            f"daemon's decisions; pass --token SECRET (or set {TOKEN_ENV}) and open http://{host}:{port}/?token=SECRET, "
            "or keep the default 127.0.0.1"
        )
        raise ViewError(msg)


def build_parser() -> argparse.ArgumentParser:
    """The ``s2gesture view`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="s2gesture view",
        description="Serve a live web page of each stream's events, scores and decisions, and the daemon's status.",
        epilog=(
            "Event images need --input: the view binds a SUB there and a live camera or replay publishes to it in "
            "addition to the daemon, e.g. `s2gesture replay --mode live --input tcp://127.0.0.1:5555,"
            f"{DEFAULT_VIEW_INPUT}`. Without --input the page shows decisions and status only."
        ),
    )
    parser.add_argument("--output", default=bus.DEFAULT_OUTPUT, help=f"daemon output endpoint(s) (default {bus.DEFAULT_OUTPUT})")
    parser.add_argument(
        "--input",
        nargs="?",
        const=DEFAULT_VIEW_INPUT,
        default=None,
        help=f"bind a SUB for the cameras' event packets (default when given without a value: {DEFAULT_VIEW_INPUT})",
    )
    parser.add_argument("--http", default=DEFAULT_HTTP, help=f"HOST:PORT of the web page (default {DEFAULT_HTTP}; loopback)")
    parser.add_argument("--token", default=None, help=f"access token, required for a non-loopback --http (default: env {TOKEN_ENV})")
    parser.add_argument("--model", default=None, help="the daemon's .nir model: its class names and mapping box (default: card defaults)")
    parser.add_argument("--fps", type=float, default=10.0, help="event images per second (default 10)")
    parser.add_argument("--window-s", type=float, default=10.0, help="seconds of scores in the strip chart (default 10)")
    return parser


def config_from_args(args: argparse.Namespace) -> ViewConfig:
    """A checked ViewConfig from parsed arguments."""
    host, port = parse_http(args.http)
    token = args.token if args.token is not None else (os.environ.get(TOKEN_ENV) or None)
    check_exposure(host, port, token)
    if not 0.5 <= args.fps <= 60:
        msg = f"--fps must be in [0.5, 60], found {args.fps:g}"
        raise ViewError(msg)
    if not 1 <= args.window_s <= 600:
        msg = f"--window-s must be in [1, 600] s, found {args.window_s:g}"
        raise ViewError(msg)
    if args.input is not None:
        bus.split_endpoints(args.input)
    bus.split_endpoints(args.output)
    return ViewConfig(
        output=args.output,
        input=args.input,
        host=host,
        port=port,
        token=token,
        fps=args.fps,
        window_s=args.window_s,
        geometry=load_geometry(args.model),
    )


def require_aiohttp() -> None:
    """Fail with the install command when the optional web server library is missing."""
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        msg = "s2gesture view needs aiohttp, which is not installed; install it with: pip install 's2gesture[view]'"
        raise ViewError(msg) from None


async def _serve(config: ViewConfig) -> None:
    import signal

    server = ViewServer(config)
    url = await server.start()
    inputs = f"; event packets on {config.input}" if config.input else "; no --input: no event images"
    print(f"s2gesture view: {url} (daemon output {config.output}{inputs})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()


def cli(argv: list[str] | None = None) -> int:
    """``s2gesture view``: serve until SIGINT/SIGTERM; 0 then, 2 on bad arguments or when it cannot bind."""
    args = build_parser().parse_args(argv)
    try:
        require_aiohttp()
        config = config_from_args(args)
        asyncio.run(_serve(config))
    except bus.ClientError as exc:
        print(f"s2gesture view: {exc}", file=sys.stderr)
        return 2
    return 0
