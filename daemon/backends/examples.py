"""Example NIR graphs with the shapes of published networks (random int8-valued weights, seeded).

``paper_gesture_graph``: the DVS Gesture P-SNN of MODEL.md (2x32x32 -> 3 conv LIF layers -> 256 -> 11),
weights (in the chip's weight range) and thresholds chosen so that at ~5 % input activity the hidden layers spike at a few percent
(the load a trained network puts on the chip). ``nmnist_graph``: shaped like the NIR paper's N-MNIST CNN
(IF neurons, stride-2 conv, SumPool2d, Flatten, Affine with bias, 2x34x34 input).
"""

from __future__ import annotations

import itertools

import numpy as np

from ..nirnodes import leaky_lif
from .chip import SPINNAKER2


def _ints(rng: np.random.Generator, shape: tuple[int, ...], mean: float, std: float) -> np.ndarray:
    wmax = SPINNAKER2.weight_max
    return np.clip(np.round(rng.normal(mean, std, size=shape)), -wmax, wmax).astype(np.float32)


#: firing thresholds (int8 weight units) that give a few percent activity at 5 % input
PAPER_THRESHOLDS = {"lif1": 280.0, "lif2": 520.0, "lif3": 900.0, "lif4": 1100.0, "lif5": 1000.0}


def paper_gesture_graph(seed: int = 0, *, beta: float = 0.93, dt: float = 1e-4, n_classes: int = 11) -> object:
    """The paper's P-SNN shape with trained-like int8 weights (25,504 parameters, no biases)."""
    import nir

    rng = np.random.default_rng(seed)
    th = PAPER_THRESHOLDS
    nodes = {
        "input": nir.Input(input_type={"input": np.array([2, 32, 32])}),
        "conv1": nir.Conv2d((32, 32), _ints(rng, (16, 2, 5, 5), 6, 40), 2, 1, 1, 1, np.zeros(16, np.float32)),
        "lif1": leaky_lif((16, 15, 15), beta, th["lif1"], dt),
        "conv2": nir.Conv2d((15, 15), _ints(rng, (16, 16, 3, 3), 4, 40), 1, 1, 1, 1, np.zeros(16, np.float32)),
        "lif2": leaky_lif((16, 15, 15), beta, th["lif2"], dt),
        "pool2": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "conv3": nir.Conv2d((7, 7), _ints(rng, (8, 16, 3, 3), 4, 40), 1, 1, 1, 1, np.zeros(8, np.float32)),
        "lif3": leaky_lif((8, 7, 7), beta, th["lif3"], dt),
        "pool3": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([8, 3, 3])}, start_dim=0, end_dim=-1),
        "fc1": nir.Linear(_ints(rng, (256, 72), 6, 40)),
        "lif4": leaky_lif((256,), beta, th["lif4"], dt),
        "fc2": nir.Linear(_ints(rng, (n_classes, 256), 4, 40)),
        "lif5": leaky_lif((n_classes,), beta, th["lif5"], dt),
        "output": nir.Output(output_type={"output": np.array([n_classes])}),
    }
    chain = ["input", "conv1", "lif1", "conv2", "lif2", "pool2", "conv3", "lif3", "pool3", "flat", "fc1", "lif4", "fc2", "lif5", "output"]
    return nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(chain)))


def nmnist_graph(seed: int = 0, *, dt: float = 1e-4) -> object:
    """Shaped like the NIR paper's N-MNIST CNN: 2x34x34 -> Conv(k3,s2) IF -> SumPool2 -> Conv IF -> Flatten -> Affine(+bias) IF."""
    import nir

    rng = np.random.default_rng(seed)

    def if_(shape: tuple[int, ...], threshold: float) -> object:
        return nir.IF(r=np.ones(shape, np.float32), v_threshold=np.full(shape, threshold, np.float32), v_reset=np.zeros(shape, np.float32))

    nodes = {
        "input": nir.Input(input_type={"input": np.array([2, 34, 34])}),
        "conv1": nir.Conv2d((34, 34), rng.normal(0.05, 0.3, (16, 2, 3, 3)).astype(np.float32), 2, 1, 1, 1, rng.normal(0, 0.01, 16).astype(np.float32)),
        "if1": if_((16, 17, 17), 1.0),
        "pool1": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "conv2": nir.Conv2d((8, 8), rng.normal(0.02, 0.2, (16, 16, 3, 3)).astype(np.float32), 1, 1, 1, 1, rng.normal(0, 0.01, 16).astype(np.float32)),
        "if2": if_((16, 8, 8), 1.0),
        "flat": nir.Flatten(input_type={"input": np.array([16, 8, 8])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(rng.normal(0.0, 0.1, (10, 1024)).astype(np.float32), rng.normal(0, 0.01, 10).astype(np.float32)),
        "if3": if_((10,), 1.0),
        "output": nir.Output(output_type={"output": np.array([10])}),
    }
    chain = ["input", "conv1", "if1", "pool1", "conv2", "if2", "flat", "fc", "if3", "output"]
    return nir.NIRGraph(nodes=nodes, edges=list(itertools.pairwise(chain)))
