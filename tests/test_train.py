"""Training: augmentation respects labels, windows, caching of binned data, determinism and resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from s2gesture.daemon.events import Recording, make_events
from s2gesture.daemon.preprocess import PreprocessSpec
from s2gesture.models.binned import MIRROR_LABELS, BinnedSet, bin_recordings, load_binned, save_binned
from s2gesture.models.network import PSNN, PSNNConfig
from s2gesture.models.train import (
    TrainConfig,
    crop_window,
    init_from_data_,
    mirror,
    shift,
    train_model,
    window_accuracy,
)

TINY = PSNNConfig(channels=(4, 4, 4), hidden=16, n_classes=2)


def _toy_set(seed: int, n: int = 16, ticks: int = 40) -> BinnedSet:
    """Two classes: activity in the left half (0) or the right half (1) of the frame."""
    rng = np.random.default_rng(seed)
    spikes, labels = [], []
    for i in range(n):
        label = i % 2
        x = np.zeros((ticks, 2, 32, 32), dtype=np.uint8)
        cols = slice(0, 16) if label == 0 else slice(16, 32)
        x[:, :, :, cols] = rng.random((ticks, 2, 32, 16)) < 0.1
        spikes.append(x)
        labels.append(label)
    return BinnedSet(
        spikes, np.asarray(labels), [f"user{i % 3:02d}" for i in range(n)], [str(i) for i in range(n)]
    )


def _cfg(**kw: object) -> TrainConfig:
    base = dict(epochs=2, batch_size=4, lr=3e-3, window=30, eval_window=40, mirror_p=0.0, shift_px=1, seed=3)
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def test_mirror_labels_are_an_involution_swapping_the_lateral_gestures() -> None:
    """Mirroring twice is the identity; 1<->2, 3<->6, 4<->5 swap and the rest stay."""
    assert [MIRROR_LABELS[MIRROR_LABELS[i]] for i in range(11)] == list(range(11))
    assert (MIRROR_LABELS[1], MIRROR_LABELS[3], MIRROR_LABELS[4]) == (2, 6, 5)
    assert [i for i in range(11) if MIRROR_LABELS[i] == i] == [0, 7, 8, 9, 10]


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10), st.integers(0, 2**31 - 1))
def test_mirror_flips_columns_and_permutes_the_label(label: int, seed: int) -> None:
    """A mirrored window has its columns reversed and the mirrored label."""
    x = (np.random.default_rng(seed).random((3, 2, 4, 5)) < 0.5).astype(np.uint8)
    y, new = mirror(x, label)
    assert np.array_equal(y[..., ::-1], x)
    assert new == MIRROR_LABELS[label]


@settings(max_examples=30, deadline=None)
@given(st.integers(-3, 3), st.integers(-3, 3), st.integers(0, 2**31 - 1))
def test_shift_moves_pixels_without_wrapping(dx: int, dy: int, seed: int) -> None:
    """Shifting keeps every pixel that stays in the frame and never wraps one around."""
    x = (np.random.default_rng(seed).random((2, 1, 6, 6)) < 0.5).astype(np.uint8)
    y = shift(x, dx, dy)
    for r in range(6):
        for c in range(6):
            if 0 <= r + dy < 6 and 0 <= c + dx < 6:
                assert np.array_equal(y[..., r + dy, c + dx], x[..., r, c])
    assert y.sum() <= x.sum()


def test_crop_window_pads_short_recordings() -> None:
    """A window past the end of a recording is zero-padded to its full length."""
    x = np.ones((5, 2, 3, 3), dtype=np.uint8)
    w = crop_window(x, 3, 4)
    assert w.shape == (4, 2, 3, 3) and w[:2].all() and not w[2:].any()


def test_binning_uses_the_shared_preprocessing_and_the_cache_round_trips(tmp_path) -> None:
    """Recordings become [T, 2, 32, 32] spikes through preprocess_recording; save/load is lossless."""
    rng = np.random.default_rng(0)
    recs = []
    for i in range(3):
        n = 2000
        t = np.sort(rng.integers(0, 50_000, n))
        ev = make_events(rng.integers(0, 128, n), rng.integers(0, 128, n), rng.random(n) < 0.5, t)
        recs.append(Recording(ev, (128, 128), label=i, name=f"user0{i}_led/{i}.npy", meta={"user": i}))
    data = bin_recordings(recs, PreprocessSpec(sensor_size=(128, 128), denoise_us=0))
    assert data.spikes[0].shape[1:] == (2, 32, 32) and data.spikes[0].dtype == np.uint8
    assert data.users == ["user00", "user01", "user02"]
    save_binned(tmp_path / "c.npz", data)
    back = load_binned(tmp_path / "c.npz")
    assert all(np.array_equal(a, b) for a, b in zip(data.spikes, back.spikes, strict=True))
    assert back.labels.tolist() == [0, 1, 2]


def test_tiny_training_learns_and_writes_checkpoints(tmp_path) -> None:
    """A tiny P-SNN learns a left/right toy task in seconds, in chip semantics too."""
    for sem in ("snntorch", "chip"):
        torch.manual_seed(0)
        model = PSNN(TINY)
        cfg = _cfg(epochs=4, lr=3e-3, semantics=sem)
        rates = init_from_data_(model, _toy_set(1), cfg, n=8)
        assert all(0.03 <= r <= 0.07 for r in rates), rates
        history = train_model(
            model, _toy_set(1), _toy_set(2, n=8), cfg, tmp_path / sem, progress=False, verbose=False
        )
        assert history["val_acc"][-1] >= 0.85, history
        assert (tmp_path / sem / "checkpoint.pt").is_file()
        assert window_accuracy(model, _toy_set(2, n=8), 40, sem) == history["val_acc"][-1]


def test_training_is_deterministic_and_resume_continues_identically(tmp_path) -> None:
    """Same seed -> same weights; 1 epoch + resume for 1 more equals 2 epochs straight."""

    def run(out: str, stop: int | None = None, resume: bool = False) -> PSNN:
        torch.manual_seed(0)
        model = PSNN(TINY)
        cfg = _cfg(epochs=2, window=20)
        train_model(
            model,
            _toy_set(1, n=8),
            None,
            cfg,
            tmp_path / out,
            resume=resume,
            progress=False,
            verbose=False,
            stop_after=stop,
        )
        return model

    a = run("a")
    b = run("b")
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])
    interrupted = run("c", stop=1)
    assert not torch.equal(interrupted.weights["conv1"].weight, a.weights["conv1"].weight)
    c = run("c", resume=True)
    for k, v in a.state_dict().items():
        assert torch.equal(v, c.state_dict()[k]), k


def test_train_cli_help_imports_no_torch() -> None:
    """`s2gesture train --help` works without loading torch."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom s2gesture.models import train\n"
        "try:\n    train.cli(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("False")
    assert "--semantics" in out.stdout


def test_metrics_json_is_written_by_the_cli_path(tmp_path) -> None:
    """finish_training writes model.pt, metrics.json and curve.png."""
    from s2gesture.models.train import finish_training

    model = PSNN(TINY)
    history = {"loss": [1.0, 0.5], "train_acc": [0.5, 0.8], "val_acc": [0.5, 0.9], "epoch_s": [1.0, 1.2]}
    finish_training(
        model,
        history,
        _cfg(),
        tmp_path,
        _toy_set(1),
        _toy_set(2),
        PreprocessSpec(sensor_size=(128, 128)),
        2.2,
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert (
        metrics["final_val_acc"] == 0.9
        and metrics["n_parameters"] == 4 * 2 * 25 + 2 * 4 * 4 * 9 + 36 * 16 + 16 * 2
    )
    assert (tmp_path / "curve.png").stat().st_size > 1000
    with pytest.raises(FileNotFoundError, match="s2gesture train"):
        from s2gesture.models.train import load_model_file

        load_model_file(tmp_path / "missing.pt")


def test_prefetching_batches_on_a_thread_trains_exactly_like_inline(tmp_path) -> None:
    """Batches built on the background thread are the same batches: identical weights after training."""
    data = _toy_set(4)
    weights = []
    for depth in (0, 2):
        torch.manual_seed(0)
        model = PSNN(TINY)
        train_model(model, data, None, _cfg(prefetch=depth), tmp_path / f"p{depth}", progress=False, verbose=False)
        weights.append({k: v.clone() for k, v in model.state_dict().items()})
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_prefetch_hands_a_batch_error_to_the_training_thread() -> None:
    """An exception while building a batch on the thread is raised where the batch is consumed."""
    from s2gesture.models.train import prefetched

    def boom() -> None:
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(prefetched(iter([lambda: 1, boom, lambda: 3]), 2))


def test_device_auto_is_cpu_without_a_gpu_and_cuda_is_refused_clearly() -> None:
    """--device auto falls back to cpu; --device cuda without a GPU is a ConfigError naming the fix."""
    from s2gesture.daemon.errors import ConfigError
    from s2gesture.models.train import resolve_device

    if torch.cuda.is_available():
        assert resolve_device("auto") == "cuda"
        return
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    with pytest.raises(ConfigError, match="--device cpu or auto"):
        resolve_device("cuda")


def test_packed_cache_is_built_once_outside_the_dataset_and_equals_the_preprocessing(tmp_path, monkeypatch) -> None:
    """load_split caches bit-packed on-disk ticks under the cache dir; they equal the shared preprocessing."""
    from s2gesture.models import synth
    from s2gesture.models.binned import PackedSpikes, load_split
    from s2gesture.models.datasets import tonic_layout

    monkeypatch.setenv("S2GESTURE_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "data"
    synth.generate(root, 1, 1, 11, duration_s=0.6, repeats=1, workers=1, progress=False)
    spec = PreprocessSpec(sensor_size=(128, 128))
    data = load_split(root, "test", spec, progress=False)
    assert isinstance(data.spikes[0], PackedSpikes) and data.spikes[0].dtype == np.uint8
    folders = list((tmp_path / "cache").iterdir())
    assert len(folders) == 1 and not any(p.name.startswith("test-") for p in root.rglob("*"))
    direct = bin_recordings((tonic_layout.load_sample(s) for s in tonic_layout.list_samples(root, "test")), spec)
    for packed, plain in zip(data.spikes, direct.spikes, strict=True):
        assert packed.shape == plain.shape and np.array_equal(np.asarray(packed), plain)
        assert np.array_equal(packed[5:37], plain[5:37]) and packed.nbytes_packed * 8 == plain.size
    stamp = (folders[0] / "index.npz").stat().st_mtime_ns
    again = load_split(root, "test", spec, progress=False)
    assert (folders[0] / "index.npz").stat().st_mtime_ns == stamp and list(again.labels) == list(data.labels)


def test_camera_variation_thins_densifies_and_zooms_as_configured() -> None:
    """Thinning only removes spikes, densification only adds them (next to existing ones), zoom 1 is the identity
    and a zoom in moves a spike away from the centre; all off by default."""
    from s2gesture.models.train import TrainConfig, camera_variation, zoom

    rng = np.random.default_rng(3)
    win = (rng.random((40, 2, 32, 32)) < 0.05).astype(np.uint8)
    assert np.array_equal(camera_variation(win, np.random.default_rng(0), TrainConfig()), win)
    thin = camera_variation(win, np.random.default_rng(0), TrainConfig(thin_max=0.6))
    assert np.all(thin <= win) and thin.sum() < win.sum()
    dense = camera_variation(win, np.random.default_rng(1), TrainConfig(dense_max=0.5))
    assert np.all(dense >= win) and dense.sum() > win.sum()
    assert np.array_equal(zoom(win, 1.0), win)
    one = np.zeros((1, 1, 32, 32), np.uint8)
    one[0, 0, 20, 24] = 1
    y, x = np.argwhere(zoom(one, 1.25)[0, 0])[0]
    assert x > 24 and y > 20


def test_window_min_draws_one_length_per_batch() -> None:
    """With window_min, batch lengths vary within [window_min, window]; without, every batch has the full window."""
    from s2gesture.models.binned import BinnedSet
    from s2gesture.models.train import TrainConfig, sample_batch

    spikes = [np.zeros((400, 2, 32, 32), np.uint8) for _ in range(4)]
    data = BinnedSet(spikes, np.arange(4))
    rng = np.random.default_rng(0)
    lengths = {sample_batch(data, np.arange(4), rng, TrainConfig(window=300, window_min=100), augment=True)[0].shape[0]
               for _ in range(20)}  # fmt: skip
    assert len(lengths) > 5 and min(lengths) >= 100 and max(lengths) <= 300
    fixed = sample_batch(data, np.arange(4), rng, TrainConfig(window=300), augment=True)[0]
    assert fixed.shape[0] == 300


@pytest.mark.parametrize("loss", ["mse_count", "ce"])
def test_class_weight_weighs_each_sample_by_its_label(loss: str) -> None:
    """Unit weights give the unweighted loss; a heavier class pulls the batch loss towards its samples' loss
    (a weighted mean over samples); a weight list of the wrong length is refused with the counts."""
    from s2gesture.models.train import loss_fn

    torch.manual_seed(0)
    out = (torch.rand(20, 4, 3) < 0.3).float()
    labels = torch.tensor([0, 1, 2, 2])
    plain = loss_fn(out, labels, TrainConfig(loss=loss))
    unit = loss_fn(out, labels, TrainConfig(loss=loss, class_weight=(1.0, 1.0, 1.0)))
    assert float(unit) == pytest.approx(float(plain), rel=1e-6)  # float sums in another order
    per_sample = [float(loss_fn(out[:, i : i + 1], labels[i : i + 1], TrainConfig(loss=loss))) for i in range(4)]
    weighted = float(loss_fn(out, labels, TrainConfig(loss=loss, class_weight=(1.0, 1.0, 4.0))))
    expected = (per_sample[0] + per_sample[1] + 4 * per_sample[2] + 4 * per_sample[3]) / 10
    assert weighted == pytest.approx(expected, rel=1e-6)
    assert weighted != pytest.approx(float(plain), rel=1e-3)
    with pytest.raises(ValueError, match=r"one weight per output class \(3\), found 2"):
        loss_fn(out, labels, TrainConfig(loss=loss, class_weight=(1.0, 2.0)))


def test_none_weight_builds_the_class_weights_and_refuses_a_model_without_none() -> None:
    from s2gesture.models.train import none_weighted

    assert none_weighted(12, 1.0) == ()
    assert none_weighted(12, 3.0) == (1.0,) * 11 + (3.0,)
    with pytest.raises(ValueError, match=r"11 classes, no 'none' class \(label 11\)"):
        none_weighted(11, 3.0)
    with pytest.raises(ValueError, match="expected a weight > 0, found -1"):
        none_weighted(12, -1.0)
