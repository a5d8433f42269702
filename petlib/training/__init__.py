"""The training layer: from a :class:`TrainConfig` to a trained model and the files of its run.

Read it in this order:

1. :mod:`~petlib.training.config` -- :class:`TrainConfig` (every setting, checked) and the named
   recipes; :mod:`~petlib.training.settings` -- which settings a run gets on the full dataset,
   on the embedded sample, or in quick mode (the notebooks' one switch);
2. :mod:`~petlib.training.device` -- device, seeds, autocast and the speed options "auto" picks;
3. :mod:`~petlib.training.optim` -- the optimiser, the per-step learning-rate schedule and the
   weights' moving average; :mod:`~petlib.training.loaders` -- a run's loaders, batches on the device;
4. :mod:`~petlib.training.checkpoint` -- a checkpoint is one dict, written atomically;
5. :mod:`~petlib.training.rundir` -- the run's folder: its file names, the history CSV, the resume
   point, and what is written each epoch; :mod:`~petlib.training.card` (the model card) and
   :mod:`~petlib.training.curves` (curves PNG, TensorBoard) are written from there;
   :mod:`~petlib.training.pretrained` -- a model folder to share (``save_pretrained``);
6. :mod:`~petlib.training.engine` -- ``train_one_epoch``, ``evaluate`` and ``fit``.

Imports the data, models, losses and metrics layers only (and :mod:`petlib.distributed`).
"""
from petlib.training.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from petlib.training.config import RECIPES, TrainConfig, recipe
from petlib.training.device import pick_device
from petlib.training.engine import FitResult, evaluate, fit, predict_logits, train_one_epoch
from petlib.training.pretrained import save_pretrained
from petlib.training.rundir import RunExistsError, read_history
from petlib.training.settings import (
    MODEL_LABELS,
    QUICK_DIR,
    config_mode,
    notebook_config,
    quick_mode,
    require_dataset,
    run_mode,
    settings_row,
    shown_path,
)

__all__ = [
    "TrainConfig", "RECIPES", "recipe", "pick_device", "fit", "FitResult", "train_one_epoch", "evaluate",
    "predict_logits", "save_checkpoint", "load_checkpoint", "load_model", "CheckpointError", "read_history",
    "RunExistsError", "save_pretrained",
    # the notebooks' settings (settings.py)
    "notebook_config", "run_mode", "quick_mode", "config_mode", "settings_row", "require_dataset", "shown_path",
    "MODEL_LABELS", "QUICK_DIR",
]
