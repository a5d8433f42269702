"""Segmentation models for binary pet segmentation, and a factory to build them by name.

Input convention -- the one place normalisation happens: every model takes images
``(N, 3, H, W)``, float in ``[0, 1]`` (e.g. from ``torchvision.transforms.v2.ToDtype(scale=True)``),
and normalises them itself with ImageNet's mean/std as the first step of ``forward``. mean/std
are non-persistent buffers, so ``state_dict`` holds only learnt weights. Data pipelines must
therefore NOT normalise. Any H and W work; the output is logits ``(N, 1, H, W)`` of the same
size (apply ``sigmoid`` for probabilities).

Example::

    model = build_model("resnet34_unet")
    logits = model(images)  # images (N, 3, H, W) in [0, 1] -> logits (N, 1, H, W)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from torch import nn

from petlib.models.blocks import ConvBNReLU, DecoderBlock, DoubleConv, Normalize
from petlib.models.resnet34_unet import ResNet34Encoder, ResNet34UNet, load_encoder_state_dict
from petlib.models.smp import from_smp, to_smp
from petlib.models.trace import StageShape, format_trace, shape_trace
from petlib.models.unet import UNet

__all__ = [
    "MODELS",
    "build_model",
    "count_parameters",
    "eval_mode",
    "shape_trace",
    "format_trace",
    "StageShape",
    "UNet",
    "ResNet34UNet",
    "ResNet34Encoder",
    "load_encoder_state_dict",
    "from_smp",
    "to_smp",
    "DoubleConv",
    "ConvBNReLU",
    "DecoderBlock",
    "Normalize",
]

MODELS: dict[str, Callable[..., nn.Module]] = {
    "unet": UNet,
    "resnet34_unet": ResNet34UNet,
}


def build_model(name: str, **kwargs) -> nn.Module:
    """Build the model registered as ``name`` in :data:`MODELS`, passing ``kwargs`` to its constructor."""
    try:
        builder = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(sorted(MODELS))}") from None
    return builder(**kwargs)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (``requires_grad``) in ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode for the ``with`` block, then back in the mode it was in.

    For predicting or timing in the middle of training: unlike a bare ``model.eval()`` ...
    ``model.train()``, it leaves a model that was in eval mode in eval mode.
    """
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
