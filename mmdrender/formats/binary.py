"""Bounds-checked bulk reading, mixed into pymeshio's readers.

Model files are untrusted downloads. Every count is checked against the bytes
left before anything is allocated, and fixed-size records are read in one
``np.frombuffer`` rather than object by object.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TypeVar

import numpy as np

T = TypeVar("T")


class FormatError(Exception):
    """The file's bytes do not make a valid model; the loader adds the path."""


class ArrayReading:
    """Methods for a ``pymeshio.common.BinaryReader`` subclass (``self.ios``, ``self.end``)."""

    section = "header"

    def remaining(self) -> int:
        return self.end - self.ios.tell()

    def take(self, nbytes: int) -> bytes:
        if nbytes < 0 or nbytes > self.remaining():
            raise FormatError(
                f"file ends early in the {self.section} section: needs {nbytes} bytes at byte "
                f"{self.ios.tell()}, {self.remaining()} left (truncated download?)"
            )
        return self.ios.read(nbytes)

    def read_count(self, size: int, min_record_bytes: int, what: str, signed: bool = True) -> int:
        """A record count, refused when the records could not fit in what is left."""
        self.section = what
        raw = self.take(size)
        count = int.from_bytes(raw, "little", signed=signed)
        if count < 0:
            raise FormatError(f"negative {what} count ({count}) at byte {self.ios.tell() - size}")
        if count * min_record_bytes > self.remaining():
            raise FormatError(
                f"the file claims {count} {what} (at least {count * min_record_bytes} bytes) "
                f"but only {self.remaining()} bytes remain (truncated or corrupt)"
            )
        return count

    def record(self, read: Callable[[], T], what: str) -> T:
        """One record read by a pymeshio reader, its failures turned into FormatError.

        pymeshio raises ParseException, struct.error on short data and even bare
        ``Exception``; none of that may escape as a traceback. Only calls into
        pymeshio are wrapped, so bugs in the rest of our code still surface.
        """
        start = self.ios.tell()
        try:
            return read()
        except FormatError as error:  # from our own reading methods, which pymeshio calls
            raise FormatError(f"{what}: {error}") from None
        except struct.error:
            raise FormatError(f"file ends early in {what} at byte {start} "
                              "(truncated download?)") from None
        except Exception as error:  # pymeshio's exceptions have no common base
            detail = getattr(error, "message", None) or error
            raise FormatError(f"malformed {what} at byte {start}: {detail}") from None

    def read_array(self, dtype, count: int) -> np.ndarray:
        """``count`` records of ``dtype`` (a plain or structured numpy dtype)."""
        dtype = np.dtype(dtype)
        return np.frombuffer(self.take(dtype.itemsize * count), dtype=dtype, count=count)


def index_dtype(size: int, unsigned: bool = False) -> np.dtype:
    """PMX index fields: 1, 2 or 4 bytes; signed except vertex indices of size 1 and 2."""
    if size not in (1, 2, 4):
        raise FormatError(f"invalid index size {size} in the header (must be 1, 2 or 4)")
    if unsigned and size < 4:
        return np.dtype(f"<u{size}")
    return np.dtype(f"<i{size}")


def floats(record, count: int) -> np.ndarray:
    """A pymeshio vector or colour as float32; its colours cannot be iterated."""
    return np.array([record[i] for i in range(count)], dtype=np.float32)
