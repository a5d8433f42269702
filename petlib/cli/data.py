"""``petlib-data download``: fetch the full Oxford-IIIT Pet dataset (also ``python -m petlib.data``)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from petlib.cli.common import argument_parser, option, prog, run_main
from petlib.data import DEFAULT_ROOT, download

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``python -m petlib.data download [--data_path DIR]``."""
    parser = argument_parser(prog("petlib-data"), __doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("download", help="download and extract Oxford-IIIT Pet (~800 MB)",
                                formatter_class=parser.formatter_class)
    fetch.add_argument(*option("data_path", "--root"), type=Path, default=DEFAULT_ROOT,
                       help="destination, the dataset root the other commands read")
    fetch.add_argument(*option("remove_archives"), action="store_true", help="delete the .tar.gz files after extracting")
    args = parser.parse_args(argv)
    if args.command == "download":
        root = download(args.data_path, remove_archives=args.remove_archives)
        print(f"Done: {root}")


if __name__ == "__main__":
    run_main(main)
