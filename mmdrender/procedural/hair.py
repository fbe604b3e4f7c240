"""Hair of the sample characters: cap, bangs, locks, tails, spikes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmdrender.procedural.face import HeadShape, inflate
from mmdrender.procedural.mesh import (
    Part,
    _uv_into,
    bezier,
    concat_skins,
    drop_degenerate,
    grid_faces,
    normalize,
    orient,
    skin_blend,
    skin_chain,
    skin_single,
    smoothstep,
    surface_part,
    tube,
    vertex_normals,
)


def hair_cap(head: HeadShape, hairline, scale, cols: int = 48, rows: int = 16) -> Part:
    """The hair shell over the skull, from ``hairline(theta)`` (a head height t)
    up to the crown, inflated by ``scale(theta, t)`` about the cranium centre."""
    theta = np.linspace(-np.pi, np.pi, cols + 1)
    q = np.linspace(0.0, 1.0, rows + 1)[:, None]
    t0 = hairline(theta)
    t = t0 + (1.0 - t0) * (1.0 - (1.0 - q) ** 1.6)
    grid = inflate(head, head.point(theta, t), scale(theta, t))
    uv = np.stack(np.broadcast_arrays((theta + np.pi) / (2 * np.pi), 0.05 + 0.9 * (1.0 - q)), -1)
    part = surface_part("hair cap", "hair", grid, uv, skin_single(grid[..., 0].size, "頭"),
                        outward_from=head.centre)
    return part


@dataclass(frozen=True)
class Strands:
    """Bang strands hanging over the forehead, one entry per strand (arrays).

    theta: root azimuth; sweep: extra azimuth at the tip; tip: head height t
    of the tip; width: half-width (radians) at the root; lift: extra inflation.
    """

    theta: np.ndarray
    sweep: np.ndarray
    tip: np.ndarray
    width: np.ndarray
    lift: np.ndarray
    root: float = 0.97
    scale: float = 1.085
    blunt: float = 0.0  # 0 = pointed tips, 1 = square-cut


def bangs(head: HeadShape, strands: Strands, length: int = 12, across: int = 5) -> Part:
    """Front hair: curved tapering ribbons following the forehead."""
    u = np.linspace(0.0, 1.0, length + 1)[None, :, None]
    w = np.linspace(-1.0, 1.0, across)[None, None, :]
    th0 = strands.theta[:, None, None]
    taper = (1.0 - u) ** 0.8 * (1 - strands.blunt) + strands.blunt * (1.0 - 0.3 * u)
    theta = th0 + strands.sweep[:, None, None] * u**1.5 + w * strands.width[:, None, None] * taper
    t = strands.root + (strands.tip[:, None, None] - strands.root) * u
    k = strands.scale + strands.lift[:, None, None] + 0.025 * np.sin(np.pi * u) + 0.012 * (1 - w**2)
    grid = inflate(head, head.point(theta, t), k)  # (S, L, W, 3)
    count = len(strands.theta)
    uu = (np.arange(count)[:, None, None] % 8) / 8 + (w + 1) / 16
    uv = np.stack(np.broadcast_arrays(uu, 0.1 + 0.85 * u), -1)
    per = (length + 1) * across
    faces = np.concatenate([grid_faces(length + 1, across) + i * per for i in range(count)])
    positions = grid.reshape(-1, 3)
    outward = positions[faces].mean(axis=1) - head.centre
    faces = orient(positions, faces, outward)
    skin = skin_blend(np.broadcast_to(0.75 * u, grid.shape[:3]).reshape(-1), "頭", "前髪")
    return Part("bangs", "hair", positions, vertex_normals(positions, faces),
                uv.reshape(-1, 2), faces, skin)


def ribbon(name, material, centres, half_width, facing, skin, across: int = 4,
           uv_box=(0, 0, 1, 1)) -> Part:
    """A flat strip along ``centres`` whose face turns toward ``facing``."""
    tangent = normalize(np.gradient(centres, axis=0))
    side = normalize(np.cross(tangent, np.broadcast_to(facing, centres.shape)))
    w = np.linspace(-1.0, 1.0, across)[None, :, None]
    facing_n = normalize(np.broadcast_to(facing, centres.shape))
    bulge = 0.04 * (1 - w**2) * half_width[:, None, None] / max(half_width.max(), 1e-6)
    grid = centres[:, None, :] + w * half_width[:, None, None] * side[:, None, :]
    grid = grid - bulge * facing_n[:, None, :]
    v = np.linspace(0.0, 1.0, len(centres))[:, None]
    uv = _uv_into(np.stack(np.broadcast_arrays((w[0, :, 0] + 1) / 2, v), -1), uv_box)
    return surface_part(name, material, grid, uv, skin, outward_dir=np.asarray(facing))


def side_lock_curve(head: HeadShape, side: int, length: float, flare: float) -> np.ndarray:
    """Bezier control points (4, 3) of the lock on ``side`` (+1 left, -1 right)."""
    root = inflate(head, head.point(np.array(side * 1.35), np.array(0.74)), 1.04)
    start = root + np.array([side * 0.05, -0.6, -0.15])
    end = np.array([side * (1.5 + flare), head.chin_y + 0.9 - length, -0.35])
    bend = end + np.array([side * 0.15, 0.9, 0.0])
    return np.array([root, start, bend, end])


def side_locks(head: HeadShape, length: float, width: float, flare: float, side_bones) -> Part:
    """Locks framing the face in front of the ears, each a ribbon on a 4-bone chain."""
    u = np.linspace(0.0, 1.0, 16)
    parts = []
    for side in (1, -1):
        centres = bezier(side_lock_curve(head, side, length, flare), u)
        hw = width * (1 - u) ** 0.7 * (0.6 + 0.4 * np.sin(np.pi * np.clip(u + 0.3, 0, 1)))
        facing = normalize(np.array([side * 0.45, 0.0, -1.0]))
        skin = skin_chain(np.repeat(u, 4), ("頭", *side_bones[side]), (0.0, 0.33, 0.66, 1.0))
        parts.append(ribbon("side lock", "hair", centres, hw, facing, skin,
                            uv_box=(0.4 + 0.1 * side, 0.1, 0.5 + 0.1 * side, 0.95)))
    return merge_parts(parts, "side locks")


def merge_parts(parts: list[Part], name: str) -> Part:
    """One part from several with the same material (offsets the faces)."""
    starts = np.cumsum([0] + [len(p) for p in parts[:-1]])
    keys = sorted({k for p in parts for k in p.shapes})
    uv_keys = sorted({k for p in parts for k in p.uv_shapes})

    def stacked(attr, key, width):
        return np.concatenate([
            getattr(p, attr).get(key, np.zeros((len(p), width))) for p in parts
        ])

    return Part(
        name,
        parts[0].material,
        np.concatenate([p.positions for p in parts]),
        np.concatenate([p.normals for p in parts]),
        np.concatenate([p.uvs for p in parts]),
        np.concatenate([p.faces + s for p, s in zip(parts, starts, strict=True)]),
        concat_skins([p.skin for p in parts]),
        {k: stacked("shapes", k, 3) for k in keys},
        {k: stacked("uv_shapes", k, 4) for k in uv_keys},
    )


def hair_tube(name, points, radius, hint, bones, material="hair", around=12, length=28) -> Part:
    """A tail of hair along a Bezier curve, on a four-bone chain (BDEF4)."""
    u = np.linspace(0.0, 1.0, length)
    centres = bezier(points, u)
    r = radius(u)
    skin = skin_chain(np.repeat(u, around + 1), bones, (0.0, 0.3, 0.62, 1.0))
    return tube(name, material, centres, r, 0.8 * r, hint, skin, around, uv_box=(0, 0.05, 1, 0.95))


def back_sheet(head: HeadShape, top: float, bottom: float, spread: float, bones) -> Part:
    """Long hair hanging behind the back: a curved sheet with a jagged hem."""
    phi = np.linspace(-spread, spread, 29)
    q = np.linspace(0.0, 1.0, 22)[:, None]
    hem = bottom + 0.45 * np.abs(np.sin(6.5 * phi)) ** 0.7
    y = top + (hem - top) * q
    width = 1.45 + 0.55 * smoothstep(top, top - 3.5, y)
    depth = 1.45 + 0.1 * smoothstep(top, top - 3.0, y)
    x = width * np.sin(phi)
    z = 0.35 + depth * np.cos(phi) - 0.35 * q * (1 - q)
    grid = np.stack(np.broadcast_arrays(x, y, z), -1)
    uv = np.stack(np.broadcast_arrays((phi / spread + 1) / 2, 0.05 + 0.9 * q), -1)
    skin = skin_chain(np.broadcast_to(q, grid.shape[:2]).reshape(-1), ("頭", *bones),
                      (0.0, 0.35, 0.7, 1.0))
    return surface_part("back hair", "hair", grid, uv, skin,
                        outward_from=(0.0, head.chin_y, 0.35))


def cones(name, material, bases, tips, radii, skin_bone, around: int = 8,
          flatten=None) -> Part:
    """Vectorised cones (spikes, ears): (S, 3) bases and tips, (S,) radii."""
    axis = tips - bases
    hint = np.where(np.abs(normalize(axis)[:, 1:2]) > 0.9, [[0.0, 0.0, 1.0]], [[0.0, 1.0, 0.0]])
    e1 = normalize(np.cross(axis, hint))
    e2 = normalize(np.cross(axis, e1))
    if flatten is not None:
        e2 = e2 * flatten
    phi = np.linspace(0.0, 2 * np.pi, around + 1)
    h = np.array([0.0, 0.55, 1.0])[:, None]
    r = radii[:, None, None] * (1.0 - h) ** 0.8  # (S, 3, 1)
    ring = np.cos(phi)[None, None, :, None] * e1[:, None, None, :] \
        + np.sin(phi)[None, None, :, None] * e2[:, None, None, :]
    grid = bases[:, None, None, :] + h[None, :, :, None] * axis[:, None, None, :] \
        + r[..., None] * ring  # (S, 3, A+1, 3)
    count, rows, cols = grid.shape[:3]
    per = rows * cols
    faces = np.concatenate([grid_faces(rows, cols) + i * per for i in range(count)])
    positions = grid.reshape(-1, 3)
    faces = drop_degenerate(positions, faces)
    axis_at = (bases[:, None, None, :] + h[None, :, :, None] * axis[:, None, None, :])
    axis_at = np.broadcast_to(axis_at, grid.shape).reshape(-1, 3)
    outward = positions[faces].mean(axis=1) - axis_at[faces].mean(axis=1)
    faces = orient(positions, faces, outward)
    uv = np.stack(np.broadcast_arrays(phi / (2 * np.pi), h * 0.9 + 0.05), -1)
    uv = np.broadcast_to(uv, (count, rows, cols, 2)).reshape(-1, 2)
    return Part(name, material, positions, vertex_normals(positions, faces), uv, faces,
                skin_single(len(positions), skin_bone))


def ahoge(head: HeadShape, top: float, lean: float) -> Part:
    """The single rebellious strand on the crown, on its own bone."""
    u = np.linspace(0.0, 1.0, 14)
    points = [(0.0, top - 0.15, -0.3), (lean * 0.3, top + 0.9, -0.7),
              (lean * 0.9, top + 1.1, 0.1), (lean * 0.7, top + 0.55, 0.35)]
    centres = bezier(points, u)
    hw = 0.16 * (1 - u) ** 0.6
    skin = skin_blend(np.repeat(np.clip(u * 4, 0, 1), 4), "頭", "アホ毛")
    return ribbon("ahoge", "hair", centres, hw, np.array([0.0, 0.0, -1.0]), skin,
                  uv_box=(0.8, 0.05, 0.9, 0.5))
