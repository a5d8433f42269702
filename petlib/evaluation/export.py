"""Export a checkpoint for use without petlib (ONNX, TorchScript) or to share (a model folder).

The command line is ``petlib-export`` (:mod:`petlib.cli.export`)::

    petlib-export --model_path saved_models/resnet34_unet.pth --format onnx          # -> saved_models/resnet34_unet.onnx
    petlib-export --model_path saved_models/resnet34_unet.pth --format torchscript   # -> resnet34_unet.torchscript.pt
    petlib-export --model_path saved_models/resnet34_unet.pth --format folder        # -> saved_models/resnet34_unet/

A model folder (``model.safetensors``, ``config.json``, the model card as ``README.md``:
:func:`petlib.training.pretrained.save_pretrained`) is for people who use PyTorch: it loads with
``petlib.load_model``, ``torch.hub.load`` or ``safetensors`` and holds the weights only, so TTA
is chosen when predicting (``petlib-predict --tta``), not baked in.

The exported model takes ``images``: float32 ``(N, 3, H, W)``, RGB in [0, 1], any N, H and W,
and returns ``logits``: float32 ``(N, 1, H, W)``; ``sigmoid(logits) > 0.5`` is pet. The ImageNet
normalisation is inside (it is the first step of every petlib model), and with ``--tta on`` so
is the flip averaging (twice the compute; default: as the checkpoint was validated). Any size
runs, but the network saw photos resized to its training size (``image_size`` in the
metadata): resize to it, predict, and resize the logits back, as ``petlib-predict`` does.

After writing, the file is run on two image sizes and compared with PyTorch (``--no_check``
skips that); the largest difference is printed. The ONNX file holds petlib's description of it
in its ``metadata_props`` (key ``petlib``), the TorchScript file in ``petlib.json``::

    import numpy as np, onnxruntime
    session = onnxruntime.InferenceSession("resnet34_unet.onnx")
    logits = session.run(None, {"images": images})[0]  # images: float32 (N, 3, H, W) in [0, 1]

    model = torch.jit.load("resnet34_unet.torchscript.pt")
    logits = model(images)

ONNX needs torch 2.5 or later and ``pip install 'petlib[export]'`` (onnx and onnxscript, torch.onnx's
exporter, and onnxruntime to check and run it). TorchScript needs nothing more, and loads in C++
(libtorch) too, but ``torch.jit`` is deprecated by PyTorch; ``torch.export`` cannot yet write these networks
for every size (it specialises the padding to a multiple of 16 or 32 on whether any is needed),
so ONNX is the format to prefer.
"""
from __future__ import annotations

import contextlib
import importlib.util
import inspect
import io
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from petlib._io import replace_atomically
from petlib._version import __version__
from petlib.evaluation.predict import validated_tta
from petlib.training.checkpoint import load_model
from petlib.training.config import TrainConfig
from petlib.training.engine import predict_logits

__all__ = [
    "FORMATS", "SUFFIXES", "ExportedSegmenter", "MissingPackageError", "export_onnx", "export_torchscript",
    "export_checkpoint", "check_export", "run_exported",
]

#: Formats petlib-export writes.
FORMATS = ("onnx", "torchscript", "folder")
#: The file suffix of each format, for the default output path (a folder: the checkpoint's name without ``.pth``).
SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript.pt", "folder": ""}
#: The example batch the graph is recorded with: 2 images (a batch of 1 would fix N at 1) of a
#: size that is no multiple of 32 (which would drop the padding from the graph).
EXAMPLE_SHAPE = (2, 3, 67, 93)


class MissingPackageError(ImportError):
    """An optional package a format needs is not installed."""


class ExportedSegmenter(nn.Module):
    """What is exported: a petlib model, with the flip averaging when ``tta``.

    ``forward``: images ``(N, 3, H, W)`` in [0, 1] -> logits ``(N, 1, H, W)``.
    """

    def __init__(self, model: nn.Module, tta: bool = False) -> None:
        super().__init__()
        self.model = model.eval()
        self.tta = tta

    def forward(self, images: Tensor) -> Tensor:
        return predict_logits(self.model, images, tta=self.tta)


def _require(*packages: str, purpose: str) -> None:
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingPackageError(
            f"{purpose} needs {' and '.join(missing)}, not installed here: pip install 'petlib[export]' "
            f"(or pip install {' '.join(missing)})"
        )


def export_onnx(model: nn.Module, path: str | Path, *, tta: bool = False, metadata: dict[str, Any] | None = None,
                opset: int | None = None) -> Path:
    """Write ``model`` as one ONNX file with dynamic batch, height and width.

    The graph is recorded by torch.onnx's exporter (``dynamo=True``, built on torch.export)
    from :data:`EXAMPLE_SHAPE`, weights inside the file (no ``.data`` beside it). Input
    ``images`` ``(batch, 3, height, width)``, output ``logits`` ``(batch, 1, height, width)``.

    Raises:
        MissingPackageError: onnx or onnxscript is not installed, or torch is older than 2.5.
    """
    _require("onnx", "onnxscript", purpose="ONNX export")
    if "dynamo" not in inspect.signature(torch.onnx.export).parameters:
        raise MissingPackageError(f"ONNX export needs torch 2.5 or later (torch.onnx.export(dynamo=True)); this is "
                                  f"torch {torch.__version__}. Upgrade torch, or use --format torchscript")
    module = ExportedSegmenter(model.cpu(), tta).eval()
    dim = torch.export.Dim
    example = torch.rand(EXAMPLE_SHAPE, generator=torch.Generator().manual_seed(0))
    # The exporter prints a line per stage and warns about internals a user cannot act on.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module, (example,), None, input_names=["images"], output_names=["logits"], opset_version=opset,
            dynamic_shapes={"images": {0: dim("batch"), 2: dim("height"), 3: dim("width")}},
            dynamo=True, verbose=False,
        )
    if metadata:
        program.model.metadata_props["petlib"] = json.dumps(metadata)
    return replace_atomically(lambda tmp: program.save(tmp, external_data=False), Path(path))


def export_torchscript(model: nn.Module, path: str | Path, *, tta: bool = False,
                       metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as a traced TorchScript module that takes any batch, height and width.

    Tracing records the padding arithmetic on the input's size, not the example's numbers, so
    every size runs (checked by :func:`check_export`).
    """
    module = ExportedSegmenter(model.cpu(), tta).eval()
    example = torch.rand(EXAMPLE_SHAPE, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notice, said once in the module docstring
        traced = torch.jit.trace(module, (example,))
    extra = {"petlib.json": json.dumps(metadata or {})}

    def save(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.jit.save(traced, str(tmp), _extra_files=extra)

    return replace_atomically(save, Path(path))


def run_exported(path: str | Path, images: Tensor, fmt: str | None = None) -> Tensor:
    """Run an exported file on ``images`` ``(N, 3, H, W)`` in [0, 1] -> logits ``(N, 1, H, W)`` (CPU).

    ONNX files run in onnxruntime, a model folder in PyTorch; the format is read from the path
    (``.onnx``, a folder, else TorchScript) unless given.

    Raises:
        MissingPackageError: onnxruntime is not installed (for ONNX).
    """
    fmt = fmt or ("onnx" if str(path).endswith(".onnx") else "folder" if Path(path).is_dir() else "torchscript")
    if fmt == "folder":
        model, _ = load_model(path)
        with torch.inference_mode():
            return model(images.cpu())
    if fmt == "onnx":
        _require("onnxruntime", purpose="running an ONNX model")
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(["logits"], {"images": images.cpu().numpy()})[0])
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        return torch.jit.load(str(path), map_location="cpu")(images.cpu())


def check_export(path: str | Path, model: nn.Module, *, tta: bool = False, fmt: str | None = None,
                 sizes: Sequence[tuple[int, int]] = ((64, 64), (77, 131))) -> float:
    """Largest ``|logits|`` difference between the exported file and ``model``, over random images
    of each ``(H, W)`` in ``sizes`` (a batch of 2 each)."""
    reference = ExportedSegmenter(model.cpu(), tta).eval()
    generator = torch.Generator().manual_seed(1)
    worst = 0.0
    for height, width in sizes:
        images = torch.rand(2, 3, height, width, generator=generator)
        with torch.inference_mode():
            expected = reference(images)
        worst = max(worst, (run_exported(path, images, fmt) - expected).abs().max().item())
    return worst


def _output_path(model_path: str | Path, fmt: str, output: str | Path | None) -> Path:
    if output is not None:
        return Path(output)
    if fmt == "folder" and Path(model_path).is_dir():
        raise ValueError(f"{model_path} is a model folder already: pass --output for a copy elsewhere")
    return Path(model_path).with_suffix(SUFFIXES[fmt])


def export_checkpoint(model_path: str | Path, fmt: str = "onnx", output: str | Path | None = None, *,
                      tta: bool | None = None, opset: int | None = None,
                      overwrite: bool = False) -> tuple[Path, nn.Module, dict[str, Any]]:
    """Export the model in the checkpoint (or model folder) at ``model_path`` as ``fmt``.

    Args:
        output: the file (or folder) to write; default the checkpoint's path with :data:`SUFFIXES`' suffix.
        tta: include the flip averaging; ``None``: as the checkpoint was validated. Not for a
            folder, whose users choose it when they predict.
        opset: ONNX opset; default torch's.
        overwrite: a folder: replace an earlier export's files in it (else that is an error).

    Returns:
        ``(path written, the model, the metadata stored in the file)``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    if fmt == "folder" and tta is not None:
        raise ValueError("--tta puts the flip inside an ONNX or TorchScript graph; a model folder holds the weights "
                         "only, and TTA is chosen when predicting (petlib-predict --tta on): leave --tta out")
    path = _output_path(model_path, fmt, output)
    model, checkpoint = load_model(model_path)
    config = TrainConfig.from_dict(checkpoint.get("config", {}))
    validated = validated_tta(checkpoint)
    tta = validated if tta is None else tta
    metadata = {
        "petlib_version": __version__, "checkpoint": Path(model_path).name, "model_name": checkpoint["model_name"],
        "model_kwargs": checkpoint.get("model_kwargs", {}), "epoch": checkpoint.get("epoch"),
        "validation_dice": checkpoint.get("best_dice"), "image_size": config.image_size, "tta": tta, "validated_tta": validated,
        "input": "images: float32 (N, 3, H, W), RGB in [0, 1], any N, H, W; resize photos to image_size first",
        "output": "logits: float32 (N, 1, H, W); sigmoid(logits) > 0.5 is pet",
    }
    if fmt == "folder":
        from petlib.training.pretrained import save_pretrained

        save_pretrained(model_path, path, overwrite=overwrite)
    elif fmt == "onnx":
        export_onnx(model, path, tta=tta, metadata=metadata, opset=opset)
    else:
        export_torchscript(model, path, tta=tta, metadata=metadata)
    return path, model, metadata
