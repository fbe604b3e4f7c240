"""What one model offers the wide schemas: its roles, and how each parameter is realised.

A :class:`Rig` is the part of a model's index row that posing needs, in
renderer terms (morph and bone names, angles): the morph of every morph group
and side, the groups whose both-sides morph may serve one side by halves, the
eye bones with their iris angles, and the upper-body bones. It knows nothing
of the index (the pipeline builds it from a row).

:meth:`Rig.realisations` says, per parameter of a schema, how the model
realises it (:data:`REALISATIONS`):

- ``own``: a morph (or bone) of its own;
- ``halves``: one side of the group's both-sides morph, cut at the face's centre;
- ``shared``: only a both-sides morph that cannot be cut, and neither side has
  a morph of its own: the left and the right parameter take one value (the
  sampler makes them equal); where the other side has its own morph, this
  side is ``absent`` instead (the whole morph would move both);
- ``absent``: nothing: the parameter is held at 0.

Every shard stores these per model, so no consumer mistakes a held parameter
for a rendered one. :meth:`Rig.to_dict` is the JSON a rig travels in (what
``annotate suggest --rig`` writes and ``mmdrender render --rig`` reads): morphs
keyed ``<group>`` (both sides) or ``<group>_<side>``, the parameter names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from mmdrender.camera import HEAD_BONE
from mmdrender.errors import PoseError
from mmdrender.pose import NECK_BONE
from mmdrender.schemas import MORPH_GROUPS, SIDED_GROUPS, SIDES, Parameter, Schema

REALISATIONS = ("own", "halves", "shared", "absent")
IRIS_ENDS = ("x_pos", "x_neg", "y_pos", "y_neg")
#: THA2's strip rule (wide-schemas.md section 3): where each end puts the iris. Per end:
#: the axis turned, which edge of the iris, and its target as a fraction of the eye's box
#: (4 horizontal strips for x, 8 vertical strips for y).
STRIP_RULE = (
    ("x_neg", "x", "top", 1 / 4),     # iris top at the bottom of strip 1 of 4
    ("x_pos", "x", "bottom", 3 / 4),  # iris bottom at the top of strip 4
    ("y_neg", "y", "left", 3 / 8),    # iris left edge at the right edge of strip 3 of 8
    ("y_pos", "y", "right", 5 / 8),   # iris right edge at the left edge of strip 6
)


@dataclass(frozen=True)
class Rig:
    """One model's roles for the wide schemas.

    ``morphs``: (group, side) -> morph name, side "left"/"right" (the
    character's own) or None for the both-sides morph; missing where the model
    has none. ``halves``: groups whose both-sides morph may serve one side.
    ``eye_bones``: side -> bone; ``iris``: side -> {x_pos, x_neg, y_pos, y_neg:
    degrees about the project frame's x / y axis for +1 / -1}. ``body_bone``
    (body_y, body_z), ``chest_bone`` and ``shoulders`` (side -> bone), which
    breathing moves.
    """

    morphs: dict = field(default_factory=dict)
    halves: frozenset = frozenset()
    eye_bones: dict = field(default_factory=dict)
    iris: dict = field(default_factory=dict)
    body_bone: str | None = None
    chest_bone: str | None = None
    shoulders: dict = field(default_factory=dict)

    def morph_for(self, parameter: Parameter) -> tuple[str | None, str]:
        """(morph name, realisation) of a morph parameter (see the module doc)."""
        own = self.morphs.get((parameter.group, parameter.side))
        if parameter.side is None:
            return own, "own" if own else "absent"
        if own:
            return own, "own"
        both = self.morphs.get((parameter.group, None))
        if both is None:
            return None, "absent"
        if parameter.group in self.halves:
            return both, "halves"
        other = "right" if parameter.side == "left" else "left"
        if self.morphs.get((parameter.group, other)):
            return None, "absent"  # the whole morph would move the side that has its own
        return both, "shared"

    def eye_turns(self, side: str) -> bool:
        """Whether this eye has a bone and all four angles."""
        angles = self.iris.get(side, {})
        return bool(self.eye_bones.get(side)) and all(
            angles.get(end) is not None for end in IRIS_ENDS)

    def realisation(self, parameter: Parameter, bones: set[str]) -> str:
        """How the model realises ``parameter``; ``bones``: the model's bone names."""
        if parameter.is_morph:
            return self.morph_for(parameter)[1]
        if parameter.category == "iris_rotation":
            return "own" if any(self.eye_turns(side) and self.eye_bones[side] in bones
                                for side in SIDES) else "absent"
        if parameter.category == "face_rotation":
            needed = NECK_BONE if parameter.name == "neck_z" else HEAD_BONE
            return "own" if needed in bones else "absent"
        if parameter.category == "body_rotation":
            return "own" if self.body_bone in bones else "absent"
        if parameter.category == "breathing":
            movers = [self.chest_bone or self.body_bone, *self.shoulders.values()]
            return "own" if any(b in bones for b in movers if b) else "absent"
        raise ValueError(f"no realisation for parameter {parameter.name!r}")

    def realisations(self, schema: Schema, bones: set[str]) -> tuple[str, ...]:
        """The realisation of each of ``schema``'s parameters, in order."""
        return tuple(self.realisation(p, bones) for p in schema.parameters)

    def to_dict(self) -> dict:
        return {"morphs": {_morph_key(group, side): name
                           for (group, side), name in sorted(self.morphs.items(),
                                                           key=lambda kv: _morph_key(*kv[0]))},
                "halves": sorted(self.halves), "eye_bones": dict(self.eye_bones),
                "iris": {side: dict(angles) for side, angles in self.iris.items()},
                "body_bone": self.body_bone, "chest_bone": self.chest_bone,
                "shoulders": dict(self.shoulders)}

    @classmethod
    def from_dict(cls, data, source: str = "the rig") -> Rig:
        """The inverse of :meth:`to_dict`; anything malformed is a PoseError naming it."""
        if not isinstance(data, dict) or not set(data) <= _RIG_KEYS:
            raise PoseError(f"{source} is not a rig: expected an object with keys "
                            f"{', '.join(sorted(_RIG_KEYS))}")
        morphs = {}
        for key, name in _mapping(data, "morphs", source).items():
            if key not in _MORPH_KEYS:
                raise PoseError(f"{source}: {key!r} is no morph group or parameter name")
            if name:
                morphs[_MORPH_KEYS[key]] = _text(name, f"morphs.{key}", source)
        halves = data.get("halves") or []
        if not isinstance(halves, list) or \
                not all(isinstance(g, str) and g in SIDED_GROUPS for g in halves):
            raise PoseError(f"{source}: halves must be a list of two-sided groups "
                            f"(e.g. [\"eyebrow_angry\"]), not {halves!r}")
        iris = {}
        for side, angles in _mapping(data, "iris", source).items():
            if side not in SIDES or not isinstance(angles, dict) or not set(angles) <= \
                    set(IRIS_ENDS) or not all(_is_angle(v) for v in angles.values()):
                raise PoseError(f"{source}: iris.{side} must map {', '.join(IRIS_ENDS)} to "
                                f"finite degrees")
            iris[side] = {end: angles.get(end) for end in IRIS_ENDS}
        bones = {}
        for key in ("eye_bones", "shoulders"):
            bones[key] = {side: _text(b, f"{key}.{side}", source)
                          for side, b in _mapping(data, key, source).items() if b}
            if not set(bones[key]) <= set(SIDES):
                raise PoseError(f"{source}: {key} are keyed by side (left, right)")
        return cls(morphs=morphs, halves=frozenset(halves), iris=iris,
                   body_bone=_optional_text(data, "body_bone", source),
                   chest_bone=_optional_text(data, "chest_bone", source), **bones)


_RIG_KEYS = {"morphs", "halves", "eye_bones", "iris", "body_bone", "chest_bone", "shoulders"}


def _morph_key(group: str, side: str | None) -> str:
    return group if side is None else f"{group}_{side}"


_MORPH_KEYS = {_morph_key(g.name, side): (g.name, side) for g in MORPH_GROUPS for side in g.slots}


def _mapping(data: dict, key: str, source: str) -> dict:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise PoseError(f"{source}: {key} must be an object")
    return value


def _text(value, what: str, source: str) -> str:
    if not isinstance(value, str):
        raise PoseError(f"{source}: {what} must be a name, not {value!r}")
    return value


def _optional_text(data: dict, key: str, source: str) -> str | None:
    value = data.get(key)
    return None if value is None else _text(value, key, source)


def _is_angle(value) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                             and math.isfinite(value))
