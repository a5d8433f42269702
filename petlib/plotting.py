"""Pictures for the notebooks: overlays, image/mask grids and training curves.

Everything takes plain arrays or tensors and returns matplotlib figures (or arrays), so
the notebooks stay free of plotting code and the functions are testable headless.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

__all__ = ["overlay", "to_numpy_image", "show_grid", "plot_history"]


def to_numpy_image(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """``(3, H, W)`` float tensor in [0, 1] (or an ``(H, W, 3)`` array) -> ``(H, W, 3)`` uint8."""
    if isinstance(image, torch.Tensor):
        array = image.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()
        return (array * 255).round().astype(np.uint8)
    array = np.asarray(image)
    return array if array.dtype == np.uint8 else (np.clip(array, 0, 1) * 255).round().astype(np.uint8)


def overlay(
    image: np.ndarray, mask: np.ndarray, color: tuple[int, int, int] = (255, 64, 0), alpha: float = 0.45
) -> np.ndarray:
    """Tint the pixels of ``mask`` in ``image``.

    Args:
        image: ``(H, W, 3)`` uint8 photo.
        mask: ``(H, W)`` bool or 0/1 array.
        color: RGB tint of the pet pixels.
        alpha: opacity of the tint.

    Returns:
        ``(H, W, 3)`` uint8 image.
    """
    image = to_numpy_image(image).astype(np.float32)
    mask = np.asarray(mask).astype(bool)
    if mask.ndim == 3:
        mask = mask[0]
    out = image.copy()
    out[mask] = (1 - alpha) * image[mask] + alpha * np.asarray(color, dtype=np.float32)
    return out.round().astype(np.uint8)


def show_grid(
    rows: Sequence[Sequence[np.ndarray]],
    titles: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    cell_size: float = 2.4,
):
    """A grid of images: ``rows[i][j]`` is an ``(H, W, 3)`` or ``(H, W)`` array.

    Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell_size * n_cols, cell_size * n_rows), squeeze=False)
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i][j]
            ax.axis("off")
            if j < len(row):
                picture = row[j]
                ax.imshow(picture, cmap="gray" if np.ndim(picture) == 2 else None, vmin=0,
                          vmax=None if np.ndim(picture) == 3 else max(1, float(np.max(picture))))
            if i == 0 and titles is not None and j < len(titles):
                ax.set_title(titles[j], fontsize=9)
            if j == 0 and row_labels is not None:
                ax.text(-0.05, 0.5, row_labels[i], transform=ax.transAxes, ha="right", va="center", fontsize=8)
    fig.tight_layout()
    return fig


def plot_history(histories: Mapping[str, Sequence[Mapping[str, float]]], keys: Sequence[str] = ("train_loss", "val_loss", "val_dice")):
    """Curves of ``keys`` against epoch, one panel per key, one line per run.

    Args:
        histories: run label -> list of per-epoch rows as written by :func:`petlib.engine.fit`.
        keys: the columns to plot.

    Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for label, history in histories.items():
            epochs = [row["epoch"] for row in history]
            ax.plot(epochs, [row[key] for row in history], marker="o", markersize=3, label=label)
        ax.set_xlabel("epoch")
        ax.set_title(key.replace("_", " "))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
