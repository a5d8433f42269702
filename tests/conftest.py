"""What several test files share: a tiny training run's config, a schedule's learning rates, a command
line run in this process, and one tiny trained run for every test that needs a trained checkpoint."""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from petlib.data import SAMPLE_ROOT
from petlib.training.config import TrainConfig
from petlib.training.optim import build_scheduler


def _tiny_config(out_dir: str | Path, **overrides) -> TrainConfig:
    """A 4-channel UNet, 8 images a split at 16 px, on the CPU: a run of a few seconds.

    ``amp="off"``: the numbers do not depend on whether this CPU computes bfloat16 natively
    (with ``"auto"`` :func:`petlib.training.device.speed_options` would decide from a probe).
    """
    values = dict(model="unet", model_kwargs={"base_channels": 4}, data_path=str(SAMPLE_ROOT), subset=8,
                  image_size=16, batch_size=4, epochs=2, device="cpu", amp="off", validate=True, out_dir=str(out_dir))
    return TrainConfig(**{**values, **overrides})


@pytest.fixture(scope="session")
def tiny_config():
    """``tiny_config(out_dir, **overrides)``: :func:`_tiny_config`, a tiny run's :class:`TrainConfig`."""
    return _tiny_config


def _scheduled_lrs(config: TrainConfig, steps_per_epoch: int = 10) -> list[float]:
    """The learning rate of each of ``config.epochs * steps_per_epoch`` steps of ``config``'s schedule."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=config.learning_rate)
    scheduler = build_scheduler(config, optimizer, steps_per_epoch=steps_per_epoch)
    lrs = []
    for _ in range(config.epochs * steps_per_epoch):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


@pytest.fixture(scope="session")
def scheduled_lrs():
    """``scheduled_lrs(config, steps_per_epoch=10)``: :func:`_scheduled_lrs`, the schedule's rate per step."""
    return _scheduled_lrs


# ----------------------------------------------------------------------------- commands, in this process


@dataclass(frozen=True)
class CommandResult:
    """A command line's exit status and output, as :class:`subprocess.CompletedProcess` holds them."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str


@contextlib.contextmanager
def _environment(cwd: str | Path | None, debug: bool):
    """``PETLIB_DEBUG`` set as a child process would get it, and ``cwd`` the working folder; both restored."""
    from petlib.cli.common import DEBUG_ENV

    old_cwd, old_debug = os.getcwd(), os.environ.get(DEBUG_ENV)
    os.environ[DEBUG_ENV] = "1" if debug else "0"
    try:
        if cwd is not None:
            os.chdir(cwd)
        yield
    finally:
        os.chdir(old_cwd)
        if old_debug is None:
            os.environ.pop(DEBUG_ENV, None)
        else:
            os.environ[DEBUG_ENV] = old_debug


@contextlib.contextmanager
def _python_warnings_into(stream: io.StringIO):
    """Warnings filtered as a fresh ``python`` filters them (DeprecationWarning and its kin hidden,
    the rest shown once per place) and printed into ``stream`` where they happen, as onto a stderr."""
    with warnings.catch_warnings():
        warnings.resetwarnings()
        warnings.simplefilter("default")
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.filterwarnings("ignore", category=category)

        def show(message, category, filename, lineno, file=None, line=None):
            stream.write(warnings.formatwarning(message, category, filename, lineno, line))

        warnings.showwarning = show
        yield


def run_command(main: Callable[[Sequence[str] | None], int | None], *argv: str | Path, cwd: str | Path | None = None,
                debug: bool = False) -> CommandResult:
    """``python -m petlib.<command> *argv`` without starting Python: ``main`` (the command module's
    ``main``) through :func:`petlib.cli.common.run_main`, as the ``python -m`` and console-script
    forms run it, with stdout and stderr captured (not terminals) and its exit status.

    The same flags, messages, exit statuses and files as the child process, seconds of ``import
    torch`` cheaper. An exception that escapes is printed as Python prints it (its traceback on
    stderr, exit status 1); warnings go to stderr as a fresh ``python`` shows them. The tests marked
    slow run the commands in a child process too, as a user types them.
    """
    from petlib.cli.common import run_main

    args = [str(arg) for arg in argv]
    out, err = io.StringIO(), io.StringIO()
    with _environment(cwd, debug), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            _python_warnings_into(err):
        try:
            run_main(main, args)
        except SystemExit as exit_:
            code = exit_.code
            status = code if isinstance(code, int) else (0 if code is None else 1)
        except Exception:  # noqa: BLE001 - what Python does with an exception nothing caught
            err.write(traceback.format_exc())
            status = 1
        else:  # run_main always exits
            raise AssertionError(f"run_main({main.__module__}.main) returned instead of exiting")
    return CommandResult(args, status, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def command():
    """``command(main, *argv, cwd=None, debug=False)``: :func:`run_command`, a command line run in this process."""
    return run_command


# ----------------------------------------------------------------------------- one trained run for every test


# A 4-channel UNet trained by petlib-train for 2 epochs at 32 px on 16 images: seconds on a CPU, and
# its Dice is neither 0 nor 1 and differs from its IoU, so a score printed in the wrong place or
# scale shows.
TINY_TRAIN_ARGS = ("--model", "unet", "--model_kwargs", '{"base_channels": 4}', "--image_size", "32", "--device", "cpu",
                   "--data_path", str(SAMPLE_ROOT), "--subset", "16", "--epochs", "2", "--batch_size", "4",
                   "--validate", "--no-progress")


@pytest.fixture(scope="session")
def tiny_train_args() -> tuple[str, ...]:
    """:data:`TINY_TRAIN_ARGS`: petlib-train's flags of :func:`trained_unet`'s tiny run, without ``--out_dir``."""
    return TINY_TRAIN_ARGS


@dataclass(frozen=True)
class TrainedRun:
    """The folder of a finished training run and what the command printed."""

    folder: Path
    stdout: str

    @property
    def checkpoint(self) -> Path:
        """The best checkpoint, ``unet.pth``."""
        return self.folder / "unet.pth"


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def trained_unet(tmp_path_factory):
    """:data:`TINY_TRAIN_ARGS` trained once for the whole session by ``petlib-train``'s ``main``: a :class:`TrainedRun`.

    Shared: a test that writes into the folder (``petlib-eval`` without ``--no_card`` records its
    score in the card) takes :func:`trained_unet_copy` instead. The session ends with an error
    if the files changed.
    """
    from petlib.cli.train import main

    out = tmp_path_factory.mktemp("trained-unet")
    result = run_command(main, *TINY_TRAIN_ARGS, "--out_dir", out)
    assert result.returncode == 0 and "Traceback" not in result.stderr, f"{result.stdout}\n{result.stderr}"
    before = _snapshot(out)
    yield TrainedRun(out, result.stdout)
    assert _snapshot(out) == before, f"a test changed the shared trained run in {out}: use trained_unet_copy"


@pytest.fixture
def trained_unet_copy(trained_unet, tmp_path) -> TrainedRun:
    """:func:`trained_unet`'s folder copied into ``tmp_path / "models"``, for a test that changes its files."""
    return TrainedRun(shutil.copytree(trained_unet.folder, tmp_path / "models"), trained_unet.stdout)
