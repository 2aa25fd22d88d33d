"""``s2gesture show``: look at a recording as a PNG strip or an animated GIF of event frames.

Each frame accumulates the events of one time window: ON events (p True) in green, OFF in magenta,
both in white, on a black background, upscaled with nearest-neighbour pixels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import numpy.typing as npt

from s2gesture.daemon.events import Recording

ON_RGB = np.array([40, 220, 60], dtype=np.uint8)
OFF_RGB = np.array([230, 40, 200], dtype=np.uint8)


def event_frames(
    rec: Recording, n_frames: int, window_us: int, t_start_us: int | None = None
) -> npt.NDArray[np.uint8]:
    """RGB images ``[n_frames, H, W, 3]`` of ``n_frames`` windows spread evenly over the recording."""
    ev = rec.events
    W, H = rec.sensor_size
    frames = np.zeros((n_frames, H, W, 3), dtype=np.uint8)
    if len(ev) == 0:
        return frames
    t0 = int(ev["t"][0]) if t_start_us is None else int(t_start_us)
    t1 = int(ev["t"][-1]) + 1
    span = max(t1 - t0 - window_us, 0)
    starts = t0 + (
        np.arange(n_frames) * span // max(n_frames - 1, 1) if n_frames > 1 else np.zeros(1, np.int64)
    )
    for i, s in enumerate(starts):
        lo, hi = np.searchsorted(ev["t"], [s, s + window_us])
        chunk = ev[lo:hi]
        on = np.zeros((H, W), bool)
        off = np.zeros((H, W), bool)
        on[chunk["y"][chunk["p"]], chunk["x"][chunk["p"]]] = True
        off[chunk["y"][~chunk["p"]], chunk["x"][~chunk["p"]]] = True
        frames[i][on] = ON_RGB
        frames[i][off] = OFF_RGB
        frames[i][on & off] = 255
    return frames


def _label_of(rec: Recording) -> str:
    from s2gesture.daemon.card import GESTURE_CLASSES

    if rec.label is None:
        return str(rec.name)
    name = GESTURE_CLASSES[rec.label] if 0 <= rec.label < len(GESTURE_CLASSES) else str(rec.label)
    return f"{rec.name}  [{rec.label}: {name}]"


def save_strip(
    rec: Recording, path: str | Path, *, n_frames: int = 8, window_us: int = 50_000, zoom: int = 2
) -> Path:
    """Write a PNG: ``n_frames`` event frames side by side with their start times and the label."""
    from PIL import Image, ImageDraw

    frames = event_frames(rec, n_frames, window_us)
    W, H = rec.sensor_size
    pad, top = 4, 16
    strip = Image.new("RGB", (n_frames * (W * zoom + pad) + pad, H * zoom + top + 14 + pad), (30, 30, 30))
    draw = ImageDraw.Draw(strip)
    draw.text((pad, 2), _label_of(rec), fill=(230, 230, 230))
    t0 = int(rec.events["t"][0]) if len(rec) else 0
    span = max(int(rec.events["t"][-1]) + 1 - t0 - window_us, 0) if len(rec) else 0
    for i, frame in enumerate(frames):
        img = Image.fromarray(frame).resize((W * zoom, H * zoom), Image.Resampling.NEAREST)
        x = pad + i * (W * zoom + pad)
        strip.paste(img, (x, top))
        start = (i * span // max(n_frames - 1, 1)) if n_frames > 1 else 0
        draw.text((x, top + H * zoom + 1), f"+{start / 1e6:.2f}s", fill=(200, 200, 200))
    path = Path(path)
    strip.save(path)
    return path


def save_gif(
    rec: Recording, path: str | Path, *, window_us: int = 30_000, zoom: int = 3, max_frames: int = 400
) -> Path:
    """Write an animated GIF with one frame per ``window_us`` (real time), at most ``max_frames``."""
    from PIL import Image

    n = max(1, min(max_frames, (rec.duration_us // window_us) + 1))
    frames = event_frames(rec, n, window_us)
    W, H = rec.sensor_size
    images = [Image.fromarray(f).resize((W * zoom, H * zoom), Image.Resampling.NEAREST) for f in frames]
    path = Path(path)
    images[0].save(path, save_all=True, append_images=images[1:], duration=max(20, window_us // 1000), loop=0)
    return path


def cli(argv: list[str] | None = None) -> int:
    """``s2gesture show RECORDING``: render a recording as a PNG strip or GIF."""
    from .datasets import load_recording

    parser = argparse.ArgumentParser(
        prog="s2gesture show",
        description="Render a recording (.npy in tonic's layout, .npz, .aedat + segment, .aedat4, Prophesee .raw/.dat, "
        "ROS .bag/.db3/.mcap or a ROS 2 bag folder) as a PNG strip "
        "of event frames or an animated GIF (chosen by the output's extension).",
    )
    parser.add_argument("recording", help="file to show")
    parser.add_argument("--out", help="output .png or .gif (default: next to the recording, .png)")
    parser.add_argument("--frames", type=int, default=8, help="frames in the PNG strip (default 8)")
    parser.add_argument("--window-ms", type=float, default=50.0, help="time per frame in ms (default 50)")
    parser.add_argument(
        "--segment", type=int, default=0, help="segment index for AEDAT 3.1 files with labels (default 0)"
    )
    parser.add_argument("--zoom", type=int, default=2, help="pixel upscaling (default 2)")
    args = parser.parse_args(argv)
    rec = load_recording(args.recording, segment=args.segment)
    out = Path(args.out) if args.out else Path(args.recording).with_suffix(".png")
    window_us = int(args.window_ms * 1000)
    if out.suffix.lower() == ".gif":
        save_gif(rec, out, window_us=window_us, zoom=args.zoom)
    else:
        save_strip(rec, out, n_frames=args.frames, window_us=window_us, zoom=args.zoom)
    print(
        f"{out}: {len(rec)} events, {rec.duration_us / 1e6:.2f} s, sensor {rec.sensor_size[0]}x{rec.sensor_size[1]}"
    )
    return 0
