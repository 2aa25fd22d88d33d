"""`s2gesture view` against the real daemon and a real headless Chromium: the page shows replayed gestures
within a second of the daemon publishing them, shows 'degraded' with the backend's error, and recovers when
the daemon restarts on the same ports. Screenshots go to $S2G_TEST_ARTIFACTS (or the test's tmp_path)."""

from __future__ import annotations

import http.client
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
from daemon_helpers import DaemonProcess, daemon_command, free_tcp_port, random_events, start_daemon

from s2gesture.clients import bus, replay, view
from s2gesture.daemon import wire
from s2gesture.daemon.events import Recording
from s2gesture.daemon.testing import write_tiny_model

pytestmark = pytest.mark.timeout(120)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
needs_browser = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run does)",
)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.nir"
    write_tiny_model(path, seed=0)
    return path


@pytest.fixture
def artifacts(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """Where screenshots go: $S2G_TEST_ARTIFACTS/<test name>, else the test's tmp_path."""
    root = os.environ.get("S2G_TEST_ARTIFACTS")
    folder = Path(root) / request.node.name if root else tmp_path / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the module, driven through Debian's chromedriver (no downloads)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


class ViewProcess:
    """A running `s2gesture view` and the URL it printed."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "s2gesture.clients.cli", "view", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        stdout = self.proc.stdout
        assert stdout is not None
        threading.Thread(target=lambda: [self.lines.put(line) for line in stdout], daemon=True).start()
        try:
            first = self.lines.get(timeout=30)
        except queue.Empty:
            self.stop()
            pytest.fail("s2gesture view printed nothing within 30 s")
        if "http://" not in first:
            self.stop()
            pytest.fail(f"s2gesture view did not start: {first}")
        self.url = first.split()[2]

    def page(self, path: str = "") -> str:
        """The URL of ``path`` on this view."""
        return self.url.rstrip("/") + path

    def stop(self) -> int:
        """SIGTERM and the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


def wait_js(driver: Any, script: str, predicate: Callable[[Any], bool], timeout_s: float, what: str) -> Any:
    """Evaluate ``script`` in the page until ``predicate`` holds for its value; fails after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    value = None
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if predicate(value):
            return value
        # the browser is the signal source: poll it at a short, fixed interval until the deadline
        threading.Event().wait(0.05)
    pytest.fail(f"the page never showed {what} within {timeout_s} s; last value {value!r}")


STATE_JS = "return document.getElementById('state').textContent"


class GestureClock:
    """Notes when the daemon publishes each gesture (wall-clock ms), on its own SUB in a thread."""

    def __init__(self, output: str) -> None:
        self.output = output
        self.published: dict[tuple[str, int, bool], tuple[float, str]] = {}
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(20):
            pytest.fail("no heartbeat on the daemon's output within 20 s")

    def _run(self) -> None:
        ctx = zmq.Context()
        sub = bus.open_output(ctx, self.output, topics=(wire.GESTURE_PREFIX,))
        try:
            bus.wait_for_status(sub, 20)
            self.ready.set()
            while not self.stop.is_set():
                if not sub.poll(100):
                    continue
                frames = sub.recv_multipart()
                t_ms = time.time() * 1e3
                msg = wire.decode_message(frames)
                if isinstance(msg, wire.Gesture):
                    self.published[(msg.stream, msg.seq, msg.final)] = (t_ms, msg.label)
        finally:
            sub.close()
            ctx.term()

    def close(self) -> None:
        """Stop the thread."""
        self.stop.set()
        self.thread.join(5)


def _recordings(n: int, seed: int) -> list[Recording]:
    # dense random events: enough survive the denoise filter for the tiny model to decide
    return [
        Recording(random_events(120_000, seed=seed + i, duration_us=600_000), (128, 128), label=i % 11, name=f"rec{i}")
        for i in range(n)
    ]


def _replay_live(d: DaemonProcess, view_input: str, stream: str, n: int, seed: int) -> replay.ReplayStats:
    args = replay.build_parser().parse_args(
        ["--mode", "live", "--input", f"{d.input_endpoint},{view_input}", "--output", d.output_endpoint,
         "--stream", stream, "--speed", "1", "--quiet"]
    )
    return replay.run(args, recordings=_recordings(n, seed))


@needs_browser
def test_page_shows_each_replayed_gesture_within_a_second(tmp_path: Path, model_path: Path, browser: Any, artifacts: Path) -> None:
    """Every gesture the daemon publishes for a live replay is on screen within 1 s, with the event image, chart and per-stream page."""
    view_input = f"tcp://127.0.0.1:{free_tcp_port()}"
    with start_daemon(tmp_path, model_path, mode="live", status_interval_s=0.2) as d:
        v = ViewProcess("--output", d.output_endpoint, "--input", view_input, "--http", "127.0.0.1:0", "--model", str(model_path))
        clock = GestureClock(d.output_endpoint)
        try:
            browser.get(v.page("/"))
            wait_js(browser, STATE_JS, lambda s: s == "ready", 15, "the daemon's state 'ready'")
            stats = _replay_live(d, view_input, "cam_a", 3, seed=10)
            assert stats.segments == 3
            # every segment's final decision reaches the daemon's output, and then the page
            deadline = time.monotonic() + 15
            while sum(1 for k in clock.published if k[0] == "cam_a" and k[2]) < 3 and time.monotonic() < deadline:
                threading.Event().wait(0.05)
            published = {k: v for k, v in clock.published.items() if k[0] == "cam_a"}
            assert sum(1 for k in published if k[2]) == 3, f"finals published: {published}"
            shown_js = "return window.s2gShown.filter(g => g.stream === 'cam_a')"
            shown = wait_js(browser, shown_js, lambda s: len(s) >= len(published), 5, "every published gesture")
            by_key = {(g["stream"], g["seq"], g["final"]): g for g in shown}
            delays = []
            for key, (t_pub, label) in published.items():
                g = by_key.get(key)
                assert g is not None, f"gesture {key} ({label}) never shown"
                assert g["label"] == label
                delays.append(g["shown_ms"] - t_pub)
            assert max(delays) < 1000.0, f"gesture-to-screen delays (ms): {sorted(delays)}"
            last_key = max(published, key=lambda k: published[k][0])
            card = "document.querySelector('article[data-stream=\"cam_a\"]')"
            assert browser.execute_script(f"return {card}.querySelector('.label').textContent") == published[last_key][1]
            # the event image arrived (the no-events note is hidden) and the strip chart holds scores
            assert browser.execute_script(f"return {card}.querySelector('.noevents').hidden") is True
            assert browser.execute_script("return window.s2gView.streams.get('cam_a').preds.length") > 0
            browser.save_screenshot(str(artifacts / "overview.png"))

            # a second stream: its own page shows it alone
            _replay_live(d, view_input, "cam_b", 1, seed=20)
            browser.get(v.page("/stream/cam_b"))
            wait_js(browser, "return [...document.querySelectorAll('article.stream')].map(a => a.dataset.stream)",
                    lambda s: s == ["cam_b"], 10, "only stream cam_b")
            wait_js(browser, "return document.querySelector('.label').textContent", lambda s: s not in ("", "no gesture yet"), 10, "cam_b's gesture")
            browser.save_screenshot(str(artifacts / "stream_cam_b.png"))

            # a phone-sized window: nothing sticks out sideways
            browser.set_window_size(390, 844)
            browser.get(v.page("/"))
            wait_js(browser, STATE_JS, lambda s: s == "ready", 10, "'ready' on a phone-sized page")
            width = browser.execute_script("return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
            assert width[0] <= width[1], f"page wider than a phone screen: {width}"
            browser.save_screenshot(str(artifacts / "phone.png"))
        finally:
            browser.set_window_size(1280, 1000)
            clock.close()
            assert v.stop() == 0
        assert d.stop() == 0


@needs_browser
def test_page_shows_degraded_and_the_backend_error(tmp_path: Path, browser: Any, artifacts: Path) -> None:
    """A daemon whose backend cannot load shows 'degraded' and the error on the page."""
    write_tiny_model(tmp_path / "m.nir")
    args = ["--backend", "spinnaker2", "--set", "backend.fallback_to_emulator=true", "--set", "backend.retry_initial_s=0.2"]
    with start_daemon(tmp_path, tmp_path / "m.nir", mode="lossless", args=args) as d:
        v = ViewProcess("--output", d.output_endpoint, "--http", "127.0.0.1:0")
        try:
            browser.get(v.page("/"))
            wait_js(browser, STATE_JS, lambda s: s == "degraded", 15, "'degraded'")
            error = browser.execute_script("return document.getElementById('daemon-error').textContent")
            assert "spinnaker2" in error.lower()
            browser.save_screenshot(str(artifacts / "degraded.png"))
        finally:
            assert v.stop() == 0
        assert d.stop() == 0


def _restart(old: DaemonProcess, tmp_path: Path, model_path: Path) -> DaemonProcess:
    """A new s2gestured on the same endpoints as ``old`` (which has exited)."""
    log_path = tmp_path / "s2gestured-2.log"
    command = daemon_command(
        ["--mode", old.mode, "--input-bind", old.input_endpoint, "--output-bind", old.output_endpoint,
         "--model", str(model_path), "--status-interval", "0.2"]
    )
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "S2G_LOG__FORMAT": "json"})
    d = DaemonProcess(proc, old.input_endpoint, old.output_endpoint, old.mode, log_path)
    d.connect_output()
    return d


@needs_browser
def test_page_recovers_after_a_daemon_restart(tmp_path: Path, model_path: Path, browser: Any, artifacts: Path) -> None:
    """When the daemon stops, the page says so; a daemon restarted on the same ports is shown again without a reload."""
    with start_daemon(tmp_path, model_path, mode="lossless", status_interval_s=0.2) as d:
        v = ViewProcess("--output", d.output_endpoint, "--http", "127.0.0.1:0")
        try:
            browser.get(v.page("/"))
            wait_js(browser, STATE_JS, lambda s: s == "ready", 15, "'ready'")
            first_pid = d.proc.pid
            assert d.stop() == 0
            wait_js(browser, STATE_JS, lambda s: s in ("stopping", "no heartbeat"), 10, "the daemon stopping")
            wait_js(browser, STATE_JS, lambda s: s == "no heartbeat", 10, "the silence after the daemon stopped")
            browser.save_screenshot(str(artifacts / "daemon_gone.png"))
            with _restart(d, tmp_path, model_path) as d2:
                d2.wait_status(lambda b: b["state"] == "ready", timeout_s=30)
                wait_js(browser, STATE_JS, lambda s: s == "ready", 15, "'ready' again after the restart")
                summary = browser.execute_script("return document.getElementById('daemon-details').textContent")
                assert f"pid {d2.proc.pid}" in summary and f"pid {first_pid}" not in summary
                restarted = browser.execute_script("return document.getElementById('daemon-summary').textContent")
                assert "restarted 1x" in restarted
                browser.save_screenshot(str(artifacts / "restarted.png"))
                assert d2.stop() == 0
        finally:
            assert v.stop() == 0


def _http(url: str, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    host_port = url.split("//", 1)[1].split("/", 1)[0]
    conn = http.client.HTTPConnection(host_port, timeout=10)
    conn.request("GET", path, headers=headers or {})
    return conn.getresponse()


def test_a_non_loopback_address_needs_a_token(capsys: pytest.CaptureFixture[str]) -> None:
    """`--http 0.0.0.0:PORT` without a token is refused with the fix; a short token is refused too."""
    assert view.cli(["--http", "0.0.0.0:0"]) == 2
    err = capsys.readouterr().err
    assert "not a loopback address" in err and "--token" in err
    assert view.cli(["--http", "0.0.0.0:0", "--token", "short"]) == 2
    assert "at least 8" in capsys.readouterr().err
    assert view.cli(["--http", "localhost"]) == 2
    assert "expected HOST:PORT" in capsys.readouterr().err


def test_token_cookie_csp_and_foreign_websockets(tmp_path: Path) -> None:
    """With a token: requests without it get 401, with it 200 plus an HttpOnly cookie and a CSP; a WebSocket from another origin gets 403."""
    v = ViewProcess("--output", f"ipc://{tmp_path}/nobody", "--http", "127.0.0.1:0", "--token", "correct-horse-battery")
    try:
        base = v.url.split("?", 1)[0]
        assert _http(base, "/").status == 401
        assert _http(base, "/?token=wrong-token-123").status == 401
        ok = _http(base, "/?token=correct-horse-battery")
        assert ok.status == 200
        assert "HttpOnly" in (ok.getheader("Set-Cookie") or "")
        assert "script-src 'self'" in (ok.getheader("Content-Security-Policy") or "")
        cookie = {"Cookie": f"{view.COOKIE}=correct-horse-battery"}
        assert _http(base, "/static/view.js", cookie).status == 200
        state = json.loads(_http(base, "/api/state", cookie).read())
        assert state["type"] == "hello" and state["status"]["alive"] is False
        upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
        host = base.split("//", 1)[1].rstrip("/")
        assert _http(base, "/ws", {**cookie, **upgrade, "Origin": "http://evil.example"}).status == 403
        assert _http(base, "/ws", {**cookie, **upgrade, "Origin": f"http://{host}"}).status == 101
    finally:
        assert v.stop() == 0


def test_tee_relays_losslessly_and_copies_to_the_view(tmp_path: Path) -> None:
    """The relay delivers every message in order to the PULL behind it; its copy never holds that back (an unread SUB loses copies, in order)."""
    ctx = zmq.Context()
    sink = ctx.socket(zmq.PULL)
    sink.bind(f"ipc://{tmp_path}/sink")
    copy = ctx.socket(zmq.SUB)
    copy.setsockopt(zmq.SUBSCRIBE, b"")
    copy.bind(f"ipc://{tmp_path}/copy")
    rng = np.random.default_rng(3)
    messages = [[b"dvs/v1/events/t/", rng.bytes(int(rng.integers(1, 2000)))] for _ in range(500)]
    sender = None
    try:
        with view.tee(f"ipc://{tmp_path}/tee", f"ipc://{tmp_path}/sink", f"ipc://{tmp_path}/copy") as listen:
            sender = bus.EventSender(ctx, listen, lossless=True)
            sender.wait_ready(5)
            # the copy's subscription must be joined before the PUB copies: send probes until one arrives
            while not copy.poll(50):
                sender.send([b"probe", b""])
            probes = 0
            while copy.poll(50):
                copy.recv_multipart()
            while sink.poll(50):
                sink.recv_multipart()
                probes += 1
            assert probes >= 1
            for frames in messages:
                sender.send(frames)
            # the copy is not read while the sink takes everything: a stalled view cannot stall the feed
            received = [sink.recv_multipart() for _ in messages]
            assert received == messages
            copied = []
            while copy.poll(200):
                copied.append(copy.recv_multipart())
            assert 0 < len(copied) <= len(messages)
            it = iter(messages)
            assert all(any(c == m for m in it) for c in copied), "the copies are not an in-order subsequence"
    finally:
        if sender is not None:
            sender.sock.close(0)
        sink.close(0)
        copy.close(0)
        ctx.term()


def test_json_to_the_page_is_strict() -> None:
    """Non-finite floats become null and bytes hex, so the browser's JSON.parse accepts every message."""
    text = view.dumps({"a": float("nan"), "b": [1.5, float("inf")], "c": b"\x01\xff"})
    assert json.loads(text) == {"a": None, "b": [1.5, None], "c": "01ff"}
