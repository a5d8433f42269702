"""The recipe's knobs that cross-validation searches: the border band left out of the loss,
the warm-up length, the losses' pixel weights, the Dice term's weight and the weights' moving average."""
import dataclasses

import pytest
import torch

from petlib.data import SAMPLE_ROOT
from petlib.losses import LOSSES, WEIGHTED_DICE_LOSSES, build_loss
from petlib.models import build_model
from petlib.training import engine
from petlib.training.checkpoint import load_checkpoint
from petlib.training.config import TrainConfig
from petlib.training.engine import fit, make_loaders, train_one_epoch
from petlib.training.optim import build_ema


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


# --------------------------------------------------------------------------- the Dice term's weight


def test_dice_weight_scales_the_dice_term_only():
    torch.manual_seed(0)
    logits, masks = torch.randn(2, 1, 8, 8), (torch.rand(2, 1, 8, 8) > 0.5).float()
    bce, dice = build_loss("bce")(logits, masks), build_loss("dice")(logits, masks)
    for name in WEIGHTED_DICE_LOSSES:
        assert build_loss(name, 2.5)(logits, masks).item() == pytest.approx(
            (bce + 2.5 * build_loss(name.replace("bce+", ""))(logits, masks)).item())
    assert build_loss("bce+dice", 1.0)(logits, masks).item() == pytest.approx((bce + dice).item())
    assert build_loss("bce+dice", 0.0)(logits, masks).item() == pytest.approx(bce.item())


def test_dice_weight_needs_a_loss_with_a_dice_term_next_to_bce():
    for name in sorted(set(LOSSES) - set(WEIGHTED_DICE_LOSSES)):
        with pytest.raises(ValueError, match="dice_weight"):
            TrainConfig(loss=name, dice_weight=2.0)
        with pytest.raises(ValueError, match="Dice term"):
            build_loss(name, 2.0)
        assert TrainConfig(loss=name).dice_weight == 1.0  # the default goes with every loss
    with pytest.raises(ValueError, match="dice_weight"):
        TrainConfig(dice_weight=-1.0)


def test_the_engine_trains_with_the_configured_dice_weight(monkeypatch, tiny_config, tmp_path):
    built = []
    real = engine.build_loss
    monkeypatch.setattr(engine, "build_loss", lambda *args: built.append(args) or real(*args))
    fit(tiny_config(tmp_path, epochs=1, dice_weight=3.0, save_last=False), progress=False, log=None)
    assert built == [("bce+dice", 3.0)]


# --------------------------------------------------------------------------- the weights' moving average


def _flat(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([t.detach().flatten().float() for t in module.state_dict().values()])


def test_ema_is_the_moving_average_of_the_weights_after_each_step(tiny_config, tmp_path):
    config = tiny_config(tmp_path, ema_decay=0.75, augment=False)
    model = build_model("unet", base_channels=4)
    ema = build_ema(config, model)
    assert build_ema(tiny_config(tmp_path), model) is None  # no decay: no average
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = make_loaders(config, torch.device("cpu"), modes=("train",))["train"]  # 2 batches of 4

    # Each step's weights, seen by the loss before the next step's forward.
    steps = []
    real_step = optimizer.step

    def step(*args, **kwargs):
        out = real_step(*args, **kwargs)
        steps.append([p.detach().clone() for p in model.parameters()])
        return out

    optimizer.step = step
    train_one_epoch(model, loader, optimizer, build_loss("bce+dice"), torch.device("cpu"), ema=ema, progress=False)
    assert len(steps) == 2 and int(ema.n_averaged) == 2
    # The first update copies the weights, each later one moves 1 - decay of the way to them.
    expected = [0.75 * first + 0.25 * second for first, second in zip(*steps, strict=True)]
    for averaged, want in zip(ema.module.parameters(), expected, strict=True):
        torch.testing.assert_close(averaged, want)
    assert not torch.equal(_flat(ema.module), _flat(model))


def test_a_run_with_ema_validates_and_keeps_the_average(tmp_path, monkeypatch, tiny_config):
    seen = []

    def evaluate(model, loader, device, loss_fn=None, **kwargs):
        seen.append(_flat(model))
        return {"loss": 0.5, "dice": 0.5, "iou": 0.3, "count": len(loader.dataset)}

    monkeypatch.setattr(engine, "evaluate", evaluate)
    result = fit(tiny_config(tmp_path, ema_decay=0.5), progress=False, log=None)
    best, last = load_checkpoint(result.best_checkpoint), load_checkpoint(result.last_checkpoint)
    # The checkpoints' model_state is the average: what validation saw and fit returns ...
    torch.testing.assert_close(_flat(result.model), seen[-1])
    assert torch.equal(torch.cat([v.flatten().float() for v in last["model_state"].values()]), seen[-1])
    assert best["epoch"] == 1 and torch.equal(torch.cat([v.flatten().float() for v in best["model_state"].values()]),
                                             seen[0])
    # ... and the resume point also holds the weights as trained, which differ from it.
    trained = torch.cat([v.flatten().float() for v in last["training_model_state"].values()])
    assert last["ema_updates"] == 4 and not torch.equal(trained, seen[-1])


def test_a_run_with_ema_resumes_exactly_like_an_uninterrupted_one(tmp_path, tiny_config):
    full = fit(tiny_config(tmp_path / "full", epochs=3, ema_decay=0.5), progress=False, log=None)

    class Interrupt(Exception):
        pass

    def stop_after_epoch_2(line: str) -> None:
        if line.startswith("epoch   2/"):
            raise Interrupt

    config = tiny_config(tmp_path / "killed", epochs=3, ema_decay=0.5)
    with pytest.raises(Interrupt):
        fit(config, progress=False, log=stop_after_epoch_2)
    resumed = fit(config, resume=True, progress=False, log=None)
    want, got = load_checkpoint(full.last_checkpoint), load_checkpoint(resumed.last_checkpoint)
    for key in ("model_state", "training_model_state"):
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=1e-6)
    assert got["ema_updates"] == want["ema_updates"] == 6


def test_ema_decay_is_checked():
    for bad in (0.0, 1.0, 1.5, -0.1, True):
        with pytest.raises(ValueError, match="ema_decay"):
            TrainConfig(ema_decay=bad)
    assert TrainConfig(ema_decay=0.98).ema_decay == 0.98
