"""NIR node builders shared by the toolkit's exporter, the example graphs and the test models."""

from __future__ import annotations

from typing import Any

import numpy as np


def _neighbours(x: np.float32, n: int) -> list[np.float32]:
    """``x`` and its ``n`` float32 neighbours on each side, nearest first."""
    out, up, down = [x], x, x
    for _ in range(n):
        up, down = np.nextafter(up, np.float32(np.inf)), np.nextafter(down, np.float32(0))
        out += [up, down]
    return out


def chip_tau_r(beta: np.ndarray | float, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """float32 ``tau`` and ``r`` per value of ``beta`` that the chip's FORWARD conversion turns into exactly
    ``alpha_decay = float32(beta)`` and ``r_factor = (dt/tau)*r = 1``, so thresholds and weights reach it unscaled.

    ``dt / (1 - beta)`` and ``tau / dt`` rounded to float32 usually do both; where they do not (per-channel
    time constants make many values), neighbouring float32 values are tried: a model's decay and threshold on
    the chip are the ones it was trained with, bit for bit.
    """
    b64 = np.atleast_1d(np.asarray(beta, dtype=np.float64)).reshape(-1)
    b32 = b64.astype(np.float32)
    tau = np.asarray(dt / (1.0 - b64), dtype=np.float32)  # snnTorch's export expression: the first candidate
    r = (tau / np.float32(dt)).astype(np.float32)
    one, fdt = np.float32(1), np.float32(dt)

    def exact(t: np.float32, rr: np.float32) -> bool:
        return bool(one - fdt / t == b32[i]) and bool((fdt / t) * rr == one)

    for i in range(b32.size):
        if exact(tau[i], r[i]):
            continue
        found = next(((t, rr) for t in _neighbours(tau[i], 64) if one - fdt / t == b32[i]
                      for rr in _neighbours(np.float32(one / (fdt / t)), 4) if exact(t, rr)), None)  # fmt: skip
        if found is None:
            msg = f"no float32 tau, r give the chip's decay {b32[i]!r} with r_factor 1 at dt {dt}; pick another beta"
            raise ValueError(msg)
        tau[i], r[i] = found
    shape = np.shape(beta)
    return tau.reshape(shape), r.reshape(shape)


def exportable_betas(beta: np.ndarray, dt: float = 1e-4) -> np.ndarray:
    """float32 ``beta`` values, each moved by the fewest ulps needed for :func:`chip_tau_r` to convert it exactly.

    Short time constants (under ~5 ticks) have few float32 ``tau`` with the exact decay, and for some of those
    no ``r`` makes ``r_factor`` exactly 1; a neighbouring decay (a relative change of ~1e-7) always has one.
    """
    out = np.asarray(beta, dtype=np.float32).copy().reshape(-1)
    for i, b in enumerate(out):
        for cand in _neighbours(np.float32(b), 256):
            try:
                chip_tau_r(np.array([cand]), dt)
            except ValueError:
                continue
            out[i] = cand
            break
        else:
            msg = f"no float32 decay near {b!r} converts exactly at dt {dt}; pick another time constant"
            raise ValueError(msg)
    return out.reshape(np.shape(beta))


def leaky_lif(shape: tuple[int, ...], beta: float | np.ndarray, threshold: float, dt: float) -> Any:
    """A ``nir.LIF`` for an snnTorch ``Leaky(beta)`` with zero reset potential, in snnTorch's export convention.

    ``tau = dt / (1 - beta)`` and ``r = tau / dt`` (``dt`` in seconds), so that with the chip converter's
    FORWARD integrator ``alpha_decay = 1 - dt/tau = beta`` and ``r_factor = dt/tau * r = 1``: thresholds
    and weights reach the chip unscaled (SPINNAKER2.md section 4). ``beta`` is one value or one per channel
    (the first axis of ``shape``: a convolution's feature map, or each neuron of a dense layer).
    """
    import nir

    per_channel = np.asarray(beta, dtype=np.float64)
    if per_channel.ndim:
        if per_channel.shape != (shape[0],):
            msg = f"leaky_lif: {per_channel.shape[0]} betas for a layer of {shape[0]} channels (shape {shape})"
            raise ValueError(msg)
        per_channel = per_channel.reshape((shape[0],) + (1,) * (len(shape) - 1))
    tau, r = chip_tau_r(per_channel, dt)
    return nir.LIF(
        tau=np.broadcast_to(tau, shape).astype(np.float32),
        r=np.broadcast_to(r, shape).astype(np.float32),
        v_leak=np.zeros(shape, dtype=np.float32),
        v_threshold=np.full(shape, threshold, dtype=np.float32),
        v_reset=np.zeros(shape, dtype=np.float32),
    )
