"""Training losses on logits: the lab's BCE, a soft Dice, and their sum.

All take ``logits`` ``(N, 1, H, W)`` and ``masks`` ``(N, 1, H, W)`` with values 0/1 and
return a scalar. They are computed in float32 even under autocast, because the sums
over many pixels in a soft Dice lose precision in half floats.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SoftDiceLoss", "BCEDiceLoss", "LOSSES", "build_loss"]


class SoftDiceLoss(nn.Module):
    """``1 - soft Dice`` per image, averaged over the batch.

    Soft Dice uses probabilities instead of hard 0/1 predictions so it has a gradient:
    ``(2 Σ p·t + ε) / (Σ p + Σ t + ε)``. Averaging per image (rather than pooling all
    pixels of the batch) gives small pets the same weight as large ones, matching the
    per-image Dice we report. ``eps`` keeps an image with empty truth and empty
    prediction at loss 0 instead of 0/0.
    """

    def __init__(self, eps: float = 1.0) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, logits: Tensor, masks: Tensor) -> Tensor:
        probs = torch.sigmoid(logits.float()).flatten(1)
        masks = masks.float().flatten(1)
        inter = (probs * masks).sum(1)
        dice = (2 * inter + self.eps) / (probs.sum(1) + masks.sum(1) + self.eps)
        return 1 - dice.mean()


class BCEDiceLoss(nn.Module):
    """``bce_weight * BCE-with-logits + dice_weight * soft Dice``.

    BCE gives every pixel a well-scaled gradient from the first step; Dice targets the
    metric we report and counters the background majority (about 2/3 of the pixels).
    """

    def __init__(self, bce_weight: float = 1.0, dice_weight: float = 1.0) -> None:
        super().__init__()
        self.bce_weight = bce_weight
        self.dice_weight = dice_weight
        self.dice = SoftDiceLoss()

    def forward(self, logits: Tensor, masks: Tensor) -> Tensor:
        bce = F.binary_cross_entropy_with_logits(logits.float(), masks.float())
        return self.bce_weight * bce + self.dice_weight * self.dice(logits, masks)


class _BCEWithLogits(nn.BCEWithLogitsLoss):
    """The lab's loss: mean BCE-with-logits over all pixels, in float32."""

    def forward(self, logits: Tensor, masks: Tensor) -> Tensor:
        return super().forward(logits.float(), masks.float())


#: Loss name -> constructor, as spelled in configs and on the command line.
LOSSES: dict[str, Callable[[], nn.Module]] = {
    "bce": _BCEWithLogits,
    "dice": SoftDiceLoss,
    "bce+dice": BCEDiceLoss,
}


def build_loss(name: str) -> nn.Module:
    """The loss called ``name`` (one of :data:`LOSSES`)."""
    try:
        return LOSSES[name]()
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; valid losses: {', '.join(LOSSES)}") from None
