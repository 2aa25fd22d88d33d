"""Numpy-only readers and writers for DVS recordings (tonic's DVSGesture layout, AEDAT 3.1 + CSV, AEDAT4, npz,
Prophesee RAW/DAT, ROS bags).

Modules: :mod:`.tonic_layout` (``list_samples``, ``load_sample``, ``write_sample``), :mod:`.aedat3` (the IBM
raw release: ``read_segments``, ``write_session``), :mod:`.aedat4` (iniVation cameras, via the ``aedat``
package), :mod:`.npz` (our own single-recording file), :mod:`.prophesee` (Metavision RAW EVT 2.0 / 3.0 and
DAT, via ``expelliarmus``), :mod:`.rosbag` (ROS 1 ``.bag`` and ROS 2 ``.db3``/``.mcap`` bags of
``dvs_msgs/EventArray`` or ``event_camera_msgs/EventPacket``, via ``rosbags``).

:func:`detect_format` is the one place that tells a recording's format from its path (replay, show, eval and
``camera file://`` all ask it); :func:`load_recording` reads any of them.
:mod:`.learnability` is the count-feature baseline of docs/learnability.md.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from s2gesture.daemon.errors import EventDataError
from s2gesture.daemon.events import Recording

#: format name -> (what it is, "module:function" taking (path, segment) and returning a Recording)
FORMATS: dict[str, tuple[str, str]] = {
    "tonic": (
        "tonic's DVSGesture layout: a folder of userNN_<lighting>/<label>.npy (or one .npy)",
        "s2gesture.models.datasets.tonic_layout:load_recording",
    ),
    "aedat3": (
        "IBM DVS Gesture raw release: userNN_<lighting>.aedat + _labels.csv (or a folder of them)",
        "s2gesture.models.datasets.aedat3:load_recording",
    ),
    "aedat4": ("an AEDAT4 file from an iniVation camera", "s2gesture.models.datasets.aedat4:load_recording"),
    "npz": ("s2gesture's own .npz recording", "s2gesture.models.datasets.npz:load_recording"),
    "prophesee": (
        "a Prophesee Metavision recording: .raw (EVT 2.0 / EVT 3.0) or .dat",
        "s2gesture.models.datasets.prophesee:load_recording",
    ),
    "rosbag": (
        "a ROS 1 .bag or ROS 2 bag (.db3 / .mcap / its folder) of dvs_msgs/EventArray or "
        "event_camera_msgs/EventPacket",
        "s2gesture.models.datasets.rosbag:load_recording",
    ),
}

#: file suffix -> format name (one file per recording, or a labelled session for .aedat)
SUFFIXES: dict[str, str] = {
    ".npy": "tonic",
    ".npz": "npz",
    ".aedat": "aedat3",
    ".aedat4": "aedat4",
    ".raw": "prophesee",
    ".dat": "prophesee",
    ".bag": "rosbag",
    ".db3": "rosbag",
    ".mcap": "rosbag",
}

#: kept for callers that look readers up by suffix
READERS: dict[str, str] = {suffix: FORMATS[fmt][1] for suffix, fmt in SUFFIXES.items()}


def detect_format(path: str | Path) -> str:
    """The format name (a key of :data:`FORMATS`) of ``path``, by its shape on disk.

    A folder is a ROS 2 bag when it holds ``metadata.yaml``, an IBM release when it holds ``.aedat`` files,
    else tonic's layout; a file goes by its suffix. Raises :class:`EventDataError` naming the suffixes.
    """
    path = Path(path)
    if path.is_dir():
        if (path / "metadata.yaml").is_file():
            return "rosbag"
        return "aedat3" if any(path.glob("*.aedat")) else "tonic"
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        msg = (
            f"{path}: unknown recording format {path.suffix.lower()!r}; supported: {', '.join(SUFFIXES)} "
            f"or a folder (tonic layout, .aedat files, a ROS 2 bag)"
        )
        raise EventDataError(msg)
    return fmt


def load_recording(path: str | Path, *, segment: int = 0) -> Recording:
    """Load one recording of any supported format (``segment`` picks a labelled gesture of an AEDAT 3.1 file)."""
    fmt = detect_format(path)
    module, func = FORMATS[fmt][1].split(":")
    return getattr(importlib.import_module(module), func)(Path(path), segment)  # type: ignore[no-any-return,unused-ignore]
