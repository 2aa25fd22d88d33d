"""AEDAT4 files (iniVation cameras: DVXplorer, DAVIS...) of any sensor size.

Reading goes through the ``aedat`` package (imported lazily; ``pip install 's2gesture[aedat4]'``): it
decodes the file packet by packet (LZ4/Zstd included), and we keep only the first event stream's events
inside the requested time window, so a long recording is streamed, not loaded whole. Event fields
``x``, ``y``, ``on`` and ``t`` (absolute µs) become :data:`EVENT_DTYPE` with ``p = on``.

``aedat`` cannot write, so :func:`write_aedat4` writes the format itself (uncompressed, one event stream):
a ``#!AER-DAT4.0\\r\\n`` line, a little-endian u32 length and an ``IOHE`` FlatBuffer (``Ioheader``:
compression, file_data_position = -1, description = the stream's XML), then packets of
``u32 stream_id, u32 length, size-prefixed EVTS FlatBuffer`` (``EventPacket { elements: [Event {t: int64, x: int16,
y: int16, on: bool}] }``, 16-byte structs). It exists so that the reader is tested on real files and so
that synthetic data can be fed to tools that take AEDAT4.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from s2gesture.daemon.errors import EventDataError
from s2gesture.daemon.events import EVENT_DTYPE, Events, Recording, as_events

MAGIC = b"#!AER-DAT4.0\r\n"
# FlatBuffer struct Event {t: int64; x: int16; y: int16; on: bool} padded to 16 bytes (8-byte alignment).
FB_EVENT = np.dtype(
    {
        "names": ["t", "x", "y", "on"],
        "formats": ["<i8", "<i2", "<i2", "?"],
        "offsets": [0, 8, 10, 12],
        "itemsize": 16,
    }
)


def _aedat() -> object:
    try:
        import aedat
    except ImportError as exc:
        msg = (
            "reading AEDAT4 needs the 'aedat' package: pip install 's2gesture[aedat4]' (or pip install aedat)"
        )
        raise EventDataError(msg) from exc
    return aedat


def read_aedat4(
    path: str | Path,
    *,
    t_start_us: int | None = None,
    t_stop_us: int | None = None,
    stream_id: int | None = None,
) -> Recording:
    """Events of one event stream (the first by default) with ``t_start_us <= t < t_stop_us``."""
    aedat = _aedat()
    path = Path(path)
    if not path.is_file():
        msg = f"{path}: no such AEDAT4 file"
        raise EventDataError(msg)
    try:
        decoder = aedat.Decoder(str(path))  # type: ignore[attr-defined]
        streams = decoder.id_to_stream()
    except Exception as exc:  # aedat raises plain exceptions with its own message
        msg = f"{path}: offset 0: field header: not a readable AEDAT4 file ({exc})"
        raise EventDataError(msg) from exc
    events_streams = {sid: s for sid, s in streams.items() if s.get("type") == "events"}
    if not events_streams:
        msg = f"{path}: field description: no event stream (streams: {streams}); is this a frames-only file?"
        raise EventDataError(msg)
    if stream_id is None:
        stream_id = min(events_streams)
    if stream_id not in events_streams:
        msg = f"{path}: event stream {stream_id} not found; event streams: {sorted(events_streams)}"
        raise EventDataError(msg)
    info = events_streams[stream_id]
    sensor = (int(info["width"]), int(info["height"]))
    lo = np.iinfo(np.int64).min if t_start_us is None else int(t_start_us)
    hi = np.iinfo(np.int64).max if t_stop_us is None else int(t_stop_us)
    direct = _read_uncompressed(path, stream_id, lo, hi)
    if direct is not None:
        events, n_packets = direct
    else:
        events, n_packets = _read_decoded(path, decoder, stream_id, lo, hi)
    meta = {"path": str(path), "stream_id": stream_id, "packets": n_packets}
    return Recording(events, sensor, name=path.stem, meta=meta)


def _read_decoded(path: Path, decoder: object, stream_id: int, lo: int, hi: int) -> tuple[Events, int]:
    """Events through ``aedat``'s decoder (any compression): one compiled pass per decoded packet."""
    from .fastcopy import AEDAT4_PACKET, copy_aedat4

    # the decoded packets are held (no copy), then one compiled pass each into one output of the
    # exact size: no per-field masks, no growing buffer
    raws = []
    n_packets = 0
    try:
        for packet in decoder:  # type: ignore[attr-defined]
            n_packets += 1
            if packet["stream_id"] == stream_id and "events" in packet:
                raws.append(packet["events"])
    except Exception as exc:
        msg = f"{path}: packet {n_packets} (after {n_packets - 1} complete packets): field packet: {exc}; file truncated or corrupt"
        raise EventDataError(msg) from exc
    out = np.empty(sum(r.shape[0] for r in raws), dtype=EVENT_DTYPE)
    pos, t_prev, unsorted = 0, np.iinfo(np.int64).min, False
    for raw in raws:
        pos, t_prev, unsorted = copy_aedat4(raw.view(AEDAT4_PACKET), out, pos, lo, hi, t_prev, unsorted)
    events = out[:pos]
    return (events[np.argsort(events["t"], kind="stable")] if unsorted else events), n_packets


def _fb_field(buf: memoryview, table: int, field: int) -> int:
    """Absolute offset of FlatBuffer ``field`` of the table at ``table`` (0 when absent)."""
    vtable = table - struct.unpack_from("<i", buf, table)[0]
    vt_size = struct.unpack_from("<H", buf, vtable)[0]
    at = 4 + 2 * field
    rel = struct.unpack_from("<H", buf, vtable + at)[0] if at + 2 <= vt_size else 0
    return table + rel if rel else 0


def _read_uncompressed(path: Path, stream_id: int, lo: int, hi: int) -> tuple[Events, int] | None:
    """Events of an uncompressed file straight from its FlatBuffers (memory-mapped), None to use ``aedat``.

    Uncompressed packets hold the events as 16-byte ``Event`` structs in place, so one compiled pass
    from the mapped file into the output is all the work; ``aedat`` would first build its own arrays.
    Anything unexpected (compression, a packet that is not an EVTS FlatBuffer) hands over to ``aedat``,
    which then also names the error.
    """
    from .fastcopy import copy_aedat4

    size = path.stat().st_size
    if size < len(MAGIC) + 4:
        return None
    # a plain ndarray view: numba types a memmap subclass through a slow generic path on every call
    data = np.memmap(path, dtype=np.uint8, mode="r").view(np.ndarray)
    buf = memoryview(data)  # type: ignore[arg-type]
    try:
        (h_len,) = struct.unpack_from("<I", buf, len(MAGIC))
        h0 = len(MAGIC) + 4
        header = h0 + struct.unpack_from("<I", buf, h0)[0]
        f_comp = _fb_field(buf, header, 0)
        if f_comp and struct.unpack_from("<i", buf, f_comp)[0] != 0:
            return None
        f_pos = _fb_field(buf, header, 1)
        end = struct.unpack_from("<q", buf, f_pos)[0] if f_pos else -1
        end = end if 0 < end <= size else size  # the file data table (when written) follows the packets
        pos_file = h0 + h_len
        slices: list[tuple[int, int]] = []
        n_packets = 0
        while pos_file + 8 <= end:
            sid, p_len = struct.unpack_from("<iI", buf, pos_file)
            body = pos_file + 8
            if body + p_len > end:
                return None
            n_packets += 1
            pos_file = body + p_len
            if sid != stream_id:
                continue
            fb = body + 4 if struct.unpack_from("<I", buf, body)[0] == p_len - 4 else body  # size prefix
            if bytes(buf[fb + 4 : fb + 8]) != b"EVTS":
                return None
            f_el = _fb_field(buf, fb + struct.unpack_from("<I", buf, fb)[0], 0)
            if not f_el:
                continue
            vec = f_el + struct.unpack_from("<I", buf, f_el)[0]
            (n,) = struct.unpack_from("<I", buf, vec)
            if vec + 4 + 16 * n > body + p_len:
                return None
            slices.append((vec + 4, n))
        if pos_file != end:
            return None
    except struct.error:
        return None
    out = np.empty(sum(n for _, n in slices), dtype=EVENT_DTYPE)
    pos, t_prev, unsorted = 0, np.iinfo(np.int64).min, False
    for start, n in slices:
        src = data[start : start + 16 * n].view(FB_EVENT)
        pos, t_prev, unsorted = copy_aedat4(src, out, pos, lo, hi, t_prev, unsorted)
    events = out[:pos]
    return (events[np.argsort(events["t"], kind="stable")] if unsorted else events), n_packets


def load_recording(path: str | Path, segment: int = 0) -> Recording:
    """Reader-registry entry: the whole first event stream (``segment`` is ignored)."""
    return read_aedat4(path)


# --- writing (uncompressed FlatBuffers, built by hand: two fixed, tiny schemas) --------------------------


def _ioheader(description: str) -> bytes:
    """FlatBuffer ``Ioheader`` with identifier IOHE: only ``description`` set (compression None, no data table)."""
    text = description.encode("utf-8")
    vtable = struct.pack("<HHHHH", 10, 8, 0, 0, 4)  # 3 fields; only field 2 (description) at table+4
    table_pos = 20  # 8 (root offset + identifier) + 10 (vtable) + 2 padding
    string_pos = table_pos + 8
    table = struct.pack("<iI", table_pos - 8, string_pos - (table_pos + 4))
    body = struct.pack("<I", table_pos) + b"IOHE" + vtable + b"\0\0" + table
    body += struct.pack("<I", len(text)) + text + b"\0"
    return body + b"\0" * (-len(body) % 4)


def _event_packet(events: Events) -> bytes:
    """FlatBuffer ``EventPacket`` with identifier EVTS holding ``events``."""
    vtable = struct.pack("<HHH", 6, 8, 4)  # 1 field at table+4
    table_pos = 16  # 8 + 6 (vtable) + 2 padding
    vector_pos = 28  # length at 28, elements at 32: 8-byte aligned structs
    table = struct.pack("<iI", table_pos - 8, vector_pos - (table_pos + 4))
    elements = np.zeros(events.shape[0], dtype=FB_EVENT)
    elements["t"], elements["x"], elements["y"], elements["on"] = (
        events["t"],
        events["x"],
        events["y"],
        events["p"],
    )
    head = struct.pack("<I", table_pos) + b"EVTS" + vtable + b"\0\0" + table + b"\0" * 4
    buffer = head + struct.pack("<I", events.shape[0]) + elements.tobytes()
    # AEDAT4 packets hold size-prefixed FlatBuffers (the identifier is checked after the prefix).
    return struct.pack("<I", len(buffer)) + buffer


def write_aedat4(
    path: str | Path,
    events: Events,
    sensor_size: tuple[int, int],
    *,
    packet_events: int = 8192,
    source: str = "s2gesture",
) -> Path:
    """Write ``events`` as an uncompressed single-stream AEDAT4 file readable by ``aedat`` and DV."""
    events = as_events(events)
    path = Path(path)
    W, H = sensor_size
    description = (
        '<dv version="2.0"><node name="outInfo" path="/mainloop/Recorder/outInfo/">'
        '<node name="0" path="/mainloop/Recorder/outInfo/0/">'
        '<attr key="compression" type="string">NONE</attr>'
        '<attr key="originalModuleName" type="string">capture</attr>'
        '<attr key="originalOutputName" type="string">events</attr>'
        '<attr key="typeDescription" type="string">Array of events (polarity ON/OFF).</attr>'
        '<attr key="typeIdentifier" type="string">EVTS</attr>'
        '<node name="info" path="/mainloop/Recorder/outInfo/0/info/">'
        f'<attr key="sizeX" type="int">{int(W)}</attr><attr key="sizeY" type="int">{int(H)}</attr>'
        f'<attr key="source" type="string">{source}</attr>'
        "</node></node></node></dv>"
    )
    header = _ioheader(description)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(MAGIC + struct.pack("<I", len(header)) + header)
        for start in range(0, events.shape[0], packet_events):
            packet = _event_packet(events[start : start + packet_events])
            fh.write(struct.pack("<II", 0, len(packet)) + packet)
    return path
