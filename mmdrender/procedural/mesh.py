"""Mesh and skinning building blocks of the procedural sample characters.

Everything is in MMD's file frame: left-handed, y up, the character faces -z
and its own left is +x. A triangle (a, b, c) faces the way of
``cross(b - a, c - a)``, as in real PMX files.

The building block is :class:`Part`: a triangle mesh with per-vertex skinning
(bone *names*, resolved when the model is assembled) and named shape offsets
that become vertex or UV morphs. Shapes are numpy arrays throughout; the only
Python loops run over parts, strands or control points, never over vertices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Deform types, numbered as in PMX.
BDEF1, BDEF2, BDEF4, SDEF = 0, 1, 2, 3


@dataclass
class Skin:
    """Per-vertex skinning, N vertices.

    bones: (N, 4) bone names (object array); weights: (N, 4) float;
    kind: (N,) deform type; sdef: (N, 3, 3) rows C, R0, R1 (SDEF rows only).
    """

    bones: np.ndarray
    weights: np.ndarray
    kind: np.ndarray
    sdef: np.ndarray

    @staticmethod
    def empty(n: int) -> Skin:
        return Skin(
            np.full((n, 4), "", dtype=object),
            np.zeros((n, 4)),
            np.zeros(n, dtype=np.int64),
            np.zeros((n, 3, 3)),
        )


def skin_single(n: int, bone: str) -> Skin:
    skin = Skin.empty(n)
    skin.bones[:, 0] = bone
    skin.weights[:, 0] = 1.0
    return skin


def skin_blend(t: np.ndarray, first: str, second: str) -> Skin:
    """BDEF2 from ``first`` (t = 0) to ``second`` (t = 1); BDEF1 at the ends."""
    t = np.clip(t, 0.0, 1.0)
    skin = Skin.empty(len(t))
    skin.bones[:, 0] = np.where(t >= 1.0, second, first)
    skin.bones[:, 1] = second
    skin.weights[:, 0] = np.where(t >= 1.0, 1.0, 1.0 - t)
    skin.weights[:, 1] = np.where(t >= 1.0, 0.0, t)
    skin.kind = np.where((t > 0.0) & (t < 1.0), BDEF2, BDEF1)
    skin.bones[skin.kind == BDEF1, 1] = ""
    return skin


def skin_chain(u: np.ndarray, bones: tuple[str, str, str, str], stops) -> Skin:
    """BDEF4 over a four-bone chain: soft hat weights around each bone's ``stops``."""
    stops = np.asarray(stops, dtype=float)
    spacing = np.diff(stops).mean()
    distance = np.abs(u[:, None] - stops[None, :]) / (1.3 * spacing)
    weights = np.clip(1.0 - distance, 0.0, None) ** 2
    weights /= weights.sum(axis=1, keepdims=True)
    skin = Skin.empty(len(u))
    skin.bones[:] = np.array(bones, dtype=object)[None, :]
    skin.weights = weights
    skin.kind[:] = BDEF4
    return skin


def skin_sdef(t: np.ndarray, first: str, second: str, centre, axis) -> Skin:
    """SDEF from ``first`` to ``second`` where 0 < t < 1, rotating about ``centre``.

    R0 and R1 sit a little way either side of C along the bone ``axis``.
    """
    skin = skin_blend(t, first, second)
    blended = skin.kind == BDEF2
    skin.kind[blended] = SDEF
    centre = np.asarray(centre, dtype=float)
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    skin.sdef[blended] = np.stack([centre, centre - 0.1 * axis, centre + 0.1 * axis])
    return skin


def concat_skins(skins: list[Skin]) -> Skin:
    return Skin(
        np.concatenate([s.bones for s in skins]),
        np.concatenate([s.weights for s in skins]),
        np.concatenate([s.kind for s in skins]),
        np.concatenate([s.sdef for s in skins]),
    )


# --------------------------------------------------------------------------- meshes


@dataclass
class Part:
    """One piece of a character drawn with one material.

    positions, normals: (N, 3). uvs: (N, 2), v down as in MMD. faces: (F, 3).
    shapes: vertex-morph key -> (N, 3) offsets. uv_shapes: key -> (N, 4)
    offsets of the main UV. extra_uvs: (N, K, 4) or None (filled in later).
    """

    name: str
    material: str
    positions: np.ndarray
    normals: np.ndarray
    uvs: np.ndarray
    faces: np.ndarray
    skin: Skin
    shapes: dict[str, np.ndarray] = field(default_factory=dict)
    uv_shapes: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.positions)


def grid_faces(rows: int, cols: int) -> np.ndarray:
    """Two triangles per cell of a rows x cols vertex grid (row-major)."""
    r, c = np.meshgrid(np.arange(rows - 1), np.arange(cols - 1), indexing="ij")
    a = r * cols + c
    b = a + 1
    d = a + cols
    e = d + 1
    tris = np.stack([np.stack([a, b, e], -1), np.stack([a, e, d], -1)], axis=2)
    return tris.reshape(-1, 3)


def face_normals(positions: np.ndarray, faces: np.ndarray) -> np.ndarray:
    p = positions[faces]
    return np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])


def vertex_normals(positions: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals, shared by vertices at the same spot (seams, poles)."""
    accum = np.zeros_like(positions)
    fn = face_normals(positions, faces)
    for k in range(3):
        np.add.at(accum, faces[:, k], fn)
    _, spot = np.unique(np.round(positions, 5), axis=0, return_inverse=True)
    spot = spot.reshape(-1)
    welded = np.zeros((spot.max() + 1, 3))
    np.add.at(welded, spot, accum)
    return normalize(welded[spot], fallback=(0.0, 1.0, 0.0))


def normalize(v: np.ndarray, fallback=(0.0, 0.0, -1.0)) -> np.ndarray:
    length = np.linalg.norm(v, axis=-1, keepdims=True)
    safe = np.where(length > 1e-12, length, 1.0)
    return np.where(length > 1e-12, v / safe, np.asarray(fallback, dtype=float))


def orient(positions: np.ndarray, faces: np.ndarray, outward: np.ndarray) -> np.ndarray:
    """Flip the whole mesh's winding if its faces mostly point against ``outward``.

    ``outward`` is (3,) a direction, or (F, 3) one per face.
    """
    fn = face_normals(positions, faces)
    if np.sum(fn * outward) < 0:
        return faces[:, ::-1].copy()
    return faces


def drop_degenerate(positions: np.ndarray, faces: np.ndarray) -> np.ndarray:
    area = np.linalg.norm(face_normals(positions, faces), axis=1)
    return faces[area > 1e-10]


def surface_part(name, material, grid, uvs, skin, outward_from=None, outward_dir=None) -> Part:
    """A part from an (R, C, 3) position grid: faces, winding and normals."""
    rows, cols = grid.shape[:2]
    positions = grid.reshape(-1, 3)
    faces = grid_faces(rows, cols)
    faces = drop_degenerate(positions, faces)
    centres = positions[faces].mean(axis=1)
    if outward_dir is not None:
        outward = np.asarray(outward_dir, dtype=float)
    else:
        outward = centres - np.asarray(outward_from, dtype=float)
    faces = orient(positions, faces, outward)
    normals = vertex_normals(positions, faces)
    return Part(name, material, positions, normals, uvs.reshape(-1, 2), faces, skin)


def ellipsoid_grid(centre, radii, cols: int = 16, rows: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(rows+1, cols+1, 3) points of an ellipsoid and their (u, v) in [0, 1]."""
    v = np.linspace(0.0, 1.0, rows + 1)
    u = np.linspace(0.0, 1.0, cols + 1)
    vv, uu = np.meshgrid(v, u, indexing="ij")
    phi = np.pi * vv
    theta = 2 * np.pi * uu
    unit = np.stack([np.sin(phi) * np.sin(theta), np.cos(phi), -np.sin(phi) * np.cos(theta)], -1)
    return np.asarray(centre) + unit * np.asarray(radii), np.stack([uu, vv], -1)


def ellipsoid(name, material, centre, radii, skin_bone, cols=16, rows=10, uv_box=(0, 0, 1, 1)):
    grid, uv = ellipsoid_grid(centre, radii, cols, rows)
    uv = _uv_into(uv, uv_box)
    n = grid.shape[0] * grid.shape[1]
    return surface_part(name, material, grid, uv, skin_single(n, skin_bone), outward_from=centre)


def _uv_into(uv: np.ndarray, box) -> np.ndarray:
    u0, v0, u1, v1 = box
    return np.stack([u0 + uv[..., 0] * (u1 - u0), v0 + uv[..., 1] * (v1 - v0)], -1)


def bezier(points, u: np.ndarray) -> np.ndarray:
    """Cubic Bezier through four control points at parameters ``u``: (len(u), 3)."""
    p = np.asarray(points, dtype=float)
    u = u[:, None]
    w = [(1 - u) ** 3, 3 * u * (1 - u) ** 2, 3 * u**2 * (1 - u), u**3]
    return sum(wk * pk for wk, pk in zip(w, p, strict=True))


def sweep_frames(centres: np.ndarray, hint) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tangent, normal and binormal along a curve, the normal kept near ``hint``."""
    tangent = normalize(np.gradient(centres, axis=0))
    hint = np.broadcast_to(np.asarray(hint, dtype=float), centres.shape)
    normal = normalize(np.cross(np.cross(tangent, hint), tangent))
    binormal = np.cross(tangent, normal)
    return tangent, normal, binormal


def tube_grid(centres, radius_n, radius_b, hint, around: int = 12):
    """(L, around+1, 3) ring points around a centre line; ends close if radii are 0."""
    _, normal, binormal = sweep_frames(centres, hint)
    phi = np.linspace(0.0, 2 * np.pi, around + 1)
    ring = (
        np.cos(phi)[None, :, None] * (radius_n[:, None, None] * normal[:, None, :])
        + np.sin(phi)[None, :, None] * (radius_b[:, None, None] * binormal[:, None, :])
    )
    grid = centres[:, None, :] + ring
    length = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(centres, axis=0), axis=1))]
    uu, vv = np.meshgrid(phi / (2 * np.pi), length / length[-1], indexing="xy")
    return grid, np.stack([uu, vv], -1)


def tube_part(name, material, centres, grid, uv, skin) -> Part:
    """A part from a :func:`tube_grid`, facing away from its centre line."""
    positions = grid.reshape(-1, 3)
    faces = drop_degenerate(positions, grid_faces(*grid.shape[:2]))
    axis = np.repeat(centres[:, None, :], grid.shape[1], axis=1).reshape(-1, 3)
    faces = orient(positions, faces, positions[faces].mean(1) - axis[faces].mean(1))
    return Part(name, material, positions, vertex_normals(positions, faces), uv.reshape(-1, 2),
                faces, skin)


def tube(name, material, centres, radius_n, radius_b, hint, skin, around=12, uv_box=(0, 0, 1, 1)):
    grid, uv = tube_grid(centres, radius_n, radius_b, hint, around)
    return tube_part(name, material, centres, grid, _uv_into(uv, uv_box), skin)


def smoothstep(edge0, edge1, x):
    t = np.clip((np.asarray(x, dtype=float) - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)
