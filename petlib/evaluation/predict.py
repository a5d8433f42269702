"""Predicting masks for photos of any size: the model sees the training size, the mask comes back at the photo's.

:func:`predict_logits_at_size` resizes a photo to the size the network was trained at and its
logits back (bilinear) to the photo's own size, so thresholding happens at full resolution,
which gives smoother borders than resizing a hard mask; :func:`predict_probabilities` and
:func:`predict_mask` do it for a batch of PIL images. :func:`find_images` and
:func:`output_stems` turn the files, folders and glob patterns a user names into photos and
output names that never overwrite each other. :func:`validated_tta` and :func:`describe_tta`
say which test-time augmentation a checkpoint was validated with. The command line is
``petlib-predict`` (:mod:`petlib.cli.predict`).
"""
from __future__ import annotations

import glob
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import nn

from petlib.data.dataset import read_image
from petlib.models import eval_mode
from petlib.training.engine import predict_logits

__all__ = [
    "IMAGE_SUFFIXES", "find_images", "output_stems", "read_photo", "predict_probabilities", "predict_mask",
    "predict_logits_at_size", "validated_tta", "describe_tta",
]

#: Suffixes of the files a folder or a pattern contributes; a file named on the command line is
#: read whatever its suffix (Pillow goes by the bytes).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
#: What this command writes; never read back as input when the output folder is an input folder.
OUTPUT_SUFFIXES = ("_mask.png", "_overlay.png")


def validated_tta(checkpoint: dict[str, Any]) -> bool:
    """Whether the run that wrote ``checkpoint`` validated with flip TTA (its config's ``tta``).

    Checkpoints written before the option existed validated without: False.
    """
    return bool(checkpoint.get("config", {}).get("tta", False))


def describe_tta(tta: bool, validated: bool) -> str:
    """How a score was computed, for printing beside it: ``"with flip TTA, as validated"``, ..."""
    used = "with flip TTA" if tta else "without TTA"
    if tta == validated:
        return f"{used}, as validated"
    return f"{used} (validated {'with flip TTA' if validated else 'without TTA'})"


# --------------------------------------------------------------------------- prediction


def _to_batch(images: Sequence[Image.Image], image_size: int) -> torch.Tensor:
    """Photos resized exactly as the dataset does (PIL bilinear, antialiased) -> ``(N, 3, S, S)`` in [0, 1]."""
    arrays = [np.asarray(image.convert("RGB").resize((image_size, image_size), Image.BILINEAR)) for image in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255)


@torch.inference_mode()
def predict_probabilities(
    model: nn.Module,
    images: Sequence[Image.Image],
    image_size: int,
    *,
    tta: bool = False,
    device: torch.device | str = "cpu",
) -> list[torch.Tensor]:
    """Pet probability of every pixel of each photo, at each photo's own size.

    All photos go through the model as one batch at ``image_size``; each one's logits are resized
    back to its ``W x H`` (bilinear) before the sigmoid.

    Args:
        model: a petlib model (takes ``(N, 3, S, S)`` in [0, 1]).
        images: photos of any sizes.
        image_size: the side ``S`` the model was trained at.
        tta: average with the prediction for the horizontally flipped photo.

    Returns:
        One ``(H, W)`` float CPU tensor in [0, 1] per photo.
    """
    if not images:
        return []
    with eval_mode(model):
        logits = predict_logits(model, _to_batch(images, image_size).to(device), tta=tta).float()  # (N,1,S,S)
    probabilities = []
    for image, one in zip(images, logits):
        width, height = image.size
        resized = F.interpolate(one[None], size=(height, width), mode="bilinear", align_corners=False)  # (1,1,H,W)
        probabilities.append(torch.sigmoid(resized)[0, 0].cpu())
    return probabilities


def predict_logits_at_size(
    model: nn.Module,
    image: Image.Image,
    image_size: int,
    *,
    tta: bool = False,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Logits ``(1, 1, H, W)`` for one ``W x H`` photo, predicted at ``image_size`` and resized back.

    The photo is resized exactly as the dataset does (PIL bilinear, antialiased) so the
    model sees what it was trained on; the logits are resized back bilinearly, which
    gives smoother borders than resizing a hard mask.
    """
    width, height = image.size
    with eval_mode(model):
        logits = predict_logits(model, _to_batch([image], image_size).to(device), tta=tta)  # (1,1,S,S)
    return F.interpolate(logits.float(), size=(height, width), mode="bilinear", align_corners=False)


def predict_mask(
    model: nn.Module,
    image: Image.Image,
    image_size: int,
    *,
    tta: bool = False,
    device: torch.device | str = "cpu",
    threshold: float = 0.5,
) -> np.ndarray:
    """Binary pet mask of one photo, at the photo's resolution.

    Args:
        model: a petlib model (takes ``(N, 3, S, S)`` in [0, 1]).
        image: an RGB photo of any size ``W x H``.
        image_size: the side ``S`` the model was trained at.
        tta: average with the horizontally flipped prediction.
        threshold: probability above which a pixel is pet.

    Returns:
        ``(H, W)`` bool array.
    """
    logits = predict_logits_at_size(model, image, image_size, tta=tta, device=device)
    return (torch.sigmoid(logits)[0, 0] > threshold).cpu().numpy()


# --------------------------------------------------------------------------- inputs and outputs


def find_images(inputs: Iterable[str], out_dir: str | Path | None = None) -> tuple[list[Path], list[str]]:
    """The photos named by ``inputs``, in order and each once, and the inputs that named none.

    A file is taken whatever its suffix; a folder gives the files directly in it, and a glob
    pattern the files it matches, with one of :data:`IMAGE_SUFFIXES` (any case), hidden files
    aside. Files this command wrote into ``out_dir`` (``*_mask.png``, ``*_overlay.png``) are left
    out of folders and patterns, so a second run over the same folder does not segment masks.

    Returns:
        ``(photos, unmatched)``: an input is unmatched when it is no file, no folder, and no
        pattern that matches an image.
    """
    out = Path(out_dir).resolve() if out_dir is not None else None

    def is_photo(path: Path) -> bool:
        if not path.is_file() or path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
            return False
        return not (out is not None and path.resolve().parent == out and path.name.endswith(OUTPUT_SUFFIXES))

    found: dict[Path, Path] = {}  # resolved -> as given, in order
    unmatched = []
    for text in inputs:
        path = Path(text)
        if path.is_file():
            candidates = [path]
        elif path.is_dir():
            candidates = [p for p in sorted(path.iterdir()) if is_photo(p)]
        elif glob.has_magic(text):
            candidates = [p for p in map(Path, sorted(glob.glob(text, recursive=True))) if is_photo(p)]
        else:
            candidates = []
        if not candidates:
            unmatched.append(text)
        for candidate in candidates:
            found.setdefault(candidate.resolve(), candidate)
    return list(found.values()), unmatched


def output_stems(paths: Sequence[Path]) -> list[str]:
    """A distinct file stem for each photo's outputs: its own, or ``<stem>_2``, ``<stem>_3``, ... when taken."""
    used: set[str] = set()
    stems = []
    for path in paths:
        stem, n = path.stem, 2
        while stem in used:
            stem, n = f"{path.stem}_{n}", n + 1
        used.add(stem)
        stems.append(stem)
    return stems


def read_photo(path: str | Path) -> Image.Image:
    """An RGB photo the way a viewer shows it: :func:`petlib.data.read_image` with its EXIF rotation applied.

    Raises:
        OSError: the file is missing or not a readable image (the message names it).
    """
    image = read_image(path)
    try:
        return ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, TypeError) as err:  # an unreadable EXIF block
        raise OSError(f"cannot read the orientation of image {path}: {err}") from err
