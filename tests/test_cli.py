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
