"""U-Net with a ResNet34 encoder: the layout of ``segmentation_models_pytorch.Unet("resnet34")``.

The encoder *is* torchvision's ResNet (He et al., 2016, arXiv:1512.03385) with ``avgpool`` and
``fc`` removed, so its parameters are named exactly as in ``torchvision.models.resnet34``
(``conv1, bn1, layer1..layer4``) and ImageNet weights load by name, strictly, with no renaming
table. It yields five feature maps (strides 2, 4, 8, 16, 32; channels 64, 64, 128, 256, 512).
The decoder upsamples x2, concatenates the next shallower feature map and applies two
Conv-BN-ReLU, five times (256, 128, 64, 32, 16 channels; the last block has no skip because the
stem already works at stride 2); a 3x3 convolution then gives one logit per pixel.
24,436,369 parameters with the defaults, the same as smp's ``Unet("resnet34", classes=1)``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import ResNet34_Weights
from torchvision.models.resnet import BasicBlock, ResNet

from petlib.models.blocks import DecoderBlock, Normalize, crop_to, pad_to_multiple

__all__ = ["ResNet34Encoder", "ResNet34UNet", "load_encoder_state_dict"]


class ResNet34Encoder(ResNet):
    """torchvision's ResNet34 without ``avgpool``/``fc``; ``forward`` returns the five feature maps."""

    out_channels = (64, 64, 128, 256, 512)

    def __init__(self, zero_init_residual: bool = False) -> None:
        super().__init__(BasicBlock, [3, 4, 6, 3], zero_init_residual=zero_init_residual)
        del self.avgpool, self.fc

    def forward(self, x: Tensor) -> list[Tensor]:  # type: ignore[override]
        """Feature maps of ``x`` (N, 3, H, W), H and W multiples of 32, at strides 2, 4, 8, 16, 32."""
        c1 = self.relu(self.bn1(self.conv1(x)))  # (N, 64, H/2, W/2)   7x7/2 stem
        c2 = self.layer1(self.maxpool(c1))  # (N, 64, H/4, W/4)
        c3 = self.layer2(c2)  # (N, 128, H/8, W/8)
        c4 = self.layer3(c3)  # (N, 256, H/16, W/16)
        c5 = self.layer4(c4)  # (N, 512, H/32, W/32)
        return [c1, c2, c3, c4, c5]


class ResNet34UNet(nn.Module):
    """U-Net with a ResNet34 encoder for binary segmentation.

    Args:
        pretrained: load torchvision's ImageNet weights (``ResNet34_Weights.IMAGENET1K_V1``,
            downloaded on first use) into the encoder.
        decoder_channels: output channels of the five decoder blocks, deepest first.
        out_channels: logits per pixel (1 for binary segmentation).
        zero_init_residual: start each residual block's last BatchNorm at zero, so every block
            begins as the identity (Goyal et al., 2017, arXiv:1706.02677); torchvision's option,
            for training from scratch. Pretrained weights overwrite it.
        input_scale: run the network on the image enlarged by this factor (bilinear) and
            resize the logits back to the input's size. Above 1 the feature maps are finer
            relative to the pet (a stride-32 encoder sees a 128 px image as 4x4 at its deepest)
            at ``input_scale**2`` times the compute; the output keeps the input's size.

    Input ``(N, 3, H, W)`` float in ``[0, 1]``, any H and W; output logits ``(N, out_channels, H, W)``.
    """

    # Five stride-2 steps (stem conv, max-pool, layer2..4): H and W must be multiples of 2**5.
    size_multiple = 32

    #: The stages a shape trace reports (:func:`petlib.models.shape_trace`), in forward order.
    trace_stages = (
        "encoder.conv1+encoder.bn1+encoder.relu", "encoder.maxpool+encoder.layer1", "encoder.layer2", "encoder.layer3", "encoder.layer4",
        "decoder1", "decoder2", "decoder3", "decoder4", "decoder5", "segmentation_head",
    )

    def __init__(
        self,
        pretrained: bool = False,
        decoder_channels: Sequence[int] = (256, 128, 64, 32, 16),
        out_channels: int = 1,
        zero_init_residual: bool = False,
        input_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if not input_scale > 0:
            raise ValueError(f"input_scale must be positive, got {input_scale!r}")
        self.input_scale = float(input_scale)
        if len(decoder_channels) != 5:
            raise ValueError(
                f"decoder_channels needs one entry per decoder block (5), got {tuple(decoder_channels)}"
            )
        self.normalize = Normalize()  # ImageNet mean/std: what the pretrained encoder expects
        self.encoder = ResNet34Encoder(zero_init_residual)
        enc = self.encoder.out_channels
        d1, d2, d3, d4, d5 = decoder_channels
        self.decoder1 = DecoderBlock(enc[4], enc[3], d1)
        self.decoder2 = DecoderBlock(d1, enc[2], d2)
        self.decoder3 = DecoderBlock(d2, enc[1], d3)
        self.decoder4 = DecoderBlock(d3, enc[0], d4)
        self.decoder5 = DecoderBlock(d4, 0, d5)
        self.segmentation_head = nn.Conv2d(d5, out_channels, kernel_size=3, padding=1)
        if pretrained:
            weights = ResNet34_Weights.IMAGENET1K_V1
            load_encoder_state_dict(self, weights.get_state_dict(progress=True))

    def forward(self, images: Tensor) -> Tensor:
        height, width = images.shape[-2:]
        x = self.normalize(images)
        if self.input_scale != 1.0:
            x = F.interpolate(x, size=(round(height * self.input_scale), round(width * self.input_scale)),
                              mode="bilinear", align_corners=False)  # (N, 3, sH, sW)
        scaled_height, scaled_width = x.shape[-2:]
        # Any H, W: pad once to a multiple of 32 (zeros = the mean after normalising) and crop
        # the logits back. Every x2 upsampling then matches its skip exactly, where smp's
        # approach (interpolating to each skip's size) would resample odd-sized maps.
        x = pad_to_multiple(x, self.size_multiple)  # (N, 3, H32, W32)

        c1, c2, c3, c4, c5 = self.encoder(x)  # strides 2, 4, 8, 16, 32
        d = self.decoder1(c5, c4)  # (N, d1, H32/16, W32/16)
        d = self.decoder2(d, c3)  # (N, d2, H32/8, W32/8)
        d = self.decoder3(d, c2)  # (N, d3, H32/4, W32/4)
        d = self.decoder4(d, c1)  # (N, d4, H32/2, W32/2)
        d = self.decoder5(d)  # (N, d5, H32, W32)
        logits = self.segmentation_head(d)  # (N, out_channels, H32, W32)
        logits = crop_to(logits, scaled_height, scaled_width)  # (N, out_channels, sH, sW)
        if self.input_scale != 1.0:
            logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
        return logits  # (N, out_channels, H, W)


def load_encoder_state_dict(model: ResNet34UNet, state_dict: Mapping[str, Tensor]) -> None:
    """Load a ``torchvision.models.resnet34`` state_dict into ``model.encoder``, strictly.

    The classifier (``fc.*``) is dropped; every other key must match an encoder parameter or
    buffer by name and shape, so a wrong checkpoint fails loudly instead of loading half.
    """
    encoder_state = OrderedDict((k, v) for k, v in state_dict.items() if not k.startswith("fc."))
    # Keep the per-module version info: BatchNorm uses it to accept old checkpoints.
    metadata = getattr(state_dict, "_metadata", None)
    if metadata is not None:
        encoder_state._metadata = metadata  # type: ignore[attr-defined]
    try:
        model.encoder.load_state_dict(encoder_state, strict=True)
    except RuntimeError as error:
        raise RuntimeError(
            "expected the state_dict of torchvision.models.resnet34 (keys conv1.*, bn1.*, "
            f"layer1.* .. layer4.*, optionally fc.*), e.g. ResNet34_Weights.IMAGENET1K_V1.get_state_dict(); {error}"
        ) from error
