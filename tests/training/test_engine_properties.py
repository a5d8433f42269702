"""What the training step, the schedule, evaluation and flip TTA must do, on tiny models and batches.

Written from mutation testing (``make mutation``, tests/README.md). Flip TTA is checked against
models that are *not* left-right symmetric, where averaging the mirrored prediction without
flipping it back gives a different answer; the schedule against the rates it promises, step by
step and in a run's history.
"""
import math

import pytest
import torch
from torch import nn

from petlib.metrics import dice_per_image, iou_per_image
from petlib.models import build_model
from petlib.training.config import TrainConfig
from petlib.training.engine import evaluate, fit, predict_logits, train_one_epoch
from petlib.training.optim import build_optimizer, build_scheduler

CPU = torch.device("cpu")


class ShiftRight(nn.Module):
    """Logits = the red channel moved one pixel to the right (wrapping): not left-right symmetric."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images[:, :1].roll(1, dims=-1)


class Pointwise(nn.Module):
    """Logits from each pixel alone: mirroring the photo mirrors the logits exactly."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (2 * images[:, :1] - images[:, 1:2] + 0.5 * images[:, 2:]) * 3 - 1


def random_images(n: int = 2, height: int = 5, width: int = 7, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, height, width, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- flip TTA


def test_flip_tta_averages_the_prediction_with_the_mirrored_one_flipped_back():
    images = random_images()
    red = images[:, :1]
    # ShiftRight on the mirrored photo, mirrored back, is a shift to the left
    expected = (red.roll(1, dims=-1) + red.roll(-1, dims=-1)) / 2
    torch.testing.assert_close(predict_logits(ShiftRight(), images, tta=True), expected)
    torch.testing.assert_close(predict_logits(ShiftRight(), images, tta=False), red.roll(1, dims=-1))


def test_flip_tta_changes_nothing_for_a_model_that_mirrors_with_the_photo():
    images = random_images()
    torch.testing.assert_close(predict_logits(Pointwise(), images, tta=True), Pointwise()(images))


def test_flip_tta_of_the_mirrored_photo_is_the_mirrored_tta():
    torch.manual_seed(0)
    model = build_model("unet", base_channels=4).eval()
    images = random_images(height=16, width=16)
    with torch.no_grad():
        plain = model(images)
        mirrored_plain = model(images.flip(-1)).flip(-1)
    assert (plain - mirrored_plain).abs().max() > 1e-4  # the network is not symmetric by itself
    torch.testing.assert_close(predict_logits(model, images.flip(-1), tta=True),
                               predict_logits(model, images, tta=True).flip(-1), rtol=1e-4, atol=1e-5)


def batches(images: torch.Tensor, masks: torch.Tensor, sizes: list[int]) -> list[dict]:
    """A loader's batches (dicts as load_dataset yields them) of the given sizes."""
    out, start = [], 0
    for size in sizes:
        part = slice(start, start + size)
        trimaps = torch.where(masks[part] > 0, 1, 2).to(torch.uint8)
        out.append({"image": images[part], "mask": masks[part], "trimap": trimaps,
                    "index": torch.arange(start, start + size)})
        start += size
    return out


def test_evaluate_scores_the_flip_tta_prediction_when_asked():
    images = random_images(4, 6, 9, seed=1)
    masks = (random_images(4, 6, 9, seed=2)[:, :1] > 0.5).float()
    loader = batches(images, masks, [3, 1])
    red = images[:, :1]
    tta_logits = (red.roll(1, dims=-1) + red.roll(-1, dims=-1)) / 2 - 0.5
    plain_logits = red.roll(1, dims=-1) - 0.5

    class Model(ShiftRight):
        def forward(self, images):
            return super().forward(images) - 0.5

    for tta, logits in ((True, tta_logits), (False, plain_logits)):
        result = evaluate(Model(), loader, CPU, tta=tta, per_image=True)
        torch.testing.assert_close(result["dice_per_image"], dice_per_image(logits, masks))
        torch.testing.assert_close(result["iou_per_image"], iou_per_image(logits, masks))
        assert result["dice"] == pytest.approx(dice_per_image(logits, masks).mean().item(), rel=1e-6)
        assert result["iou"] == pytest.approx(iou_per_image(logits, masks).mean().item(), rel=1e-6)
    assert not torch.equal(dice_per_image(tta_logits, masks), dice_per_image(plain_logits, masks))


def test_evaluate_weighs_each_image_once_in_the_loss():
    # a loss that is the batch mean of each image's mean logit: the split's loss is the mean over images
    images = torch.zeros(4, 3, 2, 2)
    images[:3] = 0.25
    images[3] = 1.0
    masks = torch.ones(4, 1, 2, 2)
    result = evaluate(Pointwise(), batches(images, masks, [3, 1]), CPU, lambda logits, masks: logits.mean())
    per_image = Pointwise()(images).mean((1, 2, 3))
    assert result["loss"] == pytest.approx(per_image.mean().item(), rel=1e-6)
    assert result["count"] == 4
    assert math.isnan(evaluate(Pointwise(), batches(images, masks, [4]), CPU)["loss"])
    assert "dice_per_image" not in result


def test_evaluate_takes_uint8_batches_as_the_training_loaders_deliver_them():
    images = random_images(2, 4, 4)
    masks = (images[:, :1] > 0.5).float()
    as_uint8 = batches((images * 255).round().to(torch.uint8), masks.to(torch.uint8), [2])
    as_float = batches((images * 255).round() / 255, masks, [2])
    a = evaluate(Pointwise(), as_uint8, CPU, per_image=True)
    b = evaluate(Pointwise(), as_float, CPU, per_image=True)
    torch.testing.assert_close(a["dice_per_image"], b["dice_per_image"])
    assert a["indices"].tolist() == [0, 1]


# --------------------------------------------------------------------------- the training step


class Recorder(nn.Module):
    """A 1x1 convolution that records its mode and inputs."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 1, 1)
        self.seen: list[tuple[bool, torch.Tensor]] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.seen.append((self.training, images.detach().clone()))
        return self.conv(images)


def training_batches(n_batches: int = 3, size: int = 2) -> list[dict]:
    images = random_images(n_batches * size, 4, 4, seed=3)
    masks = (random_images(n_batches * size, 4, 4, seed=4)[:, :1] > 0.5).float()
    return batches(images, masks, [size] * n_batches)


def test_train_one_epoch_returns_the_mean_step_loss_in_train_mode():
    model = Recorder().eval()
    loader = training_batches()
    loss_fn = nn.BCEWithLogitsLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # the weights stay: the losses can be recomputed
    mean = train_one_epoch(model, loader, optimizer, loss_fn, CPU, progress=False)
    with torch.no_grad():
        expected = sum(loss_fn(model.conv(b["image"]), b["mask"]).item() for b in loader) / len(loader)
    assert mean == pytest.approx(expected, rel=1e-6)
    assert [training for training, _ in model.seen] == [True] * 3 and model.training


def test_train_one_epoch_steps_the_optimiser_and_the_schedule_once_per_batch(scheduled_lrs):
    config = TrainConfig(epochs=4, lr=1e-2, scheduler="onecycle", warmup_fraction=0.3)
    model = Recorder()
    optimizer = torch.optim.SGD(model.parameters(), lr=config.learning_rate)
    scheduler = build_scheduler(config, optimizer, steps_per_epoch=3)
    before = [p.detach().clone() for p in model.parameters()]
    train_one_epoch(model, training_batches(), optimizer, nn.BCEWithLogitsLoss(), CPU,
                    scheduler=scheduler, progress=False)
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(scheduled_lrs(config, 3)[3])  # after 3 steps


def test_train_one_epoch_clips_the_gradient_norm():
    def update_norm(grad_clip):
        model = Recorder()
        before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        train_one_epoch(model, training_batches(1), optimizer, nn.BCEWithLogitsLoss(), CPU,
                        grad_clip=grad_clip, progress=False)
        return (torch.cat([p.detach().flatten() for p in model.parameters()]) - before).norm().item()

    free = update_norm(None)
    assert free > 0.01
    assert update_norm(0.01) == pytest.approx(0.01, rel=1e-3)


def test_train_one_epoch_trains_on_the_augmented_batch():
    model = Recorder()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    seen_by_augment = []

    def augment(images, masks):
        seen_by_augment.append((images.clone(), masks.clone()))
        return images.flip(-1), masks.flip(-1)

    loader = training_batches(1)
    train_one_epoch(model, loader, optimizer, nn.BCEWithLogitsLoss(), CPU, augment=augment, progress=False)
    (images, masks), = seen_by_augment
    torch.testing.assert_close(images, loader[0]["image"])
    torch.testing.assert_close(masks, loader[0]["mask"])
    torch.testing.assert_close(model.seen[0][1], loader[0]["image"].flip(-1))


# --------------------------------------------------------------------------- optimiser and schedule


def test_adamw_decays_the_weights_only():
    linear = nn.Linear(2, 3)
    assert [p.ndim for p in build_optimizer(TrainConfig(optimizer="adamw"), linear).param_groups[0]["params"]] == [2]
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    config = TrainConfig(optimizer="adamw", lr=2e-3, weight_decay=0.05)
    optimizer = build_optimizer(config, model)
    decay, no_decay = optimizer.param_groups
    assert [p.ndim for p in decay["params"]] == [4] and decay["weight_decay"] == 0.05
    assert sorted(p.ndim for p in no_decay["params"]) == [1, 1, 1] and no_decay["weight_decay"] == 0.0
    assert decay["lr"] == no_decay["lr"] == 2e-3
    assert isinstance(optimizer, torch.optim.AdamW)


@pytest.mark.parametrize("name, kind", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)])
def test_the_optimiser_takes_the_configs_rate_and_decay_and_fuses_on_request(name, kind):
    model = nn.Conv2d(3, 1, 1)
    config = TrainConfig(optimizer=name, lr=3e-4, weight_decay=0.02)
    optimizer = build_optimizer(config, model)
    assert type(optimizer) is kind
    assert optimizer.param_groups[0]["lr"] == 3e-4 and optimizer.param_groups[0]["weight_decay"] == 0.02
    assert not optimizer.param_groups[0]["fused"]
    assert build_optimizer(config, model, fused=True).param_groups[0]["fused"]


def test_onecycle_starts_at_a_25th_peaks_after_the_warm_up_and_ends_at_a_25th_of_a_10000th(scheduled_lrs):
    config = TrainConfig(epochs=10, lr=1e-3, scheduler="onecycle", warmup_fraction=0.3, warmup_epochs=1)
    lrs = scheduled_lrs(config, 10)  # 100 steps, warm-up 30 of them
    assert lrs[0] == pytest.approx(1e-3 / 25)
    assert lrs.index(max(lrs)) == 29 and max(lrs) == pytest.approx(1e-3)
    assert lrs[-1] == pytest.approx(1e-3 / 25 / 1e4, rel=1e-6, abs=0)
    # warmup_epochs longer than the fraction: 4 of 10 epochs
    longer = scheduled_lrs(TrainConfig(epochs=10, lr=1e-3, scheduler="onecycle", warmup_fraction=0.1,
                                       warmup_epochs=4), 10)
    assert longer.index(max(longer)) == 39
    # never more than half the run
    half = scheduled_lrs(TrainConfig(epochs=2, lr=1e-3, scheduler="onecycle", warmup_epochs=2), 10)
    assert half.index(max(half)) == 9
    # a one-epoch run: warmup_epochs is a fraction of it
    one = scheduled_lrs(TrainConfig(epochs=1, lr=1e-3, scheduler="onecycle", warmup_fraction=0.1,
                                    warmup_epochs=0.4), 10)
    assert one.index(max(one)) == 3


def test_onecycle_plans_a_short_run_of_at_least_four_steps(scheduled_lrs):
    lrs = scheduled_lrs(TrainConfig(epochs=1, lr=1e-3, scheduler="onecycle", warmup_fraction=0.3), 2)
    assert len(lrs) == 2 and all(0 < lr <= 1e-3 for lr in lrs)
    four = scheduled_lrs(TrainConfig(epochs=2, lr=1e-3, scheduler="onecycle", warmup_fraction=0.5), 2)
    assert four[-1] == pytest.approx(1e-3 / 25 / 1e4)  # four steps planned, four taken: it ends at the floor


def test_cosine_warms_up_linearly_then_decays_to_min_lr(scheduled_lrs):
    config = TrainConfig(epochs=5, lr=1e-3, scheduler="cosine", warmup_epochs=1, min_lr=1e-5)
    lrs = scheduled_lrs(config, 4)  # warm-up 4 steps, then 16 of cosine
    assert lrs[:4] == pytest.approx([0.25e-3, 0.5e-3, 0.75e-3, 1e-3])
    assert lrs[4] == pytest.approx(1e-3)  # the decay starts at the peak
    floor = 1e-5 / 1e-3
    assert lrs[12] == pytest.approx(1e-3 * (floor + (1 - floor) * 0.5))  # half way down
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-3)
    scheduler = build_scheduler(config, optimizer, 4)
    for _ in range(40):  # past the end it stays at the floor
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)


def test_no_schedule_and_unknown_names():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-3)
    assert build_scheduler(TrainConfig(scheduler="none"), optimizer, 10) is None
    config = TrainConfig()
    object.__setattr__(config, "scheduler", "linear")
    with pytest.raises(ValueError, match="linear"):
        build_scheduler(config, optimizer, 10)
    object.__setattr__(config, "optimizer", "sgd")
    with pytest.raises(ValueError, match="sgd"):
        build_optimizer(config, nn.Conv2d(1, 1, 1))


# --------------------------------------------------------------------------- a run's history


@pytest.mark.parametrize("scheduler, optimizer, save_last", [("onecycle", "adamw", False), ("cosine", "adam", True)])
def test_the_learning_rate_in_the_history_follows_the_schedule(tmp_path, tiny_config, scheduled_lrs, scheduler,
                                                               optimizer, save_last):
    # 8 train images in batches of 4: 2 steps an epoch; the history holds each epoch's first rate
    config = tiny_config(tmp_path, epochs=3, scheduler=scheduler, optimizer=optimizer, lr=1e-2, warmup_epochs=1,
                         validate=False, augment=False, save_last=save_last, cache=True, num_workers=0)
    result = fit(config, progress=False, log=None)
    assert (result.last_checkpoint is not None and result.last_checkpoint.is_file()) == save_last
    lrs = scheduled_lrs(config, steps_per_epoch=2)
    assert [row["lr"] for row in result.history] == pytest.approx([lrs[0], lrs[2], lrs[4]])
    assert len({row["lr"] for row in result.history}) == 3  # it moved


# --------------------------------------------------------------------------- what fit hands the loops


def test_fit_trains_and_validates_with_the_configs_settings(tmp_path, tiny_config, monkeypatch):
    from petlib.training import engine

    calls = {"train": [], "evaluate": []}
    real_train, real_evaluate = engine.train_one_epoch, engine.evaluate

    def train_spy(*args, **kwargs):
        calls["train"].append((args, kwargs))
        return real_train(*args, **kwargs)

    def evaluate_spy(*args, **kwargs):
        calls["evaluate"].append((args, kwargs))
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(engine, "train_one_epoch", train_spy)
    monkeypatch.setattr(engine, "evaluate", evaluate_spy)
    monkeypatch.setattr(torch, "compile", lambda model, mode: model)  # what a compiled run hands the loops
    config = tiny_config(tmp_path, epochs=1, grad_clip=0.5, tta=True, ignore_border=True, augment=True, rotation=3.0,
                         channels_last="on", amp="on", compile=True, save_last=False, cache=True, num_workers=0)
    lines, rows = [], []
    result = fit(config, progress=False, log=lines.append, on_epoch=rows.append)
    (args, kwargs), = calls["train"]
    model, loader, _optimizer, loss_fn, device = args
    assert model is result.model and device == CPU and len(loader.dataset) == 8
    assert kwargs["augment"] == config.augmentation() and kwargs["grad_clip"] == 0.5
    assert kwargs["ignore_border"] is True and kwargs["channels_last"] is True and kwargs["amp_dtype"] == torch.bfloat16
    assert kwargs["scheduler"] is not None and kwargs["scaler"] is not None and not kwargs["scaler"].is_enabled()
    assert kwargs["progress"] is False and kwargs["description"] == "epoch 1/1"
    (args, kwargs), = calls["evaluate"]
    assert args[0] is result.model and args[2] == CPU and args[3] is loss_fn and len(args[1].dataset) == 8
    assert kwargs == {"amp_dtype": torch.bfloat16, "channels_last": True, "tta": True, "pad_to": 8}
    row, = result.history
    assert rows == [row] and {"val_loss", "val_dice", "val_iou", "train_loss", "lr", "epoch"} <= set(row)
    assert not math.isnan(row["val_loss"]) and not math.isnan(row["val_dice"]) and 0 < row["seconds"] < 600
    # what the run wrote and returns
    assert result.best_dice == row["val_dice"] and result.last_checkpoint is None
    assert result.best_checkpoint.name == "unet.pth" and result.best_checkpoint.is_file()
    assert result.history_file.is_file() and result.card_file is not None and result.card_file.is_file()
    assert (result.curves_file is not None) != (result.curves_skipped is not None)
    assert lines[0].startswith("training unet on cpu") and lines[-1].startswith("epoch   1/1 | train loss")
    from petlib.training.checkpoint import load_checkpoint

    assert load_checkpoint(result.best_checkpoint)["config"]["lr"] == config.learning_rate  # the rate used, not None


def test_resuming_needs_the_last_checkpoint(tmp_path, tiny_config):
    with pytest.raises(ValueError, match="save_last"):
        fit(tiny_config(tmp_path, save_last=False), resume=True, progress=False, log=None)


def test_the_start_and_epoch_lines_say_what_the_run_does():
    from petlib.training.device import SpeedOptions
    from petlib.training.engine import _epoch_message, _start_message

    row = {"epoch": 3, "train_loss": 0.5, "val_loss": 0.25, "val_dice": 0.75, "val_iou": 0.6, "lr": 1e-3,
           "seconds": 2.0}
    assert _epoch_message(row, 10, True) == ("epoch   3/10 | train loss 0.5000 | val loss 0.2500 | val Dice 0.7500 "
                                             "| lr 1.00e-03 | 2.0s *")
    assert _epoch_message(row, 10, False).endswith("| lr 1.00e-03 | 2.0s")
    unvalidated = {**row, "val_loss": math.nan, "val_dice": math.nan}
    assert _epoch_message(unvalidated, 10, True) == "epoch   3/10 | train loss 0.5000 | lr 1.00e-03 | 2.0s"

    class Loader:
        def __init__(self, n):
            self.dataset = range(n)

    options = SpeedOptions(None, False, True, False, reason="")
    config = TrainConfig(model="unet", image_size=64, batch_size=4)
    both = _start_message(config, CPU, {"train": Loader(9), "valid": Loader(3)}, options)
    assert "9 train / 3 valid images at 64px" in both and "compile=False" in both and "speed options" not in both
    alone = _start_message(TrainConfig(compile=True, compile_mode="max-autotune"), CPU, {"train": Loader(9)},
                           SpeedOptions(None, False, True, False, reason="bf16 is slow here"))
    assert "9 train images (every trainval image" in alone and "compile=max-autotune" in alone
    assert alone.endswith("\n  speed options: bf16 is slow here")


def test_set_epoch_reaches_a_distributed_sampler_and_leaves_an_ordered_one_alone():
    from petlib.training.engine import _set_epoch

    data = list(range(10))
    sampler = torch.utils.data.DistributedSampler(data, num_replicas=2, rank=0)  # no process group needed
    distributed = torch.utils.data.DataLoader(data, sampler=sampler)
    _set_epoch(distributed, seed=0, epoch=7)
    assert distributed.sampler.epoch == 7
    _set_epoch(torch.utils.data.DataLoader(data), seed=0, epoch=7)  # in order: nothing to reseed


def test_build_for_a_resumed_run_without_pretrained_weights():
    from petlib.training.engine import _build

    training = _build(TrainConfig(model="unet", model_kwargs={"base_channels": 4}, amp="off"), CPU, 3, resuming=True)
    assert training.model.inc[0].out_channels == 4


def test_each_epochs_shuffle_depends_on_the_seed_and_the_epoch_only(tmp_path, tiny_config):
    from petlib.training.engine import _set_epoch, make_loaders

    config = tiny_config(tmp_path, subset=12, batch_size=12, cache=True, num_workers=0)
    loader = make_loaders(config, CPU, modes=("train",))["train"]
    order = lambda: next(iter(loader))["index"].tolist()
    _set_epoch(loader, config.seed, 1)
    first = order()
    _set_epoch(loader, config.seed, 2)
    second = order()
    torch.manual_seed(123)  # the global generator plays no part
    _set_epoch(loader, config.seed, 1)
    assert order() == first and second != first


def test_images_format_keeps_channels_last_batches_channels_last():
    from petlib.training.device import images_format

    images = torch.rand(2, 3, 4, 4)
    assert images_format(images) == torch.contiguous_format
    assert images_format(images.contiguous(memory_format=torch.channels_last)) == torch.channels_last
    assert images_format(torch.rand(2, 3, 1, 1)) == torch.contiguous_format  # both at once: plain


def test_evaluation_batches_are_twice_the_training_batch_unless_set():
    from petlib.training.engine import eval_batch_size

    assert eval_batch_size(TrainConfig(batch_size=6)) == 12
    assert eval_batch_size(TrainConfig(batch_size=6, eval_batch_size=5)) == 5


def test_build_makes_what_the_config_asks_for_and_a_resumed_run_loads_no_pretrained_weights():
    from petlib.training.engine import _build

    config = TrainConfig(model="unet", model_kwargs={"base_channels": 4, "pretrained": True}, channels_last="on",
                         fused_optimizer="on", amp="off", augment=True, rotation=2.0)
    training = _build(config, CPU, steps_per_epoch=3, resuming=True)  # a UNet refuses `pretrained`
    assert config.model_kwargs["pretrained"] is True  # the config itself is left as it was
    assert training.model.inc[0].out_channels == 4
    weight = next(p for p in training.model.parameters() if p.ndim == 4)
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    assert training.optimizer.param_groups[0]["fused"]
    assert training.augment == config.augmentation() and not training.scaler.is_enabled()
    assert training.loss_fn.__class__.__name__ == "BCEDiceLoss" and training.scheduler is not None


def test_wrap_compiles_both_models_and_pads_evaluation_batches(monkeypatch):
    from petlib.training import engine

    compiled = []
    monkeypatch.setattr(torch, "compile", lambda model, mode: compiled.append((model, mode)) or ("compiled", model))
    wrapped = []
    monkeypatch.setattr(nn.parallel, "DistributedDataParallel",
                        lambda model, device_ids: wrapped.append((model, device_ids)) or ("ddp", model))
    config = TrainConfig(model="unet", model_kwargs={"base_channels": 4}, amp="off", compile=True,
                         compile_mode="max-autotune")
    training = engine._build(config, CPU, steps_per_epoch=1, resuming=False)
    engine._wrap(training, config, torch.device("cuda", 1), distributed=True, eval_batch=6)
    model = training.model
    assert wrapped == [(model, [1])]
    assert compiled == [(("ddp", model), "max-autotune"), (model, "max-autotune")]
    assert training.train_model == ("compiled", ("ddp", model)) and training.eval_model == ("compiled", model)
    assert training.pad_to == 6
    wrapped.clear()
    engine._wrap(training, TrainConfig(compile=False), CPU, distributed=True, eval_batch=6)
    assert wrapped == [(model, None)] and training.eval_model is model


# --------------------------------------------------------------------------- the step's details


def test_to_device_turns_uint8_batches_into_0_1_floats_and_keeps_channels_last_on_request():
    from petlib.training.engine import to_device

    pixels = torch.arange(0, 256, dtype=torch.float32).view(1, 1, 16, 16).expand(1, 3, 16, 16)
    batch = {"image": pixels.to(torch.uint8), "mask": (pixels[:, :1] > 100).to(torch.uint8)}
    images, masks = to_device(batch, CPU, channels_last=False)
    torch.testing.assert_close(images, pixels / 255)
    assert images.max() == 1.0 and masks.dtype == torch.float32 and set(masks.unique().tolist()) == {0.0, 1.0}
    images, _ = to_device(batch, CPU, channels_last=True)
    assert images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous()
    floats = {"image": pixels / 255, "mask": masks}
    assert torch.equal(to_device(floats, CPU, channels_last=False)[0], pixels / 255)


def test_a_one_batch_epoch_returns_that_batchs_loss():
    model = Recorder()
    loader = training_batches(1)
    loss_fn = nn.BCEWithLogitsLoss()
    with torch.no_grad():
        expected = loss_fn(model.conv(loader[0]["image"]), loader[0]["mask"]).item()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    assert train_one_epoch(model, loader, optimizer, loss_fn, CPU, progress=False) == pytest.approx(expected, rel=1e-6)
    assert model.seen[0][1].is_contiguous()  # no channels_last unless asked


def test_train_one_epoch_runs_the_model_under_autocast_when_given_a_dtype():
    model = Recorder()
    dtypes = []
    model.conv.register_forward_hook(lambda module, args, output: dtypes.append(output.dtype))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    train_one_epoch(model, training_batches(1), optimizer, nn.BCEWithLogitsLoss(), CPU, amp_dtype=torch.bfloat16,
                    progress=False)
    train_one_epoch(model, training_batches(1), optimizer, nn.BCEWithLogitsLoss(), CPU, progress=False)
    assert dtypes == [torch.bfloat16, torch.float32]


def test_train_one_epoch_shows_a_progress_bar_unless_told_not_to(capsys):
    model = Recorder()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    train_one_epoch(model, training_batches(1), optimizer, nn.BCEWithLogitsLoss(), CPU)
    assert "train" in capsys.readouterr().err
    train_one_epoch(model, training_batches(1), optimizer, nn.BCEWithLogitsLoss(), CPU, progress=False)
    assert capsys.readouterr().err == ""


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_a_runs_loaders_follow_its_config(tmp_path, tiny_config):
    from petlib.training.engine import make_loaders

    config = tiny_config(tmp_path, subset=10, batch_size=4, image_size=12, cache=True, num_workers=None, seed=3)
    loaders = make_loaders(config, CPU)
    assert set(loaders) == {"train", "valid"}
    train, valid = loaders["train"], loaders["valid"]
    assert (train.batch_size, valid.batch_size) == (4, 8) and train.drop_last and not valid.drop_last
    assert train.num_workers == valid.num_workers == 0 and not train.pin_memory
    assert train.dataset.mode == "train" and valid.dataset.mode == "valid" and len(train.dataset) == 10
    assert train.dataset.image_size == (12, 12)
    assert train.dataset.cache_path is None and train.dataset._cache is not None  # cached in memory
    assert isinstance(train.sampler, torch.utils.data.RandomSampler) and train.sampler.generator is not None
    assert isinstance(valid.sampler, torch.utils.data.SequentialSampler)
    batch = next(iter(make_loaders(config, CPU, modes=("valid",), dtype=torch.uint8)["valid"]))
    assert batch["image"].dtype == torch.uint8 and batch["image"].shape[-2:] == (12, 12)
    everything = make_loaders(tiny_config(tmp_path, validate=False, num_workers=0), CPU)
    assert set(everything) == {"train"} and everything["train"].dataset.mode == "trainval"
    assert isinstance(everything["train"].sampler, torch.utils.data.RandomSampler)  # trainval shuffles too
    uncached = make_loaders(tiny_config(tmp_path, cache=False, num_workers=None), torch.device("cuda"),
                            modes=("valid",))
    assert uncached["valid"].num_workers == 4 and uncached["valid"].pin_memory
    on_cpu = make_loaders(tiny_config(tmp_path, cache=False, num_workers=None), CPU, modes=("valid",))
    assert on_cpu["valid"].num_workers == 0
    assert make_loaders(tiny_config(tmp_path, num_workers=1), CPU, modes=("valid",))["valid"].num_workers == 1
