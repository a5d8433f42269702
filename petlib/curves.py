"""Training curves without a notebook: ``<name>_curves.png`` beside the history, and TensorBoard.

:func:`petlib.engine.fit` draws the run's loss (train and validation) and validation Dice with
:func:`petlib.plotting.plot_history` into ``<out_dir>/<name>_curves.png`` at the end of the run,
and during it whenever a minute has passed since the last drawing, so a long run can be watched
from a file browser. ``fit(..., tensorboard=DIR)`` (``petlib-train --tensorboard DIR``) also logs
the same numbers per epoch as TensorBoard scalars under ``DIR/<name>``.

Both are extras: without matplotlib (``pip install matplotlib``) or tensorboard (``pip install
tensorboard``) training runs as before and says once what it skipped. A figure that fails to
draw is reported and skipped as well: hours of training never end on a plot.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

__all__ = ["write_curves_png", "CurvesPNG", "TensorBoardLog", "TENSORBOARD_SCALARS"]

#: History column -> TensorBoard tag, the same numbers as the history CSV and the PNG.
TENSORBOARD_SCALARS: dict[str, str] = {
    "train_loss": "loss/train", "val_loss": "loss/validation", "val_dice": "dice/validation",
    "val_iou": "iou/validation", "lr": "learning_rate", "seconds": "seconds_per_epoch",
}


def write_curves_png(history: Sequence[Mapping[str, float]], path: str | Path, label: str) -> Path:
    """Draw ``history`` (rows as :func:`petlib.engine.fit` records them) into the PNG ``path``.

    The figure is :func:`petlib.plotting.plot_history`'s (loss panel with train and validation,
    Dice panel with the best epoch starred), rendered by matplotlib's Agg backend, which needs
    no display, and closed again: in a notebook it is not shown under the cell that trained.
    The pyplot backend is left as it was (switching it would close the notebook's figures).

    Raises:
        ImportError: matplotlib is not installed.
    """
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from .plotting import plot_history

    path = Path(path)
    with plt.ioff():  # an interactive session would otherwise open a window for it
        figure = plot_history({label: list(history)})
    try:
        canvas = FigureCanvasAgg(figure)
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("wb") as f:
            canvas.print_png(f)
        os.replace(tmp, path)  # a viewer never reads half a PNG
    finally:
        plt.close(figure)
    return path


class CurvesPNG:
    """``<name>_curves.png`` of one run, redrawn at most every ``interval`` seconds and at the end.

    Args:
        path: the PNG to write.
        label: the run's name in the legend.
        log: where to say that the curves were skipped, and why (once).
        interval: least seconds between two drawings during the run (one costs ~0.3 s).
    """

    def __init__(self, path: str | Path, label: str, log: Callable[[str], None], interval: float = 60.0) -> None:
        self.path = Path(path)
        self.label = label
        self.log = log
        self.interval = interval
        self.written: Path | None = None
        self.skipped: str | None = None  # why the PNG is not written, once it is known
        self._last = time.monotonic()

    def update(self, history: Sequence[Mapping[str, float]], *, final: bool = False) -> Path | None:
        """Redraw if ``final`` or the interval has passed; returns the PNG once written."""
        if self.skipped is not None or not history or (not final and time.monotonic() - self._last < self.interval):
            return self.written
        try:
            self.written = write_curves_png(history, self.path, self.label)
        except ImportError:
            self.skipped = "matplotlib is not installed (pip install matplotlib)"
            self.log(f"curves skipped: {self.skipped}")
        except Exception as err:  # a figure must not end a run: say why and train on without it
            self.skipped = f"{type(err).__name__}: {err}"
            self.log(f"curves skipped: could not draw {self.path}: {self.skipped}")
        self._last = time.monotonic()
        return self.written


class TensorBoardLog:
    """Per-epoch scalars of one run in ``log_dir`` (:data:`TENSORBOARD_SCALARS`), if tensorboard is there.

    Args:
        log_dir: the run's folder of event files (``fit`` uses ``<--tensorboard DIR>/<name>``).
        log: where to say that tensorboard is missing.
        first_epoch: the epoch this run starts at; a resumed run drops events of a crashed
            run beyond it, so no epoch appears twice.
    """

    def __init__(self, log_dir: str | Path, log: Callable[[str], None], first_epoch: int = 1) -> None:
        self.log_dir = Path(log_dir)
        self.writer = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log(f"tensorboard skipped: the tensorboard package is not installed (pip install tensorboard); "
                f"nothing is logged to {self.log_dir}")
            return
        self.writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=first_epoch if first_epoch > 1 else None)
        log(f"tensorboard: logging to {self.log_dir} (tensorboard --logdir {self.log_dir.parent})")

    def add_epoch(self, row: Mapping[str, float]) -> None:
        """Log one history row at step ``row["epoch"]``."""
        if self.writer is None:
            return
        for column, tag in TENSORBOARD_SCALARS.items():
            if column in row:
                self.writer.add_scalar(tag, row[column], global_step=int(row["epoch"]))
        self.writer.flush()  # visible in TensorBoard while the run goes on

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
