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
    "replay": Command("s2gesture.clients.replay:cli", "publish recordings to a daemon in protocol v1", "clients"),
    "camera": Command("s2gesture.clients.camera:cli", "bridge a live camera (DV, iniVation USB, AEStream UDP) to a daemon", "clients"),
    "listen": Command("s2gesture.clients.listen:cli", "print predictions, gestures and status from a daemon", "clients"),
    "status": Command("s2gesture.clients.status:cli", "print a daemon's status; non-zero exit when none answers", "clients"),
    "robot": Command("s2gesture.clients.robot:cli", "example robot controller: gestures -> commands", "clients"),
    "eval": Command("s2gesture.clients.eval:cli", "accuracy and latency of a live daemon on a labelled dataset", "clients"),
    "view": Command("s2gesture.clients.view:cli", "live web page: events, scores, decisions and daemon status", "clients"),
    "demo": Command("s2gesture.clients.demo:cli", "daemon on the emulator + replayed synthetic gestures, printed", "clients"),
    "keys": Command("s2gesture.clients.keys:cli", "create a CURVE keypair for a remote daemon or client", "clients"),
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
    func = resolve(name)
    return int(func(args[1:]) or 0)  # type: ignore[operator]


if __name__ == "__main__":
    raise SystemExit(main())
