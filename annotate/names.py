"""Morph and bone names as the annotator compares them.

Names only nominate: a side written in a name is often the viewer's side, and
a digit marks a variant, so :func:`stem` drops both before a name is matched
against the patterns of a role; what the morph moves decides the side.
"""

from __future__ import annotations

import re
import unicodedata

_SIDE_WORDS = re.compile(r"左|右|left|right")
# l / r as a side marker: after a separator, or right after a non-ASCII letter (ウィンクl)
_SIDE_LETTER = re.compile(r"(?:[\s._\-]+|(?<=[^\x00-\x7f]))[lr]$|^[lr][\s._\-]+")
_SEPARATORS = re.compile(r"[\s._\-()（）\[\]]+")
_DIGITS = re.compile(r"\d+$")


def normalise(name: str) -> str:
    """NFKC (half-width kana to full width, ２ to 2, ！ to !), stripped, lower-case."""
    return unicodedata.normalize("NFKC", name).strip().lower()


def stem(name: str) -> tuple[str, bool]:
    """``name`` without side words, side letters, separators and a trailing number.

    Returns the stem and whether a number was dropped (a variant such as
    なごみ2, which ranks below the plain name). ``困り眉左`` → ``困り眉``,
    ``ｳｨﾝｸL`` → ``ウィンク``, ``brow_up.R`` → ``browup``.
    """
    text = normalise(name)
    text = _SIDE_LETTER.sub("", text)
    text = _SIDE_WORDS.sub("", text)
    text = _SEPARATORS.sub("", text)
    numbered = bool(_DIGITS.search(text)) and bool(_DIGITS.sub("", text))
    return (_DIGITS.sub("", text) if numbered else text), numbered
