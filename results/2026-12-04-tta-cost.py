"""Cost of test-time augmentation: flip alone against flip + scales (0.75, 1, 1.25), issue 23.

    .venv/bin/python results/2026-12-04-tta-cost.py            # prints a Markdown table of ms per image and ratios

Times the forward passes petlib-eval's policies run on the 60 test images of the embedded sample
(ResNet34-UNet at 128 px, UNet at 64 px, batches of 16, float32, channels-last as petlib infers on the
CPU), interleaved, 5 repeats, median. The gain of the scales is in results/README.md (+0.0002).
Randomly initialised networks: the cost does not depend on the weights.
"""
from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from petlib.data import SAMPLE_ROOT, OxfordPetSegmentation
from petlib.models import build_model


def logits_at(model: torch.nn.Module, images: torch.Tensor, scale: float) -> torch.Tensor:
    """Logits ``(N, 1, H, W)`` of ``images`` ``(N, 3, H, W)`` run at ``scale`` times their size."""
    if scale == 1:
        return model(images)
    h, w = images.shape[-2:]
    resized = F.interpolate(images, size=(round(h * scale), round(w * scale)), mode="bilinear", align_corners=False,
                            antialias=scale < 1)
    return F.interpolate(model(resized), size=(h, w), mode="bilinear", align_corners=False)


def policy(model: torch.nn.Module, images: torch.Tensor, scales: tuple[float, ...]) -> torch.Tensor:
    """Mean logits over ``scales``, each with its horizontal flip."""
    total = 0
    for scale in scales:
        total = total + logits_at(model, images, scale) + logits_at(model, images.flip(-1), scale).flip(-1)
    return total / (2 * len(scales))


POLICIES = {"none": None, "flip": (1.0,), "flip + scales 0.75, 1, 1.25": (0.75, 1.0, 1.25)}


def main() -> None:
    torch.manual_seed(0)
    rows = []
    for name, size in (("resnet34_unet", 128), ("unet", 64)):
        data = OxfordPetSegmentation(SAMPLE_ROOT, "test", image_size=size)
        images = torch.stack([data[i]["image"] for i in range(len(data))]).float()
        images = (images / 255 if images.max() > 1 else images).contiguous(memory_format=torch.channels_last)
        model = build_model(name).eval().to(memory_format=torch.channels_last)
        times: dict[str, list[float]] = {p: [] for p in POLICIES}
        with torch.inference_mode():
            for repeat in range(6):  # the first round warms up and is dropped
                for label, scales in POLICIES.items():
                    start = time.perf_counter()
                    for batch in images.split(16):
                        model(batch) if scales is None else policy(model, batch, scales)
                    if repeat:
                        times[label].append((time.perf_counter() - start) / len(images) * 1000)
        base = statistics.median(times["flip"])
        for label in POLICIES:
            ms = statistics.median(times[label])
            rows.append(f"| {name} {size} px | {label} | {ms:.1f} | {ms / base:.2f}x |")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, 60 test images of the embedded sample")
    print("| network | test-time policy | ms per image (median of 5) | cost vs flip |\n|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
