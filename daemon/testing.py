"""Helpers shipped with the package for tests and demos: a real ``s2gestured`` child process, and small,
valid quantized NIR models with cards.

:func:`run_daemon` is how the demo and the test suite start the daemon: the real console entry point as a
child process with its log in a file, stopped with SIGTERM (SIGKILL after a deadline). The models are real
NIR graphs (the same node types the toolkit exports), so tests of the daemon, the clients and the backends
run on real model files without training anything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .card import ConversionSpec, InputSpec, Model, ModelCard, write_model
from .nirnodes import leaky_lif


def daemon_command(args: Sequence[str] = ()) -> list[str]:
    """The command line that runs this installation's ``s2gestured`` with ``args`` (in this interpreter)."""
    return [sys.executable, "-m", "s2gesture.daemon.main", *args]


@dataclass
class RunningDaemon:
    """An ``s2gestured`` child process, its endpoints and its log file."""

    proc: subprocess.Popen[bytes]
    input: str
    output: str
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the daemon's stdout and stderr."""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def stop(self, timeout_s: float = 20.0, signum: int = signal.SIGTERM) -> int | None:
        """Send ``signum`` (SIGTERM: drain, final status, exit 0) and wait; None when it had to be killed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return int(self.proc.returncode)

    def kill(self) -> None:
        """Kill the process if it still runs (cleanup after a failure)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_daemon(
    args: Sequence[str],
    *,
    input: str,
    output: str,
    log_path: str | Path,
    env: Mapping[str, str] | None = None,
    clean_env: bool = False,
) -> RunningDaemon:
    """Start ``s2gestured ARGS`` (which bind ``input`` and ``output``) with its output in ``log_path``.

    ``clean_env`` drops the caller's ``S2G_*`` variables, so a demo's own config wins over the shell's.
    """
    base = {k: v for k, v in os.environ.items() if not (clean_env and k.startswith("S2G_"))}
    log_path = Path(log_path)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(daemon_command(args), stdout=log, stderr=subprocess.STDOUT, env={**base, **(env or {})})
    return RunningDaemon(proc, input, output, log_path)


def tiny_gesture_graph(seed: int = 0, *, channels: int = 4, n_classes: int = 11, dt: float = 1e-4) -> object:
    """A small int8-valued conv SNN for 2x32x32 input and ``n_classes`` outputs (random weights, spikes readily).

    Input -> Conv2d(2->channels, k5, s2, p1) -> LIF -> SumPool2d(2) -> Flatten -> Affine -> LIF -> Output.
    """
    import nir

    rng = np.random.default_rng(seed)
    conv_w = rng.integers(-40, 80, size=(channels, 2, 5, 5)).astype(np.float32)
    n_flat = channels * 7 * 7
    fc_w = rng.integers(-60, 70, size=(n_classes, n_flat)).astype(np.float32)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([2, 32, 32])}),
        "conv1": nir.Conv2d(
            input_shape=(32, 32),
            weight=conv_w,
            stride=2,
            padding=1,
            dilation=1,
            groups=1,
            bias=np.zeros(channels, dtype=np.float32),
        ),
        "lif1": leaky_lif((channels, 15, 15), beta=0.93, threshold=300.0, dt=dt),
        "pool1": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([channels, 7, 7])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=fc_w, bias=np.zeros(n_classes, dtype=np.float32)),
        "lif_out": leaky_lif((n_classes,), beta=0.93, threshold=400.0, dt=dt),
        "output": nir.Output(output_type={"output": np.array([n_classes])}),
    }
    edges = [
        ("input", "conv1"),
        ("conv1", "lif1"),
        ("lif1", "pool1"),
        ("pool1", "flat"),
        ("flat", "fc"),
        ("fc", "lif_out"),
        ("lif_out", "output"),
    ]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def tiny_gesture_card(name: str = "tiny-test", *, n_classes: int = 11, dt: float = 1e-4) -> ModelCard:
    """A card for :func:`tiny_gesture_graph` (128x128 sensor, 1 ms ticks, 10 ms denoise)."""
    from .card import GESTURE_CLASSES

    classes = GESTURE_CLASSES if n_classes == len(GESTURE_CLASSES) else tuple(f"class {i}" for i in range(n_classes))
    return ModelCard(
        name=name,
        classes=classes,
        input=InputSpec(),
        conversion=ConversionSpec(dt=dt),
        quantization={"bits": 8, "scheme": "none", "note": "random integer weights for tests"},
        semantics={"trained_for": "none"},
    )


def write_tiny_model(path: str | Path, seed: int = 0, *, name: str = "tiny-test") -> Model:
    """Write a tiny test model (graph + card) to ``path``."""
    return write_model(path, tiny_gesture_graph(seed), tiny_gesture_card(name))
