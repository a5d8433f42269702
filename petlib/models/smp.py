"""The bridge to segmentation_models_pytorch (smp): petlib's ResNet34-UNet <-> ``smp.Unet("resnet34")``.

The two networks have the same layers with the same parameter shapes (24,436,369 parameters
with the defaults); only the names differ, and only outside the encoder::

    petlib                         smp
    encoder.<name>                 encoder.<name>             (both: torchvision's ResNet34 names)
    decoder{i}.<name>, i = 1..5    decoder.blocks.{i-1}.<name>
    segmentation_head.<name>       segmentation_head.0.<name>

So a model moves between them without retraining::

    from petlib.models import from_smp, to_smp
    model = from_smp(smp_unet)          # or from_smp(torch.load("smp_weights.pth"))
    smp_unet = to_smp(model)            # needs: pip install segmentation-models-pytorch

**Inputs differ.** A petlib model takes images in ``[0, 1]`` and normalises them itself
(ImageNet mean/std, :class:`~petlib.models.blocks.Normalize`); an smp model takes images already
normalised. ``petlib_model(images)`` equals ``smp_model((images - mean) / std)`` to float precision
(tests/models/test_smp.py checks 1e-5 at two sizes). smp also needs H and W to be multiples of 32;
petlib pads any size itself.

**Pretrained encoders.** ``ResNet34UNet(pretrained=True)`` (``petlib-train --pretrained``) loads
torchvision's ImageNet weights, ``ResNet34_Weights.IMAGENET1K_V1``, into the encoder by name. These
are the weights smp's ``encoder_weights="imagenet"`` stands for with ``"resnet34"`` (smp used to
download torchvision's very file, resnet34-333f7ec4.pth; since 0.5 it fetches a copy from the
Hugging Face Hub, smp-hub/resnet34.imagenet). Either way only the encoder starts trained; the
decoder is random.

This module imports torch only; smp is imported inside :func:`to_smp` and when
:func:`from_smp` is given an smp model.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from petlib.models.resnet34_unet import ResNet34UNet

__all__ = ["from_smp", "to_smp", "smp_to_petlib_keys", "petlib_to_smp_keys"]

_SMP_DECODER = re.compile(r"^decoder\.blocks\.(\d)\.")
_PETLIB_DECODER = re.compile(r"^decoder(\d)\.")


def smp_to_petlib_keys(state_dict: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """An smp ``Unet("resnet34")`` state_dict with petlib's names (same tensors, same order).

    Raises:
        ValueError: a key with no petlib counterpart (a classification head from ``aux_params``,
            attention layers, a center block); the message lists a few.
    """
    renamed: OrderedDict[str, torch.Tensor] = OrderedDict()
    foreign = []
    for key, tensor in state_dict.items():
        if key.startswith("encoder."):
            renamed[key] = tensor
        elif match := _SMP_DECODER.match(key):
            renamed[f"decoder{int(match.group(1)) + 1}.{key[match.end():]}"] = tensor
        elif key.startswith("segmentation_head.0."):
            renamed[key.replace("segmentation_head.0.", "segmentation_head.", 1)] = tensor
        else:
            foreign.append(key)
    if foreign:
        raise ValueError(
            f"{len(foreign)} smp weights have no place in petlib's ResNet34-UNet (e.g. {foreign[:3]}): petlib "
            "has the plain smp.Unet('resnet34') layout, without aux_params (classification head), "
            "decoder_attention_type or a center block. Build the smp model without them, or drop those keys"
        )
    return renamed


def petlib_to_smp_keys(state_dict: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """A petlib ResNet34-UNet state_dict with smp's names; the inverse of :func:`smp_to_petlib_keys`."""
    renamed: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, tensor in state_dict.items():
        if match := _PETLIB_DECODER.match(key):
            key = f"decoder.blocks.{int(match.group(1)) - 1}.{key[match.end():]}"
        elif key.startswith("segmentation_head."):
            key = key.replace("segmentation_head.", "segmentation_head.0.", 1)
        renamed[key] = tensor
    return renamed


def _check_smp_model(model: nn.Module) -> None:
    """Refuse an smp model whose forward would differ from petlib's with the same weights."""
    name = getattr(model, "name", None)
    if name is not None and name != "u-resnet34":
        raise ValueError(f"from_smp takes an smp.Unet with a 'resnet34' encoder; this is {name!r}")
    head = getattr(model, "segmentation_head", None)
    if head is not None and len(head) == 3:
        upsampling, activation = head[1], getattr(head[2], "activation", head[2])
        if not isinstance(activation, nn.Identity):
            raise ValueError(f"this smp model ends in {activation}, petlib models return logits: build it with "
                             "activation=None, or pass its state_dict() to from_smp")
        if not isinstance(upsampling, nn.Identity):
            raise ValueError("this smp model upsamples in its segmentation head (upsampling > 1), which petlib's "
                             "ResNet34-UNet does not: build it with the default upsampling=1")
    for block in getattr(getattr(model, "decoder", None), "blocks", []):
        mode = getattr(block, "interpolation_mode", "nearest")
        if mode != "nearest":
            raise ValueError(f"this smp model's decoder upsamples with {mode!r}; petlib's uses 'nearest' "
                             "(smp's default, decoder_interpolation='nearest')")


def _decoder_channels(state_dict: Mapping[str, torch.Tensor]) -> tuple[int, ...]:
    # Each block's first convolution: (out_channels, in_channels + skip_channels, 3, 3).
    return tuple(int(state_dict[f"decoder{i}.conv1.0.weight"].shape[0]) for i in range(1, 6))


def from_smp(smp_model_or_state_dict: nn.Module | Mapping[str, torch.Tensor]) -> ResNet34UNet:
    """petlib's :class:`~petlib.models.ResNet34UNet` with the weights of an smp ``Unet("resnet34")``.

    Args:
        smp_model_or_state_dict: ``smp.Unet("resnet34", classes=C, ...)`` or its ``state_dict()``.
            ``decoder_channels`` and ``classes`` are read from the weights' shapes.

    Returns:
        The petlib model in eval mode. ``model(images)`` with images ``(N, 3, H, W)`` in [0, 1]
        gives the smp model's logits ``(N, C, H, W)`` for the ImageNet-normalised images.

    Raises:
        ValueError: an smp model of another layout (encoder, attention, activation, aux head),
            or weights that do not fit (the message says which keys).
    """
    if isinstance(smp_model_or_state_dict, nn.Module):
        _check_smp_model(smp_model_or_state_dict)
        state = smp_model_or_state_dict.state_dict()
    elif isinstance(smp_model_or_state_dict, Mapping):
        state = smp_model_or_state_dict
    else:
        raise TypeError(f"from_smp takes an smp.Unet or its state_dict, not a {type(smp_model_or_state_dict).__name__}")
    renamed = smp_to_petlib_keys(state)
    try:
        channels = _decoder_channels(renamed)
        out_channels = int(renamed["segmentation_head.weight"].shape[0])
    except KeyError as missing:
        raise ValueError(f"not the weights of an smp.Unet('resnet34'): no {missing.args[0]!r} "
                         "(after renaming smp's decoder.blocks.i to petlib's decoder{i+1})") from None
    model = ResNet34UNet(decoder_channels=channels, out_channels=out_channels)
    try:
        model.load_state_dict(renamed, strict=True)
    except RuntimeError as err:
        raise ValueError(f"these smp weights do not fit petlib's ResNet34-UNet: is the encoder 'resnet34'? {err}") from None
    return model.eval()


def to_smp(model: ResNet34UNet, **smp_kwargs: Any) -> nn.Module:
    """``smp.Unet("resnet34")`` with the weights of petlib's ResNet34-UNet ``model``.

    The smp model takes ImageNet-normalised images (H and W multiples of 32) and returns the
    logits petlib's model returns for the same images in [0, 1]. ``smp_kwargs`` go to
    ``smp.Unet`` (e.g. ``activation="sigmoid"``); ``encoder_weights`` is None, since the
    weights come from ``model``.

    Raises:
        TypeError: ``model`` is not a ResNet34-UNet.
        ValueError: ``model`` has ``input_scale != 1`` (smp has no such resizing step).
        ImportError: segmentation-models-pytorch is not installed (the message says how to install it).
    """
    if not isinstance(model, ResNet34UNet):
        raise TypeError(f"to_smp takes petlib's ResNet34UNet (build_model('resnet34_unet')), not {type(model).__name__}")
    if model.input_scale != 1.0:
        raise ValueError(f"this model runs at input_scale={model.input_scale:g}; smp.Unet has no such step, so its "
                         "logits would differ. Only models with input_scale=1 convert")
    try:
        import segmentation_models_pytorch as smp
    except ImportError as err:
        raise ImportError("to_smp needs segmentation-models-pytorch: pip install segmentation-models-pytorch") from err
    state = model.state_dict()
    settings = dict(encoder_name="resnet34", encoder_weights=None, classes=model.segmentation_head.out_channels,
                    decoder_channels=_decoder_channels(state))
    smp_model = smp.Unet(**{**settings, **smp_kwargs})
    smp_model.load_state_dict(petlib_to_smp_keys(state), strict=True)
    return smp_model.eval()
