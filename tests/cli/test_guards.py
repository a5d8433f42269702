"""What the command lines promise, held against the library.

Errors a user can fix are one ``error: ...`` message (argparse's usage and error for usage
mistakes) that says what is wrong, never a traceback; every printed score is a number in
[0, 1] and is the number the library computes for the same checkpoint. The commands run in this
process (conftest's ``command``: their ``main`` as ``python -m`` runs it), on conftest's
``trained_unet``: a 4-channel UNet trained by ``petlib-train`` for 2 epochs at 32 px, whose Dice
is neither 0 nor 1 and differs from its IoU, so a score printed in the wrong place or scale shows.
tests/cli/test_common.py runs each command in a child process (marked slow).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from petlib.cli.evaluate import main as evaluate_main
from petlib.cli.predict import main as predict_main
from petlib.cli.train import main as train_main
from petlib.data import SAMPLE_ROOT, read_split
from petlib.evaluation.score import evaluate_checkpoint, score_at_original_size, validated_tta
from petlib.models import build_model
from petlib.training.checkpoint import load_checkpoint, load_model, save_checkpoint
from petlib.training.config import TrainConfig
from petlib.training.rundir import read_history

SAMPLE = str(SAMPLE_ROOT)
TINY_UNET = ["--model", "unet", "--model_kwargs", '{"base_channels": 4}', "--image_size", "32", "--device", "cpu"]


@pytest.fixture
def succeed(command):
    """``succeed(main, *argv)``: the command's stdout, once it exited 0 without a traceback."""

    def succeed(main, *argv) -> str:
        result = command(main, *argv)
        assert result.returncode == 0, f"{argv} failed:\n{result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stderr, result.stderr
        return result.stdout

    return succeed


def score(text: str) -> float:
    """A printed score as a float, which must lie in [0, 1]."""
    value = float(text)
    assert 0.0 <= value <= 1.0, text
    return value


# ----------------------------------------------------------------------------- scores


def test_train_prints_its_best_validation_dice(trained_unet):
    out, stdout = trained_unet.folder, trained_unet.stdout
    history = read_history(out / "unet_history.csv")
    best = load_checkpoint(out / "unet.pth")
    dices = [row["val_dice"] for row in history]
    assert 0 < max(dices) < 1  # a score that a wrong scale or the wrong epoch would change
    [printed] = re.findall(r"^best validation Dice (\S+)$", stdout, flags=re.M)
    score(printed)
    assert printed == f"{best['best_dice']:.4f}" == f"{max(dices):.4f}"
    # Each epoch's line shows that epoch's validation Dice, starred where it was a new best.
    epochs = re.findall(r"^epoch +(\d+)/2 \|.*\| val Dice (\S+) \|.*s( \*)?$", stdout, flags=re.M)
    assert [(int(e), d) for e, d, _ in epochs] == [(row["epoch"], f"{row['val_dice']:.4f}") for row in history]
    assert [bool(star) for _, _, star in epochs] == [all(d > e for e in dices[:i]) for i, d in enumerate(dices)]


@pytest.mark.parametrize("tta", [None, "off", "on"])
def test_inference_prints_the_scores_evaluate_checkpoint_returns(trained_unet, succeed, tta):
    path = trained_unet.checkpoint
    flags = [] if tta is None else ["--tta", tta]
    stdout = succeed(evaluate_main, "--model_path", str(path), "--data_path", SAMPLE, "--no_card", *flags)
    # By default the checkpoint's own validation policy (petlib's recipe: flip TTA).
    used_tta = validated_tta(load_checkpoint(path)) if tta is None else tta == "on"
    expected = evaluate_checkpoint(path, SAMPLE, "test", tta=used_tta)
    assert 0 < expected["iou"] < expected["dice"] < 1  # so that swapped or rescaled scores show
    [(count, size)] = re.findall(r"on (\d+) test images at (\d+)px", stdout)
    assert int(count) == expected["count"] == len(read_split(SAMPLE, "test")) and int(size) == 32
    [(dice, iou, how)] = re.findall(r"^test Dice (\S+) \| test IoU (\S+) \((with flip TTA|without TTA)", stdout,
                                    flags=re.M)
    score(dice), score(iou)
    assert (dice, iou, how) == (f"{expected['dice']:.4f}", f"{expected['iou']:.4f}",
                                "with flip TTA" if used_tta else "without TTA")


def test_inference_at_original_size_prints_score_at_original_size(trained_unet, succeed, tmp_path):
    # Five test images, not 60: decoding and scoring each at its own size is the cost, the same per image.
    root = tmp_path / "five"
    (root / "annotations").mkdir(parents=True)
    (root / "images").symlink_to(SAMPLE_ROOT / "images", target_is_directory=True)
    (root / "annotations" / "trimaps").symlink_to(SAMPLE_ROOT / "annotations" / "trimaps", target_is_directory=True)
    lines = (SAMPLE_ROOT / "annotations" / "test.txt").read_text().splitlines()
    (root / "annotations" / "test.txt").write_text("\n".join(lines[::12]) + "\n")  # one in 12: all three breeds
    path = trained_unet.checkpoint
    stdout = succeed(evaluate_main, "--model_path", str(path), "--data_path", str(root), "--no_card",
                     "--original_size")
    model, checkpoint = load_model(path)
    expected = score_at_original_size(model, root, "test", image_size=32, tta=validated_tta(checkpoint))
    assert expected["count"] == 5
    [(dice, iou)] = re.findall(r"^test Dice (\S+) \| test IoU (\S+) \(at each image's original", stdout, flags=re.M)
    score(dice), score(iou)
    assert (dice, iou) == (f"{expected['dice']:.4f}", f"{expected['iou']:.4f}")


def zero_checkpoint(path: Path) -> Path:
    """A UNet whose every weight is 0: its logits are exactly 0, a probability of exactly 0.5."""
    model = build_model("unet", base_channels=4)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.zero_()
    config = TrainConfig(model="unet", model_kwargs={"base_channels": 4}, image_size=32)
    return save_checkpoint({"model_name": "unet", "model_kwargs": config.model_kwargs, "model_state": model.state_dict(),
                            "config": config.to_dict(), "history": [], "epoch": 1}, path)


def test_a_probability_of_exactly_one_half_is_background_at_the_command_line(tmp_path, succeed):
    checkpoint = zero_checkpoint(tmp_path / "zero.pth")
    photo = SAMPLE_ROOT / "images" / f"{read_split(SAMPLE, 'test')[0].name}.jpg"
    stdout = succeed(predict_main, str(photo), "--model_path", str(checkpoint), "--out_dir", str(tmp_path / "out"))
    assert ": 0.0% pet" in stdout
    [mask] = (tmp_path / "out").glob("*_mask.png")
    assert not np.asarray(Image.open(mask)).any()
    # Every test image has a pet, all of it missed: Dice and IoU 0, not the 1 of "both empty".
    stdout = succeed(evaluate_main, "--model_path", str(checkpoint), "--data_path", SAMPLE, "--no_card")
    assert re.search(r"^test Dice 0\.0000 \| test IoU 0\.0000 ", stdout, flags=re.M), stdout


# ----------------------------------------------------------------------------- errors


def assert_one_error(result, status: int, message: str) -> None:
    """Exit ``status``, and stderr is the error ``message`` (a regex) alone: no traceback."""
    assert "Traceback" not in result.stderr and 'File "' not in result.stderr, result.stderr
    assert result.returncode == status, (result.returncode, result.stderr)
    if status == 2:  # argparse: the usage, then "<prog>: error: ..."
        assert result.stderr.startswith("usage: "), result.stderr
        assert re.search(r"^python -m petlib\.\w+: error: " + message, result.stderr, flags=re.M), result.stderr
    else:
        assert result.stderr.startswith("error: ") and result.stderr.count("error: ") == 1, result.stderr
        assert re.match("error: " + message, result.stderr), result.stderr


def test_inference_of_another_architecture_is_one_error(trained_unet, command):
    path = trained_unet.checkpoint
    result = command(evaluate_main, "--model", "resnet34_unet", "--model_path", str(path), "--data_path", SAMPLE,
                 "--no_card")
    assert_one_error(result, 1, re.escape(f"{path} holds a 'unet' model, not 'resnet34_unet'; pass --model unet"))


def test_inference_of_a_missing_checkpoint_or_dataset_is_one_error(trained_unet, command, tmp_path):
    missing = tmp_path / "nothere.pth"
    result = command(evaluate_main, "--model_path", str(missing), "--data_path", SAMPLE)
    assert_one_error(result, 1, r".*" + re.escape(str(missing)))
    result = command(evaluate_main, "--model_path", str(trained_unet.checkpoint), "--data_path",
                 str(tmp_path / "nowhere"), "--no_card")
    assert_one_error(result, 1, r"Oxford-IIIT Pet not found: .*nowhere")
    assert f"python -m petlib.data download --data_path {tmp_path / 'nowhere'}" in result.stderr


def test_predict_of_only_missing_photos_is_one_error(trained_unet, command, tmp_path):
    result = command(predict_main, str(tmp_path / "nope.jpg"), "--model_path", str(trained_unet.checkpoint),
                 "--out_dir", str(tmp_path / "out"))
    assert_one_error(result, 1, r"nothing to segment: no image file, folder of images or matching pattern: .*nope\.jpg$")
    assert not (tmp_path / "out").exists()


def test_predict_skips_a_missing_photo_like_a_broken_one_and_segments_the_rest(trained_unet, command, tmp_path):
    photos = [SAMPLE_ROOT / "images" / f"{entry.name}.jpg" for entry in read_split(SAMPLE, "test")[:2]]
    missing = tmp_path / "missing.jpg"
    result = command(predict_main, str(photos[0]), str(missing), str(photos[1]), "--model_path",
                     str(trained_unet.checkpoint), "--out_dir", str(tmp_path / "out"))
    assert "Traceback" not in result.stderr and result.returncode == 1, result.stderr
    assert result.stderr == f"skipped: no image file, folder of images or matching pattern: {missing}\n"
    assert sorted(p.name for p in (tmp_path / "out").glob("*_mask.png")) == sorted(f"{p.stem}_mask.png" for p in photos)
    assert result.stdout.splitlines()[-1].endswith(f"; skipped 1 naming no image: {missing}")


def test_predict_names_an_unreadable_photo_and_segments_the_others(trained_unet, command, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a photo")
    photo = SAMPLE_ROOT / "images" / f"{read_split(SAMPLE, 'test')[0].name}.jpg"
    result = command(predict_main, str(broken), str(photo), "--model_path", str(trained_unet.checkpoint),
                     "--out_dir", str(tmp_path / "out"))
    assert "Traceback" not in result.stderr and result.returncode == 1, result.stderr
    assert re.fullmatch(r"skipped: cannot read image \S*broken\.jpg: .*\n", result.stderr), result.stderr
    assert [p.name for p in (tmp_path / "out").glob("*_mask.png")] == [f"{photo.stem}_mask.png"]


def test_train_over_an_earlier_run_or_stretching_its_schedule_is_one_error(trained_unet_copy, command):
    out = trained_unet_copy.folder
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    common = [train_main, *TINY_UNET, "--data_path", SAMPLE, "--subset", "16", "--batch_size", "4",
              "--validate", "--out_dir", str(out), "--no-progress"]
    best = load_checkpoint(out / "unet.pth")
    result = command(*common, "--epochs", "2")
    assert_one_error(result, 1, re.escape(f"{out / 'unet.pth'} holds the best checkpoint of an earlier run "
                                          f"(epoch {best['epoch']}, validation Dice {best['best_dice']:.4f})"))
    assert "--resume" in result.stderr and "--overwrite" in result.stderr
    result = command(*common, "--epochs", "3", "--resume")
    assert_one_error(result, 1, re.escape(f"{out / 'unet_last.pth'} was planned for 2 epochs with a 'onecycle' "
                                          "schedule; resuming continues that plan."))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing written
