# mypy: ignore-errors
# (numba kernels: their types are numba's, inferred per call signature, not Python annotations)
"""Compiled kernels of the fast emulator (numba, no fastmath: float32 operations stay separate and in order).

Module-level functions so numba's on-disk cache (``cache=True``) works: a daemon restart loads them
instead of compiling. Imported only when the emulator first runs (numba is slow to import).
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic


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

#: runs are added in blocks of this many targets (weights zero-padded to a multiple of it, accumulators
#: padded by it): a constant-length inner loop becomes one or two SIMD adds, where a variable-length loop
#: shorter than LLVM's unrolled vector body (64 int16) would run scalar
BLOCK = 16


@intrinsic
def add_block(typingctx, acc, a0, w, w0):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """``acc[a0 : a0+BLOCK] += w[w0 : w0+BLOCK]`` as one SIMD load/add/store of BLOCK integers.

    Written as LLVM vector IR because numba gives LLVM no aliasing information: a plain 16-step loop
    over two arrays of the same type stays scalar.
    """
    if not (isinstance(acc, types.Array) and isinstance(w, types.Array) and acc.dtype == w.dtype and isinstance(acc.dtype, types.Integer)):
        return None
    sig = types.void(acc, a0, w, w0)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        acc_v, a0_v, w_v, w0_v = args
        acc_arr = context.make_array(signature.args[0])(context, builder, acc_v)
        w_arr = context.make_array(signature.args[2])(context, builder, w_v)
        vec = ir.VectorType(context.get_data_type(signature.args[0].dtype), BLOCK)
        pa = builder.bitcast(builder.gep(acc_arr.data, [a0_v]), vec.as_pointer())
        pw = builder.bitcast(builder.gep(w_arr.data, [w0_v]), vec.as_pointer())
        total = builder.add(builder.load(pa, align=1), builder.load(pw, align=1))
        builder.store(total, pa, align=1)
        return context.get_dummy_value()

    return sig, codegen


@nb.njit(cache=True, nogil=True, boundscheck=False)
def add_spikes(acc, idx, lo, hi, block_ptr, blocks, syn_count, wflat):  # pragma: no cover - compiled
    # each source's synapses as BLOCK-wide adds (weights zero-padded, acc with BLOCK spare): one flat
    # loop per spike; returns the synaptic events (real synapses, not padding). ``blocks`` is flat,
    # (first target, first weight) pairs; unsigned indices spare the negative-index wraparound code
    events = 0
    one = np.uint64(1)
    for q in range(lo, hi):
        j = np.uint64(idx[q])
        for b in range(np.uint64(block_ptr[j]), np.uint64(block_ptr[j + one])):
            add_block(acc, np.uint64(blocks[b + b]), wflat, np.uint64(blocks[b + b + one]))
        events += syn_count[j]
    return events


def _add_blocks_of(k: int) -> Any:
    """Intrinsic ``acc[a0 : a0+BLOCK] += w[w0 : w0+BLOCK] + ... + w[w{k-1} : ...]``: k weight blocks, one store."""

    @intrinsic
    def add_blocks(typingctx, acc, a0, w, w0, w1, w2, w3):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
        if not (isinstance(acc, types.Array) and isinstance(w, types.Array) and acc.dtype == w.dtype and isinstance(acc.dtype, types.Integer)):
            return None
        sig = types.void(acc, a0, w, w0, w1, w2, w3)

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            acc_arr = context.make_array(signature.args[0])(context, builder, args[0])
            w_arr = context.make_array(signature.args[2])(context, builder, args[2])
            vec = ir.VectorType(context.get_data_type(signature.args[0].dtype), BLOCK)
            pa = builder.bitcast(builder.gep(acc_arr.data, [args[1]]), vec.as_pointer())
            total = None
            for w_off in args[3 : 3 + k]:
                x = builder.load(builder.bitcast(builder.gep(w_arr.data, [w_off]), vec.as_pointer()), align=1)
                total = x if total is None else builder.add(total, x)
            builder.store(builder.add(builder.load(pa, align=1), total), pa, align=1)
            return context.get_dummy_value()

        return sig, codegen

    return add_blocks


add_blocks2 = _add_blocks_of(2)
add_blocks4 = _add_blocks_of(4)


@nb.njit(cache=True, nogil=True, boundscheck=False)
def add_spikes_grouped(acc, idx, lo, hi, block_ptr, blocks, group, syn_count, wflat):  # pragma: no cover - compiled
    # add_spikes for tables where many sources share one target sequence (``group``: same id = same
    # targets in the same blocks, e.g. every channel of one conv input position, or all sources of a
    # dense layer): up to 4 consecutive spikes of one group are summed in registers and stored once.
    # That cuts the load-add-store chains through the same accumulator blocks, which bound the plain
    # scatter (each spike of a position hits the blocks its predecessor just stored). Integer adds are
    # exact in any order, and a partial sum of one target's weights never exceeds the bound the
    # accumulator type was chosen for.
    events = 0
    one = np.uint64(1)
    two = np.uint64(2)
    q = lo
    while q < hi:
        j = np.uint64(idx[q])
        b0 = np.uint64(block_ptr[j])
        b1 = np.uint64(block_ptr[j + one])
        g = group[j]
        if q + 3 < hi and group[idx[q + 1]] == g and group[idx[q + 2]] == g and group[idx[q + 3]] == g:
            j1, j2, j3 = np.uint64(idx[q + 1]), np.uint64(idx[q + 2]), np.uint64(idx[q + 3])
            d1 = np.uint64(block_ptr[j1]) - b0
            d2 = np.uint64(block_ptr[j2]) - b0
            d3 = np.uint64(block_ptr[j3]) - b0
            for b in range(b0, b1):
                add_blocks4(
                    acc, np.uint64(blocks[two * b]), wflat, np.uint64(blocks[two * b + one]),
                    np.uint64(blocks[two * (b + d1) + one]), np.uint64(blocks[two * (b + d2) + one]),
                    np.uint64(blocks[two * (b + d3) + one]),
                )
            events += syn_count[j] + syn_count[j1] + syn_count[j2] + syn_count[j3]
            q += 4
        elif q + 1 < hi and group[idx[q + 1]] == g:
            j1 = np.uint64(idx[q + 1])
            d1 = np.uint64(block_ptr[j1]) - b0
            for b in range(b0, b1):
                w0 = np.uint64(blocks[two * b + one])
                add_blocks2(acc, np.uint64(blocks[two * b]), wflat, w0, np.uint64(blocks[two * (b + d1) + one]), w0, w0)
            events += syn_count[j] + syn_count[j1]
            q += 2
        else:
            for b in range(b0, b1):
                add_block(acc, np.uint64(blocks[two * b]), wflat, np.uint64(blocks[two * b + one]))
            events += syn_count[j]
            q += 1
    return events


@intrinsic
def gather_octets(typingctx, acc, a0, table, row, octet, tab, lo, hi):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """``acc[a0 : a0+BLOCK] = sum over k in [lo, hi) of table[tab[k] + BLOCK * mask_k]``.

    The dense formulation of one target block: ``mask_k`` is the 8-bit spike mask of source octet
    ``octet[k]`` (8 spike bytes of ``row`` gathered into 8 bits by one multiply, as in ``compact``) and
    ``table[tab[k]:]`` holds, for each of the 256 masks, the BLOCK sums of those 8 sources' weights to
    the block's targets. So 8 sources cost one table load and one vector add, spiking or not, and the
    sum stays in a register until the one store. An LLVM loop: numba has no vector type to carry.
    """
    if not (isinstance(acc, types.Array) and isinstance(table, types.Array) and acc.dtype == table.dtype and isinstance(acc.dtype, types.Integer)):
        return None
    sig = types.void(acc, a0, table, row, octet, tab, lo, hi)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        from numba.core import cgutils

        acc_v, a0_v, tbl_v, row_v, oct_v, tab_v, lo_v, hi_v = args
        lane = context.get_data_type(signature.args[0].dtype)
        vec = ir.VectorType(lane, BLOCK)
        i64 = ir.IntType(64)
        acc_arr = context.make_array(signature.args[0])(context, builder, acc_v)
        tbl_arr = context.make_array(signature.args[2])(context, builder, tbl_v)
        row_arr = context.make_array(signature.args[3])(context, builder, row_v)
        oct_arr = context.make_array(signature.args[4])(context, builder, oct_v)
        tab_arr = context.make_array(signature.args[5])(context, builder, tab_v)
        lo64 = context.cast(builder, lo_v, signature.args[6], types.int64)
        hi64 = context.cast(builder, hi_v, signature.args[7], types.int64)

        def load_index(arr, k):  # type: ignore[no-untyped-def]
            x = builder.load(builder.gep(arr.data, [k]))
            return builder.sext(x, i64) if x.type.width < 64 else x

        total = cgutils.alloca_once_value(builder, ir.Constant(vec, None))  # promoted to a register by LLVM
        with cgutils.for_range_slice(builder, lo64, hi64, ir.Constant(i64, 1), intp=i64) as (k, _):
            byte0 = builder.gep(row_arr.data, [builder.mul(load_index(oct_arr, k), ir.Constant(i64, 8))])
            word = builder.load(builder.bitcast(byte0, i64.as_pointer()), align=1)
            mask = builder.lshr(builder.mul(word, ir.Constant(i64, 0x0102040810204080)), ir.Constant(i64, 56))
            at = builder.add(load_index(tab_arr, k), builder.mul(mask, ir.Constant(i64, BLOCK)))
            wv = builder.load(builder.bitcast(builder.gep(tbl_arr.data, [at]), vec.as_pointer()), align=1)
            builder.store(builder.add(builder.load(total), wv), total)
        pa = builder.bitcast(builder.gep(acc_arr.data, [a0_v]), vec.as_pointer())
        builder.store(builder.load(total), pa, align=1)
        return context.get_dummy_value()

    return sig, codegen


@nb.njit(cache=True, nogil=True, boundscheck=False)
def gather_tick(acc, row, g_ptr, g_tgt, g_oct, g_tab, table):  # pragma: no cover - compiled
    # one tick's integer input in the dense formulation: every target block from every source octet
    for b in range(g_tgt.size):
        gather_octets(acc, np.uint64(g_tgt[b]), table, row, g_oct, g_tab, g_ptr[b], g_ptr[b + 1])


@intrinsic
def store_offsets8(typingctx, out, c, tbl, m, base):  # type: ignore[no-untyped-def]  # pragma: no cover - compiled
    """``out[c : c+8] = tbl[8*m : 8*m+8] + base`` as one SIMD load/add/store of 8 int32."""
    if not (isinstance(out, types.Array) and isinstance(tbl, types.Array) and out.dtype == types.int32 and tbl.dtype == types.int32):
        return None
    sig = types.void(out, c, tbl, m, base)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        out_v, c_v, tbl_v, m_v, base_v = args
        i64 = ir.IntType(64)
        i32 = ir.IntType(32)
        out_arr = context.make_array(signature.args[0])(context, builder, out_v)
        tbl_arr = context.make_array(signature.args[2])(context, builder, tbl_v)
        c64 = context.cast(builder, c_v, signature.args[1], types.int64)
        m64 = context.cast(builder, m_v, signature.args[3], types.int64)
        b32 = builder.trunc(context.cast(builder, base_v, signature.args[4], types.int64), i32)
        vec = ir.VectorType(i32, 8)
        splat = ir.Constant(vec, ir.Undefined)
        for k in range(8):
            splat = builder.insert_element(splat, b32, ir.Constant(i32, k))
        pt = builder.bitcast(builder.gep(tbl_arr.data, [builder.mul(m64, ir.Constant(i64, 8))]), vec.as_pointer())
        po = builder.bitcast(builder.gep(out_arr.data, [c64]), vec.as_pointer())
        builder.store(builder.add(builder.load(pt, align=4), splat), po, align=4)
        return context.get_dummy_value()

    return sig, codegen


def _offset_tables() -> tuple[np.ndarray, np.ndarray]:
    # for each 8-bit spike mask: the positions of its set bits (then padding), and how many there are
    pos = np.zeros((256, 8), dtype=np.int32)
    cnt = np.zeros(256, dtype=np.int64)
    for m in range(256):
        bits = [k for k in range(8) if m >> k & 1]
        pos[m, : len(bits)] = bits
        cnt[m] = len(bits)
    return pos.ravel(), cnt


SPIKE_POS, SPIKE_CNT = _offset_tables()
#: multiplying 8 bytes of 0/1 by this gathers byte k into bit 56+k (no carries: partial products never collide)
GATHER = np.uint64(0x0102040810204080)


@nb.njit(cache=True, nogil=True, boundscheck=False)
def compact(row, n, out_idx, c):  # pragma: no cover - compiled
    # spike list of one tick, branch-free: each 8 neurons' bytes -> an 8-bit mask -> one SIMD store of
    # the set positions (from a table) at the list's end, which then advances by the mask's popcount;
    # rows are padded to whole words and out_idx has 8 spare entries
    words = row.view(np.uint64)
    pos = SPIKE_POS
    cnt = SPIKE_CNT
    sh = np.uint64(56)
    for w in range(words.size):
        m = (words[w] * GATHER) >> sh
        store_offsets8(out_idx, c, pos, m, w * 8)
        c += cnt[m]
    return c

@nb.njit(cache=True, nogil=True, boundscheck=False)
def lists_of(spk, n, out_idx, out_ptr):  # pragma: no cover - compiled
    c = 0
    for t in range(spk.shape[0]):
        c = compact(spk[t], n, out_idx, c)
        out_ptr[t + 1] = c
    return c

#: how a population's neuron parameters vary (emulator.py decides once per graph); DECAY_PER_NEURON: only
#: alpha_decay varies (a model whose channels have different time constants), threshold shared, no i_offset
PER_NEURON, UNIFORM, UNIFORM_NO_OFFSET, DECAY_PER_NEURON = 0, 1, 2, 3


@nb.njit(cache=True, nogil=True, boundscheck=False)
def lif_update_uniform(acc, v, a, th, io, s_t, zero_reset, ge, no_offset):  # pragma: no cover - compiled
    # lif_update for populations whose neurons share alpha, threshold and i_offset (a converted layer
    # usually does): three fewer loads per neuron. With i_offset == +-0 the add is skipped: x is never
    # -0.0 there (alpha*v + float(acc) rounds a zero sum to +0.0), and x + (+-0.0) == x for every other x,
    # so the bits are the same
    n = v.size
    zero = np.float32(0.0)
    if no_offset:
        if ge:
            if zero_reset:
                for i in range(n):
                    x = a * v[i] + np.float32(acc[i])
                    f = x >= th
                    v[i] = zero if f else x
                    s_t[i] = np.uint8(f)
            else:
                for i in range(n):
                    x = a * v[i] + np.float32(acc[i])
                    f = x >= th
                    v[i] = x - th if f else x
                    s_t[i] = np.uint8(f)
        elif zero_reset:
            for i in range(n):
                x = a * v[i] + np.float32(acc[i])
                f = x > th
                v[i] = zero if f else x
                s_t[i] = np.uint8(f)
        else:
            for i in range(n):
                x = a * v[i] + np.float32(acc[i])
                f = x > th
                v[i] = x - th if f else x
                s_t[i] = np.uint8(f)
    elif ge:
        if zero_reset:
            for i in range(n):
                x = a * v[i] + np.float32(acc[i])
                x = x + io
                f = x >= th
                v[i] = zero if f else x
                s_t[i] = np.uint8(f)
        else:
            for i in range(n):
                x = a * v[i] + np.float32(acc[i])
                x = x + io
                f = x >= th
                v[i] = x - th if f else x
                s_t[i] = np.uint8(f)
    elif zero_reset:
        for i in range(n):
            x = a * v[i] + np.float32(acc[i])
            x = x + io
            f = x > th
            v[i] = zero if f else x
            s_t[i] = np.uint8(f)
    else:
        for i in range(n):
            x = a * v[i] + np.float32(acc[i])
            x = x + io
            f = x > th
            v[i] = x - th if f else x
            s_t[i] = np.uint8(f)


@nb.njit(cache=True, nogil=True, boundscheck=False)
def lif_update_decay(acc, v, alpha, th, s_t, zero_reset, ge):  # pragma: no cover - compiled
    # lif_update for populations where only alpha_decay differs between neurons and i_offset is +-0 (the
    # add is skipped, same bits as in lif_update_uniform): the threshold stays in a register. Measured on the
    # bundled model (per-channel decays): the general per-neuron loop made the whole run 1.9x slower.
    n = v.size
    zero = np.float32(0.0)
    if ge:
        if zero_reset:
            for i in range(n):
                x = alpha[i] * v[i] + np.float32(acc[i])
                f = x >= th
                v[i] = zero if f else x
                s_t[i] = np.uint8(f)
        else:
            for i in range(n):
                x = alpha[i] * v[i] + np.float32(acc[i])
                f = x >= th
                v[i] = x - th if f else x
                s_t[i] = np.uint8(f)
    elif zero_reset:
        for i in range(n):
            x = alpha[i] * v[i] + np.float32(acc[i])
            f = x > th
            v[i] = zero if f else x
            s_t[i] = np.uint8(f)
    else:
        for i in range(n):
            x = alpha[i] * v[i] + np.float32(acc[i])
            f = x > th
            v[i] = x - th if f else x
            s_t[i] = np.uint8(f)


@nb.njit(cache=True, nogil=True, boundscheck=False)
def lif_update(acc, v, alpha, thr, ioff, s_t, zero_reset, ge, fma, uniform):  # pragma: no cover - compiled
    # one tick of every neuron; the mode switches are tested once per tick, outside the loops, so each
    # loop body is branch-free and LLVM vectorises it across neurons (no fastmath: float32 operations
    # stay separate and in the spec's order, the equivalence tests check every bit)
    n = alpha.size
    zero = np.float32(0.0)
    if uniform == DECAY_PER_NEURON and not fma:
        lif_update_decay(acc, v, alpha, thr[0], s_t, zero_reset, ge)
        return
    if uniform != PER_NEURON and not fma:
        lif_update_uniform(acc, v, alpha[0], thr[0], ioff[0], s_t, zero_reset, ge, uniform == UNIFORM_NO_OFFSET)
        return
    if fma:
        for i in range(n):
            x = fma32(alpha[i], v[i], np.float32(acc[i])) + ioff[i]
            f = (x >= thr[i]) if ge else (x > thr[i])
            v[i] = (zero if zero_reset else x - thr[i]) if f else x
            s_t[i] = 1 if f else 0
    elif ge:
        if zero_reset:
            for i in range(n):
                x = alpha[i] * v[i] + np.float32(acc[i])
                x = x + ioff[i]
                f = x >= thr[i]
                v[i] = zero if f else x
                s_t[i] = np.uint8(f)
        else:
            for i in range(n):
                x = alpha[i] * v[i] + np.float32(acc[i])
                x = x + ioff[i]
                th = thr[i]
                f = x >= th
                v[i] = x - th if f else x
                s_t[i] = np.uint8(f)
    elif zero_reset:
        for i in range(n):
            x = alpha[i] * v[i] + np.float32(acc[i])
            x = x + ioff[i]
            f = x > thr[i]
            v[i] = zero if f else x
            s_t[i] = np.uint8(f)
    else:
        for i in range(n):
            x = alpha[i] * v[i] + np.float32(acc[i])
            x = x + ioff[i]
            th = thr[i]
            f = x > th
            v[i] = x - th if f else x
            s_t[i] = np.uint8(f)


#: how a layer's integer input is computed (emulator.py chooses per layer and chunk)
SCATTER, SCATTER_GROUPED, DENSE = 0, 1, 2


@nb.njit(cache=True, nogil=True, boundscheck=False)
def lif_layer(idx, ptr, shift, block_ptr, blocks, syn_count, wflat, acc, group, mode,
              src_spk, g_ptr, g_tgt, g_oct, g_tab, g_table, g_counts,
              alpha, thr, ioff, uniform, zero_reset, ge, fma, v, spk_out, v_out, record_v, out_idx, out_ptr):  # pragma: no cover
    # per tick: integer input from the sources' spikes of tick t - shift (event driven from the spike
    # list, or dense from the sources' spike rows), then the float32 update of every neuron, then the
    # spike list that the next layer consumes. ``v`` is the caller's voltage buffer (zeroed here: each
    # chunk starts from the reset state)
    T = spk_out.shape[0]
    v[:] = 0
    g_counts[:] = 0
    events = 0
    c = 0
    for t in range(T):
        acc[:] = 0
        ts = t - shift
        if ts >= 0 and ptr[ts + 1] > ptr[ts]:
            if mode == DENSE:
                row = src_spk[ts]
                gather_tick(acc, row, g_ptr, g_tgt, g_oct, g_tab, g_table)
                # the chip counts synaptic events per spike; summing the (cached) row per source and
                # weighting by fan-out once at the end costs a vector add, not a lookup per spike
                for j in range(g_counts.size):
                    g_counts[j] += row[j]
            elif mode == SCATTER_GROUPED:
                events += add_spikes_grouped(acc, idx, ptr[ts], ptr[ts + 1], block_ptr, blocks, group, syn_count, wflat)
            else:
                events += add_spikes(acc, idx, ptr[ts], ptr[ts + 1], block_ptr, blocks, syn_count, wflat)
        s_t = spk_out[t]
        lif_update(acc, v, alpha, thr, ioff, s_t, zero_reset, ge, fma, uniform)
        if record_v:
            v_out[t] = v
        c = compact(s_t, alpha.size, out_idx, c)
        out_ptr[t + 1] = c
    if mode == DENSE:
        for j in range(g_counts.size):
            events += g_counts[j] * syn_count[j]
    return events

@nb.njit(cache=True, nogil=True, boundscheck=False)
def cuba_layer(idx, ptr, shift, block_ptr, blocks, syn_count, wflat, pos,
               nblock_ptr, nblocks, nsyn_count, nwflat, neg,
               alpha, exc, inh, thr, ioff, zero_reset, ge, fma, updated,
               spk_out, v_out, record_v, out_idx, out_ptr):  # pragma: no cover
    T = spk_out.shape[0]
    n = alpha.size
    v = np.zeros(n, dtype=np.float32)
    ie = np.zeros(n, dtype=np.float32)
    ii = np.zeros(n, dtype=np.float32)
    zero = np.float32(0.0)
    events = 0
    c = 0
    for t in range(T):
        pos[:] = 0
        neg[:] = 0
        ts = t - shift
        if ts >= 0:
            events += add_spikes(pos, idx, ptr[ts], ptr[ts + 1], block_ptr, blocks, syn_count, wflat)
            events += add_spikes(neg, idx, ptr[ts], ptr[ts + 1], nblock_ptr, nblocks, nsyn_count, nwflat)
        s_t = spk_out[t]
        for i in range(n):
            old = ie[i] - ii[i]
            if fma:
                ie[i] = fma32(exc[i], ie[i], np.float32(pos[i]))
                ii[i] = fma32(inh[i], ii[i], np.float32(neg[i]))
            else:
                ie[i] = exc[i] * ie[i] + np.float32(pos[i])
                ii[i] = inh[i] * ii[i] + np.float32(neg[i])
            cur = (ie[i] - ii[i]) if updated else old
            if fma:
                x = fma32(alpha[i], v[i], cur)
            else:
                x = alpha[i] * v[i] + cur
            x = x + ioff[i]
            f = (x >= thr[i]) if ge else (x > thr[i])
            v[i] = (zero if zero_reset else x - thr[i]) if f else x
            s_t[i] = 1 if f else 0
        if record_v:
            v_out[t] = v
        c = compact(s_t, n, out_idx, c)
        out_ptr[t + 1] = c
    return events


KERNELS: dict[str, Any] = {
    "fma32": fma32,
    "add_spikes": add_spikes,
    "compact": compact,
    "add_spikes_grouped": add_spikes_grouped,
    "gather_tick": gather_tick,
    "lif_update": lif_update,
    "lif_update_uniform": lif_update_uniform,
    "lif_update_decay": lif_update_decay,
    "store_offsets8": store_offsets8,
    "lists_of": lists_of,
    "lif_layer": lif_layer,
    "cuba_layer": cuba_layer,
}
