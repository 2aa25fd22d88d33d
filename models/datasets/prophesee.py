"""Prophesee Metavision recordings: RAW files (EVT 2.0 / EVT 3.0) and DAT files, any sensor size.

Decoding goes through ``expelliarmus`` (imported lazily; ``pip install 's2gesture[formats]'``). Measured on
the same 2 M-event files written by expelliarmus (benchmarks/bench_camera.py re-measures it): expelliarmus
decodes EVT 2.0 in ~20 ms, EVT 3.0 in ~80 ms and DAT in ~26 ms, bit-exact; ``evlib`` 0.13 took ~1.45 s
for each RAW file (it builds a Polars frame), decoded the EVT 3.0 file's times wrongly and took the DAT
file for text. So expelliarmus it is; what it does not do - read the header (sensor size, encoding), check
the payload and say where a file is wrong - is done here.

The ASCII header is the leading lines that start with ``%``. The encoding comes from ``% evt 2.0`` /
``% evt 3.0`` or ``% format EVT3;height=H;width=W`` (Metavision 4+); the sensor size from that ``format``
line, ``% geometry WxH``, the DAT ``% Width`` / ``% Height`` lines or, failing those, the sensor generation
in ``% plugin_name`` / ``% sensor_generation``; a file that says none of them gets ``max(x, y) + 1`` and
``meta["sensor_size_from"] = "events"``. Polarity 1 (ON) becomes ``p = True``; times are the file's µs.

After decoding, one compiled pass (:func:`_from_lib`, numba, cached on disk like the daemon's kernels) copies
expelliarmus' 16-byte events into EVENT_DTYPE and finds the first event outside the sensor and the first
that goes back in time; numpy's field-by-field copies and separate checks took 3-5 times the decode itself.

:func:`write_raw` / :func:`write_dat` write the formats (through expelliarmus, which writes EVT 2.0, EVT 3.0
and DAT v2) with a geometry line added, so tests and tools can make real files.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from s2gesture.daemon.errors import EventDataError
from s2gesture.daemon.events import EVENT_DTYPE, Events, Recording, as_events

ENCODINGS = ("evt2", "evt3", "dat")
#: bytes per payload word: EVT 2.0 words are 32-bit, EVT 3.0 words 16-bit, DAT events 8 bytes
WORD_BYTES = {"evt2": 4, "evt3": 2, "dat": 8}
#: sensor generation named in the header -> (width, height) of that sensor
SENSORS: dict[str, tuple[int, int]] = {
    "gen3": (640, 480),
    "gen31": (640, 480),
    "gen41": (1280, 720),
    "imx636": (1280, 720),
    "imx646": (1280, 720),
    "imx8": (320, 320),
    "genx320": (320, 320),
}
_FORMAT_RE = re.compile(r"(?i)^(evt2|evt3|evt21|evt4)\b(.*)$")
#: the bound used when the header names no sensor size: anything an int16 field holds
NO_LIMIT = 1 << 15


@njit(cache=True, nogil=True)
def _convert(t, x, y, p, out_t, out_x, out_y, out_p, width, height):  # type: ignore[no-untyped-def]
    """Copy the fields in one pass; the first event outside width x height, the first back in time (-1: none), max x, max y."""
    n = t.shape[0]
    bad, backwards, max_x, max_y = -1, -1, 0, 0
    prev = t[0] if n else 0
    for i in range(n):
        xi, yi, ti = x[i], y[i], t[i]
        out_x[i], out_y[i], out_p[i], out_t[i] = xi, yi, p[i] != 0, ti
        if bad < 0 and (xi < 0 or xi >= width or yi < 0 or yi >= height):
            bad = i
        if backwards < 0 and ti < prev:
            backwards = i
        prev = ti
        max_x = max(max_x, xi)
        max_y = max(max_y, yi)
    return bad, backwards, max_x, max_y


def _from_lib(raw: np.ndarray, sensor: tuple[int, int] | None) -> tuple[Events, int, int, tuple[int, int]]:
    """expelliarmus' events as EVENT_DTYPE: (events, first event outside ``sensor`` or -1, first back in time or -1, max x/y + 1)."""
    events = np.empty(raw.shape[0], dtype=EVENT_DTYPE)
    width, height = sensor if sensor is not None else (NO_LIMIT, NO_LIMIT)
    bad, backwards, max_x, max_y = _convert(
        raw["t"], raw["x"], raw["y"], raw["p"], events["t"], events["x"], events["y"], events["p"], width, height
    )
    return events, int(bad), int(backwards), (int(max_x) + 1, int(max_y) + 1)


def _expelliarmus() -> Any:
    try:
        import expelliarmus
    except ImportError as exc:
        msg = (
            "reading Prophesee RAW/DAT files needs the 'expelliarmus' package: "
            "pip install 's2gesture[formats]' (or pip install expelliarmus)"
        )
        raise EventDataError(msg) from exc
    return expelliarmus


def read_header(path: Path) -> tuple[dict[str, str], int]:
    """The ``%`` header lines as ``{key: value}`` (keys lower-case) and the byte offset where data starts."""
    fields: dict[str, str] = {}
    offset = 0
    with open(path, "rb") as fh:
        while True:
            line = fh.readline()
            if not line.startswith(b"%"):
                break
            offset += len(line)
            text = line[1:].decode("latin-1").strip()
            if text.lower() == "end":
                break
            key, _, value = text.partition(" ")
            if key:
                fields[key.lower()] = value.strip()
    return fields, offset


def _encoding(path: Path, fields: dict[str, str]) -> str:
    if path.suffix.lower() == ".dat":
        return "dat"
    fmt = fields.get("format", "")
    m = _FORMAT_RE.match(fmt.split(";")[0].strip()) if fmt else None
    if m:
        name = m.group(1).lower()
    elif "evt" in fields:
        name = "evt" + fields["evt"].split(".")[0].strip()
    else:
        msg = (
            f"{path}: offset 0: field header: no '% evt 2.0', '% evt 3.0' or '% format EVT3;...' line; "
            "a Metavision RAW file names its encoding in its header (re-record or add the line)"
        )
        raise EventDataError(msg)
    if name not in ("evt2", "evt3"):
        msg = f"{path}: offset 0: field header.evt: encoding {name!r} is not supported; expected EVT 2.0 or EVT 3.0"
        raise EventDataError(msg)
    return name


def _sensor_size(fields: dict[str, str]) -> tuple[int, int] | None:
    fmt = fields.get("format", "")
    kv = dict(part.split("=", 1) for part in fmt.split(";")[1:] if "=" in part)
    try:
        if "width" in kv and "height" in kv:
            return int(kv["width"]), int(kv["height"])
        if "geometry" in fields:
            w, h = fields["geometry"].lower().split("x")
            return int(w), int(h)
        if "width" in fields and "height" in fields:
            return int(fields["width"]), int(fields["height"])
    except ValueError:
        return None
    for key in ("sensor_generation", "plugin_name"):
        value = fields.get(key, "").lower()
        for gen in sorted(SENSORS, key=len, reverse=True):
            if gen in value:
                return SENSORS[gen]
    return None


def read_prophesee(path: str | Path) -> Recording:
    """All CD events of a RAW (EVT 2.0 / 3.0) or DAT file as a :class:`Recording`."""
    path = Path(path)
    if not path.is_file():
        msg = f"{path}: no such Prophesee recording"
        raise EventDataError(msg)
    fields, data_start = read_header(path)
    encoding = _encoding(path, fields)
    payload = path.stat().st_size - data_start
    if encoding == "dat":
        # DAT: after the header one byte event type and one byte event size (8 for CD events)
        with open(path, "rb") as fh:
            fh.seek(data_start)
            type_size = fh.read(2)
        if len(type_size) < 2 or type_size[1] != 8:
            found = type_size[1] if len(type_size) == 2 else "end of file"
            msg = f"{path}: offset {data_start + 1}: field event_size: expected 8 (CD events), found {found}"
            raise EventDataError(msg)
        data_start += 2
        payload -= 2
    word = WORD_BYTES[encoding]
    if payload % word:
        msg = (
            f"{path}: offset {data_start + payload - payload % word}: field events: {payload % word} trailing "
            f"bytes after the last whole {word}-byte word; the file is truncated"
        )
        raise EventDataError(msg)
    try:
        raw = _expelliarmus().Wizard(encoding=encoding).read(str(path))
    except EventDataError:
        raise
    except Exception as exc:  # expelliarmus raises plain errors with its own text
        msg = f"{path}: offset {data_start}: field events: expelliarmus could not decode the {encoding} payload ({exc})"
        raise EventDataError(msg) from exc
    meta: dict[str, Any] = {"path": str(path), "encoding": encoding, "header": fields}
    sensor = _sensor_size(fields)
    events, bad, backwards, extent = _from_lib(raw, sensor)
    if sensor is None:
        sensor = extent if len(events) else (1, 1)
        meta["sensor_size_from"] = "events"
    if bad >= 0:
        axis = "x" if not 0 <= int(events["x"][bad]) < sensor[0] else "y"
        where = f"offset {data_start + bad * word}" if encoding == "dat" else f"event {bad}"
        msg = (
            f"{path}: {where}: field {axis}: {int(events[axis][bad])} is outside the {sensor[0]}x{sensor[1]} "
            "sensor named in the header; the header or the payload is wrong"
        )
        raise EventDataError(msg)
    if backwards >= 0:
        events = events[np.argsort(events["t"], kind="stable")]
    return Recording(events, sensor, name=path.stem, meta=meta)


def load_recording(path: str | Path, segment: int = 0) -> Recording:
    """Reader-registry entry: the whole file (``segment`` is ignored)."""
    return read_prophesee(path)


def _lib_array(events: Events) -> np.ndarray:
    events = as_events(events)
    arr = np.zeros(events.shape[0], dtype=[("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1")])
    arr["t"], arr["x"], arr["y"], arr["p"] = events["t"], events["x"], events["y"], events["p"]
    return arr


def _add_geometry(path: Path, sensor_size: tuple[int, int], encoding: str) -> None:
    """Insert the sensor size into the header expelliarmus wrote (it writes none)."""
    data = path.read_bytes()
    end = 0
    while data.startswith(b"%", end):
        end = data.index(b"\n", end) + 1
    w, h = sensor_size
    line = f"% Width {w}\n% Height {h}\n" if encoding == "dat" else f"% geometry {w}x{h}\n"
    path.write_bytes(data[:end] + line.encode() + data[end:])


def write_raw(path: str | Path, events: Events, sensor_size: tuple[int, int], *, encoding: str = "evt3") -> Path:
    """Write ``events`` as a Metavision RAW file (``evt2`` or ``evt3``) with a ``% geometry`` line."""
    if encoding not in ("evt2", "evt3"):
        msg = f"encoding must be 'evt2' or 'evt3', found {encoding!r}"
        raise EventDataError(msg)
    path = Path(path)
    _expelliarmus().Wizard(encoding=encoding).save(str(path), _lib_array(events))
    _add_geometry(path, sensor_size, encoding)
    return path


def write_dat(path: str | Path, events: Events, sensor_size: tuple[int, int]) -> Path:
    """Write ``events`` as a DAT v2 file with ``% Width`` / ``% Height`` lines."""
    path = Path(path)
    _expelliarmus().Wizard(encoding="dat").save(str(path), _lib_array(events))
    _add_geometry(path, sensor_size, "dat")
    return path
