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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import BackendError
from .api import RunResult
from .base import TranslatedBackend
from .neurons import Layer
from .reference import run_network
from .translate import ChipNetwork, Population, Projection

log = logging.getLogger(__name__)

#: the kernels add synapse runs in blocks of this many targets (kernels.BLOCK; kept here so planning
#: does not import numba)
BLOCK = 16


def _kernels() -> dict[str, Any]:
    """The compiled kernels (kernels.py imports numba; loaded on first use, from numba's disk cache)."""
    from . import kernels

    return kernels.KERNELS


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
    # zero weights are kept unless most are zero: a zero inside a run costs one lane of a SIMD add,
    # a run split in two costs a whole run
    keep = (proj.weight != 0) if np.count_nonzero(proj.weight) * 2 < proj.weight.size else np.ones(proj.weight.shape, bool)
    if proj.kind == "dense":
        p_src, p_tgt = np.nonzero(keep)
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
                    nz = keep[ci[src_ok], co, ky, kx]
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

    @property
    def blocks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What the kernel reads: per source a list of BLOCK-wide adds.

        (block_ptr int64 ``[n_src+1]``, blocks int32 ``[2B]`` = flat (first target, first weight) pairs,
        synapses per source int64 ``[n_src]``). One flat loop per spike instead of runs of varying
        length keeps branch mispredictions to about one per spike.
        """
        if getattr(self, "_blocks", None) is None:
            n_blocks = -(-self.run_len // BLOCK)
            run_of_block = np.repeat(np.arange(self.run_len.size), n_blocks)
            first = np.cumsum(n_blocks) - n_blocks
            k = (np.arange(run_of_block.size) - first[run_of_block]) * BLOCK
            blocks = np.stack([self.run_tgt[run_of_block] + k, self.run_w0[run_of_block] + k], axis=1)
            runs_per_src = np.diff(self.src_ptr)
            src_of_run = np.repeat(np.arange(runs_per_src.size), runs_per_src)
            per_src_blocks = np.bincount(src_of_run, weights=n_blocks, minlength=runs_per_src.size).astype(np.int64)
            syn = np.bincount(src_of_run, weights=self.run_len, minlength=runs_per_src.size).astype(np.int64)
            ptr = np.zeros(runs_per_src.size + 1, dtype=np.int64)
            np.cumsum(per_src_blocks, out=ptr[1:])
            self._blocks = (ptr, np.ascontiguousarray(blocks, dtype=np.int32).ravel(), syn)
        return self._blocks


def build_runs(src: np.ndarray, tgt: np.ndarray, w: np.ndarray, n_src: int, dtype: Any = np.int32) -> SynapseRuns:
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
    # conv runs repeat the same kernel slices for every source position: store each distinct weight
    # sequence once, so the weights a chunk touches stay in L1 instead of streaming megabytes per tick
    segments: dict[bytes, int] = {}
    pieces: list[np.ndarray] = []
    w0 = np.empty(starts.size, dtype=np.int64)
    offset = 0
    w32 = w.astype(np.int32)
    for r, (a, ln) in enumerate(zip(starts.tolist(), lengths.tolist(), strict=True)):
        seg = w32[a : a + ln]
        key = seg.tobytes()
        at = segments.get(key)
        if at is None:
            at = segments[key] = offset
            padded = -(-ln // BLOCK) * BLOCK  # the kernel adds whole blocks; the padding adds zeros
            pieces.append(np.concatenate([seg, np.zeros(padded - ln, np.int32)]))
            offset += padded
        w0[r] = at
    wflat = np.concatenate(pieces) if pieces else np.zeros(0, np.int32)
    return SynapseRuns(
        np.cumsum(src_ptr), tgt[starts].astype(np.int64), w0, lengths.astype(np.int64),
        np.ascontiguousarray(wflat, dtype=dtype), int(src.size),
    )


@dataclass
class DenseTable:
    """The dense formulation of a population's integer input: every synapse, by target block and source octet.

    Block ``b`` covers targets ``tgt[b] .. tgt[b]+BLOCK-1``; it reads source octets ``octet[ptr[b]:ptr[b+1]]``
    (sources ``8*o .. 8*o+7``), and for octet entry ``k`` the BLOCK sums of the spiking subset's weights
    are ``table[tab[k] + BLOCK*mask :]`` (256 masks). Distinct octet weight matrices are stored once (a
    conv's kernel slices), which is what keeps the table in cache.
    """

    ptr: np.ndarray
    tgt: np.ndarray
    octet: np.ndarray
    tab: np.ndarray
    table: np.ndarray
    #: scratch: spikes per source over a chunk (the synaptic-event count), int64 ``[n_src]``
    counts: np.ndarray

    @property
    def pairs(self) -> int:
        """(source octet, target block) pairs: the work of one tick, whatever the activity."""
        return int(self.octet.size)


#: the dense formulation is planned only when its subset-sum tables fit in this many bytes (about a
#: core's L2 share): beyond, every table load would come from memory
DENSE_TABLE_BYTES = 512 * 1024

#: _SUBSETS[m, k] = bit k of m: the 256 subsets of an octet
_SUBSETS = ((np.arange(256)[:, None] >> np.arange(8)[None, :]) & 1).astype(np.int64)


def dense_table(src: np.ndarray, tgt: np.ndarray, w: np.ndarray, n_tgt: int, dtype: Any, n_src: int | None = None) -> DenseTable | None:
    """Subset-sum tables for synapses in internal indices; None when they would not fit DENSE_TABLE_BYTES."""
    blk, lane = tgt // BLOCK, tgt % BLOCK
    octet, bit = src // 8, src % 8
    n_oct = int(octet.max(initial=0)) + 1
    uniq, pair_of = np.unique(blk * n_oct + octet, return_inverse=True)
    mats = np.zeros((uniq.size, 8, BLOCK), dtype=np.int64)
    np.add.at(mats, (pair_of, bit, lane), w.astype(np.int64))
    distinct, mat_of_pair = np.unique(mats.reshape(uniq.size, -1), axis=0, return_inverse=True)
    if distinct.shape[0] * 256 * BLOCK * np.dtype(dtype).itemsize > DENSE_TABLE_BYTES:
        return None
    # sums of subsets of one target's weights stay within the fan-in bound the accumulator holds
    sums = np.einsum("mk,dkl->dml", _SUBSETS, distinct.reshape(-1, 8, BLOCK))
    n_blocks = -(-n_tgt // BLOCK)
    ptr = np.zeros(n_blocks + 1, dtype=np.int64)
    np.cumsum(np.bincount(uniq // n_oct, minlength=n_blocks), out=ptr[1:])
    # tables 8 KiB apart would all map their mask-0 rows to one L1 set; one cache line of padding
    # per table spreads them (the mask-0 row is the one a quiet octet reads every tick)
    stride = 256 * BLOCK + 64 // np.dtype(dtype).itemsize
    table = aligned_zeros(distinct.shape[0] * stride, dtype)  # BLOCK-wide loads never split a cache line
    table.reshape(-1, stride)[:, : 256 * BLOCK] = sums.reshape(distinct.shape[0], -1)
    return DenseTable(
        ptr, (np.arange(n_blocks) * BLOCK).astype(np.int64), (uniq % n_oct).astype(np.int32),
        (mat_of_pair.ravel() * stride).astype(np.int64), table,
        np.zeros(int(src.max(initial=-1)) + 1 if n_src is None else n_src, dtype=np.int64),
    )


def source_groups(runs: SynapseRuns) -> np.ndarray:
    """Per source, an id shared by exactly the sources whose synapses hit the same target blocks."""
    ptr, blocks, _ = runs.blocks
    targets = blocks[0::2]
    ids: dict[bytes, int] = {}
    group = np.empty(ptr.size - 1, dtype=np.int64)
    for j in range(ptr.size - 1):
        group[j] = ids.setdefault(targets[ptr[j] : ptr[j + 1]].tobytes(), len(ids))
    return group


def uniformity(params: dict[str, np.ndarray]) -> int:
    """How a population's parameters vary (kernels' modes): UNIFORM_NO_OFFSET (2) / UNIFORM (1) when every
    neuron has the same parameters (bit for bit), DECAY_PER_NEURON (3) when only ``alpha_decay`` differs and
    ``i_offset`` is zero, else PER_NEURON (0)."""

    def shared(p: np.ndarray) -> bool:
        return p.size == 0 or np.array_equal(p.view(np.uint32), np.full(p.size, p.view(np.uint32)[0]))

    offset = params.get("i_offset")
    no_offset = offset is not None and offset.size > 0 and bool(np.all(offset == 0.0))
    if all(shared(p) for p in params.values()):
        return 2 if no_offset else 1  # (offset is shared here)
    others = [p for k, p in params.items() if k != "alpha_decay"]
    if "alpha_decay" in params and no_offset and all(shared(p) for p in others):
        return 3
    return 0


#: the grouped scatter pays off when sources share target blocks in groups at least this large on
#: average (measured by benchmarks/measure_crossover.py: conv input positions of 16 channels gain 2x,
#: the 2 polarities of a DVS pixel, 1024 sources apart, lose)
GROUPED_MIN_SOURCES = 8


@dataclass
class PlannedPopulation:
    """A population prepared for the fast path: layout, parameters in layout order, incoming runs.

    Incoming projections are merged into one synapse table over a combined source index space
    (``offsets[source]`` + the source's internal index), so one kernel call handles any fan-in.
    """

    pop: Population
    to_internal: np.ndarray
    params: dict[str, np.ndarray]
    sources: tuple[str, ...]
    offsets: tuple[int, ...]
    runs: SynapseRuns
    #: CubaLIF: negative weights (as magnitudes) go to the inhibitory current; LIF: empty table
    runs_neg: SynapseRuns
    #: integer type of the synaptic-input accumulator (and of the stored weights)
    acc_dtype: np.dtype
    #: per combined source: id of its target-block sequence (sources with one id hit the same blocks)
    group: np.ndarray
    #: whether the grouped scatter (several spikes of one group summed in registers) pays off here
    grouped: bool
    #: dense formulation (single-source, one-table models): per target block the synapses feeding it
    dense: DenseTable | None
    #: kernels.PER_NEURON / UNIFORM / UNIFORM_NO_OFFSET: whether the neurons share their parameters
    uniform: int = 0


def plan_network(net: ChipNetwork) -> dict[str, PlannedPopulation]:
    """Precompute layouts and synapse runs (once per loaded graph)."""
    orders = {name: internal_order(net, pop) for name, pop in net.populations.items()}
    plans: dict[str, PlannedPopulation] = {}
    for name, pop in net.populations.items():
        if pop.neuron is None:
            continue
        inv = np.empty(pop.n, dtype=np.int64)
        inv[orders[name]] = np.arange(pop.n)  # internal -> NIR
        params = {k: np.ascontiguousarray(pop.param(k)[inv], dtype=np.float32) for k in pop.neuron.param_names}
        incoming = net.incoming(name)
        # integer sums are exact in any order; the accumulator only has to hold the largest possible
        # |input| of one tick: int16 (twice the SIMD lanes of int32) when sum|w| over the fan-in allows
        bound = sum(p.fan_in_bound() for p in incoming)
        if bound > net.spec.accumulator_max:
            msg = f"population {name!r}: |synaptic input| can reach {bound}, beyond the {net.spec.accumulator_bits}-bit accumulator"
            raise BackendError(msg)
        acc_dtype = np.dtype(np.int16) if bound < 2**15 else np.dtype(np.int32)
        sources = tuple(dict.fromkeys(p.source for p in incoming))
        offsets, total = [], 0
        for src in sources:
            offsets.append(total)
            total += net.populations[src].n
        parts = []
        for proj in incoming:
            s, t, w = synapse_list(proj)
            off = offsets[sources.index(proj.source)]
            parts.append((orders[proj.source][s] + off, orders[name][t], w))
        s_all = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
        t_all = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
        w_all = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.int32)
        dense = None
        if pop.neuron.split_sign:
            pos, neg = w_all > 0, w_all < 0
            runs = build_runs(s_all[pos], t_all[pos], w_all[pos], total, acc_dtype)
            runs_neg = build_runs(s_all[neg], t_all[neg], -w_all[neg], total, acc_dtype)
        else:
            runs = build_runs(s_all, t_all, w_all, total, acc_dtype)
            runs_neg = build_runs(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int32), total, acc_dtype)
            if len(sources) == 1 and s_all.size:  # the dense path reads one source's spike rows
                dense = dense_table(s_all, t_all, w_all, pop.n, acc_dtype, total)
        group = source_groups(runs)
        grouped = bool(group.size) and group.size >= GROUPED_MIN_SOURCES * (int(group.max()) + 1)
        plans[name] = PlannedPopulation(
            pop, orders[name], params, sources, tuple(offsets), runs, runs_neg, acc_dtype, group, grouped, dense,
            uniformity(params),
        )
    return plans


def aligned_zeros(n: int, dtype: Any, align: int = 64) -> np.ndarray:
    """Zeros whose data starts on an ``align``-byte boundary: block adds then never split a cache line."""
    itemsize = np.dtype(dtype).itemsize
    raw = np.zeros(n + align // itemsize, dtype=dtype)
    skip = (-raw.ctypes.data % align) // itemsize
    return raw[skip : skip + n]


def spike_lists(spk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 ``[T, n]`` -> (neuron indices int32, per-tick start pointers int64 ``[T+1]``)."""
    T, n = spk.shape
    padded = np.zeros((T, -(-n // 8) * 8), dtype=np.uint8)
    padded[:, :n] = spk
    out_idx = np.empty(int(np.count_nonzero(spk)) + 8, dtype=np.int32)
    out_ptr = np.zeros(T + 1, dtype=np.int64)
    _kernels()["lists_of"](padded, n, out_idx, out_ptr)
    return out_idx[: out_ptr[-1]], out_ptr


def merge_lists(lists: list[tuple[np.ndarray, np.ndarray]], offsets: tuple[int, ...], ticks: int) -> tuple[np.ndarray, np.ndarray]:
    """Spike lists of several sources -> one list over the combined index space, tick by tick."""
    if not lists:  # a population driven only by its bias
        return np.zeros(0, np.int32), np.zeros(ticks + 1, np.int64)
    if len(lists) == 1 and offsets[0] == 0:
        return lists[0]
    T = lists[0][1].size - 1
    tick_of_spike = [np.repeat(np.arange(T), np.diff(ptr)) for _, ptr in lists]
    idx = np.concatenate([i.astype(np.int64) + off for (i, _), off in zip(lists, offsets, strict=True)])
    order = np.argsort(np.concatenate(tick_of_spike), kind="stable")
    ptr = np.zeros(T + 1, dtype=np.int64)
    for _, p in lists:
        ptr += p
    return idx[order].astype(np.int32), ptr


#: measured cost of the integer-input formulations, relative to one block add of the plain scatter
#: (benchmarks/measure_crossover.py on the bundled model; docs/emulator.md): a grouped-scatter block, one
#: (source octet, target block) pair of the dense formulation, set so the model's crossovers fall where
#: they were observed (conv2 below 9 % source activity, conv3 ~5-6 %), and the factor for tables beyond a
#: core's L2 share (conv1's 480 KiB: crossover ~20 %)
COST_GROUPED_BLOCK = 0.5
COST_DENSE_PAIR = 0.35
DENSE_L2_BYTES = 384 * 1024
COST_BIG_TABLE = 2.0

#: ``synaptic_input`` option values: choose per layer and chunk, or force one formulation (tests, benchmarks)
SYNAPTIC_INPUT = ("auto", "scatter", "dense")


def choose_mode(plan: PlannedPopulation, ptr: np.ndarray, forced: str) -> int:
    """The integer-input formulation for one layer and chunk: kernels.SCATTER, SCATTER_GROUPED or DENSE.

    Event driven costs (blocks the chunk's spikes add) x (cost per block); dense costs (ticks with any
    input) x (synapse pairs per tick) x (cost per pair), whatever the activity. Both are exact, so the
    choice changes only the time.
    """
    scatter = 1 if plan.grouped else 0
    if plan.dense is None or forced == "scatter":
        return scatter
    if forced == "dense":
        return 2
    n_spikes = int(ptr[-1] - ptr[0])
    if n_spikes == 0:
        return scatter
    blocks_per_source = plan.runs.blocks[0][-1] / max(1, plan.runs.src_ptr.size - 1)
    scatter_cost = n_spikes * blocks_per_source * (COST_GROUPED_BLOCK if plan.grouped else 1.0)
    active_ticks = int(np.count_nonzero(ptr[1:] != ptr[:-1]))
    pair_cost = COST_DENSE_PAIR * (COST_BIG_TABLE if plan.dense.table.nbytes > DENSE_L2_BYTES else 1.0)
    dense_cost = active_ticks * plan.dense.pairs * pair_cost
    return 2 if dense_cost < scatter_cost else scatter


@dataclass
class Workspace:
    """One population's buffers for a chunk length, reused across chunks (fresh pages cost page faults)."""

    spk: np.ndarray
    out_idx: np.ndarray
    out_ptr: np.ndarray
    v: np.ndarray
    v_out: np.ndarray
    acc: np.ndarray
    acc_neg: np.ndarray


def _workspace(plan: PlannedPopulation, ticks: int) -> Workspace:
    n = plan.pop.n
    split = plan.pop.neuron is not None and plan.pop.neuron.split_sign
    return Workspace(
        # rows padded to whole 64-bit words so the spike-list pass can skip 8 silent neurons at once
        np.zeros((ticks, -(-n // 8) * 8), dtype=np.uint8),
        np.empty(ticks * n + 8, dtype=np.int32),
        np.zeros(ticks + 1, dtype=np.int64),
        np.zeros(n, dtype=np.float32),
        np.zeros((1, n), dtype=np.float32),
        aligned_zeros(n + BLOCK, plan.acc_dtype),
        aligned_zeros(n + BLOCK, plan.acc_dtype) if split else aligned_zeros(0, plan.acc_dtype),
    )


def run_fast(
    net: ChipNetwork, plans: dict[str, PlannedPopulation], spikes: np.ndarray, record: tuple[str, ...],
    workspace: dict[tuple[str, int], Any] | None = None, synaptic_input: str = "auto",
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int, int]:
    """Layer-by-layer chunk; returns (spikes by population in NIR order, voltages, ticks, synaptic events).

    ``workspace`` keeps every per-population buffer between calls, so a chunk allocates nothing but its
    results; pass it only when the caller copies what it keeps.
    """
    k = _kernels()
    opts = net.options
    T = spikes.shape[0]
    ticks = T + net.latency_ticks
    shift = 1 + int(opts.conn_delay)
    n_in = net.populations[net.input_name].n
    flat = spikes.reshape(T, -1)
    if n_in % 8:  # the spike-list pass reads whole 64-bit words
        inp = np.zeros((T, -(-n_in // 8) * 8), dtype=np.uint8)
        inp[:, :n_in] = flat
    else:
        inp = flat
    key = (net.input_name, ticks)
    if workspace is not None and key in workspace:
        in_idx, in_ptr = workspace[key]
    else:
        in_idx, in_ptr = np.empty(T * n_in + 8, dtype=np.int32), np.zeros(ticks + 1, dtype=np.int64)
        if workspace is not None:
            workspace[key] = (in_idx, in_ptr)
    k["lists_of"](inp, n_in, in_idx, in_ptr[: T + 1])
    in_ptr[T + 1 :] = in_ptr[T]  # the drain ticks carry no input
    lists = {net.input_name: (in_idx[: in_ptr[-1]], in_ptr)}
    rows = {net.input_name: inp}
    internal: dict[str, np.ndarray] = {}
    record_v = "v" in record
    events = 0
    voltages: dict[str, np.ndarray] = {}
    modes: dict[str, int] = {}
    if net.feedforward_order is None:
        msg = "run_fast needs a feed-forward graph; recurrent graphs run the per-tick path"
        raise BackendError(msg)
    for name in net.feedforward_order:
        if name not in plans:
            continue
        plan = plans[name]
        n = plan.pop.n
        if workspace is not None and (name, ticks) in workspace:
            ws = workspace[(name, ticks)]  # every row is fully rewritten by the kernel
        else:
            ws = _workspace(plan, ticks)
            if workspace is not None:
                if len(workspace) > 4 * (len(plans) + 1):  # chunk lengths vary: keep a few, not every one
                    workspace.clear()
                workspace[(name, ticks)] = ws
        v_out = np.zeros((ticks, n), dtype=np.float32) if record_v else ws.v_out
        idx, ptr = merge_lists([lists[s] for s in plan.sources], plan.offsets, ticks)
        neuron = plan.pop.neuron
        if neuron is None:  # plan_network plans neuron populations only
            msg = f"population {name!r} has no neuron model"
            raise BackendError(msg)
        mode = choose_mode(plan, ptr, synaptic_input)
        modes[name] = mode
        r, q = plan.runs, plan.runs_neg
        d = plan.dense
        layer = Layer(
            idx, ptr, shift, r.blocks, r.wflat, ws.acc, q.blocks, q.wflat, ws.acc_neg,
            plan.params, ws.spk, v_out, record_v, ws.out_idx, ws.out_ptr,
            plan.group, mode, rows[plan.sources[0]] if d is not None else inp,
            (d.ptr, d.tgt, d.octet, d.tab, d.table, d.counts) if d is not None else _no_dense(plan.acc_dtype), ws.v, plan.uniform,
        )
        events += neuron.launch(k[neuron.kernel], layer, opts)
        lists[name] = (ws.out_idx[: ws.out_ptr[-1]], ws.out_ptr)
        rows[name] = ws.spk
        internal[name] = ws.spk[:, :n]
        if record_v:
            voltages[name] = to_nir_order(plan, v_out)
    out = LazyOrder({name: (plans[name], internal[name]) for name in plans})
    return out, voltages, ticks, int(events)  # type: ignore[return-value]


def _no_dense(dtype: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """An empty dense table of accumulator type ``dtype`` (the kernel is typed for every path)."""
    return (
        np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int64),
        np.zeros(256 * BLOCK, dtype), np.zeros(0, np.int64),
    )


class LazyOrder(Mapping[str, np.ndarray]):
    """Population name -> ``[T, n]`` in NIR order, reordered from the internal layout on first access.

    A daemon reads only the output population; reordering every hidden population each chunk would
    cost more than running them.
    """

    def __init__(self, raw: dict[str, tuple[PlannedPopulation, np.ndarray]]) -> None:
        self._raw = raw
        self._done: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._done:
            plan, x = self._raw[name]
            self._done[name] = to_nir_order(plan, x)
        return self._done[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __repr__(self) -> str:
        return f"LazyOrder({list(self._raw)})"


def to_nir_order(plan: PlannedPopulation, x: np.ndarray) -> np.ndarray:
    """``[T, n]`` in the internal layout -> NIR (C,H,W) order; H,W,C layouts are a transpose, not a gather."""
    pop = plan.pop
    if np.array_equal(plan.to_internal, np.arange(pop.n)):
        return np.ascontiguousarray(x)
    c, h, w = pop.shape
    return np.ascontiguousarray(x.reshape(x.shape[0], h, w, c).transpose(0, 3, 1, 2)).reshape(x.shape[0], -1)


class EmulatorBackend(TranslatedBackend):
    """Bit-faithful software SpiNNaker2 (the daemon's default backend)."""

    name = "emulator"

    def __init__(self, **options: Any) -> None:
        super().__init__(options, {"synaptic_input": "auto"})
        if self.own["synaptic_input"] not in SYNAPTIC_INPUT:
            msg = (
                f"backend 'emulator': option synaptic_input must be one of {', '.join(SYNAPTIC_INPUT)}, found "
                f"{self.own['synaptic_input']!r}; 'auto' chooses the faster exact formulation per layer and chunk"
            )
            raise BackendError(msg)
        self.plans: dict[str, PlannedPopulation] = {}
        #: synaptic events of the last run (sum over projections of targets hit per source spike)
        self.last_events = 0
        self._workspace: dict[tuple[str, int], Any] = {}

    def load(self, graph: Any) -> Any:
        """Translate, map and prepare ``graph``; returns its MappingReport."""
        report = self._translate(graph)
        self.plans = plan_network(self._loaded())
        self._workspace = {}
        return report

    def _run(self, net: ChipNetwork, spikes: np.ndarray, record: tuple[str, ...]) -> RunResult:
        if net.feedforward_order is None:
            all_spikes, voltages, ticks = run_network(net, spikes, record)
            self.last_events = -1
        else:
            # buffers are reused only when no hidden spikes leave this call (the output is copied below)
            workspace = None if "spikes" in record else self._workspace
            all_spikes, voltages, ticks, self.last_events = run_fast(
                net, self.plans, spikes, record, workspace, self.own["synaptic_input"],
            )
        out = np.concatenate([all_spikes[n] for n in net.output_names], axis=1)
        return RunResult(out, all_spikes if "spikes" in record else {}, voltages, ticks)

    def close(self) -> None:
        self.net = None
        self.plans = {}
