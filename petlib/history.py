"""A run's history: one row of numbers per epoch, written by :func:`~petlib.engine.fit` as ``<name>_history.csv``."""
from __future__ import annotations

import csv
from pathlib import Path

__all__ = ["HISTORY_FIELDS", "write_history", "read_history"]

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
