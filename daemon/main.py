"""``s2gestured``: the edge daemon's command line (``main(argv=None) -> int``).

``s2gestured [OPTIONS]`` serves until SIGTERM/SIGINT (exit 0); ``s2gestured check-config [OPTIONS]``
validates the configuration and the model card without starting (exit 0, or 78 with every problem).
Flags override ``S2G_*`` environment variables, which override the TOML file (``--config``).
"""

from __future__ import annotations

import argparse
import faulthandler
import signal
import sys
import tomllib
from typing import Any, NoReturn

from . import __version__
from .errors import ConfigError, ModelCardError, S2GestureError

EX_OK = 0
EX_SOFTWARE = 70
EX_UNAVAILABLE = 69
EX_CONFIG = 78

#: flag dest -> (section, key) of the config it sets
FLAGS: dict[str, tuple[str, str]] = {
    "mode": ("input", "mode"),
    "input_bind": ("input", "bind"),
    "input_connect": ("input", "connect"),
    "output_bind": ("output", "bind"),
    "output_connect": ("output", "connect"),
    "model": ("model", "path"),
    "card": ("model", "card"),
    "backend": ("backend", "name"),
    "workers": ("backend", "workers"),
    "status_interval": ("output", "status_interval_s"),
    "log_level": ("log", "level"),
    "log_format": ("log", "format"),
    "metrics_port": ("metrics", "port"),
}


class _ConfigArgumentParser(argparse.ArgumentParser):
    """Bad flags are bad configuration: exit 78 (EX_CONFIG), so systemd does not restart-loop on them."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EX_CONFIG, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also the ``--help`` text)."""
    parser = _ConfigArgumentParser(
        prog="s2gestured",
        description="DVS gesture recognition daemon: events in over ZeroMQ, predictions and gestures out.",
        epilog="Every setting is documented in systemd/s2gestured.toml; env vars are S2G_SECTION__KEY.",
    )
    parser.add_argument(
        "command", nargs="?", choices=("run", "check-config"), default="run",
        help="run (default) or check-config: validate the configuration and the model card, then exit",
    )
    parser.add_argument("--version", action="version", version=f"s2gestured {__version__}")
    parser.add_argument("--config", help="TOML config file (default /etc/s2gesture/s2gestured.toml, if present)")
    parser.add_argument("--mode", choices=("live", "lossless"), help="live: SUB, drop the oldest; lossless: PULL")
    parser.add_argument("--input-bind", action="append", metavar="ENDPOINT", help="input endpoint to bind (repeatable)")
    parser.add_argument("--input-connect", action="append", metavar="ENDPOINT", help="input endpoint to connect")
    parser.add_argument("--output-bind", action="append", metavar="ENDPOINT", help="output endpoint to bind")
    parser.add_argument("--output-connect", action="append", metavar="ENDPOINT", help="output endpoint to connect")
    parser.add_argument("--model", metavar="PATH", help="model .nir file (default: the bundled pretrained model)")
    parser.add_argument("--card", metavar="PATH", help="JSON model card for a graph without one")
    parser.add_argument("--backend", help="backend name: emulator (default) or spinnaker2")
    parser.add_argument(
        "--workers", type=_workers, metavar="N",
        help="backend instances running windows of different streams at once (default: the number of cores)",
    )
    parser.add_argument("--status-interval", type=float, metavar="S", help="seconds between status heartbeats")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    parser.add_argument("--log-format", choices=("auto", "json", "console"))
    parser.add_argument("--metrics-port", type=int, help="enable Prometheus metrics on 127.0.0.1:PORT")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="any setting, e.g. --set chunking.stride_ticks=50 (VALUE is a TOML value or a bare string)",
    )
    return parser


def _workers(text: str) -> int:
    """``--workers N``: a whole number >= 1 (argparse reports the message with the flag's name)."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1 or str(n) != text.strip().lstrip("+"):
        msg = f"expected a whole number of backend workers >= 1 (e.g. --workers 2), found {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return n


def _toml_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The CLI layer of the configuration as a nested dict."""
    out: dict[str, dict[str, Any]] = {}
    for dest, (section, key) in FLAGS.items():
        value = getattr(args, dest)
        if value is not None:
            out.setdefault(section, {})[key] = value
    if args.metrics_port is not None:
        out.setdefault("metrics", {})["enabled"] = True
    for item in args.set:
        name, sep, raw = item.partition("=")
        parts = name.strip().split(".")
        if not sep or len(parts) != 2 or not all(parts):
            msg = f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. --set chunking.stride_ticks=50"
            raise ConfigError(msg)
        out.setdefault(parts[0], {})[parts[1]] = _toml_value(raw.strip())
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the daemon (or ``check-config``); returns the process exit code."""
    args = build_parser().parse_args(argv)
    from .config import load_config

    def resolve() -> Any:
        return load_config(args.config, overrides_from_args(args))

    try:
        config = resolve()
    except ConfigError as exc:
        print(f"s2gestured: {exc}", file=sys.stderr)
        return EX_CONFIG
    if args.command == "check-config":
        return _check_config(config)

    from .logs import get_logger, setup_logging
    from .service import Service, SocketBindError

    setup_logging(config.log.level, config.log.format)
    # SIGUSR1 dumps every thread's stack from C, so it works even when the loop is stuck in a backend run
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    log = get_logger()
    try:
        return Service(config, resolve).run()
    except (ConfigError, ModelCardError) as exc:
        log.error("cannot start", error=str(exc))
        return EX_CONFIG
    except SocketBindError as exc:
        log.error("cannot start", error=str(exc))
        return EX_UNAVAILABLE
    except S2GestureError as exc:
        log.error("failed", error=f"{type(exc).__name__}: {exc}")
        return EX_SOFTWARE


def _check_config(config: Any) -> int:
    """What start will do short of binding: load the model, create the backend, translate and map the graph."""
    from .pipeline import check_model, load_model

    try:
        model = load_model(config)
        backend = check_model(config, model)
    except (ConfigError, ModelCardError) as exc:
        print(f"s2gestured: invalid configuration: model: {exc}", file=sys.stderr)
        return EX_CONFIG
    except S2GestureError as exc:  # e.g. a board that does not answer: start would serve degraded and retry
        print(f"s2gestured: configuration OK, but backend {config.backend.name} is not available now: {exc}",
              file=sys.stderr)
        return EX_UNAVAILABLE
    try:
        fit = f"longest run {backend.max_ticks} ticks, input {tuple(backend.input_shape)}, {backend.n_outputs} classes"
    finally:
        backend.close()
    print(
        f"configuration OK: {config.input.mode} input {list(config.input.bind + config.input.connect)}, "
        f"output {list(config.output.bind + config.output.connect)}, backend {config.backend.name}, "
        f"model {model.card.name} ({model.hash}) from {model.path}; {fit}"
    )
    return EX_OK


if __name__ == "__main__":
    raise SystemExit(main())
