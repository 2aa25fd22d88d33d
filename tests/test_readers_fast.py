"""The readers' fast paths return exactly what the plain decoders return, on files written by other tools too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from s2gesture.daemon.events import EVENT_DTYPE
from s2gesture.models.datasets import aedat3, aedat4

INT64_MIN, INT64_MAX = np.iinfo(np.int64).min, np.iinfo(np.int64).max


def _events(seed: int, n: int, size: tuple[int, int], *, sorted_t: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ev["x"] = rng.integers(0, size[0], n)
    ev["y"] = rng.integers(0, size[1], n)
    ev["p"] = rng.integers(0, 2, n).astype(bool)
    t = rng.integers(1_000_000, 4_000_000, n)
    ev["t"] = np.sort(t) if sorted_t else t
    return ev


def _dv_file(path: Path, ev: np.ndarray, size: tuple[int, int], compression: str) -> Path:
    dv = pytest.importorskip("dv_processing")
    cfg = dv.io.MonoCameraWriter.EventOnlyConfig("DVXplorer", size)
    cfg.compression = getattr(dv.CompressionType, compression)
    writer = dv.io.MonoCameraWriter(str(path), cfg)
    store = dv.EventStore()
    for e in ev:
        store.push_back(int(e["t"]), int(e["x"]), int(e["y"]), bool(e["p"]))
    writer.writeEvents(store)
    del writer  # closes the file (writes its data table)
    return path


@pytest.mark.parametrize("compression", ["NONE", "LZ4", "ZSTD"])
def test_aedat4_files_written_by_dv_processing_read_exactly(tmp_path: Path, compression: str) -> None:
    """A DV-written file (uncompressed: our FlatBuffer path; compressed: aedat's decoder) gives every event."""
    size = (320, 240)
    ev = _events(1, 3000, size)
    path = _dv_file(tmp_path / "dv.aedat4", ev, size, compression)
    rec = aedat4.read_aedat4(path)
    assert rec.sensor_size == size
    assert np.array_equal(rec.events, ev)
    direct = aedat4._read_uncompressed(path, 0, INT64_MIN, INT64_MAX)
    assert (direct is not None) == (compression == "NONE")


@pytest.mark.parametrize("window", [(None, None), (1_500_000, 2_500_000), (5_000_000, 6_000_000)])
def test_aedat4_direct_path_equals_the_decoder(tmp_path: Path, window: tuple[int | None, int | None]) -> None:
    """Reading the FlatBuffers in place equals decoding with aedat, windows and unsorted packets included."""
    import aedat

    ev = _events(2, 5000, (128, 128), sorted_t=False)
    path = aedat4.write_aedat4(tmp_path / "u.aedat4", ev, (128, 128), packet_events=700)
    lo = INT64_MIN if window[0] is None else window[0]
    hi = INT64_MAX if window[1] is None else window[1]
    direct = aedat4._read_uncompressed(path, 0, lo, hi)
    assert direct is not None
    decoded = aedat4._read_decoded(path, aedat.Decoder(str(path)), 0, lo, hi)
    assert np.array_equal(direct[0], decoded[0]) and direct[1] == decoded[1]
    keep = (ev["t"] >= lo) & (ev["t"] < hi)
    assert np.array_equal(direct[0], ev[keep][np.argsort(ev["t"][keep], kind="stable")])


def test_aedat3_compiled_decode_equals_the_fields(tmp_path: Path) -> None:
    """AEDAT 3.1 events decode to the written events, whole and in a window."""
    ev = _events(3, 6000, (128, 128))
    path = aedat3.write_aedat(tmp_path / "a.aedat", ev, packet_events=1000)
    index = aedat3.read_index(path)
    assert np.array_equal(aedat3.read_events(index), ev)
    part = aedat3.read_events(index, 2_000_000, 3_000_000)
    assert np.array_equal(part, ev[(ev["t"] >= 2_000_000) & (ev["t"] < 3_000_000)])


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_tonic_layout_compiled_load_equals_numpy_arithmetic(tmp_path: Path, dtype: type) -> None:
    """load_sample gives what numpy's ``t_ms * 1000`` in the file's dtype and truncating casts give."""
    from s2gesture.models.datasets import tonic_layout

    rng = np.random.default_rng(4)
    n = 4000
    raw = np.empty((n, 4), dtype=dtype)
    raw[:, 0] = rng.integers(0, 128, n)
    raw[:, 1] = rng.integers(0, 128, n)
    raw[:, 2] = rng.integers(0, 2, n)
    raw[:, 3] = rng.uniform(0, 6000, n).astype(dtype) if dtype != np.int64 else rng.integers(0, 6000, n)
    path = tmp_path / "3.npy"
    np.save(path, raw)
    want = np.empty(n, dtype=EVENT_DTYPE)
    want["x"], want["y"], want["p"], want["t"] = raw[:, 0], raw[:, 1], raw[:, 2], raw[:, 3] * 1000
    want = want[np.argsort(want["t"], kind="stable")]
    assert np.array_equal(tonic_layout.load_sample(path).events, want)
