"""FLOPs counted, FLOP/s measured, and the published figures the report compares them with.

Work is counted with :class:`torch.utils.flop_counter.FlopCounterMode` on the ``meta`` device
(shapes only, nothing computed): matmuls and convolutions, as the counter does.
"""
from __future__ import annotations

import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..config import TrainConfig
from ..losses import build_loss
from ..timing import synchronize
from .harness import Candidate

__all__ = [
    "H100_BF16_DENSE_FLOPS", "A100_RESNET50_AMP_IMAGES_S", "A100_BF16_DENSE_FLOPS", "count_flops", "matmul_flops",
    "resnet50_training_flops",
]

#: NVIDIA H100 SXM5 dense BF16 tensor-core peak, FLOP/s (NVIDIA H100 datasheet: 1,979 TFLOPS
#: "with sparsity", half of it dense). No real training run reaches it.
H100_BF16_DENSE_FLOPS = 989.4e12


def count_flops(candidate: Candidate, size: int, config: TrainConfig | None = None) -> tuple[float, float]:
    """FLOPs per image of a training step (forward + loss + backward) and of a forward pass.

    Counted with :class:`torch.utils.flop_counter.FlopCounterMode` on the ``meta`` device
    (shapes only, nothing computed). Matmuls and convolutions only, as the counter does;
    the optimiser's elementwise work is not counted.
    """
    config = config or TrainConfig()
    batch = 2  # BatchNorm refuses one value per channel (one image at the deepest 1x1 map)
    with torch.device("meta"):
        model = candidate.build()
        images = torch.rand(batch, 3, size, size)
        masks = torch.rand(batch, 1, size, size)
    loss_fn = build_loss(config.loss)
    counter = FlopCounterMode(display=False)
    with counter:
        loss_fn(model(images), masks).backward()
    train = counter.get_total_flops()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(images)
    return train / batch, counter.get_total_flops() / batch


def matmul_flops(device: torch.device, dtype: torch.dtype, n: int, repeats: int) -> float:
    """FLOP/s of a dense ``n x n`` matmul in ``dtype`` (median over ``repeats``)."""
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=generator).to(device, dtype)
    b = torch.randn(n, n, generator=generator).to(device, dtype)
    a @ b
    synchronize(device)
    start = time.perf_counter()
    a @ b
    synchronize(device)
    calls = max(1, round(0.2 / max(time.perf_counter() - start, 1e-6)))  # ~0.2 s a repeat
    rates = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(calls):
            a @ b
        synchronize(device)
        rates.append(2 * n**3 * calls / (time.perf_counter() - start))
    return statistics.median(rates)


def resnet50_training_flops() -> float:
    """FLOPs of a torchvision ResNet-50 training step per 224-px image, counted like ours."""
    from torchvision.models import resnet50

    with torch.device("meta"):
        model = resnet50()
        images = torch.rand(1, 3, 224, 224)
    counter = FlopCounterMode(display=False)
    with counter:
        model(images).sum().backward()
    return float(counter.get_total_flops())


#: NVIDIA DeepLearningExamples, PyTorch ResNet-50 v1.5 README, "Training performance: NVIDIA DGX
#: A100 (8x A100 80GB)": 2,470 img/s on 1 GPU with mixed precision. The A100's dense BF16 peak is
#: 312 TFLOP/s (NVIDIA A100 datasheet).
A100_RESNET50_AMP_IMAGES_S = 2470
A100_BF16_DENSE_FLOPS = 312e12
