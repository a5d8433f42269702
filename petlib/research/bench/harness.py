"""What the benchmark times, and how: a way of running a network (:class:`Candidate`), its
model, optimiser and batches on the device (:class:`Runner`), and :func:`measure`, which times
candidates in turn and keeps every repeat (the tables show medians and their min-max).

Whom petlib is compared with (:func:`peer_candidates`): for the ResNet34-UNet, smp's Unet with
**the same speed options** as petlib (the headline: the code against the code) and smp as its
users run it (float32, torch's defaults); for the UNet, which has no outside peer, petlib
itself with every option off -- an ablation of the options, not a peer.

Both contenders run the same training step (:func:`~petlib.training.engine.train_one_epoch` with
petlib's loss, AdamW and gradient clipping) on the same uint8 batch already on the device, so
the ratio measures the network and its speed options only.
"""
from __future__ import annotations

import copy
import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor, nn

from petlib.evaluation.timing import synchronize, time_forward
from petlib.losses import build_loss
from petlib.models import build_model
from petlib.training import engine
from petlib.training.config import TrainConfig
from petlib.training.device import autocast, speed_options, use_channels_last
from petlib.training.engine import to_device
from petlib.training.optim import build_optimizer

__all__ = [
    "PEER", "PEER_MODEL", "SAME_OPTIONS", "AS_USERS_RUN_IT", "ABLATION", "Candidate", "petlib_candidate",
    "smp_available", "peer_candidate", "same_options_peer", "peer_candidates", "random_batch", "Runner",
    "Throughput", "measure", "steady_warmup",
]

#: The peer of petlib's ResNet34-UNet, as the report names it.
PEER = 'smp.Unet("resnet34", encoder_weights=None, classes=1)'
#: The petlib network :data:`PEER` builds the same architecture as; the sections that time one
#: network (speed options, compile, loader, epoch) time this one.
PEER_MODEL = "resnet34_unet"


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
    inference_channels_last: bool | None = None  # None: as in training (``channels_last``)

    @property
    def infers_channels_last(self) -> bool:
        return self.channels_last if self.inference_channels_last is None else self.inference_channels_last

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
        elif self.infers_channels_last:
            parts.append("channels_last in inference")
        if self.fused_optimizer:
            parts.append("fused AdamW")
        if self.compile:
            parts.append("compile" + ("" if self.compile_mode == "default" else f" ({self.compile_mode})"))
        return ", ".join(parts)


def petlib_candidate(model: str, device: torch.device, config: TrainConfig | None = None) -> Candidate:
    """petlib as :func:`~petlib.training.engine.fit` runs it on ``device`` with ``config``'s speed options."""
    config = config or TrainConfig()
    options = speed_options(config, device)
    return Candidate(
        "petlib", model, amp_dtype=options.amp_dtype, channels_last=options.channels_last,
        compile=config.compile, compile_mode=config.compile_mode, cudnn_benchmark=options.cudnn_benchmark,
        fused_optimizer=options.fused_optimizer,
        inference_channels_last=use_channels_last(device, config.channels_last, inference=True),
    )


def smp_available() -> bool:
    try:
        import segmentation_models_pytorch  # noqa: F401
    except ImportError:
        return False
    return True


#: Labels of the comparison rows.
SAME_OPTIONS = "smp, same options"
AS_USERS_RUN_IT = "smp"
ABLATION = "ablation: petlib, options off"


def peer_candidate(model: str) -> Candidate | None:
    """The plain float32 comparison of ``model``: smp's Unet as its users run it for the
    ResNet34-UNet (``None`` without smp), and for the UNet petlib's own UNet with every speed
    option off (an ablation, labelled so)."""
    if model == PEER_MODEL:
        return Candidate(AS_USERS_RUN_IT, model, source="smp", cudnn_benchmark=False) if smp_available() else None
    return Candidate(ABLATION, model, cudnn_benchmark=False)


def same_options_peer(ours: Candidate) -> Candidate | None:
    """smp's Unet with exactly ``ours``'s speed options (autocast dtype, channels-last, fused
    AdamW, cudnn.benchmark, compile): ``None`` without smp or for a network smp has no twin of."""
    if ours.model != PEER_MODEL or not smp_available():
        return None
    return replace(ours, label=SAME_OPTIONS, source="smp")


def peer_candidates(ours: Candidate) -> list[Candidate]:
    """Whom ``ours`` is compared with, the headline first: smp with the same options, then smp
    as its users run it (float32) for the ResNet34-UNet; the options-off ablation for the UNet."""
    same = same_options_peer(ours)
    plain = peer_candidate(ours.model)
    return [c for c in (same, plain) if c is not None]


def random_batch(batch_size: int, size: int, device: torch.device) -> dict[str, Tensor]:
    """A batch as the engine's loaders deliver it: uint8 images and masks, here already on the device."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8, generator=generator)
    masks = torch.randint(0, 2, (batch_size, 1, size, size), dtype=torch.uint8, generator=generator)
    return {"image": images.to(device), "mask": masks.to(device)}


class Runner:
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
        self.optimizer = build_optimizer(config, model, fused=candidate.fused_optimizer)
        self.loss_fn = build_loss(config.loss)
        self.scaler = torch.amp.GradScaler(device.type) if candidate.amp_dtype == torch.float16 else None
        self.train_batch = random_batch(batch_size, size, device)
        # Evaluation runs at twice the training batch, as the engine's does; converted to float
        # (and channels_last) once here, so that inference times the network alone.
        # Inference runs in petlib's inference layout (channels-last on the CPU too: inference_layout),
        # on a copy where that differs from training's.
        self.infer_model = model
        if candidate.infers_channels_last != candidate.channels_last:
            layout = torch.channels_last if candidate.infers_channels_last else torch.contiguous_format
            self.infer_model = copy.deepcopy(model).to(memory_format=layout)
        self.eval_images, _ = to_device(random_batch(2 * batch_size, size, device), device,
                                        candidate.infers_channels_last)

    def _set_cudnn(self) -> None:
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = self.candidate.cudnn_benchmark

    def train(self, steps: int) -> float:
        """Seconds for ``steps`` training steps of the engine's own loop."""
        self._set_cudnn()
        synchronize(self.device)
        start = time.perf_counter()
        # Ends by reading the mean loss back, so the device has finished when it returns.
        engine.train_one_epoch(
            self.train_model, [self.train_batch] * steps, self.optimizer, self.loss_fn, self.device,
            scaler=self.scaler, amp_dtype=self.candidate.amp_dtype, grad_clip=self.config.grad_clip,
            channels_last=self.candidate.channels_last, progress=False,
        )
        return time.perf_counter() - start

    def infer(self, steps: int) -> float:
        """Seconds for ``steps`` forward passes in eval and inference mode (eval batch)."""
        self._set_cudnn()
        with autocast(self.device, self.candidate.amp_dtype):
            return time_forward(self.infer_model, self.eval_images, steps)


def _warmup_steps(device: torch.device) -> int:
    # cuDNN's autotuner tries kernels during the first steps; the CPU needs one for allocations.
    return 3 if device.type == "cuda" else 1


def steady_warmup(step: Callable[[], float], min_steps: int, max_steps: int = 30, window: int = 3,
                  tolerance: float = 0.15) -> list[float]:
    """Run ``step`` (returns its seconds) until it is steady; the seconds of every step run.

    Steady: the last ``window`` steps are each within ``tolerance`` of their fastest, after at
    least ``min_steps``. For a compiled model the warm-up is more than the first step:
    ``reduce-overhead`` records its CUDA graphs in later steps, and guards may recompile, so
    the cost of compiling is every warm-up step less as many steady ones.
    """
    times: list[float] = []
    while len(times) < max_steps:
        times.append(step())
        if len(times) >= max(min_steps, window + 1):
            last = times[-window:]
            if max(last) <= (1 + tolerance) * min(last):
                break
    return times


@dataclass
class Throughput:
    """One candidate at one size: medians and every repeat (images/s).

    ``first_step_s``: the first training step (includes any compilation); ``warmup_s`` and
    ``warmup_steps``: the whole warm-up until steady (for compiled candidates, see
    :func:`steady_warmup`; else the fixed warm-up); ``step_s``: a steady step.
    """

    train: float  # images/s
    infer: float  # images/s
    train_runs: list[float] = field(default_factory=list)
    infer_runs: list[float] = field(default_factory=list)
    first_step_s: float = float("nan")
    step_s: float = float("nan")
    warmup_s: float = float("nan")
    warmup_steps: int = 0

    @property
    def compile_s(self) -> float:
        """The warm-up's cost over steady steps: every warm-up step less as many steady ones."""
        return self.warmup_s - self.warmup_steps * self.step_s


def measure(
    candidates: Sequence[Candidate], device: torch.device, size: int, batch_size: int, repeats: int,
    config: TrainConfig, seconds: float = 1.0, infer: bool = True, fresh: bool = True,
) -> list[Throughput]:
    """Training and inference images/second of each candidate, interleaved, over ``repeats``.

    Each repeat runs as many steps as fill about ``seconds`` (at least one), candidates taking
    turns in an order that reverses every repeat. With ``fresh`` every repeat builds each
    candidate anew (model, optimiser, batches) and warms it up: one build can run 10-20 %
    slower than another of the same setting (where its memory landed), and that must not
    decide a ratio. ``fresh=False`` keeps one build per candidate, for compiled models, whose
    compile time would otherwise recur.
    """
    def build(candidate: Candidate) -> Runner:
        return Runner(candidate, device, size, batch_size, config)

    def warm_up(runner: Runner, until_steady: bool = False) -> tuple[float, float, list[float]]:
        """(seconds of the first step, of a steady step, of every warm-up step); the inference
        warm-up too. ``until_steady`` (compiled candidates): step until steady, so that the
        whole compile cost is counted (CUDA-graph recording comes after the first step)."""
        if until_steady:
            window = 3
            times = steady_warmup(lambda: runner.train(1), min_steps=_warmup_steps(device) + window, window=window)
            warmup, step = times[:-window], statistics.median(times[-window:])
        else:
            warmup = [runner.train(1) for _ in range(_warmup_steps(device))]
            step = runner.train(1)
        if infer:
            for _ in range(_warmup_steps(device)):
                runner.infer(1)
        return warmup[0], step, warmup

    runners: list[Runner | None] = [None] * len(candidates)
    plans = []  # (first step s, steady step s, training steps a repeat, inference steps a repeat, warm-up)
    for i, candidate in enumerate(candidates):
        runner = build(candidate)
        first, step, warmup = warm_up(runner, until_steady=candidate.compile)
        infer_steps = max(1, round(seconds / runner.infer(1))) if infer else 0
        plans.append((first, step, max(1, round(seconds / step)), infer_steps, warmup))
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
                warm_up(runner, until_steady=candidates[i].compile)
            _, _, train_steps, infer_steps, _ = plans[i]
            train_runs[i].append(train_steps * batch_size / runner.train(train_steps))
            if infer:
                infer_runs[i].append(infer_steps * 2 * batch_size / runner.infer(infer_steps))
            del runner
    runners.clear()
    gc.collect()
    return [
        Throughput(
            train=statistics.median(t), infer=statistics.median(v) if v else float("nan"),
            train_runs=t, infer_runs=v, first_step_s=plan[0], step_s=plan[1], warmup_s=sum(plan[4]),
            warmup_steps=len(plan[4]),
        )
        for t, v, plan in zip(train_runs, infer_runs, plans)
    ]
