"""``s2gesture calibrate``: pick the sensor mapping that keeps the subject's size for a camera.

A model trained on 128x128 sensors and a 32x32 input has learnt people at 4 sensor pixels per input pixel.
Scaling a 346x260 sensor's whole view onto 32x32 shrinks the same person 2x more, and accuracy drops. The
daemon's mapping ``subject`` (docs/cameras.md, "Sensor mapping") crops a box of the training's crop size
(128x128) instead; this command says where that box goes, and how big it must be when the subject is not
as many pixels tall as the training subjects, from either:

* a recording or live source of a person (``SOURCE``: a file of any format ``replay`` reads, or a
  camera URI as ``s2gesture camera`` takes): the subject's box is where the denoised events are dense
  over the first ``--seconds``; the crop box is the training's crop size (scaled by ``--subject-px`` /
  the card's training subject height when given), centred on the subject and moved onto the sensor;
* lens facts (``--focal-length-mm``, ``--pixel-pitch-um``, ``--distance-m``): the camera sees
  ``f / (pitch * d)`` pixels per metre at the subject; the box is the training's crop size times that
  over the training's pixels per metre (the card's ``input.trained_pixels_per_metre`` or
  ``--trained-ppm``), centred on the sensor.

It prints the rule it applied and the TOML table for ``s2gestured.toml``; ``--write CONFIG`` puts it there
(replacing that sensor's table, keeping the rest of the file).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from s2gesture.daemon.errors import S2GestureError
from s2gesture.daemon.events import EVENT_DTYPE, Events

from . import bus


@dataclass(frozen=True)
class Calibration:
    """A chosen mapping for one sensor: the crop box and why."""

    sensor_size: tuple[int, int]
    crop_box: tuple[int, int, int, int]
    #: the subject's box (x0, y0, x1, y1 exclusive) found in the events, when calibrated from events
    subject: tuple[int, int, int, int] | None
    rule: list[str]

    @property
    def key(self) -> str:
        """The config's sensor key, ``WIDTHxHEIGHT``."""
        return f"{self.sensor_size[0]}x{self.sensor_size[1]}"

    def toml(self) -> str:
        """The ``model.input_mapping`` table of this sensor."""
        box = ", ".join(str(v) for v in self.crop_box)
        return f'[model.input_mapping."{self.key}"]\nmapping = "subject"\ncrop_box = [{box}]\n'


# ------------------------------------------------------------------------------------------ estimation


def subject_box(
    events: Events, sensor_size: tuple[int, int], *, denoise_us: int = 10_000, coverage: float = 0.98
) -> tuple[int, int, int, int]:
    """The box ``(x0, y0, x1, y1)`` (x1, y1 exclusive) where a moving subject's events are, over all ``events``.

    Isolated background events are removed by the daemon's denoise filter; pixels that fired less than a
    few times over the whole input are background too (a person moving for seconds makes hundreds of events
    per pixel it covers). The box holds the central ``coverage`` of the remaining events along each axis.
    """
    from s2gesture.daemon.preprocess import denoise

    W, H = sensor_size
    kept = denoise(events, sensor_size, denoise_us) if denoise_us else events
    if kept.shape[0] == 0:
        msg = "no events survive the denoise filter: record a person moving in front of the camera"
        raise bus.ClientError(msg)
    counts = np.bincount(kept["y"].astype(np.int64) * W + kept["x"], minlength=W * H).reshape(H, W)
    active = counts[counts > 0]
    # background: pixels with a small share of what the busiest pixels (the subject's) collect
    floor = max(3.0, 0.1 * float(np.percentile(active, 99.9)))
    weights = np.where(counts >= floor, counts, 0).astype(np.float64)
    if weights.sum() == 0:
        msg = (
            f"no pixel fired {floor:.0f} times: the input has {kept.shape[0]} events after denoising, too few "
            "to see a subject; record a few seconds of a person moving"
        )
        raise bus.ClientError(msg)
    tail = (1.0 - coverage) / 2

    def span(profile: npt.NDArray[np.float64]) -> tuple[int, int]:
        cum = np.cumsum(profile) / profile.sum()
        lo = int(np.searchsorted(cum, tail, side="left"))
        hi = int(np.searchsorted(cum, 1.0 - tail, side="left")) + 1
        return lo, min(hi, profile.shape[0])

    x0, x1 = span(weights.sum(axis=0))
    y0, y1 = span(weights.sum(axis=1))
    return x0, y0, x1, y1


def trained_crop_size(input_spec: Any) -> tuple[int, int]:
    """The sensor box size the model's training cropped (center-crop-scale's box on its trained sensor)."""
    from s2gesture.daemon.preprocess import PreprocessSpec
    from s2gesture.daemon.preprocess import subject_box as box_of

    trained = (int(input_spec.trained_sensor_size[0]), int(input_spec.trained_sensor_size[1]))
    spec = PreprocessSpec(
        sensor_size=trained, input_size=(int(input_spec.width), int(input_spec.height)), mapping="subject",
        trained_sensor_size=trained,
    )
    _, _, w, h = box_of(spec)
    return w, h


def _fit(centre: tuple[float, float], size: tuple[int, int], sensor: tuple[int, int], rule: list[str]) -> tuple[int, int, int, int]:
    """A box of ``size`` centred at ``centre``, moved (and if it must, shrunk) onto the sensor."""
    (W, H), (bw, bh) = sensor, size
    if bw > W or bh > H:
        shrink = min(W / bw, H / bh)
        bw, bh = max(1, int(bw * shrink)), max(1, int(bh * shrink))
        rule.append(
            f"that box does not fit the {W}x{H} sensor: shrunk to {bw}x{bh}, so the subject appears "
            f"{1 / shrink:.2f}x larger than in training; move the camera back for a true fit"
        )
    x0 = round(centre[0] - bw / 2)
    y0 = round(centre[1] - bh / 2)
    fx, fy = min(max(x0, 0), W - bw), min(max(y0, 0), H - bh)
    if (fx, fy) != (x0, y0):
        rule.append(f"moved from ({x0}, {y0}) to ({fx}, {fy}) to lie on the sensor")
    return fx, fy, bw, bh


def calibrate_from_events(
    events: Events,
    sensor_size: tuple[int, int],
    input_spec: Any,
    *,
    subject_px: float | None = None,
    trained_subject_px: float | None = None,
) -> Calibration:
    """The crop box for a camera from events of a person in front of it (see the module docstring)."""
    crop_w, crop_h = trained_crop_size(input_spec)
    x0, y0, x1, y1 = subject_box(events, sensor_size, denoise_us=int(input_spec.denoise_us))
    measured = float(y1 - y0) if subject_px is None else float(subject_px)
    rule = [
        f"subject found at x {x0}..{x1 - 1}, y {y0}..{y1 - 1} ({x1 - x0}x{y1 - y0} px: 98 % of the denoised events)",
        f"training cropped {crop_w}x{crop_h} px of its {input_spec.trained_sensor_size[0]}x"
        f"{input_spec.trained_sensor_size[1]} sensor onto the {input_spec.width}x{input_spec.height} input",
    ]
    scale = 1.0
    if trained_subject_px:
        scale = measured / float(trained_subject_px)
        rule.append(
            f"the subject is {measured:.0f} px tall here and {trained_subject_px:.0f} px in training: box x{scale:.2f}"
        )
    else:
        rule.append("box of the training's size: the subject keeps the pixel size it has on this camera "
                    "(give --trained-subject-px to scale the box to the subject's height)")
    size = (max(1, round(crop_w * scale)), max(1, round(crop_h * scale)))
    box = _fit(((x0 + x1) / 2, (y0 + y1) / 2), size, sensor_size, rule)
    return Calibration(sensor_size, box, (x0, y0, x1, y1), rule)


def pixels_per_metre(focal_length_mm: float, pixel_pitch_um: float, distance_m: float) -> float:
    """Sensor pixels per metre at ``distance_m`` of a lens of ``focal_length_mm`` on pixels ``pixel_pitch_um`` wide."""
    return (focal_length_mm * 1e-3) / (pixel_pitch_um * 1e-6 * distance_m)


def calibrate_from_lens(
    sensor_size: tuple[int, int],
    input_spec: Any,
    *,
    focal_length_mm: float,
    pixel_pitch_um: float,
    distance_m: float,
    trained_ppm: float | None = None,
) -> Calibration:
    """The crop box for a camera from its lens facts and the working distance (see the module docstring)."""
    for name, value in (("--focal-length-mm", focal_length_mm), ("--pixel-pitch-um", pixel_pitch_um), ("--distance-m", distance_m)):
        if not value > 0:
            msg = f"{name} must be > 0, found {value}"
            raise bus.ClientError(msg)
    ref = trained_ppm or float(getattr(input_spec, "trained_pixels_per_metre", 0.0) or 0.0)
    if not ref > 0:
        msg = (
            "the model card does not record the training's pixels per metre (input.trained_pixels_per_metre); "
            "pass --trained-ppm (training sensor pixels per metre at its subjects' distance), or calibrate "
            "from a recording of a person instead"
        )
        raise bus.ClientError(msg)
    crop_w, crop_h = trained_crop_size(input_spec)
    ppm = pixels_per_metre(focal_length_mm, pixel_pitch_um, distance_m)
    scale = ppm / ref
    rule = [
        f"lens: {focal_length_mm} mm / ({pixel_pitch_um} µm x {distance_m} m) = {ppm:.1f} px per metre at the subject",
        f"training: {ref:.1f} px per metre, crop {crop_w}x{crop_h} px; box x{scale:.2f}",
    ]
    size = (max(1, round(crop_w * scale)), max(1, round(crop_h * scale)))
    W, H = sensor_size
    box = _fit(((W) / 2, (H) / 2), size, sensor_size, rule)
    return Calibration(sensor_size, box, None, rule)


# ------------------------------------------------------------------------------------------------ input


def read_events(source: str, seconds: float, sensor_size: tuple[int, int] | None) -> tuple[Events, tuple[int, int]]:
    """The first ``seconds`` of events of a recording file or a live camera URI, and the sensor size."""
    if "://" not in source:
        from s2gesture.models.datasets import load_recording

        path = Path(source)
        if not path.exists():
            msg = f"recording {source} does not exist; give a recording file or a camera URI (dv://HOST:PORT, ...)"
            raise bus.ClientError(msg)
        rec = load_recording(path)
        ev = rec.events
        if ev.shape[0]:
            ev = ev[: int(np.searchsorted(ev["t"], int(ev["t"][0]) + int(seconds * 1e6)))]
        return ev, tuple(sensor_size or rec.sensor_size)  # type: ignore[return-value]
    from .camera import open_source

    cam = open_source(source, sensor_size=sensor_size)
    try:
        size = cam.open()
        parts: list[Events] = []
        start = time.monotonic()
        t_first: int | None = None
        while time.monotonic() - start < seconds + 30:
            ev = cam.read(0.2)
            if ev is None or ev.shape[0] == 0:
                continue
            t_first = int(ev["t"][0]) if t_first is None else t_first
            parts.append(ev)
            if int(ev["t"][-1]) - t_first >= seconds * 1e6:
                break
    finally:
        cam.close()
    events = np.concatenate(parts) if parts else np.zeros(0, dtype=EVENT_DTYPE)
    return events, tuple(size)  # type: ignore[return-value]


def write_table(path: Path, calibration: Calibration) -> None:
    """Put this sensor's ``model.input_mapping`` table into the TOML file at ``path`` (the rest kept)."""
    header = f'[model.input_mapping."{calibration.key}"]'
    text = path.read_text() if path.exists() else "schema_version = 1\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == header), None)
    if start is None:
        new = text + ("" if text.endswith("\n") or not text else "\n") + "\n" + calibration.toml()
    else:
        end = next((i for i in range(start + 1, len(lines)) if re.match(r"\s*\[", lines[i])), len(lines))
        new = "".join(lines[:start]) + calibration.toml() + ("\n" if end < len(lines) else "") + "".join(lines[end:])
    try:
        data = tomllib.loads(new)
    except tomllib.TOMLDecodeError as exc:
        msg = (
            f"{path}: adding {header} would not be valid TOML ({exc}); the file may define model.input_mapping "
            "inline: add the table printed above by hand"
        )
        raise bus.ClientError(msg) from None
    from pydantic import ValidationError

    from s2gesture.daemon.config import ModelConfig

    try:
        ModelConfig(input_mapping=data["model"]["input_mapping"])  # the daemon's own check of the tables
    except ValidationError as exc:
        reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        msg = f"{path}: its model.input_mapping would not be accepted by s2gestured: {reasons}"
        raise bus.ClientError(msg) from None
    path.write_text(new)


# -------------------------------------------------------------------------------------------------- cli


def _size(text: str) -> tuple[int, int]:
    from .camera import parse_size

    size = parse_size(text)
    if size is None:
        msg = "--sensor-size must be WxH (e.g. 346x260)"
        raise bus.ClientError(msg)
    return size


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="s2gesture calibrate",
        description=(
            "Pick the daemon's sensor mapping for a camera so that people appear as large in the model input "
            "as in training (mapping 'subject' with a crop box). Give SOURCE (a recording of a person moving, "
            "or a live camera URI), or the lens facts."
        ),
        epilog=(
            "examples:\n"
            "  s2gesture calibrate person.aedat4\n"
            "  s2gesture calibrate inivation:// --seconds 5 --write /etc/s2gesture/s2gestured.toml\n"
            "  s2gesture calibrate --sensor-size 346x260 --focal-length-mm 4.5 --pixel-pitch-um 18.5 --distance-m 2 --trained-ppm 60"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", nargs="?", help="recording file (any format `replay` reads) or camera URI (as `s2gesture camera`)")
    p.add_argument("--sensor-size", help="WxH of the camera (default: from the recording or the camera)")
    p.add_argument("--seconds", type=float, default=5.0, help="how much of the input to look at (default 5)")
    p.add_argument("--model", help="the .nir model whose card sets the input and training sizes (default: the bundled model)")
    p.add_argument("--trained-subject-px", type=float,
                   help="height in training-sensor pixels of the training subjects: scales the box to this subject's height")
    p.add_argument("--subject-px", type=float, help="this subject's height in pixels (default: measured from the events)")
    p.add_argument("--focal-length-mm", type=float, help="lens focal length (mm): calibrate from lens facts")
    p.add_argument("--pixel-pitch-um", type=float, help="sensor pixel pitch (µm), e.g. 18.5 for a DAVIS346, 9 for a DVXplorer")
    p.add_argument("--distance-m", type=float, help="working distance from the camera to the person (m)")
    p.add_argument("--trained-ppm", type=float, help="training sensor pixels per metre at its subjects (default: the card's)")
    p.add_argument("--write", metavar="CONFIG", help="put the table into this s2gestured.toml (created when missing)")
    return p


def _input_spec(model: str | None) -> Any:
    from s2gesture.daemon.card import read_model

    if model is None:
        from s2gesture.daemon.pipeline import default_model_path

        model = str(default_model_path())
    return read_model(model).card.input


def run(args: argparse.Namespace, out: Any = None) -> Calibration:
    """Calibrate as the command line says; prints the rule and the table (to ``out``, default stdout)."""
    out = sys.stdout if out is None else out
    lens = [args.focal_length_mm, args.pixel_pitch_um, args.distance_m]
    spec = _input_spec(args.model)
    if any(v is not None for v in lens):
        if any(v is None for v in lens) or not args.sensor_size:
            msg = "calibrating from the lens needs --sensor-size, --focal-length-mm, --pixel-pitch-um and --distance-m"
            raise bus.ClientError(msg)
        cal = calibrate_from_lens(
            _size(args.sensor_size), spec, focal_length_mm=args.focal_length_mm, pixel_pitch_um=args.pixel_pitch_um,
            distance_m=args.distance_m, trained_ppm=args.trained_ppm,
        )
    elif args.source:
        events, sensor = read_events(args.source, args.seconds, _size(args.sensor_size) if args.sensor_size else None)
        cal = calibrate_from_events(
            events, sensor, spec, subject_px=args.subject_px, trained_subject_px=args.trained_subject_px
        )
    else:
        msg = "give a SOURCE (recording or camera URI) of a person moving, or the lens facts (see --help)"
        raise bus.ClientError(msg)
    print(f"sensor {cal.key}: crop box {list(cal.crop_box)} (x0, y0, width, height)", file=out)
    for line in cal.rule:
        print(f"  - {line}", file=out)
    print("\nfor s2gestured.toml:\n", file=out)
    print(cal.toml(), file=out)
    if args.write:
        write_table(Path(args.write), cal)
        print(f"written to {args.write}; `s2gestured check-config --config {args.write}` checks it with the model", file=out)
    return cal


def cli(argv: list[str] | None = None) -> int:
    """``s2gesture calibrate``: 0 when a mapping was chosen, 2 on bad input."""
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except KeyboardInterrupt:
        return 130
    except S2GestureError as exc:
        print(f"s2gesture calibrate: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
