"""The one exception family of :mod:`mmdrender`.

Every message names the file (where there is one) and what a user can do about
it, because these errors end up in run summaries and ``failures.csv``.
"""

from __future__ import annotations

from pathlib import Path


class MMDRenderError(Exception):
    """Base class: catch this to handle anything mmdrender rejects."""


class ModelLoadError(MMDRenderError):
    """A model file cannot be read: wrong format, truncated, or inconsistent.

    ``path`` and ``reason`` are kept separately so tools can tabulate them.
    """

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class TextureError(MMDRenderError):
    """A texture file exists but cannot be decoded."""


class PoseError(MMDRenderError):
    """A pose names something the model does not have, or holds a bad value."""


class RenderError(MMDRenderError):
    """The GL context or a draw call failed."""


class MotionError(MMDRenderError):
    """A motion (VMD) or pose (VPD) file cannot be read or used; ``path`` and ``reason`` kept."""

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


LISTED = 20  # names quoted in a message


def listed_names(names: list[str]) -> str:
    """Names for a message: the first :data:`LISTED`, and how many in all beyond them."""
    if not names:
        return "(none)"
    shown = ", ".join(names[:LISTED])
    return shown if len(names) <= LISTED else f"{shown}, ... ({len(names)} in all)"
