"""Training curves without a notebook: ``<name>_curves.png`` beside the history, and TensorBoard.

:func:`petlib.training.engine.fit` draws the run's loss (train and validation) and validation Dice with
:func:`plot_history` into ``<out_dir>/<name>_curves.png`` at the end of the run,
and during it whenever a minute has passed since the last drawing, so a long run can be watched
from a file browser. ``fit(..., tensorboard=DIR)`` (``petlib-train --tensorboard DIR``) also logs
the same numbers per epoch as TensorBoard scalars under ``DIR/<name>``.

Both are extras: without matplotlib (``pip install matplotlib``) or tensorboard (``pip install
tensorboard``) training runs as before and says once what it skipped. A figure that fails to
draw is reported and skipped as well: hours of training never end on a plot.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = ["plot_history", "HISTORY_PANELS", "write_curves_png", "CurvesPNG", "TensorBoardLog", "TENSORBOARD_SCALARS"]

#: History column -> TensorBoard tag, the same numbers as the history CSV and the PNG.
TENSORBOARD_SCALARS: dict[str, str] = {
    "train_loss": "loss/train", "val_loss": "loss/validation", "val_dice": "dice/validation",
    "val_iou": "iou/validation", "lr": "learning_rate", "seconds": "seconds_per_epoch",
}


HISTORY_PANELS: dict[str, tuple[str, tuple[str, ...]]] = {
    "loss": ("loss (the run's training loss)", ("train_loss", "val_loss")),
    "validation Dice": ("Dice (per image, mean)", ("val_dice",)),
}
_LINE_STYLES = {"train_loss": "-", "val_loss": "--", "val_dice": "-", "val_iou": ":"}
_SHORT = {"train_loss": "train", "val_loss": "validation", "val_dice": "Dice", "val_iou": "IoU"}


def plot_history(
    histories: Mapping[str, Sequence[Mapping[str, float]]],
    panels: Mapping[str, tuple[str, Sequence[str]]] = HISTORY_PANELS,
):
    """Training curves: one panel per entry of ``panels``, one colour per run, one line style per column.

    By default the training and validation loss share the first panel, so over- and under-fitting
    show at a glance, and validation Dice has the second; the best epoch by validation Dice is
    marked with a star. A column a run did not record (NaN throughout: the validation columns
    of a run without validation) is left out, and so is a panel left with nothing to draw.

    Args:
        histories: run label -> list of per-epoch rows as written by :func:`petlib.training.engine.fit`.
        panels: panel title -> (y-axis label, the history columns drawn in it).

    Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    drawn = {title: (ylabel, keys) for title, (ylabel, keys) in panels.items()
             if any(_recorded(history, key) for history in histories.values() for key in keys)}
    panels = drawn or dict(list(panels.items())[:1])  # an empty history: one empty panel
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 3.4), squeeze=False)
    for ax, (title, (ylabel, keys)) in zip(axes[0], panels.items()):
        for i, (label, history) in enumerate(histories.items()):
            epochs = [row["epoch"] for row in history]
            for key in filter(lambda key: _recorded(history, key), keys):
                name = label if len(keys) == 1 else f"{label} {_SHORT.get(key, key)}"
                ax.plot(epochs, [row[key] for row in history], _LINE_STYLES.get(key, "-"), color=f"C{i}",
                        marker="o", markersize=2.5, label=name)
            if "val_dice" in keys and _recorded(history, "val_dice"):
                best = max((row for row in history if not math.isnan(float(row["val_dice"]))), key=lambda row: row["val_dice"])  # ties: the earlier epoch, as fit keeps
                ax.plot([best["epoch"]], [best["val_dice"]], "*", color=f"C{i}", markersize=11,
                        markeredgecolor="black", label=f"{label} best: {best['val_dice']:.3f} (epoch {best['epoch']})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _recorded(history: Sequence[Mapping[str, float]], key: str) -> bool:
    """Whether any row of ``history`` has a number (not NaN, not missing) in column ``key``."""
    return any(not math.isnan(float(row.get(key, math.nan))) for row in history)


def write_curves_png(history: Sequence[Mapping[str, float]], path: str | Path, label: str) -> Path:
    """Draw ``history`` (rows as :func:`petlib.training.engine.fit` records them) into the PNG ``path``.

    The figure is :func:`petlib.evaluation.plots.plot_history`'s (loss panel with train and validation,
    Dice panel with the best epoch starred), rendered by matplotlib's Agg backend, which needs
    no display, and closed again: in a notebook it is not shown under the cell that trained.
    The pyplot backend is left as it was (switching it would close the notebook's figures).

    Raises:
        ImportError: matplotlib is not installed.
    """
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_agg import FigureCanvasAgg

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
