"""``s2gesture quantize``: integer weights for the chip, by percentile PTQ or Brevitas QAT.

The weight width comes from the chip record (``SpiNNaker2Spec.weight_bits``, 8 on SpiNNaker2, so
``qmax = spec.weight_max`` = 127); every function takes a ``spec`` for other chips. Both methods yield
the same thing: per weight layer, integer weights in [-qmax, qmax] and a scale ``s``
(integer = float weight x ``s``), and per LIF layer a threshold in the same integer units (float threshold
x ``s``), so that each neuron sees the same relative drive as in the float model (MODEL.md). The chip's
converter is then told ``scale_weights=False``: its translation is the identity on these numbers, so there
is exactly one quantization, ours (SPINNAKER2.md section 4), instead of a second one on the chip.

- **PTQ**: ``s = qmax / percentile(|W|, p)`` per layer (p = 100 is the chip converter's own rule; 99.9 and
  99 clip the largest weights to gain resolution for the rest), rounding to nearest and clipping to +-qmax.
  Every LIF layer here has exactly one incoming projection, so per layer = per target population, which is
  the chip's granularity.
- **QAT**: Brevitas ``QuantConv2d``/``QuantLinear`` with ``weight_bits`` per-tensor weights (scale =
  max|W|/qmax, narrow range) fine-tuned from the float model with straight-through gradients. Thresholds adapt: each
  layer's threshold is a learned parameter in float units, and its integer-domain value is recomputed from
  the current quantization scale at every step (``thr_int = thr / scale_brevitas``). The export takes the
  integers and scales from Brevitas (``quant_weight().int()``, ``.scale``), never the fake-quantized floats.

The result is a ``.pt`` with ``kind = "int8"`` (the integer-model kind, whatever the width): a P-SNN whose weights are integer-valued floats and whose
thresholds are in integer units; it runs in the same torch simulator as the float model (in snnTorch or chip
semantics) and is what ``s2gesture export`` writes to NIR.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from s2gesture.daemon.backends.chip import SPINNAKER2, SpiNNaker2Spec

if TYPE_CHECKING:
    from .network import PSNN

#: largest |integer weight| on the default chip (kept for callers that want the number)
QMAX = SPINNAKER2.weight_max


def ptq_scale(weight: np.ndarray, percentile: float, *, qmax: int | None = None, spec: SpiNNaker2Spec = SPINNAKER2) -> float:
    """Scale mapping the ``percentile``-th percentile of ``|weight|`` to ``qmax`` (default ``spec.weight_max``)."""
    qmax = spec.weight_max if qmax is None else qmax
    if not 0 < percentile <= 100:
        msg = f"PTQ percentile must be in (0, 100], found {percentile}"
        raise ValueError(msg)
    ref = (
        float(np.percentile(np.abs(weight), percentile)) if percentile < 100 else float(np.abs(weight).max())
    )
    if ref <= 0:
        msg = "PTQ: a weight layer is all zeros; there is nothing to scale (was the model trained?)"
        raise ValueError(msg)
    return qmax / ref


def quantize_weight(weight: np.ndarray, scale: float, *, qmax: int | None = None, spec: SpiNNaker2Spec = SPINNAKER2) -> np.ndarray:
    """``clip(round(weight * scale), -qmax, qmax)`` as float32 integers (``qmax`` default ``spec.weight_max``)."""
    qmax = spec.weight_max if qmax is None else qmax
    return np.clip(np.rint(weight * scale), -qmax, qmax).astype(np.float32)


def _lif_index_of(model: PSNN) -> dict[str, int]:
    """Weight layer name -> index of the LIF layer it feeds."""
    out, lif, pending = {}, 0, None
    for stage in model.stages:
        if stage.kind in ("conv", "linear"):
            pending = stage.name
        elif stage.kind == "lif":
            out[str(pending)] = lif
            lif += 1
    return out


def integer_model(model: PSNN, ints: dict[str, np.ndarray], thresholds: dict[str, float]) -> PSNN:
    """A float-layer P-SNN holding integer weights and integer-domain thresholds."""
    import torch

    from .network import PSNN

    q = PSNN(model.cfg).copy_decays_(model)
    lif_of = _lif_index_of(q)
    with torch.no_grad():
        for name, w in ints.items():
            q.weights[name].weight.copy_(torch.from_numpy(w))
            q.thresholds[lif_of[name]] = float(thresholds[name])
    q.eval()
    return q


def quantize_ptq(model: PSNN, percentile: float = 100.0, *, spec: SpiNNaker2Spec = SPINNAKER2) -> tuple[PSNN, dict[str, Any]]:
    """Percentile PTQ of a float model for chip ``spec`` -> (integer model, quantization record)."""
    lif_of = _lif_index_of(model)
    qmax = spec.weight_max
    ints, thr, scales, clipped = {}, {}, {}, {}
    for name, w_t in model.iter_weights():
        w = w_t.detach().numpy()
        s = ptq_scale(w, percentile, spec=spec)
        ints[name] = quantize_weight(w, s, spec=spec)
        scales[name] = s
        thr[name] = float(model.thresholds[lif_of[name]]) * s
        clipped[name] = int((np.abs(w * s) > qmax + 0.5).sum())
    record = {
        "bits": spec.weight_bits,
        "scheme": "ptq",
        "percentile": percentile,
        "rounding": f"nearest, clip to +-{qmax}",
        "layer_scales": scales,
        "thresholds": thr,
        "clipped_weights": clipped,
    }
    return integer_model(model, ints, thr), record


def qat_model_from_float(model: PSNN, *, spec: SpiNNaker2Spec = SPINNAKER2) -> PSNN:
    """A Brevitas P-SNN (``spec.weight_bits`` weights, learnable thresholds) initialised from a float model."""
    import torch

    from .network import PSNN

    q = PSNN(model.cfg, layers="brevitas", learn_threshold=True, weight_bits=spec.weight_bits).copy_decays_(model)
    with torch.no_grad():
        for name, layer in model.weights.items():
            q.weights[name].weight.copy_(layer.weight)
        q.thresholds.copy_(model.thresholds)
    return q


def export_qat(qmodel: PSNN) -> tuple[PSNN, dict[str, Any]]:
    """Integer weights and integer-domain thresholds from a trained Brevitas P-SNN (its own weight width)."""
    lif_of = _lif_index_of(qmodel)
    ints, thr, scales = {}, {}, {}
    for name, layer in qmodel.weights.items():
        qw = layer.quant_weight()
        ints[name] = qw.int().detach().numpy().astype(np.float32)
        # Brevitas: float = int * scale_b; ours: int = float * s, so s = 1 / scale_b
        scale_b = float(qw.scale.detach().reshape(-1)[0])
        scales[name] = 1.0 / scale_b
        thr[name] = float(qmodel.thresholds[lif_of[name]].detach()) / scale_b
    bits = qmodel.weight_bits
    qmax = dataclasses.replace(SPINNAKER2, weight_bits=bits).weight_max
    record = {
        "bits": bits,
        "scheme": "qat",
        "percentile": 100.0,
        "rounding": f"brevitas Int8WeightPerTensorFloat at {bits} bits (round to nearest, narrow range +-{qmax})",
        "layer_scales": scales,
        "thresholds": thr,
        "learned_thresholds_float": [float(v) for v in qmodel.thresholds.detach()],
    }
    return integer_model(qmodel, ints, thr), record


def quantize_qat(
    model: PSNN,
    train: Any,
    val: Any,
    out_dir: str | Path,
    *,
    epochs: int = 3,
    lr: float = 5e-4,
    semantics: str = "snntorch",
    seed: int = 0,
    window: int = 300,
    batch_size: int = 16,
    progress: bool = True,
    base: Any = None,
    spec: SpiNNaker2Spec = SPINNAKER2,
) -> tuple[PSNN, dict[str, Any]]:
    """QAT fine-tuning from a float model for chip ``spec`` -> (integer model, quantization record)."""
    from .train import TrainConfig, train_model

    cfg = base if base is not None else TrainConfig()
    cfg = dataclasses.replace(
        cfg, epochs=epochs, lr=lr, semantics=semantics, seed=seed, window=window, batch_size=batch_size
    )
    qmodel = qat_model_from_float(model, spec=spec)
    history = train_model(qmodel, train, val, cfg, out_dir, progress=progress)
    qmodel.cpu()  # the integers are read on the host (training may have run on a GPU)
    qmodel.eval()
    int_model, record = export_qat(qmodel)
    record["qat"] = {"epochs": epochs, "lr": lr, "semantics": semantics, "seed": seed, "history": history}
    return int_model, record


def memory_table(model: PSNN) -> list[dict[str, Any]]:
    """Bytes per weight layer as float32 and as the chip's int8 storage (MODEL.md: 4x)."""
    rows = []
    for name, w in model.iter_weights():
        n = int(w.numel())
        rows.append({"layer": name, "weights": n, "float32_bytes": 4 * n, "int8_bytes": n})
    total = sum(r["weights"] for r in rows)
    rows.append({"layer": "total", "weights": total, "float32_bytes": 4 * total, "int8_bytes": total})
    return rows


def save_int_model(path: str | Path, model: PSNN, record: dict[str, Any], info: dict[str, Any]) -> None:
    """Write an integer model (``kind = "int8"``) with its quantization record and provenance."""
    import torch

    blob = {
        "kind": "int8",
        "config": model.cfg.to_dict(),
        "state_dict": model.state_dict(),
        "quantization": record,
    }
    torch.save(blob | info, path)


def build_parser() -> argparse.ArgumentParser:
    """The ``s2gesture quantize`` argument parser."""
    p = argparse.ArgumentParser(prog="s2gesture quantize", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="float model.pt from `s2gesture train`")
    p.add_argument("--method", choices=("ptq", "qat"), default="ptq")
    p.add_argument("--percentile", type=float, default=100.0, help=f"PTQ: percentile of |W| mapped to the largest weight ({SPINNAKER2.weight_max})")
    p.add_argument("--out", required=True, help="output .pt (integer model)")
    p.add_argument("--data", help="QAT: dataset root (tonic layout or the IBM raw release)")
    p.add_argument("--epochs", type=int, default=3, help="QAT fine-tuning epochs")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--window", type=int, default=300)
    p.add_argument(
        "--semantics", choices=("snntorch", "chip"), default=None, help="QAT: default = the model's"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int)
    p.add_argument("--no-progress", action="store_true")
    from .train import add_data_arguments

    add_data_arguments(p)
    return p


def cli(argv: list[str] | None = None) -> int:
    """``s2gesture quantize``."""
    args = build_parser().parse_args(argv)
    from s2gesture.daemon.errors import ConfigError, ModelCardError

    from .train import load_model_file, setup_torch

    setup_torch(args.seed, 2)
    model, blob = load_model_file(args.model)
    if blob.get("kind") != "float":
        msg = (
            f"{args.model} is a {blob.get('kind')!r} model; quantize a float model.pt from `s2gesture train`"
        )
        raise ModelCardError(msg)
    semantics = args.semantics or blob.get("semantics", "snntorch")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.method == "ptq":
        qmodel, record = quantize_ptq(model, args.percentile)
    else:
        if not args.data:
            msg = "QAT fine-tunes on data: pass --data ROOT (the training set's tonic-layout root)"
            raise ConfigError(msg)
        from s2gesture.daemon.preprocess import PreprocessSpec

        from .train import load_splits

        train, test = load_splits(args, PreprocessSpec(sensor_size=(128, 128)), limit=args.limit)
        qmodel, record = quantize_qat(
            model,
            train,
            test,
            out.parent / (out.stem + "_qat"),
            epochs=args.epochs,
            lr=args.lr,
            semantics=semantics,
            seed=args.seed,
            window=args.window,
            progress=not args.no_progress,
        )
    info = {"training": blob.get("training", {}), "metrics": blob.get("metrics", {}), "semantics": semantics}
    save_int_model(out, qmodel, record, info)
    print(
        json.dumps({k: record[k] for k in ("scheme", "percentile", "layer_scales", "thresholds")}, indent=1)
    )
    return 0
