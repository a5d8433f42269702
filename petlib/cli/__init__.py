"""The command layer: what a user types. Nothing below it imports it.

=================  =========================  =============================  =======================================
console command    ``python -m`` form         module                         does
=================  =========================  =============================  =======================================
``petlib-train``   ``petlib.train``           :mod:`petlib.cli.train`        train a network
``petlib-eval``    ``petlib.inference``       :mod:`petlib.cli.evaluate`     score a checkpoint on a split
``petlib-predict`` ``petlib.predict``         :mod:`petlib.cli.predict`      masks and overlays for your photos
``petlib-data``    ``petlib.data``            :mod:`petlib.cli.data`         download the dataset
``petlib-export``  ``petlib.export``          :mod:`petlib.cli.export`       ONNX, TorchScript or a model folder
(main job)         ``petlib.run``             :mod:`petlib.cli.run`          train both networks, compare on test
=================  =========================  =============================  =======================================

:mod:`petlib.cli.common` holds what they share: flag spellings, progress bars, one-line errors.
``pyproject.toml``'s ``[project.scripts]`` names the functions below; each runs its command's
``main`` through :func:`~petlib.cli.common.run_main`, as the ``python -m`` form does. Commands are
imported inside the functions: a command loads only what it runs.
"""
from __future__ import annotations

from typing import NoReturn

from petlib.cli.common import run_main

__all__ = ["train", "evaluate", "predict", "data", "export"]


def train() -> NoReturn:
    """``petlib-train``: :func:`petlib.cli.train.main`."""
    from petlib.cli.train import main

    run_main(main)


def evaluate() -> NoReturn:
    """``petlib-eval``: :func:`petlib.cli.evaluate.main`."""
    from petlib.cli.evaluate import main

    run_main(main)


def predict() -> NoReturn:
    """``petlib-predict``: :func:`petlib.cli.predict.main`."""
    from petlib.cli.predict import main

    run_main(main)


def data() -> NoReturn:
    """``petlib-data``: :func:`petlib.cli.data.main`."""
    from petlib.cli.data import main

    run_main(main)


def export() -> NoReturn:
    """``petlib-export``: :func:`petlib.cli.export.main`."""
    from petlib.cli.export import main

    run_main(main)
