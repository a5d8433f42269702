"""The report's data-loader section: images/second from JPEGs and from the decode-once cache,
alone and followed by the default augmentation, against what an H100 would need."""
from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import DataLoader, RandomSampler

from ..data import OxfordPetSegmentation
from ..tables import format_table
from ..transforms import Augment
from .cells import rate, ratio
from .flops import A100_BF16_DENSE_FLOPS, A100_RESNET50_AMP_IMAGES_S, H100_BF16_DENSE_FLOPS, resnet50_training_flops
from .settings import Settings

__all__ = ["section_loader"]


def _loader(dataset: OxfordPetSegmentation, batch_size: int, num_samples: int, num_workers: int) -> DataLoader:
    """``num_samples`` random images a pass, in batches, as make_loaders builds a training loader."""
    sampler = RandomSampler(dataset, replacement=True, num_samples=num_samples, generator=torch.Generator().manual_seed(0))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=True,
                      persistent_workers=num_workers > 0)


def _time_loader(loader: DataLoader, augment: Augment | None) -> float:
    """Images/second of one pass over ``loader`` (each batch augmented on the CPU, if given)."""
    start = time.perf_counter()
    count = 0
    for batch in loader:
        if augment is not None:
            images, masks = batch["image"], batch["mask"]
            if images.dtype == torch.uint8:  # as engine.to_device converts them
                images, masks = images.float().div_(255), masks.float()
            augment(images, masks)
        count += batch["image"].shape[0]
    return count / (time.perf_counter() - start)


def section_loader(s: Settings, train_flops: float | None, print_: Callable[[str], None]) -> None:
    size, batch_size = s.loader_size, s.loader_batch_size
    print_(f"## Data loader ({size} px, batch {batch_size}, training split of `{s.data_path}`)\n")
    # The disk cache goes to <root>/.cache: give it a throw-away root that links to the data,
    # so that the benchmark never writes beside the user's data (even when it is killed).
    scratch = tempfile.TemporaryDirectory(prefix="petlib-bench-")
    linked = Path(scratch.name)
    for name in ("images", "annotations"):
        (linked / name).symlink_to((s.data_path / name).resolve(), target_is_directory=True)
    sources = []  # (label, dataset, set-up seconds, worker processes)
    for label, root, cache, dtype, workers in [
        ("JPEG: decode + resize every time", s.data_path, False, torch.uint8, 0),
        ("cache in memory (uint8, as `fit`)", s.data_path, True, torch.uint8, 0),
        ("cache on disk, memory-mapped (uint8)", linked, "disk", torch.uint8, 0),
        ("cache in memory, float32 items", s.data_path, True, torch.float32, 0),
        ("cache in memory (uint8), 2 worker processes", s.data_path, True, torch.uint8, 2),
    ]:
        start = time.perf_counter()
        dataset = OxfordPetSegmentation(root, "train", image_size=size, cache=cache, dtype=dtype)
        sources.append((label, dataset, time.perf_counter() - start, workers))
    described = [(label, setup, workers) for label, _, setup, workers in sources]
    loaders: list[tuple[DataLoader, DataLoader]] = []
    try:
        augment = Augment()
        # Images a pass: about s.seconds' worth, from a short probe of each source.
        probe_rates = []
        for _, dataset, _, workers in sources:
            probe = _loader(dataset, batch_size, (16 if workers else 2) * batch_size, workers)
            _time_loader(probe, None)  # starts the workers
            probe_rates.append(_time_loader(probe, None))
            del probe
        probe_aug = _time_loader(_loader(sources[1][1], batch_size, 2 * batch_size, 0), augment)
        for (_, dataset, _, workers), probe_rate in zip(sources, probe_rates):
            alone = max(2, round(s.seconds * probe_rate / batch_size)) * batch_size
            augmented = max(2, round(s.seconds * min(probe_rate, probe_aug) / batch_size)) * batch_size
            pair = (_loader(dataset, batch_size, alone, workers), _loader(dataset, batch_size, augmented, workers))
            for loader in pair:
                _time_loader(loader, None)  # start the workers, touch the pages
            loaders.append(pair)
        alone_runs: list[list[float]] = [[] for _ in sources]
        augmented_runs: list[list[float]] = [[] for _ in sources]
        for _ in range(s.repeats):
            for i, (loader, _) in enumerate(loaders):
                alone_runs[i].append(_time_loader(loader, None))
            for i, (_, loader) in enumerate(loaders):
                augmented_runs[i].append(_time_loader(loader, augment))
    finally:
        del loaders  # stops the worker processes
        sources.clear()
        scratch.cleanup()  # removes the links, not what they point to
    rates = [statistics.median(r) for r in alone_runs]
    augmented = [statistics.median(r) for r in augmented_runs]
    rows = [
        [label, workers, f"{setup:.2f}", rate(rates[i]), ratio(rates[i], rates[0]),
         rate(augmented[i]), ratio(augmented[i], augmented[0])]
        for i, (label, setup, workers) in enumerate(described)
    ]
    print_(format_table(rows, ["source", "workers", "set-up s", "loader img/s", "vs JPEG",
                               "+ Augment() on CPU img/s", "vs JPEG"], markdown=True) + "\n")
    print_("Set-up: building the dataset, which for a cache decodes every image once. In training, "
           "`Augment()` runs on the batch on the training device (on a GPU after the copy), so there "
           "the loader's own rate is what must keep the GPU fed.\n")
    if train_flops:
        bound = H100_BF16_DENSE_FLOPS / train_flops
        resnet50 = resnet50_training_flops()
        estimate = (A100_RESNET50_AMP_IMAGES_S * resnet50 / train_flops
                    * H100_BF16_DENSE_FLOPS / A100_BF16_DENSE_FLOPS)
        print_(f"Feeding an H100 (not measured here). A ResNet34-UNet training step costs "
               f"{train_flops / 1e9:.1f} GFLOP per {size}-px image (counted above). (a) Upper bound: at "
               f"the H100 SXM's dense BF16 peak of {H100_BF16_DENSE_FLOPS / 1e12:.0f} TFLOP/s (NVIDIA "
               f"datasheet) no H100 trains faster than {bound:,.0f} images/s. (b) Estimate: NVIDIA's "
               f"published {A100_RESNET50_AMP_IMAGES_S:,} img/s for ResNet-50 mixed-precision training on "
               f"one A100 (DeepLearningExamples) is {A100_RESNET50_AMP_IMAGES_S * resnet50 / 1e12:.0f} TFLOP/s "
               f"({resnet50 / 1e9:.1f} GFLOP per image, counted the same way); at that share of the peak "
               f"an H100 would train about {estimate:,.0f} images/s. The in-memory cache delivers "
               f"{rate(rates[1])} images/s in one process ({rates[1] / estimate:.1f}x the estimate, "
               f"{rates[1] / bound:.2f}x the bound) and {rate(rates[4])} with 2 workers "
               f"({rates[4] / estimate:.1f}x, {rates[4] / bound:.2f}x).")
    print_("")
