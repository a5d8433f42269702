"""Score a trained checkpoint on a split of the dataset (``petlib-eval``, or ``python -m petlib.inference``).

    petlib-eval --model unet --model_path saved_models/unet.pth --batch_size 64

prints the test Dice and IoU (per image, averaged over all images), at the image size
the model was trained at, and with the test-time augmentation it was validated with
(horizontal-flip averaging when its config has ``tta``): test and validation scores are
then the same kind of number. ``--tta on`` or ``--tta off`` overrides that, and every
printed score says which it is. A test score is also recorded in the checkpoint's model card
(``<name>_card.json`` and ``.md``, :func:`petlib.card.record_test_score`; ``--no_card`` leaves
the card alone).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from .checkpoint import load_model
from .cli import (
    Switch, add_progress_flags, add_tta_flag, argument_parser, option, run_main, show_progress, tta_choice,
)
from .config import TrainConfig
from .console import prog
from .data import DEFAULT_ROOT, MODES, load_dataset
from .device import autocast_dtype, pick_device
from .engine import evaluate
from .models import MODELS

__all__ = ["evaluate_checkpoint", "evaluate_model", "validated_tta", "describe_tta", "score_at_original_size", "main"]


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


def evaluate_checkpoint(
    model_path: str | Path,
    data_path: str | Path = DEFAULT_ROOT,
    mode: str = "test",
    *,
    model_name: str | None = None,
    batch_size: int = 32,
    image_size: int | None = None,
    tta: bool | None = None,
    device: str | None = None,
    per_image: bool = False,
    num_workers: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Dice and IoU of the checkpoint at ``model_path`` on the ``mode`` split.

    Args:
        model_path: a checkpoint written by :func:`petlib.engine.fit`.
        data_path: dataset root in the official layout.
        mode: ``"train"``, ``"valid"`` or ``"test"``.
        model_name: if given, the architecture the checkpoint must hold.
        image_size: evaluation size; default the size the model was trained at.
        tta: average with horizontally flipped predictions; ``None`` (default): as the
            checkpoint's run validated (:func:`validated_tta`), so that the score is
            comparable with its validation Dice.
        per_image: also return per-image scores (see :func:`petlib.engine.evaluate`).
        progress: show a progress bar.

    Returns:
        ``{"loss", "dice", "iou", "count", ...}`` plus ``"model_name"``, ``"image_size"``,
        ``"epoch"`` (the checkpoint's epoch), ``"tta"`` (the policy used) and
        ``"validated_tta"`` (the run's). Metrics only: for the model too, use
        :func:`petlib.checkpoint.load_model` and :func:`evaluate_model`.
    """
    model, checkpoint = load_model(model_path, expected_model=model_name)
    return evaluate_model(model, checkpoint, data_path, mode, batch_size=batch_size, image_size=image_size, tta=tta,
                          device=device, per_image=per_image, num_workers=num_workers, progress=progress)


def evaluate_model(
    model: nn.Module,
    checkpoint: dict[str, Any],
    data_path: str | Path = DEFAULT_ROOT,
    mode: str = "test",
    *,
    batch_size: int = 32,
    image_size: int | None = None,
    tta: bool | None = None,
    device: str | None = None,
    per_image: bool = False,
    num_workers: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """:func:`evaluate_checkpoint` for a model already loaded with :func:`~petlib.checkpoint.load_model`.

    ``model, checkpoint = load_model(path)`` then ``evaluate_model(model, checkpoint, ...)``:
    the checkpoint dict supplies the training size, AMP setting and validation TTA. The
    model is moved to ``device``.
    """
    torch_device = pick_device(device)
    model.to(torch_device)
    config = TrainConfig.from_dict(checkpoint.get("config", {}))
    validated = validated_tta(checkpoint)
    tta = validated if tta is None else tta
    size = image_size or config.image_size
    loader = load_dataset(data_path, mode, batch_size, image_size=size, num_workers=num_workers, shuffle=False,
                          pin_memory=torch_device.type == "cuda")
    result = evaluate(model, loader, torch_device, amp_dtype=autocast_dtype(torch_device, config.amp),
                      tta=tta, per_image=per_image, progress=progress)
    result.update(model_name=checkpoint["model_name"], image_size=size, epoch=checkpoint.get("epoch"), tta=tta,
                  validated_tta=validated)
    return result


@torch.inference_mode()
def score_at_original_size(
    model: torch.nn.Module,
    data_path: str | Path,
    mode: str = "test",
    *,
    image_size: int,
    tta: bool = False,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Dice and IoU against each image's **original-resolution** trimap.

    The model sees the image resized to ``image_size`` (as in training); its logits are
    resized back to the photo's own size before thresholding, and compared with the
    full-resolution mask. This is the number a user of :mod:`petlib.predict` gets, and it
    is usually a little lower than the score at the training size, where thin parts
    and borders are blurred in the ground truth too.

    Returns:
        ``{"dice", "iou", "count", "dice_per_image", "iou_per_image"}``.
    """
    from .data import image_file, read_image, read_split, read_trimap, trimap_file, trimap_to_mask
    from .metrics import dice_per_image, iou_per_image
    from .predict import predict_logits_at_size

    root = Path(data_path)
    dices, ious = [], []
    for entry in read_split(root, mode):
        image = read_image(image_file(root, entry.name))
        mask = torch.from_numpy(trimap_to_mask(read_trimap(trimap_file(root, entry.name))))
        logits = predict_logits_at_size(model, image, image_size, tta=tta, device=device).cpu()  # (1,1,H,W)
        dices.append(dice_per_image(logits, mask[None, None]))
        ious.append(iou_per_image(logits, mask[None, None]))
    dice, iou = torch.cat(dices), torch.cat(ious)
    return {"dice": dice.mean().item(), "iou": iou.mean().item(), "count": len(dice),
            "dice_per_image": dice, "iou_per_image": iou}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argument_parser(prog("petlib.inference"), __doc__)
    parser.add_argument("--model", choices=list(MODELS), default=None, help="architecture the checkpoint must hold (checked)")
    parser.add_argument(*option("model_path"), required=True, help="checkpoint file, e.g. saved_models/unet.pth")
    parser.add_argument(*option("data_path"), default=str(DEFAULT_ROOT), help="dataset root")
    parser.add_argument("--mode", default="test", choices=list(MODES), help="split to score")
    parser.add_argument(*option("batch_size"), type=int, default=32)
    parser.add_argument(*option("image_size"), type=int, default=None, help="default: the training size")
    add_tta_flag(parser, "average with horizontally flipped predictions")
    parser.add_argument(*option("original_size"), action="store_true",
                        help="also score against each image's full-resolution trimap")
    parser.add_argument("--device", default=None, help="default: CUDA, then MPS, then the CPU")
    parser.add_argument(*option("card"), action=Switch, default=True,
                        help="record a test score in the checkpoint's model card, <name>_card.json and .md "
                             "(--no_card: leave the card alone)")
    add_progress_flags(parser)
    args = parser.parse_args(argv)
    model, checkpoint = load_model(args.model_path, expected_model=args.model)
    result = evaluate_model(
        model, checkpoint, args.data_path, args.mode, batch_size=args.batch_size, image_size=args.image_size,
        tta=tta_choice(args.tta), device=args.device, progress=show_progress(args.progress),
    )
    how = describe_tta(result["tta"], result["validated_tta"])
    print(
        f"{result['model_name']} ({args.model_path}, epoch {result['epoch']}) on {result['count']} "
        f"{args.mode} images at {result['image_size']}px, {how}:"
    )
    print(f"{args.mode} Dice {result['dice']:.4f} | {args.mode} IoU {result['iou']:.4f} ({how})")
    if args.original_size:
        device = next(model.parameters()).device
        full = score_at_original_size(model, args.data_path, args.mode, image_size=result["image_size"],
                                      tta=result["tta"], device=device)
        print(f"{args.mode} Dice {full['dice']:.4f} | {args.mode} IoU {full['iou']:.4f} "
              f"(at each image's original resolution, {how})")
    if args.mode == "test" and args.card:
        from .card import record_test_score

        try:
            card = record_test_score(args.model_path, result, data_path=args.data_path)
        except OSError as err:  # a read-only folder: the score above stands, the card stays as it was
            print(f"model card not updated: {err}")
        else:
            print(f"test score recorded in the model card: {card} and {card.with_suffix('.md').name}")
    return 0


if __name__ == "__main__":
    run_main(main)
