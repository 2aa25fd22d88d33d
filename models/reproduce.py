"""``s2gesture reproduce --data DIR --out RUN``: the paper's pipeline on your DVS128 Gesture copy, one command.

Stages (each writes its output under RUN and is skipped when that output is there, so an interrupted run
continues where it stopped; training resumes from its last epoch's checkpoint):

1. **bin**: the train and test splits through the daemon's preprocessing into the packed cache (``--cache``);
   tonic's layout or the IBM raw release with its official split files (``--strict`` / ``--skip-bad-rows``);
2. **float**: the paper's P-SNN (2x32x32 -> 16c5s2 -> 16c3 -> pool -> 8c3 -> pool -> 256 -> 11, LIF beta 0.93,
   threshold 1, reset by subtraction, 25,504 weights) trained in snnTorch semantics;
3. **ptq100**, **ptq99.9**: percentile PTQ of the float model (p = 100 is the paper's; 99.9 its variant);
4. **qat**: Brevitas 8-bit QAT fine-tuned from the float model, thresholds adapted;
5. **export**: each integer model to NIR with its model card;
6. **evaluate**: float vs int8 (snnTorch semantics) vs int8 on the emulator from the exported files;
7. **metrics**: NeuroBench's metrics (the ``neurobench`` package on the torch model, our counter on the
   emulator, cross-checked) and the energy estimate per gesture on SpiNNaker2 (a model, not a measurement);
8. **report**: ``RUN/report.md`` and ``RUN/report.json``, our figures beside the paper's with intervals.

The paper publishes the network, the quantization schemes and its results, not its training
hyper-parameters; where it is silent we use the settings of :data:`FULL` (docs/reproduce.md says why).
``--train-seeds K`` repeats stages 2-7 for K training seeds and averages them (a single test recording is
0.38 pp of the official test set: average over seeds before calling a difference real). ``--quick`` runs
every stage at smoke-test size (minutes on 2 cores); its numbers say nothing about the paper.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: the paper's figures (Arfa et al. 2025, MODEL.md): float, on chip, drop
PAPER = {
    "float_ptq_model_pct": 95.07,
    "ptq100_chip_pct": 94.0,
    "ptq_drop_pp": 1.07,
    "float_qat_model_pct": 94.69,
    "qat_chip_pct": 94.13,
    "qat_drop_pp": 0.56,
    "test_recordings": 264,
}


@dataclass(frozen=True)
class Settings:
    """Sizes and hyper-parameters of one reproduction (recorded in the report)."""

    epochs: int = 30
    qat_epochs: int = 3
    batch_size: int = 16
    lr: float = 5e-3  # measured on the synthetic set (pretrained_recipe.LR): 1e-2 kills the network, 3e-3 learns slower
    window: int = 300  # training window (ticks); evaluation uses the chip's run, SPINNAKER2.run_ticks
    loss: str = "mse_count"
    eval_seeds: tuple[int, ...] = (0, 1, 2)
    train_limit: int | None = None
    test_limit: int | None = None
    metrics_windows: int = 32  # test windows counted for NeuroBench's metrics and the energy estimate


#: the full-size run (paper-silent choices: Adam, cosine schedule, count MSE loss, 300-tick windows)
FULL = Settings()
#: every stage at smoke-test size
QUICK = Settings(epochs=1, qat_epochs=1, batch_size=8, window=60, eval_seeds=(0, 1, 2), train_limit=22, test_limit=8,
                 metrics_windows=2)  # fmt: skip

VARIANTS = ("ptq100", "ptq99.9", "qat")
STAGES = ("bin", "float", *VARIANTS, "export", "evaluate", "metrics", "report")


def _say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _fmt_s(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else (f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h")


def wilson(k: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of an accuracy of ``k`` correct out of ``n`` (in %)."""
    if n <= 0:
        return (math.nan, math.nan)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (100 * (centre - half), 100 * (centre + half))


def paired_drop(base: list[bool], other: list[bool], z: float = 1.96) -> dict[str, float]:
    """Drop (pp) of ``other`` against ``base`` on the same recordings, with a 95 % paired normal interval."""
    import numpy as np

    d = np.asarray(base, dtype=float) - np.asarray(other, dtype=float)
    n = len(d)
    mean = 100 * float(d.mean()) if n else math.nan
    half = 100 * z * float(d.std(ddof=1)) / math.sqrt(n) if n > 1 else math.nan
    return {"drop_pp": mean, "low": mean - half, "high": mean + half}


class Eta:
    """Stage time estimates from a measured training step and emulator run, refined as stages finish."""

    def __init__(self, settings: Settings, n_train: int, n_test: int, step_s: float, emu_s: float, torch_s: float,
                 workers: int) -> None:  # fmt: skip
        steps = math.ceil(n_train / settings.batch_size)
        val = n_test * torch_s / 2  # first-window validation each epoch: 300 of the 600 ticks torch_s measured
        k = 1 + len(settings.eval_seeds)
        self.stage = {
            "float": settings.epochs * (steps * step_s + val),
            "ptq100": 1.0,
            "ptq99.9": 1.0,
            # Brevitas fake quantization: measured about 1.5x a float step on this model
            "qat": settings.qat_epochs * (steps * step_s * 1.5 + val),
            "export": 3.0,
            # emulator: k windows + ~2x the recording in daemon chunks per test recording and variant, on `workers`;
            # torch: float and 3 int8 rows of k windows plus the float model's full recordings
            "evaluate": len(VARIANTS) * n_test * (k + 2) * emu_s / workers + (1 + len(VARIANTS)) * n_test * (k + 2) * torch_s,
            "metrics": len(VARIANTS) * settings.metrics_windows * (emu_s * 1.5 + torch_s * 2),
            "report": 2.0,
        }

    def total(self, seeds: int) -> float:
        return seeds * sum(v for k, v in self.stage.items() if k != "report") + self.stage["report"]


def calibrate(train: Any, test: Any, settings: Settings, device: str) -> tuple[float, float, float]:
    """Seconds of one training step, one emulator run and one torch window (each measured once, here)."""
    import numpy as np
    import torch

    from s2gesture.daemon.backends import get_backend, options_from_card

    from .evaluate import windows_at
    from .export import make_card, to_nir_graph
    from .network import PSNN, PSNNConfig
    from .quantize import quantize_ptq
    from .train import RUN_TICKS, TrainConfig, loss_fn, sample_batch, setup_torch

    cfg = TrainConfig(batch_size=settings.batch_size, window=settings.window, device=device)
    setup_torch(0, cfg.threads)  # the thread count training uses
    model = PSNN(PSNNConfig()).to(device)
    rng = np.random.default_rng(0)
    idx = np.arange(min(settings.batch_size, len(train)))
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    times = []
    for _ in range(3):  # the first step pays one-off costs; the quicker of the next two is the estimate
        t0 = time.perf_counter()
        xb, yb = sample_batch(train, idx, rng, cfg, augment=True)
        out = model(torch.from_numpy(xb).to(device).float(), "snntorch")
        loss = loss_fn(out, torch.from_numpy(yb).to(device), cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    step_s = min(times[1:]) * settings.batch_size / max(1, len(idx))  # a full batch when the set is smaller
    model = model.cpu()
    x = windows_at(test.subset([0]), np.zeros(1, dtype=np.int64), RUN_TICKS)
    t0 = time.perf_counter()
    with torch.no_grad():
        model(torch.from_numpy(x).float(), "snntorch")
    torch_s = time.perf_counter() - t0
    q, record = quantize_ptq(model, 100.0)
    backend = get_backend("emulator", **options_from_card(make_card("calibration", record, semantics="snntorch")))
    backend.load(to_nir_graph(q))
    try:
        backend.run(np.ascontiguousarray(x[:, 0]))  # compiles
        t0 = time.perf_counter()
        backend.run(np.ascontiguousarray(x[:, 0]))
        emu_s = time.perf_counter() - t0
    finally:
        backend.close()
    return step_s, emu_s, torch_s


def run_seed(run: Path, seed: int, train: Any, test: Any, settings: Settings, spec: Any, *, device: str,
             workers: int | None, eta: Eta, progress: bool) -> dict[str, Any]:  # fmt: skip
    """Stages float .. metrics for one training seed under ``run/seedN``; returns its summary."""
    from .evaluate import evaluate, load_variant, workload_metrics
    from .export import export_model, make_card
    from .pretrained_recipe import quantize_stage, train_stage
    from .train import RUN_TICKS, TrainConfig, load_model_file, setup_torch

    base = run / f"seed{seed}"
    cfg = TrainConfig(epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr, window=settings.window,
                      loss=settings.loss, seed=seed, device=device)  # fmt: skip
    setup_torch(seed, cfg.threads)  # one thread: on 2 shared cores, 2 torch threads measured ~2x slower (model.md)
    timings: dict[str, float] = {}

    def stage(name: str, done: bool) -> bool:
        if done:
            _say(f"seed {seed}: {name}: done already, skipped")
            return False
        _say(f"seed {seed}: {name}: running (ETA ~{_fmt_s(eta.stage[name])})")
        return True

    def finished(name: str, t0: float) -> None:
        timings[name] = time.perf_counter() - t0
        _say(f"seed {seed}: {name}: done in {_fmt_s(timings[name])} (estimated {_fmt_s(eta.stage[name])})")

    if stage("float", (base / "float" / "model.pt").is_file()):
        t0 = time.perf_counter()
        train_stage(base / "float", train, test, cfg, spec, progress=progress)
        finished("float", t0)
    float_model, float_blob = load_model_file(base / "float" / "model.pt")
    jobs = {"ptq100": (float_model, float_blob, "ptq", 100.0), "ptq99.9": (float_model, float_blob, "ptq", 99.9),
            "qat": (float_model, float_blob, "qat", None)}  # fmt: skip
    for name, job in jobs.items():
        if stage(name, (base / "int8" / f"{name}.pt").is_file()):
            t0 = time.perf_counter()
            quantize_stage(base / "int8", name, job, train, test, cfg, qat_epochs=settings.qat_epochs, progress=progress)
            finished(name, t0)
    if stage("export", all((base / "export" / f"{n}.nir").is_file() for n in VARIANTS)):
        t0 = time.perf_counter()
        for name in VARIANTS:
            qm, blob = load_model_file(base / "int8" / f"{name}.pt")
            training = dict(blob.get("training", {})) | {"recipe": "s2gesture reproduce", "seed": seed}
            card = make_card(name, blob["quantization"], semantics=blob.get("semantics", "snntorch"), training=training,
                             latency_ticks=qm.n_projections)  # fmt: skip
            export_model(qm, base / "export" / f"{name}.nir", card)
        finished("export", t0)
    variants = [load_variant(base / "export" / f"{n}.nir", n) for n in VARIANTS]
    if stage("evaluate", (base / "eval" / "report.json").is_file()):
        t0 = time.perf_counter()
        from s2gesture.daemon.card import GESTURE_CLASSES

        from .evaluate import write_report

        report = evaluate(float_model, variants, test, seeds=settings.eval_seeds, window=RUN_TICKS,
                          ablations=("snntorch",), workers=workers, bar=progress, progress=lambda s: None)  # fmt: skip
        write_report(report, base / "eval", GESTURE_CLASSES)
        finished("evaluate", t0)
    report = json.loads((base / "eval" / "report.json").read_text())
    if stage("metrics", (base / "metrics.json").is_file()):
        t0 = time.perf_counter()
        metrics = workload_metrics(variants, test, settings.metrics_windows)
        # the model card carries its NeuroBench metrics and energy estimate: re-export with them (same graph)
        for v in variants:
            qm, blob = load_model_file(base / "int8" / f"{v.name}.pt")
            card_metrics = {"neurobench": metrics[v.name], "evaluation": _card_accuracy(report, v.name)}
            card = make_card(v.name, blob["quantization"], semantics=blob.get("semantics", "snntorch"),
                             training=dict(v.card.training), metrics=card_metrics, latency_ticks=qm.n_projections)  # fmt: skip
            export_model(qm, base / "export" / f"{v.name}.nir", card)
        (base / "metrics.json").write_text(json.dumps(metrics, indent=1))
        finished("metrics", t0)
    metrics = json.loads((base / "metrics.json").read_text())
    return {"seed": seed, "report": report, "metrics": metrics, "timings": timings}


def _card_accuracy(report: dict[str, Any], name: str) -> dict[str, Any]:
    """The evaluation figures of one variant for its model card."""
    rows = {r["name"]: r for r in report["rows"]}
    emu = rows[f"{name}: int8 on the emulator (chip)"]
    return {"test_recordings": report["n_test"], "emulator_first_window_acc": emu["first_window_acc"],
            "emulator_window_acc_mean": emu["window_acc"]["mean"], "emulator_full_recording_acc": emu["full_recording_acc"],
            "drop_pp_first_window": emu["drop_pp"]["first_window"]}  # fmt: skip


def summarize(seeds: list[dict[str, Any]], settings: Settings, data: dict[str, Any]) -> dict[str, Any]:
    """Our figures beside the paper's: per seed, mean over seeds, intervals."""
    import numpy as np

    per_seed = []
    for s in seeds:
        rows = {r["name"]: r for r in s["report"]["rows"]}
        labels = s["report"]["labels"]
        n = len(labels)
        base = s["report"]["rows"][0]
        base_ok = [p == t for p, t in zip(base["first_preds"], labels, strict=True)]
        entry: dict[str, Any] = {"seed": s["seed"], "n_test": n,
                                 "float": {"acc_pct": 100 * base["first_window_acc"],
                                           "interval_pct": wilson(sum(base_ok), n),
                                           "full_recording_pct": 100 * (base["full_recording_acc"] or 0.0)}}  # fmt: skip
        for v in VARIANTS:
            for kind, key in (("emulator", f"{v}: int8 on the emulator (chip)"),
                              ("snntorch", f"{v}: int8, snnTorch semantics (quantization alone)")):  # fmt: skip
                r = rows[key]
                ok = [p == t for p, t in zip(r["first_preds"], labels, strict=True)]
                entry[f"{v}/{kind}"] = {"acc_pct": 100 * r["first_window_acc"], "interval_pct": wilson(sum(ok), n),
                                        "drop": paired_drop(base_ok, ok),
                                        "random_windows_pct": 100 * r["window_acc"]["mean"],
                                        "full_recording_pct": None if r["full_recording_acc"] is None
                                        else 100 * r["full_recording_acc"]}  # fmt: skip
        per_seed.append(entry)

    def over(path: tuple[str, ...]) -> dict[str, float]:
        vals = []
        for e in per_seed:
            v: Any = e
            for p in path:
                v = v[p]
            vals.append(float(v))
        arr = np.asarray(vals)
        return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0, "seeds": len(arr)}

    m0 = seeds[0]["metrics"]
    headline = {
        "float_acc_pct": over(("float", "acc_pct")),
        "ptq100_chip_pct": over(("ptq100/emulator", "acc_pct")),
        "ptq_drop_pp": over(("ptq100/emulator", "drop", "drop_pp")),
        "ptq99.9_chip_pct": over(("ptq99.9/emulator", "acc_pct")),
        "qat_chip_pct": over(("qat/emulator", "acc_pct")),
        "qat_drop_pp": over(("qat/emulator", "drop", "drop_pp")),
    }
    return {"paper": PAPER, "ours": headline, "per_seed": per_seed, "settings": asdict(settings), "data": data,
            "metrics_seed0": m0, "timings": [s["timings"] for s in seeds]}  # fmt: skip


def markdown(summary: dict[str, Any]) -> str:
    """The side-by-side report."""
    from .mapping import PEERS

    o, p = summary["ours"], summary["paper"]
    n = summary["per_seed"][0]["n_test"]
    k = o["float_acc_pct"]["seeds"]

    def cell(key: str, unit: str = " %") -> str:
        v = o[key]
        return f"{v['mean']:.2f}{unit}" + (f" ± {v['std']:.2f}" if k > 1 else "")

    e0 = summary["per_seed"][0]
    lines = [
        "# Reproduction: P-SNN on DVS128 Gesture, float vs int8 vs the emulated chip",
        "",
        f"Data: {summary['data']['kind']} layout at `{summary['data']['root']}`: {summary['data']['n_train']} training, "
        f"{n} test recordings ({summary['data']['skipped_rows']} bad label rows skipped). One test recording = "
        f"{100 / max(1, n):.2f} pp. Accuracy = class of the first {summary['data']['window']} ticks (one chip run); "
        f"{k} training seed(s){' (mean ± std over seeds)' if k > 1 else ''}. Intervals: 95 % Wilson (accuracy) and "
        "95 % paired normal (drop, same recordings) of seed 0.",
        "",
        "| figure | paper | ours | seed 0, 95 % interval |",
        "|---|---|---|---|",
        f"| float accuracy | ~{p['float_ptq_model_pct']:.2f} % (PTQ model), {p['float_qat_model_pct']:.2f} % (QAT model) | "
        f"{cell('float_acc_pct')} | {e0['float']['interval_pct'][0]:.1f} .. {e0['float']['interval_pct'][1]:.1f} % |",
        f"| PTQ p=100, int8 on chip | ~{p['ptq100_chip_pct']:.2f} % | {cell('ptq100_chip_pct')} (emulator) | "
        f"{e0['ptq100/emulator']['interval_pct'][0]:.1f} .. {e0['ptq100/emulator']['interval_pct'][1]:.1f} % |",
        f"| PTQ drop | ~{p['ptq_drop_pp']:.2f} pp | {cell('ptq_drop_pp', ' pp')} | "
        f"{e0['ptq100/emulator']['drop']['low']:+.2f} .. {e0['ptq100/emulator']['drop']['high']:+.2f} pp |",
        f"| PTQ p=99.9, int8 on chip | - | {cell('ptq99.9_chip_pct')} (emulator) | "
        f"{e0['ptq99.9/emulator']['interval_pct'][0]:.1f} .. {e0['ptq99.9/emulator']['interval_pct'][1]:.1f} % |",
        f"| QAT, int8 on chip | **{p['qat_chip_pct']:.2f} %** | {cell('qat_chip_pct')} (emulator) | "
        f"{e0['qat/emulator']['interval_pct'][0]:.1f} .. {e0['qat/emulator']['interval_pct'][1]:.1f} % |",
        f"| QAT drop | ~{p['qat_drop_pp']:.2f} pp | {cell('qat_drop_pp', ' pp')} | "
        f"{e0['qat/emulator']['drop']['low']:+.2f} .. {e0['qat/emulator']['drop']['high']:+.2f} pp |",
        "",
        "A difference smaller than the interval is not a difference. The paper's test set is 264 recordings "
        "(0.38 pp each); its chip figures come from the board, ours from the bit-exact emulator.",
        "",
        "## Per model (seed 0)",
        "",
        "| model | first window | random windows (mean of seeds) | full recording (daemon chunks) | drop vs float (pp) |",
        "|---|---|---|---|---|",
        f"| float | {e0['float']['acc_pct']:.2f} % | - | {e0['float']['full_recording_pct']:.2f} % | - |",
    ]
    for v in VARIANTS:
        for kind in ("snntorch", "emulator"):
            r = e0[f"{v}/{kind}"]
            full = "-" if r["full_recording_pct"] is None else f"{r['full_recording_pct']:.2f} %"
            lines.append(f"| {v}, {'int8 snnTorch semantics' if kind == 'snntorch' else 'int8 on the emulator'} | "
                         f"{r['acc_pct']:.2f} % | {r['random_windows_pct']:.2f} % | {full} | {r['drop']['drop_pp']:+.2f} |")  # fmt: skip
    m = summary["metrics_seed0"]
    lines += ["", f"## NeuroBench metrics (seed 0, {m['windows']} test windows of {m['ticks']} ticks, per sample)", "",
              "| model | counter | Footprint (B) | ConnectionSparsity | ActivationSparsity | Effective MACs | Effective ACs | Dense |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for v in VARIANTS:
        for who in ("neurobench", "emulator"):
            mm = m[v].get(who, {})
            if "error" in mm or not mm:
                lines.append(f"| {v} | {who} | {mm.get('error', 'not computed')} | | | | | |")
                continue
            fp = mm.get("Footprint", mm.get("Footprint_int8_weights_bytes"))
            so = mm["SynapticOperations"]
            lines.append(f"| {v} | {'neurobench package (torch, chip semantics)' if who == 'neurobench' else 'our emulator counter'} | "
                         f"{fp} | {mm['ConnectionSparsity']:.4f} | {mm['ActivationSparsity']:.4f} | {so['Effective_MACs']:.4g} | "
                         f"{so['Effective_ACs']:.4g} | {so['Dense']:.4g} |")  # fmt: skip
    lines += ["", "NeuroBench's footprint is the torch model (float32 storage of the integer weights and thresholds); "
              "ours counts the int8 weights the chip stores. NeuroBench counts a sum-pooled input once per non-zero "
              "value (as a MAC, the input not being 0/1); the chip spends one event per source spike, so conv3 and fc1 "
              "show more ACs on our counter; conv1, conv2 and fc2 agree to a few events (docs/reproduce.md)."]  # fmt: skip
    en = m["qat"]["emulator"]["energy_per_sample"]
    tn = PEERS["TrueNorth"]
    lines += ["", "## Energy per gesture on SpiNNaker2 (a model, not a measurement)", "",
              f"QAT model, one {m['ticks']}-tick run: **{1e3 * en['energy_j']:.3g} mJ** (range {1e3 * en['energy_j_low']:.3g} .. "
              f"{1e3 * en['energy_j_high']:.3g} mJ): dynamic {1e3 * en['dynamic_j']:.3g} mJ for {en['inputs']['synaptic_events']:.3g} "
              f"synaptic events and {en['inputs']['neuron_updates']:.3g} neuron updates, baseline {1e3 * en['baseline_j']:.3g} mJ "
              f"for {en['pes']} PEs over {en['ticks']:.0f} ms. TrueNorth (published): <= {1e3 * tn['energy_j_max']:.3g} mJ per "
              f"classification ({tn['source']}).", "", "| figure | value | source | note |", "|---|---|---|---|"]  # fmt: skip
    lines += [f"| {name} | {f['value']:g} | {f['source']} | {f['note']} |" for name, f in en["facts"].items()]
    s = summary["settings"]
    lines += ["", "## Settings (the paper is silent on these; our choices)", "",
              f"Adam, cosine schedule, loss `{s['loss']}`, lr {s['lr']}, batch {s['batch_size']}, {s['epochs']} epochs of random "
              f"{s['window']}-tick windows (mirror + shift augmentation), data-driven init; QAT {s['qat_epochs']} epochs at lr/6; "
              f"evaluation window offsets seeds {s['eval_seeds']}."]  # fmt: skip
    return "\n".join(lines) + "\n"


def reproduce(data: Path, run: Path, *, quick: bool = False, device: str = "cpu", cache: str | None = None,
              strict: bool = True, train_seeds: int = 1, workers: int | None = None, progress: bool = True,
              settings: Settings | None = None) -> dict[str, Any]:  # fmt: skip
    """Every stage (see the module docstring); returns the summary written to ``run/report.json``."""
    from s2gesture.daemon.preprocess import PreprocessSpec

    from .binned import dataset_kind, load_split
    from .evaluate import default_workers
    from .train import RUN_TICKS, resolve_device

    t_start = time.perf_counter()
    settings = settings or (QUICK if quick else FULL)
    device = resolve_device(device)
    kind = dataset_kind(data)
    run.mkdir(parents=True, exist_ok=True)
    spec = PreprocessSpec(sensor_size=(128, 128))
    _say(f"bin: {kind} layout at {data} -> packed cache (built once)")
    train = load_split(data, "train", spec, cache_dir=cache, limit=settings.train_limit, strict=strict, progress=progress)
    test = load_split(data, "test", spec, cache_dir=cache, limit=settings.test_limit, strict=strict, progress=progress)
    skipped = train.skipped_rows + test.skipped_rows
    if skipped:
        _say(f"bin: skipped {skipped} bad label rows (--skip-bad-rows)")
    n_workers = default_workers() if workers is None else workers
    step_s, emu_s, torch_s = calibrate(train, test, settings, device)
    eta = Eta(settings, len(train), len(test), step_s, emu_s, torch_s, n_workers)
    _say(f"plan: {len(train)} train / {len(test)} test recordings, {train_seeds} training seed(s), device {device}, "
         f"{n_workers} evaluation worker(s); measured: train step {step_s:.2f} s, emulator run {emu_s * 1e3:.0f} ms, "
         f"torch window {torch_s * 1e3:.0f} ms")  # fmt: skip
    _say("ETA per seed: " + ", ".join(f"{k} ~{_fmt_s(v)}" for k, v in eta.stage.items() if k != "report")
         + f"; total ~{_fmt_s(eta.total(train_seeds))} (stages already on disk are skipped)")  # fmt: skip
    seeds = [run_seed(run, s, train, test, settings, spec, device=device, workers=workers, eta=eta, progress=progress)
             for s in range(train_seeds)]  # fmt: skip
    data_info = {"root": str(data), "kind": kind, "n_train": len(train), "n_test": len(test), "skipped_rows": skipped,
                 "window": RUN_TICKS, "train_summary": train.summary(), "test_summary": test.summary()}  # fmt: skip
    summary = summarize(seeds, settings, data_info) | {"quick": quick, "device": device, "wall_s": time.perf_counter() - t_start}
    (run / "report.json").write_text(json.dumps(summary, indent=1, default=str))
    (run / "report.md").write_text(markdown(summary))
    _say(f"report: {run / 'report.md'} (wall {_fmt_s(summary['wall_s'])})")
    return summary


def build_parser() -> argparse.ArgumentParser:
    """The ``s2gesture reproduce`` argument parser."""
    from .train import add_data_arguments

    p = argparse.ArgumentParser(prog="s2gesture reproduce", description=__doc__.split("\n\n")[0],
                                epilog="Stages: " + ", ".join(STAGES) + ". See docs/reproduce.md.")  # fmt: skip
    p.add_argument("--data", required=True, help="DVS128 Gesture: tonic's layout or the IBM raw release (DvsGesture/ with "
                   "trials_to_train.txt / trials_to_test.txt, read as the official split)")  # fmt: skip
    p.add_argument("--out", required=True, help="run folder: every stage's output, report.md, report.json")
    p.add_argument("--quick", action="store_true", help="every stage at smoke-test size (minutes on 2 cores; numbers mean nothing)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu", help="training device (default cpu; the emulator is CPU)")
    p.add_argument("--train-seeds", type=int, default=1, help="training seeds to average (default 1)")
    p.add_argument("--workers", type=int, default=None, help="evaluation processes (default: every core)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (stage lines and ETAs still print)")
    add_data_arguments(p)
    return p


def cli(argv: list[str] | None = None) -> int:
    """``s2gesture reproduce``."""
    args = build_parser().parse_args(argv)
    if args.train_seeds < 1:
        print("s2gesture reproduce: error: --train-seeds must be >= 1", file=sys.stderr)
        return 2
    from .binned import dataset_kind

    dataset_kind(args.data)  # a folder of neither layout is refused before torch is imported
    summary = reproduce(Path(args.data), Path(args.out), quick=args.quick, device=args.device, cache=args.cache,
                        strict=args.strict, train_seeds=args.train_seeds, workers=args.workers,
                        progress=not args.no_progress)  # fmt: skip
    o = summary["ours"]
    print(f"float {o['float_acc_pct']['mean']:.2f} %, PTQ on the emulator {o['ptq100_chip_pct']['mean']:.2f} % "
          f"(drop {o['ptq_drop_pp']['mean']:+.2f} pp), QAT {o['qat_chip_pct']['mean']:.2f} % (drop {o['qat_drop_pp']['mean']:+.2f} pp); "
          f"paper: 95.07 / 94.0 / 94.13 %; report {Path(args.out) / 'report.md'}")  # fmt: skip
    return 0


__all__ = ["FULL", "PAPER", "QUICK", "Settings", "reproduce"]
