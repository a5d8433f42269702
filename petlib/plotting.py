"""Pictures for the notebooks: overlays, image/mask grids and training curves.

Everything takes plain arrays or tensors and returns matplotlib figures (or arrays), so
the notebooks stay free of plotting code and the functions are testable headless.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

__all__ = [
    "overlay", "to_numpy_image", "colorize_trimap", "show_grid", "plot_history", "plot_histograms",
    "plot_image_sizes", "show_predictions",
]

#: RGB of trimap values 1 (pet), 2 (background), 3 (border) in :func:`colorize_trimap`.
TRIMAP_COLORS = {1: (255, 140, 0), 2: (40, 40, 60), 3: (250, 250, 250)}


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


def colorize_trimap(trimap: torch.Tensor | np.ndarray) -> np.ndarray:
    """``(H, W)`` (or ``(1, H, W)``) trimap of 1/2/3 -> ``(H, W, 3)`` uint8: pet orange, background dark, border white."""
    trimap = trimap.detach().cpu().numpy() if isinstance(trimap, torch.Tensor) else np.asarray(trimap)
    if trimap.ndim == 3:
        trimap = trimap[0]
    out = np.zeros((*trimap.shape, 3), dtype=np.uint8)
    for value, color in TRIMAP_COLORS.items():
        out[trimap == value] = color
    return out


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
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for label, history in histories.items():
            epochs = [row["epoch"] for row in history]
            ax.plot(epochs, [row[key] for row in history], marker="o", markersize=3, label=label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(key.replace("_", " "))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_histograms(
    values: Mapping[str, Sequence[float] | np.ndarray],
    *,
    bins: int = 20,
    value_range: tuple[float, float] | None = None,
    xlabel: str = "",
    title: str = "",
):
    """Overlaid histograms, one per label (e.g. one per model or species), with the mean marked.

    Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    edges = np.histogram_bin_edges(np.concatenate([np.asarray(v, dtype=float) for v in values.values()]),
                                   bins=bins, range=value_range)
    for i, (label, data) in enumerate(values.items()):
        data = np.asarray(data, dtype=float)
        color = f"C{i}"
        ax.hist(data, bins=edges, alpha=0.5, color=color, label=f"{label} (n={len(data)}, mean {data.mean():.3f})")
        ax.axvline(data.mean(), color=color, linestyle="--", linewidth=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("images")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_image_sizes(widths: Sequence[int], heights: Sequence[int]):
    """Image sizes: width against height (one dot per image) and a histogram of the longer side.

    Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    widths, heights = np.asarray(widths), np.asarray(heights)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    left.scatter(widths, heights, s=6, alpha=0.4)
    left.set_xlabel("width (px)")
    left.set_ylabel("height (px)")
    left.set_title(f"{len(widths)} images")
    left.set_aspect("equal", adjustable="datalim")
    left.grid(alpha=0.3)
    right.hist(np.maximum(widths, heights), bins=30)
    right.set_xlabel("longer side (px)")
    right.set_ylabel("images")
    right.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def show_predictions(
    images: Sequence[np.ndarray],
    truths: Sequence[np.ndarray],
    predictions: Mapping[str, Sequence[np.ndarray]],
    row_titles: Sequence[str],
    scores: Mapping[str, Sequence[float]] | None = None,
    cell_size: float = 2.6,
):
    """Image | truth | one column per model, one row per image; masks drawn over the photo.

    Args:
        images: ``(H, W, 3)`` uint8 photos.
        truths: ``(H, W)`` true masks.
        predictions: model label -> ``(H, W)`` predicted masks, one per image.
        row_titles: shown over each row's photo (e.g. ``"worst: Bengal_131"``).
        scores: model label -> a score per image, shown over that model's mask.

    Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    labels = list(predictions)
    n_rows, n_cols = len(images), 2 + len(labels)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell_size * n_cols, cell_size * n_rows), squeeze=False)
    for i, image in enumerate(images):
        cells = [(image, row_titles[i]), (overlay(image, truths[i], color=(0, 200, 80)), "truth")]
        for label in labels:
            title = label if scores is None else f"{label}: Dice {scores[label][i]:.3f}"
            cells.append((overlay(image, predictions[label][i]), title))
        for ax, (picture, title) in zip(axes[i], cells):
            ax.imshow(picture)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    return fig
