"""Model cards: what a user needs to decide which checkpoint to keep, beside each best checkpoint.

:func:`petlib.training.engine.fit` writes ``<name>_card.json`` and ``<name>_card.md`` next to
``<name>.pth`` whenever it saves a new best checkpoint, and once more when the run ends: the
model and its parameter count, the data and split it was trained on, the recipe, epochs, image
size, validation Dice with the policy it was scored under, wall time, device and versions.
The test score is added when the checkpoint is scored on the test split
(:func:`record_test_score`, which ``petlib-eval`` calls)::

    result = evaluate_checkpoint("saved_models/resnet34_unet.pth", data_path, "test")
    record_test_score("saved_models/resnet34_unet.pth", result, data_path=data_path)

The JSON is the record (``card_format`` says its layout); the Markdown is the same facts as a
table for reading. A card belongs to one state of its checkpoint: a run that replaces the best
checkpoint rewrites the card, and with it drops test scores of the weights it replaced.
"""
from __future__ import annotations

import datetime
import json
import math
import platform
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from petlib._io import replace_atomically
from petlib._version import __version__
from petlib.data.dataset import SAMPLE_ROOT
from petlib.training.config import RECIPES, TrainConfig, recipe

__all__ = [
    "CARD_FORMAT", "card_paths", "build_card", "card_from_checkpoint", "write_card", "read_card",
    "record_test_score", "card_markdown", "scoring_policy", "closest_recipe", "describe_device",
]

#: Version of the card's JSON layout; a change of meaning bumps it.
CARD_FORMAT = 1

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
    """``(<name>_card.json, <name>_card.md)`` beside the checkpoint ``<name>.pth``."""
    path = Path(checkpoint_path)
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


def _describe_data(data_path: str | Path) -> str:
    try:
        sample = Path(data_path).resolve() == SAMPLE_ROOT.resolve()
    except OSError:
        sample = False
    return "Oxford-IIIT Pet, the 300-image sample shipped with petlib" if sample else "Oxford-IIIT Pet"


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
    if config.augment:
        recipe_settings.update(crop_scale=[config.crop_scale_min, config.crop_scale_max], rotation=config.rotation,
                               color_jitter=config.color_jitter)
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
            "dataset": _describe_data(config.data_path), "data_path": str(config.data_path),
            "licence": "CC BY-SA 4.0 (Parkhi et al., Cats and Dogs, CVPR 2012)",
            "split": SPLIT_RULE if config.validate else SPLIT_RULE_NO_VALIDATION, "subset": config.subset, "images": dict(split_sizes) if split_sizes else None,
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
        "config": config.to_dict(),
    }


def card_from_checkpoint(checkpoint_path: str | Path) -> dict[str, Any]:
    """A card for a checkpoint that has none (written before cards, or copied without it).

    Built from what the checkpoint holds: its config and its history, which ends at the best
    epoch, so the card's epochs and wall time stop there (``"source": "checkpoint"``).
    """
    from petlib.models import count_parameters
    from petlib.training.checkpoint import load_model

    model, checkpoint = load_model(checkpoint_path)
    config = TrainConfig.from_dict(checkpoint.get("config", {}))
    card = build_card(config, checkpoint.get("history", []), checkpoint_path=checkpoint_path,
                      parameters=count_parameters(model), source="checkpoint")
    card["versions"].update(trained_with_petlib=checkpoint.get("petlib_version"),
                            trained_with_torch=checkpoint.get("torch_version"))
    return card


def write_card(card: Mapping[str, Any], checkpoint_path: str | Path) -> tuple[Path, Path]:
    """Write ``card`` as ``<name>_card.json`` and ``<name>_card.md`` beside the checkpoint."""
    json_path, md_path = card_paths(checkpoint_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(lambda tmp: tmp.write_text(json.dumps(card, indent=2, default=str) + "\n"), json_path)
    replace_atomically(lambda tmp: tmp.write_text(card_markdown(card)), md_path)
    return json_path, md_path


def read_card(checkpoint_path: str | Path) -> dict[str, Any] | None:
    """The card beside ``checkpoint_path``, or None if there is none.

    Raises:
        ValueError: the card file is not JSON (the message names it).
    """
    json_path, _ = card_paths(checkpoint_path)
    if not json_path.is_file():
        return None
    try:
        return json.loads(json_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{json_path} is not a readable model card ({err}); delete it and it is rebuilt") from None


def record_test_score(checkpoint_path: str | Path, result: Mapping[str, Any], *, data_path: str | Path) -> Path:
    """Add a test score to the checkpoint's card, and return the card's JSON path.

    Args:
        checkpoint_path: the checkpoint that was scored.
        result: what :func:`petlib.evaluation.score.evaluate_checkpoint` (or ``evaluate_model``) returned
            for the ``test`` split: ``dice``, ``iou``, ``count``, ``image_size``, ``tta``,
            ``validated_tta``, ``epoch``, ``model_name``.
        data_path: the dataset root it was scored on (the sample's test split is not the
            official one, so the card says which).

    A score under the same policy (data, image size, TTA, image count) replaces the earlier
    one; others are kept beside it. Without a card, or with one that describes other weights
    (another model or best epoch), the card is first rebuilt from the checkpoint.
    """
    card = read_card(checkpoint_path)
    stale = card is not None and (
        card.get("model", {}).get("name") != result.get("model_name")
        or card.get("training", {}).get("best_epoch") != result.get("epoch")
    )
    if card is None or stale:
        card = card_from_checkpoint(checkpoint_path)
    entry = {
        "dice": float(result["dice"]), "iou": float(result["iou"]), "images": int(result["count"]),
        "dataset": _describe_data(data_path), "data_path": str(data_path),
        "image_size": int(result["image_size"]), "tta": bool(result["tta"]),
        "as_validated": bool(result["tta"]) == bool(result.get("validated_tta", result["tta"])),
        "checkpoint_epoch": result.get("epoch"),
        "policy": scoring_policy(int(result["image_size"]), bool(result["tta"]), int(result["count"])),
        "scored": _now(),
    }
    policy = ("data_path", "image_size", "tta", "images")
    card["test"] = [e for e in card.get("test", []) if any(e.get(k) != entry[k] for k in policy)] + [entry]
    json_path, _ = write_card(card, checkpoint_path)
    return json_path


def _number(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def card_markdown(card: Mapping[str, Any]) -> str:
    """The card as Markdown: a title and one table of the facts that decide between checkpoints."""
    model, data, training = card["model"], card["data"], card["training"]
    kwargs = f" {json.dumps(model['kwargs'])}" if model["kwargs"] else ""
    images = data.get("images") or {}
    sizes = " / ".join(f"{count} {split}" for split, count in images.items())
    subset = f", subset {data['subset']} per split" if data.get("subset") else ""
    recipe_line = card["recipe"]["closest"]
    if card["recipe"]["changed"]:
        recipe_line += " with " + ", ".join(f"{k}={v}" for k, v in card["recipe"]["changed"].items())
    settings = ", ".join(f"{k} {v}" for k, v in card["recipe"]["settings"].items())
    minutes = training["wall_time_seconds"] / 60
    status = "finished" if training["finished"] else "not finished"
    if card.get("source") == "checkpoint":
        status = "card made from the checkpoint: epochs and time up to the best epoch"
    rows = [
        ("checkpoint", f"`{card['checkpoint']}` ("
                       + (f"best epoch {training['best_epoch']})" if training.get("best_epoch") is not None
                          else f"last epoch, {training.get('kept_epoch')}; no validation split)")),
        ("model", f"{model['name']}{kwargs}, {model['parameters']:,} parameters"),
        ("data", f"{data['dataset']} at `{data['data_path']}`" + (f": {sizes} images" if sizes else "") + subset),
        ("split", data["split"]),
        ("recipe", f"{recipe_line} ({settings})"),
        ("training", f"{training['epochs_trained']} of {training['epochs_planned']} epochs ({status}) at "
                     f"{training['image_size']} px; {minutes:.1f} min on {training['device']}"
                     + (f" x {training['processes']} processes" if training.get("processes", 1) > 1 else "")),
    ]
    validation = card.get("validation")
    if validation:
        rows.append(("validation Dice", f"**{_number(validation['dice'])}** (IoU {_number(validation['iou'])}) "
                                        f"at epoch {validation['epoch']}: {validation['policy']}"))
    tests = card.get("test") or []
    for entry in tests:
        how = "as validated" if entry["as_validated"] else "not as validated"
        rows.append(("test Dice", f"**{_number(entry['dice'])}** (IoU {_number(entry['iou'])}) on {entry['dataset']} "
                                  f"at `{entry['data_path']}` ({how}): {entry['policy']}"))
    if not tests:
        rows.append(("test Dice", f"not scored yet: `petlib-eval --model_path {card['checkpoint']} --data_path ...`"))
    versions = card["versions"]
    rows.append(("versions", f"petlib {versions['petlib']}, torch {versions['torch']}, Python {versions['python']}"))
    rows.append(("written", card["written"]))
    lines = [f"# Model card: {card['run_name']}", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {str(value).replace('|', '/')} |" for key, value in rows]
    return "\n".join(lines) + "\n"
