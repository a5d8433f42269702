"""petlib's ResNet34-UNet <-> segmentation_models_pytorch's Unet("resnet34"): same weights, same logits."""
from __future__ import annotations

import pytest
import torch

from petlib.models import ResNet34UNet, build_model, from_smp, to_smp
from petlib.models.blocks import IMAGENET_MEAN, IMAGENET_STD
from petlib.models.smp import petlib_to_smp_keys, smp_to_petlib_keys

smp = pytest.importorskip("segmentation_models_pytorch")

# Two sizes smp accepts (multiples of 32), one of them not square; a batch of 2.
SIZES = [(64, 64), (96, 160)]


def normalise(images: torch.Tensor) -> torch.Tensor:
    """What smp expects: ImageNet mean/std applied (petlib's models do it inside)."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images - mean) / std


def randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights and BatchNorm statistics, so that a misplaced tensor shows in the logits."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                values = torch.rand(tensor.shape, generator=generator) if "running_var" in name \
                    else torch.randn(tensor.shape, generator=generator) * 0.1
                tensor.copy_(values + (0.5 if "running_var" in name else 0.0))
    return model.eval()


def assert_same_logits(petlib_model: torch.nn.Module, smp_model: torch.nn.Module) -> None:
    generator = torch.Generator().manual_seed(3)
    for height, width in SIZES:
        images = torch.rand(2, 3, height, width, generator=generator)
        with torch.inference_mode():
            ours, theirs = petlib_model(images), smp_model(normalise(images))
        assert ours.shape == theirs.shape == (2, 1, height, width)
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def smp_unet():
    return randomise(smp.Unet("resnet34", encoder_weights=None, classes=1), seed=0)


@pytest.mark.slow  # two ResNet34-UNets at two sizes: ~5-10 s on 2 CPU cores
def test_from_smp_gives_the_same_logits(smp_unet):
    model = from_smp(smp_unet)
    assert isinstance(model, ResNet34UNet) and not model.training
    assert_same_logits(model, smp_unet)


def test_from_smp_takes_a_state_dict_too(smp_unet):
    assert_same_logits(from_smp(smp_unet.state_dict()), smp_unet)


@pytest.mark.slow  # two ResNet34-UNets at two sizes: ~5-10 s on 2 CPU cores
def test_to_smp_gives_the_same_logits():
    model = randomise(build_model("resnet34_unet"), seed=1)
    converted = to_smp(model)
    assert isinstance(converted, smp.Unet)
    assert_same_logits(model, converted)


def test_the_key_maps_are_inverse_and_cover_every_weight(smp_unet):
    state = smp_unet.state_dict()
    ours = smp_to_petlib_keys(state)
    assert set(ours) == set(build_model("resnet34_unet").state_dict())
    assert list(petlib_to_smp_keys(ours)) == list(state)


def test_other_decoder_channels_and_classes_are_read_from_the_weights():
    other = randomise(smp.Unet("resnet34", encoder_weights=None, classes=2, decoder_channels=(64, 32, 32, 16, 8)), 2)
    model = from_smp(other)
    assert model.segmentation_head.out_channels == 2 and model.decoder5.conv1[0].out_channels == 8
    assert to_smp(model).state_dict().keys() == other.state_dict().keys()


def test_layouts_petlib_does_not_have_are_refused_with_what_to_do():
    with pytest.raises(ValueError, match="activation=None"):
        from_smp(smp.Unet("resnet34", encoder_weights=None, classes=1, activation="sigmoid"))
    with pytest.raises(ValueError, match="aux_params"):
        from_smp(smp.Unet("resnet34", encoder_weights=None, aux_params={"classes": 2}).state_dict())
    with pytest.raises(ValueError, match="'resnet34' encoder"):
        from_smp(smp.Unet("resnet18", encoder_weights=None))
    with pytest.raises(TypeError, match="ResNet34UNet"):
        to_smp(build_model("unet", base_channels=4))
    with pytest.raises(ValueError, match="input_scale"):
        to_smp(ResNet34UNet(input_scale=1.5))
