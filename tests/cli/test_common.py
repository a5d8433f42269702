"""The command lines a user runs, end to end on the shipped sample (small sizes).

The tests marked slow start each command as a user types it (``python -m petlib.<command>``, the
console scripts), on a 4-channel UNet trained by ``python -m petlib.train``; the others call the
same ``main`` in this process (conftest's ``command``), on conftest's ``trained_unet``, the same
run trained once for the whole session.
"""
import importlib
import json
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
def trained_run(tmp_path_factory, tiny_train_args):  # for the slow tests only
    """conftest's tiny UNet (2 epochs at 32 px on 16 images) trained by `python -m petlib.train` in a child
    process, as a user runs it: (folder, stdout)."""
    out = tmp_path_factory.mktemp("models")
    stdout = run("petlib.train", *tiny_train_args, "--learning-rate", "1e-3", "--out_dir", str(out))
    assert "epoch   2/2" in stdout and "best validation Dice" in stdout
    return out, stdout


@pytest.fixture(scope="module")
def trained(trained_run):
    """The folder of :func:`trained_run`."""
    return trained_run[0]


@pytest.mark.slow
def test_train_writes_checkpoints_history_config_curves_and_card(trained_run):
    trained, stdout = trained_run
    names = sorted(p.name for p in trained.iterdir())
    assert names == ["unet.pth", "unet_card.json", "unet_card.md", "unet_config.json", "unet_curves.png",
                     "unet_history.csv", "unet_last.pth"]
    assert len((trained / "unet_history.csv").read_text().strip().splitlines()) == 3  # header + 2 epochs
    # It says where the curves and the card are.
    assert f"curves: {trained / 'unet_curves.png'}\n" in stdout
    assert f"model card: {trained / 'unet_card.json'} and unet_card.md\n" in stdout
    assert Image.open(trained / "unet_curves.png").format == "PNG"


def test_train_resume(trained_unet_copy, command):
    from petlib.cli.train import main

    out = trained_unet_copy.folder
    common = [main, "--model", "unet", "--data_path", str(SAMPLE_ROOT), "--out_dir", str(out), "--resume",
              "--no-progress"]
    # A finished run resumes to "nothing left to do" and keeps its files.
    result = command(*common, "--epochs", "2")
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stdout and "epoch   1/" not in result.stdout
    # Its one-cycle schedule cannot be stretched: a clear error, nothing overwritten.
    result = command(*common, "--epochs", "3")
    assert result.returncode != 0 and "planned for 2 epochs with a 'onecycle' schedule" in result.stderr


@pytest.mark.slow
def test_inference_prints_test_dice_as_validated(trained, command):
    from petlib.cli.evaluate import main

    # petlib's recipe validates with flip TTA: the test score is computed the same way by default.
    args = ["--model", "unet", "--model_path", str(trained / "unet.pth"), "--data_path", str(SAMPLE_ROOT),
            "--batch_size", "16"]
    stdout = run("petlib.inference", *args, "--original_size")  # in a child process, as a user runs it
    assert re.search(r"on \d+ test images at 32px, with flip TTA, as validated:", stdout), stdout
    assert re.search(r"test Dice [01]\.\d+ \| test IoU [01]\.\d+ \(with flip TTA, as validated\)", stdout), stdout
    assert "(at each image's original resolution, with flip TTA, as validated)" in stdout
    result = command(main, *args, "--tta", "off", "--no_card")  # the same command, in this process
    assert result.returncode == 0, result.stderr
    without = result.stdout
    assert "test IoU" in without and "(without TTA (validated with flip TTA))" in without
    # The score as validated went into the model card; the one with --no_card did not.
    card = trained / "unet_card.json"
    assert f"test score recorded in the model card: {card} and unet_card.md" in stdout
    assert "model card" not in without
    dice = float(re.search(r"test Dice ([01]\.\d+)", stdout).group(1))
    [entry] = json.loads(card.read_text())["test"]
    assert round(entry["dice"], 4) == dice and entry["images"] == 60 and entry["tta"] is True
    assert (entry["kind"], entry["split"]) == ("sample", "test") and "32x32 px" in entry["policy"]


@pytest.mark.slow
def test_inference_refuses_the_wrong_architecture(tmp_path):
    from petlib.models import build_model
    from petlib.training.checkpoint import save_checkpoint

    resnet34_unet = save_checkpoint({"model_name": "resnet34_unet", "model_kwargs": {},
                                     "model_state": build_model("resnet34_unet").state_dict(), "epoch": 1},
                                    tmp_path / "resnet34_unet.pth")  # untrained: the architecture is what counts
    result = subprocess.run(
        [sys.executable, "-m", "petlib.inference", "--model", "unet", "--model_path",
         str(resnet34_unet), "--data_path", str(SAMPLE_ROOT)],
        capture_output=True, text=True,
    )
    assert result.returncode != 0 and "holds a 'resnet34_unet' model, not 'unet'" in result.stderr


@pytest.mark.slow
def test_predict_writes_mask_and_overlay_at_the_images_size(trained, tmp_path):
    name = read_split(SAMPLE_ROOT, "test")[0].name
    image = SAMPLE_ROOT / "images" / f"{name}.jpg"
    odd = tmp_path / "odd size.png"  # another format, odd size, a space in the name
    Image.open(image).convert("RGB").resize((77, 53)).save(odd)
    out = tmp_path / "masks"
    stdout = run("petlib.predict", str(image), str(odd), "--model_path", str(trained / "unet.pth"), "--out", str(out))
    assert "% pet" in stdout
    for source in (image, odd):
        mask = Image.open(out / f"{source.stem}_mask.png")
        overlay = Image.open(out / f"{source.stem}_overlay.png")
        assert mask.size == overlay.size == Image.open(source).size
        assert set(np.unique(np.asarray(mask)).tolist()) <= {0, 255}


@pytest.mark.slow
def test_predict_names_a_missing_image(trained, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "petlib.predict", str(tmp_path / "nope.jpg"), "--model_path",
         str(trained / "unet.pth"), "--out", str(tmp_path)],
        capture_output=True, text=True,
    )
    assert result.returncode != 0 and "nope.jpg" in result.stderr


def sample_photos(folder, count: int) -> list:
    """``count`` of the sample's test photos copied into ``folder``."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    names = [entry.name for entry in read_split(SAMPLE_ROOT, "test")[:count]]
    return [shutil.copy(SAMPLE_ROOT / "images" / f"{name}.jpg", folder / f"{name}.jpg") for name in names]


def test_predict_a_folder_with_a_broken_file_writes_the_rest_and_names_it(trained_unet, tmp_path, capsys):
    from pathlib import Path

    from petlib.cli.predict import main

    photos = [Path(p) for p in sample_photos(tmp_path / "photos", 2)]
    small = tmp_path / "photos" / "small.png"  # another format and an odd size
    Image.open(photos[0]).convert("RGB").resize((61, 47)).save(small)
    photos.append(small)
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"\xff\xd8 not really a JPEG")
    (tmp_path / "photos" / "notes.txt").write_text("not a photo, and not named as one")
    out = tmp_path / "masks"
    status = main([str(tmp_path / "photos"), "--model_path", str(trained_unet.checkpoint), "--out_dir", str(out),
                   "--batch_size", "2", "--threshold", "0.4", "--device", "cpu"])
    captured = capsys.readouterr()
    assert status == 1  # something was skipped
    assert captured.err.count("skipped") == 1 and "broken.jpg" in captured.err
    lines = captured.out.strip().splitlines()
    assert lines[0].startswith("4 photo(s) -> ") and "threshold 0.4" in lines[0] and "on cpu" in lines[0]
    assert len(lines) == 1 + 3 + 1  # header, one line per photo written, summary
    assert lines[-1].startswith("done: 3 of 4 photo(s) segmented") and lines[-1].endswith(f"skipped 1 unreadable: "
                                                                                           f"{tmp_path / 'photos' / 'broken.jpg'}")
    for photo in photos:
        line = next(line for line in lines if line.startswith(f"{photo} ("))
        assert "% pet -> " in line
        mask = Image.open(out / f"{photo.stem}_mask.png")
        assert mask.mode == "L" and mask.size == Image.open(out / f"{photo.stem}_overlay.png").size == Image.open(photo).size
        assert set(np.unique(np.asarray(mask)).tolist()) <= {0, 255}
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{p.stem}_{kind}.png" for p in photos
                                                          for kind in ("mask", "overlay"))
    # Masks written beside the photos are never read back as photos by a second run.
    for _ in range(2):
        assert main([str(tmp_path / "photos"), "--model_path", str(trained_unet.checkpoint),
                     "--out_dir", str(tmp_path / "photos"), "--no_overlay"]) == 1
        assert capsys.readouterr().out.startswith("4 photo(s)")


def test_predict_takes_patterns_keeps_equal_stems_apart_and_thresholds(trained_unet, tmp_path, capsys):
    from petlib.cli.predict import main

    for folder in ("a", "b"):
        sample_photos(tmp_path / folder, 1)
    name = read_split(SAMPLE_ROOT, "test")[0].name
    out = tmp_path / "masks"
    common = ["--model_path", str(trained_unet.checkpoint), "--no_overlay", "--tta", "off"]
    # The pattern as the user quoted it (no shell here): petlib expands it.
    assert main([str(tmp_path / "*" / f"{name}.jpg"), "--out_dir", str(out / "low"), "--threshold", "0.05", *common]) == 0
    assert main([str(tmp_path / "a" / f"{name}.jpg"), "--out_dir", str(out / "high"), "--threshold", "0.95", *common]) == 0
    assert "without TTA (validated with flip TTA)" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "low").iterdir()) == [f"{name}_2_mask.png", f"{name}_mask.png"]
    low = np.asarray(Image.open(out / "low" / f"{name}_mask.png")) > 0
    high = np.asarray(Image.open(out / "high" / f"{name}_mask.png")) > 0
    assert (high <= low).all() and low.sum() > high.sum()  # a higher threshold marks fewer pixels pet


def test_predict_follows_the_photos_exif_orientation(trained_unet, tmp_path, capsys):
    from petlib.cli.predict import main

    name = read_split(SAMPLE_ROOT, "test")[0].name
    photo = Image.open(SAMPLE_ROOT / "images" / f"{name}.jpg").convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: viewers rotate it 90 degrees clockwise
    photo.save(tmp_path / "phone.jpg", exif=exif)
    assert main([str(tmp_path / "phone.jpg"), "--model_path", str(trained_unet.checkpoint),
                 "--out_dir", str(tmp_path / "out")]) == 0
    width, height = photo.size
    assert Image.open(tmp_path / "out" / "phone_mask.png").size == (height, width)


@pytest.mark.parametrize("flags, message", [
    (["--threshold", "1.5"], "not a probability strictly between 0 and 1"),
    (["--batch_size", "0"], "0 is not a positive number"),
    (["--device", "gpu"], "not a torch device: 'gpu'"),
])
def test_predict_refuses_bad_values_before_loading_anything(tmp_path, capsys, flags, message):
    from petlib.cli.predict import main

    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path), "--model_path", str(tmp_path / "none.pth"), "--out_dir", str(tmp_path), *flags])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_predict_refuses_a_cuda_device_where_there_is_none(tmp_path, capsys):
    import torch

    from petlib.cli.predict import main

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path), "--model_path", "x.pth", "--out_dir", str(tmp_path), "--device", "cuda"])
    assert exit_.value.code == 2 and "no CUDA device" in capsys.readouterr().err


# ----------------------------------------------------------------------------- console commands


def test_console_commands_are_installed_for_each_module():
    from importlib.metadata import entry_points

    from petlib.cli.common import COMMANDS

    installed = {ep.name: ep.value for ep in entry_points(group="console_scripts") if ep.name.startswith("petlib-")}
    assert set(installed) == set(COMMANDS) == {"petlib-train", "petlib-eval", "petlib-predict", "petlib-data",
                                               "petlib-export"}, "reinstall: pip install -e '.[dev]'"
    modules = {"petlib-train": "train", "petlib-eval": "evaluate", "petlib-predict": "predict", "petlib-data": "data",
               "petlib-export": "export"}
    for name, target in installed.items():
        module, function = target.split(":")
        assert (module, function) == (f"petlib.cli.{modules[name]}", "console"), target
        assert callable(getattr(importlib.import_module(module), function))


@pytest.mark.slow  # child processes: the installed console scripts
@pytest.mark.parametrize("command, module", [("petlib-eval", "petlib.inference"), ("petlib-export", "petlib.export")])
def test_a_console_command_runs_and_names_itself(command, module):
    import shutil
    from pathlib import Path

    script = shutil.which(command, path=str(Path(sys.executable).parent)) or shutil.which(command)
    if script is None:
        pytest.skip(f"{command} is not on the PATH (pip install -e .)")
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and result.stdout.startswith(f"usage: {command} "), result.stderr
    as_module = run(module, "--help")
    assert as_module.startswith(f"usage: python -m {module} ")


# ----------------------------------------------------------------------------- choices and values


def _refuse_to_train(*args, **kwargs):
    raise AssertionError("fit must not be reached")


@pytest.mark.parametrize("flag, value, valid", [
    ("--model", "unet2", ["unet", "resnet34_unet"]),
    ("--loss", "dcie", ["bce", "dice", "bce+dice", "dice_pooled"]),
    ("--scheduler", "cosin", ["onecycle", "cosine", "none"]),
])
def test_train_refuses_an_unknown_choice_while_parsing(capsys, monkeypatch, flag, value, valid):
    from petlib.cli import train

    monkeypatch.setattr(train, "fit", _refuse_to_train)
    with pytest.raises(SystemExit) as exit_:
        train.main([flag, value, "--data_path", "nowhere"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"invalid choice: '{value}'" in err and all(choice in err for choice in valid), err


def test_train_refuses_a_value_out_of_range_as_a_usage_error(capsys, monkeypatch):
    from petlib.cli import train

    monkeypatch.setattr(train, "fit", _refuse_to_train)
    with pytest.raises(SystemExit) as exit_:
        train.main(["--epochs", "0", "--data_path", "nowhere"])
    assert exit_.value.code == 2 and "TrainConfig.epochs=0" in capsys.readouterr().err


def test_train_flags_parse_none_and_keep_the_recipes_values():
    from petlib.cli.train import build_parser, config_from_args

    parse = build_parser().parse_args
    assert config_from_args(parse(["--grad_clip", "none"])).grad_clip is None
    assert config_from_args(parse(["--grad_clip", "2"])).grad_clip == 2.0
    assert config_from_args(parse(["--subset", "None", "--lr", "none"])).lr is None
    lab = config_from_args(parse(["--recipe", "lab"]))  # flags not given leave the recipe alone
    assert (lab.loss, lab.grad_clip, lab.augment) == ("bce", None, False)
    assert config_from_args(parse(["--recipe", "lab", "--augment"])).augment is True


def test_train_help_states_each_default_once():
    from petlib.cli.train import build_parser

    text = " ".join(build_parser().format_help().split())  # undo the line wrapping
    assert "None" not in text
    assert text.count("default: petlib's batch for the model: unet 8, resnet34_unet 16") == 1  # --batch_size
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
    from petlib.cli.train import build_parser, config_from_args

    assert getattr(config_from_args(build_parser().parse_args(argv)), field) == value


@pytest.mark.parametrize("argv, progress", [([], None), (["--progress"], True), (["--no_progress"], False),
                                            (["--no-progress"], False)])
def test_progress_flag_spellings(argv, progress):
    from petlib.cli.train import build_parser

    assert build_parser().parse_args(argv).progress is progress


@pytest.mark.parametrize("flags", [["--data_path", "X"], ["--root", "X"], ["--data-path", "X"]])
def test_data_download_takes_data_path_and_its_old_name(monkeypatch, flags):
    import importlib

    data = importlib.import_module("petlib.cli.data")  # petlib.cli.data, the module (petlib.cli's `data` is its runner)
    calls = []
    monkeypatch.setattr(data, "download", lambda root, remove_archives: calls.append((root, remove_archives)) or root)
    data.main(["download", *flags, "--remove-archives"])
    data.main(["download", *flags, "--remove_archives"])
    assert [(str(root), remove) for root, remove in calls] == [("X", True), ("X", True)]


@pytest.mark.parametrize("flag", ["--out_dir", "--out"])
def test_compare_recipes_takes_out_dir_and_its_old_name(monkeypatch, flag):
    from petlib.research import experiments

    calls = []
    monkeypatch.setattr(experiments, "compare_recipes", lambda *args, **kwargs: calls.append(kwargs))
    experiments.main(["compare-recipes", "--data_path", "X", flag, "runs/x", "--no-progress"])
    assert calls[0]["out_dir"] == "runs/x" and calls[0]["progress"] is False


# ----------------------------------------------------------------------------- progress bars


def tiny_train(command, out, *extra: str):
    """One epoch of a 4-channel UNet at 16 px on 16 images, stdout and stderr captured (not a terminal).

    The output is kept as written: the bars' carriage returns are not turned into newlines.
    """
    from petlib.cli.train import main

    return command(main, "--model", "unet", "--model_kwargs", '{"base_channels": 4}', "--data_path", str(SAMPLE_ROOT),
                   "--subset", "16", "--image_size", "16", "--batch_size", "4", "--epochs", "1", "--device", "cpu",
                   "--out_dir", str(out), *extra)


def test_no_progress_bars_into_a_log_file(tmp_path, command):
    quiet = tiny_train(command, tmp_path / "quiet")
    assert quiet.returncode == 0, quiet.stderr
    assert "\r" not in quiet.stderr and "\r" not in quiet.stdout
    assert "epoch   1/1" in quiet.stdout  # a line per epoch instead
    forced = tiny_train(command, tmp_path / "forced", "--progress")  # the check can see a bar when there is one
    assert forced.returncode == 0 and "\r" in forced.stderr


def test_stderr_is_interactive_only_for_a_terminal(monkeypatch):
    import io

    from petlib.cli import common as cli

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
    from petlib.data import cache

    disabled = []
    real_tqdm = cache.tqdm

    def spy(*args, **kwargs):
        disabled.append(kwargs.get("disable", False))
        return real_tqdm(*args, **kwargs)

    monkeypatch.setattr(cache, "tqdm", spy)
    monkeypatch.setattr(cache, "stderr_is_interactive", lambda: interactive)
    data.OxfordPetSegmentation(SAMPLE_ROOT, "valid", image_size=16, cache=True, subset=2)
    assert disabled == [not interactive]


# ----------------------------------------------------------------------------- errors


def main_of(module: str):
    """The ``main`` that ``python -m <module>`` runs through run_main."""
    import importlib

    if module == "petlib.research.bench":  # its __main__ runs the command when imported
        module = "petlib.research.bench.report"
    return importlib.import_module(module).main


def child_process(*args: str, cwd=None, debug: bool = False) -> subprocess.CompletedProcess:
    """``python -m *args`` in a child process, ``PETLIB_DEBUG`` set as ``debug`` says."""
    import os

    env = {**os.environ, "PETLIB_DEBUG": "1" if debug else "0"}
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


@pytest.fixture(params=["in process", pytest.param("child process", marks=pytest.mark.slow)])
def run_failing(request, command):
    """``run_failing(module, *argv, cwd=None, debug=False)``: ``python -m module *argv``, which must fail;
    run in this process (conftest's ``command``), and, in the slow tier, in a child process too."""

    def run_failing(module: str, *args: str, cwd=None, debug: bool = False):
        if request.param == "child process":
            result = child_process(module, *args, cwd=cwd, debug=debug)
        else:
            result = command(main_of(module), *args, cwd=cwd, debug=debug)
        assert result.returncode != 0, result.stdout
        return result

    return run_failing


def test_train_without_the_dataset_says_how_to_get_it_without_a_traceback(tmp_path, run_failing):
    result = run_failing("petlib.train", "--data_path", "nowhere", "--epochs", "1", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: Oxford-IIIT Pet not found")
    assert "python -m petlib.data download --data_path nowhere" in result.stderr
    assert "Traceback" not in result.stderr
    debug = run_failing("petlib.train", "--data_path", "nowhere", "--epochs", "1", cwd=tmp_path, debug=True)
    assert "Traceback" in debug.stderr and "DatasetNotFoundError" in debug.stderr


@pytest.mark.parametrize("argv", [
    ["petlib.inference", "--model_path"],
    ["petlib.predict", "photo.jpg", "--out_dir", "out", "--model_path"],
])
def test_a_file_that_is_no_checkpoint_is_one_line_of_error(tmp_path, command, argv):
    (tmp_path / "photo.jpg").write_bytes(b"")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    module, *args = argv
    result = command(main_of(module), *args, str(junk), cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: could not read checkpoint") and "junk.pth" in result.stderr
    debug = command(main_of(module), *args, str(junk), "--debug", cwd=tmp_path)
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr and "CheckpointError" in debug.stderr


@pytest.mark.parametrize("argv", [
    ["petlib.research.experiments", "lr-find", "--data_path", "nowhere"],
    ["petlib.research.bench", "--quick", "--sections", "loader", "--skip_peer", "--data_path", "nowhere"],
])
def test_other_commands_report_errors_the_same_way(tmp_path, command, argv):
    module, *args = argv
    result = command(main_of(module), *args, cwd=tmp_path)
    assert result.returncode != 0, result.stdout
    assert result.returncode == 1 and "Traceback" not in result.stderr and "error: Oxford-IIIT Pet not found" in result.stderr


def test_run_main_exit_codes(capsys):
    from petlib.cli.common import run_main
    from petlib.data import DownloadError
    from petlib.training.checkpoint import CheckpointError

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


@pytest.mark.parametrize("text, expected", [
    ("1", True), (" YES ", True), ("on", True), ("", False), ("0", False), ("Off", False), ("maybe", None),
])
def test_parse_bool_is_the_one_reading_of_yes_and_no(text, expected):
    from petlib.cli.common import parse_bool

    assert parse_bool(text) is expected


def test_train_without_validation_says_which_weights_it_kept(tmp_path, command):
    result = tiny_train(command, tmp_path / "all", "--no_validate", "--epochs", "2")
    stdout = result.stdout
    assert result.returncode == 0, result.stderr
    assert "16 train images (every trainval image; no validation" in stdout
    assert "val Dice" not in stdout and "best validation Dice" not in stdout
    assert "no validation split (--validate holds out every 10th trainval image): the model is the last epoch's" in stdout
    assert re.search(r"unet\.pth \(last epoch's weights\)", stdout), stdout
    card = json.loads((tmp_path / "all" / "unet_card.json").read_text())
    assert card["validation"] is None and card["training"]["kept_epoch"] == 2
