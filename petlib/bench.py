"""Speed benchmarks: petlib's networks against their peers, the data loader, and a training epoch.

    python -m petlib.bench                 # every section at 128 and 256 px on the best device
    python -m petlib.bench --compile       # also: does torch.compile pay for itself?
    python -m petlib.bench --quick         # tiny sizes, one repeat: checks that everything runs

prints markdown tables:

* **Networks.** For each network and size: training images/second (forward, backward and
  optimiser step after warm-up), inference images/second and peak memory, for petlib with its
  defaults on this device and, in the same process, for the peer:
  ``segmentation_models_pytorch.Unet("resnet34", encoder_weights=None, classes=1)`` (the same
  architecture as petlib's ResNet34-UNet; ``pip install -e ".[bench]"``) and, for the UNet,
  petlib's own UNet with every speed option off (plain float32, the lab's way). Each row has
  the ratio ours/peer and the share of the machine's peak reached: the FLOPs of a step, counted
  with :mod:`torch.utils.flop_counter`, per second, against a dense matmul timed in this run.
* **Speed options.** The ResNet34-UNet with each option of :class:`~petlib.config.TrainConfig`
  flipped, the evidence for what ``"auto"`` turns on on this device.
* **torch.compile** (``--compile``): compile time, steady-state speed-up, and how many training
  images it takes to win the compile time back.
* **Data loader.** Images/second at 256 px from JPEGs and from the decode-once cache, alone and
  followed by the default augmentation on the CPU.
* **Epoch.** Real epochs of :func:`~petlib.engine.fit` on the shipped sample, split into time
  waiting for the loader, augmenting, and the rest.

Both contenders run the same training step (:func:`~petlib.engine.train_one_epoch` with
petlib's loss, AdamW and gradient clipping) on the same uint8 batch already on the device, so
the ratio measures the network and its speed options only. Figures are medians over
``--repeats``, ours and the peer alternating within each repeat so that a busy machine slows
both alike, and each built afresh for every repeat so that no ratio rests on one build.
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from unittest import mock

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, RandomSampler
from torch.utils.flop_counter import FlopCounterMode

from . import engine
from .cli import Switch, argument_parser, option, run_main
from .config import TrainConfig
from .data import SAMPLE_ROOT, OxfordPetSegmentation
from .engine import _autocast, _build_optimizer, _to_device, autocast_dtype, pick_device, predict_logits
from .losses import build_loss
from .models import MODELS, build_model
from .transforms import Augment

__all__ = ["Candidate", "petlib_candidate", "peer_candidate", "main"]

PEER = 'smp.Unet("resnet34", encoder_weights=None, classes=1)'
#: Images in the full dataset's train split (trainval.txt less every 10th line): one epoch,
#: the horizon over which torch.compile has to win its compile time back.
FULL_TRAIN_IMAGES = 3312
#: NVIDIA H100 SXM5 dense BF16 tensor-core peak, FLOP/s (NVIDIA H100 datasheet: 1,979 TFLOPS
#: "with sparsity", half of it dense). No real training run reaches it.
H100_BF16_DENSE_FLOPS = 989.4e12


# --------------------------------------------------------------------------- what is timed


@dataclass(frozen=True)
class Candidate:
    """One way of running a network: how to build it and which speed options it uses.

    ``source`` is ``"petlib"`` (``build_model(model)``) or ``"smp"`` (the peer).
    ``cudnn_benchmark`` only matters on CUDA.
    """

    label: str
    model: str
    source: str = "petlib"
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False
    compile: bool = False
    cudnn_benchmark: bool = True
    fused_optimizer: bool = False
    compile_mode: str = "default"

    def build(self) -> nn.Module:
        if self.source == "smp":
            import segmentation_models_pytorch as smp

            return smp.Unet("resnet34", encoder_weights=None, classes=1)
        return build_model(self.model)

    @property
    def options(self) -> str:
        parts = [str(self.amp_dtype).removeprefix("torch.") + " autocast" if self.amp_dtype else "float32"]
        if self.channels_last:
            parts.append("channels_last")
        if self.fused_optimizer:
            parts.append("fused AdamW")
        if self.compile:
            parts.append("compile" + ("" if self.compile_mode == "default" else f" ({self.compile_mode})"))
        return ", ".join(parts)


def petlib_candidate(model: str, device: torch.device, config: TrainConfig | None = None) -> Candidate:
    """petlib as :func:`~petlib.engine.fit` runs it on ``device`` with ``config``'s speed options."""
    config = config or TrainConfig()
    options = engine.speed_options(config, device)
    return Candidate(
        "petlib", model, amp_dtype=options.amp_dtype, channels_last=options.channels_last,
        compile=config.compile, compile_mode=config.compile_mode, cudnn_benchmark=options.cudnn_benchmark,
        fused_optimizer=options.fused_optimizer,
    )


def smp_available() -> bool:
    try:
        import segmentation_models_pytorch  # noqa: F401
    except ImportError:
        return False
    return True


def peer_candidate(model: str) -> Candidate | None:
    """The peer of ``model``: smp's Unet for the ResNet34-UNet (``None`` without smp), and
    petlib's UNet with every speed option off for the UNet."""
    if model == "resnet34_unet":
        return Candidate("smp", model, source="smp", cudnn_benchmark=False) if smp_available() else None
    return Candidate("petlib, options off", model, cudnn_benchmark=False)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _batch(batch_size: int, size: int, device: torch.device) -> dict[str, Tensor]:
    """A batch as the engine's loaders deliver it: uint8 images and masks, here already on the device."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8, generator=generator)
    masks = torch.randint(0, 2, (batch_size, 1, size, size), dtype=torch.uint8, generator=generator)
    return {"image": images.to(device), "mask": masks.to(device)}


class _Runner:
    """A candidate's model, optimiser and batches on the device, ready to time."""

    def __init__(self, candidate: Candidate, device: torch.device, size: int, batch_size: int,
                 config: TrainConfig) -> None:
        torch.manual_seed(0)
        self.candidate, self.device, self.config = candidate, device, config
        model = candidate.build().to(device)
        if candidate.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.train_model = torch.compile(model, mode=candidate.compile_mode) if candidate.compile else model
        self.optimizer = _build_optimizer(config, model, fused=candidate.fused_optimizer)
        self.loss_fn = build_loss(config.loss)
        self.scaler = torch.amp.GradScaler(device.type) if candidate.amp_dtype == torch.float16 else None
        self.train_batch = _batch(batch_size, size, device)
        # Evaluation runs at twice the training batch, as the engine's does.
        self.eval_batch = _batch(2 * batch_size, size, device)

    def _set_cudnn(self) -> None:
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = self.candidate.cudnn_benchmark

    def train(self, steps: int) -> float:
        """Seconds for ``steps`` training steps of the engine's own loop."""
        self._set_cudnn()
        _sync(self.device)
        start = time.perf_counter()
        # Ends by reading the mean loss back, so the device has finished when it returns.
        engine.train_one_epoch(
            self.train_model, [self.train_batch] * steps, self.optimizer, self.loss_fn, self.device,
            scaler=self.scaler, amp_dtype=self.candidate.amp_dtype, grad_clip=self.config.grad_clip,
            channels_last=self.candidate.channels_last, progress=False,
        )
        return time.perf_counter() - start

    @torch.inference_mode()
    def infer(self, steps: int) -> float:
        """Seconds for ``steps`` forward passes in inference mode (eval batch)."""
        self._set_cudnn()
        self.model.eval()
        _sync(self.device)
        start = time.perf_counter()
        for _ in range(steps):
            images, _ = _to_device(self.eval_batch, self.device, self.candidate.channels_last)
            with _autocast(self.device, self.candidate.amp_dtype):
                predict_logits(self.model, images)
        _sync(self.device)
        elapsed = time.perf_counter() - start
        self.model.train()
        return elapsed


def _warmup_steps(device: torch.device) -> int:
    # cuDNN's autotuner tries kernels during the first steps; the CPU needs one for allocations.
    return 3 if device.type == "cuda" else 1


@dataclass
class Throughput:
    """Medians of one candidate at one size; ``first_step_s`` includes any compilation."""

    train: float  # images/s
    infer: float  # images/s
    train_runs: list[float] = field(default_factory=list)
    infer_runs: list[float] = field(default_factory=list)
    first_step_s: float = float("nan")
    step_s: float = float("nan")


def measure(
    candidates: Sequence[Candidate], device: torch.device, size: int, batch_size: int, repeats: int,
    config: TrainConfig, seconds: float = 1.0, infer: bool = True, fresh: bool = True,
) -> list[Throughput]:
    """Training and inference images/second of each candidate, interleaved, medians over ``repeats``.

    Each repeat runs as many steps as fill about ``seconds`` (at least one), candidates taking
    turns in an order that reverses every repeat. With ``fresh`` every repeat builds each
    candidate anew (model, optimiser, batches) and warms it up: one build can run 10-20 %
    slower than another of the same setting (where its memory landed), and that must not
    decide a ratio. ``fresh=False`` keeps one build per candidate, for compiled models, whose
    compile time would otherwise recur.
    """
    def build(candidate: Candidate) -> _Runner:
        return _Runner(candidate, device, size, batch_size, config)

    def warm_up(runner: _Runner) -> tuple[float, float]:
        """(seconds of the first step, of a steady step); the inference warm-up too."""
        first = runner.train(1)
        for _ in range(_warmup_steps(device) - 1):
            runner.train(1)
        step = runner.train(1)
        if infer:
            for _ in range(_warmup_steps(device)):
                runner.infer(1)
        return first, step

    runners: list[_Runner | None] = [None] * len(candidates)
    plans = []  # (first step s, steady step s, training steps a repeat, inference steps a repeat)
    for i, candidate in enumerate(candidates):
        runner = build(candidate)
        first, step = warm_up(runner)
        infer_steps = max(1, round(seconds / runner.infer(1))) if infer else 0
        plans.append((first, step, max(1, round(seconds / step)), infer_steps))
        runners[i] = None if fresh else runner
        del runner
    train_runs: list[list[float]] = [[] for _ in candidates]
    infer_runs: list[list[float]] = [[] for _ in candidates]
    for repeat in range(repeats):
        # Alternate the order too, so that neither candidate always runs right after the other.
        for i in list(range(len(candidates)))[:: 1 if repeat % 2 == 0 else -1]:
            runner = runners[i]
            if runner is None:
                gc.collect()
                runner = build(candidates[i])
                warm_up(runner)
            _, _, train_steps, infer_steps = plans[i]
            train_runs[i].append(train_steps * batch_size / runner.train(train_steps))
            if infer:
                infer_runs[i].append(infer_steps * 2 * batch_size / runner.infer(infer_steps))
            del runner
    runners.clear()
    gc.collect()
    return [
        Throughput(
            train=statistics.median(t), infer=statistics.median(v) if v else float("nan"),
            train_runs=t, infer_runs=v, first_step_s=plan[0], step_s=plan[1],
        )
        for t, v, plan in zip(train_runs, infer_runs, plans)
    ]


# --------------------------------------------------------------------------- FLOPs, peak, memory


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
    _sync(device)
    start = time.perf_counter()
    a @ b
    _sync(device)
    calls = max(1, round(0.2 / max(time.perf_counter() - start, 1e-6)))  # ~0.2 s a repeat
    rates = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        for _ in range(calls):
            a @ b
        _sync(device)
        rates.append(2 * n**3 * calls / (time.perf_counter() - start))
    return statistics.median(rates)


def _memory_status_bytes(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _cpu_memory_probe(spec: str) -> None:
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
    _Runner(candidate, torch.device("cpu"), size, batch_size, TrainConfig()).train(2)
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
        runner = _Runner(candidate, device, size, batch_size, TrainConfig())
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
        code = f"from petlib.bench import _cpu_memory_probe; _cpu_memory_probe({json.dumps(json.dumps(spec))})"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"memory probe failed:\n{result.stderr}")
        return int(result.stdout.split()[-1]) / 2**20
    return None


# --------------------------------------------------------------------------- formatting


def _rate(value: float) -> str:
    if value != value:  # NaN
        return "—"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _ratio(a: float, b: float | None) -> str:
    return "—" if b is None or b != b or a != a else f"{a / b:.2f}x"


def _percent(value: float | None) -> str:
    return "—" if value is None or value != value else f"{100 * value:.1f}%"


def _mib(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- sections


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
    matmul_n: int
    config: TrainConfig = field(default_factory=TrainConfig)


def section_peak(s: Settings, print_: Callable[[str], None]) -> tuple[float, str]:
    """Time dense matmuls; returns the fastest rate (the machine's peak for this run) and a note."""
    dtypes = [torch.float32]
    if s.device.type == "cuda":
        dtypes.append(torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    elif s.device.type == "cpu":
        dtypes.append(torch.bfloat16)  # to show whether this CPU computes bf16 natively
    rates = {}
    for dtype in dtypes:
        # bf16 on a CPU without native support is emulated, slow: a smaller matrix suffices.
        n = s.matmul_n // 2 if (s.device.type == "cpu" and dtype != torch.float32) else s.matmul_n
        rates[dtype] = matmul_flops(s.device, dtype, n, s.repeats)
    best = max(rates, key=rates.__getitem__)
    note = ", ".join(f"{str(d).removeprefix('torch.')} {r / 1e9:,.0f} GFLOP/s" for d, r in rates.items())
    print_(f"Dense matmul ({s.matmul_n}x{s.matmul_n}, median of {s.repeats}): {note}. "
           f"Peak used below: {str(best).removeprefix('torch.')}, {rates[best] / 1e9:,.0f} GFLOP/s.\n")
    return rates[best], note


def section_networks(s: Settings, peak: float, print_: Callable[[str], None]) -> list[dict[str, Any]]:
    print_("## Networks: training and inference throughput, petlib vs peer\n")
    print_(f"Training: batch {s.batch_size}, forward + backward + AdamW step (petlib's loss and "
           f"gradient clipping for both; the AdamW update fused into one kernel where the options say "
           f"so, torch's default otherwise). Inference: batch {2 * s.batch_size}, `inference_mode`. "
           f"Peer: {PEER} for the ResNet34-UNet, petlib's UNet with every speed option off for the UNet. "
           f"% of peak: FLOPs counted by `torch.utils.flop_counter` x steps/s, over the dense-matmul peak. "
           f"Peak memory: " + ("CUDA max allocated" if s.device.type == "cuda" else "growth of resident memory "
                               "over two training steps in a fresh process") + ", MiB.\n")
    results = []
    rows = []
    for model in s.models:
        for size in s.sizes:
            ours = petlib_candidate(model, s.device, s.config)
            peer = None if s.skip_peer else peer_candidate(model)
            candidates = [ours] + ([peer] if peer is not None else [])
            speeds = measure(candidates, s.device, size, s.batch_size, s.repeats, s.config, s.seconds)
            for candidate, speed in zip(candidates, speeds):
                train_flops, infer_flops = count_flops(candidate, size, s.config)
                memory = peak_memory_mib(candidate, s.device, size, s.batch_size) if s.memory else None
                is_ours = candidate is ours
                peer_speed = speeds[1] if (is_ours and len(speeds) > 1) else None
                result = {
                    "model": model, "size": size, "label": candidate.label, "options": candidate.options,
                    "train": speed.train, "infer": speed.infer, "memory_mib": memory,
                    "train_gflop": train_flops / 1e9, "train_peak": train_flops * speed.train / peak,
                    "infer_peak": infer_flops * speed.infer / peak,
                    "train_ratio": speed.train / peer_speed.train if peer_speed else None,
                    "infer_ratio": speed.infer / peer_speed.infer if peer_speed else None,
                }
                results.append(result)
                rows.append([
                    model, size, candidate.label, candidate.options, _rate(speed.train),
                    _ratio(speed.train, peer_speed.train) if peer_speed else "",
                    _rate(speed.infer), _ratio(speed.infer, peer_speed.infer) if peer_speed else "",
                    _mib(memory), f"{train_flops / 1e9:.1f}", _percent(result["train_peak"]),
                    _percent(result["infer_peak"]),
                ])
            if peer is None and not s.skip_peer:
                rows.append([model, size, "smp", "not installed: pip install -e '.[bench]'"] + ["—"] * 8)
    print_(table(
        ["network", "px", "run", "options", "train img/s", "train ours/peer", "infer img/s",
         "infer ours/peer", "peak MiB", "train GFLOP/img", "train % peak", "infer % peak"],
        rows,
    ) + "\n")
    return results


def section_options(s: Settings, print_: Callable[[str], None]) -> None:
    """Flip each speed option of the defaults for the ResNet34-UNet at the first size."""
    size, model = s.sizes[0], "resnet34_unet"
    default = petlib_candidate(model, s.device, s.config)
    flips = [
        replace(default, label="amp " + ("off" if default.amp_dtype else "on"),
                amp_dtype=None if default.amp_dtype else autocast_dtype(s.device, "on")),
        replace(default, label="channels_last " + ("off" if default.channels_last else "on"),
                channels_last=not default.channels_last),
    ]
    flips.append(replace(default, label="fused AdamW " + ("off" if default.fused_optimizer else "on"),
                         fused_optimizer=not default.fused_optimizer))
    if s.device.type == "cuda":
        flips.append(replace(default, label="cudnn.benchmark off", cudnn_benchmark=False))
    candidates = [replace(default, label="defaults")] + flips
    speeds = measure(candidates, s.device, size, s.batch_size, s.repeats, s.config, s.seconds)
    print_(f"## Speed options ({model}, {size} px, batch {s.batch_size}, {s.device.type})\n")
    print_("Each option of the defaults flipped alone; `auto` turns on an option only on devices "
           "where it is faster.\n")
    rows = [
        [c.label, c.options, _rate(v.train), _ratio(v.train, speeds[0].train), _rate(v.infer),
         _ratio(v.infer, speeds[0].infer)]
        for c, v in zip(candidates, speeds)
    ]
    print_(table(["setting", "options", "train img/s", "vs defaults", "infer img/s", "vs defaults"], rows) + "\n")


def section_compile(s: Settings, print_: Callable[[str], None]) -> None:
    """torch.compile for training: compile time against the time it saves per image."""
    print_(f"## torch.compile for training ({s.device.type}, batch {s.batch_size})\n")
    print_(f"Compile time: the first compiled step less a steady one. Pays back after: compile time / "
           f"time saved per image; an epoch of the full train split is {FULL_TRAIN_IMAGES:,} images.\n")
    rows = []
    # "reduce-overhead" adds CUDA graphs; elsewhere it compiles what "default" does.
    modes = ["default", "reduce-overhead"] if s.device.type == "cuda" else ["default"]
    for size in s.sizes:
        eager = petlib_candidate("resnet34_unet", s.device, replace(s.config, compile=False))
        compiled = [replace(eager, label=f"petlib + compile ({mode})", compile=True, compile_mode=mode) for mode in modes]
        peer = None if s.skip_peer else peer_candidate("resnet34_unet")
        candidates = [eager, *compiled] + ([peer] if peer else [])
        torch._dynamo.reset()
        speeds = measure(candidates, s.device, size, s.batch_size, s.repeats, s.config, s.seconds, infer=False,
                         fresh=False)
        e = speeds[0]
        for mode, c in zip(modes, speeds[1:]):
            compile_s = c.first_step_s - c.step_s
            saved = 1 / e.train - 1 / c.train  # seconds saved per image
            payback = compile_s / saved if saved > 0 else float("inf")
            rows.append([
                "resnet34_unet", size, mode, _rate(e.train), _rate(c.train), _ratio(c.train, e.train),
                f"{compile_s:.0f}", f"{payback:,.0f}" if payback != float("inf") else "never",
                f"{payback / FULL_TRAIN_IMAGES:.2f}" if payback != float("inf") else "never",
                _ratio(c.train, speeds[-1].train) if peer else "—",
            ])
    print_(table(["network", "px", "mode", "eager img/s", "compiled img/s", "speed-up", "compile s",
                  "pays back after (images)", "(epochs)", "compiled / peer"], rows) + "\n")


def _loader(dataset: OxfordPetSegmentation, batch_size: int, num_samples: int, num_workers: int) -> DataLoader:
    """``num_samples`` random images a pass, in batches, as make_loaders builds a training loader."""
    sampler = RandomSampler(dataset, replacement=True, num_samples=num_samples, generator=torch.Generator().manual_seed(0))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=True,
                      persistent_workers=num_workers > 0)


def _time_loader(loader: DataLoader, augment: Augment | None) -> float:
    """Images/second of one pass over ``loader`` (each batch augmented on the CPU, if given)."""
    start = time.perf_counter()
    count = 0
    for batch in loader:
        if augment is not None:
            images, masks = batch["image"], batch["mask"]
            if images.dtype == torch.uint8:  # as the engine's _to_device converts them
                images, masks = images.float().div_(255), masks.float()
            augment(images, masks)
        count += batch["image"].shape[0]
    return count / (time.perf_counter() - start)


def _resnet50_training_flops() -> float:
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


def section_loader(s: Settings, train_flops: float | None, print_: Callable[[str], None]) -> None:
    size, batch_size = s.loader_size, s.loader_batch_size
    print_(f"## Data loader ({size} px, batch {batch_size}, training split of `{s.data_path}`)\n")
    # The disk cache goes to <root>/.cache: give it a throw-away root that links to the data,
    # so that the benchmark never writes beside the user's data (even when it is killed).
    scratch = tempfile.TemporaryDirectory(prefix="petlib-bench-")
    linked = Path(scratch.name)
    for name in ("images", "annotations"):
        (linked / name).symlink_to((s.data_path / name).resolve(), target_is_directory=True)
    sources = []  # (label, dataset, set-up seconds, worker processes)
    for label, root, cache, dtype, workers in [
        ("JPEG: decode + resize every time", s.data_path, False, torch.uint8, 0),
        ("cache in memory (uint8, as `fit`)", s.data_path, True, torch.uint8, 0),
        ("cache on disk, memory-mapped (uint8)", linked, "disk", torch.uint8, 0),
        ("cache in memory, float32 items", s.data_path, True, torch.float32, 0),
        ("cache in memory (uint8), 2 worker processes", s.data_path, True, torch.uint8, 2),
    ]:
        start = time.perf_counter()
        dataset = OxfordPetSegmentation(root, "train", image_size=size, cache=cache, dtype=dtype)
        sources.append((label, dataset, time.perf_counter() - start, workers))
    described = [(label, setup, workers) for label, _, setup, workers in sources]
    loaders: list[tuple[DataLoader, DataLoader]] = []
    try:
        augment = Augment()
        # Images a pass: about s.seconds' worth, from a short probe of each source.
        probe_rates = []
        for _, dataset, _, workers in sources:
            probe = _loader(dataset, batch_size, (16 if workers else 2) * batch_size, workers)
            _time_loader(probe, None)  # starts the workers
            probe_rates.append(_time_loader(probe, None))
            del probe
        probe_aug = _time_loader(_loader(sources[1][1], batch_size, 2 * batch_size, 0), augment)
        for (_, dataset, _, workers), rate in zip(sources, probe_rates):
            alone = max(2, round(s.seconds * rate / batch_size)) * batch_size
            augmented = max(2, round(s.seconds * min(rate, probe_aug) / batch_size)) * batch_size
            pair = (_loader(dataset, batch_size, alone, workers), _loader(dataset, batch_size, augmented, workers))
            for loader in pair:
                _time_loader(loader, None)  # start the workers, touch the pages
            loaders.append(pair)
        alone_runs: list[list[float]] = [[] for _ in sources]
        augmented_runs: list[list[float]] = [[] for _ in sources]
        for _ in range(s.repeats):
            for i, (loader, _) in enumerate(loaders):
                alone_runs[i].append(_time_loader(loader, None))
            for i, (_, loader) in enumerate(loaders):
                augmented_runs[i].append(_time_loader(loader, augment))
    finally:
        del loaders  # stops the worker processes
        sources.clear()
        scratch.cleanup()  # removes the links, not what they point to
    rates = [statistics.median(r) for r in alone_runs]
    augmented = [statistics.median(r) for r in augmented_runs]
    rows = [
        [label, workers, f"{setup:.2f}", _rate(rates[i]), _ratio(rates[i], rates[0]),
         _rate(augmented[i]), _ratio(augmented[i], augmented[0])]
        for i, (label, setup, workers) in enumerate(described)
    ]
    print_(table(["source", "workers", "set-up s", "loader img/s", "vs JPEG", "+ Augment() on CPU img/s",
                  "vs JPEG"], rows) + "\n")
    print_("Set-up: building the dataset, which for a cache decodes every image once. In training, "
           "`Augment()` runs on the batch on the training device (on a GPU after the copy), so there "
           "the loader's own rate is what must keep the GPU fed.\n")
    if train_flops:
        bound = H100_BF16_DENSE_FLOPS / train_flops
        resnet50 = _resnet50_training_flops()
        estimate = (A100_RESNET50_AMP_IMAGES_S * resnet50 / train_flops
                    * H100_BF16_DENSE_FLOPS / A100_BF16_DENSE_FLOPS)
        print_(f"Feeding an H100 (not measured here). A ResNet34-UNet training step costs "
               f"{train_flops / 1e9:.1f} GFLOP per {size}-px image (counted above). (a) Upper bound: at "
               f"the H100 SXM's dense BF16 peak of {H100_BF16_DENSE_FLOPS / 1e12:.0f} TFLOP/s (NVIDIA "
               f"datasheet) no H100 trains faster than {bound:,.0f} images/s. (b) Estimate: NVIDIA's "
               f"published {A100_RESNET50_AMP_IMAGES_S:,} img/s for ResNet-50 mixed-precision training on "
               f"one A100 (DeepLearningExamples) is {A100_RESNET50_AMP_IMAGES_S * resnet50 / 1e12:.0f} TFLOP/s "
               f"({resnet50 / 1e9:.1f} GFLOP per image, counted the same way); at that share of the peak "
               f"an H100 would train about {estimate:,.0f} images/s. The in-memory cache delivers "
               f"{_rate(rates[1])} images/s in one process ({rates[1] / estimate:.1f}x the estimate, "
               f"{rates[1] / bound:.2f}x the bound) and {_rate(rates[4])} with 2 workers "
               f"({rates[4] / estimate:.1f}x, {rates[4] / bound:.2f}x).")
    print_("")


class _TimedIterable:
    """A loader that adds the time spent waiting for each batch to ``waits`` (one entry per pass)."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader
        self.waits: list[float] = []

    def __getattr__(self, name: str) -> Any:  # sampler, dataset, ... of the wrapped loader
        return getattr(self.loader, name)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        waited = 0.0
        iterator = iter(self.loader)
        while True:
            start = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                self.waits.append(waited + time.perf_counter() - start)
                return
            waited += time.perf_counter() - start
            yield batch


def section_epoch(s: Settings, print_: Callable[[str], None]) -> None:
    """Real epochs of ``fit`` on the shipped sample, with the loaders and the augmentation timed."""
    timed: dict[str, _TimedIterable] = {}
    augment_seconds: list[float] = []
    setup: list[float] = []
    real_make_loaders = engine.make_loaders

    def make_loaders(*args, **kwargs):
        start = time.perf_counter()
        loaders = real_make_loaders(*args, **kwargs)
        setup.append(time.perf_counter() - start)  # includes decoding the images into the cache
        for mode, loader in loaders.items():
            timed[mode] = loaders[mode] = _TimedIterable(loader)
        return loaders

    class TimedAugment(Augment):
        def __call__(self, images, masks, generator=None):
            start = time.perf_counter()
            result = super().__call__(images, masks, generator)
            augment_seconds.append(time.perf_counter() - start)
            return result

    model = "resnet34_unet"
    with tempfile.TemporaryDirectory() as out:
        config = replace(s.config, model=model, data_path=str(s.data_path), image_size=s.epoch_size,
                         batch_size=s.epoch_batch_size, epochs=s.epochs, out_dir=out, device=str(s.device),
                         cache=True)
        # Wrap fit's own loaders and augmentation, so that what is timed is a real epoch of fit.
        with mock.patch.object(engine, "make_loaders", make_loaders), mock.patch.object(engine, "Augment", TimedAugment):
            result = engine.fit(config, progress=False, log=None)
    steps = len(timed["train"])
    print_(f"## Epochs of `fit` ({model}, {s.epoch_size} px, batch {config.batch_size}, "
           f"{len(timed['train'].dataset)} train + {len(timed['valid'].dataset)} valid images, {s.device.type})\n")
    print_(f"Loader wait: time blocked on the next batch (train and validation). The loaders and the "
           f"cache were built once before the first epoch in {setup[0]:.2f} s. Augmentation is timed "
           + ("on the CPU." if s.device.type == "cpu" else "only on the CPU (asynchronous on a GPU).") + "\n")
    rows = []
    for epoch, row in enumerate(result.history):
        wait = timed["train"].waits[epoch] + timed["valid"].waits[epoch]
        aug = sum(augment_seconds[epoch * steps:(epoch + 1) * steps]) if s.device.type == "cpu" else float("nan")
        rows.append([
            row["epoch"], f"{row['seconds']:.2f}", f"{wait:.3f}", _percent(wait / row["seconds"]),
            f"{aug:.3f}" if aug == aug else "—", _percent(aug / row["seconds"]) if aug == aug else "—",
        ])
    print_(table(["epoch", "epoch s", "loader wait s", "data share", "augment s", "augment share"], rows) + "\n")


# --------------------------------------------------------------------------- command line


def _header(s: Settings, argv: Sequence[str]) -> str:
    if s.device.type == "cuda":
        name = torch.cuda.get_device_name(s.device)
    else:
        name = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo") as f:
                name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
        except (OSError, StopIteration):
            pass
    versions = f"torch {torch.__version__}"
    if smp_available():
        import segmentation_models_pytorch as smp

        versions += f", segmentation_models_pytorch {smp.__version__}"
    return (
        f"# petlib benchmark, {datetime.date.today().isoformat()}\n\n"
        f"`python -m petlib.bench {' '.join(argv)}`\n\n"
        f"Device: {s.device} ({name}); {os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads; "
        f"{versions}. Figures are medians of {s.repeats} repeat(s), ours and the peer alternating.\n"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argument_parser("python -m petlib.bench", __doc__)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[128, 256], help="image sizes (px)")
    parser.add_argument(*option("batch_size"), type=int, default=8, help="training batch (inference: twice this)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats; figures are medians")
    parser.add_argument("--seconds", type=float, default=1.0, help="about how long one repeat of one row runs")
    parser.add_argument("--device", default=None, help="default: CUDA, then MPS, then the CPU")
    parser.add_argument(*option("skip_peer"), action="store_true", help="time petlib only")
    parser.add_argument("--compile", action="store_true",
                        help="add the torch.compile section (minutes of compiling on a CPU); same as --sections ... compile")
    parser.add_argument("--memory", action=Switch, default=True, help="measure peak memory (--no_memory skips the column)")
    parser.add_argument("--sections", nargs="+", default=["networks", "options", "loader", "epoch"],
                        choices=["networks", "options", "compile", "loader", "epoch"], help="which sections to run")
    parser.add_argument(*option("data_path"), type=Path, default=SAMPLE_ROOT,
                        help="dataset for the loader and epoch sections (default: the shipped sample)")
    parser.add_argument(*option("out_file", "--out"), type=Path, default=None,
                        help="also write the report to this markdown file")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one repeat, to check that it runs")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    device = pick_device(args.device)
    s = Settings(
        device=device, models=args.models, sizes=args.sizes, batch_size=args.batch_size, repeats=args.repeats,
        seconds=args.seconds, skip_peer=args.skip_peer, memory=args.memory, data_path=args.data_path,
        # The sample's 14 training images: batches of 4 make an epoch of several steps.
        loader_size=256, loader_batch_size=TrainConfig().batch_size, epoch_size=256, epoch_batch_size=4, epochs=2,
        matmul_n=8192 if device.type == "cuda" else 2048,
    )
    if args.quick:
        s = replace(s, sizes=[32], batch_size=2, repeats=1, seconds=0.01, memory=s.memory and device.type != "cpu",
                    loader_size=32, loader_batch_size=4, epoch_size=32, epochs=1, matmul_n=256)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    lines: list[str] = []

    def print_(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    print_(_header(s, argv))
    if "networks" in args.sections:
        peak, _ = section_peak(s, print_)
        section_networks(s, peak, print_)
    if "options" in args.sections:
        section_options(s, print_)
    if args.compile or "compile" in args.sections:
        section_compile(s, print_)
    if "loader" in args.sections:
        flops, _ = count_flops(petlib_candidate("resnet34_unet", device), s.loader_size)
        section_loader(s, flops, print_)
    if "epoch" in args.sections:
        section_epoch(s, print_)
    if args.out_file is not None:
        args.out_file.parent.mkdir(parents=True, exist_ok=True)
        args.out_file.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    run_main(main)
