"""The plain per-tick model of the chip (SPINNAKER2.md section 5), written to be read against the spec.

Every tick, every population: integer synaptic input from the spikes its sources emitted
``1 + conn_delay`` ticks earlier (split by weight sign), then the neuron model's pure ``step``
(neurons.py: e.g. LIF ``v = alpha_decay*v + in + i_offset`` in float32, spike on ``v > threshold``,
reset in the same tick); record the post-reset voltage.
The fast emulator (emulator.py) must agree with this bit for bit; it is slow on purpose-free code.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .api import RunResult
from .base import TranslatedBackend
from .neurons import F32, SynapticInput, fma_f32
from .translate import ChipNetwork, Projection

__all__ = ["ReferenceBackend", "conv2d_int", "fma_f32", "run_network", "sumpool", "synaptic_input"]


def sumpool(x: np.ndarray, pool: tuple[int, int]) -> np.ndarray:
    """Integer sum pooling of a (C, H, W) array, kernel == stride, rows/columns that do not fill a window dropped."""
    c, h, w = x.shape
    ph, pw = pool
    ho, wo = h // ph, w // pw
    return np.asarray(x[:, : ho * ph, : wo * pw].reshape(c, ho, ph, wo, pw).sum(axis=(2, 4)))


def conv2d_int(x: np.ndarray, kernel: np.ndarray, stride: tuple[int, int], padding: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """Integer 2-D cross-correlation: x (C_in, H, W) int64, kernel (C_in, C_out, kH, kW) -> (C_out, H_out, W_out)."""
    c_in, h, w = x.shape
    _, c_out, kh, kw = kernel.shape
    ho, wo = out_hw
    padded = np.zeros((c_in, h + 2 * padding[0] + kh, w + 2 * padding[1] + kw), dtype=np.int64)
    padded[:, padding[0] : padding[0] + h, padding[1] : padding[1] + w] = x
    out = np.zeros((c_out, ho, wo), dtype=np.int64)
    k64 = kernel.astype(np.int64)
    for ky in range(kh):
        for kx in range(kw):
            patch = padded[:, ky : ky + stride[0] * ho : stride[0], kx : kx + stride[1] * wo : stride[1]]
            out += np.einsum("chw,cd->dhw", patch, k64[:, :, ky, kx])
    return out


def synaptic_input(proj: Projection, spikes: np.ndarray, sign: int) -> np.ndarray:
    """Integer input of ``proj``'s targets from one tick of source spikes, over weights of one sign (+1 or -1)."""
    weight = np.maximum(sign * proj.weight.astype(np.int64), 0)
    x = spikes.astype(np.int64)
    if proj.pool != (1, 1):
        x = sumpool(x.reshape(proj.src_shape), proj.pool)
    if proj.kind == "conv":
        x = x.reshape(proj.pooled_shape)
        _, ho, wo = proj.out_shape
        return conv2d_int(x, weight, proj.stride, proj.padding, (ho, wo)).ravel()
    return x.ravel() @ weight


def run_network(net: ChipNetwork, spikes: np.ndarray, record: tuple[str, ...]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
    """Run ``spikes [T, *input_shape]`` plus the drain ticks; returns (spikes by population, voltages, ticks)."""
    opts = net.options
    T = spikes.shape[0]
    ticks = T + net.latency_ticks
    delay = 1 + int(opts.conn_delay)
    history = {name: np.zeros((ticks, pop.n), dtype=np.uint8) for name, pop in net.populations.items()}
    history[net.input_name][:T] = spikes.reshape(T, -1)
    neurons = [p for p in net.populations.values() if p.neuron is not None]
    params = {p.name: p.neuron.params(p, opts) for p in neurons if p.neuron is not None}
    state = {p.name: p.neuron.init_state(p.n) for p in neurons if p.neuron is not None}
    voltages = {p.name: np.zeros((ticks, p.n), dtype=F32) for p in neurons} if "v" in record else {}
    incoming = {p.name: net.incoming(p.name) for p in neurons}
    for t in range(ticks):
        for pop in neurons:
            exc = np.zeros(pop.n, dtype=np.int64)
            inh = np.zeros(pop.n, dtype=np.int64)
            if t - delay >= 0:
                for proj in incoming[pop.name]:
                    src_spikes = history[proj.source][t - delay]
                    exc += synaptic_input(proj, src_spikes, +1)
                    inh += synaptic_input(proj, src_spikes, -1)
            step = pop.neuron.step  # type: ignore[union-attr]
            history[pop.name][t], state[pop.name] = step(SynapticInput(exc, inh), state[pop.name], params[pop.name])
            if voltages:
                voltages[pop.name][t] = state[pop.name].v
    out_spikes = {p.name: history[p.name] for p in neurons}
    return out_spikes, voltages, ticks


class ReferenceBackend(TranslatedBackend):
    """The per-tick reference model behind the Backend interface (slow; for tests and spot checks)."""

    name = "reference"

    def __init__(self, **options: Any) -> None:
        super().__init__(options)

    def load(self, graph: Any) -> Any:
        """Translate and map ``graph``; returns its MappingReport."""
        return self._translate(graph)

    def _run(self, net: ChipNetwork, spikes: np.ndarray, record: tuple[str, ...]) -> RunResult:
        all_spikes, voltages, ticks = run_network(net, spikes, record)
        out = np.concatenate([all_spikes[n] for n in net.output_names], axis=1)
        return RunResult(out, all_spikes if "spikes" in record else {}, voltages, ticks)
