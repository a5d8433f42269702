"""The model card beside each best checkpoint: its fields, and the test score added later."""
import json
import shutil

import pytest
import torch

import petlib
from petlib.data import SAMPLE_ROOT
from petlib.models import build_model, count_parameters
from petlib.training.card import card_paths, closest_recipe, read_card, record_test_score
from petlib.training.config import TrainConfig, recipe
from petlib.training.engine import fit


def scored_result(checkpoint_path, dice: float = 0.61, tta: bool = True, count: int = 60) -> dict:
    """What evaluate_checkpoint returns for the test split of ``checkpoint_path`` (the fields record_test_score reads)."""
    epoch = torch.load(checkpoint_path, weights_only=True)["epoch"]
    return {"dice": dice, "iou": dice - 0.1, "count": count, "loss": 0.5, "model_name": "unet", "image_size": 16,
            "epoch": epoch, "tta": tta, "validated_tta": True}


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_config):
    """A finished 2-epoch tiny run (flip TTA validated, petlib's recipe)."""
    out = tmp_path_factory.mktemp("models")
    return fit(tiny_config(out), progress=False, log=None)


@pytest.fixture
def copy(run, tmp_path):
    """The run's folder, copied so that a test may change its files."""
    folder = shutil.copytree(run.best_checkpoint.parent, tmp_path / "models")
    return folder / run.best_checkpoint.name


def test_fit_writes_the_card_beside_the_best_checkpoint(run):
    json_path, md_path = card_paths(run.best_checkpoint)
    assert run.card_file == json_path and json_path.is_file() and md_path.is_file()
    assert (json_path.name, md_path.name) == ("unet_card.json", "unet_card.md")


def test_the_card_holds_what_decides_between_checkpoints(run):
    card = json.loads(run.card_file.read_text())
    best = max(run.history, key=lambda row: row["val_dice"])
    assert card["checkpoint"] == "unet.pth" and card["source"] == "fit"
    assert card["model"] == {"name": "unet", "kwargs": {"base_channels": 4},
                             "parameters": count_parameters(build_model("unet", base_channels=4))}
    data = card["data"]
    assert data["data_path"] == str(SAMPLE_ROOT) and "300-image sample" in data["dataset"]
    assert data["images"] == {"train": 8, "valid": 8} and data["subset"] == 8
    assert "every 10th line of annotations/trainval.txt" in data["split"] and "CC BY-SA 4.0" in data["licence"]
    # petlib's recipe trains without validation; this run validates (conftest's tiny_config).
    assert card["recipe"]["closest"] == "petlib" and card["recipe"]["changed"] == {"validate": True}
    assert card["recipe"]["settings"]["loss"] == "bce+dice" and card["recipe"]["settings"]["lr"] == 3e-4
    training = card["training"]
    assert training["epochs_planned"] == training["epochs_trained"] == 2 and training["finished"] is True
    assert training["best_epoch"] == best["epoch"] and training["image_size"] == 16
    assert training["wall_time_seconds"] == pytest.approx(sum(r["seconds"] for r in run.history), abs=0.06)
    assert training["device"].startswith("cpu (") and training["processes"] == 1
    validation = card["validation"]
    assert validation["dice"] == pytest.approx(run.best_dice) and validation["epoch"] == best["epoch"]
    assert validation["iou"] == pytest.approx(best["val_iou"]) and validation["images"] == 8
    assert validation["tta"] is True and "16x16 px" in validation["policy"] and "with flip TTA" in validation["policy"]
    assert "Dice per image, averaged over the 8 images" in validation["policy"]
    assert card["test"] == []
    assert card["versions"]["petlib"] == petlib.__version__ and card["versions"]["torch"] == torch.__version__
    assert card["config"]["epochs"] == 2


def test_the_markdown_card_says_the_same_and_what_is_missing(run):
    text = card_paths(run.best_checkpoint)[1].read_text()
    assert text.startswith("# Model card: unet\n")
    assert f"**{run.best_dice:.4f}**" in text and "8 train / 8 valid images" in text
    assert "2 of 2 epochs (finished) at 16 px" in text
    assert "test Dice | not scored yet: `petlib-eval --model_path unet.pth" in text


def test_record_test_score_adds_one_score_per_policy(copy):
    record_test_score(copy, scored_result(copy, 0.61), data_path=SAMPLE_ROOT)
    record_test_score(copy, scored_result(copy, 0.62), data_path=SAMPLE_ROOT)  # the same policy: replaces
    record_test_score(copy, scored_result(copy, 0.55, tta=False), data_path=SAMPLE_ROOT)  # another: kept beside
    tests = read_card(copy)["test"]
    assert [(t["dice"], t["tta"], t["as_validated"]) for t in tests] == [(0.62, True, True), (0.55, False, False)]
    assert tests[0]["images"] == 60 and tests[0]["data_path"] == str(SAMPLE_ROOT) and tests[0]["checkpoint_epoch"] == read_card(copy)["training"]["best_epoch"]
    assert "averaged over the 60 images" in tests[0]["policy"] and "without TTA" in tests[1]["policy"]
    text = card_paths(copy)[1].read_text()
    assert "**0.6200**" in text and "**0.5500**" in text and "not as validated" in text and "not scored yet" not in text


def test_a_checkpoint_without_a_card_gets_one_from_the_checkpoint(copy):
    for path in card_paths(copy):
        path.unlink()
    record_test_score(copy, scored_result(copy), data_path=SAMPLE_ROOT)
    card = read_card(copy)
    assert card["source"] == "checkpoint" and card["training"]["best_epoch"] == scored_result(copy)["epoch"]
    assert card["model"]["parameters"] > 0 and len(card["test"]) == 1
    assert card["versions"]["trained_with_petlib"] == petlib.__version__
    assert "card made from the checkpoint" in card_paths(copy)[1].read_text()


def test_a_card_of_other_weights_is_rebuilt_before_a_score_goes_in(copy):
    card = read_card(copy)
    card["training"]["best_epoch"] = 99  # a card left from another run's checkpoint
    card["test"] = [{"dice": 0.99}]
    card_paths(copy)[0].write_text(json.dumps(card))
    record_test_score(copy, scored_result(copy), data_path=SAMPLE_ROOT)
    rebuilt = read_card(copy)
    assert rebuilt["training"]["best_epoch"] != 99 and [t["dice"] for t in rebuilt["test"]] == [0.61]


def test_an_unreadable_card_is_an_error_that_names_it(copy):
    card_paths(copy)[0].write_text("{not json")
    with pytest.raises(ValueError, match=r"unet_card.json is not a readable model card"):
        record_test_score(copy, scored_result(copy), data_path=SAMPLE_ROOT)


def test_resume_keeps_the_test_score_and_a_new_run_drops_it(copy, tiny_config):
    record_test_score(copy, scored_result(copy), data_path=SAMPLE_ROOT)
    config = tiny_config(copy.parent)
    finished = fit(config, resume=True, progress=False, log=None)  # nothing left to train: same best checkpoint
    assert [t["dice"] for t in read_card(finished.best_checkpoint)["test"]] == [0.61]
    replaced = fit(tiny_config(copy.parent, epochs=1, overwrite=True), progress=False, log=None)
    card = read_card(replaced.best_checkpoint)
    assert card["test"] == [] and card["training"]["epochs_trained"] == 1


def test_closest_recipe_names_the_recipe_and_what_was_changed():
    assert closest_recipe(recipe("lab", model="unet")) == ("lab", {})
    assert closest_recipe(recipe("lab", model="unet", lr=1e-4)) == ("lab", {"lr": 1e-4})
    assert closest_recipe(TrainConfig(model="unet")) == ("petlib", {})
    assert closest_recipe(recipe("smp", model="unet", epochs=3, image_size=64)) == ("smp", {})  # not recipe settings
