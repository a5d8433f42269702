"""The original U-Net (Ronneberger et al., 2015, arXiv:1505.04597) as built in the lab.

Five double convolutions (3 -> 64 -> 128 -> 256 -> 512 -> 1024 channels; 3x3 conv, padding 1,
ReLU, biased, no normalisation), 2x2 max-pooling on the way down, 2x2 stride-2 transposed
convolutions on the way up, each followed by concatenation with the matching skip and a double
convolution, and a final 1x1 convolution to one logit per pixel. 31,031,745 parameters with the
defaults. Unlike the paper, the 3x3 convolutions are padded, so the output has the input's size.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from petlib.models.blocks import IMAGENET_MEAN, IMAGENET_STD, DoubleConv, Normalize, crop_to, pad_to_multiple

__all__ = ["UNet", "Down", "Up", "OutConv"]


class Down(nn.Module):
    """2x2 max-pool => DoubleConv (no BN): halves H and W."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(kernel_size=2)
        self.conv = DoubleConv(in_channels, out_channels, batch_norm=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.pool(x))


class Up(nn.Module):
    """2x2 stride-2 transposed conv (halving the channels) => concat skip => DoubleConv (no BN)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(in_channels // 2 + out_channels, out_channels, batch_norm=False)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = self.up(x)  # (N, C_in / 2, 2H, 2W)
        return self.conv(torch.cat([skip, x], dim=1))


class OutConv(nn.Conv2d):
    """1x1 conv: one logit per pixel and class."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size=1)


class UNet(nn.Module):
    """U-Net for binary segmentation.

    Args:
        in_channels: channels of the input images; must be 3, since the model normalises its
            input with ImageNet's RGB statistics.
        out_channels: logits per pixel (1 for binary segmentation).
        base_channels: channels of the first double convolution; they double at each of the
            four downsamplings (64 gives the paper's 64 -> 1024).

    Input ``(N, 3, H, W)`` float in ``[0, 1]``, any H and W; output logits ``(N, out_channels, H, W)``.
    """

    # Four 2x2 poolings: H and W must be multiples of 2**4 inside the network.
    size_multiple = 16

    #: The stages a shape trace reports (:func:`petlib.models.shape_trace`), in forward order.
    trace_stages = ("inc", "down1", "down2", "down3", "down4", "up1", "up2", "up3", "up4", "outc")

    def __init__(self, in_channels: int = 3, out_channels: int = 1, base_channels: int = 64) -> None:
        super().__init__()
        if in_channels != len(IMAGENET_MEAN):
            raise ValueError(
                f"UNet normalises its input with ImageNet's RGB mean/std, so in_channels must be 3, "
                f"got {in_channels}"
            )
        c = base_channels
        self.normalize = Normalize(IMAGENET_MEAN, IMAGENET_STD)
        self.inc = DoubleConv(in_channels, c, batch_norm=False)
        self.down1 = Down(c, 2 * c)
        self.down2 = Down(2 * c, 4 * c)
        self.down3 = Down(4 * c, 8 * c)
        self.down4 = Down(8 * c, 16 * c)
        self.up1 = Up(16 * c, 8 * c)
        self.up2 = Up(8 * c, 4 * c)
        self.up3 = Up(4 * c, 2 * c)
        self.up4 = Up(2 * c, c)
        self.outc = OutConv(c, out_channels)
        self._init_weights()

    def _init_weights(self) -> None:
        # Without BN nothing rescales the activations, and PyTorch's default init
        # (kaiming_uniform with a=sqrt(5), i.e. variance 1/(3 fan_in)) shrinks them at every
        # ReLU conv: at init the logits' std is ~0.01 and the first layer's gradient ~60x
        # smaller than with He init (variance 2/fan_in, He et al., 2015), which keeps the
        # activation scale roughly constant through the ReLUs (logits' std ~1.5).
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, images: Tensor) -> Tensor:
        height, width = images.shape[-2:]
        x = self.normalize(images)
        # Any H, W: pad once to a multiple of 16 here (zeros = the mean after normalising) and
        # crop the logits back, so every transposed conv lands exactly on its skip's size;
        # cheaper and simpler than padding each upsampled map to its skip.
        x = pad_to_multiple(x, self.size_multiple)  # (N, 3, H16, W16)

        x1 = self.inc(x)  # (N, c, H16, W16)
        x2 = self.down1(x1)  # (N, 2c, H16/2, W16/2)
        x3 = self.down2(x2)  # (N, 4c, H16/4, W16/4)
        x4 = self.down3(x3)  # (N, 8c, H16/8, W16/8)
        x5 = self.down4(x4)  # (N, 16c, H16/16, W16/16)
        x = self.up1(x5, x4)  # (N, 8c, H16/8, W16/8)
        x = self.up2(x, x3)  # (N, 4c, H16/4, W16/4)
        x = self.up3(x, x2)  # (N, 2c, H16/2, W16/2)
        x = self.up4(x, x1)  # (N, c, H16, W16)
        logits = self.outc(x)  # (N, out_channels, H16, W16)
        return crop_to(logits, height, width)  # (N, out_channels, H, W)
