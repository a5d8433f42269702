"""The command line, ``python -m petlib.research.bench``: runs the sections asked for and prints the report
(see :mod:`petlib.research.bench` for what each section measures)."""
from __future__ import annotations

import argparse
import datetime
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

import petlib.research.bench as bench_package
from petlib.cli.common import Switch, argument_parser, option
from petlib.data.dataset import SAMPLE_ROOT
from petlib.models import MODELS
from petlib.research.bench.epoch import section_epoch
from petlib.research.bench.flops import count_flops
from petlib.research.bench.harness import PEER_MODEL, petlib_candidate, smp_available
from petlib.research.bench.loader import FULL_DATASET_IMAGES, section_loader
from petlib.research.bench.machine import device_name, section_auto
from petlib.research.bench.networks import section_compile, section_networks, section_options, section_peak
from petlib.research.bench.settings import Settings
from petlib.training.config import TrainConfig
from petlib.training.device import pick_device

__all__ = ["build_parser", "main"]


def _header(s: Settings, argv: Sequence[str]) -> str:
    versions = f"torch {torch.__version__}"
    if smp_available():
        import segmentation_models_pytorch as smp

        versions += f", segmentation_models_pytorch {smp.__version__}"
    return (
        f"# petlib benchmark, {datetime.date.today().isoformat()}\n\n"
        f"`python -m petlib.research.bench {' '.join(argv)}`\n\n"
        f"Device: {s.device} ({device_name(s.device)}); {os.cpu_count()} CPU cores, {torch.get_num_threads()} torch "
        f"threads; {versions}. Figures are medians (min-max) of {s.repeats} repeat(s), the rows compared "
        f"alternating inside each repeat.\n"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argument_parser("python -m petlib.research.bench", bench_package.__doc__)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[128, 256], help="image sizes (px)")
    parser.add_argument(*option("batch_size"), type=int, default=8, help="training batch (inference: twice this)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats; figures are medians")
    parser.add_argument("--seconds", type=float, default=1.0, help="about how long one repeat of one row runs")
    parser.add_argument("--device", default=None, help="default: CUDA, then MPS, then the CPU")
    parser.add_argument(*option("skip_peer"), action="store_true", help="time petlib only")
    parser.add_argument("--compile", action="store_true",
                        help="add the torch.compile section (minutes of compiling on a CPU); same as --sections ... compile")
    parser.add_argument("--memory", action=Switch, default=True, help="measure peak memory (--no_memory skips the column)")
    parser.add_argument("--sections", nargs="+", default=["networks", "options", "loader", "epoch"],
                        choices=["networks", "options", "compile", "loader", "epoch"], help="which sections to run")
    parser.add_argument(*option("data_path"), type=Path, default=SAMPLE_ROOT,
                        help="dataset for the loader and epoch sections (default: the shipped sample)")
    parser.add_argument(*option("out_file", "--out"), type=Path, default=None,
                        help="also write the report to this markdown file")
    parser.add_argument(*option("synthetic_full"), type=int, default=FULL_DATASET_IMAGES,
                        help="the loader section also reads a synthetic set of this many full-size JPEGs "
                             "(default: the full dataset's count; 0: none)")
    parser.add_argument(*option("synthetic_source"), type=Path, default=None,
                        help="full-size images to build the synthetic set from (default: the shared originals "
                             "where present, else --data_path, scaled up to 500 px)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of `fit` in the epoch section")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one repeat, to check that it runs")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    device = pick_device(args.device)
    s = Settings(
        device=device, models=args.models, sizes=args.sizes, batch_size=args.batch_size, repeats=args.repeats,
        seconds=args.seconds, skip_peer=args.skip_peer, memory=args.memory, data_path=args.data_path,
        # The epoch section trains at the main job's size and batch (epoch_size 0), as make run does.
        loader_size=256, loader_batch_size=TrainConfig().batch_size, epoch_size=0, epoch_batch_size=4,
        epochs=args.epochs,
        matmul_sizes=[4096, 8192, 16384] if device.type == "cuda" else [1024, 2048, 4096],
        synthetic_full=args.synthetic_full, synthetic_source=args.synthetic_source,
    )
    if args.quick:
        s = replace(s, sizes=[32], batch_size=2, repeats=1, seconds=0.01, memory=s.memory and device.type != "cpu",
                    loader_size=32, loader_batch_size=4, epoch_size=32, epochs=1, matmul_sizes=[128, 256],
                    synthetic_full=min(s.synthetic_full, 24))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    lines: list[str] = []

    def print_(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    def save() -> None:
        # After every section, so that a run stopped by a time limit keeps what it measured.
        if args.out_file is not None:
            args.out_file.parent.mkdir(parents=True, exist_ok=True)
            args.out_file.write_text("\n".join(lines) + "\n")

    print_(_header(s, argv))
    section_auto(s, print_)
    save()
    if "networks" in args.sections:
        peaks = section_peak(s, print_)
        section_networks(s, peaks, print_)
        save()
    if "options" in args.sections:
        section_options(s, print_)
        save()
    if args.compile or "compile" in args.sections:
        section_compile(s, print_)
        save()
    if "loader" in args.sections:
        flops, _ = count_flops(petlib_candidate(PEER_MODEL, device), s.loader_size)
        section_loader(s, flops, print_)
        save()
    if "epoch" in args.sections:
        section_epoch(s, print_)
        save()
    return 0
