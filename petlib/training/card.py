"""Model cards: what a user needs to decide which checkpoint to keep, and to use it well.

:func:`petlib.training.engine.fit` writes ``<name>_card.json`` and ``<name>_card.md`` next to
``<name>.pth`` whenever it saves a new best checkpoint, and once more when the run ends: the
model and its parameter count, the data and split it was trained on, the recipe, epochs, image
size, validation Dice with the policy it was scored under, wall time, device and versions.
The test score is added when the checkpoint is scored on the test split
(:func:`record_test_score`, which ``petlib-eval`` calls)::

    result = evaluate_checkpoint("saved_models/resnet34_unet.pth", data_path, "test", per_image=True)
    record_test_score("saved_models/resnet34_unet.pth", result, data_path=data_path)

The JSON is the record (``card_format`` says its layout); the Markdown
(:mod:`petlib.training.card_readme`) is a model card in the Hugging Face layout, a YAML header and
sections from intended use to licence, the same text as a model folder's ``README.md``
(:mod:`petlib.training.pretrained`, whose record is ``card.json`` in the folder). A card holds
no path of the machine that wrote it: the data are named by kind and folder name, the
checkpoint by its file name. A card belongs to one state of its checkpoint: a run that replaces
the best checkpoint rewrites the card, and with it drops test scores of the weights it replaced.
"""
from __future__ import annotations

import datetime
import json
import math
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from petlib._io import replace_atomically
from petlib._version import __version__
from petlib.data.release import is_sample
from petlib.training.card_readme import card_markdown
from petlib.training.config import RECIPES, TrainConfig, recipe

__all__ = [
    "CARD_FORMAT", "card_paths", "build_card", "card_from_checkpoint", "card_for_checkpoint", "card_for_model",
    "write_card", "read_card", "record_test_score", "card_markdown", "scoring_policy", "closest_recipe",
    "describe_device", "describe_data", "portable_path", "portable_config", "per_image_interval",
]

#: Version of the card's JSON layout; a change of meaning bumps it. 2: no machine paths (data by
#: kind and folder name), test rows keyed by split, data, size and TTA, per-image intervals.
CARD_FORMAT = 2
#: The sample's place in the repository, as a card shows it (its absolute path is the machine's).
SAMPLE_PATH = "dataset/oxford-iiit-pet-sample"
#: What a test row is one of: another score with the same values replaces it.
TEST_KEY = ("split", "kind", "folder", "image_size", "tta")
#: The files of a model folder that hold its card (the same names as :func:`card_paths` gives).
FOLDER_CARD = ("card.json", "README.md")

#: How the splits are made (petlib.data.read_split), for the card's data section.
SPLIT_RULE = (
    "valid: every 10th line of annotations/trainval.txt (index % 10 == 0); train: the other trainval lines; "
    "test: annotations/test.txt"
)
#: The same without a validation split (``TrainConfig.validate`` off).
SPLIT_RULE_NO_VALIDATION = (
    "train: every line of annotations/trainval.txt (no validation split; the last epoch is kept); "
    "test: annotations/test.txt"
)

#: The settings the named recipes differ in (petlib.training.config.RECIPES): what "recipe" compares.
RECIPE_FIELDS: tuple[str, ...] = tuple(sorted({key for overrides in RECIPES.values() for key in overrides}))


def card_paths(checkpoint_path: str | Path) -> tuple[Path, Path]:
    """``(<name>_card.json, <name>_card.md)`` beside the checkpoint ``<name>.pth``; for a model
    folder (:func:`petlib.training.pretrained.save_pretrained`), its ``card.json`` and ``README.md``."""
    path = Path(checkpoint_path)
    if path.is_dir():
        return path / FOLDER_CARD[0], path / FOLDER_CARD[1]
    return path.with_name(f"{path.stem}_card.json"), path.with_name(f"{path.stem}_card.md")


def scoring_policy(image_size: int, tta: bool, count: int | None = None) -> str:
    """How a Dice on the card was computed, in one sentence (petlib.metrics' convention)."""
    over = f"the {count} images" if count is not None else "the images"
    return (
        f"Dice per image, averaged over {over} of the split; photo and trimap resized to {image_size}x{image_size} px; "
        f"pet = sigmoid(logit) > 0.5, the trimap's border counted as pet; an image with no pet in either prediction "
        f"or truth scores 1; {'with flip TTA (logits averaged with the mirrored image)' if tta else 'without TTA'}"
    )


def closest_recipe(config: TrainConfig) -> tuple[str, dict[str, Any]]:
    """The named recipe ``config`` is closest to, and its settings that differ from that recipe's.

    Only the settings the recipes define are compared (:data:`RECIPE_FIELDS`: loss,
    optimiser, learning rate, schedule, ...), the learning rate as used (``learning_rate``).
    Ties go to the earlier recipe of :data:`~petlib.training.config.RECIPES`.
    """

    def value(settings: TrainConfig, field: str) -> Any:
        return settings.learning_rate if field == "lr" else getattr(settings, field)

    best: tuple[str, dict[str, Any]] | None = None
    for name in RECIPES:
        reference = recipe(name, model=config.model)
        changed = {f: value(config, f) for f in RECIPE_FIELDS if value(config, f) != value(reference, f)}
        if best is None or len(changed) < len(best[1]):
            best = (name, changed)
    assert best is not None  # RECIPES is never empty
    return best


def describe_device(device: torch.device | str) -> str:
    """``"cuda:0 (NVIDIA H100 80GB HBM3)"``, ``"cpu (x86_64, 2 threads)"``, ``"mps"``."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        threads = torch.get_num_threads()
        return f"cpu ({platform.machine() or 'unknown machine'}, {threads} thread{'s' if threads != 1 else ''})"
    return str(device)


def describe_data(data_path: str | Path) -> dict[str, str]:
    """The dataset at ``data_path`` as a card names it, the same whatever spelling of the path.

    ``{"dataset": "Oxford-IIIT Pet, the 300-image sample shipped with petlib", "kind": "sample",
    "folder": "oxford-iiit-pet-sample"}``; any other root is ``"kind": "full"``, named by its
    folder (the resolved path's last part: ``./data/pets`` and ``/home/me/data/pets`` are both ``pets``).
    """
    try:
        sample = is_sample(data_path)
        folder = Path(data_path).resolve().name
    except OSError:
        sample, folder = False, Path(data_path).name
    if sample:
        return {"dataset": "Oxford-IIIT Pet, the 300-image sample shipped with petlib", "kind": "sample",
                "folder": Path(SAMPLE_PATH).name}
    return {"dataset": "Oxford-IIIT Pet", "kind": "full", "folder": folder or str(data_path)}


def portable_path(path: str | Path) -> str:
    """``path`` as a card or a model folder may show it: no part of the machine that wrote it.

    The sample is its place in the repository (``dataset/oxford-iiit-pet-sample``); a relative
    path that stays below the working folder is kept (``saved_models``); anything else is its
    last part (``/home/me/runs/models`` -> ``models``).
    """
    try:
        if is_sample(path):
            return SAMPLE_PATH
    except OSError:
        pass
    given = Path(path)
    if not given.is_absolute() and ".." not in given.parts and not str(path).startswith("~"):
        return given.as_posix()
    return given.resolve().name if given.is_absolute() else given.name


def portable_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A :class:`TrainConfig` dict with its paths (``data_path``, ``out_dir``) made :func:`portable_path`."""
    return {key: portable_path(value) if key in ("data_path", "out_dir") and isinstance(value, str) and value
            else value for key, value in config.items()}


def per_image_interval(values: Sequence[float] | torch.Tensor, *, samples: int = 2000,
                       seed: int = 0) -> dict[str, Any] | None:
    """Mean per-image score with a 95% bootstrap interval: how much the mean could move with
    other images of the same kind. None for fewer than 2 images.

    Args:
        values: one score per image, ``(num_images,)``.

    Returns:
        ``{"mean", "median", "low", "high", "images", "method"}``, ``low``/``high`` the 2.5 and
        97.5 percentiles of the mean over ``samples`` resamplings of the images (seeded).
    """
    scores = np.asarray(values.tolist() if isinstance(values, torch.Tensor) else values, dtype=np.float64)
    if scores.size < 2:
        return None
    rng = np.random.default_rng(seed)
    means = scores[rng.integers(0, scores.size, size=(samples, scores.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mean": float(scores.mean()), "median": float(np.median(scores)), "low": float(low), "high": float(high),
            "images": int(scores.size), "method": f"95% bootstrap interval of the mean ({samples} resamplings of the images)"}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _best_row(history: Sequence[Mapping[str, float]]) -> Mapping[str, float] | None:
    # The first row with the highest validation Dice: the epoch fit kept (ties keep the earlier).
    rows = [row for row in history if not math.isnan(float(row.get("val_dice", math.nan)))]
    return max(rows, key=lambda row: row["val_dice"]) if rows else None


def build_card(
    config: TrainConfig,
    history: Sequence[Mapping[str, float]],
    *,
    checkpoint_path: str | Path,
    parameters: int,
    split_sizes: Mapping[str, int] | None = None,
    device: torch.device | str | None = None,
    processes: int = 1,
    source: str = "fit",
) -> dict[str, Any]:
    """The card of the best checkpoint of a run with ``config`` and ``history`` so far.

    Args:
        config: the run's settings (``lr`` as used).
        history: the per-epoch rows of :func:`petlib.training.engine.fit`; the best epoch is the first
            with the highest validation Dice, the one fit keeps.
        checkpoint_path: the best checkpoint the card describes.
        parameters: the model's trainable parameters (:func:`petlib.models.count_parameters`).
        split_sizes: images per split trained and validated on, e.g. ``{"train": 216, "valid": 24}``.
        device: what it trained on; ``processes``: how many (DDP).
        source: ``"fit"``, or ``"checkpoint"`` for a card made afterwards from a checkpoint,
            whose history ends at the best epoch (so epochs and wall time are up to there only).

    Returns:
        A JSON-ready dict (see the module docstring); ``"test"`` is an empty list.
    """
    best = _best_row(history)
    name, changed = closest_recipe(config)
    recipe_settings: dict[str, Any] = {
        "loss": config.loss, "optimizer": config.optimizer, "lr": config.learning_rate,
        "weight_decay": config.weight_decay, "scheduler": config.scheduler, "grad_clip": config.grad_clip,
        "batch_size_per_process": config.batch_size, "augment": config.augment, "seed": config.seed,
    }
    # Knobs off by default appear only when a run turns them on.
    if config.dice_weight != 1.0:
        recipe_settings["dice_weight"] = config.dice_weight
    if config.ema_decay is not None:
        recipe_settings["ema_decay"] = config.ema_decay
    if config.augment:
        recipe_settings.update(crop_scale=[config.crop_scale_min, config.crop_scale_max], rotation=config.rotation,
                               color_jitter=config.color_jitter)
        if config.copy_paste:
            recipe_settings["copy_paste"] = config.copy_paste
    epochs_trained = len(history)
    validation: dict[str, Any] | None = None
    if best is not None:
        validation = {
            "dice": best["val_dice"], "iou": best.get("val_iou"), "loss": best.get("val_loss"),
            "epoch": int(best["epoch"]), "images": (split_sizes or {}).get("valid"), "tta": config.tta,
            "image_size": config.image_size,
            "policy": scoring_policy(config.image_size, config.tta, (split_sizes or {}).get("valid")),
        }
    return {
        "card_format": CARD_FORMAT,
        "checkpoint": Path(checkpoint_path).name,
        "run_name": config.name,
        "source": source,
        "model": {"name": config.model, "kwargs": dict(config.model_kwargs), "parameters": parameters},
        "data": {
            **describe_data(config.data_path), "licence": "CC BY-SA 4.0 (Parkhi et al., Cats and Dogs, CVPR 2012)",
            "split": SPLIT_RULE if config.validate else SPLIT_RULE_NO_VALIDATION, "subset": config.subset,
            "images": dict(split_sizes) if split_sizes else None,
        },
        "recipe": {"closest": name, "changed": changed, "settings": recipe_settings},
        "training": {
            "epochs_planned": config.epochs, "epochs_trained": epochs_trained,
            "finished": epochs_trained >= config.epochs,
            "best_epoch": int(best["epoch"]) if best is not None else None,
            # which epoch the checkpoint holds: the best validated one, or the last without validation
            "kept_epoch": int(best["epoch"]) if best is not None else (int(history[-1]["epoch"]) if history else None),
            "image_size": config.image_size,
            "wall_time_seconds": round(sum(float(row.get("seconds", 0.0)) for row in history), 1),
            "device": describe_device(device) if device is not None else config.device,
            "processes": processes, "amp": config.amp,
        },
        "validation": validation,
        "test": [],
        "versions": {"petlib": __version__, "torch": torch.__version__, "python": platform.python_version()},
        "written": _now(),
        "config": portable_config(config.to_dict()),
    }


def card_from_checkpoint(checkpoint_path: str | Path) -> dict[str, Any]:
    """A card for a checkpoint (or model folder) that has none (written before cards, or copied without it).

    Built from what the checkpoint holds: its config and its history, which ends at the best
    epoch, so the card's epochs and wall time stop there (``"source": "checkpoint"``).
    """
    from petlib.models import count_parameters
    from petlib.training.checkpoint import load_model

    model, checkpoint = load_model(checkpoint_path)
    return card_for_checkpoint(checkpoint, name=Path(checkpoint_path).name, parameters=count_parameters(model))


def card_for_checkpoint(checkpoint: Mapping[str, Any], *, name: str, parameters: int) -> dict[str, Any]:
    """:func:`card_from_checkpoint` for a checkpoint dict already read; ``name``: its file (or folder) name.

    A checkpoint without a training config (weights saved by hand) gets :func:`card_for_model`'s
    card, which says that nothing of its training is known.
    """
    config = checkpoint.get("config") or {}
    if "epochs" not in config:  # no training run's config: at most the size it was saved with
        return card_for_model(checkpoint["model_name"], checkpoint.get("model_kwargs", {}), parameters, name=name,
                              image_size=config.get("image_size"))
    config = TrainConfig.from_dict({"model": checkpoint["model_name"], "model_kwargs": checkpoint.get("model_kwargs", {}),
                                    **checkpoint["config"]})
    card = build_card(config, checkpoint.get("history", []), checkpoint_path=name, parameters=parameters,
                      source="checkpoint")
    card["versions"].update(trained_with_petlib=checkpoint.get("petlib_version"),
                            trained_with_torch=checkpoint.get("torch_version"))
    return card


def card_for_model(model_name: str, model_kwargs: Mapping[str, Any], parameters: int, *, name: str,
                   image_size: int | None = None) -> dict[str, Any]:
    """The card of weights saved from a model object: its architecture, and that its training is unknown.

    ``"source": "model"``; data, recipe, training and validation are None.
    """
    return {
        "card_format": CARD_FORMAT, "checkpoint": name, "run_name": Path(name).stem or model_name, "source": "model",
        "model": {"name": model_name, "kwargs": {k: v for k, v in model_kwargs.items() if k != "pretrained"},
                  "parameters": parameters, "image_size": image_size},
        "data": None, "recipe": None, "training": None, "validation": None, "test": [],
        "versions": {"petlib": __version__, "torch": torch.__version__, "python": platform.python_version()},
        "written": _now(), "config": None,
    }


def write_card(card: Mapping[str, Any], checkpoint_path: str | Path) -> tuple[Path, Path]:
    """Write ``card`` as ``<name>_card.json`` and ``<name>_card.md`` beside the checkpoint."""
    json_path, md_path = card_paths(checkpoint_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(lambda tmp: tmp.write_text(json.dumps(card, indent=2, default=str) + "\n"), json_path)
    replace_atomically(lambda tmp: tmp.write_text(card_markdown(card)), md_path)
    return json_path, md_path


def read_card(checkpoint_path: str | Path) -> dict[str, Any] | None:
    """The card beside ``checkpoint_path`` (or in a model folder), or None if there is none.

    A card of an earlier layout comes back in this one's test rows (``split``, ``kind``,
    ``folder``, no ``data_path``), so that rewriting it leaves no machine path behind.

    Raises:
        ValueError: the card file is not JSON (the message names it).
    """
    json_path, _ = card_paths(checkpoint_path)
    if not json_path.is_file():
        return None
    try:
        card = json.loads(json_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{json_path} is not a readable model card ({err}); delete it and it is rebuilt") from None
    if not isinstance(card, dict):
        raise ValueError(f"{json_path} is not a readable model card (not a JSON object); delete it and it is rebuilt")
    # A row without the fields a score needs (a hand-edited card) is dropped, not shown half.
    card["test"] = [_portable_test_row(row) for row in card.get("test") or []
                    if isinstance(row, dict) and all(key in row for key in ("dice", "iou", "images", "image_size", "tta"))]
    return card


def _portable_test_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A test row of any card layout in this one's: the data by kind and folder, no path."""
    row = dict(row)
    path = row.pop("data_path", None)  # card_format 1
    if path is not None and "kind" not in row:
        row.update(describe_data(path))
    row.setdefault("split", "test")
    return row


def _test_row(result: Mapping[str, Any], data_path: str | Path) -> dict[str, Any]:
    size, tta, count = int(result["image_size"]), bool(result["tta"]), int(result["count"])
    per_image = result.get("dice_per_image")
    return {
        "split": "test", **describe_data(data_path), "images": count, "image_size": size, "tta": tta,
        "dice": float(result["dice"]), "iou": float(result["iou"]),
        "dice_per_image": per_image_interval(per_image) if per_image is not None else None,
        "as_validated": tta == bool(result.get("validated_tta", tta)),
        "checkpoint_epoch": result.get("epoch"), "policy": scoring_policy(size, tta, count), "scored": _now(),
    }


def kept_epoch(card: Mapping[str, Any]) -> int | None:
    """The epoch whose weights the card describes (``best_epoch`` in cards that predate ``kept_epoch``)."""
    training = card.get("training") or {}
    return training.get("kept_epoch", training.get("best_epoch"))


def record_test_score(checkpoint_path: str | Path, result: Mapping[str, Any], *, data_path: str | Path) -> Path:
    """Add a test score to the checkpoint's card, and return the card's JSON path.

    Args:
        checkpoint_path: the checkpoint (or model folder) that was scored.
        result: what :func:`petlib.evaluation.score.evaluate_checkpoint` (or ``evaluate_model``) returned
            for the ``test`` split: ``dice``, ``iou``, ``count``, ``image_size``, ``tta``,
            ``validated_tta``, ``epoch``, ``model_name``, and with ``per_image=True``
            ``dice_per_image`` (the card then gives the mean's 95% interval).
        data_path: the dataset root it was scored on (the sample's test split is not the
            official one, so the card says which); recorded by kind and folder name, never as a path.

    One row per split, data, image size and TTA (:data:`TEST_KEY`): a new score replaces the
    row it matches, however the data path was spelt (relative, absolute, through a link). Without
    a card, with one of an earlier layout, or with one that describes other weights (another model
    or best epoch), the card is first rebuilt from the checkpoint.
    """
    card = read_card(checkpoint_path)
    same = card is not None and (card.get("model") or {}).get("name") == result.get("model_name") \
        and kept_epoch(card) == result.get("epoch")
    if not same or card.get("card_format") != CARD_FORMAT:
        earlier = card
        card = card_from_checkpoint(checkpoint_path)
        if same and earlier is not None:
            card["test"] = earlier["test"]  # an older layout of the same weights: its scores still hold
        if earlier is not None and earlier.get("layout"):
            card["layout"] = earlier["layout"]
    entry = _test_row(result, data_path)
    kept = [row for row in card.get("test", []) if any(row.get(k) != entry[k] for k in TEST_KEY)]
    card["test"] = kept + [entry]
    json_path, _ = write_card(card, checkpoint_path)
    return json_path
