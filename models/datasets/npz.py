"""Our own single-recording file: ``.npz`` with columns and a JSON description (no pickle).

Keys: ``format`` ("s2gesture-events"), ``version`` (1), ``x``, ``y`` int16, ``p`` bool, ``t`` int64 µs,
``sensor_size`` int64 ``[width, height]``, ``label`` int64 (-1 = none), ``name`` and ``meta`` (JSON) strings.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from s2gesture.daemon.errors import EventDataError
from s2gesture.daemon.events import EVENT_DTYPE, Recording

FORMAT = "s2gesture-events"
VERSION = 1
KEYS = ("format", "version", "x", "y", "p", "t", "sensor_size", "label", "name", "meta")


def write_npz(path: str | Path, rec: Recording, *, compress: bool = True) -> Path:
    """Write ``rec`` to ``path`` (``.npz``); ``meta`` must be JSON-serialisable."""
    path = Path(path)
    try:
        meta = json.dumps(dict(rec.meta), sort_keys=True)
    except TypeError as exc:
        msg = (
            f"{path}: recording meta must be JSON-serialisable ({exc}); convert numpy values to int/float/str"
        )
        raise EventDataError(msg) from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    save = np.savez_compressed if compress else np.savez
    with open(path, "wb") as fh:
        save(
            fh,
            format=np.array(FORMAT),
            version=np.array(VERSION),
            x=rec.events["x"],
            y=rec.events["y"],
            p=rec.events["p"],
            t=rec.events["t"],
            sensor_size=np.array(rec.sensor_size, dtype=np.int64),
            label=np.array(-1 if rec.label is None else rec.label, dtype=np.int64),
            name=np.array(rec.name),
            meta=np.array(meta),
        )
    return path


def read_npz(path: str | Path) -> Recording:
    """Read a file written by :func:`write_npz`; a missing key or wrong shape names the field."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in KEYS if k not in data.files]
            if missing:
                msg = f"{path}: field {missing[0]}: missing (expected keys {', '.join(KEYS)}); not an s2gesture .npz"
                raise EventDataError(msg)
            if str(data["format"]) != FORMAT or int(data["version"]) != VERSION:
                msg = (
                    f"{path}: field format/version: expected {FORMAT!r} v{VERSION}, found "
                    f"{str(data['format'])!r} v{int(data['version'])}"
                )
                raise EventDataError(msg)
            cols = {k: data[k] for k in ("x", "y", "p", "t")}
            n = cols["t"].shape[0]
            for key, col in cols.items():
                if col.ndim != 1 or col.shape[0] != n:
                    msg = f"{path}: field {key}: expected shape ({n},) like 't', found {col.shape}"
                    raise EventDataError(msg)
            events = np.empty(n, dtype=EVENT_DTYPE)
            for key, col in cols.items():
                events[key] = col
            label = int(data["label"])
            meta: dict[str, Any] = json.loads(str(data["meta"]))
            sensor = tuple(int(v) for v in data["sensor_size"])
            name = str(data["name"])
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        msg = f"{path}: not a readable .npz ({type(exc).__name__}: {exc}); the file is truncated or not ours"
        raise EventDataError(msg) from exc
    return Recording(events, sensor, label=None if label < 0 else label, name=name, meta=meta)  # type: ignore[arg-type,unused-ignore]


def load_recording(path: str | Path, segment: int = 0) -> Recording:
    """Reader-registry entry (one recording per file; ``segment`` is ignored)."""
    return read_npz(path)
