"""The report's network sections: the machine's matmul peak per precision, petlib against its
peers (smp with the same speed options, smp as its users run it; the UNet's options-off
ablation), each speed option flipped, and whether ``torch.compile`` pays for itself."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch

from petlib.evaluation.tables import format_table
from petlib.research.bench.cells import mib, percent, rate, rate_cell, rate_spread, ratio_spread, spread_cell
from petlib.research.bench.flops import count_flops, datasheet_peak, peak_matmul_flops, precision_of
from petlib.research.bench.harness import (
    ABLATION,
    AS_USERS_RUN_IT,
    PEER,
    PEER_MODEL,
    SAME_OPTIONS,
    Candidate,
    measure,
    peer_candidate,
    peer_candidates,
    petlib_candidate,
)
from petlib.research.bench.machine import device_name
from petlib.research.bench.memory import peak_memory_mib
from petlib.research.bench.settings import Settings
from petlib.training.device import autocast_dtype, cpu_bf16_native

__all__ = ["FULL_TRAIN_IMAGES", "peak_precisions", "section_peak", "section_networks", "section_options",
           "section_compile"]

#: Images in the full dataset's train split (trainval.txt less every 10th line): one epoch,
#: the horizon over which torch.compile has to win its compile time back.
FULL_TRAIN_IMAGES = 3312


def peak_precisions(device: torch.device) -> list[str]:
    """The arithmetic whose matmul peak the report measures on ``device``: what its rows can run."""
    if device.type == "cuda":
        return ["fp32", "tf32", "bf16" if torch.cuda.is_bf16_supported() else "fp16"]
    if device.type == "cpu":
        return ["fp32", "bf16"]  # bf16 also shows whether this CPU computes it natively
    return ["fp32"]


def section_peak(s: Settings, print_: Callable[[str], None]) -> dict[str, float]:
    """The dense-matmul peak of each precision (the best of several sizes and repeats), beside
    the datasheet's where one is known; returns precision -> FLOP/s measured."""
    name = device_name(s.device)
    peaks: dict[str, float] = {}
    rows = []
    for precision in peak_precisions(s.device):
        sizes = s.matmul_sizes
        if s.device.type == "cpu" and precision == "bf16" and not cpu_bf16_native():
            # Emulated bf16 runs many times slower: smaller matrices show that well enough.
            sizes = sorted({max(64, n // 4) for n in sizes})
        by_size = peak_matmul_flops(s.device, precision, sizes, s.repeats)
        peaks[precision] = max(by_size.values())
        sheet = datasheet_peak(name, precision)
        rows.append([
            precision, ", ".join(f"{n}: {r / 1e9:,.0f}" for n, r in by_size.items()), f"{peaks[precision] / 1e9:,.0f}",
            f"{sheet[1] / 1e12:,.1f} ({sheet[0]})" if sheet else "—",
            percent(peaks[precision] / sheet[1]) if sheet else "—",
        ])
    print_("## Peak arithmetic rate, per precision\n")
    print_(f"Dense n x n matmuls, best of {s.repeats} timed repeats at each size; the peak is the best of all. "
           f"Each table row below is divided by the peak of the arithmetic it runs (bf16/fp16 under autocast; "
           f"float32 rows in TF32 on CUDA, where cuDNN uses TF32 for convolutions by default; fp32 on a CPU). "
           f"Datasheet peaks: NVIDIA's dense (no sparsity) figures, known for a few GPUs only.\n")
    print_(format_table(rows, ["precision", "GFLOP/s by size", "peak GFLOP/s", "datasheet TFLOP/s", "measured / datasheet"],
                        markdown=True) + "\n")
    return peaks


def _role(candidate: Candidate) -> str:
    return {SAME_OPTIONS: "headline peer", AS_USERS_RUN_IT: "as its users run it"}.get(candidate.label, "")


def section_networks(s: Settings, peaks: dict[str, float], print_: Callable[[str], None]) -> list[dict[str, Any]]:
    print_("## Networks: training and inference throughput, petlib vs peers\n")
    print_(f"Training: batch {s.batch_size}, forward + backward + AdamW step (petlib's loss and "
           f"gradient clipping for all; the AdamW update fused into one kernel where the options say "
           f"so, torch's default otherwise). Inference: batch {2 * s.batch_size}, `inference_mode`. "
           f"Compared with, for the ResNet34-UNet: {PEER} **with petlib's speed options** (same autocast "
           f"dtype, channels-last, fused AdamW, cudnn.benchmark on CUDA: the headline, code against code) and "
           f"the same **as its users run it** (float32, torch's defaults). The UNet has no outside peer: its "
           f"second row is petlib with every speed option off, an **ablation** of the options. "
           f"Rates: median (min-max) of {s.repeats} repeats; ratios: petlib / that row, repeat by repeat "
           f"(rows alternate inside a repeat), median (min-max); a ratio whose spread includes 1.0 reads "
           f"\"no difference\". % of peak: FLOPs counted by `torch.utils.flop_counter` x steps/s, over the "
           f"measured matmul peak of the row's arithmetic (and over the datasheet's, where known). "
           f"Peak memory: " + ("CUDA max allocated" if s.device.type == "cuda" else "growth of resident memory "
                               "over two training steps in a fresh process") + ", MiB.\n")
    name = device_name(s.device)
    results = []
    rows = []
    headlines = []
    for model in s.models:
        for size in s.sizes:
            ours = petlib_candidate(model, s.device, s.config)
            peers = [] if s.skip_peer else peer_candidates(ours)
            candidates = [ours] + peers
            speeds = measure(candidates, s.device, size, s.batch_size, s.repeats, s.config, s.seconds)
            for candidate, speed in zip(candidates, speeds):
                result = _network_result(s, model, size, candidate, speed, speeds[0], candidate is ours, peaks, name)
                results.append(result)
                rows.append(_network_row(result, candidate, speed))
            headlines.append(_headline(model, size, candidates, results[-len(candidates):]))
            if not peers and not s.skip_peer and model == PEER_MODEL:
                rows.append([model, size, "smp", "not installed: pip install -e '.[bench]'"] + ["—"] * 10)
    print_(format_table(rows, ["network", "px", "run", "options", "train img/s", "train: petlib / this",
                               "infer img/s", "infer: petlib / this", "peak MiB", "train GFLOP/img",
                               "arithmetic", "train % peak", "train % datasheet", "infer % peak"],
                        markdown=True) + "\n")
    headlines = [line for line in headlines if line]
    if headlines:
        print_("Training throughput, petlib / peer:\n")
        for line in headlines:
            print_(line)
        print_("")
    return results


def _network_result(s: Settings, model: str, size: int, candidate: Candidate, speed: Any, ours: Any, is_ours: bool,
                    peaks: dict[str, float], name: str) -> dict[str, Any]:
    """One row of the networks section as numbers: rates, ratios to petlib, FLOPs, memory, % of peak."""
    train_flops, infer_flops = count_flops(candidate, size, s.config)
    memory = peak_memory_mib(candidate, s.device, size, s.batch_size) if s.memory else None
    precision = precision_of(candidate.amp_dtype, s.device)
    peak = peaks.get(precision)
    sheet = datasheet_peak(name, precision)
    return {
        "model": model, "size": size, "label": candidate.label, "role": _role(candidate),
        "options": candidate.options, "precision": precision,
        "train": speed.train, "infer": speed.infer, "train_runs": speed.train_runs,
        "infer_runs": speed.infer_runs, "memory_mib": memory, "train_gflop": train_flops / 1e9,
        "train_peak": train_flops * speed.train / peak if peak else None,
        "infer_peak": infer_flops * speed.infer / peak if peak else None,
        "train_datasheet": train_flops * speed.train / sheet[1] if sheet else None,
        "train_ratio": None if is_ours else ratio_spread(ours.train_runs, speed.train_runs),
        "infer_ratio": None if is_ours else ratio_spread(ours.infer_runs, speed.infer_runs),
        "is_ours": is_ours,
    }


def _network_row(result: dict[str, Any], candidate: Candidate, speed: Any) -> list[Any]:
    """The table row of one result."""
    label = candidate.label + (f" ({result['role']})" if result["role"] else "")
    ours = result["is_ours"]
    return [
        result["model"], result["size"], label, candidate.options, rate_cell(rate_spread(speed.train_runs)),
        "" if ours else spread_cell(result["train_ratio"]), rate_cell(rate_spread(speed.infer_runs)),
        "" if ours else spread_cell(result["infer_ratio"]), mib(result["memory_mib"]),
        f"{result['train_gflop']:.1f}", result["precision"], percent(result["train_peak"]),
        percent(result["train_datasheet"]), percent(result["infer_peak"]),
    ]


def _headline(model: str, size: int, candidates: list[Candidate], results: list[dict[str, Any]]) -> str:
    """One line per network and size: the headline ratio first."""
    parts = []
    for candidate, result in zip(candidates[1:], results[1:]):
        spread = result["train_ratio"]
        what = {SAME_OPTIONS: f"vs smp with the same speed options ({candidate.options}) -- the headline",
                AS_USERS_RUN_IT: f"vs smp as its users run it ({candidate.options})",
                ABLATION: f"vs petlib with its options off (ablation, not a peer; {candidate.options})"}.get(
                    candidate.label, f"vs {candidate.label}")
        verdict = f" ({spread.verdict})" if spread and spread.verdict in ("faster", "slower") else ""
        parts.append(f"{what}: **{spread_cell(spread)}**{verdict}")
    if not parts:
        return ""
    return f"- {model}, {size} px, petlib ({candidates[0].options}): " + "; ".join(parts) + "."


def section_options(s: Settings, print_: Callable[[str], None]) -> None:
    """Flip each speed option of the defaults for the ResNet34-UNet at the first size."""
    size, model = s.sizes[0], PEER_MODEL
    default = petlib_candidate(model, s.device, s.config)
    flips = [
        replace(default, label="amp " + ("off" if default.amp_dtype else "on"),
                amp_dtype=None if default.amp_dtype else autocast_dtype(s.device, "on")),
    ]
    # channels-last in training and inference alike, each state the defaults are not in (on a CPU the
    # defaults train without it and predict with it: both flips then show).
    flips += [replace(default, label=f"channels_last {'on' if on else 'off'}", channels_last=on,
                      inference_channels_last=on)
              for on in (True, False) if (on, on) != (default.channels_last, default.infers_channels_last)]
    flips.append(replace(default, label="fused AdamW " + ("off" if default.fused_optimizer else "on"),
                         fused_optimizer=not default.fused_optimizer))
    if s.device.type == "cuda":
        flips.append(replace(default, label="cudnn.benchmark off", cudnn_benchmark=False))
    candidates = [replace(default, label="defaults")] + flips
    speeds = measure(candidates, s.device, size, s.batch_size, s.repeats, s.config, s.seconds)
    print_(f"## Speed options ({model}, {size} px, batch {s.batch_size}, {s.device.type})\n")
    print_(f"Each option of the defaults flipped alone; `auto` turns on an option only on devices "
           f"where it is faster. Median (min-max) of {s.repeats} repeats; ratios repeat by repeat, "
           f"\"no difference\" where their spread includes 1.0.\n")
    rows = [
        [c.label, c.options, rate_cell(rate_spread(v.train_runs)),
         "" if i == 0 else spread_cell(ratio_spread(v.train_runs, speeds[0].train_runs)),
         rate_cell(rate_spread(v.infer_runs)),
         "" if i == 0 else spread_cell(ratio_spread(v.infer_runs, speeds[0].infer_runs))]
        for i, (c, v) in enumerate(zip(candidates, speeds))
    ]
    print_(format_table(rows, ["setting", "options", "train img/s", "vs defaults", "infer img/s", "vs defaults"],
                        markdown=True) + "\n")


def _payback(value: float, speedup, digits: int = 0) -> str:
    if speedup is not None and speedup.n >= 2 and speedup.includes_one:
        return "— (no difference)"
    return "never" if value == float("inf") else f"{value:,.{digits}f}"


def section_compile(s: Settings, print_: Callable[[str], None]) -> None:
    """torch.compile for training: compile time against the time it saves per image."""
    print_(f"## torch.compile for training ({s.device.type}, batch {s.batch_size})\n")
    print_(f"Compile time: every warm-up step of the compiled model, run until steps are steady (3 in a row "
           f"within 15 % of each other: `reduce-overhead` records its CUDA graphs after the first step), less "
           f"as many steady steps. Pays back after: compile time / time saved per image; an epoch of the full "
           f"train split is {FULL_TRAIN_IMAGES:,} images. Speed-ups: median (min-max) of {s.repeats} repeats, "
           f"one build per setting.\n")
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
            compile_s = c.compile_s
            saved = 1 / e.train - 1 / c.train  # seconds saved per image
            payback = compile_s / saved if saved > 0 else float("inf")
            speedup = ratio_spread(c.train_runs, e.train_runs)
            rows.append([
                PEER_MODEL, size, mode, rate(e.train), rate(c.train), spread_cell(speedup),
                f"{compile_s:.1f} ({c.warmup_steps} steps)",
                _payback(payback, speedup),
                _payback(payback / FULL_TRAIN_IMAGES, speedup, digits=2),
                spread_cell(ratio_spread(c.train_runs, speeds[-1].train_runs)) if peer else "—",
            ])
    print_(format_table(rows, ["network", "px", "mode", "eager img/s", "compiled img/s", "speed-up", "compile s (warm-up)",
                               "pays back after (images)", "(epochs)", "compiled / smp float32"], markdown=True) + "\n")
