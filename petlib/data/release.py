"""The Oxford-IIIT Pet release on disk: its layout, its split files, and reading its files.

The official layout::

    <root>/images/<name>.jpg                   RGB photos (a few are really GIF, PNG or grayscale)
    <root>/annotations/trimaps/<name>.png      1 = pet, 2 = background, 3 = border
    <root>/annotations/trainval.txt, test.txt  lines like "Abyssinian_100 1 1 1"

:func:`image_file` and :func:`trimap_file` name a photo's files; :func:`read_split` lists a
split; :func:`read_image` and :func:`read_trimap` read the files, refusing what they cannot
trust with an error that names the file. :mod:`petlib.data` re-exports these names.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    "SAMPLE_ROOT", "MODES", "SPLITS", "DatasetNotFoundError", "SplitEntry", "image_file", "trimap_file", "dataset_present",
    "is_sample", "read_split", "read_image", "read_image_and_size", "read_trimap",
]

# The sample lives in the repository, beside the package (absent from a wheel install).
SAMPLE_ROOT = Path(__file__).resolve().parents[2] / "dataset" / "oxford-iiit-pet-sample"
#: The three disjoint splits petlib uses (train and valid share trainval.txt, see read_split).
SPLITS = ("train", "valid", "test")
#: Every split :func:`read_split` reads: the three, and ``trainval`` (train and valid together).
MODES = SPLITS + ("trainval",)


_SPECIES = {1: "cat", 2: "dog"}
_TRIMAP_VALUES = (1, 2, 3)


class DatasetNotFoundError(FileNotFoundError):
    """The dataset root, one of its folders or its split file does not exist."""


#: Where the sample is when petlib is installed without the repository (pip install petlib).
REPOSITORY = "https://github.com/petlib/petlib"


def _not_found(root: Path, missing: Path) -> DatasetNotFoundError:
    if SAMPLE_ROOT.is_dir():
        sample = f"or use the 300-image sample shipped with petlib: petlib.data.SAMPLE_ROOT ({SAMPLE_ROOT})."
    else:
        # An installed package has no dataset/ folder: the sample lives in the repository only.
        sample = (f"or, for the 300-image sample (not part of an installed package), clone the repository:\n"
                  f"    git clone {REPOSITORY} && cd petlib  (then use --data_path dataset/oxford-iiit-pet-sample)")
    return DatasetNotFoundError(
        f"Oxford-IIIT Pet not found: {missing.resolve()} does not exist.\n"
        f"Expected {root.resolve()}/images/*.jpg and "
        f"{root.resolve()}/annotations/{{trimaps/*.png, trainval.txt, test.txt}}.\n"
        f"Download the dataset (~800 MB) with:\n"
        f"    petlib-data download --data_path {root}\n"
        f"    (or: python -m petlib.data download --data_path {root})\n"
        f"{sample}"
    )


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


def image_file(root: str | Path, name: str) -> Path:
    """``<root>/images/<name>.jpg``, the photo of ``name`` (whatever format it really holds)."""
    return Path(root) / "images" / f"{name}.jpg"


def trimap_file(root: str | Path, name: str) -> Path:
    """``<root>/annotations/trimaps/<name>.png``, the trimap of ``name``."""
    return Path(root) / "annotations" / "trimaps" / f"{name}.png"


def dataset_present(root: str | Path) -> bool:
    """True if ``root`` holds the official layout (images, trimaps and both split files)."""
    root = Path(root)
    return all((root / part).exists() for part in
               ("images", "annotations/trimaps", "annotations/trainval.txt", "annotations/test.txt"))


def is_sample(data_path: str | Path) -> bool:
    """True if ``data_path`` is the 300-image sample embedded in the repository (:data:`SAMPLE_ROOT`)."""
    return Path(data_path).resolve() == SAMPLE_ROOT.resolve()


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
    ``trainval`` is every line of it: what a run trains on without a validation split
    (``TrainConfig.validate=False``).

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
    return read_image_and_size(path, min_size)[0]


def read_image_and_size(
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
