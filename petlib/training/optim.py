"""The optimiser and the per-step learning-rate schedule of a run, from its :class:`~petlib.training.config.TrainConfig`."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from petlib.training.config import OPTIMIZERS, SCHEDULERS, TrainConfig

__all__ = ["build_optimizer", "build_scheduler", "build_ema"]


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


def build_scheduler(
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


def build_ema(config: TrainConfig, model: nn.Module) -> AveragedModel | None:
    """An exponential moving average of ``model``'s weights, or None when ``config.ema_decay`` is None.

    After every optimiser step ``ema.update_parameters(model)`` moves each averaged tensor
    ``decay`` of the way towards itself and ``1 - decay`` towards the model's: a decay of 0.98
    averages over the last ~50 steps. Buffers (BatchNorm's running statistics) are averaged too,
    so the averaged copy evaluates without a pass to recompute them. torch's
    :class:`~torch.optim.swa_utils.AveragedModel` keeps the copy (on the model's device and in
    its memory layout) and copies the weights at its first update.
    """
    if config.ema_decay is None:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True)
