"""``petlib-export`` (or ``python -m petlib.export``): a checkpoint as a file that runs without petlib.

    petlib-export --model_path saved_models/resnet34_unet.pth --format onnx          # -> saved_models/resnet34_unet.onnx
    petlib-export --model_path saved_models/resnet34_unet.pth --format torchscript   # -> resnet34_unet.torchscript.pt

What the exported files take and return: :mod:`petlib.evaluation.export`.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from petlib.cli.common import Switch, add_tta_flag, argument_parser, option, prog, run_main, tta_choice
from petlib.evaluation.export import FORMATS, MissingPackageError, check_export, export_checkpoint
from petlib.evaluation.predict import describe_tta

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argument_parser(prog("petlib-export"), __doc__)
    parser.add_argument(*option("model_path"), required=True, help="checkpoint, e.g. saved_models/resnet34_unet.pth")
    parser.add_argument("--format", choices=FORMATS, default="onnx", help="what to write")
    parser.add_argument("--output", default=None,
                        help="file to write (default: beside the checkpoint, <name>.onnx or <name>.torchscript.pt)")
    add_tta_flag(parser, "put the flip averaging inside the exported model")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: torch's)")
    parser.add_argument(*option("check"), action=Switch, default=True,
                        help="run the exported file on two image sizes and compare with PyTorch (--no_check: skip)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        path, model, metadata = export_checkpoint(args.model_path, args.format, args.output,
                                                  tta=tta_choice(args.tta), opset=args.opset)
    except MissingPackageError as err:
        parser.exit(1, f"error: {err}\n")
    size = metadata["image_size"]
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MB): {metadata['model_name']} from {args.model_path} "
          f"(epoch {metadata['epoch']}), {describe_tta(metadata['tta'], metadata['validated_tta'])}")
    print(f"input images: float32 (N, 3, H, W) RGB in [0, 1], any N, H, W (trained at {size}x{size}: resize photos "
          f"to that); output logits: (N, 1, H, W), sigmoid(logits) > 0.5 is pet")
    if args.check:
        sizes = ((size, size), (size * 3 // 4 + 5, size + 7))  # the training size and an odd one
        try:
            worst = check_export(path, model, tta=metadata["tta"], fmt=args.format, sizes=sizes)
        except MissingPackageError as err:
            print(f"not checked: {err}")
        else:
            print(f"checked against PyTorch at {' and '.join(f'{h}x{w}' for h, w in sizes)}: "
                  f"largest |logit difference| {worst:.1e}")
    return 0



if __name__ == "__main__":
    run_main(main)
