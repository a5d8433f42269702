"""What the notebooks import, in one place: their settings, the dataset survey, the model comparison.

The code lives in the modules named for each job -- :mod:`petlib.notebook` (settings and run
modes), :mod:`petlib.survey` (the dataset survey, notebook 01), :mod:`petlib.compare` (the
model comparison and its written reading, notebook 04) and :mod:`petlib.tables`
(:func:`format_table`). This module re-exports their names, so that a notebook's
``from petlib.analysis import ...`` keeps working.
"""
from __future__ import annotations

from .compare import (
    LAB_REPORTED_DICE, SPECIES_GAP, ModelResult, TrainedRun, group_scores, lab_reference_table, load_run,
    paired_bootstrap, pick_examples, prediction_panels, score_checkpoint, species_table, summary_table,
    time_inference, written_reading,
)
from .notebook import (
    ENV_OVERRIDES, MODEL_LABELS, QUICK_DIR, QUICK_ENV, QUICK_SETTINGS, REPO_ROOT, RUN_MODES, SAMPLE_SUBDIR,
    config_mode, describe_run, mode_banner, notebook_config, quick_mode, require_dataset, resolve_path, run_mode,
    shown_path,
)
from .survey import (
    ImageInfo, count_by, count_table, dataset_present, foreground_fractions, is_sample, odd_images, read_example,
    read_splits, survey_images,
)
from .tables import format_table

__all__ = [
    "REPO_ROOT", "QUICK_ENV", "QUICK_DIR", "QUICK_SETTINGS", "ENV_OVERRIDES", "MODEL_LABELS",
    "SAMPLE_SUBDIR", "RUN_MODES", "quick_mode", "resolve_path", "run_mode", "notebook_config", "config_mode",
    "mode_banner", "shown_path", "dataset_present", "is_sample", "require_dataset", "describe_run",
    "read_splits", "count_by", "count_table", "read_example", "ImageInfo", "survey_images", "odd_images",
    "foreground_fractions", "format_table",
    "TrainedRun", "load_run", "ModelResult", "score_checkpoint", "time_inference", "group_scores",
    "pick_examples", "prediction_panels", "paired_bootstrap", "summary_table", "species_table",
    "SPECIES_GAP", "LAB_REPORTED_DICE", "lab_reference_table", "written_reading",
]
