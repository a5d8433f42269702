"""hubconf.py: torch.hub.load on this repository gives petlib's models, untrained or with weights (offline)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from petlib.models import ResNet34UNet, UNet, build_model
from petlib.training.checkpoint import CheckpointError, save_checkpoint
from petlib.training.pretrained import save_pretrained

ROOT = Path(__file__).resolve().parents[1]


def hub(entry: str, **kwargs):
    return torch.hub.load(str(ROOT), entry, source="local", **kwargs)


@pytest.fixture
def checkpoint(tmp_path) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = build_model("unet", base_channels=4)
    path = save_checkpoint({"model_name": "unet", "model_kwargs": {"base_channels": 4},
                            "model_state": model.state_dict(), "epoch": 1}, tmp_path / "unet.pth")
    return model.eval(), path


def same_logits(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    images = torch.rand(1, 3, 32, 48, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        return torch.equal(a(images), b(images))


def test_untrained_models_take_the_model_arguments():
    unet = hub("unet", base_channels=4)
    assert isinstance(unet, UNet) and unet.inc[0].out_channels == 4
    assert isinstance(hub("resnet34_unet", decoder_channels=(32, 16, 16, 8, 8)), ResNet34UNet)


def test_weights_from_a_checkpoint_or_a_model_folder(checkpoint, tmp_path):
    model, path = checkpoint
    from_file = hub("unet", weights=str(path))
    assert same_logits(model, from_file) and not from_file.training
    folder = save_pretrained(path, tmp_path / "pets-unet")
    assert same_logits(model, hub("unet", weights=folder))


def test_weights_from_a_url_are_downloaded_once_into_the_hub_cache(checkpoint, tmp_path, monkeypatch):
    model, path = checkpoint
    folder = save_pretrained(path, tmp_path / "pets-unet")
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    # file:// URLs go through the same download code as https:// ones, without a network.
    assert same_logits(model, hub("unet", weights=path.as_uri()))
    assert same_logits(model, hub("unet", weights=(folder / "model.safetensors").as_uri()))
    cached = sorted(p.name for p in (tmp_path / "hub" / "petlib").rglob("*") if p.is_file())
    assert cached == ["config.json", "model.safetensors", "unet.pth"]
    url = path.as_uri()
    path.unlink()  # the second load reads the cache
    assert same_logits(model, hub("unet", weights=url))


def test_wrong_weights_or_extra_arguments_are_refused(checkpoint):
    _, path = checkpoint
    with pytest.raises(CheckpointError, match="holds a 'unet' model, not 'resnet34_unet'"):
        hub("resnet34_unet", weights=str(path))
    with pytest.raises(ValueError, match="settings come from the weights"):
        hub("unet", weights=str(path), base_channels=8)
