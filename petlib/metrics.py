"""Segmentation metrics: Dice and IoU per image, from logits and binary masks.

Both follow one convention, the one that makes numbers comparable across papers and
with segmentation_models_pytorch's "per-image" reduction:

* a pixel is predicted "pet" when ``sigmoid(logit) > 0.5`` (i.e. ``logit > 0``);
* the score is computed **per image**, and a split's score is the mean over all
  of its images (never a mean of batch means, which weights a short last batch
  more than the rest);
* an image whose prediction and ground truth are both empty scores 1 (a perfect
  answer); one empty and the other not scores 0.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["binarize", "dice_per_image", "iou_per_image", "dice_score", "iou_score"]


def binarize(logits: Tensor, threshold: float = 0.5) -> Tensor:
    """Hard predictions from logits.

    Args:
        logits: ``(N, 1, H, W)`` raw model outputs.
        threshold: probability above which a pixel is foreground.

    Returns:
        ``(N, 1, H, W)`` bool tensor.
    """
    return torch.sigmoid(logits.float()) > threshold


def _intersection_and_sums(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    # Flatten everything but the batch dimension: one number per image.
    pred = pred.flatten(1).float()
    target = (target.flatten(1) > 0.5).float()
    return (pred * target).sum(1), pred.sum(1), target.sum(1)


def dice_per_image(logits: Tensor, masks: Tensor, threshold: float = 0.5) -> Tensor:
    """Dice coefficient ``2|P∩T| / (|P|+|T|)`` of each image.

    Args:
        logits: ``(N, 1, H, W)`` raw model outputs.
        masks: ``(N, 1, H, W)`` ground truth, 0/1 (float or bool).
        threshold: probability threshold for a foreground pixel.

    Returns:
        ``(N,)`` float tensor in [0, 1]; 1 where both prediction and truth are empty.
    """
    inter, p, t = _intersection_and_sums(binarize(logits, threshold), masks)
    denom = p + t
    return torch.where(denom > 0, 2 * inter / denom.clamp_min(1), torch.ones_like(denom))


def iou_per_image(logits: Tensor, masks: Tensor, threshold: float = 0.5) -> Tensor:
    """Intersection over union ``|P∩T| / |P∪T|`` of each image.

    Args:
        logits: ``(N, 1, H, W)`` raw model outputs.
        masks: ``(N, 1, H, W)`` ground truth, 0/1.
        threshold: probability threshold for a foreground pixel.

    Returns:
        ``(N,)`` float tensor in [0, 1]; 1 where both prediction and truth are empty.
    """
    inter, p, t = _intersection_and_sums(binarize(logits, threshold), masks)
    union = p + t - inter
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def dice_score(logits: Tensor, masks: Tensor, threshold: float = 0.5) -> float:
    """Mean per-image Dice over a batch (or a whole split passed at once).

    Args:
        logits: ``(N, 1, H, W)`` raw model outputs.
        masks: ``(N, 1, H, W)`` ground truth, 0/1.

    Returns:
        The mean of :func:`dice_per_image` as a Python float.
    """
    return dice_per_image(logits, masks, threshold).mean().item()


def iou_score(logits: Tensor, masks: Tensor, threshold: float = 0.5) -> float:
    """Mean per-image IoU; see :func:`dice_score`."""
    return iou_per_image(logits, masks, threshold).mean().item()
