"""petlib.evaluation.plots: the pictures of the notebooks, drawn headless."""
import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from petlib.evaluation.plots import (
    colorize_trimap,
    error_overlay,
    plot_histograms,
    plot_history,
    plot_image_sizes,
    show_grid,
    trimap_key,
)


def test_plot_helpers_return_figures():
    trimap = np.array([[1, 2], [3, 2]], dtype=np.uint8)
    colors = colorize_trimap(trimap)
    assert colors.shape == (2, 2, 3) and (colors[0, 1] == colors[1, 1]).all() and (colors[0, 0] != colors[1, 0]).any()
    assert len(plot_histograms({"a": [0.1, 0.5], "b": [0.9]}, value_range=(0, 1)).axes) == 1
    assert len(plot_image_sizes([500, 300], [375, 500]).axes) == 2
    history = [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.2, "val_dice": 0.5},
               {"epoch": 2, "train_loss": 0.8, "val_loss": 0.9, "val_dice": 0.7}]
    figure = plot_history({"UNet": history, "ResNet34-UNet": history})
    loss_panel, dice_panel = figure.axes
    # Train and validation loss share a panel, with labelled axes; the best epoch is starred.
    assert loss_panel.get_xlabel() == "epoch" and loss_panel.get_ylabel().startswith("loss")
    assert {line.get_label() for line in loss_panel.get_lines()} >= {"UNet train", "UNet validation"}
    assert any("best: 0.700 (epoch 2)" in line.get_label() for line in dice_panel.get_lines())
    # A run without validation (NaN validation columns): its training loss only, no empty Dice panel.
    nan = float("nan")
    unvalidated = [{**row, "val_loss": nan, "val_dice": nan} for row in history]
    [loss_only] = plot_history({"UNet": unvalidated}).axes
    assert [line.get_label() for line in loss_only.get_lines()] == ["UNet train"]
    # Beside a validated run, the Dice panel shows the validated one only.
    _, dice_panel = plot_history({"all": unvalidated, "held out": history}).axes
    assert [line.get_label() for line in dice_panel.get_lines()] == ["held out", "held out best: 0.700 (epoch 2)"]


def test_error_overlay_colours_each_outcome():
    image = np.full((2, 2, 3), 100, dtype=np.uint8)
    truth = np.array([[1, 1], [0, 0]], dtype=bool)
    prediction = np.array([[1, 0], [1, 0]], dtype=bool)
    out = error_overlay(image, truth, prediction).astype(int)
    tp, fn, fp, tn = out[0, 0], out[0, 1], out[1, 0], out[1, 1]
    assert (tn == 100).all()  # true background untouched
    assert tp[1] > tp[0] and tp[1] > tp[2]  # green
    assert fp[0] > fp[1] and fp[2] > fp[1]  # magenta
    assert fn[2] > fn[0] and fn[2] > fn[1]  # blue
    with pytest.raises(ValueError):
        error_overlay(image, truth, prediction[:1])


def test_histograms_are_step_lines_and_grids_carry_a_colour_key():
    figure = plot_histograms({"a": [0.1, 0.5], "b": [0.9]}, value_range=(0, 1))
    assert all(patch.get_fill() is False for patch in figure.axes[0].patches)
    grid = show_grid([[np.zeros((4, 4, 3), dtype=np.uint8)]], key=trimap_key())
    assert [t.get_text() for t in grid.legends[0].get_texts()] == ["pet", "background", "border (counted as pet)"]
