"""Posing a model from a THA2 (42) or THA3/THA4 (45) pose vector.

Every parameter through the model's :class:`~mmdrender.rig.Rig`:

- morph parameters: the weight of their morph; a one-side parameter the model
  has no morph for uses one half of the group's both-sides morph where the rig
  allows (``halves``), else the both-sides morph itself takes the larger of the
  two sides' values (``shared``; the sampler keeps the sides equal then);
- iris_rotation_x / _y: each eye bone turns about x (pitch) then y (yaw) by the
  rig's calibrated angle for +1 or -1, scaled by the value;
- head_x, head_y, neck_z: as THA1 (the 頭 and 首 bones, +-1 = +-15°);
- body_y, body_z: the upper-body bone turns about y, then z, by
  ``body_y_degrees`` / ``body_z_degrees`` at +-1, with the same signs as head_y and
  neck_z (body_y > 0 toward the character's left, body_z > 0 the top toward
  image left). The THA3 demos drive them with the head's values; how THA3 drew
  them is not public, so this is our documented choice (:class:`BodySettings`);
- breathing in [0, 1]: the chest (上半身2, else the upper body) leans back by
  ``breathing_chest_degrees`` and each shoulder rises by
  ``breathing_shoulder_degrees``: the chest lifts and the shoulders ride up, as
  in a breath in.

THA3 draws the upper body, where MMD's A- or T-pose would spread the arms across
the image: :class:`BodySettings` ``lower_arms`` turns each upper arm (腕) so it
hangs ``arm_degrees`` out from straight down, elbows kept as modelled; the same
posture in every image of a model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from mmdrender.camera import head_centre_x
from mmdrender.errors import PoseError
from mmdrender.model import Model
from mmdrender.morph import half_of
from mmdrender.pose import MorphMapping, Poser
from mmdrender.posed import PosedModel
from mmdrender.rig import Rig
from mmdrender.schemas import SIDES, Schema
from mmdrender.skeleton import IDENTITY_QUAT, quat_about_axis, quat_multiply, turn_about

HALF_BAND = 0.005  # of the model's height: the ramp across the centre line of a cut morph
ARM_BONES = {"left": ("左腕", "左ひじ"), "right": ("右腕", "右ひじ")}


@dataclass(frozen=True)
class BodySettings:
    """The body's open choices (wide-schemas.md section 4); stored in every shard."""

    body_y_degrees: float = 15.0
    body_z_degrees: float = 15.0
    breathing_chest_degrees: float = 2.5
    breathing_shoulder_degrees: float = 3.0
    lower_arms: bool = True
    arm_degrees: float = 12.0

    def to_dict(self) -> dict:
        return asdict(self)


def _quat_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The shortest rotation taking direction ``a`` to ``b``: (4,) xyzw."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    axis = np.cross(a, b)
    sine = np.linalg.norm(axis)
    angle = math.atan2(sine, float(a @ b))
    if sine < 1e-9:
        return IDENTITY_QUAT.copy()
    return quat_about_axis(axis / sine, angle)


def arm_turns(model: Model, degrees: float) -> dict[str, np.ndarray]:
    """Turns of the upper arms (腕) that make each hang ``degrees`` out from straight down.

    The arm's direction is its 腕 -> ひじ bone line at rest; an arm already
    hanging that way barely moves. Models without those bones keep their arms.
    """
    turns = {}
    for side, (arm, elbow) in ARM_BONES.items():
        a, e = model.bone(arm), model.bone(elbow)
        if a is None or e is None:
            continue
        rest = np.asarray(e.position, float) - np.asarray(a.position, float)
        if not np.linalg.norm(rest) > 0:
            continue
        out = 1.0 if side == "left" else -1.0
        angle = math.radians(degrees)
        target = np.array([out * math.sin(angle), -math.cos(angle), 0.0])
        turns[arm] = _quat_between(rest, target)
    return turns


class SchemaPoser:
    """Poses one model many times from ``schema``'s pose vectors; tables built once."""

    def __init__(self, model: Model, schema: Schema, rig: Rig,
                 settings: BodySettings | None = None, lower_arms: bool | None = None):
        self.model, self.schema, self.rig = model, schema, rig
        self.settings = settings or BodySettings()
        self.poser = Poser(model, MorphMapping(None, None, None))
        bones = {b.name for b in model.bones}
        self.realisations = dict(zip(schema.names, rig.realisations(schema, bones), strict=True))
        self._morphs: dict[str, tuple[int, str]] = {}  # parameter -> (morph index, realisation)
        for p in schema.parameters:
            if not p.is_morph:
                continue
            name, how = rig.morph_for(p)
            if how == "absent":
                continue
            index = model.morph_index(name)
            if index is None:
                raise PoseError(f"{p.name} is realised by the morph {name!r}, which model "
                                f"{model.path.name!r} lacks; check the index")
            self._morphs[p.name] = (index, how)
        self._halves = {}
        if any(how == "halves" for _, how in self._morphs.values()):
            vertex_sides, bone_sides = self._side_weights()
            for p in schema.parameters:
                index, how = self._morphs.get(p.name, (None, None))
                if how == "halves":
                    self._halves[p.name] = half_of(model, index, vertex_sides[p.side],
                                                   bone_sides[p.side])
        lower = self.settings.lower_arms if lower_arms is None else lower_arms
        self.posture = arm_turns(model, self.settings.arm_degrees) if lower else {}

    def _side_weights(self) -> tuple[dict, dict]:
        """Per side, how much of a change at each vertex and bone belongs to it."""
        centre = head_centre_x(self.model)
        y = self.model.vertices.positions[:, 1]
        band = HALF_BAND * max(float(y.max() - y.min()), 1e-6)

        def left_share(x):
            t = np.clip((np.asarray(x, np.float64) - centre + band) / (2 * band), 0.0, 1.0)
            return t * t * (3 - 2 * t)

        vertex_left = left_share(self.model.vertices.positions[:, 0])
        bone_left = left_share([b.position[0] for b in self.model.bones])
        return ({"left": vertex_left, "right": 1.0 - vertex_left},
                {"left": bone_left, "right": 1.0 - bone_left})

    def pose(self, values: Mapping[str, float] | np.ndarray,
             categories: set[str] | None = None) -> PosedModel:
        """The model in pose ``values`` ({name: value} or a (P,) vector in schema order).

        ``categories``: only parameters of these categories act (the rest held at
        their rest value, 0); the arm posture holds whatever they are.
        """
        if not isinstance(values, Mapping):
            vector = np.asarray(values, dtype=np.float64)
            if vector.shape != (len(self.schema),):
                raise PoseError(f"a {self.schema.name} pose has {len(self.schema)} values, "
                                f"got shape {vector.shape}")
            values = dict(zip(self.schema.names, vector.tolist(), strict=True))
        acting = {}
        for name, value in values.items():
            parameter = self.schema.parameter(name)
            if categories is not None and parameter.category not in categories:
                continue
            if not (parameter.low <= value <= parameter.high) or not math.isfinite(value):
                raise PoseError(f"pose parameter {name!r} is {value}, outside "
                                f"[{parameter.low:g}, {parameter.high:g}]")
            if value and self.realisations[name] != "absent":
                acting[name] = float(value)
        weights = np.zeros(len(self.model.morphs))
        halves = []
        for name, value in acting.items():
            index, how = self._morphs.get(name, (None, None))
            if how == "own":
                weights[index] += value
            elif how == "halves":
                halves.append((self._halves[name], value))
            elif how == "shared":  # one both-sides morph for two parameters: the larger
                weights[index] = max(weights[index], value)
        turns = dict(self.posture)
        self._iris(acting, turns)
        self._body(acting, turns)
        head = {n: acting.get(n, 0.0) for n in ("head_x", "head_y", "neck_z")}
        return self.poser.pose_parts(head, weights, turns, halves)

    def turn_bounds(self) -> dict[int, list[tuple[str | None, float]]]:
        """Bone index -> the turns this schema's poses (and the arm posture) give it, in the
        order :meth:`pose` composes them (the innermost first): (axis or None for any,
        largest angle in radians); for :mod:`mmdrender.reach`."""
        bounds: dict[int, list] = {}

        def add(bone: str | None, axis: str | None, degrees: float) -> None:
            index = self.model.bone_index(bone) if bone else None
            if index is not None and degrees:
                bounds.setdefault(index, []).append((axis, math.radians(abs(degrees))))

        live = {n for n in self.schema.names if self.realisations[n] != "absent"}
        for bone, turn in self.posture.items():  # inside every turn below, in every image
            add(bone, None, math.degrees(2 * math.acos(min(1.0, abs(float(turn[3]))))))
        if live & {"iris_rotation_x", "iris_rotation_y"}:
            for side in SIDES:
                if self.rig.eye_turns(side):
                    angles = self.rig.iris[side]
                    add(self.rig.eye_bones[side], "x", max(abs(angles["x_pos"]),
                                                           abs(angles["x_neg"])))
                    add(self.rig.eye_bones[side], "y", max(abs(angles["y_pos"]),
                                                           abs(angles["y_neg"])))
        s = self.settings
        if live & {"body_y", "body_z"}:  # R_z R_y; breathing composes outside it
            add(self.rig.body_bone, "y", s.body_y_degrees)
            add(self.rig.body_bone, "z", s.body_z_degrees)
        if "breathing" in live:
            add(self.rig.chest_bone or self.rig.body_bone, "x", s.breathing_chest_degrees)
            for bone in self.rig.shoulders.values():
                add(bone, "z", s.breathing_shoulder_degrees)
        if live & {"head_x", "head_y", "neck_z"}:  # THA1's head and neck, posed the same way
            for bone, turns in self.poser.turn_bounds().items():
                bounds.setdefault(bone, []).extend(turns)
        return bounds

    def _turn(self, turns: dict, bone: str | None, rotation: np.ndarray) -> None:
        if bone is None or self.model.bone_index(bone) is None:
            return
        turns[bone] = quat_multiply(rotation, turns.get(bone, IDENTITY_QUAT))

    def _iris(self, acting: dict, turns: dict) -> None:
        x, y = acting.get("iris_rotation_x", 0.0), acting.get("iris_rotation_y", 0.0)
        if not (x or y):
            return
        for side in SIDES:
            if not self.rig.eye_turns(side):
                continue
            angles = self.rig.iris[side]
            pitch = x * angles["x_pos"] if x >= 0 else -x * angles["x_neg"]
            yaw = y * angles["y_pos"] if y >= 0 else -y * angles["y_neg"]
            rotation = quat_multiply(turn_about("y", yaw), turn_about("x", pitch))
            self._turn(turns, self.rig.eye_bones[side], rotation)

    def _body(self, acting: dict, turns: dict) -> None:
        s = self.settings
        body_y, body_z = acting.get("body_y", 0.0), acting.get("body_z", 0.0)
        if body_y or body_z:
            rotation = quat_multiply(turn_about("z", body_z * s.body_z_degrees),
                                     turn_about("y", body_y * s.body_y_degrees))
            self._turn(turns, self.rig.body_bone, rotation)
        breath = acting.get("breathing", 0.0)
        if breath:
            chest = self.rig.chest_bone or self.rig.body_bone
            self._turn(turns, chest, turn_about("x", -(breath * s.breathing_chest_degrees)))
            for side, sign in (("left", 1.0), ("right", -1.0)):
                self._turn(turns, self.rig.shoulders.get(side),
                           turn_about("z", sign * (breath * s.breathing_shoulder_degrees)))
