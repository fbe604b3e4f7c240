"""Reading an input file whole, with the reasons a user can act on when it cannot be."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path


def read_input(path: Path, error: Callable[[Path, str], Exception], kind: str,
               limit: int | None = None) -> bytes:
    """The bytes of ``path``, a ``kind`` file ("model", "motion"); ``error(path, reason)``
    is raised when it is missing, a folder, unreadable, larger than ``limit`` or empty.
    Only regular files are read (a pipe would block, a device never end); the size
    is checked before anything is read, and no more than ``limit`` + 1 bytes are."""
    try:
        status = os.stat(path)
        if stat.S_ISDIR(status.st_mode):
            raise error(path, f"is a folder, not a {kind} file")
        if not stat.S_ISREG(status.st_mode):  # a pipe would block, a device never end
            raise error(path, f"is not a regular file (a pipe or a device), not a {kind} file")
        if limit is None:
            data = path.read_bytes()
        else:
            size = status.st_size
            if size > limit:
                raise error(path, f"is {size / 2**20:.0f} MiB, more than any {kind} "
                                  f"({limit // 2**20} MiB at most); is it one?")
            with open(path, "rb") as f:  # read no more than the limit, whatever stat said
                data = f.read(limit + 1)
            if len(data) > limit:
                raise error(path, f"holds more than {limit // 2**20} MiB, more than any "
                                  f"{kind}; is it one?")
    except FileNotFoundError:
        raise error(path, "no such file") from None
    except OSError as failure:
        raise error(path, f"cannot be read: {failure.strerror or failure}") from None
    if not data:
        raise error(path, "the file is empty")
    return data
