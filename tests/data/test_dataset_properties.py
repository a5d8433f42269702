"""What the dataset hands a model, on a tiny fake release: labels resized without blending, images as PIL
resizes them, the splits' rule, and the batch path equal to the item path.

Written from mutation testing (``make mutation``, tests/README.md).
"""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from petlib.data.dataset import OxfordPetSegmentation, evenly_spaced, load_dataset, trimap_to_mask
from petlib.data.release import read_split, read_trimap

HEIGHT, WIDTH = 20, 30


def block_trimap(seed: int) -> np.ndarray:
    """A ``(20, 30)`` trimap of 2x2 blocks of random labels 1, 2, 3: every block boundary is a label edge."""
    blocks = np.random.default_rng(seed).integers(1, 4, (HEIGHT // 2, WIDTH // 2), dtype=np.uint8)
    return blocks.repeat(2, 0).repeat(2, 1)


def write_release(root: Path, count: int = 12) -> Path:
    """``count`` Abyssinian photos with block trimaps, all in trainval.txt, the first two in test.txt."""
    (root / "images").mkdir(parents=True)
    (root / "annotations" / "trimaps").mkdir(parents=True)
    names = [f"Abyssinian_{i}" for i in range(count)]
    for seed, name in enumerate(names):
        rgb = np.random.default_rng(100 + seed).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(root / "images" / f"{name}.jpg", "PNG")  # lossless, whatever the suffix
        Image.fromarray(block_trimap(seed)).save(root / "annotations" / "trimaps" / f"{name}.png")
    (root / "annotations" / "trainval.txt").write_text("".join(f"{n} 1 1 1\n" for n in names))
    (root / "annotations" / "test.txt").write_text("".join(f"{n} 1 1 1\n" for n in names[:2]))
    return root


@pytest.fixture
def release(tmp_path: Path) -> Path:
    return write_release(tmp_path / "pets")


@pytest.mark.parametrize("cache", [False, True])
def test_halving_a_block_trimap_keeps_one_label_per_block(release, cache):
    dataset = OxfordPetSegmentation(release, "trainval", image_size=(HEIGHT // 2, WIDTH // 2), cache=cache)
    for index in range(3):
        item = dataset[index]
        expected = block_trimap(index)[::2, ::2]  # nearest neighbour: each block's own label
        assert item["trimap"].shape == (1, HEIGHT // 2, WIDTH // 2) and item["trimap"].dtype == torch.uint8
        assert np.array_equal(item["trimap"][0].numpy(), expected)
        assert np.array_equal(item["mask"][0].numpy(), (expected != 2).astype(np.float32))


@pytest.mark.parametrize("size", [(13, 17), (31, 44)])
def test_masks_resized_from_a_trimap_are_0_and_1_and_a_nearest_neighbour_resize(release, size):
    dataset = OxfordPetSegmentation(release, "trainval", image_size=size)
    item = dataset[0]
    trimap = read_trimap(dataset.trimap_path(0))
    nearest = np.asarray(Image.fromarray(trimap).resize((size[1], size[0]), Image.NEAREST))
    assert set(np.unique(item["mask"].numpy())) <= {0.0, 1.0}
    assert set(np.unique(item["trimap"].numpy())) <= {1, 2, 3}
    assert np.array_equal(item["trimap"][0].numpy(), nearest)
    assert np.array_equal(item["mask"][0].numpy(), trimap_to_mask(nearest))


def test_images_are_pils_antialiased_bilinear_resize_in_0_1(release):
    dataset = OxfordPetSegmentation(release, "trainval", image_size=(8, 12))
    photo = Image.open(dataset.image_path(1)).convert("RGB")
    expected = np.asarray(photo.resize((12, 8), Image.BILINEAR)).transpose(2, 0, 1) / 255
    image = dataset[1]["image"]
    assert image.dtype == torch.float32 and image.shape == (3, 8, 12)
    np.testing.assert_allclose(image.numpy(), expected, atol=1e-6)


def test_non_square_sizes_are_height_then_width(release):
    dataset = OxfordPetSegmentation(release, "trainval", image_size=(6, 9))
    assert dataset.image_size == (6, 9) and dataset[0]["image"].shape == (3, 6, 9)
    assert OxfordPetSegmentation(release, "trainval", image_size=7).image_size == (7, 7)


@pytest.mark.parametrize("cache", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
def test_a_batch_read_at_once_equals_its_items(release, cache, dtype):
    dataset = OxfordPetSegmentation(release, "trainval", image_size=(10, 15), cache=cache, dtype=dtype)
    indices = [4, 0, 7]
    for batch_item, index in zip(dataset.__getitems__(indices), indices):
        item = dataset[index]
        assert batch_item["index"] == item["index"] == index
        for key in ("image", "mask", "trimap"):
            assert batch_item[key].dtype == item[key].dtype
            assert torch.equal(batch_item[key], item[key]), key


def test_uint8_items_hold_the_same_pixels_as_float_ones(release):
    as_float = OxfordPetSegmentation(release, "trainval", image_size=(10, 15))[2]
    as_uint8 = OxfordPetSegmentation(release, "trainval", image_size=(10, 15), dtype=torch.uint8)[2]
    assert as_uint8["image"].dtype == as_uint8["mask"].dtype == torch.uint8
    torch.testing.assert_close(as_uint8["image"].float() / 255, as_float["image"])
    assert torch.equal(as_uint8["mask"].float(), as_float["mask"])


def test_valid_is_every_tenth_line_from_the_first_and_train_the_rest(release):
    names = [e.name for e in read_split(release, "trainval")]
    assert [e.name for e in read_split(release, "valid")] == [names[0], names[10]]
    assert [e.name for e in read_split(release, "train")] == names[1:10] + names[11:]
    assert [e.name for e in read_split(release, "test")] == names[:2]
    entry = read_split(release, "test")[0]
    assert (entry.class_id, entry.species, entry.breed) == (1, "cat", "Abyssinian")


def test_evenly_spaced_takes_the_first_and_every_len_over_count_th():
    assert evenly_spaced(list(range(10)), 4) == [0, 2, 5, 7]
    assert evenly_spaced(list(range(5)), 5) == [0, 1, 2, 3, 4]
    assert evenly_spaced(list(range(3)), 7) == [0, 1, 2]


def test_trimap_to_mask_of_every_kind():
    values = [1, 2, 3, 2]
    for trimap in (np.array(values, np.uint8), np.array(values, np.float32), torch.tensor(values, dtype=torch.uint8),
                   torch.tensor(values, dtype=torch.float32), torch.tensor(values)):
        mask = trimap_to_mask(trimap)
        assert np.asarray(mask).tolist() == [1.0, 0.0, 1.0, 0.0]
    assert trimap_to_mask(torch.tensor(values), torch.uint8).dtype == torch.uint8
    assert trimap_to_mask(np.array(values)).dtype == np.float32


def test_a_loader_keeps_a_short_last_batch_only_when_asked_and_never_empties_an_epoch(release):
    sizes = lambda loader: [len(b["index"]) for b in loader]  # noqa: E731
    assert sizes(load_dataset(release, "trainval", 5, image_size=4, num_workers=0)) == [5, 5, 2]
    assert sizes(load_dataset(release, "trainval", 5, image_size=4, num_workers=0, drop_last=True)) == [5, 5]
    assert sizes(load_dataset(release, "test", 5, image_size=4, num_workers=0, drop_last=True)) == [2]
    in_order = load_dataset(release, "trainval", 12, image_size=4, num_workers=0)
    assert next(iter(in_order))["index"].tolist() == list(range(12))  # only train shuffles by default
    shuffled = load_dataset(release, "train", 10, image_size=4, num_workers=0, seed=1)
    assert sorted(next(iter(shuffled))["index"].tolist()) == list(range(10))
    assert next(iter(shuffled))["index"].tolist() != list(range(10))
