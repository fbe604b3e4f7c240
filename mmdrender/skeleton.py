"""Forward kinematics: per-bone local rotations and translations -> skin matrices.

MMD bones carry no rest rotation, so bone ``i``'s local transform is
``translate(position_i - position_parent + t_i) @ rotate(q_i)`` and its rest
global transform is just ``translate(position_i)``. The skin matrix handed to
skinning is ``S_i = global_i @ inverse(rest_global_i)``.

Append (付与) bones are resolved first, in deform order (stable sort by
``(AFTER_PHYSICS, deform_layer, index)``): ``q_i = q_i_own * slerp(1, q_source,
ratio)`` with the source's already-resolved rotation, and ``t_i += t_source *
ratio``; a negative ratio appends the inverse rotation. Globals are then composed
down the hierarchy one depth level at a time; without IK or physics a bone's
global depends only on its parent's global and its own local, so this equals
evaluating in deform order.

Not done, on purpose: IK is not solved (no IK target moves in our poses, so
every chain keeps its rest solution), physics is not simulated (hair and skirts
follow their parents rigidly), and fixed/local axes are not enforced.

Quaternions are numpy ``(..., 4)`` arrays in xyzw order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from mmdrender.model import Bone, BoneFlags

IDENTITY_QUAT = np.array([0.0, 0.0, 0.0, 1.0])


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a * b`` (apply ``b`` first), broadcasting ``(..., 4)``."""
    ax, ay, az, aw = np.moveaxis(np.asarray(a, dtype=np.float64), -1, 0)
    bx, by, bz, bw = np.moveaxis(np.asarray(b, dtype=np.float64), -1, 0)
    return np.stack([
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
        aw * bw - ax * bx - ay * by - az * bz,
    ], axis=-1)


def quat_power(q: np.ndarray, t) -> np.ndarray:
    """``slerp(identity, q, t)``, i.e. ``q ** t`` along the shorter arc.

    Works for any real ``t``: negative values rotate the other way, so a
    negative append ratio gives a fraction of the inverse rotation. An all-zero
    quaternion (seen in files) counts as the identity.
    q: (..., 4); t: scalar or broadcastable to ``q.shape[:-1]``. Returns float64.
    """
    q = np.asarray(q, dtype=np.float64)
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    q = np.where(norm > 0, q / np.where(norm > 0, norm, 1.0), IDENTITY_QUAT)  # (0,0,0,0): none
    q = np.where(q[..., 3:] < 0, -q, q)  # shorter arc
    sine = np.linalg.norm(q[..., :3], axis=-1, keepdims=True)
    half = np.arctan2(sine, q[..., 3:]) * np.asarray(t, dtype=np.float64)[..., None]
    axis = np.divide(q[..., :3], sine, out=np.zeros_like(q[..., :3]), where=sine > 0)
    return np.concatenate([axis * np.sin(half), np.cos(half)], axis=-1)


def quat_slerp(a: np.ndarray, b: np.ndarray, t) -> np.ndarray:
    """Spherical interpolation from ``a`` (t = 0) to ``b`` (t = 1) along the shorter arc.

    a, b: (..., 4) unit quaternions; t: broadcastable to ``a.shape[:-1]``. Float64.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)[..., None]
    dot = np.sum(a * b, axis=-1, keepdims=True)
    b = np.where(dot < 0, -b, b)
    dot = np.abs(dot)
    angle = np.arccos(np.clip(dot, -1.0, 1.0))
    sine = np.sin(angle)
    close = sine < 1e-6  # nearly the same rotation: a straight line is exact enough
    safe = np.where(close, 1.0, sine)
    wa = np.where(close, 1.0 - t, np.sin((1.0 - t) * angle) / safe)
    wb = np.where(close, t, np.sin(t * angle) / safe)
    out = wa * a + wb * b
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def quat_about_axis(axis: Sequence[float], angle: float) -> np.ndarray:
    """Right-handed rotation by ``angle`` radians about a unit ``axis``: (4,) float64."""
    return np.array([*(np.asarray(axis, dtype=np.float64) * np.sin(angle / 2)),
                     np.cos(angle / 2)])


AXES = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}


def turn_about(axis: str, degrees: float) -> np.ndarray:
    """Right-handed rotation by ``degrees`` about the project frame's ``axis`` ("x", "y", "z")."""
    return quat_about_axis(AXES[axis], math.radians(degrees))


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions -> (..., 3, 3) float64 rotation matrices (normalised first)."""
    q = np.asarray(q, dtype=np.float64)
    x, y, z, w = np.moveaxis(q / np.linalg.norm(q, axis=-1, keepdims=True), -1, 0)
    return np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ], axis=-1).reshape(*q.shape[:-1], 3, 3)


def deform_order(bones: Sequence[Bone]) -> np.ndarray:
    """Bone indices in MMD's evaluation order: (B,) int64."""
    keys = [(bool(b.flags & BoneFlags.AFTER_PHYSICS), b.deform_layer, i)
            for i, b in enumerate(bones)]
    return np.array([key[2] for key in sorted(keys)], dtype=np.int64)


class Skeleton:
    """Per-model tables for forward kinematics, built once and reused per pose."""

    def __init__(self, bones: Sequence[Bone]):
        count = len(bones)
        self.parents = np.array([b.parent for b in bones], dtype=np.int64).reshape(count)
        self.positions = np.array([b.position for b in bones], dtype=np.float64).reshape(count, 3)
        parent_positions = np.where(self.parents[:, None] >= 0,
                                    self.positions[self.parents], 0.0)
        self.offsets = self.positions - parent_positions  # (B, 3) local rest translation
        self.order = deform_order(bones)
        # APPEND_LOCAL (use the source's local rather than its parent-relative rotation)
        # reads the same local quaternion here, since MMD bones have no rest rotation.
        self._appends = [
            (int(i), bones[i].append_parent, float(bones[i].append_ratio),
             bones[i].appends_rotation, bones[i].appends_translation)
            for i in self.order if bones[i].appends_rotation or bones[i].appends_translation]
        self._levels = self._depth_levels()

    def _depth_levels(self) -> list[np.ndarray]:
        """Bone indices grouped by depth in the hierarchy (the loader removed cycles)."""
        depth = np.full(len(self.parents), -1, dtype=np.int64)
        depth[self.parents < 0] = 0
        while (depth < 0).any():
            ready = (depth < 0) & (depth[self.parents] >= 0)
            if not ready.any():  # a parent cycle the loader missed: treat as roots
                depth[depth < 0] = 0
            depth[ready] = depth[self.parents[ready]] + 1
        return [np.flatnonzero(depth == d) for d in range(int(depth.max(initial=-1)) + 1)]

    def __len__(self) -> int:
        return len(self.parents)

    def resolve_appends(self, rotations: np.ndarray,
                        translations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Locals with append (付与) rotation and translation added: new float64 arrays."""
        rotations = np.array(rotations, dtype=np.float64)
        translations = np.array(translations, dtype=np.float64)
        for bone, source, ratio, rotate, translate in self._appends:
            if rotate and not np.array_equal(rotations[source], IDENTITY_QUAT):
                rotations[bone] = quat_multiply(rotations[bone],
                                                quat_power(rotations[source], ratio))
            if translate:
                translations[bone] += translations[source] * ratio
        return rotations, translations

    def global_transforms(self, rotations: np.ndarray,
                          translations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posed global rotation (B, 3, 3) and translation (B, 3), float64.

        rotations: (B, 4) xyzw local rotations; translations: (B, 3) local moves
        added to the rest offsets. Appends are resolved here.
        """
        return self.compose(*self.resolve_appends(rotations, translations))

    def compose(self, rotations: np.ndarray,
                translations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`global_transforms` of locals whose appends are already resolved."""
        local_r = quat_to_matrix(rotations)
        local_t = self.offsets + translations
        global_r, global_t = local_r.copy(), local_t.copy()
        for level in self._levels[1:]:
            parent = self.parents[level]
            global_r[level] = global_r[parent] @ local_r[level]
            global_t[level] = (global_r[parent] @ local_t[level][:, :, None])[:, :, 0] \
                + global_t[parent]
        return global_r, global_t

    def skin_matrices(self, rotations: np.ndarray | None = None,
                      translations: np.ndarray | None = None) -> np.ndarray:
        """``global_i @ inverse(rest_global_i)`` per bone: (B, 4, 4) float32.

        rotations: (B, 4) xyzw or None (identity); translations: (B, 3) or None.
        """
        count = len(self)
        if rotations is None:
            rotations = np.tile(IDENTITY_QUAT, (count, 1))
        if translations is None:
            translations = np.zeros((count, 3))
        global_r, global_t = self.global_transforms(rotations, translations)
        skin = np.zeros((count, 4, 4), dtype=np.float32)
        skin[:, :3, :3] = global_r
        skin[:, :3, 3] = global_t - (global_r @ self.positions[:, :, None])[:, :, 0]
        skin[:, 3, 3] = 1.0
        return skin
