"""NIR graph -> chip network: populations with float32 parameters, projections with int8 weights.

Follows py-spinnaker2's ``s2_nir`` (SPINNAKER2.md sections 3-4) expression for expression, with numpy's
own type promotion, so the float32 parameters handed to the chip are bit-identical to the converter's:
``w_scale`` per target population over all its incoming weight nodes, thresholds and ``i_offset``
scaled by ``w_scale / r_factor``, conv kernels ``int8(trunc(W.swapaxes(0,1) * w_scale))``.

Superset of s2_nir (documented in docs/emulator.md): Flatten may sit anywhere on a path (s2_nir only
after SumPool2d), and every path from a spike source is followed even when it has no SumPool2d.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import UnsupportedGraphError
from .chip import SPINNAKER2, SpiNNaker2Spec
from .neurons import BY_NIR_TYPE, NeuronModel, convert_cubalif, convert_if, convert_lif
from .options import ChipOptions

__all__ = [
    "SUPPORTED",
    "ChipNetwork",
    "Population",
    "Projection",
    "convert_cubalif",
    "convert_if",
    "convert_lif",
    "quantize_conv",
    "quantize_dense",
    "translate",
]

#: NIR node types the chip cannot run, with the reason given in the error
UNSUPPORTED_REASONS: dict[str, str] = {
    "AvgPool2d": "the chip folds only SumPool2d; export SumPool2d and fold 1/k^2 into the next weights",
    "MaxPool2d": "max pooling of spikes has no chip implementation; use SumPool2d",
    "Conv1d": "s2_nir maps only Conv2d",
    "Delay": "per-synapse delays are not exported by s2_nir; use the conn_delay option",
    "Scale": "a scaling node is not a chip projection; fold it into the weights",
    "Threshold": "a bare threshold is not a chip neuron model; use IF",
    "LI": "non-spiking leaky integrators have no chip neuron model",
    "I": "non-spiking integrators have no chip neuron model",
    "CubaLI": "non-spiking current-based integrators have no chip neuron model",
}

#: NIR neuron node types: whatever the neuron-model registry accepts (neurons.py)
NEURON_TYPES = tuple(BY_NIR_TYPE)
WEIGHT_TYPES = ("Conv2d", "Affine", "Linear")
SUPPORTED = ("Input", "Output", "Conv2d", "SumPool2d", "Flatten", "Affine", "Linear", *NEURON_TYPES)


@dataclass
class Population:
    """A group of neurons on the chip (or the input spike source) with per-neuron float32 parameters."""

    name: str
    #: the chip's population model: "spike_list" for the input, else ``neuron``'s dense or conv model
    model: str
    shape: tuple[int, ...]
    n: int
    #: the neuron model (neurons.py); None for the input spike source
    neuron: NeuronModel | None = None
    threshold: np.ndarray | None = None
    alpha_decay: np.ndarray | None = None
    i_offset: np.ndarray | None = None
    exc_decay: np.ndarray | None = None
    inh_decay: np.ndarray | None = None
    #: chip voltage / NIR voltage
    v_scale: np.ndarray | None = None
    w_scale: float = 1.0
    is_output: bool = False

    @property
    def is_source(self) -> bool:
        """The input spike source (no neurons to update, only spike lists)."""
        return self.neuron is None

    def param(self, name: str) -> np.ndarray:
        """One float32 per-neuron parameter (a name in ``neuron.param_names``)."""
        value = getattr(self, name)
        if value is None:
            msg = f"population {self.name!r} ({self.model}) has no parameter {name!r}"
            raise UnsupportedGraphError(msg)
        return np.asarray(value)


@dataclass
class Projection:
    """Synapses from one spike source to one population: an int8 conv kernel or an int8 dense matrix.

    conv: ``weight [C_in, C_out, kH, kW]`` (chip layout), the source first sum-pooled by ``pool``.
    dense: ``weight [n_in, n_target]`` over the (pooled, flattened C,H,W) source.
    """

    source: str
    target: str
    kind: str  # "conv" | "dense"
    weight: np.ndarray
    src_shape: tuple[int, ...]
    pool: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    out_shape: tuple[int, ...] = ()
    path: tuple[str, ...] = ()

    @property
    def pooled_shape(self) -> tuple[int, ...]:
        """Source shape after the folded SumPool2d (floor division, as torch and s2_nir)."""
        if self.pool == (1, 1):
            return self.src_shape
        c, h, w = self.src_shape
        return (c, h // self.pool[0], w // self.pool[1])

    def fan_in_bound(self) -> int:
        """Largest possible |integer synaptic input| one target can get in one tick from this projection."""
        w = np.abs(self.weight.astype(np.int64))
        pool_area = self.pool[0] * self.pool[1]
        if self.kind == "conv":
            return int(w.sum(axis=(0, 2, 3)).max()) * pool_area
        return int(w.sum(axis=0).max()) * pool_area


@dataclass
class ChipNetwork:
    """The translated graph: populations in topological order (input first) and projections."""

    populations: dict[str, Population]
    projections: list[Projection]
    input_name: str
    output_names: tuple[str, ...]
    options: ChipOptions
    #: population order in which a feed-forward pass can compute everything; None when recurrent
    feedforward_order: tuple[str, ...] | None
    #: the chip the network was translated for (weight range, memory model)
    spec: SpiNNaker2Spec = SPINNAKER2

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.populations[self.input_name].shape

    @property
    def n_outputs(self) -> int:
        return sum(self.populations[n].n for n in self.output_names)

    def incoming(self, name: str) -> list[Projection]:
        return [p for p in self.projections if p.target == name]

    @property
    def latency_ticks(self) -> int:
        """Ticks from an input spike to the output: (1 + conn_delay) per projection on the longest path."""
        depth = self._depths()
        per = 1 + int(self.options.conn_delay)
        return max(depth[o] for o in self.output_names) * per

    def _depths(self) -> dict[str, int]:
        # longest feed-forward path length in projections; recurrent self-loops do not add latency
        depth = {self.input_name: 0}
        for _ in range(len(self.populations) + 1):
            for proj in self.projections:
                if proj.source in depth and proj.source != proj.target:
                    d = depth[proj.source] + 1
                    if d > depth.get(proj.target, -1) and d <= len(self.populations):
                        depth[proj.target] = d
        for name in self.output_names:
            depth.setdefault(name, 0)
        return depth


def _type(node: object) -> str:
    return type(node).__name__


def _pair(value: object, what: str, node: str) -> tuple[int, int]:
    arr = np.atleast_1d(np.asarray(value)).astype(np.int64).ravel()
    if arr.size == 1:
        return (int(arr[0]), int(arr[0]))
    if arr.size == 2:
        return (int(arr[0]), int(arr[1]))
    msg = f"node {node!r}: {what} must be one or two integers, found {value!r}"
    raise UnsupportedGraphError(msg)


def _neuron_shape(node: object) -> tuple[int, ...]:
    input_type = getattr(node, "input_type", None) or {}
    shape = input_type.get("input") if isinstance(input_type, dict) else None
    if shape is not None and np.size(shape) > 0:
        return tuple(int(s) for s in np.asarray(shape).ravel())
    return tuple(np.shape(node.v_threshold))  # type: ignore[attr-defined]


def quantize_conv(weight: np.ndarray, w_scale: float, spec: SpiNNaker2Spec = SPINNAKER2) -> np.ndarray:
    """Conv kernel [C_out, C_in, kH, kW] -> int8 [C_in, C_out, kH, kW] by truncation toward zero, no clip.

    s2_nir does ``(W.swapaxes(0,1) * w_scale).astype(np.int8)``; values outside the weight range are
    undefined in C, here they wrap modulo ``2**spec.weight_bits`` (what x86 does for int8), which only
    happens with weight_scale_percentile < 100.
    """
    # s2_nir's w_scale is a float64 (a float literal over np.max(...)): the product must be float64 too, as there; a
    # Python float would leave float32 weights in float32 (NEP 50) and round before the truncation
    scaled = weight.swapaxes(0, 1) * np.float64(w_scale)
    return spec.wrap_weights(np.trunc(scaled).astype(np.int64))


def quantize_dense(weight: np.ndarray, w_scale: float, rounding: str, spec: SpiNNaker2Spec = SPINNAKER2) -> np.ndarray:
    """Dense weight [n_out, n_in] -> int8 [n_in, n_out]: ``W.T * w_scale`` rounded (half away or trunc), clipped to ``+-spec.weight_max`` [I]."""
    scaled = weight.T * np.float64(w_scale)  # float64 as in s2_nir (see quantize_conv)
    if rounding == "truncate":
        q = np.trunc(scaled)
    else:
        q = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)
    return spec.clip_weights(q)


# -- graph walking -----------------------------------------------------------------------------------------


def translate(graph: object, opts: ChipOptions, spec: SpiNNaker2Spec = SPINNAKER2) -> ChipNetwork:
    """Translate a NIR graph for chip ``spec``, raising UnsupportedGraphError for anything the chip cannot run."""
    nodes: dict[str, object] = dict(graph.nodes)  # type: ignore[attr-defined]
    edges: list[tuple[str, str]] = [tuple(e) for e in graph.edges]  # type: ignore[attr-defined,misc]
    for name, node in nodes.items():
        kind = _type(node)
        if kind == "NIRGraph":
            msg = f"node {name!r} is a nested NIRGraph; flatten the graph before loading (supported: {', '.join(SUPPORTED)})"
            raise UnsupportedGraphError(msg)
        if kind not in SUPPORTED:
            reason = UNSUPPORTED_REASONS.get(kind, "no chip implementation")
            msg = f"node {name!r} of type {kind} is not supported on SpiNNaker2: {reason}; supported node types: {', '.join(SUPPORTED)}"
            raise UnsupportedGraphError(msg)
    out_edges: dict[str, list[str]] = {n: [] for n in nodes}
    in_edges: dict[str, list[str]] = {n: [] for n in nodes}
    for src, dst in edges:
        for end in (src, dst):
            if end not in nodes:
                msg = f"edge ({src!r}, {dst!r}) names node {end!r} which is not in the graph"
                raise UnsupportedGraphError(msg)
        out_edges[src].append(dst)
        in_edges[dst].append(src)

    inputs = [n for n, node in nodes.items() if _type(node) == "Input"]
    if len(inputs) != 1:
        msg = f"graph must have exactly one Input node, found {len(inputs)} ({inputs}); the chip runs one spike_list input"
        raise UnsupportedGraphError(msg)
    input_name = inputs[0]
    in_shape = tuple(int(s) for s in np.asarray(nodes[input_name].input_type["input"]).ravel())  # type: ignore[attr-defined]
    if len(in_shape) not in (1, 3):
        msg = f"Input node {input_name!r} has shape {in_shape}; expected 1-D (n,) or 3-D (C, H, W)"
        raise UnsupportedGraphError(msg)

    # every path from a spike source to the next spiking node: [pool?, flatten*, weight, flatten*] -> neuron
    paths: list[tuple[str, list[str], str]] = []
    sources = [input_name] + [n for n, node in nodes.items() if _type(node) in NEURON_TYPES]
    for src in sources:
        stack: list[tuple[str, list[str]]] = [(d, [d]) for d in out_edges[src]]
        while stack:
            cur, chain = stack.pop()
            kind = _type(nodes[cur])
            if kind in NEURON_TYPES:
                paths.append((src, chain[:-1], cur))
            elif kind == "Output":
                if chain[:-1]:
                    msg = f"Output node {cur!r} is fed through {chain[:-1]} from {src!r}; an Output must follow a neuron node directly"
                    raise UnsupportedGraphError(msg)
            elif kind == "Input":
                msg = f"node {cur!r} (Input) has an incoming edge; inputs are sources only"
                raise UnsupportedGraphError(msg)
            else:
                if len(chain) > len(nodes):
                    msg = f"cycle without a neuron node through {chain}"
                    raise UnsupportedGraphError(msg)
                if not out_edges[cur]:
                    msg = f"node {cur!r} ({kind}) on a path from {src!r} leads nowhere; it must end in a neuron node"
                    raise UnsupportedGraphError(msg)
                stack.extend((d, [*chain, d]) for d in out_edges[cur])

    # which populations are outputs
    outputs: list[str] = []
    for name, node in nodes.items():
        if _type(node) == "Output":
            feeders = in_edges[name]
            for f in feeders:
                if _type(nodes[f]) not in NEURON_TYPES:
                    msg = f"Output node {name!r} is fed by {f!r} ({_type(nodes[f])}); the chip records only neuron populations"
                    raise UnsupportedGraphError(msg)
                outputs.append(f)
    if not outputs:
        msg = "graph has no Output node fed by a neuron node; mark the recorded population with an Output"
        raise UnsupportedGraphError(msg)

    # parse each path
    parsed: list[dict[str, object]] = []
    for src, chain, tgt in paths:
        kinds = [_type(nodes[c]) for c in chain]
        weights = [c for c, k in zip(chain, kinds, strict=True) if k in WEIGHT_TYPES]
        pools = [c for c, k in zip(chain, kinds, strict=True) if k == "SumPool2d"]
        if len(weights) > 1:
            msg = (
                f"two weight nodes in a row ({weights[0]!r} {_type(nodes[weights[0]])} then {weights[1]!r} "
                f"{_type(nodes[weights[1]])}) between {src!r} and {tgt!r}: the chip has one synapse matrix per "
                "projection; merge them into one weight node"
            )
            raise UnsupportedGraphError(msg)
        if not weights and not pools:
            msg = (
                f"spike source {src!r} is wired to neuron node {tgt!r} without a weight node (path {chain}); "
                "insert an Affine/Linear/Conv2d between them"
            )
            raise UnsupportedGraphError(msg)
        if len(pools) > 1:
            msg = f"two SumPool2d nodes {pools} between {src!r} and {tgt!r}; the chip folds one pooling per projection"
            raise UnsupportedGraphError(msg)
        if pools and weights and chain.index(pools[0]) > chain.index(weights[0]):
            msg = f"SumPool2d {pools[0]!r} after weight node {weights[0]!r}; the chip folds pooling only before a projection"
            raise UnsupportedGraphError(msg)
        parsed.append({"src": src, "chain": chain, "tgt": tgt, "weight": weights[0] if weights else None, "pool": pools[0] if pools else None})

    # populations
    pops: dict[str, Population] = {input_name: Population(input_name, "spike_list", in_shape, int(np.prod(in_shape)))}
    wmax = float(spec.weight_max)
    for name, node in nodes.items():
        kind = _type(node)
        if kind not in NEURON_TYPES:
            continue
        shape = _neuron_shape(node)
        n = int(np.prod(shape)) if shape else 1
        incoming = [p for p in parsed if p["tgt"] == name]
        wnodes = [nodes[p["weight"]] for p in incoming if p["weight"] is not None]  # type: ignore[index]
        bias = np.zeros(shape if shape else (1,))
        for w in wnodes:
            if _type(w) == "Affine":
                bias = bias + np.asarray(w.bias).reshape(bias.shape) if np.size(w.bias) == bias.size else bias + w.bias  # type: ignore[attr-defined]
            elif _type(w) == "Conv2d":
                b = np.asarray(w.bias)  # type: ignore[attr-defined]
                bias = bias + (b[:, np.newaxis, np.newaxis] if b.ndim == 1 and len(shape) == 3 else b)
        bias = bias.flatten()
        w_scale: float = 1.0
        if opts.scale_weights:
            if not wnodes:
                msg = f"population {name!r} has no incoming weight node; scale_weights needs one to compute w_scale"
                raise UnsupportedGraphError(msg)
            if opts.weight_scale_percentile == 100:
                max_abs: Any = 0.0
                for w in wnodes:
                    max_abs = np.max((max_abs, np.abs(w.weight).max()))  # type: ignore[attr-defined,arg-type]
            else:
                all_w = np.array([])
                for w in wnodes:
                    all_w = np.concatenate((all_w, np.abs(w.weight).flatten()))  # type: ignore[attr-defined]
                max_abs = np.percentile(all_w, opts.weight_scale_percentile)
            if not max_abs > 0:
                msg = f"population {name!r}: all incoming weights are zero, w_scale = {spec.weight_max}/0 is undefined; disable scale_weights"
                raise UnsupportedGraphError(msg)
            w_scale = wmax / max_abs
        neuron = BY_NIR_TYPE[kind]
        is_conv = any(_type(w) == "Conv2d" for w in wnodes)
        if is_conv and not neuron.conv_allowed:
            msg = f"{kind} node {name!r} is fed by a Conv2d; the chip has no conv variant of {neuron.dense_model} (dense projections only)"
            raise UnsupportedGraphError(msg)
        params = neuron.converters[kind](node, bias, opts, w_scale, n)
        pops[name] = Population(
            name, neuron.chip_model(is_conv), shape, n, neuron,
            threshold=params["threshold"], alpha_decay=params["alpha_decay"], i_offset=params["i_offset"],
            exc_decay=params.get("exc_decay"), inh_decay=params.get("inh_decay"),
            v_scale=params["v_scale"], w_scale=float(w_scale), is_output=name in outputs,
        )

    projections = [_projection(p, nodes, pops, opts, spec) for p in parsed]
    order = _topological(pops, projections, input_name)
    return ChipNetwork(pops, projections, input_name, tuple(dict.fromkeys(outputs)), opts, order, spec)


def _projection(p: dict[str, object], nodes: dict[str, object], pops: dict[str, Population], opts: ChipOptions, spec: SpiNNaker2Spec) -> Projection:
    src, tgt = str(p["src"]), str(p["tgt"])
    chain: tuple[str, ...] = tuple(p["chain"])  # type: ignore[arg-type]
    spop, tpop = pops[src], pops[tgt]
    src_shape = spop.shape
    pool = (1, 1)
    if p["pool"] is not None:
        pnode = nodes[str(p["pool"])]
        k = _pair(pnode.kernel_size, "kernel_size", str(p["pool"]))  # type: ignore[attr-defined]
        s = _pair(pnode.stride, "stride", str(p["pool"]))  # type: ignore[attr-defined]
        pad = _pair(pnode.padding, "padding", str(p["pool"]))  # type: ignore[attr-defined]
        if k != s or pad != (0, 0):
            msg = f"SumPool2d {p['pool']!r}: the chip folds pooling only with kernel == stride and padding 0, found kernel {k}, stride {s}, padding {pad}"
            raise UnsupportedGraphError(msg)
        if len(src_shape) != 3:
            msg = f"SumPool2d {p['pool']!r} follows {src!r} of shape {src_shape}; pooling needs a (C, H, W) source"
            raise UnsupportedGraphError(msg)
        pool = k
    pooled = src_shape if pool == (1, 1) else (src_shape[0], src_shape[1] // pool[0], src_shape[2] // pool[1])
    wname = p["weight"]
    if wname is None:
        # SumPool2d straight into neurons: a 1x1 identity conv with unit weights (s2_nir's sumpool projection)
        c = pooled[0]
        kernel = np.zeros((c, c, 1, 1), dtype=np.int8)
        kernel[np.arange(c), np.arange(c), 0, 0] = 1
        proj = Projection(src, tgt, "conv", kernel, src_shape, pool, (1, 1), (0, 0), pooled, chain)
    else:
        wnode = nodes[str(wname)]
        if _type(wnode) == "Conv2d":
            if len(src_shape) != 3:
                msg = f"Conv2d {wname!r} is fed by {src!r} of shape {src_shape}; a conv needs a (C, H, W) source"
                raise UnsupportedGraphError(msg)
            weight = np.asarray(wnode.weight)  # type: ignore[attr-defined]
            if weight.ndim != 4:
                msg = f"Conv2d {wname!r}: weight must be [C_out, C_in, kH, kW], found shape {weight.shape}"
                raise UnsupportedGraphError(msg)
            if int(wnode.groups) != 1 or _pair(wnode.dilation, "dilation", str(wname)) != (1, 1):  # type: ignore[attr-defined]
                msg = f"Conv2d {wname!r}: the chip supports groups=1 and dilation=1, found groups={wnode.groups}, dilation={wnode.dilation}"  # type: ignore[attr-defined]
                raise UnsupportedGraphError(msg)
            if weight.shape[1] != pooled[0]:
                msg = f"Conv2d {wname!r}: weight has C_in={weight.shape[1]} but its source {src!r} (pooled) has shape {pooled}"
                raise UnsupportedGraphError(msg)
            padding = wnode.padding  # type: ignore[attr-defined]
            if isinstance(padding, str):
                if padding != "valid":
                    msg = f"Conv2d {wname!r}: padding {padding!r} is not supported; give explicit integers"
                    raise UnsupportedGraphError(msg)
                padding = 0
            pad = _pair(padding, "padding", str(wname))
            stride = _pair(wnode.stride, "stride", str(wname))  # type: ignore[attr-defined]
            kh, kw = weight.shape[2:]
            h_out = (pooled[1] + 2 * pad[0] - kh) // stride[0] + 1
            w_out = (pooled[2] + 2 * pad[1] - kw) // stride[1] + 1
            out_shape = (weight.shape[0], h_out, w_out)
            kernel = quantize_conv(weight, tpop.w_scale, spec)
            proj = Projection(src, tgt, "conv", kernel, src_shape, pool, stride, pad, out_shape, chain)
        else:
            weight = np.asarray(wnode.weight)  # type: ignore[attr-defined]
            n_in = int(np.prod(pooled))
            if weight.ndim != 2 or weight.shape[1] != n_in:
                msg = f"{_type(wnode)} {wname!r}: weight shape {weight.shape} does not take the {n_in} (pooled, flattened) outputs of {src!r}"
                raise UnsupportedGraphError(msg)
            q = quantize_dense(weight, tpop.w_scale, opts.dense_rounding, spec)
            proj = Projection(src, tgt, "dense", q, src_shape, pool, (1, 1), (0, 0), (weight.shape[0],), chain)
    if proj.kind == "conv" and opts.conn_delay != 0:
        # s2_nir asserts delay == 0 for conv and sum-pool projections: the chip's conv synapses have no delay
        msg = (
            f"projection {src!r} -> {tgt!r} through {list(chain)} is a conv projection, which takes no delay on the "
            f"chip (s2_nir requires conn_delay=0), found conn_delay={opts.conn_delay}; set conn_delay=0"
        )
        raise UnsupportedGraphError(msg)
    n_out = int(np.prod(proj.out_shape))
    if n_out != tpop.n:
        msg = f"projection {src!r} -> {tgt!r} through {list(chain)} produces {n_out} values {proj.out_shape} but {tgt!r} has {tpop.n} neurons {tpop.shape}"
        raise UnsupportedGraphError(msg)
    return proj


def _topological(pops: dict[str, Population], projections: Iterable[Projection], input_name: str) -> tuple[str, ...] | None:
    """Populations in dependency order, or None when any population feeds itself (directly or in a cycle)."""
    deps: dict[str, set[str]] = {n: set() for n in pops}
    for p in projections:
        deps[p.target].add(p.source)
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(pops):
        ready = [n for n in pops if n not in done and deps[n] <= done]
        if not ready:
            return None
        for n in ready:
            order.append(n)
            done.add(n)
    return tuple(order)
