"""NIR node builders shared by the toolkit's exporter, the example graphs and the test models."""

from __future__ import annotations

from typing import Any

import numpy as np


def chip_tau(beta: np.ndarray | float, dt: float) -> np.ndarray:
    """float32 ``tau`` per value of ``beta`` such that the chip's FORWARD ``1 - dt/tau`` is exactly ``float32(beta)``.

    ``dt / (1 - beta)`` rounded to float32 almost always round-trips; where it does not, the neighbouring
    float32 values are tried, so that a model's decay on the chip is the decay it was trained with, bit for bit.
    """
    b32 = np.atleast_1d(np.asarray(beta, dtype=np.float32))
    tau = np.asarray(dt / (1.0 - b32.astype(np.float64)), dtype=np.float32)
    for i in np.flatnonzero((1 - dt / tau) != b32):
        up = down = tau[i]
        for _ in range(8):
            up, down = np.nextafter(up, np.float32(np.inf)), np.nextafter(down, np.float32(0))
            hits = [c for c in (up, down) if np.float32(1) - np.float32(dt) / c == b32[i]]
            if hits:
                tau[i] = hits[0]
                break
        else:
            msg = f"no float32 tau gives the chip's decay 1 - dt/tau == {b32[i]!r} at dt {dt}; pick another beta"
            raise ValueError(msg)
    return tau.reshape(np.shape(beta))


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
    tau = np.broadcast_to(chip_tau(per_channel, dt), shape).astype(np.float32)
    return nir.LIF(
        tau=tau,
        r=(tau / dt).astype(np.float32),
        v_leak=np.zeros(shape, dtype=np.float32),
        v_threshold=np.full(shape, threshold, dtype=np.float32),
        v_reset=np.zeros(shape, dtype=np.float32),
    )
