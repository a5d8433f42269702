"""evaluate_checkpoint scores as the checkpoint was validated, unless told otherwise."""
import pytest
import torch

import petlib.evaluation.score as inference
from petlib.data import SAMPLE_ROOT
from petlib.evaluation.predict import describe_tta
from petlib.evaluation.score import evaluate_checkpoint
from petlib.models import build_model
from petlib.training.checkpoint import save_checkpoint
from petlib.training.config import TrainConfig


def tiny_checkpoint(path, **config_values) -> str:
    """A random tiny UNet saved as fit would, with ``config_values`` in its config."""
    torch.manual_seed(0)
    model = build_model("unet", base_channels=4)
    config = TrainConfig(model="unet", model_kwargs={"base_channels": 4}, image_size=16).to_dict()
    config.update(config_values)
    save_checkpoint({"model_name": "unet", "model_kwargs": {"base_channels": 4}, "model_state": model.state_dict(),
                     "config": config, "history": [], "epoch": 1}, path)
    return str(path)


@pytest.fixture
def tta_used(monkeypatch) -> list[bool]:
    """The ``tta`` that each engine.evaluate call of petlib.evaluation.score received."""
    used = []
    real = inference.evaluate

    def spy(*args, **kwargs):
        used.append(kwargs["tta"])
        return real(*args, **kwargs)

    monkeypatch.setattr(inference, "evaluate", spy)
    return used


@pytest.mark.parametrize("stored, asked, expected", [
    (True, None, True), (False, None, False), ("absent", None, False), (True, False, False), (False, True, True),
])
def test_tta_defaults_to_the_checkpoints_validation(tmp_path, tta_used, stored, asked, expected):
    values = {} if stored == "absent" else {"tta": stored}
    path = tiny_checkpoint(tmp_path / "c.pth", **values)
    if stored == "absent":  # a checkpoint from before the option: no "tta" in its config
        checkpoint = torch.load(path, weights_only=True)
        del checkpoint["config"]["tta"]
        torch.save(checkpoint, path)
    result = evaluate_checkpoint(path, SAMPLE_ROOT, "valid", batch_size=8, tta=asked, device="cpu")
    assert tta_used == [expected] and result["tta"] is expected
    assert result["validated_tta"] is (stored is True)
    assert "model" not in result  # metrics only
    assert set(result) >= {"dice", "iou", "count", "loss", "model_name", "image_size", "epoch"}


def test_describe_tta():
    assert describe_tta(True, True) == "with flip TTA, as validated"
    assert describe_tta(False, False) == "without TTA, as validated"
    assert describe_tta(False, True) == "without TTA (validated with flip TTA)"
    assert describe_tta(True, False) == "with flip TTA (validated without TTA)"
