"""The model card beside each best checkpoint: its fields, its Hugging Face layout, and the test score added later."""
import json
import os
import shutil
from pathlib import Path

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
    assert (data["kind"], data["folder"]) == ("sample", "oxford-iiit-pet-sample") and "300-image sample" in data["dataset"]
    assert "data_path" not in data and card["config"]["data_path"] == "dataset/oxford-iiit-pet-sample"
    assert data["images"] == {"train": 8, "valid": 8} and data["subset"] == 8
    assert "every 10th line of annotations/trainval.txt" in data["split"] and "CC BY-SA 4.0" in data["licence"]
    # petlib's recipe trains without validation, a UNet in batches of 8; this run validates, in batches of 4
    # (conftest's tiny_config).
    assert card["recipe"]["closest"] == "petlib" and card["recipe"]["changed"] == {"batch_size": 4, "validate": True}
    assert card["recipe"]["settings"]["loss"] == "bce+dice" and card["recipe"]["settings"]["lr"] == 3e-4
    # The knobs that are off (Dice weight 1, no weight average, no copy-paste) are left out.
    assert not {"dice_weight", "ema_decay", "copy_paste"} & set(card["recipe"]["settings"])
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
    assert text.startswith("---\nlicense: cc-by-sa-4.0\nlibrary_name: petlib\n")
    assert "\n# unet: a U-Net for pet segmentation (petlib)\n" in text
    assert f"Validation Dice **{run.best_dice:.4f}**" in text and "8 train, 8 valid images" in text
    assert "2 of 2 epochs (finished) at 16 px" in text
    assert "Test split: not scored yet (`petlib-eval --model_path unet.pth" in text
    assert "model-index" not in text  # no test score to index yet


def test_record_test_score_adds_one_score_per_policy(copy):
    record_test_score(copy, scored_result(copy, 0.61), data_path=SAMPLE_ROOT)
    record_test_score(copy, scored_result(copy, 0.62), data_path=SAMPLE_ROOT)  # the same policy: replaces
    record_test_score(copy, scored_result(copy, 0.55, tta=False), data_path=SAMPLE_ROOT)  # another: kept beside
    tests = read_card(copy)["test"]
    assert [(t["dice"], t["tta"], t["as_validated"]) for t in tests] == [(0.62, True, True), (0.55, False, False)]
    assert tests[0]["images"] == 60 and (tests[0]["split"], tests[0]["kind"]) == ("test", "sample")
    assert tests[0]["checkpoint_epoch"] == read_card(copy)["training"]["best_epoch"]
    assert "averaged over the 60 images" in tests[0]["policy"] and "without TTA" in tests[1]["policy"]
    text = card_paths(copy)[1].read_text()
    assert "**0.6200**" in text and "**0.5500**" in text and "| no |" in text and "not scored yet" not in text


def test_a_checkpoint_without_a_card_gets_one_from_the_checkpoint(copy):
    for path in card_paths(copy):
        path.unlink()
    record_test_score(copy, scored_result(copy), data_path=SAMPLE_ROOT)
    card = read_card(copy)
    assert card["source"] == "checkpoint" and card["training"]["best_epoch"] == scored_result(copy)["epoch"]
    assert card["model"]["parameters"] > 0 and len(card["test"]) == 1
    assert card["versions"]["trained_with_petlib"] == petlib.__version__
    assert "this card was made from the checkpoint" in card_paths(copy)[1].read_text()


def test_a_card_of_other_weights_is_rebuilt_before_a_score_goes_in(copy):
    card = read_card(copy)
    card["training"]["best_epoch"] = card["training"]["kept_epoch"] = 99  # a card left from another run's checkpoint
    card["test"] = [{**scored_result(copy), "dice": 0.99, "split": "test", "kind": "sample", "images": 60}]
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


# ----------------------------------------------------------------------------- the card as shared


def test_one_test_row_per_split_size_and_tta_whatever_the_path_spelling(copy, monkeypatch):
    monkeypatch.chdir(copy.parent)
    relative = os.path.relpath(SAMPLE_ROOT)
    assert not Path(relative).is_absolute()
    record_test_score(copy, scored_result(copy, 0.61), data_path=relative)
    record_test_score(copy, scored_result(copy, 0.63), data_path=SAMPLE_ROOT)  # the same data, spelt absolutely
    record_test_score(copy, scored_result(copy, 0.64), data_path=str(SAMPLE_ROOT) + "/")
    assert [row["dice"] for row in read_card(copy)["test"]] == [0.64]


def test_no_path_of_the_machine_is_in_a_card(copy):
    record_test_score(copy, scored_result(copy), data_path=SAMPLE_ROOT)
    machine = [str(Path.home()), str(SAMPLE_ROOT.parent), str(copy.parent)]
    for path in card_paths(copy):
        text = path.read_text()
        assert not [place for place in machine if place in text], path
    card = read_card(copy)
    assert not Path(card["config"]["out_dir"]).is_absolute() and card["checkpoint"] == "unet.pth"


def test_the_markdown_header_is_yaml_with_the_recorded_test_scores(copy):
    yaml = pytest.importorskip("yaml")
    record_test_score(copy, {**scored_result(copy, 0.61), "dice_per_image": torch.linspace(0.4, 0.8, 60)},
                      data_path=SAMPLE_ROOT)
    text = card_paths(copy)[1].read_text()
    header = yaml.safe_load(text.split("---\n")[1])
    assert header["license"] == "cc-by-sa-4.0" and header["library_name"] == "petlib"
    assert header["datasets"] == ["oxford-iiit-pet"] and header["metrics"] == ["dice", "iou"]
    assert "image-segmentation" in header["tags"] and "unet" in header["tags"]
    [result] = header["model-index"][0]["results"]
    assert result["dataset"]["split"] == "test"
    assert [(m["type"], m["value"]) for m in result["metrics"]] == [("dice", 0.61), ("iou", 0.51)]
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections == ["## Model", "## Intended use", "## Training data", "## Training procedure", "## Evaluation",
                        "## Limitations", "## How to load it", "## Licence"]
    assert "**3 breeds**" in text and "**300 images**" in text and "at **16 px**" in text
    assert 'petlib.load_model("unet.pth")' in text and 'torch.load("unet.pth", weights_only=True)' in text
    # The per-image Dice and its interval: mean of 0.4..0.8 is 0.6, the interval around it.
    interval = read_card(copy)["test"][0]["dice_per_image"]
    assert interval["mean"] == pytest.approx(0.6) and interval["low"] < 0.6 < interval["high"]
    assert f"{interval['mean']:.4f} [{interval['low']:.4f}, {interval['high']:.4f}]" in text


def test_a_card_of_the_first_layout_is_rewritten_without_its_paths_and_keeps_its_scores(copy):
    card = read_card(copy)
    old_row = {"dice": 0.5, "iou": 0.4, "images": 60, "dataset": "Oxford-IIIT Pet, the 300-image sample shipped with "
               "petlib", "data_path": str(SAMPLE_ROOT), "image_size": 16, "tta": False, "as_validated": False,
               "checkpoint_epoch": card["training"]["best_epoch"], "policy": "...", "scored": "earlier"}
    card.update(card_format=1, test=[old_row])
    card["data"]["data_path"] = str(SAMPLE_ROOT)
    card_paths(copy)[0].write_text(json.dumps(card))
    record_test_score(copy, scored_result(copy, 0.61), data_path=SAMPLE_ROOT)
    card = read_card(copy)
    assert card["card_format"] == 2 and [(row["dice"], row["tta"]) for row in card["test"]] == [(0.5, False), (0.61, True)]
    assert str(SAMPLE_ROOT) not in card_paths(copy)[0].read_text()


def test_the_card_names_the_knobs_a_run_turns_on():
    from petlib.training.card import build_card

    config = TrainConfig(model="unet", dice_weight=2.0, ema_decay=0.98, copy_paste=0.5)
    settings = build_card(config, [], checkpoint_path="unet.pth", parameters=1)["recipe"]["settings"]
    assert (settings["dice_weight"], settings["ema_decay"], settings["copy_paste"]) == (2.0, 0.98, 0.5)
