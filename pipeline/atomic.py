"""Files that are complete or absent: write beside, flush, fsync, rename.

Every file the pipeline writes for others to read (index, shards' manifest,
failure records, checkpoints, evaluation results) goes through here, so a crash
or Ctrl-C never leaves a half-written file under the final name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_args) -> Iterator:
    """Open ``path + '.tmp'`` for writing; rename it over ``path`` when the block ends.

    On success the data is flushed and fsynced, an existing file's permissions
    are kept, the rename is atomic and the folder is fsynced. On any exception
    the temporary file is removed and ``path`` is left as it was. ``open_args``
    go to :func:`open` (``encoding``, ``newline``).
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, mode, **open_args) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def fsync_folder(folder: str | os.PathLike) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
