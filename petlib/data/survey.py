"""A survey of the dataset (notebook ``01_explore_data``): its splits, its files, its masks.

:func:`read_splits` and :func:`count_table` count images per species and breed in each split;
:func:`survey_images` reads every image's header to find the files that are not what their
``.jpg`` name says (:func:`odd_images`); :func:`foreground_fractions` measures how much of each
photo the pet fills. :func:`dataset_present` and :func:`is_sample` (from :mod:`petlib.data`) say
what a folder holds.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from petlib.data.dataset import (  # dataset_present and is_sample: re-exported, the notebooks' names
    SplitEntry,
    dataset_present,
    image_file,
    is_sample,
    read_image,
    read_split,
    read_trimap,
    trimap_file,
    trimap_to_mask,
)
from petlib.data.release import SPLITS

__all__ = [
    "dataset_present", "is_sample", "read_splits", "count_by", "count_table", "read_example", "ImageInfo",
    "survey_images", "odd_images", "foreground_fractions",
]


def read_splits(root: str | Path) -> dict[str, list[SplitEntry]]:
    """The entries of every split (``train``, ``valid``, ``test``) under ``root``."""
    return {mode: read_split(root, mode) for mode in SPLITS}


def count_by(entries: Sequence[SplitEntry], key: str) -> dict[str, int]:
    """How many entries have each value of the attribute ``key`` (e.g. ``"species"``), sorted by value."""
    counts = Counter(getattr(entry, key) for entry in entries)
    return dict(sorted(counts.items(), key=lambda item: str(item[0]).lower()))


def count_table(splits: Mapping[str, Sequence[SplitEntry]], key: str) -> list[dict[str, Any]]:
    """Rows for :func:`format_table`: one per value of ``key`` (``"species"`` or ``"breed"``), images per split.

    Each row is ``{key: value, <split>: count, ..., "total": count}``; breeds also get their species.
    """
    values = sorted({getattr(e, key) for entries in splits.values() for e in entries}, key=lambda v: str(v).lower())
    species = {e.breed: e.species for entries in splits.values() for e in entries}
    counts = {mode: count_by(entries, key) for mode, entries in splits.items()}
    rows = []
    for value in values:
        row: dict[str, Any] = {key: value}
        if key == "breed":
            row["species"] = species[value]
        row.update({mode: counts[mode].get(value, 0) for mode in splits})
        row["total"] = sum(counts[mode].get(value, 0) for mode in splits)
        rows.append(row)
    return rows


def read_example(root: str | Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The photo ``(H, W, 3)`` uint8 (as RGB, whatever the file holds) and trimap ``(H, W)`` uint8 of ``name``."""
    root = Path(root)
    image = np.asarray(read_image(image_file(root, name)))
    return image, read_trimap(trimap_file(root, name))


@dataclass(frozen=True)
class ImageInfo:
    """What an image file really is, from its header.

    Attributes:
        name: file stem.
        format: what Pillow detects from the bytes (``"JPEG"``, ``"GIF"``, ``"PNG"``, ...).
        mode: Pillow's pixel mode (``"RGB"``, ``"L"`` = grayscale, ``"CMYK"``, ``"RGBA"``, ``"P"``).
        width, height: size in pixels.
        listed: whether a split file names it (the release holds a few images none does).
    """

    name: str
    format: str
    mode: str
    width: int
    height: int
    listed: bool

    @property
    def odd(self) -> bool:
        """Not an RGB JPEG, whatever its ``.jpg`` name says."""
        return self.format != "JPEG" or self.mode != "RGB"


def survey_images(root: str | Path, workers: int = 8) -> list[ImageInfo]:
    """Format, mode and size of every ``images/*.jpg`` under ``root``, sorted by name.

    Reads headers only (no decoding), so the full release takes seconds.
    """
    root = Path(root)
    listed = {entry.name for entries in read_splits(root).values() for entry in entries}
    paths = sorted((root / "images").glob("*.jpg"))

    def info(path: Path) -> ImageInfo:
        with Image.open(path) as image:
            return ImageInfo(path.stem, image.format or "?", image.mode, image.width, image.height,
                             path.stem in listed)

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(info, paths))


def odd_images(infos: Sequence[ImageInfo]) -> list[ImageInfo]:
    """The images that are not RGB JPEGs (GIF or PNG content, grayscale, CMYK, ...)."""
    return [info for info in infos if info.odd]


def foreground_fractions(root: str | Path, entries: Sequence[SplitEntry], workers: int = 8) -> np.ndarray:
    """Fraction of pet pixels (trimap 1 or 3) in each entry's full-resolution trimap, ``(N,)`` float."""
    def fraction(entry: SplitEntry) -> float:
        return float(trimap_to_mask(read_trimap(trimap_file(root, entry.name))).mean())

    with ThreadPoolExecutor(workers) as pool:
        return np.array(list(pool.map(fraction, entries)), dtype=np.float64)
