"""Compiled loops of the file readers: one pass from a decoded packet into the output events.

numpy would take one strided pass per field and one more per filter (boolean masks, then a copy of each
field); these loops read each event once, keep the ones in the time window and write the
:data:`~s2gesture.daemon.events.EVENT_DTYPE` record, noting whether time ever went backwards so the
caller sorts only when it must. numba compiles them once per machine (``cache=True``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

#: an ``aedat`` packet's event layout (t u64, x u16, y u16, on bool; packed, 13 bytes) without its
#: field title, so numba can address it
AEDAT4_PACKET = np.dtype([("t", "<u8"), ("x", "<u2"), ("y", "<u2"), ("on", "u1")])


@njit(cache=True, nogil=True)
def copy_aedat4(src: Any, out: Any, pos: int, lo: int, hi: int, t_prev: int, unsorted: bool) -> tuple[int, int, bool]:
    """Append the events of ``src`` (AEDAT4_PACKET) with ``lo <= t < hi`` to ``out`` at ``pos``."""
    for i in range(src.shape[0]):
        r = src[i]
        t = np.int64(r["t"])
        if t < lo or t >= hi:
            continue
        o = out[pos]
        o["x"] = np.int16(r["x"])
        o["y"] = np.int16(r["y"])
        o["p"] = r["on"] != 0
        o["t"] = t
        if t < t_prev:
            unsorted = True
        t_prev = t
        pos += 1
    return pos, t_prev, unsorted


@njit(cache=True, nogil=True)
def decode_aedat3(words: Any, overflow: int, out: Any, pos: int, lo: int, hi: int, t_prev: int, unsorted: bool) -> tuple[int, int, bool]:
    """Append the valid polarity events of one AEDAT 3.1 packet (``words`` u32 ``[n, 2]``) in ``[lo, hi)``."""
    high = np.int64(overflow) << 31
    for i in range(words.shape[0]):
        data = words[i, 0]
        if data & 1 == 0:  # the valid bit
            continue
        t = high | np.int64(np.int32(words[i, 1]))
        if t < lo or t >= hi:
            continue
        o = out[pos]
        o["x"] = np.int16((data >> 17) & 0x7FFF)
        o["y"] = np.int16((data >> 2) & 0x7FFF)
        o["p"] = (data >> 1) & 1 == 1
        o["t"] = t
        if t < t_prev:
            unsorted = True
        t_prev = t
        pos += 1
    return pos, t_prev, unsorted


@njit(cache=True, nogil=True)
def copy_tonic(raw: Any, scale: Any, out: Any) -> bool:
    """``(N, 4)`` float rows ``x, y, p, t_ms`` -> ``out``; t = ``t_ms * scale`` in the file's float type, truncated.

    ``scale`` has the file's dtype, so the product rounds exactly as numpy's ``raw[:, 3] * 1000`` (and
    the casts truncate as numpy's do); returns whether time ever went backwards.
    """
    unsorted = False
    t_prev = np.iinfo(np.int64).min
    for i in range(raw.shape[0]):
        o = out[i]
        o["x"] = np.int16(raw[i, 0])
        o["y"] = np.int16(raw[i, 1])
        o["p"] = raw[i, 2] != 0
        t = np.int64(raw[i, 3] * scale)
        o["t"] = t
        if t < t_prev:
            unsorted = True
        t_prev = t
    return unsorted
