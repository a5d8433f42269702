"""FLOPs counted, FLOP/s measured, and the published figures the report compares them with.

Work is counted with :class:`torch.utils.flop_counter.FlopCounterMode` on the ``meta`` device
(shapes only, nothing computed): matmuls and convolutions, as the counter does.
"""
from __future__ import annotations

import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from petlib.evaluation.timing import synchronize
from petlib.losses import build_loss
from petlib.research.bench.harness import Candidate
from petlib.training.config import TrainConfig

__all__ = [
    "H100_BF16_DENSE_FLOPS", "A100_RESNET50_AMP_IMAGES_S", "A100_BF16_DENSE_FLOPS", "DATASHEET_DENSE_FLOPS",
    "count_flops", "matmul_flops", "peak_matmul_flops", "precision_of", "precision_dtype", "datasheet_peak",
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


def matmul_flops(device: torch.device, dtype: torch.dtype, n: int, repeats: int, best: bool = False) -> float:
    """FLOP/s of a dense ``n x n`` matmul in ``dtype`` (median over ``repeats``; their best with ``best``)."""
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


def precision_dtype(precision: str) -> torch.dtype:
    """The tensor dtype a precision's matmul runs on: TF32 is float32 tensors on tensor cores."""
    return {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def precision_of(amp_dtype: torch.dtype | None, device: torch.device) -> str:
    """The arithmetic a row's convolutions run in: ``bf16``/``fp16`` under autocast; in float32
    ``tf32`` on CUDA where cuDNN may use TF32 for convolutions (PyTorch's default,
    ``torch.backends.cudnn.allow_tf32``), else ``fp32``."""
    if amp_dtype is not None:
        return {torch.bfloat16: "bf16", torch.float16: "fp16"}[amp_dtype]
    if device.type == "cuda" and torch.backends.cudnn.allow_tf32:
        return "tf32"
    return "fp32"


def peak_matmul_flops(device: torch.device, precision: str, sizes: list[int], repeats: int) -> dict[int, float]:
    """The best FLOP/s of dense ``n x n`` matmuls in ``precision``, for each ``n`` of ``sizes``
    (best of ``repeats``; the peak is the best of them all). ``tf32`` times float32 matmuls
    with TF32 allowed (``torch.set_float32_matmul_precision("high")``)."""
    dtype = precision_dtype(precision)
    saved = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if precision == "tf32" else "highest")
    try:
        return {n: matmul_flops(device, dtype, n, repeats, best=True) for n in sizes}
    finally:
        torch.set_float32_matmul_precision(saved)


#: Dense (no sparsity) peaks from NVIDIA's datasheets, FLOP/s, by precision: H100 SXM5 and H200
#: (FP32 67, TF32 494.7, BF16/FP16 989.4 TFLOPS: half the "with sparsity" figures), H100 PCIe
#: (51, 378, 756), A100 (19.5, 156, 312).
DATASHEET_DENSE_FLOPS: dict[str, dict[str, float]] = {
    "H100 SXM": {"fp32": 67e12, "tf32": 494.7e12, "bf16": H100_BF16_DENSE_FLOPS, "fp16": H100_BF16_DENSE_FLOPS},
    "H100 PCIe": {"fp32": 51e12, "tf32": 378e12, "bf16": 756e12, "fp16": 756e12},
    "H200": {"fp32": 67e12, "tf32": 494.7e12, "bf16": 989.4e12, "fp16": 989.4e12},
    "A100": {"fp32": 19.5e12, "tf32": 156e12, "bf16": 312e12, "fp16": 312e12},
}


def datasheet_peak(device_name: str, precision: str) -> tuple[str, float] | None:
    """(the datasheet entry, its dense peak) for a device's name, or ``None`` where none is known
    (every CPU; a GPU not in :data:`DATASHEET_DENSE_FLOPS`, or an H100 other than SXM/PCIe)."""
    name = device_name.upper()
    if "H200" in name:
        key = "H200"
    elif "H100" in name and "PCIE" in name:
        key = "H100 PCIe"
    elif "H100" in name and not any(other in name for other in ("NVL", "PCIE")):
        key = "H100 SXM"
    elif "A100" in name:
        key = "A100"
    else:
        return None
    return key, DATASHEET_DENSE_FLOPS[key][precision]


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
