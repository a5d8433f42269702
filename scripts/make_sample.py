"""Build the small Oxford-IIIT Pet sample shipped in ``dataset/oxford-iiit-pet-sample/``.

Usage::

    python scripts/make_sample.py SOURCE [--out dataset/oxford-iiit-pet-sample]

``SOURCE`` is any copy of the dataset in the official layout (the full release or a larger
sample of it). The script takes 24 image/trimap pairs, 8 for each of three breeds, shrinks
them so the longest side is at most 256 px, writes the official layout with new
``trainval.txt`` (16) / ``test.txt`` (8) / ``list.txt`` files, copies the official
``annotations/README`` and writes a ``README.md`` saying where it all came from.

The choice is deterministic: for each breed, evenly spaced lines of SOURCE's own
``trainval.txt`` and ``test.txt``, plus ``Abyssinian_34.jpg`` (a GIF named .jpg in the release)
listed in trainval, so that the loader's conversion to RGB runs on real data.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

BREEDS = ("Abyssinian", "american_bulldog", "Bengal")
# 8 per breed in all; trainval is 16 and test 8, each with every breed.
TRAINVAL_PER_BREED = {"Abyssinian": 5, "american_bulldog": 5, "Bengal": 5}
TEST_PER_BREED = {"Abyssinian": 2, "american_bulldog": 3, "Bengal": 3}
# Odd files of the release, kept byte for byte; listed in trainval.
ODD_FILES = ("Abyssinian_34",)
MAX_SIDE = 256
JPEG_QUALITY = 90

LIST_HEADER = """\
#Image CLASS-ID SPECIES BREED ID
#ID: 1:37 Class ids
#SPECIES: 1:Cat 2:Dog
#BREED ID: 1-25:Cat 1:12:Dog
#All images with 1st letter as captial are cat images
#images with small first letter are dog images
"""


def read_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def breed_of(name: str) -> str:
    return name.rsplit("_", 1)[0]


def evenly_spaced(items: list[str], count: int) -> list[str]:
    """``count`` items spread over the whole list (first, then every len/count-th)."""
    if count > len(items):
        raise ValueError(f"asked for {count} items from a list of {len(items)}")
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]


def pick(lines: list[str], per_breed: dict[str, int]) -> list[str]:
    chosen = []
    for breed, count in per_breed.items():
        chosen += evenly_spaced([line for line in lines if breed_of(line.split()[0]) == breed], count)
    return chosen


def sort_key(line: str) -> tuple[int, str]:
    # The official lists are ordered by class id, then by name.
    name, class_id = line.split()[:2]
    return int(class_id), name


def shrink(source: Path, out: Path, name: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """Write ``name``'s image and trimap at most MAX_SIDE a side; return (old, new) sizes."""
    image_src = source / "images" / f"{name}.jpg"
    trimap_src = source / "annotations" / "trimaps" / f"{name}.png"
    image_dst = out / "images" / f"{name}.jpg"
    trimap_dst = out / "annotations" / "trimaps" / f"{name}.png"
    with Image.open(image_src) as image, Image.open(trimap_src) as trimap:
        if image.size != trimap.size:
            raise ValueError(f"{image_src} is {image.size} but {trimap_src} is {trimap.size}")
        size = image.size
        scale = MAX_SIDE / max(size)
        if scale >= 1 or name in ODD_FILES:
            if scale < 1:
                raise ValueError(f"odd file {image_src} is {size}, larger than {MAX_SIDE}: cannot keep its bytes")
            # Small enough already: keep the original bytes (and format).
            shutil.copyfile(image_src, image_dst)
            shutil.copyfile(trimap_src, trimap_dst)
            return size, size
        new_size = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
        # Lanczos for the photo; nearest for the trimap, whose labels must not blend.
        image.convert("RGB").resize(new_size, Image.LANCZOS).save(image_dst, "JPEG", quality=JPEG_QUALITY)
        small_trimap = trimap.resize(new_size, Image.NEAREST)
        values = set(np.unique(np.asarray(small_trimap)).tolist())
        if not values <= {1, 2, 3}:
            raise ValueError(f"{trimap_src} holds values {sorted(values)} outside {{1, 2, 3}}")
        small_trimap.save(trimap_dst, "PNG", optimize=True)
        return size, new_size


README = """\
# Oxford-IIIT Pet — a 24-image sample shipped with petlib

Real images and pixel trimaps from the **Oxford-IIIT Pet Dataset**:
O. M. Parkhi, A. Vedaldi, A. Zisserman, C. V. Jawahar, "Cats and Dogs", IEEE Conference on
Computer Vision and Pattern Recognition (CVPR), 2012.
<https://www.robots.ox.ac.uk/~vgg/data/pets/> — licensed CC BY-SA 4.0; this sample, a
derivative (downsized copies), is shared under the same licence. `annotations/README` is the
dataset's own README, unchanged.

It is here so that tests, notebooks and demos run without the full 800 MB download
(`python -m petlib.data download`). Use it with `petlib.data.SAMPLE_ROOT`:

```python
from petlib.data import SAMPLE_ROOT, OxfordPetSegmentation
dataset = OxfordPetSegmentation(SAMPLE_ROOT, "train")
```

## Layout (the official one)

    images/<name>.jpg                  the photos
    annotations/trimaps/<name>.png     1 = pet, 2 = background, 3 = border
    annotations/trainval.txt           {n_trainval} lines like "Abyssinian_100 1 1 1"
    annotations/test.txt               {n_test} lines
    annotations/list.txt               all {n_all}, with the official comment header
    annotations/README                 the official README

With petlib's split rule (valid = every tenth line of trainval.txt, from the first) that is
{n_train} `train`, {n_valid} `valid` and {n_test} `test` items.

## What was done

- **Which images**: 8 each of Abyssinian (cat), american_bulldog (dog) and Bengal (cat),
  {n_all} in all. For each breed, evenly spaced lines of the source's trainval.txt
  ({trainval_counts}) and test.txt ({test_counts}).
- **One odd file on purpose**: {odd} is, as in the official release, a GIF with a `.jpg`
  name (its trimap is all background). It is kept byte for byte and listed in trainval.txt
  (the release lists it in no split), so that the loader's format detection and RGB
  conversion run on real data.
- **Downsized** so the longest side is at most {max_side} px: photos with Lanczos resampling,
  saved as JPEG quality {quality}; trimaps with nearest neighbour (values stay in {{1, 2, 3}}),
  saved as PNG. Files already small enough were copied unchanged.

Built by `scripts/make_sample.py` from a 300-image copy of the official release:

    python scripts/make_sample.py /path/to/oxford-iiit-pet --out dataset/oxford-iiit-pet-sample

| name | original size | sample size |
|---|---|---|
{table}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a copy of Oxford-IIIT Pet in the official layout")
    parser.add_argument("--out", type=Path, default=Path("dataset/oxford-iiit-pet-sample"))
    args = parser.parse_args()
    source, out = args.source, args.out

    trainval_src = read_lines(source / "annotations" / "trainval.txt")
    test_src = read_lines(source / "annotations" / "test.txt")
    trainval = pick(trainval_src, TRAINVAL_PER_BREED)
    test = pick(test_src, TEST_PER_BREED)
    for name in ODD_FILES:
        # The odd files are in no official split: give them their breed's ids.
        ids = next(line.split()[1:] for line in trainval_src + test_src if breed_of(line.split()[0]) == breed_of(name))
        trainval.append(" ".join([name, *ids]))
    trainval.sort(key=sort_key)
    test.sort(key=sort_key)

    if out.exists():
        shutil.rmtree(out)
    (out / "images").mkdir(parents=True)
    (out / "annotations" / "trimaps").mkdir(parents=True)
    rows = []
    for line in sorted(trainval + test, key=sort_key):
        name = line.split()[0]
        before, after = shrink(source, out, name)
        rows.append(f"| {name} | {before[0]}x{before[1]} | {after[0]}x{after[1]} |")

    annotations = out / "annotations"
    (annotations / "trainval.txt").write_text("\n".join(trainval) + "\n")
    (annotations / "test.txt").write_text("\n".join(test) + "\n")
    (annotations / "list.txt").write_text(LIST_HEADER + "\n".join(sorted(trainval + test, key=sort_key)) + "\n")
    shutil.copyfile(source / "annotations" / "README", annotations / "README")

    n_valid = len(range(0, len(trainval), 10))
    (out / "README.md").write_text(
        README.format(
            n_trainval=len(trainval),
            n_test=len(test),
            n_all=len(trainval) + len(test),
            n_train=len(trainval) - n_valid,
            n_valid=n_valid,
            trainval_counts=", ".join(f"{b} {n}" for b, n in TRAINVAL_PER_BREED.items()),
            test_counts=", ".join(f"{b} {n}" for b, n in TEST_PER_BREED.items()),
            odd=", ".join(f"`images/{name}.jpg`" for name in ODD_FILES),
            max_side=MAX_SIDE,
            quality=JPEG_QUALITY,
            table="\n".join(rows),
        )
    )
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {len(rows)} pairs to {out} ({size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
