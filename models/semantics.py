"""Neuron semantics in torch: snnTorch's ``Leaky`` and SpiNNaker2's per-tick update, with each difference a switch.

Two ways a feed-forward LIF network can be stepped (SPINNAKER2.md sections 5-6):

- **snnTorch** (``Leaky(beta, threshold, reset_mechanism="subtract")``, default ``reset_delay=True``): a
  projection's input reaches its target in the same step; a spike at step ``t`` is subtracted at ``t+1``
  *after* the decay: ``v[t] = beta*v[t-1] + in[t] - thr*s[t-1]``, ``s[t] = v[t] > thr``.
- **chip**: every projection adds one tick of latency (a spike emitted at ``t`` arrives at ``t+1``), and the
  reset is applied in the firing tick, keeping that tick's input: ``v = beta*v + in; s = v > thr;
  v -= thr*s``, i.e. ``v[t] = beta*(v[t-1] - thr*s[t-1]) + in[t]``.

:class:`Semantics` switches the two differences separately (``latency``, ``same_tick_reset``), so the
accuracy cost of each can be measured alone, and training can use the chip's semantics. The surrogate
gradient is snnTorch's own fast sigmoid; ``tests/test_network.py`` checks :func:`lif_run` against
``snntorch.Leaky`` spike for spike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Semantics:
    """How ticks are stepped: projection latency and reset timing (SPINNAKER2.md section 6)."""

    name: str
    #: one tick of latency per projection (chip) instead of none (snnTorch feed-forward)
    latency: bool
    #: reset in the firing tick, keeping its input (chip) instead of at the next step after decay (snnTorch)
    same_tick_reset: bool


#: the named semantics; "latency" and "reset" isolate one chip difference each (the ablation).
SEMANTICS: dict[str, Semantics] = {
    "snntorch": Semantics("snntorch", latency=False, same_tick_reset=False),
    "chip": Semantics("chip", latency=True, same_tick_reset=True),
    "latency": Semantics("latency", latency=True, same_tick_reset=False),
    "reset": Semantics("reset", latency=False, same_tick_reset=True),
}


def get_semantics(name: str | Semantics) -> Semantics:
    """Look up semantics by name (``snntorch``, ``chip``, ``latency``, ``reset``)."""
    if isinstance(name, Semantics):
        return name
    if name not in SEMANTICS:
        msg = f"unknown semantics {name!r}; expected one of {sorted(SEMANTICS)}"
        raise ValueError(msg)
    return SEMANTICS[name]


def _surrogate(slope: float):  # type: ignore[no-untyped-def]
    from snntorch import surrogate

    return surrogate.fast_sigmoid(slope=slope)


def lif_run(
    cur: torch.Tensor,
    *,
    beta: float | torch.Tensor,
    threshold: torch.Tensor | float,
    same_tick_reset: bool,
    slope: float = 25.0,
) -> torch.Tensor:
    """Step a layer of subtract-reset LIF neurons over time: ``cur [T, B, ...]`` input -> spikes ``[T, B, ...]``.

    ``threshold`` may be a tensor (learnable); the reset term is detached, as in snnTorch.
    """
    spike = _surrogate(slope)
    v = torch.zeros_like(cur[0])
    s_prev = torch.zeros_like(cur[0])
    out = []
    # unbind, not cur[t]: indexing would make autograd build one full-size gradient per tick (O(T^2))
    for c in cur.unbind(0):
        if same_tick_reset:
            # chip: the reset of the previous tick was applied before this tick's decay
            v = beta * v + c
            s = spike(v - threshold)
            v = v - s.detach() * threshold
        else:
            # snnTorch reset_delay=True: the previous spike is subtracted after the decay
            v = beta * v + c - s_prev * threshold
            s = spike(v - threshold)
            s_prev = s.detach()
        out.append(s)
    return torch.stack(out)


def delay_one_tick(x: torch.Tensor) -> torch.Tensor:
    """Shift a ``[T, ...]`` spike train one tick later (zeros enter at tick 0, the last tick drops)."""
    return torch.cat([torch.zeros_like(x[:1]), x[:-1]], dim=0)
