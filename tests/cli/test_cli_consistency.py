"""The commands agree with each other: numbers checked alike, missing and broken inputs skipped alike,
one colour convention, help that ends in real examples, usage that names the command typed; and
what an installed package (no repository around it) says and ships."""
from __future__ import annotations

import importlib
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tomllib
import torch
from PIL import Image

from petlib.cli import common
from petlib.data import SAMPLE_ROOT, read_split
from petlib.evaluation.plots import OUTCOME_COLORS, overlay
from petlib.models import build_model
from petlib.training.card import read_card
from petlib.training.checkpoint import save_checkpoint
from petlib.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = {  # console command -> the module whose build_parser() it runs
    "petlib-train": "petlib.cli.train", "petlib-eval": "petlib.cli.evaluate", "petlib-predict": "petlib.cli.predict",
    "petlib-data": "petlib.cli.data", "petlib-export": "petlib.cli.export",
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A 4-channel UNet (random weights, no training) recorded as trained at 16 px with flip TTA."""
    torch.manual_seed(0)
    model = build_model("unet", base_channels=4)
    config = TrainConfig(model="unet", model_kwargs={"base_channels": 4}, image_size=16, epochs=1, validate=True)
    return save_checkpoint({"model_name": "unet", "model_kwargs": config.model_kwargs, "model_state": model.state_dict(),
                            "config": config.to_dict(), "history": [], "epoch": 1, "best_dice": 0.5},
                           tmp_path_factory.mktemp("models") / "unet.pth")


def parser_of(command: str):
    return importlib.import_module(COMMANDS[command]).build_parser()


def usage_error(main, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    return capsys.readouterr().err


# ----------------------------------------------------------------------------- numbers


@pytest.mark.parametrize("flags, message", [
    (["--image_size", "0"], "argument --image_size/--image-size: 0 is not a positive number"),
    (["--image_size", "-3"], "argument --image_size/--image-size: -3 is not a positive number"),
    (["--image_size", "1.5"], "argument --image_size/--image-size: not a whole number: '1.5'"),
    (["--batch_size", "0"], "argument --batch_size/--batch-size: 0 is not a positive number"),
    (["--device", "gpu"], "argument --device: not a torch device: 'gpu'"),
])
def test_eval_refuses_bad_numbers_as_train_does_before_loading_anything(tmp_path, capsys, monkeypatch, flags, message):
    evaluate, train = (importlib.import_module(f"petlib.cli.{name}") for name in ("evaluate", "train"))
    # No checkpoint at that path: reaching the model would be exit 1, not the usage error.
    err = usage_error(evaluate.main, ["--model_path", str(tmp_path / "none.pth"), *flags], capsys)
    assert err.startswith("usage: ") and message in err and not list(tmp_path.iterdir())
    if flags[0] in ("--image_size", "--batch_size") and flags[1] in ("0", "-3"):
        monkeypatch.setattr(train, "fit", lambda *args, **kwargs: pytest.fail("fit must not be reached"))
        assert "is not valid" in usage_error(train.main, flags, capsys)  # petlib-train: a usage error too


# ----------------------------------------------------------------------------- predict


def test_predict_skips_a_missing_path_and_predicts_the_rest(checkpoint, tmp_path, capsys):
    from petlib.cli.predict import main

    photos = [SAMPLE_ROOT / "images" / f"{entry.name}.jpg" for entry in read_split(SAMPLE_ROOT, "test")[:2]]
    missing = tmp_path / "missing.jpg"
    status = main([str(photos[0]), str(missing), str(photos[1]), "--model_path", str(checkpoint),
                   "--out_dir", str(tmp_path / "out"), "--device", "cpu"])
    captured = capsys.readouterr()
    assert status == 1 and captured.err == f"skipped: no image file, folder of images or matching pattern: {missing}\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        f"{p.stem}_{kind}.png" for p in photos for kind in ("mask", "overlay"))
    assert captured.out.splitlines()[-1].startswith("done: 2 of 2 photo(s) segmented")


def test_overlays_use_the_notebooks_green_with_an_outline():
    image = np.full((40, 60, 3), 100, dtype=np.uint8)
    mask = np.zeros((40, 60), dtype=bool)
    mask[10:30, 20:50] = True
    green = np.array(OUTCOME_COLORS["true positive"])
    plain, outlined = overlay(image, mask).astype(int), overlay(image, mask, outline=True).astype(int)
    assert (plain[~mask] == 100).all() and (outlined[~mask] == 100).all()  # background untouched
    tint = np.round(0.55 * 100 + 0.45 * green)
    assert (plain[mask] == tint).all() and (outlined[20, 35] == tint).all()  # inside: the green tint
    for y, x in [(10, 35), (29, 35), (20, 20), (20, 49)]:  # each side of the border: green itself
        assert (outlined[y, x] == green).all() and (plain[y, x] == tint).all()
    full = overlay(image, np.ones((40, 60), dtype=bool), outline=True)
    assert (full == tint).all()  # the photo's own edges are not outlined


def test_predict_writes_green_overlays(checkpoint, tmp_path, capsys):
    from petlib.cli.predict import main

    photo = tmp_path / "grey.png"
    Image.fromarray(np.full((32, 48, 3), 100, dtype=np.uint8)).save(photo)
    # A random untrained model: whatever it calls pet is tinted green, the rest left grey.
    assert main([str(photo), "--model_path", str(checkpoint), "--out_dir", str(tmp_path / "out"),
                 "--threshold", "0.01", "--tta", "off"]) == 0
    mask = np.asarray(Image.open(tmp_path / "out" / "grey_mask.png")) > 0
    painted = np.asarray(Image.open(tmp_path / "out" / "grey_overlay.png")).astype(int)
    assert mask.any() and (painted[~mask] == 100).all()
    assert (painted[mask][:, 1] > painted[mask][:, 0]).all() and (painted[mask][:, 1] > painted[mask][:, 2]).all()


# ----------------------------------------------------------------------------- help and usage


@pytest.mark.parametrize("command", list(COMMANDS))
def test_each_help_ends_with_real_examples(command, monkeypatch):
    monkeypatch.setattr(sys, "argv", [f"/somewhere/bin/{command}"])
    parser = parser_of(command)
    text = parser.format_help()
    assert text.startswith(f"usage: {command} ")
    tail = text[text.index("\nexamples:\n"):].strip().splitlines()[1:]
    lines = [line.strip() for line in tail if not line.strip().startswith("#")]
    assert 2 <= len(lines) <= 3 and all(line.startswith(f"{command} ") for line in lines), tail
    for line in lines:  # each example parses, and its values pass the checks the command makes
        args = parser.parse_args(shlex.split(line)[1:])
        if command == "petlib-train":
            from petlib.cli.train import config_from_args

            config_from_args(args)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_usage_names_the_command_that_was_typed(command, monkeypatch):
    monkeypatch.setattr(sys, "argv", [f"/somewhere/bin/{command}"])
    assert parser_of(command).format_usage().startswith(f"usage: {command} ")
    monkeypatch.setattr(sys, "argv", ["/somewhere/petlib/__main__.py"])
    assert parser_of(command).format_usage().startswith(f"usage: python -m {common.COMMANDS[command]} ")


@pytest.mark.slow  # a process that imports torch: ~5-10 s on a busy machine
def test_petlib_data_names_itself_when_run_as_installed():
    script = shutil.which("petlib-data", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("petlib-data is not installed here (pip install -e .)")
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("usage: petlib-data "), result.stdout + result.stderr
    assert "python -m" not in result.stdout.split("\n\n")[0]


# ----------------------------------------------------------------------------- eval, export and folders


@pytest.mark.slow  # scores the sample's 60 test images twice
def test_eval_records_one_row_whatever_the_path_spelling(checkpoint, tmp_path, monkeypatch, capsys):
    from petlib.cli.evaluate import main

    folder_checkpoint = tmp_path / "unet.pth"
    shutil.copy(checkpoint, folder_checkpoint)
    monkeypatch.chdir(ROOT)
    common_flags = ["--model_path", str(folder_checkpoint), "--device", "cpu", "--no_progress", "--batch_size", "64"]
    assert main([*common_flags, "--data_path", "dataset/oxford-iiit-pet-sample"]) == 0
    assert main([*common_flags, "--data_path", str(SAMPLE_ROOT)]) == 0
    assert "test score recorded in the model card" in capsys.readouterr().out
    [row] = read_card(folder_checkpoint)["test"]
    assert (row["kind"], row["image_size"], row["tta"], row["images"]) == ("sample", 16, True, 60)
    assert row["dice_per_image"]["low"] <= row["dice_per_image"]["mean"] <= row["dice_per_image"]["high"]


def test_export_a_folder_then_refuse_to_replace_it_unless_asked(checkpoint, tmp_path, capsys):
    from petlib.cli.export import main

    out = tmp_path / "pets-unet"
    assert main(["--model_path", str(checkpoint), "--format", "folder", "--output", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert f"wrote {out}/ (model.safetensors" in stdout and "largest |logit difference| 0.0e+00" in stdout
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(FileExistsError, match="--overwrite"):
        main(["--model_path", str(checkpoint), "--format", "folder", "--output", str(out)])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert main(["--model_path", str(checkpoint), "--format", "folder", "--output", str(out), "--overwrite",
                 "--no_check"]) == 0
    with pytest.raises(ValueError, match="leave --tta out"):
        main(["--model_path", str(checkpoint), "--format", "folder", "--output", str(tmp_path / "x"), "--tta", "on"])
    with pytest.raises(ValueError, match="is a model folder already: pass --output"):
        main(["--model_path", str(out), "--format", "folder"])


# ----------------------------------------------------------------------------- an installed package


def test_without_the_repository_the_data_error_says_where_to_get_data(tmp_path, monkeypatch):
    from petlib.data import release

    monkeypatch.setattr(release, "SAMPLE_ROOT", tmp_path / "no-sample-here")  # as in a wheel: no dataset/ folder
    with pytest.raises(release.DatasetNotFoundError) as error:
        read_split(tmp_path / "oxford-iiit-pet", "train")
    message = str(error.value)
    assert f"petlib-data download --data_path {tmp_path / 'oxford-iiit-pet'}" in message
    assert "git clone https://github.com/petlib/petlib" in message and "not part of an installed package" in message


def test_the_package_ships_its_type_marker_and_names_its_home():
    assert (ROOT / "petlib" / "py.typed").is_file()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    urls = project["project"]["urls"]
    assert {"Homepage", "Source", "Issues", "Documentation"} <= set(urls)
    assert all(urls[key].startswith("https://github.com/petlib/petlib") for key in ("Homepage", "Source", "Issues"))
    assert urls["Documentation"].endswith("#readme")
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["petlib"]
    assert any(dep.startswith("safetensors") for dep in project["project"]["dependencies"])
