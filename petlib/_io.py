"""The few helpers for the outside world that every layer needs: files, the terminal, yes/no.

**Files** are written as every other program writes them: permissions from the user's umask. Atomic writes go through :func:`tempfile.mkstemp`, which creates the file readable by its
owner only (0600), whatever the umask says; renamed into place, a checkpoint or a cache
would then stay unreadable to a group that shares the folder. :func:`replace_atomically` writes
beside the target and renames over it, so a reader (or a crash) never sees half a file.

**The terminal**: :func:`stderr_is_interactive` says whether a progress bar may redraw in place.
**Yes and no** in environment variables and flag values: :func:`parse_bool`.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "umask", "chmod_as_new_file", "replace_atomically", "stderr_is_interactive", "parse_bool", "TRUE_STRINGS",
    "FALSE_STRINGS",
]


def umask() -> int:
    """This process's umask, without changing it.

    Linux reports it in ``/proc/self/status``; elsewhere it is read by setting it and
    setting it back, which another thread creating a file at that instant could notice.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def chmod_as_new_file(path: str | Path) -> None:
    """Give ``path`` the mode ``open()`` would have given a new file: ``0o666 & ~umask``."""
    os.chmod(path, 0o666 & ~umask())


def replace_atomically(write: Callable[[Path], object], path: str | Path) -> Path:
    """Call ``write(tmp)`` on a file beside ``path``, then rename it over ``path``.

    An interrupted write never leaves half a file under the real name; the temporary file is
    removed if ``write`` fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


#: How petlib spells yes and no in environment variables and flag values (any case).
TRUE_STRINGS = ("1", "true", "yes", "on")
FALSE_STRINGS = ("", "0", "false", "no", "off")


def parse_bool(text: str) -> bool | None:
    """``text`` as a yes or no (:data:`TRUE_STRINGS`, :data:`FALSE_STRINGS`, any case, spaces
    around ignored); ``None`` for anything else, which the caller refuses or ignores."""
    value = text.strip().lower()
    if value in TRUE_STRINGS:
        return True
    if value in FALSE_STRINGS:
        return False
    return None


def stderr_is_interactive() -> bool:
    """True where a progress bar redraws in place: a terminal, or a Jupyter kernel (where
    tqdm.auto draws a widget); False for a pipe or a file, which would keep every redraw."""
    stream = sys.stderr
    if stream is None:
        return False
    if type(stream).__module__.startswith("ipykernel"):
        return True
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False
