"""Training engine: real images train, checkpoints round-trip, interrupted runs resume."""
import copy
import dataclasses
import math

import pytest
import torch

from petlib.data import SAMPLE_ROOT, OxfordPetSegmentation
from petlib.losses import build_loss
from petlib.metrics import dice_per_image
from petlib.models import build_model
from petlib.training import engine
from petlib.training.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from petlib.training.config import RECIPES, TrainConfig, recipe
from petlib.training.engine import evaluate, fit
from petlib.training.rundir import read_history

# The engine's own runs: a ResNet34-UNet (BatchNorm in a real encoder) on 16 images at 32 px,
# the decode-once cache in memory, in <tmp_path>/models.
ENGINE_RUN = dict(model="resnet34_unet", model_kwargs={}, image_size=32, subset=16, lr=1e-3, cache=True, seed=0,
                  num_workers=0)


@pytest.fixture(scope="session")
def engine_config(tiny_config):
    """``engine_config(tmp_path, **overrides)``: conftest's tiny run as :data:`ENGINE_RUN`."""
    return lambda tmp_path, **overrides: tiny_config(tmp_path / "models", **{**ENGINE_RUN, **overrides})


@pytest.mark.slow  # a ResNet34-UNet trained for 8 steps at 64 px
def test_a_few_steps_on_four_real_images_lower_the_loss():
    torch.manual_seed(0)
    dataset = OxfordPetSegmentation(SAMPLE_ROOT, "train", image_size=64)
    batch = [dataset[i] for i in range(4)]
    images = torch.stack([b["image"] for b in batch])  # (4, 3, 64, 64)
    masks = torch.stack([b["mask"] for b in batch])  # (4, 1, 64, 64)
    model = build_model("resnet34_unet")
    loss_fn = build_loss("bce+dice")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss = loss_fn(model(images), masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


@pytest.mark.slow  # end-to-end training: a ResNet34-UNet for 2 epochs
def test_fit_writes_best_last_history_and_config(tmp_path, engine_config):
    config = engine_config(tmp_path)
    result = fit(config, progress=False, log=None)
    assert result.best_checkpoint.is_file() and result.last_checkpoint.is_file()
    assert (tmp_path / "models" / "resnet34_unet_config.json").is_file()
    history = read_history(result.history_file)
    assert [row["epoch"] for row in history] == [1, 2]
    assert set(history[0]) >= {"train_loss", "val_loss", "val_dice", "val_iou", "lr", "seconds"}
    best = load_checkpoint(result.best_checkpoint)
    dices = [row["val_dice"] for row in history]
    assert best["epoch"] == 1 + dices.index(max(dices))  # the first of the best
    assert best["best_dice"] == pytest.approx(max(dices)) == result.best_dice
    last = load_checkpoint(result.last_checkpoint)
    assert last["epoch"] == 2 and "optimizer_state" in last and "scheduler_state" in last
    # No stray temporary files: every write was a rename.
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow  # end-to-end training
def test_fit_without_save_last_writes_no_resume_point(tmp_path, engine_config):
    out = tmp_path / "models"
    out.mkdir()
    (out / "resnet34_unet_last.pth").write_bytes(b"an earlier run's")  # would be resumed by mistake
    result = fit(engine_config(tmp_path, epochs=1, save_last=False), progress=False, log=None)
    assert result.last_checkpoint is None and result.best_checkpoint.is_file()
    assert sorted(p.name for p in out.iterdir()) == [
        "resnet34_unet.pth", "resnet34_unet_card.json", "resnet34_unet_card.md", "resnet34_unet_config.json",
        "resnet34_unet_curves.png", "resnet34_unet_history.csv"]
    with pytest.raises(ValueError, match="save_last"):
        fit(engine_config(tmp_path, save_last=False), resume=True, progress=False, log=None)


class _Interrupt(Exception):
    pass


def _interrupt_after_epoch(n: int):
    """A log callback that kills the run right after epoch ``n`` was saved (like Ctrl-C)."""

    def log(line: str) -> None:
        if line.startswith(f"epoch {n:3d}/"):
            raise _Interrupt(line)

    return log


def _weights(path):
    return torch.cat([v.flatten().float() for v in load_checkpoint(path)["model_state"].values()])


@pytest.mark.slow  # end-to-end training: two 3-epoch runs
def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, engine_config):
    full = fit(engine_config(tmp_path / "full", epochs=3), progress=False, log=None)

    config = engine_config(tmp_path / "killed", epochs=3)
    with pytest.raises(_Interrupt):
        fit(config, progress=False, log=_interrupt_after_epoch(2))
    assert load_checkpoint(tmp_path / "killed" / "models" / "resnet34_unet_last.pth")["epoch"] == 2
    resumed = fit(config, resume=True, progress=False, log=None)

    assert [row["epoch"] for row in resumed.history] == [1, 2, 3]
    # Same schedule, shuffles and augmentations: the same weights as the uninterrupted run.
    assert torch.allclose(_weights(resumed.last_checkpoint), _weights(full.last_checkpoint), atol=1e-6)
    assert [r["lr"] for r in resumed.history] == pytest.approx([r["lr"] for r in full.history])


def scripted_evaluate(dices: list[float], seen: list[dict[str, torch.Tensor]]):
    """An ``evaluate`` for :func:`fit` that reports ``dices[k]`` as the k-th validation Dice and
    keeps a copy of the weights it was shown, so that a test knows each epoch's weights."""

    def evaluate(model, loader, device, loss_fn=None, **kwargs):
        seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        dice = dices[len(seen) - 1]
        return {"loss": 1 - dice, "dice": dice, "iou": dice / (2 - dice), "count": len(loader.dataset)}

    return evaluate


def stub_config(engine_config, tmp_path, **overrides) -> TrainConfig:
    """A 4-channel UNet on 4 images at 16 px: real training steps, validation scripted."""
    return engine_config(tmp_path, model="unet", model_kwargs={"base_channels": 4}, image_size=16, subset=4,
                       batch_size=2, **overrides)


def test_the_best_checkpoint_is_the_best_epoch_and_a_tie_keeps_the_earlier(tmp_path, monkeypatch, engine_config):
    dices, seen, lines = [0.2, 0.6, 0.4, 0.6], [], []
    monkeypatch.setattr(engine, "evaluate", scripted_evaluate(dices, seen))
    result = fit(stub_config(engine_config, tmp_path, epochs=4), progress=False, log=lines.append)
    assert [row["val_dice"] for row in result.history] == dices
    best = load_checkpoint(result.best_checkpoint)
    assert best["epoch"] == 2 and best["best_dice"] == result.best_dice == 0.6
    # Epoch 2's weights, not those of epoch 4, which tied with it.
    assert not torch.equal(seen[1]["outc.weight"], seen[3]["outc.weight"])
    torch.testing.assert_close(best["model_state"], seen[1], rtol=0, atol=0)
    assert [line.endswith(" *") for line in lines if line.startswith("epoch")] == [True, True, False, False]


def test_resume_keeps_the_best_score_of_the_interrupted_run(tmp_path, monkeypatch, engine_config):
    # Epoch 2 (0.7) is the best; after resuming, epoch 3 (0.5) must not replace it.
    seen = []
    monkeypatch.setattr(engine, "evaluate", scripted_evaluate([0.3, 0.7, 0.5], seen))
    config = stub_config(engine_config, tmp_path, epochs=3)
    with pytest.raises(_Interrupt):
        fit(config, progress=False, log=_interrupt_after_epoch(2))
    result = fit(config, resume=True, progress=False, log=None)
    assert len(seen) == 3 and [row["val_dice"] for row in result.history] == [0.3, 0.7, 0.5]
    assert result.best_dice == 0.7
    best = load_checkpoint(result.best_checkpoint)
    assert best["epoch"] == 2 and best["best_dice"] == 0.7
    torch.testing.assert_close(best["model_state"], seen[1], rtol=0, atol=0)
    assert load_checkpoint(result.last_checkpoint)["best_dice"] == 0.7


@pytest.mark.slow  # end-to-end training
def test_resume_without_a_checkpoint_starts_fresh(tmp_path, engine_config):
    result = fit(engine_config(tmp_path, epochs=1), resume=True, progress=False, log=None)
    assert len(result.history) == 1


def test_checkpoint_round_trip_and_wrong_architecture(tmp_path):
    model = build_model("resnet34_unet").eval()
    path = save_checkpoint(
        {"model_name": "resnet34_unet", "model_kwargs": {}, "model_state": model.state_dict(),
         "config": TrainConfig().to_dict(), "history": [], "epoch": 0}, tmp_path / "m.pth")
    loaded, checkpoint = load_model(path)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert checkpoint["format"] == 1
    with pytest.raises(CheckpointError, match="holds a 'resnet34_unet' model, not 'unet'"):
        load_model(path, expected_model="unet")
    # Weights of one architecture under the other's name: a clear error, not a crash.
    bad = torch.load(path, weights_only=True)
    bad["model_name"] = "unet"
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="do not fit UNet"):
        load_model(tmp_path / "bad.pth")


def test_bad_checkpoint_files_are_named(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth"):
        load_checkpoint(tmp_path / "junk.pth")
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        load_checkpoint(tmp_path / "nothere.pth")
    torch.save({"weights": 1}, tmp_path / "foreign.pth")
    with pytest.raises(CheckpointError, match="not a petlib checkpoint"):
        load_checkpoint(tmp_path / "foreign.pth")


def test_interrupted_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint({"model_name": "unet", "model_state": {}, "epoch": 1}, tmp_path / "c.pth")

    def broken_save(obj, f):
        f.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"model_name": "unet", "model_state": {}, "epoch": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pth"]


class BrightIsPet(torch.nn.Module):
    """A stub network with known logits: pet wherever the image is brighter than mid-grey.

    On real photos it scores a different Dice on every image, neither 0 nor 1, unlike an
    untrained network, which often predicts all background (Dice 0 everywhere)."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = torch.nn.BatchNorm2d(1)  # something whose behaviour depends on the mode

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return 40 * (images.mean(1, keepdim=True) - 0.5)


def test_evaluate_restores_mode_and_counts_every_image(tmp_path):
    dataset = OxfordPetSegmentation(SAMPLE_ROOT, "test", image_size=32, subset=8)
    loader = torch.utils.data.DataLoader(dataset, batch_size=3)  # 8 images: 3 + 3 + 2
    model = BrightIsPet().train()
    result = evaluate(model, loader, torch.device("cpu"), build_loss("bce"), per_image=True)
    assert model.training
    assert result["count"] == len(dataset) == len(result["dice_per_image"])
    assert result["indices"].tolist() == list(range(len(dataset)))
    images = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
    masks = torch.stack([dataset[i]["mask"] for i in range(len(dataset))])
    expected = dice_per_image(BrightIsPet()(images), masks)  # the whole split at once
    assert expected.std() > 0.05  # the batches' means differ, so a mean of them would show
    torch.testing.assert_close(result["dice_per_image"], expected)
    assert result["dice"] == pytest.approx(expected.mean().item())


@pytest.mark.parametrize("name", ["onecycle", "cosine"])
def test_schedules_warm_up_then_decay(name, scheduled_lrs):
    config = TrainConfig(epochs=10, lr=1e-3, scheduler=name, warmup_epochs=1, min_lr=1e-5)
    lrs = scheduled_lrs(config)  # 10 epochs of 10 steps
    peak = lrs.index(max(lrs))
    assert 0 < peak < 60 and max(lrs) == pytest.approx(1e-3, rel=0.05)
    assert lrs[0] < 0.2e-3 and lrs[-1] < 0.05e-3


def test_recipes_and_config_json_round_trip(tmp_path):
    assert set(RECIPES) == {"lab", "smp", "petlib"}
    lab = recipe("lab", epochs=3)
    assert (lab.loss, lab.optimizer, lab.lr, lab.augment, lab.epochs) == ("bce", "adam", 5e-5, False, 3)
    with pytest.raises(ValueError, match="lab, smp, petlib"):
        recipe("mine")
    path = tmp_path / "c.json"
    lab.save_json(path)
    import json

    assert TrainConfig.from_dict(json.loads(path.read_text())) == lab


@pytest.mark.parametrize("optimizer", ["adamw", "adam"])
def test_fused_optimizer_updates_like_the_default_one(optimizer):
    # The fused update (petlib's default on CUDA and CPU) is a speed option only: the same
    # step as torch's default implementation, up to float rounding.
    from petlib.training.optim import build_optimizer

    config = TrainConfig(model="unet", optimizer=optimizer, lr=1e-2, weight_decay=1e-2)
    torch.manual_seed(0)
    # No bias before the BatchNorm: its gradient would be rounding noise, whose sign Adam's
    # normalisation turns into a full step either way in both implementations.
    models = [torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                  torch.nn.Conv2d(4, 1, 1))]
    models.append(copy.deepcopy(models[0]))
    optimizers = [build_optimizer(config, models[0], fused=False), build_optimizer(config, models[1], fused=True)]
    assert optimizers[1].defaults["fused"] and not optimizers[0].defaults["fused"]
    images = torch.rand(2, 3, 8, 8)
    for _ in range(3):
        for model, opt in zip(models, optimizers):
            opt.zero_grad(set_to_none=True)
            model(images).square().mean().backward()
            opt.step()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("field, value", [("amp", "yes"), ("channels_last", True), ("fused_optimizer", "of"),
                                          ("compile_mode", "fast")])
def test_misspelt_speed_options_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


@pytest.mark.slow  # torch.compile traces the ResNet34-UNet, then trains it
def test_fit_with_compile_trains_and_saves_plain_weights(tmp_path, monkeypatch, engine_config):
    # torch.compile with the mode asked for wraps the training model only; the checkpoint
    # holds the plain model's weights (no "_orig_mod." prefix), loadable without compiling.
    # The "aot_eager" backend traces like inductor without its minutes of C++ compiling.
    calls = []
    real_compile = torch.compile

    def compile_for_test(model, mode=None, **kwargs):
        calls.append(mode)
        return real_compile(model, backend="aot_eager")

    monkeypatch.setattr(torch, "compile", compile_for_test)
    config = dataclasses.replace(engine_config(tmp_path), compile=True, compile_mode="reduce-overhead", epochs=1)
    result = fit(config, progress=False, log=None)
    assert calls == ["reduce-overhead", "reduce-overhead"]  # the training model and the evaluation one
    state = load_checkpoint(result.best_checkpoint)["model_state"]
    assert not [key for key in state if key.startswith("_orig_mod.")]
    model, _ = load_model(result.best_checkpoint)
    torch.testing.assert_close(dict(model.state_dict()), {k: v for k, v in state.items()})


def test_padded_evaluation_scores_exactly_like_the_unpadded_one():
    # 7 images in batches of 3: the last batch has 1 image, padded to 3 with blanks.
    torch.manual_seed(0)
    model = build_model("unet", base_channels=4).eval()
    dataset = OxfordPetSegmentation(SAMPLE_ROOT, "valid", image_size=32, subset=7)
    loader = torch.utils.data.DataLoader(dataset, batch_size=3)
    plain = evaluate(model, loader, torch.device("cpu"), build_loss("bce+dice"), per_image=True)
    padded = evaluate(model, loader, torch.device("cpu"), build_loss("bce+dice"), per_image=True, pad_to=3)
    assert padded["count"] == plain["count"] == 7
    torch.testing.assert_close(padded["dice_per_image"], plain["dice_per_image"])
    for key in ("loss", "dice", "iou"):
        assert padded[key] == pytest.approx(plain[key], rel=1e-6)


def test_compiled_fit_shows_the_model_one_batch_shape(tmp_path, monkeypatch, engine_config):
    # 12 training images in batches of 5 (a ragged 2 dropped), 12 validation images in batches
    # of 5 (the last padded from 2): every forward of the compiled models has batch 5.
    shapes = {"train": set(), "eval": set()}

    class Recording(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, images):
            shapes["train" if self.model.training else "eval"].add(images.shape[0])
            return self.model(images)

    monkeypatch.setattr(torch, "compile", lambda model, mode=None, **kwargs: Recording(model))
    config = dataclasses.replace(engine_config(tmp_path), model="unet", model_kwargs={"base_channels": 4}, subset=12,
                                 compile=True, epochs=1, batch_size=5, eval_batch_size=5)
    fit(config, progress=False, log=None)
    assert shapes == {"train": {5}, "eval": {5}}


def test_without_validation_the_run_trains_on_every_trainval_image_and_keeps_the_last_epoch(tmp_path, engine_config):
    lines = []
    config = engine_config(tmp_path, validate=False, subset=None, image_size=16, model="unet",
                           model_kwargs={"base_channels": 4}, batch_size=16, epochs=2)
    loaders = engine.make_loaders(config, torch.device("cpu"))
    assert set(loaders) == {"train"}
    trainval = OxfordPetSegmentation(SAMPLE_ROOT, "trainval").entries
    assert loaders["train"].dataset.entries == trainval  # the 10 % validation images too
    assert len(trainval) == len(OxfordPetSegmentation(SAMPLE_ROOT, "train")) + len(OxfordPetSegmentation(SAMPLE_ROOT, "valid"))

    result = fit(dataclasses.replace(config, subset=16), progress=False, log=lines.append)
    assert all(math.isnan(row["val_dice"]) and math.isnan(row["val_loss"]) for row in result.history)
    assert math.isnan(result.best_dice)
    kept, last = load_checkpoint(result.best_checkpoint), load_checkpoint(result.last_checkpoint)
    assert kept["epoch"] == 2  # the last epoch, not the first "best"
    torch.testing.assert_close(kept["model_state"], last["model_state"], rtol=0, atol=0)
    assert "no validation" in lines[0] and "16 train images" in lines[0]
    assert not any("val Dice" in line for line in lines)
    card = (tmp_path / "models" / "unet_card.md").read_text()
    assert "last epoch, 2; no validation split" in card and "validation Dice" not in card


@pytest.mark.slow  # end-to-end training: two 3-epoch runs
def test_a_run_without_validation_resumes_like_an_uninterrupted_one(tmp_path, engine_config):
    full = fit(engine_config(tmp_path / "full", epochs=3, validate=False), progress=False, log=None)
    config = engine_config(tmp_path / "killed", epochs=3, validate=False)
    with pytest.raises(_Interrupt):
        fit(config, progress=False, log=_interrupt_after_epoch(2))
    resumed = fit(config, resume=True, progress=False, log=None)
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3]
    assert load_checkpoint(resumed.best_checkpoint)["epoch"] == 3
    assert torch.allclose(_weights(resumed.best_checkpoint), _weights(full.best_checkpoint), atol=1e-6)
