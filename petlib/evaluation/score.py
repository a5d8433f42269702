"""Scoring a trained model on a split: Dice and IoU per image, as it was validated.

:func:`evaluate_checkpoint` and :func:`evaluate_model` score at the training size, with the
test-time augmentation the checkpoint was validated with unless told otherwise (``tta``), so a
test score is the same kind of number as the validation score beside it;
:func:`score_at_original_size` resizes the logits to each photo's own size first. The command
line is ``petlib-eval`` (:mod:`petlib.cli.evaluate`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from petlib.data.dataset import DEFAULT_ROOT, load_dataset
from petlib.evaluation.predict import predict_logits_at_size, validated_tta
from petlib.training.checkpoint import load_model
from petlib.training.config import TrainConfig
from petlib.training.device import autocast_dtype, inference_layout, pick_device
from petlib.training.engine import evaluate

__all__ = ["evaluate_checkpoint", "evaluate_model", "score_at_original_size"]


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
        model_path: a checkpoint written by :func:`petlib.training.engine.fit`.
        data_path: dataset root in the official layout.
        mode: ``"train"``, ``"valid"`` or ``"test"``.
        model_name: if given, the architecture the checkpoint must hold.
        image_size: evaluation size; default the size the model was trained at.
        tta: average with horizontally flipped predictions; ``None`` (default): as the
            checkpoint's run validated (:func:`validated_tta`), so that the score is
            comparable with its validation Dice.
        per_image: also return per-image scores (see :func:`petlib.training.engine.evaluate`).
        progress: show a progress bar.

    Returns:
        ``{"loss", "dice", "iou", "count", ...}`` plus ``"model_name"``, ``"image_size"``,
        ``"epoch"`` (the checkpoint's epoch), ``"tta"`` (the policy used) and
        ``"validated_tta"`` (the run's). Metrics only: for the model too, use
        :func:`petlib.training.checkpoint.load_model` and :func:`evaluate_model`.
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
    """:func:`evaluate_checkpoint` for a model already loaded with :func:`~petlib.training.checkpoint.load_model`.

    ``model, checkpoint = load_model(path)`` then ``evaluate_model(model, checkpoint, ...)``:
    the checkpoint dict supplies the training size, AMP setting and validation TTA. The
    model is moved to ``device``, channels-last where inference is faster so
    (:func:`~petlib.training.device.inference_layout`).
    """
    torch_device = pick_device(device)
    config = TrainConfig.from_dict(checkpoint.get("config", {}))
    inference_layout(model, torch_device, config.channels_last)
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
    full-resolution mask. This is the number a user of :mod:`petlib.evaluation.predict` gets, and it
    is usually a little lower than the score at the training size, where thin parts
    and borders are blurred in the ground truth too.

    Returns:
        ``{"dice", "iou", "count", "dice_per_image", "iou_per_image"}``.
    """
    from petlib.data.dataset import image_file, read_image, read_split, read_trimap, trimap_file, trimap_to_mask
    from petlib.metrics import dice_per_image, iou_per_image

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
