"""Where a training run's files go: one name for each, built in one place.

:func:`petlib.engine.fit` writes, through :class:`petlib.runfiles.RunFiles`, for a run called ``name``
in ``out_dir``::

    <name>.pth            the best checkpoint (highest validation Dice)
    <name>_last.pth       the last epoch, with optimiser and schedule: the resume point
    <name>_history.csv    one row per epoch
    <name>_curves.png     loss and validation Dice
    <name>_card.json/.md  the best checkpoint's model card
    <name>_config.json    the run's settings

Everything that reads those files -- the notebooks' comparison, ``python -m petlib.run``,
the model card -- finds them through :class:`RunPaths`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunPaths"]


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
        return self._file("_card.json")

    @property
    def card_md(self) -> Path:
        """``<name>_card.md``: the same card, for reading."""
        return self._file("_card.md")

    @property
    def config(self) -> Path:
        """``<name>_config.json``: the run's settings."""
        return self._file("_config.json")
