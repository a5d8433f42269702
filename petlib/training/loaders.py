"""A run's data loaders, and its batches on the device.

:func:`make_loaders` builds the loaders :func:`~petlib.training.engine.fit` trains and validates
with, from a :class:`~petlib.training.config.TrainConfig`; :func:`set_epoch` makes each epoch's
shuffle a function of (seed, epoch), so a resumed run replays it; :func:`to_device` turns a batch
into float images and masks on the device.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from petlib.data.dataset import load_dataset
from petlib.training.config import TrainConfig

__all__ = ["eval_batch_size", "make_loaders", "set_epoch", "to_device"]


def make_loaders(
    config: TrainConfig, device: torch.device, modes: Iterable[str] | None = None,
    dtype: torch.dtype = torch.float32,
) -> dict[str, DataLoader]:
    """A run's loaders for ``modes``: :func:`~petlib.data.load_dataset` with ``config``'s settings.

    ``modes`` defaults to what :func:`~petlib.training.engine.fit` uses: ``("train", "valid")``,
    or ``("train",)`` without validation (``config.validate`` off), when "train" is every
    trainval image.

    ``config.batch_size`` is the batch size **per process**; evaluation uses
    ``config.eval_batch_size`` (default twice the training batch: no activations are kept).
    Training batches are shuffled (reseeded every epoch by :func:`set_epoch`) and a ragged last one
    is dropped. With ``dtype=torch.uint8`` (what ``fit`` uses) images and masks arrive as
    uint8, a quarter of the bytes to collate and copy, and :func:`to_device` converts them on
    the device.
    """
    num_workers = config.num_workers
    if num_workers is None:
        # Worker processes pass every batch through shared memory, which costs more than reading
        # the decode-once cache in this process (benchmarks/results/2026-11-26-cpu-loader-epoch.md):
        # only JPEG decoding for a GPU needs them.
        num_workers = 0 if (config.cache or device.type == "cpu") else 4
    if modes is None:
        modes = ("train", "valid") if config.validate else ("train",)
    # Without a validation split the run trains on every trainval line, the valid ones too.
    train_split = "train" if config.validate else "trainval"
    return {
        mode: load_dataset(
            config.data_path, train_split if mode == "train" else mode,
            config.batch_size if mode == "train" else eval_batch_size(config),
            image_size=config.image_size, num_workers=num_workers, cache=config.cache, drop_last=mode == "train",
            shuffle=mode == "train", pin_memory=device.type == "cuda", subset=config.subset, dtype=dtype,
            seed=config.seed,
        )
        for mode in modes
    }


def eval_batch_size(config: TrainConfig) -> int:
    """``config.eval_batch_size``, by default twice the training batch (no activations are kept)."""
    return config.eval_batch_size or 2 * config.batch_size


def set_epoch(loader: DataLoader, seed: int, epoch: int) -> None:
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
