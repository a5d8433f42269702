"""The run's folder: every file a training run leaves, and where an interrupted run stands.

:func:`petlib.training.engine.fit` keeps one run's files in ``out_dir``, named after the run::

    <name>.pth            the kept checkpoint: the best by validation Dice, or without validation the last epoch
    <name>_last.pth       the last epoch, with optimiser, schedule and scaler: the resume point
    <name>_history.csv    one row of numbers per epoch
    <name>_curves.png     loss and validation Dice (petlib.training.curves)
    <name>_card.json/.md  the kept checkpoint's model card (petlib.training.card)
    <name>_config.json    the run's settings

The pieces, in the order ``fit`` meets them: :class:`RunPaths` names the files (everything
that reads them -- the comparison notebook, ``python -m petlib.run``, the card -- finds them
through it); :class:`ResumePoint` reads where an interrupted run stopped, before anything is
built, and refuses to replace an earlier run's kept checkpoint; :class:`Progress` is the run so
far (history rows, best score); :class:`RunFiles` writes the files at the start, after each
epoch and at the end; :func:`write_history` and :func:`read_history` are the CSV.
"""
from __future__ import annotations

import csv
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from petlib import distributed as dist
from petlib.models import count_parameters
from petlib.training.card import build_card, card_paths, read_card, write_card
from petlib.training.checkpoint import load_checkpoint, load_state_dict, save_checkpoint
from petlib.training.config import TrainConfig
from petlib.training.curves import CurvesPNG, TensorBoardLog

__all__ = [
    "RunPaths", "HISTORY_FIELDS", "write_history", "read_history", "RunExistsError", "Progress", "ResumePoint",
    "RunFiles",
]

# --------------------------------------------------------------------------- names


@dataclass(frozen=True)
class RunPaths:
    """The files of the run ``name`` in ``out_dir``.

    Example::

        paths = RunPaths("saved_models", "unet")
        paths.best      # saved_models/unet.pth
        paths.history   # saved_models/unet_history.csv
    """

    out_dir: Path
    name: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "out_dir", Path(self.out_dir))  # a str is welcome too

    @classmethod
    def of_checkpoint(cls, checkpoint_path: str | Path) -> RunPaths:
        """The run whose best checkpoint is ``checkpoint_path`` (``<out_dir>/<name>.pth``)."""
        path = Path(checkpoint_path)
        return cls(path.parent, path.stem)

    def _file(self, suffix: str) -> Path:
        return self.out_dir / f"{self.name}{suffix}"

    @property
    def best(self) -> Path:
        """``<name>.pth``: the best-validation checkpoint."""
        return self._file(".pth")

    @property
    def last(self) -> Path:
        """``<name>_last.pth``: the last epoch's checkpoint, to resume from."""
        return self._file("_last.pth")

    @property
    def history(self) -> Path:
        """``<name>_history.csv``: one row per epoch."""
        return self._file("_history.csv")

    @property
    def curves(self) -> Path:
        """``<name>_curves.png``: loss and validation Dice per epoch."""
        return self._file("_curves.png")

    @property
    def card_json(self) -> Path:
        """``<name>_card.json``: the best checkpoint's model card, the record."""
        return card_paths(self.best)[0]

    @property
    def card_md(self) -> Path:
        """``<name>_card.md``: the same card, for reading."""
        return card_paths(self.best)[1]

    @property
    def config(self) -> Path:
        """``<name>_config.json``: the run's settings."""
        return self._file("_config.json")


# --------------------------------------------------------------------------- history

HISTORY_FIELDS = ["epoch", "train_loss", "val_loss", "val_dice", "val_iou", "lr", "seconds"]


def write_history(history: list[dict[str, float]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_FIELDS)
        writer.writeheader()
        for row in history:
            writer.writerow({k: row.get(k) for k in HISTORY_FIELDS})
    tmp.replace(path)


def read_history(path: str | Path) -> list[dict[str, float]]:
    """Read a ``*_history.csv`` written by :func:`fit` (numbers as floats, epoch as int)."""
    with Path(path).open() as f:
        return [
            {k: (int(v) if k == "epoch" else float(v)) for k, v in row.items() if v not in (None, "")}
            for row in csv.DictReader(f)
        ]


# --------------------------------------------------------------------------- where a run stands

class RunExistsError(FileExistsError):
    """A new run would replace the best checkpoint of an earlier run of the same name."""


def _run_exists_message(best_path: Path) -> str:
    if dist.restart_count() > 0:  # one line, the same on every process
        return (f"torchrun restarted the workers of a run started without --resume, and a new run would replace "
                f"{best_path}, which the first attempt wrote: start the run with --resume --save_last so that a "
                "restart continues it")
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
        earlier run's best checkpoint unless ``config.overwrite``. With ``resume`` and no last
        checkpoint it is a new run: the same command starts a run and continues it after an
        interruption (a torchrun restart, a pre-empted job run again).

        Under torchrun every process reads the folder and decides alone; all must see the same
        files (one folder that every node shares), else all stop with one
        :class:`~petlib.distributed.GroupError`.
        """
        resuming = resume and paths.last.exists()
        dist.check_same(int(resuming) + 2 * int(paths.best.exists()),
                        f"what {paths.out_dir} holds ({paths.last.name}, {paths.best.name}): --out_dir must be a "
                        "folder that every node shares")
        if not resuming:
            if resume:
                log(f"nothing to resume at {paths.last}; starting a new run")
            if paths.best.exists() and not config.overwrite:
                raise RunExistsError(_run_exists_message(paths.best))
            if not resume and dist.restart_count() > 0:
                log(f"torchrun restarted the workers (restart {dist.restart_count()}) of a run started without "
                    "--resume: training starts again at epoch 1")
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
              scheduler: torch.optim.lr_scheduler.LRScheduler | None, scaler: torch.amp.GradScaler,
              ema: AveragedModel | None = None) -> Progress:
        """Load the stored model, optimiser, schedule, scaler and weight-average states; the progress so far.

        A scaler disabled (no float16) ignores its state; one enabled reads the state an fp16 run stored.
        With ``ema`` the checkpoint's ``model_state`` is the average and ``training_model_state``
        the weights as trained (see :meth:`RunFiles.checkpoint`).
        """
        if self.state is None:
            return Progress()
        state = self.state
        source = str(self.source)
        if ema is not None:
            load_state_dict(model, state["training_model_state"], source=source)
            load_state_dict(ema.module, state["model_state"], source=source)
            ema.n_averaged.fill_(int(state["ema_updates"]))
        else:
            load_state_dict(model, state["model_state"], source=source)
        optimizer.load_state_dict(state["optimizer_state"])
        if scheduler is not None and state.get("scheduler_state") is not None:
            scheduler.load_state_dict(state["scheduler_state"])
        if state.get("scaler_state") is not None:
            scaler.load_state_dict(state["scaler_state"])
        return Progress(list(state["history"]), float(state["best_dice"]), int(state["epoch"]) + 1)


# --------------------------------------------------------------------------- what a run writes

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
    ema: AveragedModel | None = None  # the weights' moving average, when the run keeps one
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
        """The checkpoint dict after ``epoch``; a ``resume_point`` also holds the optimiser, schedule and scaler.

        ``model_state`` is the weights to use: the moving average's when the run keeps one, so every
        reader of checkpoints gets them; a resume point then also holds the weights as trained
        (``training_model_state``) and the average's update count (``ema_updates``).
        """
        config = self.config
        ema = self.ema
        checkpoint = {
            "model_name": config.model,
            "model_kwargs": config.model_kwargs,
            "model_state": (ema.module if ema is not None else self.model).state_dict(),
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
            if ema is not None:
                checkpoint["training_model_state"] = self.model.state_dict()
                checkpoint["ema_updates"] = int(ema.n_averaged)
        return checkpoint

    def save_epoch(self, progress: Progress, improved: bool) -> None:
        """After an epoch: with validation, the best checkpoint and its card when ``improved``; the
        last checkpoint (the resume point), history, curves and TensorBoard scalars.

        Without validation the kept checkpoint is the last epoch's, written once by :meth:`finish`:
        rewriting it every epoch (~100 MB for the ResNet34-UNet, ~125 MB for the UNet) would serve
        nothing, since an interrupted run resumes from the last checkpoint.
        """
        epoch = progress.history[-1]["epoch"]
        # A SIGTERM (torchrun stopping the group, SLURM pre-empting the job) waits for the set:
        # after epoch 1 a best checkpoint without a last one would be taken for an earlier run's.
        with dist.sigterm_deferred():
            if improved and self.config.validate:
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

    def finish(self, progress: Progress, resumed: bool) -> Path | None:
        """The kept checkpoint of a run without validation, the final curves and card, and the
        TensorBoard log closed; the card file, or None.

        The card only for a best checkpoint this run wrote or ``resumed``, never for an earlier
        run's that it failed to improve on.
        """
        history = progress.history
        if not self.config.validate and history:
            save_checkpoint(self.checkpoint(progress, history[-1]["epoch"]), self.paths.best)
            self.best_replaced = True
        self.curves.update(history, final=True)
        if self.board is not None:
            self.board.close()
        if self.best_replaced or (resumed and self.paths.best.exists()):
            return self.write_card(history, keep_test=not self.best_replaced)
        return None
