"""The model comparison (notebook ``04_compare``): scores, tables, pictures and a written reading.

:func:`load_run` reads what :func:`petlib.training.engine.fit` left (a checkpoint and its history);
:func:`score_checkpoint` scores the best checkpoint on every test image, counts its parameters
and times it; :func:`group_scores`, :func:`pick_examples`, :func:`prediction_panels`,
:func:`summary_table`, :func:`species_table` and :func:`lab_reference_table` lay the numbers out;
:func:`written_reading` turns them into sentences that claim no more than they show.
"""
from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from petlib.data.dataset import SplitEntry, is_sample, trimap_to_mask
from petlib.data.survey import read_example
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
    "pick_examples", "prediction_panels", "paired_bootstrap", "summary_table", "species_table",
    "SPECIES_GAP", "LAB_REPORTED_DICE", "lab_reference_table", "written_reading",
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

    Each model predicts at the size it was trained at; its logits are resized back to the
    photo (see :func:`petlib.evaluation.predict.predict_mask`), so models trained at different sizes
    show side by side.

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
            predictions[r.label].append(predict_mask(r.model, photo, r.image_size, device=r.device))
    return images, truths, predictions


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


#: Smallest gap between species' mean Dice that :func:`written_reading` calls a difference.
SPECIES_GAP = 0.03

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


def _history_sentence(label: str, history: Sequence[Mapping[str, float]], best_epoch: int) -> str:
    last = history[-1]
    epochs = int(last["epoch"])
    dices = [row["val_dice"] for row in history]
    text = f"{label}'s validation Dice peaked at {max(dices):.3f} in epoch {best_epoch} of {epochs}"
    if best_epoch == epochs and epochs > 1:
        text += " -- still rising at the end, so more epochs would likely help"
    min_row = min(history, key=lambda row: row["val_loss"])
    if int(min_row["epoch"]) < epochs and last["val_loss"] > 1.1 * min_row["val_loss"]:
        text += (f"; its validation loss rose from {min_row['val_loss']:.3f} (epoch {int(min_row['epoch'])}) "
                 f"to {last['val_loss']:.3f}, a sign of overfitting")
    return text + "."


def written_reading(results: Sequence[ModelResult], species: Sequence[str]) -> str:
    """A few sentences, as Markdown, that read the comparison's numbers -- and only claim what they show.

    Covers: what was compared and whether it was like for like; which model scores higher and
    whether the gap exceeds a paired bootstrap's 95% interval; means against medians (the
    tail of failures); species; the validation curves; size and speed.

    Args:
        results: exactly two models, scored on the same images.
        species: the species of each image, in the same order.
    """
    if len(results) != 2:
        raise ValueError(f"written_reading compares two models, got {len(results)}")
    a, b = results
    if len(a.dice) != len(b.dice) or len(a.dice) != len(species):
        raise ValueError("both models must be scored on the same images, with one species label each")
    lines = [_setup_reading(a, b), _gap_reading(a, b), _tail_reading(results)]
    if len(set(species)) > 1:
        lines.append(_species_reading(results, species))
    lines.append(" ".join(_history_sentence(r.label, r.run.history, r.run.epoch) for r in results))
    lines.append(_speed_reading(a, b))
    return "\n\n".join(f"- {line}" for line in lines)


def _setup_reading(a: ModelResult, b: ModelResult) -> str:
    """What was compared, and whether like for like."""
    n = len(a.dice)
    ca, cb = a.run.config, b.run.config
    on_sample = is_sample(ca.data_path)
    quick = bool(ca.subset or cb.subset)
    setup = (f"Both best-validation checkpoints were scored on the same {n} test images "
             f"({'the embedded sample' if on_sample else Path(ca.data_path).name}), each at the size it was "
             f"trained at: {a.label} {ca.image_size} px, {ca.epochs} epochs; {b.label} {cb.image_size} px, "
             f"{cb.epochs} epochs.")
    differ = [f for f in ("data_path", "image_size", "epochs", "batch_size", "loss", "seed", "augment", "scheduler")
              if getattr(ca, f) != getattr(cb, f)]
    if differ:
        setup += (f" They were not trained alike ({', '.join(differ)} differ), so the comparison mixes the "
                  "networks with their settings.")
    if quick:
        setup += (" **This is a quick-mode run** on a handful of images for a couple of epochs: it shows that the "
                  "pipeline works end to end; its numbers say nothing about which network is better.")
    elif on_sample:
        setup += (f" These are {n} test images of three breeds, trained on 216 images for minutes on a CPU: "
                  "the numbers show what each network learns from little data and little compute, not what "
                  "it reaches on the full dataset (3,680 training images of 37 breeds, hours on a GPU).")
    if n < 100 and not quick:
        setup += f" With only {n} test images, differences of a few points can be chance (see the interval below)."
    return setup


def _gap_reading(a: ModelResult, b: ModelResult) -> str:
    """Which scores higher, and is the gap more than chance?"""
    n = len(a.dice)
    ma, mb = float(a.dice.mean()), float(b.dice.mean())
    if ma == mb:
        return f"Both have the same mean test Dice, {ma:.3f}."
    hi, lo = (b, a) if mb > ma else (a, b)
    low, high = paired_bootstrap(lo.dice, hi.dice)
    wins = float((hi.dice > lo.dice).mean())
    text = (f"{hi.label} has the higher mean test Dice: {hi.dice.mean():.3f} against {lo.dice.mean():.3f} "
            f"(+{hi.dice.mean() - lo.dice.mean():.3f}), and the higher score on {wins:.0%} of the images.")
    if math.isnan(low):
        return text + " One image is too few to say whether the gap is more than chance."
    interval = f" A paired bootstrap over the images puts the gap between {low:+.3f} and {high:+.3f} (95%)"
    if low > 0:
        return (text + interval + ", so on this test set it is more than chance"
                + (f", though with {n} images even that interval is rough." if n < 30 else "."))
    return text + interval + ", which includes zero: on this test set the two are not distinguishable."


def _tail_reading(results: Sequence[ModelResult]) -> str:
    """Means against medians: the tail of failures."""
    parts = []
    for r in results:
        mean, median, failures = float(r.dice.mean()), float(np.median(r.dice)), float((r.dice < 0.5).mean())
        parts.append(f"{r.label} mean {mean:.3f}, median {median:.3f}, {failures:.0%} of images below Dice 0.5")
    skewed = all(float(np.median(r.dice)) > float(r.dice.mean()) + 0.005 for r in results)
    return "Per image: " + "; ".join(parts) + "." + (
        " The medians sit above the means for both: most images are segmented well and a tail of "
        "failures pulls the means down (see the histogram and the worst examples)." if skewed else "")


def _species_reading(results: Sequence[ModelResult], species: Sequence[str]) -> str:
    """Mean Dice per species, and whether both networks find the same one harder."""
    groups = sorted(set(species))
    per = {r.label: group_scores(r.dice, species) for r in results}
    parts = [f"{r.label} " + ", ".join(f"{g} {per[r.label][g]['mean']:.3f}" for g in groups) for r in results]
    text = "Mean Dice per species: " + "; ".join(parts) + "."
    harder = {min(groups, key=lambda g: per[r.label][g]["mean"]) for r in results}
    # A gap between group means smaller than this is noise at these sizes: say nothing about it.
    gaps = [max(per[r.label][g]["mean"] for g in groups) - min(per[r.label][g]["mean"] for g in groups)
            for r in results]
    counts = Counter(species)
    if len(harder) == 1 and min(gaps) >= SPECIES_GAP:
        group = harder.pop()
        text += f" Both networks find {group}s harder"
        return text + (f" (only {counts[group]} {group} images: a hint, not a finding)." if counts[group] < 30 else ".")
    return text + (f" The species differ by less than {SPECIES_GAP:.2f} for at least one network, or not the same way:"
                   " neither is clearly harder.")


def _speed_reading(a: ModelResult, b: ModelResult) -> str:
    """Size and speed."""
    fast, slow = sorted((a, b), key=lambda r: r.seconds_per_image)
    ratio = slow.seconds_per_image / max(fast.seconds_per_image, 1e-12)
    sizes = (f"both at {fast.image_size} px" if fast.image_size == slow.image_size
             else f"{fast.label} at {fast.image_size} px, {slow.label} at {slow.image_size} px")
    return (
        f"{a.label} has {a.params / 1e6:.1f} M parameters, {b.label} {b.params / 1e6:.1f} M. On this machine "
        f"({fast.device}; {sizes}) {fast.label} takes {fast.seconds_per_image * 1000:.1f} ms per image and "
        f"{slow.label} {slow.seconds_per_image * 1000:.1f} ms, {ratio:.1f} times as long; timings vary with "
        "whatever else the machine is doing."
    )
