"""Batch augmentation: shapes, masks stay binary and aligned with their images."""
import pytest
import torch

from petlib.data.transforms import Augment


def test_shapes_dtypes_and_binary_masks():
    images = torch.rand(4, 3, 32, 40)
    masks = (torch.rand(4, 2, 32, 40) > 0.5).float()
    out_images, out_masks = Augment()(images, masks)
    assert out_images.shape == images.shape and out_masks.shape == masks.shape
    assert out_masks.dtype == masks.dtype
    assert set(out_masks.unique().tolist()) <= {0.0, 1.0}
    assert 0 <= out_images.min() and out_images.max() <= 1


def test_identity_settings_change_nothing():
    images = torch.rand(2, 3, 16, 16)
    masks = (torch.rand(2, 1, 16, 16) > 0.5).float()
    identity = Augment(hflip=False, scale=(1, 1), ratio=(1, 1), rotation=0, color_jitter=0)
    out_images, out_masks = identity(images, masks)
    assert torch.allclose(out_images, images, atol=1e-5)
    assert torch.equal(out_masks, masks)


def blocks(n: int, size: int, block: int = 6, seed: int = 0) -> torch.Tensor:
    """``(n, 1, size, size)`` random 0/1 masks made of ``block``-pixel squares: many edges and corners."""
    coarse = (torch.rand(n, 1, size // block, size // block, generator=torch.Generator().manual_seed(seed)) > 0.5)
    return coarse.float().repeat_interleave(block, 2).repeat_interleave(block, 3)


@pytest.mark.parametrize("augment", [Augment(color_jitter=0),
                                     Augment(scale=(0.5, 1.3), rotation=30.0, color_jitter=0)],
                         ids=["defaults", "strong"])
def test_geometry_moves_image_and_mask_together(augment):
    # Encode the mask into the image: after augmentation (no colour change) each mask pixel must
    # agree with the image at the same place. The image is sampled bilinearly and the mask from
    # the nearest pixel, so where the two differ the image is a blend, and the nearest pixel
    # weighs at least 1/4 of it: under a mask pixel of 1 the image is at least 0.25, under a 0
    # at most 0.75. A mask shifted by one pixel puts a 1 where the image is near 0.
    masks = blocks(16, 48)
    images = masks.expand(-1, 3, -1, -1).clone()
    for seed in range(3):
        out_images, out_masks = augment(images, masks, generator=torch.Generator().manual_seed(seed))
        gray = out_images[:, :1]
        assert gray[out_masks == 1].min() >= 0.25 - 1e-5
        assert gray[out_masks == 0].max() <= 0.75 + 1e-5
        assert ((gray > 0.5).float() == out_masks).float().mean() > 0.97  # and mostly they agree outright
        assert (out_masks != masks).flatten(1).any(1).all()  # every sample was moved


def test_samples_get_different_parameters_and_generator_reproduces():
    images = torch.rand(1, 3, 24, 24).expand(6, -1, -1, -1).contiguous()
    masks = torch.zeros(6, 1, 24, 24)
    out, _ = Augment()(images, masks, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(out[0], out[1])
    again, _ = Augment()(images, masks, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_hflip_alone_flips_or_keeps():
    images = torch.rand(16, 3, 8, 8)
    masks = torch.zeros(16, 1, 8, 8)
    out, _ = Augment(scale=(1, 1), ratio=(1, 1), rotation=0, color_jitter=0)(images, masks)
    for a, b in zip(out, images):
        assert torch.allclose(a, b, atol=1e-5) or torch.allclose(a, b.flip(-1), atol=1e-5)


def test_augment_defaults_are_the_configs():
    from petlib.training.config import TrainConfig

    config = TrainConfig()
    assert Augment() == config.augmentation()
    assert (Augment().scale, Augment().rotation, Augment().color_jitter) == ((0.8, 1.0), 5.0, 0.1)
    custom = TrainConfig(crop_scale_min=0.5, crop_scale_max=1.2, rotation=20.0, color_jitter=0.3)
    assert custom.augmentation() == Augment(scale=(0.5, 1.2), rotation=20.0, color_jitter=0.3)


def test_lr_range_test_augments_as_the_config_it_tunes(monkeypatch):
    from petlib.data import SAMPLE_ROOT
    from petlib.research.experiments import lr_range_test
    from petlib.training.config import TrainConfig

    used = []
    real_call = Augment.__call__

    def spy(self, images, masks, generator=None):
        used.append(self)
        return real_call(self, images, masks, generator)

    monkeypatch.setattr(Augment, "__call__", spy)
    config = TrainConfig(model="unet", model_kwargs={"base_channels": 4}, data_path=str(SAMPLE_ROOT), image_size=16,
                         subset=4, batch_size=2, crop_scale_min=0.5, rotation=30.0, color_jitter=0.2, device="cpu",
                         cache=False, num_workers=0)
    curve = lr_range_test(config, steps=2)
    assert len(curve) == 2
    assert used and all(a == Augment(scale=(0.5, 1.0), rotation=30.0, color_jitter=0.2) for a in used)


# --------------------------------------------------------------------------- copy-paste

NO_GEOMETRY = dict(hflip=False, scale=(1, 1), ratio=(1, 1), rotation=0, color_jitter=0)


def _flat_photos(n: int, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Photo ``i`` is one grey level ``(i + 1) / (n + 1)``; its pet a centred square of half the side."""
    images = ((torch.arange(n) + 1) / (n + 1)).view(n, 1, 1, 1).expand(n, 3, size, size).contiguous()
    masks = torch.zeros(n, 1, size, size)
    masks[..., size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1
    return images, masks


def test_copy_paste_pastes_the_previous_photos_pet_and_marks_it_pet():
    n, size = 6, 32
    images, masks = _flat_photos(n, size)
    out_images, out_masks = Augment(**NO_GEOMETRY, copy_paste=1.0)(images, masks,
                                                                   generator=torch.Generator().manual_seed(0))
    levels = images[:, 0, 0, 0]
    for i in range(n):
        own = (out_images[i, 0] - levels[i]).abs() < 1e-5
        pasted = (out_images[i, 0] - levels[i - 1]).abs() < 1e-5  # photo i - 1's pet (i = 0: the last photo's)
        assert (own | pasted).all()  # every pixel is the photo's own or the pasted pet's
        assert pasted.any() and not (own & pasted).any()
        assert (out_masks[i, 0][pasted] == 1).all()  # the pasted pet is pet ...
        assert torch.equal(out_masks[i, 0][own], masks[i, 0][own])  # ... the rest keeps its mask
        # The pasted square: (0.4 to 0.8 of the side) x half the side, whole (it fits in the frame).
        side = pasted.sum().item() ** 0.5 / (size / 2)
        assert 0.4 - 0.1 <= side <= 0.8 + 0.1, side


def test_copy_paste_keeps_masks_binary_and_carries_every_mask_plane():
    images, masks = _flat_photos(8)
    keep = torch.ones_like(masks)
    keep[1] = 0  # photo 1's second plane is 0 everywhere: photo 2 gets 0s where 1's pet lands
    out_images, out_masks = Augment(**NO_GEOMETRY, copy_paste=1.0)(images, torch.cat([masks, keep], 1))
    assert set(out_masks.unique().tolist()) <= {0.0, 1.0}
    pasted_on_2 = (out_images[2, 0] - images[1, 0, 0, 0]).abs() < 1e-5
    assert pasted_on_2.any() and (out_masks[2, 1][pasted_on_2] == 0).all()
    assert (out_masks[2, 1][~pasted_on_2] == 1).all()


def test_copy_paste_probability_and_what_it_leaves_alone():
    images, masks = _flat_photos(400, size=16)
    out_images, _ = Augment(**NO_GEOMETRY, copy_paste=0.5)(images, masks, generator=torch.Generator().manual_seed(1))
    changed = ((out_images - images).abs() > 1e-4).flatten(1).any(1).float().mean().item()
    assert 0.4 < changed < 0.6
    # Off (the default), or a batch of one: nothing is pasted and no random number is drawn.
    augment = Augment(**NO_GEOMETRY)
    generator = torch.Generator().manual_seed(2)
    state = generator.get_state()
    kept_images, kept_masks = augment.paste(images, masks, generator)
    assert augment.copy_paste == 0.0 and kept_images is images and kept_masks is masks
    kept_images, kept_masks = Augment(copy_paste=1.0).paste(images[:1], masks[:1], generator)
    assert torch.equal(kept_images, images[:1]) and torch.equal(kept_masks, masks[:1])
    assert torch.equal(generator.get_state(), state)


def test_copy_paste_comes_from_the_config_and_is_checked():
    from petlib.training.config import TrainConfig

    assert TrainConfig(copy_paste=0.5).augmentation() == Augment(copy_paste=0.5)
    for bad in (-0.1, 1.5, True):
        with pytest.raises(ValueError, match="copy_paste"):
            TrainConfig(copy_paste=bad)
