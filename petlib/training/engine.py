"""The training engine: one epoch of training, an evaluation pass, and ``fit``.

``fit`` is the whole recipe in one screen: build data, model, loss, optimiser
(:mod:`petlib.training.optim`) and schedule from a :class:`~petlib.training.config.TrainConfig`; for each epoch
train, validate (``config.validate``) and record a history row; :class:`~petlib.training.rundir.RunFiles`
writes the run's files: the kept checkpoint (the best by validation Dice, or without validation
the newest epoch), the last one (an interrupted run resumes from it, :mod:`petlib.training.rundir`), the
history, its curves and the kept checkpoint's model card.

The same code runs in one process or under ``torchrun`` (DistributedDataParallel):
each process trains on its shard, validation metrics are summed over all processes
before dividing, and only rank 0 writes files or shows progress bars.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from petlib import distributed as dist
from petlib.data.transforms import Augment
from petlib.losses import build_loss
from petlib.metrics import dice_per_image, iou_per_image
from petlib.models import build_model, eval_mode
from petlib.training.config import TrainConfig
from petlib.training.device import (
    SpeedOptions,
    autocast,
    images_format,
    model_format,
    pick_device,
    seed_everything,
    speed_options,
)
from petlib.training.loaders import eval_batch_size, make_loaders, to_device
from petlib.training.loaders import set_epoch as _set_epoch
from petlib.training.optim import build_ema, build_optimizer, build_scheduler
from petlib.training.rundir import ResumePoint, RunFiles, RunPaths

__all__ = ["FitResult", "evaluate", "fit", "make_loaders", "predict_logits", "to_device", "train_one_epoch"]

# --------------------------------------------------------------------------- loops


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    device: torch.device,
    *,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    augment: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None,
    scaler: torch.amp.GradScaler | None = None,
    amp_dtype: torch.dtype | None = None,
    grad_clip: float | None = None,
    channels_last: bool = False,
    ignore_border: bool = False,
    ema: torch.optim.swa_utils.AveragedModel | None = None,
    progress: bool = True,
    description: str = "train",
) -> float:
    """Train for one pass over ``loader`` and return the mean training loss.

    Each step: (1) move the batch to the device, (2) augment it there, (3) forward under
    autocast, (4) backward through ``scaler`` (which scales for fp16 only), (5) clip the
    gradient norm, (6) step the optimiser and the per-step schedule, (7) update the weights'
    moving average ``ema`` if there is one. The running loss stays on the device; it is
    read back once per epoch (and every 20 steps for the progress bar) because reading a
    GPU number forces the host to wait for the GPU. With ``ignore_border`` the loss leaves
    out the trimap's border pixels (``loss_fn(logits, masks, weight)``).
    """
    # Loss scaling keeps float16 gradients from underflowing; a disabled scaler passes everything through.
    scaler = scaler if scaler is not None else torch.amp.GradScaler(device.type, enabled=False)
    model.train()
    total = torch.zeros((), device=device)
    steps = 0
    bar = tqdm(loader, desc=description, leave=False, disable=not (progress and dist.is_main()))
    for batch in bar:
        images, masks = to_device(batch, device, channels_last)  # (N,3,S,S), (N,1,S,S)
        if ignore_border:  # a second mask plane, 1 where the pixel counts: warped with the mask
            keep = batch["trimap"].to(device, non_blocking=True) != 3
            masks = torch.cat([masks, keep.to(masks.dtype)], 1)  # (N,2,S,S)
        if augment is not None:
            images, masks = augment(images, masks)
        with autocast(device, amp_dtype):
            logits = model(images)  # (N,1,S,S)
            loss = loss_fn(logits, masks[:, :1], masks[:, 1:]) if ignore_border else loss_fn(logits, masks)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # the true gradients, for clipping
        if grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
        if scheduler is not None:
            scheduler.step()
        if ema is not None:
            ema.update_parameters(model)
        total += loss.detach()
        steps += 1
        if steps % 20 == 0 and not bar.disable:
            bar.set_postfix(loss=f"{total.item() / steps:.4f}")
    # Mean over all processes' steps.
    stats = dist.all_reduce_sum(torch.stack([total, torch.tensor(float(steps), device=device)]))
    return (stats[0] / stats[1].clamp_min(1)).item()


@torch.inference_mode()
def predict_logits(model: nn.Module, images: Tensor, tta: bool = False) -> Tensor:
    """Logits ``(N, 1, H, W)`` for images ``(N, 3, H, W)`` in [0, 1].

    With ``tta`` the logits are averaged with those of the horizontally flipped images
    (flipped back), a cheap ensemble that smooths borders. The images take the layout of the
    model's first convolution (channels-last or not): a mixed pair runs the slow path.
    """
    images = images.contiguous(memory_format=model_format(model))
    logits = model(images)
    if tta:
        logits = (logits + model(images.flip(-1)).flip(-1)) / 2
    return logits


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    device: torch.device,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    *,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    tta: bool = False,
    per_image: bool = False,
    pad_to: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Loss, Dice and IoU of ``model`` over everything ``loader`` yields.

    Dice and IoU are computed per image and averaged over all images (over all
    processes in a distributed run), at the loader's image size. The model's
    train/eval mode is restored afterwards.

    ``pad_to`` pads a short (last) batch with blank images up to that many, so the model only
    ever sees one batch shape -- what a compiled model replayed as a CUDA graph needs -- and
    scores only the real images (in eval mode every image is computed on its own, so the
    padding changes nothing else).

    Returns:
        ``{"loss", "dice", "iou", "count"}`` as floats (``loss`` is NaN without
        ``loss_fn``); with ``per_image`` also ``"dice_per_image"`` and
        ``"iou_per_image"``, ``(num_images,)`` CPU tensors in the loader's order
        (single process only), and ``"indices"``, the dataset index of each.
    """
    sums = torch.zeros(4, device=device, dtype=torch.float64)  # loss*n, dice, iou, n
    dices, ious, indices = [], [], []
    with eval_mode(model):
        for batch in tqdm(loader, desc="eval", leave=False, disable=not (progress and dist.is_main())):
            images, masks = to_device(batch, device, channels_last)
            n = images.shape[0]
            if pad_to is not None and n < pad_to:
                blank = images.new_zeros((pad_to - n, *images.shape[1:]))
                images = torch.cat([images, blank]).contiguous(memory_format=images_format(images))
            with autocast(device, amp_dtype):
                logits = predict_logits(model, images, tta=tta)
            logits = logits[:n].float()  # (n, 1, H, W): the padding is never scored
            dice = dice_per_image(logits, masks)
            iou = iou_per_image(logits, masks)
            if loss_fn is not None:
                sums[0] += loss_fn(logits, masks).double() * n
            sums[1] += dice.sum()
            sums[2] += iou.sum()
            sums[3] += n
            if per_image:
                dices.append(dice.cpu())
                ious.append(iou.cpu())
                indices.append(batch["index"].cpu() if torch.is_tensor(batch["index"]) else torch.as_tensor(batch["index"]))
    sums = dist.all_reduce_sum(sums)
    n = sums[3].clamp_min(1)
    result: dict[str, Any] = {
        "loss": (sums[0] / n).item() if loss_fn is not None else math.nan,
        "dice": (sums[1] / n).item(),
        "iou": (sums[2] / n).item(),
        "count": int(sums[3].item()),
    }
    if per_image:
        result["dice_per_image"] = torch.cat(dices) if dices else torch.empty(0)
        result["iou_per_image"] = torch.cat(ious) if ious else torch.empty(0)
        result["indices"] = torch.cat(indices) if indices else torch.empty(0, dtype=torch.long)
    return result


# --------------------------------------------------------------------------- fit


@dataclass
class FitResult:
    """What :func:`fit` returns: the trained model (last epoch; with ``ema_decay`` its weights' moving
    average), history and file paths."""

    model: nn.Module
    history: list[dict[str, float]]
    best_checkpoint: Path
    last_checkpoint: Path | None  # None when config.save_last is off
    history_file: Path
    best_dice: float
    curves_file: Path | None = None  # None when matplotlib is missing (see curves_skipped)
    curves_skipped: str | None = None  # why there is no curves_file
    card_file: Path | None = None  # <name>_card.json; the Markdown card is beside it


@dataclass
class _Training:
    """What a run trains with, built from its config by :func:`_build`."""

    model: nn.Module  # the plain module, whose weights the checkpoints hold
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    scaler: torch.amp.GradScaler  # enabled for float16 autocast only; otherwise its calls are no-ops
    loss_fn: Callable[..., Tensor]
    augment: Augment | None
    options: SpeedOptions
    ema: torch.optim.swa_utils.AveragedModel | None = None  # the weights' moving average (config.ema_decay)
    train_model: nn.Module | None = None  # ``model`` wrapped by DDP and/or compiled (see _wrap)
    eval_model: nn.Module | None = None  # ``model`` or the average's copy, compiled when the run compiles

    @property
    def kept_model(self) -> nn.Module:
        """The weights the run validates and keeps: the moving average's copy, or ``model``."""
        return self.ema.module if self.ema is not None else self.model
    pad_to: int | None = None  # the one evaluation batch size a compiled model sees


def _build(config: TrainConfig, device: torch.device, steps_per_epoch: int, resuming: bool) -> _Training:
    """Model, optimiser, per-step schedule, gradient scaler, loss and augmentation for ``config``."""
    model_kwargs = dict(config.model_kwargs)
    if resuming:
        model_kwargs.pop("pretrained", None)  # weights come from the checkpoint
    model = build_model(config.model, **model_kwargs).to(device)
    options = speed_options(config, device)
    if options.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if options.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    optimizer = build_optimizer(config, model, fused=options.fused_optimizer)
    return _Training(
        model, optimizer, build_scheduler(config, optimizer, steps_per_epoch),
        torch.amp.GradScaler(device.type, enabled=options.amp_dtype == torch.float16),
        build_loss(config.loss, config.dice_weight), config.augmentation(), options, build_ema(config, model),
    )


def _wrap(training: _Training, config: TrainConfig, device: torch.device, distributed: bool, eval_batch: int) -> None:
    """Set the modules that train (DDP and/or compiled) and evaluate (compiled or plain).

    Compiled, the model sees static shapes only: whole training batches (the training loader
    drops a ragged last one) and evaluation batches padded to ``eval_batch``, so nothing
    recompiles and "reduce-overhead" can replay each as a CUDA graph. Checkpoints hold the
    plain module's weights.
    """
    model = training.train_model = training.model
    training.eval_model = training.kept_model
    if distributed:
        ddp_ids = [device.index] if device.type == "cuda" else None
        training.train_model = nn.parallel.DistributedDataParallel(model, device_ids=ddp_ids)
    if config.compile:
        training.train_model = torch.compile(training.train_model, mode=config.compile_mode)
        training.eval_model = torch.compile(training.kept_model, mode=config.compile_mode)
        training.pad_to = eval_batch


def _run_epoch(epoch: int, config: TrainConfig, training: _Training, loaders: dict[str, DataLoader],
               device: torch.device, progress: bool) -> dict[str, float]:
    """Train one epoch, validate, and return the epoch's history row."""
    start = time.perf_counter()
    # Seed per epoch so a resumed run draws the same shuffles and augmentations.
    torch.manual_seed(config.seed * 100_003 + epoch + dist.rank() * 7919)
    _set_epoch(loaders["train"], config.seed, epoch)
    lr = training.optimizer.param_groups[0]["lr"]
    options = training.options
    train_loss = train_one_epoch(
        training.train_model, loaders["train"], training.optimizer, training.loss_fn, device,
        scheduler=training.scheduler, augment=training.augment, scaler=training.scaler, amp_dtype=options.amp_dtype,
        grad_clip=config.grad_clip, channels_last=options.channels_last, ignore_border=config.ignore_border,
        ema=training.ema, progress=progress, description=f"epoch {epoch}/{config.epochs}",
    )
    # DDP keeps the weights equal but each process updated its own BatchNorm statistics:
    # use rank 0's everywhere, the ones its checkpoint holds.
    dist.broadcast_buffers(training.model)
    if training.ema is not None:
        dist.broadcast_buffers(training.ema.module)
    # Validate the plain (or compiled plain) module: DDP's forward hooks are for training only.
    val = {"loss": math.nan, "dice": math.nan, "iou": math.nan}  # no validation split: NaN in the history
    if "valid" in loaders:
        val = evaluate(training.eval_model, loaders["valid"], device, training.loss_fn, amp_dtype=options.amp_dtype,
                       channels_last=options.channels_last, tta=config.tta, pad_to=training.pad_to)
    return {
        "epoch": epoch, "train_loss": train_loss, "val_loss": val["loss"], "val_dice": val["dice"],
        "val_iou": val["iou"], "lr": lr, "seconds": time.perf_counter() - start,
    }


def _start_message(config: TrainConfig, device: torch.device, loaders: dict[str, DataLoader],
                   options: SpeedOptions) -> str:
    compiled = config.compile_mode if config.compile else False
    images = (f"{len(loaders['train'].dataset)} train / {len(loaders['valid'].dataset)} valid images" if "valid" in loaders
              else f"{len(loaders['train'].dataset)} train images (every trainval image; no validation, keeps the last epoch)")
    return (
        f"training {config.model} on {device} ({dist.world_size()} process(es), batch {config.batch_size} per process)"
        f" | {images}"
        f" at {config.image_size}px | amp={options.amp_dtype} channels_last={options.channels_last} compile={compiled}"
        + (f"\n  speed options: {options.reason}" if options.reason else "")
    )


def _epoch_message(row: dict[str, float], epochs: int, improved: bool) -> str:
    validated = not math.isnan(row["val_dice"])
    val = f"| val loss {row['val_loss']:.4f} | val Dice {row['val_dice']:.4f} " if validated else ""
    return (
        f"epoch {row['epoch']:3d}/{epochs} | train loss {row['train_loss']:.4f} {val}"
        f"| lr {row['lr']:.2e} | {row['seconds']:.1f}s" + (" *" if improved and validated else "")
    )


def fit(
    config: TrainConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    tensorboard: str | Path | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> FitResult:
    """Train ``config.model`` on ``config.data_path`` as ``config`` says.

    Args:
        config: the run's settings; saved in every checkpoint and as JSON beside them.
        resume: continue from ``<out_dir>/<name>_last.pth`` if it exists (model, optimiser,
            schedule, epoch, history and best score), with the config stored there; the continued
            run shuffles and augments as the uninterrupted one would. Needs ``config.save_last``.
        progress: show tqdm bars.
        log: called with one line per epoch (``None`` for silence).
        tensorboard: also log each epoch's numbers as TensorBoard scalars in
            ``<tensorboard>/<name>`` (skipped, with a message, without tensorboard installed).
        on_epoch: called by the main process with each epoch's history row, once its files are
            written (the main job uses it to estimate the time left).

    The main process writes the run's files every epoch (:class:`~petlib.training.rundir.RunFiles`): best checkpoint
    and card, last checkpoint (unless ``config.save_last`` is off: ~0.4 GB a time for the UNet), history, curves.

    Returns:
        A :class:`FitResult`; the best checkpoint is the epoch with the highest validation
        Dice, ties keeping the earlier epoch, or the last epoch when ``config.validate`` is off
        (``best_dice`` is then NaN).
    """
    if resume and not config.save_last:
        raise ValueError("resume needs the last checkpoint, and save_last=False neither reads nor writes one: "
                         "resume with save_last=True (--save_last), or start a new run without resume")
    # 1. Device and processes; only the main process logs and writes files.
    device = pick_device(config.device)
    distributed = dist.init_from_env(device)
    log = log if (log is not None and dist.is_main()) else (lambda _msg: None)
    paths = RunPaths(config.out_dir, config.name)
    # 2. The config to train with, and where an interrupted run stopped.
    config, resumed = ResumePoint.read(config, resume, paths, log)
    config = dataclasses.replace(config, lr=config.learning_rate)  # the rate used, not "None = default"
    # 3. Data, model, optimiser, schedule and loss; the resumed state; DDP and compilation.
    seed_everything(config.seed)
    loaders = make_loaders(config, device, dtype=torch.uint8)
    training = _build(config, device, len(loaders["train"]), resuming=resumed.state is not None)
    run = resumed.apply(training.model, training.optimizer, training.scheduler, training.scaler, training.ema)
    _wrap(training, config, device, distributed, eval_batch=eval_batch_size(config))
    # 4. The run's files (petlib.training.rundir): written by the main process only.
    files = RunFiles(config, paths, training.model, training.optimizer, training.scheduler, training.scaler,
                     {mode: len(loader.dataset) for mode, loader in loaders.items()}, device, log, training.ema)
    if dist.is_main():
        files.start(Path(tensorboard) / config.name if tensorboard else None, first_epoch=run.next_epoch)
    log(_start_message(config, device, loaders, training.options))
    # 5. Each epoch: train, validate, record; the main process writes the run's files.
    for epoch in range(run.next_epoch, config.epochs + 1):
        row = _run_epoch(epoch, config, training, loaders, device, progress)
        improved = run.record(row)
        if dist.is_main():
            files.save_epoch(run, improved)
        log(_epoch_message(row, config.epochs, improved))
        if on_epoch is not None and dist.is_main():
            on_epoch(row)
    # 6. The final curves and the best checkpoint's card.
    card_file = files.finish(run, resumed=resumed.state is not None) if dist.is_main() else None
    dist.barrier()
    return FitResult(training.kept_model, run.history, paths.best, paths.last if config.save_last else None,
                     paths.history, run.best_dice, curves_file=files.curves.written,
                     curves_skipped=files.curves.skipped, card_file=card_file)
