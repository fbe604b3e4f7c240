"""Automatic proposals for one model's index fields, each with a confidence.

:func:`propose` measures a loaded model and returns a :class:`Proposal`: for
each annotated column of ``models_index.csv`` that the schema needs, a value
(None where the model has no such morph or bone) and a confidence in [0, 1]
(for a None, the confidence that it is really absent). Per schema:

- ``tha1``: head bounds (:mod:`annotate.head_bounds`), the six winks and the
  open mouth (:mod:`annotate.morph_roles`), as THA1's annotation;
- ``tha2``: also every morph group's both-sides, left and right morph
  (:mod:`annotate.wide_roles`), ``halves``, the eye bones and the iris angles
  by the strip rule (:mod:`annotate.iris`, which renders);
- ``tha3``: also the upper-body bones (:mod:`annotate.body_bones`).

The GUI shows the proposals; :func:`apply_proposal` writes them into an
``auto`` index row that nobody has edited since (:func:`refreshable`).

    >>> proposal = propose(load_model("miku.pmd"))  # doctest: +SKIP
    >>> proposal.wink_left                           # doctest: +SKIP
    Field(value='ｳｨﾝｸ２右', confidence=0.93)
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field, replace
from types import SimpleNamespace

from annotate.body_bones import propose_body_bones
from annotate.features import face_map, footprints
from annotate.head_bounds import propose_head_bounds
from annotate.morph_roles import EYE_FIELDS, propose_morphs
from annotate.wide_roles import propose_wide_roles
from mmdrender.camera import head_centre_x
from mmdrender.model import Model
from mmdrender.schemas import MORPH_GROUPS, SCHEMAS, SIDES
from pipeline.index import has_wide_values, row_cells
from pipeline.roles import (
    BODY_COLUMNS,
    EYE_BONE_COLUMNS,
    HALVES,
    IRIS_COLUMNS,
    IRIS_ENDS,
    NEW_MORPH_COLUMNS,
    WIDE_COLUMNS,
    format_halves,
    morph_column,
    rig_of,
)

#: THA1's annotated columns (what a ``tha1`` proposal fills)
FIELDS: tuple[str, ...] = ("head_top_y", "head_bottom_y", *EYE_FIELDS, "mouth_open")
EYE_COLUMNS: tuple[str, ...] = (*EYE_BONE_COLUMNS.values(), *IRIS_COLUMNS.values())
SCHEMA_FIELDS: dict[str, tuple[str, ...]] = {
    "tha1": FIELDS,
    "tha2": (*FIELDS, *NEW_MORPH_COLUMNS, HALVES, *EYE_COLUMNS),
    "tha3": (*FIELDS, *NEW_MORPH_COLUMNS, HALVES, *EYE_COLUMNS, *BODY_COLUMNS),
}
assert set(SCHEMA_FIELDS) == set(SCHEMAS)
ALL_FIELDS: tuple[str, ...] = (*FIELDS, *WIDE_COLUMNS)
NOTES_LOWEST = 3  # a wide proposal's notes list its weakest fields, not all 77
_STAMP = re.compile(r"; proposal ([0-9a-f]{12})$")


@dataclass(frozen=True)
class Field:
    """value: float (head bounds, iris angles), a morph or bone name, ``halves``'s text, or
    None where absent; confidence in [0, 1]."""

    value: float | str | None
    confidence: float


@dataclass(frozen=True)
class Proposal:
    """A :class:`Field` per annotated index column the schema needs, and the head's centre x.

    Fields read as attributes: ``proposal.wink_left``, ``proposal.eyebrow_angry_left``.
    """

    fields: dict = field(default_factory=dict)
    centre_x: float = 0.0
    schema: str = "tha1"

    def __getattr__(self, name: str) -> Field:
        fields = self.__dict__.get("fields", {})
        if name in fields:
            return fields[name]
        raise AttributeError(f"this {self.__dict__.get('schema', '')} proposal has no field "
                             f"{name!r}")

    def replaced(self, **changes: Field) -> Proposal:
        """A copy with some fields changed."""
        return replace(self, fields={**self.fields, **changes})

    def rig(self):
        """The :class:`mmdrender.rig.Rig` the proposed values describe (fields not proposed:
        none)."""
        values = {name: self.fields[name].value if name in self.fields else None
                  for name in ALL_FIELDS}
        return rig_of(SimpleNamespace(**values))

    def to_json(self) -> dict:
        """``{key: {"value": ..., "confidence": ...}}``.

        THA1's keys (the index columns head_top_y ... mouth_open) always; for
        the wide schemas also every morph group's both-sides morph under the
        group's name and its one-side morphs under the parameter names
        (``eyebrow_troubled``, ``eyebrow_troubled_left``, ``eye_wink``,
        ``mouth_aaa``; the last two repeat wink_both and mouth_open), then
        ``halves``, the eye bones, the iris angles and the body bones under
        their index column names.
        """
        keys = {name: name for name in FIELDS}
        if self.schema != "tha1":
            for g in MORPH_GROUPS:
                for side in g.slots:
                    keys[g.name if side is None else f"{g.name}_{side}"] = \
                        morph_column(g.name, side)
            keys.update((name, name) for name in SCHEMA_FIELDS[self.schema]
                        if name not in keys.values())
        return {key: {"value": self.fields[column].value,
                      "confidence": self.fields[column].confidence}
                for key, column in keys.items()}

    def notes(self) -> str:
        """The confidences as one line for the index's notes column.

        THA1's fields one by one; for a wide schema, the count and the
        :data:`NOTES_LOWEST` weakest of the rest.
        """
        line = "auto: " + ", ".join(f"{name} {self.fields[name].confidence:.2f}"
                                    for name in FIELDS)
        wide = [name for name in SCHEMA_FIELDS[self.schema] if name not in FIELDS]
        if wide:
            weakest = sorted(wide, key=lambda name: self.fields[name].confidence)[:NOTES_LOWEST]
            line += (f"; {self.schema}: {len(wide)} more, lowest "
                     + ", ".join(f"{name} {self.fields[name].confidence:.2f}" for name in weakest))
        return line


def propose(model: Model, schema: str = "tha1") -> Proposal:
    """Proposals for every annotated column ``schema`` needs (rest pose, project frame)."""
    if schema not in SCHEMA_FIELDS:
        raise ValueError(f"no schema {schema!r}; choose one of {', '.join(SCHEMA_FIELDS)}")
    roles, face = propose_morphs(model, head_centre_x(model))
    bounds = propose_head_bounds(model, face)
    top, bottom = bounds.top, bounds.bottom
    if top is None or bottom is None or not (math.isfinite(top) and math.isfinite(bottom)
                                             and top > bottom):
        top = bottom = None
    fields = {
        "head_top_y": Field(top, bounds.top_confidence if top is not None else 0.0),
        "head_bottom_y": Field(bottom, bounds.bottom_confidence if bottom is not None else 0.0),
        **{name: Field(roles[name].value, roles[name].confidence)
           for name in (*EYE_FIELDS, "mouth_open")},
    }
    if schema != "tha1":
        fields.update(_wide_fields(model, face, roles))
    if schema == "tha3":
        body = propose_body_bones(model)
        fields.update({name: Field(body.values[name], body.confidence[name])
                       for name in BODY_COLUMNS})
    return Proposal(fields, bounds.centre_x if math.isfinite(bounds.centre_x) else 0.0, schema)


def _wide_fields(model: Model, face, roles) -> dict[str, Field]:
    """The morph groups, halves, eye bones and iris angles (THA2 and THA3)."""
    from annotate.iris import calibrate  # renders: only when a wide schema asks

    faces = face_map(model, face)
    prints = footprints(model, faces)
    taken = {role.value for role in roles.values() if role.value}
    wide, halves, halves_confidence = propose_wide_roles(prints, taken)
    fields = {morph_column(g, side): Field(role.value, role.confidence)
              for (g, side), role in wide.items()}
    by_name = {f.name: f for f in prints.values()}
    for g, column in (("eye_wink", "wink_both"), ("eye_happy_wink", "smile_wink_both")):
        footprint = by_name.get(roles[column].value)
        if footprint is not None:  # THA1's both-eye morphs may serve one eye by halves too
            halves_confidence[g] = 0.9
            if footprint.splittable:
                halves.add(g)
    fields[HALVES] = Field(format_halves(halves),
                           round(min(halves_confidence.values(), default=0.9), 3))
    blink = model.morph_index(roles["wink_both"].value) if roles["wink_both"].value else None
    for side in SIDES:
        eye = faces.eyes.get(side)
        closing = roles[f"wink_{side}"].value
        closing = model.morph_index(closing) if closing else blink
        calibration = calibrate(model, eye, closing) if eye is not None else None
        if calibration is None:
            # no eye bone (or one that cannot reach the strips): no iris rotation here
            fields[EYE_BONE_COLUMNS[side]] = Field(None, 0.7 if eye is None else 0.3)
            for end in IRIS_ENDS:
                fields[IRIS_COLUMNS[(side, end)]] = Field(None, 0.7 if eye is None else 0.3)
            continue
        fields[EYE_BONE_COLUMNS[side]] = Field(calibration.bone, 0.95)
        for end in IRIS_ENDS:
            fields[IRIS_COLUMNS[(side, end)]] = Field(calibration.angles[end],
                                                      calibration.confidence)
    return fields


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
    """A short fingerprint of the annotated values of ``entry`` as the index stores them.

    THA1's fields, and the wide columns once the row has any (so a stamp
    written before they existed still matches).
    """
    names = ALL_FIELDS if has_wide_values(entry) else FIELDS
    cells = row_cells(entry, names)
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
    if all(getattr(entry, name) is None for name in FIELDS) and not entry.notes \
            and not has_wide_values(entry):
        return True
    stamp = _STAMP.search(entry.notes or "")
    return stamp is not None and stamp.group(1) == values_stamp(entry)


def apply_proposal(entry, proposal: Proposal):
    """``entry`` (a :class:`pipeline.index.ModelEntry`) with the proposal written in.

    The schema's fields, and a notes line ``auto: field confidence, ...;
    proposal <stamp>``; status_reason says what a dataset needs that could not be
    proposed (:func:`unproposed`), else it is cleared (the model loaded). Columns
    the proposal's schema does not cover keep their values. A row that is not
    :func:`refreshable` (confirmed, rejected, or edited since the last
    proposal) is returned unchanged.
    """
    if not refreshable(entry):
        return entry
    values = {name: proposal.fields[name].value for name in SCHEMA_FIELDS[proposal.schema]}
    filled = replace(entry, **values)
    gaps = unproposed(filled)
    reason = f"{PROPOSED_WITHOUT} {', '.join(gaps)}: set by hand in the review window" \
        if gaps else ""
    filled = replace(filled, status_reason=reason)
    return replace(filled, notes=f"{proposal.notes()}; proposal {values_stamp(filled)}")


PROPOSED_WITHOUT = "proposed without"


def unproposed(entry) -> list[str]:
    """What a dataset needs of a row that it does not hold: head bounds, a mouth-open
    morph, eye morphs (both one-eye winks, or a both-eyes one)."""
    gaps = []
    if entry.head_top_y is None or entry.head_bottom_y is None:
        gaps.append("head bounds")
    if not entry.mouth_open:
        gaps.append("a mouth-open morph")
    if not (entry.wink_left and entry.wink_right) and not entry.wink_both:
        gaps.append("eye morphs")
    return gaps
