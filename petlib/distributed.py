"""The few pieces of ``torch.distributed`` the training loop needs.

A single-process run never initialises a process group, and every helper here then
does the single-process thing, so the same code path serves ``python -m petlib.train``,
a notebook, and ``torchrun --nproc_per_node=N -m petlib.train``.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

__all__ = [
    "ShardSampler", "init_from_env", "is_distributed", "rank", "world_size", "is_main", "all_reduce_sum",
    "broadcast_buffers", "barrier", "cleanup",
]


def init_from_env(device: torch.device) -> bool:
    """Join the process group if launched by torchrun (``WORLD_SIZE`` > 1 in the environment).

    Uses NCCL on CUDA and gloo otherwise. Returns whether this is a distributed run.
    """
    if is_distributed():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend)
    return True


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on the process that writes checkpoints, logs and progress bars."""
    return rank() == 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all processes (in place); a no-op in a single process."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


@torch.no_grad()
def broadcast_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Copy ``module``'s buffers (e.g. BatchNorm running statistics) from rank ``src`` to all."""
    if is_distributed():
        for buffer in module.buffers():
            dist.broadcast(buffer, src)


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def cleanup() -> None:
    if is_distributed():
        dist.destroy_process_group()


class ShardSampler(Sampler[int]):
    """Every ``world_size``-th index from ``rank``: an evaluation shard with no padding.

    ``DistributedSampler`` pads shards to equal length by repeating images, which
    would count them twice in a validation mean; evaluation needs no equal shards.
    In one process this is every index in order.
    """

    def __init__(self, length: int, rank: int, world_size: int) -> None:
        self.indices = list(range(rank, length, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
