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
