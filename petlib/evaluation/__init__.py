"""The evaluation layer: what is done with a trained model.

- :mod:`~petlib.evaluation.score` -- scoring a checkpoint on a split, Dice and IoU per image, as
  it was validated (:func:`evaluate_checkpoint`);
- :mod:`~petlib.evaluation.predict` -- predicting masks for photos of any size (:func:`predict_mask`);
- :mod:`~petlib.evaluation.export` -- exporting a model to ONNX or TorchScript;
- :mod:`~petlib.evaluation.compare` -- trained runs side by side (notebooks 02-04): scored per
  image, laid out as tables, their best, typical and worst test images drawn (:func:`show_examples`);
- :mod:`~petlib.evaluation.plots` -- the pictures: overlays, grids, histograms, training curves;
- :mod:`~petlib.evaluation.tables` -- :func:`format_table`, the one table printer;
- :mod:`~petlib.evaluation.timing` -- timing a forward pass.

Not loaded by ``import petlib``: ``from petlib.evaluation import ...`` when it is needed. Imports
the training, data and models layers; matplotlib only inside the functions that draw.
"""
from petlib.evaluation.compare import (
    LAB_REPORTED_DICE,
    ModelResult,
    TrainedRun,
    difference_table,
    group_scores,
    lab_reference_table,
    load_run,
    paired_bootstrap,
    pick_examples,
    prediction_panels,
    score_checkpoint,
    show_examples,
    species_table,
    summary_table,
    time_inference,
    training_table,
)
from petlib.evaluation.export import (
    MissingPackageError,
    check_export,
    export_checkpoint,
    export_onnx,
    export_torchscript,
    run_exported,
)
from petlib.evaluation.plots import (
    OUTCOME_COLORS,
    colorize_trimap,
    error_overlay,
    overlay,
    plot_histograms,
    plot_history,
    plot_image_sizes,
    show_grid,
    show_predictions,
    to_numpy_image,
    trimap_key,
)
from petlib.evaluation.predict import find_images, predict_logits_at_size, predict_mask, read_photo
from petlib.evaluation.score import evaluate_checkpoint, evaluate_model, score_at_original_size
from petlib.evaluation.tables import format_table
from petlib.evaluation.timing import time_forward

__all__ = [
    # score.py, predict.py
    "evaluate_checkpoint", "evaluate_model", "score_at_original_size",
    "predict_mask", "predict_logits_at_size", "read_photo", "find_images",
    # export.py
    "export_onnx", "export_torchscript", "export_checkpoint", "check_export", "run_exported", "MissingPackageError",
    # compare.py
    "TrainedRun", "load_run", "ModelResult", "score_checkpoint", "time_inference", "group_scores", "pick_examples",
    "prediction_panels", "show_examples", "paired_bootstrap", "training_table", "summary_table", "species_table",
    "difference_table", "LAB_REPORTED_DICE", "lab_reference_table",
    # plots.py, tables.py, timing.py
    "OUTCOME_COLORS", "overlay", "error_overlay", "to_numpy_image", "colorize_trimap", "trimap_key", "show_grid",
    "plot_history", "plot_histograms", "plot_image_sizes", "show_predictions", "format_table", "time_forward",
]
