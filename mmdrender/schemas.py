"""The pose schemas of the THA networks: the one place their parameters are defined.

THA1 poses six numbers; THA2 42 and THA3/THA4 45 (``../shared/docs/wide-schemas.md``
section 1). Every layer reads names, order, ranges and kinds from here: the
poser, the index's morph-role columns, the annotator, the sampler, the shards
and the trainer. Nothing else spells them.

The wide vector is built from :data:`GROUPS`, in order: a group of arity 2
expands to ``<group>_left`` and ``<group>_right`` (the character's own sides),
a group of arity 1 is one parameter of the group's name. THA2 is the first
42 parameters, THA3 all 45. THA1 names its parameters its own way
(``eye_left``, ``mouth``) but each belongs to a group here too, so posing and
annotation treat the three schemas alike.

Categories say what a parameter moves: ``eyebrow``, ``eye`` (eyelids),
``iris_morph`` and ``mouth`` are morph weights; ``iris_rotation`` turns the
eye bones through angles calibrated per model; ``face_rotation`` and
``body_rotation`` turn bones by ``degrees`` at +-1; ``breathing`` expands the
chest. Conventions (tested by what is visible): ``head_x > 0`` tilts the head
up, ``head_y > 0`` turns the face toward the character's left (image right),
``neck_z > 0`` tilts the head top toward image left, ``iris_rotation_x > 0``
looks up and ``iris_rotation_y > 0`` looks toward the character's right (image
left), as THA's own face trackers drive them.
"""

from __future__ import annotations

from dataclasses import dataclass

from mmdrender.errors import PoseError

MORPH_CATEGORIES = ("eyebrow", "eye", "iris_morph", "mouth")
#: what THA3's face morpher poses (39 values), and what its rotators do (the rest)
FACE_CATEGORIES = (*MORPH_CATEGORIES, "iris_rotation")
MOVEMENT_CATEGORIES = ("face_rotation", "body_rotation", "breathing")
CATEGORIES = (*FACE_CATEGORIES, *MOVEMENT_CATEGORIES)
SIDES = ("left", "right")
HEAD_DEGREES = 15.0  # THA1's +-1 for head_x, head_y and neck_z


@dataclass(frozen=True)
class Group:
    """A feature the pose controls: one parameter, or a left and a right one."""

    name: str
    arity: int
    category: str
    low: float = 0.0
    high: float = 1.0
    default: float = 0.0
    degrees: float | None = None  # the angle at +-1, for rotations with a fixed one

    @property
    def is_morph(self) -> bool:
        return self.category in MORPH_CATEGORIES

    @property
    def parameter_names(self) -> tuple[str, ...]:
        if self.arity == 2:
            return tuple(f"{self.name}_{side}" for side in SIDES)
        return (self.name,)

    @property
    def slots(self) -> tuple[str | None, ...]:
        """The morph slots of a morph group: None (both sides), then each side if it has two."""
        return (None, *SIDES) if self.arity == 2 else (None,)


@dataclass(frozen=True)
class Parameter:
    """One component of a pose vector.

    ``group`` is the :class:`Group` it belongs to, ``side`` ``"left"``,
    ``"right"`` or None (arity 1). ``degrees``: the angle at +-1 of a rotation
    with a fixed one (None for morph weights, iris rotations and breathing).
    """

    name: str
    group: str
    side: str | None
    category: str
    low: float
    high: float
    default: float = 0.0
    degrees: float | None = None

    @property
    def is_morph(self) -> bool:
        return self.category in MORPH_CATEGORIES

    @property
    def kind(self) -> str:
        """``"morph"`` (a weight) or ``"rotation"`` (+-1 is a bone angle)."""
        return "morph" if self.is_morph or self.category == "breathing" else "rotation"


@dataclass(frozen=True)
class Schema:
    """The ordered parameters of one network's pose vector, and its images.

    ``framing``: ``"head"`` (the head top/bottom on rows size/4 and 3*size/4)
    or ``"upper_body"`` (THA3: the head in the 128x128 box in the middle of the
    top half of a 512x512 image).
    """

    name: str
    parameters: tuple[Parameter, ...]
    image_size: int
    framing: str

    def __len__(self) -> int:
        return len(self.parameters)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    def parameter(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise PoseError(f"pose schema {self.name!r} has no parameter {name!r}; its parameters "
                        f"are {', '.join(self.names)}")

    def index(self, name: str) -> int:
        return self.parameters.index(self.parameter(name))

    def in_category(self, *categories: str) -> tuple[Parameter, ...]:
        return tuple(p for p in self.parameters if p.category in categories)


def _morph(name: str, arity: int, category: str, default: float = 0.0) -> Group:
    return Group(name, arity, category, default=default)


def _turn(name: str, category: str, degrees: float | None) -> Group:
    return Group(name, 1, category, -1.0, 1.0, degrees=degrees)


#: THA3/THA4's 45 parameters as groups, in vector order (THA2: up to neck_z).
GROUPS: tuple[Group, ...] = (
    _morph("eyebrow_troubled", 2, "eyebrow"),
    _morph("eyebrow_angry", 2, "eyebrow"),
    _morph("eyebrow_lowered", 2, "eyebrow"),
    _morph("eyebrow_raised", 2, "eyebrow"),
    _morph("eyebrow_happy", 2, "eyebrow"),
    _morph("eyebrow_serious", 2, "eyebrow"),
    _morph("eye_wink", 2, "eye"),
    _morph("eye_happy_wink", 2, "eye"),
    _morph("eye_surprised", 2, "eye"),
    _morph("eye_relaxed", 2, "eye"),
    _morph("eye_unimpressed", 2, "eye"),
    _morph("eye_raised_lower_eyelid", 2, "eye"),
    _morph("iris_small", 2, "iris_morph"),
    _morph("mouth_aaa", 1, "mouth", default=1.0),
    _morph("mouth_iii", 1, "mouth"),
    _morph("mouth_uuu", 1, "mouth"),
    _morph("mouth_eee", 1, "mouth"),
    _morph("mouth_ooo", 1, "mouth"),
    _morph("mouth_delta", 1, "mouth"),
    _morph("mouth_lowered_corner", 2, "mouth"),
    _morph("mouth_raised_corner", 2, "mouth"),
    _morph("mouth_smirk", 1, "mouth"),
    _turn("iris_rotation_x", "iris_rotation", None),
    _turn("iris_rotation_y", "iris_rotation", None),
    _turn("head_x", "face_rotation", HEAD_DEGREES),
    _turn("head_y", "face_rotation", HEAD_DEGREES),
    _turn("neck_z", "face_rotation", HEAD_DEGREES),
    _turn("body_y", "body_rotation", HEAD_DEGREES),
    _turn("body_z", "body_rotation", HEAD_DEGREES),
    Group("breathing", 1, "breathing"),
)
_GROUPS = {g.name: g for g in GROUPS}
MORPH_GROUPS: tuple[Group, ...] = tuple(g for g in GROUPS if g.is_morph)
#: the morph groups with a left and a right side (a both-sides morph may serve one by halves)
SIDED_GROUPS: tuple[str, ...] = tuple(g.name for g in MORPH_GROUPS if g.arity == 2)


def group(name: str) -> Group:
    try:
        return _GROUPS[name]
    except KeyError:
        raise PoseError(f"no pose group {name!r}; the groups are "
                        f"{', '.join(_GROUPS)}") from None


def _expand(g: Group) -> tuple[Parameter, ...]:
    sides = SIDES if g.arity == 2 else (None,)
    return tuple(Parameter(name, g.name, side, g.category, g.low, g.high, g.default, g.degrees)
                 for name, side in zip(g.parameter_names, sides, strict=True))


_WIDE = tuple(p for g in GROUPS for p in _expand(g))
_THA2_LENGTH = 42  # THA2 stops after the face rotations

#: THA1's own names for its six parameters: (name, group, side).
_THA1 = (("eye_left", "eye_wink", "left"), ("eye_right", "eye_wink", "right"),
         ("mouth", "mouth_aaa", None), ("head_x", "head_x", None), ("head_y", "head_y", None),
         ("neck_z", "neck_z", None))


def _renamed(name: str, group_name: str, side: str | None) -> Parameter:
    g = group(group_name)
    return Parameter(name, g.name, side, g.category, g.low, g.high, 0.0, g.degrees)


SCHEMAS: dict[str, Schema] = {
    "tha1": Schema("tha1", tuple(_renamed(*row) for row in _THA1), 256, "head"),
    "tha2": Schema("tha2", _WIDE[:_THA2_LENGTH], 256, "head"),
    "tha3": Schema("tha3", _WIDE, 512, "upper_body"),
}
assert len(SCHEMAS["tha3"]) == 45 and SCHEMAS["tha2"].names[-1] == "neck_z"


def schema(name: str) -> Schema:
    """The schema called ``name`` (``tha1``, ``tha2`` or ``tha3``; THA4 uses ``tha3``)."""
    try:
        return SCHEMAS[name]
    except KeyError:
        raise PoseError(f"no pose schema {name!r}; choose one of {', '.join(SCHEMAS)}") from None
