"""The layering rules of the architecture hold at import time."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "snntorch", "brevitas", "tonic")


def _loaded_after(code: str) -> set[str]:
    probe = code + "\nimport sys\nprint(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize(
    "module",
    ["s2gesture.daemon", "s2gesture.daemon.card", "s2gesture.daemon.testing", "s2gesture.clients.cli"],
)
def test_edge_modules_do_not_load_torch(module: str) -> None:
    """Importing an edge-runtime or client module never loads torch, snnTorch, Brevitas or tonic."""
    loaded = _loaded_after(f"import {module}")
    assert not loaded & set(HEAVY), f"{module} loaded {sorted(loaded & set(HEAVY))}"


def test_cli_help_lists_every_command_without_torch() -> None:
    """`s2gesture --help` prints every registered command and loads no training library."""
    from s2gesture.clients.cli import COMMANDS

    probe = "from s2gesture.clients.cli import main\nmain(['--help'])"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    for name in COMMANDS:
        assert f"  {name} " in out
    assert not _loaded_after("from s2gesture.clients.cli import main\nmain(['--help'])") & set(HEAVY)


def test_cli_unknown_command_suggests_the_near_miss(capsys: pytest.CaptureFixture[str]) -> None:
    """A mistyped subcommand exits 2 and names the closest real one."""
    from s2gesture.clients.cli import main

    assert main(["replya"]) == 2
    assert "did you mean 'replay'" in capsys.readouterr().err
