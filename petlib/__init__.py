"""petlib: binary pet segmentation on the Oxford-IIIT Pet dataset.

Two networks -- a plain UNet and a ResNet34-UNet -- with the data, the Dice metric,
the losses and a training engine they share. The usual entry points::

    from petlib import OxfordPetSegmentation, build_model, dice_score, TrainConfig, fit

Modules: :mod:`petlib.data` (dataset, download), :mod:`petlib.models`,
:mod:`petlib.metrics`, :mod:`petlib.losses`, :mod:`petlib.transforms` (augmentation),
:mod:`petlib.config` (settings and recipes), :mod:`petlib.engine` (training loop),
:mod:`petlib.checkpoint`, :mod:`petlib.card` (model cards), :mod:`petlib.curves` (curves PNG,
TensorBoard), :mod:`petlib.runpaths` (a run's file names), :mod:`petlib.plotting`,
:mod:`petlib.export` (ONNX, TorchScript); for the notebooks :mod:`petlib.notebook`,
:mod:`petlib.survey` and :mod:`petlib.compare` (re-exported by :mod:`petlib.analysis`);
:mod:`petlib.tables`, :mod:`petlib.timing`, and the benchmark :mod:`petlib.bench`.

Commands (:mod:`petlib.console`): ``petlib-train``, ``petlib-eval``, ``petlib-predict``,
``petlib-data download`` and ``petlib-export``, each also ``python -m petlib.train``,
``petlib.inference``, ``petlib.predict``, ``petlib.data`` and ``petlib.export``; and
``python -m petlib.run``.
"""
from ._version import __version__
from .checkpoint import load_checkpoint, load_model, save_checkpoint
from .config import RECIPES, TrainConfig, recipe
from .data import DEFAULT_ROOT, SAMPLE_ROOT, OxfordPetSegmentation, load_dataset
from .engine import evaluate, fit, pick_device, read_history, train_one_epoch
from .losses import build_loss
from .metrics import dice_per_image, dice_score, iou_per_image, iou_score
from .models import MODELS, build_model, count_parameters

__all__ = [
    "OxfordPetSegmentation", "load_dataset", "DEFAULT_ROOT", "SAMPLE_ROOT",
    "MODELS", "build_model", "count_parameters",
    "dice_score", "iou_score", "dice_per_image", "iou_per_image", "build_loss",
    "TrainConfig", "RECIPES", "recipe",
    "fit", "train_one_epoch", "evaluate", "pick_device", "read_history",
    "save_checkpoint", "load_checkpoint", "load_model",
]
