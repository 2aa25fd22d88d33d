"""``s2gesture train``: train the P-SNN on binned recordings (snnTorch or chip semantics).

Data: any tonic-layout dataset (DVS128 Gesture or ``s2gesture synth`` output) through the daemon's own
preprocessing (:mod:`s2gesture.models.binned`, cached). Each epoch draws one random window of at most
``--window`` ticks (at most the chip's run, ``SPINNAKER2.run_ticks``) from every training recording, mirrors half of them
left-right (with the label permutation of MODEL.md) and shifts them by a few pixels. Loss: cross-entropy on
output spike counts times ``logit_scale``. Adam with a cosine schedule. Deterministic for a seed: torch and
numpy generators seeded per epoch, deterministic torch algorithms, a fixed thread count.

Outputs in ``--out``: ``checkpoint.pt`` (every epoch, ``--resume`` continues from it), ``model.pt`` (the
float model: config, weights, provenance, metrics), ``metrics.json`` and ``curve.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from s2gesture.daemon.backends.chip import SPINNAKER2
from s2gesture.daemon.card import CLASSES_WITH_NONE, NONE_CLASS

from .binned import MIRROR_LABELS, BinnedSet

#: ticks of one chip run (the chip record's ``run_ticks``): the longest window training and evaluation use
RUN_TICKS = SPINNAKER2.run_ticks

if TYPE_CHECKING:
    import torch

    from .network import PSNN


@dataclass
class TrainConfig:
    """Hyperparameters of one training run (recorded in the model's provenance)."""

    epochs: int = 20
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 0.0
    window: int = 300  # ticks per training window (<= RUN_TICKS, the chip's run)
    #: shortest window: each batch draws its length in [window_min, window] (0: always ``window``), so the
    #: network learns to answer from short windows too (the daemon decides from 100-tick windows)
    window_min: int = 0
    eval_window: int = 300  # ticks of the first window used for validation accuracy (per epoch)
    loss: str = "mse_count"  # a key of LOSSES
    logit_scale: float = 0.2  # "ce": cross-entropy logits = logit_scale * output spike counts
    rate_correct: float = 0.5  # "mse_count": target firing rate of the correct output neuron (spikes/tick)
    rate_incorrect: float = 0.05  # "mse_count": target rate of the others (never zero, so none falls silent)
    #: loss weight per class label (empty: all 1); e.g. a heavier "none" class makes a gesture answer for a
    #: distractor cost more than the reverse (each batch's loss is the weighted mean over its samples)
    class_weight: tuple[float, ...] = ()
    mirror_p: float = 0.5  # probability of a left-right mirror (labels permuted)
    shift_px: int = 2  # random translation of up to +-shift_px pixels
    #: camera-variation augmentations (0 disables each): spikes dropped with a probability drawn in
    #: [0, thin_max] per polarity (event thinning and ON/OFF imbalance of another camera's biases)...
    thin_max: float = 0.0
    #: ...spikes copied to a random neighbour pixel with a probability in [0, dense_max] (a denser camera)...
    dense_max: float = 0.0
    #: ...and a zoom by a factor in [1 - scale_max, 1 + scale_max] about the centre (subject size)
    scale_max: float = 0.0
    init_rate: float = 0.05  # data-driven init: each layer scaled to fire at this rate (0: keep Kaiming init)
    semantics: str = "snntorch"
    seed: int = 0
    threads: int = 1  # measured: on 2 shared cores one thread is ~2x faster than two (no oversubscription)
    device: str = "cpu"  # "cpu", "cuda" or "auto" (cuda when torch sees one); see resolve_device
    amp: bool = False  # bf16 autocast of the forward pass on cuda only (weights stay float32; see docs/model.md)
    prefetch: int = 2  # batches prepared ahead on a background thread (0: on the training thread)
    extra: dict[str, Any] = field(default_factory=dict)


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when torch sees a GPU, else ``"cpu"``; ``"cuda"`` without one is refused."""
    import torch

    from s2gesture.daemon.errors import ConfigError

    if device not in ("auto", "cpu", "cuda"):
        msg = f"--device: expected auto, cpu or cuda, found {device!r}"
        raise ConfigError(msg)
    has_cuda = bool(torch.cuda.is_available())
    if device == "cuda" and not has_cuda:
        msg = (
            f"--device cuda: expected a CUDA GPU, found none (torch {torch.__version__}, built "
            f"{'with' if torch.version.cuda else 'without'} CUDA); use --device cpu or auto"
        )
        raise ConfigError(msg)
    return "cuda" if device == "auto" and has_cuda else ("cpu" if device == "auto" else device)


def setup_torch(seed: int, threads: int) -> None:
    """Seed torch, pin the thread count and ask for deterministic kernels."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(max(1, threads))
    torch.use_deterministic_algorithms(True)


def crop_window(spikes: np.ndarray, start: int, window: int) -> np.ndarray:
    """Ticks ``[start, start+window)`` of a recording, zero-padded at the end when it is shorter."""
    out = spikes[start : start + window]
    if out.shape[0] < window:
        pad = np.zeros((window - out.shape[0], *spikes.shape[1:]), dtype=spikes.dtype)
        out = np.concatenate([out, pad])
    return out


def mirror(spikes: np.ndarray, label: int) -> tuple[np.ndarray, int]:
    """Mirror ``[T, C, H, W]`` left-right and permute the label accordingly."""
    return spikes[..., ::-1], MIRROR_LABELS[label]


def shift(spikes: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Translate ``[T, C, H, W]`` by (dx, dy) pixels, zeros entering (nothing wraps around)."""
    out = np.zeros_like(spikes)
    H, W = spikes.shape[-2:]
    ys, yd = (slice(0, H - dy), slice(dy, H)) if dy >= 0 else (slice(-dy, H), slice(0, H + dy))
    xs, xd = (slice(0, W - dx), slice(dx, W)) if dx >= 0 else (slice(-dx, W), slice(0, W + dx))
    out[..., yd, xd] = spikes[..., ys, xs]
    return out


def zoom(spikes: np.ndarray, factor: float) -> np.ndarray:
    """Scale ``[T, C, H, W]`` by ``factor`` about the centre (nearest neighbour; what leaves the view is lost)."""
    H, W = spikes.shape[-2:]
    ys = np.round((np.arange(H) - (H - 1) / 2) / factor + (H - 1) / 2).astype(np.int64)
    xs = np.round((np.arange(W) - (W - 1) / 2) / factor + (W - 1) / 2).astype(np.int64)
    out = spikes[..., np.clip(ys, 0, H - 1)[:, None], np.clip(xs, 0, W - 1)[None, :]]
    out[..., (ys < 0) | (ys >= H), :] = 0
    out[..., (xs < 0) | (xs >= W)] = 0
    return out


_NEIGHBOURS = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx, dy) != (0, 0)]


def camera_variation(win: np.ndarray, rng: np.random.Generator, cfg: TrainConfig) -> np.ndarray:
    """Thinning per polarity, densification into neighbours and zoom, as ``cfg`` allows (see TrainConfig)."""
    if cfg.scale_max:
        win = zoom(win, float(rng.uniform(1.0 - cfg.scale_max, 1.0 + cfg.scale_max)))
    if cfg.dense_max:
        # one of the 8 neighbours (never (0, 0), which would add nothing)
        dx, dy = _NEIGHBOURS[int(rng.integers(0, len(_NEIGHBOURS)))]
        extra = shift(win, dx, dy) & (rng.random(win.shape) < rng.uniform(0.0, cfg.dense_max))
        win = win | extra
    if cfg.thin_max:
        keep = rng.random(win.shape) >= rng.uniform(0.0, cfg.thin_max, size=(1, win.shape[1], 1, 1))
        win = win & keep
    return win


def sample_batch(
    data: BinnedSet, index: np.ndarray, rng: np.random.Generator, cfg: TrainConfig, *, augment: bool
) -> tuple[np.ndarray, np.ndarray]:
    """A training batch: spikes ``[T, B, C, H, W]`` (uint8) and labels ``[B]``."""
    xs, ys = [], []
    window = cfg.window
    if augment and 0 < cfg.window_min < cfg.window:
        window = int(rng.integers(cfg.window_min, cfg.window + 1))
    for i in index:
        rec, label = data.spikes[i], int(data.labels[i])
        start = int(rng.integers(0, max(1, rec.shape[0] - window + 1)))
        win = crop_window(rec, start, window)
        if augment:
            if rng.random() < cfg.mirror_p:
                win, label = mirror(win, label)
            if cfg.shift_px:
                dx, dy = (int(v) for v in rng.integers(-cfg.shift_px, cfg.shift_px + 1, size=2))
                win = shift(win, dx, dy)
            win = camera_variation(win, rng, cfg)
        xs.append(np.ascontiguousarray(win))
        ys.append(label)
    return np.stack(xs, axis=1), np.asarray(ys, dtype=np.int64)


def first_windows(data: BinnedSet, window: int) -> np.ndarray:
    """The first ``window`` ticks of every recording, ``[T, N, C, H, W]``."""
    return np.stack([crop_window(s, 0, window) for s in data.spikes], axis=1)


def predict_counts(
    model: PSNN, x: np.ndarray, semantics: str = "snntorch", *, batch_size: int = 32
) -> np.ndarray:
    """Output spike counts ``[N, n_classes]`` of windows ``x [T, N, C, H, W]`` (no gradient)."""
    import torch

    counts = []
    device = next(model.parameters()).device
    with torch.no_grad():
        for b in range(0, x.shape[1], batch_size):
            xb = torch.from_numpy(np.ascontiguousarray(x[:, b : b + batch_size])).to(device).float()
            counts.append(model(xb, semantics).sum(dim=0).cpu().numpy())
    n_out = model.cfg.n_classes
    return np.concatenate(counts) if counts else np.zeros((0, n_out))


def window_accuracy(model: PSNN, data: BinnedSet, window: int, semantics: str = "snntorch") -> float:
    """Accuracy on the first ``window`` ticks of each recording (class = most output spikes)."""
    if len(data) == 0:
        return float("nan")
    counts = predict_counts(model, first_windows(data, window), semantics)
    return float((counts.argmax(1) == data.labels).mean())


def _class_weights(out: torch.Tensor, cfg: TrainConfig) -> torch.Tensor | None:
    """``cfg.class_weight`` as a tensor beside ``out`` (None when every class weighs 1)."""
    import torch

    if not cfg.class_weight:
        return None
    if len(cfg.class_weight) != out.shape[-1]:
        msg = f"class_weight: expected one weight per output class ({out.shape[-1]}), found {len(cfg.class_weight)}"
        raise ValueError(msg)
    return torch.tensor(cfg.class_weight, dtype=out.dtype, device=out.device)


def _ce_loss(out: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    import torch.nn.functional as F  # noqa: N812

    return F.cross_entropy(out.sum(dim=0) * cfg.logit_scale, labels, weight=_class_weights(out, cfg))


def _mse_count_loss(out: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    import torch.nn.functional as F  # noqa: N812

    # like snntorch.functional.mse_count_loss: the wrong classes keep a small target rate, so a network
    # whose outputs all fall silent still gets a gradient pushing them back (cross-entropy on counts
    # can kill every output neuron early in training; measured on the toy task of tests/test_train.py)
    rate = out.mean(dim=0)
    target = torch_full_like(rate, cfg.rate_incorrect)
    target[torch_arange(len(labels)), labels] = cfg.rate_correct
    weight = _class_weights(out, cfg)
    if weight is None:
        return F.mse_loss(rate, target)
    w = weight[labels]  # the same weighted mean over samples as cross-entropy's ``weight``
    return (F.mse_loss(rate, target, reduction="none").mean(dim=1) * w).sum() / w.sum()


def torch_full_like(x: torch.Tensor, value: float) -> torch.Tensor:
    """``torch.full_like`` (imported lazily)."""
    import torch

    return torch.full_like(x, value)


def torch_arange(n: int) -> torch.Tensor:
    """``torch.arange`` (imported lazily)."""
    import torch

    return torch.arange(n)


#: training losses on output spikes ``[T, B, n]`` (class = most output spikes in every case)
LOSSES = {"ce": _ce_loss, "mse_count": _mse_count_loss}


def loss_fn(out: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """The configured loss on output spikes ``out [T, B, n]``."""
    if cfg.loss not in LOSSES:
        msg = f"unknown loss {cfg.loss!r}; expected one of {sorted(LOSSES)}"
        raise ValueError(msg)
    return LOSSES[cfg.loss](out, labels, cfg)


def train_model(
    model: PSNN,
    train: BinnedSet,
    val: BinnedSet | None,
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    params: list[Any] | None = None,
    stop_after: int | None = None,
    verbose: bool = True,
) -> dict[str, Any]:
    """Train ``model`` in place; checkpoint every epoch into ``out_dir``; return the history.

    ``stop_after`` ends the call after that many epochs (of ``cfg.epochs``) have run; ``resume`` continues.
    ``progress`` shows a bar per epoch; ``verbose`` prints one line per epoch.
    """
    import torch
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    setup_torch(cfg.seed, cfg.threads)
    device = resolve_device(cfg.device)
    if device == "cuda":
        # some CUDA kernels (scatter/index backward) have no deterministic variant: warn instead of failing
        torch.use_deterministic_algorithms(True, warn_only=True)
    model.to(device)
    # bf16 autocast only changes the forward arithmetic; the weights (and so the int8 export) stay float32
    amp = bool(cfg.amp and device == "cuda")
    opt = torch.optim.Adam(
        params if params is not None else model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.epochs))
    history: dict[str, list[float]] = {"loss": [], "train_acc": [], "val_acc": [], "epoch_s": []}
    start_epoch = 0
    ckpt_path = out_dir / "checkpoint.pt"
    if resume and ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, weights_only=False, map_location=device)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        history = ckpt["history"]
        start_epoch = int(ckpt["epoch"]) + 1
    n = len(train)
    last = cfg.epochs if stop_after is None else min(cfg.epochs, stop_after)
    for epoch in range(start_epoch, last):
        t0 = time.perf_counter()
        # a generator per epoch, so a resumed run draws the same windows as an uninterrupted one
        rng = np.random.default_rng([cfg.seed, epoch])
        torch.manual_seed(cfg.seed * 1000 + epoch)
        order = rng.permutation(n)
        model.train()
        losses, correct = [], 0
        batches = range(0, n, cfg.batch_size)
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=not progress)
        feed = prefetched(
            (functools.partial(sample_batch, train, order[b : b + cfg.batch_size], rng, cfg, augment=True) for b in batches),
            cfg.prefetch,
        )
        for b, (xb, yb) in zip(bar, feed, strict=True):
            x = torch.from_numpy(xb).to(device, non_blocking=True).float()
            y = torch.from_numpy(yb).to(device)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                out = model(x, cfg.semantics)
            loss = loss_fn(out.float(), y, cfg)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            correct += int((out.detach().sum(0).argmax(1) == y).sum())
            bar.set_postfix(loss=f"{np.mean(losses):.3f}", acc=f"{correct / min(n, b + len(yb)):.3f}")
        sched.step()
        model.eval()
        val_acc = (
            window_accuracy(model, val, cfg.eval_window, cfg.semantics) if val is not None else float("nan")
        )
        history["loss"].append(float(np.mean(losses)))
        history["train_acc"].append(correct / max(1, n))
        history["val_acc"].append(val_acc)
        history["epoch_s"].append(time.perf_counter() - t0)
        if verbose:
            print(
                f"epoch {epoch + 1}/{cfg.epochs}: loss {history['loss'][-1]:.4f} "
                f"train {history['train_acc'][-1]:.3f} val {val_acc:.3f} ({history['epoch_s'][-1]:.1f} s)",
                flush=True,
            )
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "history": history,
                "epoch": epoch,
                "config": asdict(cfg),
            },
            ckpt_path,
        )
    return history


def prefetched(jobs: Any, depth: int) -> Any:
    """Results of the callables ``jobs`` in order, computed ``depth`` ahead on one background thread.

    Batches are drawn from one random generator, so they are built one after the other, in order, on a
    single thread: the same batches as building them inline, while the training step runs (numpy's
    unpacking and copies release the GIL). ``depth`` 0 builds them inline.
    """
    if depth <= 0:
        for job in jobs:
            yield job()
        return
    import queue
    import threading

    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for job in jobs:
                if stop.is_set():
                    return
                q.put((True, job()))
        except BaseException as exc:  # handed to the training thread, which raises it
            q.put((False, exc))
            return
        q.put((True, done))

    worker = threading.Thread(target=produce, name="batch-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.05)


def save_float_model(path: str | Path, model: PSNN, info: dict[str, Any]) -> None:
    """Write a trained float model: config, weights, provenance."""
    import torch

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"kind": "float", "config": model.cfg.to_dict(), "state_dict": state, **info}, path)


def load_model_file(path: str | Path) -> tuple[PSNN, dict[str, Any]]:
    """Read a model written by :func:`save_float_model` (or the quantizer's ``.pt``) into a float-layer PSNN."""
    import torch

    from s2gesture.daemon.errors import ModelCardError

    from .network import PSNN, PSNNConfig

    path = Path(path)
    if not path.is_file():
        msg = f"model file {path} does not exist; train one with `s2gesture train --out DIR` (DIR/model.pt)"
        raise FileNotFoundError(msg)
    if path.suffix.lower() == ".nir":
        msg = (
            f"{path}: expected a torch model .pt (from `s2gesture train` or `s2gesture quantize`), found a NIR "
            "export; pass the .pt it was exported from (a .nir is what `evaluate --quantized`, `map` and the daemon take)"
        )
        raise ModelCardError(msg)
    try:
        blob = torch.load(path, weights_only=False, map_location="cpu")
    except Exception as exc:  # the unpickler raises many types (UnpicklingError, EOFError, RuntimeError, ...)
        msg = (
            f"{path}: expected a torch model .pt written by `s2gesture train` or `s2gesture quantize`, found a file "
            f"torch cannot read ({type(exc).__name__}: {' '.join(str(exc).split())[:160]}); re-create or re-copy it"
        )
        raise ModelCardError(msg) from exc
    if not isinstance(blob, dict) or not {"config", "state_dict"} <= set(blob):
        found = sorted(blob)[:8] if isinstance(blob, dict) else type(blob).__name__
        msg = (
            f"{path}: expected a model .pt with 'config' and 'state_dict' (from `s2gesture train` or "
            f"`s2gesture quantize`), found {found}; a training checkpoint.pt is not a model: use DIR/model.pt"
        )
        raise ModelCardError(msg)
    model = PSNN(PSNNConfig.from_dict(blob["config"]))
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as exc:
        msg = f"{path}: its weights do not match its config ({' '.join(str(exc).split())[:200]}); re-create the file"
        raise ModelCardError(msg) from exc
    model.eval()
    return model, blob


#: the y-axis label of each loss in the training curve
LOSS_LABELS = {"ce": "loss (cross-entropy on spike counts)", "mse_count": "loss (MSE of output rates vs targets)"}


def plot_curve(history: dict[str, list[float]], path: str | Path, title: str = "training", loss: str = "mse_count") -> None:
    """Loss and accuracy per epoch as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(1, len(history["loss"]) + 1)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.2))
    a1.plot(epochs, history["loss"], marker="o")
    a1.set(xlabel="epoch", ylabel=LOSS_LABELS.get(loss, f"loss ({loss})"), title=title)
    a1.set_ylim(bottom=0)  # both losses are >= 0
    a2.plot(epochs, history["train_acc"], marker="o", label="train (augmented windows)")
    a2.plot(epochs, history["val_acc"], marker="s", label="held-out users (first window)")
    a2.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
    a2.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    """The ``s2gesture train`` argument parser."""
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="s2gesture train", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="dataset root: tonic's layout (ROOT/DVSGesture/...) or the IBM raw "
                   "release (ROOT/DvsGesture/ with trials_to_train.txt / trials_to_test.txt: the official split)")  # fmt: skip
    p.add_argument(
        "--out", required=True, help="output folder (checkpoint.pt, model.pt, metrics.json, curve.png)"
    )
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--window", type=int, default=d.window, help=f"ticks per training window (<= {RUN_TICKS}, the chip's run)")
    p.add_argument("--window-min", type=int, default=d.window_min,
                   help="shortest window: each batch draws its length in [window-min, window] (0: always --window)")
    p.add_argument("--eval-window", type=int, default=d.eval_window)
    p.add_argument("--shift-px", type=int, default=d.shift_px, help="random translation of up to +-N pixels")
    p.add_argument("--scale-max", type=float, default=d.scale_max, help="random zoom by 1 +- this (0: off)")
    p.add_argument("--thin-max", type=float, default=d.thin_max, help="drop up to this fraction of spikes per polarity (0: off)")
    p.add_argument("--dense-max", type=float, default=d.dense_max, help="copy up to this fraction of spikes to a neighbour (0: off)")
    p.add_argument("--classes", type=int, default=None, help="output neurons (default: 12 when the data has label 11 "
                   "'none', else 11)")  # fmt: skip
    p.add_argument("--none-weight", type=float, default=1.0, metavar="W",
                   help="loss weight of the 'none' class (label 11) against 1 for each gesture: > 1 makes a gesture "
                   "answer for a distractor cost more (default 1)")  # fmt: skip
    p.add_argument("--logit-scale", type=float, default=d.logit_scale)
    p.add_argument("--loss", choices=sorted(LOSSES), default=d.loss)
    p.add_argument(
        "--init-rate", type=float, default=d.init_rate, help="target spikes/tick per layer at init (0: off)"
    )
    p.add_argument("--semantics", choices=("snntorch", "chip"), default=d.semantics)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument(
        "--threads", type=int, default=d.threads, help="torch threads (the machine is shared: <= 2)"
    )
    p.add_argument("--channels", type=int, nargs=3, default=(16, 16, 8), help="conv widths")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--slope", type=float, default=25.0, help="fast-sigmoid surrogate slope")
    p.add_argument(
        "--tau-ticks", type=_tau_ticks, default=None, metavar="LO:HI,...",
        help="membrane time constants in ticks per LIF layer, spread over its channels (5 pairs, e.g. "
        "8:40,8:80,10:150,10:200,14:14); default one beta (0.93) everywhere",
    )  # fmt: skip
    p.add_argument(
        "--rates",
        type=float,
        nargs=2,
        default=(d.rate_correct, d.rate_incorrect),
        help="mse_count target rates: correct, incorrect (spikes/tick)",
    )
    p.add_argument("--init", help="start from this model.pt (fine-tuning, e.g. into chip semantics)")
    p.add_argument("--limit", type=int, help="use only the first N recordings of each split")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default=d.device,
                   help="where training runs (default cpu; auto = cuda when torch sees a GPU)")  # fmt: skip
    p.add_argument("--amp", action="store_true", help="cuda only: bf16 autocast of the forward pass (float32 weights)")
    p.add_argument("--prefetch", type=int, default=d.prefetch, help="batches prepared ahead on a background thread (0: inline)")
    add_data_arguments(p)
    p.add_argument("--no-progress", action="store_true")
    return p


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """``--cache DIR`` and ``--strict`` / ``--skip-bad-rows``, shared by every command that reads a dataset."""
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="binned-data cache folder (default: $XDG_CACHE_HOME/s2gesture or ~/.cache/s2gesture; never the dataset)")  # fmt: skip
    rows = p.add_mutually_exclusive_group()
    rows.add_argument("--strict", dest="strict", action="store_true", default=True,
                      help="IBM raw release: stop at a bad label row, naming file and line (default)")  # fmt: skip
    rows.add_argument("--skip-bad-rows", dest="strict", action="store_false",
                      help="IBM raw release: skip bad label rows and say how many")  # fmt: skip


def load_splits(args: argparse.Namespace, spec: Any, *, limit: int | None = None) -> tuple[BinnedSet, BinnedSet]:
    """Train and test splits of ``args.data`` with ``args.cache`` / ``args.strict``; says how many rows were skipped."""
    from .binned import load_split

    progress = not getattr(args, "no_progress", False)
    sets = tuple(load_split(args.data, split, spec, cache_dir=args.cache, limit=limit, strict=args.strict,
                            progress=progress) for split in ("train", "test"))  # fmt: skip
    skipped = sum(s.skipped_rows for s in sets)
    if skipped:
        print(f"note: skipped {skipped} bad label rows (--skip-bad-rows)", flush=True)
    return sets[0], sets[1]


def run_training(args: argparse.Namespace) -> dict[str, Any]:
    """Load data, build or load the model, train, save everything; return the metrics."""
    from s2gesture.daemon.preprocess import PreprocessSpec

    from .network import PSNN, PSNNConfig

    cfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        window=args.window,
        window_min=args.window_min,
        eval_window=args.eval_window,
        shift_px=args.shift_px,
        scale_max=args.scale_max,
        thin_max=args.thin_max,
        dense_max=args.dense_max,
        logit_scale=args.logit_scale,
        loss=args.loss,
        rate_correct=args.rates[0],
        rate_incorrect=args.rates[1],
        init_rate=args.init_rate,
        semantics=args.semantics,
        seed=args.seed,
        threads=args.threads,
        device=args.device,
        amp=args.amp,
        prefetch=args.prefetch,
    )
    if cfg.window > RUN_TICKS:
        print(f"note: --window {cfg.window} is longer than the chip's {RUN_TICKS}-tick run")
    resolve_device(cfg.device)  # refuse --device cuda without a GPU before any data is read
    if args.none_weight != 1.0:  # likewise a weight <= 0, or one for a model that --classes says has no "none"
        none_weighted(args.classes or NONE_LABEL + 1, args.none_weight)
    setup_torch(cfg.seed, cfg.threads)
    spec = PreprocessSpec(sensor_size=(128, 128))
    train, test = load_splits(args, spec, limit=args.limit)
    if args.init:
        model, _ = load_model_file(args.init)
    else:
        n_classes = args.classes or (12 if int(np.max(train.labels)) >= 11 else 11)
        if int(np.max(train.labels)) >= n_classes:
            msg = f"--classes {n_classes}: the training data has label {int(np.max(train.labels))}; use --classes {int(np.max(train.labels)) + 1}"
            raise ValueError(msg)
        model = PSNN(PSNNConfig(channels=tuple(args.channels), hidden=args.hidden, slope=args.slope, n_classes=n_classes,
                                tau_ticks=args.tau_ticks))  # fmt: skip
        init_from_data_(model, train, cfg)
    cfg = dataclasses.replace(cfg, class_weight=none_weighted(model.cfg.n_classes, args.none_weight))
    out = Path(args.out)
    t0 = time.perf_counter()
    history = train_model(model, train, test, cfg, out, resume=args.resume, progress=not args.no_progress)
    metrics = finish_training(
        model, history, cfg, out, train, test, spec, time.perf_counter() - t0, init=args.init
    )
    return metrics


NONE_LABEL = CLASSES_WITH_NONE.index(NONE_CLASS)  # the distractor class of a 12-class model


def none_weighted(n_classes: int, none_weight: float) -> tuple[float, ...]:
    """``TrainConfig.class_weight`` for a "none" class (label 11) weighing ``none_weight``; () when it is 1."""
    if none_weight == 1.0:
        return ()
    if not none_weight > 0:
        msg = f"--none-weight: expected a weight > 0, found {none_weight:g}"
        raise ValueError(msg)
    if n_classes != NONE_LABEL + 1:
        msg = (f"--none-weight {none_weight:g}: the model has {n_classes} classes, no 'none' class (label {NONE_LABEL}); "
               f"train on data with distractor scenes (s2gesture synth --with-none) or leave --none-weight at 1")  # fmt: skip
        raise ValueError(msg)
    return (1.0,) * NONE_LABEL + (float(none_weight),)


def calibrate_init_(
    model: PSNN, x: np.ndarray, *, target_rate: float = 0.05, semantics: str = "snntorch", iters: int = 12
) -> list[float]:
    """Scale each weight layer in turn so its LIF layer fires at about ``target_rate`` spikes/tick on ``x``.

    A data-driven start (in the spirit of LSUV): with threshold 1 and sparse DVS input, the default
    initialisation leaves deep layers silent, and a silent spiking layer gets almost no surrogate gradient.
    ``x`` is a batch ``[T, B, C, H, W]``; returns the rate reached per LIF layer.
    """
    import torch

    xt = torch.from_numpy(np.ascontiguousarray(x)).float()
    names = [s.name for s in model.stages if s.kind == "lif"]
    rates = []
    with torch.no_grad():
        for layer_name, lif_name in zip(model.weights, names, strict=True):
            weight = model.weights[layer_name].weight
            lo, hi = 0.0, None
            gain = 1.0
            for _ in range(iters):
                out = model(xt, semantics, stop_at=lif_name)
                rate = float(out.mean())
                if abs(rate - target_rate) < 0.25 * target_rate:
                    break
                # bisection on a log scale: grow until the rate overshoots, then halve the bracket
                if rate < target_rate:
                    lo = gain
                    step = 2.0 if hi is None else (hi / gain) ** 0.5
                else:
                    hi = gain
                    step = 0.5 if lo == 0.0 else (lo / gain) ** 0.5
                weight.mul_(step)
                gain *= step
            rates.append(rate)
    return rates


def _tau_ticks(text: str) -> tuple[tuple[float, float], ...]:
    """``--tau-ticks`` "8:40,8:80,..." -> ((8.0, 40.0), (8.0, 80.0), ...), with a message that shows the form."""
    try:
        pairs = tuple((float(lo), float(hi)) for lo, hi in (p.split(":") for p in text.split(",")))
    except ValueError:
        msg = f"--tau-ticks {text!r}: expected LO:HI pairs separated by commas, one per LIF layer (e.g. 8:40,8:80,10:150,10:200,14:14)"
        raise argparse.ArgumentTypeError(msg) from None
    return pairs


def init_from_data_(model: PSNN, train: BinnedSet, cfg: TrainConfig, n: int = 8) -> list[float]:
    """:func:`calibrate_init_` on ``n`` random training windows (seeded by ``cfg.seed``); no-op when ``init_rate`` is 0."""
    if cfg.init_rate <= 0:
        return []
    rng = np.random.default_rng([cfg.seed, 999_999])
    index = rng.choice(len(train), size=min(n, len(train)), replace=False)
    short = dataclasses.replace(cfg, window=min(cfg.window, 150))
    xb, _ = sample_batch(train, index, rng, short, augment=False)
    return calibrate_init_(model, xb, target_rate=cfg.init_rate, semantics=cfg.semantics)


def finish_training(
    model: PSNN,
    history: dict[str, list[float]],
    cfg: TrainConfig,
    out: Path,
    train: BinnedSet,
    test: BinnedSet,
    spec: Any,
    wall_s: float,
    *,
    init: str | None = None,
) -> dict[str, Any]:
    """Write model.pt, metrics.json and curve.png for a finished run."""
    metrics = {
        "final_val_acc": history["val_acc"][-1] if history["val_acc"] else float("nan"),
        "epoch_s_median": float(np.median(history["epoch_s"])) if history["epoch_s"] else float("nan"),
        "wall_s": wall_s,
        "history": history,
        "n_parameters": model.n_parameters(),
        "train": train.summary(),
        "test": test.summary(),
        "config": asdict(cfg),
        "preprocess": dataclasses.asdict(spec),
        "init": init,
    }
    info = {
        "training": {k: metrics[k] for k in ("config", "preprocess", "init")}
        | {"train_data": train.summary(), "test_data": test.summary()},
        "metrics": {"val_acc_first_window": metrics["final_val_acc"], "epoch_s": metrics["epoch_s_median"]},
        "semantics": cfg.semantics,
    }
    save_float_model(out / "model.pt", model, info)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    plot_curve(history, out / "curve.png", title=f"P-SNN ({cfg.semantics} semantics)", loss=cfg.loss)
    return metrics


def cli(argv: list[str] | None = None) -> int:
    """``s2gesture train``."""
    args = build_parser().parse_args(argv)
    metrics = run_training(args)
    print(
        f"done: held-out first-window accuracy {metrics['final_val_acc']:.4f}, "
        f"{metrics['epoch_s_median']:.1f} s/epoch; model in {Path(args.out) / 'model.pt'}"
    )
    return 0
