"""Numpy-only readers and writers for DVS recordings (tonic's DVSGesture layout, AEDAT 3.1 + CSV, AEDAT4, npz).

Modules: :mod:`.tonic_layout` (``list_samples``, ``load_sample``, ``write_sample``), :mod:`.aedat3` (the IBM
raw release: ``read_segments``, ``write_session``), :mod:`.aedat4` (iniVation cameras, via the ``aedat``
package), :mod:`.npz` (our own single-recording file). :func:`load_recording` picks one by extension.
:mod:`.learnability` is the count-feature baseline of docs/learnability.md.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from s2gesture.daemon.errors import EventDataError
from s2gesture.daemon.events import Recording

#: file suffix -> "module:function" taking (path, segment) and returning a Recording
READERS: dict[str, str] = {
    ".npy": "s2gesture.models.datasets.tonic_layout:load_recording",
    ".npz": "s2gesture.models.datasets.npz:load_recording",
    ".aedat": "s2gesture.models.datasets.aedat3:load_recording",
    ".aedat4": "s2gesture.models.datasets.aedat4:load_recording",
}


def load_recording(path: str | Path, *, segment: int = 0) -> Recording:
    """Load one recording of any supported format (``segment`` picks a labelled gesture of an AEDAT 3.1 file)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in READERS:
        msg = f"{path}: unknown recording format {suffix!r}; supported: {', '.join(READERS)}"
        raise EventDataError(msg)
    module, func = READERS[suffix].split(":")
    return getattr(importlib.import_module(module), func)(path, segment)  # type: ignore[no-any-return,unused-ignore]
