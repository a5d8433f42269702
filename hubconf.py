"""torch.hub entry points: petlib's two networks, untrained or with weights you have.

    import torch
    model = torch.hub.load("petlib/petlib", "resnet34_unet", weights="pets-resnet34-unet")  # a model folder
    model = torch.hub.load("petlib/petlib", "unet", weights="saved_models/unet.pth")        # a checkpoint
    model = torch.hub.load("petlib/petlib", "unet", base_channels=32)                        # untrained
    model = torch.hub.load("/path/to/petlib", "unet", source="local")                        # a clone

``weights`` is a model folder (``petlib.save_pretrained`` / ``petlib-export --format folder``), a
checkpoint file (``<name>.pth``), or a URL of either: a ``.pth`` file, or the
``model.safetensors`` of a folder whose ``config.json`` lies beside it (as on the Hugging Face
Hub); URLs are downloaded once into torch.hub's cache (``torch.hub.get_dir()/petlib``). petlib
hosts no trained weights yet: train them (``petlib-train``) or take them from someone who has.

Every model takes images ``(N, 3, H, W)`` float RGB in [0, 1] (it normalises them itself) and
returns logits ``(N, 1, H, W)``; ``sigmoid(logits) > 0.5`` is pet. With ``weights`` it is in eval
mode, and its training size is in the checkpoint (``petlib.load_model`` returns it too).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch.hub checks `dependencies` before anything is imported for real
    from torch import nn

# Importable module names torch.hub checks before calling an entry point (petlib's own imports).
dependencies = ["torch", "torchvision", "numpy", "PIL", "tqdm"]


def _download(url: str) -> Path:
    """The local copy of ``url`` (a ``.pth``, or a folder's ``model.safetensors`` with its ``config.json``)."""
    import torch.hub

    cache = Path(torch.hub.get_dir()) / "petlib" / hashlib.sha256(url.encode()).hexdigest()[:16]
    base, name = url.rsplit("/", 1)
    names = [name, "config.json"] if name.endswith(".safetensors") else [name]
    for part in names:
        target = cache / ("model.safetensors" if part.endswith(".safetensors") else part)
        if not target.is_file():
            cache.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(f"{base}/{part}", str(target), progress=True)
    return cache if len(names) > 1 else cache / name


def _load(name: str, weights: str | Path | None, kwargs: dict[str, Any]) -> nn.Module:
    from petlib.models import build_model
    from petlib.training.checkpoint import load_model

    if weights is None:
        return build_model(name, **kwargs)
    if kwargs:
        raise ValueError(f"{sorted(kwargs)}: with weights=..., the model's settings come from the weights; "
                         "leave them out (or leave weights out to build an untrained model with them)")
    text = str(weights)
    path = _download(text) if "://" in text else Path(text).expanduser()
    model, _ = load_model(path, expected_model=name)
    return model


def unet(weights: str | Path | None = None, **kwargs: Any) -> nn.Module:
    """petlib's U-Net (Ronneberger et al., 2015); ``kwargs`` as :class:`petlib.models.UNet` (e.g. ``base_channels``).

    Args:
        weights: a model folder, a checkpoint file, or a URL of either (see the module docstring);
            None: untrained.
    """
    return _load("unet", weights, kwargs)


def resnet34_unet(weights: str | Path | None = None, **kwargs: Any) -> nn.Module:
    """petlib's ResNet34-UNet, the layout of ``smp.Unet("resnet34")``; ``kwargs`` as :class:`petlib.models.ResNet34UNet`.

    ``pretrained=True`` (without ``weights``) starts the encoder from torchvision's ImageNet weights.

    Args:
        weights: a model folder, a checkpoint file, or a URL of either (see the module docstring);
            None: untrained.
    """
    return _load("resnet34_unet", weights, kwargs)
