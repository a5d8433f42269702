"""What one benchmark run measures: the device, the networks and sizes, and how long and often."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from petlib.training.config import TrainConfig

__all__ = ["Settings"]


@dataclass
class Settings:
    """What ``main`` runs; ``--quick`` shrinks every size and count."""

    device: torch.device
    models: list[str]
    sizes: list[int]
    batch_size: int
    repeats: int
    seconds: float
    skip_peer: bool
    memory: bool
    data_path: Path
    loader_size: int
    loader_batch_size: int
    epoch_size: int
    epoch_batch_size: int
    epochs: int
    matmul_sizes: list[int]
    #: Images of the synthetic full-size set the loader section builds (0: none).
    synthetic_full: int = 0
    #: Where the synthetic set's images come from: full-size originals if there are any.
    synthetic_source: Path | None = None
    config: TrainConfig = field(default_factory=TrainConfig)
