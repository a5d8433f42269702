"""Segment your own photos with a trained checkpoint.

    python -m petlib.predict photo1.jpg photo2.png --model_path saved_models/resnet34_unet.pth --out_dir masks/

For each image writes ``<out_dir>/<stem>_mask.png`` (0 = background, 255 = pet) and
``<out_dir>/<stem>_overlay.png`` (the photo with the pet tinted), both at the photo's own size:
the model sees the photo resized to its training size, and its logits are resized back
(bilinear) before thresholding, which gives smoother borders than resizing a hard mask.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from .checkpoint import load_model
from .cli import argument_parser, option, run_main
from .config import TrainConfig
from .data import read_image
from .engine import pick_device, predict_logits
from .inference import describe_tta, validated_tta
from .plotting import overlay

__all__ = ["predict_mask", "predict_logits_at_size", "main"]


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
    resized = image.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(resized).copy()).permute(2, 0, 1).float().div_(255)[None]  # (1,3,S,S)
    was_training = model.training
    model.eval()
    logits = predict_logits(model, x.to(device), tta=tta)  # (1,1,S,S)
    model.train(was_training)
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argument_parser("python -m petlib.predict", __doc__)
    parser.add_argument("images", nargs="+", help="photos to segment (any format Pillow reads)")
    parser.add_argument(*option("model_path"), required=True, help="checkpoint, e.g. saved_models/resnet34_unet.pth")
    parser.add_argument(*option("out_dir", "--out"), required=True, help="folder for the masks and overlays")
    parser.add_argument(*option("image_size"), type=int, default=None, help="default: the training size")
    # nargs="?": a bare --tta, from when this took no value, still means on.
    parser.add_argument("--tta", choices=["on", "off"], nargs="?", const="on", default=None,
                        help="average with the flipped prediction (default: as the checkpoint was validated)")
    parser.add_argument("--device", default=None, help="default: CUDA, then MPS, then the CPU")
    args = parser.parse_args(argv)

    # Check every input before loading the model, so a typo fails fast.
    missing = [p for p in args.images if not Path(p).is_file()]
    if missing:
        parser.error(f"no such image file(s): {', '.join(missing)}")
    device = pick_device(args.device)
    model, checkpoint = load_model(args.model_path)
    model.to(device)
    size = args.image_size or TrainConfig.from_dict(checkpoint.get("config", {})).image_size
    validated = validated_tta(checkpoint)
    tta = validated if args.tta is None else args.tta == "on"
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    print(f"predicting at {size}px, {describe_tta(tta, validated)}")
    for path in map(Path, args.images):
        image = read_image(path)
        mask = predict_mask(model, image, size, tta=tta, device=device)
        Image.fromarray(mask.astype(np.uint8) * 255).save(out / f"{path.stem}_mask.png")
        Image.fromarray(overlay(np.asarray(image), mask)).save(out / f"{path.stem}_overlay.png")
        print(f"{path}: {mask.mean():.1%} pet -> {out / (path.stem + '_mask.png')}, {out / (path.stem + '_overlay.png')}")
    return 0


if __name__ == "__main__":
    run_main(main)
