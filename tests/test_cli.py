"""The command lines a user runs, end to end on the shipped sample (small sizes)."""
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from petlib.data import SAMPLE_ROOT, read_split


def run(*args: str, cwd=None) -> str:
    result = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=cwd, timeout=600)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A ResNet34-UNet trained for 2 epochs at 32 px on 16 images by `python -m petlib.train`."""
    out = tmp_path_factory.mktemp("models")
    stdout = run(
        "petlib.train", "--model", "resnet34_unet", "--data_path", str(SAMPLE_ROOT), "--epochs", "2",
        "--image_size", "32", "--batch_size", "4", "--learning-rate", "1e-3", "--out_dir", str(out),
        "--subset", "16", "--no-progress",
    )
    assert "epoch   2/2" in stdout and "best validation Dice" in stdout
    return out


def test_train_writes_checkpoints_history_and_config(trained):
    names = sorted(p.name for p in trained.iterdir())
    assert names == ["resnet34_unet.pth", "resnet34_unet_config.json", "resnet34_unet_history.csv",
                     "resnet34_unet_last.pth"]
    assert len((trained / "resnet34_unet_history.csv").read_text().strip().splitlines()) == 3  # header + 2 epochs


def test_train_resume(trained, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(trained, out)
    common = ["petlib.train", "--model", "resnet34_unet", "--data_path", str(SAMPLE_ROOT), "--out_dir", str(out),
              "--resume", "--no-progress"]
    # A finished run resumes to "nothing left to do" and keeps its files.
    stdout = run(*common, "--epochs", "2")
    assert "resuming" in stdout and "epoch   1/" not in stdout
    # Its one-cycle schedule cannot be stretched: a clear error, nothing overwritten.
    result = subprocess.run([sys.executable, "-m", *common, "--epochs", "3"], capture_output=True, text=True)
    assert result.returncode != 0 and "planned for 2 epochs with a 'onecycle' schedule" in result.stderr


def test_inference_prints_test_dice_as_validated(trained):
    # petlib's recipe validates with flip TTA: the test score is computed the same way by default.
    command = ["petlib.inference", "--model", "resnet34_unet", "--model_path", str(trained / "resnet34_unet.pth"),
               "--data_path", str(SAMPLE_ROOT), "--batch_size", "16"]
    stdout = run(*command, "--original_size")
    assert re.search(r"on \d+ test images at 32px, with flip TTA, as validated:", stdout), stdout
    assert re.search(r"test Dice [01]\.\d+ \| test IoU [01]\.\d+ \(with flip TTA, as validated\)", stdout), stdout
    assert "(at each image's original resolution, with flip TTA, as validated)" in stdout
    without = run(*command, "--tta", "off")
    assert "test IoU" in without and "(without TTA (validated with flip TTA))" in without


def test_inference_refuses_the_wrong_architecture(trained):
    result = subprocess.run(
        [sys.executable, "-m", "petlib.inference", "--model", "unet", "--model_path",
         str(trained / "resnet34_unet.pth"), "--data_path", str(SAMPLE_ROOT)],
        capture_output=True, text=True,
    )
    assert result.returncode != 0 and "holds a 'resnet34_unet' model, not 'unet'" in result.stderr


def test_predict_writes_mask_and_overlay_at_the_images_size(trained, tmp_path):
    name = read_split(SAMPLE_ROOT, "test")[0].name
    image = SAMPLE_ROOT / "images" / f"{name}.jpg"
    odd = tmp_path / "odd size.png"  # another format, odd size, a space in the name
    Image.open(image).convert("RGB").resize((77, 53)).save(odd)
    out = tmp_path / "masks"
    stdout = run("petlib.predict", str(image), str(odd), "--model_path", str(trained / "resnet34_unet.pth"),
                 "--out", str(out))
    assert "% pet" in stdout
    for source in (image, odd):
        mask = Image.open(out / f"{source.stem}_mask.png")
        overlay = Image.open(out / f"{source.stem}_overlay.png")
        assert mask.size == overlay.size == Image.open(source).size
        assert set(np.unique(np.asarray(mask)).tolist()) <= {0, 255}


def test_predict_names_a_missing_image(trained, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "petlib.predict", str(tmp_path / "nope.jpg"), "--model_path",
         str(trained / "resnet34_unet.pth"), "--out", str(tmp_path)],
        capture_output=True, text=True,
    )
    assert result.returncode != 0 and "nope.jpg" in result.stderr


def test_main_job_runs_both_networks_quickly(tmp_path):
    stdout = run("petlib.run", "--quick", "--epochs", "1", "--image_size", "32", cwd=tmp_path)
    assert "shipped sample" in stdout
    lines = [line for line in stdout.splitlines() if line.startswith(("unet ", "resnet34_unet "))]
    assert [line.split()[0] for line in lines] == ["unet", "resnet34_unet"]


# ----------------------------------------------------------------------------- choices and values


def _refuse_to_train(*args, **kwargs):
    raise AssertionError("fit must not be reached")


@pytest.mark.parametrize("flag, value, valid", [
    ("--model", "unet2", ["unet", "resnet34_unet"]),
    ("--loss", "dcie", ["bce", "dice", "bce+dice", "dice_pooled"]),
    ("--scheduler", "cosin", ["onecycle", "cosine", "none"]),
])
def test_train_refuses_an_unknown_choice_while_parsing(capsys, monkeypatch, flag, value, valid):
    from petlib import train

    monkeypatch.setattr(train, "fit", _refuse_to_train)
    with pytest.raises(SystemExit) as exit_:
        train.main([flag, value, "--data_path", "nowhere"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"invalid choice: '{value}'" in err and all(choice in err for choice in valid), err


def test_train_refuses_a_value_out_of_range_as_a_usage_error(capsys, monkeypatch):
    from petlib import train

    monkeypatch.setattr(train, "fit", _refuse_to_train)
    with pytest.raises(SystemExit) as exit_:
        train.main(["--epochs", "0", "--data_path", "nowhere"])
    assert exit_.value.code == 2 and "TrainConfig.epochs=0" in capsys.readouterr().err


def test_train_flags_parse_none_and_keep_the_recipes_values():
    from petlib.train import build_parser, config_from_args

    parse = build_parser().parse_args
    assert config_from_args(parse(["--grad_clip", "none"])).grad_clip is None
    assert config_from_args(parse(["--grad_clip", "2"])).grad_clip == 2.0
    assert config_from_args(parse(["--subset", "None", "--lr", "none"])).lr is None
    lab = config_from_args(parse(["--recipe", "lab"]))  # flags not given leave the recipe alone
    assert (lab.loss, lab.grad_clip, lab.augment) == ("bce", None, False)
    assert config_from_args(parse(["--recipe", "lab", "--augment"])).augment is True


def test_train_help_states_each_default_once():
    from petlib.train import build_parser

    text = " ".join(build_parser().format_help().split())  # undo the line wrapping
    assert "None" not in text
    assert re.findall(r"default: 16\b", text) == ["default: 16"]  # --batch_size
    assert text.count("default: saved_models") == 1
    assert "--learning_rate LR, --lr LR" in text  # the hyphen spellings work but are not listed
    assert "--learning-rate" not in text and "--no-augment" not in text


# ----------------------------------------------------------------------------- spellings


@pytest.mark.parametrize("argv, field, value", [
    (["--learning-rate", "2e-5"], "lr", 2e-5),
    (["--learning_rate", "2e-5"], "lr", 2e-5),
    (["--lr", "2e-5"], "lr", 2e-5),
    (["--batch-size", "3"], "batch_size", 3),
    (["--no-augment"], "augment", False),
    (["--no_augment"], "augment", False),
    (["--no_save_last"], "save_last", False),
    (["--no-save-last"], "save_last", False),
    (["--crop-scale-min", "0.5"], "crop_scale_min", 0.5),
])
def test_train_accepts_both_spellings(argv, field, value):
    from petlib.train import build_parser, config_from_args

    assert getattr(config_from_args(build_parser().parse_args(argv)), field) == value


@pytest.mark.parametrize("argv, progress", [([], None), (["--progress"], True), (["--no_progress"], False),
                                            (["--no-progress"], False)])
def test_progress_flag_spellings(argv, progress):
    from petlib.train import build_parser

    assert build_parser().parse_args(argv).progress is progress


@pytest.mark.parametrize("flags", [["--data_path", "X"], ["--root", "X"], ["--data-path", "X"]])
def test_data_download_takes_data_path_and_its_old_name(monkeypatch, flags):
    from petlib import data

    calls = []
    monkeypatch.setattr(data, "download", lambda root, remove_archives: calls.append((root, remove_archives)) or root)
    data.main(["download", *flags, "--remove-archives"])
    data.main(["download", *flags, "--remove_archives"])
    assert [(str(root), remove) for root, remove in calls] == [("X", True), ("X", True)]


@pytest.mark.parametrize("flag", ["--out_dir", "--out"])
def test_compare_recipes_takes_out_dir_and_its_old_name(monkeypatch, flag):
    from petlib import experiments

    calls = []
    monkeypatch.setattr(experiments, "compare_recipes", lambda *args, **kwargs: calls.append(kwargs))
    experiments.main(["compare-recipes", "--data_path", "X", flag, "runs/x", "--no-progress"])
    assert calls[0]["out_dir"] == "runs/x" and calls[0]["progress"] is False


# ----------------------------------------------------------------------------- progress bars


def tiny_train(out, *extra: str) -> subprocess.CompletedProcess:
    """One epoch of a 4-channel UNet at 16 px on 16 images, stdout and stderr into pipes (not a terminal).

    Output as bytes: text mode would turn the bars' carriage returns into newlines.
    """
    return subprocess.run(
        [sys.executable, "-m", "petlib.train", "--model", "unet", "--model_kwargs", '{"base_channels": 4}',
         "--data_path", str(SAMPLE_ROOT), "--subset", "16", "--image_size", "16", "--batch_size", "4",
         "--epochs", "1", "--device", "cpu", "--out_dir", str(out), *extra],
        capture_output=True, timeout=600,
    )


def test_no_progress_bars_into_a_log_file(tmp_path):
    quiet = tiny_train(tmp_path / "quiet")
    assert quiet.returncode == 0, quiet.stderr.decode()
    assert b"\r" not in quiet.stderr and b"\r" not in quiet.stdout
    assert b"epoch   1/1" in quiet.stdout  # a line per epoch instead
    forced = tiny_train(tmp_path / "forced", "--progress")  # the check can see a bar when there is one
    assert forced.returncode == 0 and b"\r" in forced.stderr


def test_stderr_is_interactive_only_for_a_terminal(monkeypatch):
    import io

    from petlib import cli

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not cli.stderr_is_interactive() and not cli.show_progress(None) and cli.show_progress(True)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    assert cli.stderr_is_interactive() and cli.show_progress(None) and not cli.show_progress(False)


@pytest.mark.parametrize("interactive", [False, True])
def test_the_cache_build_shows_a_bar_only_on_a_terminal(monkeypatch, interactive):
    from petlib import data

    disabled = []
    real_tqdm = data.tqdm

    def spy(*args, **kwargs):
        disabled.append(kwargs.get("disable", False))
        return real_tqdm(*args, **kwargs)

    monkeypatch.setattr(data, "tqdm", spy)
    monkeypatch.setattr(data, "stderr_is_interactive", lambda: interactive)
    data.OxfordPetSegmentation(SAMPLE_ROOT, "valid", image_size=16, cache=True, subset=2)
    assert disabled == [not interactive]


# ----------------------------------------------------------------------------- errors


def run_failing(*args: str, cwd=None, debug: bool = False) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "PETLIB_DEBUG": "1" if debug else "0"}
    result = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=cwd, env=env,
                            timeout=600)
    assert result.returncode != 0, result.stdout
    return result


def test_train_without_the_dataset_says_how_to_get_it_without_a_traceback(tmp_path):
    result = run_failing("petlib.train", "--data_path", "nowhere", "--epochs", "1", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: Oxford-IIIT Pet not found")
    assert "python -m petlib.data download --data_path nowhere" in result.stderr
    assert "Traceback" not in result.stderr
    debug = run_failing("petlib.train", "--data_path", "nowhere", "--epochs", "1", cwd=tmp_path, debug=True)
    assert "Traceback" in debug.stderr and "DatasetNotFoundError" in debug.stderr


@pytest.mark.parametrize("command", [
    ["petlib.inference", "--model_path"],
    ["petlib.predict", "photo.jpg", "--out_dir", "out", "--model_path"],
])
def test_a_file_that_is_no_checkpoint_is_one_line_of_error(tmp_path, command):
    (tmp_path / "photo.jpg").write_bytes(b"")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    result = run_failing(*command, str(junk), cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: could not read checkpoint") and "junk.pth" in result.stderr
    debug = run_failing(*command, str(junk), "--debug", cwd=tmp_path)
    assert "Traceback" in debug.stderr and "CheckpointError" in debug.stderr


@pytest.mark.parametrize("command", [
    ["petlib.experiments", "lr-find", "--data_path", "nowhere"],
    ["petlib.bench", "--quick", "--sections", "loader", "--skip_peer", "--data_path", "nowhere"],
])
def test_other_commands_report_errors_the_same_way(tmp_path, command):
    result = run_failing(*command, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr and "error: Oxford-IIIT Pet not found" in result.stderr


def test_run_main_exit_codes(capsys):
    from petlib.checkpoint import CheckpointError
    from petlib.cli import run_main
    from petlib.data import DownloadError

    def failing(error: BaseException):
        def main(argv):
            raise error
        return main

    for error in (ValueError("bad value"), FileNotFoundError("no file"), CheckpointError("bad file"),
                  DownloadError("no mirror")):
        with pytest.raises(SystemExit) as exit_:
            run_main(failing(error), [])
        assert exit_.value.code == 1 and capsys.readouterr().err == f"error: {error}\n"
    with pytest.raises(ValueError):  # --debug lets it through
        run_main(failing(ValueError("bad value")), ["--debug"])
    with pytest.raises(ZeroDivisionError):  # a bug is not a user's error: its traceback shows
        run_main(failing(ZeroDivisionError()), [])
    with pytest.raises(SystemExit) as exit_:
        run_main(lambda argv: 0 if argv == ["--x"] else 3, ["--x", "--debug"])
    assert exit_.value.code == 0
