"""Morph weights -> the changes they make, each in a buffer of its own.

MMD semantics throughout: a group morph passes ``weight * member_weight`` on to
each member (recursively, cutting any loop); vertex and UV morphs add
``offset * weight``; a bone morph adds ``translation * weight`` and composes
``slerp(identity, rotation, weight)``; a material morph first multiplies every
field by ``1 + (value - 1) * weight`` (multiply entries), then adds ``value *
weight`` (add entries), material -1 meaning every material. The texture, sphere
and toon tints act on the ``*_multiply`` / ``*_add`` factors of
:class:`MaterialState`, which start at 1 and 0. Flip and impulse morphs are
skipped with a warning. Rest arrays are never written to.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmdrender.model import (
    BoneMorph,
    GroupMorph,
    MaterialMorph,
    Model,
    Morph,
    UnsupportedMorph,
    UVMorph,
    VertexMorph,
)
from mmdrender.posed import MaterialState
from mmdrender.skeleton import IDENTITY_QUAT, quat_multiply, quat_power

# (MaterialState field a multiply entry scales, field an add entry adds to, MaterialMorph field)
_MATERIAL_FIELDS = (
    ("diffuse", "diffuse", "diffuse"),
    ("specular", "specular", "specular"),
    ("specular_power", "specular_power", "specular_power"),
    ("ambient", "ambient", "ambient"),
    ("edge_colour", "edge_colour", "edge_colour"),
    ("edge_size", "edge_size", "edge_size"),
    ("texture_multiply", "texture_add", "texture_tint"),
    ("sphere_multiply", "sphere_add", "sphere_tint"),
    ("toon_multiply", "toon_add", "toon_tint"),
)


@dataclass(frozen=True)
class MorphResult:
    """What a set of morph weights changes. V vertices, B bones, N morphs.

    weights: (N,) float64 effective weights (groups expanded; group and skipped
    morphs hold 0). Offsets are None where no active morph of that kind exists,
    so callers can skip the work: vertex_offsets (V, 3) float32, uv_offsets
    (V, 2) float32, extra_uv_offsets (V, K, 4) float32, bone_translations
    (B, 3) float64, bone_rotations (B, 4) float64 xyzw. materials: after
    material morphs (the ``rest`` state itself when none is active).
    """

    weights: np.ndarray
    vertex_offsets: np.ndarray | None
    uv_offsets: np.ndarray | None
    extra_uv_offsets: np.ndarray | None
    bone_translations: np.ndarray | None
    bone_rotations: np.ndarray | None
    materials: MaterialState


def expand_groups(morphs: Sequence[Morph], weights: np.ndarray) -> np.ndarray:
    """(N,) weights -> (N,) float64 effective weights with group morphs expanded.

    A group's weight reaches its members multiplied by each member's weight, and
    through nested groups by the product along the path. A group reached again
    on its own path is a loop: that edge is cut with a warning. Groups themselves
    end at 0, so nothing applies them twice.
    """
    weights = np.asarray(weights, dtype=np.float64)
    effective = np.zeros(len(morphs), dtype=np.float64)

    def visit(index: int, weight: float, path: frozenset[int]) -> None:
        data = morphs[index].data
        if not isinstance(data, GroupMorph):
            effective[index] += weight
            return
        if index in path:
            warnings.warn(f"group morph {morphs[index].name!r} contains itself; "
                          "the loop is cut", stacklevel=4)
            return
        for member, ratio in zip(data.morphs.tolist(), data.weights.tolist(), strict=True):
            if ratio:
                visit(member, weight * ratio, path | {index})

    for index in np.flatnonzero(weights).tolist():
        visit(index, float(weights[index]), frozenset())
    return effective


def _active(model: Model, weights: np.ndarray, kind: type) -> list[tuple[object, float]]:
    """(data, weight) of every morph of ``kind`` with a non-zero effective weight."""
    return [(model.morphs[i].data, float(weights[i])) for i in np.flatnonzero(weights).tolist()
            if isinstance(model.morphs[i].data, kind)]


def alone(model: Model, index: int) -> np.ndarray:
    """(N,) effective weights of morph ``index`` at weight 1 and nothing else, groups expanded."""
    weights = np.zeros(len(model.morphs))
    weights[index] = 1.0
    return expand_groups(model.morphs, weights)


def offsets_of(model: Model, index: int) -> np.ndarray | None:
    """(V, 3) float64 position offsets of morph ``index`` alone at weight 1.

    None when it moves no vertex, or when an offset is not finite (a corrupt
    file: near 3e38 it overflows float32 maths, so it cannot be measured).
    """
    offsets = vertex_offsets(model, alone(model, index))
    if offsets is None:
        return None
    offsets = offsets.astype(np.float64)
    return offsets if np.isfinite(offsets).all() else None


def vertex_offsets(model: Model, weights: np.ndarray) -> np.ndarray | None:
    """Summed position offsets: (V, 3) float32, or None when no vertex morph is active."""
    active = _active(model, weights, VertexMorph)
    if not active:
        return None
    offsets = np.zeros((len(model.vertices), 3), dtype=np.float32)
    np.add.at(offsets, np.concatenate([d.indices for d, _ in active]),
              np.concatenate([d.offsets * np.float32(w) for d, w in active]))
    return offsets


def uv_offsets(model: Model, weights: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """UV offsets: channel 0 as (V, 2) float32, channels 1-4 as (V, K, 4) float32.

    Either is None when no morph of its channels is active.
    """
    active = _active(model, weights, UVMorph)
    main = [(d, w) for d, w in active if d.channel == 0]
    extra = [(d, w) for d, w in active if 0 < d.channel <= model.vertices.extra_uvs.shape[1]]
    uvs = extra_uvs = None
    if main:
        uvs = np.zeros((len(model.vertices), 2), dtype=np.float32)
        np.add.at(uvs, np.concatenate([d.indices for d, _ in main]),
                  np.concatenate([d.offsets[:, :2] * np.float32(w) for d, w in main]))
    if extra:
        extra_uvs = np.zeros(model.vertices.extra_uvs.shape, dtype=np.float32)
        rows = np.concatenate([d.indices for d, _ in extra])
        channels = np.concatenate([np.full(len(d.indices), d.channel - 1) for d, _ in extra])
        np.add.at(extra_uvs, (rows, channels),
                  np.concatenate([d.offsets * np.float32(w) for d, w in extra]))
    return uvs, extra_uvs


def bone_offsets(model: Model, weights: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Bone-morph translations (B, 3) and rotations (B, 4) xyzw, float64, or (None, None).

    Rotations compose per entry in morph order (entries are few, so a loop over
    them is cheap and keeps repeated bones right).
    """
    active = _active(model, weights, BoneMorph)
    if not active:
        return None, None
    translations = np.zeros((len(model.bones), 3), dtype=np.float64)
    rotations = np.tile(IDENTITY_QUAT, (len(model.bones), 1))
    for data, weight in active:
        np.add.at(translations, data.bones, data.translations * weight)
        partial = quat_power(data.rotations, weight)
        for bone, rotation in zip(data.bones.tolist(), partial, strict=True):
            rotations[bone] = quat_multiply(rotations[bone], rotation)
    return translations, rotations


def material_state(model: Model, weights: np.ndarray, rest: MaterialState) -> MaterialState:
    """Materials after material morphs: all multiply entries, then all add entries."""
    active = _active(model, weights, MaterialMorph)
    if not active:
        return rest
    count = len(model.materials)
    materials = np.concatenate([d.materials for d, _ in active])
    additive = np.concatenate([d.additive for d, _ in active])
    entry_weights = np.concatenate([np.full(len(d.materials), w) for d, w in active])
    # Expand material -1 to every material: (target, entry) pairs.
    one = np.flatnonzero(materials >= 0)
    every = np.flatnonzero(materials < 0)
    targets = np.concatenate([materials[one], np.tile(np.arange(count), len(every))])
    entries = np.concatenate([one, np.repeat(every, count)])
    multiply = ~additive[entries]
    state = {name: np.array(getattr(rest, name), dtype=np.float64)
             for name in MaterialState.__dataclass_fields__}
    for mul_field, add_field, morph_field in _MATERIAL_FIELDS:
        values = np.concatenate([getattr(d, morph_field) for d, _ in active])[entries]
        w = entry_weights[entries].reshape(-1, *[1] * (values.ndim - 1))
        np.multiply.at(state[mul_field], targets[multiply],
                       1.0 + (values[multiply] - 1.0) * w[multiply])
        np.add.at(state[add_field], targets[~multiply], values[~multiply] * w[~multiply])
    return MaterialState(**{name: value.astype(np.float32) for name, value in state.items()})


def apply_morphs(model: Model, weights: np.ndarray,
                 rest_materials: MaterialState | None = None) -> MorphResult:
    """Everything ``weights`` (N,) changes, as a :class:`MorphResult`.

    ``rest_materials`` lets a caller that poses a model many times build
    ``MaterialState.rest(model)`` once.
    """
    effective = expand_groups(model.morphs, weights)
    for index in np.flatnonzero(effective).tolist():
        morph = model.morphs[index]
        if isinstance(morph.data, UnsupportedMorph):
            warnings.warn(f"morph {morph.name!r} is skipped: {morph.data.reason}", stacklevel=2)
            effective[index] = 0.0
    uvs, extra_uvs = uv_offsets(model, effective)
    translations, rotations = bone_offsets(model, effective)
    rest = MaterialState.rest(model) if rest_materials is None else rest_materials
    return MorphResult(
        weights=effective, vertex_offsets=vertex_offsets(model, effective), uv_offsets=uvs,
        extra_uv_offsets=extra_uvs, bone_translations=translations, bone_rotations=rotations,
        materials=material_state(model, effective, rest))


@dataclass(frozen=True)
class MorphHalf:
    """What one morph changes on one side of the face, at weight 1.

    Offsets are the morph's own (groups expanded) times a per-vertex side weight
    (0 on the other half, 1 on this one, a narrow ramp across the centre line);
    bone entries are kept only for bones on this side. None where the morph has
    nothing of that kind. vertex_offsets (V, 3) float32, uv_offsets (V, 2)
    float32, bone_translations (B, 3) float64, bone_rotations (B, 4) float64.
    A material morph cannot be cut this way (it changes whole materials); its
    material changes are not part of a half.
    """

    vertex_offsets: np.ndarray | None
    uv_offsets: np.ndarray | None
    bone_translations: np.ndarray | None
    bone_rotations: np.ndarray | None


def half_of(model: Model, index: int, vertex_side: np.ndarray, bone_side: np.ndarray
            ) -> MorphHalf:
    """The :class:`MorphHalf` of morph ``index``: ``vertex_side`` (V,) and ``bone_side`` (B,)
    weights in [0, 1] say how much of each vertex's and bone's change to keep."""
    effective = alone(model, index)
    offsets = vertex_offsets(model, effective)
    uvs, _ = uv_offsets(model, effective)
    translations, rotations = bone_offsets(model, effective)
    side = np.asarray(vertex_side, dtype=np.float32)[:, None]
    keep = np.asarray(bone_side, dtype=np.float64)
    if rotations is not None:
        rotations = quat_power(rotations, keep)  # a bone off this side turns by nothing
    return MorphHalf(
        None if offsets is None else offsets * side,
        None if uvs is None else uvs * side,
        None if translations is None else translations * keep[:, None],
        rotations)


def with_halves(changes: MorphResult, halves) -> MorphResult:
    """``changes`` plus ``halves``: (MorphHalf, weight) pairs added on top."""
    vertex, uv = changes.vertex_offsets, changes.uv_offsets
    translations, rotations = changes.bone_translations, changes.bone_rotations
    for half, weight in halves:
        if half.vertex_offsets is not None:
            scaled = half.vertex_offsets * np.float32(weight)
            vertex = scaled if vertex is None else vertex + scaled
        if half.uv_offsets is not None:
            scaled = half.uv_offsets * np.float32(weight)
            uv = scaled if uv is None else uv + scaled
        if half.bone_translations is not None:
            scaled = half.bone_translations * weight
            translations = scaled if translations is None else translations + scaled
        if half.bone_rotations is not None:
            partial = quat_power(half.bone_rotations, weight)
            rotations = partial if rotations is None else quat_multiply(rotations, partial)
    return MorphResult(changes.weights, vertex, uv, changes.extra_uv_offsets, translations,
                       rotations, changes.materials)
