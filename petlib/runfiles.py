"""The files a training run leaves: what :func:`petlib.engine.fit`'s main process writes.

In the run's folder, under the names :class:`~petlib.runpaths.RunPaths` gives them: the run's
config before the first epoch; after each epoch the best checkpoint and its model card
(:mod:`petlib.card`) when validation Dice improved, the last checkpoint -- which also carries the
optimiser, schedule and scaler, the resume point :mod:`petlib.resume` reads -- the history
(:mod:`petlib.history`) and the curves (:mod:`petlib.curves`, at most once a minute); at the end
the final curves and the best checkpoint's card. With a TensorBoard folder, each epoch's numbers
also go there as scalars (:class:`~petlib.curves.TensorBoardLog`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from . import distributed as dist
from .card import build_card, read_card, write_card
from .checkpoint import save_checkpoint
from .config import TrainConfig
from .curves import CurvesPNG, TensorBoardLog
from .history import write_history
from .models import count_parameters
from .resume import Progress
from .runpaths import RunPaths

__all__ = ["RunFiles"]


@dataclass
class RunFiles:
    """The files of one run of ``config``, named by ``paths``; only the main process writes them.

    ``model``, ``optimizer``, ``scheduler`` and ``scaler`` are what the run trains: their states
    are read at each save. ``split_sizes`` (images per split) and ``device`` go into the card;
    ``log`` says what was removed or skipped.
    """

    config: TrainConfig
    paths: RunPaths
    model: nn.Module  # the plain module, whose weights the checkpoints hold
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    scaler: torch.amp.GradScaler
    split_sizes: Mapping[str, int]
    device: torch.device
    log: Callable[[str], None]
    curves: CurvesPNG = field(init=False)
    board: TensorBoardLog | None = field(default=None, init=False)  # set by start() with a TensorBoard folder
    best_replaced: bool = field(default=False, init=False)  # whether this run wrote a new best checkpoint

    def __post_init__(self) -> None:
        self.curves = CurvesPNG(self.paths.curves, self.config.name, self.log)

    def start(self, tensorboard: Path | None = None, first_epoch: int = 1) -> None:
        """Write the run's config; remove an earlier run's resume point when this run keeps none.

        With ``tensorboard``, also log each epoch's numbers as TensorBoard scalars in that folder
        from ``first_epoch`` on (skipped, with a message, without tensorboard installed).
        """
        paths = self.paths
        paths.out_dir.mkdir(parents=True, exist_ok=True)
        self.config.save_json(paths.config)
        if not self.config.save_last and paths.last.exists():
            # Left in place, a later resume would continue that run, not this one.
            paths.last.unlink()
            self.log(f"removed {paths.last} of an earlier run (save_last=False: this run keeps no resume point)")
        if tensorboard is not None:
            self.board = TensorBoardLog(tensorboard, self.log, first_epoch)

    def checkpoint(self, progress: Progress, epoch: int, resume_point: bool = False) -> dict[str, Any]:
        """The checkpoint dict after ``epoch``; a ``resume_point`` also holds the optimiser, schedule and scaler."""
        config = self.config
        checkpoint = {
            "model_name": config.model,
            "model_kwargs": config.model_kwargs,
            "model_state": self.model.state_dict(),
            "config": config.to_dict(),
            "history": progress.history,
            "epoch": epoch,
            "best_dice": progress.best_dice,
        }
        if resume_point:
            scheduler, scaler = self.scheduler, self.scaler
            checkpoint["optimizer_state"] = self.optimizer.state_dict()
            checkpoint["scheduler_state"] = scheduler.state_dict() if scheduler is not None else None
            checkpoint["scaler_state"] = scaler.state_dict() if scaler.is_enabled() else None
        return checkpoint

    def save_epoch(self, progress: Progress, improved: bool) -> None:
        """After an epoch: the best checkpoint and card (if ``improved``), the last checkpoint, history,
        curves and TensorBoard scalars."""
        epoch = progress.history[-1]["epoch"]
        if improved:
            save_checkpoint(self.checkpoint(progress, epoch), self.paths.best)
            self.write_card(progress.history, keep_test=False)
            self.best_replaced = True
        if self.config.save_last:
            save_checkpoint(self.checkpoint(progress, epoch, resume_point=True), self.paths.last)
        write_history(progress.history, self.paths.history)
        self.curves.update(progress.history)
        if self.board is not None:
            self.board.add_epoch(progress.history[-1])

    def write_card(self, history: list[dict[str, float]], keep_test: bool) -> Path:
        """Write the best checkpoint's card; ``keep_test``: keep the test scores of the card there,
        which still describe the checkpoint when this run has not replaced it."""
        best_path = self.paths.best
        card = build_card(self.config, history, checkpoint_path=best_path, parameters=count_parameters(self.model),
                          split_sizes=dict(self.split_sizes), device=self.device, processes=dist.world_size())
        earlier = read_card(best_path) if keep_test else None
        if earlier is not None:
            card["test"] = earlier.get("test", [])
        return write_card(card, best_path)[0]

    def finish(self, history: list[dict[str, float]], resumed: bool) -> Path | None:
        """The final curves and card, and the TensorBoard log closed; the card file, or None.

        The card only for a best checkpoint this run wrote or ``resumed``, never for an earlier
        run's that it failed to improve on.
        """
        self.curves.update(history, final=True)
        if self.board is not None:
            self.board.close()
        if self.best_replaced or (resumed and self.paths.best.exists()):
            return self.write_card(history, keep_test=not self.best_replaced)
        return None
