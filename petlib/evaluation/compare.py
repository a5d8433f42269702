"""Trained runs compared (notebook ``04_compare``; 02 and 03 show their own run the same way): tables and pictures.

:func:`load_run` reads what :func:`petlib.training.engine.fit` left (a checkpoint and its history);
:func:`score_checkpoint` scores the best checkpoint on every test image, counts its parameters
and times it. The numbers are laid out as tables: :func:`training_table` (how validation went),
:func:`summary_table`, :func:`species_table`, :func:`difference_table` (one model against the
other, image by image, with a bootstrap interval) and :func:`lab_reference_table`. The pictures:
:func:`show_examples` draws the best, typical and worst test images with each model's errors
(:func:`pick_examples` chooses them, :func:`prediction_panels` predicts them). The notebooks'
markdown says what to look for in them; nothing here writes sentences about the numbers.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from petlib.data.dataset import SplitEntry, is_sample, read_split, trimap_to_mask
from petlib.data.survey import read_example
from petlib.evaluation.plots import show_predictions
from petlib.evaluation.predict import predict_mask
from petlib.evaluation.score import evaluate_model
from petlib.evaluation.tables import format_table
from petlib.evaluation.timing import time_forward
from petlib.models import count_parameters
from petlib.training.checkpoint import load_checkpoint, load_model
from petlib.training.config import TrainConfig
from petlib.training.device import pick_device
from petlib.training.rundir import RunPaths, read_history
from petlib.training.settings import MODEL_LABELS, QUICK_DIR, QUICK_ENV

__all__ = [
    "TrainedRun", "load_run", "ModelResult", "score_checkpoint", "time_inference", "group_scores",
    "pick_examples", "prediction_panels", "show_examples", "paired_bootstrap", "training_table", "summary_table",
    "species_table", "difference_table", "LAB_REPORTED_DICE", "lab_reference_table",
]


@dataclass
class TrainedRun:
    """A finished training run as :func:`petlib.training.engine.fit` left it in ``out_dir``."""

    name: str
    checkpoint_path: Path
    history: list[dict[str, float]]
    config: TrainConfig
    epoch: int  # the epoch of the best checkpoint


def load_run(out_dir: str | Path, name: str) -> TrainedRun:
    """Read ``<out_dir>/<name>.pth`` (the best checkpoint) and ``<name>_history.csv``.

    Raises:
        FileNotFoundError: the checkpoint is missing; the message names the notebook that writes it.
    """
    paths = RunPaths(out_dir, name)
    path = paths.best
    if not path.is_file():
        notebook = {"unet": "02_train_unet.ipynb", "resnet34_unet": "03_train_resnet34_unet.ipynb"}.get(name, "02/03")
        raise FileNotFoundError(
            f"no checkpoint {path}: run {notebook} first"
            + (f" (in quick mode too: {QUICK_ENV}=1)" if paths.out_dir.resolve() == QUICK_DIR.resolve() else "")
        )
    checkpoint = load_checkpoint(path)
    # The checkpoint's history stops at its own (best) epoch; the CSV has the whole run.
    history = read_history(paths.history) if paths.history.is_file() else list(checkpoint["history"])
    return TrainedRun(name, path, history, TrainConfig.from_dict(checkpoint["config"]), int(checkpoint["epoch"]))


@dataclass
class ModelResult:
    """One model's test results, in the order of the split file.

    Attributes:
        label: display name (``"UNet"``).
        run: the training run the checkpoint came from.
        model: the loaded network (eval mode).
        params: trainable parameters.
        dice, iou: ``(N,)`` per-image scores at the training size, in split-file order.
        seconds_per_image: inference time at ``image_size`` (see :func:`time_inference`).
        device: where it was scored and timed.
    """

    label: str
    run: TrainedRun
    model: nn.Module
    params: int
    dice: np.ndarray
    iou: np.ndarray
    seconds_per_image: float
    device: str

    @property
    def image_size(self) -> int:
        return self.run.config.image_size


def time_inference(
    model: nn.Module,
    image_size: int,
    *,
    batch_size: int = 8,
    repeats: int = 5,
    warmup: int = 1,
    device: torch.device | str = "cpu",
) -> float:
    """Median seconds per image of ``model`` on random ``(batch_size, 3, S, S)`` batches.

    ``warmup`` untimed passes first, then ``repeats`` timed ones (:func:`petlib.evaluation.timing.time_forward`).
    The model's train/eval mode is restored afterwards.
    """
    images = torch.rand(batch_size, 3, image_size, image_size, device=torch.device(device))
    time_forward(model, images, steps=warmup)
    return statistics.median(time_forward(model, images) for _ in range(repeats)) / batch_size


def score_checkpoint(
    run: TrainedRun,
    data_path: str | Path,
    mode: str = "test",
    *,
    batch_size: int = 16,
    time_repeats: int = 5,
    device: str | None = None,
) -> ModelResult:
    """Score ``run``'s best checkpoint on every image of ``mode``, count its parameters and time it.

    Scores are per image at the size the model was trained at (as in validation), sorted into
    split-file order so that two models' scores line up image by image.
    """
    torch_device = pick_device(device)
    model, checkpoint = load_model(run.checkpoint_path)
    result = evaluate_model(model, checkpoint, data_path, mode, batch_size=batch_size, device=str(torch_device),
                            per_image=True)  # flip TTA as validated; moves the model to the device
    order = torch.argsort(result["indices"])
    seconds = time_inference(model, run.config.image_size, batch_size=min(batch_size, 8),
                             repeats=time_repeats, device=torch_device)
    return ModelResult(
        label=MODEL_LABELS.get(run.name, run.name), run=run, model=model, params=count_parameters(model),
        dice=result["dice_per_image"][order].numpy().astype(np.float64),
        iou=result["iou_per_image"][order].numpy().astype(np.float64),
        seconds_per_image=seconds, device=str(torch_device),
    )


def group_scores(values: Sequence[float] | np.ndarray, groups: Sequence[str]) -> dict[str, dict[str, float]]:
    """Mean, median and count of ``values`` per group (e.g. per species), groups sorted by name.

    Raises:
        ValueError: ``values`` and ``groups`` differ in length.
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) != len(groups):
        raise ValueError(f"{len(values)} values but {len(groups)} group labels")
    out = {}
    for group in sorted(set(groups)):
        selected = values[[g == group for g in groups]]
        out[group] = {"mean": float(selected.mean()), "median": float(np.median(selected)), "count": int(len(selected))}
    return out


def pick_examples(scores: Sequence[float] | np.ndarray, k: int = 2) -> dict[str, list[int]]:
    """Indices of the ``k`` best, ``k`` most typical (nearest the median) and ``k`` worst scores.

    No index appears twice; with fewer than ``3 k`` scores the worst and best come first and
    "typical" gets what is left. Ties keep the earlier index.

    Returns:
        ``{"best": [...], "typical": [...], "worst": [...]}``, best first within each.
    """
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(scores, kind="stable")  # ascending
    n = len(scores)
    worst = [int(i) for i in order[: min(k, n)]]
    best = [int(i) for i in order[::-1] if int(i) not in worst][:k]
    median = float(np.median(scores)) if n else 0.0
    rest = [i for i in range(n) if i not in worst and i not in best]
    typical = sorted(rest, key=lambda i: (abs(scores[i] - median), i))[:k]
    by_score = lambda indices: sorted(indices, key=lambda i: (-scores[i], i))  # noqa: E731
    return {"best": by_score(best), "typical": by_score(typical), "worst": by_score(worst)}


def prediction_panels(
    results: Sequence[ModelResult],
    data_path: str | Path,
    entries: Sequence[SplitEntry],
    indices: Sequence[int],
) -> tuple[list[np.ndarray], list[np.ndarray], dict[str, list[np.ndarray]]]:
    """Photos, true masks and each model's predicted masks for ``entries[indices]``, at the photo's size.

    Each model predicts at the size it was trained at, with the flip TTA its run validated with
    (as it was scored); its logits are resized back to the photo (see
    :func:`petlib.evaluation.predict.predict_mask`), so models trained at different sizes show side by side.

    Returns:
        ``(images, truths, predictions)``: ``(H, W, 3)`` uint8 photos, ``(H, W)`` bool truths,
        and model label -> ``(H, W)`` bool predictions.
    """
    root = Path(data_path)
    images, truths = [], []
    predictions: dict[str, list[np.ndarray]] = {r.label: [] for r in results}
    for index in indices:
        image, trimap = read_example(root, entries[index].name)
        images.append(image)
        truths.append(trimap_to_mask(trimap) > 0.5)
        photo = Image.fromarray(image)
        for r in results:
            predictions[r.label].append(predict_mask(r.model, photo, r.image_size, tta=r.run.config.tta,
                                                     device=r.device))
    return images, truths, predictions


def show_examples(results: Sequence[ModelResult], data_path: str | Path, mode: str = "test", *, k: int = 2):
    """The best, typical and worst images of ``mode``: photo, true mask, and each model's errors coloured.

    The images are ranked by the models' mean Dice on each (:func:`pick_examples`); each model's
    mask is predicted at the photo's size (:func:`prediction_panels`) and drawn by
    :func:`petlib.evaluation.plots.show_predictions`: pet found green, background called pet
    magenta, pet missed blue. The Dice over a mask is the one at the training size, as in the tables.
    One model (notebooks 02 and 03) or several (04).

    Args:
        results: models scored on every image of ``mode`` of ``data_path`` (:func:`score_checkpoint`).
        k: images of each kind (best, typical, worst).

    Returns:
        The matplotlib figure, one row per image.

    Raises:
        ValueError: no models, or a model scored on other images than ``mode`` holds.
    """
    entries = read_split(data_path, mode)
    if not results or any(len(r.dice) != len(entries) for r in results):
        raise ValueError(f"show_examples needs models scored on the {len(entries)} {mode} images of {data_path}")
    picks = pick_examples(np.mean([r.dice for r in results], axis=0), k=k)
    shown = [(kind, index) for kind in ("best", "typical", "worst") for index in picks[kind]]
    indices = [index for _, index in shown]
    images, truths, predictions = prediction_panels(results, data_path, entries, indices)
    return show_predictions(images, truths, predictions, [f"{kind}: {entries[i].name}" for kind, i in shown],
                            scores={r.label: r.dice[indices] for r in results})


def paired_bootstrap(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, *, samples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95% interval of ``mean(b - a)`` over images resampled with replacement (pairs kept together)."""
    diff = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    if len(diff) < 2:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(samples, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def _training_row(run: TrainedRun) -> dict[str, object]:
    history = run.history
    validated = [row for row in history if not math.isnan(row["val_loss"])]
    lowest = min(validated, key=lambda row: row["val_loss"]) if validated else None
    best = next((row for row in history if int(row["epoch"]) == run.epoch), None)
    return {
        "model": MODEL_LABELS.get(run.name, run.name), "epochs": int(history[-1]["epoch"]), "best epoch": run.epoch,
        "val Dice best": best["val_dice"] if best else None, "val Dice last": history[-1]["val_dice"],
        "val loss lowest": lowest["val_loss"] if lowest else None,
        "at epoch": int(lowest["epoch"]) if lowest else None, "val loss last": history[-1]["val_loss"],
    }


def training_table(runs: Sequence[TrainedRun]) -> str:
    """How each run's validation went, as text: its epochs, the best epoch (the checkpoint kept) and its
    validation Dice beside the last epoch's, and the lowest validation loss (and when) beside the last.

    A best epoch that is the last one says the Dice was still rising when training stopped; a last
    validation loss well above the lowest says the network began to overfit. A run that did not
    validate shows ``-``.
    """
    return format_table([_training_row(run) for run in runs])


def summary_table(results: Sequence[ModelResult]) -> str:
    """Test Dice and IoU (mean, median), parameters and speed of each model, as text."""
    rows = [{
        "model": r.label, "parameters": r.params, "image px": r.image_size, "images": len(r.dice),
        "Dice mean": float(r.dice.mean()), "Dice median": float(np.median(r.dice)),
        "IoU mean": float(r.iou.mean()), "IoU median": float(np.median(r.iou)),
        # A timing is not precise to 4 decimals: show 2.
        "ms / image": f"{r.seconds_per_image * 1000:.2f}",
    } for r in results]
    return format_table(rows)


#: Test Dice the course lab reported for its networks (full dataset, 256 px, trained from scratch).
LAB_REPORTED_DICE: dict[str, float] = {"unet": 0.8731, "resnet34_unet": 0.8777}


def lab_reference_table(results: Sequence[ModelResult]) -> str:
    """This run's mean test Dice of each model beside the lab's reported scores, as text."""
    rows = []
    for r in results:
        rows.append({"model": r.label, "source": "this run", "data": "embedded sample" if is_sample(r.run.config.data_path) else
                     Path(r.run.config.data_path).name, "image px": r.image_size, "epochs": r.run.config.epochs,
                     "test images": len(r.dice), "test Dice": float(r.dice.mean())})
    for name, dice in LAB_REPORTED_DICE.items():
        rows.append({"model": MODEL_LABELS[name], "source": "course lab (reported)", "data": "full dataset",
                     "image px": 256, "epochs": None, "test images": None, "test Dice": dice})
    return format_table(rows)


def difference_table(results: Sequence[ModelResult], *, samples: int = 2000, seed: int = 0) -> str:
    """The second model against the first, image by image, as text: Dice and IoU of each, their difference,
    its 95% interval (:func:`paired_bootstrap` over the images) and on how many images the second scores higher.

    An interval that includes zero means that on these images the two are not distinguishable;
    with a few dozen images it is wide, and with one image there is none (``-``).

    Raises:
        ValueError: not exactly two models, or models scored on different numbers of images.
    """
    if len(results) != 2:
        raise ValueError(f"difference_table compares two models, got {len(results)}")
    a, b = results
    if len(a.dice) != len(b.dice):
        raise ValueError(f"{a.label} was scored on {len(a.dice)} images and {b.label} on {len(b.dice)}: "
                         "score both on the same split")
    rows = []
    for score, first, second in (("Dice", a.dice, b.dice), ("IoU", a.iou, b.iou)):
        low, high = paired_bootstrap(first, second, samples=samples, seed=seed)
        rows.append({"score": score, a.label: float(first.mean()), b.label: float(second.mean()),
                     "difference": f"{float((second - first).mean()):+.4f}",
                     "95% interval": "-" if math.isnan(low) else f"{low:+.4f} to {high:+.4f}",
                     f"{b.label} higher on": f"{int((second > first).sum())} of {len(first)} images"})
    return format_table(rows)


def species_table(results: Sequence[ModelResult], species: Sequence[str]) -> str:
    """Test Dice and IoU (mean and median) of each model per species, as text."""
    rows = []
    for r in results:
        dice, iou = group_scores(r.dice, species), group_scores(r.iou, species)
        for group in dice:
            rows.append({"model": r.label, "species": group, "images": dice[group]["count"],
                         "Dice mean": dice[group]["mean"], "Dice median": dice[group]["median"],
                         "IoU mean": iou[group]["mean"], "IoU median": iou[group]["median"]})
    return format_table(rows)
