"""The report's network sections: the machine's matmul peak, petlib against its peers, each speed
option flipped, and whether ``torch.compile`` pays for itself."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch

from ..device import autocast_dtype
from ..tables import format_table
from .cells import mib, percent, rate, ratio
from .flops import count_flops, matmul_flops
from .harness import PEER, PEER_MODEL, measure, peer_candidate, petlib_candidate
from .memory import peak_memory_mib
from .settings import Settings

__all__ = ["FULL_TRAIN_IMAGES", "section_peak", "section_networks", "section_options", "section_compile"]

#: Images in the full dataset's train split (trainval.txt less every 10th line): one epoch,
#: the horizon over which torch.compile has to win its compile time back.
FULL_TRAIN_IMAGES = 3312


def section_peak(s: Settings, print_: Callable[[str], None]) -> tuple[float, str]:
    """Time dense matmuls; returns the fastest rate (the machine's peak for this run) and a note."""
    dtypes = [torch.float32]
    if s.device.type == "cuda":
        dtypes.append(torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    elif s.device.type == "cpu":
        dtypes.append(torch.bfloat16)  # to show whether this CPU computes bf16 natively
    rates = {}
    for dtype in dtypes:
        # bf16 on a CPU without native support is emulated, slow: a smaller matrix suffices.
        n = s.matmul_n // 2 if (s.device.type == "cpu" and dtype != torch.float32) else s.matmul_n
        rates[dtype] = matmul_flops(s.device, dtype, n, s.repeats)
    best = max(rates, key=rates.__getitem__)
    note = ", ".join(f"{str(d).removeprefix('torch.')} {r / 1e9:,.0f} GFLOP/s" for d, r in rates.items())
    print_(f"Dense matmul ({s.matmul_n}x{s.matmul_n}, median of {s.repeats}): {note}. "
           f"Peak used below: {str(best).removeprefix('torch.')}, {rates[best] / 1e9:,.0f} GFLOP/s.\n")
    return rates[best], note


def section_networks(s: Settings, peak: float, print_: Callable[[str], None]) -> list[dict[str, Any]]:
    print_("## Networks: training and inference throughput, petlib vs peer\n")
    print_(f"Training: batch {s.batch_size}, forward + backward + AdamW step (petlib's loss and "
           f"gradient clipping for both; the AdamW update fused into one kernel where the options say "
           f"so, torch's default otherwise). Inference: batch {2 * s.batch_size}, `inference_mode`. "
           f"Peer: {PEER} for the ResNet34-UNet, petlib's UNet with every speed option off for the UNet. "
           f"% of peak: FLOPs counted by `torch.utils.flop_counter` x steps/s, over the dense-matmul peak. "
           f"Peak memory: " + ("CUDA max allocated" if s.device.type == "cuda" else "growth of resident memory "
                               "over two training steps in a fresh process") + ", MiB.\n")
    results = []
    rows = []
    for model in s.models:
        for size in s.sizes:
            ours = petlib_candidate(model, s.device, s.config)
            peer = None if s.skip_peer else peer_candidate(model)
            candidates = [ours] + ([peer] if peer is not None else [])
            speeds = measure(candidates, s.device, size, s.batch_size, s.repeats, s.config, s.seconds)
            for candidate, speed in zip(candidates, speeds):
                train_flops, infer_flops = count_flops(candidate, size, s.config)
                memory = peak_memory_mib(candidate, s.device, size, s.batch_size) if s.memory else None
                is_ours = candidate is ours
                peer_speed = speeds[1] if (is_ours and len(speeds) > 1) else None
                result = {
                    "model": model, "size": size, "label": candidate.label, "options": candidate.options,
                    "train": speed.train, "infer": speed.infer, "memory_mib": memory,
                    "train_gflop": train_flops / 1e9, "train_peak": train_flops * speed.train / peak,
                    "infer_peak": infer_flops * speed.infer / peak,
                    "train_ratio": speed.train / peer_speed.train if peer_speed else None,
                    "infer_ratio": speed.infer / peer_speed.infer if peer_speed else None,
                }
                results.append(result)
                rows.append([
                    model, size, candidate.label, candidate.options, rate(speed.train),
                    ratio(speed.train, peer_speed.train) if peer_speed else "",
                    rate(speed.infer), ratio(speed.infer, peer_speed.infer) if peer_speed else "",
                    mib(memory), f"{train_flops / 1e9:.1f}", percent(result["train_peak"]),
                    percent(result["infer_peak"]),
                ])
            if peer is None and not s.skip_peer:
                rows.append([model, size, "smp", "not installed: pip install -e '.[bench]'"] + ["—"] * 8)
    print_(format_table(rows, ["network", "px", "run", "options", "train img/s", "train ours/peer", "infer img/s",
                               "infer ours/peer", "peak MiB", "train GFLOP/img", "train % peak", "infer % peak"],
                        markdown=True) + "\n")
    return results


def section_options(s: Settings, print_: Callable[[str], None]) -> None:
    """Flip each speed option of the defaults for the ResNet34-UNet at the first size."""
    size, model = s.sizes[0], PEER_MODEL
    default = petlib_candidate(model, s.device, s.config)
    flips = [
        replace(default, label="amp " + ("off" if default.amp_dtype else "on"),
                amp_dtype=None if default.amp_dtype else autocast_dtype(s.device, "on")),
        replace(default, label="channels_last " + ("off" if default.channels_last else "on"),
                channels_last=not default.channels_last),
    ]
    flips.append(replace(default, label="fused AdamW " + ("off" if default.fused_optimizer else "on"),
                         fused_optimizer=not default.fused_optimizer))
    if s.device.type == "cuda":
        flips.append(replace(default, label="cudnn.benchmark off", cudnn_benchmark=False))
    candidates = [replace(default, label="defaults")] + flips
    speeds = measure(candidates, s.device, size, s.batch_size, s.repeats, s.config, s.seconds)
    print_(f"## Speed options ({model}, {size} px, batch {s.batch_size}, {s.device.type})\n")
    print_("Each option of the defaults flipped alone; `auto` turns on an option only on devices "
           "where it is faster.\n")
    rows = [
        [c.label, c.options, rate(v.train), ratio(v.train, speeds[0].train), rate(v.infer),
         ratio(v.infer, speeds[0].infer)]
        for c, v in zip(candidates, speeds)
    ]
    print_(format_table(rows, ["setting", "options", "train img/s", "vs defaults", "infer img/s", "vs defaults"],
                        markdown=True) + "\n")


def section_compile(s: Settings, print_: Callable[[str], None]) -> None:
    """torch.compile for training: compile time against the time it saves per image."""
    print_(f"## torch.compile for training ({s.device.type}, batch {s.batch_size})\n")
    print_(f"Compile time: the first compiled step less a steady one. Pays back after: compile time / "
           f"time saved per image; an epoch of the full train split is {FULL_TRAIN_IMAGES:,} images.\n")
    rows = []
    # "reduce-overhead" adds CUDA graphs; elsewhere it compiles what "default" does.
    modes = ["default", "reduce-overhead"] if s.device.type == "cuda" else ["default"]
    for size in s.sizes:
        eager = petlib_candidate(PEER_MODEL, s.device, replace(s.config, compile=False))
        compiled = [replace(eager, label=f"petlib + compile ({mode})", compile=True, compile_mode=mode) for mode in modes]
        peer = None if s.skip_peer else peer_candidate(PEER_MODEL)
        candidates = [eager, *compiled] + ([peer] if peer else [])
        torch._dynamo.reset()
        speeds = measure(candidates, s.device, size, s.batch_size, s.repeats, s.config, s.seconds, infer=False,
                         fresh=False)
        e = speeds[0]
        for mode, c in zip(modes, speeds[1:]):
            compile_s = c.first_step_s - c.step_s
            saved = 1 / e.train - 1 / c.train  # seconds saved per image
            payback = compile_s / saved if saved > 0 else float("inf")
            rows.append([
                PEER_MODEL, size, mode, rate(e.train), rate(c.train), ratio(c.train, e.train),
                f"{compile_s:.0f}", f"{payback:,.0f}" if payback != float("inf") else "never",
                f"{payback / FULL_TRAIN_IMAGES:.2f}" if payback != float("inf") else "never",
                ratio(c.train, speeds[-1].train) if peer else "—",
            ])
    print_(format_table(rows, ["network", "px", "mode", "eager img/s", "compiled img/s", "speed-up", "compile s",
                               "pays back after (images)", "(epochs)", "compiled / peer"], markdown=True) + "\n")
