"""Pictures for the notebooks: overlays, image/mask grids and training curves.

Everything takes plain arrays or tensors and returns matplotlib figures (or arrays), so
the notebooks stay free of plotting code and the functions are testable headless.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

__all__ = [
    "TRIMAP_COLORS", "TRIMAP_NAMES", "OUTCOME_COLORS", "HISTORY_PANELS",
    "overlay", "error_overlay", "to_numpy_image", "colorize_trimap", "trimap_key", "show_grid",
    "plot_history", "plot_histograms", "plot_image_sizes", "show_predictions"
]

#: RGB of trimap values 1 (pet), 2 (background), 3 (border) in :func:`colorize_trimap`.
TRIMAP_COLORS = {1: (255, 140, 0), 2: (40, 40, 60), 3: (250, 250, 250)}
#: Names of the trimap values, for colour keys.
TRIMAP_NAMES = {1: "pet", 2: "background", 3: "border (counted as pet)"}
#: RGB of the pixel outcomes in :func:`error_overlay`: found pet, false alarm, missed pet.
OUTCOME_COLORS = {"true positive": (40, 200, 80), "false positive": (230, 40, 200), "false negative": (30, 140, 255)}
# Training curves are drawn by the training layer (each run writes <name>_curves.png); the same
# function serves the notebooks.
from petlib.training.curves import HISTORY_PANELS, plot_history  # noqa: E402


def to_numpy_image(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """``(3, H, W)`` float tensor in [0, 1] (or an ``(H, W, 3)`` array) -> ``(H, W, 3)`` uint8."""
    if isinstance(image, torch.Tensor):
        array = image.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()
        return (array * 255).round().astype(np.uint8)
    array = np.asarray(image)
    return array if array.dtype == np.uint8 else (np.clip(array, 0, 1) * 255).round().astype(np.uint8)


def overlay(
    image: np.ndarray,
    mask: np.ndarray,
    color: tuple[int, int, int] = OUTCOME_COLORS["true positive"],
    alpha: float = 0.45,
    outline: bool = False,
) -> np.ndarray:
    """Tint the pixels of ``mask`` in ``image``, and optionally draw the mask's border.

    The default tint is the notebooks' green for pet found (:data:`OUTCOME_COLORS`), so a
    predicted mask looks the same in ``petlib-predict``'s overlays and in the notebooks, where
    blue is pet missed and magenta background called pet (:func:`error_overlay`).

    Args:
        image: ``(H, W, 3)`` uint8 photo.
        mask: ``(H, W)`` bool or 0/1 array.
        color: RGB tint of the pet pixels.
        alpha: opacity of the tint.
        outline: also draw the mask's border in ``color`` at full opacity, about 1 px per 250 px of
            the photo's shorter side (at least 1), so the edge shows on any fur colour. The photo's
            own edges are not outlined.

    Returns:
        ``(H, W, 3)`` uint8 image.
    """
    image = to_numpy_image(image).astype(np.float32)
    mask = np.asarray(mask).astype(bool)
    if mask.ndim == 3:
        mask = mask[0]
    out = image.copy()
    out[mask] = (1 - alpha) * image[mask] + alpha * np.asarray(color, dtype=np.float32)
    if outline:
        # Erode the mask by `width` pixels (4-neighbourhood); what erosion removes is the border.
        width = max(1, round(min(mask.shape) / 250))
        inner = mask.copy()
        for _ in range(width):
            shrunk = inner.copy()
            shrunk[1:, :] &= inner[:-1, :]
            shrunk[:-1, :] &= inner[1:, :]
            shrunk[:, 1:] &= inner[:, :-1]
            shrunk[:, :-1] &= inner[:, 1:]
            inner = shrunk
        out[mask & ~inner] = np.asarray(color, dtype=np.float32)
    return out.round().astype(np.uint8)


def error_overlay(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """The photo with each pixel's outcome coloured, so that errors show on any fur colour.

    True positives (pet found) green, false positives (background called pet) magenta, false
    negatives (pet missed) blue, see :data:`OUTCOME_COLORS`; true background is left as it is.

    Args:
        image: ``(H, W, 3)`` uint8 photo.
        truth: ``(H, W)`` bool or 0/1 true mask.
        prediction: ``(H, W)`` bool or 0/1 predicted mask.

    Returns:
        ``(H, W, 3)`` uint8 image.
    """
    truth, prediction = np.asarray(truth).astype(bool), np.asarray(prediction).astype(bool)
    if truth.shape != prediction.shape:
        raise ValueError(f"truth {truth.shape} and prediction {prediction.shape} differ in size")
    out = to_numpy_image(image)
    for (label, color), selected in zip(OUTCOME_COLORS.items(),
                                        (truth & prediction, ~truth & prediction, truth & ~prediction)):
        out = overlay(out, selected, color=color, alpha=alpha)
    return out


def colorize_trimap(trimap: torch.Tensor | np.ndarray) -> np.ndarray:
    """``(H, W)`` (or ``(1, H, W)``) trimap of 1/2/3 -> ``(H, W, 3)`` uint8: pet orange, background dark, border white."""
    trimap = trimap.detach().cpu().numpy() if isinstance(trimap, torch.Tensor) else np.asarray(trimap)
    if trimap.ndim == 3:
        trimap = trimap[0]
    out = np.zeros((*trimap.shape, 3), dtype=np.uint8)
    for value, color in TRIMAP_COLORS.items():
        out[trimap == value] = color
    return out


def trimap_key() -> dict[str, tuple[int, int, int]]:
    """Label -> RGB of the trimap colours, for a colour key (``show_grid(..., key=trimap_key())``)."""
    return {TRIMAP_NAMES[value]: color for value, color in TRIMAP_COLORS.items()}


def show_grid(
    rows: Sequence[Sequence[np.ndarray]],
    titles: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    cell_size: float = 2.4,
    key: Mapping[str, tuple[int, int, int]] | None = None,
):
    """A grid of images: ``rows[i][j]`` is an ``(H, W, 3)`` or ``(H, W)`` array.

    ``key`` (label -> RGB, e.g. the trimap's colours) adds a colour key under the grid.
    Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    key_height = 0.45 if key else 0.0  # inches under the grid for the colour key
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell_size * n_cols, cell_size * 0.8 * n_rows + key_height),
                             squeeze=False)
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
    fig.tight_layout(rect=(0, key_height / fig.get_figheight(), 1, 1))
    if key:
        from matplotlib.patches import Patch

        handles = [Patch(facecolor=np.asarray(rgb) / 255, edgecolor="0.3", label=label) for label, rgb in key.items()]
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=9, frameon=False)
    return fig


#: The panels of :func:`plot_history`: title -> (y label, history columns drawn in it).
def plot_histograms(
    values: Mapping[str, Sequence[float] | np.ndarray],
    *,
    bins: int = 20,
    value_range: tuple[float, float] | None = None,
    xlabel: str = "",
    title: str = "",
):
    """Overlaid histograms drawn as step lines, one per label (e.g. per model or species), mean dashed.

    Step lines keep every distribution visible where they overlap, which filled bars hide.

    Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    edges = np.histogram_bin_edges(np.concatenate([np.asarray(v, dtype=float) for v in values.values()]),
                                   bins=bins, range=value_range)
    for i, (label, data) in enumerate(values.items()):
        data = np.asarray(data, dtype=float)
        color = f"C{i}"
        ax.hist(data, bins=edges, histtype="step", linewidth=1.8, color=color,
                label=f"{label} (n={len(data)}, mean {data.mean():.3f})")
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
    cell_size: float = 2.2,
):
    """Photo | true mask | one column per model, one row per image, errors coloured.

    The true mask is drawn over the photo as a contour; each model's prediction as
    :func:`error_overlay` (true positive, false positive, false negative in three colours, with a
    key under the figure), so that a reader sees where a model fails, not only that it does.

    Args:
        images: ``(H, W, 3)`` uint8 photos.
        truths: ``(H, W)`` true masks.
        predictions: model label -> ``(H, W)`` predicted masks, one per image.
        row_titles: shown over each row's photo (e.g. ``"worst: Bengal_131"``).
        scores: model label -> a score per image, shown over that model's mask.

    Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    labels = list(predictions)
    n_rows, n_cols = len(images), 2 + len(labels)
    # Most photos are landscape: rows a little lower than wide waste less space (and bytes in a notebook).
    row_height = 0.8 * cell_size
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell_size * n_cols, row_height * n_rows + 0.4), squeeze=False)
    for i, image in enumerate(images):
        axes[i][0].imshow(image)
        axes[i][0].set_title(row_titles[i], fontsize=8)
        axes[i][1].imshow(image)
        axes[i][1].contour(np.asarray(truths[i], dtype=float), levels=[0.5], colors=["yellow"], linewidths=1.2)
        axes[i][1].set_title("true mask (outline)", fontsize=8)
        for j, label in enumerate(labels):
            axes[i][2 + j].imshow(error_overlay(image, truths[i], predictions[label][i]))
            title = label if scores is None else f"{label}: Dice {scores[label][i]:.3f}"
            axes[i][2 + j].set_title(title, fontsize=8)
        for ax in axes[i]:
            ax.axis("off")
    handles = [Patch(facecolor=np.asarray(rgb) / 255, label=label) for label, rgb in OUTCOME_COLORS.items()]
    fig.tight_layout(rect=(0, 0.4 / (row_height * n_rows + 0.4), 1, 1))
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=9, frameon=False)
    return fig
