"""k-fold cross-validation over the trainval images: how training settings are chosen.

One validation split of 24 images cannot tell two recipes apart (one image moves its mean by
0.04), and the test split must never be used for choices. So a candidate recipe is trained
``k`` times, each time on the trainval images outside one fold -- with the recipe's own
train/valid split inside them, exactly as ``python -m petlib.train`` would -- and its best
checkpoint is scored on that fold, which it never saw. Every candidate sees the same folds and
seeds, so candidates are compared **paired**: per run, the candidate's held-out Dice minus the
baseline's, whose mean and standard error say whether the difference is larger than the noise
of training (seeds, fold composition) and of the images.

Each run's record (config, history, held-out Dice per image) is one JSON file,
``<out_dir>/<candidate>/s<seed>-f<fold>.json``, written when the run ends: an interrupted
protocol skips what is done, and several processes can run different folds at once.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from petlib._io import chmod_as_new_file
from petlib.data.dataset import read_split
from petlib.training.checkpoint import load_model
from petlib.training.config import TrainConfig

__all__ = [
    "CANDIDATES", "parse_candidate", "parse_value", "fold_root", "run_fold", "load_records", "Summary", "summarise",
    "format_summary",
]

#: Candidate recipes searched with this protocol (README, "How the defaults were chosen"):
#: name -> TrainConfig overrides on petlib's defaults. "default" is the baseline the others
#: are paired with.
CANDIDATES: dict[str, dict[str, Any]] = {
    "default": {},
    # A practitioner's augmentation: zoom 0.75-1 in side (0.56-1 in area) with translation,
    # rotation up to 15 degrees, colour 0.8-1.2; one affine warp with reflected borders.
    "strong-aug": dict(crop_scale_min=0.56, rotation=15.0, color_jitter=0.2),
    # ... with a short warm-up: 10 % of the run instead of 30 %.
    "strong-aug+warmup10": dict(crop_scale_min=0.56, rotation=15.0, color_jitter=0.2, warmup_fraction=0.1),
    # ... and the trimap's border band left out of the loss.
    "strong-aug+warmup10+ignore-border": dict(
        crop_scale_min=0.56, rotation=15.0, color_jitter=0.2, warmup_fraction=0.1, ignore_border=True),
    "ignore-border": dict(ignore_border=True),
    "warmup10": dict(warmup_fraction=0.1),
    # Native bf16 autocast on a CPU that has it: the same recipe, faster (issue: speed).
    "bf16": dict(amp="on"),
    # Train on every trainval image (the validation tenth too) and keep the last epoch.
    "all-data": dict(validate=False),
    # ... with zoom-out as well as zoom-in: the crop's area 0.8-1.25 of the image's.
    "all-data+zoom-out": dict(validate=False, crop_scale_max=1.25),
    # One soft Dice pooled over the batch (smp's) instead of per image.
    "pooled": dict(loss="bce+dice_pooled"),
    # The ResNet34-UNet's peak learning rate halved.
    "lr5e-4": dict(lr=5e-4),
    # Every residual block starts as the identity (torchvision's zero_init_residual).
    "zero-init": dict(model_kwargs={"zero_init_residual": True}),
    # The network runs on the image enlarged 1.25x (1.56x the compute); logits back at 128 px.
    "in1.25": dict(model_kwargs={"input_scale": 1.25}),
    # Issue 23's round, against all-data (the default since then): twice the optimiser steps in
    # the same epochs, and BCE + Lovasz hinge (Berman et al., 2018) instead of BCE + soft Dice.
    "b8": dict(batch_size=8),
    "lovasz": dict(loss="bce+lovasz"),
    # ... the soft Dice term weighted 2 against BCE's 1, half the photos with another photo's pet
    # pasted on (Augment.paste), and the weights' moving average (decay 0.98, ~50 steps) kept.
    "dice2": dict(dice_weight=2.0),
    "copy-paste": dict(copy_paste=0.5),
    "ema": dict(ema_decay=0.98),
}


def parse_candidate(text: str) -> tuple[str, dict[str, Any]]:
    """``"name"`` (one of :data:`CANDIDATES`) or ``"name:field=value,field=value"``.

    Values are JSON (``0.56``, ``true``, ``"cosine"``; a bare word is taken as a string).
    """
    name, sep, spec = text.partition(":")
    if not sep:
        if name not in CANDIDATES:
            raise ValueError(f"unknown candidate {name!r}; known: {', '.join(CANDIDATES)}, or NAME:FIELD=VALUE,...")
        return name, dict(CANDIDATES[name])
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    overrides: dict[str, Any] = {}
    for item in filter(None, spec.split(",")):
        key, eq, value = item.partition("=")
        if not eq or key not in fields:
            raise ValueError(f"candidate {text!r}: {item!r} is not FIELD=VALUE with a TrainConfig field")
        overrides[key] = parse_value(value)
    return name, overrides


def parse_value(text: str) -> Any:
    """A FIELD=VALUE value: JSON (``0.56``, ``true``, ``null``), ``None``/empty as None, else the word itself."""
    if text in ("", "None"):
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def fold_root(data_path: str | Path, folds: int, fold: int, out_dir: str | Path) -> Path:
    """A dataset folder whose trainval is every trainval image outside ``fold`` and whose
    test split is ``fold`` (trainval line ``i`` is in fold ``i % folds``).

    Images and trimaps are symlinked, not copied; only the two split files are written.
    """
    if not 0 <= fold < folds:
        raise ValueError(f"fold {fold} is not in 0..{folds - 1}")
    source = Path(data_path).resolve()
    read_split(source, "train")  # checks the layout, with a clear error if it is not a dataset
    # The split file's own lines, comments and blanks dropped, so the folds keep every field.
    lines = [line.strip() for line in (source / "annotations" / "trainval.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    if len(lines) < folds:
        raise ValueError(f"{source} lists {len(lines)} trainval images, fewer than {folds} folds")
    root = Path(out_dir) / "folds" / f"k{folds}-f{fold}"
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for link, target in ((root / "images", source / "images"),
                         (root / "annotations" / "trimaps", source / "annotations" / "trimaps")):
        try:
            os.symlink(target, link, target_is_directory=True)
        except FileExistsError:  # made earlier, or by another process running the same fold
            pass
    held_out = [line for i, line in enumerate(lines) if i % folds == fold]
    kept = [line for i, line in enumerate(lines) if i % folds != fold]
    for name, chosen in (("trainval.txt", kept), ("test.txt", held_out)):
        # Written whole, then renamed into place: another process training the same fold may be
        # reading this file right now (the content is the same, never half of it).
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=root / "annotations")
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(chosen) + "\n")
        chmod_as_new_file(tmp)  # mkstemp makes it private; a split file is as readable as any other
        os.replace(tmp, root / "annotations" / name)
    return root


def record_path(out_dir: str | Path, candidate: str, seed: int, fold: int) -> Path:
    return Path(out_dir) / candidate / f"s{seed}-f{fold}.json"


def run_fold(
    config: TrainConfig, candidate: str, *, folds: int, fold: int, seed: int, out_dir: str | Path,
    progress: bool = False, keep_checkpoint: bool = False,
) -> dict[str, Any]:
    """Train ``config`` on the trainval images outside ``fold`` and score its best checkpoint
    on ``fold``; write and return the run's record (skipped if written earlier). The checkpoint
    is deleted after scoring unless ``keep_checkpoint``."""
    from petlib.training.device import pick_device
    from petlib.training.engine import evaluate, fit, make_loaders  # the engine only when training

    path = record_path(out_dir, candidate, seed, fold)
    if path.exists():
        return json.loads(path.read_text())
    root = fold_root(config.data_path, folds, fold, out_dir)
    # The run's own files (curves, card, history) in <candidate>/s<seed>-f<fold>/ beside its record.
    config = dataclasses.replace(
        config, data_path=str(root), seed=seed, out_dir=str(path.with_suffix("")), run_name=None, overwrite=True,
        save_last=False)
    start = time.perf_counter()
    run = fit(config, progress=progress, log=None)
    minutes = (time.perf_counter() - start) / 60
    device = pick_device(config.device)
    model, best = load_model(run.best_checkpoint, expected_model=config.model)
    model.to(device)
    loader = make_loaders(dataclasses.replace(config, augment=False), device, modes=("test",))["test"]
    scores = evaluate(model, loader, device, tta=config.tta, per_image=True)
    names = [loader.dataset.entries[i].name for i in scores["indices"].tolist()]
    # The last epoch's weights too (fit returns them): whether picking the best epoch on a
    # small validation split beats simply keeping the end of the schedule.
    last = evaluate(run.model, loader, device, tta=config.tta, per_image=True)
    record = {
        "candidate": candidate, "seed": seed, "fold": fold, "folds": folds,
        "heldout_dice": scores["dice"], "heldout_iou": scores["iou"], "heldout_images": scores["count"],
        "val_dice": best["best_dice"], "best_epoch": best["epoch"], "minutes": minutes,
        "per_image_dice": dict(zip(names, scores["dice_per_image"].tolist())),
        "heldout_dice_last": last["dice"], "heldout_iou_last": last["iou"],
        "per_image_dice_last": dict(zip(names, last["dice_per_image"].tolist())),
        "config": {**config.to_dict(), "data_path": str(config.data_path)},
        "history": run.history,
    }
    if not keep_checkpoint:  # ~100 MB each; the record holds what the protocol needs
        run.best_checkpoint.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(path)  # a record is there whole or not at all
    return record


def load_records(out_dir: str | Path) -> dict[str, list[dict[str, Any]]]:
    """candidate -> its finished runs' records, sorted by (seed, fold)."""
    records: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(Path(out_dir).glob("*/s*-f*.json")):
        record = json.loads(path.read_text())
        records.setdefault(record["candidate"], []).append(record)
    for runs in records.values():
        runs.sort(key=lambda r: (r["seed"], r["fold"]))
    return records


# Two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom (normal beyond).
_T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042]


def t95(dof: int) -> float:
    """Two-sided 95 % quantile of Student's t with ``dof`` degrees of freedom."""
    return _T95[dof - 1] if 1 <= dof <= len(_T95) else 1.960


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (NaN error for fewer than two values)."""
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan)


@dataclass(frozen=True)
class Summary:
    """One candidate's runs, and the paired difference to the baseline on the runs both finished."""

    candidate: str
    runs: int
    mean: float  # mean held-out Dice over runs
    se: float  # its standard error over runs
    pooled: float  # mean Dice over every held-out image of every run
    diff: float | None = None  # mean of (candidate - baseline) per paired run
    diff_se: float | None = None
    diff_low: float | None = None  # 95 % t-interval of the paired difference
    diff_high: float | None = None
    paired_runs: int = 0
    minutes: float = math.nan  # mean wall time of a run

    @property
    def verdict(self) -> str:
        """"better"/"worse" when the 95 % interval of the paired difference excludes 0, else "no difference"."""
        if self.diff_low is None or math.isnan(self.diff_low):
            return "baseline" if self.diff is None else "too few runs"
        if self.diff_low > 0:
            return "better"
        if self.diff_high < 0:
            return "worse"
        return "no difference"


#: Which weights of a run are scored: the checkpoint the run keeps (its best validated epoch, or its
#: last one when it trains without validation) or the last epoch's.
SCORES = {"best": ("heldout_dice", "per_image_dice"), "last": ("heldout_dice_last", "per_image_dice_last")}


def summarise(
    records: dict[str, list[dict[str, Any]]], baseline: str = "default", score: str = "best"
) -> list[Summary]:
    """A :class:`Summary` per candidate, paired with ``baseline`` run by run (same seed, same fold).

    ``score``: "best" scores each run's best-validation checkpoint, "last" its last epoch's
    weights (runs recorded without them are left out).
    """
    key, per_image = SCORES[score]
    records = {name: [r for r in runs if key in r] for name, runs in records.items()}
    records = {name: runs for name, runs in records.items() if runs}
    base = {(r["seed"], r["fold"]): r[key] for r in records.get(baseline, [])}
    out = []
    for name, runs in records.items():
        scores = [r[key] for r in runs]
        mean, se = mean_se(scores)
        pooled = float(np.mean([d for r in runs for d in r[per_image].values()]))
        summary = Summary(name, len(runs), mean, se, pooled, minutes=statistics.fmean(r["minutes"] for r in runs))
        diffs = [r[key] - base[(r["seed"], r["fold"])] for r in runs if (r["seed"], r["fold"]) in base]
        if name != baseline and diffs:
            d, d_se = mean_se(diffs)
            half = t95(len(diffs) - 1) * d_se if len(diffs) > 1 else math.nan
            summary = dataclasses.replace(summary, diff=d, diff_se=d_se, diff_low=d - half, diff_high=d + half,
                                          paired_runs=len(diffs))
        out.append(summary)
    out.sort(key=lambda s: (s.candidate != baseline, -s.mean))
    return out


def format_summary(summaries: Sequence[Summary], baseline: str = "default") -> str:
    """A markdown table of the summaries, as pasted into the README."""
    lines = [
        f"| candidate | runs | held-out Dice (mean ± s.e.) | minus {baseline} (paired, ± s.e.) | 95 % interval | verdict | min/run |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        diff = "" if s.diff is None else f"{s.diff:+.4f} ± {s.diff_se:.4f}"
        interval = "" if s.diff_low is None or math.isnan(s.diff_low) else f"[{s.diff_low:+.4f}, {s.diff_high:+.4f}]"
        lines.append(f"| {s.candidate} | {s.runs} | {s.mean:.4f} ± {s.se:.4f} | {diff} | {interval} | "
                     f"{s.verdict} | {s.minutes:.1f} |")
    return "\n".join(lines)
