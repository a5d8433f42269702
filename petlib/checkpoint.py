"""Checkpoints: one dict per file, written atomically, loaded with clear errors.

A checkpoint holds the model's ``state_dict`` and, *beside* it (never inside it), the
model's name and constructor kwargs, the training config, the per-epoch history and,
for resuming, the optimizer, scheduler and grad-scaler states and the epoch reached::

    {"format": 1, "model_name": "unet", "model_kwargs": {...}, "model_state": {...},
     "config": {...}, "history": [{...}, ...], "epoch": 12, "best_dice": 0.91,
     "optimizer_state": {...}, "scheduler_state": {...}, "scaler_state": {...}}
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .models import build_model

__all__ = ["save_checkpoint", "load_checkpoint", "load_model", "CheckpointError"]

FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used as asked."""


def save_checkpoint(checkpoint: dict[str, Any], path: str | Path) -> Path:
    """Write ``checkpoint`` to ``path`` atomically.

    The dict is written to a temporary file in the same directory, flushed to disk and
    then renamed over ``path``: a crash or Ctrl-C mid-write leaves the previous file
    intact and never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT_VERSION, **checkpoint}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint dict written by :func:`save_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {path.resolve()}; train one with `python -m petlib.train --model ...` "
            "or pass the right --model_path"
        )
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # a truncated or foreign file: say which one
        raise CheckpointError(f"could not read checkpoint {path}: {err}") from err
    if not isinstance(checkpoint, dict) or "model_state" not in checkpoint or "model_name" not in checkpoint:
        raise CheckpointError(
            f"{path} is not a petlib checkpoint (expected a dict with 'model_name' and 'model_state')"
        )
    return checkpoint


def load_model(
    path: str | Path,
    expected_model: str | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model stored in a checkpoint and load its weights.

    Args:
        path: checkpoint file.
        expected_model: if given (e.g. from ``--model``), the architecture the caller
            wants; a checkpoint of another architecture is an error, not a silent swap.
        map_location: where to load tensors.

    Returns:
        ``(model, checkpoint)`` with the model in eval mode.
    """
    checkpoint = load_checkpoint(path, map_location)
    name = checkpoint["model_name"]
    if expected_model is not None and expected_model != name:
        raise CheckpointError(
            f"{path} holds a {name!r} model, not {expected_model!r}; pass --model {name} "
            "or the checkpoint of the model you meant"
        )
    kwargs = dict(checkpoint.get("model_kwargs", {}))
    kwargs.pop("pretrained", None)  # the weights come from the checkpoint, never a download
    model = build_model(name, **kwargs)
    load_state_dict(model, checkpoint["model_state"], source=str(path))
    return model.eval(), checkpoint


def load_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """``model.load_state_dict(state, strict=True)`` with an error that says what differs."""
    # Weights saved from a torch.compile'd or DDP-wrapped model carry a prefix.
    for prefix in ("_orig_mod.", "module."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        own = set(model.state_dict())
        missing, unexpected = sorted(own - set(state)), sorted(set(state) - own)
        raise CheckpointError(
            f"the weights in {source} do not fit {type(model).__name__}: "
            f"{len(missing)} missing keys (e.g. {missing[:3]}), {len(unexpected)} unexpected keys "
            f"(e.g. {unexpected[:3]}); was it saved from another architecture or settings?\n{err}"
        ) from err
