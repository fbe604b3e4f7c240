"""Named pose -> posed arrays: morphs, then forward kinematics, then skinning.

The pose vector is THA1's six numbers (dataset spec section 2). ``eye_left``,
``eye_right`` and ``mouth`` in [0, 1] are weights of the morphs a
:class:`MorphMapping` names; ``head_x`` and ``head_y`` in [-1, 1] rotate the 頭
(head) bone, ``neck_z`` in [-1, 1] the 首 (neck) bone, ±1 meaning ±``degrees``.

Sign conventions, in the project frame (+x the character's left, which is image
right in a front view; +y up; +z the character's front, toward the viewer):

- ``head_x > 0`` tilts the head up: the face moves +y. A right-handed rotation
  about +x by a positive angle moves the front (+z) down, so 頭 turns about +x
  by ``-head_x * degrees``.
- ``head_y > 0`` turns the face toward the character's own left (+x, image
  right): 頭 turns about +y by ``+head_y * degrees``.
- The head rotation is ``R = R_y(yaw) @ R_x(pitch)``: pitch first, then yaw
  about the neck's y axis.
- ``neck_z > 0`` tilts the head toward the character's own right (the top of
  the head moves -x, image left): 首 turns about +z by ``+neck_z * degrees``.
  頭 is a child of 首, so the neck carries the head with it.

A rotation composes outside any bone-morph rotation of the same bone
(``q = q_pose * q_morph``).

Skinning is linear blend: BDEF1/2/4 as written, QDEF as BDEF4, and SDEF as
BDEF2 (its C/R0/R1 correction is ignored; it only matters for large bends).
Vertices whose bones all keep an identity skin matrix are not touched, so a
head pose costs only the head's vertices. Which vertices those are depends only
on which bones moved, so the Poser keeps their bone slots per set of moved
bones (a dataset's poses share one or two sets): skinning a pose then costs
two gathers and a few multiply-adds per vertex, 0.8 ms instead of 2.2 ms on an
18.5k-vertex model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from mmdrender.camera import HEAD_BONE
from mmdrender.errors import PoseError, listed_names
from mmdrender.model import Model, MorphPanel
from mmdrender.morph import apply_morphs, with_halves
from mmdrender.posed import PosedModel
from mmdrender.schemas import SCHEMAS
from mmdrender.skeleton import IDENTITY_QUAT, Skeleton, quat_about_axis, quat_multiply

POSE_PARAMETERS = SCHEMAS["tha1"].names
RANGES = {p.name: (p.low, p.high) for p in SCHEMAS["tha1"].parameters}
NECK_BONE = "首"
# Morph parameter -> the MorphMapping field naming its morph.
_MAPPED = {"eye_left": "wink_left", "eye_right": "wink_right", "mouth": "mouth_open"}
_NONE: Mapping[str, float] = MappingProxyType({})
_IDENTITY_AFFINE = np.eye(3, 4, dtype=np.float32)
_SKIN_SETS_KEPT = 8  # sets of moved bones whose vertices a Poser remembers


@dataclass(frozen=True)
class _MovedVertices:
    """The vertices some moved bone influences, with their bone slots laid out for skinning."""

    rows: np.ndarray  # (A,) vertex indices
    bones: np.ndarray  # (K, A) bone index per slot; B (identity) for unused slots
    weights: np.ndarray  # (K, A, 12) weight per slot, repeated for the 3x4 matrix entries


@dataclass(frozen=True)
class MorphMapping:
    """Which of the model's morphs (Japanese names) realises each morph parameter.

    ``wink_left`` closes the character's own left eye (+x), ``wink_right`` its
    right eye. MMD names winks by the side of the screen: on Animasa's Miku,
    Kaito and Len (and mokou, neru, sakine_meiko) ウィンク closes the
    character's right eye and ウィンク右 its left, hence the defaults. None means
    the model has no such morph; posing that parameter away from 0 is then a
    :class:`PoseError`.
    """

    wink_left: str | None = "ウィンク右"
    wink_right: str | None = "ウィンク"
    mouth_open: str | None = "あ"


class Poser:
    """Poses one model many times; per-model tables are built once, here.

    A mapped morph or a 首/頭 bone the model lacks is reported when a pose
    first needs it, so a model without winks can still be posed otherwise.
    """

    def __init__(self, model: Model, mapping: MorphMapping | None = None,
                 degrees: float = 15.0):
        if not (math.isfinite(degrees) and degrees > 0):
            raise PoseError(f"degrees must be a positive finite angle, got {degrees!r}")
        self.model = model
        self.mapping = mapping if mapping is not None else MorphMapping()
        self.degrees = float(degrees)
        self._skeleton = Skeleton(model.bones)
        self._rest = PosedModel.rest(model)
        self._rest_materials = self._rest.materials
        for value in vars(self._rest_materials).values():
            value.setflags(write=False)
        self._bones, self._weights = _compact_influences(model)
        self._moved_vertices: dict[bytes, _MovedVertices] = {}

    def pose(self, params: Mapping[str, float] = _NONE,
             morphs: Mapping[str, float] = _NONE,
             turns: Mapping[str, np.ndarray] = _NONE) -> PosedModel:
        """The model with ``params`` (missing ones 0) and raw ``morphs`` weights applied.

        Raw morph weights (any finite value) add to those the parameters set.
        ``turns``: bone name -> (4,) xyzw rotation in the project frame, composed
        outside what the parameters and bone morphs give that bone (an eye bone
        turned to look, a body bone to lean). Returned arrays are read-only;
        unchanged ones are the model's own.
        """
        values = self._check_params(params)
        return self._posed(values, self._morph_weights(values, morphs), self._turns(turns))

    def turn_bounds(self) -> dict[int, list[tuple[str, float]]]:
        """Bone index -> the turns THA1's parameters give it, in order (axis, largest angle
        in radians): the head pitch (x) then yaw (y), the neck roll (z); for
        :mod:`mmdrender.reach`."""
        unit = math.radians(self.degrees)
        bounds = {}
        for name, turns in ((HEAD_BONE, [("x", unit), ("y", unit)]), (NECK_BONE, [("z", unit)])):
            index = self.model.bone_index(name)
            if index is not None:
                bounds.setdefault(index, []).extend(turns)
        return bounds

    def pose_weights(self, weights: np.ndarray) -> PosedModel:
        """The model with raw morph weights by index ((N,) floats), no pose parameter.

        For morphs a name cannot reach (a file may repeat a name; the first wins).
        """
        return self.pose_parts({}, weights)

    def _turns(self, turns: Mapping[str, np.ndarray]) -> dict[int, np.ndarray]:
        """Bone index -> unit xyzw quaternion, checked."""
        result = {}
        for name, rotation in turns.items():
            index = self.model.bone_index(name)
            if index is None:
                raise PoseError(f"{self._label()} has no bone {name!r} to turn")
            q = np.asarray(rotation, dtype=np.float64)
            if q.shape != (4,) or not np.isfinite(q).all() or not np.linalg.norm(q) > 0:
                raise PoseError(f"the turn of bone {name!r} must be a finite, non-zero xyzw "
                                f"quaternion, got {rotation!r}")
            result[index] = q / np.linalg.norm(q)
        return result

    def pose_parts(self, head: Mapping[str, float], weights: np.ndarray,
                   turns: Mapping[str, np.ndarray] = _NONE, halves=()) -> PosedModel:
        """The model from its parts: THA1's head rotations (head_x, head_y, neck_z),
        raw morph weights by index ((N,) floats), bone ``turns`` (see :meth:`pose`) and
        ``halves``: (:class:`~mmdrender.morph.MorphHalf`, weight) pairs, one side of a
        morph each. What the wider schemas' poser (:mod:`mmdrender.schema_pose`) builds on.
        """
        values = self._check_params({k: v for k, v in head.items() if v})
        weights = self._check_weights(weights)
        return self._posed(values, weights, self._turns(turns), tuple(halves))

    def pose_bones(self, rotations: np.ndarray, translations: np.ndarray,
                   weights: np.ndarray) -> PosedModel:
        """The model with every bone's local rotation ((B, 4) xyzw) and translation
        ((B, 3), added to the rest offset) given, as a motion frame sets them, and raw
        morph weights ((N,) floats). Bone morphs compose inside the given rotations.
        """
        count = len(self.model.bones)
        rotations = np.asarray(rotations, dtype=np.float64)
        translations = np.asarray(translations, dtype=np.float64)
        if rotations.shape != (count, 4) or translations.shape != (count, 3) or not (
                np.isfinite(rotations).all() and np.isfinite(translations).all()):
            raise PoseError(f"bone rotations and translations must be finite ({count}, 4) and "
                            f"({count}, 3) arrays, got {rotations.shape} and "
                            f"{translations.shape}")
        weights = self._check_weights(weights)
        return self._posed(self._check_params({}), weights, bones=(rotations, translations))

    def _check_weights(self, weights) -> np.ndarray:
        """(N,) float64 raw morph weights, one finite number per morph."""
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (len(self.model.morphs),) or not np.isfinite(weights).all():
            raise PoseError(f"morph weights must be {len(self.model.morphs)} finite numbers, "
                            f"got an array of shape {weights.shape}")
        return weights

    def _posed(self, values: dict[str, float], weights: np.ndarray,
               turns: dict[int, np.ndarray] | None = None, halves=(),
               bones: tuple[np.ndarray, np.ndarray] | None = None) -> PosedModel:
        if not weights.any() and not turns and not halves and bones is None and \
                not any(values[n] for n in ("head_x", "head_y", "neck_z")):
            return self._rest
        changes = apply_morphs(self.model, weights, self._rest_materials)
        if halves:
            changes = with_halves(changes, halves)
        rest = self.model.vertices
        positions = rest.positions
        if changes.vertex_offsets is not None:
            positions = positions + changes.vertex_offsets
        uvs = rest.uvs if changes.uv_offsets is None else rest.uvs + changes.uv_offsets
        sub_uvs = None  # additional UV 1, for sub-textures: only when a morph moves it
        extra = changes.extra_uv_offsets
        if extra is not None and extra.shape[1] > 0 and extra[:, 0, :2].any():
            sub_uvs = rest.extra_uvs[:, 0, :2] + extra[:, 0, :2]
            sub_uvs.setflags(write=False)
        morph_rotations, translations = changes.bone_rotations, changes.bone_translations
        if bones is not None:  # a motion's locals; bone morphs act inside them
            morph_rotations = bones[0] if morph_rotations is None else \
                quat_multiply(bones[0], morph_rotations)
            translations = bones[1] if translations is None else bones[1] + translations
        rotations = self._rotations(values, morph_rotations, turns or {})
        normals = rest.normals
        if rotations is not None or translations is not None:
            skin = self._skeleton.skin_matrices(rotations, translations)
            positions, normals = self._skin(positions, normals, skin)
        for array in (positions, normals, uvs):
            array.setflags(write=False)
        return PosedModel(self.model, positions, normals, uvs, changes.materials, sub_uvs)

    def _check_params(self, params: Mapping[str, float]) -> dict[str, float]:
        values = dict.fromkeys(POSE_PARAMETERS, 0.0)
        for name, value in params.items():
            if name not in RANGES:
                raise PoseError(f"unknown pose parameter {name!r}; the parameters are "
                                f"{', '.join(POSE_PARAMETERS)}")
            number = _finite(f"pose parameter {name!r}", value)
            low, high = RANGES[name]
            if not low <= number <= high:
                raise PoseError(f"pose parameter {name!r} is {number}, outside its range "
                                f"[{low:g}, {high:g}]")
            values[name] = number
        return values

    def _morph_weights(self, values: dict[str, float], morphs: Mapping[str, float]) -> np.ndarray:
        """(N,) float64 raw weights: mapped parameters plus named morphs."""
        weights = np.zeros(len(self.model.morphs), dtype=np.float64)
        for parameter, field in _MAPPED.items():
            if values[parameter]:
                weights[self._mapped_index(parameter, field)] += values[parameter]
        for name, value in morphs.items():
            index = self.model.morph_index(name)
            if index is None:
                raise PoseError(f"{self._label()} has no morph {name!r}; its morphs include "
                                f"{listed_names([m.name for m in self.model.morphs])}")
            weights[index] += _finite(f"morph {name!r}", value)
        return weights

    def _mapped_index(self, parameter: str, field: str) -> int:
        name = getattr(self.mapping, field)
        if name is None:
            raise PoseError(f"{parameter} cannot be posed on {self._label()}: "
                            f"MorphMapping.{field} is None (the model has no such morph)")
        index = self.model.morph_index(name)
        if index is None:
            eye, mouth = ([m.name for m in self.model.morphs if m.panel == panel]
                          for panel in (MorphPanel.EYE, MorphPanel.MOUTH))
            raise PoseError(f"{parameter} is realised by the morph {name!r} "
                            f"(MorphMapping.{field}), which {self._label()} lacks; its eye "
                            f"morphs are {listed_names(eye)} and its mouth morphs "
                            f"{listed_names(mouth)}; "
                            "pass a MorphMapping that names one of them, or None")
        return index

    def _rotations(self, values: dict[str, float], morph_rotations: np.ndarray | None,
                   turns: dict[int, np.ndarray]) -> np.ndarray | None:
        """(B, 4) xyzw local rotations, or None when no bone rotates."""
        if not (values["head_x"] or values["head_y"] or values["neck_z"] or turns):
            return morph_rotations
        rotations = (np.tile(IDENTITY_QUAT, (len(self.model.bones), 1))
                     if morph_rotations is None else morph_rotations.copy())
        for bone, rotation in turns.items():
            rotations[bone] = quat_multiply(rotation, rotations[bone])
        unit = math.radians(self.degrees)
        if values["head_x"] or values["head_y"]:
            head = self._bone(HEAD_BONE, "head_x/head_y")
            pitch = quat_about_axis((1.0, 0.0, 0.0), -values["head_x"] * unit)
            yaw = quat_about_axis((0.0, 1.0, 0.0), values["head_y"] * unit)
            rotations[head] = quat_multiply(quat_multiply(yaw, pitch), rotations[head])
        if values["neck_z"]:
            neck = self._bone(NECK_BONE, "neck_z")
            roll = quat_about_axis((0.0, 0.0, 1.0), values["neck_z"] * unit)
            rotations[neck] = quat_multiply(roll, rotations[neck])
        return rotations

    def _bone(self, name: str, parameters: str) -> int:
        index = self.model.bone_index(name)
        if index is None:
            raise PoseError(f"{parameters} rotate the bone {name!r}, which {self._label()} "
                            "lacks; pose this model with those parameters at 0")
        return index

    def _skin(self, positions: np.ndarray, normals: np.ndarray,
              skin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Linear-blend skinning of the vertices that some moved bone influences.

        positions, normals: (V, 3) float32; skin: (B, 4, 4) float32. Returns new arrays.
        """
        affine = np.empty((len(skin) + 1, 3, 4), dtype=np.float32)  # + the unused-slot row
        affine[:-1], affine[-1] = skin[:, :3, :], _IDENTITY_AFFINE
        moved = self._moved((affine != _IDENTITY_AFFINE).any(axis=(1, 2)))
        positions, normals = positions.copy(), normals.copy()
        rows = moved.rows
        if not len(rows):
            return positions, normals
        flat = affine.reshape(-1, 12)
        blended = np.take(flat, moved.bones[0], axis=0)  # (A, 12): row-major 3x4 per vertex
        blended *= moved.weights[0]
        for bones, weights in zip(moved.bones[1:], moved.weights[1:], strict=True):
            slot = np.take(flat, bones, axis=0)
            slot *= weights
            blended += slot
        m = blended.reshape(-1, 3, 4)
        p, n = positions[rows], normals[rows]
        positions[rows] = (m[:, :, 0] * p[:, :1] + m[:, :, 1] * p[:, 1:2]
                           + m[:, :, 2] * p[:, 2:] + m[:, :, 3])
        turned = m[:, :, 0] * n[:, :1] + m[:, :, 1] * n[:, 1:2] + m[:, :, 2] * n[:, 2:]
        length = np.sqrt(np.einsum("ai,ai->a", turned, turned))[:, None]
        normals[rows] = np.divide(turned, length, out=turned, where=length > 0)
        return positions, normals

    def _moved(self, moved_bones: np.ndarray) -> _MovedVertices:
        """The vertices that ``moved_bones`` ((B + 1,) bool) influence, remembered per set."""
        key = moved_bones.tobytes()
        found = self._moved_vertices.get(key)
        if found is None:
            rows = np.flatnonzero(moved_bones[self._bones].any(axis=1))
            bones = np.ascontiguousarray(self._bones[rows].T)
            weights = np.repeat(self._weights[rows].T[:, :, None], 12, axis=2)
            found = _MovedVertices(rows, bones, np.ascontiguousarray(weights))
            if len(self._moved_vertices) >= _SKIN_SETS_KEPT:
                self._moved_vertices.clear()
            self._moved_vertices[key] = found
        return found

    def _label(self) -> str:
        return f"model {self.model.path.name!r}"


def pose_model(model: Model, params: Mapping[str, float] = _NONE,
               morphs: Mapping[str, float] = _NONE, mapping: MorphMapping | None = None,
               degrees: float = 15.0) -> PosedModel:
    """One-off :meth:`Poser.pose`; build a :class:`Poser` to pose a model many times."""
    return Poser(model, mapping, degrees).pose(params, morphs)


def _compact_influences(model: Model) -> tuple[np.ndarray, np.ndarray]:
    """Bone slots trimmed to the most any vertex uses: (V, K) int64 and (V, K) float32.

    Unused slots point at bone B (one past the last) with weight 0; skinning
    gives that index an identity matrix, so gathers need no masking.
    """
    v = model.vertices
    weights = np.where(v.bone_indices >= 0, v.bone_weights, 0.0).astype(np.float32)
    order = np.argsort(-weights, axis=1, kind="stable")
    weights = np.take_along_axis(weights, order, axis=1)
    bones = np.take_along_axis(v.bone_indices, order, axis=1).astype(np.int64)
    used = max(int((weights > 0).sum(axis=1).max(initial=1)), 1)
    weights, bones = weights[:, :used], bones[:, :used]
    bones[weights <= 0] = len(model.bones)
    return np.ascontiguousarray(bones), np.ascontiguousarray(weights)


def _finite(what: str, value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PoseError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise PoseError(f"{what} is {number}; it must be a finite number")
    return number


__all__ = ["POSE_PARAMETERS", "MorphMapping", "Poser", "pose_model"]
