"""Which column of ``models_index.csv`` holds each role of a model.

The index started with THA1's seven morph roles (six winks and the mouth);
the wider schemas (:mod:`mmdrender.schemas`) need a morph for every morph
group and side, the eyes' bones with their calibrated iris angles, and the
upper-body bones. Their columns are derived here from the schema registry and
come after the original seventeen, so an index written before them reads
unchanged (missing wide columns are empty).

- Morphs: per morph group of arity 2 the columns ``<group>`` (the morph that
  moves both sides), ``<group>_left`` and ``<group>_right`` (the character's
  own sides); per group of arity 1 just ``<group>``. Three groups keep the
  columns THA1 gave them: ``eye_wink`` is wink_both/left/right,
  ``eye_happy_wink`` smile_wink_both/left/right and ``mouth_aaa`` mouth_open.
- ``halves``: the groups (space-separated) whose both-sides morph can be
  restricted to one half of the face, so it may serve a one-side parameter
  the model has no morph for.
- Eyes: ``eye_bone_left`` / ``eye_bone_right`` (the bones that turn each iris)
  and per eye the angles in degrees, about the project frame's x (for
  iris_rotation_x) and y (iris_rotation_y) axes, that put the iris where the
  strip rule says for +1 and -1: ``iris_left_x_pos``, ``iris_left_x_neg``,
  ``iris_left_y_pos``, ``iris_left_y_neg`` and the same for ``right``.
- Body: ``body_bone`` (turned by body_y / body_z, usually 上半身),
  ``chest_bone`` (上半身2 where the model has one) and ``shoulder_left`` /
  ``shoulder_right``, which breathing moves.
"""

from __future__ import annotations

from mmdrender.rig import IRIS_ENDS, Rig
from mmdrender.schemas import MORPH_GROUPS, SIDED_GROUPS, SIDES, group

LEGACY_COLUMNS: tuple[str, ...] = (
    "model_id", "path", "source", "split", "status", "status_reason",
    "head_top_y", "head_bottom_y",
    "wink_left", "wink_right", "wink_both",
    "smile_wink_left", "smile_wink_right", "smile_wink_both",
    "mouth_open", "sha256", "notes",
)
#: the columns THA1 gave three morph groups: (group, side) -> column, side None = both
_LEGACY_ROLES = {
    ("eye_wink", None): "wink_both", ("eye_wink", "left"): "wink_left",
    ("eye_wink", "right"): "wink_right",
    ("eye_happy_wink", None): "smile_wink_both", ("eye_happy_wink", "left"): "smile_wink_left",
    ("eye_happy_wink", "right"): "smile_wink_right",
    ("mouth_aaa", None): "mouth_open",
}


#: (group, side) -> the column holding that morph name; side None is the both-sides morph
MORPH_COLUMNS: dict[tuple[str, str | None], str] = {
    (g.name, side): _LEGACY_ROLES.get((g.name, side),
                                      g.name if side is None else f"{g.name}_{side}")
    for g in MORPH_GROUPS for side in g.slots}
NEW_MORPH_COLUMNS: tuple[str, ...] = tuple(c for c in MORPH_COLUMNS.values()
                                           if c not in LEGACY_COLUMNS)
LEGACY_ROLE_COLUMNS: tuple[str, ...] = tuple(c for c in MORPH_COLUMNS.values()
                                             if c in LEGACY_COLUMNS)
HALVES = "halves"
EYE_BONE_COLUMNS: dict[str, str] = {side: f"eye_bone_{side}" for side in SIDES}
IRIS_COLUMNS: dict[tuple[str, str], str] = {
    (side, end): f"iris_{side}_{end}" for side in SIDES for end in IRIS_ENDS}
BODY_COLUMNS: tuple[str, ...] = ("body_bone", "chest_bone", "shoulder_left", "shoulder_right")

WIDE_COLUMNS: tuple[str, ...] = (*NEW_MORPH_COLUMNS, HALVES, *EYE_BONE_COLUMNS.values(),
                                 *IRIS_COLUMNS.values(), *BODY_COLUMNS)
WIDE_FLOAT_COLUMNS: tuple[str, ...] = tuple(IRIS_COLUMNS.values())
WIDE_TEXT_COLUMNS: tuple[str, ...] = (*NEW_MORPH_COLUMNS, *EYE_BONE_COLUMNS.values(),
                                      *BODY_COLUMNS)


def morph_column(group_name: str, side: str | None = None) -> str:
    """The column of the morph for ``group_name`` on ``side`` (None: both sides)."""
    g = group(group_name)
    if side not in g.slots:
        raise ValueError(f"{group_name} has arity {g.arity}; side {side!r} is not one of "
                         f"{g.slots}")
    return MORPH_COLUMNS[(g.name, side)]


def morph_of(entry, group_name: str, side: str | None = None) -> str | None:
    """The morph name ``entry`` (an index row) gives ``group_name`` on ``side``, or None."""
    return getattr(entry, morph_column(group_name, side))


def halves_of(entry) -> frozenset[str]:
    """The groups whose both-sides morph ``entry`` says can be restricted to one half."""
    return frozenset((entry.halves or "").split())


def format_halves(groups) -> str:
    """``halves`` as the index stores it: group names in schema order, space-separated."""
    chosen = set(groups)
    return " ".join(name for name in SIDED_GROUPS if name in chosen)


def halves_problem(text: str) -> str | None:
    """Why ``text`` is not a valid ``halves`` cell, or None."""
    unknown = [name for name in text.split() if name not in SIDED_GROUPS]
    if unknown:
        return (f"halves names {', '.join(map(repr, unknown))}, which are not morph groups "
                f"with a left and a right side ({', '.join(SIDED_GROUPS)})")
    if text != format_halves(text.split()):
        return f"halves {text!r} must list each group once, in schema order, space-separated"
    return None


def rig_of(entry):
    """The :class:`mmdrender.rig.Rig` an index row describes (what posing needs of it)."""
    morphs = {key: getattr(entry, column) for key, column in MORPH_COLUMNS.items()
              if getattr(entry, column)}
    return Rig(
        morphs=morphs, halves=halves_of(entry),
        eye_bones={side: getattr(entry, column) for side, column in EYE_BONE_COLUMNS.items()
                   if getattr(entry, column)},
        iris={side: {end: getattr(entry, IRIS_COLUMNS[(side, end)]) for end in IRIS_ENDS}
              for side in SIDES},
        body_bone=entry.body_bone, chest_bone=entry.chest_bone,
        shoulders={side: getattr(entry, f"shoulder_{side}") for side in SIDES
                   if getattr(entry, f"shoulder_{side}")})
