"""A model with the card's "none" class: the live daemon never reports it as an onset, ends segments with it
when it has the most evidence, and `s2gesture eval` counts false gesture decisions on "none" segments."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from daemon_helpers import start_daemon

from s2gesture.clients import eval as live_eval
from s2gesture.daemon.card import CLASSES_WITH_NONE, NONE_CLASS, write_model
from s2gesture.daemon.testing import tiny_gesture_card, tiny_gesture_graph
from s2gesture.models import synth
from s2gesture.models.evaluate import emulated_final_classes

pytestmark = pytest.mark.timeout(120)


def _model(path: Path, classes: tuple[str, ...]) -> Path:
    """A 12-output tiny model whose last output gets the strongest input of all (it leads every active chunk)."""
    graph = tiny_gesture_graph(5, n_classes=12)
    w = graph.nodes["fc"].weight  # type: ignore[attr-defined]
    w[:11] = np.round(w[:11] * 0.3)
    w[11] = np.abs(w[11]) + 30
    card = dataclasses.replace(tiny_gesture_card("none-test", n_classes=12), classes=classes)
    write_model(path, graph, card)
    return path


def _recordings() -> list[object]:
    gestures = [synth.recording(61, 1, 0, "led", label, 1.0) for label in (1, 3, 8)]
    idle = [synth.recording(61, 2, 0, "led", synth.NONE_LABEL, 1.0, distractor=k) for k in ("shake", "walk")]
    return gestures + idle


@pytest.mark.parametrize("with_none", [True, False])
def test_none_class_is_never_an_onset_and_ends_segments(tmp_path: Path, with_none: bool) -> None:
    """With 'none' on the card: no onsets, every final is 'none', no false decisions counted; the same weights
    with a gesture name in that slot report it as onsets (the card, not the weights, makes the difference)."""
    classes = CLASSES_WITH_NONE if with_none else (*CLASSES_WITH_NONE[:11], "thumbs up")
    model = _model(tmp_path / "m.nir", classes)
    recordings = _recordings()
    with start_daemon(tmp_path, model, mode="lossless") as d:
        result = live_eval.evaluate_live(
            recordings, input_endpoint=d.input_endpoint, output_endpoint=d.output_endpoint, timeout_s=20  # type: ignore[arg-type]
        )
    finals = [s.predicted for s in result.segments]
    assert finals == list(emulated_final_classes(model, recordings))  # type: ignore[arg-type]
    assert finals == [11] * len(recordings)
    assert {s.predicted_label for s in result.segments} == {classes[11]}
    onsets = sum(s.onsets for s in result.segments)
    report = result.report()
    if with_none:
        assert onsets == 0
        assert report["none_segments"] == {"n": 2, "minutes": pytest.approx(2 * 1.0 / 60, rel=0.05),
                                           "false_decisions": 0, "false_per_10min": 0.0, "final_none": 2}  # fmt: skip
        assert result.classes[11] == NONE_CLASS
    else:
        assert onsets >= len(recordings)  # every segment reports "thumbs up" at least once
        assert "none_segments" not in report
        assert all(s.wrong_onsets >= 1 for s in result.segments[:3])  # the three gesture segments
