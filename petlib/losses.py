"""Training losses on logits: the lab's BCE, a soft Dice (per image, or pooled over the
batch as segmentation_models_pytorch computes it), the Lovász hinge, and sums of them.

All take ``logits`` ``(N, 1, H, W)`` and ``masks`` ``(N, 1, H, W)`` with values 0/1 and
return a scalar. An optional ``weight`` ``(N, 1, H, W)`` of 0/1 leaves the pixels where it is 0
out of the loss altogether: that is how training ignores the trimap's border band, the
hand-drawn outline whose pixels are half pet, half background (``TrainConfig.ignore_border``). They are computed in float32 even under autocast, because the sums
over many pixels in a soft Dice lose precision in half floats.
"""
from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "SoftDiceLoss", "BCEDiceLoss", "LovaszHingeLoss", "BCELovaszLoss", "lovasz_grad", "LOSSES",
    "WEIGHTED_DICE_LOSSES", "build_loss",
]


class SoftDiceLoss(nn.Module):
    """``1 - soft Dice``, per image and averaged over the batch, or pooled over the batch.

    Soft Dice uses probabilities instead of hard 0/1 predictions so it has a gradient.

    Per image (the default): ``(2 Σ p·t + ε) / (Σ p + Σ t + ε)`` over each image's pixels,
    averaged over the batch. This gives small pets the same weight as large ones, matching
    the per-image Dice we report; ``eps`` (default 1) keeps an image with empty truth and
    empty prediction at loss 0 instead of 0/0.

    Pooled (``pooled=True``): one Dice over every pixel of the batch, exactly
    segmentation_models_pytorch's ``DiceLoss(mode="binary")`` with its defaults (smooth 0,
    ``eps`` 1e-7): ``2 Σ p·t / max(Σ p + Σ t, 2 eps)``, and loss 0 for a batch without a
    single pet pixel (smp drops a class absent from the truth). Large pets weigh more.

    Args:
        eps: per image, the smoothing added to numerator and denominator (default 1);
            pooled, the floor of the half denominator (default 1e-7, smp's).
        pooled: pool the batch (smp's loss) instead of averaging per image.

    Takes ``logits`` and ``masks`` ``(N, 1, H, W)``; returns a scalar.
    """

    def __init__(self, eps: float | None = None, pooled: bool = False) -> None:
        super().__init__()
        self.pooled = pooled
        self.eps = eps if eps is not None else (1e-7 if pooled else 1.0)

    def forward(self, logits: Tensor, masks: Tensor, weight: Tensor | None = None) -> Tensor:
        probs = torch.sigmoid(logits.float()).flatten(1)  # (N, H*W)
        masks = masks.float().flatten(1)  # (N, H*W)
        if weight is not None:  # ignored pixels add to neither the overlap nor the sizes
            weight = weight.float().flatten(1)
            probs, masks = probs * weight, masks * weight
        if self.pooled:
            inter, total = (probs * masks).sum(), probs.sum() + masks.sum()
            dice = inter / (total / 2).clamp_min(self.eps)
            # smp multiplies by "the truth has pixels": without any, the loss is 0, not 1.
            return (1 - dice) * (masks.sum() > 0)
        inter = (probs * masks).sum(1)
        dice = (2 * inter + self.eps) / (probs.sum(1) + masks.sum(1) + self.eps)
        return 1 - dice.mean()


class BCEDiceLoss(nn.Module):
    """``bce_weight * BCE-with-logits + dice_weight * soft Dice``.

    BCE gives every pixel a well-scaled gradient from the first step; Dice targets the
    metric we report and counters the background majority (about 2/3 of the pixels).
    """

    def __init__(self, bce_weight: float = 1.0, dice_weight: float = 1.0, pooled: bool = False) -> None:
        super().__init__()
        self.bce_weight = bce_weight
        self.dice_weight = dice_weight
        self.dice = SoftDiceLoss(pooled=pooled)

    def forward(self, logits: Tensor, masks: Tensor, weight: Tensor | None = None) -> Tensor:
        bce = _bce(logits, masks, weight)
        return self.bce_weight * bce + self.dice_weight * self.dice(logits, masks, weight)


def lovasz_grad(truth_sorted: Tensor) -> Tensor:
    """The gradient of the Jaccard loss's Lovász extension at ``truth_sorted`` ``(..., P)`` (0/1,
    each row's pixels sorted by decreasing error): Berman et al. (2018), Algorithm 1, row by row."""
    total = truth_sorted.sum(-1, keepdim=True)
    intersection = total - truth_sorted.cumsum(-1)
    union = total + (1 - truth_sorted).cumsum(-1)
    jaccard = 1 - intersection / union
    return torch.cat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], dim=-1)


class LovaszHingeLoss(nn.Module):
    """The Lovász hinge (Berman, Triki and Blaschko, CVPR 2018), per image, averaged over the batch.

    A convex surrogate of ``1 - IoU`` of the thresholded prediction: each pixel's hinge error
    ``1 - logit * (2 t - 1)`` weighted by how much it moves the image's IoU, so it optimises the
    overlap of each image directly, as the per-image Dice we report counts it. Takes ``logits``
    and ``masks`` ``(N, 1, H, W)``; ``weight`` 0 leaves pixels out.
    """

    def forward(self, logits: Tensor, masks: Tensor, weight: Tensor | None = None) -> Tensor:
        logits, masks = logits.float().flatten(1), masks.float().flatten(1)  # (N, P)
        if weight is None:  # every image at once: one sort of each row
            errors = 1 - logits * (2 * masks - 1)  # (N, P) hinge errors
            errors_sorted, order = errors.sort(dim=1, descending=True)
            grad = lovasz_grad(masks.gather(1, order))  # (N, P)
            return (F.relu(errors_sorted) * grad).sum(1).mean()
        keep = weight.flatten(1) > 0  # a different number of pixels per image: one at a time
        losses = []
        for logit, truth, kept in zip(logits, masks, keep):
            errors = 1 - logit[kept] * (2 * truth[kept] - 1)
            errors_sorted, order = errors.sort(descending=True)
            losses.append(torch.dot(F.relu(errors_sorted), lovasz_grad(truth[kept][order])))
        return torch.stack(losses).mean()


class BCELovaszLoss(nn.Module):
    """``BCE-with-logits + Lovász hinge``: BCE's well-scaled gradient on every pixel from the first
    step, and the Lovász hinge's push on each image's overlap."""

    def __init__(self) -> None:
        super().__init__()
        self.lovasz = LovaszHingeLoss()

    def forward(self, logits: Tensor, masks: Tensor, weight: Tensor | None = None) -> Tensor:
        return _bce(logits, masks, weight) + self.lovasz(logits, masks, weight)


def _bce(logits: Tensor, masks: Tensor, weight: Tensor | None) -> Tensor:
    """Mean BCE-with-logits over the pixels whose ``weight`` is 1 (all of them without one)."""
    if weight is None:
        return F.binary_cross_entropy_with_logits(logits.float(), masks.float())
    weight = weight.float()
    per_pixel = F.binary_cross_entropy_with_logits(logits.float(), masks.float(), reduction="none")
    return (per_pixel * weight).sum() / weight.sum().clamp_min(1)


class _BCEWithLogits(nn.Module):
    """The lab's loss: mean BCE-with-logits over all pixels, in float32."""

    def forward(self, logits: Tensor, masks: Tensor, weight: Tensor | None = None) -> Tensor:
        return _bce(logits, masks, weight)


#: Loss name -> constructor, as spelled in configs and on the command line.
#: ``*_pooled`` Dice pools the batch as segmentation_models_pytorch does (its recipe uses it).
LOSSES: dict[str, Callable[[], nn.Module]] = {
    "bce": _BCEWithLogits,
    "dice": SoftDiceLoss,
    "bce+dice": BCEDiceLoss,
    "dice_pooled": functools.partial(SoftDiceLoss, pooled=True),
    "bce+dice_pooled": functools.partial(BCEDiceLoss, pooled=True),
    "bce+lovasz": BCELovaszLoss,
}


#: The losses with a soft Dice term next to BCE, whose Dice weight can change.
WEIGHTED_DICE_LOSSES = ("bce+dice", "bce+dice_pooled")


def build_loss(name: str, dice_weight: float = 1.0) -> nn.Module:
    """The loss called ``name`` (one of :data:`LOSSES`).

    ``dice_weight`` scales the soft Dice term against BCE's weight of 1 in the losses of
    :data:`WEIGHTED_DICE_LOSSES`; any other loss takes only the default of 1.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid losses: {', '.join(LOSSES)}")
    if dice_weight == 1.0:
        return LOSSES[name]()
    if name not in WEIGHTED_DICE_LOSSES:
        raise ValueError(f"dice_weight={dice_weight:g} needs a loss with a Dice term next to BCE "
                         f"({', '.join(WEIGHTED_DICE_LOSSES)}), not {name!r}")
    return LOSSES[name](dice_weight=dice_weight)
