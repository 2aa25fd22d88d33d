"""The paper's P-SNN (MODEL.md) in torch, with snnTorch's neuron model and switchable chip semantics.

```
input 2x32x32
Conv2d(2->16, k5, s2, p1)  -> LIF 16x15x15
Conv2d(16->16, k3, s1, p1) -> LIF 16x15x15 -> SumPool 2x2
Conv2d(16->8, k3, s1, p1)  -> LIF 8x7x7    -> SumPool 2x2 -> Flatten 72
Linear(72->256)            -> LIF 256
Linear(256->11)            -> LIF 11       (class = most output spikes)
```
No biases; Leaky beta 0.93, threshold 1, subtract reset, fast-sigmoid surrogate. At the default widths the
network has 25,504 weights, the paper's count.

Convolutions and dense layers carry no state, so each projection is applied to all ticks at once
(``[T*B, ...]``) and only the LIF layers loop over time: much faster than stepping the whole network per tick
on a CPU, and identical in result for a feed-forward network. Each LIF layer has its own threshold (a
buffer, 1.0 for a float model; the integer-domain threshold for a quantized one), so the same module runs a
float model and an int8 model with integer-valued weights.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the torch convention)
from torch import nn

from s2gesture.daemon.backends.chip import SPINNAKER2
from s2gesture.daemon.nirnodes import exportable_betas

from . import semantics as _semantics
from .semantics import Semantics, get_semantics, lif_run

N_LIF = 5  # LIF layers of the P-SNN


@dataclass(frozen=True)
class PSNNConfig:
    """Shape and neuron parameters of the P-SNN; the defaults are the paper's."""

    in_channels: int = 2
    input_size: tuple[int, int] = (32, 32)  # (height, width)
    channels: tuple[int, int, int] = (16, 16, 8)
    hidden: int = 256
    n_classes: int = 11
    beta: float = 0.93
    threshold: float = 1.0
    slope: float = 25.0
    # Membrane time constants in ticks, one (shortest, longest) pair per LIF layer, spread geometrically
    # over the layer's channels (a convolution's feature maps, a dense layer's neurons); None: every neuron
    # decays with ``beta`` (tau 14 ticks). With one time constant a layer is a spatial filter followed by the
    # same temporal filter everywhere, which cannot tell which of two places was crossed first; a slow channel
    # beside a fast one lets the next layer see the order (clockwise vs counter-clockwise), within one
    # layer's per-neuron ``alpha_decay`` on the chip.
    tau_ticks: tuple[tuple[float, float], ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (tuples as lists)."""
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["channels"] = list(self.channels)
        if self.tau_ticks is not None:
            d["tau_ticks"] = [list(p) for p in self.tau_ticks]
        else:
            d.pop("tau_ticks")  # older readers (and files) have no such key
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PSNNConfig:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["input_size"] = tuple(d["input_size"])
        d["channels"] = tuple(d["channels"])
        if d.get("tau_ticks") is not None:
            d["tau_ticks"] = tuple((float(lo), float(hi)) for lo, hi in d["tau_ticks"])
        return cls(**d)

    def layer_betas(self) -> list[np.ndarray | None]:
        """Per LIF layer: float32 ``beta`` per channel (``1 - 1/tau``), or None where all decay with ``beta``."""
        if self.tau_ticks is None:
            return [None] * N_LIF
        if len(self.tau_ticks) != N_LIF:
            msg = f"tau_ticks needs one (shortest, longest) pair per LIF layer ({N_LIF}), found {len(self.tau_ticks)}"
            raise ValueError(msg)
        widths = [*self.channels, self.hidden, self.n_classes]
        out: list[np.ndarray | None] = []
        for (lo, hi), n in zip(self.tau_ticks, widths, strict=True):
            if not 1.0 < lo <= hi:
                msg = f"tau_ticks ({lo}, {hi}): time constants must be > 1 tick and shortest <= longest"
                raise ValueError(msg)
            # decays the chip's FORWARD conversion reproduces exactly (a shift of at most a few ulps)
            out.append(exportable_betas((1.0 - 1.0 / np.geomspace(lo, hi, n)).astype(np.float32)))
        return out


@dataclass(frozen=True)
class Stage:
    """One step of the network as the exporter and the reports see it."""

    kind: str  # "conv", "linear", "lif", "sumpool", "flatten"
    name: str
    shape: tuple[int, ...]  # output shape of the stage (C, H, W) or (N,)
    params: dict[str, Any] = field(default_factory=dict)


def _conv_out(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


def plan_stages(cfg: PSNNConfig) -> list[Stage]:
    """The network as a list of stages with their output shapes (the order of the NIR graph)."""
    c1, c2, c3 = cfg.channels
    h, w = cfg.input_size
    stages: list[Stage] = []
    h1, w1 = _conv_out(h, 5, 2, 1), _conv_out(w, 5, 2, 1)
    stages += [
        Stage(
            "conv", "conv1", (c1, h1, w1), {"in": cfg.in_channels, "k": 5, "s": 2, "p": 1, "in_hw": (h, w)}
        ),
        Stage("lif", "lif1", (c1, h1, w1)),
        Stage("conv", "conv2", (c2, h1, w1), {"in": c1, "k": 3, "s": 1, "p": 1, "in_hw": (h1, w1)}),
        Stage("lif", "lif2", (c2, h1, w1)),
    ]
    h2, w2 = h1 // 2, w1 // 2
    stages += [
        Stage("sumpool", "pool2", (c2, h2, w2), {"k": 2}),
        Stage("conv", "conv3", (c3, h2, w2), {"in": c2, "k": 3, "s": 1, "p": 1, "in_hw": (h2, w2)}),
        Stage("lif", "lif3", (c3, h2, w2)),
    ]
    h3, w3 = h2 // 2, w2 // 2
    flat = c3 * h3 * w3
    stages += [
        Stage("sumpool", "pool3", (c3, h3, w3), {"k": 2}),
        Stage("flatten", "flat", (flat,), {"in_shape": (c3, h3, w3)}),
        Stage("linear", "fc1", (cfg.hidden,), {"in": flat}),
        Stage("lif", "lif4", (cfg.hidden,)),
        Stage("linear", "fc2", (cfg.n_classes,), {"in": cfg.hidden}),
        Stage("lif", "lif5", (cfg.n_classes,)),
    ]
    return stages


def _float_layer(stage: Stage, bits: int) -> nn.Module:
    if stage.kind == "conv":
        p = stage.params
        return nn.Conv2d(p["in"], stage.shape[0], p["k"], stride=p["s"], padding=p["p"], bias=False)
    return nn.Linear(stage.params["in"], stage.shape[0], bias=False)


def _brevitas_layer(stage: Stage, bits: int) -> nn.Module:
    from brevitas import nn as qnn

    if stage.kind == "conv":
        p = stage.params
        return qnn.QuantConv2d(
            p["in"], stage.shape[0], p["k"], stride=p["s"], padding=p["p"], bias=False, weight_bit_width=bits
        )
    return qnn.QuantLinear(stage.params["in"], stage.shape[0], bias=False, weight_bit_width=bits)


#: how weight layers are built: plain float, or Brevitas fake-quantized (for QAT)
LAYER_FACTORIES = {"float": _float_layer, "brevitas": _brevitas_layer}


class PSNN(nn.Module):
    """The P-SNN; ``forward(x [T, B, C, H, W]) -> output spikes [T_out, B, n_classes]``."""

    def __init__(
        self,
        cfg: PSNNConfig | None = None,
        *,
        layers: str = "float",
        learn_threshold: bool = False,
        weight_bits: int = SPINNAKER2.weight_bits,
    ):
        super().__init__()
        #: weight width of fake-quantized (Brevitas) layers; the chip's by default
        self.weight_bits = int(weight_bits)
        self.cfg = cfg or PSNNConfig()
        if layers not in LAYER_FACTORIES:
            msg = f"unknown layer kind {layers!r}; expected one of {sorted(LAYER_FACTORIES)}"
            raise ValueError(msg)
        self.layer_kind = layers
        self.stages = plan_stages(self.cfg)
        self.weights = nn.ModuleDict(
            {s.name: LAYER_FACTORIES[layers](s, self.weight_bits) for s in self.stages if s.kind in ("conv", "linear")}
        )
        n_lif = sum(s.kind == "lif" for s in self.stages)
        thr = torch.full((n_lif,), float(self.cfg.threshold))
        if learn_threshold:
            self.thresholds = nn.Parameter(thr)
        else:
            self.register_buffer("thresholds", thr)
        # per-channel decays as buffers shaped to broadcast over [B, C, H, W] / [B, N] (fixed, not learned);
        # only for heterogeneous models, so that older files load unchanged
        self._betas: list[str | None] = []
        lifs = [s for s in self.stages if s.kind == "lif"]
        for b, stage in zip(self.cfg.layer_betas(), lifs, strict=True):
            if b is None:
                self._betas.append(None)
                continue
            name = f"beta_{stage.name}"
            self.register_buffer(name, torch.from_numpy(b).reshape((-1,) + (1,) * (len(stage.shape) - 1)))
            self._betas.append(name)

    @property
    def n_projections(self) -> int:
        """Weight layers on the input->output path (ticks of latency in chip semantics)."""
        return len(self.weights)

    def weight_names(self) -> list[str]:
        """Names of the weight layers in network order."""
        return list(self.weights)

    def n_parameters(self) -> int:
        """Number of weights (the paper counts 25,504 at default widths; thresholds not counted)."""
        return sum(int(m.weight.numel()) for m in self.weights.values())

    def effective_weight(self, name: str) -> torch.Tensor:
        """The weight a layer applies (fake-quantized for Brevitas layers)."""
        layer = self.weights[name]
        if self.layer_kind == "brevitas":
            return layer.quant_weight().value
        return layer.weight

    def forward(
        self,
        x: torch.Tensor,
        semantics: str | Semantics = "snntorch",
        *,
        record: bool = False,
        stop_at: str | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Run ``x [T, B, C, H, W]`` (0/1) through the network; output spikes ``[T + L, B, n_classes]``.

        In semantics with latency ``L`` = number of projections, the input is zero-padded by ``L`` ticks so
        that every spike drains to the output (as the chip backends do); otherwise ``L`` = 0. With
        ``record`` the spikes of every LIF layer are returned too, keyed by stage name; ``stop_at`` (a stage
        name) ends the run after that stage and returns its output.
        """
        sem = get_semantics(semantics)
        if x.dim() != 5:
            msg = f"PSNN input must be [T, B, C, H, W], found shape {tuple(x.shape)}"
            raise ValueError(msg)
        expected = (self.cfg.in_channels, *self.cfg.input_size)
        if tuple(x.shape[2:]) != expected:
            msg = f"PSNN input (C, H, W) must be {expected}, found {tuple(x.shape[2:])}"
            raise ValueError(msg)
        if sem.latency:
            pad = torch.zeros((self.n_projections, *x.shape[1:]), dtype=x.dtype, device=x.device)
            x = torch.cat([x, pad], dim=0)
        T, B = x.shape[:2]
        h = x.float()
        recorded: dict[str, torch.Tensor] = {}
        lif_index = 0
        for stage in self.stages:
            if stage.kind in ("conv", "linear"):
                # the chip's one tick of latency per projection is applied by the LIF layer that follows it
                # (every projection feeds one; delaying a per-tick projection's output or input is the same)
                w = self.effective_weight(stage.name)
                flat_in = h.reshape(T * B, *h.shape[2:])
                if stage.kind == "conv":
                    p = stage.params
                    if h.device.type == "cpu" and _semantics.FAST_CPU_PATH:
                        # oneDNN's convolutions with these few channels run ~1.7x faster (forward and
                        # backward) on channels-last input; with 0/1 input and integer weights every sum is
                        # exact in float32 either way, so the chip simulator still equals the emulator
                        flat_in = flat_in.contiguous(memory_format=torch.channels_last)
                    out = F.conv2d(flat_in, w, stride=p["s"], padding=p["p"])
                else:
                    out = F.linear(flat_in, w)
                h = out.reshape(T, B, *out.shape[1:])
            elif stage.kind == "lif":
                h = lif_run(
                    h,
                    beta=self.lif_beta(lif_index),
                    threshold=self.thresholds[lif_index],
                    same_tick_reset=sem.same_tick_reset,
                    slope=self.cfg.slope,
                    input_delay=sem.latency,
                )
                lif_index += 1
                if record:
                    recorded[stage.name] = h
            elif stage.kind == "sumpool":
                k = stage.params["k"]
                flat_in = h.reshape(T * B, *h.shape[2:])
                # sum pooling = average pooling times k^2 (the chip folds SumPool2d into the next projection)
                out = F.avg_pool2d(flat_in, k, stride=k) * (k * k)
                h = out.reshape(T, B, *out.shape[1:])
            elif stage.kind == "flatten":
                h = h.reshape(T, B, -1)
            if stage.name == stop_at:
                break
        return (h, recorded) if record else h

    def lif_beta(self, index: int) -> float | torch.Tensor:
        """Decay of LIF layer ``index``: the config's ``beta``, or a per-channel tensor."""
        name = self._betas[index]
        return self.cfg.beta if name is None else getattr(self, name)

    @torch.no_grad()
    def copy_decays_(self, other: PSNN) -> PSNN:
        """Take ``other``'s per-channel decays (a quantized or fake-quantized copy keeps its float model's)."""
        for mine, theirs in zip(self._betas, other._betas, strict=True):
            if (mine is None) != (theirs is None):
                msg = "copy_decays_: one model has per-channel time constants and the other does not"
                raise ValueError(msg)
            if mine is not None and theirs is not None:
                getattr(self, mine).copy_(getattr(other, theirs))
        return self

    def iter_weights(self) -> Iterator[tuple[str, torch.Tensor]]:
        """(name, effective weight) per weight layer, in network order."""
        for name in self.weights:
            yield name, self.effective_weight(name)


def spike_counts(out: torch.Tensor) -> torch.Tensor:
    """Output spikes ``[T, B, n]`` -> counts ``[B, n]``."""
    return out.sum(dim=0)


def predict(out: torch.Tensor) -> torch.Tensor:
    """Class = most output spikes (ties -> lowest index, like ``argmax``)."""
    return spike_counts(out).argmax(dim=1)


def build_psnn(cfg: PSNNConfig | None = None, *, seed: int | None = None, **kwargs: Any) -> PSNN:
    """A freshly initialised P-SNN (seeded when ``seed`` is given)."""
    if seed is not None:
        torch.manual_seed(seed)
    return PSNN(cfg, **kwargs)
