"""The report's data-loader section, at real scale: images/second from JPEGs (in process, with 4
worker processes and with one per core, pinned memory where there is a GPU to pin for) and from
the decode-once cache, on the whole shipped sample and on a synthetic full-size set; against
what an H100 would need, and the GPU's data wait from an earlier GPU report, where one exists.

The synthetic set (:func:`build_synthetic_full`) is ``N`` images (7,390 by default, the full
dataset's count) copied, under new names, from full-size originals: the Oxford-IIIT Pet images
at their real sizes (mostly 500x375 and 500x333). Sources smaller than that (the shipped sample
is downsized to 256 px) are first scaled up to 500 px on the long side, so that every JPEG
decodes at the real dataset's typical size.
"""
from __future__ import annotations

import os
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, RandomSampler

from petlib.data.dataset import OxfordPetSegmentation, read_split
from petlib.data.transforms import Augment
from petlib.evaluation.tables import format_table
from petlib.research.bench.cells import rate, rate_cell, rate_spread, ratio_spread, spread_cell
from petlib.research.bench.flops import (
    A100_BF16_DENSE_FLOPS,
    A100_RESNET50_AMP_IMAGES_S,
    H100_BF16_DENSE_FLOPS,
    resnet50_training_flops,
)
from petlib.research.bench.settings import Settings

__all__ = ["FULL_DATASET_IMAGES", "SHARED_ORIGINALS", "whole_split_root", "build_synthetic_full",
           "gpu_data_wait", "section_loader"]

#: Images in the full Oxford-IIIT Pet dataset.
FULL_DATASET_IMAGES = 7390
#: Full-size originals of the shipped sample, where this project's machines keep them.
SHARED_ORIGINALS = Path("/work/shared/data/oxford-iiit-pet-sample")
#: The real dataset's typical long side: sources smaller than MIN_LONG_SIDE are scaled up to it.
TYPICAL_LONG_SIDE, MIN_LONG_SIDE = 500, 400
#: The split whose file lists every image of a root made by this module.
ALL = "test"


def _split_lines(root: Path) -> list[str]:
    """The lines of trainval.txt and test.txt (every image the dataset's splits name)."""
    lines = []
    for name in ("trainval.txt", "test.txt"):
        path = root / "annotations" / name
        if path.is_file():
            lines += [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return lines


def whole_split_root(data_path: Path, out: Path) -> Path:
    """A root under ``out`` whose ``test`` split is every image of ``data_path`` (trainval and
    test): links to its images and trimaps, and a split file of them all. Caches go to ``out``."""
    read_split(data_path, "train")  # a clear error where there is no dataset
    root = out / "whole"
    (root / "annotations").mkdir(parents=True)
    (root / "images").symlink_to((data_path / "images").resolve(), target_is_directory=True)
    (root / "annotations" / "trimaps").symlink_to((data_path / "annotations" / "trimaps").resolve(),
                                                  target_is_directory=True)
    (root / "annotations" / f"{ALL}.txt").write_text("\n".join(_split_lines(data_path)) + "\n")
    return root


@dataclass(frozen=True)
class SyntheticSet:
    root: Path
    images: int
    sources: int
    upscaled: int  # sources scaled up to TYPICAL_LONG_SIDE
    median_size: tuple[int, int]  # (width, height) of the images' median area
    megabytes: float


def build_synthetic_full(source: Path, count: int, out: Path) -> SyntheticSet:
    """``count`` images at their real sizes under ``out/synthetic``, copied round-robin from the
    images ``source``'s splits list (see the module docstring); its ``test`` split lists them all."""
    from PIL import Image

    lines = _split_lines(source)
    if not lines:
        raise ValueError(f"{source} lists no images")
    root = out / "synthetic"
    images, trimaps, staged = root / "images", root / "annotations" / "trimaps", out / "staged"
    for folder in (images, trimaps, staged):
        folder.mkdir(parents=True)
    def paths(line: str) -> tuple[Path, Path]:
        name = line.split()[0]
        return source / "images" / f"{name}.jpg", source / "annotations" / "trimaps" / f"{name}.png"

    def long_side(path: Path) -> int:
        with Image.open(path) as image:
            return max(image.size)

    # A downsized copy (every image under MIN_LONG_SIDE, as the shipped sample): scale every
    # image back up to the real dataset's typical size. Real originals are copied as they are,
    # small ones included: the real dataset has those too.
    downsized = max(long_side(paths(line)[0]) for line in lines) < MIN_LONG_SIDE
    files, sizes, upscaled = [], [], 0
    for line in lines:
        name = line.split()[0]
        image_path, trimap_path = paths(line)
        with Image.open(image_path) as image:
            size = image.size
            if downsized:
                scale = TYPICAL_LONG_SIDE / max(size)
                size = (round(size[0] * scale), round(size[1] * scale))
                image_path, upscaled = staged / f"{name}.jpg", upscaled + 1
                image.convert("RGB").resize(size, Image.Resampling.BICUBIC).save(image_path, quality=90)
                with Image.open(trimap_path) as trimap:
                    trimap_path = staged / f"{name}.png"
                    trimap.resize(size, Image.Resampling.NEAREST).save(trimap_path)
        files.append((line, image_path, trimap_path))
        sizes.append(size)
    split, total = [], 0
    for i in range(count):
        line, image_path, trimap_path = files[i % len(files)]
        name, rest = line.split(maxsplit=1)
        new = f"{name}-{i:05d}"  # the breed is what precedes the last "_": unchanged
        shutil.copyfile(image_path, images / f"{new}.jpg")
        shutil.copyfile(trimap_path, trimaps / f"{new}.png")
        total += os.path.getsize(images / f"{new}.jpg")
        split.append(f"{new} {rest}")
    (root / "annotations" / f"{ALL}.txt").write_text("\n".join(split) + "\n")
    shutil.rmtree(staged)
    median = sorted(sizes, key=lambda wh: wh[0] * wh[1])[len(sizes) // 2]
    return SyntheticSet(root, count, len(files), upscaled, median, total / 2**20)


def _loader(dataset: OxfordPetSegmentation, batch_size: int, num_samples: int, num_workers: int,
            pin_memory: bool) -> DataLoader:
    """``num_samples`` random images a pass, in batches, as a training loader draws them."""
    sampler = RandomSampler(dataset, replacement=True, num_samples=num_samples, generator=torch.Generator().manual_seed(0))
    return _QuietLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=True,
                        pin_memory=pin_memory, persistent_workers=num_workers > 0)


class _QuietLoader(DataLoader):
    """A DataLoader that does not warn about more workers than cores: 4 workers on a 2-core machine
    is one of the rows asked for (the check runs on every new iterator)."""

    def check_worker_number_rationality(self) -> None:
        pass


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


def loader_rows(cpu_count: int) -> list[tuple[str, str | bool, int, bool]]:
    """(label, cache, worker processes, augment on the CPU) of each row: the JPEG path in
    process, with 4 workers and with one per core; the caches; the cache followed by Augment()."""
    rows: list[tuple[str, str | bool, int, bool]] = [("JPEG: decode + resize every time", False, 0, False)]
    for workers in sorted({4, cpu_count}):
        rows.append((f"JPEG, {workers} worker processes" + (" (one per core)" if workers == cpu_count else ""),
                     False, workers, False))
    rows += [
        ("cache in memory (uint8, as `fit`)", "memory", 0, False),
        ("cache on disk, memory-mapped (uint8)", "disk", 0, False),
        (f"cache in memory, {cpu_count} worker processes", "memory", cpu_count, False),
        ("cache in memory + `Augment()` on the CPU", "memory", 0, True),
    ]
    return rows


def _row_index(prefix: str) -> int:
    return next(i for i, row in enumerate(loader_rows(os.cpu_count() or 1)) if row[0].startswith(prefix))


def _measure_and_print(s: Settings, root: Path, print_: Callable[[str], None]) -> list[list[float]]:
    """Time every row of :func:`loader_rows` on ``root``'s ``test`` split, print the table and
    return each row's rates (one a repeat)."""
    size, batch_size = s.loader_size, s.loader_batch_size
    pin = torch.cuda.is_available()
    rows = loader_rows(os.cpu_count() or 1)
    datasets: dict[str | bool, OxfordPetSegmentation] = {}
    setup: dict[str | bool, float] = {}
    for _, cache, _, _ in rows:
        if cache not in datasets:
            start = time.perf_counter()
            datasets[cache] = OxfordPetSegmentation(root, ALL, image_size=size, cache=cache, dtype=torch.uint8)
            setup[cache] = time.perf_counter() - start
    augment = Augment()
    loaders: list[DataLoader] = []
    runs: list[list[float]] = [[] for _ in rows]
    try:
        for _, cache, workers, augmented in rows:
            # Images a pass: about s.seconds' worth, from a short probe of each row.
            probe = _loader(datasets[cache], batch_size, (4 * workers if workers else 2) * batch_size, workers, pin)
            _time_loader(probe, augment if augmented else None)  # starts the workers, touches the pages
            probe_rate = _time_loader(probe, augment if augmented else None)
            del probe
            images = max(2, round(s.seconds * probe_rate / batch_size)) * batch_size
            loader = _loader(datasets[cache], batch_size, images, workers, pin)
            if workers:
                _time_loader(loader, None)  # start its workers
            loaders.append(loader)
        for repeat in range(s.repeats):
            for i in list(range(len(rows)))[:: 1 if repeat % 2 == 0 else -1]:
                runs[i].append(_time_loader(loaders[i], augment if rows[i][3] else None))
    finally:
        loaders.clear()  # stops the worker processes
        datasets.clear()
    seen: set[str | bool] = set()
    table = []
    for i, (label, cache, workers, _) in enumerate(rows):
        table.append([label, workers, "" if cache in seen else f"{setup[cache]:.2f}", rate_cell(rate_spread(runs[i])),
                      "" if i == 0 else spread_cell(ratio_spread(runs[i], runs[0]))])
        seen.add(cache)
    print_(format_table(table, ["source", "workers", "set-up s", "img/s", "vs JPEG in process"], markdown=True) + "\n")
    return runs


def _results_dir() -> Path:
    """``benchmarks/results`` of the source checkout petlib runs from (absent when installed)."""
    return Path(__file__).resolve().parents[3] / "benchmarks" / "results"


def gpu_data_wait(results: Path) -> list[str]:
    """Lines citing the GPU's data wait from earlier GPU reports in ``results``: each report
    whose device is CUDA and which has an epoch table with a "data share" column. Nothing where
    there is none: this is never estimated."""
    lines = []
    for path in sorted(results.glob("*.md")) if results.is_dir() else []:
        text = path.read_text(errors="replace")
        device = re.search(r"^Device: (cuda\S*) \(([^)]*)\)", text, re.MULTILINE)
        heading = re.search(r"^## (Epochs of `fit`.*)$", text, re.MULTILINE)
        if not device or not heading:
            continue
        table = text[heading.end():].split("\n## ", 1)[0]
        header = next((line for line in table.splitlines() if "data share" in line), None)
        if header is None:
            continue
        columns = [c.strip() for c in header.strip("|").split("|")]
        shares = []
        for line in table.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if line.startswith("|") and len(cells) == len(columns) and cells[0].isdigit():
                shares.append(f"epoch {cells[0]}: {cells[columns.index('data share')]} "
                              f"of {cells[columns.index('epoch s')]} s")
        if shares:
            try:
                shown = path.relative_to(results.parents[1])
            except ValueError:
                shown = path
            lines.append(f"GPU data wait, from an earlier report, not measured in this run: `{shown}` "
                         f"({device.group(2)}; {heading.group(1)}): " + ", ".join(shares) + ".\n")
    return lines


def section_loader(s: Settings, train_flops: float | None, print_: Callable[[str], None]) -> None:
    size, batch_size = s.loader_size, s.loader_batch_size
    pin = torch.cuda.is_available()
    print_(f"## Data loader at real scale ({size} px, batch {batch_size}, uint8 items as `fit` uses them)\n")
    print_(f"Each set is read in random order with replacement, about {s.seconds:g} s a row per repeat; rates are "
           f"median (min-max) of {s.repeats} repeats, rows in turn inside each repeat; ratios are against the JPEG "
           f"path in this process, repeat by repeat. Pinned memory: "
           + ("on (`pin_memory=True`)." if pin else "off: there is no GPU to pin for (`pin_memory` needs one).")
           + f" Worker processes: 4, and one per core ({os.cpu_count()}). Set-up: building the dataset, which for "
           f"a cache decodes every image once (threads on every core).\n")
    scratch = tempfile.TemporaryDirectory(prefix="petlib-bench-")
    results: dict[str, list[float]] = {}
    try:
        sets = [("the whole shipped sample", whole_split_root(s.data_path, Path(scratch.name) / "sample"), None)]
        if s.synthetic_full > 0:
            source = s.synthetic_source or (SHARED_ORIGINALS if (SHARED_ORIGINALS / "images").is_dir() else s.data_path)
            start = time.perf_counter()
            synthetic = build_synthetic_full(source, s.synthetic_full, Path(scratch.name) / "full")
            built = time.perf_counter() - start
            sets.append(("a synthetic full-size set", synthetic.root,
                         (synthetic, source, built)))
        for title, root, info in sets:
            count = len(_split_lines(root))
            print_(f"### {title[0].upper() + title[1:]} ({count:,} images)\n")
            if info is not None:
                synthetic, source, built = info
                print_(f"Copied round-robin from the {synthetic.sources} images of `{source}`"
                       + (f" ({synthetic.upscaled} of them scaled up to {TYPICAL_LONG_SIDE} px on the long side first)"
                          if synthetic.upscaled else " at their original sizes")
                       + f": median image {synthetic.median_size[0]}x{synthetic.median_size[1]}, "
                       f"{synthetic.megabytes:,.0f} MB of JPEGs, built in {built:.1f} s (not counted below). The "
                       f"decoded cache holds {count * 4 * size * size / 2**30:.2f} GiB at {size} px.\n")
            else:
                print_(f"`{s.data_path}` (its trainval and test images). Its JPEGs are as shipped.\n")
            rates = _measure_and_print(s, root, print_)
            results[title] = rates
    finally:
        scratch.cleanup()  # the copies and links, not what the links point to
    cache_rates = {title: statistics.median(rates[_row_index("cache in memory (uint8")]) for title, rates in results.items()}
    print_("In training, `Augment()` runs on the batch on the training device (on a GPU after the copy), so there "
           "the loader's own rate is what must keep the GPU fed.\n")
    for line in gpu_data_wait(_results_dir()):
        print_(line)
    if train_flops:
        bound = H100_BF16_DENSE_FLOPS / train_flops
        resnet50 = resnet50_training_flops()
        estimate = (A100_RESNET50_AMP_IMAGES_S * resnet50 / train_flops
                    * H100_BF16_DENSE_FLOPS / A100_BF16_DENSE_FLOPS)
        cached = "; ".join(f"{rate(r)} images/s on {title} ({r / estimate:.1f}x the estimate, {r / bound:.2f}x the bound)"
                           for title, r in cache_rates.items())
        print_(f"Feeding an H100 (not measured here). A ResNet34-UNet training step costs "
               f"{train_flops / 1e9:.1f} GFLOP per {size}-px image (counted by `torch.utils.flop_counter`). "
               f"(a) Upper bound: at the H100 SXM's dense BF16 peak of {H100_BF16_DENSE_FLOPS / 1e12:.0f} TFLOP/s "
               f"(NVIDIA datasheet) no H100 trains faster than {bound:,.0f} images/s. (b) Estimate: NVIDIA's "
               f"published {A100_RESNET50_AMP_IMAGES_S:,} img/s for ResNet-50 mixed-precision training on one A100 "
               f"(DeepLearningExamples) is {A100_RESNET50_AMP_IMAGES_S * resnet50 / 1e12:.0f} TFLOP/s "
               f"({resnet50 / 1e9:.1f} GFLOP per image, counted the same way); at that share of the peak an H100 "
               f"would train about {estimate:,.0f} images/s. The in-memory cache, one process: {cached}.")
    print_("")
