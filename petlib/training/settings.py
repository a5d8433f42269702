"""A notebook's settings: which data it runs on, with what, and where its files go.

The numbered notebooks in ``notebooks/`` hold no code of their own beyond calls. Each has one
settings cell that builds a :class:`~petlib.training.config.TrainConfig` and passes it through
:func:`notebook_config`, which

- picks the run mode (:func:`run_mode`): the full dataset where it is; otherwise the embedded
  300-image sample with ``make run``'s settings, writing to ``<out_dir>/sample``; or, with the
  environment variable ``PETLIB_QUICK=1`` (tests), a fixed 16 images per split of the sample at a
  small size for two epochs (:data:`QUICK_SETTINGS`), writing to :data:`QUICK_DIR`, a folder
  under the system's temp directory -- never ``saved_models/``;
- applies ``PETLIB_<FIELD>`` environment variables (``PETLIB_EPOCHS=5``, see
  :data:`ENV_OVERRIDES`), which override the cell, never the other way round;
- resolves relative paths against the repository root (:data:`REPO_ROOT`), since Jupyter
  runs a notebook from ``notebooks/``.

:func:`config_mode` says which mode a config was made for, :func:`settings_row` what a run is as a
row of a table (mode, data, the settings that change its numbers), and :func:`require_dataset`
what to do when the dataset is missing. The dataset survey is :mod:`petlib.data.survey`, the
model comparison :mod:`petlib.evaluation.compare`.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from petlib._io import parse_bool
from petlib.data.dataset import SAMPLE_ROOT, DatasetNotFoundError, dataset_present, is_sample
from petlib.training.config import SAMPLE_SETTINGS, TrainConfig

__all__ = [
    "REPO_ROOT", "QUICK_ENV", "QUICK_DIR", "QUICK_SETTINGS", "ENV_OVERRIDES", "MODEL_LABELS",
    "SAMPLE_SUBDIR", "RUN_MODES", "quick_mode", "resolve_path", "run_mode", "notebook_config", "config_mode",
    "settings_row", "shown_path", "require_dataset",
]


#: The repository: ``dataset/`` and ``saved_models/`` live here (the package sits in it).
REPO_ROOT = Path(__file__).resolve().parents[2]
#: The environment variable that switches the notebooks to quick mode.
QUICK_ENV = "PETLIB_QUICK"
#: Where quick-mode runs write checkpoints, so that ``04_compare`` finds what 02 and 03 wrote
#: and a quick run never touches ``saved_models/``.
QUICK_DIR = Path(tempfile.gettempdir()) / "petlib-quick"
#: What quick mode changes: a fixed handful of the sample's images per split, a small size and
#: two epochs, so the four notebooks run in a couple of minutes on two CPU cores (nbval in CI).
#: Both networks get the same size, so that 04 compares like with like. A quick run replaces the
#: previous quick run and keeps no resumable last checkpoint (nothing to resume in a check).
QUICK_SETTINGS: dict[str, Any] = dict(image_size=64, epochs=2, batch_size=4, subset=16, cache=True,
                                      overwrite=True, save_last=False)
#: The folder, under the settings cell's ``out_dir``, where runs on the embedded sample go, so
#: that they never mix with (or replace) runs on the full dataset.
SAMPLE_SUBDIR = "sample"
#: TrainConfig fields that ``PETLIB_<FIELD>`` environment variables may override, and their parsers.
ENV_OVERRIDES: dict[str, Callable[[str], Any]] = {
    "data_path": str, "image_size": int, "epochs": int, "batch_size": int, "lr": float,
    "loss": str, "seed": int, "out_dir": str,
}
#: The two networks compared, as the notebooks name them.
MODEL_LABELS: dict[str, str] = {"unet": "UNet", "resnet34_unet": "ResNet34-UNet"}
#: The three ways a notebook runs, see :func:`run_mode`.
RUN_MODES = ("full", "sample", "quick")


def quick_mode(environ: Mapping[str, str] | None = None) -> bool:
    """True when ``PETLIB_QUICK`` is set to 1/true/yes/on (case-insensitive).

    Raises:
        ValueError: any other value, so that a typo does not start an hours-long run.
    """
    value = (os.environ if environ is None else environ).get(QUICK_ENV, "")
    quick = parse_bool(value)
    if quick is None:
        raise ValueError(f"{QUICK_ENV}={value.strip().lower()!r}: expected 1/true/yes/on or 0/false/no/off (or unset)")
    return quick


def resolve_path(path: str | Path) -> Path:
    """``path`` as an absolute path; a relative one is taken from the repository root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def run_mode(data_path: str | Path, environ: Mapping[str, str] | None = None) -> str:
    """Which of :data:`RUN_MODES` a notebook asking for ``data_path`` runs in.

    ``"quick"`` when ``PETLIB_QUICK`` is on (tests); otherwise ``"full"`` when ``data_path``
    holds the dataset, and ``"sample"`` -- the embedded 300-image sample -- when it does not.
    """
    if quick_mode(environ):
        return "quick"
    return "full" if dataset_present(resolve_path(data_path)) else "sample"


def notebook_config(config: TrainConfig, environ: Mapping[str, str] | None = None) -> TrainConfig:
    """The settings a notebook really runs with: its settings cell, adapted to the run mode, then env overrides.

    - ``full`` (the dataset is at ``config.data_path``): the cell as it is.
    - ``sample`` (it is not): :data:`~petlib.data.SAMPLE_ROOT` with ``make run``'s settings for
      the model (:data:`petlib.training.config.SAMPLE_SETTINGS`), writing to ``<out_dir>/sample``.
    - ``quick`` (``PETLIB_QUICK=1``): the sample with :data:`QUICK_SETTINGS`, writing to
      :data:`QUICK_DIR`.

    ``PETLIB_<FIELD>`` variables (:data:`ENV_OVERRIDES`) override any of it; a
    ``PETLIB_DATA_PATH`` is applied before the mode is decided.

    Args:
        config: what the notebook's settings cell says.
        environ: the environment to read (default ``os.environ``).

    Returns:
        A new config with ``data_path`` and ``out_dir`` absolute.

    Raises:
        ValueError: a variable that does not parse, or a quick run aimed at ``saved_models/``.
    """
    environ = os.environ if environ is None else environ
    overrides = {}
    for name, parse in ENV_OVERRIDES.items():
        variable = f"PETLIB_{name.upper()}"
        if variable in environ:
            try:
                overrides[name] = parse(environ[variable])
            except ValueError:
                raise ValueError(f"{variable}={environ[variable]!r} is not a valid {parse.__name__}") from None
    mode = run_mode(overrides.get("data_path", config.data_path), environ)
    if mode == "quick":
        config = dataclasses.replace(config, data_path=str(SAMPLE_ROOT), out_dir=str(QUICK_DIR), **QUICK_SETTINGS)
    elif mode == "sample":
        config = dataclasses.replace(config, data_path=str(SAMPLE_ROOT),
                                     out_dir=str(Path(config.out_dir) / SAMPLE_SUBDIR),
                                     **SAMPLE_SETTINGS.get(config.model, {}))
    if mode != "full":
        overrides.pop("data_path", None)  # it named no dataset: the sample replaces it
    config = dataclasses.replace(config, **overrides)
    config = dataclasses.replace(config, data_path=str(resolve_path(config.data_path)),
                                 out_dir=str(resolve_path(config.out_dir)))
    if mode == "quick" and Path(config.out_dir).resolve() == (REPO_ROOT / "saved_models").resolve():
        raise ValueError(f"quick mode must not write to {config.out_dir}: unset PETLIB_OUT_DIR or pick another folder")
    return config


def config_mode(config: TrainConfig, environ: Mapping[str, str] | None = None) -> str:
    """The run mode of a config that :func:`notebook_config` returned (``"full"``, ``"sample"``, ``"quick"``)."""
    if quick_mode(environ):
        return "quick"
    return "sample" if is_sample(config.data_path) else "full"


def settings_row(config: TrainConfig, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What a run is, as one row for :func:`petlib.evaluation.format_table`: its mode, data and settings.

    The values are plain (``"quick"``, ``64``, ``True``) and the settings are named as in
    :class:`TrainConfig`; a notebook prints one row for its run, or one per run to set runs side
    by side. ``data`` is shown relative to the repository when inside it; ``subset`` ``"all"``
    means every image of each split; ``lr`` is the learning rate the run uses.
    """
    return {
        "model": MODEL_LABELS.get(config.model, config.model), "mode": config_mode(config, environ),
        "data": shown_path(config.data_path), "subset": config.subset or "all", "image_size": config.image_size,
        "epochs": config.epochs, "batch_size": config.batch_size, "lr": f"{config.learning_rate:g}",
        "loss": config.loss, "tta": config.tta, "seed": config.seed,
    }


def shown_path(path: str | Path) -> str:
    """``path`` relative to the repository when it is inside it (what a reader's checkout has too)."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def require_dataset(root: str | Path) -> Path:
    """``root`` if it holds the dataset; otherwise an error that says how to get it.

    Raises:
        DatasetNotFoundError: naming where it looked, the download command, and the sample.
    """
    root = Path(root)
    if dataset_present(root):
        return root
    raise DatasetNotFoundError(
        f"No Oxford-IIIT Pet at {root} (looked for images/, annotations/trimaps/, "
        f"annotations/trainval.txt and annotations/test.txt).\n"
        f"Either download it (~800 MB) from the repository root:\n"
        f"    python -m petlib.data download --root {root}\n"
        f"or leave the settings cell's data_path at dataset/oxford-iiit-pet: without the full dataset the\n"
        f"notebooks run on the 300-image sample shipped in {SAMPLE_ROOT}."
    )
