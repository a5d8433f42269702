"""The shared blocks against independent references: torchvision's ImageNet transforms, shapes, padding.

Written from mutation testing (``make mutation``, tests/README.md).
"""
import pytest
import torch
from torchvision.models import ResNet34_Weights
from torchvision.transforms import functional as TF

from petlib.models import build_model
from petlib.models.blocks import ConvBNReLU, DecoderBlock, DoubleConv, Normalize, crop_to, pad_to_multiple


def test_normalize_is_torchvisions_imagenet_normalisation():
    reference = ResNet34_Weights.IMAGENET1K_V1.transforms()  # the weights the ResNet34-UNet's encoder loads
    images = torch.rand(2, 3, 5, 4, generator=torch.Generator().manual_seed(0))
    expected = TF.normalize(images, mean=reference.mean, std=reference.std)
    torch.testing.assert_close(Normalize()(images), expected)


@pytest.mark.parametrize("name", ["unet", "resnet34_unet"])
def test_every_model_normalises_as_torchvision_does(name):
    reference = ResNet34_Weights.IMAGENET1K_V1.transforms()
    model = build_model(name, **({"base_channels": 4} if name == "unet" else {}))
    images = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(model.normalize(images), TF.normalize(images, reference.mean, reference.std))


def test_normalize_takes_its_own_statistics_and_checks_them():
    images = torch.full((1, 2, 1, 1), 3.0)
    assert Normalize(mean=(1.0, 2.0), std=(2.0, 4.0))(images).flatten().tolist() == [1.0, 0.25]
    with pytest.raises(ValueError, match="one value per channel"):
        Normalize(mean=(0.5, 0.5), std=(0.5,))
    assert Normalize().state_dict() == {}  # the statistics are not weights


@pytest.mark.parametrize("batch_norm, layers", [(True, ["Conv2d", "BatchNorm2d", "ReLU"] * 2),
                                                (False, ["Conv2d", "ReLU"] * 2)])
def test_double_conv_layout(batch_norm, layers):
    block = DoubleConv(3, 5, batch_norm=batch_norm)
    assert [type(m).__name__ for m in block] == layers
    convs = [m for m in block if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [(3, 5, (3, 3), (1, 1)),
                                                                                        (5, 5, (3, 3), (1, 1))]
    assert all((c.bias is None) == batch_norm for c in convs)
    assert block(torch.rand(1, 3, 6, 7)).shape == (1, 5, 6, 7)


def test_double_conv_has_batch_norm_by_default():
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in DoubleConv(3, 5))


def test_conv_bn_relu_and_decoder_block_shapes():
    block = ConvBNReLU(3, 4)
    assert [type(m).__name__ for m in block] == ["Conv2d", "BatchNorm2d", "ReLU"]
    conv = block[0]
    assert (conv.kernel_size, conv.padding, conv.bias) == ((3, 3), (1, 1), None)
    assert (block(torch.rand(1, 3, 5, 6)) >= 0).all()
    decoder = DecoderBlock(6, 2, 3).eval()
    x, skip = torch.rand(1, 6, 3, 4), torch.rand(1, 2, 6, 8)
    assert decoder(x, skip).shape == (1, 3, 6, 8)
    assert decoder.conv1[0].in_channels == 8
    without_skip = DecoderBlock(6, 0, 3).eval()
    assert without_skip(x).shape == (1, 3, 6, 8)
    # upsampling is nearest: the first convolution sees each input pixel as a 2x2 block
    seen = []
    without_skip.conv1.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    without_skip(x)
    torch.testing.assert_close(seen[0], x.repeat_interleave(2, -2).repeat_interleave(2, -1))


@pytest.mark.parametrize("height, width", [(5, 7), (8, 8), (9, 16), (16, 9)])
def test_pad_to_multiple_pads_bottom_right_with_zeros_to_the_next_multiple(height, width):
    x = torch.rand(1, 2, height, width) + 1
    padded = pad_to_multiple(x, 8)
    expected = (-(-height // 8) * 8, -(-width // 8) * 8)
    assert padded.shape[-2:] == expected
    assert torch.equal(padded[..., :height, :width], x)
    rest = padded.clone()
    rest[..., :height, :width] = 0
    assert not rest.any()  # the rest is zero
    assert torch.equal(crop_to(padded, height, width), x)
