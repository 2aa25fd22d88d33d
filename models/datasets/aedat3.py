"""AEDAT 3.1 files with ``_labels.csv`` (the IBM DVS128 Gesture raw release): our own reader and writer.

File layout: ASCII header lines starting with ``#`` (first ``#!AER-DAT3.1``, last ``#!END-HEADER``), then
packets, each a 28-byte little-endian header (``PACKET_HEADER``) followed by ``eventNumber x eventSize``
bytes. Polarity events (``eventType`` 1, 8 bytes) are ``uint32 data, int32 timestamp`` with
``x = (data >> 17) & 0x7FFF``, ``y = (data >> 2) & 0x7FFF``, ``p = (data >> 1) & 1``, bit 0 = valid, and
``t_us = (eventTSOverflow << 31) | timestamp``. Other event types (frames, IMU, special) are skipped.

The labels file has a header ``class,startTime_usec,endTime_usec`` and one row per gesture, classes
1-based; segment ``i`` holds the events with ``start <= t < end``.

Reading is lazy: :func:`read_index` walks the packet headers with ``seek`` (reading only each polarity
packet's first and last timestamp), and a segment reads only the packets that overlap it through a
``np.memmap``, so asking for one gesture of a multi-GB file reads a few MB. Any truncation or impossible
header value raises :class:`EventDataError` naming the file, the byte offset and the field.
(tonic's ``read_dvs_ibm`` is broken in current releases, hence a reader of our own.)
"""

from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from s2gesture.daemon.errors import EventDataError
from s2gesture.daemon.events import EVENT_DTYPE, Events, Recording, as_events

MAGIC = b"#!AER-DAT3.1"
END_HEADER = b"#!END-HEADER"
POLARITY_EVENT = 1
POLARITY_SIZE = 8
PACKET_HEADER = np.dtype(
    [
        ("eventType", "<i2"),
        ("eventSource", "<i2"),
        ("eventSize", "<i4"),
        ("eventTSOffset", "<i4"),
        ("eventTSOverflow", "<i4"),
        ("eventCapacity", "<i4"),
        ("eventNumber", "<i4"),
        ("eventValid", "<i4"),
    ]
)
#: camera names found in AEDAT 3.1 headers -> sensor (width, height)
CAMERAS: dict[str, tuple[int, int]] = {
    "DVS128": (128, 128),
    "DAVIS240": (240, 180),
    "DAVIS346": (346, 260),
    "DVXPLORER": (640, 480),
    "DVXPLORER_LITE": (320, 240),
}
LABELS_HEADER = ("class", "startTime_usec", "endTime_usec")

_INDEX_DTYPE = np.dtype(
    [("offset", "<i8"), ("number", "<i8"), ("overflow", "<i8"), ("t_first", "<i8"), ("t_last", "<i8")]
)


@dataclass(frozen=True, eq=False)
class AedatIndex:
    """Where the polarity packets of an AEDAT 3.1 file are (byte offsets of their bodies) and their times."""

    path: Path
    header_size: int
    sensor_size: tuple[int, int]
    packets: npt.NDArray[np.void]  # _INDEX_DTYPE
    header: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Segment:
    """One labelled gesture: 0-based label, ``[start_us, end_us)`` and the CSV line it came from."""

    label: int
    start_us: int
    end_us: int
    line: int = 0


def _error(path: Path, offset: int, what: str) -> EventDataError:
    return EventDataError(f"{path}: offset {offset}: {what}")


def _read_header(fh: object, path: Path) -> tuple[int, list[str]]:
    lines: list[str] = []
    first = fh.readline()  # type: ignore[attr-defined]
    if not first.startswith(MAGIC):
        raise _error(
            path,
            0,
            f"field version: expected {MAGIC.decode()!r}, found {first[:16]!r}; not an AEDAT 3.1 file",
        )
    lines.append(first.decode("ascii", "replace").strip())
    while True:
        offset = fh.tell()  # type: ignore[attr-defined]
        line = fh.readline()  # type: ignore[attr-defined]
        if not line:
            raise _error(
                path, offset, f"field header: end of file before {END_HEADER.decode()!r}; file truncated"
            )
        if not line.startswith(b"#"):
            raise _error(
                path,
                offset,
                f"field header: expected a '#' line or {END_HEADER.decode()!r}, found {line[:20]!r}",
            )
        lines.append(line.decode("ascii", "replace").strip())
        if line.startswith(END_HEADER):
            return int(fh.tell()), lines  # type: ignore[attr-defined]


def _sensor_from_header(lines: list[str]) -> tuple[int, int] | None:
    for line in lines:
        if "Source" in line:
            name = line.split(":")[-1].strip().upper().replace(" ", "_")
            for camera in sorted(CAMERAS, key=len, reverse=True):
                if name.startswith(camera):
                    return CAMERAS[camera]
    return None


def read_index(path: str | Path, sensor_size: tuple[int, int] | None = None) -> AedatIndex:
    """Walk the packet headers of an AEDAT 3.1 file (seek only; no event data is loaded)."""
    path = Path(path)
    size = path.stat().st_size
    rows: list[tuple[int, int, int, int, int]] = []
    with open(path, "rb") as fh:
        header_size, lines = _read_header(fh, path)
        offset = header_size
        while offset < size:
            raw = fh.read(PACKET_HEADER.itemsize)
            if len(raw) < PACKET_HEADER.itemsize:
                raise _error(
                    path, offset, f"field packet header: needs {PACKET_HEADER.itemsize} bytes, only {len(raw)} remain; "
                    "file truncated (re-copy it, or cut it at this offset)"
                )  # fmt: skip
            head = np.frombuffer(raw, PACKET_HEADER)[0]
            etype, esize, number = int(head["eventType"]), int(head["eventSize"]), int(head["eventNumber"])
            capacity, valid = int(head["eventCapacity"]), int(head["eventValid"])
            if esize <= 0 or number < 0 or capacity < number or valid > number or valid < 0:
                bad = "eventSize" if esize <= 0 else "eventNumber/eventCapacity/eventValid"
                raise _error(
                    path, offset, f"field {bad}: impossible values eventSize={esize}, eventNumber={number}, "
                    f"eventCapacity={capacity}, eventValid={valid}; the file is corrupt here"
                )  # fmt: skip
            body = offset + PACKET_HEADER.itemsize
            nbytes = number * esize
            if body + nbytes > size:
                raise _error(
                    path, offset, f"field events: packet declares eventNumber={number} x eventSize={esize} = {nbytes} "
                    f"bytes, only {size - body} remain; file truncated"
                )  # fmt: skip
            if etype == POLARITY_EVENT and number:
                if esize != POLARITY_SIZE:
                    raise _error(
                        path,
                        offset,
                        f"field eventSize: expected {POLARITY_SIZE} for polarity events, found {esize}",
                    )
                fh.seek(body + 4)
                first_ts = int(np.frombuffer(fh.read(4), "<i4")[0])
                fh.seek(body + nbytes - 4)
                last_ts = int(np.frombuffer(fh.read(4), "<i4")[0])
                high = int(head["eventTSOverflow"]) << 31
                rows.append((body, number, int(head["eventTSOverflow"]), high | first_ts, high | last_ts))
            offset = body + nbytes
            fh.seek(offset)
    found = _sensor_from_header(lines)
    return AedatIndex(
        path=path,
        header_size=header_size,
        sensor_size=sensor_size or found or (128, 128),
        packets=np.array(rows, dtype=_INDEX_DTYPE),
        header=lines,
    )


def read_events(index: AedatIndex, t_start_us: int | None = None, t_stop_us: int | None = None) -> Events:
    """Polarity events with ``t_start_us <= t < t_stop_us`` (all by default), reading only overlapping packets."""
    packets = index.packets
    lo = np.iinfo(np.int64).min if t_start_us is None else int(t_start_us)
    hi = np.iinfo(np.int64).max if t_stop_us is None else int(t_stop_us)
    # Timestamps within a packet may wiggle; take each packet's range from both ends, generously.
    p_lo = np.minimum(packets["t_first"], packets["t_last"])
    p_hi = np.maximum(packets["t_first"], packets["t_last"])
    wanted = packets[(p_hi >= lo) & (p_lo < hi)]
    if wanted.shape[0] == 0:
        return np.zeros(0, dtype=EVENT_DTYPE)
    from .fastcopy import decode_aedat3

    # a plain ndarray view: numba types a memmap subclass through a slow generic path on every call
    mm = np.memmap(index.path, dtype=np.uint8, mode="r").view(np.ndarray)
    # one compiled pass per packet: valid bit, window, fields and time order, into one output
    out = np.empty(int(wanted["number"].sum()), dtype=EVENT_DTYPE)
    pos, t_prev, unsorted = 0, np.iinfo(np.int64).min, False
    for offset, number, overflow in zip(wanted["offset"].tolist(), wanted["number"].tolist(), wanted["overflow"].tolist(), strict=True):
        words = mm[offset : offset + number * POLARITY_SIZE].view("<u4").reshape(-1, 2)
        pos, t_prev, unsorted = decode_aedat3(words, overflow, out, pos, lo, hi, t_prev, unsorted)
    events = out[:pos]
    if unsorted:
        events = events[np.argsort(events["t"], kind="stable")]
    W, H = index.sensor_size
    bad = (events["x"] >= W) | (events["y"] >= H)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        msg = (
            f"{index.path}: field data: event at t={int(events['t'][i])} µs has (x, y) = ({int(events['x'][i])}, "
            f"{int(events['y'][i])}) outside the sensor {index.sensor_size}; pass sensor_size= for this camera"
        )
        raise EventDataError(msg)
    return events


def labels_path_for(aedat_path: str | Path) -> Path:
    """``userNN_<lighting>.aedat`` -> ``userNN_<lighting>_labels.csv`` next to it."""
    p = Path(aedat_path)
    return p.with_name(p.stem + "_labels.csv")


def read_labels(path: str | Path, *, strict: bool = True) -> list[Segment]:
    """Rows of a ``_labels.csv`` as 0-based segments; a bad row raises (or is skipped with ``strict=False``)."""
    path = Path(path)
    segments = []
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != LABELS_HEADER:
            msg = f"{path}: line 1: expected the header {','.join(LABELS_HEADER)}, found {header}"
            raise EventDataError(msg)
        for line_no, row in enumerate(reader, start=2):
            if not row or not "".join(row).strip():
                continue
            problem = None
            try:
                label, start, end = (int(v) for v in row)
            except ValueError:
                problem = f"expected three integers class,startTime_usec,endTime_usec, found {row}"
            else:
                if not 1 <= label <= 11:
                    problem = f"field class: expected 1..11, found {label}"
                elif end <= start:
                    problem = f"field endTime_usec: expected > startTime_usec = {start}, found {end}"
            if problem is not None:
                if strict:
                    msg = (
                        f"{path}: line {line_no}: {problem}; fix the row, or skip bad rows "
                        "(--skip-bad-rows on the command line, strict=False in Python)"
                    )
                    raise EventDataError(msg)
                continue
            segments.append(Segment(label - 1, start, end, line_no))
    return segments


def read_segments(
    aedat_path: str | Path,
    labels_path: str | Path | None = None,
    *,
    sensor_size: tuple[int, int] | None = None,
    strict: bool = True,
) -> list[Recording]:
    """Every labelled gesture of an AEDAT 3.1 session as a Recording (label 0-based, times as in the file)."""
    index = read_index(aedat_path, sensor_size)
    segments = read_labels(labels_path or labels_path_for(aedat_path), strict=strict)
    return [_segment_recording(index, seg, i) for i, seg in enumerate(segments)]


def read_segment(
    aedat_path: str | Path,
    segment: int,
    labels_path: str | Path | None = None,
    *,
    sensor_size: tuple[int, int] | None = None,
    index: AedatIndex | None = None,
) -> Recording:
    """Gesture number ``segment`` (0-based row of the labels file), reading only its packets."""
    index = index or read_index(aedat_path, sensor_size)
    segments = read_labels(labels_path or labels_path_for(aedat_path))
    if not 0 <= segment < len(segments):
        msg = f"{aedat_path}: segment {segment} does not exist; the labels file has {len(segments)} (0..{len(segments) - 1})"
        raise EventDataError(msg)
    return _segment_recording(index, segments[segment], segment)


def _segment_recording(index: AedatIndex, seg: Segment, i: int) -> Recording:
    events = read_events(index, seg.start_us, seg.end_us)
    meta = {"path": str(index.path), "segment": i, "start_us": seg.start_us, "end_us": seg.end_us}
    return Recording(events, index.sensor_size, label=seg.label, name=f"{index.path.stem}#{i}", meta=meta)


def load_recording(path: str | Path, segment: int = 0) -> Recording:
    """Reader-registry entry: one labelled segment, or the whole file when it has no labels CSV."""
    if labels_path_for(path).exists():
        return read_segment(path, segment)
    index = read_index(path)
    return Recording(read_events(index), index.sensor_size, name=Path(path).stem, meta={"path": str(path)})


# --- writing ---------------------------------------------------------------------------------------------


def write_aedat(
    path: str | Path, events: Events, *, camera: str = "DVS128", packet_events: int = 4096
) -> Path:
    """Write polarity events as an AEDAT 3.1 file (packets of ``packet_events``; timestamps >= 0 µs)."""
    events = as_events(events)
    path = Path(path)
    if events.shape[0] and int(events["t"].min()) < 0:
        msg = f"{path}: AEDAT 3.1 timestamps must be >= 0 µs, found {int(events['t'].min())}; shift the recording"
        raise EventDataError(msg)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: {camera}\r\n#!END-HEADER\r\n".encode("ascii")
    t = events["t"].astype(np.int64)
    data = (
        (events["x"].astype(np.uint32) << 17)
        | (events["y"].astype(np.uint32) << 2)
        | (events["p"].astype(np.uint32) << 1)
        | np.uint32(1)
    )
    words = np.empty((events.shape[0], 2), dtype="<u4")
    words[:, 0] = data
    words[:, 1] = (t & 0x7FFFFFFF).astype(np.uint32)
    overflow = t >> 31
    # A packet never spans two overflow epochs: the epoch lives in the packet header.
    cuts = np.flatnonzero(np.diff(overflow)) + 1
    bounds = sorted({0, events.shape[0], *cuts.tolist(), *range(0, events.shape[0], packet_events)})
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(header)
        for a, b in itertools.pairwise(bounds):
            n = b - a
            head = np.zeros(1, PACKET_HEADER)
            head["eventType"], head["eventSource"], head["eventSize"] = POLARITY_EVENT, 1, POLARITY_SIZE
            head["eventTSOffset"], head["eventTSOverflow"] = 4, int(overflow[a])
            head["eventCapacity"] = head["eventNumber"] = head["eventValid"] = n
            fh.write(head.tobytes())
            fh.write(words[a:b].tobytes())
    tmp.replace(path)
    return path


def write_labels(path: str | Path, segments: list[tuple[int, int, int]] | list[Segment]) -> Path:
    """Write a ``_labels.csv`` from (0-based label, start_us, end_us) rows (stored 1-based, as IBM does)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(LABELS_HEADER)
        for seg in segments:
            label, start, end = (seg.label, seg.start_us, seg.end_us) if isinstance(seg, Segment) else seg
            writer.writerow((int(label) + 1, int(start), int(end)))
    return path


def write_session(
    aedat_path: str | Path,
    labels_path: str | Path,
    events: Events,
    segments: list[tuple[int, int, int]],
    *,
    packet_events: int = 4096,
) -> None:
    """Write one session: its events (time-sorted) as AEDAT 3.1 and its gestures as the labels CSV."""
    events = as_events(events)
    if events.shape[0] > 1 and np.any(events["t"][1:] < events["t"][:-1]):
        events = events[np.argsort(events["t"], kind="stable")]
    write_aedat(aedat_path, events, packet_events=packet_events)
    write_labels(labels_path, segments)
