"""The fast emulator: the chip's arithmetic (SPINNAKER2.md section 5), a whole chunk layer by layer.

A projection delivers the spikes of tick t at tick t+1+conn_delay, so in a feed-forward graph a
population's synaptic input for the whole chunk depends only on its sources' complete spike trains:
compute populations in dependency order, each in two compiled passes:

1. scatter: every source spike adds its int8 weights to an int32 accumulator ``[T, n]`` (event driven,
   like the chip; integer adds are exact, so this equals the chip's integer sum in any order). The
   synapses are stored as runs of consecutive targets (a conv tap hits C_out neighbours when the
   target is laid out H,W,C), so the innermost loop is a contiguous vector add.
2. scan: the float32 neuron recurrence over time, vectorised across neurons. numba compiles it without
   fastmath, so LLVM neither contracts ``a*v + x`` into an FMA nor reorders the additions.

Graphs with recurrent projections run the per-tick reference path (reference.py). Results are
bit-identical to reference.py (tests/test_emulator_equivalence.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import BackendError
from .memory import MemoryModel
from .translate import ChipNetwork, Population, Projection, translate

log = logging.getLogger(__name__)

_KERNELS: dict[str, Any] = {}


def _kernels() -> dict[str, Any]:
    """Compile (or load from numba's on-disk cache) the scatter and scan kernels on first use."""
    if _KERNELS:
        return _KERNELS
    import numba as nb

    @nb.njit(cache=True, nogil=True)
    def fma32(a: float, b: float, c: float) -> float:  # pragma: no cover - compiled
        # a*b exact in float64; round the sum to odd with TwoSum, then to float32: correctly rounded fma
        p = np.float64(a) * np.float64(b)
        c64 = np.float64(c)
        s = p + c64
        bb = s - p
        err = (p - (s - bb)) + (c64 - bb)
        f = np.float32(s)
        if err != 0.0 and np.float64(f) != s:
            # float32 midpoints are float64 numbers, so rounding the sum to float64 can only go wrong by
            # landing exactly on one; the sign of the TwoSum error then says which neighbour is right
            if np.float64(f) < s:
                lo, hi = f, np.nextafter(f, np.float32(np.inf))
            else:
                lo, hi = np.nextafter(f, np.float32(-np.inf)), f
            if s == (np.float64(lo) + np.float64(hi)) * 0.5:
                return hi if err > 0.0 else lo
        return f

    @nb.njit(cache=True, nogil=True)
    def scatter(spk, shift, src_ptr, run_tgt, run_w0, run_len, wflat, acc):  # pragma: no cover - compiled
        T = spk.shape[0]
        n_src = spk.shape[1]
        events = 0
        for t in range(T - shift):
            row = acc[t + shift]
            srow = spk[t]
            for j in range(n_src):
                if srow[j]:
                    for r in range(src_ptr[j], src_ptr[j + 1]):
                        tg = run_tgt[r]
                        w0 = run_w0[r]
                        ln = run_len[r]
                        for k in range(ln):
                            row[tg + k] += wflat[w0 + k]
                        events += ln
        return events

    @nb.njit(cache=True, nogil=True)
    def lif_scan(acc, alpha, thr, ioff, zero_reset, ge, fma, spk_out, v_out, record_v):  # pragma: no cover
        T, n = acc.shape
        v = np.zeros(n, dtype=np.float32)
        zero = np.float32(0.0)
        for t in range(T):
            a_t = acc[t]
            s_t = spk_out[t]
            if fma:
                for i in range(n):
                    x = fma32(alpha[i], v[i], np.float32(a_t[i])) + ioff[i]
                    f = (x >= thr[i]) if ge else (x > thr[i])
                    v[i] = (zero if zero_reset else x - thr[i]) if f else x
                    s_t[i] = f
            elif ge:
                for i in range(n):
                    x = alpha[i] * v[i] + np.float32(a_t[i])
                    x = x + ioff[i]
                    f = x >= thr[i]
                    r = zero if zero_reset else x - thr[i]
                    v[i] = r if f else x
                    s_t[i] = f
            else:
                for i in range(n):
                    x = alpha[i] * v[i] + np.float32(a_t[i])
                    x = x + ioff[i]
                    f = x > thr[i]
                    r = zero if zero_reset else x - thr[i]
                    v[i] = r if f else x
                    s_t[i] = f
            if record_v:
                v_out[t] = v

    @nb.njit(cache=True, nogil=True)
    def cuba_scan(pos, neg, alpha, exc, inh, thr, ioff, zero_reset, ge, fma, updated, spk_out, v_out, record_v):  # pragma: no cover
        T, n = pos.shape
        v = np.zeros(n, dtype=np.float32)
        ie = np.zeros(n, dtype=np.float32)
        ii = np.zeros(n, dtype=np.float32)
        zero = np.float32(0.0)
        for t in range(T):
            for i in range(n):
                old = ie[i] - ii[i]
                if fma:
                    ie[i] = fma32(exc[i], ie[i], np.float32(pos[t, i]))
                    ii[i] = fma32(inh[i], ii[i], np.float32(neg[t, i]))
                else:
                    ie[i] = exc[i] * ie[i] + np.float32(pos[t, i])
                    ii[i] = inh[i] * ii[i] + np.float32(neg[t, i])
                cur = (ie[i] - ii[i]) if updated else old
                if fma:
                    x = fma32(alpha[i], v[i], cur)
                else:
                    x = alpha[i] * v[i] + cur
                x = x + ioff[i]
                f = (x >= thr[i]) if ge else (x > thr[i])
                v[i] = (zero if zero_reset else x - thr[i]) if f else x
                spk_out[t, i] = f
            if record_v:
                v_out[t] = v

    _KERNELS.update(fma32=fma32, scatter=scatter, lif_scan=lif_scan, cuba_scan=cuba_scan)
    return _KERNELS


# -- layouts and synapse runs -------------------------------------------------------------------------------


def internal_order(net: ChipNetwork, pop: Population) -> np.ndarray:
    """NIR flat index -> internal index. Conv targets use H,W,C so one kernel tap hits C_out adjacent neurons."""
    ident = np.arange(pop.n)
    convs = [p for p in net.incoming(pop.name) if p.kind == "conv"]
    if not convs or len(pop.shape) != 3 or pop.shape[0] == 1:
        return ident
    c, h, w = pop.shape
    cc, yy, xx = np.unravel_index(ident, (c, h, w))
    return ((yy * w + xx) * c + cc).astype(np.int64)


def _pooled_index(proj: Projection) -> np.ndarray:
    """For each source neuron (flat NIR index) its pooled flat index, or -1 when pooling drops it."""
    n = int(np.prod(proj.src_shape))
    if proj.pool == (1, 1):
        return np.arange(n)
    c, h, w = proj.src_shape
    ph, pw = proj.pool
    ho, wo = h // ph, w // pw
    cc, yy, xx = np.unravel_index(np.arange(n), (c, h, w))
    py, px = yy // ph, xx // pw
    keep = (py < ho) & (px < wo)
    return np.where(keep, (cc * ho + py) * wo + px, -1)


def synapse_list(proj: Projection) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All nonzero synapses of a projection in NIR indices: (source neuron, target neuron, int weight)."""
    pooled = _pooled_index(proj)
    if proj.kind == "dense":
        p_src, p_tgt = np.nonzero(proj.weight)
        w = proj.weight[p_src, p_tgt].astype(np.int32)
    else:
        c_in, c_out, kh, kw = proj.weight.shape
        _, h, wd = proj.pooled_shape
        _, ho, wo = proj.out_shape
        srcs, tgts, ws = [], [], []
        ci, yi, xi = np.unravel_index(np.arange(c_in * h * wd), (c_in, h, wd))
        for ky in range(kh):
            for kx in range(kw):
                ny = yi + proj.padding[0] - ky
                nx = xi + proj.padding[1] - kx
                ok = (ny >= 0) & (nx >= 0) & (ny % proj.stride[0] == 0) & (nx % proj.stride[1] == 0)
                oy, ox = ny // proj.stride[0], nx // proj.stride[1]
                ok &= (oy < ho) & (ox < wo)
                src_ok = np.nonzero(ok)[0]
                for co in range(c_out):
                    wv = proj.weight[ci[src_ok], co, ky, kx]
                    nz = wv != 0
                    srcs.append(src_ok[nz])
                    tgts.append((co * ho + oy[src_ok[nz]]) * wo + ox[src_ok[nz]])
                    ws.append(wv[nz].astype(np.int32))
        p_src = np.concatenate(srcs) if srcs else np.zeros(0, np.int64)
        p_tgt = np.concatenate(tgts) if tgts else np.zeros(0, np.int64)
        w = np.concatenate(ws) if ws else np.zeros(0, np.int32)
    if proj.pool == (1, 1):
        return p_src.astype(np.int64), p_tgt.astype(np.int64), w
    # expand pooled sources back to the source neurons that sum into them
    src_of_pooled = np.argsort(pooled, kind="stable")
    valid = pooled[src_of_pooled] >= 0
    src_of_pooled = src_of_pooled[valid]
    area = proj.pool[0] * proj.pool[1]
    members = src_of_pooled.reshape(-1, area)  # [n_pooled, area], each pooled index has exactly `area` sources
    src = members[p_src].ravel()
    return src.astype(np.int64), np.repeat(p_tgt, area).astype(np.int64), np.repeat(w, area)


@dataclass
class SynapseRuns:
    """Synapses grouped by source neuron, as runs of consecutive (internal) targets with their weights."""

    src_ptr: np.ndarray
    run_tgt: np.ndarray
    run_w0: np.ndarray
    run_len: np.ndarray
    wflat: np.ndarray
    n_synapses: int


def build_runs(src: np.ndarray, tgt: np.ndarray, w: np.ndarray, n_src: int) -> SynapseRuns:
    """Sort synapses by (source, target) and merge consecutive targets into runs."""
    order = np.lexsort((tgt, src))
    src, tgt, w = src[order], tgt[order], w[order]
    new_run = np.ones(src.size, dtype=bool)
    if src.size > 1:
        new_run[1:] = (src[1:] != src[:-1]) | (tgt[1:] != tgt[:-1] + 1)
    starts = np.nonzero(new_run)[0]
    lengths = np.diff(np.append(starts, src.size))
    run_src = src[starts]
    src_ptr = np.zeros(n_src + 1, dtype=np.int64)
    np.add.at(src_ptr, run_src + 1, 1)
    return SynapseRuns(
        np.cumsum(src_ptr), tgt[starts].astype(np.int64), starts.astype(np.int64), lengths.astype(np.int64),
        np.ascontiguousarray(w, dtype=np.int32), int(src.size),
    )


@dataclass
class PlannedPopulation:
    """A population prepared for the fast path: layout, parameters in layout order, incoming runs."""

    pop: Population
    to_internal: np.ndarray
    params: dict[str, np.ndarray]
    #: (source name, runs) for LIF; for CubaLIF the runs hold positive and negative weights separately
    runs: list[tuple[str, SynapseRuns]]
    runs_neg: list[tuple[str, SynapseRuns]]


def plan_network(net: ChipNetwork) -> dict[str, PlannedPopulation]:
    """Precompute layouts and synapse runs (once per loaded graph)."""
    orders = {name: internal_order(net, pop) for name, pop in net.populations.items()}
    plans: dict[str, PlannedPopulation] = {}
    for name, pop in net.populations.items():
        if pop.model == "spike_list":
            continue
        inv = np.empty(pop.n, dtype=np.int64)
        inv[orders[name]] = np.arange(pop.n)  # internal -> NIR
        params = {
            k: np.ascontiguousarray(getattr(pop, k)[inv], dtype=np.float32)
            for k in ("threshold", "alpha_decay", "i_offset", "exc_decay", "inh_decay")
            if getattr(pop, k) is not None
        }
        bound = sum(p.fan_in_bound() for p in net.incoming(name))
        if bound >= 2**31:
            msg = f"population {name!r}: |synaptic input| can reach {bound}, beyond the int32 accumulator"
            raise BackendError(msg)
        runs, runs_neg = [], []
        cuba = pop.model == "lif_curr_exp_no_delay"
        for proj in net.incoming(name):
            s, t, w = synapse_list(proj)
            s_int = orders[proj.source][s]
            t_int = orders[name][t]
            n_src = net.populations[proj.source].n
            if cuba:
                pos, neg = w > 0, w < 0
                runs.append((proj.source, build_runs(s_int[pos], t_int[pos], w[pos], n_src)))
                runs_neg.append((proj.source, build_runs(s_int[neg], t_int[neg], -w[neg], n_src)))
            else:
                runs.append((proj.source, build_runs(s_int, t_int, w, n_src)))
        plans[name] = PlannedPopulation(pop, orders[name], params, runs, runs_neg)
    return plans


def check_chunk(net: ChipNetwork, spikes: Any, record: Any) -> np.ndarray:
    """Validate a chunk ``[T, *input_shape]`` of 0/1 spikes and ``record``; returns it as uint8."""
    arr = np.asarray(spikes)
    shape = net.input_shape
    if arr.ndim != len(shape) + 1 or tuple(arr.shape[1:]) != tuple(shape):
        msg = f"input spikes must have shape [T, {', '.join(map(str, shape))}], found {list(arr.shape)}"
        raise BackendError(msg)
    if arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 1):
            msg = f"input spikes must be 0/1, found values in [{arr.min()}, {arr.max()}]; clip counts to binary spikes"
            raise BackendError(msg)
        arr = arr.astype(np.uint8)
    elif arr.size and arr.max() > 1:
        msg = f"input spikes must be 0/1, found max {arr.max()}; clip counts to binary spikes"
        raise BackendError(msg)
    bad = sorted(set(record) - {"spikes", "v"})
    if bad:
        msg = f"record {bad} not recordable; expected a subset of ('spikes', 'v')"
        raise BackendError(msg)
    return np.ascontiguousarray(arr)


def run_fast(net: ChipNetwork, plans: dict[str, PlannedPopulation], spikes: np.ndarray, record: tuple[str, ...]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int, int]:
    """Layer-by-layer chunk; returns (spikes by population in NIR order, voltages, ticks, synaptic events)."""
    k = _kernels()
    opts = net.options
    T = spikes.shape[0]
    ticks = T + net.latency_ticks
    shift = 1 + int(opts.conn_delay)
    internal: dict[str, np.ndarray] = {}
    inp = np.zeros((ticks, net.populations[net.input_name].n), dtype=np.uint8)
    inp[:T] = spikes.reshape(T, -1)
    internal[net.input_name] = inp
    record_v = "v" in record
    zero_reset = opts.reset == "ZERO"
    ge = opts.threshold_op == ">="
    events = 0
    voltages: dict[str, np.ndarray] = {}
    assert net.feedforward_order is not None  # noqa: S101 - run_fast is only called for feed-forward graphs
    for name in net.feedforward_order:
        if name not in plans:
            continue
        plan = plans[name]
        n = plan.pop.n
        spk = np.zeros((ticks, n), dtype=np.uint8)
        v_out = np.zeros((ticks, n) if record_v else (1, 1), dtype=np.float32)
        acc = np.zeros((ticks, n), dtype=np.int32)
        for src, runs in plan.runs:
            events += k["scatter"](internal[src], shift, runs.src_ptr, runs.run_tgt, runs.run_w0, runs.run_len, runs.wflat, acc)
        p = plan.params
        if plan.pop.model == "lif_curr_exp_no_delay":
            neg = np.zeros((ticks, n), dtype=np.int32)
            for src, runs in plan.runs_neg:
                events += k["scatter"](internal[src], shift, runs.src_ptr, runs.run_tgt, runs.run_w0, runs.run_len, runs.wflat, neg)
            k["cuba_scan"](acc, neg, p["alpha_decay"], p["exc_decay"], p["inh_decay"], p["threshold"], p["i_offset"],
                           zero_reset, ge, opts.fma, opts.cuba_current == "updated", spk, v_out, record_v)
        else:
            k["lif_scan"](acc, p["alpha_decay"], p["threshold"], p["i_offset"], zero_reset, ge, opts.fma, spk, v_out, record_v)
        internal[name] = spk
        if record_v:
            voltages[name] = v_out[:, plan.to_internal]
    out = {name: internal[name][:, plans[name].to_internal] for name in plans}
    return out, voltages, ticks, events


class EmulatorBackend:
    """Bit-faithful software SpiNNaker2 (the daemon's default backend)."""

    name = "emulator"

    def __init__(self, **options: Any) -> None:
        from . import split_options

        self.options, _ = split_options(options, {}, self.name)
        self.net: ChipNetwork | None = None
        self.memory: MemoryModel | None = None
        self.plans: dict[str, PlannedPopulation] = {}
        #: synaptic events of the last run (sum over projections of targets hit per source spike)
        self.last_events = 0

    def load(self, graph: Any) -> Any:
        """Translate, map and prepare ``graph``; returns its MappingReport."""
        self.net = translate(graph, self.options)
        self.memory = MemoryModel(self.net)
        self.plans = plan_network(self.net)
        return self.memory.report

    def _loaded(self) -> ChipNetwork:
        if self.net is None:
            msg = f"backend {self.name!r}: no graph loaded; call load(graph) first"
            raise BackendError(msg)
        return self.net

    @property
    def report(self) -> Any:
        self._loaded()
        return self.memory.report  # type: ignore[union-attr]

    @property
    def max_ticks(self) -> int:
        """Longest chunk (input ticks) the chip holds at the configured input rate, drain ticks excluded."""
        net = self._loaded()
        return max(0, self.memory.report.max_ticks - net.latency_ticks)  # type: ignore[union-attr]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._loaded().input_shape

    @property
    def n_outputs(self) -> int:
        return self._loaded().n_outputs

    @property
    def latency_ticks(self) -> int:
        return self._loaded().latency_ticks

    def run(self, spikes: Any, record: tuple[str, ...] = ("spikes",)) -> Any:
        """Run one chunk ``[T, *input_shape]`` of 0/1 spikes for ``T + latency_ticks`` ticks."""
        from . import RunResult
        from .reference import run_network

        net = self._loaded()
        record = tuple(record)
        arr = check_chunk(net, spikes, record)
        self.memory.check_chunk(arr.shape[0] + net.latency_ticks, record, arr)  # type: ignore[union-attr]
        if net.feedforward_order is None:
            all_spikes, voltages, ticks = run_network(net, arr, record)
            self.last_events = -1
        else:
            all_spikes, voltages, ticks, self.last_events = run_fast(net, self.plans, arr, record)
        out = np.concatenate([all_spikes[n] for n in net.output_names], axis=1)
        return RunResult(out, all_spikes if "spikes" in record else {}, voltages, ticks)

    def close(self) -> None:
        self.net = None
        self.plans = {}
