"""Tests for petlib.models: shapes at any size, parameter counts, the factory, the encoder's
torchvision naming and weight loading, gradients, determinism, channels_last, autocast, compile.

Everything runs offline on CPU with tiny inputs; the full-width UNet only sees one small image.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn

from petlib.models import (
    MODELS,
    DecoderBlock,
    ResNet34UNet,
    UNet,
    build_model,
    count_parameters,
    load_encoder_state_dict,
)
from petlib.models.blocks import IMAGENET_MEAN, IMAGENET_STD, crop_to, pad_to_multiple

UNET_PARAMS = 31_031_745
RESNET34_UNET_PARAMS = 24_436_369  # == smp.Unet("resnet34", classes=1), checked below when smp is installed
RESNET34_ENCODER_PARAMS = 21_284_672  # torchvision resnet34 (21,797,672) minus fc (512 * 1000 + 1000)

SIZES = [(64, 64), (65, 97), (33, 47), (128, 96)]


@pytest.fixture(scope="module")
def unet() -> UNet:
    torch.manual_seed(0)
    return UNet()


@pytest.fixture(scope="module")
def small_unet() -> UNet:
    torch.manual_seed(0)
    return UNet(base_channels=8)


@pytest.fixture(scope="module")
def resnet34_unet() -> ResNet34UNet:
    torch.manual_seed(0)
    return ResNet34UNet()


@pytest.fixture(params=["small_unet", "resnet34_unet"])
def model(request: pytest.FixtureRequest) -> nn.Module:
    """Each (cheap) model, fresh from the module fixture but safe to mutate."""
    return copy.deepcopy(request.getfixturevalue(request.param))


def _images(n: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, height, width, generator=generator)


# --- shapes ------------------------------------------------------------------------------------


def test_unet_full_width_output_shape(unet: UNet) -> None:
    with torch.no_grad():
        logits = unet.eval()(_images(1, 33, 47))
    assert logits.shape == (1, 1, 33, 47)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_output_shape_any_size(model: nn.Module, size: tuple[int, int]) -> None:
    with torch.no_grad():
        logits = model.eval()(_images(2, *size))
    assert logits.shape == (2, 1, *size)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


def test_pad_to_multiple_and_crop_roundtrip() -> None:
    x = _images(1, 33, 47)
    padded = pad_to_multiple(x, 32)
    assert padded.shape == (1, 3, 64, 64)
    assert torch.equal(padded[..., :33, :47], x)
    assert padded[..., 33:, :].abs().sum() == 0 and padded[..., :, 47:].abs().sum() == 0
    assert torch.equal(crop_to(padded, 33, 47), x)
    assert pad_to_multiple(_images(1, 64, 32), 32).shape == (1, 3, 64, 32)  # already a multiple: unchanged


# --- parameters, normalisation and the factory -------------------------------------------------


def test_parameter_counts(unet: UNet, resnet34_unet: ResNet34UNet) -> None:
    assert count_parameters(unet) == UNET_PARAMS
    assert count_parameters(resnet34_unet) == RESNET34_UNET_PARAMS
    assert count_parameters(resnet34_unet.encoder) == RESNET34_ENCODER_PARAMS


def test_count_parameters_counts_only_trainable(model: nn.Module) -> None:
    total = count_parameters(model)
    first = next(model.parameters())
    first.requires_grad_(False)
    assert count_parameters(model) == total - first.numel()


def test_normalisation_is_built_in_and_not_saved(model: nn.Module) -> None:
    assert not any(key.startswith("normalize.") for key in model.state_dict())
    assert {name for name, _ in model.named_buffers()} >= {"normalize.mean", "normalize.std"}
    assert model.normalize.mean.flatten().tolist() == pytest.approx(IMAGENET_MEAN)
    assert model.normalize.std.flatten().tolist() == pytest.approx(IMAGENET_STD)
    # an image equal to the ImageNet mean normalises to exactly zero
    mean_image = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    assert model.normalize(mean_image).abs().max() < 1e-6


def test_factory_builds_every_name() -> None:
    assert set(MODELS) == {"unet", "resnet34_unet"}
    assert isinstance(build_model("unet", base_channels=4), UNet)
    assert isinstance(build_model("resnet34_unet"), ResNet34UNet)


def test_factory_error_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown model 'unet34'.*resnet34_unet, unet"):
        build_model("unet34")


def test_invalid_arguments_raise_value_error() -> None:
    with pytest.raises(ValueError, match="in_channels must be 3"):
        UNet(in_channels=1)
    with pytest.raises(ValueError, match="decoder_channels"):
        ResNet34UNet(decoder_channels=(256, 128, 64, 32))


def test_unet_layout_follows_the_lab(unet: UNet) -> None:
    assert [name for name, _ in unet.named_children()] == [
        "normalize", "inc", "down1", "down2", "down3", "down4", "up1", "up2", "up3", "up4", "outc",
    ]  # fmt: skip
    assert not any(isinstance(m, nn.BatchNorm2d) for m in unet.modules())
    convs = [m for m in unet.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert all(conv.bias is not None and not conv.bias.any() for conv in convs)  # biased, zero-initialised
    assert unet.up1.up.kernel_size == (2, 2) and unet.up1.up.stride == (2, 2)
    assert unet.down4.conv[2].out_channels == 1024


# --- the ResNet34 encoder and its torchvision weights ------------------------------------------


def test_encoder_parameters_are_named_like_torchvision(resnet34_unet: ResNet34UNet) -> None:
    reference = torchvision.models.resnet34(weights=None).state_dict()
    expected = {key for key in reference if not key.startswith("fc.")}
    assert set(resnet34_unet.encoder.state_dict()) == expected
    for key, tensor in resnet34_unet.encoder.state_dict().items():
        assert tensor.shape == reference[key].shape, key


def test_encoder_features_strides_and_channels(resnet34_unet: ResNet34UNet) -> None:
    with torch.no_grad():
        features = resnet34_unet.eval().encoder(_images(1, 64, 96))
    assert [f.shape[1] for f in features] == [64, 64, 128, 256, 512]
    assert [(f.shape[2], f.shape[3]) for f in features] == [(32, 48), (16, 24), (8, 12), (4, 6), (2, 3)]


def test_load_encoder_state_dict_strict_and_copies_weights() -> None:
    torch.manual_seed(1)
    reference = torchvision.models.resnet34(weights=None)
    with torch.no_grad():  # make the running stats distinctive too, not just the random weights
        reference.bn1.running_mean.uniform_()
        reference.layer4[2].bn2.running_var.uniform_(1.0, 2.0)
    state_dict = reference.state_dict()
    torch.manual_seed(2)
    model = ResNet34UNet()
    assert not torch.equal(model.encoder.conv1.weight, state_dict["conv1.weight"])

    load_encoder_state_dict(model, state_dict)  # strict: raises on any missing or unexpected key

    encoder_state = model.encoder.state_dict()
    assert set(encoder_state) == {k for k in state_dict if not k.startswith("fc.")}
    for key, tensor in encoder_state.items():
        assert torch.equal(tensor, state_dict[key]), key
    # the decoder is untouched and the encoder computes what torchvision's resnet34 computes
    with torch.no_grad():
        x = _images(1, 64, 64)
        expected = reference.eval().layer4(reference.layer3(reference.layer2(
            reference.layer1(reference.maxpool(reference.relu(reference.bn1(reference.conv1(x))))))))  # fmt: skip
        assert torch.allclose(model.eval().encoder(x)[-1], expected, atol=1e-6)


def test_load_encoder_state_dict_rejects_other_checkpoints(resnet34_unet: ResNet34UNet) -> None:
    model = copy.deepcopy(resnet34_unet)
    with pytest.raises(RuntimeError, match="torchvision.models.resnet34"):
        load_encoder_state_dict(model, torchvision.models.resnet18(weights=None).state_dict())
    with pytest.raises(RuntimeError, match="Missing key"):
        partial = {k: v for k, v in torchvision.models.resnet34(weights=None).state_dict().items() if "layer4" not in k}
        load_encoder_state_dict(model, partial)


def test_pretrained_goes_through_torchvision_weights_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """pretrained=True asks ResNet34_Weights.IMAGENET1K_V1 for its state_dict (faked: no download)."""
    state_dict = torchvision.models.resnet34(weights=None).state_dict()
    calls = []

    def fake_get_state_dict(self, *args, **kwargs):
        calls.append(self)
        return state_dict

    monkeypatch.setattr(torchvision.models.ResNet34_Weights, "get_state_dict", fake_get_state_dict)
    model = ResNet34UNet(pretrained=True)
    assert calls == [torchvision.models.ResNet34_Weights.IMAGENET1K_V1]
    assert torch.equal(model.encoder.layer3[5].conv2.weight, state_dict["layer3.5.conv2.weight"])


# --- training and inference behaviour ----------------------------------------------------------


def _first_and_last(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(model, UNet):
        return model.inc[0].weight, model.outc.weight
    return model.encoder.conv1.weight, model.segmentation_head.weight


def test_gradients_reach_first_and_last_layers(model: nn.Module) -> None:
    model.train()
    images = _images(2, 33, 47)
    masks = (torch.rand(2, 1, 33, 47, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    loss = nn.functional.binary_cross_entropy_with_logits(model(images), masks)
    loss.backward()
    for weight in _first_and_last(model):
        assert weight.grad is not None
        assert torch.isfinite(weight.grad).all() and weight.grad.abs().sum() > 0


def test_eval_output_is_deterministic(model: nn.Module) -> None:
    model.eval()
    images = _images(1, 65, 97)
    with torch.no_grad():
        assert torch.equal(model(images), model(images))


def test_channels_last_matches_contiguous(model: nn.Module) -> None:
    model.eval()
    images = _images(2, 65, 97)
    with torch.no_grad():
        expected = model(images)
        model = model.to(memory_format=torch.channels_last)
        logits = model(images.contiguous(memory_format=torch.channels_last))
    assert logits.shape == expected.shape
    assert torch.allclose(logits, expected, atol=1e-4, rtol=1e-4)


def test_autocast_bfloat16(model: nn.Module) -> None:
    model.eval()
    images = _images(1, 33, 47)
    with torch.no_grad():
        expected = model(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(images)
    assert logits.shape == (1, 1, 33, 47) and logits.dtype == torch.bfloat16
    assert torch.isfinite(logits).all()
    assert (logits.float() - expected).abs().max() < 0.1 * expected.abs().max() + 0.1


def test_padding_and_upsampling_trace_with_dynamic_shapes() -> None:
    """The pattern both models rely on (pad to a multiple, then x2 nearest upsampling) compiles
    with dynamic shapes. A `%` in the pad amount broke torch 2.14 here (python_mod); aot_eager
    runs the same AOT pass as inductor without a C++ compiler, so this stays fast."""
    torch.manual_seed(0)
    block = DecoderBlock(3, 0, 4).eval()

    def pad_then_decode(x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        return crop_to(block(pad_to_multiple(x, 32)), 2 * height, 2 * width)

    compiled = torch.compile(pad_then_decode, backend="aot_eager", dynamic=True)
    with torch.no_grad():
        for size in [(33, 47), (65, 97)]:
            x = _images(1, *size)
            assert torch.allclose(compiled(x), pad_then_decode(x), atol=1e-6)


# --- equivalence with segmentation_models_pytorch (skipped when smp is not installed) ------------


def test_matches_smp_unet_resnet34(resnet34_unet: ResNet34UNet) -> None:
    smp = pytest.importorskip("segmentation_models_pytorch")
    reference = smp.Unet("resnet34", encoder_weights=None, classes=1)
    assert count_parameters(reference) == count_parameters(resnet34_unet) == RESNET34_UNET_PARAMS

    # Same layout: copying smp's weights in order gives the same function (smp does not normalise).
    ours = copy.deepcopy(resnet34_unet)
    ours_state, smp_state = ours.state_dict(), reference.state_dict()
    assert [t.shape for t in ours_state.values()] == [t.shape for t in smp_state.values()]
    ours.load_state_dict(dict(zip(ours_state, smp_state.values())))
    images = _images(2, 64, 96)
    normalised = (images - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(ours.eval()(images), reference.eval()(normalised), atol=1e-5)


@pytest.mark.parametrize("name, deepest", [("unet", 16), ("resnet34_unet", 32)])
def test_shape_trace_follows_the_forward_pass_and_counts_every_parameter(name, deepest):
    from petlib.models import count_parameters, format_trace, shape_trace

    model = build_model(name).train()
    trace = shape_trace(model, 64)
    assert model.training  # mode restored
    assert sum(stage.params for stage in trace) == count_parameters(model)
    sides = [stage.shape[-1] for stage in trace]
    assert min(sides) == 64 // deepest and sides[-1] == 64 and trace[-1].shape == (1, 1, 64, 64)
    turn = sides.index(min(sides))  # down through the encoder, then back up through the decoder
    assert sides[: turn + 1] == sorted(sides[: turn + 1], reverse=True) and sides[turn:] == sorted(sides[turn:])
    table = format_trace(trace, 64)
    assert table.splitlines()[2].split() == ["input", "3", "x", "64", "x", "64", "1"]
    with pytest.raises(ValueError, match="no module"):
        shape_trace(model, 64, stages=("nope",))


def test_eval_mode_restores_the_mode_it_found():
    from petlib.models import eval_mode

    model = nn.Sequential(nn.BatchNorm2d(3))
    with eval_mode(model):
        assert not model.training and not model[0].training
    assert model.training and model[0].training
    model.eval()
    with pytest.raises(RuntimeError), eval_mode(model):
        raise RuntimeError("the mode is restored on errors too")
    assert not model.training


@pytest.mark.parametrize("size", [(64, 64), (65, 97)])
def test_input_scale_keeps_the_output_size_and_runs_the_encoder_larger(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = ResNet34UNet(input_scale=1.5).eval()
    seen = []
    hook = model.encoder.conv1.register_forward_hook(lambda _m, inputs, _out: seen.append(inputs[0].shape[-2:]))
    with torch.no_grad():
        logits = model(torch.rand(2, 3, *size))
    hook.remove()
    assert logits.shape == (2, 1, *size)
    # enlarged by 1.5, then padded to a multiple of 32
    assert tuple(seen[0]) == tuple(-(-round(s * 1.5) // 32) * 32 for s in size)
    assert count_parameters(model) == RESNET34_UNET_PARAMS  # a scale, not a different network
    with pytest.raises(ValueError, match="input_scale"):
        ResNet34UNet(input_scale=0)


def test_zero_init_residual_starts_each_block_as_the_identity() -> None:
    model = ResNet34UNet(zero_init_residual=True)
    blocks = [b for layer in (model.encoder.layer1, model.encoder.layer2, model.encoder.layer3, model.encoder.layer4)
              for b in layer]
    assert all(torch.count_nonzero(b.bn2.weight) == 0 for b in blocks)
    assert torch.count_nonzero(ResNet34UNet().encoder.layer1[0].bn2.weight) > 0
