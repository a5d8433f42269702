"""Training augmentation on batches of tensors, on whatever device the batch is on.

Augmenting a batch *after* it reaches the GPU keeps the data loader to one job —
handing over already-decoded, already-resized uint8 images — so the loader is never the
bottleneck and the CPU cost of augmentation disappears on a GPU. Every sample in the
batch gets its own random parameters.

The geometric part (random resized crop, rotation, horizontal flip) is one affine map
per sample, applied with :func:`torch.nn.functional.grid_sample`: bilinear for the
images, nearest for the masks, so a mask stays exactly 0/1 and lines up with its image.
Areas that fall outside the source (after a rotation) are filled by reflection, which
looks like more of the scene rather than black corners the test set never has.

Copy-paste (off by default) pastes the pet of the batch's previous photo, shrunk and moved,
onto a photo: the simple copy-paste of Ghiasi et al. (2021), which shows the network pets on
backgrounds and at sizes the few training photos do not.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Augment"]


@dataclass
class Augment:
    """Random resized crop, rotation, horizontal flip and colour jitter for a batch.

    The defaults are petlib's, also :class:`~petlib.training.config.TrainConfig`'s (which takes them
    from here): the mildest of the settings compared on validation Dice (README), since with
    30 epochs from scratch stronger augmentation underfits. :meth:`petlib.training.config.TrainConfig.augmentation`
    builds the augmentation a config asks for.

    Args:
        hflip: flip left-right with probability 0.5 (pets are left-right symmetric;
            no vertical flips, pets are rarely upside down).
        scale: range of the crop's area as a fraction of the image (1, 1 disables);
            values above 1 zoom out.
        ratio: range of the crop's aspect ratio (log-uniform).
        rotation: maximum rotation in degrees, uniform in ``[-rotation, rotation]``.
        color_jitter: brightness, contrast and saturation factors are drawn uniformly
            from ``[1 - color_jitter, 1 + color_jitter]`` (0 disables).
        copy_paste: probability that a photo gets the pet of the batch's previous photo pasted
            onto it (0 disables): see :meth:`paste`.
        paste_scale: range of the pasted pet's size, as a fraction of the photo's side.

    Call with ``images`` ``(N, 3, H, W)`` float in [0, 1] and ``masks`` ``(N, K, H, W)``
    (any K: binary mask, trimap, ...; with ``copy_paste`` the first plane must be the 0/1 pet
    mask); returns both, augmented with the same geometry, same shapes and dtypes.
    ``generator`` makes a call reproducible.
    """

    hflip: bool = True
    scale: tuple[float, float] = (0.8, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    rotation: float = 5.0
    color_jitter: float = 0.1
    copy_paste: float = 0.0
    paste_scale: tuple[float, float] = (0.4, 0.8)

    def _uniform(self, n: int, low: float, high: float, like: Tensor, generator) -> Tensor:
        u = torch.rand(n, device=like.device, generator=generator)
        return low + (high - low) * u

    def affine(self, n: int, like: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Random ``(n, 2, 3)`` matrices mapping output to input coordinates in [-1, 1]."""
        area = self._uniform(n, *self.scale, like, generator)
        log_r = self._uniform(n, math.log(self.ratio[0]), math.log(self.ratio[1]), like, generator)
        r = torch.exp(log_r)
        # Half-widths of the crop in normalised coordinates (1 = the whole image). An area
        # above 1 zooms out: the pet gets smaller and the border is filled by reflection,
        # which teaches the small pets that a zoom-in-only crop never shows.
        w, h = torch.sqrt(area * r), torch.sqrt(area / r)
        if self.scale[1] <= 1:
            w, h = w.clamp(max=1.0), h.clamp(max=1.0)
        # Centre anywhere that keeps the crop inside the image (zoom in) or the image
        # inside the crop (zoom out).
        cx = self._uniform(n, -1, 1, like, generator) * (1 - w).abs()
        cy = self._uniform(n, -1, 1, like, generator) * (1 - h).abs()
        angle = self._uniform(n, -self.rotation, self.rotation, like, generator) * (math.pi / 180)
        flip = torch.ones(n, device=like.device)
        if self.hflip:
            flip = torch.where(torch.rand(n, device=like.device, generator=generator) < 0.5, -flip, flip)
        cos, sin = torch.cos(angle), torch.sin(angle)
        # input = T + S · R · F · output
        theta = torch.stack(
            [
                torch.stack([w * cos * flip, -w * sin, cx], dim=1),
                torch.stack([h * sin * flip, h * cos, cy], dim=1),
            ],
            dim=1,
        )
        return theta.to(like.dtype)

    def jitter(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Per-sample brightness, contrast and saturation jitter of ``(N, 3, H, W)`` images."""
        n, j = images.shape[0], self.color_jitter
        factors = self._uniform(3 * n, 1 - j, 1 + j, images, generator).view(3, n, 1, 1, 1).to(images.dtype)
        b, c, s = factors  # brightness, contrast, saturation
        # x -> b*x; then (x - mean gray)*c + mean gray; then (x - gray)*s + gray. The three maps
        # are affine and the gray weights sum to 1, so they compose into one pass over the image:
        # x*(b*c*s) + gray*(b*c*(1-s)) + mean_gray*b*(1-c), with gray and its mean taken of the input.
        gray = 0.299 * images[:, 0:1] + 0.587 * images[:, 1:2] + 0.114 * images[:, 2:3]  # (N, 1, H, W)
        offset = gray * (b * c * (1 - s)) + gray.mean((2, 3), keepdim=True) * (b * (1 - c))
        return torch.addcmul(offset, images, b * c * s).clamp_(0, 1)

    def paste(self, images: Tensor, masks: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Paste the pet of photo ``i - 1`` onto photo ``i`` with probability ``copy_paste``.

        ``images`` ``(N, 3, H, W)``, ``masks`` ``(N, K, H, W)`` whose first plane is the 0/1 pet
        mask. The source photo is shrunk to ``paste_scale`` of the side and moved anywhere it
        fits whole; its pet pixels (and all K mask planes there) replace the target's, so the
        target's pet stays pet where the new one does not cover it. A batch of one is returned as it is.
        """
        n = images.shape[0]
        if n < 2 or not self.copy_paste:
            return images, masks
        chosen = torch.rand(n, device=images.device, generator=generator) < self.copy_paste
        side = self._uniform(n, *self.paste_scale, images, generator)
        # output -> input: (x - t) / side, with the shrunk photo inside the frame (|t| <= 1 - side).
        tx = self._uniform(n, -1, 1, images, generator) * (1 - side)
        ty = self._uniform(n, -1, 1, images, generator) * (1 - side)
        rows = chosen.nonzero().squeeze(1)  # (M,): only these photos are warped and pasted on
        if rows.numel() == 0:
            return images, masks
        side, tx, ty = side[rows], tx[rows], ty[rows]
        zero = torch.zeros_like(side)
        theta = torch.stack([torch.stack([1 / side, zero, -tx / side], 1),
                             torch.stack([zero, 1 / side, -ty / side], 1)], 1).to(images.dtype)
        sources = (rows - 1) % n  # photo i gets photo i - 1's pet
        grid = F.affine_grid(theta, [len(rows), *images.shape[1:]], align_corners=False)
        source_images = F.grid_sample(images[sources], grid, mode="bilinear", padding_mode="zeros",
                                      align_corners=False)
        source_masks = F.grid_sample(masks[sources].to(images.dtype), grid, mode="nearest", padding_mode="zeros",
                                     align_corners=False).to(masks.dtype)
        region = source_masks[:, :1] > 0.5  # (M, 1, H, W): the pasted pet
        images, masks = images.clone(), masks.clone()
        images[rows] = torch.where(region, source_images, images[rows])
        masks[rows] = torch.where(region, source_masks, masks[rows])
        return images, masks

    @torch.no_grad()
    def __call__(
        self, images: Tensor, masks: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        n = images.shape[0]
        theta = self.affine(n, images, generator)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        images = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        mask_dtype = masks.dtype
        masks = F.grid_sample(
            masks.to(images.dtype), grid.to(images.dtype), mode="nearest", padding_mode="reflection", align_corners=False
        ).to(mask_dtype)
        images, masks = self.paste(images, masks, generator)
        if self.color_jitter:
            images = self.jitter(images, generator)
        return images, masks
