"""Timing a network's forward pass: the one timer the comparison notebook and the benchmark share.

GPU work is asynchronous: a timer that does not wait for the device measures how fast work is
queued, not done. :func:`synchronize` waits; :func:`time_forward` waits before starting the
clock and before stopping it.
"""
from __future__ import annotations

import time

import torch
from torch import Tensor, nn

from petlib.models import eval_mode

__all__ = ["synchronize", "time_forward"]


def synchronize(device: torch.device | str) -> None:
    """Wait until ``device`` has finished the work queued on it (a no-op on the CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@torch.inference_mode()
def time_forward(model: nn.Module, images: Tensor, steps: int = 1) -> float:
    """Seconds for ``steps`` forward passes of ``images`` through ``model``, in eval and inference mode.

    ``images`` must be on the model's device; an enclosing ``torch.autocast`` applies. The model's
    train/eval mode is restored afterwards.
    """
    with eval_mode(model):
        synchronize(images.device)
        start = time.perf_counter()
        for _ in range(steps):
            model(images)
        synchronize(images.device)
        return time.perf_counter() - start
