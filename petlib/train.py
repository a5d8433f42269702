"""Train a network from the command line.

    python -m petlib.train --model unet --data_path dataset/oxford-iiit-pet \\
        --epochs 100 --batch_size 64 --learning-rate 2e-5 [--image_size 256] [--resume]

Every field of :class:`petlib.config.TrainConfig` is a flag of the same name
(``--loss bce``, ``--no-augment``, ``--scheduler cosine``, ...); ``--recipe lab`` or
``--recipe smp`` starts from those recipes instead of petlib's. Under
``torchrun --nproc_per_node=N -m petlib.train ...`` it trains with
DistributedDataParallel, ``--batch_size`` being the batch size of each process.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from typing import Any, Sequence

from . import distributed as dist
from .config import RECIPES, TrainConfig, recipe
from .engine import fit

__all__ = ["build_parser", "config_from_args", "main"]


def _parse_bool_or_str(value: str) -> bool | str:
    lowered = value.lower()
    if lowered in ("true", "1", "yes", "memory"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m petlib.train", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--recipe", choices=list(RECIPES), default="petlib",
                        help="starting settings; other flags override them")
    parser.add_argument("--resume", action="store_true",
                        help="continue from <out_dir>/<run_name>_last.pth if it exists")
    parser.add_argument("--pretrained", action="store_true",
                        help="ResNet34-UNet: start the encoder from torchvision's ImageNet weights (downloads them)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    hints = typing.get_type_hints(TrainConfig)
    for field in dataclasses.fields(TrainConfig):
        flag = f"--{field.name}"
        kind = hints[field.name]
        names = [flag]
        if field.name == "lr":
            names = ["--learning-rate", "--learning_rate", "--lr"]  # the lab's spelling first
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        elif field.name == "model_kwargs":
            parser.add_argument(flag, type=json.loads, default=None, help="JSON dict of model arguments")
        elif field.name == "cache":
            parser.add_argument(flag, type=_parse_bool_or_str, default=None,
                                help="true (in memory), disk, or false")
        else:
            base = {int: int, float: float, str: str}
            scalar = next((t for t in typing.get_args(kind) or (kind,) if t in base), str)
            parser.add_argument(*names, dest=field.name, type=scalar, default=None,
                                help=f"default: {field.default!r} (petlib recipe)")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The recipe named by ``--recipe`` with every flag that was given applied."""
    overrides: dict[str, Any] = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if getattr(args, f.name) is not None
    }
    if args.pretrained:
        overrides["model_kwargs"] = {**overrides.get("model_kwargs", {}), "pretrained": True}
    return recipe(args.recipe, **overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    try:
        result = fit(config, resume=args.resume, progress=not args.no_progress)
        main_process = dist.is_main()  # ask before the process group is torn down
    finally:
        dist.cleanup()
    if main_process:
        print(f"best validation Dice {result.best_dice:.4f}")
        last = f", {result.last_checkpoint} (last)" if result.last_checkpoint is not None else ""
        print(f"checkpoints: {result.best_checkpoint} (best){last}; history: {result.history_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
