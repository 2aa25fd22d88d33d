"""The model artifact: one ``.nir`` file whose graph metadata carries the model card.

The card is everything the daemon needs besides the graph: class labels, how to map any sensor to the
model input, the tick ``dt``, the denoise window, the chip-conversion options the weights were made for,
the quantization record and the training provenance. It is stored as one JSON string under the graph
metadata key ``s2gesture_card`` (NIR's HDF5 metadata holds flat scalars, not nested maps).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .backends.options import ChipOptions
from .errors import ModelCardError

CARD_KEY = "s2gesture_card"
CARD_SCHEMA = 1

#: DVS128 Gesture class names in tonic's order (docs/protocol.md).
GESTURE_CLASSES: tuple[str, ...] = (
    "hand clapping",
    "right hand wave",
    "left hand wave",
    "right arm clockwise",
    "right arm counter-clockwise",
    "left arm clockwise",
    "left arm counter-clockwise",
    "arm roll",
    "air drums",
    "air guitar",
    "other gestures",
)

#: label of each class's left-right mirror image (MODEL.md), by index into GESTURE_CLASSES: the hand
#: waves swap (1 <-> 2) and so do the arm circles (3 <-> 6, 4 <-> 5: a mirrored clockwise circle of the
#: right arm is a counter-clockwise circle of the left arm); the others are their own mirror
GESTURE_MIRROR: tuple[int, ...] = (0, 2, 1, 6, 5, 4, 3, 7, 8, 9, 10)

#: the "no gesture" outcome: a model trained with a background class lists it last in its card's classes;
#: the decision policy never reports it as an onset, and a segment's final decision may be it
NONE_CLASS = "none"
#: the 11 gestures plus the background class, in output-neuron order (the bundled model's classes)
CLASSES_WITH_NONE: tuple[str, ...] = (*GESTURE_CLASSES, NONE_CLASS)
#: mirror labels of CLASSES_WITH_NONE (an idle scene mirrored is still idle)
MIRROR_WITH_NONE: tuple[int, ...] = (*GESTURE_MIRROR, len(GESTURE_CLASSES))

#: the card's conversion section is the backends' own options record, not a copy of its fields
ConversionSpec = ChipOptions


@dataclass(frozen=True)
class InputSpec:
    """How events become the model input: ``[T, channels, height, width]`` binary spikes at ``dt_us`` ticks."""

    width: int = 32
    height: int = 32
    channels: int = 2
    #: a name in preprocess.MAPPINGS. Field of view: "center-crop-scale" crops the sensor's centre to the
    #: input aspect ratio, then scales down; "scale" scales each axis independently (aspect ratio not kept).
    #: Subject size: "subject" crops a box of the size training cropped from ``trained_sensor_size``
    #: (centred, or ``crop_box``) and scales it, so a person as many pixels tall as in training is as big
    #: in the input on any sensor (docs/cameras.md, "Sensor mapping").
    mapping: str = "center-crop-scale"
    dt_us: int = 1000
    #: 4-neighbour denoise window in microseconds; 0 disables denoising.
    denoise_us: int = 10_000
    #: sensor the model was trained on (the daemon maps any sensor; mapping "subject" keeps its scale).
    trained_sensor_size: tuple[int, int] = (128, 128)
    #: mapping "subject" only: the sensor box [x0, y0, width, height] to scale onto the input, for a model
    #: made for one camera (a deployment sets it per sensor in the daemon's model.input_mapping instead)
    crop_box: tuple[int, int, int, int] | None = None
    #: trained-sensor pixels per metre at the training subjects' distance; 0 = not recorded. With it,
    #: `s2gesture calibrate` turns a lens (focal length, pixel pitch, working distance) into a crop box.
    trained_pixels_per_metre: float = 0.0


@dataclass(frozen=True)
class ModelCard:
    """Everything the daemon needs besides the graph to serve a model."""

    name: str
    classes: tuple[str, ...] = GESTURE_CLASSES
    input: InputSpec = field(default_factory=InputSpec)
    #: how the graph's numbers become chip parameters (py-spinnaker2 ConversionConfig plus the chip switches)
    conversion: ChipOptions = field(default_factory=ChipOptions)
    #: {"bits": 8, "scheme": "ptq"|"qat"|"none", "percentile": p, "layer_scales": {node: scale}}
    quantization: Mapping[str, Any] = field(default_factory=dict)
    #: {"trained_for": "snntorch"|"chip", ...}: neuron semantics the weights were trained in
    semantics: Mapping[str, Any] = field(default_factory=dict)
    #: provenance: data, seed, epochs, hyperparameters
    training: Mapping[str, Any] = field(default_factory=dict)
    #: measured accuracies and the like
    metrics: Mapping[str, Any] = field(default_factory=dict)
    schema: int = CARD_SCHEMA

    @property
    def none_index(self) -> int | None:
        """Output index of the background class ``NONE_CLASS``, or None for a model without one."""
        return self.classes.index(NONE_CLASS) if NONE_CLASS in self.classes else None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        out = dataclasses.asdict(self)
        out["classes"] = list(self.classes)
        out["input"]["trained_sensor_size"] = list(self.input.trained_sensor_size)
        if self.input.crop_box is not None:
            out["input"]["crop_box"] = list(self.input.crop_box)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "model card") -> ModelCard:
        """Validate and build a card; every problem is reported at once with the field's path."""
        problems: list[str] = []
        if not isinstance(data, Mapping):
            msg = f"{source}: expected a JSON object, found {type(data).__name__}"
            raise ModelCardError(msg)
        schema = data.get("schema", CARD_SCHEMA)
        if schema != CARD_SCHEMA:
            msg = f"{source}: field 'schema' is {schema!r}, this s2gesture reads schema {CARD_SCHEMA}"
            raise ModelCardError(msg)
        if "name" not in data:
            problems.append("missing field 'name' (a short model name, e.g. \"psnn-ptq100\")")
        classes = data.get("classes")
        if classes is None:
            problems.append("missing field 'classes' (list of class labels in output-neuron order)")
        elif not isinstance(classes, list | tuple) or not all(isinstance(c, str) for c in classes):
            problems.append(f"field 'classes' must be a list of strings, found {classes!r}")
        sub: dict[str, Any] = {}
        for key, klass in (("input", InputSpec), ("conversion", ChipOptions)):
            raw = data.get(key, {})
            if not isinstance(raw, Mapping):
                problems.append(f"field '{key}' must be an object, found {type(raw).__name__}")
                continue
            known = {f.name for f in dataclasses.fields(klass)}
            unknown = sorted(set(raw) - known)
            if unknown:
                problems.append(f"field '{key}' has unknown keys {unknown}; known: {sorted(known)}")
                continue
            kwargs = dict(raw)
            if "trained_sensor_size" in kwargs:
                kwargs["trained_sensor_size"] = tuple(kwargs["trained_sensor_size"])
            if kwargs.get("crop_box") is not None:
                if not isinstance(kwargs["crop_box"], list | tuple):
                    problems.append(
                        f"field 'input.crop_box' must be [x0, y0, width, height], found {kwargs['crop_box']!r}"
                    )
                    continue
                kwargs["crop_box"] = tuple(kwargs["crop_box"])
            if klass is ChipOptions:
                # ChipOptions validates itself; collect every problem with its field path instead of the first
                checked = dataclasses.replace(_UNCHECKED, **kwargs)
                found = checked.problems()
                problems.extend(f"field 'conversion.{name}': {text}" for name, text in found)
                if not found:
                    sub[key] = ChipOptions(**kwargs)
                continue
            sub[key] = klass(**kwargs)
        unknown_top = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown_top:
            problems.append(f"unknown fields {unknown_top}")
        if "input" in sub:
            from .preprocess import MAPPINGS  # the one registry of sensor mappings (imports numba: lazily)

            spec: InputSpec = sub["input"]
            if spec.mapping not in MAPPINGS:
                problems.append(f"field 'input.mapping' is {spec.mapping!r}; expected one of {list(MAPPINGS)}")
            if spec.crop_box is not None:
                from .preprocess import crop_box_problem

                if spec.mapping != "subject":
                    problems.append(
                        f"field 'input.crop_box' is only used by mapping 'subject', but 'input.mapping' is "
                        f"{spec.mapping!r}; set \"mapping\": \"subject\" or drop the crop box"
                    )
                # the card names no sensor: its shape is checked here, its placement per stream
                why = crop_box_problem(list(spec.crop_box), (32767, 32767), (spec.width, spec.height))
                if why:
                    problems.append(f"field 'input.crop_box': {why}")
            if spec.dt_us <= 0:
                problems.append(f"field 'input.dt_us' must be > 0, found {spec.dt_us}")
            if spec.channels not in (1, 2):
                problems.append(f"field 'input.channels' must be 1 or 2, found {spec.channels}")
        if problems:
            msg = f"{source} is not usable:\n  - " + "\n  - ".join(problems)
            raise ModelCardError(msg)
        return cls(
            name=str(data["name"]),
            classes=tuple(classes or ()),
            input=sub.get("input", InputSpec()),
            conversion=sub.get("conversion", ChipOptions()),
            quantization=dict(data.get("quantization", {})),
            semantics=dict(data.get("semantics", {})),
            training=dict(data.get("training", {})),
            metrics=dict(data.get("metrics", {})),
        )


class _Unchecked(ChipOptions):
    """ChipOptions that skips validation, so that the card can list every problem before building one."""

    def __post_init__(self) -> None:
        pass


_UNCHECKED = _Unchecked()


def graph_hash(graph: Any) -> str:
    """sha256 (hex, first 16 chars) of the graph's nodes, parameters and edges, card excluded."""
    import nir  # noqa: F401  (the graph's node classes)

    h = hashlib.sha256()
    for name in sorted(graph.nodes):
        node = graph.nodes[name]
        h.update(name.encode())
        h.update(type(node).__name__.encode())
        for fname in sorted(vars(node)):
            if fname in ("metadata", "input_type", "output_type"):
                continue
            value = getattr(node, fname)
            if isinstance(value, dict) and fname == "nodes":
                continue
            arr = np.asarray(value) if not hasattr(value, "nodes") else None
            if arr is not None and arr.dtype != object:
                h.update(fname.encode())
                h.update(str(arr.shape).encode())
                h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    for src, dst in sorted(graph.edges):
        h.update(f"{src}->{dst};".encode())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Model:
    """A loaded model artifact: the NIR graph, its card and the graph's content hash."""

    graph: Any  # nir.NIRGraph (typed loosely: nir ships no type stubs)
    card: ModelCard
    hash: str
    path: Path | None = None

    @property
    def identity(self) -> dict[str, str]:
        """The ``model`` field of published messages."""
        return {"name": self.card.name, "hash": self.hash}


def attach_card(graph: Any, card: ModelCard) -> Any:
    """Return the graph with the card in its metadata (the graph object is updated in place and returned)."""
    graph.metadata = dict(getattr(graph, "metadata", {}) or {})
    graph.metadata[CARD_KEY] = json.dumps(card.to_dict(), sort_keys=True)
    return graph


def write_model(path: str | Path, graph: Any, card: ModelCard) -> Model:
    """Write ``graph`` with ``card`` to ``path`` (.nir, HDF5), atomically.

    The file is written beside ``path`` and renamed over it, so a daemon reloading on SIGHUP (or any reader)
    sees the old model or the new one, never half a file.
    """
    import os
    import tempfile

    import nir

    path = Path(path)
    attach_card(graph, card)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        mode = path.stat().st_mode & 0o777
    else:  # what open() would have made: mkstemp's file is private (0600), a service user could not read it
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        nir.write(tmp, graph)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Model(graph=graph, card=card, hash=graph_hash(graph), path=path)


def read_card_override(source: str | Path | Mapping[str, Any]) -> ModelCard:
    """Read a card from a JSON file or mapping (for graphs made by other tools)."""
    if isinstance(source, Mapping):
        return ModelCard.from_dict(source, source="card")
    p = Path(source)
    if not p.is_file():
        msg = f"model card file {p} does not exist; pass a JSON file with at least 'name' and 'classes'"
        raise ModelCardError(msg)
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        msg = f"model card file {p} is not valid JSON: {exc}"
        raise ModelCardError(msg) from exc
    return ModelCard.from_dict(data, source=f"model card file {p}")


def read_model(path: str | Path, card: str | Path | Mapping[str, Any] | None = None) -> Model:
    """Read a ``.nir`` model and its card; ``card`` supplies or replaces the card of graphs from other tools."""
    import nir

    path = Path(path)
    if not path.is_file():
        msg = f"model file {path} does not exist; point 'model.path' at a .nir file (e.g. models/pretrained/*.nir)"
        raise ModelCardError(msg)
    try:
        graph = nir.read(path)
    except Exception as exc:  # h5py/KeyError/OSError: nir gives no single error type
        msg = f"model file {path} is not a readable NIR graph: {type(exc).__name__}: {exc}"
        raise ModelCardError(msg) from exc
    if card is not None:
        model_card = read_card_override(card)
    else:
        raw = (getattr(graph, "metadata", None) or {}).get(CARD_KEY)
        if raw is None:
            msg = (
                f"model file {path} has no model card (graph metadata key '{CARD_KEY}'); "
                "export it with `s2gesture export`, or supply one with --card CARD.json"
            )
            raise ModelCardError(msg)
        if isinstance(raw, bytes):
            raw = raw.decode()
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            msg = f"model file {path}: the card in metadata '{CARD_KEY}' is not valid JSON: {exc}"
            raise ModelCardError(msg) from exc
        model_card = ModelCard.from_dict(data, source=f"model card of {path}")
    return Model(graph=graph, card=model_card, hash=graph_hash(graph), path=path)
