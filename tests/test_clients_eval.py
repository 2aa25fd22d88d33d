"""`s2gesture eval` through the real daemon gives the same decisions, hence the same accuracy, as the
toolkit's offline emulated evaluation (`s2gesture evaluate`'s full-recording path) on the same model and data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from daemon_helpers import DaemonProcess, start_daemon

from s2gesture.clients import eval as live_eval
from s2gesture.clients import replay
from s2gesture.daemon.testing import write_tiny_model
from s2gesture.models.evaluate import emulated_final_classes

pytestmark = pytest.mark.timeout(90)

N_RECORDINGS = 5
DURATION_S = 1.5
SEED = 11


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.nir"
    write_tiny_model(path, seed=3)
    return path


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, model_path: Path) -> Iterator[DaemonProcess]:
    with start_daemon(tmp_path_factory.mktemp("daemon"), model_path, mode="lossless") as d:
        yield d


def test_live_accuracy_equals_offline_accuracy(daemon: DaemonProcess, model_path: Path) -> None:
    """Every segment's final decision through the daemon equals the offline one, so the accuracies are equal."""
    recordings = replay.synthetic_recordings(N_RECORDINGS, SEED, duration_s=DURATION_S)
    live = live_eval.evaluate_live(
        recordings, input_endpoint=daemon.input_endpoint, output_endpoint=daemon.output_endpoint, timeout_s=15
    )
    assert live.n_decided == N_RECORDINGS
    live_pred = np.array([s.predicted for s in live.segments])
    offline_pred = emulated_final_classes(model_path, recordings)
    labels = np.array([r.label for r in recordings])
    print(f"live {live_pred.tolist()} offline {offline_pred.tolist()} labels {labels.tolist()}")
    assert live_pred.tolist() == offline_pred.tolist()
    assert live.accuracy == float(np.mean(offline_pred == labels))
    # the report agrees with itself: the confusion matrix holds every segment once
    assert live.confusion().sum() == N_RECORDINGS
    assert np.trace(live.confusion()[:, :-1]) == sum(s.correct for s in live.segments)


def _users_recordings() -> list:
    """Two recordings each of three generated users, each user under its own lighting (equal counts per user)."""
    from s2gesture.models import synth

    rng = np.random.default_rng(SEED)
    lightings = ("led", "natural", "lab")
    return [
        synth.recording(SEED, user, 0, lightings[i], int(label), DURATION_S)
        for i, user in enumerate((40, 41, 42))
        for label in rng.choice(synth.N_CLASSES, size=2, replace=False)
    ]


def test_live_report_breaks_accuracy_down_by_user_and_lighting(daemon: DaemonProcess, model_path: Path) -> None:
    """The live report's interval over users and per-user rows match the offline decisions and add back to the accuracy."""
    from s2gesture.models.userstats import accuracy_stats

    recordings = _users_recordings()
    live = live_eval.evaluate_live(
        recordings, input_endpoint=daemon.input_endpoint, output_endpoint=daemon.output_endpoint, timeout_s=15
    )
    assert live.n_decided == len(recordings)
    report = live.report()
    assert [(s["user"], s["lighting"]) for s in report["segments"]] == [
        (u, li) for u, li in (("user40", "led"), ("user41", "natural"), ("user42", "lab")) for _ in range(2)
    ]
    ci = report["user_ci"]
    assert (ci["n"], ci["n_users"]) == (6, 3)
    assert ci["lo"] <= ci["mean"] == live.accuracy <= ci["hi"]
    # equal counts per user: the per-user accuracies average back to the overall one
    assert [u["n"] for u in report["per_user"]] == [2, 2, 2]
    assert abs(np.mean([u["acc"] for u in report["per_user"]]) - live.accuracy) < 1e-12
    assert report["worst_user"]["acc"] == min(u["acc"] for u in report["per_user"])
    assert {li["lighting"]: li["n"] for li in report["per_lighting"]} == {"led": 2, "natural": 2, "lab": 2}
    # the offline decisions give the same figures, bootstrap included (same seed)
    offline = emulated_final_classes(model_path, recordings) == np.array([r.label for r in recordings])
    expected = accuracy_stats(offline, [s["user"] for s in report["segments"]], [s["lighting"] for s in report["segments"]])
    assert {k: report[k] for k in expected} == expected


def test_eval_cli_writes_json_and_png(
    daemon: DaemonProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`s2gesture eval --synthetic` reports accuracy with its interval over users, confusion, time to decision and latency."""
    out = tmp_path / "report"
    code = live_eval.cli(
        [
            "--input", daemon.input_endpoint, "--output", daemon.output_endpoint, "--synthetic", "2",
            "--duration-s", "1.0", "--seed", "5", "--quiet", "--out", str(out),
        ]
    )  # fmt: skip
    assert code == 0
    report = json.loads(out.with_name("report.json").read_text())
    assert report["n_segments"] == report["n_decided"] == 2
    assert len(report["confusion"]) == 11 and len(report["confusion"][0]) == 12
    assert report["pred_latency_ms"]["n"] > 0 and report["pred_latency_ms"]["p99"] >= report["pred_latency_ms"]["p50"]
    assert report["replay"]["events"] > 0
    # one generated user: the interval over users has no spread, and the printout says so
    assert report["user_ci"]["n_users"] == 1 and report["user_ci"]["lo"] == report["user_ci"]["hi"]
    assert report["per_user"][0]["n"] == 2 and report["worst_user"]["user"] == report["per_user"][0]["user"]
    printed = capsys.readouterr().out
    assert report["summary"] in printed and "no spread: one user" in printed
    assert f"{report['worst_user']['user']:<12} {2:>10}" in printed
    assert out.with_name("report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
