"""Peak memory of a training step: on CUDA from the allocator, on a Linux CPU in a fresh process."""
from __future__ import annotations

import gc
import json
import subprocess
import sys

import torch

from petlib.research.bench.harness import Candidate, Runner
from petlib.training.config import TrainConfig

__all__ = ["cpu_memory_probe", "peak_memory_mib"]


def _memory_status_bytes(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def cpu_memory_probe(spec: str) -> None:
    """Run in a fresh process: print the peak growth of resident memory over two training steps.

    The peak is ``VmHWM``, the high-water mark of this process's own memory map. Not
    ``getrusage``'s ``ru_maxrss``: Linux carries that over from the parent through fork and
    exec, so a probe started by a large benchmark process would report the parent's size.
    """
    values = json.loads(spec)
    amp_name = values.pop("amp_dtype")
    amp = getattr(torch, amp_name) if amp_name else None
    size, batch_size = values.pop("size"), values.pop("batch_size")
    candidate = Candidate(**values, amp_dtype=amp)
    baseline = _memory_status_bytes("VmRSS")
    Runner(candidate, torch.device("cpu"), size, batch_size, TrainConfig()).train(2)
    print(_memory_status_bytes("VmHWM") - baseline)


def peak_memory_mib(candidate: Candidate, device: torch.device, size: int, batch_size: int) -> float | None:
    """Peak memory of training ``candidate``: weights, gradients, optimiser state and activations.

    CUDA: ``torch.cuda.max_memory_allocated`` over two steps. CPU (Linux): the growth of the
    resident set over two steps, in a fresh process so that memory other models freed (and the
    allocator kept) does not hide it. ``None`` elsewhere.
    """
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
        baseline = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        runner = Runner(candidate, device, size, batch_size, TrainConfig())
        runner.train(2)
        peak = torch.cuda.max_memory_allocated(device) - baseline
        del runner
        gc.collect()
        torch.cuda.empty_cache()
        return peak / 2**20
    if device.type == "cpu" and sys.platform.startswith("linux"):
        spec = {
            "label": candidate.label, "model": candidate.model, "source": candidate.source,
            "amp_dtype": str(candidate.amp_dtype).removeprefix("torch.") if candidate.amp_dtype else None,
            "channels_last": candidate.channels_last, "fused_optimizer": candidate.fused_optimizer, "size": size, "batch_size": batch_size,
        }
        code = f"from petlib.research.bench.memory import cpu_memory_probe; cpu_memory_probe({json.dumps(json.dumps(spec))})"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"memory probe failed:\n{result.stderr}")
        return int(result.stdout.split()[-1]) / 2**20
    return None
