"""The model card round-trips through NIR files and rejects unusable cards with clear messages."""

from __future__ import annotations

import json
from pathlib import Path

import nir
import numpy as np
import pytest

from s2gesture.daemon.card import ModelCard, graph_hash, read_model, write_model
from s2gesture.daemon.errors import ModelCardError
from s2gesture.daemon.testing import tiny_gesture_card, tiny_gesture_graph


def test_card_and_graph_round_trip(tmp_path: Path) -> None:
    """A written model reads back with an equal card, equal weights and the same content hash."""
    card = tiny_gesture_card("rt")
    written = write_model(tmp_path / "m.nir", tiny_gesture_graph(3), card)
    model = read_model(tmp_path / "m.nir")
    assert model.card == card
    assert model.hash == written.hash
    np.testing.assert_array_equal(model.graph.nodes["conv1"].weight, tiny_gesture_graph(3).nodes["conv1"].weight)


def test_hash_changes_with_weights() -> None:
    """Two graphs that differ in one weight have different hashes."""
    a, b = tiny_gesture_graph(1), tiny_gesture_graph(1)
    b.nodes["fc"].weight[0, 0] += 1
    assert graph_hash(a) != graph_hash(b)


def test_graph_without_card_is_refused_with_the_fix(tmp_path: Path) -> None:
    """A NIR file made by another tool is refused unless a card is supplied, and the error says how."""
    nir.write(tmp_path / "bare.nir", tiny_gesture_graph(0))
    with pytest.raises(ModelCardError, match=r"no model card.*--card"):
        read_model(tmp_path / "bare.nir")
    (tmp_path / "card.json").write_text(json.dumps({"name": "other-tool", "classes": ["a"] * 11}))
    assert read_model(tmp_path / "bare.nir", card=tmp_path / "card.json").card.name == "other-tool"


def test_card_errors_name_every_problem() -> None:
    """Missing and wrong fields are all reported at once, each by its path."""
    with pytest.raises(ModelCardError) as info:
        ModelCard.from_dict({"input": {"mapping": "stretch", "dt_us": 0}, "conversion": {"reset": "HARD"}})
    text = str(info.value)
    for needle in ("'name'", "'classes'", "input.mapping", "input.dt_us", "conversion.reset"):
        assert needle in text


def test_missing_model_file_names_the_path(tmp_path: Path) -> None:
    """A missing model file is an error naming the path."""
    with pytest.raises(ModelCardError, match=r"nope\.nir does not exist"):
        read_model(tmp_path / "nope.nir")


def test_card_mappings_match_the_preprocessing_registry() -> None:
    """Every mapping a card may name is implemented by the preprocessing, and no other."""
    from s2gesture.daemon import card, preprocess

    assert set(card.MAPPINGS) == set(preprocess.MAPPINGS)
