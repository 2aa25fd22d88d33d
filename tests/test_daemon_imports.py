"""The daemon's service modules stay on the edge side of the layering: no torch, no toolkit, no clients."""

from __future__ import annotations

import subprocess
import sys

import pytest

FORBIDDEN = ("torch", "snntorch", "brevitas", "tonic", "s2gesture.models", "s2gesture.clients")


@pytest.mark.parametrize("module", ["s2gesture.daemon.main", "s2gesture.daemon.service", "s2gesture.daemon.metrics"])
def test_service_modules_load_no_training_or_client_code(module: str) -> None:
    """Importing the service (and resolving the bundled model's path) loads none of the forbidden packages."""
    probe = (
        f"import {module}, sys\n"
        "from s2gesture.daemon.service import default_model_path\n"
        "default_model_path()\n"
        "print(' '.join(sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    loaded = set(out.stdout.split())
    bad = sorted(m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))
    assert not bad, f"{module} loaded {bad}"
