"""The commands ``pip install`` puts on the PATH, each the ``python -m`` form it stands for.

    petlib-train    python -m petlib.train        train a network
    petlib-eval     python -m petlib.inference    score a checkpoint on a split (test Dice and IoU)
    petlib-predict  python -m petlib.predict      masks and overlays for your own photos
    petlib-data     python -m petlib.data         download the dataset
    petlib-export   python -m petlib.export       ONNX or TorchScript for deployment

``pyproject.toml``'s ``[project.scripts]`` names the functions below. Each runs its module's
``main`` through :func:`petlib.cli.run_main`, as ``python -m`` does, so both forms take the
same flags and report errors the same way. Modules are imported inside the functions: a
command loads only what it runs (``petlib-export --help`` does not import the training code).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

from .cli import run_main

__all__ = ["COMMANDS", "prog", "train", "evaluate", "predict", "data", "export"]

#: Console command -> the module whose ``main`` it runs.
COMMANDS: dict[str, str] = {
    "petlib-train": "petlib.train",
    "petlib-eval": "petlib.inference",
    "petlib-predict": "petlib.predict",
    "petlib-data": "petlib.data",
    "petlib-export": "petlib.export",
}


def prog(module: str) -> str:
    """The name a command's ``--help`` and errors show: how this process was started.

    ``petlib-eval`` when run as that console command, else ``python -m petlib.inference``.
    """
    invoked = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else ""
    return invoked if COMMANDS.get(invoked) == module else f"python -m {module}"


def train() -> NoReturn:
    """``petlib-train``: :func:`petlib.train.main`."""
    from .train import main

    run_main(main)


def evaluate() -> NoReturn:
    """``petlib-eval``: :func:`petlib.inference.main`."""
    from .inference import main

    run_main(main)


def predict() -> NoReturn:
    """``petlib-predict``: :func:`petlib.predict.main`."""
    from .predict import main

    run_main(main)


def data() -> NoReturn:
    """``petlib-data``: :func:`petlib.data.main`."""
    from .data import main

    run_main(main)


def export() -> NoReturn:
    """``petlib-export``: :func:`petlib.export.main`."""
    from .export import main

    run_main(main)
