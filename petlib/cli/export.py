"""``petlib-export`` (or ``python -m petlib.export``): a checkpoint as a file that runs without petlib, or a folder to share.

    petlib-export --model_path saved_models/resnet34_unet.pth --format onnx          # -> saved_models/resnet34_unet.onnx
    petlib-export --model_path saved_models/resnet34_unet.pth --format torchscript   # -> resnet34_unet.torchscript.pt
    petlib-export --model_path saved_models/resnet34_unet.pth --format folder        # -> saved_models/resnet34_unet/

A folder holds ``model.safetensors``, ``config.json`` and the model card as ``README.md`` (the
Hugging Face layout, :func:`petlib.training.pretrained.save_pretrained`); an earlier export's
files in it are replaced only with ``--overwrite``. What the exported files take and return:
:mod:`petlib.evaluation.export`.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import NoReturn

from petlib.cli.common import Switch, add_tta_flag, argument_parser, examples, option, prog, run_main, tta_choice
from petlib.evaluation.export import FORMATS, MissingPackageError, check_export, export_checkpoint
from petlib.evaluation.predict import describe_tta

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    name = prog("petlib-export")
    epilog = examples(
        name,
        ("--model_path saved_models/resnet34_unet.pth", "saved_models/resnet34_unet.onnx, for onnxruntime"),
        ("--model_path saved_models/resnet34_unet.pth --format folder --output pets-resnet34-unet",
         "a folder to share: model.safetensors, config.json, README.md (the model card)"),
        ("--model_path saved_models/unet.pth --format torchscript --tta on",
         "saved_models/unet.torchscript.pt, the flip averaging inside"),
    )
    parser = argument_parser(name, __doc__, epilog=epilog)
    parser.add_argument(*option("model_path"), required=True,
                        help="checkpoint or model folder, e.g. saved_models/resnet34_unet.pth")
    parser.add_argument("--format", choices=FORMATS, default="onnx",
                        help="what to write: an ONNX file, a TorchScript file, or a model folder")
    parser.add_argument("--output", default=None,
                        help="file or folder to write (default: beside the checkpoint, <name>.onnx, "
                             "<name>.torchscript.pt or <name>/)")
    add_tta_flag(parser, "put the flip averaging inside the exported model (onnx, torchscript)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: torch's)")
    parser.add_argument("--overwrite", action="store_true",
                        help="--format folder: replace the files of an earlier export in the folder")
    parser.add_argument(*option("check"), action=Switch, default=True,
                        help="load the exported model, run it on two image sizes and compare with PyTorch "
                             "(--no_check: skip)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        path, model, metadata = export_checkpoint(args.model_path, args.format, args.output, tta=tta_choice(args.tta),
                                                  opset=args.opset, overwrite=args.overwrite)
    except MissingPackageError as err:
        parser.exit(1, f"error: {err}\n")
    size = metadata["image_size"]
    folder = args.format == "folder"
    written = (f"{path}/ (model.safetensors {(path / 'model.safetensors').stat().st_size / 2**20:.1f} MB, "
               "config.json, README.md, card.json)") if folder else f"{path} ({path.stat().st_size / 2**20:.1f} MB)"
    how = "TTA chosen when predicting" if folder else describe_tta(metadata["tta"], metadata["validated_tta"])
    print(f"wrote {written}: {metadata['model_name']} from {args.model_path} (epoch {metadata['epoch']}), {how}")
    print(f"input images: float32 (N, 3, H, W) RGB in [0, 1], any N, H, W (trained at {size}x{size}: resize photos "
          f"to that); output logits: (N, 1, H, W), sigmoid(logits) > 0.5 is pet")
    if folder:
        print(f"load it with petlib.load_model({str(path)!r}) or torch.hub.load(..., weights={str(path)!r}); "
              f"the model card is {path / 'README.md'}")
    if args.check:
        sizes = ((size, size), (size * 3 // 4 + 5, size + 7))  # the training size and an odd one
        try:
            worst = check_export(path, model, tta=metadata["tta"] and not folder, fmt=args.format, sizes=sizes)
        except MissingPackageError as err:
            print(f"not checked: {err}")
        else:
            print(f"checked against PyTorch at {' and '.join(f'{h}x{w}' for h, w in sizes)}: "
                  f"largest |logit difference| {worst:.1e}")
    return 0


def console() -> NoReturn:
    """``petlib-export`` (``pyproject.toml``'s ``[project.scripts]``): :func:`main` with one-line errors."""
    run_main(main)


if __name__ == "__main__":
    console()
