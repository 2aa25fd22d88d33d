"""The chip's neuron models as registry records (SPINNAKER2.md sections 4-5).

One :class:`NeuronModel` per chip neuron model holds everything the backends need to know about it: the
NIR node types it accepts and their converters (s2_nir's ``convert_LIF`` / ``convert_IF`` /
``convert_CubaLIF``, expression for expression), the chip population names (dense and conv), whether a
conv may feed it, its SRAM per neuron, a pure per-tick reference ``step(x, state, params) -> (spikes,
state)`` with state and parameters as named tuples (norse style), and the compiled kernel the fast
emulator runs for a whole layer. Adding a neuron model = one record here + one kernel in kernels.py.

numpy only; the kernels are looked up by name when the emulator first runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from .chip import SpiNNaker2Spec
    from .options import ChipOptions
    from .translate import Population

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


def decay_add(decay: np.ndarray, x: np.ndarray, add: np.ndarray, fma: bool) -> np.ndarray:
    """float32 ``decay*x + add``, fused (one rounding) or not (two)."""
    return fma_f32(decay, x, add) if fma else decay * x + add


class SynapticInput(NamedTuple):
    """One tick of integer synaptic input per neuron, split by weight sign (int64 ``[n]`` each)."""

    #: sum of the positive weights of the spikes that arrived
    exc: np.ndarray
    #: sum of the magnitudes of the negative weights
    inh: np.ndarray


# -- LIF (lif_no_delay / lif_conv2d) -------------------------------------------------------------------


class LIFParams(NamedTuple):
    """Per-neuron float32 parameters of the chip's LIF, and the chip's arithmetic switches."""

    alpha_decay: np.ndarray
    threshold: np.ndarray
    i_offset: np.ndarray
    zero_reset: bool = False
    #: spike on ``v >= threshold`` instead of ``v > threshold``
    ge: bool = False
    fma: bool = False


class LIFState(NamedTuple):
    """Membrane voltage after the tick's reset (chip units), float32 ``[n]``."""

    v: np.ndarray


def _fire(v: np.ndarray, p: LIFParams | CubaLIFParams) -> tuple[np.ndarray, np.ndarray]:
    v = v + p.i_offset
    fired = v >= p.threshold if p.ge else v > p.threshold
    v = np.where(fired, F32(0), v) if p.zero_reset else np.where(fired, v - p.threshold, v)
    return fired.astype(np.uint8), v


def lif_step(x: SynapticInput, state: LIFState, params: LIFParams) -> tuple[np.ndarray, LIFState]:
    """One tick: ``v = alpha*v + in`` (float32), ``+ i_offset``, fire, reset; returns (spikes uint8, new state)."""
    current = (x.exc - x.inh).astype(F32)
    v = decay_add(params.alpha_decay, state.v, current, params.fma)
    spikes, v = _fire(v, params)
    return spikes, LIFState(v)


# -- CubaLIF (lif_curr_exp_no_delay) ---------------------------------------------------------------------


class CubaLIFParams(NamedTuple):
    """Per-neuron float32 parameters of the chip's current-based LIF, and the arithmetic switches."""

    alpha_decay: np.ndarray
    exc_decay: np.ndarray
    inh_decay: np.ndarray
    threshold: np.ndarray
    i_offset: np.ndarray
    zero_reset: bool = False
    ge: bool = False
    fma: bool = False
    #: v integrates this tick's current (True) or the previous tick's
    updated: bool = True


class CubaLIFState(NamedTuple):
    """Voltage and the two synaptic currents, float32 ``[n]`` each."""

    v: np.ndarray
    i_exc: np.ndarray
    i_inh: np.ndarray


def cubalif_step(x: SynapticInput, state: CubaLIFState, params: CubaLIFParams) -> tuple[np.ndarray, CubaLIFState]:
    """One tick: currents decay and add the input, v integrates the current, fire, reset."""
    old = state.i_exc - state.i_inh
    i_exc = decay_add(params.exc_decay, state.i_exc, x.exc.astype(F32), params.fma)
    i_inh = decay_add(params.inh_decay, state.i_inh, x.inh.astype(F32), params.fma)
    current = i_exc - i_inh if params.updated else old
    v = decay_add(params.alpha_decay, state.v, current, params.fma)
    spikes, v = _fire(v, params)
    return spikes, CubaLIFState(v, i_exc, i_inh)


# -- converters: NIR node -> chip parameters (s2_nir, expression for expression) ---------------------------


def _flat(x: object, n: int) -> np.ndarray:
    arr = np.asarray(x)
    return np.broadcast_to(arr.ravel() if arr.ndim else arr, (n,)).astype(np.float32)


def convert_lif(node: Any, bias: np.ndarray, opts: ChipOptions, w_scale: float, n: int) -> dict[str, np.ndarray]:
    """LIF -> lif_no_delay/lif_conv2d parameters, exactly as s2_nir.convert_LIF."""
    dt = opts.dt
    tau = node.tau.flatten()
    if opts.integrator == "FORWARD":
        r_factor = (dt / tau) * node.r.flatten()
        v_leak_factor = dt / tau
        alpha_decay = 1 - dt / node.tau
    else:
        r_factor = (1 - np.exp(-dt / tau)) * node.r.flatten()
        v_leak_factor = 1 - np.exp(-dt / tau)
        alpha_decay = np.exp(-dt / tau)
    v_scale = 1.0 / r_factor
    scale = v_scale * w_scale
    return {
        "threshold": _flat(node.v_threshold.flatten() * scale, n),
        "alpha_decay": _flat(alpha_decay, n),
        "i_offset": _flat(v_leak_factor * node.v_leak.flatten() * scale + bias.flatten() * w_scale, n),
        "v_scale": np.broadcast_to(np.asarray(scale, dtype=np.float64).ravel(), (n,)).copy(),
    }


def convert_if(node: Any, bias: np.ndarray, opts: ChipOptions, w_scale: float, n: int) -> dict[str, np.ndarray]:
    """IF -> lif_no_delay/lif_conv2d with alpha_decay 1, exactly as s2_nir.convert_IF."""
    bias_factor = node.r.flatten()
    v_scale = 1.0 / bias_factor * w_scale
    return {
        "threshold": _flat(node.v_threshold.flatten() * v_scale, n),
        "alpha_decay": np.ones(n, dtype=np.float32),
        "i_offset": _flat(bias * w_scale, n),
        "v_scale": np.broadcast_to(np.asarray(v_scale, dtype=np.float64).ravel(), (n,)).copy(),
    }


def convert_cubalif(node: Any, bias: np.ndarray, opts: ChipOptions, w_scale: float, n: int) -> dict[str, np.ndarray]:
    """CubaLIF -> lif_curr_exp_no_delay, exactly as s2_nir.convert_CubaLIF (arrays flattened first)."""
    dt = opts.dt
    tau_mem = np.asarray(node.tau_mem).flatten()
    tau_syn = np.asarray(node.tau_syn).flatten()
    r = np.asarray(node.r).flatten()
    w_in = np.asarray(node.w_in).flatten()
    if opts.integrator == "FORWARD":
        r_factor = (dt / tau_mem) * r
        w_in_factor = (dt / tau_syn) * w_in
        v_leak_factor = dt / tau_mem
        syn_decay = 1 - dt / tau_syn
        alpha_decay = 1 - dt / tau_mem
    else:
        r_factor = (1 - np.exp(-dt / tau_mem)) * r
        w_in_factor = (1 - np.exp(-dt / tau_syn)) * w_in
        v_leak_factor = 1 - np.exp(-dt / tau_mem)
        syn_decay = np.exp(-dt / tau_syn)
        alpha_decay = np.exp(-dt / tau_mem)
    v_scale = 1.0 / r_factor
    i_scale = 1.0 / w_in_factor
    scale = v_scale * i_scale * w_scale
    v_leak = np.asarray(node.v_leak).flatten()
    return {
        "threshold": _flat(np.asarray(node.v_threshold).flatten() * scale, n),
        "alpha_decay": _flat(alpha_decay, n),
        "exc_decay": _flat(syn_decay, n),
        "inh_decay": _flat(syn_decay, n),
        "i_offset": _flat(v_leak_factor * v_leak * scale + bias * w_in * i_scale * w_scale, n),
        "v_scale": np.broadcast_to(np.asarray(scale, dtype=np.float64).ravel(), (n,)).copy(),
    }


# -- what the fast emulator hands a kernel -------------------------------------------------------------


class Layer(NamedTuple):
    """One population's whole chunk for a kernel call (built by the emulator; see kernels.py)."""

    #: merged input spike list (combined source index) and its per-tick start pointers
    idx: np.ndarray
    ptr: np.ndarray
    #: ticks from a source spike to its effect (1 + conn_delay)
    shift: int
    #: (block_ptr, blocks, syn_count) and the padded weights of the (positive or all) synapse table
    runs: tuple[np.ndarray, np.ndarray, np.ndarray]
    wflat: np.ndarray
    acc: np.ndarray
    #: the same for the magnitudes of negative weights (models with ``split_sign``; empty otherwise)
    runs_neg: tuple[np.ndarray, np.ndarray, np.ndarray]
    wflat_neg: np.ndarray
    acc_neg: np.ndarray
    #: float32 per-neuron parameters in the internal layout, by name (``param_names``)
    params: Mapping[str, np.ndarray]
    #: outputs: spikes [ticks, padded n], voltages, whether to record them, spike list of the output
    spk: np.ndarray
    v_out: np.ndarray
    record_v: bool
    out_idx: np.ndarray
    out_ptr: np.ndarray
    #: per combined source, the id of its target-block sequence (kernels.add_spikes_grouped)
    group: np.ndarray
    #: integer-input formulation of this chunk: kernels.SCATTER, SCATTER_GROUPED or DENSE
    mode: int
    #: the single source's spike rows ``[ticks, padded n_src]`` and its dense table (ptr, tgt, octet,
    #: tab, table, counts: emulator.DenseTable), read by the dense formulation
    src_spk: np.ndarray
    dense: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    #: voltage buffer ``[n]`` the kernel starts from zero (reused across chunks)
    v: np.ndarray
    #: kernels.PER_NEURON, UNIFORM (every neuron shares its parameters), UNIFORM_NO_OFFSET (and i_offset is 0)
    #: or DECAY_PER_NEURON (only alpha_decay differs, i_offset 0)
    uniform: int = 0


def _launch_lif(kernel: Callable[..., int], layer: Layer, opts: ChipOptions) -> int:
    p = layer.params
    return kernel(
        layer.idx, layer.ptr, layer.shift, *layer.runs, layer.wflat, layer.acc, layer.group, layer.mode,
        layer.src_spk, *layer.dense,
        p["alpha_decay"], p["threshold"], p["i_offset"], layer.uniform, opts.reset == "ZERO", opts.threshold_op == ">=",
        opts.fma, layer.v, layer.spk, layer.v_out, layer.record_v, layer.out_idx, layer.out_ptr,
    )


def _launch_cubalif(kernel: Callable[..., int], layer: Layer, opts: ChipOptions) -> int:
    p = layer.params
    return kernel(
        layer.idx, layer.ptr, layer.shift, *layer.runs, layer.wflat, layer.acc,
        *layer.runs_neg, layer.wflat_neg, layer.acc_neg,
        p["alpha_decay"], p["exc_decay"], p["inh_decay"], p["threshold"], p["i_offset"],
        opts.reset == "ZERO", opts.threshold_op == ">=", opts.fma, opts.cuba_current == "updated",
        layer.spk, layer.v_out, layer.record_v, layer.out_idx, layer.out_ptr,
    )


def _lif_params(pop: Population, opts: ChipOptions) -> LIFParams:
    return LIFParams(
        pop.param("alpha_decay"), pop.param("threshold"), pop.param("i_offset"),
        opts.reset == "ZERO", opts.threshold_op == ">=", bool(opts.fma),
    )


def _cubalif_params(pop: Population, opts: ChipOptions) -> CubaLIFParams:
    return CubaLIFParams(
        pop.param("alpha_decay"), pop.param("exc_decay"), pop.param("inh_decay"), pop.param("threshold"),
        pop.param("i_offset"), opts.reset == "ZERO", opts.threshold_op == ">=", bool(opts.fma),
        opts.cuba_current == "updated",
    )


def _zeros_state(kind: Callable[..., Any], fields: int) -> Callable[[int], Any]:
    return lambda n: kind(*(np.zeros(n, dtype=F32) for _ in range(fields)))


# -- the records ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NeuronModel:
    """Everything about one chip neuron model, from NIR node to compiled kernel."""

    #: registry key
    name: str
    #: NIR node type -> converter ``(node, bias, opts, w_scale, n) -> {param: float32 [n], "v_scale": ...}``
    converters: Mapping[str, Callable[..., dict[str, np.ndarray]]]
    #: chip population model when fed by dense projections
    dense_model: str
    #: chip population model when a Conv2d / SumPool2d feeds it; None: the chip has no conv variant
    conv_model: str | None
    #: float32 per-neuron parameters the converter returns and the kernel reads (Population attributes)
    param_names: tuple[str, ...]
    #: spec facts (bytes) of one neuron's state and parameters, summed; the input ring comes on top
    state_bytes: tuple[str, ...]
    #: excitatory and inhibitory weights kept in two synapse tables (two currents)
    split_sign: bool
    #: the per-tick reference and its state/parameter builders
    step: Callable[[SynapticInput, Any, Any], tuple[np.ndarray, Any]]
    init_state: Callable[[int], Any]
    params: Callable[[Population, ChipOptions], Any]
    #: name of the compiled whole-layer kernel in kernels.KERNELS, and how to call it
    kernel: str
    launch: Callable[[Callable[..., int], Layer, ChipOptions], int]

    @property
    def nir_types(self) -> tuple[str, ...]:
        """NIR node types this model accepts."""
        return tuple(self.converters)

    @property
    def conv_allowed(self) -> bool:
        """Whether a conv (or sum-pool) projection may feed this model."""
        return self.conv_model is not None

    def chip_model(self, conv: bool) -> str:
        """The chip population model for a population fed by a conv (``conv``) or only by dense projections."""
        if conv and self.conv_model is None:  # translate checks conv_allowed first and names the node
            msg = f"neuron model {self.name!r} has no conv variant"
            raise ValueError(msg)
        return self.conv_model if conv and self.conv_model is not None else self.dense_model

    def bytes_per_neuron(self, spec: SpiNNaker2Spec, conn_delay: int) -> int:
        """SRAM per neuron: state and parameters, plus the synaptic-input ring (one slot per tick of delay)."""
        ring = (spec.input_buffer_words + int(conn_delay)) * (spec.accumulator_bits // 8)
        return int(sum(getattr(spec, f) for f in self.state_bytes) + ring)


LIF = NeuronModel(
    name="lif",
    converters={"LIF": convert_lif, "IF": convert_if},
    dense_model="lif_no_delay",
    conv_model="lif_conv2d",
    param_names=("alpha_decay", "threshold", "i_offset"),
    state_bytes=("lif_neuron_bytes",),
    split_sign=False,
    step=lif_step,
    init_state=_zeros_state(LIFState, 1),
    params=_lif_params,
    kernel="lif_layer",
    launch=_launch_lif,
)

CUBA_LIF = NeuronModel(
    name="cuba_lif",
    converters={"CubaLIF": convert_cubalif},
    dense_model="lif_curr_exp_no_delay",
    conv_model=None,
    param_names=("alpha_decay", "exc_decay", "inh_decay", "threshold", "i_offset"),
    state_bytes=("lif_neuron_bytes", "cuba_extra_bytes"),
    split_sign=True,
    step=cubalif_step,
    init_state=_zeros_state(CubaLIFState, 3),
    params=_cubalif_params,
    kernel="cuba_layer",
    launch=_launch_cubalif,
)

#: every chip neuron model, by name
NEURON_MODELS: dict[str, NeuronModel] = {m.name: m for m in (LIF, CUBA_LIF)}

#: NIR neuron node type -> the chip model that runs it
BY_NIR_TYPE: dict[str, NeuronModel] = {t: m for m in NEURON_MODELS.values() for t in m.nir_types}


def run_neuron(model: NeuronModel, xs: SynapticInput, params: Any, state: Any = None) -> tuple[np.ndarray, np.ndarray, Any]:
    """``*_run``: step ``model`` over ``xs`` (``[T, n]`` each); returns (spikes uint8, v float32, final state)."""
    T, n = xs.exc.shape
    state = model.init_state(n) if state is None else state
    spikes = np.zeros((T, n), dtype=np.uint8)
    v = np.zeros((T, n), dtype=F32)
    for t in range(T):
        spikes[t], state = model.step(SynapticInput(xs.exc[t], xs.inh[t]), state, params)
        v[t] = state.v
    return spikes, v, state
