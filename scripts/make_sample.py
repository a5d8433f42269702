"""Build the Oxford-IIIT Pet sample shipped in ``dataset/oxford-iiit-pet-sample/``.

Usage::

    python scripts/make_sample.py SOURCE [--out dataset/oxford-iiit-pet-sample] [--max_side 256]

``SOURCE`` is a copy of the dataset in the official layout whose split files list the
images to ship -- here the project's 300-image real sample (three breeds, trainval 240 /
test 60). Every pair listed in SOURCE's ``trainval.txt`` and ``test.txt`` is copied, shrunk
so that its longest side is at most ``--max_side`` pixels (photos: Lanczos, JPEG quality 92;
trimaps: nearest neighbour, PNG, so the labels 1/2/3 never blend). The split files, the
official ``annotations/README`` and the two files the release holds but lists in no split
(``Abyssinian_34.jpg``, a GIF named .jpg, and ``Abyssinian_82.jpg``) are kept, so the
loader's format detection runs on real oddities. A ``README.md`` with the attribution and
licence is written beside them.

The output is a function of SOURCE only: running it twice gives the same bytes.
"""
from __future__ import annotations

import argparse
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

MAX_SIDE = 256
JPEG_QUALITY = 92
SPLIT_FILES = ("trainval.txt", "test.txt", "list.txt")

README = """\
# Oxford-IIIT Pet — the {n_listed}-image sample shipped with petlib

Real images and pixel trimaps from the **Oxford-IIIT Pet Dataset**:
O. M. Parkhi, A. Vedaldi, A. Zisserman, C. V. Jawahar, "Cats and Dogs", IEEE Conference on
Computer Vision and Pattern Recognition (CVPR), 2012.
<https://www.robots.ox.ac.uk/~vgg/data/pets/> — licensed **CC BY-SA 4.0**
(<https://creativecommons.org/licenses/by-sa/4.0/>). This sample is a derivative (downsized
copies) and is shared under the same licence. `annotations/README` is the dataset's own
README, unchanged.

It lets everything in petlib run offline, without the 800 MB download
(`python -m petlib.data download`): `make run`, the notebooks (their default when the full
dataset is absent) and the tests. Use it with `petlib.data.SAMPLE_ROOT`:

```python
from petlib.data import SAMPLE_ROOT, OxfordPetSegmentation
dataset = OxfordPetSegmentation(SAMPLE_ROOT, "train")            # 216 items
small = OxfordPetSegmentation(SAMPLE_ROOT, "train", subset=16)   # a fixed 16 of them, for tests
```

## Layout (the official one)

    images/<name>.jpg                  the photos
    annotations/trimaps/<name>.png     1 = pet, 2 = background, 3 = border
    annotations/trainval.txt           {n_trainval} lines like "Abyssinian_100 1 1 1"
    annotations/test.txt               {n_test} lines
    annotations/list.txt               the source's list.txt
    annotations/README                 the official README

With petlib's split rule (valid = every tenth line of trainval.txt, from the first) that is
{n_train} `train`, {n_valid} `valid` and {n_test} `test` items.

## What it holds

- **{n_listed} images of three breeds**: {breeds}. They are the official **trainval**
  images of those breeds, re-split: `test.txt` holds every fifth line of the official list,
  `trainval.txt` the rest. (So the official test images of these breeds are in neither
  split, and the sample's test scores are not the official test scores.)
- **Two unlisted files**, as in the release: `images/Abyssinian_34.jpg` is really a GIF (its
  trimap is all background) and `images/Abyssinian_82.jpg` is listed in no split either.
  Both are kept byte for byte where small enough, so the loader's format detection and RGB
  conversion run on real data.
- **Downsized** so the longest side is at most {max_side} px: photos with Lanczos resampling,
  saved as JPEG quality {quality}; trimaps with nearest neighbour (values stay in {{1, 2, 3}}),
  saved as PNG. Files already small enough were copied unchanged. Sizes now: {size_summary}.
- {megabytes:.1f} MB in all.

Built by `scripts/make_sample.py` from the full-resolution 300-image copy:

    python scripts/make_sample.py /path/to/oxford-iiit-pet-sample --out dataset/oxford-iiit-pet-sample
"""


def read_names(path: Path) -> list[str]:
    """The image names of a split file (comment lines skipped)."""
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def shrink(source: Path, out: Path, name: str, max_side: int) -> tuple[int, int]:
    """Write ``name``'s image and trimap at most ``max_side`` a side; return the new (width, height)."""
    image_src = source / "images" / f"{name}.jpg"
    trimap_src = source / "annotations" / "trimaps" / f"{name}.png"
    image_dst = out / "images" / f"{name}.jpg"
    trimap_dst = out / "annotations" / "trimaps" / f"{name}.png"
    with Image.open(image_src) as image, Image.open(trimap_src) as trimap:
        if image.size != trimap.size:
            raise ValueError(f"{image_src} is {image.size} but {trimap_src} is {trimap.size}")
        scale = max_side / max(image.size)
        if scale >= 1:
            # Small enough already: keep the original bytes (and format, e.g. the GIF).
            shutil.copyfile(image_src, image_dst)
            shutil.copyfile(trimap_src, trimap_dst)
            return image.size
        new_size = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
        image.convert("RGB").resize(new_size, Image.LANCZOS).save(image_dst, "JPEG", quality=JPEG_QUALITY)
        small_trimap = trimap.resize(new_size, Image.NEAREST)
        values = set(np.unique(np.asarray(small_trimap)).tolist())
        if not values <= {1, 2, 3}:
            raise ValueError(f"{trimap_src} holds values {sorted(values)} outside {{1, 2, 3}}")
        small_trimap.save(trimap_dst, "PNG", optimize=True)
        return new_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a copy of Oxford-IIIT Pet in the official layout")
    parser.add_argument("--out", type=Path, default=Path("dataset/oxford-iiit-pet-sample"))
    parser.add_argument("--max_side", type=int, default=MAX_SIDE)
    args = parser.parse_args()
    source, out = args.source, args.out

    trainval = read_names(source / "annotations" / "trainval.txt")
    test = read_names(source / "annotations" / "test.txt")
    listed = set(trainval) | set(test)
    unlisted = sorted(p.stem for p in (source / "images").glob("*.jpg") if p.stem not in listed)

    if out.exists():
        shutil.rmtree(out)
    (out / "images").mkdir(parents=True)
    (out / "annotations" / "trimaps").mkdir(parents=True)
    sizes = [shrink(source, out, name, args.max_side) for name in sorted(listed) + unlisted]
    for name in SPLIT_FILES:
        shutil.copyfile(source / "annotations" / name, out / "annotations" / name)
    shutil.copyfile(source / "annotations" / "README", out / "annotations" / "README")

    n_valid = len(range(0, len(trainval), 10))
    breeds = Counter(name.rsplit("_", 1)[0] for name in listed)
    longest = Counter(max(size) for size in sizes)
    size_summary = (f"longest side {args.max_side} px for {longest[args.max_side]} images, "
                    f"smallest image {min(sizes, key=lambda s: s[0] * s[1])[0]}x{min(sizes, key=lambda s: s[0] * s[1])[1]}")
    megabytes = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6
    (out / "README.md").write_text(README.format(
        n_listed=len(listed), n_trainval=len(trainval), n_test=len(test), n_train=len(trainval) - n_valid,
        n_valid=n_valid, breeds=", ".join(f"{b} {n}" for b, n in sorted(breeds.items(), key=lambda x: x[0].lower())),
        max_side=args.max_side, quality=JPEG_QUALITY, size_summary=size_summary, megabytes=megabytes,
    ))
    print(f"wrote {len(sizes)} pairs ({len(listed)} listed, {len(unlisted)} unlisted) to {out} ({megabytes:.2f} MB)")


if __name__ == "__main__":
    main()
