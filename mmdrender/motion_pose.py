"""A motion's frames as pose vectors of a schema (THA1 6, THA2 42, THA3 45 values).

Through the model's :class:`~mmdrender.rig.Rig`, the inverse of
:class:`~mmdrender.schema_pose.SchemaPoser`:

- morph parameters: the weight of the morph the rig gives the parameter's own
  side plus that of the group's both-sides morph (a blink closes both eyes'
  parameters), so one-sided and both-sided roles both count;
- head_x, head_y, neck_z: the head (頭) orientation decomposed as the poser
  builds it, ``R_z(neck) @ R_y(yaw) @ R_x(pitch)``, each angle divided by the
  parameter's degrees (head_x is minus the pitch: up is positive). THA1 and
  THA2 have no body, so the orientation is the head's in the world, everything
  under it folded in (a leaning body tilts the head); THA3 takes it relative to
  the body bone;
- body_y, body_z (THA3): the body bone's world orientation decomposed as
  ``R_z(body_z) @ R_y(body_y) @ R_x``, the lean forward or back (x) having no
  parameter;
- iris_rotation_x / _y: each eye bone's local rotation (its 両目-style appends
  included) decomposed as ``R_y(yaw) @ R_x(pitch)`` and divided by the rig's
  calibrated angle for that direction, averaged over the eyes that turn;
- breathing: 0; a motion does not say when the character breathes.

Values outside a parameter's range are clipped, and counted per parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mmdrender.camera import HEAD_BONE
from mmdrender.motion import FPS, BoundMotion
from mmdrender.pose import NECK_BONE
from mmdrender.rig import Rig
from mmdrender.schema_pose import BodySettings
from mmdrender.schemas import SIDES, Schema
from mmdrender.skeleton import Skeleton, quat_to_matrix

_CLIPPED = 1e-6  # a value counts as clipped when it moved by more than this
MAX_FRAMES = 1_000_000  # frames one track or clip may have (9 hours at 30 fps)
_CHUNK = 512  # frames evaluated at once: a long motion's arrays stay small


@dataclass(frozen=True)
class PoseTrack:
    """Per frame, a schema's pose vector: ``values`` (F, P) float32 within range.

    ``unclipped`` (F, P) float64 are the values before clipping; ``clipped`` per
    parameter name, how many frames were clipped (only those with any).
    """

    schema: Schema
    frames: np.ndarray
    values: np.ndarray
    unclipped: np.ndarray
    clipped: dict

    @property
    def drives_anything(self) -> bool:
        return bool(np.abs(self.unclipped).max(initial=0.0) > _CLIPPED)


def euler_zyx(r: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations ``R_z(c) @ R_y(b) @ R_x(a)`` -> (..., 3) angles (a, b, c), radians."""
    b = np.arcsin(np.clip(-r[..., 2, 0], -1.0, 1.0))
    a = np.arctan2(r[..., 2, 1], r[..., 2, 2])
    c = np.arctan2(r[..., 1, 0], r[..., 0, 0])
    return np.stack([a, b, c], axis=-1)


def pitch_yaw(r: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations ``R_y(b) @ R_x(a)`` (any roll dropped) -> (..., 2) (a, b), radians."""
    a = np.arcsin(np.clip(-r[..., 1, 2], -1.0, 1.0))
    b = np.arctan2(r[..., 0, 2], r[..., 2, 2])
    return np.stack([a, b], axis=-1)


def from_angle(angle: np.ndarray, positive: float, negative: float) -> np.ndarray:
    """The value in [-1, 1] that a calibrated rotation turns by ``angle`` (degrees).

    ``positive``/``negative``: the (signed) angles of +1 and -1; the inverse of
    ``angle = v * positive if v >= 0 else -v * negative``.
    """
    toward_positive = angle * positive > 0
    up = np.divide(angle, positive) if positive else np.zeros_like(angle)
    down = -np.divide(angle, negative) if negative else np.zeros_like(angle)
    return np.where(toward_positive, up, np.where(angle == 0, 0.0, down))


class MotionPoses:
    """Turns one bound motion's frames into ``schema`` pose vectors for one model."""

    def __init__(self, bound: BoundMotion, schema: Schema, rig: Rig,
                 settings: BodySettings | None = None):
        self.bound, self.schema, self.rig = bound, schema, rig
        self.settings = settings or BodySettings()
        model = bound.model
        self.skeleton = Skeleton(model.bones)
        self._morph_sources = {}  # parameter -> model morph indices whose weights add up
        for p in schema.parameters:
            if not p.is_morph:
                continue
            names = {rig.morphs.get((p.group, p.side)), rig.morphs.get((p.group, None))}
            indices = [model.morph_index(n) for n in names if n]
            self._morph_sources[p.name] = [i for i in indices if i is not None]
        self._head = model.bone_index(HEAD_BONE)
        self._neck = model.bone_index(NECK_BONE)
        self._body = model.bone_index(rig.body_bone) if rig.body_bone else None
        self._eyes = {side: model.bone_index(rig.eye_bones[side]) for side in SIDES
                      if rig.eye_turns(side) and model.bone_index(rig.eye_bones[side]) is not None}

    def morphs_used(self) -> set[int]:
        """Indices of the model's morphs that feed some parameter."""
        return {i for indices in self._morph_sources.values() for i in indices}

    def track(self, frames) -> PoseTrack:
        frames = np.atleast_1d(np.asarray(frames, dtype=np.float64))
        values = np.zeros((len(frames), len(self.schema)))
        for first in range(0, len(frames), _CHUNK):
            values[first:first + _CHUNK] = self._values(frames[first:first + _CHUNK])
        low = np.array([p.low for p in self.schema.parameters])
        high = np.array([p.high for p in self.schema.parameters])
        clipped_values = np.clip(values, low, high)
        moved = np.abs(clipped_values - values) > _CLIPPED
        clipped = {name: int(moved[:, i].sum()) for i, name in enumerate(self.schema.names)
                   if moved[:, i].any()}
        return PoseTrack(self.schema, frames, clipped_values.astype(np.float32), values, clipped)

    def _values(self, frames: np.ndarray) -> np.ndarray:
        """(F, P) unclipped values at ``frames``."""
        rotations, translations, weights = self.bound.evaluate(frames)
        values = np.zeros((len(frames), len(self.schema)))
        index = {name: i for i, name in enumerate(self.schema.names)}
        for name, sources in self._morph_sources.items():
            if sources:
                values[:, index[name]] = weights[:, sources].sum(axis=1)
        if any(p.category in ("face_rotation", "body_rotation", "iris_rotation")
               for p in self.schema.parameters):
            self._rotations(rotations, translations, values, index)
        return values

    def _rotations(self, rotations, translations, values, index) -> None:
        count = len(rotations)
        head_r = np.tile(np.eye(3), (count, 1, 1))
        body_r = np.tile(np.eye(3), (count, 1, 1))
        eye_locals = {side: np.zeros((count, 4)) for side in self._eyes}
        for f in range(count):
            resolved, moved = self.skeleton.resolve_appends(rotations[f], translations[f])
            global_r, _ = self.skeleton.compose(resolved, moved)
            if self._head is not None:
                head_r[f] = global_r[self._head]
            if self._body is not None:
                body_r[f] = global_r[self._body]
            for side, bone in self._eyes.items():
                eye_locals[side][f] = resolved[bone]
        names = set(self.schema.names)
        if "body_y" in names:
            if self._body is not None:
                angles = np.degrees(euler_zyx(body_r))
                s = self.settings
                values[:, index["body_y"]] = angles[:, 1] / s.body_y_degrees
                values[:, index["body_z"]] = angles[:, 2] / s.body_z_degrees
                head_r = np.swapaxes(body_r, 1, 2) @ head_r
        if self._head is not None:
            a, b, c = np.moveaxis(np.degrees(euler_zyx(head_r)), -1, 0)
            for name, angle, sign in (("head_x", a, -1.0), ("head_y", b, 1.0)):
                values[:, index[name]] = sign * angle / self.schema.parameter(name).degrees
            if self._neck is not None:
                values[:, index["neck_z"]] = c / self.schema.parameter("neck_z").degrees
            else:  # no neck: the roll has nowhere to go
                values[:, index["neck_z"]] = 0.0
        if "iris_rotation_x" in names and self._eyes:
            x = np.zeros(count)
            y = np.zeros(count)
            for side, q in eye_locals.items():
                pitch, yaw = np.moveaxis(np.degrees(pitch_yaw(quat_to_matrix(q))), -1, 0)
                angles = self.rig.iris[side]
                x += from_angle(pitch, angles["x_pos"], angles["x_neg"])
                y += from_angle(yaw, angles["y_pos"], angles["y_neg"])
            values[:, index["iris_rotation_x"]] = x / len(self._eyes)
            values[:, index["iris_rotation_y"]] = y / len(self._eyes)


def frame_numbers(last_frame: int, start: float | None = None, end: float | None = None,
                  fps: float = FPS) -> np.ndarray:
    """The motion frames (30 per second) a clip at ``fps`` shows from ``start`` to ``end``,
    both included (defaults: 0 and the motion's last keyed frame)."""
    start = 0.0 if start is None else float(start)
    end = float(last_frame) if end is None else float(end)
    if not (math.isfinite(start) and math.isfinite(end) and end >= start):
        raise ValueError(f"frames {start:g}:{end:g}: the end must not come before the start")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps}")
    step = FPS / fps
    count = int(math.floor((end - start) / step + 1e-9)) + 1
    if count > MAX_FRAMES:
        raise ValueError(f"frames {start:g}:{end:g} at {fps:g} fps are {count} frames, more "
                         f"than {MAX_FRAMES} ({MAX_FRAMES / fps / 3600:.1f} hours); choose a "
                         "shorter range with --frames")
    return start + step * np.arange(count)
