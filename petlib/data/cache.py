"""The decode-once cache of a split: every item decoded and resized once, then only copied.

A split becomes one ``(N, 4, H, W)`` uint8 array -- R, G, B planes then the trimap, so an
item's image is one contiguous block, copied into a batch without transposing. It lives in
memory (:meth:`DecodedCache.in_memory`) or in a memory-mapped ``.npy`` file that later runs
reuse and processes share (:meth:`DecodedCache.on_disk`). The file's name carries a key that
hashes everything the arrays depend on (:func:`cache_key`), so a changed image size or file
list builds a new file instead of reusing a stale one.

:class:`~petlib.data.OxfordPetSegmentation` builds one with ``cache=True`` or ``cache="disk"``.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from petlib._io import chmod_as_new_file, stderr_is_interactive

__all__ = ["CACHE_VERSION", "DecodedCache", "cache_key", "fill", "user_cache_dir"]

# Bump when decoding or the cache layout changes, so that old disk caches are not reused.
CACHE_VERSION = 2

# Item index -> image uint8 (H, W, 3) and trimap uint8 (H, W), resized to the cache's size.
Decode = Callable[[int], tuple[np.ndarray, np.ndarray]]


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/petlib`` (default ``~/.cache/petlib``): where a cache goes when the data's folder is read-only."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "petlib"


def cache_key(files: Sequence[tuple[str, Path, Path]], size: tuple[int, int]) -> str:
    """A hash of everything the cached arrays depend on: the cache version, the size, and each
    item's name and its image's and trimap's sizes and modification times.

    Args:
        files: ``(name, image file, trimap file)`` of every item, in order.
        size: ``(H, W)``.
    """
    stats = []
    for name, image_file, trimap_file in files:
        image_stat, trimap_stat = os.stat(image_file), os.stat(trimap_file)
        stats.append([name, image_stat.st_size, image_stat.st_mtime_ns, trimap_stat.st_size, trimap_stat.st_mtime_ns])
    blob = json.dumps([CACHE_VERSION, list(size), stats]).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


def fill(out: np.ndarray, decode: Decode, description: str) -> np.ndarray:
    """Decode every item into ``out`` ``(N, 4, H, W)`` uint8 and return it."""
    # PIL releases the GIL while decoding and resizing, so threads use every core.
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        items = pool.map(decode, range(len(out)))
        # delay: no progress bar for builds that finish within a couple of seconds; none at
        # all into a log file, which would keep every redraw.
        progress = tqdm(items, total=len(out), desc=description, leave=False, delay=2,
                        disable=not stderr_is_interactive())
        for i, (image, trimap) in enumerate(progress):
            out[i, :3] = image.transpose(2, 0, 1)
            out[i, 3] = trimap
    return out


def _open(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The memory-mapped cache at ``path``, or ``None`` if absent or unusable (then rebuilt)."""
    if not path.is_file():
        return None
    try:
        array = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    if array.shape != shape or array.dtype != np.uint8:
        return None
    return array


def _build_file(folder: Path, filename: str, shape: tuple[int, ...], decode: Decode, description: str) -> Path | None:
    """Build the cache file ``folder/filename``; ``None`` if the folder cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=folder, prefix=f".{filename}.", suffix=".tmp")
        os.close(fd)
    except OSError:
        return None  # read-only or not a folder
    try:
        # Each process builds its own temp file and renames it into place atomically:
        # two builders at once both end with a complete file, the last rename wins.
        out = np.lib.format.open_memmap(temp_name, mode="w+", dtype=np.uint8, shape=shape)
        fill(out, decode, description)
        out.flush()
        del out
        chmod_as_new_file(temp_name)  # mkstemp made it 0600; others sharing the data read it too
        os.replace(temp_name, folder / filename)
    finally:
        if os.path.exists(temp_name):
            os.remove(temp_name)
    return folder / filename


class DecodedCache:
    """A split's items decoded once: :attr:`array` ``(N, 4, H, W)`` uint8, and the file it maps (or ``None``).

    Pickled (into a DataLoader worker) without the array when it has a file: each worker
    reopens the file instead of receiving a copy of the whole split.
    """

    def __init__(self, array: np.ndarray | None, path: Path | None = None) -> None:
        self._array = array
        self.path = path

    @classmethod
    def in_memory(cls, decode: Decode, count: int, size: tuple[int, int], description: str) -> DecodedCache:
        """Decode ``count`` items of ``size`` ``(H, W)`` into an array in memory (``count*H*W*4`` bytes)."""
        return cls(fill(np.empty((count, 4, *size), dtype=np.uint8), decode, description))

    @classmethod
    def on_disk(
        cls, decode: Decode, files: Sequence[tuple[str, Path, Path]], size: tuple[int, int], prefix: str,
        folders: Sequence[Path], description: str,
    ) -> DecodedCache:
        """Map ``<folder>/<prefix>_<H>x<W>_<key>.npy`` from the first of ``folders`` that holds it,
        else build it in the first that can be written, else (with a warning) cache in memory.

        ``files`` are ``(name, image file, trimap file)`` per item, for :func:`cache_key`.
        """
        shape = (len(files), 4, *size)
        filename = f"{prefix}_{size[0]}x{size[1]}_{cache_key(files, size)}.npy"
        for folder in folders:
            array = _open(folder / filename, shape)
            if array is not None:
                return cls(array, folder / filename)
        for folder in folders:
            path = _build_file(folder, filename, shape, decode, description)
            if path is not None:
                return cls(np.load(path, mmap_mode="r"), path)
        warnings.warn(
            f"cannot write a cache file in {' or '.join(str(f) for f in folders)}; "
            f"keeping the cache in memory instead ({description})",
            stacklevel=3,
        )
        return cls.in_memory(decode, len(files), size, description)

    @property
    def array(self) -> np.ndarray:
        """``(N, 4, H, W)`` uint8: R, G, B and trimap planes of every item."""
        if self._array is None:  # a worker process that received the cache by pickle
            self._array = np.load(self.path, mmap_mode="r")
        return self._array

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if self.path is not None:
            state["_array"] = None
        return state
