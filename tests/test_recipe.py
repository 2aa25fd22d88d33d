"""The pretrained recipe's warm restarts and ``--continue-from``: only the stages a shipped model lacks.

The quick end-to-end test runs the real recipe twice in this process on a tiny generated dataset: once whole
with no warm restart, then continued from what it shipped with one warm restart added to ``WARM_RESTARTS``
(the recipe's own setting, changed here the way a user edits it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from s2gesture.daemon.card import read_model
from s2gesture.models import pretrained_recipe as recipe

SHIPPED = Path(recipe.__file__).parent / "pretrained"


def shipped_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "shipped"
    shutil.copytree(SHIPPED, folder)
    return folder


def test_continue_from_a_folder_without_float_weights_is_one_line_naming_the_file(tmp_path: Path) -> None:
    """The CLI exits 2 with the folder, what it needs and what is missing; nothing is trained."""
    folder = shipped_copy(tmp_path)
    (folder / "psnn_float.pt").unlink()
    result = subprocess.run(
        [sys.executable, "-m", "s2gesture.models.pretrained_recipe", "--continue-from", str(folder),
         "--work", str(tmp_path / "work"), "--dest", str(tmp_path / "dest")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert str(folder) in line and "found no psnn_float.pt" in line
    assert not (tmp_path / "work").exists() and not (tmp_path / "dest").exists()


def test_shipped_model_is_a_prefix_of_the_recipe_and_other_settings_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bundled model's stages start the recipe's; a changed restart or a complete model is named, not run."""
    folder = shipped_copy(tmp_path)
    card_stages = read_model(folder / "psnn_int8.nir").card.training["stages"]
    assert recipe.done_stages(folder) == len(card_stages) <= len(recipe.stages())
    restarts = tuple((st["epochs"], st["train_users"]) for st in card_stages[2:])
    monkeypatch.setattr(recipe, "WARM_RESTARTS", ((restarts[0][0] + 1, restarts[0][1]), *restarts[1:]))
    with pytest.raises(ValueError, match=r"expected the start of this recipe's") as err:
        recipe.done_stages(folder)
    assert "('chip2', " in str(err.value)
    monkeypatch.setattr(recipe, "WARM_RESTARTS", restarts)
    with pytest.raises(ValueError, match=r"has every stage of this recipe already \(float, chip, chip2"):
        recipe.run(tmp_path / "work", tmp_path / "dest", continue_from=folder)
    assert not (tmp_path / "work").exists()


@pytest.mark.slow
def test_quick_recipe_then_one_warm_restart_continued_from_what_it_shipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The continued run trains only the new stage, from the shipped float weights, and records every stage."""
    import torch

    monkeypatch.setattr(recipe, "WARM_RESTARTS", ())
    first = tmp_path / "first"
    recipe.run(tmp_path / "work", first, quick=True)
    assert [st["name"] for st in read_model(first / "psnn_int8.nir").card.training["stages"]] == ["float", "chip"]

    monkeypatch.setattr(recipe, "WARM_RESTARTS", ((1, 96),))
    second = tmp_path / "second"
    work2 = tmp_path / "work2"
    report = recipe.run(work2, second, quick=True, continue_from=first)
    assert not (work2 / "float").exists() and not (work2 / "chip").exists()  # the earlier stages are not re-run
    assert (work2 / "data_chip2" / "DVSGesture").is_dir() and not (work2 / "data").exists()
    assert (work2 / "int8_chip2" / f"{recipe.SHIPPED}.pt").is_file() and (work2 / "report_chip2").is_dir()
    card = read_model(second / "psnn_int8.nir").card
    assert [(st["name"], st["train_users"]) for st in card.training["stages"]] == [
        ("float", 3), ("chip", 3), ("chip2", 4)
    ]  # fmt: skip
    assert card.training["continued_from"]["stages"] == ["float", "chip"]
    assert card.training["init"] == str(first / "psnn_float.pt")  # chip2 trained on from the shipped weights
    assert report["continued_from"]["stages"] == ["float", "chip"]
    assert report["rows"][0]["name"] == "float (chip semantics)"
    assert {r["name"].split(":")[0] for r in report["rows"][1:]} == {recipe.SHIPPED}
    shipped_report = json.loads((second / "psnn_int8.report.json").read_text())
    assert shipped_report["card_metrics"] == card.metrics
    new_float = torch.load(second / "psnn_float.pt", weights_only=False)["state_dict"]
    old_float = torch.load(first / "psnn_float.pt", weights_only=False)["state_dict"]
    assert any(not torch.equal(new_float[k], old_float[k]) for k in new_float)
    assert (second / "training_curve.png").read_bytes() == (first / "training_curve.png").read_bytes()
