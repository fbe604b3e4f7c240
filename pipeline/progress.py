"""Progress for long work: a bar on a terminal, plain periodic lines elsewhere.

A carriage-return bar written into a log file or a CI console is one long
garbled line; there the same counts come as a line every ``every`` seconds
(and one at the end): ``rendering: 1200/4800 img (25%), 63.1 img/s, ETA 57s``.
"""

from __future__ import annotations

import sys
import time


def progress_bar(total: int, *, desc: str, unit: str, initial: int = 0,
                 disable: bool = False, every: float = 30.0):
    """A tqdm bar on stderr when it is a terminal, else :class:`PlainProgress`."""
    if disable or not sys.stderr.isatty():
        return PlainProgress(total, desc=desc, unit=unit, initial=initial, every=every,
                             disable=disable)
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit=unit, desc=desc, file=sys.stderr,
                dynamic_ncols=True)


class PlainProgress:
    """The part of tqdm's interface the pipeline uses, printing whole lines to stderr."""

    def __init__(self, total: int, *, desc: str, unit: str, initial: int = 0,
                 every: float = 30.0, disable: bool = False):
        self.total, self.desc, self.unit, self.every = total, desc, unit, every
        self.n = self._start = initial
        self.disable = disable
        self._postfix = ""
        self._began = self._last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        if not self.disable and time.monotonic() - self._last >= self.every:
            self._line()

    def set_postfix(self, refresh: bool = False, **values) -> None:
        self._postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def write(self, text: str, file=None) -> None:
        print(text, file=file or sys.stderr, flush=True)

    def _line(self) -> None:
        self._last = now = time.monotonic()
        rate = (self.n - self._start) / max(now - self._began, 1e-9)
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        text = f"{self.desc}: {self.n}/{self.total} {self.unit}{share}, {rate:.3g} {self.unit}/s"
        if rate > 0 and self.total and self.n < self.total:
            text += f", ETA {_duration((self.total - self.n) / rate)}"
        if self._postfix:
            text += f", {self._postfix}"
        self.write(text)

    def close(self) -> None:
        if not self.disable and self.n != self._start:
            self._line()
        self.disable = True

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"
