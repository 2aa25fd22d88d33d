"""Testing helpers shipped with the package: small, valid quantized NIR models with cards.

They build real NIR graphs (the same node types the toolkit exports) so that tests of the daemon, the
clients and the backends run on real model files without training anything.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .card import ConversionSpec, InputSpec, Model, ModelCard, write_model
from .nirnodes import leaky_lif


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
