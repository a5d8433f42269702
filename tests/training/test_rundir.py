"""petlib.training.rundir.RunPaths: every file of a run, named in one place, as fit writes them."""
import dataclasses
from pathlib import Path

import pytest

from petlib.training.card import card_paths
from petlib.training.rundir import RunPaths


def test_every_file_of_a_run():
    paths = RunPaths("saved_models", "unet")
    assert paths.out_dir == Path("saved_models")
    assert [p.name for p in (paths.best, paths.last, paths.history, paths.curves, paths.card_json, paths.card_md,
                             paths.config)] == [
        "unet.pth", "unet_last.pth", "unet_history.csv", "unet_curves.png", "unet_card.json", "unet_card.md",
        "unet_config.json"]
    assert all(p.parent == Path("saved_models") for p in (paths.best, paths.config))


def test_of_checkpoint_finds_the_run_of_a_best_checkpoint(tmp_path):
    paths = RunPaths.of_checkpoint(tmp_path / "petlib_cv1.pth")
    assert paths == RunPaths(tmp_path, "petlib_cv1")
    assert card_paths(paths.best) == (paths.card_json, paths.card_md)


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunPaths("out", "unet").name = "other"
