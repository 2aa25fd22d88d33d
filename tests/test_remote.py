"""Remote links: a real s2gestured bound to a non-loopback wildcard with CURVE, and the clients' CURVE options.

The daemon's keys come from `s2gesture keys --daemon` as systemd credential files, the allowed client's
public key is its allow-list; clients connect through 127.0.0.1 to the wildcard bind as a remote host would.
"""

from __future__ import annotations

import argparse
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zmq.auth
from daemon_helpers import daemon_command, free_tcp_port, random_events
from test_clients_e2e import LineReader

from s2gesture.clients import bus, keys
from s2gesture.daemon import wire
from s2gesture.daemon.events import Recording
from s2gesture.daemon.testing import write_tiny_model
from s2gesture.models.datasets.npz import write_npz

pytestmark = pytest.mark.timeout(120)


@dataclass
class Remote:
    """A CURVE daemon on wildcard binds and the key files around it."""

    proc: subprocess.Popen[bytes]
    input: str
    output: str
    keys: Path
    log: Path

    def curve_args(self, client: str, server: str = "s2gestured") -> list[str]:
        """The two CURVE options of a client holding ``client``'s keys, trusting ``server``'s public key."""
        return ["--curve-server-key", str(self.keys / f"{server}.key"), "--curve-keys", str(self.keys / f"{client}.key_secret")]

    def client_args(self, client: str, *, server: str = "s2gestured") -> list[str]:
        """Endpoints (through loopback, as a remote host reaches the wildcard) and keys of a client."""
        return ["--output", self.output, *self.curve_args(client, server)]


def _cli(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "s2gesture.clients.cli", *args], capture_output=True, text=True, timeout=timeout_s
    )


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    """s2gestured (lossless) on tcp://0.0.0.0 ports with CURVE; only the client 'friend' is allow-listed."""
    tmp = tmp_path_factory.mktemp("remote")
    write_tiny_model(tmp / "tiny.nir", seed=0)
    key_dir = tmp / "keys"
    keys.create(key_dir, "s2gestured", daemon=True)
    friend_public, _ = keys.create(key_dir, "friend")
    keys.create(key_dir, "stranger")
    keys.create(key_dir, "impostor")  # a server keypair that is not the daemon's
    creds = tmp / "creds"
    creds.mkdir()
    for name in ("curve__server_secret_key", "curve__server_public_key"):
        (creds / name).write_bytes((key_dir / name).read_bytes())
    (creds / "curve__client_public_keys").write_bytes(zmq.auth.load_certificate(friend_public)[0] + b"\n")
    in_port, out_port = free_tcp_port(), free_tcp_port()
    log = tmp / "s2gestured.log"
    env = {**os.environ, "CREDENTIALS_DIRECTORY": str(creds), "S2G_LOG__FORMAT": "json"}
    command = daemon_command(
        ["--mode", "lossless", "--input-bind", f"tcp://0.0.0.0:{in_port}", "--output-bind", f"tcp://0.0.0.0:{out_port}",
         "--model", str(tmp / "tiny.nir"), "--status-interval", "0.1"]
    )  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    r = Remote(proc, f"tcp://127.0.0.1:{in_port}", f"tcp://127.0.0.1:{out_port}", key_dir, log)
    try:
        _wait_serving(r)
        yield r
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_serving(r: Remote, timeout_s: float = 60.0) -> wire.Status:
    """The daemon's first serving heartbeat, heard by the allowed client through CURVE."""
    args = argparse.Namespace(curve_server_key=str(r.keys / "s2gestured.key"), curve_keys=str(r.keys / "friend.key_secret"))
    ctx = bus.context()
    sub = bus.open_output(ctx, r.output, topics=(), curve=bus.curve_from_args(args))
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if r.proc.poll() is not None:
                pytest.fail(f"s2gestured exited with {r.proc.returncode}:\n{r.log.read_text(errors='replace')[-3000:]}")
            try:
                return bus.wait_for_status(sub, 0.5, states=bus.SERVING_STATES)
            except bus.NoDaemonError:
                if time.monotonic() > deadline:
                    raise
    finally:
        sub.close()
        ctx.term()


def test_allowed_keys_replay_a_recording_and_listen_gets_the_gesture(remote: Remote, tmp_path: Path) -> None:
    """With the allow-listed keypair, `replay FILE` reaches the wildcard-bound daemon and `listen` prints its final."""
    rec = Recording(random_events(150_000, seed=3, duration_us=600_000), (128, 128), label=2, name="remote")
    path = write_npz(tmp_path / "remote.npz", rec)
    listener = subprocess.Popen(
        [sys.executable, "-m", "s2gesture.clients.cli", "listen", *remote.client_args("friend"), "--json",
         "--show", "gesture,status"],
        stdout=subprocess.PIPE, text=True, bufsize=1,
    )  # fmt: skip
    try:
        lines = LineReader(listener)
        # listen's first status line proves its CURVE subscription is joined: the final cannot be missed
        lines.wait_for(lambda line: '"topic":"s2g/v1/status/"' in line, timeout_s=30)
        sent = _cli("replay", str(path), "--input", remote.input, *remote.client_args("friend"), "--stream", "far",
                    "--as-fast-as-possible", "--quiet")  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        assert f"{len(rec)} events" in sent.stdout
        final = lines.wait_for(lambda line: '"final":true' in line and '"stream":"far"' in line, timeout_s=30)
        assert '"label":"' in final
    finally:
        listener.terminate()
        listener.wait(10)
    heard = _cli("status", *remote.client_args("friend"), "--json", "--timeout", "10")
    assert heard.returncode == 0 and '"far"' in heard.stdout


@pytest.mark.parametrize(
    ("client", "server", "what"),
    [("stranger", "s2gestured", "a keypair not on the allow-list"), ("friend", "impostor", "the wrong server key")],
)
def test_wrong_keys_get_nothing_and_a_clear_error_at_the_deadline(remote: Remote, client: str, server: str, what: str) -> None:
    """With a refused handshake, status, listen and replay hear nothing and exit 1 naming the keys to check."""
    status = _cli("status", *remote.client_args(client, server=server), "--timeout", "1")
    assert status.returncode == 1
    assert "curve.client_public_keys" in status.stderr and "--curve-server-key" in status.stderr
    public = zmq.auth.load_certificate(remote.keys / f"{client}.key")[0].decode()
    assert public in status.stderr
    listen = _cli("listen", *remote.client_args(client, server=server), "--timeout", "1")
    assert listen.returncode == 1 and "nothing from" in listen.stderr and public in listen.stderr
    replay = _cli("replay", "--synthetic", "1", "--duration-s", "0.5", "--input", remote.input,
                  *remote.client_args(client, server=server), "--stream", "intruder", "--timeout", "1", "--quiet")  # fmt: skip
    assert replay.returncode == 1 and "curve.client_public_keys" in replay.stderr
    # the daemon never saw the intruder (and is still serving the allowed client)
    heard = _cli("status", *remote.client_args("friend"), "--json", "--timeout", "10")
    assert heard.returncode == 0 and '"intruder"' not in heard.stdout


def test_clients_without_curve_hear_nothing_from_a_curve_daemon(remote: Remote) -> None:
    """A plain (non-CURVE) client gets no heartbeat from the CURVE daemon and exits 1 after its timeout."""
    status = _cli("status", "--output", remote.output, "--timeout", "1")
    assert status.returncode == 1 and "no s2gestured status heartbeat" in status.stderr


# ------------------------------------------------------------------------------------ options and keys

CLIENTS = ["replay", "listen", "status", "robot", "eval", "ros2", "mqtt"]


@pytest.mark.parametrize("command", CLIENTS)
def test_every_client_reads_the_curve_options_through_one_function(command: str, tmp_path: Path) -> None:
    """Each client's parser takes --curve-server-key FILE|Z85 and --curve-keys FILE and yields the same keys."""
    import importlib

    server_file, _ = keys.create(tmp_path, "daemon")
    _, client_secret = keys.create(tmp_path, "client")
    server_z85 = zmq.auth.load_certificate(server_file)[0]
    module = importlib.import_module(f"s2gesture.clients.{command}")
    for server_value in (str(server_file), server_z85.decode()):
        # the = form: a Z85 key may start with '-', which argparse would take for an option
        args = module.build_parser().parse_args([f"--curve-server-key={server_value}", "--curve-keys", str(client_secret)])
        curve = bus.curve_from_args(args)
        assert curve is not None and curve.server_public == server_z85
        assert (curve.public, curve.secret) == zmq.auth.load_certificate(client_secret)


def test_curve_option_mistakes_are_named_with_the_fix(tmp_path: Path) -> None:
    """Half the options, a public file as --curve-keys, a missing file or a non-key are usage errors with a fix."""
    server_file, _ = keys.create(tmp_path, "daemon")
    public_only, _ = keys.create(tmp_path, "client")
    half = _cli("status", "--curve-server-key", str(server_file), "--timeout", "0.1")
    assert half.returncode == 2 and "--curve-server-key needs --curve-keys" in half.stderr
    public = _cli("status", "--curve-server-key", str(server_file), "--curve-keys", str(public_only), "--timeout", "0.1")
    assert public.returncode == 2 and "holds no secret-key" in public.stderr and "client.key_secret" in public.stderr
    missing = _cli("listen", "--curve-server-key", str(tmp_path / "nope.key"), "--curve-keys", str(public_only) + "_secret")
    assert missing.returncode == 2 and "no such file" in missing.stderr and "s2gesture keys" in missing.stderr
    (tmp_path / "junk.key").write_text("hello\n")
    junk = _cli("status", "--curve-server-key", str(tmp_path / "junk.key"), "--curve-keys", str(public_only) + "_secret")
    assert junk.returncode == 2 and "junk.key" in junk.stderr and "Traceback" not in junk.stderr


def test_keys_writes_private_secrets_and_never_overwrites(tmp_path: Path) -> None:
    """`s2gesture keys` writes a loadable pair (secret 0600, directory 0700) and refuses to replace it without --force."""
    out = _cli("keys", str(tmp_path / "k"), "--name", "cam-lab1", "--daemon")
    assert out.returncode == 0, out.stderr
    public, secret = zmq.auth.load_certificate(tmp_path / "k" / "cam-lab1.key_secret")
    assert secret is not None and public.decode() in out.stdout
    assert zmq.auth.load_certificate(tmp_path / "k" / "cam-lab1.key") == (public, None)
    assert (tmp_path / "k" / "curve__server_secret_key").read_bytes().strip() == secret
    for name in ("cam-lab1.key_secret", "curve__server_secret_key"):
        assert stat.S_IMODE((tmp_path / "k" / name).stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o700
    again = _cli("keys", str(tmp_path / "k"), "--name", "cam-lab1")
    assert again.returncode == 2 and "--force" in again.stderr
    assert zmq.auth.load_certificate(tmp_path / "k" / "cam-lab1.key_secret") == (public, secret)
    forced = _cli("keys", str(tmp_path / "k"), "--name", "cam-lab1", "--force")
    assert forced.returncode == 0 and zmq.auth.load_certificate(tmp_path / "k" / "cam-lab1.key_secret")[0] != public
    bad = _cli("keys", str(tmp_path / "k"), "--name", "../escape")
    assert bad.returncode == 2 and "--name" in bad.stderr
