"""Which device to run on, and which speed options pay off there.

Everything that runs a network -- training, evaluation, prediction, the benchmark -- picks its
device and its speed options here, so none of them needs the training engine for it.

The speed options of :class:`~petlib.training.config.TrainConfig` are "auto", "on" or "off". "auto"
decides per machine, from evidence:

- **bf16 autocast** is on for CUDA (bf16 where the GPU has it, else fp16). On a CPU it is on
  only where the CPU computes bf16 natively (AVX512-BF16 or AMX) *and* a one-off
  micro-benchmark (a few hundred milliseconds, once per process) finds a training step of a
  convolution block clearly faster than in float32. Where bf16 is emulated (AVX2-only CPUs)
  it is many times slower, so it stays off there.
- **channels-last** is on for CUDA; on the CPU it is on for inference (:func:`inference_layout`)
  and off for training. It is not decided by the probe (on a small conv block its reading swung
  between runs: 1.50x, 1.24x, 0.93x on 2-core machines) but by the whole networks, timed by
  ``python -m petlib.research.bench``: on a 2-core AMD EPYC without native bf16, float32, batch 8,
  2026-12-04, inference gained 1.25x (1.18-1.26; ResNet34-UNet, 128 px) and 1.28x (UNet, 64 px),
  while training gained 1.01x on the ResNet34-UNet and lost 11 % on the UNet (channels-last off
  1.12x, 1.11-1.13). ``channels_last="on"``/``"off"`` forces either way.
- the **fused AdamW** update is on for CUDA and the CPU.

:func:`speed_options` returns what a config comes to on a device, with the reason for each
choice, which ``python -m petlib.research.bench`` prints.
"""
from __future__ import annotations

import functools
import random
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from petlib import distributed as dist

__all__ = [
    "pick_device", "seed_everything", "autocast", "autocast_dtype", "cpu_bf16_native", "CpuProbe", "probe_cpu",
    "SpeedOptions", "speed_options", "FUSED_OPTIMIZER_AUTO", "MIN_SPEEDUP", "CHANNELS_LAST_AUTO",
    "CHANNELS_LAST_INFERENCE_AUTO",
    "use_channels_last", "inference_layout", "model_format", "images_format",
]


def pick_device(requested: str | None = None) -> torch.device:
    """``requested`` if given, else CUDA, then Apple's MPS, then the CPU."""
    if requested:
        device = torch.device(requested)
        if device.type != "cuda" or device.index is not None:
            return device
    elif not torch.cuda.is_available():
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    # "cuda" under torchrun means this process's GPU, not every process on GPU 0.
    rank = dist.local_rank()
    if torch.cuda.is_available() and rank >= torch.cuda.device_count():
        raise RuntimeError(
            f"process {rank} of torchrun needs GPU {rank} but this machine has {torch.cuda.device_count()}: "
            f"use --nproc_per_node={torch.cuda.device_count()} or fewer, or --device cpu"
        )
    return torch.device("cuda", rank)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager:
    """``torch.autocast`` to ``dtype`` on ``device``, or nothing for ``dtype=None`` (float32)."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


# --------------------------------------------------------------------------- the CPU's bf16


def cpu_bf16_native() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX-BF16).

    Asks torch (``torch.cpu.get_capabilities``, torch 2.6+), else reads the flags of
    ``/proc/cpuinfo`` (Linux); False where neither says.
    """
    get = getattr(torch.cpu, "get_capabilities", None)
    if get is not None:
        try:
            caps = get()
            return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))
        except Exception:  # an old or unusual build: fall back to the flags
            pass
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


#: A speed option turns on by itself only when it makes the probe at least this much faster:
#: a smaller gain is within the probe's noise and may not hold for a whole network.
MIN_SPEEDUP = 1.15


@dataclass(frozen=True)
class CpuProbe:
    """What the CPU micro-benchmark measured: seconds per training step of a conv block."""

    native_bf16: bool
    float32_s: float
    bf16_s: float | None  # None where bf16 is emulated and was not timed
    channels_last_s: float  # in the chosen precision; reported, not used to decide (see the module docstring)
    use_bf16: bool

    @property
    def bf16_speedup(self) -> float | None:
        return self.float32_s / self.bf16_s if self.bf16_s else None

    @property
    def channels_last_speedup(self) -> float:
        chosen = self.bf16_s if self.use_bf16 else self.float32_s
        return chosen / self.channels_last_s


def _step_seconds(dtype: torch.dtype | None, channels_last: bool, repeats: int = 3) -> float:
    """Best-of-``repeats`` seconds of forward + backward of two 3x3 conv-BN-ReLU layers
    (64 channels, batch 4 at 64x64 -- the shape of a U-Net's first stage at small sizes)."""
    torch.manual_seed(0)
    block = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
                          nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU())
    x = torch.randn(4, 64, 64, 64)
    if channels_last:
        block, x = block.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    best = float("inf")
    for i in range(repeats + 1):  # the first call only warms up (oneDNN picks its kernels)
        start = time.perf_counter()
        with autocast(torch.device("cpu"), dtype):
            out = block(x)
        out.float().square().mean().backward()
        if i:
            best = min(best, time.perf_counter() - start)
    return best


@functools.cache
def probe_cpu() -> CpuProbe:
    """Time the conv block in float32, bf16 (where native) and channels-last; once per process."""
    native = cpu_bf16_native()
    float32_s = _step_seconds(None, False)
    bf16_s = _step_seconds(torch.bfloat16, False) if native else None
    use_bf16 = bf16_s is not None and float32_s / bf16_s >= MIN_SPEEDUP
    channels_last_s = _step_seconds(torch.bfloat16 if use_bf16 else None, True)
    return CpuProbe(native, float32_s, bf16_s, channels_last_s, use_bf16)


def autocast_dtype(device: torch.device, amp: str = "auto") -> torch.dtype | None:
    """The mixed-precision dtype for ``amp`` ("auto", "on", "off") on ``device``; ``None`` is float32.

    "auto": on CUDA bf16 where the GPU supports it, else fp16; on a CPU bf16 where
    :func:`probe_cpu` finds it native and faster; float32 elsewhere (Apple's MPS included).
    "on" forces autocast (bf16 on a CPU, fp16 on MPS).
    """
    if amp == "off":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu":
        return torch.bfloat16 if amp == "on" or probe_cpu().use_bf16 else None
    return torch.float16 if amp == "on" else None


#: Device types on which a fused Adam(W) update is on by default.
FUSED_OPTIMIZER_AUTO = ("cuda", "cpu")
#: Device types on which models and batches are channels-last by default (the module docstring):
#: in training, and in inference.
CHANNELS_LAST_AUTO = ("cuda",)
CHANNELS_LAST_INFERENCE_AUTO = ("cuda", "cpu")


@dataclass(frozen=True)
class SpeedOptions:
    """What a config's speed options come to on one device: what :func:`petlib.fit` runs with."""

    amp_dtype: torch.dtype | None  # autocast dtype, None for plain float32
    channels_last: bool
    fused_optimizer: bool
    cudnn_benchmark: bool
    reason: str = ""  # why "auto" chose what it chose, for logs and the benchmark


def speed_options(config, device: torch.device) -> SpeedOptions:
    """Resolve ``config``'s (a :class:`~petlib.training.config.TrainConfig`) "auto"/"on"/"off" speed options for ``device``."""
    amp_dtype = autocast_dtype(device, config.amp)
    channels_last = use_channels_last(device, config.channels_last)
    fused = config.fused_optimizer == "on" or (config.fused_optimizer == "auto" and device.type in FUSED_OPTIMIZER_AUTO)
    reason = ""
    if device.type == "cpu" and config.amp == "auto":
        probe = probe_cpu()
        if not probe.native_bf16:
            reason = "CPU without native bf16 (no avx512_bf16/amx_bf16): float32"
        else:
            reason = (f"CPU with native bf16: a conv block trains {probe.bf16_speedup:.2f}x faster in bf16"
                      f" ({'used' if probe.use_bf16 else 'below ' + format(MIN_SPEEDUP, '.2f') + 'x, not used'})")
    elif device.type == "cuda":
        reason = "CUDA: autocast, channels-last and cuDNN autotuning on"
    # Fixed input sizes: let cuDNN try its kernels once and keep the fastest.
    return SpeedOptions(amp_dtype, channels_last, fused, cudnn_benchmark=device.type == "cuda", reason=reason)


def use_channels_last(device: torch.device, setting: str = "auto", *, inference: bool = False) -> bool:
    """Whether ``setting`` ("auto", "on", "off": a config's ``channels_last``) means channels-last on ``device``,
    for training or, with ``inference``, for predicting."""
    if setting == "auto":
        return device.type in (CHANNELS_LAST_INFERENCE_AUTO if inference else CHANNELS_LAST_AUTO)
    return setting == "on"


def inference_layout(model: nn.Module, device: torch.device | str, setting: str = "auto") -> nn.Module:
    """``model`` moved to ``device``, channels-last where :func:`use_channels_last` says so.

    Inputs need no change: :func:`petlib.training.engine.predict_logits` gives the images the
    model's layout.
    """
    device = torch.device(device)
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if use_channels_last(device, setting, inference=True) else model


def model_format(model: nn.Module) -> torch.memory_format:
    """channels_last if ``model``'s first 4-d weight (its first convolution) is stored so, else contiguous."""
    weight = next((p for p in model.parameters() if p.dim() == 4), None)
    return torch.contiguous_format if weight is None else images_format(weight)


def images_format(images: torch.Tensor) -> torch.memory_format:
    """channels_last if ``images`` (N, C, H, W) are stored so, else contiguous."""
    channels_last = images.is_contiguous(memory_format=torch.channels_last) and not images.is_contiguous()
    return torch.channels_last if channels_last else torch.contiguous_format
