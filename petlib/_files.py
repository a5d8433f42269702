"""Writing files as every other program does: permissions from the user's umask.

Atomic writes go through :func:`tempfile.mkstemp`, which creates the file readable by its
owner only (0600), whatever the umask says; renamed into place, a checkpoint or a cache
would then stay unreadable to a group that shares the folder.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["umask", "chmod_as_new_file"]


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
