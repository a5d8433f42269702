"""The main job: train UNet and ResNet34-UNet, then print their test scores side by side.

    python -m petlib.run            (what `make run` does)

With the full dataset in ``dataset/oxford-iiit-pet`` (``python -m petlib.data download``) it
trains both networks with petlib's recipe at 256 px for 50 epochs and writes the checkpoints to
``saved_models/``: hours on a GPU. Without it, it says so and trains both on the 300-image sample
embedded in the repository with the settings of :data:`petlib.training.config.SAMPLE_SETTINGS` (chosen on
the sample's validation split): about 11 minutes on two CPU cores in float32, 6 with native bf16, checkpoints in
``saved_models/sample/`` (or a fresh ``sample-2``, ``sample-3``, ... when an earlier run is
there, so that no earlier checkpoint is ever replaced).

Each network's best-validation checkpoint is scored once on the test split, the way it was
validated (flip TTA on or off, as its config says).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from petlib.cli.common import argument_parser, examples
from petlib.data.dataset import DEFAULT_ROOT, SAMPLE_ROOT, dataset_present
from petlib.evaluation.score import evaluate_checkpoint
from petlib.evaluation.tables import format_table
from petlib.models import MODELS
from petlib.training.card import record_test_score
from petlib.training.config import SAMPLE_SETTINGS, TrainConfig, sample_config
from petlib.training.engine import fit
from petlib.training.rundir import RunPaths

__all__ = ["main", "fresh_folder", "write_record", "RUN_MODELS"]

#: The networks the main job trains: every one of :data:`petlib.models.MODELS`, the faster to
#: train (the ResNet34-UNet) first, so that a user who stops early already has one finished model.
RUN_MODELS = tuple(sorted(MODELS, key=lambda name: name != "resnet34_unet"))


def fresh_folder(base: str | Path, names: Sequence[str]) -> Path:
    """``base``, or ``base-2``, ``base-3``, ... : the first that holds none of ``<name>.pth``."""
    base = Path(base)
    candidate, number = base, 1
    while any(RunPaths(candidate, name).best.exists() for name in names):
        number += 1
        candidate = base.with_name(f"{base.name}-{number}")
    return candidate


def _fresh_out(base: Path) -> Path:
    out = fresh_folder(base, RUN_MODELS)
    if out != base:
        print(f"{base} holds an earlier run, which is kept: this run writes to {out}.")
    return out


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in ("epochs", "image_size", "subset") if getattr(args, name)}


def _configs(args: argparse.Namespace) -> tuple[str, list[TrainConfig]]:
    """What to train: a sentence saying which data and why, and one config per network."""
    if dataset_present(args.data_path) and not args.sample:
        out = _fresh_out(args.out_dir)
        # validate: make run is what the notebooks run, validation curves included.
        overrides: dict[str, Any] = dict(data_path=str(args.data_path), image_size=256, epochs=50, batch_size=16,
                                         validate=True, out_dir=str(out), **_overrides(args))
        what = (f"Full dataset found at {args.data_path}: training both networks with petlib's recipe at 256 px "
                f"for {overrides['epochs']} epochs (hours on a GPU; impractical on a CPU).")
        return what, [TrainConfig(model=name, **overrides) for name in RUN_MODELS]
    out = _fresh_out(Path(args.out_dir) / "sample")
    why = "" if args.sample else f"No full dataset at {args.data_path} (get it with `python -m petlib.data download`). "
    what = (f"{why}Training both networks on the embedded sample {SAMPLE_ROOT.name} (300 real images: "
            "train 216 / valid 24 / test 60) with settings chosen on its validation split; "
            "about 11 minutes on two CPU cores in float32, 6 with native bf16.")
    return what, [sample_config(name, str(SAMPLE_ROOT), out_dir=str(out), cache=True, **_overrides(args))
                  for name in RUN_MODELS if name in SAMPLE_SETTINGS]


def _time_left(config: TrainConfig, start: float) -> Callable[[dict[str, float]], None]:
    """After a network's first epoch, print how long its remaining epochs should take at that pace.

    The first epoch also decodes the images into the cache, so the estimate errs long; the closing
    table gives the minutes measured.
    """
    def on_epoch(row: dict[str, float]) -> None:
        if row["epoch"] != 1 or config.epochs == 1:
            return
        elapsed = time.perf_counter() - start
        left = elapsed * (config.epochs - 1)
        print(f"  {config.model}: first epoch took {elapsed:.0f} s; about {left / 60:.1f} min left for its "
              f"{config.epochs - 1} other epochs at that pace", flush=True)
    return on_epoch


def main(argv: Sequence[str] | None = None) -> int:
    prog = "python -m petlib.run"
    parser = argument_parser(prog, __doc__, epilog=examples(
        prog,
        ("", "the full dataset if it is in dataset/oxford-iiit-pet, else the embedded sample (what `make run` does)"),
        ("--sample", "the embedded sample even where the full dataset is present"),
        ("--sample --epochs 2 --subset 16", "a one-minute check that everything runs"),
    ))
    parser.add_argument("--sample", "--quick", action="store_true",
                        help="train on the embedded sample even if the full dataset is there")
    parser.add_argument("--data_path", "--data-path", type=Path, default=DEFAULT_ROOT,
                        help=f"where to look for the full dataset (default {DEFAULT_ROOT})")
    parser.add_argument("--out_dir", "--out-dir", type=Path, default=Path("saved_models"),
                        help="checkpoints go here (the sample's to <out_dir>/sample); default saved_models")
    parser.add_argument("--epochs", type=int, default=None, help="override the number of epochs of both networks")
    parser.add_argument("--image_size", "--image-size", type=int, default=None,
                        help="override the image size of both networks (a quick check)")
    parser.add_argument("--subset", type=int, default=None,
                        help="train and validate on only this many images (a quick check; the test split is scored whole)")
    args = parser.parse_args(argv)

    what, configs = _configs(args)
    print(what)
    print(f"Checkpoints: {configs[0].out_dir}/")
    results: dict[str, dict[str, Any]] = {}
    for config in configs:
        print(f"\n=== {config.model}: {config.image_size} px, {config.epochs} epochs, batch {config.batch_size} ===")
        start = time.perf_counter()
        run = fit(config, progress=sys.stderr.isatty(), on_epoch=_time_left(config, start))
        test = evaluate_checkpoint(run.best_checkpoint, config.data_path, "test", tta=config.tta,
                                   batch_size=2 * config.batch_size, device=config.device, per_image=True)
        record_test_score(run.best_checkpoint, test, data_path=config.data_path)  # into the model card
        results[config.model] = {**test, "val_dice": run.best_dice, "minutes": (time.perf_counter() - start) / 60,
                                 "checkpoint": run.best_checkpoint, "config": config}

    print(f"\nTest scores of the best-validation checkpoints ({Path(configs[0].data_path).name}, test split, "
          "Dice and IoU per image, averaged over images):")
    print(format_table([{
        "model": name, "px": r["config"].image_size, "epochs": r["config"].epochs, "val Dice": r["val_dice"],
        "test Dice": r["dice"], "test IoU": r["iou"], "images": r["count"],
        "flip TTA": "on" if r["config"].tta else "off", "minutes": f"{r['minutes']:.1f}",
    } for name, r in results.items()]))
    print("\nValidation and test are scored alike (flip TTA as listed). Minutes: training, validation and the test "
          "pass of each network.")
    for name, r in results.items():
        paths = RunPaths.of_checkpoint(r["checkpoint"])
        print(f"{name}: {paths.best} (curves: {paths.curves.name}, model card: {paths.card_md.name})")
    record = write_record(results, Path(configs[0].out_dir) / "run_results.json")
    print(f"Every number above, with the configs and per-image test scores: {record}")
    return 0


def write_record(results: dict[str, dict[str, Any]], path: Path) -> Path:
    """Write the run's record: per network its config, validation and test scores, per-image test Dice, minutes."""
    record = {}
    for name, r in results.items():
        order = r["indices"].argsort()  # split-file order, so two networks' scores line up image by image
        record[name] = {
            "config": r["config"].to_dict(), "checkpoint": str(r["checkpoint"]), "best_epoch": r["epoch"],
            "val_dice": r["val_dice"], "test_dice": r["dice"], "test_iou": r["iou"], "test_images": r["count"],
            "tta": r["tta"], "minutes": r["minutes"],
            "test_dice_per_image": [round(float(d), 6) for d in r["dice_per_image"][order]],
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


if __name__ == "__main__":
    from petlib.cli.common import run_main  # errors as one line, as every petlib command line

    run_main(main)
