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

On the CPU :func:`lif_run` steps the neurons in a compiled kernel (numba) with a hand-written backward pass
instead of one autograd node per operation and tick: the same float32 operations in the same order, so the
same spikes; with channels-last convolutions a training step is about 2x faster (measured beside the autograd
loop in one run: ``benchmarks/results/training.md``). The autograd loop
(:func:`lif_run_autograd`) stays as the reference the tests compare it with and as the path for a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
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


#: step LIF layers in the compiled kernel and feed convolutions channels-last on the CPU (False: plain autograd
#: operations, the previous way; benchmarks/bench_training.py measures both in one run)
FAST_CPU_PATH = True


def lif_run(
    cur: torch.Tensor,
    *,
    beta: float | torch.Tensor,
    threshold: torch.Tensor | float,
    same_tick_reset: bool,
    slope: float = 25.0,
    input_delay: bool = False,
) -> torch.Tensor:
    """Step a layer of subtract-reset LIF neurons over time: ``cur [T, B, ...]`` input -> spikes ``[T, B, ...]``.

    ``threshold`` may be a tensor (learnable); the reset term is detached, as in snnTorch. ``beta`` is a
    float or a tensor that broadcasts over one tick's ``[B, ...]`` (per channel); it is never learned.
    ``input_delay``: the input arrives one tick late (the chip's projection latency; the last tick's input
    is dropped), as ``lif_run(delay_one_tick(cur))`` but without the copy.
    """
    learned_beta = isinstance(beta, torch.Tensor) and beta.requires_grad
    fast = FAST_CPU_PATH and cur.device.type == "cpu" and cur.dtype == torch.float32
    if not fast or learned_beta or cur.dim() < 2:
        if input_delay:
            cur = delay_one_tick(cur)
        return lif_run_autograd(cur, beta=beta, threshold=threshold, same_tick_reset=same_tick_reset, slope=slope)
    # the kernel steps neurons in memory order: a channels-last convolution output is read as it lies (no
    # copy) and the spikes come back in the same layout, which is what the next convolution wants
    order = [0, *sorted(range(1, cur.dim()), key=lambda d: (-cur.stride(d), d))]
    if isinstance(beta, torch.Tensor):
        full = beta.detach().to(torch.float32).expand(cur.shape[1:]).unsqueeze(0)
        beta_flat = full.permute(order).contiguous().reshape(-1).numpy()
    else:
        beta_flat = np.full(int(np.prod(cur.shape[1:])), beta, dtype=np.float32)
    lying = cur.permute(order)
    out: torch.Tensor = _FusedLIF.apply(lying, threshold, beta_flat, same_tick_reset, slope, int(input_delay))
    return out.permute([order.index(d) for d in range(cur.dim())])


@numba.njit(cache=True, nogil=True)  # type: ignore[misc]
def _lif_forward(
    cur: np.ndarray, beta: np.ndarray, thr: np.float32, same_tick_reset: bool, delay: int
) -> tuple[np.ndarray, np.ndarray]:
    """Spikes ``[T, N]`` and ``v - thr`` at each tick (the surrogate's argument), float32 throughout.

    Each line is the autograd loop's expression in its order of operations, so the spikes are identical.
    Tick ``t`` reads input ``t - delay`` (zero before the first).
    """
    n_ticks, n = cur.shape
    spikes = np.empty_like(cur)
    u = np.empty_like(cur)
    v = np.zeros(n, dtype=np.float32)
    s_prev = np.zeros(n, dtype=np.float32)
    zero = np.float32(0.0)
    one = np.float32(1.0)
    for t in range(n_ticks):
        src = t - delay
        for i in range(n):
            c = cur[src, i] if src >= 0 else zero
            if same_tick_reset:
                x = beta[i] * v[i] + c
                d = x - thr
                s = one if d > zero else zero
                v[i] = x - s * thr
            else:
                x = beta[i] * v[i] + c - s_prev[i] * thr
                d = x - thr
                s = one if d > zero else zero
                v[i] = x
                s_prev[i] = s
            u[t, i] = d
            spikes[t, i] = s
    return spikes, u


@numba.njit(cache=True, nogil=True)  # type: ignore[misc]
def _lif_backward(
    g_out: np.ndarray, u: np.ndarray, spikes: np.ndarray, beta: np.ndarray, slope: np.float32,
    same_tick_reset: bool, delay: int,
) -> tuple[np.ndarray, float]:
    """Gradients of the input ``[T, N]`` and of the threshold (a sum), from the output's gradient.

    The spike's gradient is snnTorch's fast sigmoid, ``g / (slope*|v - thr| + 1)^2``; the reset is detached,
    so the membrane's gradient runs back through the decay only: ``dv[t] = ds[t] + beta * dv[t+1]``. The
    threshold enters every spike (``-ds``) and every reset (``-s[t]`` times the gradient of what the next
    tick starts from: ``beta * dv[t+1]`` after a same-tick reset, ``dv[t+1]`` after snnTorch's delayed one).
    With an input ``delay``, input tick ``t - delay`` gets tick ``t``'s gradient (the last ``delay`` get none).
    """
    n_ticks, n = g_out.shape
    g = np.zeros_like(g_out)
    carry = np.zeros(n, dtype=np.float32)
    one = np.float32(1.0)
    g_thr = 0.0
    for t in range(n_ticks - 1, -1, -1):
        for i in range(n):
            a = slope * abs(u[t, i]) + one
            ds = g_out[t, i] / (a * a)
            nxt = carry[i]
            g_thr -= ds
            if t < n_ticks - 1:
                g_thr -= spikes[t, i] * (beta[i] * nxt if same_tick_reset else nxt)
            carry[i] = ds + beta[i] * nxt
            if t >= delay:
                g[t - delay, i] = carry[i]
    return g, g_thr


class _FusedLIF(torch.autograd.Function):
    """Autograd wrapper of the two kernels: one node per layer instead of several per tick."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, cur: torch.Tensor, threshold: torch.Tensor | float, beta_flat: np.ndarray,
        same_tick_reset: bool, slope: float, delay: int,
    ) -> torch.Tensor:
        n_ticks = cur.shape[0]
        flat = cur.detach().reshape(n_ticks, -1).contiguous().numpy()
        spikes, u = _lif_forward(flat, beta_flat, np.float32(float(threshold)), same_tick_reset, delay)
        ctx.save_for_backward(torch.from_numpy(u), torch.from_numpy(spikes))
        ctx.beta_flat, ctx.same_tick_reset, ctx.slope, ctx.delay = beta_flat, same_tick_reset, slope, delay
        ctx.cur_shape = cur.shape
        ctx.threshold_shape = threshold.shape if isinstance(threshold, torch.Tensor) else None
        return torch.from_numpy(spikes).reshape(cur.shape)

    @staticmethod
    def backward(ctx: Any, g_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        u, spikes = ctx.saved_tensors
        flat = g_out.reshape(u.shape).contiguous().numpy()
        g, g_thr = _lif_backward(flat, u.numpy(), spikes.numpy(), ctx.beta_flat, np.float32(ctx.slope),
                                 ctx.same_tick_reset, ctx.delay)  # fmt: skip
        grad_thr = None
        if ctx.needs_input_grad[1] and ctx.threshold_shape is not None:
            # one threshold per layer (a 0-d or one-element tensor): its gradient is the sum over neurons and ticks
            grad_thr = torch.tensor(g_thr, dtype=torch.float32).reshape(ctx.threshold_shape)
        return torch.from_numpy(g).reshape(ctx.cur_shape), grad_thr, None, None, None, None


def lif_run_autograd(
    cur: torch.Tensor,
    *,
    beta: float | torch.Tensor,
    threshold: torch.Tensor | float,
    same_tick_reset: bool,
    slope: float = 25.0,
) -> torch.Tensor:
    """:func:`lif_run` as plain autograd operations, tick by tick (the reference, and the path off the CPU)."""
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
