"""The report's epoch section: real epochs of :func:`~petlib.training.engine.fit` on the shipped sample,
split into time waiting for the loader, augmenting, and the rest."""
from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from unittest import mock

from torch.utils.data import DataLoader

from petlib.data.transforms import Augment
from petlib.evaluation.tables import format_table
from petlib.research.bench.cells import percent
from petlib.research.bench.harness import PEER_MODEL
from petlib.research.bench.settings import Settings
from petlib.training import engine

__all__ = ["section_epoch"]


class _TimedIterable:
    """A loader that adds the time spent waiting for each batch to ``waits`` (one entry per pass)."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader
        self.waits: list[float] = []

    def __getattr__(self, name: str) -> Any:  # sampler, dataset, ... of the wrapped loader
        return getattr(self.loader, name)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        waited = 0.0
        iterator = iter(self.loader)
        while True:
            start = time.perf_counter()
            try:
                batch = next(iterator)
            except StopIteration:
                self.waits.append(waited + time.perf_counter() - start)
                return
            waited += time.perf_counter() - start
            yield batch


def section_epoch(s: Settings, print_: Callable[[str], None]) -> None:
    """Real epochs of ``fit`` on the shipped sample, with the loaders and the augmentation timed."""
    timed: dict[str, _TimedIterable] = {}
    augment_seconds: list[float] = []
    setup: list[float] = []
    # fit builds its loaders through engine.make_loaders (a dict of loaders by mode); should it
    # call data.load_dataset directly instead (one loader a call), wrap that name in engine.
    builder = "make_loaders" if hasattr(engine, "make_loaders") else "load_dataset"
    real_builder = getattr(engine, builder)

    def wrap(loader: Any) -> _TimedIterable:
        mode = getattr(getattr(loader, "dataset", None), "mode", f"loader {len(timed)}")
        timed[mode] = _TimedIterable(loader)
        return timed[mode]

    def timed_builder(*args, **kwargs):
        start = time.perf_counter()
        loaders = real_builder(*args, **kwargs)
        setup.append(time.perf_counter() - start)  # includes decoding the images into the cache
        if isinstance(loaders, dict):
            return {mode: wrap(loader) for mode, loader in loaders.items()}
        return wrap(loaders)

    class TimedAugment(Augment):
        def __call__(self, images, masks, generator=None):
            start = time.perf_counter()
            result = super().__call__(images, masks, generator)
            augment_seconds.append(time.perf_counter() - start)
            return result

    model = PEER_MODEL
    with tempfile.TemporaryDirectory() as out:
        config = replace(s.config, model=model, data_path=str(s.data_path), image_size=s.epoch_size,
                         batch_size=s.epoch_batch_size, epochs=s.epochs, out_dir=out, device=str(s.device),
                         cache=True, validate=True)  # an epoch as the notebooks run it: train, then validate
        # Wrap fit's own loaders and augmentation, so that what is timed is a real epoch of fit.
        with mock.patch.object(engine, builder, timed_builder), mock.patch.object(engine, "Augment", TimedAugment):
            result = engine.fit(config, progress=False, log=None)
    steps = len(timed["train"])
    print_(f"## Epochs of `fit` ({model}, {s.epoch_size} px, batch {config.batch_size}, "
           f"{len(timed['train'].dataset)} train + {len(timed['valid'].dataset)} valid images, {s.device.type})\n")
    print_(f"Loader wait: time blocked on the next batch (train and validation). The loaders and the "
           f"cache were built once before the first epoch in {sum(setup):.2f} s. Augmentation is timed "
           + ("on the CPU." if s.device.type == "cpu" else "only on the CPU (asynchronous on a GPU).") + "\n")
    rows = []
    for epoch, row in enumerate(result.history):
        wait = timed["train"].waits[epoch] + timed["valid"].waits[epoch]
        aug = sum(augment_seconds[epoch * steps:(epoch + 1) * steps]) if s.device.type == "cpu" else float("nan")
        rows.append([
            row["epoch"], f"{row['seconds']:.2f}", f"{wait:.3f}", percent(wait / row["seconds"]),
            f"{aug:.3f}" if aug == aug else "—", percent(aug / row["seconds"]) if aug == aug else "—",
        ])
    print_(format_table(rows, ["epoch", "epoch s", "loader wait s", "data share", "augment s", "augment share"],
                        markdown=True) + "\n")
