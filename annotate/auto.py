"""Automatic proposals for one model's index fields, each with a confidence.

:func:`propose` measures a loaded model (see :mod:`annotate.morph_roles` for
the eye and mouth morphs, :mod:`annotate.head_bounds` for the head box) and
returns a :class:`Proposal`: for each annotated column of ``models_index.csv``
a value (None where the model has no such morph) and a confidence in [0, 1]
(for a None, the confidence that the morph is really absent). The GUI shows
the proposals; :func:`apply_proposal` writes them into an ``auto`` index row
that nobody has edited since (:func:`refreshable`).

    >>> proposal = propose(load_model("miku.pmd"))  # doctest: +SKIP
    >>> proposal.wink_left                           # doctest: +SKIP
    Field(value='ｳｨﾝｸ２右', confidence=0.93)
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, replace

from annotate.head_bounds import propose_head_bounds
from annotate.morph_roles import EYE_FIELDS, propose_morphs
from mmdrender.camera import HEAD_BONE
from mmdrender.model import Model
from pipeline.index import format_float

FIELDS: tuple[str, ...] = ("head_top_y", "head_bottom_y", *EYE_FIELDS, "mouth_open")
_STAMP = re.compile(r"; proposal ([0-9a-f]{12})$")


@dataclass(frozen=True)
class Field:
    """value: float (head bounds) or morph name, None where absent; confidence in [0, 1]."""

    value: float | str | None
    confidence: float


@dataclass(frozen=True)
class Proposal:
    """A proposal per annotated index column, plus the head's centre x for framing."""

    head_top_y: Field
    head_bottom_y: Field
    wink_left: Field
    wink_right: Field
    wink_both: Field
    smile_wink_left: Field
    smile_wink_right: Field
    smile_wink_both: Field
    mouth_open: Field
    centre_x: float = 0.0

    def to_json(self) -> dict:
        """``{column: {"value": ..., "confidence": ...}}`` over exactly :data:`FIELDS`."""
        return {name: {"value": getattr(self, name).value,
                       "confidence": getattr(self, name).confidence} for name in FIELDS}

    def notes(self) -> str:
        """The confidences as one line for the index's notes column."""
        return "auto: " + ", ".join(f"{name} {getattr(self, name).confidence:.2f}"
                                    for name in FIELDS)


def propose(model: Model) -> Proposal:
    """Proposals for every annotated column of ``model`` (rest pose, project frame)."""
    head = model.bone_index(HEAD_BONE)
    centre_x = float(model.bones[head].position[0]) if head is not None else 0.0
    roles, face = propose_morphs(model, centre_x)
    bounds = propose_head_bounds(model, face)
    top, bottom = bounds.top, bounds.bottom
    if top is None or bottom is None or not (math.isfinite(top) and math.isfinite(bottom)
                                             and top > bottom):
        top = bottom = None
    return Proposal(
        head_top_y=Field(top, bounds.top_confidence if top is not None else 0.0),
        head_bottom_y=Field(bottom, bounds.bottom_confidence if bottom is not None else 0.0),
        **{name: Field(roles[name].value, roles[name].confidence)
           for name in (*EYE_FIELDS, "mouth_open")},
        centre_x=bounds.centre_x if math.isfinite(bounds.centre_x) else 0.0,
    )


def failure_reason(error: BaseException) -> str:
    """One line saying why a model could not be loaded or proposed.

    The project's own errors already say what is wrong; anything else (a
    corrupt file can make a parser raise anything) is named with its type.
    """
    from mmdrender.errors import MMDRenderError
    from pipeline.errors import PipelineError

    text = " ".join(str(error).split())
    if isinstance(error, MMDRenderError | PipelineError):
        return text
    return f"cannot handle this model ({type(error).__name__}: {text or 'no message'})"


def values_stamp(entry) -> str:
    """A short fingerprint of the annotated values of ``entry`` as the index stores them."""
    cells = [format_float(getattr(entry, name)) if name.startswith("head_")
             else getattr(entry, name) or "" for name in FIELDS]
    return hashlib.sha256("\x1f".join(cells).encode("utf-8")).hexdigest()[:12]


def refreshable(entry) -> bool:
    """Whether a scan may (re)write the proposal into ``entry``.

    Only a status auto row that is either fresh (no annotated value, no notes)
    or holds exactly the values the last proposal wrote: its notes end with
    ``; proposal <stamp>`` and the stamp is :func:`values_stamp` of the row. A
    row edited since, in the review window or by hand, is left alone.
    """
    if entry.status != "auto":
        return False
    if all(getattr(entry, name) is None for name in FIELDS) and not entry.notes:
        return True
    stamp = _STAMP.search(entry.notes or "")
    return stamp is not None and stamp.group(1) == values_stamp(entry)


def apply_proposal(entry, proposal: Proposal):
    """``entry`` (a :class:`pipeline.index.ModelEntry`) with the proposal written in.

    Head bounds, morph names and a notes line ``auto: field confidence, ...;
    proposal <stamp>``; status_reason is cleared (the model loaded). A row that
    is not :func:`refreshable` (confirmed, rejected, or edited since the last
    proposal) is returned unchanged.
    """
    if not refreshable(entry):
        return entry
    values = {name: getattr(proposal, name).value for name in FIELDS}
    filled = replace(entry, status_reason="", **values)
    return replace(filled, notes=f"{proposal.notes()}; proposal {values_stamp(filled)}")
