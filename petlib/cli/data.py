"""Fetch the full Oxford-IIIT Pet dataset (``petlib-data download``, or ``python -m petlib.data download``).

The images and trimaps (~800 MB) are downloaded, checked and extracted into ``--data_path``
(default ``dataset/oxford-iiit-pet``, where the other commands look). The 300-image sample
that the tests and notebooks use is in the repository (``dataset/oxford-iiit-pet-sample``), not
in an installed package.
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from petlib.cli.common import argument_parser, examples, option, prog, run_main
from petlib.data import DEFAULT_ROOT, download

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """``petlib-data download [--data_path DIR]`` (the usage names the spelling that was typed)."""
    name = prog("petlib-data")
    epilog = examples(
        name,
        ("download", f"into {DEFAULT_ROOT}/, where petlib-train and petlib-eval look by default"),
        ("download --data_path /data/oxford-iiit-pet --remove_archives",
         "elsewhere (then pass --data_path to the other commands), without keeping the .tar.gz files"),
    )
    parser = argument_parser(name, __doc__, epilog=epilog)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fetch = commands.add_parser("download", help="download and extract Oxford-IIIT Pet (~800 MB)",
                                description="Download and extract Oxford-IIIT Pet (~800 MB) into --data_path.",
                                formatter_class=parser.formatter_class, epilog=epilog)
    fetch.add_argument(*option("data_path", "--root"), type=Path, default=DEFAULT_ROOT,
                       help="destination, the dataset root the other commands read")
    fetch.add_argument(*option("remove_archives"), action="store_true", help="delete the .tar.gz files after extracting")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "download":
        root = download(args.data_path, remove_archives=args.remove_archives)
        print(f"Done: {root}")


def console() -> NoReturn:
    """``petlib-data`` (``pyproject.toml``'s ``[project.scripts]``): :func:`main` with one-line errors."""
    run_main(main)


if __name__ == "__main__":
    console()
