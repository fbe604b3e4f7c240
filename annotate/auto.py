"""Automatic proposals for one model's index fields, each with a confidence.

:func:`propose` measures a loaded model (see :mod:`annotate.morph_roles` for
the eye and mouth morphs, :mod:`annotate.head_bounds` for the head box) and
returns a :class:`Proposal`: for each annotated column of ``models_index.csv``
a value (None where the model has no such morph) and a confidence in [0, 1]
(for a None, the confidence that the morph is really absent). The GUI shows
the proposals; :func:`apply_proposal` writes them into an ``auto`` index row.

    >>> proposal = propose(load_model("miku.pmd"))  # doctest: +SKIP
    >>> proposal.wink_left                           # doctest: +SKIP
    Field(value='ｳｨﾝｸ２右', confidence=0.93)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from annotate.head_bounds import propose_head_bounds
from annotate.morph_roles import EYE_FIELDS, propose_morphs
from mmdrender.camera import HEAD_BONE
from mmdrender.model import Model

FIELDS: tuple[str, ...] = ("head_top_y", "head_bottom_y", *EYE_FIELDS, "mouth_open")


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
    if top is not None and bottom is not None and not top > bottom:
        top = bottom = None
    return Proposal(
        head_top_y=Field(top, bounds.top_confidence if top is not None else 0.0),
        head_bottom_y=Field(bottom, bounds.bottom_confidence if bottom is not None else 0.0),
        **{name: Field(roles[name].value, roles[name].confidence)
           for name in (*EYE_FIELDS, "mouth_open")},
        centre_x=bounds.centre_x,
    )


def apply_proposal(entry, proposal: Proposal):
    """``entry`` (a :class:`pipeline.index.ModelEntry`) with the proposal written in.

    Head bounds, morph names and a notes line ``auto: field confidence, ...``;
    status_reason is cleared (the model loaded). Only for status auto: a
    confirmed or rejected row is returned unchanged.
    """
    if entry.status != "auto":
        return entry
    values = {name: getattr(proposal, name).value for name in FIELDS}
    return replace(entry, status_reason="", notes=proposal.notes(), **values)
