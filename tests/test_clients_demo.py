"""`s2gesture demo` (the README's first command) runs the daemon, replays synthetic gestures and stops cleanly."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from s2gesture.clients import bus, demo
from s2gesture.daemon.testing import write_tiny_model

pytestmark = pytest.mark.timeout(120)


def test_demo_prints_each_decision_and_the_accuracy_then_stops_the_daemon(tmp_path: Path) -> None:
    """Two short recordings and a scene of nobody gesturing: a line per decision (the scene's true label is
    'none'), the accuracy, and a clean daemon exit (code 0)."""
    model = tmp_path / "tiny.nir"
    write_tiny_model(model, seed=3)
    out = io.StringIO()
    args = demo.build_parser().parse_args(["--count", "2", "--duration-s", "1.0", "--seed", "4", "--model", str(model)])
    assert demo.run(args, out=out) == 0
    text = out.getvalue()
    rows = [line for line in text.splitlines() if line.strip()[:2] in ("1 ", "2 ")]
    assert len(rows) == 2 and all(line.rstrip().endswith(("yes", "no")) for line in rows)
    scene = [line for line in text.splitlines() if line.strip().startswith("3 ")]
    assert len(scene) == 1 and scene[0].split()[1] == "none"
    assert "accuracy:" in text
    assert "s2gestured stopped with exit code 0" in text


def test_demo_refuses_a_missing_model(tmp_path: Path) -> None:
    """--model pointing nowhere is an error naming the path, raised before anything starts."""
    with pytest.raises(bus.ClientError, match="does not exist"):
        demo.choose_model(tmp_path, str(tmp_path / "nope.nir"))
