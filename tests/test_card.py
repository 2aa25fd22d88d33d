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


def test_writing_replaces_the_file_whole_and_keeps_its_permissions(tmp_path: Path) -> None:
    """write_model renames a finished file over the old one: a reader holding the old file still reads it
    whole, no temporary file is left, and the file keeps its mode (a new one gets the umask's)."""
    import os
    import stat

    path = tmp_path / "m.nir"
    first = write_model(path, tiny_gesture_graph(1), tiny_gesture_card("first"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()
    path.chmod(0o640)
    with path.open("rb") as reader:  # open before the rewrite, as a reloading daemon might be
        second = write_model(path, tiny_gesture_graph(2), tiny_gesture_card("second"))
        old_bytes = reader.read()
    (tmp_path / "old.nir").write_bytes(old_bytes)
    assert read_model(tmp_path / "old.nir").hash == first.hash
    assert read_model(path).hash == second.hash != first.hash
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.nir", "old.nir"]
    assert os.access(path, os.R_OK)


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


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


def test_card_mapping_is_checked_against_the_preprocessing_registry() -> None:
    """A card may name every mapping the preprocessing implements, and an unknown one lists them all."""
    from s2gesture.daemon.preprocess import MAPPINGS

    for name in MAPPINGS:
        assert ModelCard.from_dict({"name": "m", "classes": ["a"], "input": {"mapping": name}}).input.mapping == name
    with pytest.raises(ModelCardError) as info:
        ModelCard.from_dict({"name": "m", "classes": ["a"], "input": {"mapping": "stretch"}})
    assert all(name in str(info.value) for name in MAPPINGS)


def test_card_conversion_is_the_backends_chip_options() -> None:
    """The card's conversion section is a ChipOptions: chip switches round-trip and bad values are listed by path."""
    from s2gesture.daemon.backends import ChipOptions, options_from_card

    data = {"name": "m", "classes": ["a"], "conversion": {"threshold_op": ">=", "fma": True, "conn_delay": 2}}
    card = ModelCard.from_dict(data)
    assert isinstance(card.conversion, ChipOptions)
    assert ModelCard.from_dict(json.loads(json.dumps(card.to_dict()))) == card
    assert options_from_card(card)["threshold_op"] == ">=" and options_from_card(card)["conn_delay"] == 2
    with pytest.raises(ModelCardError) as info:
        ModelCard.from_dict({"name": "m", "classes": ["a"], "conversion": {"dt": -1.0, "threshold_op": "=="}})
    assert "conversion.dt" in str(info.value) and "conversion.threshold_op" in str(info.value)


def test_mirror_permutation_is_an_involution_over_the_class_names() -> None:
    """The mirror label table covers every class, is its own inverse and swaps right and left gestures."""
    from s2gesture.daemon.card import GESTURE_CLASSES, GESTURE_MIRROR

    assert sorted(GESTURE_MIRROR) == list(range(len(GESTURE_CLASSES)))
    assert all(GESTURE_MIRROR[GESTURE_MIRROR[i]] == i for i in range(len(GESTURE_CLASSES)))

    def mirror_of(name: str) -> str:
        # a mirror swaps the body side and reverses a rotation's sense
        swap = {"right": "left", "left": "right", "clockwise": "counter-clockwise", "counter-clockwise": "clockwise"}
        return " ".join(swap.get(word, word) for word in name.split())

    for i, name in enumerate(GESTURE_CLASSES):
        assert GESTURE_CLASSES[GESTURE_MIRROR[i]] == mirror_of(name)
