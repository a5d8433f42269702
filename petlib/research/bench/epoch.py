"""The report's epoch section: where the time of a real epoch of :func:`~petlib.training.engine.fit` goes.

Each network trains a few epochs on the shipped sample with the main job's settings
(:data:`~petlib.training.config.SAMPLE_SETTINGS`: size, batch, validation), exactly as ``make run``
trains it, with the pieces of an epoch timed where ``fit`` calls them: waiting for the loader
(decoding the cache, collating), the batch augmentation, the training steps (forward, backward,
optimiser), validation (flip TTA), and each file the run writes -- the kept checkpoint, the resume
point ``<name>_last.pth`` with the optimiser state, the history, the curves PNG and the card.
"""
from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from typing import Any
from unittest import mock

from petlib.evaluation.tables import format_table
from petlib.research.bench.cells import percent
from petlib.research.bench.settings import Settings
from petlib.training import engine, rundir
from petlib.training.config import SAMPLE_SETTINGS, TrainConfig

__all__ = ["section_epoch", "profile_fit"]

#: The parts of an epoch, in the order the table shows them.
PARTS = ("loader wait", "augment", "train steps", "validation", "kept checkpoint", "last checkpoint",
         "history", "curves PNG", "card")


class _Clock:
    """Seconds per (epoch, part), added up by the timed wrappers below."""

    def __init__(self) -> None:
        self.epoch = 0
        self.seconds: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def timed(self, part: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[self.epoch][part] += time.perf_counter() - start
        return wrapper

    def loader(self, loader: Any) -> Any:
        """``loader`` with the time blocked on each next batch counted as "loader wait"."""
        clock = self

        class Timed:
            def __getattr__(self, name: str) -> Any:
                return getattr(loader, name)

            def __len__(self) -> int:
                return len(loader)

            def __iter__(self) -> Iterator[Any]:
                iterator = iter(loader)
                while True:
                    start = time.perf_counter()
                    try:
                        batch = next(iterator)
                    except StopIteration:
                        return
                    finally:
                        clock.seconds[clock.epoch]["loader wait"] += time.perf_counter() - start
                    yield batch

        return Timed()


def profile_fit(config: TrainConfig) -> tuple[list[dict[str, float]], dict[int, dict[str, float]]]:
    """Train ``config`` with every part of each epoch timed; the history and seconds per (epoch, part).

    Training steps are ``train_one_epoch``'s time less the loader wait and augmentation inside it.
    """
    clock = _Clock()
    real_loaders, real_train = engine.make_loaders, engine.train_one_epoch
    real_save = rundir.save_checkpoint

    def make_loaders(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {mode: clock.loader(loader) for mode, loader in real_loaders(*args, **kwargs).items()}

    def train_one_epoch(*args: Any, **kwargs: Any) -> float:
        clock.epoch += 1
        if kwargs.get("augment") is not None:
            kwargs["augment"] = clock.timed("augment", kwargs["augment"])
        return clock.timed("train steps", real_train)(*args, **kwargs)

    def save_checkpoint(checkpoint: dict[str, Any], path: Any) -> Any:
        part = "last checkpoint" if "optimizer_state" in checkpoint else "kept checkpoint"
        return clock.timed(part, real_save)(checkpoint, path)

    patches = [
        mock.patch.object(engine, "make_loaders", make_loaders),
        mock.patch.object(engine, "train_one_epoch", train_one_epoch),
        mock.patch.object(engine, "evaluate", clock.timed("validation", engine.evaluate)),
        mock.patch.object(rundir, "save_checkpoint", save_checkpoint),
        mock.patch.object(rundir, "write_history", clock.timed("history", rundir.write_history)),
        mock.patch.object(rundir.CurvesPNG, "update", _method(clock, "curves PNG", rundir.CurvesPNG.update)),
        mock.patch.object(rundir.RunFiles, "write_card", _method(clock, "card", rundir.RunFiles.write_card)),
    ]
    with ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        result = engine.fit(config, progress=False, log=None)
    for seconds in clock.seconds.values():  # the loader wait and augmentation happened inside the steps
        seconds["train steps"] -= seconds["loader wait"] + seconds["augment"]
    return result.history, clock.seconds


def _method(clock: _Clock, part: str, function: Callable[..., Any]) -> Callable[..., Any]:
    timed = clock.timed(part, function)

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return timed(self, *args, **kwargs)
    return method


def section_epoch(s: Settings, print_: Callable[[str], None]) -> None:
    """Epochs of ``fit`` for each network at the main job's settings, each part of an epoch timed."""
    print_(f"## Where an epoch goes ({s.device.type}; the main job's settings on the shipped sample)\n")
    print_("Seconds per part of each epoch of `fit` as `make run` trains (validation with flip TTA; files "
           "written by the main process). Epoch 1 includes decoding the images into the cache. Curves are "
           "redrawn at most once a minute and at the end; without validation the kept checkpoint is written "
           "once, at the end.\n")
    for model in s.models:
        settings = SAMPLE_SETTINGS.get(model, {})
        with tempfile.TemporaryDirectory() as out:
            config = replace(s.config, model=model, data_path=str(s.data_path), out_dir=out, device=str(s.device),
                             **{**settings, "epochs": s.epochs, "image_size": s.epoch_size or settings["image_size"],
                                **({"subset": 8, "batch_size": s.epoch_batch_size} if s.epoch_size else {})})
            history, seconds = profile_fit(config)
        rows = []
        for row in history:
            parts = seconds[row["epoch"]]
            # The history's seconds are training and validation; the files are written after them.
            total = row["seconds"] + sum(parts.get(p, 0.0) for p in PARTS[4:])
            rows.append([row["epoch"], f"{total:.1f}"]
                        + [f"{parts.get(p, 0.0):.2f} ({percent(parts.get(p, 0.0) / total)})" for p in PARTS])
        print_(f"{model}, {config.image_size} px, batch {config.batch_size}:\n")
        print_(format_table(rows, ["epoch", "epoch s", *PARTS], markdown=True) + "\n")
