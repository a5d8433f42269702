"""petlib.evaluation.compare: trained runs scored, laid out as tables, and their examples drawn -- fast, offline, on the sample."""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from petlib.data import SAMPLE_ROOT, read_split
from petlib.evaluation.compare import (
    ModelResult,
    TrainedRun,
    difference_table,
    group_scores,
    lab_reference_table,
    load_run,
    paired_bootstrap,
    pick_examples,
    prediction_panels,
    score_checkpoint,
    show_examples,
    species_table,
    summary_table,
    time_inference,
    training_table,
)
from petlib.evaluation.plots import OUTCOME_COLORS, show_predictions
from petlib.models import build_model
from petlib.training.checkpoint import save_checkpoint
from petlib.training.config import TrainConfig

# --------------------------------------------------------------------------- comparison


def test_group_scores():
    scores = group_scores([1.0, 0.0, 0.5, 0.7], ["dog", "cat", "cat", "dog"])
    assert list(scores) == ["cat", "dog"]
    assert scores["cat"] == {"mean": 0.25, "median": 0.25, "count": 2}
    assert scores["dog"]["mean"] == pytest.approx(0.85)
    with pytest.raises(ValueError):
        group_scores([1.0], ["cat", "dog"])


def test_pick_examples_best_typical_worst_are_distinct():
    scores = np.array([0.9, 0.1, 0.5, 0.95, 0.52, 0.3, 0.8, 0.49])
    picks = pick_examples(scores, k=2)
    assert picks["best"] == [3, 0] and picks["worst"] == [5, 1]
    assert sorted(picks["typical"]) == [2, 4]  # nearest the median (0.51) among the rest
    small = pick_examples([0.2, 0.8], k=2)
    assert sorted(small["best"] + small["typical"] + small["worst"]) == [0, 1]


def test_paired_bootstrap():
    low, high = paired_bootstrap([0.5] * 10, [0.6] * 10)
    assert low == pytest.approx(0.1) and high == pytest.approx(0.1)
    assert all(np.isnan(paired_bootstrap([0.5], [0.6])))


def test_time_inference_restores_the_mode():
    model = nn.Conv2d(3, 1, 3, padding=1).train()
    seconds = time_inference(model, 16, batch_size=2, repeats=2)
    assert seconds > 0 and model.training


def _fake_run(name: str, tmp_path: Path, image_size: int = 32, history=None) -> TrainedRun:
    history = history or [{"epoch": 1, "train_loss": 1.0, "val_loss": 0.9, "val_dice": 0.5},
                          {"epoch": 2, "train_loss": 0.8, "val_loss": 0.8, "val_dice": 0.6}]
    config = TrainConfig(model=name, data_path=str(SAMPLE_ROOT), image_size=image_size, epochs=len(history))
    torch.manual_seed(0)
    model = build_model(name)
    save_checkpoint({"model_name": name, "model_kwargs": {}, "model_state": model.state_dict(),
                     "config": config.to_dict(), "history": history, "epoch": 2, "best_dice": 0.6},
                    tmp_path / f"{name}.pth")
    return load_run(tmp_path, name)


def test_load_run_reads_checkpoint_and_history_and_says_which_notebook_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="02_train_unet.ipynb"):
        load_run(tmp_path, "unet")
    run = _fake_run("resnet34_unet", tmp_path)
    assert run.epoch == 2 and run.config.image_size == 32 and [r["epoch"] for r in run.history] == [1, 2]
    (tmp_path / "resnet34_unet_history.csv").write_text(
        "epoch,train_loss,val_loss,val_dice,val_iou,lr,seconds\n1,1,1,0.1,0.1,0.001,1\n2,1,1,0.2,0.1,0.001,1\n"
        "3,1,1,0.3,0.2,0.001,1\n")
    assert len(load_run(tmp_path, "resnet34_unet").history) == 3  # the CSV has the whole run


@pytest.mark.slow  # notebook-scale: scores and times a ResNet34-UNet on the 60 test images
def test_score_checkpoint_and_panels_on_the_sample(tmp_path):
    run = _fake_run("resnet34_unet", tmp_path)
    result = score_checkpoint(run, SAMPLE_ROOT, "test", batch_size=8, time_repeats=1, device="cpu")
    assert result.label == "ResNet34-UNet" and result.params == 24_436_369
    assert result.dice.shape == result.iou.shape == (60,) and result.seconds_per_image > 0
    entries = read_split(SAMPLE_ROOT, "test")
    images, truths, predictions = prediction_panels([result], SAMPLE_ROOT, entries, [0, 5])
    assert len(images) == len(truths) == len(predictions["ResNet34-UNet"]) == 2
    assert predictions["ResNet34-UNet"][1].shape == truths[1].shape == images[1].shape[:2]
    assert "ResNet34-UNet" in summary_table([result])
    assert "cat" in species_table([result], [e.species for e in entries])
    figure = show_predictions(images, truths, predictions, ["best: a", "worst: b"],
                              scores={"ResNet34-UNet": result.dice[[0, 5]]})
    assert len(figure.axes) == 6
    table = lab_reference_table([result])
    assert "0.8731" in table and "0.8777" in table and "course lab (reported)" in table and "embedded sample" in table


def _result(label: str, dice: np.ndarray, run: TrainedRun, seconds: float, params: int) -> ModelResult:
    return ModelResult(label=label, run=run, model=nn.Identity(), params=params, dice=dice, iou=dice * 0.8,
                       seconds_per_image=seconds, device="cpu")


def _runs(data_path: str, epochs: int = 2, subset: int | None = None):
    history = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.0 / e, "val_dice": 0.5 + 0.1 * e}
               for e in range(1, epochs + 1)]
    config = TrainConfig(data_path=data_path, image_size=64, epochs=epochs, subset=subset)
    return (TrainedRun("unet", Path("u.pth"), history, config, epochs),
            TrainedRun("resnet34_unet", Path("r.pth"), history, config, epochs))


def test_training_table_shows_the_best_epoch_and_the_lowest_validation_loss():
    history = [{"epoch": 1, "train_loss": 1.0, "val_loss": 0.50, "val_dice": 0.60},
               {"epoch": 2, "train_loss": 0.8, "val_loss": 0.40, "val_dice": 0.70},
               {"epoch": 3, "train_loss": 0.6, "val_loss": 0.55, "val_dice": 0.65}]
    run = TrainedRun("unet", Path("u.pth"), history, TrainConfig(model="unet", epochs=3), 2)
    nan = float("nan")
    unvalidated = TrainedRun("resnet34_unet", Path("r.pth"), [{**row, "val_loss": nan, "val_dice": nan}
                                                              for row in history], TrainConfig(epochs=3), 3)
    header, _, unet, resnet = training_table([run, unvalidated]).splitlines()
    assert header.split() == ["model", "epochs", "best", "epoch", "val", "Dice", "best", "val", "Dice", "last", "val",
                              "loss", "lowest", "at", "epoch", "val", "loss", "last"]
    assert unet.split() == ["UNet", "3", "2", "0.7000", "0.6500", "0.4000", "2", "0.5500"]
    assert resnet.split() == ["ResNet34-UNet", "3", "3", "-", "-", "-", "-", "-"]


def test_difference_table_pairs_the_images_and_says_how_sure():
    a = np.linspace(0.5, 0.9, 40)
    run_a, run_b = _runs("/data/oxford-iiit-pet")
    results = [_result("UNet", a, run_a, 0.01, 1), _result("ResNet34-UNet", a + 0.05, run_b, 0.01, 1)]
    header, _, dice, iou = difference_table(results).splitlines()
    assert header.split()[:4] == ["score", "UNet", "ResNet34-UNet", "difference"]
    assert "ResNet34-UNet higher on" in header
    # Every image 0.05 higher: the difference and both ends of its interval are +0.05, on all 40 images.
    assert dice.split()[3:] == ["+0.0500", "+0.0500", "to", "+0.0500", "40", "of", "40", "images"]
    assert iou.split()[0] == "IoU" and iou.split()[3] == "+0.0400"  # _result's IoU is 0.8 Dice
    # Noise around zero: an interval that includes it.
    rng = np.random.default_rng(1)
    noisy = [_result("UNet", a, run_a, 0.01, 1), _result("ResNet34-UNet", a + rng.normal(0, 0.05, 40), run_b, 0.01, 1)]
    low, _, high = difference_table(noisy).splitlines()[2].split()[4:7]
    assert float(low) < 0 < float(high)
    one = [_result("UNet", a[:1], run_a, 0.01, 1), _result("ResNet34-UNet", a[:1], run_b, 0.01, 1)]
    assert difference_table(one).splitlines()[2].split()[4] == "-"  # one image: no interval
    with pytest.raises(ValueError, match="two models"):
        difference_table(results[:1])
    with pytest.raises(ValueError, match="same split"):
        difference_table([results[0], _result("ResNet34-UNet", a[:10], run_b, 0.01, 1)])


def _tiny_result(label: str, dice: np.ndarray, seed: int) -> ModelResult:
    """A 4-channel UNet that predicts at 16 px, as if scored on the sample's test split."""
    torch.manual_seed(seed)
    config = TrainConfig(model="unet", data_path=str(SAMPLE_ROOT), image_size=16, epochs=1, tta=False)
    run = TrainedRun("unet", Path("u.pth"), [], config, 1)
    return ModelResult(label=label, run=run, model=build_model("unet", base_channels=4).eval(), params=1,
                       dice=dice, iou=dice, seconds_per_image=0.01, device="cpu")


def test_show_examples_draws_best_typical_and_worst_with_each_models_errors():
    dice = np.linspace(0.2, 0.9, 60)  # the sample's 60 test images, the last one best
    names = [entry.name for entry in read_split(SAMPLE_ROOT, "test")]
    figure = show_examples([_tiny_result("UNet", dice, 0)], SAMPLE_ROOT, k=1)
    rows = np.array(figure.axes).reshape(3, 3)  # best, typical, worst; photo, true mask, UNet
    assert [ax.get_title() for ax in rows[:, 0]] == [f"best: {names[59]}", f"typical: {names[29]}",
                                                     f"worst: {names[0]}"]
    assert rows[0, 2].get_title() == "UNet: Dice 0.900" and rows[2, 2].get_title() == "UNet: Dice 0.200"
    assert [t.get_text() for t in figure.legends[0].get_texts()] == list(OUTCOME_COLORS)
    plt.close(figure)
    # Two models: ranked by their mean Dice, one column each.
    figure = show_examples([_tiny_result("UNet", dice, 0), _tiny_result("other", dice[::-1].copy(), 1)],
                           SAMPLE_ROOT, k=2)
    assert len(figure.axes) == 6 * 4
    plt.close(figure)
    with pytest.raises(ValueError, match="60 test images"):
        show_examples([_tiny_result("UNet", dice[:10], 0)], SAMPLE_ROOT)
