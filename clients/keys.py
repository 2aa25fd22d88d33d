"""``s2gesture keys DIR --name NAME``: make a CURVE keypair for a daemon or a client (docs/remote.md).

Writes ZeroMQ certificate files (``zmq.auth.create_certificates``) into DIR:

* ``NAME.key``: the public key; safe to copy anywhere (a client's goes into the daemon's
  ``curve.client_public_keys``, the daemon's is every client's ``--curve-server-key``);
* ``NAME.key_secret``: public and secret key, mode 0600; stays on the host that owns it (a client's
  ``--curve-keys``).

``--daemon`` also writes the daemon's secret as the systemd credential file ``curve__server_secret_key``
(and its public key as ``curve__server_public_key``), so the daemon's unit can load them with
``LoadCredential=`` and the secret never appears in a config file or an environment variable.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from . import bus

NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def create(directory: str | Path, name: str, *, force: bool = False, daemon: bool = False) -> tuple[Path, Path]:
    """Write ``NAME.key`` and ``NAME.key_secret`` (and the daemon's credential files); returns their paths."""
    import zmq.auth

    if not NAME_RE.fullmatch(name) or name.startswith("."):
        msg = f"--name {name!r}: expected 1-64 characters of [A-Za-z0-9_.-], not starting with '.' (e.g. camera-lab1)"
        raise bus.ClientError(msg)
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        msg = f"{directory} exists and is not a directory; give a directory for the key files"
        raise bus.ClientError(msg)
    public_path, secret_path = directory / f"{name}.key", directory / f"{name}.key_secret"
    targets = [public_path, secret_path]
    if daemon:
        targets += [directory / "curve__server_secret_key", directory / "curve__server_public_key"]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not force:
        msg = f"{', '.join(existing)} already exist(s); keep them, choose another --name, or pass --force to replace them"
        raise bus.ClientError(msg)
    # secrets are born private: a umask, not a chmod after the fact, so no other user can ever open them
    old_umask = os.umask(0o077)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for p in existing:
            Path(p).unlink()
        public_file, secret_file = zmq.auth.create_certificates(directory, name)
        public, secret = zmq.auth.load_certificate(secret_file)
        if daemon:
            if secret is None:  # create_certificates always writes both; a failed write would show here
                msg = f"{secret_file} holds no secret key after writing it"
                raise bus.ClientError(msg)
            (directory / "curve__server_secret_key").write_bytes(secret + b"\n")
            (directory / "curve__server_public_key").write_bytes(public + b"\n")
    except OSError as exc:
        msg = f"cannot write keys into {directory}: {exc.strerror or exc}"
        raise bus.ClientError(msg) from None
    finally:
        os.umask(old_umask)
    # the public certificate is meant to be shared: readable by all, as zmq.auth writes it by default
    Path(public_file).chmod(0o644)
    return Path(public_file), Path(secret_file)


def build_parser() -> argparse.ArgumentParser:
    """The ``s2gesture keys`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="s2gesture keys",
        description="Create a CURVE keypair (ZeroMQ certificate files) for a remote daemon or client.",
        epilog=(
            "Client: `s2gesture keys ~/.config/s2gesture --name cam-lab1`, add the printed public key to the "
            "daemon's curve.client_public_keys, then run clients with --curve-keys ~/.config/s2gesture/cam-lab1.key_secret "
            "--curve-server-key DAEMON.key. Daemon: `s2gesture keys /etc/s2gesture/keys --name s2gestured --daemon`. "
            "See docs/remote.md."
        ),
    )
    parser.add_argument("dir", metavar="DIR", help="directory for the key files (created, mode 0700, if missing)")
    parser.add_argument("--name", required=True, help="base name of the files: NAME.key and NAME.key_secret")
    parser.add_argument(
        "--daemon",
        action="store_true",
        help="also write curve__server_secret_key and curve__server_public_key (systemd credential files)",
    )
    parser.add_argument("--force", action="store_true", help="replace existing files of that name")
    return parser


def cli(argv: list[str] | None = None) -> int:
    """``s2gesture keys``: 0 when written, 2 on bad arguments or an unwritable directory."""
    args = build_parser().parse_args(argv)
    try:
        public_path, secret_path = create(args.dir, args.name, force=args.force, daemon=args.daemon)
    except bus.ClientError as exc:
        print(f"s2gesture keys: {exc}", file=sys.stderr)
        return 2
    public = bus.load_server_key(str(public_path)).decode()
    print(f"public key: {public}")
    print(f"wrote {public_path} (public, share it) and {secret_path} (secret, mode 0600, keep it here)")
    if args.daemon:
        print(
            f"daemon: give {Path(args.dir) / 'curve__server_secret_key'} to s2gestured as a credential "
            "(LoadCredential=curve__server_secret_key:...), and every client "
            f"--curve-server-key {public_path} (or the key above)"
        )
    else:
        print(
            f"client: add the public key above to the daemon's curve.client_public_keys, then pass "
            f"--curve-keys {secret_path} and --curve-server-key <the daemon's .key file or key>"
        )
    return 0
