"""Checkpoints: one dict per file, written atomically, loaded with clear errors.

A checkpoint holds the model's ``state_dict`` and, *beside* it (never inside it), the
model's name and constructor kwargs, the training config, the per-epoch history and,
for resuming, the optimizer, scheduler and grad-scaler states and the epoch reached,
plus the versions that wrote it::

    {"format": 1, "petlib_version": "0.1.0", "torch_version": "2.5.1",
     "model_name": "unet", "model_kwargs": {...}, "model_state": {...},
     "config": {...}, "history": [{...}, ...], "epoch": 12, "best_dice": 0.91,
     "optimizer_state": {...}, "scheduler_state": {...}, "scaler_state": {...}}

Everything in it is a tensor or plain data (dicts, lists, tuples, strings, numbers, None),
so it loads with ``torch.load(weights_only=True)``: opening a checkpoint never runs code
that came with the file. Files get the permissions of any new file (the user's umask).

:func:`load_checkpoint` and :func:`load_model` also read a model folder
(:func:`petlib.training.pretrained.save_pretrained`): ``model.safetensors`` (the weights, a
format that holds tensors only) and ``config.json`` (the model's name and settings), returned
as the same dict.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import tempfile
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import torch
from torch import nn

from petlib._io import chmod_as_new_file
from petlib._version import __version__
from petlib.models import build_model

__all__ = ["save_checkpoint", "load_checkpoint", "load_model", "CheckpointError", "WEIGHTS_FILE", "CONFIG_FILE"]

FORMAT_VERSION = 1
#: A model folder's weights (safetensors) and its description (JSON).
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used as asked."""


def _plain(value: Any, where: str) -> Any:
    """``value`` with paths and dtypes as strings; any other object is refused (``TypeError``).

    Only what ``torch.load(weights_only=True)`` reads back may go into a checkpoint.
    """
    if value is None or type(value) in (str, bool, int, float) or isinstance(value, (torch.Tensor, torch.Size)):
        return value
    # Subclasses pickle as their class: torch.__version__ is a TorchVersion, NumPy's float64 a float.
    for kind in (bool, str, int, float):
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, np.generic):  # a NumPy scalar, e.g. a metric computed with NumPy
        return value.item()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")  # "bfloat16"
    if isinstance(value, dict):
        # Rebuilt as the same kind of dict: a state_dict stays an OrderedDict.
        return type(value)((k, _plain(v, f"{where}[{k!r}]")) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v, f"{where}[{i}]") for i, v in enumerate(value))
    raise TypeError(
        f"checkpoint{where} is a {type(value).__module__}.{type(value).__qualname__}; a checkpoint holds only "
        "tensors and plain data (dict, list, tuple, str, int, float, bool, None) so that it loads with "
        "torch.load(weights_only=True): store its state_dict() or a plain description instead"
    )


def save_checkpoint(checkpoint: dict[str, Any], path: str | Path) -> Path:
    """Write ``checkpoint`` to ``path`` atomically, with the petlib and torch versions.

    The dict is written to a temporary file in the same directory, flushed to disk and
    then renamed over ``path``: a crash or Ctrl-C mid-write leaves the previous file
    intact and never a truncated one.

    Raises:
        TypeError: a value other than a tensor or plain data (see :func:`load_checkpoint`);
            paths and dtypes are stored as strings.
    """
    path = Path(path)
    contents = _plain(
        {"format": FORMAT_VERSION, "petlib_version": __version__, "torch_version": torch.__version__, **checkpoint}, ""
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(contents, f)
            f.flush()
            os.fsync(f.fileno())
        chmod_as_new_file(tmp)  # mkstemp made it 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint dict written by :func:`save_checkpoint`, or a model folder's as the same dict.

    Loads with ``torch.load(weights_only=True)``: tensors and plain data only. A file that
    holds any other Python object is refused rather than unpickled, since unpickling it
    could run code that came with the file.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: not a readable petlib checkpoint (the message names the file).
    """
    path = Path(path)
    if path.is_dir() or path.name == WEIGHTS_FILE:
        return _read_folder(path if path.is_dir() else path.parent, map_location)
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {path.resolve()}; train one with `python -m petlib.train --model ...` "
            "or pass the right --model_path"
        )
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        # torch's messages run to a page; what matters is the object it refused, if any.
        refused = re.search(r"GLOBAL ([\w.]+)", str(err)) if isinstance(err, pickle.UnpicklingError) else None
        if refused:
            raise CheckpointError(
                f"refusing to load {path}: it holds a Python object ({refused.group(1)}) besides tensors and plain "
                "data, and unpickling it could run arbitrary code. petlib checkpoints never do; if you trust the "
                "file, load it with torch.load(path, weights_only=False) and save its tensors and plain values "
                "with petlib.save_checkpoint"
            ) from err
        # A truncated or foreign file: say which one, with the line of torch's message that says why.
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        if isinstance(err, pickle.UnpicklingError) and len(lines) > 1:
            lines = [line for line in lines[1:] if "WeightsUnpickler" not in line and "documentation" not in line]
        reason = lines[0] if lines else "no details"
        raise CheckpointError(
            f"could not read checkpoint {path}: not a file written by torch.save, or cut short "
            f"({type(err).__name__}: {reason})"
        ) from err
    if not isinstance(checkpoint, dict) or "model_state" not in checkpoint or "model_name" not in checkpoint:
        raise CheckpointError(
            f"{path} is not a petlib checkpoint (expected a dict with 'model_name' and 'model_state')"
        )
    return checkpoint


def _read_folder(folder: Path, map_location: str | torch.device) -> dict[str, Any]:
    """A model folder's ``config.json`` and ``model.safetensors`` as a checkpoint dict (no optimiser state)."""
    missing = [name for name in (WEIGHTS_FILE, CONFIG_FILE) if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(
            f"{folder} is not a petlib model folder: it has no {' and no '.join(missing)}. Pass a checkpoint file "
            "(<name>.pth) or a folder written by petlib.save_pretrained / petlib-export --format folder"
        )
    try:
        config = json.loads((folder / CONFIG_FILE).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{folder / CONFIG_FILE} is not readable JSON ({err})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_name"), str):
        raise CheckpointError(f"{folder / CONFIG_FILE} does not name a model (expected a JSON object with 'model_name')")
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise CheckpointError("reading a model folder needs safetensors: pip install safetensors") from None
    try:
        state = load_file(folder / WEIGHTS_FILE, device=str(torch.device(map_location)))
    except Exception as err:  # safetensors' own error type, OSError, ...: a cut or foreign file
        raise CheckpointError(f"could not read {folder / WEIGHTS_FILE}: not a safetensors file, or cut short "
                              f"({type(err).__name__}: {err})") from err
    return {
        "format": FORMAT_VERSION, "petlib_version": config.get("petlib_version"),
        "model_name": config["model_name"], "model_kwargs": config.get("model_kwargs") or {}, "model_state": state,
        "config": config.get("train_config") or {key: config[key] for key in ("image_size", "tta")
                                                 if config.get(key) is not None},
        "history": [], "epoch": config.get("epoch"), "best_dice": config.get("validation_dice"), "folder": True,
    }


def load_model(
    path: str | Path,
    expected_model: str | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model stored in a checkpoint and load its weights.

    Args:
        path: checkpoint file, or a model folder (:func:`petlib.training.pretrained.save_pretrained`).
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
