"""What several test files share: a tiny training run's config, a schedule's learning rates."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from petlib.data import SAMPLE_ROOT
from petlib.training.config import TrainConfig
from petlib.training.optim import build_scheduler


def _tiny_config(out_dir: str | Path, **overrides) -> TrainConfig:
    """A 4-channel UNet, 8 images a split at 16 px, on the CPU: a run of a few seconds.

    ``amp="off"``: the numbers do not depend on whether this CPU computes bfloat16 natively
    (with ``"auto"`` :func:`petlib.training.device.speed_options` would decide from a probe).
    """
    values = dict(model="unet", model_kwargs={"base_channels": 4}, data_path=str(SAMPLE_ROOT), subset=8,
                  image_size=16, batch_size=4, epochs=2, device="cpu", amp="off", validate=True, out_dir=str(out_dir))
    return TrainConfig(**{**values, **overrides})


@pytest.fixture(scope="session")
def tiny_config():
    """``tiny_config(out_dir, **overrides)``: :func:`_tiny_config`, a tiny run's :class:`TrainConfig`."""
    return _tiny_config


def _scheduled_lrs(config: TrainConfig, steps_per_epoch: int = 10) -> list[float]:
    """The learning rate of each of ``config.epochs * steps_per_epoch`` steps of ``config``'s schedule."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=config.learning_rate)
    scheduler = build_scheduler(config, optimizer, steps_per_epoch=steps_per_epoch)
    lrs = []
    for _ in range(config.epochs * steps_per_epoch):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.fixture(scope="session")
def scheduled_lrs():
    """``scheduled_lrs(config, steps_per_epoch=10)``: :func:`_scheduled_lrs`, the schedule's rate per step."""
    return _scheduled_lrs
