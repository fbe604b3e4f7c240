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
- ``shared``: only a both-sides morph that cannot be cut: the left and the right
  parameter take one value (the sampler makes them equal);
- ``absent``: nothing: the parameter is held at 0.

Every shard stores these per model, so no consumer mistakes a held parameter
for a rendered one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mmdrender.schemas import Parameter, Schema

REALISATIONS = ("own", "halves", "shared", "absent")
IRIS_ENDS = ("x_pos", "x_neg", "y_pos", "y_neg")


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
        return both, "halves" if parameter.group in self.halves else "shared"

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
                                for side in ("left", "right")) else "absent"
        if parameter.category == "face_rotation":
            needed = "首" if parameter.name == "neck_z" else "頭"
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
