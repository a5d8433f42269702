"""Prediction for users' photos: flip TTA, the probability threshold of ``petlib-predict``, the exported wrapper.

Written from mutation testing (``make mutation``, tests/README.md). Models here are stand-ins with
known logits (a constant, a one-pixel shift that is not left-right symmetric), so each expected
mask or probability is worked out by hand rather than by calling the code under test twice.
"""
import importlib
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from petlib.evaluation.export import ExportedSegmenter
from petlib.evaluation.predict import predict_logits_at_size, predict_mask, predict_probabilities

# the module (petlib.cli's attribute `predict` is the console command's function)
predict_cli = importlib.import_module("petlib.cli.predict")


class Constant(nn.Module):
    """The same logit for every pixel; counts its calls and the batch sizes it sees."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value
        self.batches: list[int] = []
        self.scale = nn.Parameter(torch.ones(()))  # something for .to(device) to move

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.batches.append(images.shape[0])
        return torch.full_like(images[:, :1], self.value) * self.scale


class ShiftRight(nn.Module):
    """Logits = the red channel (in [0, 1]) moved one pixel to the right, minus a half: not symmetric."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images[:, :1].roll(1, dims=-1) - 0.5


def photo(height: int, width: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def red(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image)[..., 0].astype(np.float32) / 255)  # (H, W)


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# --------------------------------------------------------------------------- evaluation.predict


def test_probabilities_come_back_at_each_photos_size_as_a_sigmoid():
    model = Constant(0.3)
    probabilities = predict_probabilities(model, [photo(6, 10), photo(9, 4)], 8)
    assert [tuple(p.shape) for p in probabilities] == [(6, 10), (9, 4)]
    for p in probabilities:
        torch.testing.assert_close(p, torch.full_like(p, sigmoid(0.3)))
    assert model.batches == [2]  # one batch for all photos
    assert predict_probabilities(model, [], 8) == []


@pytest.mark.parametrize("tta", [False, True])
def test_probabilities_with_and_without_flip_tta(tta):
    image = photo(8, 8)
    r = red(image)
    logits = (r.roll(1, -1) + r.roll(-1, -1)) / 2 - 0.5 if tta else r.roll(1, -1) - 0.5
    (probability,) = predict_probabilities(ShiftRight(), [image], 8, tta=tta)  # already at size 8: no resize
    torch.testing.assert_close(probability, torch.sigmoid(logits))


def test_logits_at_size_and_the_mask_threshold_a_probability():
    image = photo(5, 7)
    logits = predict_logits_at_size(Constant(0.3), image, 4)
    assert logits.shape == (1, 1, 5, 7)
    torch.testing.assert_close(logits, torch.full((1, 1, 5, 7), 0.3))
    # logit 0.3 is a probability of 0.574: pet at 0.5 and 0.55, not at 0.6
    assert predict_mask(Constant(0.3), image, 4).all() and predict_mask(Constant(0.3), image, 4).shape == (5, 7)
    assert predict_mask(Constant(0.3), image, 4, threshold=0.55).all()
    assert not predict_mask(Constant(0.3), image, 4, threshold=0.6).any()


def test_logits_at_size_and_the_mask_use_flip_tta_when_asked():
    image = photo(6, 6, seed=3)
    r = red(image)
    tta = (r.roll(1, -1) + r.roll(-1, -1)) / 2 - 0.5
    torch.testing.assert_close(predict_logits_at_size(ShiftRight(), image, 6, tta=True)[0, 0], tta)
    assert np.array_equal(predict_mask(ShiftRight(), image, 6, tta=True), (tta > 0).numpy())


# --------------------------------------------------------------------------- petlib-predict


@pytest.fixture
def stand_in(monkeypatch):
    """``petlib-predict`` with load_model returning a given stand-in model and checkpoint config."""

    def use(model: nn.Module, **config):
        checkpoint = {"model_name": "stand-in", "config": {"image_size": 8, **config}}
        monkeypatch.setattr(predict_cli, "load_model", lambda path: (model, checkpoint))
        return model

    return use


def run_predict(tmp_path, *flags, photos=1):
    for i in range(photos):
        photo(6, 9, seed=i).save(tmp_path / f"p{i}.png")
    out = tmp_path / "out"
    argv = [*(str(tmp_path / f"p{i}.png") for i in range(photos)), "--model_path", "unused.pth",
            "--out_dir", str(out), "--no_overlay", "--device", "cpu", *flags]
    assert predict_cli.main(argv) == 0
    return [np.asarray(Image.open(out / f"p{i}_mask.png")) for i in range(photos)]


@pytest.mark.parametrize("logit, threshold, pet", [(0.3, None, True), (0.3, "0.55", True), (0.3, "0.6", False),
                                                  (0.0, None, False)])
def test_predict_thresholds_the_probability_not_the_logit(tmp_path, stand_in, capsys, logit, threshold, pet):
    # logit 0.3 = probability 0.574: pet at the default 0.5 and at 0.55 (a logit would be below both);
    # logit 0 = probability 0.5 exactly: background, as the Dice scores it
    stand_in(Constant(logit))
    (mask,) = run_predict(tmp_path, *(["--threshold", threshold] if threshold else []))
    assert mask.shape == (6, 9) and mask.dtype == np.uint8
    assert (mask == (255 if pet else 0)).all()
    assert f"{100.0 if pet else 0.0:.1f}% pet" in capsys.readouterr().out


@pytest.mark.parametrize("validated, flag, calls", [(True, [], 2), (False, [], 1), (True, ["--tta", "off"], 1),
                                                    (False, ["--tta", "on"], 2)])
def test_predict_uses_tta_as_validated_unless_told(tmp_path, stand_in, validated, flag, calls):
    model = stand_in(Constant(1.0), tta=validated)
    run_predict(tmp_path, *flag)
    assert len(model.batches) == calls


def test_predict_sends_batch_size_photos_at_a_time_at_the_training_size(tmp_path, stand_in, capsys):
    model = stand_in(Constant(1.0), tta=False)
    sizes = []
    model.register_forward_pre_hook(lambda module, args: sizes.append(tuple(args[0].shape[-2:])))
    masks = run_predict(tmp_path, "--batch_size", "2", photos=3)
    assert capsys.readouterr().out.splitlines()[-1].startswith("done: 3 of 3 photo(s) segmented")
    assert model.batches == [2, 1] and sizes == [(8, 8), (8, 8)]
    assert all(mask.shape == (6, 9) for mask in masks)
    sizes.clear()
    run_predict(tmp_path, "--image_size", "5")
    assert sizes == [(5, 5)]


@pytest.mark.parametrize("text", ["0", "1", "1.5", "-0.1", "half"])
def test_the_threshold_must_be_a_probability(text, capsys):
    with pytest.raises(SystemExit):
        predict_cli.build_parser().parse_args(["x.png", "--model_path", "m", "--out_dir", "o", "--threshold", text])
    assert predict_cli._probability("0.25") == 0.25


# --------------------------------------------------------------------------- export's wrapper


def test_the_exported_wrapper_is_the_model_and_with_tta_the_flip_average():
    images = torch.rand(2, 3, 4, 6, generator=torch.Generator().manual_seed(0))
    r = images[:, :1]
    torch.testing.assert_close(ExportedSegmenter(ShiftRight())(images), r.roll(1, -1) - 0.5)
    torch.testing.assert_close(ExportedSegmenter(ShiftRight(), tta=True)(images),
                               (r.roll(1, -1) + r.roll(-1, -1)) / 2 - 0.5)
    model = nn.Sequential(nn.Conv2d(3, 1, 1), nn.BatchNorm2d(1)).train()
    assert not ExportedSegmenter(model).model.training  # exported in inference mode


# --------------------------------------------------------------------------- more of predict and petlib-predict


class Ramp(nn.Module):
    """Logits 0, 1, 2, ... across the columns, whatever the photo."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n, _, height, width = images.shape
        return torch.arange(width, dtype=torch.float32).expand(n, 1, height, width).clone()


def test_logits_are_resized_back_with_pixel_centres_aligned():
    # logits (0, 1) at 2 px, back to 4 px: bilinear between pixel centres, 0, 1/4, 3/4, 1
    logits = predict_logits_at_size(Ramp(), photo(3, 4), 2)
    torch.testing.assert_close(logits[0, 0, 0], torch.tensor([0.0, 0.25, 0.75, 1.0]))
    (probability,) = predict_probabilities(Ramp(), [photo(3, 4)], 2)
    torch.testing.assert_close(probability[0], torch.sigmoid(torch.tensor([0.0, 0.25, 0.75, 1.0])))


def test_prediction_defaults_to_no_tta_and_a_probability_of_exactly_the_threshold_is_background():
    image = photo(6, 6, seed=3)
    plain = red(image).roll(1, -1) - 0.5
    torch.testing.assert_close(predict_logits_at_size(ShiftRight(), image, 6)[0, 0], plain)
    assert np.array_equal(predict_mask(ShiftRight(), image, 6), (plain > 0).numpy())
    (probability,) = predict_probabilities(ShiftRight(), [image], 6)
    torch.testing.assert_close(probability, torch.sigmoid(plain))
    assert not predict_mask(Constant(0.0), image, 4).any()  # probability 0.5, as the Dice scores it


def test_validated_tta_reads_the_checkpoints_config_and_defaults_to_without():
    from petlib.evaluation.predict import validated_tta

    assert validated_tta({"config": {"tta": True}}) is True
    assert validated_tta({"config": {"tta": False}}) is False
    assert validated_tta({"config": {}}) is False and validated_tta({}) is False


def test_describe_tta_says_what_was_used_and_what_was_validated():
    from petlib.evaluation.predict import describe_tta

    assert describe_tta(True, True) == "with flip TTA, as validated"
    assert describe_tta(False, False) == "without TTA, as validated"
    assert describe_tta(True, False) == "with flip TTA (validated without TTA)"
    assert describe_tta(False, True) == "without TTA (validated with flip TTA)"


def test_output_stems_number_repeated_stems_from_2_and_skip_taken_ones(tmp_path):
    from petlib.evaluation.predict import output_stems

    paths = [tmp_path / "a.jpg", tmp_path / "x" / "a.png", tmp_path / "a_2.jpg", tmp_path / "y" / "a.jpg",
             tmp_path / "b.jpg"]
    assert output_stems(paths) == ["a", "a_2", "a_2_2", "a_3", "b"]


def test_find_images_files_folders_and_patterns(tmp_path):
    from petlib.evaluation.predict import find_images

    folder, deep = tmp_path / "photos", tmp_path / "photos" / "deep"
    deep.mkdir(parents=True)
    for path in (folder / "b.JPG", folder / "a.png", folder / ".hidden.jpg", folder / "notes.txt", deep / "c.jpg"):
        path.write_bytes(b"x")
    odd = tmp_path / "scan.dat"
    odd.write_bytes(b"x")
    # a folder: its images directly in it, sorted, hidden and non-image files aside
    assert find_images([str(folder)]) == ([folder / "a.png", folder / "b.JPG"], [])
    # a file named is taken whatever its suffix; each photo once, in order; what names nothing is unmatched
    found, unmatched = find_images([str(odd), str(folder / "a.png"), str(folder), str(tmp_path / "missing.jpg"),
                                    str(tmp_path / "none" / "*.jpg"), str(tmp_path / "empty")])
    assert found == [odd, folder / "a.png", folder / "b.JPG"]
    assert unmatched == [str(tmp_path / "missing.jpg"), str(tmp_path / "none" / "*.jpg"), str(tmp_path / "empty")]
    # patterns: ** reaches sub-folders; hidden and non-image matches aside
    assert find_images([str(folder / "**" / "*")]) == ([folder / "a.png", folder / "b.JPG", deep / "c.jpg"], [])
    assert find_images([str(folder / "*.txt")]) == ([], [str(folder / "*.txt")])


def test_find_images_leaves_out_what_petlib_predict_wrote_into_the_output_folder(tmp_path):
    from petlib.evaluation.predict import find_images

    for name in ("cat.jpg", "cat_mask.png", "cat_overlay.png"):
        (tmp_path / name).write_bytes(b"x")
    everything = [tmp_path / "cat.jpg", tmp_path / "cat_mask.png", tmp_path / "cat_overlay.png"]
    assert find_images([str(tmp_path)], out_dir=tmp_path)[0] == [tmp_path / "cat.jpg"]
    assert find_images([str(tmp_path / "*.png")], out_dir=tmp_path) == ([], [str(tmp_path / "*.png")])
    assert find_images([str(tmp_path)], out_dir=tmp_path / "elsewhere")[0] == everything
    assert find_images([str(tmp_path)])[0] == everything
    # named one by one, a file is taken even from the output folder
    assert find_images([str(tmp_path / "cat_mask.png")], out_dir=tmp_path)[0] == [tmp_path / "cat_mask.png"]


class LeftHalf(nn.Module):
    """Pet on the left half of the columns, background on the right."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        width = images.shape[-1]
        logits = torch.full_like(images[:, :1], -5.0)
        logits[..., : width // 2] = 5.0
        return logits


def test_predict_writes_masks_and_overlays_into_a_new_nested_folder_and_sums_up(tmp_path, monkeypatch, capsys):
    from petlib.evaluation.plots import overlay

    paths = []
    monkeypatch.setattr(predict_cli, "load_model", lambda path: paths.append(path) or (LeftHalf(), {"model_name": "m"}))
    image = photo(4, 8)
    image.save(tmp_path / "p.png")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    out = tmp_path / "a" / "b"
    argv = [str(tmp_path / "p.png"), str(tmp_path / "broken.jpg"), "--model_path", "my.pth", "--out_dir", str(out),
            "--device", "cpu", "--image_size", "8"]
    assert predict_cli.main(argv) == 1  # a file it could not read
    assert paths == ["my.pth"]
    mask = np.asarray(Image.open(out / "p_mask.png"))
    assert (mask[:, :4] == 255).all() and (mask[:, 4:] == 0).all()
    written = np.asarray(Image.open(out / "p_overlay.png"))
    assert np.array_equal(written, overlay(np.asarray(image), mask > 0, outline=True))
    assert not np.array_equal(written, overlay(np.asarray(image), mask > 0, outline=False))
    printed = capsys.readouterr().out.splitlines()
    assert printed[-2] == f"{tmp_path / 'p.png'} (8x4): 50.0% pet -> {out / 'p_mask.png'}, {out / 'p_overlay.png'}"
    summary = printed[-1]
    assert summary.startswith(f"done: 1 of 2 photo(s) segmented, masks and overlays in {out}/ (")
    assert summary.endswith(f"; skipped 1 unreadable: {tmp_path / 'broken.jpg'}")
    assert float(summary.split("(")[2].split(" s)")[0]) < 600  # the seconds it took


def test_predict_exit_status_and_summary_name_what_was_skipped(tmp_path, stand_in, capsys):
    stand_in(Constant(1.0))
    photo(4, 4).save(tmp_path / "p.png")
    missing = str(tmp_path / "missing.jpg")
    common = ["--model_path", "m.pth", "--out_dir", str(tmp_path), "--no_overlay", "--device", "cpu"]
    assert predict_cli.main([str(tmp_path / "p.png"), missing, *common]) == 1
    summary = capsys.readouterr().out.splitlines()[-1]
    assert summary.startswith(f"done: 1 of 1 photo(s) segmented, masks in {tmp_path}/ (")
    assert summary.endswith(f"; skipped 1 naming no image: {missing}")
    # the output folder is the input folder: the second run does not segment the first one's mask
    assert predict_cli.main([str(tmp_path), *common]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("done: 1 of 1 photo(s)")


def test_predict_without_a_config_in_the_checkpoint_uses_the_default_size(tmp_path, monkeypatch):
    model = Constant(1.0)
    sizes = []
    model.register_forward_pre_hook(lambda module, args: sizes.append(tuple(args[0].shape[-2:])))
    monkeypatch.setattr(predict_cli, "load_model", lambda path: (model, {"model_name": "old"}))
    run_predict(tmp_path)
    assert sizes == [(256, 256)]  # TrainConfig's image_size, and no TTA (not validated with it)


def test_photos_reach_the_model_resized_as_the_dataset_resizes_them(tmp_path):
    from petlib.data.dataset import OxfordPetSegmentation
    from petlib.evaluation.predict import _to_batch
    from tests.data.test_dataset_properties import write_release

    root = write_release(tmp_path / "pets", count=2)
    dataset = OxfordPetSegmentation(root, "test", image_size=7)
    image = Image.open(dataset.image_path(0))
    torch.testing.assert_close(_to_batch([image], 7)[0], dataset[0]["image"])
    gray = _to_batch([image.convert("L")], 7)[0]  # a grayscale photo comes in as RGB
    assert gray.shape == (3, 7, 7) and torch.equal(gray[0], gray[2])


def test_predict_help_names_the_command_and_shows_its_examples(monkeypatch):
    monkeypatch.setattr("sys.argv", ["script.py"])
    assert predict_cli.build_parser().prog == "python -m petlib.predict"  # the name that was typed
    monkeypatch.setattr("sys.argv", ["petlib-predict"])
    parser = predict_cli.build_parser()
    text = parser.format_help()
    assert parser.prog == "petlib-predict" and text.startswith("usage: petlib-predict")
    assert predict_cli.__doc__.split("\n\n")[0].split()[0] in text
    assert "IMAGE [IMAGE ...]" in text
    for line in ("petlib-predict photos/ --model_path saved_models/resnet34_unet.pth --out_dir masks/",
                 "# every photo in photos/: masks/<stem>_mask.png and <stem>_overlay.png",
                 "petlib-predict cat.jpg \"albums/**/*.png\" --model_path pets-resnet34-unet --out_dir masks/ --tta on",
                 "# a file and a pattern, with a model folder, averaging with the mirrored photo",
                 ("petlib-predict photos/ --model_path saved_models/unet.pth --out_dir masks/ --no_overlay "
                  "--threshold 0.6"),
                 "# masks only, a pixel is pet above probability 0.6"):
        assert line in text, line
    args = parser.parse_args(["a.jpg", "--model_path", "m", "--out_dir", "o"])
    assert args.overlay is True and args.threshold == 0.5 and args.batch_size == 8 and args.tta is None
