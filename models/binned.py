"""Binned recordings for training and evaluation: the shared preprocessing, run once and cached on disk.

Every recording goes through :func:`s2gesture.daemon.preprocess.preprocess_recording`, the code path the
daemon serves with, so training and serving cannot drift. The binary tensors are cached bit-packed (one bit
per pixel, polarity and tick: 256 bytes per 1 ms tick of a 2x32x32 frame, 8x less than uint8) in a folder
per (dataset split, preprocessing spec), keyed by a hash of the spec and of the source files' names, sizes
and modification times: change either and the cache is rebuilt. The cache lives under the user's cache
directory (``$XDG_CACHE_HOME/s2gesture`` or ``~/.cache/s2gesture``; ``--cache DIR`` elsewhere), never
inside the dataset. It is built once, one recording at a time (only the packed bits of the recording in
hand are in memory), and read with ``pread``: a recording's ticks are read and unpacked only when a window of
them is asked for (:class:`PackedSpikes`), so training memory does not grow with the dataset.

Datasets: tonic's layout (:mod:`.datasets.tonic_layout`) and the IBM raw release with its official split
files (:mod:`.datasets.ibm`), told apart by :func:`dataset_kind`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from s2gesture.daemon.card import MIRROR_WITH_NONE
from s2gesture.daemon.errors import EventDataError
from s2gesture.daemon.events import Recording
from s2gesture.daemon.preprocess import PreprocessSpec, preprocess_recording

#: label permutation of a left-right mirror (the daemon card's table, MODEL.md): 1<->2, 3<->6, 4<->5; "none" (11) stays
MIRROR_LABELS: tuple[int, ...] = MIRROR_WITH_NONE

#: version of the cache folder's layout (part of the key: a new layout never reads an old cache)
CACHE_FORMAT = 2


class PackedFile:
    """The cache's ``bits.bin`` read with ``pread``: rows come through the page cache, never mapped.

    Mapped pages count in a process's RSS however reclaimable they are; read pages do not, so training
    memory stays what the batch needs whatever the dataset size. ``pread`` takes no file position, so the
    descriptor is safe to share with forked workers.
    """

    def __init__(self, path: Path, row_bytes: int) -> None:
        self.path = path
        self.row_bytes = int(row_bytes)
        self._fd = os.open(path, os.O_RDONLY)

    def rows(self, start: int, stop: int) -> np.ndarray:
        n = max(0, stop - start)
        data = os.pread(self._fd, n * self.row_bytes, start * self.row_bytes)
        if len(data) != n * self.row_bytes:
            msg = f"{self.path}: expected {n * self.row_bytes} bytes at row {start}, found {len(data)}; delete the cache folder to rebuild it"
            raise EventDataError(msg)
        return np.frombuffer(data, dtype=np.uint8).reshape(n, self.row_bytes)

    def __del__(self) -> None:
        with contextlib.suppress(OSError, AttributeError):  # interpreter shutdown may have closed it
            os.close(self._fd)


class PackedSpikes:
    """A recording's binary spikes ``[T, C, H, W]`` kept bit-packed on disk; ticks are read and unpacked on slicing.

    Behaves as the uint8 array where the toolkit uses one: ``shape``, ``dtype``, ``len``, time slices
    (``x[a:b]`` -> a uint8 array of those ticks) and ``np.asarray(x)`` (the whole recording). The packed rows
    come from an in-memory array or from a :class:`PackedFile` (``source, start, length``).
    """

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(self, packed: np.ndarray | PackedFile, frame: tuple[int, ...], start: int = 0, length: int | None = None) -> None:
        self._packed = packed
        self._frame = tuple(int(v) for v in frame)
        self._n = int(np.prod(self._frame))
        self._start = int(start)
        self._len = int(packed.shape[0]) if isinstance(packed, np.ndarray) else int(length or 0)

    @property
    def shape(self) -> tuple[int, ...]:
        return (self._len, *self._frame)

    @property
    def nbytes_packed(self) -> int:
        return self._len * -(-self._n // 8)

    def __len__(self) -> int:
        return self._len

    def _rows(self, a: int, b: int) -> np.ndarray:
        if isinstance(self._packed, np.ndarray):
            return self._packed[a:b]
        return self._packed.rows(self._start + a, self._start + b)

    def _unpack(self, rows: np.ndarray) -> np.ndarray:
        flat = np.unpackbits(np.asarray(rows), axis=-1, count=self._n)
        return flat.reshape(rows.shape[0], *self._frame)

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, slice) and key.step in (None, 1):
            a, b, _ = key.indices(self._len)
            return self._unpack(self._rows(a, max(a, b)))
        if isinstance(key, int | np.integer):
            i = int(key) + (self._len if int(key) < 0 else 0)
            if not 0 <= i < self._len:
                msg = f"tick {int(key)} out of range for a recording of {self._len} ticks"
                raise IndexError(msg)
            return self._unpack(self._rows(i, i + 1))[0]
        return np.asarray(self)[key]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self._unpack(self._rows(0, self._len))
        return out if dtype is None else out.astype(dtype)


def pack(spikes: np.ndarray) -> np.ndarray:
    """``uint8 [T, C, H, W]`` of 0/1 -> packed rows ``uint8 [T, ceil(C*H*W / 8)]`` (one row per tick)."""
    arr = np.asarray(spikes)
    return np.packbits(arr.reshape(arr.shape[0], -1), axis=-1)


def default_cache_dir() -> Path:
    """``$S2GESTURE_CACHE``, else ``$XDG_CACHE_HOME/s2gesture``, else ``~/.cache/s2gesture``."""
    if os.environ.get("S2GESTURE_CACHE"):
        return Path(os.environ["S2GESTURE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "s2gesture"


@dataclass
class BinnedSet:
    """Binary spike tensors ``uint8 [T_i, C, H, W]`` with labels and users (one entry per recording)."""

    spikes: list[np.ndarray]
    labels: np.ndarray
    users: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    skipped_rows: int = 0  # bad label rows skipped while listing the recordings (IBM release, strict=False)

    def __len__(self) -> int:
        return len(self.spikes)

    def subset(self, index: Sequence[int]) -> BinnedSet:
        """The recordings at ``index`` (no copy of the tensors)."""
        return BinnedSet(
            spikes=[self.spikes[i] for i in index],
            labels=self.labels[np.asarray(index, dtype=int)],
            users=[self.users[i] for i in index] if self.users else [],
            names=[self.names[i] for i in index] if self.names else [],
        )

    def summary(self) -> dict[str, Any]:
        """Counts for reports: recordings, users, ticks."""
        lengths = [int(s.shape[0]) for s in self.spikes]
        return {
            "recordings": len(self),
            "users": sorted(set(self.users)),
            "ticks_min": min(lengths, default=0),
            "ticks_median": float(np.median(lengths)) if lengths else 0.0,
            "ticks_max": max(lengths, default=0),
            "class_counts": np.bincount(self.labels, minlength=11).tolist() if len(self) else [],
            "skipped_label_rows": self.skipped_rows,
        }


def user_of(rec: Recording) -> str:
    """The user a recording belongs to (its ``meta['user']``, else the name's ``userNN`` prefix)."""
    meta_user = (rec.meta or {}).get("user")
    if meta_user is not None:
        return f"user{int(meta_user):02d}" if isinstance(meta_user, int) else str(meta_user)
    return rec.name.split("_")[0] if rec.name else ""


def bin_recordings(recordings: Iterable[Recording], spec: PreprocessSpec) -> BinnedSet:
    """Preprocess each labelled recording with the daemon's code path."""
    spikes, labels, users, names = [], [], [], []
    for rec in recordings:
        if rec.label is None:
            msg = f"recording {rec.name!r} has no label; training and evaluation need labelled recordings"
            raise EventDataError(msg)
        if tuple(rec.sensor_size) != tuple(spec.sensor_size):
            spec = dataclasses.replace(spec, sensor_size=tuple(rec.sensor_size))
        spikes.append(preprocess_recording(rec, spec))
        labels.append(int(rec.label))
        users.append(user_of(rec))
        names.append(rec.name)
    return BinnedSet(spikes, np.asarray(labels, dtype=np.int64), users, names)


def _spec_key(spec: PreprocessSpec, sources: Sequence[Path], extra: str = "") -> str:
    fields = dataclasses.asdict(spec)
    if not fields["anti_flicker_hz"]:
        del fields["anti_flicker_hz"]  # a field added later: caches binned without the filter keep their key
    h = hashlib.sha256(json.dumps(fields, sort_keys=True).encode())
    h.update(f"format{CACHE_FORMAT};{extra};".encode())
    for p in sources:
        st = p.stat()
        h.update(f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def save_binned(path: Path, data: BinnedSet) -> None:
    """Write a :class:`BinnedSet` as packed bits (8 ticks' pixels per byte)."""
    lengths = np.asarray([s.shape[0] for s in data.spikes], dtype=np.int64)
    frame = data.spikes[0].shape[1:] if data.spikes else (0,)
    flat = np.concatenate([s.reshape(-1) for s in data.spikes]) if data.spikes else np.zeros(0, np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp,
        bits=np.packbits(flat),
        n_bits=np.int64(flat.size),
        lengths=lengths,
        frame=np.asarray(frame, dtype=np.int64),
        labels=data.labels,
        users=np.asarray(data.users, dtype=str),
        names=np.asarray(data.names, dtype=str),
    )
    tmp.replace(path)


def load_binned(path: Path) -> BinnedSet:
    """Read a file written by :func:`save_binned`."""
    with np.load(path) as z:
        flat = np.unpackbits(z["bits"], count=int(z["n_bits"]))
        frame = tuple(int(v) for v in z["frame"])
        lengths = z["lengths"]
        step = int(np.prod(frame))
        offsets = np.concatenate([[0], np.cumsum(lengths * step)])
        spikes = [
            flat[offsets[i] : offsets[i + 1]].reshape(int(lengths[i]), *frame) for i in range(len(lengths))
        ]
        return BinnedSet(spikes, z["labels"].astype(np.int64), list(z["users"]), list(z["names"]))


def dataset_kind(root: str | Path) -> str:
    """"ibm" (the raw release's split files), "tonic" (DVSGesture/ibmGesture*), or an EventDataError naming both."""
    from s2gesture.models.datasets import ibm, tonic_layout

    root = Path(root)
    if ibm.is_release(root):
        return "ibm"
    if any((tonic_layout.dataset_dir(root) / f).is_dir() for f in tonic_layout.SPLIT_FOLDERS.values()):
        return "tonic"
    msg = (
        f"{root}: expected a DVS128 Gesture dataset, found neither layout: tonic's (ROOT/DVSGesture/ibmGestureTrain/"
        "userNN_<lighting>/<label>.npy) nor the IBM raw release (ROOT/DvsGesture/trials_to_train.txt, "
        "trials_to_test.txt, userNN_<lighting>.aedat + _labels.csv); generate one with `s2gesture synth "
        "--out ROOT --layout ibm ...` or point --data at a DVS128 Gesture copy"
    )
    raise EventDataError(msg)


@dataclass
class SplitSource:
    """What a split is made of: the recordings to bin (lazily), the files they come from, and notes."""

    kind: str
    sources: list[Path]
    count: int
    recordings: Iterable[Recording]
    skipped_rows: int = 0
    key_extra: str = ""


def split_source(root: str | Path, split: str, *, limit: int | None = None, strict: bool = True) -> SplitSource:
    """The recordings of ``split`` of the dataset under ``root`` (either layout), not yet read."""
    from s2gesture.models.datasets import ibm, tonic_layout

    root = Path(root)
    kind = dataset_kind(root)
    if kind == "ibm":
        gestures, skipped = ibm.list_gestures(root, split, strict=strict)
        gestures = _spread(gestures, limit)
        files = sorted({g.aedat for g in gestures} | {g.labels for g in gestures})
        listing = ibm.release_dir(root) / ibm.SPLIT_FILES[split]  # type: ignore[operator]
        rows = ",".join(f"{g.aedat.name}:{g.row}" for g in gestures)
        return SplitSource(kind, [listing, *files], len(gestures), ibm.load_gestures(gestures), skipped,
                           f"ibm;strict={strict};{hashlib.sha256(rows.encode()).hexdigest()}")  # fmt: skip
    samples = _spread(tonic_layout.list_samples(root, split), limit)
    return SplitSource(kind, [s.path for s in samples], len(samples), (tonic_layout.load_sample(s) for s in samples))


def _spread(items: list[Any], limit: int | None) -> list[Any]:
    # spread a limited selection over users and classes instead of taking the first user only
    if limit is None:
        return items
    step = max(1, len(items) // max(1, limit))
    return items[::step][:limit]


def load_split(
    root: str | Path,
    split: str,
    spec: PreprocessSpec,
    *,
    cache_dir: str | Path | None = None,
    limit: int | None = None,
    strict: bool = True,
    progress: bool = True,
) -> BinnedSet:
    """Binned recordings of ``split`` ("train"/"test") of the dataset under ``root``, cached bit-packed.

    ``root``: tonic's layout or the IBM raw release (official split files). ``strict=False`` skips bad
    label rows of the raw release (counted in the returned set's ``skipped_rows``).
    """
    src = split_source(root, split, limit=limit, strict=strict)
    if not src.count:
        layout = ("DvsGesture/trials_to_<split>.txt naming .aedat files with labelled rows" if src.kind == "ibm"
                  else f"<root>/DVSGesture/ibmGesture{'Train' if split == 'train' else 'Test'}/userNN_<lighting>/<label>.npy")  # fmt: skip
        msg = (
            f"no recordings of split {split!r} under {root} (expected {layout}); "
            "generate some with `s2gesture synth --out DIR` or point --data at a DVS128 Gesture copy"
        )
        raise FileNotFoundError(msg)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / f"{split}-{_spec_key(spec, src.sources, src.key_extra)}"
    if not (path / "index.npz").is_file():
        build_cache(path, _progress(src.recordings, src.count, f"binning {split} (once)", progress), spec)
    data = open_cache(path)
    data.skipped_rows = src.skipped_rows
    return data


def build_cache(path: Path, recordings: Iterable[Recording], spec: PreprocessSpec) -> Path:
    """Bin ``recordings`` one at a time into the packed cache folder ``path`` (written whole or not at all)."""
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    lengths, labels, users, names = [], [], [], []
    frame: tuple[int, ...] | None = None
    try:
        with open(tmp / "bits.bin", "wb") as fh:
            for rec in recordings:
                if rec.label is None:
                    msg = f"recording {rec.name!r} has no label; training and evaluation need labelled recordings"
                    raise EventDataError(msg)
                if tuple(rec.sensor_size) != tuple(spec.sensor_size):
                    spec = dataclasses.replace(spec, sensor_size=tuple(rec.sensor_size))
                spikes = preprocess_recording(rec, spec)
                frame = tuple(int(v) for v in spikes.shape[1:])
                fh.write(pack(spikes).tobytes())
                lengths.append(int(spikes.shape[0]))
                labels.append(int(rec.label))
                users.append(user_of(rec))
                names.append(rec.name)
        np.savez(tmp / "index.npz", lengths=np.asarray(lengths, dtype=np.int64),
                 frame=np.asarray(frame or spec.frame_shape, dtype=np.int64), labels=np.asarray(labels, dtype=np.int64),
                 users=np.asarray(users, dtype=str), names=np.asarray(names, dtype=str))  # fmt: skip
        shutil.rmtree(path, ignore_errors=True)
        tmp.replace(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def open_cache(path: Path) -> BinnedSet:
    """A cache folder written by :func:`build_cache` as a BinnedSet of on-disk :class:`PackedSpikes`."""
    with np.load(path / "index.npz") as z:
        lengths = z["lengths"]
        frame = tuple(int(v) for v in z["frame"])
        labels = z["labels"].astype(np.int64)
        users, names = [str(u) for u in z["users"]], [str(n) for n in z["names"]]
    row = -(-int(np.prod(frame)) // 8)
    source = PackedFile(path / "bits.bin", row)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    spikes: list[Any] = [PackedSpikes(source, frame, int(starts[i]), int(lengths[i])) for i in range(len(lengths))]
    return BinnedSet(spikes, labels, users, names)


def _progress(it: Iterable[Any], total: int, desc: str, enabled: bool = True) -> Iterable[Any]:
    from tqdm import tqdm

    return tqdm(it, total=total, desc=desc, leave=False, disable=not enabled, unit="rec")
