"""A model folder (model.safetensors, config.json, README.md): saved from a checkpoint or a model, loaded back."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import petlib
from petlib.data import SAMPLE_ROOT
from petlib.models import build_model
from petlib.training.card import card_paths, read_card, record_test_score
from petlib.training.checkpoint import CheckpointError, load_model, save_checkpoint
from petlib.training.pretrained import FOLDER_FILES, save_pretrained

HISTORY = [{"epoch": 1, "train_loss": 0.9, "val_loss": 0.8, "val_dice": 0.55, "val_iou": 0.4, "seconds": 2.0},
           {"epoch": 2, "train_loss": 0.7, "val_loss": 0.6, "val_dice": 0.65, "val_iou": 0.5, "seconds": 2.0}]


@pytest.fixture
def checkpoint(tmp_path, tiny_config) -> Path:
    """A 4-channel UNet's checkpoint as fit writes it (random weights: no training needed), scored once on test."""
    torch.manual_seed(0)
    model = build_model("unet", base_channels=4)
    config = tiny_config(tmp_path / "models")
    path = save_checkpoint({"model_name": "unet", "model_kwargs": config.model_kwargs, "model_state": model.state_dict(),
                            "config": config.to_dict(), "history": HISTORY, "epoch": 2, "best_dice": 0.65},
                           tmp_path / "models" / "unet.pth")
    record_test_score(path, {"dice": 0.6, "iou": 0.45, "count": 60, "image_size": 16, "tta": True, "validated_tta": True,
                             "epoch": 2, "model_name": "unet", "dice_per_image": torch.linspace(0.5, 0.7, 60)},
                      data_path=SAMPLE_ROOT)
    return path


def same_logits(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    images = torch.rand(2, 3, 24, 40, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        return torch.equal(a(images), b(images))


def test_a_checkpoint_becomes_a_folder_that_loads_as_the_same_model(checkpoint, tmp_path):
    folder = petlib.save_pretrained(checkpoint, tmp_path / "pets-unet")
    assert sorted(p.name for p in folder.iterdir()) == sorted(FOLDER_FILES)
    model, info = petlib.load_model(folder)
    original, _ = load_model(checkpoint)
    assert same_logits(model, original) and not model.training
    assert (info["model_name"], info["epoch"], info["best_dice"]) == ("unet", 2, 0.65)
    assert info["config"]["image_size"] == 16 and info["config"]["tta"] is True  # what petlib-predict reads
    config = json.loads((folder / "config.json").read_text())
    assert config["library_name"] == "petlib" and config["model_kwargs"] == {"base_channels": 4}
    assert (config["image_size"], config["tta"], config["validation_dice"]) == (16, True, 0.65)
    assert config["train_config"]["data_path"] == "dataset/oxford-iiit-pet-sample"
    # model.safetensors alone is a state_dict, readable by the safetensors library without petlib.
    from safetensors.torch import load_file

    assert load_file(folder / "model.safetensors").keys() == original.state_dict().keys()
    assert petlib.load_model(folder / "model.safetensors")[1]["model_name"] == "unet"


def test_the_folder_card_carries_the_test_scores_and_no_machine_path(checkpoint, tmp_path):
    folder = save_pretrained(checkpoint, tmp_path / "pets-unet")
    readme = (folder / "README.md").read_text()
    assert readme.startswith("---\nlicense: cc-by-sa-4.0\nlibrary_name: petlib\n") and "model-index:" in readme
    assert "**0.6000**" in readme and 'petlib.load_model("pets-unet")' in readme
    assert 'load_file("pets-unet/model.safetensors")' in readme and "to_smp" not in readme  # a UNet
    card = read_card(folder)
    assert card["layout"] == "folder" and card["checkpoint"] == "pets-unet" and [t["dice"] for t in card["test"]] == [0.6]
    for name in FOLDER_FILES[1:]:
        text = (folder / name).read_text()
        assert str(tmp_path) not in text and str(SAMPLE_ROOT) not in text and str(Path.home()) not in text, name


def test_petlib_eval_scores_recorded_on_a_folder_go_into_its_readme(checkpoint, tmp_path):
    folder = save_pretrained(checkpoint, tmp_path / "pets-unet")
    record_test_score(folder, {"dice": 0.7, "iou": 0.55, "count": 60, "image_size": 32, "tta": False,
                               "validated_tta": True, "epoch": 2, "model_name": "unet"}, data_path=SAMPLE_ROOT)
    assert card_paths(folder) == (folder / "card.json", folder / "README.md")
    assert [t["dice"] for t in read_card(folder)["test"]] == [0.6, 0.7]
    assert "**0.7000**" in (folder / "README.md").read_text()


def test_a_model_object_is_saved_with_its_kwargs_checked(tmp_path):
    model = build_model("unet", base_channels=4)
    with pytest.raises(ValueError, match=r"model_kwargs=\.\.\."):
        save_pretrained(model, tmp_path / "wrong")  # built with base_channels=4, saved as the default 64
    assert not (tmp_path / "wrong").exists()
    folder = save_pretrained(model, tmp_path / "object", model_kwargs={"base_channels": 4}, image_size=48)
    loaded, info = load_model(folder)
    assert same_logits(model.eval(), loaded) and info["config"] == {"image_size": 48, "tta": False}
    readme = (folder / "README.md").read_text()
    assert "Not recorded: these weights were saved from a model object" in readme and "48x48 px" in readme
    with pytest.raises(ValueError, match="petlib model"):
        save_pretrained(torch.nn.Conv2d(3, 1, 1), tmp_path / "conv")


def test_a_resnet34_unet_card_says_how_to_reach_smp(tmp_path):
    folder = save_pretrained(build_model("resnet34_unet"), tmp_path / "r34", image_size=32)
    assert "petlib.models.to_smp(model)" in (folder / "README.md").read_text()


def test_an_earlier_save_is_kept_unless_overwrite(checkpoint, tmp_path):
    folder = save_pretrained(checkpoint, tmp_path / "pets-unet")
    (folder / "notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_pretrained(build_model("unet", base_channels=4), folder, model_kwargs={"base_channels": 4})
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    save_pretrained(build_model("unet", base_channels=4), folder, model_kwargs={"base_channels": 4}, overwrite=True)
    assert (folder / "notes.txt").read_text() == "mine" and read_card(folder)["source"] == "model"
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        save_pretrained(checkpoint, tmp_path / "file")


def test_a_folder_that_is_not_a_model_is_a_clear_error(checkpoint, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match=r"not a petlib model folder: it has no model.safetensors and no config.json"):
        load_model(empty)
    folder = save_pretrained(checkpoint, tmp_path / "pets-unet")
    (folder / "model.safetensors").write_bytes(b"cut short")
    with pytest.raises(CheckpointError, match=r"could not read .*model.safetensors"):
        load_model(folder)
    (folder / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="does not name a model"):
        load_model(folder)
