"""What the notebooks compute (petlib.evaluation.compare, petlib.data.survey, petlib.training.settings) and the plotting helpers they use: fast, offline, on the sample."""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from torch import nn

from petlib.data import SAMPLE_ROOT, DatasetNotFoundError, SplitEntry, read_split
from petlib.data.survey import count_table, foreground_fractions, odd_images, read_example, read_splits, survey_images
from petlib.evaluation.compare import (
    ModelResult,
    TrainedRun,
    group_scores,
    lab_reference_table,
    load_run,
    paired_bootstrap,
    pick_examples,
    prediction_panels,
    score_checkpoint,
    species_table,
    summary_table,
    time_inference,
    written_reading,
)
from petlib.evaluation.plots import (
    colorize_trimap,
    error_overlay,
    plot_histograms,
    plot_history,
    plot_image_sizes,
    show_grid,
    show_predictions,
    trimap_key,
)
from petlib.evaluation.tables import format_table
from petlib.models import build_model
from petlib.training.checkpoint import save_checkpoint
from petlib.training.config import SAMPLE_SETTINGS, TrainConfig
from petlib.training.settings import (
    QUICK_DIR,
    QUICK_SETTINGS,
    REPO_ROOT,
    SAMPLE_SUBDIR,
    config_mode,
    describe_run,
    mode_banner,
    notebook_config,
    quick_mode,
    require_dataset,
    run_mode,
)

# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize("value, expected", [("1", True), ("TRUE", True), ("yes", True), ("", False), ("0", False)])
def test_quick_mode_reads_the_variable(value, expected):
    assert quick_mode({"PETLIB_QUICK": value}) is expected
    assert quick_mode({}) is False


def test_quick_mode_rejects_a_typo():
    with pytest.raises(ValueError, match="PETLIB_QUICK"):
        quick_mode({"PETLIB_QUICK": "ture"})


def test_settings_cell_values_pass_through_with_paths_from_the_repo_root(tmp_path):
    # The full dataset's layout (empty files will do: only its presence is checked here).
    full = tmp_path / "oxford-iiit-pet"
    (full / "images").mkdir(parents=True)
    (full / "annotations" / "trimaps").mkdir(parents=True)
    for name in ("trainval.txt", "test.txt"):
        (full / "annotations" / name).write_text("")
    cell = TrainConfig(model="unet", data_path=str(full), image_size=128, epochs=7, out_dir="saved_models")
    assert run_mode(cell.data_path, {}) == "full"
    config = notebook_config(cell, environ={})
    assert (config.image_size, config.epochs, config.model) == (128, 7, "unet")
    assert Path(config.data_path) == full
    assert Path(config.out_dir) == REPO_ROOT / "saved_models"
    assert config_mode(config, {}) == "full" and mode_banner(config, {}).startswith("FULL DATASET")


@pytest.mark.parametrize("model", ["unet", "resnet34_unet"])
def test_without_the_full_dataset_the_notebooks_use_the_sample_with_make_runs_settings(tmp_path, model):
    cell = TrainConfig(model=model, data_path=str(tmp_path / "nothing-here"), image_size=256, epochs=50,
                       out_dir="saved_models")
    assert run_mode(cell.data_path, {}) == "sample"
    config = notebook_config(cell, environ={})
    assert Path(config.data_path) == SAMPLE_ROOT
    assert Path(config.out_dir) == REPO_ROOT / "saved_models" / SAMPLE_SUBDIR
    for field, value in SAMPLE_SETTINGS[model].items():
        assert getattr(config, field) == value
    assert config.subset is None and not config.overwrite  # the whole sample; earlier runs are kept
    banner = mode_banner(config, {})
    assert banner.startswith("EMBEDDED SAMPLE") and "python -m petlib.data download" in banner


def test_quick_mode_uses_the_sample_and_a_temp_folder_never_saved_models():
    config = notebook_config(TrainConfig(out_dir="saved_models", image_size=256, epochs=50), {"PETLIB_QUICK": "1"})
    assert Path(config.data_path) == SAMPLE_ROOT
    assert Path(config.out_dir) == QUICK_DIR
    assert "saved_models" not in config.out_dir
    for field, value in QUICK_SETTINGS.items():
        assert getattr(config, field) == value
    assert config.subset and config.overwrite and not config.save_last  # a few images, replaced, no 0.4 GB resume file
    assert mode_banner(config, {"PETLIB_QUICK": "1"}).startswith("QUICK MODE")


def test_environment_variables_override_the_cell_and_quick_mode():
    env = {"PETLIB_QUICK": "1", "PETLIB_EPOCHS": "3", "PETLIB_LR": "0.01", "PETLIB_LOSS": "dice"}
    config = notebook_config(TrainConfig(), env)
    assert (config.epochs, config.lr, config.loss) == (3, 0.01, "dice")
    assert Path(config.data_path) == SAMPLE_ROOT


def test_a_bad_override_names_the_variable():
    with pytest.raises(ValueError, match="PETLIB_IMAGE_SIZE"):
        notebook_config(TrainConfig(), {"PETLIB_IMAGE_SIZE": "big"})


def test_quick_mode_refuses_to_write_into_saved_models():
    with pytest.raises(ValueError, match="quick mode"):
        notebook_config(TrainConfig(), {"PETLIB_QUICK": "1", "PETLIB_OUT_DIR": "saved_models"})


def test_missing_dataset_says_where_it_looked_and_what_to_do(tmp_path):
    with pytest.raises(DatasetNotFoundError) as error:
        require_dataset(tmp_path / "oxford-iiit-pet")
    message = str(error.value)
    assert str(tmp_path / "oxford-iiit-pet") in message
    assert "python -m petlib.data download" in message and "300-image sample" in message
    assert require_dataset(SAMPLE_ROOT) == SAMPLE_ROOT


def test_describe_run_names_the_data_and_the_scoring():
    assert describe_run(TrainConfig(data_path=str(SAMPLE_ROOT))).startswith("ResNet34-UNet on the embedded sample at")
    assert "(16 images per split)" in describe_run(TrainConfig(data_path=str(SAMPLE_ROOT), subset=16))
    line = describe_run(TrainConfig(model="unet", data_path="/data/oxford-iiit-pet", lr=None))
    assert line.startswith("UNet on oxford-iiit-pet") and "lr 0.0003" in line and "flip TTA on" in line


# --------------------------------------------------------------------------- dataset survey


def test_split_and_species_counts_of_the_sample():
    splits = read_splits(SAMPLE_ROOT)
    assert {mode: len(entries) for mode, entries in splits.items()} == {"train": 216, "valid": 24, "test": 60}
    rows = count_table(splits, "species")
    assert [row["species"] for row in rows] == ["cat", "dog"]
    assert sum(row["total"] for row in rows) == 300
    assert {row["species"]: row["total"] for row in rows} == {"cat": 200, "dog": 100}
    breeds = {row["breed"]: row for row in count_table(splits, "breed")}
    assert breeds["Bengal"]["species"] == "cat" and breeds["Bengal"]["total"] == 100


def test_survey_finds_the_gif_named_jpg_and_its_empty_trimap():
    infos = survey_images(SAMPLE_ROOT)
    assert len(infos) == 302  # 300 listed + the two files the release lists in no split
    assert sorted(i.name for i in infos if not i.listed) == ["Abyssinian_34", "Abyssinian_82"]
    odd = odd_images(infos)
    assert ("Abyssinian_34", "GIF", False) in [(i.name, i.format, i.listed) for i in odd]
    entries = read_split(SAMPLE_ROOT, "train")[:20]
    fractions = foreground_fractions(SAMPLE_ROOT, entries)
    assert fractions.shape == (len(entries),) and ((0 < fractions) & (fractions < 1)).all()
    assert foreground_fractions(SAMPLE_ROOT, [SplitEntry("Abyssinian_34", 1, "cat", "Abyssinian")])[0] == 0
    image, trimap = read_example(SAMPLE_ROOT, "Abyssinian_34")
    assert image.dtype == np.uint8 and image.shape[2] == 3 and trimap.shape == image.shape[:2]


def test_format_table_aligns_and_formats():
    text = format_table([{"model": "UNet", "params": 31031745, "dice": 0.5, "note": None},
                         {"model": "ResNet34-UNet", "params": 1, "dice": float("nan"), "note": "x"}])
    lines = text.splitlines()
    assert len(lines) == 4 and len({len(line) for line in lines[:2]}) == 1
    assert "31,031,745" in lines[2] and "0.5000" in lines[2] and lines[3].split()[2] == "-"


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


def test_written_reading_names_a_clear_winner():
    rng = np.random.default_rng(0)
    a = np.clip(rng.normal(0.80, 0.05, 400), 0, 1)
    b = np.clip(a + 0.05, 0, 1)
    species = ["cat"] * 200 + ["dog"] * 200
    run_a, run_b = _runs("/data/oxford-iiit-pet")
    text = written_reading([_result("UNet", a, run_a, 0.010, 31_031_745),
                            _result("ResNet34-UNet", b, run_b, 0.004, 24_436_369)], species)
    assert "ResNet34-UNet has the higher mean test Dice" in text and "more than chance" in text
    assert "quick" not in text and "400 test images" in text
    assert "still rising" in text and "31.0 M" in text and "2.5 times as long" in text


def test_written_reading_does_not_claim_a_difference_it_cannot_see():
    rng = np.random.default_rng(1)
    a = rng.uniform(0.6, 0.9, 40)
    b = a + rng.normal(0, 0.05, 40)
    run_a, run_b = _runs("/data/oxford-iiit-pet")
    text = written_reading([_result("UNet", a, run_a, 0.01, 1), _result("ResNet34-UNet", b, run_b, 0.01, 1)],
                           ["cat"] * 40)
    assert "not distinguishable" in text and "only 40 test images" in text


def test_written_reading_flags_quick_runs_and_sample_runs_and_checks_its_inputs():
    a, b = np.full(8, 0.5), np.full(8, 0.4)
    run_a, run_b = _runs(str(SAMPLE_ROOT))
    on_sample = written_reading([_result("UNet", a, run_a, 0.01, 1), _result("ResNet34-UNet", b, run_b, 0.01, 1)],
                                ["cat"] * 8)
    assert "trained on 216 images" in on_sample and "quick-mode" not in on_sample
    run_a, run_b = _runs(str(SAMPLE_ROOT), subset=8)
    results = [_result("UNet", a, run_a, 0.01, 1), _result("ResNet34-UNet", b, run_b, 0.01, 1)]
    assert "quick-mode run" in written_reading(results, ["cat"] * 8)
    with pytest.raises(ValueError):
        written_reading(results, ["cat"] * 7)
    with pytest.raises(ValueError):
        written_reading(results[:1], ["cat"] * 8)


# --------------------------------------------------------------------------- plotting


def test_plot_helpers_return_figures():
    trimap = np.array([[1, 2], [3, 2]], dtype=np.uint8)
    colors = colorize_trimap(trimap)
    assert colors.shape == (2, 2, 3) and (colors[0, 1] == colors[1, 1]).all() and (colors[0, 0] != colors[1, 0]).any()
    assert len(plot_histograms({"a": [0.1, 0.5], "b": [0.9]}, value_range=(0, 1)).axes) == 1
    assert len(plot_image_sizes([500, 300], [375, 500]).axes) == 2
    history = [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.2, "val_dice": 0.5},
               {"epoch": 2, "train_loss": 0.8, "val_loss": 0.9, "val_dice": 0.7}]
    figure = plot_history({"UNet": history, "ResNet34-UNet": history})
    loss_panel, dice_panel = figure.axes
    # Train and validation loss share a panel, with labelled axes; the best epoch is starred.
    assert loss_panel.get_xlabel() == "epoch" and loss_panel.get_ylabel().startswith("loss")
    assert {line.get_label() for line in loss_panel.get_lines()} >= {"UNet train", "UNet validation"}
    assert any("best: 0.700 (epoch 2)" in line.get_label() for line in dice_panel.get_lines())
    # A run without validation (NaN validation columns): its training loss only, no empty Dice panel.
    nan = float("nan")
    unvalidated = [{**row, "val_loss": nan, "val_dice": nan} for row in history]
    [loss_only] = plot_history({"UNet": unvalidated}).axes
    assert [line.get_label() for line in loss_only.get_lines()] == ["UNet train"]
    # Beside a validated run, the Dice panel shows the validated one only.
    _, dice_panel = plot_history({"all": unvalidated, "held out": history}).axes
    assert [line.get_label() for line in dice_panel.get_lines()] == ["held out", "held out best: 0.700 (epoch 2)"]


def test_error_overlay_colours_each_outcome():
    image = np.full((2, 2, 3), 100, dtype=np.uint8)
    truth = np.array([[1, 1], [0, 0]], dtype=bool)
    prediction = np.array([[1, 0], [1, 0]], dtype=bool)
    out = error_overlay(image, truth, prediction).astype(int)
    tp, fn, fp, tn = out[0, 0], out[0, 1], out[1, 0], out[1, 1]
    assert (tn == 100).all()  # true background untouched
    assert tp[1] > tp[0] and tp[1] > tp[2]  # green
    assert fp[0] > fp[1] and fp[2] > fp[1]  # magenta
    assert fn[2] > fn[0] and fn[2] > fn[1]  # blue
    with pytest.raises(ValueError):
        error_overlay(image, truth, prediction[:1])


def test_histograms_are_step_lines_and_grids_carry_a_colour_key():
    figure = plot_histograms({"a": [0.1, 0.5], "b": [0.9]}, value_range=(0, 1))
    assert all(patch.get_fill() is False for patch in figure.axes[0].patches)
    grid = show_grid([[np.zeros((4, 4, 3), dtype=np.uint8)]], key=trimap_key())
    assert [t.get_text() for t in grid.legends[0].get_texts()] == ["pet", "background", "border (counted as pet)"]


def test_written_reading_calls_a_species_harder_only_when_both_networks_show_a_clear_gap():
    run_a, run_b = _runs("/data/oxford-iiit-pet")
    species = ["cat"] * 50 + ["dog"] * 50

    def reading(gap_a: float, gap_b: float) -> str:
        a = np.r_[np.full(50, 0.80), np.full(50, 0.80 - gap_a)]
        b = np.r_[np.full(50, 0.85), np.full(50, 0.85 - gap_b)]
        return written_reading([_result("UNet", a, run_a, 0.01, 1), _result("ResNet34-UNet", b, run_b, 0.01, 1)],
                               species)

    assert "Both networks find dogs harder." in reading(0.05, 0.04)
    assert "neither is clearly harder" in reading(0.05, 0.01)  # one network barely differs
    assert "neither is clearly harder" in reading(0.05, -0.05)  # they disagree
