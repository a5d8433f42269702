"""Train a network from the command line (``petlib-train``, or ``python -m petlib.train``).

    petlib-train --model unet --data_path dataset/oxford-iiit-pet \\
        --epochs 100 --batch_size 64 --learning_rate 2e-5 [--image_size 256] [--resume]

Every field of :class:`petlib.training.config.TrainConfig` is a flag of the same name
(``--loss bce``, ``--no_augment``, ``--scheduler cosine``, ``--grad_clip none``, ...);
``--recipe lab`` or ``--recipe smp`` starts from those recipes instead of petlib's. Flags are
spelt with underscores; the hyphen spellings (``--learning-rate``, ``--no-augment``) work too.
Under ``torchrun --nproc_per_node=N -m petlib.train ...`` it trains with
DistributedDataParallel, ``--batch_size`` being the batch size of each process; with
``torchrun --max_restarts N ... --resume --save_last`` a killed worker costs the epoch it was in,
not the run (docs/distributed.md: several GPUs or nodes, SLURM, restarts).

Progress bars are shown when stderr is a terminal; redirected to a log file
(``> train.log 2>&1``) it writes one line per epoch (``--progress`` forces the bars).

Besides the checkpoints it writes the history (``<run_name>_history.csv``), its curves
(``<run_name>_curves.png``, with matplotlib) and the best checkpoint's model card
(``<run_name>_card.json`` and ``.md``), and prints where; ``--tensorboard DIR`` also logs
each epoch to TensorBoard, in ``DIR/<run_name>``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import typing
from collections.abc import Sequence
from typing import Any, NoReturn

from petlib import distributed as dist
from petlib.cli.common import (
    Switch,
    add_progress_flags,
    argument_parser,
    examples,
    option,
    optional,
    parse_bool,
    prog,
    run_main,
    show_progress,
)
from petlib.losses import LOSSES
from petlib.models import MODELS
from petlib.training.config import (
    COMPILE_MODES,
    DEFAULT_BATCH_SIZE,
    DEFAULT_LR,
    OPTIMIZERS,
    RECIPES,
    SCHEDULERS,
    SWITCH_VALUES,
    TrainConfig,
    recipe,
)
from petlib.training.engine import fit

__all__ = ["build_parser", "config_from_args", "main"]

#: The valid values of each enumerated field, from the registries TrainConfig checks against.
CHOICES: dict[str, Sequence[str]] = {
    "model": tuple(MODELS), "optimizer": OPTIMIZERS, "scheduler": SCHEDULERS, "loss": tuple(LOSSES),
    "amp": SWITCH_VALUES, "channels_last": SWITCH_VALUES, "fused_optimizer": SWITCH_VALUES,
    "compile_mode": COMPILE_MODES,
}
#: What a field's default means where the value alone would not say (None, mostly).
DEFAULT_MEANING: dict[str, str] = {
    "lr": "petlib's rate for the model: " + ", ".join(f"{name} {rate:g}" for name, rate in DEFAULT_LR.items()),
    "batch_size": "petlib's batch for the model: "
                  + ", ".join(f"{name} {size}" for name, size in DEFAULT_BATCH_SIZE.items()),
    "subset": "every image",
    "eval_batch_size": "2 x batch_size",
    "num_workers": "0 from the cache or on the CPU, else 4",
    "run_name": "the model name",
    "device": "CUDA, then MPS, then the CPU",
    "grad_clip": f"{TrainConfig.grad_clip}; none disables clipping",
    "ema_decay": "none: keep the weights as trained, not their moving average",
    "cache": "true: decode once into memory; disk: into a file reused by later runs",
}


def _parse_cache(text: str) -> bool | str:
    lowered = text.strip().lower()
    if lowered == "disk":
        return "disk"
    if lowered == "memory":
        return True
    choice = parse_bool(text) if lowered else None  # an empty --cache is a mistake, not "no"
    if choice is None:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: choose from true (memory), disk, false")
    return choice


def _parse_json_dict(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not JSON ({err}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"base_channels\": 32}}', got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    name = prog("petlib-train")
    epilog = examples(
        name,
        ("--model resnet34_unet --pretrained", "petlib's recipe on dataset/oxford-iiit-pet (petlib-data download)"),
        ("--model unet --data_path dataset/oxford-iiit-pet-sample --epochs 10 --image_size 64 --validate",
         "a quick UNet on the 300-image sample in the repository, holding out every 10th image"),
        ("--model resnet34_unet --recipe smp --out_dir runs/smp --resume",
         "smp's recipe; run again after an interruption and it continues"),
    )
    parser = argument_parser(name, __doc__, epilog=epilog)
    parser.add_argument("--recipe", choices=list(RECIPES), default="petlib",
                        help="starting settings, which the other flags override (the defaults below are petlib's)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from <out_dir>/<run_name>_last.pth if it exists, else start a new run: the "
                             "same command starts a run and continues it after an interruption (needs --save_last)")
    parser.add_argument("--pretrained", action="store_true",
                        help="ResNet34-UNet: start the encoder from torchvision's ImageNet weights (downloads them)")
    parser.add_argument("--tensorboard", metavar="DIR", default=None,
                        help="also log each epoch's losses, Dice, IoU and learning rate as TensorBoard scalars in "
                             "DIR/<run_name> (needs: pip install tensorboard)")
    add_progress_flags(parser)
    hints = typing.get_type_hints(TrainConfig)
    defaults = TrainConfig()
    for field in dataclasses.fields(TrainConfig):
        name, kind = field.name, hints[field.name]
        default = getattr(defaults, name)
        shown = DEFAULT_MEANING.get(name, json.dumps(default) if isinstance(default, (bool, dict)) else default)
        # SUPPRESS: a flag not given is absent from the namespace, so the recipe's value stands;
        # a flag given as "none" is a real override to None.
        common = dict(dest=name, default=argparse.SUPPRESS, help=f"default: {shown}")
        # The learning rate keeps the lab's name first, and the field's as an alias.
        names = option("learning_rate", "--lr") if name == "lr" else option(name)
        if kind is bool:
            parser.add_argument(*names, action=Switch, **common)
        elif name == "model_kwargs":
            parser.add_argument(*names, type=_parse_json_dict, metavar="JSON",
                                **{**common, "help": "model arguments as a JSON object, e.g. '{\"base_channels\": 32}'"})
        elif name == "cache":
            parser.add_argument(*names, type=_parse_cache, metavar="{true,disk,false}", **common)
        elif name in CHOICES:
            parser.add_argument(*names, choices=CHOICES[name], **common)
        else:
            scalars = [t for t in typing.get_args(kind) or (kind,) if t in (int, float, str)]
            parse = scalars[0] if scalars else str
            if type(None) in typing.get_args(kind):  # Optional: "none" means None
                parse = optional(parse)
            parser.add_argument(*names, type=parse, **common)
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The recipe named by ``--recipe`` with every flag that was given applied.

    Raises:
        ValueError: a value TrainConfig refuses (the message names the field).
    """
    given = vars(args)
    overrides: dict[str, Any] = {f.name: given[f.name] for f in dataclasses.fields(TrainConfig) if f.name in given}
    if args.pretrained:
        overrides["model_kwargs"] = {**overrides.get("model_kwargs", {}), "pretrained": True}
    return recipe(args.recipe, **overrides)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as err:  # a value out of range: a usage error, reported like argparse's own
        parser.error(str(err))
    try:
        result = fit(config, resume=args.resume, progress=show_progress(args.progress), tensorboard=args.tensorboard)
        main_process = dist.is_main()  # ask before the process group is torn down
    except RuntimeError as err:  # under torchrun: another process died (a one-line error, not gloo's traceback)
        lost = dist.group_error(err)
        if lost is None:
            raise
        raise lost from err
    finally:
        dist.cleanup()
    if main_process:
        validated = not math.isnan(result.best_dice)
        kept = "best" if validated else "last epoch's weights"
        print(f"best validation Dice {result.best_dice:.4f}" if validated
              else "no validation split (--validate holds out every 10th trainval image): the model is the last epoch's")
        last = f", {result.last_checkpoint} (resume point)" if result.last_checkpoint is not None else ""
        print(f"checkpoints: {result.best_checkpoint} ({kept}){last}; history: {result.history_file}")
        if result.curves_file is not None:
            print(f"curves: {result.curves_file}")
        else:
            print(f"curves: skipped ({result.curves_skipped})")
        if result.card_file is not None:
            print(f"model card: {result.card_file} and {result.card_file.with_suffix('.md').name}")
    return 0


def console() -> NoReturn:
    """``petlib-train`` (``pyproject.toml``'s ``[project.scripts]``): :func:`main` with one-line errors."""
    run_main(main)


if __name__ == "__main__":
    console()
