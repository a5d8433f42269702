"""petlib: binary pet segmentation on the Oxford-IIIT Pet dataset.

Two networks -- a plain UNet and a ResNet34-UNet -- with the data, the Dice metric, the losses
and the training loop they share. The usual entry points::

    from petlib import OxfordPetSegmentation, build_model, dice_score, TrainConfig, fit

``import petlib`` loads the core only, in layers that import downwards
(docs/architecture.md):

- :mod:`petlib.training` -- settings (:class:`TrainConfig`), the loop (:func:`fit`), checkpoints,
  the run's folder;
- :mod:`petlib.data` -- the dataset, its release layout and splits, download, augmentation;
- :mod:`petlib.models`, :mod:`petlib.metrics`, :mod:`petlib.losses`.

Above the core, imported on demand: :mod:`petlib.evaluation` (scoring, predicting masks,
export, comparing runs, plots), :mod:`petlib.cli` (the commands ``petlib-train``,
``petlib-eval``, ``petlib-predict``, ``petlib-data``, ``petlib-export``; also
``python -m petlib.train``, ``.inference``, ``.predict``, ``.data``, ``.export``, and the main
job ``python -m petlib.run``), and :mod:`petlib.research` (cross-validation, recipe
comparison, learning-rate range test, the benchmark).
"""
from petlib._version import __version__
from petlib.data import DEFAULT_ROOT, SAMPLE_ROOT, OxfordPetSegmentation, load_dataset
from petlib.losses import build_loss
from petlib.metrics import dice_per_image, dice_score, iou_per_image, iou_score
from petlib.models import MODELS, build_model, count_parameters
from petlib.training import (
    RECIPES,
    TrainConfig,
    evaluate,
    fit,
    load_checkpoint,
    load_model,
    pick_device,
    read_history,
    recipe,
    save_checkpoint,
    save_pretrained,
    train_one_epoch,
)

__all__ = [
    "__version__",
    "OxfordPetSegmentation", "load_dataset", "DEFAULT_ROOT", "SAMPLE_ROOT",
    "MODELS", "build_model", "count_parameters",
    "dice_score", "iou_score", "dice_per_image", "iou_per_image", "build_loss",
    "TrainConfig", "RECIPES", "recipe",
    "fit", "train_one_epoch", "evaluate", "pick_device", "read_history",
    "save_checkpoint", "load_checkpoint", "load_model", "save_pretrained",
]
