"""Experiments behind the README's numbers.

    python -m petlib.research.experiments compare-recipes --model resnet34_unet \\
        --data_path ../shared/data/oxford-iiit-pet-sample --image_size 128 --epochs 30

trains the same network with three recipes -- the course lab's, segmentation_models_pytorch's
example and petlib's (see :data:`petlib.training.config.RECIPES`) -- for the same epochs, at the same
image size, on the same training images, keeps each run's best-validation checkpoint, and
prints a table of test Dice and IoU with wall time. Settings are chosen on the validation
split only; the test split is scored once per finished run. Each finished recipe is stored
in ``<out_dir>/results.json`` and skipped when the command is run again, so an interrupted
comparison continues where it stopped (``--resume`` also continues a half-trained recipe).

    python -m petlib.research.experiments lr-find --model unet --data_path ... --image_size 96

    python -m petlib.research.experiments cv --data_path dataset/oxford-iiit-pet-sample --folds 4 \
        --candidates default strong-aug --image_size 128 --epochs 30 --batch_size 16

cross-validates candidate recipes (:mod:`petlib.research.crossval`): each is trained once per fold of
the trainval images and scored on the fold it did not see, and the table gives each
candidate's held-out Dice (mean ± standard error over runs) and its paired difference to the
first candidate with a 95 % interval. ``--fold`` runs one fold (to spread folds over
processes); ``--report`` only prints the table of the runs finished so far.

    python -m petlib.research.experiments lr-find --model unet --data_path ... --image_size 96

runs a learning-rate range test (exponentially growing learning rate, one step each)
and prints the loss curve and a suggested learning rate.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from petlib.cli.common import add_progress_flags, argument_parser, option, run_main, show_progress
from petlib.data.dataset import SAMPLE_ROOT
from petlib.evaluation.score import score_at_original_size
from petlib.losses import build_loss
from petlib.models import MODELS, build_model
from petlib.research.crossval import (
    CANDIDATES,
    format_summary,
    load_records,
    parse_candidate,
    parse_value,
    run_fold,
    summarise,
)
from petlib.training.checkpoint import load_model
from petlib.training.config import RECIPES, TrainConfig, recipe
from petlib.training.device import pick_device, seed_everything
from petlib.training.engine import evaluate, fit, make_loaders

__all__ = ["compare_recipes", "lr_range_test", "main"]


def compare_recipes(
    model: str,
    data_path: str,
    *,
    image_size: int,
    epochs: int,
    batch_size: int,
    recipes: Sequence[str] = tuple(RECIPES),
    out_dir: str | Path = "runs/compare",
    seed: int = 0,
    resume: bool = False,
    progress: bool = False,
    overrides: dict[str, Any] | None = None,
    label: str = "",
) -> dict[str, dict[str, Any]]:
    """Train ``model`` once per recipe and score each best-validation checkpoint on the test split.

    Returns:
        recipe name (plus ``label``, for a variant run with ``overrides``) -> ``{"val_dice", "test_dice", "test_iou", "test_dice_full",
        "test_iou_full", "tta", "minutes", "best_epoch", "config"}``; ``*_full`` are scored
        at each test image's original resolution.
    """
    out = Path(out_dir) / f"{model}_{image_size}px_{epochs}ep"
    out.mkdir(parents=True, exist_ok=True)
    results_file = out / "results.json"
    results: dict[str, dict[str, Any]] = json.loads(results_file.read_text()) if results_file.exists() else {}
    for base in recipes:
        name = base + label
        if name in results:
            print(f"[{name}] done earlier: test Dice {results[name]['test_dice']:.4f} (from {results_file})")
            continue
        # Every recipe on the same training images, keeping its best validated epoch (validate).
        config = recipe(base, model=model, data_path=str(data_path), image_size=image_size, epochs=epochs,
                        batch_size=batch_size, seed=seed, out_dir=str(out), run_name=name,
                        **{"validate": True, **(overrides or {})})
        print(f"[{name}] {json.dumps({**RECIPES[base], **(overrides or {})})}")
        start = time.perf_counter()
        run = fit(config, resume=resume, progress=progress)
        minutes = (time.perf_counter() - start) / 60
        device = pick_device(config.device)
        net, best = load_model(run.best_checkpoint, expected_model=model)
        net.to(device)
        test_loader = make_loaders(dataclasses.replace(config, augment=False), device, modes=("test",))["test"]
        test = evaluate(net, test_loader, device, tta=config.tta)
        full = score_at_original_size(net, data_path, "test", image_size=image_size, tta=config.tta, device=device)
        results[name] = {
            "val_dice": best["best_dice"], "best_epoch": best["epoch"], "test_dice": test["dice"],
            "test_iou": test["iou"], "test_dice_full": full["dice"], "test_iou_full": full["iou"],
            "test_images": test["count"], "tta": config.tta, "minutes": minutes, "config": config.to_dict(),
        }
        results_file.write_text(json.dumps(results, indent=2) + "\n")
        print(f"[{name}] test Dice {test['dice']:.4f} | IoU {test['iou']:.4f} | {minutes:.1f} min")
    print_table(results, model, image_size, epochs)
    return results


def print_table(results: dict[str, dict[str, Any]], model: str, image_size: int, epochs: int) -> None:
    """Markdown table of a comparison (as pasted into the README)."""
    print(f"\n{model}, {image_size} px, {epochs} epochs; test = per-image mean over the test split, "
          "best-validation checkpoint; 'full res' = logits resized to each image's original size")
    print("| recipe | val Dice | test Dice | test IoU | test Dice (full res) | flip TTA | wall time |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['val_dice']:.4f} | {r['test_dice']:.4f} | {r['test_iou']:.4f} | "
              f"{r['test_dice_full']:.4f} | {'yes' if r['tta'] else 'no'} | {r['minutes']:.1f} min |")
    for ours in (n for n in results if n.startswith("petlib")):
        for other in ("lab", "smp"):
            if other in results:
                gain = results[ours]["test_dice"] - results[other]["test_dice"]
                print(f"{ours} - {other}: {gain:+.4f} test Dice")


def lr_range_test(
    config: TrainConfig, *, start_lr: float = 1e-6, end_lr: float = 1.0, steps: int = 60
) -> list[tuple[float, float]]:
    """Leslie Smith's learning-rate range test.

    Trains from the config's initial weights with the learning rate growing geometrically
    from ``start_lr`` to ``end_lr``, one batch per step, and stops when the smoothed loss
    exceeds 4x its minimum. Returns ``(lr, smoothed loss)`` pairs.
    """
    device = pick_device(config.device)
    seed_everything(config.seed)
    loader = make_loaders(config, device, modes=("train",))["train"]
    model = build_model(config.model, **config.model_kwargs).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=start_lr, weight_decay=config.weight_decay)
    loss_fn = build_loss(config.loss)
    augment = config.augmentation()  # the augmentation being tuned for
    factor = (end_lr / start_lr) ** (1 / max(1, steps - 1))
    curve, smoothed, best = [], None, math.inf
    step, lr = 0, start_lr
    while step < steps:
        for batch in loader:
            images, masks = batch["image"].to(device), batch["mask"].to(device)
            if augment is not None:
                images, masks = augment(images, masks)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = loss_fn(model(images), masks)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            value = loss.item()
            smoothed = value if smoothed is None else 0.8 * smoothed + 0.2 * value
            curve.append((lr, smoothed))
            best = min(best, smoothed)
            step += 1
            lr *= factor
            if step >= steps or not math.isfinite(value) or smoothed > 4 * best:
                return curve
    return curve


def suggest_lr(curve: list[tuple[float, float]]) -> float:
    """A tenth of the learning rate at the smoothed loss's minimum (a common, safe reading)."""
    lr_at_min = min(curve, key=lambda p: p[1])[0]
    return lr_at_min / 10


def cross_validate_command(args: Any, overrides: dict[str, Any]) -> int:
    """``cv``: train the candidates' missing runs (unless ``--report``), then print the table."""
    candidates = [parse_candidate(text) for text in args.candidates]
    baseline = candidates[0][0]
    if args.folds < 2:
        raise ValueError(f"--folds {args.folds}: cross-validation needs at least 2 folds")
    folds = args.fold if args.fold is not None else list(range(args.folds))
    out = Path(args.out_dir) / f"{args.model}_{args.image_size}px_{args.epochs}ep_b{args.batch_size}_k{args.folds}"
    if not args.report:
        for name, candidate in candidates:
            for seed in args.seeds:
                for fold in folds:
                    # A candidate may override the command's own settings (batch_size, epochs).
                    settings = dict(model=args.model, data_path=str(args.data_path), image_size=args.image_size,
                                    epochs=args.epochs, batch_size=args.batch_size)
                    config = recipe("petlib", **{**settings, **overrides, **candidate})
                    record = run_fold(config, name, folds=args.folds, fold=fold, seed=seed, out_dir=out,
                                      progress=show_progress(args.progress))
                    print(f"[{name}] seed {seed} fold {fold}/{args.folds}: held-out Dice "
                          f"{record['heldout_dice']:.4f} ({record['heldout_images']} images, "
                          f"{record['minutes']:.1f} min)", flush=True)
    records = {name: runs for name, runs in load_records(out).items()
               if name in {n for n, _ in candidates}}
    if not records:
        print(f"no finished runs in {out}")
        return 0
    print(f"\n{args.model}, {args.image_size} px, {args.epochs} epochs, batch {args.batch_size}, "
          f"{args.folds}-fold cross-validation of {args.data_path}'s trainval images ({out})")
    kept = "the checkpoint it keeps (its best validated epoch; its last without validation)"
    print(f"scored: each run's {kept if args.score == 'best' else 'last epoch'} on its held-out fold")
    print(format_summary(summarise(records, baseline, args.score), baseline))
    return 0


def _add_compare_parser(sub: argparse._SubParsersAction, formatter: type) -> None:
    cmp = sub.add_parser("compare-recipes", help="lab vs smp vs petlib recipe, same compute", formatter_class=formatter)
    cmp.add_argument("--model", default="resnet34_unet", choices=list(MODELS))
    cmp.add_argument(*option("data_path"), required=True, help="dataset root")
    cmp.add_argument(*option("image_size"), type=int, default=128)
    cmp.add_argument("--epochs", type=int, default=30)
    cmp.add_argument(*option("batch_size"), type=int, default=8, help="the same for every recipe")
    cmp.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    cmp.add_argument(*option("out_dir", "--out"), default="runs/compare", help="folder for the runs and results.json")
    cmp.add_argument("--seed", type=int, default=0)
    cmp.add_argument("--resume", action="store_true", help="continue a half-trained recipe")
    add_progress_flags(cmp)
    cmp.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                     help="TrainConfig overrides for every recipe run (a variant), e.g. crop_scale_min=0.6")
    cmp.add_argument("--label", default="", help="suffix for the variant's name in the table, e.g. -light")


def _add_cv_parser(sub: argparse._SubParsersAction, formatter: type) -> None:
    cv = sub.add_parser("cv", help="k-fold cross-validation of candidate recipes (how defaults are chosen)",
                        formatter_class=formatter)
    cv.add_argument("--model", default="resnet34_unet", choices=list(MODELS))
    cv.add_argument(*option("data_path"), default=str(SAMPLE_ROOT), help="dataset root; its trainval images are folded")
    cv.add_argument(*option("image_size"), type=int, default=128)
    cv.add_argument("--epochs", type=int, default=30)
    cv.add_argument(*option("batch_size"), type=int, default=16)
    cv.add_argument("--folds", type=int, default=4, help="k of k-fold")
    cv.add_argument("--fold", type=int, nargs="*", default=None, help="run only these folds (default: all)")
    cv.add_argument("--seeds", type=int, nargs="+", default=[0], help="repeat every fold with each seed")
    cv.add_argument("--candidates", nargs="+", default=["default"], metavar="NAME[:FIELD=VALUE,...]",
                    help=f"recipes to compare, the first is the baseline; known names: {', '.join(CANDIDATES)}")
    cv.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                    help="TrainConfig overrides for every candidate (e.g. amp=on subset=32)")
    cv.add_argument(*option("out_dir", "--out"), default="runs/cv", help="folder for the runs' records")
    cv.add_argument("--report", action="store_true", help="print the table of finished runs; train nothing")
    cv.add_argument("--score", choices=("best", "last"), default="best",
                    help="score each run's best-validation checkpoint (what petlib keeps) or its last epoch")
    add_progress_flags(cv)


def _add_lr_find_parser(sub: argparse._SubParsersAction, formatter: type) -> None:
    lrf = sub.add_parser("lr-find", help="learning-rate range test", formatter_class=formatter)
    lrf.add_argument("--model", default="resnet34_unet", choices=list(MODELS))
    lrf.add_argument(*option("data_path"), required=True, help="dataset root")
    lrf.add_argument(*option("image_size"), type=int, default=128)
    lrf.add_argument(*option("batch_size"), type=int, default=8)
    lrf.add_argument("--steps", type=int, default=60, help="learning rates tried, one batch each")


def build_parser() -> argparse.ArgumentParser:
    parser = argument_parser("python -m petlib.research.experiments", __doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_compare_parser, _add_cv_parser, _add_lr_find_parser):
        add(sub, parser.formatter_class)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    overrides = {}
    for item in getattr(args, "set", []):
        key, _, value = item.partition("=")
        overrides[key] = parse_value(value)
    if args.command == "cv":
        return cross_validate_command(args, overrides)
    if args.command == "compare-recipes":
        if overrides and not args.label:
            parser.error("a variant (--set) needs a --label to tell it apart in the results")
        compare_recipes(args.model, args.data_path, image_size=args.image_size, epochs=args.epochs,
                        batch_size=args.batch_size, recipes=args.recipes, out_dir=args.out_dir, seed=args.seed,
                        resume=args.resume, progress=show_progress(args.progress), overrides=overrides,
                        label=args.label)
    else:
        config = recipe("petlib", model=args.model, data_path=args.data_path, image_size=args.image_size,
                        batch_size=args.batch_size)
        curve = lr_range_test(config, steps=args.steps)
        for lr, loss in curve[:: max(1, len(curve) // 20)]:
            print(f"lr {lr:.2e}  loss {loss:.4f}")
        print(f"suggested learning rate: {suggest_lr(curve):.1e}")
    return 0


if __name__ == "__main__":
    run_main(main)
