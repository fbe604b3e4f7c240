"""Which triangles can reach the image, over every pose a run can draw.

A head framing shows a third to two thirds of a modern model's triangles; the
rest (long hair, the body, the legs) are transformed, set up and clipped for
nothing in every draw. Drawing the model with only the reachable triangles
(:meth:`~mmdrender.model.Model.with_faces`) gives the same pixels, byte for
byte: a triangle that stays outside the view volume makes no fragment, and the
vertices (so the depth range) are untouched.

The bound is conservative. Each vertex can move at most

- its morph offsets: the sum of ``|offset|`` over every vertex morph, each at
  the largest weight a pose (and the group morphs holding it) can give it;
- then, walking from its bone up to the root, at each bone the run may turn:
  per coordinate, what a turn by the largest angle about its axis can move a
  point at that offset from the pivot (about x, y moves by at most
  ``|dy|(1 - cos) + |dz| sin`` and x not at all; a turn about an unknown axis
  moves every coordinate by at most the angle times the distance), what moved
  so far carried along, plus any translation a bone morph may give the bone;

and a blend of bones moves it at most as far as its farthest-moving bone. An
append (付与) bone turns by its ratio of what its source bone turns. A
triangle is kept when the box around its three vertices, grown by their
largest bound, meets the image (grown by a small margin).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from mmdrender.camera import Camera
from mmdrender.model import BoneMorph, GroupMorph, Model, VertexMorph
from mmdrender.skeleton import deform_order

MARGIN_PIXELS = 2.0  # grown around the image: rounding and anti-aliasing stay inside
DIRECT_WEIGHT = 2.0  # the most a pose puts on one morph (two parameters on one morph)


def morph_weights(model: Model) -> np.ndarray:
    """(N,) the largest weight each morph can reach: directly, and through group morphs."""
    count = len(model.morphs)
    reach = np.full(count, DIRECT_WEIGHT)
    for _ in range(8):  # groups of groups: a few rounds settle any real nesting
        grown = np.full(count, DIRECT_WEIGHT)
        for g, morph in enumerate(model.morphs):
            if isinstance(morph.data, GroupMorph):
                members = np.asarray(morph.data.morphs, np.int64)
                ok = (members >= 0) & (members < count) & (members != g)
                np.add.at(grown, members[ok],
                          np.abs(np.asarray(morph.data.weights, np.float64)[ok]) * reach[g])
        if np.array_equal(grown, reach):
            break
        reach = grown
    return reach


Turns = Mapping[int, Sequence[tuple[str | None, float]]]


def movement_bounds(model: Model, turns: Turns) -> np.ndarray:
    """(V, 3) how far each vertex can move from rest along x, y and z, model units.

    ``turns``: bone index -> the turns a run's poses can give that bone, in the
    order they apply to a point (the innermost first: the bound depends on it):
    (axis, largest angle in radians), axis "x", "y" or "z" of the project
    frame, or None for a turn about any axis. Bone morphs and appended (付与)
    turns act inside them.
    """
    vertices = model.vertices
    positions = vertices.positions.astype(np.float64)
    weights = morph_weights(model)
    morphed = np.zeros(len(positions))
    moving: dict[int, list] = {int(b): list(ts) for b, ts in turns.items() if ts}
    shift = np.zeros(len(model.bones))
    for m, morph in enumerate(model.morphs):
        if isinstance(morph.data, VertexMorph):
            np.add.at(morphed, morph.data.indices,
                      np.linalg.norm(morph.data.offsets, axis=1) * weights[m])
        elif isinstance(morph.data, BoneMorph):
            rotations = np.asarray(morph.data.rotations, np.float64)
            half = np.arccos(np.clip(np.abs(rotations[:, 3]) / np.maximum(
                np.linalg.norm(rotations, axis=1), 1e-12), 0.0, 1.0))
            for bone, angle, move in zip(morph.data.bones, 2 * half * weights[m],
                                         np.linalg.norm(morph.data.translations, axis=1)
                                         * weights[m], strict=True):
                if 0 <= bone < len(shift):  # inside the pose's turns: first
                    moving.setdefault(int(bone), []).insert(0, (None, float(angle)))
                    shift[bone] += move
    if not np.isfinite(morphed).all():
        return np.full((len(positions), 3), np.inf)
    _appended(model, moving, shift)
    pivots = np.array([b.position for b in model.bones], np.float64).reshape(-1, 3)
    parents = np.array([b.parent for b in model.bones], np.int64)
    best = np.repeat(morphed[:, None], 3, axis=1)  # a vertex no bone carries: its morphs
    indices, slot_weights = vertices.bone_indices, vertices.bone_weights
    for slot in range(indices.shape[1]):
        used = (slot_weights[:, slot] > 0) & (indices[:, slot] >= 0)
        for bone in np.unique(indices[used, slot]):
            rows = np.flatnonzero(used & (indices[:, slot] == bone))
            spread = np.repeat(morphed[rows, None], 3, axis=1)
            b, seen = int(bone), 0
            while 0 <= b < len(parents) and seen <= len(parents):  # up to the root
                offset = np.abs(positions[rows] - pivots[b])
                for axis, angle in moving.get(b, ()):
                    spread = _turned(spread, offset, axis, angle)
                spread += shift[b]
                b, seen = int(parents[b]), seen + 1
            best[rows] = np.maximum(best[rows], spread)
    return best


def _appended(model: Model, moving: dict[int, list], shift: np.ndarray) -> None:
    """Give each append (付与) bone the turns and moves of the bone it copies, scaled by its
    ratio, in deform order (so chains of appends add up): a shoulder-cancel bone turns
    when the shoulder does, whether or not the shoulder is its ancestor."""
    for b in deform_order(model.bones):
        bone = model.bones[b]
        source = bone.append_parent
        if source is None or not 0 <= source < len(model.bones) or source == b:
            continue
        ratio = float(bone.append_ratio)
        if bone.appends_rotation and moving.get(source):  # q_own * q_source: inside
            copied = moving[source]
            if ratio != 1.0 or len(copied) > 1:  # a part, or the inverse, of a turn about
                # tilted or reversed axes: bound it as a turn about any axis
                copied = [(None, abs(ratio) * sum(angle for _, angle in copied))]
            moving[int(b)] = list(copied) + moving.get(int(b), [])
        if bone.appends_translation:
            shift[b] += shift[source] * ratio


_AXIS = {"x": 0, "y": 1, "z": 2}


def _turned(spread: np.ndarray, offset: np.ndarray, axis: str | None,
            angle: float) -> np.ndarray:
    """The bound after a turn by up to ``angle`` about a pivot ``offset`` away (abs, (n, 3)).

    About a known axis the other two coordinates mix: each moves by at most
    ``|own|(1 - cos) + |other| sin`` of the offset, plus what had moved so far
    (rotated, so its other component leaks in by ``sin``). About any axis every
    coordinate moves by at most the angle times the distance (offset and spread).
    """
    angle = abs(angle)
    if axis is None:
        reach = angle * (np.linalg.norm(offset, axis=1) + np.linalg.norm(spread, axis=1))
        return spread + reach[:, None]
    c, s = np.cos(angle), np.sin(min(angle, np.pi / 2))  # past 90° sin's bound stays 1
    k = _AXIS[axis]
    i, j = [a for a in range(3) if a != k]
    out = spread.copy()
    out[:, i] = offset[:, i] * (1 - c) + offset[:, j] * s + spread[:, i] + spread[:, j] * s
    out[:, j] = offset[:, j] * (1 - c) + offset[:, i] * s + spread[:, j] + spread[:, i] * s
    return out


def reachable_faces(model: Model, camera: Camera, turns: Turns,
                    margin_pixels: float = MARGIN_PIXELS) -> np.ndarray:
    """(F,) bool: the triangles that can fall inside ``camera``'s image in some pose."""
    if not len(model.faces):
        return np.zeros(0, bool)
    bound = movement_bounds(model, turns)[:, :2]
    xy = model.vertices.positions[:, :2].astype(np.float64)
    corners = xy[model.faces]  # (F, 3, 2)
    grow = bound[model.faces].max(axis=1)  # (F, 2)
    low = corners.min(axis=1) - grow
    high = corners.max(axis=1) + grow
    reach = camera.half_height + margin_pixels * camera.pixel_size
    centre = np.array([camera.centre_x, camera.centre_y])
    inside = (high >= centre - reach) & (low <= centre + reach)
    return inside.all(axis=1)
