"""Tests for petlib.data: the shipped sample, tiny fake trees for every bad input, the
decode-once cache, the DataLoader helper and an offline download (no network anywhere)."""
from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from petlib import data
from petlib.data import (
    MODES,
    SAMPLE_ROOT,
    DatasetNotFoundError,
    OxfordPetSegmentation,
    SplitEntry,
    load_dataset,
    read_image,
    read_split,
    read_trimap,
    trimap_to_mask,
)

# ----------------------------------------------------------------------------- fake trees

# name -> how the ".jpg" is really stored: the oddities of the real release.
FAKE_FORMATS = {
    "Abyssinian_1": "jpeg",
    "Abyssinian_2": "gif",
    "Bengal_1": "rgba_png",
    "american_bulldog_1": "gray_jpeg",
    "american_bulldog_2": "jpeg",
}
FAKE_IDS = {"Abyssinian": "1 1 1", "Bengal": "6 1 2", "american_bulldog": "2 2 1"}


def fake_trimap(height: int, width: int) -> np.ndarray:
    """Background (2) with a pet (1) rectangle outlined by a border (3)."""
    trimap = np.full((height, width), 2, dtype=np.uint8)
    trimap[4:-4, 5:-5] = 3
    trimap[6:-6, 7:-7] = 1
    return trimap


def write_image(path: Path, kind: str, height: int = 20, width: int = 30, seed: int = 0) -> None:
    rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = Image.fromarray(rgb)
    if kind == "jpeg":
        image.save(path, "JPEG", quality=95)
    elif kind == "gif":
        image.convert("P").save(path, "GIF")
    elif kind == "rgba_png":
        image.convert("RGBA").save(path, "PNG")
    elif kind == "gray_jpeg":
        image.convert("L").save(path, "JPEG")
    else:
        raise ValueError(kind)


def make_tree(
    root: Path, trainval: Sequence[str], test: Sequence[str] = (), formats: dict[str, str] | None = None
) -> Path:
    """Official layout with 20x30 images of the given names (kind from FAKE_FORMATS or jpeg)."""
    formats = formats or FAKE_FORMATS
    (root / "images").mkdir(parents=True)
    (root / "annotations" / "trimaps").mkdir(parents=True)
    for seed, name in enumerate(dict.fromkeys([*trainval, *test])):
        write_image(root / "images" / f"{name}.jpg", formats.get(name, "jpeg"), seed=seed)
        Image.fromarray(fake_trimap(20, 30)).save(root / "annotations" / "trimaps" / f"{name}.png")
    for filename, names in (("trainval.txt", trainval), ("test.txt", test)):
        lines = [f"{name} {FAKE_IDS[name.rsplit('_', 1)[0]]}" for name in names]
        (root / "annotations" / filename).write_text("".join(line + "\n" for line in lines))
    return root


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    names = list(FAKE_FORMATS)
    return make_tree(tmp_path / "pets", trainval=names, test=names[:2])


# ----------------------------------------------------------------------------- the shipped sample


@pytest.mark.parametrize("mode, count", [("train", 216), ("valid", 24), ("test", 60)])
def test_sample_counts(mode: str, count: int) -> None:
    dataset = OxfordPetSegmentation(SAMPLE_ROOT, mode, image_size=32)
    assert len(dataset) == len(dataset.entries) == count
    assert dataset.mode == mode and dataset.image_size == (32, 32)
    assert {e.breed for e in dataset.entries} <= {"Abyssinian", "american_bulldog", "Bengal"}


def test_sample_items() -> None:
    dataset = OxfordPetSegmentation(SAMPLE_ROOT, "test", image_size=(48, 64), subset=12)
    for index in range(len(dataset)):
        item = dataset[index]
        image, mask, trimap = item["image"], item["mask"], item["trimap"]
        assert item["index"] == index and isinstance(item["index"], int)
        assert image.shape == (3, 48, 64) and image.dtype == torch.float32
        assert mask.shape == (1, 48, 64) and mask.dtype == torch.float32
        assert trimap.shape == (1, 48, 64) and trimap.dtype == torch.uint8
        assert 0 <= image.min() and image.max() <= 1 and image.std() > 0.05  # [0, 1], not normalised
        assert set(trimap.unique().tolist()) <= {1, 2, 3}
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(mask, ((trimap == 1) | (trimap == 3)).float())
        assert 0 < mask.mean() < 1  # every test image has pet and background


def test_sample_entries_and_breeds() -> None:
    entries = read_split(SAMPLE_ROOT, "train") + read_split(SAMPLE_ROOT, "valid") + read_split(SAMPLE_ROOT, "test")
    assert len({e.name for e in entries}) == 300
    by_breed = {b: [e for e in entries if e.breed == b] for b in ("Abyssinian", "american_bulldog", "Bengal")}
    assert all(len(v) == 100 for v in by_breed.values())
    assert {e.species for e in by_breed["american_bulldog"]} == {"dog"}
    assert {e.species for e in by_breed["Bengal"]} == {"cat"}
    assert entries[0] == SplitEntry("Abyssinian_101", 1, "cat", "Abyssinian")  # line 0 of trainval is valid's


def test_subset_is_a_fixed_evenly_spaced_share_of_the_split() -> None:
    full = read_split(SAMPLE_ROOT, "train")
    small = OxfordPetSegmentation(SAMPLE_ROOT, "train", image_size=16, subset=12)
    assert len(small) == 12 and small.entries == OxfordPetSegmentation(SAMPLE_ROOT, "train", image_size=16,
                                                                          subset=12).entries
    assert small.entries == [full[int(i * len(full) / 12)] for i in range(12)]
    assert {e.breed for e in small.entries} == {"Abyssinian", "american_bulldog", "Bengal"}
    assert OxfordPetSegmentation(SAMPLE_ROOT, "valid", image_size=16, subset=1000).entries == \
        read_split(SAMPLE_ROOT, "valid")  # more than the split holds: all of it
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="subset"):
            OxfordPetSegmentation(SAMPLE_ROOT, "train", image_size=16, subset=bad)


def test_sample_gif_named_jpg_reads_as_rgb() -> None:
    path = SAMPLE_ROOT / "images" / "Abyssinian_34.jpg"
    assert path.read_bytes()[:3] == b"GIF"
    assert read_image(path).mode == "RGB"


def test_the_sample_gif_loads_through_the_dataset(tmp_path) -> None:
    # The release lists Abyssinian_34 in no split; list it in a copy to read it as the loader would.
    import shutil

    (tmp_path / "images").mkdir()
    (tmp_path / "annotations" / "trimaps").mkdir(parents=True)
    shutil.copy(SAMPLE_ROOT / "images" / "Abyssinian_34.jpg", tmp_path / "images")
    shutil.copy(SAMPLE_ROOT / "annotations" / "trimaps" / "Abyssinian_34.png", tmp_path / "annotations" / "trimaps")
    for split in ("trainval.txt", "test.txt"):
        (tmp_path / "annotations" / split).write_text("Abyssinian_34 1 1 1\n")
    item = OxfordPetSegmentation(tmp_path, "test", image_size=32)[0]
    assert item["image"].shape == (3, 32, 32) and item["image"].std() > 0.05
    assert item["mask"].sum() == 0  # its official trimap is all background


def test_sample_is_small() -> None:
    size = sum(f.stat().st_size for f in SAMPLE_ROOT.rglob("*") if f.is_file())
    assert size < 8_000_000
    images = sorted((SAMPLE_ROOT / "images").glob("*.jpg"))
    assert len(images) == 302  # all 300 listed pairs and the two unlisted files
    for path in images:
        with Image.open(path) as image:
            assert max(image.size) <= 256, path
    assert (SAMPLE_ROOT / "annotations" / "README").is_file() and (SAMPLE_ROOT / "README.md").is_file()


# ----------------------------------------------------------------------------- splits and modes


def test_split_rule(tmp_path: Path) -> None:
    names = [f"Abyssinian_{i}" for i in range(25)]
    annotations = tmp_path / "annotations"
    (annotations / "trimaps").mkdir(parents=True)
    (tmp_path / "images").mkdir()
    (annotations / "trainval.txt").write_text("".join(f"{n} 1 1 1\n" for n in names) + "\n")
    (annotations / "test.txt").write_text("# comment\nBengal_7 6 1 2\n")
    valid = [e.name for e in read_split(tmp_path, "valid")]
    train = [e.name for e in read_split(tmp_path, "train")]
    assert valid == ["Abyssinian_0", "Abyssinian_10", "Abyssinian_20"]
    assert train == [n for n in names if n not in valid]
    assert read_split(tmp_path, "test") == [SplitEntry("Bengal_7", 6, "cat", "Bengal")]


def test_malformed_split_line(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "pets", trainval=["Abyssinian_1"])
    (root / "annotations" / "trainval.txt").write_text("Abyssinian_1 1 1 1\nAbyssinian_2 one\n")
    with pytest.raises(ValueError, match=r"trainval.txt:2"):
        read_split(root, "train")


def test_unknown_mode(fake_root: Path) -> None:
    with pytest.raises(ValueError, match="train, valid, test, trainval"):
        OxfordPetSegmentation(fake_root, "validation")
    assert MODES == ("train", "valid", "test", "trainval")


def test_trainval_is_train_and_valid_in_file_order(fake_root: Path) -> None:
    names = [e.name for e in read_split(fake_root, "trainval")]
    train, valid = ([e.name for e in read_split(fake_root, mode)] for mode in ("train", "valid"))
    assert sorted(names) == sorted(train + valid) and len(names) == len(set(names))
    assert names[0] == valid[0]  # line 0 is a validation line: trainval keeps the file's order


# ----------------------------------------------------------------------------- odd and bad inputs


def test_odd_formats_read_as_rgb(fake_root: Path) -> None:
    dataset = OxfordPetSegmentation(fake_root, "train", image_size=16)
    for name in FAKE_FORMATS:
        assert read_image(fake_root / "images" / f"{name}.jpg").mode == "RGB"
    for index in range(len(dataset)):
        item = dataset[index]
        assert item["image"].shape == (3, 16, 16) and item["trimap"].shape == (1, 16, 16)
    gray = [e.name for e in dataset.entries].index("american_bulldog_1")
    image = dataset[gray]["image"]
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])


def colour_bars(height: int = 20, width: int = 30) -> np.ndarray:
    """``(height, width, 3)`` uint8: pure red, green and blue vertical bars, a third of the width each."""
    bars = np.zeros((height, width, 3), dtype=np.uint8)
    for channel in range(3):
        bars[:, channel * width // 3:(channel + 1) * width // 3, channel] = 255
    return bars


@pytest.mark.parametrize("cache", [False, True, "disk"])
@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_images_decode_in_colour_and_in_rgb_order(tmp_path: Path, cache: bool | str, kind: str) -> None:
    # Red stays in channel 0, green in 1, blue in 2: a grayscale decode (or BGR) fails here,
    # while the random-noise images of the fake tree would only change their values.
    names = ["Abyssinian_1", "Abyssinian_2"]  # line 0 goes to valid
    root = make_tree(tmp_path / "pets", names)
    bars = colour_bars()
    for name in names:  # PNG bytes under the release's ".jpg" name are lossless; JPEG is what ships
        Image.fromarray(bars).save(root / "images" / f"{name}.jpg", "PNG" if kind == "png" else "JPEG", quality=95)
    expected = torch.from_numpy(bars).permute(2, 0, 1).float() / 255  # (3, 20, 30)
    image = OxfordPetSegmentation(root, "train", image_size=(20, 30), cache=cache)[0]["image"]
    uint8 = OxfordPetSegmentation(root, "train", image_size=(20, 30), cache=cache, dtype=torch.uint8)[0]["image"]
    small = OxfordPetSegmentation(root, "train", image_size=(10, 15), cache=cache)[0]["image"]  # (3, 10, 15)
    tolerance = 0 if kind == "png" else 0.16  # JPEG's chroma is coarse beside the edges
    inside = [x for x in range(30) if 2 <= x % 10 <= 7]  # 2 px or more from where the colour changes
    assert (image - expected)[..., inside].abs().max() <= tolerance
    assert torch.equal(uint8.float() / 255, image)
    for x, colour in ((2, [1.0, 0.0, 0.0]), (7, [0.0, 1.0, 0.0]), (12, [0.0, 0.0, 1.0])):  # the bars' centres
        assert torch.allclose(small[:, 5, x], torch.tensor(colour), atol=tolerance + 1e-6), (x, small[:, 5, x])
    decoded = np.asarray(read_image(root / "images" / "Abyssinian_2.jpg"), dtype=np.float32)  # (20, 30, 3)
    np.testing.assert_allclose(decoded[:, inside], bars[:, inside], atol=255 * tolerance)


def test_sample_photos_decode_in_colour() -> None:
    dataset = OxfordPetSegmentation(SAMPLE_ROOT, "valid", image_size=32, subset=8, cache=True)
    colourful = [(dataset[i]["image"][0] - dataset[i]["image"][2]).abs().mean().item() for i in range(len(dataset))]
    assert max(colourful) > 0.05, colourful  # a grayscale decode gives 0 for all


@pytest.mark.parametrize(
    "remove", ["", "images", "annotations", "annotations/trimaps", "annotations/trainval.txt"]
)
def test_missing_root_or_folder(fake_root: Path, remove: str) -> None:
    import shutil

    root = fake_root / "nowhere" if remove == "" else fake_root
    target = fake_root / remove
    if remove.endswith(".txt"):
        target.unlink()
    elif remove:
        shutil.rmtree(target)
    with pytest.raises(DatasetNotFoundError) as info:
        OxfordPetSegmentation(root, "train")
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert str((root if remove == "" else target).resolve()) in message
    assert "python -m petlib.data download --data_path" in message
    assert "SAMPLE_ROOT" in message


@pytest.mark.parametrize("missing", ["images/Bengal_1.jpg", "annotations/trimaps/american_bulldog_2.png"])
def test_listed_file_missing(fake_root: Path, missing: str) -> None:
    (fake_root / missing).unlink()
    with pytest.raises(FileNotFoundError, match=Path(missing).name):
        OxfordPetSegmentation(fake_root, "train")


def test_trimap_values_outside_1_to_3(fake_root: Path) -> None:
    path = fake_root / "annotations" / "trimaps" / "Bengal_1.png"
    bad = fake_trimap(20, 30)
    bad[0, 0] = 0
    bad[1, 1] = 255
    Image.fromarray(bad).save(path)
    with pytest.raises(ValueError, match=r"Bengal_1\.png.*\[0, 255\]"):
        read_trimap(path)
    dataset = OxfordPetSegmentation(fake_root, "train")
    index = [e.name for e in dataset.entries].index("Bengal_1")
    with pytest.raises(ValueError, match="Bengal_1.png"):
        dataset[index]


def test_corrupt_image(fake_root: Path) -> None:
    path = fake_root / "images" / "Abyssinian_1.jpg"
    path.write_bytes(path.read_bytes()[:200])  # truncated JPEG
    (fake_root / "images" / "american_bulldog_2.jpg").write_bytes(b"not an image at all")
    for name in ("Abyssinian_1", "american_bulldog_2"):
        with pytest.raises(OSError, match=f"{name}.jpg") as info:
            read_image(fake_root / "images" / f"{name}.jpg")
        assert info.value.__cause__ is not None  # PIL's own error is kept
    with pytest.raises(OSError, match="american_bulldog_2.jpg"):
        OxfordPetSegmentation(fake_root, "train", cache=True)


def test_image_and_trimap_sizes_differ(fake_root: Path) -> None:
    Image.fromarray(fake_trimap(21, 30)).save(fake_root / "annotations" / "trimaps" / "Abyssinian_2.png")
    dataset = OxfordPetSegmentation(fake_root, "train")
    with pytest.raises(ValueError, match="Abyssinian_2"):
        dataset[[e.name for e in dataset.entries].index("Abyssinian_2")]


def test_trimap_to_mask() -> None:
    trimap = np.array([[1, 2, 3]], dtype=np.uint8)
    np.testing.assert_array_equal(trimap_to_mask(trimap), np.array([[1, 0, 1]], dtype=np.float32))
    assert trimap_to_mask(trimap).dtype == np.float32
    tensor = trimap_to_mask(torch.from_numpy(trimap))
    assert tensor.dtype == torch.float32 and tensor.tolist() == [[1.0, 0.0, 1.0]]
    as_uint8 = trimap_to_mask(torch.from_numpy(trimap), torch.uint8)
    assert as_uint8.dtype == torch.uint8 and as_uint8.tolist() == [[1, 0, 1]]
    floats = trimap.astype(np.float32)  # float trimaps take the comparisons, same answer
    np.testing.assert_array_equal(trimap_to_mask(floats), trimap_to_mask(trimap))
    assert trimap_to_mask(torch.from_numpy(floats)).tolist() == [[1.0, 0.0, 1.0]]


# ----------------------------------------------------------------------------- transform


def test_transform_gets_stacked_masks(fake_root: Path) -> None:
    seen = {}

    def flip(image: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seen["shapes"] = (image.shape, image.dtype, masks.shape, masks.dtype)
        return image.flip(-1), masks.flip(-1)

    plain = OxfordPetSegmentation(fake_root, "train", image_size=(20, 30))[0]
    flipped = OxfordPetSegmentation(fake_root, "train", image_size=(20, 30), transform=flip)[0]
    assert seen["shapes"] == ((3, 20, 30), torch.float32, (2, 20, 30), torch.float32)
    assert torch.equal(flipped["image"], plain["image"].flip(-1))
    assert torch.equal(flipped["mask"], plain["mask"].flip(-1)) and flipped["mask"].dtype == torch.float32
    assert torch.equal(flipped["trimap"], plain["trimap"].flip(-1)) and flipped["trimap"].dtype == torch.uint8


def aligned_root(root: Path) -> Path:
    """Two training images whose white pixels are exactly their pet and border (left of centre,
    so that a flip shows), saved as PNG under the release's ``.jpg`` names (no JPEG blur)."""
    names = ["Abyssinian_1", "Abyssinian_2", "Abyssinian_3"]  # line 0 goes to valid
    make_tree(root, names)
    trimap = np.full((20, 30), 2, dtype=np.uint8)
    trimap[3:15, 2:14] = 3
    trimap[5:13, 4:12] = 1
    for name in names:
        Image.fromarray(trimap).save(root / "annotations" / "trimaps" / f"{name}.png")
        white = np.where(trimap % 2 == 1, 255, 0).astype(np.uint8)
        Image.fromarray(np.stack([white] * 3, axis=-1)).save(root / "images" / f"{name}.jpg", "PNG")
    return root


@pytest.mark.parametrize("name", ["hflip", "resized_crop", "rotation", "pipeline"])
def test_a_torchvision_v2_transform_moves_image_mask_and_trimap_together(tmp_path: Path, name: str) -> None:
    from torchvision.transforms import InterpolationMode, v2

    nearest = InterpolationMode.NEAREST  # for the image too, so that alignment can be checked exactly
    transform = {
        "hflip": v2.RandomHorizontalFlip(p=1),
        "resized_crop": v2.RandomResizedCrop((20, 30), scale=(0.2, 0.6), interpolation=nearest),
        "rotation": v2.RandomRotation((20, 40), interpolation=nearest),
        "pipeline": v2.Compose([v2.RandomHorizontalFlip(p=1), v2.RandomRotation((20, 40), interpolation=nearest),
                                v2.ColorJitter(brightness=0.1)]),
    }[name]
    root = aligned_root(tmp_path / "aligned")
    plain = OxfordPetSegmentation(root, "train", image_size=(20, 30))
    moved = OxfordPetSegmentation(root, "train", image_size=(20, 30), transform=transform)
    for seed in range(4):
        torch.manual_seed(seed)
        item, before = moved[seed % 2], plain[seed % 2]
        image, mask, trimap = item["image"], item["mask"], item["trimap"]
        assert type(image) is type(mask) is type(trimap) is torch.Tensor  # tv_tensors unwrapped
        assert (image.dtype, mask.dtype, trimap.dtype) == (torch.float32, torch.float32, torch.uint8)
        assert image.shape == (3, 20, 30) and mask.shape == trimap.shape == (1, 20, 30)
        assert set(mask.unique().tolist()) <= {0.0, 1.0} and set(trimap.unique().tolist()) <= {1, 2, 3}
        assert torch.equal(mask, trimap_to_mask(trimap))
        # The pet is still exactly where the image is white, however the geometry moved.
        assert torch.equal((image[0:1] > 0.5).float(), mask)
        assert not torch.equal(mask, before["mask"])  # and it did move
        if name == "hflip":
            assert torch.equal(image, before["image"].flip(-1)) and torch.equal(trimap, before["trimap"].flip(-1))
        if name in ("rotation", "pipeline"):  # the corners brought in from outside are background
            assert trimap[0, 0, 0] == 2 and trimap[0, -1, -1] == 2


# ----------------------------------------------------------------------------- cache


def assert_same_items(a: OxfordPetSegmentation, b: OxfordPetSegmentation) -> None:
    assert len(a) == len(b)
    for index in range(len(a)):
        x, y = a[index], b[index]
        assert torch.equal(x["image"], y["image"])
        assert torch.equal(x["mask"], y["mask"]) and torch.equal(x["trimap"], y["trimap"])
        assert x["index"] == y["index"]


@pytest.mark.parametrize("cache", [True, "disk"])
def test_cache_equals_no_cache(tmp_path: Path, cache) -> None:
    import shutil

    root = tmp_path / "sample"
    shutil.copytree(SAMPLE_ROOT, root)  # the disk cache writes beside the data
    plain = OxfordPetSegmentation(root, "train", image_size=40)
    cached = OxfordPetSegmentation(root, "train", image_size=40, cache=cache)
    assert_same_items(plain, cached)
    if cache == "disk":
        assert cached.cache_path.parent == root / ".cache"
        assert cached.cache_path.name.startswith("train_40x40_")
        assert list((root / ".cache").iterdir()) == [cached.cache_path]  # no temp file left


def test_disk_cache_reused_and_rebuilt(fake_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = OxfordPetSegmentation(fake_root, "train", image_size=16, cache="disk")
    # A second dataset maps the same file and decodes nothing, not even on access.
    monkeypatch.setattr(OxfordPetSegmentation, "_decode", lambda self, i: pytest.fail("decoded"))
    again = OxfordPetSegmentation(fake_root, "train", image_size=16, cache="disk")
    assert again.cache_path == first.cache_path
    assert again[0]["image"].shape == (3, 16, 16)
    monkeypatch.undo()

    resized = OxfordPetSegmentation(fake_root, "train", image_size=(12, 20), cache="disk")
    assert resized.cache_path != first.cache_path and resized.cache_path.name.startswith("train_12x20_")
    assert resized[0]["image"].shape == (3, 12, 20)

    # A changed file list gives a new key too.
    split = fake_root / "annotations" / "trainval.txt"
    split.write_text("".join(split.read_text().splitlines(keepends=True)[:-1]))
    shorter = OxfordPetSegmentation(fake_root, "train", image_size=16, cache="disk")
    assert shorter.cache_path != first.cache_path and len(shorter) == len(first) - 1
    assert_same_items(shorter, OxfordPetSegmentation(fake_root, "train", image_size=16))

    # An unusable file under the right name (not a .npy) is rebuilt, not trusted.
    shorter.cache_path.write_bytes(b"garbage")
    rebuilt = OxfordPetSegmentation(fake_root, "train", image_size=16, cache="disk")
    assert rebuilt.cache_path == shorter.cache_path
    assert_same_items(rebuilt, OxfordPetSegmentation(fake_root, "train", image_size=16))


def test_two_builders_at_once_both_get_a_complete_cache(fake_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two datasets (think: two torchrun processes) find no cache and build it at the same time;
    # the barrier holds each inside its build until the other has started its own.
    import threading

    from petlib.data import cache

    barrier = threading.Barrier(2, timeout=30)
    real_fill = cache.fill

    def build_together(out, decode, description):
        barrier.wait()
        return real_fill(out, decode, description)

    monkeypatch.setattr(cache, "fill", build_together)
    built: list[OxfordPetSegmentation] = []
    errors: list[BaseException] = []

    def build() -> None:
        try:
            built.append(OxfordPetSegmentation(fake_root, "train", image_size=16, cache="disk"))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    monkeypatch.undo()
    assert not errors and len(built) == 2
    assert built[0].cache_path == built[1].cache_path
    assert list((fake_root / ".cache").iterdir()) == [built[0].cache_path]  # no temp file left
    reference = OxfordPetSegmentation(fake_root, "train", image_size=16)
    for dataset in built:
        assert_same_items(dataset, reference)


def test_disk_cache_file_gets_the_permissions_of_any_new_file(fake_root: Path) -> None:
    import os

    old = os.umask(0o022)
    try:
        dataset = OxfordPetSegmentation(fake_root, "train", image_size=16, cache="disk")
    finally:
        os.umask(old)
    assert dataset.cache_path is not None and dataset.cache_path.stat().st_mode & 0o777 == 0o644


def test_disk_cache_falls_back_to_user_cache(fake_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A file where the cache folder should be: the root is as good as read-only for us
    # (tests may run as root, where chmod would not stop anything).
    (fake_root / ".cache").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    dataset = OxfordPetSegmentation(fake_root, "valid", image_size=16, cache="disk")
    assert dataset.cache_path.parent == tmp_path / "xdg" / "petlib"
    assert_same_items(dataset, OxfordPetSegmentation(fake_root, "valid", image_size=16))

    (tmp_path / "xdg").rename(tmp_path / "xdg-gone")
    (tmp_path / "xdg").write_text("")  # nowhere writable: memory, with a warning
    with pytest.warns(UserWarning, match="in memory"):
        in_memory = OxfordPetSegmentation(fake_root, "valid", image_size=16, cache="disk")
    assert in_memory.cache_path is None
    assert_same_items(in_memory, dataset)


def test_disk_cache_pickles_without_the_array(fake_root: Path) -> None:
    dataset = OxfordPetSegmentation(fake_root, "train", image_size=64, cache="disk")
    blob = pickle.dumps(dataset)
    assert len(blob) < 64 * 64 * 4  # not even one item's pixels: workers reopen the file
    assert_same_items(pickle.loads(blob), dataset)


def test_bad_cache_and_size_arguments(fake_root: Path) -> None:
    with pytest.raises(ValueError, match="cache"):
        OxfordPetSegmentation(fake_root, "train", cache="ram")
    with pytest.raises(ValueError, match="image_size"):
        OxfordPetSegmentation(fake_root, "train", image_size=(0, 10))


# ----------------------------------------------------------------------------- DataLoader


def test_load_dataset_batches() -> None:
    loader = load_dataset(SAMPLE_ROOT, "train", batch_size=4, image_size=32, num_workers=0, subset=14)
    batch = next(iter(loader))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["image"].dtype == torch.float32
    assert batch["mask"].shape == (4, 1, 32, 32) and batch["trimap"].shape == (4, 1, 32, 32)
    assert batch["index"].shape == (4,)
    assert isinstance(loader.sampler, torch.utils.data.RandomSampler)  # train shuffles
    assert len(loader) == 4  # 14 items, last batch kept

    test = load_dataset(SAMPLE_ROOT, "test", batch_size=3, image_size=32, num_workers=0, drop_last=True, subset=8)
    assert isinstance(test.sampler, torch.utils.data.SequentialSampler) and len(test) == 2


def test_load_dataset_with_sampler() -> None:
    dataset_size = len(read_split(SAMPLE_ROOT, "train"))
    sampler = torch.utils.data.distributed.DistributedSampler(range(dataset_size), num_replicas=2, rank=0)
    loader = load_dataset(SAMPLE_ROOT, "train", batch_size=2, image_size=16, num_workers=0, sampler=sampler)
    assert loader.sampler is sampler and len(loader) == 54  # 108 of the 216 items on this rank
    with pytest.raises(ValueError, match="sampler"):
        load_dataset(SAMPLE_ROOT, "train", batch_size=2, num_workers=0, sampler=sampler, shuffle=True)


# ----------------------------------------------------------------------------- download (offline)


class FakeResponse(io.BytesIO):
    """What urllib.request.urlopen returns, enough for torchvision's download helpers."""

    def __init__(self, url: str, payload: bytes) -> None:
        super().__init__(payload)
        self.url = url
        self.length = len(payload)


def serve(files: dict[str, bytes], down_hosts: tuple[str, ...] = ()):
    """A stand-in for urlopen: serves ``files`` by base name; hosts in ``down_hosts`` fail."""
    requested = []

    def urlopen(request, *args, **kwargs):
        url = request.full_url if isinstance(request, urllib.request.Request) else request
        requested.append(url)
        if any(host in url for host in down_hosts):
            raise urllib.error.URLError("host down (test)")
        name = url.rsplit("/", 1)[-1]
        if name not in files:
            raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)
        return FakeResponse(url, files[name])

    urlopen.requested = requested
    return urlopen


@pytest.fixture
def archives(tmp_path: Path) -> dict[str, bytes]:
    """images.tar.gz and annotations.tar.gz of a tiny fake release, as the real ones are laid out."""
    tree = make_tree(tmp_path / "release", trainval=["Abyssinian_1", "Bengal_1", "american_bulldog_1"], test=["Bengal_1"])
    result = {}
    for folder in ("images", "annotations"):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            tar.add(tree / folder, arcname=folder)
        result[f"{folder}.tar.gz"] = buffer.getvalue()
    return result


def md5_of(payload: bytes) -> str:
    return hashlib.md5(payload).hexdigest()


MIRRORS = ("https://down.example/pets/data/", "https://mirror.example/datasets/pets/")


def test_download_falls_back_to_second_mirror(
    tmp_path: Path, archives: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    resources = [(name, md5_of(payload)) for name, payload in archives.items()]
    urlopen = serve(archives, down_hosts=("down.example",))
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    root = data.download(tmp_path / "pets", mirrors=MIRRORS, resources=resources)

    assert any("mirror.example" in url for url in urlopen.requested)
    assert (root / "images.tar.gz").is_file() and (root / "annotations.tar.gz").is_file()
    assert list(root.glob("*.part")) == []
    dataset = OxfordPetSegmentation(root, "train", image_size=8)
    assert len(dataset) == 2 and dataset[0]["image"].shape == (3, 8, 8)

    # Everything present and verified: a second run touches no network at all.
    monkeypatch.setattr(urllib.request, "urlopen", serve({}, down_hosts=("example",)))
    assert data.download(root, mirrors=MIRRORS, resources=resources) == root


def test_download_bad_checksum(tmp_path: Path, archives: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(urllib.request, "urlopen", serve(archives))
    root = tmp_path / "pets"
    with pytest.raises(RuntimeError) as info:
        data.download(root, mirrors=MIRRORS, resources=[("annotations.tar.gz", "0" * 32)])
    message = str(info.value)
    assert all(mirror + "annotations.tar.gz" in message for mirror in MIRRORS)
    assert "MD5" in message
    assert list(root.iterdir()) == []  # neither the archive nor a .part file
    with pytest.raises(DatasetNotFoundError):
        OxfordPetSegmentation(root, "train")


def test_download_replaces_corrupt_archive(
    tmp_path: Path, archives: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "pets"
    root.mkdir()
    (root / "annotations.tar.gz").write_bytes(archives["annotations.tar.gz"][:100])  # interrupted
    (root / "annotations.tar.gz.part").write_bytes(b"stale")
    monkeypatch.setattr(urllib.request, "urlopen", serve(archives))
    resources = [(name, md5_of(payload)) for name, payload in archives.items()]
    data.download(root, mirrors=MIRRORS[1:], resources=resources)
    assert (root / "annotations.tar.gz").read_bytes() == archives["annotations.tar.gz"]
    assert not (root / "annotations.tar.gz.part").exists()
    assert len(read_split(root, "test")) == 1


def test_download_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    command = importlib.import_module("petlib.cli.data")  # petlib-data (petlib.cli's `data` is its runner)
    calls = []
    monkeypatch.setattr(command, "download", lambda root, **kwargs: calls.append((root, kwargs)) or root)
    command.main(["download", "--root", str(tmp_path / "x")])
    assert calls == [(tmp_path / "x", {"remove_archives": False})]
    with pytest.raises(SystemExit):
        command.main([])
