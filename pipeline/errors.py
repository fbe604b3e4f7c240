"""The one exception type of :mod:`pipeline`, and how command lines report it."""

from __future__ import annotations

import functools
import sys


class PipelineError(Exception):
    """An index, a dataset or a run is not as it should be; the message says how."""


def reports_errors(command=None, *, one_line: bool = False):
    """Decorate a click command: a problem the user can fix becomes ``error: ...``
    on stderr and exit status 1, never a traceback.

    Catches :class:`PipelineError` and mmdrender's errors. ``one_line`` folds a
    multi-line message (a list of index problems, say) onto one line.
    """
    if command is None:
        return functools.partial(reports_errors, one_line=one_line)

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        import click

        from mmdrender.errors import MMDRenderError

        try:
            return command(*args, **kwargs)
        except (PipelineError, MMDRenderError) as error:
            message = " ".join(str(error).split()) if one_line else str(error)
            click.echo(f"error: {message}", err=True)
            sys.exit(1)
    return wrapper
