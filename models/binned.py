"""Binned recordings for training and evaluation: the shared preprocessing, run once and cached on disk.

Every recording goes through :func:`s2gesture.daemon.preprocess.preprocess_recording`, the code path the
daemon serves with, so training and serving cannot drift. The binary tensors are cached as one ``.npz`` of
packed bits per (dataset split, preprocessing spec), keyed by a hash of the spec and of the source files'
names, sizes and modification times: change either and the cache is rebuilt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from s2gesture.daemon.events import Recording
from s2gesture.daemon.preprocess import PreprocessSpec, preprocess_recording

#: label permutation of a left-right mirror (MODEL.md): 1<->2 (hand waves), 3<->6 and 4<->5 (arm circles:
#: a mirrored clockwise circle of the right arm is a counter-clockwise circle of the left arm).
MIRROR_LABELS: tuple[int, ...] = (0, 2, 1, 6, 5, 4, 3, 7, 8, 9, 10)


@dataclass
class BinnedSet:
    """Binary spike tensors ``uint8 [T_i, C, H, W]`` with labels and users (one entry per recording)."""

    spikes: list[np.ndarray]
    labels: np.ndarray
    users: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

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
            raise ValueError(msg)
        if tuple(rec.sensor_size) != tuple(spec.sensor_size):
            spec = dataclasses.replace(spec, sensor_size=tuple(rec.sensor_size))
        spikes.append(preprocess_recording(rec, spec))
        labels.append(int(rec.label))
        users.append(user_of(rec))
        names.append(rec.name)
    return BinnedSet(spikes, np.asarray(labels, dtype=np.int64), users, names)


def _spec_key(spec: PreprocessSpec, sources: Sequence[Path]) -> str:
    h = hashlib.sha256(json.dumps(dataclasses.asdict(spec), sort_keys=True).encode())
    for p in sources:
        st = p.stat()
        h.update(f"{p}:{st.st_size}:{st.st_mtime_ns};".encode())
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


def load_split(
    root: str | Path,
    split: str,
    spec: PreprocessSpec,
    *,
    cache_dir: str | Path | None = None,
    limit: int | None = None,
) -> BinnedSet:
    """Binned recordings of ``split`` ("train"/"test") of a tonic-layout dataset under ``root``, cached."""
    from s2gesture.models.datasets import tonic_layout

    root = Path(root)
    samples = tonic_layout.list_samples(root, split)
    if limit is not None:
        # spread a limited selection over users and classes instead of taking the first user only
        step = max(1, len(samples) // limit)
        samples = samples[::step][:limit]
    sources = [s.path for s in samples]
    if not sources:
        msg = (
            f"no recordings of split {split!r} under {root} (expected <root>/DVSGesture/ibmGesture"
            f"{'Train' if split == 'train' else 'Test'}/userNN_<lighting>/<label>.npy); "
            "generate some with `s2gesture synth OUT` or point --data at a DVS128 Gesture copy"
        )
        raise FileNotFoundError(msg)
    cache = Path(cache_dir) if cache_dir is not None else root / ".s2gesture_cache"
    path = cache / f"{split}-{_spec_key(spec, sources)}.npz"
    if path.is_file():
        return load_binned(path)
    recordings = (tonic_layout.load_sample(s) for s in samples)
    data = bin_recordings(_progress(recordings, len(samples), f"preprocess {split}"), spec)
    save_binned(path, data)
    return data


def _progress(it: Iterable[Any], total: int, desc: str) -> Iterable[Any]:
    from tqdm import tqdm

    return tqdm(it, total=total, desc=desc, leave=False)
