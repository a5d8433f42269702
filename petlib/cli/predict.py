"""Segment your own photos with a trained checkpoint (``petlib-predict``, or ``python -m petlib.predict``).

    petlib-predict photos/ extra.jpg "more/*.png" --model_path saved_models/resnet34_unet.pth --out_dir masks/

Inputs are files, folders (the images directly in them) and glob patterns (quoted, petlib expands
them, ``**`` included). For each photo it writes ``<out_dir>/<stem>_mask.png`` (0 = background,
255 = pet) and ``<stem>_overlay.png`` (the photo with the pet tinted green and outlined, the
notebooks' colour for pet found), both at the size the photo is shown at (its EXIF orientation
applied), prints one line per photo and a summary. An input that names no image (a missing file,
an empty folder, a pattern that matches nothing) or a file it cannot read is named on stderr and
skipped; the others are still written, and the exit status is then 1. Photos with the same stem
get ``<stem>_2``, ``<stem>_3``, ...: nothing is overwritten. ``--model_path`` is a checkpoint or a
model folder (``petlib-export --format folder``).

The model sees each photo resized to its training size, and its logits are resized back
(bilinear) before thresholding (``--threshold``, on the probability), which gives smoother
borders than resizing a hard mask. ``--tta`` (default: as the checkpoint was validated) averages
with the mirrored photo; ``--batch_size`` photos go through the model at once; ``--device`` as in
training.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

import numpy as np
from PIL import Image

from petlib.cli.common import (
    Switch,
    add_tta_flag,
    argument_parser,
    examples,
    option,
    positive_int,
    prog,
    run_main,
    torch_device,
    tta_choice,
)
from petlib.evaluation.plots import overlay
from petlib.evaluation.predict import (
    describe_tta,
    find_images,
    output_stems,
    predict_probabilities,
    read_photo,
    validated_tta,
)
from petlib.training.checkpoint import load_model
from petlib.training.config import TrainConfig
from petlib.training.device import inference_layout, pick_device

__all__ = ["build_parser", "main"]


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a probability strictly between 0 and 1 (e.g. 0.5)")
    return value


def build_parser() -> argparse.ArgumentParser:
    name = prog("petlib-predict")
    epilog = examples(
        name,
        ("photos/ --model_path saved_models/resnet34_unet.pth --out_dir masks/",
         "every photo in photos/: masks/<stem>_mask.png and <stem>_overlay.png"),
        ("cat.jpg \"albums/**/*.png\" --model_path pets-resnet34-unet --out_dir masks/ --tta on",
         "a file and a pattern, with a model folder, averaging with the mirrored photo"),
        ("photos/ --model_path saved_models/unet.pth --out_dir masks/ --no_overlay --threshold 0.6",
         "masks only, a pixel is pet above probability 0.6"),
    )
    parser = argument_parser(name, __doc__, epilog=epilog)
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="photo files, folders of photos, or quoted glob patterns ('photos/**/*.jpg')")
    parser.add_argument(*option("model_path"), required=True, help="checkpoint or model folder, e.g. saved_models/resnet34_unet.pth")
    parser.add_argument(*option("out_dir", "--out"), required=True, help="folder for the masks and overlays")
    parser.add_argument("--threshold", type=_probability, default=0.5,
                        help="pet probability above which a pixel is pet (default: 0.5, as the Dice is scored)")
    add_tta_flag(parser)
    parser.add_argument(*option("batch_size"), type=positive_int, default=8, help="photos per forward pass")
    parser.add_argument(*option("image_size"), type=positive_int, default=None, help="default: the training size")
    parser.add_argument("--device", type=torch_device, default=None, help="default: CUDA, then MPS, then the CPU")
    parser.add_argument(*option("overlay"), action=Switch, default=True,
                        help="also write <stem>_overlay.png, the photo with the pet tinted and outlined (--no_overlay: masks only)")
    return parser


def _segment(args: argparse.Namespace, paths: Sequence[Path], out: Path) -> tuple[int, list[str]]:
    """Masks (and overlays) of ``paths`` into ``out``; ``(photos written, unreadable files)``."""
    device = pick_device(args.device)
    model, checkpoint = load_model(args.model_path)
    config = TrainConfig.from_dict(checkpoint.get("config", {}))
    inference_layout(model, device, config.channels_last)
    size = args.image_size or config.image_size
    validated = validated_tta(checkpoint)
    chosen = tta_choice(args.tta)
    tta = validated if chosen is None else chosen
    out.mkdir(parents=True, exist_ok=True)
    print(f"{len(paths)} photo(s) -> {out}/ | {checkpoint['model_name']} at {size}px on {device}, "
          f"{describe_tta(tta, validated)}, threshold {args.threshold:g}")
    written, unreadable = 0, []
    for chunk in _chunks(list(zip(paths, output_stems(paths))), args.batch_size):
        photos = []
        for path, stem in chunk:
            try:
                photos.append((path, stem, read_photo(path)))
            except OSError as err:
                unreadable.append(str(path))
                print(f"skipped: {err}", file=sys.stderr)  # the message names the file
        probabilities = predict_probabilities(model, [image for _, _, image in photos], size, tta=tta, device=device)
        for (path, stem, image), probability in zip(photos, probabilities):
            mask = (probability > args.threshold).numpy()  # (H, W) bool
            mask_path = out / f"{stem}_mask.png"
            Image.fromarray(mask.astype(np.uint8) * 255).save(mask_path)
            line = f"{path} ({image.width}x{image.height}): {mask.mean():.1%} pet -> {mask_path}"
            if args.overlay:
                overlay_path = out / f"{stem}_overlay.png"
                Image.fromarray(overlay(np.asarray(image), mask, outline=True)).save(overlay_path)
                line += f", {overlay_path}"
            print(line)
            written += 1
    return written, unreadable


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Find every input before loading the model: a typo shows at once, and is skipped like a broken file.
    out = Path(args.out_dir)
    paths, unmatched = find_images(args.images, out)
    if not paths:
        raise FileNotFoundError(f"nothing to segment: no image file, folder of images or matching pattern: "
                                f"{', '.join(unmatched)}")
    for text in unmatched:
        print(f"skipped: no image file, folder of images or matching pattern: {text}", file=sys.stderr)
    start = time.perf_counter()
    written, unreadable = _segment(args, paths, out)
    seconds = time.perf_counter() - start
    what = "masks and overlays" if args.overlay else "masks"
    summary = f"done: {written} of {len(paths)} photo(s) segmented, {what} in {out}/ ({seconds:.1f} s)"
    if unreadable:
        summary += f"; skipped {len(unreadable)} unreadable: {', '.join(unreadable)}"
    if unmatched:
        summary += f"; skipped {len(unmatched)} naming no image: {', '.join(unmatched)}"
    print(summary)
    return 1 if unreadable or unmatched else 0


def console() -> NoReturn:
    """``petlib-predict`` (``pyproject.toml``'s ``[project.scripts]``): :func:`main` with one-line errors."""
    run_main(main)


if __name__ == "__main__":
    console()
