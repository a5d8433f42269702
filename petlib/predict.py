"""Segment your own photos with a trained checkpoint (``petlib-predict``, or ``python -m petlib.predict``).

    petlib-predict photos/ extra.jpg "more/*.png" --model_path saved_models/resnet34_unet.pth --out_dir masks/

Inputs are files, folders (the images directly in them) and glob patterns (quoted, petlib expands
them, ``**`` included). For each photo it writes ``<out_dir>/<stem>_mask.png`` (0 = background,
255 = pet) and ``<stem>_overlay.png`` (the photo with the pet tinted), both at the size the photo
is shown at (its EXIF orientation applied), prints one line per photo and a summary. A file it
cannot read is named on stderr and skipped; the others are still written, and the exit status
is then 1. Photos with the same stem get ``<stem>_2``, ``<stem>_3``, ...: nothing is overwritten.

The model sees each photo resized to its training size, and its logits are resized back
(bilinear) before thresholding (``--threshold``, on the probability), which gives smoother
borders than resizing a hard mask. ``--tta`` (default: as the checkpoint was validated) averages
with the mirrored photo; ``--batch_size`` photos go through the model at once; ``--device`` as in
training.
"""
from __future__ import annotations

import argparse
import glob
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import nn

from .checkpoint import load_model
from .cli import Switch, add_tta_flag, argument_parser, option, run_main, tta_choice
from .config import TrainConfig
from .console import prog
from .data import read_image
from .device import pick_device
from .engine import predict_logits
from .inference import describe_tta, validated_tta
from .models import eval_mode
from .plotting import overlay

__all__ = [
    "IMAGE_SUFFIXES", "find_images", "output_stems", "read_photo", "predict_probabilities", "predict_mask",
    "predict_logits_at_size", "main",
]

#: Suffixes of the files a folder or a pattern contributes; a file named on the command line is
#: read whatever its suffix (Pillow goes by the bytes).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
#: What this command writes; never read back as input when the output folder is an input folder.
OUTPUT_SUFFIXES = ("_mask.png", "_overlay.png")


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


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# --------------------------------------------------------------------------- command line


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a probability strictly between 0 and 1 (e.g. 0.5)")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _device(text: str) -> str:
    """A ``--device`` value torch knows and this machine has (checked before the model loads)."""
    try:
        device = torch.device(text)
    except (RuntimeError, TypeError):
        raise argparse.ArgumentTypeError(f"not a torch device: {text!r} (e.g. cpu, cuda, cuda:1, mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text}: this machine has no CUDA device that torch can use; "
                                         "use --device cpu, or leave --device out")
    mps = getattr(torch.backends, "mps", None)
    if device.type == "mps" and not (mps is not None and mps.is_available()):
        raise argparse.ArgumentTypeError(f"{text}: Apple's MPS is not available here; use --device cpu")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argument_parser(prog("petlib.predict"), __doc__)
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="photo files, folders of photos, or quoted glob patterns ('photos/**/*.jpg')")
    parser.add_argument(*option("model_path"), required=True, help="checkpoint, e.g. saved_models/resnet34_unet.pth")
    parser.add_argument(*option("out_dir", "--out"), required=True, help="folder for the masks and overlays")
    parser.add_argument("--threshold", type=_probability, default=0.5,
                        help="pet probability above which a pixel is pet (default: 0.5, as the Dice is scored)")
    add_tta_flag(parser)
    parser.add_argument(*option("batch_size"), type=_positive_int, default=8, help="photos per forward pass")
    parser.add_argument(*option("image_size"), type=_positive_int, default=None, help="default: the training size")
    parser.add_argument("--device", type=_device, default=None, help="default: CUDA, then MPS, then the CPU")
    parser.add_argument(*option("overlay"), action=Switch, default=True,
                        help="also write <stem>_overlay.png, the photo with the pet tinted (--no_overlay: masks only)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    # Find every input before loading the model, so a typo fails fast.
    out = Path(args.out_dir)
    paths, unmatched = find_images(args.images, out)
    if unmatched:
        parser.error(f"no image file, folder of images or matching pattern: {', '.join(unmatched)}")
    device = pick_device(args.device)
    model, checkpoint = load_model(args.model_path)
    model.to(device)
    size = args.image_size or TrainConfig.from_dict(checkpoint.get("config", {})).image_size
    validated = validated_tta(checkpoint)
    chosen = tta_choice(args.tta)
    tta = validated if chosen is None else chosen
    out.mkdir(parents=True, exist_ok=True)
    print(f"{len(paths)} photo(s) -> {out}/ | {checkpoint['model_name']} at {size}px on {device}, "
          f"{describe_tta(tta, validated)}, threshold {args.threshold:g}")

    start = time.perf_counter()
    written, skipped = 0, []
    for chunk in _chunks(list(zip(paths, output_stems(paths))), args.batch_size):
        photos = []
        for path, stem in chunk:
            try:
                photos.append((path, stem, read_photo(path)))
            except OSError as err:
                skipped.append(path)
                print(f"skipped: {err}", file=sys.stderr)  # the message names the file
        probabilities = predict_probabilities(model, [image for _, _, image in photos], size, tta=tta, device=device)
        for (path, stem, image), probability in zip(photos, probabilities):
            mask = (probability > args.threshold).numpy()  # (H, W) bool
            mask_path = out / f"{stem}_mask.png"
            Image.fromarray(mask.astype(np.uint8) * 255).save(mask_path)
            line = f"{path} ({image.width}x{image.height}): {mask.mean():.1%} pet -> {mask_path}"
            if args.overlay:
                overlay_path = out / f"{stem}_overlay.png"
                Image.fromarray(overlay(np.asarray(image), mask)).save(overlay_path)
                line += f", {overlay_path}"
            print(line)
            written += 1
    seconds = time.perf_counter() - start
    what = "masks and overlays" if args.overlay else "masks"
    summary = f"done: {written} of {len(paths)} photo(s) segmented, {what} in {out}/ ({seconds:.1f} s)"
    if skipped:
        summary += f"; skipped {len(skipped)} unreadable: {', '.join(map(str, skipped))}"
    print(summary)
    return 1 if skipped else 0


if __name__ == "__main__":
    run_main(main)
