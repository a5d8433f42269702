"""Typed training configuration and the named recipes compared in the README.

A :class:`TrainConfig` holds every setting of a run. It is saved inside each checkpoint
and as JSON beside it, so a run can be repeated or resumed exactly. Notebooks change it
with :func:`dataclasses.replace`; ``python -m petlib.train`` exposes each field as a
flag of the same name.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from petlib.data.transforms import Augment
from petlib.losses import LOSSES, WEIGHTED_DICE_LOSSES
from petlib.models import MODELS

__all__ = [
    "TrainConfig", "RECIPES", "DEFAULT_LR", "DEFAULT_BATCH_SIZE", "SAMPLE_SETTINGS", "recipe", "sample_config",
    "OPTIMIZERS", "SCHEDULERS", "SWITCH_VALUES", "COMPILE_MODES", "CACHE_VALUES",
]

# The one list of each enumerated option: TrainConfig checks against it, the engine's builders
# name it in their errors, and the command lines offer it as argparse choices.
#: Optimisers :func:`petlib.training.engine.fit` builds.
OPTIMIZERS = ("adamw", "adam")
#: Learning-rate schedules :func:`petlib.training.engine.fit` builds.
SCHEDULERS = ("onecycle", "cosine", "none")
#: Values of the "auto"/"on"/"off" speed options.
SWITCH_VALUES = ("auto", "on", "off")
#: torch.compile's modes (``torch.compile(mode=...)``).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
#: Values of ``cache`` (see :class:`petlib.data.OxfordPetSegmentation`).
CACHE_VALUES = (True, False, "memory", "disk")

#: petlib's peak learning rate per network (AdamW, one-cycle), from learning-rate range
#: tests (``python -m petlib.research.experiments lr-find``) and validation Dice; see the README.
DEFAULT_LR: dict[str, float] = {"unet": 3e-4, "resnet34_unet": 1e-3}

#: petlib's batch size per network (per process), from cross-validation on the sample's 240
#: trainval images (results/README.md, 2026-12-04): batch 8 -- twice the optimiser steps -- beat
#: 16 for the UNet (+0.014 held-out Dice, 95 % interval +0.010 to +0.017, every fold) and made no
#: difference for the ResNet34-UNet (+0.001, -0.018 to +0.019), which keeps 16.
DEFAULT_BATCH_SIZE: dict[str, int] = {"unet": 8, "resnet34_unet": 16}


@dataclass
class TrainConfig:
    """Everything that defines a training run.

    The defaults are petlib's recipe (see :data:`RECIPES` and the README's results).
    """

    # What to train and on what.
    model: str = "resnet34_unet"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    data_path: str = "dataset/oxford-iiit-pet"
    image_size: int = 256
    # Use only this many images of each split, evenly spaced through it (tests, quick runs).
    subset: int | None = None
    # False (petlib's default): train on every trainval image and keep the last epoch. True: hold
    # out every 10th trainval image (smp's split) to validate each epoch and keep the epoch with
    # the best validation Dice, what the notebooks do to draw their curves. Why the default: in
    # cross-validation at the hold-out budget (README, "How the recipe is chosen") training on the
    # validation tenth too and keeping the last epoch scored +0.012 Dice (3 standard errors) above
    # validating on it: 11 % more images, and the one-cycle schedule's decayed last epoch instead of
    # an epoch picked on a few images. On the full dataset the tenth is 368 more training images.
    validate: bool = False
    # Optimisation.
    epochs: int = 50
    batch_size: int | None = None  # None: petlib's batch size for the model, see DEFAULT_BATCH_SIZE
    lr: float | None = None  # None: petlib's learning rate for the model, see DEFAULT_LR
    optimizer: str = "adamw"  # one of OPTIMIZERS
    weight_decay: float = 1e-4
    scheduler: str = "onecycle"  # one of SCHEDULERS
    # "onecycle" warms up for warmup_fraction of the run (at least warmup_epochs, at most half);
    # "cosine" for warmup_epochs.
    warmup_fraction: float = 0.3
    warmup_epochs: float = 1.0
    min_lr: float = 1e-5  # final learning rate of "cosine"
    grad_clip: float | None = 1.0  # max gradient norm; None disables
    # Keep an exponential moving average of the weights (decay per optimiser step, e.g. 0.98);
    # it is what the run validates and keeps. None: the weights as trained.
    ema_decay: float | None = None
    loss: str = "bce+dice"  # one of petlib.losses.LOSSES: "bce" (the lab's), "dice", "bce+dice", ...
    dice_weight: float = 1.0  # the soft Dice term's weight against BCE's 1 in "bce+dice" losses
    # Leave the trimap's border band (class 3, the outline between pet and background) out of the
    # training loss; it is still scored as pet.
    ignore_border: bool = False
    augment: bool = True
    # Augmentation strength, TrainConfig.augmentation(): the random crop keeps
    # at least crop_scale_min of the image's area; rotation in degrees; colour jitter factor range.
    # One set of defaults, Augment's (0.8-1.0, 5 degrees, 0.1; why those: see Augment).
    crop_scale_min: float = Augment.scale[0]
    crop_scale_max: float = Augment.scale[1]  # above 1 also zooms out (smaller pets, reflected borders)
    rotation: float = Augment.rotation
    color_jitter: float = Augment.color_jitter
    copy_paste: float = Augment.copy_paste  # probability of pasting another photo's pet (Augment.paste)
    # Evaluation.
    eval_batch_size: int | None = None  # default: 2 x batch_size
    tta: bool = True  # average logits with the horizontally flipped image (validation and test)
    # Speed; "auto" turns an option on only on devices where it helps.
    amp: str = "auto"  # "auto" (on for CUDA), "on", "off"
    channels_last: str = "auto"  # "auto" (on for CUDA), "on", "off"
    fused_optimizer: str = "auto"  # one fused kernel for the Adam(W) update: "auto" (on for CUDA and CPU), "on", "off"
    compile: bool = False  # torch.compile the model for training
    # torch.compile's mode: "default", or "reduce-overhead", which also replays each step as a
    # CUDA graph, one launch instead of hundreds: what pays where the GPU waits on the host.
    compile_mode: str = "default"
    cache: bool | str = True  # decode and resize every image once ("disk" persists it)
    num_workers: int | None = None
    # Bookkeeping.
    seed: int = 0
    out_dir: str = "saved_models"
    run_name: str | None = None  # checkpoint file stem; default: the model name
    # Write <name>_last.pth (weights, optimiser and schedule state) every epoch, for resuming.
    # Off saves the disk traffic of quick runs; such a run cannot be resumed.
    save_last: bool = True
    overwrite: bool = False  # replace an earlier run's checkpoints of the same name (else fit refuses)
    device: str | None = None  # default: CUDA, then MPS, then CPU

    @property
    def learning_rate(self) -> float:
        """``lr``, or petlib's default for ``model`` when ``lr`` is None."""
        return self.lr if self.lr is not None else DEFAULT_LR.get(self.model, 1e-3)

    def __post_init__(self) -> None:
        # Check everything here, before any data is read: a misspelt option would otherwise
        # fail minutes into a run, or worse, quietly mean something else ("off").
        _check_choice("model", self.model, tuple(MODELS))
        if self.batch_size is None:
            self.batch_size = DEFAULT_BATCH_SIZE[self.model]
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("scheduler", self.scheduler, SCHEDULERS)
        _check_choice("loss", self.loss, tuple(LOSSES))
        _check_number("dice_weight", self.dice_weight, 0)
        if self.dice_weight != 1.0 and self.loss not in WEIGHTED_DICE_LOSSES:
            _invalid("dice_weight", self.dice_weight, f"1 for loss {self.loss!r} (it has no BCE + Dice weights)")
        for option in ("amp", "channels_last", "fused_optimizer"):
            _check_choice(option, getattr(self, option), SWITCH_VALUES)
        _check_choice("compile_mode", self.compile_mode, COMPILE_MODES)
        # `in` would take 1 for True and 0 for False: compare types too.
        if not any(type(self.cache) is type(v) and self.cache == v for v in CACHE_VALUES):
            _invalid("cache", self.cache, "True, False, 'memory' or 'disk'")
        for f in dataclasses.fields(self):
            if f.type == "bool" and not isinstance(getattr(self, f.name), bool):  # annotations are strings here
                _invalid(f.name, getattr(self, f.name), "True or False")
        if not isinstance(self.model_kwargs, dict):
            _invalid("model_kwargs", self.model_kwargs, "a dict of keyword arguments for the model")
        for name in ("data_path", "out_dir"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                _invalid(name, getattr(self, name), "a non-empty path string")
        # The networks pad to a multiple of their stride inside forward, so any size works.
        _check_int("image_size", self.image_size, 1)
        _check_int("epochs", self.epochs, 1)
        _check_int("batch_size", self.batch_size, 1)
        _check_int("seed", self.seed, None)
        _check_int("subset", self.subset, 1, optional=True)
        _check_int("eval_batch_size", self.eval_batch_size, 1, optional=True)
        _check_int("num_workers", self.num_workers, 0, optional=True)
        _check_number("lr", self.lr, 0, low_open=True, optional=True)
        _check_number("weight_decay", self.weight_decay, 0)
        _check_number("warmup_fraction", self.warmup_fraction, 0, high=0.5)
        _check_number("warmup_epochs", self.warmup_epochs, 0)
        _check_number("min_lr", self.min_lr, 0)
        _check_number("grad_clip", self.grad_clip, 0, low_open=True, optional=True)
        _check_number("ema_decay", self.ema_decay, 0, low_open=True, high=1, high_open=True, optional=True)
        _check_number("crop_scale_min", self.crop_scale_min, 0, low_open=True)
        if isinstance(self.crop_scale_max, bool) or not isinstance(self.crop_scale_max, (int, float)) \
                or not self.crop_scale_min <= self.crop_scale_max < math.inf:
            _invalid("crop_scale_max", self.crop_scale_max, f"a number >= crop_scale_min ({self.crop_scale_min:g})")
        _check_number("rotation", self.rotation, 0, high=180)
        # A factor of 1 - 1 = 0 would turn images black (brightness) or flat grey (contrast).
        _check_number("color_jitter", self.color_jitter, 0, high=1, high_open=True)
        _check_number("copy_paste", self.copy_paste, 0, high=1)
        if self.run_name is not None and (not isinstance(self.run_name, str) or not self.run_name
                                          or any(sep in self.run_name for sep in "/\\")):
            _invalid("run_name", self.run_name, "None or a file stem without path separators")
        if self.device is not None:
            try:
                import torch

                torch.device(self.device)
            except (RuntimeError, TypeError):
                _invalid("device", self.device, "None (automatic) or a torch device such as 'cpu', 'cuda', 'cuda:1', 'mps'")

    @property
    def name(self) -> str:
        return self.run_name or self.model

    def augmentation(self) -> Augment | None:
        """The batch augmentation this config asks for (``crop_scale_min``/``max``, ``rotation``,
        ``color_jitter``, ``copy_paste``), or None when ``augment`` is off."""
        if not self.augment:
            return None
        return Augment(scale=(self.crop_scale_min, self.crop_scale_max), rotation=self.rotation,
                       color_jitter=self.color_jitter, copy_paste=self.copy_paste)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a dict, ignoring keys this version does not know (older checkpoints)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def save_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def _invalid(name: str, value: Any, expected: str) -> None:
    raise ValueError(f"TrainConfig.{name}={value!r} is not valid; expected {expected}")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        _invalid(name, value, f"one of {', '.join(choices)}")


def _check_int(name: str, value: Any, low: int | None, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    # bool is an int subclass; True epochs is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
        bound = "an integer" + (f" >= {low}" if low is not None else "")
        _invalid(name, value, bound + (" or None" if optional else ""))


def _check_number(
    name: str, value: Any, low: float, *, low_open: bool = False, high: float | None = None,
    high_open: bool = False, optional: bool = False,
) -> None:
    if optional and value is None:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low)
    if high is not None:
        ok = ok and (value < high if high_open else value <= high)
    if not ok:
        bound = f"a number {'>' if low_open else '>='} {low:g}"
        if high is not None:
            bound += f" and {'<' if high_open else '<='} {high:g}"
        _invalid(name, value, bound + (" or None" if optional else ""))


#: Named recipes: the lab's, segmentation_models_pytorch's example, and petlib's.
#: Each is a set of overrides on :class:`TrainConfig`; see :func:`recipe`.
RECIPES: dict[str, dict[str, Any]] = {
    # The course lab: BCE, Adam at a constant 5e-5, no augmentation.
    "lab": dict(
        loss="bce", optimizer="adam", lr=5e-5, weight_decay=0.0, scheduler="none",
        grad_clip=None, augment=False, tta=False, validate=True, batch_size=16,
    ),
    # smp's binary-segmentation example: its soft Dice (pooled over the batch), Adam 2e-4, cosine
    # to 1e-5, no augmentation.
    "smp": dict(
        loss="dice_pooled", optimizer="adam", lr=2e-4, weight_decay=0.0, scheduler="cosine",
        warmup_epochs=0.0, min_lr=1e-5, grad_clip=None, augment=False, tta=False, validate=True, batch_size=16,
    ),
    # petlib's defaults (the TrainConfig defaults).
    "petlib": dict(),
}


def recipe(name: str, **overrides: Any) -> TrainConfig:
    """A :class:`TrainConfig` for the recipe ``name`` with ``overrides`` applied."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; valid recipes: {', '.join(RECIPES)}")
    return TrainConfig(**{**RECIPES[name], **overrides})


#: What a run on the embedded 300-image sample changes, per network: what ``make run`` trains
#: when the full dataset is absent, and what the notebooks use then. Chosen on the sample's
#: **validation** split to fit a few minutes of two CPU cores (README, "Results on the
#: embedded sample"); the UNet costs about 5x the ResNet34-UNet per image, so it runs smaller.
SAMPLE_SETTINGS: dict[str, dict[str, Any]] = {
    # validate: the notebooks draw validation curves and compare the networks' best epochs.
    "resnet34_unet": dict(image_size=128, epochs=14, batch_size=8, validate=True),
    "unet": dict(image_size=64, epochs=10, batch_size=8, validate=True),
}


def sample_config(model: str, data_path: str, **overrides: Any) -> TrainConfig:
    """petlib's recipe with :data:`SAMPLE_SETTINGS` for ``model`` on the sample at ``data_path``."""
    if model not in SAMPLE_SETTINGS:
        raise ValueError(f"no sample settings for {model!r}; valid: {', '.join(SAMPLE_SETTINGS)}")
    return recipe("petlib", model=model, data_path=str(data_path), **{**SAMPLE_SETTINGS[model], **overrides})
