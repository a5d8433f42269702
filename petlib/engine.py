"""The training engine: one epoch of training, an evaluation pass, and ``fit``.

``fit`` is the whole recipe in one screen: build data, model, loss, optimiser and
schedule from a :class:`~petlib.config.TrainConfig`; for each epoch train, validate,
record a history row and keep two checkpoints — the best by validation Dice
(``<out_dir>/<name>.pth``) and the last one (``<name>_last.pth``, which also carries the
optimiser and schedule so an interrupted run resumes where it stopped). Beside them go the
history (``<name>_history.csv``), its curves (``<name>_curves.png``, :mod:`petlib.curves`)
and the best checkpoint's model card (``<name>_card.json`` and ``.md``, :mod:`petlib.card`).

The same code runs in one process or under ``torchrun`` (DistributedDataParallel):
each process trains on its shard, validation metrics are summed over all processes
before dividing, and only rank 0 writes files or shows progress bars.
"""
from __future__ import annotations

import csv
import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Sampler
from tqdm.auto import tqdm

from . import distributed as dist
from .device import SpeedOptions, autocast, autocast_dtype, pick_device, seed_everything, speed_options
from .card import build_card, read_card, write_card
from .checkpoint import load_checkpoint, load_state_dict, save_checkpoint
from .config import OPTIMIZERS, SCHEDULERS, TrainConfig
from .curves import CurvesPNG, TensorBoardLog
from .data import OxfordPetSegmentation
from .losses import build_loss
from .metrics import dice_per_image, iou_per_image
from .models import build_model, count_parameters
from .transforms import Augment

__all__ = [
    "pick_device", "seed_everything", "autocast_dtype", "SpeedOptions", "speed_options", "train_one_epoch", "evaluate",
    "predict_logits", "fit", "build_optimizer", "to_device", "FitResult", "RunExistsError", "make_loaders", "read_history",
]

HISTORY_FIELDS = ["epoch", "train_loss", "val_loss", "val_dice", "val_iou", "lr", "seconds"]


# --------------------------------------------------------------------------- data


class _ShardSampler(Sampler[int]):
    """Every ``world_size``-th index from ``rank``: an evaluation shard with no padding.

    ``DistributedSampler`` pads shards to equal length by repeating images, which
    would count them twice in a validation mean; evaluation needs no equal shards.
    """

    def __init__(self, length: int, rank: int, world_size: int) -> None:
        self.indices = list(range(rank, length, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def make_loaders(
    config: TrainConfig, device: torch.device, modes: Iterable[str] = ("train", "valid"),
    dtype: torch.dtype = torch.float32,
) -> dict[str, DataLoader]:
    """DataLoaders for ``modes``, sharded across processes in a distributed run.

    ``config.batch_size`` is the batch size **per process**; evaluation uses
    ``config.eval_batch_size`` (default twice the training batch: no activations are kept).
    With ``dtype=torch.uint8`` (what :func:`fit` uses) images and masks arrive as uint8, a
    quarter of the bytes to collate and copy, and :func:`train_one_epoch` and
    :func:`evaluate` convert them on the device.
    """
    num_workers = config.num_workers
    if num_workers is None:
        # From the decode-once cache this process reads ~10,000 images/s at 256 px, where 2
        # worker processes, passing every batch through shared memory, manage ~2,200 (2 cores;
        # benchmarks/results/2026-11-26-cpu-loader-epoch.md). Only JPEG decoding for a GPU needs workers.
        num_workers = 0 if (config.cache or device.type == "cpu") else 4
    loaders = {}
    for mode in modes:
        dataset = OxfordPetSegmentation(
            config.data_path, mode, image_size=config.image_size, cache=config.cache, dtype=dtype,
            subset=config.subset,
        )
        train = mode == "train"
        sampler: Sampler[int]
        if train and dist.is_distributed():
            sampler = DistributedSampler(dataset, shuffle=True, seed=config.seed, drop_last=True)
        elif train:
            sampler = RandomSampler(dataset, generator=torch.Generator())
        else:
            sampler = _ShardSampler(len(dataset), dist.rank(), dist.world_size())
        batch_size = config.batch_size if train else (config.eval_batch_size or 2 * config.batch_size)
        loaders[mode] = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            # Dropping a short last training batch keeps BatchNorm statistics sane,
            # but never drop a batch that would leave an epoch empty.
            drop_last=train and len(sampler) > batch_size,
            num_workers=num_workers,
            pin_memory=device.type == "cuda",
            persistent_workers=num_workers > 0,
        )
    return loaders


def _set_epoch(loader: DataLoader, seed: int, epoch: int) -> None:
    """Make the shuffling of ``epoch`` a function of (seed, epoch) only, so resume replays it."""
    sampler = loader.sampler
    if isinstance(sampler, DistributedSampler):
        sampler.set_epoch(epoch)
    elif isinstance(sampler, RandomSampler) and sampler.generator is not None:
        sampler.generator.manual_seed(seed * 100_003 + epoch)


def to_device(batch: dict[str, Any], device: torch.device, channels_last: bool) -> tuple[Tensor, Tensor]:
    """A batch's images ``(N, 3, H, W)`` float in [0, 1] and masks ``(N, 1, H, W)`` float 0/1 on ``device``."""
    images = batch["image"].to(device, non_blocking=True)
    masks = batch["mask"].to(device, non_blocking=True)
    if images.dtype == torch.uint8:  # loaders from make_loaders deliver uint8 0..255
        images = images.float().div_(255)
        masks = masks.float()
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, masks


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
    progress: bool = True,
    description: str = "train",
) -> float:
    """Train for one pass over ``loader`` and return the mean training loss.

    Each step: (1) move the batch to the device, (2) augment it there, (3) forward under
    autocast, (4) backward (scaled for fp16), (5) clip the gradient norm, (6) step the
    optimiser and the per-step schedule. The running loss stays on the device; it is
    read back once per epoch (and every 20 steps for the progress bar) because reading a
    GPU number forces the host to wait for the GPU. With ``ignore_border`` the loss leaves
    out the trimap's border pixels (``loss_fn(logits, masks, weight)``).
    """
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
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
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
    (flipped back), a cheap ensemble that smooths borders.
    """
    logits = model(images)
    if tta:
        logits = (logits + model(images.flip(-1)).flip(-1)) / 2
    return logits


def images_format(images: Tensor) -> torch.memory_format:
    """channels_last if ``images`` (N, C, H, W) are stored so, else contiguous."""
    channels_last = images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous()
    return torch.channels_last if channels_last else torch.contiguous_format


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
    was_training = model.training
    model.eval()
    sums = torch.zeros(4, device=device, dtype=torch.float64)  # loss*n, dice, iou, n
    dices, ious, indices = [], [], []
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
    model.train(was_training)
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
    """What :func:`fit` returns: the trained model (last epoch), history and file paths."""

    model: nn.Module
    history: list[dict[str, float]]
    best_checkpoint: Path
    last_checkpoint: Path | None  # None when config.save_last is off
    history_file: Path
    best_dice: float
    curves_file: Path | None = None  # None when matplotlib is missing (see curves_skipped)
    curves_skipped: str | None = None  # why there is no curves_file
    card_file: Path | None = None  # <name>_card.json; the Markdown card is beside it


def build_optimizer(config: TrainConfig, model: nn.Module, fused: bool = False) -> torch.optim.Optimizer:
    """Adam or AdamW for ``model``'s parameters (already on their device).

    ``fused`` updates every parameter in one kernel instead of a handful of launches per
    parameter group; on a GPU that is most of the optimiser's cost at small batches.
    """
    # None lets torch pick its default (the multi-tensor "foreach" path on CUDA).
    fused_arg = True if fused else None
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay,
                                fused=fused_arg)
    if config.optimizer == "adamw":
        # No weight decay on biases and normalisation weights: decaying them only hurts.
        decay = [p for p in model.parameters() if p.ndim > 1]
        no_decay = [p for p in model.parameters() if p.ndim <= 1]
        return torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=config.learning_rate,
            fused=fused_arg,
        )
    raise ValueError(f"unknown optimizer {config.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")


def _build_scheduler(
    config: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """A per-step learning-rate schedule (stepped after every optimiser step)."""
    total = max(1, config.epochs * steps_per_epoch)
    if config.scheduler == "none":
        return None
    if config.scheduler == "onecycle":
        # Warm up over warmup_fraction of the run (or warmup_epochs, if longer), then cosine
        # annealing to lr / 1e4.
        pct = min(0.5, max(config.warmup_fraction, config.warmup_epochs / max(config.epochs, 1)))
        # OneCycleLR divides by its warm-up length in steps (pct * total - 1): a run of a handful
        # of steps (a quick check) must plan for a few more than it takes, or that length is 0.
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.learning_rate, total_steps=max(total, 4), pct_start=pct,
            div_factor=25.0, final_div_factor=1e4,
        )
    if config.scheduler == "cosine":
        warmup = int(config.warmup_epochs * steps_per_epoch)
        floor = config.min_lr / config.learning_rate

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    raise ValueError(f"unknown scheduler {config.scheduler!r}; valid: {', '.join(SCHEDULERS)}")


class RunExistsError(FileExistsError):
    """A new run would replace the best checkpoint of an earlier run of the same name."""


def _run_exists_message(best_path: Path) -> str:
    try:
        earlier = load_checkpoint(best_path)
        what = f" (epoch {earlier.get('epoch')}, validation Dice {float(earlier.get('best_dice', math.nan)):.4f})"
    except Exception:  # an unreadable file is still in the way; say so without its details
        what = ""
    return (
        f"{best_path} holds the best checkpoint of an earlier run{what}; petlib does not replace it silently.\n"
        "Either resume that run (resume=True, --resume), replace it (overwrite=True, --overwrite), or\n"
        "give this run another name or folder (run_name=... / --run_name, out_dir=... / --out_dir)."
    )


def _paths(config: TrainConfig) -> tuple[Path, Path, Path]:
    out = Path(config.out_dir)
    return out / f"{config.name}.pth", out / f"{config.name}_last.pth", out / f"{config.name}_history.csv"


def _write_card(config: TrainConfig, history: list[dict[str, float]], best_path: Path, model: nn.Module,
                loaders: dict[str, DataLoader], device: torch.device, keep_test: bool) -> Path:
    """Write the best checkpoint's card; ``keep_test``: keep the test scores of the card there,
    which still describe the checkpoint when this run has not replaced it."""
    card = build_card(config, history, checkpoint_path=best_path, parameters=count_parameters(model),
                      split_sizes={mode: len(loader.dataset) for mode, loader in loaders.items()},
                      device=device, processes=dist.world_size())
    earlier = read_card(best_path) if keep_test else None
    if earlier is not None:
        card["test"] = earlier.get("test", [])
    return write_card(card, best_path)[0]


def _write_history(history: list[dict[str, float]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_FIELDS)
        writer.writeheader()
        for row in history:
            writer.writerow({k: row.get(k) for k in HISTORY_FIELDS})
    tmp.replace(path)


def read_history(path: str | Path) -> list[dict[str, float]]:
    """Read a ``*_history.csv`` written by :func:`fit` (numbers as floats, epoch as int)."""
    with Path(path).open() as f:
        return [
            {k: (int(v) if k == "epoch" else float(v)) for k, v in row.items() if v not in (None, "")}
            for row in csv.DictReader(f)
        ]


def fit(
    config: TrainConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
    tensorboard: str | Path | None = None,
) -> FitResult:
    """Train ``config.model`` on ``config.data_path`` as ``config`` says.

    Args:
        config: the run's settings; saved in every checkpoint and as JSON beside them.
        resume: continue from ``<out_dir>/<name>_last.pth`` if it exists (model,
            optimiser, schedule, epoch, history and best score), with the config stored
            there; the continued run shuffles and augments as the uninterrupted one would.
            Needs ``config.save_last``.
        progress: show tqdm bars.
        log: called with one line per epoch (``None`` for silence).
        tensorboard: also log each epoch's numbers as TensorBoard scalars in
            ``<tensorboard>/<name>`` (skipped, with a message, without tensorboard installed).

    With ``config.save_last=False`` no ``_last.pth`` is written (for the UNet, with its
    optimiser state, ~0.4 GB rewritten every epoch) and an earlier run's is removed: the run
    cannot be resumed, but its best checkpoint, history and config are written as usual.

    Besides the checkpoints, the main process writes ``<name>_history.csv`` every epoch,
    ``<name>_curves.png`` (loss and validation Dice; at the end, and during the run at most
    once a minute; skipped without matplotlib) and the best checkpoint's model card
    ``<name>_card.json`` / ``.md`` (each time the best checkpoint changes, and at the end).

    Returns:
        A :class:`FitResult`. The best checkpoint is the epoch with the highest
        validation Dice; ties keep the earlier epoch.
    """
    if resume and not config.save_last:
        raise ValueError(
            "resume needs the last checkpoint, and save_last=False neither reads nor writes one: "
            "resume with save_last=True (--save_last), or start a new run without resume"
        )
    device = pick_device(config.device)
    distributed = dist.init_from_env(device)
    log = log if (log is not None and dist.is_main()) else (lambda _msg: None)
    best_path, last_path, history_path = _paths(config)

    state = None
    if resume and last_path.exists():
        state = load_checkpoint(last_path, map_location="cpu")
        stored = TrainConfig.from_dict(state["config"])
        # Where to put files and what device to use may differ from the interrupted
        # run; everything else must stay the same for the schedule to make sense.
        epochs = max(stored.epochs, config.epochs)
        if epochs != stored.epochs and stored.scheduler != "none":
            # A warm-up/decay schedule was laid out for the planned length; stretching it
            # mid-run would jump the learning rate back up. Only a constant rate extends.
            raise ValueError(
                f"{last_path} was planned for {stored.epochs} epochs with a {stored.scheduler!r} schedule; "
                f"resuming continues that plan. To train for {config.epochs} epochs start a new run "
                "(another --run_name or --out_dir), or use --scheduler none."
            )
        config = TrainConfig.from_dict({**stored.to_dict(), "out_dir": config.out_dir, "device": config.device,
                                        "epochs": epochs})
        if config.epochs != stored.epochs:
            log(f"extending the run from {stored.epochs} to {config.epochs} epochs")
        log(f"resuming {last_path} after epoch {state['epoch']}")
    elif resume:
        log(f"nothing to resume at {last_path}; starting a new run")
    if state is None and best_path.exists() and not config.overwrite:
        raise RunExistsError(_run_exists_message(best_path))

    # Record the learning rate actually used, not "None = the model's default".
    config = dataclasses.replace(config, lr=config.learning_rate)
    seed_everything(config.seed)
    loaders = make_loaders(config, device, dtype=torch.uint8)
    model_kwargs = dict(config.model_kwargs)
    if state is not None:
        model_kwargs.pop("pretrained", None)  # weights come from the checkpoint
    model = build_model(config.model, **model_kwargs).to(device)
    options = speed_options(config, device)
    channels_last, amp_dtype = options.channels_last, options.amp_dtype
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if options.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True

    optimizer = build_optimizer(config, model, fused=options.fused_optimizer)
    steps_per_epoch = len(loaders["train"])
    scheduler = _build_scheduler(config, optimizer, steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
    history: list[dict[str, float]] = []
    best_dice, start_epoch = -1.0, 1
    if state is not None:
        load_state_dict(model, state["model_state"], source=str(last_path))
        optimizer.load_state_dict(state["optimizer_state"])
        if scheduler is not None and state.get("scheduler_state") is not None:
            scheduler.load_state_dict(state["scheduler_state"])
        if scaler is not None and state.get("scaler_state") is not None:
            scaler.load_state_dict(state["scaler_state"])
        history = list(state["history"])
        best_dice = float(state["best_dice"])
        start_epoch = int(state["epoch"]) + 1

    train_model: nn.Module = model
    if distributed:
        ddp_ids = [device.index] if device.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=ddp_ids)
    # Compiled, the model sees static shapes only: whole training batches (make_loaders drops a
    # ragged last one) and evaluation batches padded to full size, so nothing recompiles and
    # "reduce-overhead" can replay each as a CUDA graph. Checkpoints hold the plain module's weights.
    eval_model, pad_to = model, None
    if config.compile:
        train_model = torch.compile(train_model, mode=config.compile_mode)
        eval_model = torch.compile(model, mode=config.compile_mode)
        pad_to = loaders["valid"].batch_size
    loss_fn = build_loss(config.loss)
    augment = Augment.from_config(config) if config.augment else None

    if dist.is_main():
        Path(config.out_dir).mkdir(parents=True, exist_ok=True)
        config.save_json(Path(config.out_dir) / f"{config.name}_config.json")
        if not config.save_last and last_path.exists():
            # An earlier run's resume point: left in place, a later resume would continue that
            # run, not this one.
            last_path.unlink()
            log(f"removed {last_path} of an earlier run (save_last=False: this run keeps no resume point)")

    def checkpoint(epoch: int) -> dict[str, Any]:
        return {
            "model_name": config.model,
            "model_kwargs": config.model_kwargs,
            "model_state": model.state_dict(),
            "config": config.to_dict(),
            "history": history,
            "epoch": epoch,
            "best_dice": best_dice,
        }

    curves = CurvesPNG(Path(config.out_dir) / f"{config.name}_curves.png", config.name, log)
    board = TensorBoardLog(Path(tensorboard) / config.name, log, start_epoch) if tensorboard and dist.is_main() else None
    best_replaced = False  # whether this call wrote a new best checkpoint (the card's test scores then go)
    log(
        f"training {config.model} on {device} ({dist.world_size()} process(es), batch {config.batch_size} per process)"
        f" | {len(loaders['train'].dataset)} train / {len(loaders['valid'].dataset)} valid images"
        f" at {config.image_size}px | amp={amp_dtype} channels_last={channels_last} compile={config.compile_mode if config.compile else False}"
        + (f"\n  speed options: {options.reason}" if options.reason else "")
    )
    for epoch in range(start_epoch, config.epochs + 1):
        start = time.perf_counter()
        # Seed per epoch so a resumed run draws the same shuffles and augmentations.
        torch.manual_seed(config.seed * 100_003 + epoch + dist.rank() * 7919)
        _set_epoch(loaders["train"], config.seed, epoch)
        lr = optimizer.param_groups[0]["lr"]
        train_loss = train_one_epoch(
            train_model, loaders["train"], optimizer, loss_fn, device,
            scheduler=scheduler, augment=augment, scaler=scaler, amp_dtype=amp_dtype,
            grad_clip=config.grad_clip, channels_last=channels_last, ignore_border=config.ignore_border,
            progress=progress,
            description=f"epoch {epoch}/{config.epochs}",
        )
        # DDP keeps the weights equal but each process updated its own BatchNorm statistics:
        # use rank 0's everywhere, the ones its checkpoint holds.
        dist.broadcast_buffers(model)
        # Validate the plain module: DDP's forward hooks are for training only.
        val = evaluate(eval_model, loaders["valid"], device, loss_fn, amp_dtype=amp_dtype,
                       channels_last=channels_last, tta=config.tta, pad_to=pad_to)
        row = {
            "epoch": epoch, "train_loss": train_loss, "val_loss": val["loss"], "val_dice": val["dice"],
            "val_iou": val["iou"], "lr": lr, "seconds": time.perf_counter() - start,
        }
        history.append(row)
        improved = val["dice"] > best_dice
        if improved:
            best_dice = val["dice"]
        if dist.is_main():
            if improved:
                save_checkpoint(checkpoint(epoch), best_path)
                best_replaced = True
                _write_card(config, history, best_path, model, loaders, device, keep_test=False)
            if config.save_last:
                last = checkpoint(epoch)
                last["optimizer_state"] = optimizer.state_dict()
                last["scheduler_state"] = scheduler.state_dict() if scheduler is not None else None
                last["scaler_state"] = scaler.state_dict() if scaler is not None else None
                save_checkpoint(last, last_path)
            _write_history(history, history_path)
            curves.update(history)
            if board is not None:
                board.add_epoch(row)
        log(
            f"epoch {epoch:3d}/{config.epochs} | train loss {train_loss:.4f} | val loss {val['loss']:.4f} "
            f"| val Dice {val['dice']:.4f} | lr {lr:.2e} | {row['seconds']:.1f}s" + (" *" if improved else "")
        )
    card_file = None
    if dist.is_main():
        curves.update(history, final=True)
        if board is not None:
            board.close()
        # The final card, with the epochs and wall time of the whole run; only for a best checkpoint
        # this run wrote or resumed, never for an earlier run's that it failed to improve on.
        if best_replaced or (state is not None and best_path.exists()):
            card_file = _write_card(config, history, best_path, model, loaders, device, keep_test=not best_replaced)
    dist.barrier()
    return FitResult(model, history, best_path, last_path if config.save_last else None, history_path, best_dice,
                     curves_file=curves.written, curves_skipped=curves.skipped, card_file=card_file)

