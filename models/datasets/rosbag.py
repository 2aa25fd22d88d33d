"""ROS bags of event-camera messages: ROS 1 ``.bag`` and ROS 2 bags (``.db3`` / ``.mcap`` or the bag folder).

Read with ``rosbags`` (pure Python, no ROS installation; ``pip install 's2gesture[formats]'``), which
deserializes both ROS 1 and CDR messages. Two message types carry events:

* ``dvs_msgs/EventArray`` (rpg_dvs_ros, ROS 1 and its ROS 2 ports): ``height``, ``width`` and
  ``events[]`` of ``{x, y, ts, polarity}`` with ``ts`` a ROS time;
* ``event_camera_msgs/EventPacket`` (ros-event-camera drivers): ``height``, ``width``, ``time_base``,
  ``encoding`` and a byte payload ``events``. ``mono`` packs each event in a little-endian 64-bit word
  (bit 63 polarity, bits 48-62 y, 32-47 x, 0-31 ``dt``, event time = ``time_base + dt`` in ns);
  ``evt3`` is the Metavision EVT 3.0 byte stream as the SDK delivers it, and the packets of one topic
  concatenated are one EVT 3.0 stream (its state runs across packets), decoded by expelliarmus (like
  :mod:`.prophesee`) with sensor time in µs.

Times become µs. The first topic holding one of these types is read unless ``topic`` names another.
:func:`write_bag` writes bags of either type (through rosbags' writers) for tests and tools.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from s2gesture.daemon.errors import EventDataError
from s2gesture.daemon.events import EVENT_DTYPE, Events, Recording, as_events

DVS_EVENT = "uint16 x\nuint16 y\ntime ts\nbool polarity\n"
DVS_ARRAY = "std_msgs/Header header\nuint32 height\nuint32 width\ndvs_msgs/Event[] events\n"
EVENT_PACKET = (
    "std_msgs/Header header\nuint32 height\nuint32 width\nuint64 seq\nuint64 time_base\n"
    "string encoding\nbool is_bigendian\nuint8[] events\n"
)
DVS_TYPE = "dvs_msgs/msg/EventArray"
PACKET_TYPE = "event_camera_msgs/msg/EventPacket"
EVENT_TYPES = (DVS_TYPE, PACKET_TYPE)
ENCODINGS = ("mono", "evt3")


def _rosbags() -> Any:
    try:
        import rosbags.highlevel
        import rosbags.typesys
    except ImportError as exc:
        msg = "reading ROS bags needs the 'rosbags' package: pip install 's2gesture[formats]' (or pip install rosbags)"
        raise EventDataError(msg) from exc
    return rosbags


def typestore(ros1: bool = False) -> Any:
    """A rosbags typestore that knows ``dvs_msgs`` and ``event_camera_msgs`` (bags need not embed them)."""
    rb = _rosbags()
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS1_NOETIC if ros1 else Stores.ROS2_HUMBLE)
    types: dict[str, Any] = {}
    types.update(get_types_from_msg(DVS_EVENT, "dvs_msgs/msg/Event"))
    types.update(get_types_from_msg(DVS_ARRAY, DVS_TYPE))
    types.update(get_types_from_msg(EVENT_PACKET, PACKET_TYPE))
    store.register(types)
    del rb
    return store


@njit(cache=True, nogil=True)
def _mono_kernel(words, counts, bases, out_t, out_x, out_y, out_p):  # type: ignore[no-untyped-def]
    """Unpack mono words (bit 63 polarity, 48-62 y, 32-47 x, 0-31 dt ns after the packet's time base) in one pass."""
    i = 0
    for k in range(counts.shape[0]):
        base = bases[k]
        for _ in range(counts[k]):
            w = words[i]
            out_p[i] = (w >> 63) != 0
            out_y[i] = (w >> 48) & 0x7FFF
            out_x[i] = (w >> 32) & 0xFFFF
            out_t[i] = (base + np.int64(w & 0xFFFFFFFF)) // 1000
            i += 1


def _decode_mono(payloads: list[np.ndarray], time_bases: list[int]) -> Events:
    """The mono packets of a topic decoded together in one compiled pass, not numpy calls per (small) message."""
    words = np.concatenate(payloads).view("<u8") if payloads else np.zeros(0, "<u8")
    counts = np.fromiter((p.size // 8 for p in payloads), dtype=np.int64, count=len(payloads))
    ev = np.empty(words.size, dtype=EVENT_DTYPE)
    _mono_kernel(words, counts, np.asarray(time_bases, dtype=np.int64), ev["t"], ev["x"], ev["y"], ev["p"])
    return ev


def _dvs_events(evs: list[Any]) -> Events:
    """dvs_msgs/Event objects -> EVENT_DTYPE in one pass over the list."""
    return np.fromiter(
        ((e.x, e.y, e.polarity, e.ts.sec * 1_000_000 + e.ts.nanosec // 1000) for e in evs), dtype=EVENT_DTYPE, count=len(evs)
    )


def _decode_evt3(path: Path, chunks: list[bytes]) -> Events:
    from . import prophesee

    expelliarmus = prophesee._expelliarmus()
    # expelliarmus decodes files only: the topic's EVT 3.0 stream goes to a temporary file once
    with tempfile.NamedTemporaryFile(suffix=".raw") as tmp:
        tmp.write(b"% evt 3.0\n% end\n")
        for chunk in chunks:
            tmp.write(chunk)
        tmp.flush()
        try:
            raw = expelliarmus.Wizard(encoding="evt3").read(tmp.name)
        except Exception as exc:
            msg = f"{path}: field events: expelliarmus could not decode the topic's evt3 stream ({exc})"
            raise EventDataError(msg) from exc
    # one compiled pass into EVENT_DTYPE (bounds are checked once the topic's sensor size is known)
    return prophesee._from_lib(raw, None)[0]


def read_bag(path: str | Path, *, topic: str | None = None) -> Recording:
    """The events of one event topic of a ROS 1 or ROS 2 bag as a :class:`Recording`."""
    rb = _rosbags()
    path = Path(path)
    if not path.exists():
        msg = f"{path}: no such ROS bag"
        raise EventDataError(msg)
    # rosbags opens a ROS 2 bag by its folder (metadata.yaml), a ROS 1 bag by its file
    bag_path = path.parent if path.suffix.lower() in (".db3", ".mcap") and (path.parent / "metadata.yaml").is_file() else path
    ros1 = bag_path.suffix.lower() == ".bag"
    try:
        reader = rb.highlevel.AnyReader([bag_path], default_typestore=typestore(ros1))
        reader.open()
    except Exception as exc:
        msg = f"{path}: offset 0: field header: not a readable ROS bag ({type(exc).__name__}: {exc})"
        raise EventDataError(msg) from exc
    try:
        conns = [c for c in reader.connections if c.msgtype in EVENT_TYPES]
        if topic is not None:
            conns = [c for c in conns if c.topic == topic]
        if not conns:
            found = sorted({(c.topic, c.msgtype) for c in reader.connections})
            want = f"topic {topic!r} of " if topic else ""
            msg = f"{path}: field topic: no {want}{' or '.join(EVENT_TYPES)} messages; the bag has {found}"
            raise EventDataError(msg)
        chosen = conns[0].topic
        conns = [c for c in conns if c.topic == chosen]
        parts: list[Events] = []
        evt3: list[bytes] = []
        mono: list[np.ndarray] = []
        mono_base: list[int] = []
        sensor: tuple[int, int] | None = None
        n_msgs = 0
        for conn, stamp, data in reader.messages(connections=conns):
            where = f"message {n_msgs} (stamp {stamp} ns)"
            try:
                msg_obj = reader.deserialize(data, conn.msgtype)
            except Exception as exc:
                text = f"{path}: {where}: field {conn.msgtype}: cannot deserialize ({type(exc).__name__}: {exc})"
                raise EventDataError(text) from exc
            n_msgs += 1
            size = (int(msg_obj.width), int(msg_obj.height))
            if size[0] > 0 and size[1] > 0:
                sensor = sensor or size
            if conn.msgtype == DVS_TYPE:
                parts.append(_dvs_events(msg_obj.events))
            else:
                encoding = str(msg_obj.encoding)
                if encoding == "mono":
                    payload = np.asarray(msg_obj.events, dtype=np.uint8)
                    if payload.size % 8:
                        text = f"{path}: {where}: field events: {payload.size} bytes is not a whole number of 8-byte mono events"
                        raise EventDataError(text)
                    mono.append(payload)
                    mono_base.append(int(msg_obj.time_base))
                elif encoding == "evt3":
                    evt3.append(np.asarray(msg_obj.events, dtype=np.uint8).tobytes())
                else:
                    text = f"{path}: {where}: field encoding: {encoding!r} is not supported; expected one of {ENCODINGS}"
                    raise EventDataError(text)
    finally:
        reader.close()
    if mono:
        parts.append(_decode_mono(mono, mono_base))
    if evt3:
        parts.append(_decode_evt3(path, evt3))
    # concatenating packed 13-byte records is slow (numpy copies them field by field): skip it for one part
    events = parts[0] if len(parts) == 1 else (np.concatenate(parts) if parts else np.zeros(0, dtype=EVENT_DTYPE))
    if events.shape[0] > 1 and np.any(events["t"][1:] < events["t"][:-1]):
        events = events[np.argsort(events["t"], kind="stable")]
    meta: dict[str, Any] = {"path": str(path), "topic": chosen, "messages": n_msgs}
    if sensor is None:
        sensor = (int(events["x"].max()) + 1, int(events["y"].max()) + 1) if len(events) else (1, 1)
        meta["sensor_size_from"] = "events"
    return Recording(events, sensor, name=path.stem, meta=meta)


def load_recording(path: str | Path, segment: int = 0) -> Recording:
    """Reader-registry entry: the first event topic (``segment`` is ignored)."""
    return read_bag(path)


# --- writing ----------------------------------------------------------------------------------------------


def _header(store: Any, t_us: int, ros1: bool) -> Any:
    Header = store.types["std_msgs/msg/Header"]
    Time = store.types["builtin_interfaces/msg/Time"]
    stamp = Time(sec=int(t_us // 1_000_000), nanosec=int(t_us % 1_000_000) * 1000)
    return Header(seq=0, stamp=stamp, frame_id="camera") if ros1 else Header(stamp=stamp, frame_id="camera")


def write_bag(
    path: str | Path,
    events: Events,
    sensor_size: tuple[int, int],
    *,
    msgtype: str = DVS_TYPE,
    encoding: str = "mono",
    topic: str = "/events",
    packet_us: int = 10_000,
    evt3_payload: bytes | None = None,
) -> Path:
    """Write ``events`` as a bag: ``.bag`` = ROS 1, a folder / ``.mcap`` suffix = ROS 2 (sqlite3 or mcap).

    ``msgtype`` is :data:`DVS_TYPE` or :data:`PACKET_TYPE` (``encoding`` ``mono``, or ``evt3`` with the
    EVT 3.0 stream given as ``evt3_payload``, split into 4 packets at 16-bit word boundaries).
    """
    events = as_events(events)
    path = Path(path)
    ros1 = path.suffix.lower() == ".bag"
    store = typestore(ros1)
    width, height = sensor_size
    t = events["t"]
    edges = np.arange(int(t[0]), int(t[-1]) + packet_us + 1, packet_us) if len(t) else np.zeros(1, np.int64)
    cuts = np.searchsorted(t, edges)
    messages: list[tuple[int, Any]] = []
    if msgtype == DVS_TYPE:
        Event, Array = store.types["dvs_msgs/msg/Event"], store.types[DVS_TYPE]
        Time = store.types["builtin_interfaces/msg/Time"]
        for k in range(len(edges) - 1):
            part = events[cuts[k] : cuts[k + 1]]
            evs = [
                Event(x=int(e["x"]), y=int(e["y"]), ts=Time(sec=int(e["t"]) // 1_000_000, nanosec=int(e["t"]) % 1_000_000 * 1000), polarity=bool(e["p"]))
                for e in part
            ]
            messages.append((int(edges[k]), Array(header=_header(store, int(edges[k]), ros1), height=height, width=width, events=evs)))
    elif msgtype == PACKET_TYPE:
        Packet = store.types[PACKET_TYPE]
        if encoding == "mono":
            for k in range(len(edges) - 1):
                part = events[cuts[k] : cuts[k + 1]]
                # each packet's own time base: dt has 32 bits (4.29 s of ns), a recording is longer
                time_base = int(edges[k]) * 1000
                dt = part["t"].astype(np.uint64) * np.uint64(1000) - np.uint64(time_base)
                words = (
                    (part["p"].astype(np.uint64) << np.uint64(63))
                    | (part["y"].astype(np.uint64) << np.uint64(48))
                    | (part["x"].astype(np.uint64) << np.uint64(32))
                    | dt
                )
                payload = words.astype("<u8").view(np.uint8)
                messages.append((int(edges[k]), Packet(header=_header(store, int(edges[k]), ros1), height=height, width=width, seq=k, time_base=time_base, encoding="mono", is_bigendian=False, events=payload)))
        elif encoding == "evt3":
            if evt3_payload is None or len(evt3_payload) % 2:
                msg = "evt3 bags need the EVT 3.0 stream as evt3_payload (an even number of bytes)"
                raise EventDataError(msg)
            words = len(evt3_payload) // 2
            bounds = [2 * (words * i // 4) for i in range(5)]
            for k in range(4):
                payload = np.frombuffer(evt3_payload[bounds[k] : bounds[k + 1]], dtype=np.uint8)
                messages.append((int(t[0]) + k, Packet(header=_header(store, int(t[0]) + k, ros1), height=height, width=width, seq=k, time_base=0, encoding="evt3", is_bigendian=False, events=payload)))
        else:
            msg = f"encoding must be one of {ENCODINGS}, found {encoding!r}"
            raise EventDataError(msg)
    else:
        msg = f"msgtype must be {DVS_TYPE} or {PACKET_TYPE}, found {msgtype!r}"
        raise EventDataError(msg)
    if ros1:
        from rosbags.rosbag1 import Writer as Writer1

        with Writer1(path) as writer1:
            conn = writer1.add_connection(topic, msgtype, typestore=store)
            for stamp_us, m in messages:
                writer1.write(conn, stamp_us * 1000, store.serialize_ros1(m, msgtype))
    else:
        from rosbags.rosbag2 import StoragePlugin, Writer

        plugin = StoragePlugin.MCAP if path.suffix.lower() == ".mcap" else StoragePlugin.SQLITE3
        folder = path.with_suffix("") if path.suffix.lower() == ".mcap" else path
        with Writer(folder, version=9, storage_plugin=plugin) as writer:
            conn = writer.add_connection(topic, msgtype, typestore=store)
            for stamp_us, m in messages:
                writer.write(conn, stamp_us * 1000, store.serialize_cdr(m, msgtype))
        path = folder
    return path
