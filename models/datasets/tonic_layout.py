"""tonic's DVSGesture layout, read and written with numpy only (tonic need not be installed).

Layout (``root`` is what ``tonic.datasets.DVSGesture(save_to=root)`` takes)::

    root/DVSGesture/ibmGestureTrain.tar.gz            (marker; tonic only checks that it exists)
    root/DVSGesture/ibmGestureTrain/userNN_<lighting>/<label>.npy
    root/DVSGesture/ibmGestureTest.tar.gz
    root/DVSGesture/ibmGestureTest/userNN_<lighting>/<label>.npy

Each ``.npy`` is a float64 ``(N, 4)`` array ``[x, y, p, t_ms]`` with ``t`` in milliseconds carrying µs
decimals. tonic loads it as ``t_us = int64(t_ms * 1000)`` (a float product, truncated); the reader here
does the same arithmetic, and the writer picks for every µs timestamp the float ``t_ms`` whose product
truncates back to exactly that timestamp (plain ``t_us / 1000`` loses 1 µs on about 1 % of them).
tonic skips its download only when the marker ``.tar.gz`` exists and the split holds >= 100 ``.npy``
files (``TONIC_MIN_FILES``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from s2gesture.daemon.errors import EventDataError
from s2gesture.daemon.events import EVENT_DTYPE, Events, Recording, as_events

SENSOR_SIZE = (128, 128)
SPLIT_FOLDERS = {"train": "ibmGestureTrain", "test": "ibmGestureTest"}
TONIC_MIN_FILES = 100
LIGHTINGS = ("fluorescent", "fluorescent_led", "lab", "led", "natural")


@dataclass(frozen=True)
class Sample:
    """One recording of the layout: its file, 0-based class label, user number and lighting tag."""

    path: Path
    label: int
    user: int
    lighting: str
    split: str


def dataset_dir(root: str | Path) -> Path:
    """``root/DVSGesture`` (``root`` may also be that folder itself)."""
    root = Path(root)
    return root if root.name == "DVSGesture" else root / "DVSGesture"


def _split_dir(root: str | Path, split: str) -> Path:
    if split not in SPLIT_FOLDERS:
        msg = f"split: expected one of {', '.join(SPLIT_FOLDERS)}, found {split!r}"
        raise EventDataError(msg)
    return dataset_dir(root) / SPLIT_FOLDERS[split]


def session_name(user: int, lighting: str) -> str:
    """Folder name of one user's session: ``user07_led``."""
    return f"user{user:02d}_{lighting}"


def list_samples(root: str | Path, split: str) -> list[Sample]:
    """Every sample of ``split`` ("train" or "test") sorted by user, lighting and label."""
    folder = _split_dir(root, split)
    if not folder.is_dir():
        msg = (
            f"tonic layout: no folder {folder} (expected root/DVSGesture/{SPLIT_FOLDERS[split]}/userNN_<lighting>/"
            "<label>.npy); generate one with `s2gesture synth --out ROOT` or point at tonic's save_to folder"
        )
        raise EventDataError(msg)
    samples = []
    for session in sorted(p for p in folder.iterdir() if p.is_dir()):
        user_part, _, lighting = session.name.partition("_")
        if not user_part.startswith("user") or not user_part[4:].isdigit() or not lighting:
            msg = f"tonic layout: folder {session} is not named userNN_<lighting>; rename or remove it"
            raise EventDataError(msg)
        for file in session.glob("*.npy"):
            if not file.stem.isdigit():
                msg = f"tonic layout: file {file} is not named <label>.npy with a 0-based integer label"
                raise EventDataError(msg)
            samples.append(Sample(file, int(file.stem), int(user_part[4:]), lighting, split))
    samples.sort(key=lambda s: (s.user, s.lighting, s.label))
    return samples


def load_sample(sample: Sample | str | Path) -> Recording:
    """Load one ``.npy`` of the layout as a :class:`Recording` (t in µs exactly as tonic computes it)."""
    path = Path(sample.path if isinstance(sample, Sample) else sample)
    try:
        raw = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        msg = f"{path}: not a readable .npy array ({exc}); regenerate or re-extract the file"
        raise EventDataError(msg) from exc
    if raw.ndim != 2 or raw.shape[1] != 4 or raw.dtype.kind not in "fiu":
        msg = f"{path}: expected an (N, 4) numeric array [x, y, p, t_ms], found shape {raw.shape} dtype {raw.dtype}"
        raise EventDataError(msg)
    # The same float arithmetic as tonic (t_ms * 1000 in the file's dtype, then a truncating cast).
    events = np.empty(raw.shape[0], dtype=EVENT_DTYPE)
    if raw.dtype in (np.float32, np.float64):
        from .fastcopy import copy_tonic

        # one compiled pass over the mapped rows instead of four strided field copies and a sort check
        unsorted = copy_tonic(raw, raw.dtype.type(1000), events)
    else:  # integer files: numpy's own integer arithmetic (wraparound included)
        events["x"] = raw[:, 0]
        events["y"] = raw[:, 1]
        events["p"] = raw[:, 2]
        events["t"] = raw[:, 3] * 1000
        unsorted = events.shape[0] > 1 and bool(np.any(events["t"][1:] < events["t"][:-1]))
    if unsorted:
        events = events[np.argsort(events["t"], kind="stable")]
    label: int | None
    meta: dict[str, object]
    if isinstance(sample, Sample):
        label, meta = sample.label, {"user": sample.user, "lighting": sample.lighting, "split": sample.split}
    else:
        label = int(path.stem) if path.stem.isdigit() else None
        meta = {}
    try:
        return Recording(events, SENSOR_SIZE, label=label, name=str(path), meta={**meta, "path": str(path)})
    except EventDataError as exc:
        msg = f"{path}: {exc}"
        raise EventDataError(msg) from exc


def t_us_to_ms(t_us: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Float milliseconds that tonic's ``int64(t_ms * 1000)`` turns back into exactly ``t_us``."""
    t_us = np.asarray(t_us, dtype=np.int64)
    t_ms = t_us / 1000.0
    for _ in range(4):
        low = (t_ms * 1000).astype(np.int64) < t_us
        if not low.any():
            break
        t_ms[low] = np.nextafter(t_ms[low], np.inf)
    return t_ms


def write_sample(root: str | Path, split: str, user: int, lighting: str, label: int, events: Events) -> Path:
    """Write one recording as ``<split>/userNN_<lighting>/<label>.npy``; returns the path."""
    events = as_events(events)
    folder = _split_dir(root, split) / session_name(user, lighting)
    folder.mkdir(parents=True, exist_ok=True)
    array = np.empty((events.shape[0], 4), dtype=np.float64)
    array[:, 0] = events["x"]
    array[:, 1] = events["y"]
    array[:, 2] = events["p"]
    array[:, 3] = t_us_to_ms(events["t"])
    path = folder / f"{label}.npy"
    tmp = path.with_suffix(".npy.tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, array)
    os.replace(tmp, path)
    return path


def write_markers(root: str | Path) -> None:
    """Create the empty ``.tar.gz`` marker files tonic checks for before it would download."""
    base = dataset_dir(root)
    base.mkdir(parents=True, exist_ok=True)
    for folder in SPLIT_FOLDERS.values():
        marker = base / f"{folder}.tar.gz"
        if not marker.exists():
            marker.write_bytes(b"")


def count_samples(root: str | Path, split: str) -> int:
    """Number of ``.npy`` files in ``split`` (tonic needs >= ``TONIC_MIN_FILES``)."""
    return sum(1 for _ in _split_dir(root, split).glob("**/*.npy"))


def load_recording(path: str | Path, segment: int = 0) -> Recording:
    """Reader-registry entry: one ``.npy`` of the layout (``segment`` is ignored: one recording per file)."""
    path = Path(path)
    rec = load_sample(path)
    session = path.parent.name
    user_part, _, lighting = session.partition("_")
    if user_part.startswith("user") and user_part[4:].isdigit() and lighting:
        meta = {**rec.meta, "user": int(user_part[4:]), "lighting": lighting}
        return Recording(rec.events, rec.sensor_size, rec.label, rec.name, meta)
    return rec
