"""The Oxford-IIIT Pet dataset as binary pet/background segmentation.

Reads the official release layout::

    <root>/images/<name>.jpg                   RGB photos (a few are really GIF, PNG or grayscale)
    <root>/annotations/trimaps/<name>.png      1 = pet, 2 = background, 3 = border
    <root>/annotations/trainval.txt, test.txt  lines like "Abyssinian_100 1 1 1"

and yields, per item, a dict of tensors of one fixed size ``(H, W)``:

- ``image``  float32 ``(3, H, W)`` in [0, 1]. **Not normalised**: the models subtract the
  ImageNet mean and divide by the std inside their ``forward``, the one place where that
  happens, so that images from here, from a notebook or from a user's file all go in the same.
- ``mask``   float32 ``(1, H, W)``, 1 = pet (trimap 1 and 3), 0 = background (trimap 2).
- ``trimap`` uint8   ``(1, H, W)``, the trimap itself (1, 2, 3), for plots and border-aware metrics.
- ``index``  int, the position in :attr:`OxfordPetSegmentation.entries`.

Splits follow segmentation_models_pytorch so that numbers compare: ``test`` is the official
``test.txt``; ``train`` and ``valid`` share ``trainval.txt``, ``valid`` taking every line whose
0-based index is a multiple of 10 and ``train`` the rest.

With ``cache=True`` (memory) or ``cache="disk"`` every item is decoded and resized once into
uint8 arrays; after that an item costs a copy, not a JPEG decode. See
:class:`OxfordPetSegmentation` for where the disk cache lives.

The full dataset (~800 MB) is fetched with ``python -m petlib.data download --data_path <root>``;
a 300-image sample (three breeds, downsized) ships with the repository at
:data:`SAMPLE_ROOT`, so that everything runs offline.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from ._files import chmod_as_new_file
from .cli import argument_parser, option, run_main, stderr_is_interactive

__all__ = [
    "DEFAULT_ROOT",
    "SAMPLE_ROOT",
    "MODES",
    "MIRRORS",
    "RESOURCES",
    "DatasetNotFoundError",
    "DownloadError",
    "SplitEntry",
    "OxfordPetSegmentation",
    "read_split",
    "read_image",
    "read_trimap",
    "trimap_to_mask",
    "evenly_spaced",
    "load_dataset",
    "download",
    "main",
]

DEFAULT_ROOT = Path("dataset/oxford-iiit-pet")
# The sample lives in the repository, beside the package (absent from a wheel install).
SAMPLE_ROOT = Path(__file__).resolve().parent.parent / "dataset" / "oxford-iiit-pet-sample"
MODES = ("train", "valid", "test")

# Official host first; the mirror serves the same files (same MD5) when the first is down.
MIRRORS = (
    "https://www.robots.ox.ac.uk/~vgg/data/pets/data/",
    "https://thor.robots.ox.ac.uk/datasets/pets/",
)
# (archive name, MD5) of the official release.
RESOURCES = (
    ("images.tar.gz", "5c4f3ee8e5d25df40f4fd59a7f44e54c"),
    ("annotations.tar.gz", "95a8c909bbe2e81eed6a22bccdf3f68f"),
)

_SPECIES = {1: "cat", 2: "dog"}
_TRIMAP_VALUES = (1, 2, 3)
# Bump when decoding or the cache layout changes, so that old disk caches are not reused.
_CACHE_VERSION = 2


class DatasetNotFoundError(FileNotFoundError):
    """The dataset root, one of its folders or its split file does not exist."""


class DownloadError(RuntimeError):
    """No mirror served an archive with the expected MD5."""


def _not_found(root: Path, missing: Path) -> DatasetNotFoundError:
    return DatasetNotFoundError(
        f"Oxford-IIIT Pet not found: {missing.resolve()} does not exist.\n"
        f"Expected {root.resolve()}/images/*.jpg and "
        f"{root.resolve()}/annotations/{{trimaps/*.png, trainval.txt, test.txt}}.\n"
        f"Download the dataset (~800 MB) with:\n"
        f"    python -m petlib.data download --data_path {root}\n"
        f"or use the 300-image sample shipped with petlib: petlib.data.SAMPLE_ROOT ({SAMPLE_ROOT})."
    )


# --------------------------------------------------------------------------- reading files


@dataclass(frozen=True)
class SplitEntry:
    """One line of a split file, e.g. ``Abyssinian_100 1 1 1``.

    Attributes:
        name: file stem shared by the image and its trimap, e.g. ``"american_bulldog_10"``.
        class_id: breed class, 1..37.
        species: ``"cat"`` or ``"dog"``.
        breed: human-readable breed from the name, e.g. ``"american_bulldog"``.
    """

    name: str
    class_id: int
    species: str
    breed: str


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid modes are {', '.join(MODES)}")


def _parse_split_file(path: Path) -> list[SplitEntry]:
    entries = []
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            line = line.strip()
            # list.txt starts with '#' comment lines; blank lines carry nothing.
            if not line or line.startswith("#"):
                continue
            fields = line.split()
            try:
                name, class_id, species_id = fields[0], int(fields[1]), int(fields[2])
                species = _SPECIES[species_id]
            except (IndexError, ValueError, KeyError):
                raise ValueError(
                    f"{path}:{line_number}: expected 'NAME CLASS_ID SPECIES(1=cat,2=dog) BREED_ID', "
                    f"got {line!r}"
                ) from None
            breed = name.rsplit("_", 1)[0]
            entries.append(SplitEntry(name, class_id, species, breed))
    return entries


def read_split(root: str | Path, mode: str) -> list[SplitEntry]:
    """The entries of split ``mode`` under ``root``, in file order.

    ``test`` is ``annotations/test.txt``. ``train`` and ``valid`` split
    ``annotations/trainval.txt`` deterministically, as segmentation_models_pytorch does:
    line ``i`` (0-based) goes to ``valid`` when ``i % 10 == 0`` and to ``train`` otherwise.

    Raises:
        ValueError: unknown ``mode``, or a malformed line.
        DatasetNotFoundError: ``root``, ``images/``, ``annotations/`` or the split file is missing.
    """
    _check_mode(mode)
    root = Path(root)
    for required in (root, root / "images", root / "annotations", root / "annotations" / "trimaps"):
        if not required.is_dir():
            raise _not_found(root, required)
    split_file = root / "annotations" / ("test.txt" if mode == "test" else "trainval.txt")
    if not split_file.is_file():
        raise _not_found(root, split_file)
    entries = _parse_split_file(split_file)
    if mode == "train":
        entries = [e for i, e in enumerate(entries) if i % 10 != 0]
    elif mode == "valid":
        entries = [e for i, e in enumerate(entries) if i % 10 == 0]
    return entries


def read_image(path: str | Path, min_size: tuple[int, int] | None = None) -> Image.Image:
    """Open any image file as RGB, whatever its suffix says.

    The release holds a GIF and an RGBA PNG named ``.jpg``, grayscale and CMYK JPEGs:
    Pillow detects the real format from the bytes and ``convert("RGB")`` unifies them.

    Args:
        path: the image file.
        min_size: ``(H, W)``. If given, a JPEG may be decoded at 1/2, 1/4 or 1/8 scale
            (much faster) as long as both sides stay at least this large.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        OSError: the file is not a readable image; the message names it.
    """
    return _read_image_and_size(path, min_size)[0]


def _read_image_and_size(
    path: str | Path, min_size: tuple[int, int] | None = None
) -> tuple[Image.Image, tuple[int, int]]:
    """:func:`read_image`, plus the file's own ``(width, height)`` (before any reduced decode)."""
    try:
        with Image.open(path) as image:
            full_size = image.size
            if min_size is not None:
                # A no-op for non-JPEG formats. PIL takes (width, height).
                image.draft("RGB", (min_size[1], min_size[0]))
            # convert() forces the full decode inside the `with`, so truncated files fail here.
            return image.convert("RGB"), full_size
    except FileNotFoundError:
        raise
    except (OSError, SyntaxError, ValueError) as err:
        raise OSError(f"cannot read image {path}: {err}") from err


def read_trimap(path: str | Path) -> np.ndarray:
    """Read a trimap PNG as a uint8 ``(H, W)`` array of values 1 (pet), 2 (background), 3 (border).

    Raises:
        ValueError: the file holds other values (or is not a single-channel image),
            naming the file, so that a wrong annotation never trains silently.
    """
    try:
        with Image.open(path) as image:
            if image.mode not in ("L", "P", "I", "I;16"):
                raise ValueError(f"trimap {path} has mode {image.mode}; expected one channel")
            # For "P" images the stored indices are the labels; converting to "L" would map them
            # through the palette instead.
            trimap = np.asarray(image)
    except (FileNotFoundError, ValueError):
        raise
    except (OSError, SyntaxError) as err:
        raise OSError(f"cannot read trimap {path}: {err}") from err
    if trimap.size and (trimap.min() < 1 or trimap.max() > 3):
        found = sorted(set(np.unique(trimap).tolist()) - set(_TRIMAP_VALUES))
        raise ValueError(
            f"trimap {path} holds values {found[:10]} outside {{1, 2, 3}} "
            f"(1 = pet, 2 = background, 3 = border)"
        )
    return trimap.astype(np.uint8)


_Item = TypeVar("_Item")


def evenly_spaced(items: Sequence[_Item], count: int) -> list[_Item]:
    """``count`` items spread over the whole of ``items`` (the first, then every ``len/count``-th).

    Deterministic, and since split files are sorted by breed every breed keeps its share.
    All of ``items`` when ``count >= len(items)``.
    """
    if count >= len(items):
        return list(items)
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]


_Array = TypeVar("_Array", np.ndarray, Tensor)


def trimap_to_mask(trimap: _Array, dtype: torch.dtype = torch.float32) -> _Array:
    """Binary pet mask from a trimap: 1 (pet) and 3 (border) -> 1, 2 (background) -> 0.

    The border counts as pet, as in segmentation_models_pytorch, so that results compare.
    Takes a numpy array or a tensor of trimap values (1, 2, 3; :func:`read_trimap` refuses
    others) of any shape; returns the same kind and shape, float32 (tensors: ``dtype``).
    """
    # Pet and border are odd, background even: on integer trimaps one cheap op, which matters
    # in the cached loader, where this runs on every batch (16x faster than two comparisons).
    if isinstance(trimap, Tensor):
        mask = (trimap == 1) | (trimap == 3) if trimap.is_floating_point() else trimap & 1
        return mask.to(dtype)
    trimap = np.asarray(trimap)
    mask = trimap & 1 if np.issubdtype(trimap.dtype, np.integer) else (trimap == 1) | (trimap == 3)
    return mask.astype(np.float32)


# --------------------------------------------------------------------------- dataset


def _normalise_size(image_size: int | tuple[int, int]) -> tuple[int, int]:
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise ValueError(f"image_size must be a positive int or (height, width), got {image_size!r}")
    return size  # type: ignore[return-value]


def _is_v2_transform(transform: Callable[..., Any]) -> bool:
    """Whether ``transform`` is a torchvision ``transforms.v2`` transform (takes tv_tensors)."""
    from torchvision.transforms import v2

    return isinstance(transform, v2.Transform)


def _user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "petlib"


class OxfordPetSegmentation(Dataset):
    """Oxford-IIIT Pet images with binary pet masks, all resized to one size.

    Args:
        root: folder with ``images/`` and ``annotations/`` (the official layout).
        mode: ``"train"``, ``"valid"`` or ``"test"`` (see :func:`read_split`).
        image_size: output ``S`` or ``(H, W)``. Images are resized bilinearly with
            antialiasing, trimaps with nearest neighbour (labels must not blend).
        transform: optional augmentation of each item, in one of two conventions:

            - a torchvision ``transforms.v2`` transform (``v2.Transform``, e.g.
              ``v2.Compose([v2.RandomHorizontalFlip(), v2.RandomRotation(10)])``), called as
              ``image, mask, trimap = transform(image, mask, trimap)`` with ``image`` a
              ``tv_tensors.Image`` (float32 ``(3, H, W)`` in [0, 1]) and ``mask`` and ``trimap``
              ``tv_tensors.Mask``: every geometric transform moves all three alike (masks with
              nearest neighbour, so labels never blend) and colour transforms touch the image only.
              Pixels it brings in from outside the image (rotation, padding) are background:
              mask 0, trimap 2 (v2 fills masks with 0, which is no trimap value).
            - any other callable ``image, masks = transform(image, masks)`` with ``image``
              float32 ``(3, H, W)`` and ``masks`` float32 ``(2, H, W)`` = mask and trimap stacked.
        cache: ``False`` decodes each item on every access. ``True`` (or ``"memory"``) decodes
            all items once at construction into a uint8 array in memory (``N*H*W*4`` bytes,
            ~0.9 GB for the full train split at 256x256). ``"disk"`` does the same into a
            memory-mapped ``<root>/.cache/<mode>_<H>x<W>_<hash>.npy``, reused by later runs and
            shared by processes; the hash covers the size, the names and the files' sizes and
            times, so a changed size or file list builds a new file. If ``<root>`` is not
            writable the file goes to ``$XDG_CACHE_HOME/petlib`` (default ``~/.cache/petlib``),
            and if that fails too the cache stays in memory, with a warning.
        dtype: ``torch.float32`` (default) gives ``image`` in [0, 1] and ``mask`` as float32.
            ``torch.uint8`` gives ``image`` 0..255 and ``mask`` 0/1 as uint8 straight from the
            cache: a quarter of the bytes to collate and copy to the GPU, for a training loop
            that converts on the device (as :mod:`petlib.engine` does). Not with ``transform``.
        subset: keep only this many items of the split, evenly spaced through it (see
            :func:`evenly_spaced`): the same items every time and every breed represented, for
            tests and quick runs that need speed without a second copy of the data.

    Attributes:
        root, mode, image_size (``(H, W)``), entries (one :class:`SplitEntry` per item),
        cache_path (the disk cache file, or ``None``).

    Raises:
        DatasetNotFoundError: the root, its folders or the split file is missing.
        FileNotFoundError: the split file names an image or trimap that does not exist.
        ValueError: bad ``mode``, ``image_size`` or ``cache``; an empty split file.
    """

    def __init__(
        self,
        root: str | Path,
        mode: str = "train",
        image_size: int | tuple[int, int] = 256,
        transform: Callable[..., tuple[Tensor, ...]] | None = None,
        cache: bool | str = False,
        dtype: torch.dtype = torch.float32,
        subset: int | None = None,
    ) -> None:
        if subset is not None and (isinstance(subset, bool) or not isinstance(subset, int) or subset < 1):
            raise ValueError(f"subset must be a positive number of images or None, got {subset!r}")
        if cache not in (False, True, "memory", "disk"):
            raise ValueError(f"cache must be False, True, 'memory' or 'disk', got {cache!r}")
        if dtype not in (torch.float32, torch.uint8):
            raise ValueError(f"dtype must be torch.float32 or torch.uint8, got {dtype!r}")
        if dtype == torch.uint8 and transform is not None:
            raise ValueError("a transform takes float32 images; use dtype=torch.float32 with a transform")
        self.dtype = dtype
        self.root = Path(root)
        self.mode = mode
        self.image_size = _normalise_size(image_size)
        self.transform = transform
        self._v2_transform = transform is not None and _is_v2_transform(transform)
        self.entries = read_split(self.root, mode)
        if not self.entries:
            raise ValueError(f"the {mode!r} split of {self.root.resolve()} lists no images")
        if subset is not None:
            self.entries = evenly_spaced(self.entries, subset)
        self._check_files_exist()

        self.cache_path: Path | None = None
        # (N, 4, H, W) uint8: R, G, B then the trimap, so one file holds an item. Planes, not
        # pixels: an item's image is one contiguous block, copied to a batch without transposing.
        self._cache_array: np.ndarray | None = None
        if cache == "disk":
            self._cache_array, self.cache_path = self._load_or_build_disk_cache()
        elif cache:
            self._cache_array = self._build_cache(np.empty(self._cache_shape(), dtype=np.uint8))

    def image_path(self, index: int) -> Path:
        """``<root>/images/<name>.jpg`` of item ``index`` (whatever format it really holds)."""
        return self.root / "images" / f"{self.entries[index].name}.jpg"

    def trimap_path(self, index: int) -> Path:
        """``<root>/annotations/trimaps/<name>.png`` of item ``index``."""
        return self.root / "annotations" / "trimaps" / f"{self.entries[index].name}.png"

    def _check_files_exist(self) -> None:
        # os.path.exists is cheap (~µs a file): failing now beats failing mid-epoch.
        missing = [
            str(path.resolve())
            for i in range(len(self.entries))
            for path in (self.image_path(i), self.trimap_path(i))
            if not os.path.exists(path)
        ]
        if missing:
            split_file = "test.txt" if self.mode == "test" else "trainval.txt"
            shown = "\n  ".join(missing[:5]) + ("\n  ..." if len(missing) > 5 else "")
            raise FileNotFoundError(
                f"annotations/{split_file} of {self.root.resolve()} lists {len(missing)} "
                f"missing file(s):\n  {shown}\n"
                f"Re-extract the dataset (python -m petlib.data download --data_path {self.root}) "
                f"or remove those names from the split file."
            )

    def __len__(self) -> int:
        return len(self.entries)

    # ---- decoding

    def _decode(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Image uint8 ``(H, W, 3)`` and trimap uint8 ``(H, W)`` of item ``index``, resized."""
        height, width = self.image_size
        # Decoding a JPEG at a reduced scale is much faster for large photos. Asking for at
        # least twice the target keeps a real antialiased downscale after it: on the real
        # sample this changes pixels by 0.003 (256 px) to 0.01 (128 px) grey levels on average,
        # against 0.02 to 1.2 when drafting straight to the target size.
        image, (file_width, file_height) = _read_image_and_size(
            self.image_path(index), min_size=(2 * height, 2 * width)
        )
        trimap = read_trimap(self.trimap_path(index))
        if (file_height, file_width) != trimap.shape:
            raise ValueError(
                f"image {self.image_path(index)} is {file_width}x{file_height} but its trimap "
                f"{self.trimap_path(index)} is {trimap.shape[1]}x{trimap.shape[0]} (width x height)"
            )
        image = image.resize((width, height), Image.BILINEAR)  # antialiased when shrinking
        trimap_image = Image.fromarray(trimap).resize((width, height), Image.NEAREST)
        # np.array copies: PIL's buffers are read-only, which torch.from_numpy warns about.
        return np.array(image), np.array(trimap_image)

    # ---- cache

    def _cache_shape(self) -> tuple[int, int, int, int]:
        return (len(self.entries), 4, *self.image_size)

    def _build_cache(self, out: np.ndarray) -> np.ndarray:
        """Decode every item into ``out`` ``(N, 4, H, W)`` uint8 and return it."""
        # PIL releases the GIL while decoding and resizing, so threads use every core.
        workers = min(8, os.cpu_count() or 1)
        with ThreadPoolExecutor(workers) as pool:
            items = pool.map(self._decode, range(len(self.entries)))
            desc = f"Caching {self.mode} at {self.image_size[0]}x{self.image_size[1]}"
            # delay: no progress bar for builds that finish within a couple of seconds; none at
            # all into a log file, which would keep every redraw.
            progress = tqdm(items, total=len(self.entries), desc=desc, leave=False, delay=2,
                            disable=not stderr_is_interactive())
            for i, (image, trimap) in enumerate(progress):
                out[i, :3] = image.transpose(2, 0, 1)
                out[i, 3] = trimap
        return out

    def _cache_key(self) -> str:
        """A hash of everything the cached arrays depend on."""
        files = []
        for i, entry in enumerate(self.entries):
            image_stat, trimap_stat = os.stat(self.image_path(i)), os.stat(self.trimap_path(i))
            files.append([entry.name, image_stat.st_size, image_stat.st_mtime_ns,
                          trimap_stat.st_size, trimap_stat.st_mtime_ns])
        blob = json.dumps([_CACHE_VERSION, list(self.image_size), files]).encode()
        return hashlib.sha1(blob).hexdigest()[:16]

    def _load_or_build_disk_cache(self) -> tuple[np.ndarray, Path | None]:
        height, width = self.image_size
        filename = f"{self.mode}_{height}x{width}_{self._cache_key()}.npy"
        folders = [self.root / ".cache", _user_cache_dir()]
        for folder in folders:
            array = self._open_cache_file(folder / filename)
            if array is not None:
                return array, folder / filename
        for folder in folders:
            try:
                folder.mkdir(parents=True, exist_ok=True)
                fd, temp_name = tempfile.mkstemp(dir=folder, prefix=f".{filename}.", suffix=".tmp")
                os.close(fd)
            except OSError:
                continue  # read-only or not a folder: try the next place
            try:
                # Each process builds its own temp file and renames it into place atomically:
                # two builders at once both end with a complete file, the last rename wins.
                out = np.lib.format.open_memmap(temp_name, mode="w+", dtype=np.uint8, shape=self._cache_shape())
                self._build_cache(out)
                out.flush()
                del out
                chmod_as_new_file(temp_name)  # mkstemp made it 0600; others sharing the data read it too
                os.replace(temp_name, folder / filename)
            finally:
                if os.path.exists(temp_name):
                    os.remove(temp_name)
            return np.load(folder / filename, mmap_mode="r"), folder / filename
        warnings.warn(
            f"cannot write a cache file in {folders[0]} or {folders[1]}; "
            f"caching {self.root} {self.mode} in memory instead",
            stacklevel=3,
        )
        return self._build_cache(np.empty(self._cache_shape(), dtype=np.uint8)), None

    def _open_cache_file(self, path: Path) -> np.ndarray | None:
        """The memory-mapped cache at ``path``, or ``None`` if absent or unusable (then rebuilt)."""
        if not path.is_file():
            return None
        try:
            array = np.load(path, mmap_mode="r")
        except (OSError, ValueError):
            return None
        if array.shape != self._cache_shape() or array.dtype != np.uint8:
            return None
        return array

    def _cached(self) -> np.ndarray:
        if self._cache_array is None:  # a worker process that received the dataset by pickle
            self._cache_array = np.load(self.cache_path, mmap_mode="r")
        return self._cache_array

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        # Pickling a memmap would copy the whole array into every DataLoader worker (spawn);
        # each worker reopens the file instead.
        if self.cache_path is not None:
            state["_cache_array"] = None
        return state

    # ---- items

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self.cache_path is not None or self._cache_array is not None:
            item = self._cached()[index]  # (4, H, W) uint8, no decoding
            image_chw, trimap_hw = item[:3], item[3]
        else:
            image_hwc, trimap_hw = self._decode(index)
            image_chw = image_hwc.transpose(2, 0, 1)
        # np.array copies: the item must not share memory with the cache (or be a read-only memmap).
        image = torch.from_numpy(np.array(image_chw))  # (3, H, W) uint8
        trimap = torch.from_numpy(np.array(trimap_hw)).unsqueeze(0)  # (1, H, W) uint8
        if self.dtype == torch.uint8:
            return {"image": image.contiguous(), "mask": trimap_to_mask(trimap, torch.uint8),
                    "trimap": trimap, "index": index}
        image = image.float().div_(255)
        mask = trimap_to_mask(trimap)  # (1, H, W) float32
        if self._v2_transform:
            return {**self._apply_v2_transform(image, mask, trimap), "index": index}
        if self.transform is not None:
            masks = torch.cat([mask, trimap.float()])  # (2, H, W)
            image, masks = self.transform(image, masks)
            if masks.ndim != 3 or masks.shape[0] != 2:
                raise ValueError(
                    f"transform must return (image, masks) with masks (2, H, W); got masks {tuple(masks.shape)}"
                )
            mask = masks[0:1].to(torch.float32)
            trimap = masks[1:2].round().to(torch.uint8)
        return {"image": image, "mask": mask, "trimap": trimap, "index": index}

    def _apply_v2_transform(self, image: Tensor, mask: Tensor, trimap: Tensor) -> dict[str, Tensor]:
        """Run a torchvision v2 transform on ``image`` (3, H, W), ``mask`` and ``trimap`` (1, H, W) together."""
        from torchvision import tv_tensors

        image, mask, trimap = self.transform(tv_tensors.Image(image), tv_tensors.Mask(mask), tv_tensors.Mask(trimap))
        # Back to plain tensors, so that batches collate and nothing downstream dispatches on tv_tensors.
        image, mask, trimap = (t.as_subclass(Tensor) for t in (image, mask, trimap))
        if mask.ndim != 3 or mask.shape[0] != 1 or trimap.shape != mask.shape or image.shape[-2:] != mask.shape[-2:]:
            raise ValueError(
                f"the transform returned image {tuple(image.shape)}, mask {tuple(mask.shape)} and trimap "
                f"{tuple(trimap.shape)}; expected (3, H, W), (1, H, W) and (1, H, W)"
            )
        # Filled pixels come back as 0 in both masks: background, which the trimap spells 2.
        trimap = trimap.to(torch.uint8).masked_fill_(trimap == 0, 2)
        return {"image": image, "mask": mask.to(torch.float32), "trimap": trimap}

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """``[self[i] for i in indices]``, read from the cache as one batch (DataLoader calls this).

        Converting a whole batch at once costs a fraction of converting item by item, which
        is most of what a cached loader does.
        """
        if (self.cache_path is None and self._cache_array is None) or self.transform is not None:
            return [self[i] for i in indices]
        batch = torch.from_numpy(self._cached()[np.asarray(indices, dtype=np.int64)])  # (B, 4, H, W) uint8, a copy
        images, trimaps = batch[:, :3], batch[:, 3:]  # views; each item's part is contiguous
        masks = trimap_to_mask(trimaps, self.dtype)
        if self.dtype != torch.uint8:
            images = images.float().div_(255)
        return [
            {"image": image, "mask": mask, "trimap": trimap, "index": int(index)}
            for image, mask, trimap, index in zip(images.unbind(), masks.unbind(), trimaps.unbind(), indices)
        ]

    def __repr__(self) -> str:
        height, width = self.image_size
        return (
            f"{type(self).__name__}(root={str(self.root)!r}, mode={self.mode!r}, "
            f"image_size=({height}, {width}), items={len(self)})"
        )


def load_dataset(
    data_path: str | Path,
    mode: str,
    batch_size: int,
    image_size: int | tuple[int, int] = 256,
    transform: Callable[..., tuple[Tensor, ...]] | None = None,
    num_workers: int | None = None,
    shuffle: bool | None = None,
    cache: bool | str = False,
    drop_last: bool = False,
    sampler: Sampler[int] | None = None,
    pin_memory: bool | None = None,
    subset: int | None = None,
) -> DataLoader:
    """A DataLoader over :class:`OxfordPetSegmentation`.

    Batches are dicts: ``image`` ``(B, 3, H, W)`` float32, ``mask`` ``(B, 1, H, W)`` float32,
    ``trimap`` ``(B, 1, H, W)`` uint8, ``index`` ``(B,)`` int64.

    Args:
        data_path, mode, image_size, transform, cache, subset: as for :class:`OxfordPetSegmentation`.
        batch_size: items per batch.
        num_workers: loader processes; default ``min(4, cpu count)``; 0 loads in this process.
        shuffle: default ``True`` for ``train`` only. Must not be ``True`` with a ``sampler``.
        drop_last: drop a last, smaller batch.
        sampler: e.g. a ``DistributedSampler``, which then does the shuffling.
        pin_memory: default ``torch.cuda.is_available()``.
    """
    dataset = OxfordPetSegmentation(data_path, mode, image_size=image_size, transform=transform, cache=cache,
                                    subset=subset)
    if sampler is not None and shuffle:
        raise ValueError("shuffle=True conflicts with a sampler; shuffle through the sampler instead")
    if shuffle is None:
        shuffle = mode == "train" and sampler is None
    if num_workers is None:
        num_workers = min(4, os.cpu_count() or 1)
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=drop_last,
        pin_memory=pin_memory,
        # Restarting workers each epoch would re-import torch and reopen files every time.
        persistent_workers=num_workers > 0,
    )


# --------------------------------------------------------------------------- download


def _fetch(filename: str, md5: str, root: Path, mirrors: Sequence[str]) -> None:
    """Download ``filename`` into ``root`` from the first mirror that serves it with ``md5``."""
    # torchvision's helpers: urllib with a progress bar, and MD5 checks.
    from torchvision.datasets.utils import calculate_md5, check_integrity, download_url

    archive = root / filename
    part = root / f"{filename}.part"
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + filename
        # download_url skips an existing file when given no MD5: start from nothing.
        part.unlink(missing_ok=True)
        print(f"Downloading {url}")
        try:
            # Into "<file>.part", renamed only once verified: an interrupted download never
            # passes as a complete archive.
            download_url(url, str(root), filename=part.name)
        except (OSError, RuntimeError, ValueError) as err:
            part.unlink(missing_ok=True)
            failures.append(f"{url}: {err}")
            continue
        if not check_integrity(part, md5):
            failures.append(f"{url}: MD5 {calculate_md5(part)} does not match the expected {md5}")
            part.unlink(missing_ok=True)
            continue
        os.replace(part, archive)
        return
    raise DownloadError(f"could not download {filename}; tried:\n  " + "\n  ".join(failures))


def download(
    root: str | Path = DEFAULT_ROOT,
    mirrors: Sequence[str] = MIRRORS,
    resources: Sequence[tuple[str, str]] = RESOURCES,
    remove_archives: bool = False,
) -> Path:
    """Download and extract the Oxford-IIIT Pet release into ``root``.

    Fetches ``images.tar.gz`` (~750 MB) and ``annotations.tar.gz`` (~19 MB), trying each
    mirror in turn, verifies their MD5, and extracts them to ``<root>/images`` and
    ``<root>/annotations``. Archives already present and verified are not fetched again,
    and archives already extracted are not extracted again, so an interrupted run can be
    restarted.

    Args:
        root: destination folder (created).
        mirrors: base URLs, tried in order.
        resources: ``(archive name, MD5)`` pairs.
        remove_archives: delete each archive after extracting it.

    Returns:
        The absolute ``root``.

    Raises:
        DownloadError: no mirror served a file with the right MD5; the message lists every URL tried.
    """
    from torchvision.datasets.utils import check_integrity, extract_archive

    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    for filename, md5 in resources:
        archive = root / filename
        # A marker written after extraction: a half-extracted folder is not mistaken for done.
        marker = root / f".{filename}.extracted"
        if marker.is_file() and marker.read_text().strip() == md5:
            print(f"{filename}: already extracted in {root}")
            continue
        if check_integrity(archive, md5):
            print(f"{filename}: already downloaded and verified")
        else:
            _fetch(filename, md5, root, mirrors)
        print(f"Extracting {archive}")
        extract_archive(archive, root)
        marker.write_text(md5 + "\n")
        if remove_archives:
            archive.unlink()
    return root


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m petlib.data download [--data_path DIR]``."""
    parser = argument_parser("python -m petlib.data", __doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("download", help="download and extract Oxford-IIIT Pet (~800 MB)",
                                formatter_class=parser.formatter_class)
    fetch.add_argument(*option("data_path", "--root"), type=Path, default=DEFAULT_ROOT,
                       help="destination, the dataset root the other commands read")
    fetch.add_argument(*option("remove_archives"), action="store_true", help="delete the .tar.gz files after extracting")
    args = parser.parse_args(argv)
    if args.command == "download":
        root = download(args.data_path, remove_archives=args.remove_archives)
        print(f"Done: {root}")


if __name__ == "__main__":
    run_main(main)
