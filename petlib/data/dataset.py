"""The Oxford-IIIT Pet dataset as binary pet/background segmentation, and its loaders.

:class:`OxfordPetSegmentation` reads the official release (its layout and files:
:mod:`petlib.data.release`) and yields, per item, a dict of tensors of one fixed size ``(H, W)``:
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
uint8 arrays (:mod:`petlib.data.cache`); after that an item costs a copy, not a JPEG decode.
:func:`load_dataset` is petlib's one way to build a DataLoader over it.

The full dataset (~800 MB) is fetched with ``petlib-data download --data_path <root>``
(:mod:`petlib.data.download`);
a 300-image sample (three breeds, downsized) ships with the repository at
:data:`SAMPLE_ROOT`, so that everything runs offline.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, Sampler, SequentialSampler

from petlib import distributed as dist
from petlib.data.cache import DecodedCache, user_cache_dir
from petlib.data.download import (  # re-exported: petlib.data's names
    DEFAULT_ROOT,
    MIRRORS,
    RESOURCES,
    DownloadError,
    download,
)
from petlib.data.release import (  # re-exported: petlib.data's names
    MODES,
    SAMPLE_ROOT,
    DatasetNotFoundError,
    SplitEntry,
    dataset_present,
    image_file,
    is_sample,
    read_image,
    read_image_and_size,
    read_split,
    read_trimap,
    trimap_file,
)

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
    "image_file",
    "trimap_file",
    "dataset_present",
    "is_sample",
    "read_split",
    "read_image",
    "read_trimap",
    "trimap_to_mask",
    "evenly_spaced",
    "load_dataset",
    "download",
]

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
    # Pet and border are odd, background even: on integer trimaps one bitwise op instead of two
    # comparisons and an or, which matters in the cached loader, where this runs on every batch.
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
            that converts on the device (as :mod:`petlib.training.engine` does). Not with ``transform``.
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

        self._cache: DecodedCache | None = None
        description = f"Caching {self.mode} at {self.image_size[0]}x{self.image_size[1]}"
        if cache == "disk":
            files = [(entry.name, self.image_path(i), self.trimap_path(i)) for i, entry in enumerate(self.entries)]
            self._cache = DecodedCache.on_disk(self._decode, files, self.image_size, mode,
                                               [self.root / ".cache", user_cache_dir()], description)
        elif cache:
            self._cache = DecodedCache.in_memory(self._decode, len(self.entries), self.image_size, description)

    @property
    def cache_path(self) -> Path | None:
        """The memory-mapped disk cache file (see :mod:`petlib.data.cache`), or ``None``."""
        return self._cache.path if self._cache is not None else None

    def image_path(self, index: int) -> Path:
        """:func:`image_file` of item ``index``."""
        return image_file(self.root, self.entries[index].name)

    def trimap_path(self, index: int) -> Path:
        """:func:`trimap_file` of item ``index``."""
        return trimap_file(self.root, self.entries[index].name)

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
        # least twice the target keeps a real antialiased downscale after it, so the pixels stay
        # close to those of a full decode; drafting straight to the target size would alias.
        image, (file_width, file_height) = read_image_and_size(
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

    # ---- items

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self._cache is not None:
            item = self._cache.array[index]  # (4, H, W) uint8, no decoding
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
        if self._cache is None or self.transform is not None:
            return [self[i] for i in indices]
        batch = torch.from_numpy(self._cache.array[np.asarray(indices, dtype=np.int64)])  # (B, 4, H, W) uint8, a copy
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
    *,
    dtype: torch.dtype = torch.float32,
    seed: int | None = None,
) -> DataLoader:
    """A DataLoader over :class:`OxfordPetSegmentation`: petlib's one way to build a loader.

    Batches are dicts: ``image`` ``(B, 3, H, W)`` float32, ``mask`` ``(B, 1, H, W)`` float32,
    ``trimap`` ``(B, 1, H, W)`` uint8, ``index`` ``(B,)`` int64 (``image`` and ``mask`` uint8
    with ``dtype=torch.uint8``).

    In a distributed run (``torchrun``, see :mod:`petlib.distributed`) each process gets its
    share: a shuffled loader samples through ``DistributedSampler`` (equal shards), one in
    order through :class:`~petlib.distributed.ShardSampler` (every image exactly once, for
    evaluation means). :func:`petlib.training.engine.make_loaders` builds a run's loaders with this.

    Args:
        data_path, mode, image_size, transform, cache, subset, dtype: as for :class:`OxfordPetSegmentation`.
        batch_size: items per batch (per process).
        num_workers: loader processes; default ``min(4, cpu count)``; 0 loads in this process.
        shuffle: default ``True`` for ``train`` only. Must not be ``True`` with a ``sampler``.
        drop_last: drop a last, smaller batch -- unless it is the only one: an epoch is never empty.
        sampler: e.g. a ``DistributedSampler``, which then does the shuffling.
        pin_memory: default ``torch.cuda.is_available()``.
        seed: shuffle with a generator of its own, seeded so, instead of torch's global one
            (the engine reseeds it every epoch, so that a resumed run replays the shuffles).
    """
    dataset = OxfordPetSegmentation(data_path, mode, image_size=image_size, transform=transform, cache=cache,
                                    dtype=dtype, subset=subset)
    if sampler is not None and shuffle:
        raise ValueError("shuffle=True conflicts with a sampler; shuffle through the sampler instead")
    if shuffle is None:
        shuffle = mode == "train" and sampler is None
    if sampler is None:
        sampler = _sampler(dataset, shuffle, seed)
    if num_workers is None:
        num_workers = min(4, os.cpu_count() or 1)
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        # Dropping a short last training batch keeps BatchNorm statistics sane, but never
        # drop a batch that would leave an epoch empty.
        drop_last=drop_last and len(sampler) > batch_size,
        pin_memory=pin_memory,
        # Restarting workers each epoch would re-import torch and reopen files every time.
        persistent_workers=num_workers > 0,
    )


def _sampler(dataset: Dataset, shuffle: bool, seed: int | None) -> Sampler[int]:
    """This process's share of ``dataset``, shuffled or in order."""
    if shuffle and dist.is_distributed():
        return DistributedSampler(dataset, shuffle=True, seed=seed or 0, drop_last=True)
    if shuffle:
        return RandomSampler(dataset, generator=None if seed is None else torch.Generator().manual_seed(seed))
    if dist.world_size() > 1:
        return dist.ShardSampler(len(dataset), dist.rank(), dist.world_size())
    return SequentialSampler(dataset)
