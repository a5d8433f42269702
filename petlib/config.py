"""Typed training configuration and the named recipes compared in the README.

A :class:`TrainConfig` holds every setting of a run. It is saved inside each checkpoint
and as JSON beside it, so a run can be repeated or resumed exactly. Notebooks change it
with :func:`dataclasses.replace`; ``python -m petlib.train`` exposes each field as a
flag of the same name.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TrainConfig", "RECIPES", "DEFAULT_LR", "recipe"]

#: petlib's peak learning rate per network (AdamW, one-cycle), from learning-rate range
#: tests (``python -m petlib.experiments lr-find``) and validation Dice; see the README.
DEFAULT_LR: dict[str, float] = {"unet": 3e-4, "resnet34_unet": 1e-3}


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
    # Optimisation.
    epochs: int = 50
    batch_size: int = 16
    lr: float | None = None  # None: petlib's learning rate for the model, see DEFAULT_LR
    optimizer: str = "adamw"  # "adamw" or "adam"
    weight_decay: float = 1e-4
    scheduler: str = "onecycle"  # "onecycle", "cosine", "none"
    warmup_epochs: float = 1.0  # for "cosine"; "onecycle" warms up for pct_start of the run
    min_lr: float = 1e-5  # final learning rate of "cosine"
    grad_clip: float | None = 1.0  # max gradient norm; None disables
    loss: str = "bce+dice"  # "bce" (the lab's), "dice", "bce+dice"
    augment: bool = True
    # Augmentation strength (see petlib.transforms.Augment): the random crop keeps at least
    # crop_scale_min of the image's area; rotation in degrees; colour jitter factor range.
    # The defaults are the mildest of the settings compared on validation Dice (README):
    # with 30 epochs from scratch, stronger augmentation underfits.
    crop_scale_min: float = 0.8
    crop_scale_max: float = 1.0  # above 1 also zooms out (smaller pets, reflected borders)
    rotation: float = 5.0
    color_jitter: float = 0.1
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
    device: str | None = None  # default: CUDA, then MPS, then CPU

    @property
    def learning_rate(self) -> float:
        """``lr``, or petlib's default for ``model`` when ``lr`` is None."""
        return self.lr if self.lr is not None else DEFAULT_LR.get(self.model, 1e-3)

    def __post_init__(self) -> None:
        # A misspelt speed option would otherwise quietly mean "off".
        for option in ("amp", "channels_last", "fused_optimizer"):
            if getattr(self, option) not in SWITCH_VALUES:
                raise ValueError(f"{option}={getattr(self, option)!r}; valid: {', '.join(SWITCH_VALUES)}")
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(f"compile_mode={self.compile_mode!r}; valid: {', '.join(COMPILE_MODES)}")

    @property
    def name(self) -> str:
        return self.run_name or self.model

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Build from a dict, ignoring keys this version does not know (older checkpoints)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def save_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


#: Values of the "auto"/"on"/"off" speed options.
SWITCH_VALUES = ("auto", "on", "off")
#: torch.compile's modes (``torch.compile(mode=...)``).
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

#: Named recipes: the lab's, segmentation_models_pytorch's example, and petlib's.
#: Each is a set of overrides on :class:`TrainConfig`; see :func:`recipe`.
RECIPES: dict[str, dict[str, Any]] = {
    # The course lab: BCE, Adam at a constant 5e-5, no augmentation.
    "lab": dict(
        loss="bce", optimizer="adam", lr=5e-5, weight_decay=0.0, scheduler="none",
        grad_clip=None, augment=False, tta=False,
    ),
    # smp's binary-segmentation example: soft Dice, Adam 2e-4, cosine to 1e-5, no augmentation.
    "smp": dict(
        loss="dice", optimizer="adam", lr=2e-4, weight_decay=0.0, scheduler="cosine",
        warmup_epochs=0.0, min_lr=1e-5, grad_clip=None, augment=False, tta=False,
    ),
    # petlib's defaults (the TrainConfig defaults).
    "petlib": dict(),
}


def recipe(name: str, **overrides: Any) -> TrainConfig:
    """A :class:`TrainConfig` for the recipe ``name`` with ``overrides`` applied."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; valid recipes: {', '.join(RECIPES)}")
    return TrainConfig(**{**RECIPES[name], **overrides})
