"""Dice/IoU conventions and the losses' edge cases."""
import math

import pytest
import torch
from torch.utils.data import DataLoader

from petlib.losses import LOSSES, BCEDiceLoss, SoftDiceLoss, build_loss
from petlib.metrics import binarize, dice_per_image, dice_score, iou_per_image, iou_score
from petlib.training.engine import evaluate

BIG = 20.0  # a logit whose sigmoid is ~1


def logits_from(mask: torch.Tensor) -> torch.Tensor:
    """Confident logits that predict exactly ``mask``."""
    return torch.where(mask > 0, torch.tensor(BIG), torch.tensor(-BIG))


def test_perfect_prediction_scores_one():
    masks = (torch.rand(3, 1, 8, 8) > 0.5).float()
    assert dice_per_image(logits_from(masks), masks).tolist() == [1.0, 1.0, 1.0]
    assert iou_score(logits_from(masks), masks) == 1.0


def test_both_empty_scores_one_and_one_empty_scores_zero():
    empty = torch.zeros(1, 1, 4, 4)
    full = torch.ones(1, 1, 4, 4)
    assert dice_score(logits_from(empty), empty) == 1.0
    assert iou_score(logits_from(empty), empty) == 1.0
    assert dice_score(logits_from(full), empty) == 0.0  # predicts pet where there is none
    assert dice_score(logits_from(empty), full) == 0.0  # misses the whole pet


def test_known_overlap_values():
    truth = torch.zeros(1, 1, 4, 4)
    truth[..., :2, :] = 1  # 8 pixels
    pred = torch.zeros(1, 1, 4, 4)
    pred[..., :1, :] = 1  # 4 pixels, all inside the truth
    assert dice_score(logits_from(pred), truth) == pytest.approx(2 * 4 / (4 + 8))
    assert iou_score(logits_from(pred), truth) == pytest.approx(4 / 8)


def test_threshold_is_sigmoid_half():
    masks = torch.ones(1, 1, 1, 2)
    logits = torch.tensor([[[[0.01, -0.01]]]])  # sigmoid just above / below 0.5
    assert dice_score(logits, masks) == pytest.approx(2 * 1 / (1 + 2))


def test_a_probability_of_exactly_the_threshold_is_background():
    # sigmoid(0) is exactly 0.5 in float32: "pet" means strictly above, so a logit of 0 is
    # background. With ">=" an undecided model would predict pet everywhere.
    zeros = torch.zeros(2, 1, 3, 3)
    assert not binarize(zeros).any()
    assert dice_per_image(zeros, torch.zeros_like(zeros)).tolist() == [1.0, 1.0]  # both empty
    assert dice_per_image(zeros, torch.ones_like(zeros)).tolist() == [0.0, 0.0]  # missed the pet
    assert iou_score(zeros, torch.ones_like(zeros)) == 0.0
    # The same side for any threshold: a probability equal to it is background.
    logits = torch.full((1, 1, 1, 1), 1.0)
    threshold = torch.sigmoid(logits).item()
    assert not binarize(logits, threshold).any() and binarize(logits, threshold - 1e-6).all()


class LogitsAreTheImages(torch.nn.Module):
    """A stub network whose logits are its input's first channel: the test chooses them."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images[:, :1]


def scored_by_evaluate(logits: torch.Tensor, masks: torch.Tensor, batch_size: int, loss_fn=None) -> dict:
    """What :func:`petlib.training.engine.evaluate` reports for a model that outputs ``logits``."""
    items = [{"image": lo, "mask": ma, "index": i} for i, (lo, ma) in enumerate(zip(logits, masks))]
    loader = DataLoader(items, batch_size=batch_size)
    return evaluate(LogitsAreTheImages(), loader, torch.device("cpu"), loss_fn)


def test_split_mean_is_per_image_not_per_batch():
    # Batch A: 3 perfect images; batch B: 1 image scoring 0. The split's score is the mean
    # over images, 0.75; a mean of batch means would be (1 + 0) / 2 = 0.5.
    masks = torch.ones(4, 1, 4, 4)
    logits = logits_from(masks).clone()
    logits[3] = -BIG
    result = scored_by_evaluate(logits, masks, batch_size=3)
    assert result["count"] == 4
    assert result["dice"] == pytest.approx(0.75)
    assert result["iou"] == pytest.approx(0.75)
    # The loss too: each batch's mean loss counts once per image in it.
    first_pixel_is_pet = lambda lo, ma: (lo[:, 0, 0, 0] > 0).float().mean()  # noqa: E731
    assert scored_by_evaluate(logits, masks, 3, first_pixel_is_pet)["loss"] == pytest.approx(0.75)


def test_per_image_shapes_and_bool_masks():
    masks = torch.rand(5, 1, 7, 9) > 0.5
    logits = torch.randn(5, 1, 7, 9)
    assert dice_per_image(logits, masks).shape == (5,)
    assert iou_per_image(logits, masks).shape == (5,)
    d, i = dice_per_image(logits, masks), iou_per_image(logits, masks)
    # Dice = 2 IoU / (1 + IoU) holds image by image.
    assert torch.allclose(d, 2 * i / (1 + i))


@pytest.mark.parametrize("name", list(LOSSES))
def test_losses_are_low_for_right_and_high_for_wrong(name):
    loss_fn = build_loss(name)
    masks = (torch.rand(2, 1, 8, 8) > 0.5).float()
    right = loss_fn(logits_from(masks), masks).item()
    wrong = loss_fn(logits_from(1 - masks), masks).item()
    assert right < 0.01 and wrong > 0.9
    logits = torch.randn(2, 1, 8, 8, requires_grad=True)
    loss_fn(logits, masks).backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_soft_dice_empty_truth_and_empty_prediction_is_zero_loss():
    empty = torch.zeros(1, 1, 8, 8)
    assert SoftDiceLoss()(logits_from(empty), empty).item() == pytest.approx(0.0, abs=1e-6)


def small_and_large_pet() -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and masks ``(2, 1, 4, 4)``: a 1-pixel pet found exactly, an 8-pixel pet missed."""
    masks = torch.zeros(2, 1, 4, 4)
    masks[0, 0, 0, 0] = 1
    masks[1, 0, :2, :] = 1
    logits = logits_from(masks).clone()
    logits[1] = -BIG
    return logits, masks


def test_soft_dice_is_per_image_by_default_and_pooled_on_request():
    logits, masks = small_and_large_pet()
    # Per image, eps 1: (2*1 + 1) / (1 + 1 + 1) = 1 and (0 + 1) / (0 + 8 + 1) = 1/9; loss 1 - mean.
    per_image = 1 - (1 + 1 / 9) / 2
    assert SoftDiceLoss()(logits, masks).item() == pytest.approx(per_image, abs=1e-6)
    assert build_loss("dice")(logits, masks).item() == pytest.approx(per_image, abs=1e-6)
    # Pooled over the batch (smp's): 2*1 / (1 + 9) = 0.2, the large pet weighs 8 times more.
    assert SoftDiceLoss(pooled=True)(logits, masks).item() == pytest.approx(0.8, abs=1e-6)
    assert build_loss("dice_pooled")(logits, masks).item() == pytest.approx(0.8, abs=1e-6)
    bce = build_loss("bce")(logits, masks).item()
    assert build_loss("bce+dice")(logits, masks).item() == pytest.approx(bce + per_image, abs=1e-6)
    assert build_loss("bce+dice_pooled")(logits, masks).item() == pytest.approx(bce + 0.8, abs=1e-6)


def test_bce_dice_is_the_sum():
    masks = (torch.rand(2, 1, 8, 8) > 0.5).float()
    logits = torch.randn(2, 1, 8, 8)
    total = BCEDiceLoss()(logits, masks)
    parts = build_loss("bce")(logits, masks) + build_loss("dice")(logits, masks)
    assert total.item() == pytest.approx(parts.item())


def test_losses_in_float32_under_half_inputs():
    masks = (torch.rand(2, 1, 8, 8) > 0.5).float()
    logits = torch.randn(2, 1, 8, 8).to(torch.bfloat16)
    assert build_loss("bce+dice")(logits, masks).dtype == torch.float32


def test_unknown_loss_lists_valid_names():
    with pytest.raises(ValueError, match="bce, dice, bce\\+dice"):
        build_loss("focal")
    assert not math.isnan(build_loss("dice")(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)).item())


# ----------------------------------------------------------------------------- against smp


def batch_with_empty_images() -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and masks ``(6, 1, 16, 16)``: some images with no pet, one predicted empty too."""
    torch.manual_seed(0)
    masks = (torch.rand(6, 1, 16, 16) > 0.6).float()
    masks[1] = 0  # empty truth, some predicted pet
    masks[2] = 0  # empty truth, empty prediction (below)
    logits = 3 * torch.randn(6, 1, 16, 16)
    logits[2] = -10
    return logits, masks


def test_pooled_dice_loss_is_smps_binary_dice_loss():
    smp = pytest.importorskip("segmentation_models_pytorch")
    reference = smp.losses.DiceLoss(mode="binary")  # from_logits, smooth 0, eps 1e-7
    ours = SoftDiceLoss(pooled=True)
    logits, masks = batch_with_empty_images()
    for lo, ma in [(logits, masks), (logits[:1], masks[:1]), (logits[1:3], masks[1:3]), (logits[2:3], masks[2:3])]:
        a, b = lo.clone().requires_grad_(), lo.clone().requires_grad_()
        ours_value, smp_value = ours(a, ma), reference(b, ma)
        torch.testing.assert_close(ours_value, smp_value, rtol=1e-5, atol=1e-6)
        ours_value.backward()
        smp_value.backward()
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-8)
    # The per-image loss is a different number on the same batch: the option matters.
    assert abs(SoftDiceLoss()(logits, masks).item() - ours(logits, masks).item()) > 1e-3
    assert build_loss("dice_pooled")(logits, masks).item() == pytest.approx(ours(logits, masks).item())
    bce = build_loss("bce")(logits, masks)
    assert build_loss("bce+dice_pooled")(logits, masks).item() == pytest.approx((bce + ours(logits, masks)).item())


def test_smp_recipe_trains_with_smps_loss():
    from petlib.training.config import recipe

    assert recipe("smp").loss == "dice_pooled"


def test_dice_and_iou_are_smps_micro_imagewise_metrics():
    smp = pytest.importorskip("segmentation_models_pytorch")
    logits, masks = batch_with_empty_images()
    tp, fp, fn, tn = smp.metrics.get_stats(logits.sigmoid(), masks.long(), mode="binary", threshold=0.5)
    smp_dice = smp.metrics.f1_score(tp, fp, fn, tn, reduction="micro-imagewise", zero_division=1)
    smp_iou = smp.metrics.iou_score(tp, fp, fn, tn, reduction="micro-imagewise", zero_division=1)
    assert dice_score(logits, masks) == pytest.approx(smp_dice.item(), abs=1e-6)
    assert iou_score(logits, masks) == pytest.approx(smp_iou.item(), abs=1e-6)


def _lovasz_reference(logit, truth):
    """Berman et al.'s binary Lovász hinge for one image, written out pixel by pixel."""
    errors = [1 - float(x) * (2 * float(t) - 1) for x, t in zip(logit, truth)]
    order = sorted(range(len(errors)), key=lambda i: -errors[i])
    gts = sum(float(t) for t in truth)
    loss, previous = 0.0, 0.0
    inter, union = gts, gts
    for i in order:
        t = float(truth[i])
        inter -= t
        union += 1 - t
        jaccard = 1 - inter / union
        loss += max(errors[i], 0.0) * (jaccard - previous)
        previous = jaccard
    return loss


def test_lovasz_hinge_matches_the_paper_pixel_by_pixel():
    from petlib.losses import LovaszHingeLoss

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 1, 5, 4, generator=generator) * 2
    masks = (torch.rand(3, 1, 5, 4, generator=generator) > 0.5).float()
    masks[2] = 0  # an image without pet
    expected = sum(_lovasz_reference(logits[i].flatten(), masks[i].flatten()) for i in range(3)) / 3
    assert LovaszHingeLoss()(logits, masks).item() == pytest.approx(expected, rel=1e-5)


def test_lovasz_hinge_is_zero_for_confident_right_answers_and_ignores_weighted_out_pixels():
    from petlib.losses import LovaszHingeLoss, build_loss

    masks = torch.zeros(2, 1, 4, 4)
    masks[:, :, :2] = 1
    logits = (masks * 2 - 1) * 3  # every pixel right, margin above 1
    assert LovaszHingeLoss()(logits, masks).item() == 0
    wrong = logits.clone()
    wrong[:, :, 3, 3] = 5.0  # one background pixel called pet, confidently
    weight = torch.ones_like(masks)
    weight[:, :, 3, 3] = 0
    assert LovaszHingeLoss()(wrong, masks).item() > 0
    assert LovaszHingeLoss()(wrong, masks, weight).item() == 0
    loss = build_loss("bce+lovasz")(wrong.requires_grad_(), masks)
    loss.backward()
    assert wrong.grad is not None and wrong.grad[:, :, 3, 3].gt(0).all()  # pushed down where it is wrong
