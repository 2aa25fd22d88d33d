"""The plain per-tick model of the chip (SPINNAKER2.md section 5), written to be read against the spec.

Every tick, every population: integer synaptic input from the spikes its sources emitted
``1 + conn_delay`` ticks earlier, converted once to float32; ``v = alpha_decay*v + in + i_offset`` in
float32; spike on ``v > threshold``; reset in the same tick; record the post-reset voltage.
The fast emulator (emulator.py) must agree with this bit for bit; it is slow on purpose-free code.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import TranslatedBackend
from .translate import ChipNetwork, Population, Projection

F32 = np.float32


def fma_f32(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Correctly rounded float32 ``a*b + c`` (one rounding), for float32 arrays.

    ``a*b`` is exact in float64 (24+24 bits); the sum is rounded to odd in float64 (TwoSum gives the
    exact error), and round-to-odd at 53 bits followed by rounding to 24 bits is a correct rounding.
    """
    p = a.astype(np.float64) * b.astype(np.float64)
    c64 = c.astype(np.float64)
    s = p + c64
    bb = s - p
    err = (p - (s - bb)) + (c64 - bb)
    bits = s.view(np.int64).copy()
    fix = (err != 0) & ((bits & 1) == 0)
    toward_bigger = (s > 0) == (err > 0)
    bits[fix & toward_bigger] += 1
    bits[fix & ~toward_bigger] -= 1
    return bits.view(np.float64).astype(F32)


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


def lif_step(pop: Population, v: np.ndarray, current: np.ndarray, opts: Any) -> tuple[np.ndarray, np.ndarray]:
    """One tick of one population: decay, add input and offset, fire, reset; returns (spikes, v after reset)."""
    assert pop.alpha_decay is not None and pop.threshold is not None and pop.i_offset is not None
    if opts.fma:
        v = fma_f32(pop.alpha_decay, v, current)
    else:
        v = pop.alpha_decay * v + current
    v = v + pop.i_offset
    fired = v > pop.threshold if opts.threshold_op == ">" else v >= pop.threshold
    if opts.reset == "ZERO":
        v = np.where(fired, F32(0), v)
    else:
        v = np.where(fired, v - pop.threshold, v)
    return fired.astype(np.uint8), v


def decay_add(decay: np.ndarray, x: np.ndarray, add: np.ndarray, fma: bool) -> np.ndarray:
    """float32 ``decay*x + add``, fused or not."""
    return fma_f32(decay, x, add) if fma else decay * x + add


def run_network(net: ChipNetwork, spikes: np.ndarray, record: tuple[str, ...]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
    """Run ``spikes [T, *input_shape]`` plus the drain ticks; returns (spikes by population, voltages, ticks)."""
    opts = net.options
    T = spikes.shape[0]
    ticks = T + net.latency_ticks
    delay = 1 + int(opts.conn_delay)
    history = {name: np.zeros((ticks, pop.n), dtype=np.uint8) for name, pop in net.populations.items()}
    history[net.input_name][:T] = spikes.reshape(T, -1)
    neurons = [p for p in net.populations.values() if p.model != "spike_list"]
    v = {p.name: np.zeros(p.n, dtype=F32) for p in neurons}
    i_exc = {p.name: np.zeros(p.n, dtype=F32) for p in neurons}
    i_inh = {p.name: np.zeros(p.n, dtype=F32) for p in neurons}
    voltages = {p.name: np.zeros((ticks, p.n), dtype=F32) for p in neurons} if "v" in record else {}
    incoming = {p.name: net.incoming(p.name) for p in neurons}
    for t in range(ticks):
        for pop in neurons:
            pos = np.zeros(pop.n, dtype=np.int64)
            neg = np.zeros(pop.n, dtype=np.int64)
            if t - delay >= 0:
                for proj in incoming[pop.name]:
                    src_spikes = history[proj.source][t - delay]
                    pos += synaptic_input(proj, src_spikes, +1)
                    neg += synaptic_input(proj, src_spikes, -1)
            if pop.model == "lif_curr_exp_no_delay":
                old = i_exc[pop.name] - i_inh[pop.name]
                i_exc[pop.name] = decay_add(pop.exc_decay, i_exc[pop.name], pos.astype(F32), opts.fma)  # type: ignore[arg-type]
                i_inh[pop.name] = decay_add(pop.inh_decay, i_inh[pop.name], neg.astype(F32), opts.fma)  # type: ignore[arg-type]
                current = i_exc[pop.name] - i_inh[pop.name] if opts.cuba_current == "updated" else old
            else:
                current = (pos - neg).astype(F32)
            fired, v[pop.name] = lif_step(pop, v[pop.name], current, opts)
            history[pop.name][t] = fired
            if voltages:
                voltages[pop.name][t] = v[pop.name]
    out_spikes = {p.name: history[p.name] for p in neurons}
    return out_spikes, voltages, ticks


class ReferenceBackend(TranslatedBackend):
    """The per-tick reference model behind the Backend interface (slow; for tests and spot checks)."""

    name = "reference"

    def __init__(self, **options: Any) -> None:
        from . import split_options

        self.options, own = split_options(options, {"check_memory": True}, self.name)
        #: refuse chunks that overflow a PE's SRAM, as the chip would (False: emulate anyway, e.g. to record v everywhere)
        self.check_memory = bool(own["check_memory"])
        super().__init__()

    def load(self, graph: Any) -> Any:
        """Translate and map ``graph``; returns its MappingReport."""
        return self._translate(graph)

    def run(self, spikes: np.ndarray, record: tuple[str, ...] = ("spikes",)) -> Any:
        from . import RunResult
        from .emulator import check_chunk

        net = self._loaded()
        spikes = check_chunk(net, spikes, record)
        if self.check_memory:
            self._mapping().check_chunk(spikes.shape[0] + net.latency_ticks, tuple(record), spikes)
        all_spikes, voltages, ticks = run_network(net, spikes, tuple(record))
        out = np.concatenate([all_spikes[n] for n in net.output_names], axis=1)
        return RunResult(out, all_spikes if "spikes" in record else {}, voltages, ticks)

    def close(self) -> None:
        self.net = None
