"""Score a trained checkpoint on a split of the dataset (``petlib-eval``, or ``python -m petlib.inference``).

    petlib-eval --model unet --model_path saved_models/unet.pth --batch_size 64

prints the test Dice and IoU (per image, averaged over all images), at the image size
the model was trained at, and with the test-time augmentation it was validated with
(horizontal-flip averaging when its config has ``tta``): test and validation scores are
then the same kind of number. ``--tta on`` or ``--tta off`` overrides that, and every
printed score says which it is. A test score is also recorded in the checkpoint's model card
(``<name>_card.json`` and ``.md``, :func:`petlib.training.card.record_test_score`; ``--no_card`` leaves
the card alone), with the per-image Dice's 95% interval; scoring the same split at the same size
and TTA again replaces that row, however ``--data_path`` is spelt. ``--model_path`` may also be a
model folder (``petlib-export --format folder``), whose ``README.md`` then gets the score.

Numbers are checked as ``petlib-train`` checks them: ``--batch_size`` and ``--image_size`` are
whole numbers of 1 or more, ``--device`` one this machine has; anything else is a usage error
(exit 2) before the model loads.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import NoReturn

from petlib.cli.common import (
    Switch,
    add_progress_flags,
    add_tta_flag,
    argument_parser,
    examples,
    option,
    positive_int,
    prog,
    run_main,
    show_progress,
    torch_device,
    tta_choice,
)
from petlib.data import DEFAULT_ROOT, MODES
from petlib.evaluation.predict import describe_tta
from petlib.evaluation.score import evaluate_model, score_at_original_size
from petlib.models import MODELS
from petlib.training.checkpoint import load_model

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    name = prog("petlib-eval")
    epilog = examples(
        name,
        ("--model_path saved_models/resnet34_unet.pth", "test Dice and IoU at the training size, as validated"),
        ("--model_path saved_models/unet.pth --data_path dataset/oxford-iiit-pet-sample --tta off",
         "on the sample shipped with petlib, without flip TTA"),
        ("--model_path pets-resnet34-unet --mode valid --original_size",
         "a model folder on the validation split, also at each photo's own resolution"),
    )
    parser = argument_parser(name, __doc__, epilog=epilog)
    parser.add_argument("--model", choices=list(MODELS), default=None, help="architecture the checkpoint must hold (checked)")
    parser.add_argument(*option("model_path"), required=True,
                        help="checkpoint file or model folder, e.g. saved_models/unet.pth")
    parser.add_argument(*option("data_path"), default=str(DEFAULT_ROOT), help="dataset root")
    parser.add_argument("--mode", default="test", choices=list(MODES), help="split to score")
    parser.add_argument(*option("batch_size"), type=positive_int, default=32)
    parser.add_argument(*option("image_size"), type=positive_int, default=None, help="default: the training size")
    add_tta_flag(parser, "average with horizontally flipped predictions")
    parser.add_argument(*option("original_size"), action="store_true",
                        help="also score against each image's full-resolution trimap")
    parser.add_argument("--device", type=torch_device, default=None, help="default: CUDA, then MPS, then the CPU")
    parser.add_argument(*option("card"), action=Switch, default=True,
                        help="record a test score in the checkpoint's model card, <name>_card.json and .md "
                             "(--no_card: leave the card alone)")
    add_progress_flags(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    model, checkpoint = load_model(args.model_path, expected_model=args.model)
    result = evaluate_model(
        model, checkpoint, args.data_path, args.mode, batch_size=args.batch_size, image_size=args.image_size,
        tta=tta_choice(args.tta), device=args.device, progress=show_progress(args.progress), per_image=True,
    )
    how = describe_tta(result["tta"], result["validated_tta"])
    print(
        f"{result['model_name']} ({args.model_path}, epoch {result['epoch']}) on {result['count']} "
        f"{args.mode} images at {result['image_size']}px, {how}:"
    )
    print(f"{args.mode} Dice {result['dice']:.4f} | {args.mode} IoU {result['iou']:.4f} ({how})")
    if args.original_size:
        device = next(model.parameters()).device
        full = score_at_original_size(model, args.data_path, args.mode, image_size=result["image_size"],
                                      tta=result["tta"], device=device)
        print(f"{args.mode} Dice {full['dice']:.4f} | {args.mode} IoU {full['iou']:.4f} "
              f"(at each image's original resolution, {how})")
    if args.mode == "test" and args.card:
        from petlib.training.card import card_paths, record_test_score

        try:
            card = record_test_score(args.model_path, result, data_path=args.data_path)
        except OSError as err:  # a read-only folder: the score above stands, the card stays as it was
            print(f"model card not updated: {err}")
        else:
            markdown = card_paths(args.model_path)[1].name
            print(f"test score recorded in the model card: {card} and {markdown}")
    return 0


def console() -> NoReturn:
    """``petlib-eval`` (``pyproject.toml``'s ``[project.scripts]``): :func:`main` with one-line errors."""
    run_main(main)


if __name__ == "__main__":
    console()
