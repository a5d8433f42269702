"""Properties of the metrics and losses that a changed constant or operator would break.

Written from mutation testing (``make mutation``, tests/README.md): each test states what the
scores mean (a threshold is a probability, a single pixel counts, a weight leaves pixels out),
checked on tiny hand-made tensors.
"""
import math

import pytest
import torch

from petlib.losses import BCEDiceLoss, LovaszHingeLoss, SoftDiceLoss, build_loss, lovasz_grad
from petlib.metrics import binarize, dice_per_image, dice_score, iou_per_image, iou_score


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def image(*pixels: float) -> torch.Tensor:
    """A ``(1, 1, 1, P)`` tensor: one image of the given pixels."""
    return torch.tensor(pixels, dtype=torch.float32).view(1, 1, 1, -1)


# --------------------------------------------------------------------------- metrics


def test_the_default_threshold_is_probability_one_half():
    # a probability of 0.55 is pet, 0.45 is not, whichever metric asks
    logits = image(logit(0.55), logit(0.45))
    assert binarize(logits).flatten().tolist() == [True, False]


@pytest.mark.parametrize("metric", [dice_per_image, iou_per_image])
def test_the_threshold_is_a_probability_and_reaches_the_score(metric):
    # probabilities 0.7 and 0.3 on a mask that is pet where the first is
    logits, masks = image(logit(0.7), logit(0.3)), image(1, 0)
    assert metric(logits, masks).item() == 1  # at 0.5: exactly right
    assert metric(logits, masks, threshold=0.8).item() == 0  # at 0.8 nothing is pet
    assert metric(logits, masks, threshold=0.2).item() < 1  # at 0.2 both pixels are pet


@pytest.mark.parametrize("score, per_image", [(dice_score, dice_per_image), (iou_score, iou_per_image)])
def test_the_batch_score_passes_its_threshold_on(score, per_image):
    logits, masks = image(logit(0.7), logit(0.3)), image(1, 0)
    for threshold in (0.2, 0.5, 0.8):
        assert score(logits, masks, threshold) == per_image(logits, masks, threshold).mean().item()


@pytest.mark.parametrize("metric", [dice_per_image, iou_per_image])
def test_a_single_pixel_counts(metric):
    # one pet pixel predicted where there is none (or missed): 0, not "both empty"; one right: 1
    assert metric(image(5.0, -5.0), image(0, 0)).item() == 0
    assert metric(image(-5.0, -5.0), image(1, 0)).item() == 0
    assert metric(image(5.0, -5.0), image(1, 0)).item() == 1


def test_known_single_pixel_overlaps():
    # prediction {0, 1}, truth {1}: Dice 2*1/(2+1), IoU 1/2
    logits, masks = image(5.0, 5.0, -5.0), image(0, 1, 0)
    assert dice_per_image(logits, masks).item() == pytest.approx(2 / 3)
    assert iou_per_image(logits, masks).item() == pytest.approx(1 / 2)


# --------------------------------------------------------------------------- losses


def test_soft_dice_per_image_is_its_formula_with_smoothing_one():
    logits, masks = image(logit(0.8), logit(0.4), logit(0.1)), image(1, 0, 1)
    p, t = torch.tensor([0.8, 0.4, 0.1]), torch.tensor([1.0, 0.0, 1.0])
    expected = 1 - (2 * (p * t).sum() + 1) / (p.sum() + t.sum() + 1)
    assert SoftDiceLoss()(logits, masks).item() == pytest.approx(expected.item(), rel=1e-6)


def test_pooled_soft_dice_is_one_dice_over_the_batch():
    # two images; pooled Dice = 2 sum(p t) / (sum p + sum t) over both
    logits = torch.tensor([logit(0.8), logit(0.4), logit(0.1), logit(0.6)]).view(2, 1, 1, 2)
    masks = torch.tensor([1.0, 0.0, 1.0, 1.0]).view(2, 1, 1, 2)
    p, t = torch.sigmoid(logits).flatten(), masks.flatten()
    expected = 1 - 2 * (p * t).sum() / (p.sum() + t.sum())
    assert SoftDiceLoss(pooled=True)(logits, masks).item() == pytest.approx(expected.item(), rel=1e-6)
    # smp: a batch without a single pet pixel costs nothing
    assert SoftDiceLoss(pooled=True)(logits, torch.zeros_like(masks)).item() == 0


def test_pooled_soft_dice_eps_is_a_floor_far_below_one_and_eps_can_be_set():
    # one pixel, probability 0.5, pet: Dice 2 * 0.5 / 1.5, its half-denominator 0.75 left as it is
    assert SoftDiceLoss(pooled=True)(image(0.0), image(1)).item() == pytest.approx(1 - 1 / 1.5, rel=1e-6)
    assert SoftDiceLoss(eps=0.5)(image(0.0), image(1)).item() == pytest.approx(1 - (1 + 0.5) / (1.5 + 0.5), rel=1e-6)


def test_pooled_soft_dice_eps_only_floors_the_denominator():
    # a tiny, non-empty denominator is not rounded up by the default floor (1e-7)
    logits, masks = image(-30.0, -30.0), image(1e-3, 0)
    loss = SoftDiceLoss(pooled=True)(logits, masks).item()
    p = torch.sigmoid(torch.tensor(-30.0)).item()
    expected = 1 - 2 * (p * 1e-3) / (2 * p + 1e-3)
    assert loss == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("pooled", [False, True])
def test_a_weight_leaves_pixels_out_of_the_soft_dice(pooled):
    # the same loss as on the kept pixels alone, whatever the others hold
    logits, masks = image(logit(0.8), logit(0.4), 9.0), image(1, 0, 0)
    weight = image(1, 1, 0)
    kept = SoftDiceLoss(pooled=pooled)(image(logit(0.8), logit(0.4)), image(1, 0))
    assert SoftDiceLoss(pooled=pooled)(logits, masks, weight).item() == pytest.approx(kept.item(), rel=1e-6)


def test_bce_dice_weights_its_two_terms():
    logits, masks = image(logit(0.8), logit(0.4)), image(1, 0)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, masks).item()
    dice = SoftDiceLoss()(logits, masks).item()
    assert BCEDiceLoss(bce_weight=2.0, dice_weight=0.5)(logits, masks).item() == pytest.approx(2 * bce + 0.5 * dice)
    pooled = SoftDiceLoss(pooled=True)(logits, masks).item()
    assert BCEDiceLoss(pooled=True)(logits, masks).item() == pytest.approx(bce + pooled)
    assert build_loss("bce+dice_pooled")(logits, masks).item() == pytest.approx(bce + pooled)
    assert build_loss("dice_pooled")(logits, masks).item() == pytest.approx(pooled)


def test_weighted_bce_divides_by_the_number_of_kept_pixels():
    logits, masks, weight = image(2.0, -1.0, 3.0), image(1, 1, 0), image(1, 1, 0)
    per_pixel = torch.nn.functional.binary_cross_entropy_with_logits(logits, masks, reduction="none").flatten()
    expected = (per_pixel[0] + per_pixel[1]) / 2
    for name in ("bce", "bce+lovasz"):
        loss = build_loss(name)
        lovasz = LovaszHingeLoss()(logits, masks, weight) if name == "bce+lovasz" else 0
        assert loss(logits, masks, weight).item() == pytest.approx(expected.item() + float(lovasz), rel=1e-6)
    # nothing kept: 0, not a division by zero
    assert build_loss("bce")(logits, masks, torch.zeros_like(weight)).item() == 0


def test_lovasz_grad_is_the_jaccard_loss_increments():
    # truth sorted by decreasing error: [1, 0, 1, 0]; Jaccard loss after each prefix of errors
    truth = torch.tensor([1.0, 0.0, 1.0, 0.0])
    total = 2.0
    jaccard = []
    for k in range(1, 5):
        inter = total - truth[:k].sum()
        union = total + (1 - truth[:k]).sum()
        jaccard.append(1 - inter / union)
    jaccard = torch.stack(jaccard)
    expected = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
    torch.testing.assert_close(lovasz_grad(truth), expected)
    assert lovasz_grad(truth).sum().item() == pytest.approx(1.0)  # the loss of every pixel wrong


def test_lovasz_hinge_of_one_image_by_hand():
    # logits (2, -1, 0.5), truth (1, 1, 0): hinge errors 1 - l (2t - 1) = (-1, 2, 1.5)
    logits, masks = image(2.0, -1.0, 0.5), image(1, 1, 0)
    # sorted: 2 (t=1), 1.5 (t=0), -1 (t=1); grad of [1, 0, 1]: J = 1-1/2, 1-1/3, 1-0/3 -> (.5, 1/6, 1/3)
    expected = 2 * 0.5 + 1.5 * (1 / 6) + 0 * (1 / 3)
    assert LovaszHingeLoss()(logits, masks).item() == pytest.approx(expected, rel=1e-6)
    # averaged over the images of a batch
    batch_logits = torch.cat([logits, image(5.0, 5.0, -5.0)])
    batch_masks = torch.cat([masks, masks])
    assert LovaszHingeLoss()(batch_logits, batch_masks).item() == pytest.approx(expected / 2, rel=1e-6)
