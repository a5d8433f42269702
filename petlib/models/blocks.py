"""Building blocks shared by the segmentation models, each defined once.

* :class:`Normalize` -- ImageNet normalisation of ``[0, 1]`` images, the first step of every model.
* :class:`DoubleConv` -- ``(3x3 conv => [BN] => ReLU) * 2``, the U-Net's basic unit.
* :class:`ConvBNReLU` -- ``3x3 conv (no bias) => BN => ReLU``.
* :class:`DecoderBlock` -- ``upsample x2 => concat skip => ConvBNReLU * 2`` (the smp U-Net decoder).
* :func:`pad_to_multiple` / :func:`crop_to` -- let a network whose strides compound to ``k``
  accept any input size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Normalize",
    "DoubleConv",
    "ConvBNReLU",
    "DecoderBlock",
    "pad_to_multiple",
    "crop_to",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, for images ``(N, C, H, W)`` in ``[0, 1]``.

    mean and std are non-persistent buffers: they follow ``.to(device)`` but stay out of the
    ``state_dict``, which therefore holds only learnt weights.
    """

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError(f"mean and std need one value per channel, got {len(mean)} and {len(std)}")
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        return (images - self.mean) / self.std


class DoubleConv(nn.Sequential):
    """(3x3 conv, padding 1 => [BN] => ReLU) * 2

    With ``batch_norm=False`` (the original U-Net) the convolutions carry a bias; with BN they
    do not, since BN's shift makes a bias redundant.
    """

    def __init__(self, in_channels: int, out_channels: int, batch_norm: bool = True) -> None:
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            layers.append(nn.Conv2d(c_in, out_channels, kernel_size=3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ConvBNReLU(nn.Sequential):
    """3x3 conv (no bias), padding 1 => BN => ReLU"""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class DecoderBlock(nn.Module):
    """Upsample x2 (nearest) => concatenate the skip, if any => ConvBNReLU * 2

    The layout of ``segmentation_models_pytorch``'s ``UnetDecoderBlock`` without attention.
    The skip must have exactly twice the input's height and width (see :func:`pad_to_multiple`).
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = ConvBNReLU(in_channels + skip_channels, out_channels)
        self.conv2 = ConvBNReLU(out_channels, out_channels)

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")  # (N, C_in, 2H, 2W)
        if skip is not None:
            x = torch.cat([x, skip], dim=1)  # (N, C_in + C_skip, 2H, 2W)
        return self.conv2(self.conv1(x))


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Zero-pad ``x`` (N, C, H, W) at the bottom and right so H and W are multiples of ``multiple``.

    Models call this on *normalised* images, where zero is the dataset mean, so the padding
    reads as a neutral grey border rather than as black. Padding on the bottom/right only keeps
    the original pixels at the same coordinates, so :func:`crop_to` is a plain slice.
    """
    height, width = x.shape[-2:]
    # Round up with floor division, not `(-width) % multiple`: with dynamic shapes, torch 2.14's
    # inductor fails on a symbolic modulo that later reaches interpolate's float scale
    # (AttributeError: 'TensorReferenceAnalysis' has no attribute 'python_mod').
    padded_height = (height + multiple - 1) // multiple * multiple
    padded_width = (width + multiple - 1) // multiple * multiple
    return F.pad(x, (0, padded_width - width, 0, padded_height - height))


def crop_to(x: Tensor, height: int, width: int) -> Tensor:
    """Undo :func:`pad_to_multiple`: keep the top-left ``height x width`` of ``x`` (N, C, H', W')."""
    return x[..., :height, :width]
