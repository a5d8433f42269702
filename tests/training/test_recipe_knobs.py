"""The recipe's knobs that cross-validation searches: the border band left out of the loss,
the warm-up length, and the losses' pixel weights."""
import dataclasses

import pytest
import torch

from petlib.data import SAMPLE_ROOT
from petlib.losses import LOSSES, build_loss
from petlib.training.config import TrainConfig
from petlib.training.engine import fit, train_one_epoch


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_a_zero_weight_removes_those_pixels_from_every_loss(name):
    torch.manual_seed(0)
    logits, masks = torch.randn(2, 1, 8, 8), (torch.rand(2, 1, 8, 8) > 0.5).float()
    weight = torch.ones_like(masks)
    weight[..., :4, :] = 0  # the top half does not count
    loss = build_loss(name)
    # Whatever the ignored pixels hold, the loss is the same ...
    scrambled_logits, scrambled_masks = logits.clone(), masks.clone()
    scrambled_logits[..., :4, :] = 50.0
    scrambled_masks[..., :4, :] = 1 - masks[..., :4, :]
    assert loss(logits, masks, weight).item() == pytest.approx(loss(scrambled_logits, scrambled_masks, weight).item())
    # ... and an all-ones weight changes nothing.
    assert loss(logits, masks, torch.ones_like(masks)).item() == pytest.approx(loss(logits, masks).item())


def test_weighted_bce_is_the_mean_over_the_kept_pixels_only():
    logits = torch.tensor([[[[0.0, 3.0]]]])  # (1, 1, 1, 2)
    masks = torch.tensor([[[[1.0, 0.0]]]])
    weight = torch.tensor([[[[1.0, 0.0]]]])
    assert build_loss("bce")(logits, masks, weight).item() == pytest.approx(torch.log(torch.tensor(2.0)).item())


class _Recorder(torch.nn.Module):
    """A loss that records what it was given and returns a differentiable zero."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, logits, masks, weight=None):
        self.calls.append((masks.clone(), None if weight is None else weight.clone()))
        return logits.sum() * 0


def test_ignore_border_hands_the_loss_a_weight_that_is_zero_exactly_on_the_border():
    trimap = torch.full((2, 1, 8, 8), 2, dtype=torch.uint8)
    trimap[..., 2:6, 2:6] = 1  # pet
    trimap[..., 1, 1:7] = 3  # a border row
    masks = ((trimap == 1) | (trimap == 3)).to(torch.uint8)
    batch = {"image": torch.zeros(2, 3, 8, 8, dtype=torch.uint8), "mask": masks, "trimap": trimap}
    model = torch.nn.Conv2d(3, 1, 1)
    recorder = _Recorder()
    for ignore in (False, True):
        train_one_epoch(model, [batch], torch.optim.SGD(model.parameters(), lr=0.1), recorder, torch.device("cpu"),
                        ignore_border=ignore, progress=False)
    (plain_masks, plain_weight), (masks_seen, weight) = recorder.calls
    assert plain_weight is None
    torch.testing.assert_close(masks_seen, masks.float())  # the border still counts as pet in the target
    torch.testing.assert_close(weight, (trimap != 3).float())


def test_ignore_border_trains_end_to_end(tmp_path):
    config = TrainConfig(model="unet", model_kwargs={"base_channels": 4}, data_path=str(SAMPLE_ROOT), subset=8,
                         image_size=16, batch_size=4, epochs=1, device="cpu", out_dir=str(tmp_path),
                         ignore_border=True, save_last=False)
    result = fit(config, progress=False, log=None)
    assert result.best_checkpoint.exists() and len(result.history) == 1


@pytest.mark.parametrize("fraction", [0.1, 0.3])
def test_onecycle_peaks_after_the_warm_up_fraction(fraction, scheduled_lrs):
    config = TrainConfig(epochs=10, lr=1e-3, scheduler="onecycle", warmup_fraction=fraction, warmup_epochs=0)
    lrs = scheduled_lrs(config)  # 10 epochs of 10 steps
    assert lrs.index(max(lrs)) == pytest.approx(fraction * 100, abs=1)


def test_warm_up_fraction_is_checked():
    with pytest.raises(ValueError, match="warmup_fraction"):
        TrainConfig(warmup_fraction=0.7)
    assert dataclasses.replace(TrainConfig(), warmup_fraction=0.0).warmup_fraction == 0.0
