"""petlib.training.settings: the notebooks' one switch (full dataset, embedded sample, quick) and their settings table."""
from pathlib import Path

import pytest

from petlib.data import SAMPLE_ROOT, DatasetNotFoundError
from petlib.training.config import SAMPLE_SETTINGS, TrainConfig
from petlib.training.settings import (
    QUICK_DIR,
    QUICK_SETTINGS,
    REPO_ROOT,
    SAMPLE_SUBDIR,
    config_mode,
    notebook_config,
    quick_mode,
    require_dataset,
    run_mode,
    settings_row,
)


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
    assert config_mode(config, {}) == "full"


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
    assert config_mode(config, {}) == "sample"


def test_quick_mode_uses_the_sample_and_a_temp_folder_never_saved_models():
    config = notebook_config(TrainConfig(out_dir="saved_models", image_size=256, epochs=50), {"PETLIB_QUICK": "1"})
    assert Path(config.data_path) == SAMPLE_ROOT
    assert Path(config.out_dir) == QUICK_DIR
    assert "saved_models" not in config.out_dir
    for field, value in QUICK_SETTINGS.items():
        assert getattr(config, field) == value
    assert config.subset and config.overwrite and not config.save_last  # a few images, replaced, no 0.4 GB resume file
    assert config_mode(config, {"PETLIB_QUICK": "1"}) == "quick"


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


def test_settings_row_is_plain_values_for_a_table():
    row = settings_row(TrainConfig(data_path=str(SAMPLE_ROOT), subset=16, image_size=64, epochs=2), {})
    assert row["model"] == "ResNet34-UNet" and row["mode"] == "sample"
    assert row["data"] == "dataset/oxford-iiit-pet-sample"  # relative to the repository, as a reader's checkout has it
    assert (row["subset"], row["image_size"], row["epochs"]) == (16, 64, 2)
    row = settings_row(TrainConfig(model="unet", data_path="/data/oxford-iiit-pet", lr=None), {})
    assert (row["model"], row["mode"], row["data"]) == ("UNet", "full", "/data/oxford-iiit-pet")
    assert row["subset"] == "all" and row["lr"] == "0.0003" and row["tta"] is True
    assert settings_row(TrainConfig(data_path=str(SAMPLE_ROOT)), {"PETLIB_QUICK": "1"})["mode"] == "quick"
