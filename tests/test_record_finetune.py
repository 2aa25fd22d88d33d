"""Own gestures: `s2gesture record` from a replayed file, `s2gesture finetune` with a new class, served after SIGHUP."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from daemon_helpers import start_daemon

from s2gesture.daemon.card import CLASSES_WITH_NONE, read_model
from s2gesture.daemon.events import Recording
from s2gesture.daemon.testing import write_tiny_model
from s2gesture.models import synth
from s2gesture.models.datasets.npz import write_npz
from s2gesture.models.datasets.tonic_layout import list_samples, load_sample, write_markers, write_sample
from s2gesture.models.finetune import grow_output
from s2gesture.models.network import PSNN, PSNNConfig
from s2gesture.models.train import save_float_model

pytestmark = pytest.mark.timeout(120)

COUNTDOWN_US, TAKE_US = 200_000, 500_000


def _s2gesture(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "s2gesture.clients.cli", *args], capture_output=True, text=True, timeout=110)


def _stream(labels: list[int], sensor: tuple[int, int] = (128, 128), gap_at: int | None = None) -> np.ndarray:
    """Synthetic gestures back to back (0.7 s each, from t = 5000 µs); ``gap_at`` blanks that slot."""
    parts, t = [], 5000
    for i, label in enumerate(labels):
        ev = synth.recording(777_301, 1, i, "lab", label, 0.7).events.copy()
        ev["t"] += t - int(ev["t"][0])
        t += 700_000
        if gap_at == i:
            continue
        if sensor != (128, 128):  # the same scene in the middle of a larger sensor
            ev["x"] += (sensor[0] - 128) // 2
            ev["y"] += (sensor[1] - 128) // 2
        parts.append(ev)
    return np.concatenate(parts)


def _record(src: Path, out: Path, *extra: str, labels: str = "right hand wave,thumbs up", takes: int = 2) -> subprocess.CompletedProcess[str]:
    return _s2gesture("record", "--input", f"file://{src}", "--labels", labels, "--takes", str(takes), "--out", str(out),
                      "--seconds", str(TAKE_US / 1e6), "--countdown", str(COUNTDOWN_US / 1e6), "--speed", "inf",
                      "--user", "7", *extra)  # fmt: skip


def test_record_from_a_replayed_file_writes_takes_that_load_back(tmp_path: Path) -> None:
    """Each take holds exactly the input's events of its slot after the countdown, in tonic's layout with previews."""
    events = _stream([1, 3, 1, 3, 1])
    src = write_npz(tmp_path / "in.npz", Recording(events, (128, 128), name="in"))
    res = _record(src, tmp_path / "own")
    assert res.returncode == 0, res.stderr
    classes = json.loads((tmp_path / "own" / "classes.json").read_text())
    new = len(CLASSES_WITH_NONE)
    assert classes["classes"][new] == "thumbs up" and classes["new_classes"] == ["thumbs up"] and classes["users"] == [7]
    samples = list_samples(tmp_path / "own", "train")
    assert [(s.user, s.lighting, s.label) for s in samples] == [(7, "take01", 1), (7, "take01", new), (7, "take02", 1), (7, "take02", new)]
    t = int(events["t"][0])
    order = [(1, 1), (1, new), (2, 1), (2, new)]
    for take, label in order:
        t += COUNTDOWN_US
        want = events[(events["t"] >= t) & (events["t"] < t + TAKE_US)]
        got = load_sample(next(s for s in samples if s.lighting == f"take{take:02d}" and s.label == label)).events
        assert np.array_equal(got["x"], want["x"]) and np.array_equal(got["p"], want["p"])
        assert np.array_equal(got["t"], want["t"] - t)
        assert (tmp_path / "own" / "previews" / f"user07_take{take:02d}_{label}.png").stat().st_size > 1000
        t += TAKE_US
    # a second run continues the numbering instead of overwriting
    again = _record(src, tmp_path / "own", "--no-preview", labels="right hand wave", takes=1)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "own" / "DVSGesture" / "ibmGestureTrain" / "user07_take03" / "1.npy").is_file()


def test_record_maps_a_larger_sensor_onto_the_layout(tmp_path: Path) -> None:
    """A 346x260 input is centre-cropped and scaled to 128x128; classes.json keeps the camera's size."""
    events = _stream([1, 1], sensor=(346, 260))
    src = write_npz(tmp_path / "big.npz", Recording(events, (346, 260), name="big"))
    res = _record(src, tmp_path / "own", "--no-preview", labels="right hand wave", takes=1)
    assert res.returncode == 0, res.stderr
    got = load_sample(list_samples(tmp_path / "own", "train")[0]).events
    # the crop keeps x in [43, 303) of 346 and scales 260 -> 128: a subject 128 px wide becomes ~63 px
    assert got.shape[0] > 0 and int(got["x"].max()) < 128 and int(got["y"].max()) < 128
    assert int(np.ptp(got["x"])) < 100
    assert json.loads((tmp_path / "own" / "classes.json").read_text())["camera"]["sensor_size"] == [346, 260]


def test_record_errors_are_one_clear_line(tmp_path: Path) -> None:
    """A typo of a known class, an existing take, a take without events and a short input each fail with exit 2."""
    events = _stream([1, 3, 1])
    src = write_npz(tmp_path / "in.npz", Recording(events, (128, 128), name="in"))
    typo = _record(src, tmp_path / "own", labels="rigth hand wave")
    assert typo.returncode == 2 and "close to 'right hand wave'" in typo.stderr and "Traceback" not in typo.stderr
    twice = _record(src, tmp_path / "own", labels="thumbs up,Thumbs_Up")
    assert twice.returncode == 2 and "listed twice" in twice.stderr
    assert _record(src, tmp_path / "own", "--no-preview", labels="right hand wave", takes=1).returncode == 0
    exists = _record(src, tmp_path / "own", "--first-take", "1", labels="right hand wave", takes=1)
    assert exists.returncode == 2 and "already exists" in exists.stderr and "--first-take 2" in exists.stderr
    # the second slot is silent: take 2 (after 0.4 + 0.3 + 0.4 s) falls in it
    gap = write_npz(tmp_path / "gap.npz", Recording(_stream([1, 1, 1], gap_at=1), (128, 128), name="gap"))
    silent = _record(gap, tmp_path / "g", "--seconds", "0.25", "--countdown", "0.4", labels="right hand wave", takes=2)
    assert silent.returncode == 2 and "take 2 of 'right hand wave': no events in 0.25 s" in silent.stderr
    short = _record(src, tmp_path / "s", labels="right hand wave", takes=5)
    assert short.returncode == 2 and "the input ended" in short.stderr and "takes before it are saved" in short.stderr
    assert len(list_samples(tmp_path / "s", "train")) == 2


@pytest.fixture(scope="module")
def takes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny takes folder: 3 train + 1 test takes of two known classes and one new class, and a tiny base model."""
    root = tmp_path_factory.mktemp("takes")
    data = root / "own"
    names = [*CLASSES_WITH_NONE, "thumbs up"]
    write_markers(data)
    for split, sessions in (("train", range(3)), ("test", range(10, 11))):
        for session in sessions:
            for label, source in ((1, 1), (3, 3), (len(CLASSES_WITH_NONE), 8)):
                rec = synth.recording(777_302, 2, session, "lab", source, 0.3)
                ev = rec.events.copy()
                ev["t"] -= int(ev["t"][0])
                write_sample(data, split, 2, f"take{session:02d}", label, ev)
    (data / "classes.json").write_text(json.dumps({"classes": names, "new_classes": ["thumbs up"]}))
    torch.manual_seed(0)
    base = PSNN(PSNNConfig(channels=(4, 4, 4), hidden=16, n_classes=len(CLASSES_WITH_NONE)))
    with torch.no_grad():
        for layer in base.weights.values():
            layer.weight.mul_(3.0)  # spikes all the way to the output from sparse input
    save_float_model(root / "base.pt", base, {"semantics": "snntorch"})
    return root


def _finetune(root: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return _s2gesture("finetune", "--from", str(root / "base.pt"), "--data", str(root / "own"), "--out", str(out),
                      "--epochs", "1", "--qat-epochs", "1", "--window", "60", "--batch-size", "4", "--threads", "1",
                      "--cache", str(root / "cache"), "--no-progress", *extra)  # fmt: skip


@pytest.mark.parametrize("tau_ticks", [None, ((3.0, 30.0), (3.0, 60.0), (4.0, 90.0), (5.0, 200.0), (14.0, 14.0))])
def test_grow_output_keeps_the_old_classes_exactly(tau_ticks) -> None:
    """Old output neurons of a grown model spike exactly as before (one decay or per-channel time constants);
    the new one is not silent by construction."""
    torch.manual_seed(1)
    model = PSNN(PSNNConfig(channels=(4, 4, 4), hidden=16, n_classes=12, tau_ticks=tau_ticks))
    with torch.no_grad():
        for layer in model.weights.values():
            layer.weight.mul_(3.0)
    grown = grow_output(model, 2, seed=0)
    assert grown.cfg.n_classes == 14
    x = (torch.rand((40, 3, 2, 32, 32), generator=torch.Generator().manual_seed(2)) < 0.1).float()
    with torch.no_grad():
        old, new = model(x, "chip"), grown(x, "chip")
    assert torch.equal(new[..., :12], old)
    assert float(grown.weights["fc2"].weight[12:].detach().std()) > 0


def test_grow_output_refuses_to_change_old_classes_time_constants() -> None:
    """An output layer whose classes decay differently cannot grow without changing the old classes' decays."""
    spread = ((3.0, 30.0), (3.0, 60.0), (4.0, 90.0), (5.0, 200.0), (5.0, 50.0))
    with pytest.raises(ValueError, match=r"output layer's time constants spread 5\.0-50\.0 ticks"):
        grow_output(PSNN(PSNNConfig(channels=(4, 4, 4), hidden=16, n_classes=12, tau_ticks=spread)), 1)


def test_finetune_adds_a_class_the_daemon_serves_after_sighup(takes: Path, tmp_path: Path) -> None:
    """The exported model has one more output and the new name on its card; a running daemon swaps to it on SIGHUP."""
    out = tmp_path / "ft" / "own.nir"
    res = _finetune(takes, out, "--new-classes", "thumbs up")
    assert res.returncode == 0, res.stderr
    model = read_model(out)
    assert model.card.classes == (*CLASSES_WITH_NONE, "thumbs up")
    assert np.asarray(model.graph.nodes["fc2"].weight).shape[0] == 13
    assert model.card.semantics["trained_for"] == "chip" and model.card.quantization["scheme"] == "qat"
    assert model.card.training["finetune"]["new_classes"] == ["thumbs up"]
    assert (tmp_path / "ft" / "own.float.pt").is_file() and not (tmp_path / "ft" / "own.work").exists()
    serving = tmp_path / "serving.nir"
    first = write_tiny_model(serving)
    with start_daemon(tmp_path, serving, mode="lossless") as d:
        d.wait_status(lambda b: b["model"]["hash"] == first.hash)
        shutil.copyfile(out, serving)
        d.send_signal(signal.SIGHUP)
        status = d.wait_status(lambda b: b["model"]["hash"] == model.hash and b["state"] == "ready", timeout_s=30)
        assert status["model"]["name"] == "own"
        assert d.stop() == 0


def test_finetune_errors_name_the_fix(takes: Path, tmp_path: Path) -> None:
    """Takes of an unknown class, a new class without takes, a NIR as --from and a non-.nir --out fail with exit 2."""
    unknown = _finetune(takes, tmp_path / "a.nir")
    assert unknown.returncode == 2 and "--new-classes 'thumbs up'" in unknown.stderr and "Traceback" not in unknown.stderr
    missing = _finetune(takes, tmp_path / "b.nir", "--new-classes", "thumbs up,wave twice")
    assert missing.returncode == 2 and "no takes of 'wave twice'" in missing.stderr
    known = _finetune(takes, tmp_path / "c.nir", "--new-classes", "Right_Hand_Wave")
    assert known.returncode == 2 and "already a class of the model" in known.stderr
    write_tiny_model(tmp_path / "m.nir")
    nir = _s2gesture("finetune", "--from", str(tmp_path / "m.nir"), "--data", str(takes / "own"), "--out", str(tmp_path / "d.nir"))
    assert nir.returncode == 2 and "expected a torch model .pt" in nir.stderr
    suffix = _finetune(takes, tmp_path / "e.pt", "--new-classes", "thumbs up")
    assert suffix.returncode == 2 and "expected a .nir file name" in suffix.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    none = _s2gesture("finetune", "--from", str(takes / "base.pt"), "--data", str(empty), "--out", str(tmp_path / "f.nir"))
    assert none.returncode == 2 and "no training takes" in none.stderr

