"""What every petlib command line shares: flag spellings, progress bars, and errors.

**Spelling.** Flags are spelt with underscores, as the lab's are (``--batch_size``,
``--data_path``, ``--model_path``); :func:`option` adds the hyphen spelling
(``--batch-size``) as an alias that works but is not listed in ``--help``. The same thing has
the same name in every command: ``--data_path`` for the dataset root, ``--out_dir`` for an
output folder, ``--model_path`` for a checkpoint.

**Progress bars** (:func:`add_progress_flags`, :func:`show_progress`) redraw in place with
carriage returns, which fill a log file with thousands of updates: by default they are shown
only when stderr is a terminal (or a notebook); ``--progress`` forces them, ``--no_progress``
hides them.

**Errors** (:func:`run_main`): what a user can fix -- a missing dataset or checkpoint, a bad
value, a file that cannot be read or written, a failed download -- is printed as one
``error: ...`` line on stderr, exit status 1 (2 for usage errors, as argparse does), with no
traceback. ``--debug`` or ``PETLIB_DEBUG=1`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from petlib._io import FALSE_STRINGS, TRUE_STRINGS, parse_bool, stderr_is_interactive  # re-exported: every command's

__all__ = [
    "COMMANDS", "prog",
    "option", "Switch", "HelpFormatter", "argument_parser", "add_progress_flags", "show_progress",
    "stderr_is_interactive", "optional", "run_main", "DEBUG_ENV", "add_tta_flag", "tta_choice",
    "TRUE_STRINGS", "FALSE_STRINGS", "parse_bool", "examples", "positive_int", "torch_device",
]

#: Environment variable that makes :func:`run_main` show tracebacks (``PETLIB_DEBUG=1``).
DEBUG_ENV = "PETLIB_DEBUG"
#: Each console command and the ``python -m`` form it stands for (the lab's command lines keep working).
COMMANDS: dict[str, str] = {
    "petlib-train": "petlib.train",
    "petlib-eval": "petlib.inference",
    "petlib-predict": "petlib.predict",
    "petlib-data": "petlib.data",
    "petlib-export": "petlib.export",
}


def prog(command: str) -> str:
    """The name ``command``'s ``--help`` and errors show: the one that was typed.

    ``petlib-eval`` when run as that console command, else its ``python -m`` form
    (``python -m petlib.inference``).
    """
    invoked = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else ""
    return command if invoked == command else f"python -m {COMMANDS[command]}"


# --------------------------------------------------------------------------- flags


def option(name: str, *aliases: str) -> list[str]:
    """Option strings for the flag ``name``: ``--name``, then its hyphen spelling, then ``aliases``.

    ``option("model_path")`` is ``["--model_path", "--model-path"]``; argparse names the
    destination after the first, ``model_path``.
    """
    strings = [f"--{name}", f"--{name.replace('_', '-')}", *aliases]
    return list(dict.fromkeys(strings))  # "--epochs" has no second spelling


class Switch(argparse.Action):
    """An on/off flag: ``--name`` sets True, ``--no_name`` sets False (default: ``default``).

    Every spelling works: ``--no-name`` (argparse's ``BooleanOptionalAction`` spelling, which
    petlib used before) and, for names with underscores, the all-hyphen ``--no-save-last``.
    """

    def __init__(self, option_strings: Sequence[str], dest: str, default: Any = None, required: bool = False,
                 help: str | None = None) -> None:
        strings = list(option_strings)
        for string in option_strings:
            if string.startswith("--"):
                strings += [f"--no_{string[2:]}", f"--no-{string[2:]}"]
        super().__init__(list(dict.fromkeys(strings)), dest, nargs=0, default=default, required=required, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        setattr(namespace, self.dest, not (option_string or "").startswith(("--no_", "--no-")))


class HelpFormatter(argparse.HelpFormatter):
    """Lists each flag under its underscore spelling only, and its default once.

    The default is added as ``(default: ...)`` unless the help already says it, and left out
    where it would say nothing (``None``, ``False``, empty).
    """

    def _format_action_invocation(self, action: argparse.Action) -> str:
        shown = [s for s in action.option_strings if "-" not in s[2:]]
        if not action.option_strings or not shown:
            return super()._format_action_invocation(action)
        if action.nargs == 0:
            return ", ".join(shown)
        metavar = self._format_args(action, self._get_default_metavar_for_optional(action))
        return ", ".join(f"{s} {metavar}" for s in shown)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        # The examples epilog (see examples()) keeps its lines: a command line must not be re-wrapped.
        if text.startswith("examples:\n"):
            return "\n".join(indent + line for line in text.splitlines())
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        empty = action.default in (None, False, "", [], argparse.SUPPRESS)
        if "default" in text or empty or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


def examples(prog: str, *lines: tuple[str, str]) -> str:
    """An epilog for ``--help``: each ``(arguments, what it does)`` as a command line of ``prog``, the
    name that was typed, with its comment on the next line. :class:`HelpFormatter` keeps its line breaks."""
    return "examples:\n" + "\n".join(f"  {prog} {arguments}".rstrip() + f"\n      # {what}"
                                       for arguments, what in lines)


def argument_parser(prog: str, doc: str | None, **kwargs: Any) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` with petlib's help layout, described by ``doc``'s first paragraph, and ``--debug``.

    ``epilog=examples(prog, ...)`` ends the ``--help`` with real command lines."""
    parser = argparse.ArgumentParser(prog=prog, description=(doc or "").split("\n\n")[0],
                                     formatter_class=HelpFormatter, **kwargs)
    parser.add_argument("--debug", action="store_true",
                        help=f"show the full traceback of an error (also: {DEBUG_ENV}=1)")
    return parser


def optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse ``type`` that reads ``none`` as None and anything else with ``parse``.

    For settings whose None means something (``--grad_clip none``: no clipping).
    """

    def parse_or_none(text: str) -> Any:
        return None if text.strip().lower() == "none" else parse(text)

    parse_or_none.__name__ = getattr(parse, "__name__", "value")  # argparse names it in "invalid float value"
    return parse_or_none


def positive_int(text: str) -> int:
    """An argparse ``type``: a whole number >= 1 (``--batch_size``, ``--image_size``), refused as a usage error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number: give a whole number, 1 or more")
    return value


def torch_device(text: str) -> str:
    """An argparse ``type``: a ``--device`` torch knows and this machine has (checked before a model loads)."""
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, TypeError):
        raise argparse.ArgumentTypeError(f"not a torch device: {text!r} (e.g. cpu, cuda, cuda:1, mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text}: this machine has no CUDA device that torch can use; "
                                         "use --device cpu, or leave --device out")
    mps = getattr(torch.backends, "mps", None)
    if device.type == "mps" and not (mps is not None and mps.is_available()):
        raise argparse.ArgumentTypeError(f"{text}: Apple's MPS is not available here; use --device cpu")
    return text


# --------------------------------------------------------------------------- progress bars


def add_progress_flags(parser: argparse.ArgumentParser) -> None:
    """``--progress`` / ``--no_progress``; neither: bars only when stderr is a terminal."""
    parser.add_argument(*option("progress"), action=Switch, default=None,
                        help="show progress bars (--progress) or not (--no_progress); by default only when "
                             "stderr is a terminal, so that a log file gets one line per epoch")


def show_progress(choice: bool | None) -> bool:
    """The ``--progress`` choice, or, when none was made, whether stderr is interactive."""
    return stderr_is_interactive() if choice is None else choice


def add_tta_flag(parser: argparse.ArgumentParser, help: str = "average with the horizontally flipped prediction") -> None:
    """``--tta on|off``; neither: as the checkpoint was validated. A bare ``--tta`` (the old spelling) means on."""
    parser.add_argument("--tta", choices=["on", "off"], nargs="?", const="on", default=None,
                        help=f"{help} (default: as the checkpoint was validated)")


def tta_choice(value: str | None) -> bool | None:
    """``--tta``'s value as ``evaluate_checkpoint`` and friends take it: True, False, or None (as validated)."""
    return None if value is None else value == "on"


# --------------------------------------------------------------------------- errors


def _user_errors() -> tuple[type[BaseException], ...]:
    # Imported here: petlib.data imports this module for its progress bar.
    from petlib.data.dataset import DownloadError
    from petlib.training.checkpoint import CheckpointError

    # DatasetNotFoundError and a missing checkpoint are FileNotFoundErrors, hence OSErrors;
    # a config value out of range is a ValueError.
    return (CheckpointError, DownloadError, ValueError, OSError)


def run_main(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> NoReturn:
    """Run a command line's ``main(argv)`` and exit with its status, errors as one line.

    ``--debug`` (anywhere in ``argv``; default ``sys.argv[1:]``) or ``PETLIB_DEBUG=1`` lets
    the exception through with its traceback.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = bool(parse_bool(os.environ.get(DEBUG_ENV, "")))
    if "--debug" in args:
        debug = True
        args.remove("--debug")
    user_errors = _user_errors()
    try:
        status = main(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
    except user_errors as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    sys.exit(status or 0)
