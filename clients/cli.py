"""``s2gesture``: one command line for the toolkit and the clients.

Subcommands are looked up in a registry and imported only when run, so ``s2gesture --help`` is fast
and needs no torch. Each subcommand module exposes ``cli(argv: list[str] | None) -> int`` that builds
its own ``argparse`` parser (``prog="s2gesture NAME"``) and keeps heavy imports inside functions.
"""

from __future__ import annotations

import importlib
import sys
from typing import NamedTuple


class Command(NamedTuple):
    target: str  # "package.module:function"
    summary: str
    group: str


COMMANDS: dict[str, Command] = {
    "synth": Command("s2gesture.models.synth:cli", "generate synthetic DVS gesture recordings (tonic layout, AEDAT 3.1)", "data"),
    "show": Command("s2gesture.models.show:cli", "render a recording as a PNG strip or GIF of event frames", "data"),
    "train": Command("s2gesture.models.train:cli", "train the P-SNN with snnTorch (float or chip semantics)", "model"),
    "quantize": Command("s2gesture.models.quantize:cli", "quantize a trained model to int8 (PTQ percentile or QAT)", "model"),
    "export": Command("s2gesture.models.export:cli", "export a quantized model to NIR with its model card", "model"),
    "evaluate": Command("s2gesture.models.evaluate:cli", "float vs int8 vs emulated-chip accuracy, side by side", "model"),
    "map": Command("s2gesture.models.mapping:cli", "map a NIR model onto SpiNNaker2 PEs and SRAM (table + PNG)", "model"),
    "reproduce": Command("s2gesture.models.reproduce:cli", "the paper's pipeline on DVS128 Gesture, one resumable command + report", "model"),
    "finetune": Command("s2gesture.models.finetune:cli", "fine-tune a model on your own takes (new classes too) and export it", "model"),
    "replay": Command("s2gesture.clients.replay:cli", "publish recordings to a daemon in protocol v1", "clients"),
    "camera": Command("s2gesture.clients.camera:cli", "bridge a live camera (DV, iniVation USB, AEStream UDP) to a daemon", "clients"),
    "record": Command("s2gesture.clients.record:cli", "record your own gesture takes from a camera (tonic layout + previews)", "clients"),
    "listen": Command("s2gesture.clients.listen:cli", "print predictions, gestures and status from a daemon", "clients"),
    "status": Command("s2gesture.clients.status:cli", "print a daemon's status; non-zero exit when none answers", "clients"),
    "robot": Command("s2gesture.clients.robot:cli", "example robot controller: gestures -> commands", "clients"),
    "eval": Command("s2gesture.clients.eval:cli", "accuracy and latency of a live daemon on a labelled dataset", "clients"),
    "view": Command("s2gesture.clients.view:cli", "live web page: events, scores, decisions and daemon status", "clients"),
    "demo": Command("s2gesture.clients.demo:cli", "daemon on the emulator + replayed synthetic gestures, printed", "clients"),
    "calibrate": Command("s2gesture.clients.calibrate:cli", "pick a camera's sensor mapping that keeps people as large as in training", "clients"),
    "keys": Command("s2gesture.clients.keys:cli", "create a CURVE keypair for a remote daemon or client", "clients"),
    "ros2": Command("s2gesture.clients.ros2:cli", "publish gestures and status into ROS 2 over DDS (Cyclone DDS)", "clients"),
    "mqtt": Command("s2gesture.clients.mqtt:cli", "forward gestures to an MQTT broker as JSON (Home Assistant style)", "clients"),
}

GROUPS = {"data": "Data", "model": "Model toolkit", "clients": "Clients"}


def usage() -> str:
    """The top-level help text."""
    lines = [
        "usage: s2gesture COMMAND [ARGS...]",
        "",
        "DVS gesture recognition on SpiNNaker2: data, models and clients of the s2gestured daemon.",
        "Run `s2gesture COMMAND --help` for a command's options. The daemon itself is `s2gestured`.",
    ]
    for group, title in GROUPS.items():
        lines += ["", f"{title}:"]
        lines += [f"  {name:<10} {cmd.summary}" for name, cmd in COMMANDS.items() if cmd.group == group]
    return "\n".join(lines)


def resolve(name: str) -> object:
    """Import and return the function behind subcommand ``name``."""
    module_name, func_name = COMMANDS[name].target.split(":")
    return getattr(importlib.import_module(module_name), func_name)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``s2gesture`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if args[0] == "--version":
        from s2gesture.daemon import __version__

        print(f"s2gesture {__version__}")
        return 0
    name = args[0]
    if name not in COMMANDS:
        import difflib

        near = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        print(f"s2gesture: unknown command '{name}'{hint}; commands: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    debug = "--debug" in args[1:]
    rest = [a for a in args[1:] if a != "--debug"]
    return run_command(name, rest, debug=debug)


#: exit codes of every subcommand's failures (docs/model.md, "Exit codes"); 0 = success, and a command may
#: use 1 for "ran, but the answer is no" (e.g. `map` for a model that cannot run on the chip)
EXIT_BAD_INPUT = 2  # bad arguments or input: missing, corrupt or wrong kind of file, invalid value
EXIT_INTERNAL = 70  # an unexpected error (a bug): EX_SOFTWARE
EXIT_PIPE = 141  # stdout closed early (`| head`): what a shell reports for SIGPIPE, nothing printed
EXIT_INTERRUPTED = 130  # Ctrl-C


def run_command(name: str, argv: list[str], *, debug: bool = False) -> int:
    """Run subcommand ``name``; any error that escapes it ends as one line on stderr and an exit code.

    ``debug`` (``--debug`` anywhere on the command line) re-raises instead, so the traceback shows.
    """
    prog = f"s2gesture {name}"
    try:
        func = resolve(name)
        return int(func(argv) or 0)  # type: ignore[operator]
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_PIPE
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # the one place that turns escaping errors into one line
        if debug:
            raise
        from s2gesture.daemon.errors import S2GestureError

        if isinstance(exc, S2GestureError | OSError | ValueError):
            print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(
            f"{prog}: internal error: {type(exc).__name__}: {_one_line(exc)} "
            "(unexpected; rerun with --debug for the traceback and report it)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _one_line(exc: BaseException) -> str:
    """The exception's message on one line (an OSError without one names its file and reason)."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush raises no second BrokenPipeError."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    raise SystemExit(main())
