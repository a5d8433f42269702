"""A model folder to hand to someone, as the ecosystem does: weights, settings and a model card.

    petlib.save_pretrained("saved_models/resnet34_unet.pth", "pets-resnet34-unet")
    model, info = petlib.load_model("pets-resnet34-unet")

writes (and reads back) a folder in the Hugging Face layout::

    pets-resnet34-unet/
      model.safetensors   the weights (safetensors: tensors only, so loading runs no code; memory-mapped)
      config.json         the model's name and settings, its training size and TTA, the run's config
      README.md           the model card: YAML header, intended use, data, evaluation, limitations, loading
      card.json           the card's record, which petlib-eval adds test scores to (and rewrites README.md)

The command line is ``petlib-export --format folder``. No path of the machine that wrote it is in
any of the files. :func:`petlib.training.checkpoint.load_model` (``petlib.load_model``),
``petlib-eval``, ``petlib-predict``, ``petlib-export`` and ``torch.hub.load`` (``hubconf.py``) take
the folder wherever they take a checkpoint.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from petlib._io import replace_atomically
from petlib._version import __version__
from petlib.models import MODELS, build_model, count_parameters
from petlib.training.card import (
    CARD_FORMAT,
    FOLDER_CARD,
    card_for_checkpoint,
    card_for_model,
    kept_epoch,
    portable_config,
    read_card,
    write_card,
)
from petlib.training.checkpoint import CONFIG_FILE, WEIGHTS_FILE, CheckpointError, load_checkpoint, load_state_dict

__all__ = ["save_pretrained", "FOLDER_FILES"]

#: Every file :func:`save_pretrained` writes (and so may replace with ``overwrite=True``).
FOLDER_FILES = (WEIGHTS_FILE, CONFIG_FILE, *FOLDER_CARD)


def _model_name(model: nn.Module) -> str:
    for name, builder in MODELS.items():
        if type(model) is builder:
            return name
    raise ValueError(f"save_pretrained takes a petlib model ({', '.join(MODELS)}), a checkpoint or a model folder; "
                     f"not a {type(model).__name__} (for an smp.Unet, convert it with petlib.models.from_smp first)")


def _from_module(model: nn.Module, model_kwargs: Mapping[str, Any] | None, image_size: int | None) -> dict[str, Any]:
    """A checkpoint dict for a model object, checked: the kwargs must rebuild exactly its weights."""
    name = _model_name(model)
    kwargs = dict(model_kwargs or {})
    kwargs.pop("pretrained", None)  # the weights are saved; loading must never download
    state = {key: tensor.detach().cpu() for key, tensor in model.state_dict().items()}
    try:
        load_state_dict(build_model(name, **kwargs), state, source=f"this {type(model).__name__}")
    except CheckpointError as err:
        raise ValueError(f"{err}\nPass model_kwargs=..., the arguments the model was built with "
                         "(e.g. {'base_channels': 32})") from None
    config = {"image_size": image_size} if image_size else {}
    return {"model_name": name, "model_kwargs": kwargs, "model_state": state, "config": config, "from_module": True}


def _source(model_or_checkpoint: nn.Module | Mapping[str, Any] | str | Path, model_kwargs: Mapping[str, Any] | None,
            image_size: int | None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``(checkpoint dict, the card recorded beside it or None)`` of what is to be saved."""
    if isinstance(model_or_checkpoint, nn.Module):
        return _from_module(model_or_checkpoint, model_kwargs, image_size), None
    if isinstance(model_or_checkpoint, Mapping):
        if "model_name" not in model_or_checkpoint or "model_state" not in model_or_checkpoint:
            raise ValueError("a checkpoint dict needs 'model_name' and 'model_state' (see petlib.save_checkpoint)")
        return dict(model_or_checkpoint), None
    path = Path(model_or_checkpoint)
    return load_checkpoint(path), read_card(path)


def _folder_card(checkpoint: Mapping[str, Any], recorded: Mapping[str, Any] | None, name: str,
                 image_size: int | None) -> dict[str, Any]:
    """The folder's card: the one recorded beside the checkpoint if it describes these weights, else a new
    one (keeping the recorded test scores when only the card's layout is older)."""
    kwargs = {k: v for k, v in (checkpoint.get("model_kwargs") or {}).items() if k != "pretrained"}
    parameters = count_parameters(build_model(checkpoint["model_name"], **kwargs))
    if checkpoint.get("from_module"):
        return card_for_model(checkpoint["model_name"], kwargs, parameters, name=name, image_size=image_size)
    same = recorded is not None and (recorded.get("model") or {}).get("name") == checkpoint["model_name"] \
        and kept_epoch(recorded) == checkpoint.get("epoch")
    if same and recorded.get("card_format") == CARD_FORMAT:
        card = dict(recorded)
    else:
        card = card_for_checkpoint(checkpoint, name=name, parameters=parameters)
        if same:
            card["test"] = recorded["test"]
    return {**card, "checkpoint": name, "layout": "folder"}


def _folder_config(checkpoint: Mapping[str, Any], card: Mapping[str, Any]) -> dict[str, Any]:
    """``config.json``: what a loader needs (name, settings) and what a user needs to feed the model."""
    train_config = checkpoint.get("config") or {}
    from_run = "epochs" in train_config  # a training run's config, not just a size from save_pretrained
    return {
        "library_name": "petlib", "petlib_version": __version__, "torch_version": torch.__version__,
        "model_name": checkpoint["model_name"], "model_kwargs": dict(checkpoint.get("model_kwargs") or {}),
        "parameters": card["model"]["parameters"],
        "image_size": train_config.get("image_size"), "tta": bool(train_config.get("tta", False)),
        "epoch": checkpoint.get("epoch"), "validation_dice": checkpoint.get("best_dice"),
        "input": "images: float32 (N, 3, H, W), RGB in [0, 1], any N, H, W; resize photos to image_size first",
        "output": "logits: float32 (N, 1, H, W); sigmoid(logits) > 0.5 is pet",
        "train_config": portable_config(train_config) if from_run else None,
    }


def _check_destination(folder: Path, overwrite: bool, source: Path | None) -> None:
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"{folder} is a file; save_pretrained writes a folder: choose another path")
    if source is not None and source.resolve() == folder.resolve():
        raise ValueError(f"{folder} is the model folder being saved; choose another folder")
    present = [name for name in FOLDER_FILES if (folder / name).exists()]
    if present and not overwrite:
        raise FileExistsError(f"{folder} already holds {', '.join(present)}; choose a new folder, or replace them "
                              "with overwrite=True (petlib-export --overwrite)")


def save_pretrained(
    model_or_checkpoint: nn.Module | Mapping[str, Any] | str | Path,
    folder: str | Path,
    *,
    model_kwargs: Mapping[str, Any] | None = None,
    image_size: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a model folder: ``model.safetensors``, ``config.json``, ``README.md`` (the model card), ``card.json``.

    Args:
        model_or_checkpoint: a checkpoint file (``<name>.pth``: its card, with the test scores
            ``petlib-eval`` recorded, goes along), a model folder, a checkpoint dict, or a petlib
            model (whose card then says its training is unknown).
        folder: where to write; created if needed. Other files in it are left alone.
        model_kwargs: for a model object, the arguments it was built with (checked: they must
            rebuild its exact weights); default none.
        image_size: for a model object, the size it was trained at (``config.json``'s
            ``image_size``, which ``petlib-predict`` resizes photos to).
        overwrite: replace the files of an earlier save in ``folder`` (else that is an error).

    Returns:
        ``folder``.

    Raises:
        FileExistsError: ``folder`` is a file, or already holds a model folder's files (without ``overwrite``).
        ValueError: not a petlib model, or ``model_kwargs`` that do not fit its weights.
        CheckpointError, FileNotFoundError: a checkpoint that cannot be read.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    source = Path(model_or_checkpoint) if isinstance(model_or_checkpoint, (str, Path)) else None
    _check_destination(folder, overwrite, source)
    checkpoint, recorded = _source(model_or_checkpoint, model_kwargs, image_size)
    card = _folder_card(checkpoint, recorded, folder.name, image_size)
    # safetensors stores each tensor on its own: contiguous, on the CPU, no storage shared between two names.
    state = {key: tensor.detach().cpu().contiguous().clone() for key, tensor in checkpoint["model_state"].items()}
    folder.mkdir(parents=True, exist_ok=True)
    replace_atomically(lambda tmp: save_file(state, str(tmp), metadata={"format": "pt", "library": "petlib"}),
                       folder / WEIGHTS_FILE)
    config = _folder_config(checkpoint, card)
    replace_atomically(lambda tmp: tmp.write_text(json.dumps(config, indent=2) + "\n"), folder / CONFIG_FILE)
    write_card(card, folder)
    return folder
