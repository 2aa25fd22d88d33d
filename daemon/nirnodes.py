"""NIR node builders shared by the toolkit's exporter, the example graphs and the test models."""

from __future__ import annotations

from typing import Any

import numpy as np


def leaky_lif(shape: tuple[int, ...], beta: float, threshold: float, dt: float) -> Any:
    """A ``nir.LIF`` for an snnTorch ``Leaky(beta)`` with zero reset potential, in snnTorch's export convention.

    ``tau = dt / (1 - beta)`` and ``r = tau / dt`` (``dt`` in seconds), so that with the chip converter's
    FORWARD integrator ``alpha_decay = 1 - dt/tau = beta`` and ``r_factor = dt/tau * r = 1``: thresholds
    and weights reach the chip unscaled (SPINNAKER2.md section 4).
    """
    import nir

    tau = np.full(shape, dt / (1.0 - beta), dtype=np.float32)
    return nir.LIF(
        tau=tau,
        r=(tau / dt).astype(np.float32),
        v_leak=np.zeros(shape, dtype=np.float32),
        v_threshold=np.full(shape, threshold, dtype=np.float32),
        v_reset=np.zeros(shape, dtype=np.float32),
    )
