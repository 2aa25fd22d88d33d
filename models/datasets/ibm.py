"""The IBM DVS128 Gesture raw release as a dataset: its sessions, its official train/test split, its gestures.

Layout (what ``DvsGesture.tar.gz`` unpacks to; ``root`` may be that folder or its parent)::

    DvsGesture/trials_to_train.txt          one session file name per line (user01_fluorescent.aedat ...)
    DvsGesture/trials_to_test.txt
    DvsGesture/userNN_<lighting>.aedat      AEDAT 3.1 (read by :mod:`.aedat3`)
    DvsGesture/userNN_<lighting>_labels.csv class,startTime_usec,endTime_usec (classes 1..11)

The split files are the official split (users 1-23 train, 24-29 test) and are read as they are, never
inferred from user numbers. A bad label row stops the read naming file, line and field (``strict=True``,
the default) or is skipped and counted (``strict=False``, the toolkit's ``--skip-bad-rows``).
:func:`write_release` writes the same layout (``s2gesture synth --layout ibm``) so tests and new users can
try the path without the 2.7 GB download.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from s2gesture.daemon.errors import EventDataError
from s2gesture.daemon.events import Recording

from . import aedat3

RELEASE_FOLDER = "DvsGesture"
SPLIT_FILES = {"train": "trials_to_train.txt", "test": "trials_to_test.txt"}


@dataclass(frozen=True)
class Gesture:
    """One labelled gesture of the release: its session file, row of the labels file, and the row itself."""

    aedat: Path
    labels: Path
    row: int  # 0-based index among the file's good rows (what aedat3.read_segment takes)
    segment: aedat3.Segment
    user: int
    lighting: str
    split: str


def release_dir(root: str | Path) -> Path | None:
    """The folder holding the split files (``root`` or ``root/DvsGesture``), or None when neither does."""
    root = Path(root)
    for folder in (root, root / RELEASE_FOLDER):
        if (folder / SPLIT_FILES["train"]).is_file() or (folder / SPLIT_FILES["test"]).is_file():
            return folder
    return None


def is_release(root: str | Path) -> bool:
    """Whether ``root`` holds the IBM raw release (its split files)."""
    return release_dir(root) is not None


def _session_parts(path: Path) -> tuple[int, str]:
    user_part, _, lighting = path.stem.partition("_")
    if not user_part.startswith("user") or not user_part[4:].isdigit() or not lighting:
        msg = f"{path}: expected a session file named userNN_<lighting>.aedat, found {path.name!r}; rename it"
        raise EventDataError(msg)
    return int(user_part[4:]), lighting


def split_sessions(root: str | Path, split: str) -> list[Path]:
    """The ``.aedat`` files the release's ``trials_to_<split>.txt`` names, in its order."""
    if split not in SPLIT_FILES:
        msg = f"split: expected one of {', '.join(SPLIT_FILES)}, found {split!r}"
        raise EventDataError(msg)
    folder = release_dir(root)
    if folder is None:
        msg = (
            f"{root}: expected the IBM DVS Gesture release (DvsGesture/{SPLIT_FILES['train']} and "
            f"{SPLIT_FILES['test']} beside userNN_<lighting>.aedat files), found neither split file"
        )
        raise EventDataError(msg)
    listing = folder / SPLIT_FILES[split]
    if not listing.is_file():
        msg = f"{listing}: the {split} split file is missing; the release ships it (re-extract DvsGesture.tar.gz)"
        raise EventDataError(msg)
    sessions = []
    for line_no, line in enumerate(listing.read_text().splitlines(), start=1):
        name = line.strip()
        if not name:
            continue
        path = folder / name
        if path.suffix != ".aedat" or not path.is_file():
            msg = (
                f"{listing}: line {line_no}: expected the name of an .aedat file in {folder}, found {name!r} "
                f"({'no such file' if path.suffix == '.aedat' else 'not an .aedat name'}); re-extract the release"
            )
            raise EventDataError(msg)
        _session_parts(path)
        sessions.append(path)
    return sessions


def list_gestures(root: str | Path, split: str, *, strict: bool = True) -> tuple[list[Gesture], int]:
    """Every labelled gesture of ``split`` and the number of bad label rows skipped (0 when ``strict``)."""
    gestures: list[Gesture] = []
    skipped = 0
    for session in split_sessions(root, split):
        labels = aedat3.labels_path_for(session)
        if not labels.is_file():
            msg = f"{session}: its labels file {labels.name} is missing; the release ships one per session"
            raise EventDataError(msg)
        rows = aedat3.read_labels(labels, strict=strict)
        if not strict:
            skipped += count_rows(labels) - len(rows)
        user, lighting = _session_parts(session)
        gestures += [Gesture(session, labels, i, seg, user, lighting, split) for i, seg in enumerate(rows)]
    return gestures, skipped


def count_rows(labels: Path) -> int:
    """Non-empty data rows of a labels file (its header excluded)."""
    lines = [line for line in labels.read_text().splitlines()[1:] if line.replace(",", "").strip()]
    return len(lines)


def load_gestures(gestures: list[Gesture]) -> Iterator[Recording]:
    """The gestures as labelled Recordings (each session's packet index read once, events lazily)."""
    index: aedat3.AedatIndex | None = None
    for g in gestures:
        if index is None or index.path != g.aedat:
            index = aedat3.read_index(g.aedat)
        events = aedat3.read_events(index, g.segment.start_us, g.segment.end_us)
        meta = {"user": g.user, "lighting": g.lighting, "split": g.split, "path": str(g.aedat),
                "start_us": g.segment.start_us, "end_us": g.segment.end_us, "line": g.segment.line}  # fmt: skip
        name = f"{g.aedat.stem}#{g.row}"
        yield Recording(events, index.sensor_size, label=g.segment.label, name=name, meta=meta)


def write_release(
    out: str | Path, sessions: dict[str, list[str]]
) -> Path:
    """Write ``trials_to_train.txt`` / ``trials_to_test.txt`` naming the ``.aedat`` files of each split."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for split, names in sessions.items():
        (folder / SPLIT_FILES[split]).write_text("".join(f"{n}\n" for n in names))
    return folder
