"""``s2gesture export``: an integer P-SNN -> one ``.nir`` file with its model card.

Our own exporter rather than ``snntorch.export_to_nir``: snnTorch's writes ``dt = 1e-4`` hard-coded, does
not record the reset mode, and with nir 1.0.8 its CNN export fails type inference (docs/model.md records
what we saw). Ours writes, in network order::

    Input(2,32,32) -> Conv2d -> LIF -> Conv2d -> LIF -> SumPool2d -> Conv2d -> LIF -> SumPool2d
        -> Flatten -> Affine -> LIF -> Affine -> LIF -> Output

Weights are the quantizer's integers (float arrays holding ints in ``+-spec.weight_max``, 127 for the
chip's 8 bits); each LIF has
``tau = dt / (1 - beta)``, ``r = tau / dt`` (so with the FORWARD integrator the chip's ``alpha_decay`` is
``beta`` and ``r_factor`` is 1), ``v_threshold`` in the weights' integer units and zero leak/reset. With the
card's ``ChipOptions(scale_weights=False, dt=1e-4, integrator="FORWARD", reset="SUBTRACT")`` the
chip's translation is therefore the identity on weights and thresholds. Affine biases are zero (the P-SNN
has none; ``i_offset`` stays 0). Conv2d biases are zero too.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from s2gesture.daemon.backends.chip import SPINNAKER2, SpiNNaker2Spec
from s2gesture.daemon.backends.options import ChipOptions
from s2gesture.daemon.card import GESTURE_CLASSES, InputSpec, Model, ModelCard, write_model
from s2gesture.daemon.nirnodes import leaky_lif

if TYPE_CHECKING:
    from .network import PSNN

#: the card's conversion record for our graphs (the identity translation)
IDENTITY_CONVERSION = ChipOptions(
    dt=1e-4,
    integrator="FORWARD",
    reset="SUBTRACT",
    conn_delay=0,
    scale_weights=False,
    weight_scale_percentile=100.0,
)



def to_nir_graph(
    model: PSNN, *, dt: float = 1e-4, check_integer: bool = True, spec: SpiNNaker2Spec = SPINNAKER2
) -> Any:
    """The NIR graph of a P-SNN (integer weights within ``spec``'s range expected unless ``check_integer`` is False)."""
    import nir

    cfg = model.cfg
    nodes: dict[str, Any] = {
        "input": nir.Input(input_type={"input": np.array([cfg.in_channels, *cfg.input_size])})
    }
    edges: list[tuple[str, str]] = []
    prev = "input"
    lif_index = 0
    for stage in model.stages:
        if stage.kind in ("conv", "linear"):
            w = model.effective_weight(stage.name).detach().numpy().astype(np.float32)
            wmax = spec.weight_max
            if check_integer and (not np.array_equal(w, np.rint(w)) or np.abs(w).max() > wmax):
                msg = (
                    f"export: layer {stage.name} has non-integer or out-of-range weights (max |w| "
                    f"{np.abs(w).max():.4g}); quantize first with `s2gesture quantize` "
                    f"({spec.weight_bits}-bit integers in [-{wmax}, {wmax}])"
                )
                raise ValueError(msg)
            if stage.kind == "conv":
                p = stage.params
                node = nir.Conv2d(
                    input_shape=tuple(p["in_hw"]),
                    weight=w,
                    stride=p["s"],
                    padding=p["p"],
                    dilation=1,
                    groups=1,
                    bias=np.zeros(w.shape[0], dtype=np.float32),
                )
            else:
                node = nir.Affine(weight=w, bias=np.zeros(w.shape[0], dtype=np.float32))
        elif stage.kind == "lif":
            thr = float(model.thresholds[lif_index].detach())
            beta = model.lif_beta(lif_index)
            lif_index += 1
            per_channel = beta if isinstance(beta, float) else beta.detach().cpu().numpy().reshape(-1)
            node = leaky_lif(stage.shape, per_channel, thr, dt)
        elif stage.kind == "sumpool":
            k = stage.params["k"]
            node = nir.SumPool2d(
                kernel_size=np.array([k, k]), stride=np.array([k, k]), padding=np.array([0, 0])
            )
        elif stage.kind == "flatten":
            node = nir.Flatten(
                input_type={"input": np.array(stage.params["in_shape"])}, start_dim=0, end_dim=-1
            )
        else:  # pragma: no cover - plan_stages only makes the kinds above
            msg = f"export: unknown stage kind {stage.kind!r}"
            raise ValueError(msg)
        nodes[stage.name] = node
        edges.append((prev, stage.name))
        prev = stage.name
    nodes["output"] = nir.Output(output_type={"output": np.array([cfg.n_classes])})
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges)


def make_card(
    name: str,
    quantization: dict[str, Any],
    *,
    semantics: str,
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    input_spec: InputSpec | None = None,
    latency_ticks: int = 5,
    classes: tuple[str, ...] | None = None,
    tau_ticks: tuple[tuple[float, float], ...] | None = None,
) -> ModelCard:
    """The model card of an exported P-SNN (``classes``: in output order; default the 11 DVS Gesture classes)."""
    return ModelCard(
        name=name,
        classes=tuple(classes) if classes is not None else GESTURE_CLASSES,
        input=input_spec or InputSpec(),
        conversion=IDENTITY_CONVERSION,
        quantization=quantization,
        semantics={
            "trained_for": semantics,
            "reset": "subtract",
            "reset_timing": "same tick" if semantics == "chip" else "next step (snnTorch reset_delay)",
            "latency_ticks_per_projection": 1 if semantics == "chip" else 0,
            "chip_latency_ticks": latency_ticks,
            **({"beta": 0.93} if tau_ticks is None else {
                "tau_ticks_per_layer": [list(p) for p in tau_ticks],
                "tau_spread": "geometric over each layer's channels, beta = 1 - 1/tau",
            }),
            "readout": "class = most output spikes",
        },
        training=training or {},
        metrics=metrics or {},
    )


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def export_model(
    model: PSNN, path: str | Path, card: ModelCard, *, dt: float | None = None, spec: SpiNNaker2Spec = SPINNAKER2
) -> Model:
    """Write ``model`` with ``card`` to ``path`` (``dt`` defaults to the card's conversion ``dt``)."""
    graph = to_nir_graph(model, dt=dt if dt is not None else card.conversion.dt, spec=spec)
    clean = ModelCard.from_dict(_jsonable(card.to_dict()), source="exported card")
    return write_model(path, graph, clean)


def build_parser() -> argparse.ArgumentParser:
    """The ``s2gesture export`` argument parser."""
    p = argparse.ArgumentParser(prog="s2gesture export", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="integer model .pt from `s2gesture quantize`")
    p.add_argument("--out", required=True, help="output .nir")
    p.add_argument("--name", help="model name in the card (default: the output file's stem)")
    p.add_argument(
        "--metrics", help="JSON file of measured metrics to put in the card (e.g. an evaluation report)"
    )
    return p


def cli(argv: list[str] | None = None) -> int:
    """``s2gesture export``."""
    import json

    args = build_parser().parse_args(argv)
    from s2gesture.daemon.errors import ModelCardError

    from .train import load_model_file

    model, blob = load_model_file(args.model)
    if blob.get("kind") != "int8":
        msg = (
            f"{args.model} is a {blob.get('kind')!r} model; export an integer model from `s2gesture quantize`"
        )
        raise ModelCardError(msg)
    metrics = dict(blob.get("metrics", {}))
    if args.metrics:
        try:
            metrics |= json.loads(Path(args.metrics).read_text())
        except json.JSONDecodeError as exc:
            msg = f"--metrics {args.metrics}: expected a JSON object, found invalid JSON ({exc}); pass a report.json"
            raise ModelCardError(msg) from exc
    card = make_card(
        args.name or Path(args.out).stem,
        blob["quantization"],
        semantics=blob.get("semantics", "snntorch"),
        training=blob.get("training", {}),
        metrics=metrics,
        latency_ticks=model.n_projections,
        tau_ticks=model.cfg.tau_ticks,
    )
    result = export_model(model, args.out, card)
    print(f"wrote {result.path} (graph hash {result.hash}, {len(result.graph.nodes)} nodes)")
    return 0


def psnn_from_nir(graph: Any, dt: float = IDENTITY_CONVERSION.dt) -> PSNN:
    """Rebuild the torch P-SNN (integer weights, thresholds, decays) from a graph written by :func:`to_nir_graph`.

    ``dt``: the conversion's time step (the card's), which turns the graph's ``tau`` into the chip's decay.
    """
    import torch

    from .network import PSNN, PSNNConfig

    nodes = graph.nodes
    missing = [n for n in ("conv1", "conv2", "conv3", "fc1", "fc2", "lif1", "lif5") if n not in nodes]
    if missing:
        msg = f"graph is not a P-SNN export: nodes {missing} are missing (found {sorted(nodes)})"
        raise ValueError(msg)
    shape = tuple(int(v) for v in np.asarray(nodes["input"].input_type["input"]))
    # tau = dt / (1 - beta) and r = tau / dt, so beta = 1 - 1/r whatever dt is
    lif_names = ["lif1", "lif2", "lif3", "lif4", "lif5"]
    r_per_channel = [np.asarray(nodes[n].r, dtype=np.float64).reshape(np.shape(nodes[n].r)[0], -1)[:, 0]
                     for n in lif_names]  # fmt: skip
    uniform = all(np.all(r == r_per_channel[0][0]) for r in r_per_channel)
    beta = 1.0 - 1.0 / float(r_per_channel[0][0])
    # a heterogeneous model's spread is recovered from its shortest and longest time constant per layer
    tau_ticks = None if uniform else tuple((round(float(r[0]), 4), round(float(r[-1]), 4)) for r in r_per_channel)
    cfg = PSNNConfig(
        in_channels=shape[0],
        input_size=(shape[1], shape[2]),
        channels=tuple(int(nodes[n].weight.shape[0]) for n in ("conv1", "conv2", "conv3")),
        hidden=int(nodes["fc1"].weight.shape[0]),
        n_classes=int(nodes["fc2"].weight.shape[0]),
        beta=round(beta, 6) if uniform else 0.93,
        tau_ticks=tau_ticks,
    )
    model = PSNN(cfg)
    if not uniform:
        # the decays the chip will use (1 - dt/tau, float32), so the rebuilt model runs the graph's arithmetic
        for i, name in enumerate(lif_names):
            tau = np.asarray(nodes[name].tau, dtype=np.float32)
            chip = (1 - dt / tau).reshape(tau.shape[0], -1)
            if not np.all(chip == chip[:, :1]):
                msg = f"graph's {name} has different time constants within one channel; not a P-SNN export"
                raise ValueError(msg)
            buffer = model.lif_beta(i)
            assert isinstance(buffer, torch.Tensor)  # tau_ticks is set, so every layer has per-channel decays
            buffer.copy_(torch.from_numpy(chip[:, 0].copy()).reshape(buffer.shape))
    with torch.no_grad():
        for name in model.weights:
            model.weights[name].weight.copy_(
                torch.from_numpy(np.asarray(nodes[name].weight, dtype=np.float32))
            )
        for i, name in enumerate(s.name for s in model.stages if s.kind == "lif"):
            model.thresholds[i] = float(np.asarray(nodes[name].v_threshold).reshape(-1)[0])
    model.eval()
    return model
