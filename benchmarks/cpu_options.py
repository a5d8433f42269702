"""Channels-last and the fused AdamW update on the CPU, for both networks, without the bf16 row.

    python benchmarks/cpu_options.py > benchmarks/results/<date>-cpu-options-extra.txt

The bench's options section (``python -m petlib.research.bench --sections options``) covers the
ResNet34-UNet at one size and includes bf16 autocast, which on a CPU without native bf16 runs
at a fraction of an image per second at 256 px. This times what decides the CPU's "auto"
defaults: each option alone and both, for the ResNet34-UNet at 256 px and the UNet at 128 px,
batch 8, medians of 3 alternating repeats; then the fused update alone with two runners of
each setting, medians of 5.
"""
from dataclasses import replace

import torch

from petlib.research.bench import measure, petlib_candidate
from petlib.training.config import TrainConfig

device, config = torch.device("cpu"), TrainConfig(fused_optimizer="off", channels_last="off")
for model, size in [("resnet34_unet", 256), ("unet", 128)]:
    plain = petlib_candidate(model, device, config)
    candidates = [plain, replace(plain, channels_last=True), replace(plain, fused_optimizer=True),
                  replace(plain, channels_last=True, fused_optimizer=True)]
    speeds = measure(candidates, device, size, 8, 3, config, 1.0)
    for candidate, speed in zip(candidates, speeds):
        print(f"{model} {size} px, {candidate.options}: train {speed.train:.2f} img/s "
              f"({speed.train / speeds[0].train:.2f}x), infer {speed.infer:.2f} img/s "
              f"({speed.infer / speeds[0].infer:.2f}x)", flush=True)

# The fused update alone, with two independent runners of each setting (A, B), so that the
# spread between runners of one setting shows how much of a difference is noise.
fused_config = TrainConfig(fused_optimizer="off")
plain = petlib_candidate("resnet34_unet", device, fused_config)
candidates = [replace(plain, label="foreach A"), replace(plain, label="fused A", fused_optimizer=True),
              replace(plain, label="foreach B"), replace(plain, label="fused B", fused_optimizer=True)]
speeds = measure(candidates, device, 128, 8, 5, fused_config, 1.5, infer=False)
for candidate, speed in zip(candidates, speeds):
    print(f"resnet34_unet 128 px, AdamW {candidate.label}: train {speed.train:.2f} img/s, "
          f"repeats {[round(r, 2) for r in speed.train_runs]}", flush=True)
