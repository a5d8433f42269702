"""What the notebooks compute: their settings, a survey of the dataset, and the model comparison.

The numbered notebooks in ``notebooks/`` hold no code of their own beyond calls; everything
they compute lives here, typed and tested (``tests/test_analysis.py``).

**Settings.** Each notebook has one settings cell that builds a :class:`~petlib.config.TrainConfig`
and passes it through :func:`notebook_config`, which

- picks the run mode (:func:`run_mode`): the full dataset where it is; otherwise the embedded
  300-image sample with ``make run``'s settings, writing to ``<out_dir>/sample``; or, with the
  environment variable ``PETLIB_QUICK=1`` (tests), a fixed 16 images per split of the sample at a
  small size for two epochs (:data:`QUICK_SETTINGS`), writing to :data:`QUICK_DIR`, a folder
  under the system's temp directory -- never ``saved_models/``;
- applies ``PETLIB_<FIELD>`` environment variables (``PETLIB_EPOCHS=5``, see
  :data:`ENV_OVERRIDES`), which override the cell, never the other way round;
- resolves relative paths against the repository root (:data:`REPO_ROOT`), since Jupyter
  runs a notebook from ``notebooks/``.

**Dataset survey** (``01_explore_data``): :func:`read_splits`, :func:`count_by`,
:func:`survey_images`, :func:`odd_images`, :func:`foreground_fractions`.

**Comparison** (``04_compare``): :func:`load_run` (a checkpoint and its history),
:func:`score_checkpoint` (per-image test scores, parameters, speed), :func:`group_scores`,
:func:`pick_examples`, :func:`prediction_panels`, :func:`summary_table`, :func:`species_table`
and :func:`written_reading`, which turns the numbers into sentences that claim no more
than they show.
"""
from __future__ import annotations

import dataclasses
import math
import os
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from .checkpoint import load_checkpoint, load_model
from .config import SAMPLE_SETTINGS, TrainConfig
from .data import (
    DEFAULT_ROOT,
    MODES,
    SAMPLE_ROOT,
    DatasetNotFoundError,
    SplitEntry,
    read_image,
    read_split,
    read_trimap,
    trimap_to_mask,
)
from .engine import pick_device, read_history
from .inference import evaluate_model
from .models import count_parameters
from .predict import predict_mask

__all__ = [
    "REPO_ROOT", "QUICK_ENV", "QUICK_DIR", "QUICK_SETTINGS", "ENV_OVERRIDES", "MODEL_LABELS",
    "SAMPLE_SUBDIR", "RUN_MODES", "quick_mode", "resolve_path", "run_mode", "notebook_config", "config_mode",
    "mode_banner", "shown_path", "dataset_present", "require_dataset", "describe_run",
    "read_splits", "count_by", "count_table", "read_example", "ImageInfo", "survey_images", "odd_images", "foreground_fractions",
    "format_table",
    "TrainedRun", "load_run", "ModelResult", "score_checkpoint", "time_inference", "group_scores",
    "pick_examples", "prediction_panels", "paired_bootstrap", "summary_table", "species_table",
    "LAB_REPORTED_DICE", "lab_reference_table",
    "written_reading",
]

# --------------------------------------------------------------------------- settings

#: The repository: ``dataset/`` and ``saved_models/`` live here (the package sits in it).
REPO_ROOT = Path(__file__).resolve().parent.parent
#: The environment variable that switches the notebooks to quick mode.
QUICK_ENV = "PETLIB_QUICK"
#: Where quick-mode runs write checkpoints, so that ``04_compare`` finds what 02 and 03 wrote
#: and a quick run never touches ``saved_models/``.
QUICK_DIR = Path(tempfile.gettempdir()) / "petlib-quick"
#: What quick mode changes: a fixed handful of the sample's images per split, a small size and
#: two epochs, so the four notebooks run in a couple of minutes on two CPU cores (nbval in CI).
#: Both networks get the same size, so that 04 compares like with like. A quick run replaces the
#: previous quick run and keeps no resumable last checkpoint (nothing to resume in a check).
QUICK_SETTINGS: dict[str, Any] = dict(image_size=64, epochs=2, batch_size=4, subset=16, cache=True,
                                      overwrite=True, save_last=False)
#: The folder, under the settings cell's ``out_dir``, where runs on the embedded sample go, so
#: that they never mix with (or replace) runs on the full dataset.
SAMPLE_SUBDIR = "sample"
#: TrainConfig fields that ``PETLIB_<FIELD>`` environment variables may override, and their parsers.
ENV_OVERRIDES: dict[str, Callable[[str], Any]] = {
    "data_path": str, "image_size": int, "epochs": int, "batch_size": int, "lr": float,
    "loss": str, "seed": int, "out_dir": str,
}
#: The two networks compared, as the notebooks name them.
MODEL_LABELS: dict[str, str] = {"unet": "UNet", "resnet34_unet": "ResNet34-UNet"}
#: The three ways a notebook runs, see :func:`run_mode`.
RUN_MODES = ("full", "sample", "quick")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def quick_mode(environ: Mapping[str, str] | None = None) -> bool:
    """True when ``PETLIB_QUICK`` is set to 1/true/yes/on (case-insensitive).

    Raises:
        ValueError: any other value, so that a typo does not start an hours-long run.
    """
    value = (os.environ if environ is None else environ).get(QUICK_ENV, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{QUICK_ENV}={value!r}: expected 1/true/yes/on or 0/false/no/off (or unset)")


def resolve_path(path: str | Path) -> Path:
    """``path`` as an absolute path; a relative one is taken from the repository root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def run_mode(data_path: str | Path, environ: Mapping[str, str] | None = None) -> str:
    """Which of :data:`RUN_MODES` a notebook asking for ``data_path`` runs in.

    ``"quick"`` when ``PETLIB_QUICK`` is on (tests); otherwise ``"full"`` when ``data_path``
    holds the dataset, and ``"sample"`` -- the embedded 300-image sample -- when it does not.
    """
    if quick_mode(environ):
        return "quick"
    return "full" if dataset_present(resolve_path(data_path)) else "sample"


def notebook_config(config: TrainConfig, environ: Mapping[str, str] | None = None) -> TrainConfig:
    """The settings a notebook really runs with: its settings cell, adapted to the run mode, then env overrides.

    - ``full`` (the dataset is at ``config.data_path``): the cell as it is.
    - ``sample`` (it is not): :data:`~petlib.data.SAMPLE_ROOT` with ``make run``'s settings for
      the model (:data:`petlib.config.SAMPLE_SETTINGS`), writing to ``<out_dir>/sample``.
    - ``quick`` (``PETLIB_QUICK=1``): the sample with :data:`QUICK_SETTINGS`, writing to
      :data:`QUICK_DIR`.

    ``PETLIB_<FIELD>`` variables (:data:`ENV_OVERRIDES`) override any of it; a
    ``PETLIB_DATA_PATH`` is applied before the mode is decided.

    Args:
        config: what the notebook's settings cell says.
        environ: the environment to read (default ``os.environ``).

    Returns:
        A new config with ``data_path`` and ``out_dir`` absolute.

    Raises:
        ValueError: a variable that does not parse, or a quick run aimed at ``saved_models/``.
    """
    environ = os.environ if environ is None else environ
    overrides = {}
    for name, parse in ENV_OVERRIDES.items():
        variable = f"PETLIB_{name.upper()}"
        if variable in environ:
            try:
                overrides[name] = parse(environ[variable])
            except ValueError:
                raise ValueError(f"{variable}={environ[variable]!r} is not a valid {parse.__name__}") from None
    mode = run_mode(overrides.get("data_path", config.data_path), environ)
    if mode == "quick":
        config = dataclasses.replace(config, data_path=str(SAMPLE_ROOT), out_dir=str(QUICK_DIR), **QUICK_SETTINGS)
    elif mode == "sample":
        config = dataclasses.replace(config, data_path=str(SAMPLE_ROOT),
                                     out_dir=str(Path(config.out_dir) / SAMPLE_SUBDIR),
                                     **SAMPLE_SETTINGS.get(config.model, {}))
    if mode != "full":
        overrides.pop("data_path", None)  # it named no dataset: the sample replaces it
    config = dataclasses.replace(config, **overrides)
    config = dataclasses.replace(config, data_path=str(resolve_path(config.data_path)),
                                 out_dir=str(resolve_path(config.out_dir)))
    if mode == "quick" and Path(config.out_dir).resolve() == (REPO_ROOT / "saved_models").resolve():
        raise ValueError(f"quick mode must not write to {config.out_dir}: unset PETLIB_OUT_DIR or pick another folder")
    return config


def config_mode(config: TrainConfig, environ: Mapping[str, str] | None = None) -> str:
    """The run mode of a config that :func:`notebook_config` returned (``"full"``, ``"sample"``, ``"quick"``)."""
    if quick_mode(environ):
        return "quick"
    return "sample" if Path(config.data_path).resolve() == SAMPLE_ROOT.resolve() else "full"


def mode_banner(config: TrainConfig, environ: Mapping[str, str] | None = None) -> str:
    """The first thing a notebook prints: which data it runs on, and why."""
    mode = config_mode(config, environ)
    if mode == "quick":
        return (f"QUICK MODE ({QUICK_ENV}=1): {config.subset or 'all'} images per split of the embedded sample, "
                f"{config.epochs} epochs at {config.image_size} px, files in {QUICK_DIR}. "
                "A check that everything runs, not a result.")
    if mode == "sample":
        return (f"EMBEDDED SAMPLE: no full dataset at {DEFAULT_ROOT}, so this runs on the 300 real images "
                f"shipped in {shown_path(SAMPLE_ROOT)} "
                "(3 breeds, downsized; train 216 / valid 24 / test 60) with `make run`'s settings. "
                "For the full dataset: `python -m petlib.data download`, then run this again.")
    return f"FULL DATASET: {shown_path(config.data_path)}"


def shown_path(path: str | Path) -> str:
    """``path`` relative to the repository when it is inside it (what a reader's checkout has too)."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def dataset_present(root: str | Path) -> bool:
    """True if ``root`` holds the official layout (images, trimaps and both split files)."""
    root = Path(root)
    return all((root / part).exists() for part in
               ("images", "annotations/trimaps", "annotations/trainval.txt", "annotations/test.txt"))


def require_dataset(root: str | Path) -> Path:
    """``root`` if it holds the dataset; otherwise an error that says how to get it.

    Raises:
        DatasetNotFoundError: naming where it looked, the download command, and the sample.
    """
    root = Path(root)
    if dataset_present(root):
        return root
    raise DatasetNotFoundError(
        f"No Oxford-IIIT Pet at {root} (looked for images/, annotations/trimaps/, "
        f"annotations/trainval.txt and annotations/test.txt).\n"
        f"Either download it (~800 MB) from the repository root:\n"
        f"    python -m petlib.data download --root {root}\n"
        f"or leave the settings cell's data_path at dataset/oxford-iiit-pet: without the full dataset the\n"
        f"notebooks run on the 300-image sample shipped in {SAMPLE_ROOT}."
    )


def describe_run(config: TrainConfig) -> str:
    """One line that says what a run is: model, data, size, epochs, batch, learning rate, loss, seed."""
    on_sample = Path(config.data_path).resolve() == SAMPLE_ROOT.resolve()
    data = "the embedded sample" if on_sample else Path(config.data_path).name
    if config.subset:
        data += f" ({config.subset} images per split)"
    return (f"{MODEL_LABELS.get(config.model, config.model)} on {data} at {config.image_size} px: "
            f"{config.epochs} epochs, batch {config.batch_size}, lr {config.learning_rate:g}, "
            f"loss {config.loss}, flip TTA {'on' if config.tta else 'off'}, seed {config.seed}")


# --------------------------------------------------------------------------- dataset survey


def read_splits(root: str | Path) -> dict[str, list[SplitEntry]]:
    """The entries of every split (``train``, ``valid``, ``test``) under ``root``."""
    return {mode: read_split(root, mode) for mode in MODES}


def count_by(entries: Sequence[SplitEntry], key: str) -> dict[str, int]:
    """How many entries have each value of the attribute ``key`` (e.g. ``"species"``), sorted by value."""
    counts = Counter(getattr(entry, key) for entry in entries)
    return dict(sorted(counts.items(), key=lambda item: str(item[0]).lower()))


def count_table(splits: Mapping[str, Sequence[SplitEntry]], key: str) -> list[dict[str, Any]]:
    """Rows for :func:`format_table`: one per value of ``key`` (``"species"`` or ``"breed"``), images per split.

    Each row is ``{key: value, <split>: count, ..., "total": count}``; breeds also get their species.
    """
    values = sorted({getattr(e, key) for entries in splits.values() for e in entries}, key=lambda v: str(v).lower())
    species = {e.breed: e.species for entries in splits.values() for e in entries}
    counts = {mode: count_by(entries, key) for mode, entries in splits.items()}
    rows = []
    for value in values:
        row: dict[str, Any] = {key: value}
        if key == "breed":
            row["species"] = species[value]
        row.update({mode: counts[mode].get(value, 0) for mode in splits})
        row["total"] = sum(counts[mode].get(value, 0) for mode in splits)
        rows.append(row)
    return rows


def read_example(root: str | Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The photo ``(H, W, 3)`` uint8 (as RGB, whatever the file holds) and trimap ``(H, W)`` uint8 of ``name``."""
    root = Path(root)
    image = np.asarray(read_image(root / "images" / f"{name}.jpg"))
    return image, read_trimap(root / "annotations" / "trimaps" / f"{name}.png")


@dataclass(frozen=True)
class ImageInfo:
    """What an image file really is, from its header.

    Attributes:
        name: file stem.
        format: what Pillow detects from the bytes (``"JPEG"``, ``"GIF"``, ``"PNG"``, ...).
        mode: Pillow's pixel mode (``"RGB"``, ``"L"`` = grayscale, ``"CMYK"``, ``"RGBA"``, ``"P"``).
        width, height: size in pixels.
        listed: whether a split file names it (the release holds a few images none does).
    """

    name: str
    format: str
    mode: str
    width: int
    height: int
    listed: bool

    @property
    def odd(self) -> bool:
        """Not an RGB JPEG, whatever its ``.jpg`` name says."""
        return self.format != "JPEG" or self.mode != "RGB"


def survey_images(root: str | Path, workers: int = 8) -> list[ImageInfo]:
    """Format, mode and size of every ``images/*.jpg`` under ``root``, sorted by name.

    Reads headers only (no decoding), so the full release takes seconds.
    """
    root = Path(root)
    listed = {entry.name for entries in read_splits(root).values() for entry in entries}
    paths = sorted((root / "images").glob("*.jpg"))

    def info(path: Path) -> ImageInfo:
        with Image.open(path) as image:
            return ImageInfo(path.stem, image.format or "?", image.mode, image.width, image.height,
                             path.stem in listed)

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(info, paths))


def odd_images(infos: Sequence[ImageInfo]) -> list[ImageInfo]:
    """The images that are not RGB JPEGs (GIF or PNG content, grayscale, CMYK, ...)."""
    return [info for info in infos if info.odd]


def foreground_fractions(root: str | Path, entries: Sequence[SplitEntry], workers: int = 8) -> np.ndarray:
    """Fraction of pet pixels (trimap 1 or 3) in each entry's full-resolution trimap, ``(N,)`` float."""
    trimaps = Path(root) / "annotations" / "trimaps"

    def fraction(entry: SplitEntry) -> float:
        return float(trimap_to_mask(read_trimap(trimaps / f"{entry.name}.png")).mean())

    with ThreadPoolExecutor(workers) as pool:
        return np.array(list(pool.map(fraction, entries)), dtype=np.float64)


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A plain-text table: one line per row, columns aligned; floats with 4 decimals, ints with commas."""
    columns = list(columns or (rows[0].keys() if rows else []))

    def cell(value: Any) -> str:
        if isinstance(value, bool) or value is None:
            return "-" if value is None else str(value)
        if isinstance(value, int):
            return f"{value:,}"
        if isinstance(value, float):
            return "-" if math.isnan(value) else f"{value:.4f}"
        return str(value)

    table = [columns] + [[cell(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    lines = ["  ".join(text.ljust(w) if i == 0 else text.rjust(w) for i, (text, w) in enumerate(zip(line, widths)))
             for line in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


# --------------------------------------------------------------------------- comparison


@dataclass
class TrainedRun:
    """A finished training run as :func:`petlib.engine.fit` left it in ``out_dir``."""

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
    out_dir = Path(out_dir)
    path = out_dir / f"{name}.pth"
    if not path.is_file():
        notebook = {"unet": "02_train_unet.ipynb", "resnet34_unet": "03_train_resnet34_unet.ipynb"}.get(name, "02/03")
        raise FileNotFoundError(
            f"no checkpoint {path}: run {notebook} first"
            + (f" (in quick mode too: {QUICK_ENV}=1)" if out_dir.resolve() == QUICK_DIR.resolve() else "")
        )
    checkpoint = load_checkpoint(path)
    history_file = out_dir / f"{name}_history.csv"
    # The checkpoint's history stops at its own (best) epoch; the CSV has the whole run.
    history = read_history(history_file) if history_file.is_file() else list(checkpoint["history"])
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


@torch.inference_mode()
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

    The model's train/eval mode is restored afterwards.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    images = torch.rand(batch_size, 3, image_size, image_size, device=device)
    times = []
    for step in range(warmup + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        model(images)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step >= warmup:
            times.append(time.perf_counter() - start)
    model.train(was_training)
    return statistics.median(times) / batch_size


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
    photo (see :func:`petlib.predict.predict_mask`), so models trained at different sizes
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
        on_sample = Path(r.run.config.data_path).resolve() == SAMPLE_ROOT.resolve()
        rows.append({"model": r.label, "source": "this run", "data": "embedded sample" if on_sample else
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
    n = len(a.dice)
    ca, cb = a.run.config, b.run.config
    on_sample = Path(ca.data_path).resolve() == SAMPLE_ROOT.resolve()
    lines = []

    # What was compared.
    setup = (f"Both best-validation checkpoints were scored on the same {n} test images "
             f"({'the embedded sample' if on_sample else Path(ca.data_path).name}), each at the size it was "
             f"trained at: {a.label} {ca.image_size} px, {ca.epochs} epochs; {b.label} {cb.image_size} px, "
             f"{cb.epochs} epochs.")
    differ = [f for f in ("data_path", "image_size", "epochs", "batch_size", "loss", "seed", "augment", "scheduler")
              if getattr(ca, f) != getattr(cb, f)]
    if differ:
        setup += (f" They were not trained alike ({', '.join(differ)} differ), so the comparison mixes the "
                  "networks with their settings.")
    if ca.subset or cb.subset:
        setup += (" **This is a quick-mode run** on a handful of images for a couple of epochs: it shows that the "
                  "pipeline works end to end; its numbers say nothing about which network is better.")
    elif on_sample:
        setup += (f" These are {n} test images of three breeds, trained on 216 images for minutes on a CPU: "
                  "the numbers show what each network learns from little data and little compute, not what "
                  "it reaches on the full dataset (3,680 training images of 37 breeds, hours on a GPU).")
    if n < 100 and not (ca.subset or cb.subset):
        setup += f" With only {n} test images, differences of a few points can be chance (see the interval below)."
    lines.append(setup)

    # Which scores higher, and is the gap more than chance?
    ma, mb = float(a.dice.mean()), float(b.dice.mean())
    if ma == mb:
        lines.append(f"Both have the same mean test Dice, {ma:.3f}.")
    else:
        hi, lo = (b, a) if mb > ma else (a, b)
        low, high = paired_bootstrap(lo.dice, hi.dice)
        wins = float((hi.dice > lo.dice).mean())
        text = (f"{hi.label} has the higher mean test Dice: {hi.dice.mean():.3f} against {lo.dice.mean():.3f} "
                f"(+{hi.dice.mean() - lo.dice.mean():.3f}), and the higher score on {wins:.0%} of the images.")
        if math.isnan(low):
            text += " One image is too few to say whether the gap is more than chance."
        elif low > 0:
            text += (f" A paired bootstrap over the images puts the gap between {low:+.3f} and {high:+.3f} "
                     "(95%), so on this test set it is more than chance")
            text += f", though with {n} images even that interval is rough." if n < 30 else "."
        else:
            text += (f" A paired bootstrap over the images puts the gap between {low:+.3f} and {high:+.3f} "
                     "(95%), which includes zero: on this test set the two are not distinguishable.")
        lines.append(text)

    # Means against medians: the tail of failures.
    parts = []
    for r in results:
        mean, median, failures = float(r.dice.mean()), float(np.median(r.dice)), float((r.dice < 0.5).mean())
        parts.append(f"{r.label} mean {mean:.3f}, median {median:.3f}, {failures:.0%} of images below Dice 0.5")
    skewed = all(float(np.median(r.dice)) > float(r.dice.mean()) + 0.005 for r in results)
    lines.append("Per image: " + "; ".join(parts) + "." + (
        " The medians sit above the means for both: most images are segmented well and a tail of "
        "failures pulls the means down (see the histogram and the worst examples)." if skewed else ""))

    # Species.
    groups = sorted(set(species))
    if len(groups) > 1:
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
            text += (f" (only {counts[group]} {group} images: a hint, not a finding)." if counts[group] < 30 else ".")
        else:
            text += (f" The species differ by less than {SPECIES_GAP:.2f} for at least one network, or not the same way:"
                     " neither is clearly harder.")
        lines.append(text)

    # Curves.
    lines.append(" ".join(_history_sentence(r.label, r.run.history, r.run.epoch) for r in results))

    # Size and speed.
    fast, slow = sorted(results, key=lambda r: r.seconds_per_image)
    ratio = slow.seconds_per_image / max(fast.seconds_per_image, 1e-12)
    sizes = (f"both at {fast.image_size} px" if fast.image_size == slow.image_size
             else f"{fast.label} at {fast.image_size} px, {slow.label} at {slow.image_size} px")
    lines.append(
        f"{a.label} has {a.params / 1e6:.1f} M parameters, {b.label} {b.params / 1e6:.1f} M. On this machine "
        f"({fast.device}; {sizes}) {fast.label} takes {fast.seconds_per_image * 1000:.1f} ms per image and "
        f"{slow.label} {slow.seconds_per_image * 1000:.1f} ms, {ratio:.1f} times as long; timings vary with "
        "whatever else the machine is doing."
    )
    return "\n\n".join(f"- {line}" for line in lines)
