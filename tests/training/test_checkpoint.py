"""Checkpoint files: plain data only (weights_only loads), the versions that wrote them, and
the permissions of any new file."""
import os
from pathlib import Path

import pytest
import torch

import petlib
from petlib.models import build_model
from petlib.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from petlib.training.config import TrainConfig


class _RunsCodeWhenUnpickled:
    """What a malicious checkpoint carries: unpickling it calls ``Path.touch(marker)``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def small_checkpoint() -> dict:
    model = build_model("unet", base_channels=4)
    return {"model_name": "unet", "model_kwargs": {"base_channels": 4}, "model_state": model.state_dict(),
            "config": TrainConfig(model="unet").to_dict(), "history": [{"epoch": 1, "val_dice": 0.5}], "epoch": 1}


def test_a_checkpoint_with_a_pickled_object_is_refused_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "code ran"
    path = tmp_path / "evil.pth"
    torch.save({**small_checkpoint(), "payload": _RunsCodeWhenUnpickled(marker)}, path)
    with pytest.raises(CheckpointError, match=r"refusing to load .*evil\.pth.*Path\.touch|evil\.pth"):
        load_checkpoint(path)
    assert not marker.exists()


def test_a_saved_checkpoint_records_versions_and_loads_with_weights_only(tmp_path):
    path = save_checkpoint({**small_checkpoint(), "data_path": tmp_path / "data", "amp_dtype": torch.bfloat16},
                           tmp_path / "c.pth")
    raw = torch.load(path, weights_only=True)  # would raise on anything but tensors and plain data
    assert raw["petlib_version"] == petlib.__version__ and raw["torch_version"] == torch.__version__
    assert raw["data_path"] == str(tmp_path / "data") and raw["amp_dtype"] == "bfloat16"
    assert load_checkpoint(path)["petlib_version"] == petlib.__version__


def test_saving_an_object_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(TypeError, match=r"\['history'\]\[0\].*weights_only"):
        save_checkpoint({**small_checkpoint(), "history": [object()]}, tmp_path / "c.pth")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_checkpoints_get_the_permissions_of_any_new_file(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        path = save_checkpoint(small_checkpoint(), tmp_path / "c.pth")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode
