"""Properties of the data layer. The dataset, on a tiny fake release: labels resized without blending,
images as PIL resizes them, the splits' rule, the batch path equal to the item path. The
augmentation (:mod:`petlib.data.transforms`): its random parameters stay in the ranges it promises
and its colour jitter is torchvision's; the affine matrices are read back into crop size, aspect
ratio, centre, rotation and flip (``theta = [[w cos f, -w sin, cx], [h sin f, h cos, cy]]``) and
checked over many draws.

Written from mutation testing (``make mutation``, tests/README.md).
"""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import functional as TF

from petlib.data.dataset import OxfordPetSegmentation, evenly_spaced, load_dataset, trimap_to_mask
from petlib.data.release import read_split, read_trimap
from petlib.data.transforms import Augment

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
    sizes = lambda loader: [len(b["index"]) for b in loader]
    assert sizes(load_dataset(release, "trainval", 5, image_size=4, num_workers=0)) == [5, 5, 2]
    assert sizes(load_dataset(release, "trainval", 5, image_size=4, num_workers=0, drop_last=True)) == [5, 5]
    assert sizes(load_dataset(release, "test", 5, image_size=4, num_workers=0, drop_last=True)) == [2]
    in_order = load_dataset(release, "trainval", 12, image_size=4, num_workers=0)
    assert next(iter(in_order))["index"].tolist() == list(range(12))  # only train shuffles by default
    shuffled = load_dataset(release, "train", 10, image_size=4, num_workers=0, seed=1)
    assert sorted(next(iter(shuffled))["index"].tolist()) == list(range(10))
    assert next(iter(shuffled))["index"].tolist() != list(range(10))


# --------------------------------------------------------------------------- augmentation

N = 4000


def parameters(augment: Augment, seed: int = 0) -> dict[str, torch.Tensor]:
    """Crop half-sizes, centre, angle (degrees) and flip of ``N`` draws, read back from the matrices."""
    theta = augment.affine(N, torch.zeros(1), torch.Generator().manual_seed(seed)).double()
    (a, b, cx), (c, d, cy) = theta[:, 0].unbind(1), theta[:, 1].unbind(1)
    w, h = torch.hypot(a, b), torch.hypot(c, d)
    det = a * d - b * c  # w h f
    return {"w": w, "h": h, "cx": cx, "cy": cy, "flip": det.sign(), "area": det.abs(),
            "angle": torch.rad2deg(torch.atan2(-b, d * w / h)), "orthogonal": (a * c + b * d).abs().max()}


def test_the_matrix_is_a_scaled_rotation_with_an_optional_mirror():
    p = parameters(Augment(scale=(0.5, 0.9), rotation=30))
    assert p["orthogonal"] < 1e-6  # rows at right angles: no shear
    assert set(p["flip"].tolist()) == {-1.0, 1.0}


def test_crop_area_and_aspect_ratio_cover_their_ranges():
    p = parameters(Augment(scale=(0.5, 0.9), ratio=(3 / 4, 4 / 3), rotation=0))
    area, ratio = p["area"], p["w"] / p["h"]
    assert 0.5 - 1e-6 <= area.min() < 0.51 and 0.89 < area.max() <= 0.9 + 1e-6
    assert 3 / 4 - 1e-6 <= ratio.min() < 0.76 and 1.32 < ratio.max() <= 4 / 3 + 1e-6
    assert ratio.log().mean().abs() < 0.01  # log-uniform, centred on square


def test_zooming_in_keeps_the_crop_inside_the_image_and_zooming_out_may_leave_it():
    inside = parameters(Augment(scale=(0.8, 1.0), ratio=(3 / 4, 4 / 3)))
    assert inside["w"].max() <= 1 + 1e-6 and inside["h"].max() <= 1 + 1e-6
    assert inside["w"].max() > 0.999  # clamped at the image's edge, not below it
    outside = parameters(Augment(scale=(0.8, 1.5), ratio=(3 / 4, 4 / 3)))
    assert outside["w"].max() > 1.3 and outside["h"].max() > 1.3


@pytest.mark.parametrize("scale", [(0.5, 0.9), (1.2, 1.5)])
def test_the_centre_ranges_over_where_the_crop_still_covers_or_holds_the_image(scale):
    p = parameters(Augment(scale=scale))
    for centre, size in ((p["cx"], p["w"]), (p["cy"], p["h"])):
        relative = centre / (1 - size).abs()
        assert relative.min() >= -1 - 1e-6 and relative.max() <= 1 + 1e-6
        assert relative.min() < -0.98 and relative.max() > 0.98 and relative.mean().abs() < 0.05


def test_rotation_is_uniform_in_plus_minus_its_degrees():
    angle = parameters(Augment(rotation=5.0))["angle"]
    assert angle.min() >= -5 - 1e-6 and angle.max() <= 5 + 1e-6
    assert angle.min() < -4.99 and angle.max() > 4.99 and angle.mean().abs() < 0.1


def test_half_the_samples_are_mirrored_and_none_without_hflip():
    assert (parameters(Augment())["flip"] < 0).double().mean() == pytest.approx(0.5, abs=0.03)
    assert (parameters(Augment(hflip=False))["flip"] > 0).all()


def test_the_matrices_take_the_images_dtype():
    theta = Augment().affine(3, torch.zeros(1, dtype=torch.float64))
    assert theta.dtype == torch.float64


def test_colour_jitter_is_torchvisions_brightness_contrast_then_saturation():
    # pixel values in the middle of [0, 1], so no step clips and the one-pass version must agree exactly
    n, j = 6, 0.3
    images = 0.35 + 0.3 * torch.rand(n, 3, 5, 4, generator=torch.Generator().manual_seed(1))
    jittered = Augment(color_jitter=j).jitter(images, torch.Generator().manual_seed(2))
    u = torch.rand(3 * n, generator=torch.Generator().manual_seed(2))  # the factors it draws, in that order
    b, c, s = (1 - j + 2 * j * u).view(3, n)
    for i in range(n):
        expected = TF.adjust_saturation(TF.adjust_contrast(TF.adjust_brightness(images[i], b[i].item()), c[i].item()),
                                        s[i].item())
        torch.testing.assert_close(jittered[i], expected, atol=2e-4, rtol=0)


def test_colour_jitter_keeps_the_dtype_and_clips_to_0_1():
    images = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    out = Augment(color_jitter=0.9).jitter(images, torch.Generator().manual_seed(0))
    assert out.dtype == torch.float64 and out.min() >= 0 and out.max() <= 1


def test_no_rotation_no_crop_no_flip_is_the_identity_matrix():
    theta = Augment(hflip=False, scale=(1, 1), ratio=(1, 1), rotation=0).affine(2, torch.zeros(1))
    torch.testing.assert_close(theta, torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(2, 2, 3))


# --------------------------------------------------------------------------- transforms given to the dataset, reading


def test_a_plain_transform_gets_mask_and_trimap_and_must_give_both_back(release):
    def to_float64(image, masks):
        return image, masks.double()

    item = OxfordPetSegmentation(release, "trainval", image_size=(10, 15), transform=to_float64)[3]
    assert item["mask"].dtype == torch.float32 and item["trimap"].dtype == torch.uint8 and item["index"] == 3
    assert np.array_equal(item["trimap"][0].numpy(), block_trimap(3)[::2, ::2])
    dropped = OxfordPetSegmentation(release, "trainval", image_size=(10, 15), transform=lambda i, m: (i, m[:1]))
    with pytest.raises(ValueError, match="masks"):
        dropped[0]


def test_a_v2_transform_gets_its_index_and_must_keep_the_shapes(release):
    from torchvision.transforms import v2

    item = OxfordPetSegmentation(release, "trainval", image_size=(10, 15), transform=v2.RandomHorizontalFlip(p=1))[5]
    assert item["index"] == 5
    assert np.array_equal(item["trimap"][0].numpy(), block_trimap(5)[::2, ::2][:, ::-1])

    class Returns(v2.Transform):
        def __init__(self, change):
            super().__init__()
            self.change = change

        def forward(self, *inputs):
            return self.change(*inputs)

    bad = {
        "trimap smaller": lambda image, mask, trimap: (image, mask, trimap[..., :-1]),
        "two-plane masks": lambda image, mask, trimap: (image, mask.repeat(2, 1, 1), trimap.repeat(2, 1, 1)),
        "image smaller": lambda image, mask, trimap: (image[..., :-1], mask, trimap),
    }
    for change in bad.values():
        dataset = OxfordPetSegmentation(release, "trainval", image_size=(10, 15), transform=Returns(change))
        with pytest.raises(ValueError, match="expected"):
            dataset[0]


def test_a_jpeg_is_decoded_at_a_reduced_scale_only_down_to_min_size(tmp_path):
    from petlib.data.release import read_image, read_image_and_size

    path = tmp_path / "big.jpg"
    Image.fromarray(np.zeros((400, 320, 3), np.uint8)).save(path, "JPEG")
    image, size = read_image_and_size(path, min_size=(90, 30))
    assert size == (320, 400) and image.size == (80, 100)  # 1/4 scale: still at least 90 high (1/8 is 50)
    assert read_image(path, min_size=(90, 30)).size == (80, 100)
    assert read_image(path, min_size=(40, 30)).size == (40, 50)  # 1/8
    assert read_image(path).size == (320, 400)


def test_without_the_shipped_sample_the_missing_data_error_says_how_to_get_it(tmp_path, monkeypatch):
    from petlib.data import release as release_module

    monkeypatch.setattr(release_module, "SAMPLE_ROOT", tmp_path / "no-sample")
    with pytest.raises(release_module.DatasetNotFoundError, match="git clone"):
        read_split(tmp_path / "nothing", "train")


def test_dataset_present_needs_every_part_of_the_layout(release):
    from petlib.data.release import dataset_present

    assert dataset_present(release)
    (release / "annotations" / "test.txt").unlink()
    assert not dataset_present(release)


def test_the_datasets_repr_names_its_root_split_size_and_count(release):
    text = repr(OxfordPetSegmentation(release, "valid", image_size=(6, 9)))
    assert text == f"OxfordPetSegmentation(root={str(release)!r}, mode='valid', image_size=(6, 9), items=2)"


def test_defaults_and_the_smallest_valid_arguments(release):
    from petlib.data.dataset import _normalise_size

    dataset = OxfordPetSegmentation(release)
    assert dataset.mode == "train" and dataset.image_size == (256, 256)
    assert _normalise_size(1) == (1, 1)
    assert len(OxfordPetSegmentation(release, "trainval", image_size=4, subset=1)) == 1
    assert OxfordPetSegmentation(release, "test", image_size=4, cache="memory")._cache is not None


@pytest.mark.parametrize("mode, split_file", [("test", "annotations/test.txt"), ("valid", "annotations/trainval.txt")])
def test_missing_files_are_listed_with_the_split_file_that_names_them(release, mode, split_file):
    for name in [f"Abyssinian_{i}" for i in range(12)]:
        (release / "images" / f"{name}.jpg").unlink()
    with pytest.raises(FileNotFoundError) as error:
        OxfordPetSegmentation(release, mode, image_size=4)
    message = str(error.value)
    assert split_file in message
    listed = [line for line in message.splitlines() if line.startswith("  /")]
    assert len(listed) == 2 and "\n  ..." not in message  # 2 missing images: both shown
    for name in [f"Abyssinian_{i}" for i in range(12)]:
        (release / "annotations" / "trimaps" / f"{name}.png").unlink()
    with pytest.raises(FileNotFoundError) as error:
        OxfordPetSegmentation(release, "trainval", image_size=4)
    message = str(error.value)
    assert "lists 24 missing" in message and len([x for x in message.splitlines() if x.startswith("  /")]) == 5
    assert "\n  ...\n" in message


@pytest.mark.parametrize("size", [(30, 20), (25, 24)])  # (height, width): each side alone rules out an eighth
def test_a_large_jpeg_is_decoded_at_a_reduced_scale_of_twice_the_target_then_resized(tmp_path, size):
    root = tmp_path / "pets"
    (root / "images").mkdir(parents=True)
    (root / "annotations" / "trimaps").mkdir(parents=True)
    rgb = np.random.default_rng(0).integers(0, 256, (400, 320, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(root / "images" / "Abyssinian_1.jpg", "JPEG", quality=90)
    Image.fromarray(np.full((400, 320), 2, np.uint8)).save(root / "annotations" / "trimaps" / "Abyssinian_1.png")
    (root / "annotations" / "trainval.txt").write_text("Abyssinian_1 1 1 1\n")
    (root / "annotations" / "test.txt").write_text("Abyssinian_1 1 1 1\n")
    height, width = size
    item = OxfordPetSegmentation(root, "test", image_size=size)[0]
    with Image.open(root / "images" / "Abyssinian_1.jpg") as photo:
        # at least twice the target: a quarter of the file (an eighth, 40 x 50, is short)
        photo.draft("RGB", (2 * width, 2 * height))
        assert photo.size == (80, 100)
        expected = np.asarray(photo.convert("RGB").resize((width, height), Image.BILINEAR)).transpose(2, 0, 1) / 255
    np.testing.assert_allclose(item["image"].numpy(), expected, atol=1e-6)


def test_five_missing_files_are_all_shown_and_six_are_cut_short(release):
    for i in range(5):
        (release / "images" / f"Abyssinian_{i}.jpg").unlink()
    with pytest.raises(FileNotFoundError) as error:
        OxfordPetSegmentation(release, "trainval", image_size=4)
    assert "lists 5 missing" in str(error.value) and "..." not in str(error.value)
    (release / "images" / "Abyssinian_5.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"lists 6 missing(.|\n)*\n  \.\.\."):
        OxfordPetSegmentation(release, "trainval", image_size=4)


def test_a_cached_dataset_with_a_transform_applies_it_to_batches_too(release):
    dataset = OxfordPetSegmentation(release, "trainval", image_size=(10, 15), cache=True,
                                    transform=lambda image, masks: (1 - image, masks))
    batch = dataset.__getitems__([0, 1])
    plain = OxfordPetSegmentation(release, "trainval", image_size=(10, 15), cache=True)
    torch.testing.assert_close(batch[1]["image"], 1 - plain[1]["image"])


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_load_dataset_passes_its_settings_to_the_dataset_and_the_loader(release, monkeypatch):
    from petlib.data import dataset as dataset_module

    loader = load_dataset(release, "trainval", 4, num_workers=0)
    assert loader.dataset.image_size == (256, 256) and loader.dataset._cache is None and loader.pin_memory is False
    flipped = load_dataset(release, "trainval", 4, image_size=(10, 15), num_workers=0, cache=True,
                           transform=lambda image, masks: (image.flip(-1), masks.flip(-1)))
    assert flipped.dataset._cache is not None
    batch = next(iter(flipped))
    torch.testing.assert_close(batch["image"][0], OxfordPetSegmentation(release, "trainval", image_size=(10, 15))[0]
                               ["image"].flip(-1))
    monkeypatch.setattr(dataset_module.os, "cpu_count", lambda: 3)
    assert load_dataset(release, "trainval", 4, image_size=4).num_workers == 3
    monkeypatch.setattr(dataset_module.os, "cpu_count", lambda: 16)
    assert load_dataset(release, "trainval", 4, image_size=4).num_workers == 4
    monkeypatch.setattr(dataset_module.os, "cpu_count", lambda: None)
    one = load_dataset(release, "trainval", 4, image_size=4)
    assert one.num_workers == 1 and one.persistent_workers
    assert not load_dataset(release, "trainval", 4, image_size=4, num_workers=0).persistent_workers


def test_a_seeded_shuffle_repeats_and_another_seed_differs(release):
    order = lambda seed: next(iter(load_dataset(release, "trainval", 12, image_size=4, num_workers=0,
                                                 shuffle=True, seed=seed)))["index"].tolist()
    assert order(1) == order(1) and order(1) != order(2)


def test_in_a_distributed_run_each_process_gets_its_share(release, monkeypatch):
    from petlib.data import dataset as dataset_module

    made = []

    class FakeDistributedSampler(torch.utils.data.Sampler):
        def __init__(self, dataset, **kwargs):
            made.append((dataset, kwargs))
            self.n = len(dataset) // 2

        def __iter__(self):
            return iter(range(self.n))

        def __len__(self):
            return self.n

    monkeypatch.setattr(dataset_module, "DistributedSampler", FakeDistributedSampler)
    monkeypatch.setattr(dataset_module.dist, "is_distributed", lambda: True)
    monkeypatch.setattr(dataset_module.dist, "world_size", lambda: 2)
    monkeypatch.setattr(dataset_module.dist, "rank", lambda: 1)
    for seed, expected in ((None, 0), (5, 5)):
        made.clear()
        loader = load_dataset(release, "trainval", 4, image_size=4, num_workers=0, shuffle=True, seed=seed)
        (dataset, kwargs), = made
        assert dataset is loader.dataset and kwargs == {"shuffle": True, "seed": expected, "drop_last": True}
    # in order (evaluation): every image exactly once over the processes, this one every second from 1
    in_order = load_dataset(release, "trainval", 4, image_size=4, num_workers=0)
    assert list(in_order.sampler) == [1, 3, 5, 7, 9, 11]


def test_is_sample_knows_the_shipped_sample(tmp_path):
    from petlib.data.release import SAMPLE_ROOT, is_sample

    assert is_sample(SAMPLE_ROOT) and not is_sample(tmp_path)


@pytest.mark.parametrize("kind", ["palette", "16-bit"])
def test_trimaps_stored_as_palette_or_16_bit_pngs_read_as_their_labels(tmp_path, kind):
    labels = block_trimap(0)
    if kind == "palette":
        image = Image.fromarray(labels, mode="L").convert("P")  # indices equal to the grey values
        image.putpalette([0, 0, 0] * 256)
    else:
        image = Image.fromarray(labels.astype(np.uint16))
    image.save(tmp_path / "t.png")
    assert np.array_equal(read_trimap(tmp_path / "t.png"), labels)


@pytest.mark.parametrize("bad", [0, 4])
def test_a_trimap_with_any_value_outside_1_to_3_is_refused(tmp_path, bad):
    labels = block_trimap(0)
    labels[0, 0] = bad
    Image.fromarray(labels).save(tmp_path / "t.png")
    with pytest.raises(ValueError, match="outside"):
        read_trimap(tmp_path / "t.png")
