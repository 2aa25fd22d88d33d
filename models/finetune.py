"""``s2gesture finetune``: fit a trained P-SNN to your own takes, optionally with new gesture classes, and export it.

Steps, all on a CPU in minutes:

1. load a float model (``--from``, default the shipped ``models/pretrained/psnn_float.pt``);
2. grow the output layer by one neuron per ``--new-classes`` name (:func:`grow_output`: ``fc2`` gets new
   rows, the old rows are kept as they are, so the old classes start where they were);
3. fine-tune in chip semantics (the chip's same-tick reset and one tick per projection) on the takes of
   ``--data`` (``s2gesture record``'s folder: tonic layout + ``classes.json``), starting at a lower learning
   rate than training from scratch;
4. quantization-aware training (Brevitas, the chip's weight width) for ``--qat-epochs``;
5. export to ``OUT.nir`` with its model card: the classes are the model's plus the new names, the input
   section is the reference model's (``--card-from``, default the bundled ``psnn_int8.nir``), so a camera maps
   the same way. The fine-tuned float model is written next to it (``OUT.float.pt``) for a later round.

Labels are matched by class name (``classes.json``), not by index, so a folder recorded before new classes
were added still lines up. Takes are not mirrored during fine-tuning (a person's own gestures keep their
handedness; a new class has no known mirror image); they are shifted by a few pixels.

Fine-tuning learns what the takes show: record takes of every gesture the model should keep recognising.
A running daemon serves the result after its config points at ``OUT.nir`` and it receives SIGHUP
(docs/own_gestures.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from s2gesture.daemon.card import CLASSES_WITH_NONE, GESTURE_CLASSES
from s2gesture.daemon.errors import ConfigError, ModelCardError

if TYPE_CHECKING:
    from .binned import BinnedSet
    from .network import PSNN

PRETRAINED = Path(__file__).resolve().parent / "pretrained"
DEFAULT_FLOAT = PRETRAINED / "psnn_float.pt"
DEFAULT_CARD = PRETRAINED / "psnn_int8.nir"
CLASSES_FILE = "classes.json"


def _norm(name: str) -> str:
    return " ".join(name.lower().replace("_", " ").replace("-", " ").split())


def model_classes(blob: dict[str, Any], n_classes: int, source: str) -> tuple[str, ...]:
    """Class names of a loaded model file: its own ``classes``, else the standard lists by output count."""
    for found in (blob.get("classes"), (blob.get("card") or {}).get("classes") if isinstance(blob.get("card"), dict) else None):
        if isinstance(found, list | tuple) and all(isinstance(c, str) for c in found):
            if len(found) != n_classes:
                msg = f"{source}: lists {len(found)} class names for {n_classes} output neurons; re-create the file"
                raise ModelCardError(msg)
            return tuple(found)
    if n_classes == len(GESTURE_CLASSES):
        return GESTURE_CLASSES
    if n_classes == len(CLASSES_WITH_NONE):
        return CLASSES_WITH_NONE
    msg = (
        f"{source}: has {n_classes} output neurons and no class names; expected 11 (DVS Gesture) or 12 (with "
        "'none'), or a .float.pt written by `s2gesture finetune`, which records its names"
    )
    raise ModelCardError(msg)


def grow_output(model: PSNN, n_new: int, *, seed: int = 0) -> PSNN:
    """A copy of ``model`` with ``n_new`` more output neurons: ``fc2`` rows appended, every old weight kept.

    New rows are drawn with the spread of the old rows (their standard deviation), so the new neurons start
    firing about as often as the old ones instead of being silent (a silent neuron gets no surrogate gradient).
    """
    import torch

    from .network import PSNN

    if n_new < 0:
        msg = f"grow_output: n_new must be >= 0, found {n_new}"
        raise ValueError(msg)
    cfg = dataclasses.replace(model.cfg, n_classes=model.cfg.n_classes + n_new)
    grown = PSNN(cfg)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    old = state["weights.fc2.weight"]
    gen = torch.Generator().manual_seed(seed)
    extra = torch.randn((n_new, old.shape[1]), generator=gen) * old.std()
    state["weights.fc2.weight"] = torch.cat([old, extra], dim=0)
    if "beta_lif5" in state:
        # per-class output decays: the new classes must not change the old ones' time constants
        lo, hi = model.cfg.tau_ticks[-1] if model.cfg.tau_ticks else (0.0, 0.0)
        if lo != hi:
            msg = (f"grow_output: the output layer's time constants spread {lo}-{hi} ticks over the classes; "
                   "adding classes would change the old ones' decays (train with one output time constant)")  # fmt: skip
            raise ValueError(msg)
        state["beta_lif5"] = grown.beta_lif5.clone()
    grown.load_state_dict(state)
    grown.eval()
    return grown


def read_data_classes(data: Path, fallback: tuple[str, ...]) -> list[str]:
    """The class names of ``data``'s labels: its ``classes.json``, else ``fallback`` (e.g. a synth dataset)."""
    path = data / CLASSES_FILE
    if not path.is_file():
        return list(fallback)
    try:
        blob = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        msg = f"{path}: expected the JSON of `s2gesture record`, found unreadable JSON ({exc}); fix or remove it"
        raise ConfigError(msg) from exc
    names = blob.get("classes") if isinstance(blob, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        msg = f"{path}: expected 'classes': a list of names, found {str(blob)[:100]!r}; fix or remove it"
        raise ConfigError(msg)
    return names


def plan_classes(base: tuple[str, ...], data_names: list[str], labels_present: set[int], new: list[str], data: Path) -> tuple[list[str], dict[int, int]]:
    """Final class list (base + new) and the map data label -> model output; errors name what does not fit."""
    final = list(base)
    base_keys = {_norm(c) for c in base}
    for name in new:
        if _norm(name) in base_keys:
            msg = f"--new-classes: {name!r} is already a class of the model; leave it out of --new-classes"
            raise ConfigError(msg)
        if _norm(name) in {_norm(c) for c in final[len(base):]}:
            msg = f"--new-classes: {name!r} is listed twice"
            raise ConfigError(msg)
        final.append(name)
    keys = {_norm(c): i for i, c in enumerate(final)}
    mapping, unknown = {}, []
    for label in sorted(labels_present):
        if not 0 <= label < len(data_names):
            msg = f"{data}: takes carry label {label} but {CLASSES_FILE} lists {len(data_names)} classes; re-record or fix {CLASSES_FILE}"
            raise ConfigError(msg)
        key = _norm(data_names[label])
        if key not in keys:
            unknown.append(data_names[label])
        else:
            mapping[label] = keys[key]
    if unknown:
        msg = (
            f"{data}: has takes of {', '.join(repr(u) for u in unknown)}, which the model does not know; add "
            f"{'it' if len(unknown) == 1 else 'them'} with --new-classes '{','.join(unknown)}'"
        )
        raise ConfigError(msg)
    have = {mapping[label] for label in mapping}
    missing = [c for c in final[len(base):] if keys[_norm(c)] not in have]
    if missing:
        msg = f"--new-classes: no takes of {', '.join(repr(m) for m in missing)} in {data}; record some with `s2gesture record --labels`"
        raise ConfigError(msg)
    return final, mapping


def remap(data: BinnedSet, mapping: dict[int, int]) -> BinnedSet:
    """The same recordings with labels translated to model outputs."""
    from .binned import BinnedSet

    labels = np.asarray([mapping[int(v)] for v in data.labels], dtype=np.int64)
    return BinnedSet(data.spikes, labels, data.users, data.names)


def reference_input(card_from: str | None) -> tuple[Any, str]:
    """The input section for the new card: the ``card_from`` model's (default the bundled one), else the default."""
    from s2gesture.daemon.card import InputSpec, read_model

    path = Path(card_from) if card_from else DEFAULT_CARD
    if card_from and not path.is_file():
        msg = f"--card-from {path}: no such model file; give a .nir whose card's input mapping to copy"
        raise FileNotFoundError(msg)
    if path.is_file():
        return read_model(path).card.input, str(path)
    return InputSpec(), "default InputSpec"


@dataclasses.dataclass
class FinetuneSettings:
    """Hyperparameters of one fine-tuning run (recorded on the card)."""

    #: measured on a tuning user (bench_finetune.py --user-seed 5150, 5 takes per class, held-out takes):
    #: 3 / 10 / 20 epochs gave 65.2 / 74.2 / 78.8 % int8; a few takes are only a few batches per epoch
    epochs: int = 20
    qat_epochs: int = 2
    lr: float = 1e-3
    qat_lr: float = 3e-4
    window: int = 300
    batch_size: int = 16
    seed: int = 0
    threads: int = 2
    shift_px: int = 2


def finetune(
    model: PSNN,
    train: BinnedSet,
    val: BinnedSet | None,
    settings: FinetuneSettings,
    work_dir: Path,
    *,
    progress: bool = True,
    verbose: bool = True,
) -> tuple[PSNN, PSNN, dict[str, Any], dict[str, Any]]:
    """Fine-tune ``model`` (in place) in chip semantics, then QAT -> (float model, integer model, quantization record, history)."""
    from .quantize import quantize_qat
    from .train import TrainConfig, setup_torch, train_model

    cfg = TrainConfig(epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr, window=settings.window,
                      eval_window=settings.window, mirror_p=0.0, shift_px=settings.shift_px, init_rate=0.0,
                      semantics="chip", seed=settings.seed, threads=settings.threads, prefetch=0)  # fmt: skip
    setup_torch(settings.seed, settings.threads)
    history = train_model(model, train, val, cfg, work_dir / "float", progress=progress, verbose=verbose) if settings.epochs else {}
    model.eval()
    int_model, record = quantize_qat(model, train, val, work_dir / "qat", epochs=settings.qat_epochs, lr=settings.qat_lr,
                                     semantics="chip", seed=settings.seed + 1, window=settings.window,
                                     batch_size=settings.batch_size, progress=progress, base=cfg)  # fmt: skip
    return model, int_model, record, history


def load_takes(data: Path, split: str, spec: Any, cache: str | None, progress: bool) -> BinnedSet | None:
    """Binned takes of ``split`` (None when the folder has no takes of it)."""
    from .binned import load_split
    from .datasets.tonic_layout import count_samples

    try:
        if count_samples(data, split) == 0:
            return None
    except Exception:
        return None
    return load_split(data, split, spec, cache_dir=cache, progress=progress)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The ``finetune`` command: returns a summary (classes, accuracies, files, seconds)."""
    import torch

    from s2gesture.daemon.preprocess import PreprocessSpec

    from .export import export_model, make_card
    from .train import load_model_file, save_float_model, window_accuracy

    t_start = time.perf_counter()
    source = Path(args.from_model) if args.from_model else DEFAULT_FLOAT
    if not source.is_file():
        hint = " (the shipped float model is not there yet: pass --from a model.pt of `s2gesture train`)" if not args.from_model else ""
        msg = f"--from {source}: no such model file{hint}"
        raise FileNotFoundError(msg)
    model, blob = load_model_file(source)
    if blob.get("kind", "float") != "float":
        msg = f"--from {source}: is a {blob.get('kind')!r} model; fine-tuning starts from a float model .pt (`s2gesture train`'s model.pt or the shipped psnn_float.pt)"
        raise ModelCardError(msg)
    out = Path(args.out)
    if out.suffix.lower() != ".nir":
        msg = f"--out {out}: expected a .nir file name (the model the daemon loads), found {out.suffix or 'no suffix'!r}"
        raise ConfigError(msg)
    data = Path(args.data)
    if not data.is_dir():
        msg = f"--data {data}: no such folder; record takes into it with `s2gesture record --out {data}`"
        raise FileNotFoundError(msg)
    base = model_classes(blob, model.cfg.n_classes, str(source))
    new = [n.strip() for n in args.new_classes.split(",")] if args.new_classes else []
    if any(not n for n in new):
        msg = f"--new-classes: expected comma-separated names, found {args.new_classes!r}"
        raise ConfigError(msg)
    input_spec, input_from = reference_input(args.card_from)
    # binned as the base model's training data was: without the daemon's anti-flicker filter
    spec = PreprocessSpec.from_card(input_spec, (128, 128), anti_flicker_hz=())
    progress = not args.no_progress
    train = load_takes(data, "train", spec, args.cache, progress)
    if train is None:
        msg = f"--data {data}: no training takes (expected {data}/DVSGesture/ibmGestureTrain/userNN_*/<label>.npy); record some with `s2gesture record --out {data}`"
        raise FileNotFoundError(msg)
    val = load_takes(data, "test", spec, args.cache, progress)
    names = read_data_classes(data, base)
    present = {int(v) for v in train.labels} | ({int(v) for v in val.labels} if val is not None else set())
    classes, mapping = plan_classes(base, names, present, new, data)
    train = remap(train, mapping)
    val = remap(val, mapping) if val is not None else None
    model = grow_output(model, len(new), seed=args.seed) if new else model
    settings = FinetuneSettings(epochs=args.epochs, qat_epochs=args.qat_epochs, lr=args.lr, window=args.window,
                                batch_size=args.batch_size, seed=args.seed, threads=args.threads)  # fmt: skip
    print(f"fine-tuning {source.name} ({len(base)} classes{f' + new: {new}' if new else ''}) on {len(train)} takes"
          f"{f', validating on {len(val)} held-out takes' if val is not None else ' (no held-out takes: record some with --split test)'}",
          flush=True)  # fmt: skip
    before = window_accuracy(model, val, settings.window, "chip") if val is not None else None
    work = out.parent / (out.stem + ".work")
    float_model, int_model, record, history = finetune(model, train, val, settings, work, progress=progress)
    after_float = window_accuracy(float_model, val, settings.window, "chip") if val is not None else None
    after_int = window_accuracy(int_model, val, settings.window, "chip") if val is not None else None
    metrics = {"finetune": {"takes_train": len(train), "takes_val": len(val) if val is not None else 0,
                            "val_acc_before": before, "val_acc_float": after_float, "val_acc_int8": after_int,
                            "val_window_ticks": settings.window, "semantics": "chip"}}  # fmt: skip
    training = {"finetune": {"from": str(source), "data": str(data), "new_classes": new, "base_classes": list(base),
                             "settings": dataclasses.asdict(settings), "input_from": input_from,
                             "users": sorted(set(train.users)), "torch": torch.__version__},
                "base_training": blob.get("training", {})}  # fmt: skip
    card = make_card(args.name or out.stem, record, semantics="chip", training=training, metrics=metrics,
                     latency_ticks=int_model.n_projections, tau_ticks=int_model.cfg.tau_ticks)  # fmt: skip
    card = dataclasses.replace(card, classes=tuple(classes), input=input_spec)
    result = export_model(int_model, out, card)
    float_path = out.with_suffix(".float.pt")
    save_float_model(float_path, float_model, {"classes": list(classes), "semantics": "chip", "training": training,
                                               "metrics": metrics})  # fmt: skip
    if not args.keep_work:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return {"out": str(result.path), "hash": result.hash, "float": str(float_path), "classes": list(classes),
            "history": history, **metrics["finetune"], "wall_s": time.perf_counter() - t_start}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The ``s2gesture finetune`` argument parser."""
    d = FinetuneSettings()
    p = argparse.ArgumentParser(
        prog="s2gesture finetune",
        description="Fine-tune a trained P-SNN on your own takes (from `s2gesture record`), optionally adding new "
        "gesture classes, in chip semantics with quantization-aware training; export a .nir with its card.",
        epilog="Then point the daemon's model path at OUT.nir and send it SIGHUP (docs/own_gestures.md).",
    )
    p.add_argument("--from", dest="from_model", metavar="MODEL", help=f"float model .pt (default {DEFAULT_FLOAT})")
    p.add_argument("--data", required=True, metavar="DIR", help="takes folder of `s2gesture record` (tonic layout + classes.json)")
    p.add_argument("--new-classes", metavar="A,B", help="class names in DIR to add as new output neurons")
    p.add_argument("--out", required=True, metavar="OUT.nir", help="the fine-tuned model (OUT.float.pt is written next to it)")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"float fine-tuning epochs in chip semantics (default {d.epochs})")
    p.add_argument("--qat-epochs", type=int, default=d.qat_epochs, help=f"quantization-aware epochs (default {d.qat_epochs})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"learning rate of the float epochs (default {d.lr:g})")
    p.add_argument("--window", type=int, default=d.window, help=f"ticks per training window (default {d.window})")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=d.threads, help=f"torch threads (default {d.threads})")
    p.add_argument("--name", help="model name on the card (default: OUT's stem)")
    p.add_argument("--card-from", metavar="NIR", help=f"model whose card's input section to copy (default {DEFAULT_CARD.name} when shipped)")
    p.add_argument("--cache", metavar="DIR", help="binned-data cache folder (default: the user's cache dir)")
    p.add_argument("--keep-work", action="store_true", help="keep OUT.work/ (training checkpoints)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def cli(argv: list[str] | None = None) -> int:
    """``s2gesture finetune``."""
    args = build_parser().parse_args(argv)
    for name in ("epochs", "qat_epochs"):
        if getattr(args, name) < 0:
            msg = f"--{name.replace('_', '-')}: expected >= 0, found {getattr(args, name)}"
            raise ConfigError(msg)
    if args.qat_epochs < 1:
        msg = "--qat-epochs: expected >= 1 (the export needs the quantization-aware step's integer weights)"
        raise ConfigError(msg)
    summary = run(args)
    acc = (f"; held-out takes: {summary['val_acc_before']:.3f} before, {summary['val_acc_int8']:.3f} after (int8, chip semantics)"
           if summary["val_acc_int8"] is not None else "")  # fmt: skip
    print(f"wrote {summary['out']} ({len(summary['classes'])} classes, hash {summary['hash']}) in {summary['wall_s']:.0f} s{acc}")
    print(f"serve it: point the daemon's model at {summary['out']} and send SIGHUP (docs/own_gestures.md)")
    return 0
