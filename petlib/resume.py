"""Where a run stands: its progress (history and best score), the resume point an interrupted
run left in ``<name>_last.pth``, and the refusal to replace an earlier run's best checkpoint.

:func:`petlib.engine.fit` reads the resume point before it builds anything (the stored config
decides what to build), and applies it to the model, optimiser, schedule and scaler it built.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .checkpoint import load_checkpoint, load_state_dict
from .config import TrainConfig
from .runpaths import RunPaths

__all__ = ["RunExistsError", "Progress", "ResumePoint"]


class RunExistsError(FileExistsError):
    """A new run would replace the best checkpoint of an earlier run of the same name."""


def _run_exists_message(best_path: Path) -> str:
    try:
        earlier = load_checkpoint(best_path)
        what = f" (epoch {earlier.get('epoch')}, validation Dice {float(earlier.get('best_dice', math.nan)):.4f})"
    except Exception:  # an unreadable file is still in the way; say so without its details
        what = ""
    return (
        f"{best_path} holds the best checkpoint of an earlier run{what}; petlib does not replace it silently.\n"
        "Either resume that run (resume=True, --resume), replace it (overwrite=True, --overwrite), or\n"
        "give this run another name or folder (run_name=... / --run_name, out_dir=... / --out_dir)."
    )


@dataclass
class Progress:
    """The run so far: one history row per epoch, the best validation Dice, the next epoch."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_dice: float = -1.0
    next_epoch: int = 1

    def record(self, row: dict[str, float]) -> bool:
        """Add an epoch's ``row``; whether it is the epoch to keep: one that beats every earlier
        epoch (a tie keeps the earlier) or, in a run without validation (NaN ``val_dice``), each
        newest epoch."""
        self.history.append(row)
        if math.isnan(row["val_dice"]):
            self.best_dice = math.nan
            return True
        improved = row["val_dice"] > self.best_dice
        if improved:
            self.best_dice = row["val_dice"]
        return improved


@dataclass
class ResumePoint:
    """The resume point an interrupted run left in ``<name>_last.pth``; ``state`` None: a new run."""

    state: dict[str, Any] | None = None
    source: Path | None = None

    @classmethod
    def read(cls, config: TrainConfig, resume: bool, paths: RunPaths, log: Callable[[str], None],
             ) -> tuple[TrainConfig, ResumePoint]:
        """The config to train with and the resume point.

        A resumed run keeps the config stored with it, except where files go, the device and
        (at a constant learning rate only) a longer run. A new run refuses to replace an
        earlier run's best checkpoint unless ``config.overwrite``.
        """
        if not (resume and paths.last.exists()):
            if resume:
                log(f"nothing to resume at {paths.last}; starting a new run")
            if paths.best.exists() and not config.overwrite:
                raise RunExistsError(_run_exists_message(paths.best))
            return config, cls()
        state = load_checkpoint(paths.last, map_location="cpu")
        stored = TrainConfig.from_dict(state["config"])
        epochs = max(stored.epochs, config.epochs)
        if epochs != stored.epochs and stored.scheduler != "none":
            # A warm-up/decay schedule was laid out for the planned length; stretching it
            # mid-run would jump the learning rate back up. Only a constant rate extends.
            raise ValueError(
                f"{paths.last} was planned for {stored.epochs} epochs with a {stored.scheduler!r} schedule; "
                f"resuming continues that plan. To train for {config.epochs} epochs start a new run "
                "(another --run_name or --out_dir), or use --scheduler none."
            )
        config = TrainConfig.from_dict({**stored.to_dict(), "out_dir": config.out_dir, "device": config.device,
                                        "epochs": epochs})
        if config.epochs != stored.epochs:
            log(f"extending the run from {stored.epochs} to {config.epochs} epochs")
        log(f"resuming {paths.last} after epoch {state['epoch']}")
        return config, cls(state, paths.last)

    def apply(self, model: nn.Module, optimizer: torch.optim.Optimizer,
              scheduler: torch.optim.lr_scheduler.LRScheduler | None, scaler: torch.amp.GradScaler) -> Progress:
        """Load the stored model, optimiser, schedule and scaler states; the progress so far.

        A scaler disabled (no float16) ignores its state; one enabled reads the state an fp16 run stored.
        """
        if self.state is None:
            return Progress()
        state = self.state
        load_state_dict(model, state["model_state"], source=str(self.source))
        optimizer.load_state_dict(state["optimizer_state"])
        if scheduler is not None and state.get("scheduler_state") is not None:
            scheduler.load_state_dict(state["scheduler_state"])
        if state.get("scaler_state") is not None:
            scaler.load_state_dict(state["scaler_state"])
        return Progress(list(state["history"]), float(state["best_dice"]), int(state["epoch"]) + 1)
