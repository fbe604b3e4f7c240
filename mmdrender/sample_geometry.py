"""Geometry for the procedural sample characters (see :mod:`mmdrender.samples`).

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


# --------------------------------------------------------------------------- skinning


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


# --------------------------------------------------------------------------- the head


@dataclass(frozen=True)
class HeadShape:
    """A lofted anime head: horizontal cross-sections from the chin (t = 0) up
    to the crown (t = 1), widest at ``widest``, a V-shaped jaw below.

    Sections are superellipses of exponent ``squareness`` centred on x = 0:
    half-width a(t), front z_f(t) < 0, back z_b(t) > 0.
    """

    chin_y: float = 15.2
    height: float = 3.7
    half_width: float = 1.62
    front: float = 1.55
    back: float = 1.75
    widest: float = 0.42
    chin_back: float = 0.72  # chin z as a fraction of the forehead's
    squareness: float = 2.2
    jaw_round: float = 0.7  # lower is a rounder jaw, 1 a pointed one

    @property
    def top_y(self) -> float:
        return self.chin_y + self.height

    @property
    def centre(self) -> np.ndarray:
        """The cranium's centre, which hair is inflated about."""
        return np.array([0.0, self.chin_y + self.widest * self.height, 0.0])

    def t_of(self, y):
        return (np.asarray(y, dtype=float) - self.chin_y) / self.height

    def profile(self, t):
        """Half-width a, front z_f and back z_b at heights ``t`` (arrays)."""
        t = np.clip(np.asarray(t, dtype=float), 0.0, 1.0)
        tc = self.widest
        upper = np.sqrt(np.clip(1.0 - ((t - tc) / (1.0 - tc)) ** 2, 0.0, 1.0))
        u = np.clip(t / tc, 0.0, 1.0)
        jaw = np.sin(0.5 * np.pi * u)
        cheek = (1.0 - (1.0 - u) ** 1.8) ** self.jaw_round
        chin_z = -self.front * self.chin_back
        above = t >= tc
        a = self.half_width * np.where(above, upper, cheek)
        zf = np.where(
            above,
            -self.front * upper,
            -self.front * (self.chin_back + (1.0 - self.chin_back) * jaw**0.7),
        )
        zb = np.where(above, self.back * upper, chin_z + (self.back - chin_z) * jaw**0.5)
        return a, zf, zb

    def point(self, theta, t):
        """Surface points at azimuth ``theta`` (0 = front, +pi/2 = the character's left)."""
        a, zf, zb = self.profile(t)
        p = 2.0 / self.squareness
        s, c = np.sin(theta), np.cos(theta)
        x = a * np.sign(s) * np.abs(s) ** p
        zc, hd = 0.5 * (zf + zb), 0.5 * (zb - zf)
        z = zc - hd * np.sign(c) * np.abs(c) ** p
        y = self.chin_y + np.clip(t, 0.0, 1.0) * self.height
        return np.stack(np.broadcast_arrays(x, y, z), -1)

    def front_z(self, x, y):
        """z of the face (the front of the head) at (x, y)."""
        a, zf, zb = self.profile(self.t_of(y))
        q = self.squareness
        s = np.clip(np.abs(x) / np.maximum(a, 1e-6), 0.0, 1.0)
        return 0.5 * (zf + zb) - 0.5 * (zb - zf) * (1.0 - s**q) ** (1.0 / q)

    def lift(self, xy: np.ndarray, offset: float):
        """Points on the face at ``xy`` (..., 2), ``offset`` toward the viewer, and normals."""
        x, y = xy[..., 0], xy[..., 1]
        z = self.front_z(x, y) - offset
        h = 1e-3
        dzdx = (self.front_z(x + h, y) - self.front_z(x - h, y)) / (2 * h)
        dzdy = (self.front_z(x, y + h) - self.front_z(x, y - h)) / (2 * h)
        normal = normalize(np.stack([dzdx, dzdy, -np.ones_like(x)], -1))
        return np.stack([x, y, z], -1), normal

    def mesh_grid(self, cols: int = 48, rows: int = 40):
        theta = np.linspace(-np.pi, np.pi, cols + 1)
        t = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, rows + 1))
        tt, th = np.meshgrid(t, theta, indexing="ij")
        return self.point(th, tt)

    def face_uv(self, x, y):
        """The face texture's planar projection: (u, v) from (x, y)."""
        w = 1.1 * self.half_width
        return np.stack(np.broadcast_arrays((x + w) / (2 * w), (self.top_y - y) / self.height), -1)


def inflate(head: HeadShape, points: np.ndarray, scale) -> np.ndarray:
    """Push points away from the cranium centre by ``scale`` (broadcastable)."""
    c = head.centre
    return c + (points - c) * np.asarray(scale, dtype=float)[..., None]


def decal(name, material, head: HeadShape, xy_grid, offset, uvs, skin, open_xy=None) -> Part:
    """A patch lying on the face, ``offset`` in front of it, facing the viewer.

    Patches that rest collapsed (eyelids, the inner mouth) pass ``open_xy``, an
    opened layout of the same grid, so the winding can still be chosen.
    """
    positions, normals = head.lift(xy_grid, offset)
    rows, cols = xy_grid.shape[:2]
    faces = grid_faces(rows, cols)
    positions = positions.reshape(-1, 3)
    reference = positions if open_xy is None else head.lift(open_xy, offset)[0].reshape(-1, 3)
    faces = orient(reference, faces, np.array([0.0, 0.0, -1.0]))
    return Part(
        name, material, positions, normals.reshape(-1, 3), uvs.reshape(-1, 2), faces, skin
    )


# --------------------------------------------------------------------------- face features


@dataclass(frozen=True)
class EyeShape:
    """An eye opening: centre (±x, y), half-width and half-height, in model units."""

    x: float = 0.60
    y: float = 16.68
    w: float = 0.30
    h: float = 0.36
    iris: float = 0.80  # iris radius as a fraction of the opening

    def top(self, s):
        s = np.clip(s, -1.0, 1.0)
        return self.y + 0.1 * self.h + 0.9 * self.h * (1 - s**2) ** 0.35 + 0.08 * self.h * s

    def bottom(self, s):
        s = np.clip(s, -1.0, 1.0)
        return self.y + 0.1 * self.h - 1.1 * self.h * (1 - s**2) ** 0.5 + 0.08 * self.h * s

    def closed(self, s):
        """A gently drooping closed lid, like a sleeping eye."""
        s = np.clip(s, -1.0, 1.0)
        return self.y - 0.45 * self.h - 0.18 * self.h * (1 - s**2) + 0.05 * self.h * s

    def happy(self, s):
        """The arched line of a smiling closed eye."""
        s = np.clip(s, -1.0, 1.0)
        return self.y - 0.4 * self.h + 0.6 * self.h * (1 - s**2) ** 0.7


# z offsets of face decals toward the viewer, back to front
Z_SCLERA, Z_IRIS, Z_HIGHLIGHT, Z_LOWER_LASH = 0.010, 0.020, 0.030, 0.035
Z_LID, Z_LASH = 0.045, 0.055  # the lid covers the eye, the lash line lies on the lid
Z_BROW, Z_BLUSH, Z_INNER_MOUTH, Z_MOUTH_LINE = 0.012, 0.022, 0.020, 0.030


def _polar(n_rings: int, n_angles: int):
    rho = np.linspace(0.0, 1.0, n_rings + 1)
    alpha = np.linspace(0.0, 2 * np.pi, n_angles + 1)
    rr, aa = np.meshgrid(rho, alpha, indexing="ij")
    return rr * np.cos(aa), rr * np.sin(aa)


def eye_parts(head: HeadShape, eye: EyeShape, side: int, eye_bone: str, key: str) -> list[Part]:
    """Sclera, iris, highlights, eyelid and lashes of one eye.

    ``side`` is +1 for the character's left eye (+x), -1 for its right. Shape
    keys ``close_<key>`` and ``happy_<key>`` close the eye: the eyelid, which
    rests folded to zero area along the top of the opening, unrolls down over
    it and the upper lash line follows. The iris carries the UV shape ``star``.
    """
    cx = side * eye.x

    def at(s, y):
        return np.stack(np.broadcast_arrays(cx + side * s * eye.w, y), -1)

    parts = []
    # sclera: between the top and bottom curves
    s = np.linspace(-1.0, 1.0, 17)
    r = np.linspace(0.0, 1.0, 9)[:, None]
    xy = at(s, eye.bottom(s) + r * (eye.top(s) - eye.bottom(s)))
    uv = np.stack(np.broadcast_arrays((s + 1) / 2, 1.0 - r), -1)
    parts.append(decal("sclera", "sclera", head, xy, Z_SCLERA, uv,
                       skin_single(xy[..., 0].size, "頭")))

    # iris: an ellipse clipped to the opening; UVs keep the unclipped layout
    px, py = _polar(10, 32)
    ix, iy = cx, eye.y - 0.15 * eye.h
    rx, ry = eye.iris * eye.w, 1.05 * eye.iris * eye.h
    x, y = ix + rx * px, iy + ry * py
    s_clip = np.clip(side * (x - cx) / eye.w, -0.97, 0.97)
    y_clip = np.clip(y, eye.bottom(s_clip) + 0.004, eye.top(s_clip) - 0.004)
    xy = np.stack([cx + side * s_clip * eye.w, y_clip], -1)
    uv = np.stack([0.25 + 0.25 * px, 0.5 - 0.5 * py], -1)
    iris = decal("iris", "iris", head, xy, Z_IRIS, uv, skin_single(xy[..., 0].size, eye_bone))
    iris.uv_shapes["star"] = np.tile([0.5, 0.0, 0.0, 0.0], (len(iris), 1))
    parts.append(iris)

    # highlights: a big one up and to the viewer's left, a small one opposite
    hx, hy = _polar(4, 16)
    centres = [(ix - 0.38 * rx, iy + 0.42 * ry, 0.30 * rx, 0.24 * ry),
               (ix + 0.42 * rx, iy - 0.48 * ry, 0.14 * rx, 0.11 * ry)]
    grids = [np.stack([ccx + ax * hx, ccy + ay * hy], -1) for ccx, ccy, ax, ay in centres]
    xy = np.concatenate(grids, axis=0)
    uv = np.concatenate([np.stack([0.5 + 0.5 * hx, 0.5 - 0.5 * hy], -1)] * 2, axis=0)
    highlight = decal("highlight", "highlight", head, xy, Z_HIGHLIGHT, uv,
                      skin_single(xy[..., 0].size, eye_bone))
    highlight.faces = highlight.faces[_not_across(hx.shape, len(grids), highlight.faces)]
    parts.append(highlight)

    # eyelid: skin folded along the top of the opening at rest
    s = np.linspace(-1.12, 1.12, 19)
    r = np.linspace(0.0, 1.0, 7)[:, None]
    lid_top = eye.top(s) + 0.03
    lid_bottom = eye.bottom(s) - 0.05
    rest = at(s, np.broadcast_to(eye.top(s) + 0.01, (len(r), len(s))))
    shut = at(s, lid_top + r * (lid_bottom - lid_top))
    n = rest[..., 0].size
    lid = decal("eyelid", "face", head, rest, Z_LID, head.face_uv(shut[..., 0], shut[..., 1]),
                skin_single(n, "頭"), open_xy=shut)
    shut_positions = head.lift(shut, Z_LID)[0].reshape(-1, 3)
    lid.shapes[f"close_{key}"] = shut_positions - lid.positions
    lid.shapes[f"happy_{key}"] = shut_positions - lid.positions
    parts.append(lid)

    # upper lash line: thick toward the outer corner, flicking out past it
    s = np.linspace(-0.95, 1.22, 25)
    r = np.array([-0.3, 0.2, 0.7])[:, None]
    thick = (0.035 + 0.05 * smoothstep(-0.9, 0.6, s)) * (1 - 0.85 * smoothstep(1.0, 1.22, s))
    thick = thick * (0.4 + 0.6 * smoothstep(-0.95, -0.7, s))
    beyond = np.clip(s - 1.0, 0.0, None)

    def lash(curve, flick, centred):
        return at(s, curve(s) + flick * beyond * eye.h + (r - 0.2 * centred) * thick)

    rest = lash(eye.top, 1.3, 0.0)
    lash_part = decal("lash", "lash", head, rest, Z_LASH, np.zeros(rest.shape),
                      skin_single(rest[..., 0].size, "頭"))
    for shape, curve in (("close", eye.closed), ("happy", eye.happy)):
        target = head.lift(lash(curve, -0.8, 1.0), Z_LASH)[0].reshape(-1, 3)
        lash_part.shapes[f"{shape}_{key}"] = target - lash_part.positions
    parts.append(lash_part)

    # lower lash: a thin stroke under the outer half
    s = np.linspace(0.15, 1.0, 10)
    r = np.array([0.0, 1.0])[:, None]
    xy = at(s, eye.bottom(s) - r * 0.022 * (0.3 + 0.7 * smoothstep(0.15, 0.6, s)))
    parts.append(decal("lower lash", "lash", head, xy, Z_LOWER_LASH, np.zeros(xy.shape),
                       skin_single(xy[..., 0].size, "頭")))
    return parts


def _not_across(grid_shape, copies: int, faces: np.ndarray) -> np.ndarray:
    """Mask of faces that stay inside one of ``copies`` stacked grids."""
    rows, cols = grid_shape
    block = faces // cols // rows
    return (block.min(axis=1) == block.max(axis=1)) & (block.max(axis=1) < copies)


def brow_part(head: HeadShape, eye: EyeShape, side: int) -> Part:
    """An eyebrow over ``eye``; shapes ``brow_up``, ``brow_sad`` and ``brow_angry``."""
    s = np.linspace(-1.0, 1.0, 15)
    r = np.array([-0.5, 0.5])[:, None]
    x = side * eye.x + side * eye.w * (0.15 + 1.05 * s)
    base = eye.y + eye.h + 0.30 + 0.07 * (1 - s**2) - 0.02 * s
    thick = 0.055 * (1 - 0.6 * smoothstep(0.1, 1.0, s))

    def grid(dy):
        return np.stack(np.broadcast_arrays(x, base + dy + r * thick), -1)

    rest = grid(0.0)
    part = decal("eyebrow", "brow", head, rest, Z_BROW, np.zeros(rest.shape),
                 skin_single(rest[..., 0].size, "頭"))
    inner = (1 - s) / 2
    for key, dy in (("brow_up", 0.13 + 0 * s), ("brow_sad", 0.14 * inner - 0.04 * (1 - inner)),
                    ("brow_angry", -0.09 * inner + 0.05 * (1 - inner))):
        part.shapes[key] = head.lift(grid(dy), Z_BROW)[0].reshape(-1, 3) - part.positions
    return part


@dataclass(frozen=True)
class Mouth:
    y: float
    half_width: float = 0.15

    # vowel -> (width factor, depth, top rise, jaw drop)
    VOWELS = {
        "a": (1.00, 0.30, 0.01, 0.12),
        "i": (1.30, 0.07, 0.00, 0.02),
        "u": (0.50, 0.12, 0.04, 0.03),
        "o": (0.72, 0.25, 0.05, 0.09),
    }

    def jaw(self, x, y, drop: float):
        """How far the face at (x, y) moves down when the jaw drops by ``drop``."""
        return drop * smoothstep(self.y - 0.02, self.y - 0.4, y) * np.exp(-((x / 1.2) ** 2))

    def unjaw(self, x, y, drop: float):
        """The rest height of the face point that the dropped jaw brings to (x, y)."""
        y0 = np.array(y, dtype=float)
        for _ in range(6):
            y0 = y + self.jaw(x, y0, drop)
        return y0


def mouth_parts(head: HeadShape, mouth: Mouth) -> list[Part]:
    """Closed-mouth line and the inner mouth (zero area at rest); vowel shapes
    ``mouth_a/i/u/o`` open it and drop the jaw."""
    s = np.linspace(-1.0, 1.0, 13)
    r = np.linspace(0.0, 1.0, 7)[:, None]
    w = mouth.half_width
    rest = np.stack(np.broadcast_arrays(0.95 * w * s, np.full_like(r, mouth.y)), -1)
    uv = np.stack(np.broadcast_arrays((s + 1) / 2, r), -1)
    opened = {}
    for vowel, (wf, depth, rise, drop) in Mouth.VOWELS.items():
        top = mouth.y + rise * np.sqrt(1 - s**2)
        bottom = mouth.y - depth * (1 - s**2) ** 0.6
        xy = np.stack(np.broadcast_arrays(0.95 * w * wf * s, top + r * (bottom - top)), -1)
        opened[vowel] = (xy, drop)
    inner = decal("inner mouth", "mouth", head, rest, Z_INNER_MOUTH, uv,
                  skin_single(rest[..., 0].size, "頭"), open_xy=opened["a"][0])
    for vowel, (xy, drop) in opened.items():
        y0 = mouth.unjaw(xy[..., 0], xy[..., 1], drop)
        z = head.front_z(xy[..., 0], y0) - Z_INNER_MOUTH
        target = np.stack([xy[..., 0], xy[..., 1], z], -1).reshape(-1, 3)
        inner.shapes[f"mouth_{vowel}"] = target - inner.positions

    s = np.linspace(-1.0, 1.0, 13)
    r = np.array([-0.5, 0.5])[:, None]
    thick = 0.024 * (1 - 0.7 * np.abs(s) ** 3)

    def line(width):
        return np.stack(np.broadcast_arrays(w * width * s, mouth.y + 0.02 * s**2 + r * thick), -1)

    rest = line(1.0)
    lips = decal("mouth line", "lips", head, rest, Z_MOUTH_LINE, np.zeros(rest.shape),
                 skin_single(rest[..., 0].size, "頭"))
    for vowel, (wf, *_rest) in Mouth.VOWELS.items():
        target = head.lift(line(wf), Z_MOUTH_LINE)[0].reshape(-1, 3)
        lips.shapes[f"mouth_{vowel}"] = target - lips.positions
    return [inner, lips]


def jaw_shapes(head_part: Part, mouth: Mouth) -> None:
    """Add the jaw drop of each vowel to the head mesh's shapes."""
    p = head_part.positions
    front = smoothstep(0.6, -0.2, p[:, 2])
    for vowel, (*_unused, drop) in Mouth.VOWELS.items():
        offset = np.zeros_like(p)
        offset[:, 1] = -mouth.jaw(p[:, 0], p[:, 1], drop) * front
        head_part.shapes[f"mouth_{vowel}"] = offset


def cheek_parts(head: HeadShape, eye: EyeShape, material: str, below: float,
                radii=(0.32, 0.14), n=(9, 5)) -> Part:
    """Two soft patches on the cheeks (blush) under the eyes."""
    u = np.linspace(-1.0, 1.0, n[0])
    v = np.linspace(-1.0, 1.0, n[1])[:, None]
    grids = []
    for side in (1, -1):
        x = side * (eye.x + 0.35 * eye.w) + radii[0] * u
        y = eye.y - eye.h - below + radii[1] * v
        grids.append(np.stack(np.broadcast_arrays(x, y), -1))
    xy = np.concatenate(grids, axis=0)
    uv = np.concatenate([np.stack(np.broadcast_arrays((u + 1) / 2, (1 - v) / 2), -1)] * 2, axis=0)
    part = decal(material, material, head, xy, Z_BLUSH, uv, skin_single(xy[..., 0].size, "頭"))
    part.faces = part.faces[_not_across(grids[0].shape[:2], 2, part.faces)]
    return part


def tear_parts(head: HeadShape, eye: EyeShape) -> Part:
    """Tear streaks running down from under each eye."""
    u = np.linspace(-1.0, 1.0, 3)
    v = np.linspace(0.0, 1.0, 9)[:, None]
    grids = []
    for side in (1, -1):
        x = side * (eye.x + 0.25 * eye.w) + 0.05 * u * (1.2 - v) + side * 0.06 * v
        y = eye.bottom(0.25) - 0.02 - 0.55 * v
        grids.append(np.stack(np.broadcast_arrays(x, y), -1))
    xy = np.concatenate(grids, axis=0)
    uv = np.concatenate([np.stack(np.broadcast_arrays((u + 1) / 2, v), -1)] * 2, axis=0)
    part = decal("tears", "tears", head, xy, Z_BLUSH + 0.004, uv,
                 skin_single(xy[..., 0].size, "頭"))
    part.faces = part.faces[_not_across(grids[0].shape[:2], 2, part.faces)]
    return part


# --------------------------------------------------------------------------- hair


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


# --------------------------------------------------------------------------- body


@dataclass(frozen=True)
class Body:
    """Body landmarks, derived from the chin height."""

    chin: float

    @property
    def neck_base(self) -> float:  # the 首 joint
        return self.chin - 0.5

    @property
    def shoulder(self) -> np.ndarray:  # the left shoulder joint (腕)
        return np.array([1.12, self.chin - 0.95, 0.1])

    @property
    def waist(self) -> float:
        return self.chin - 3.6


def torso(body: Body, material: str) -> Part:
    """Chest, waist and hips as one loft, closing over the shoulders at the neck."""
    c = body.chin
    ys = np.array([c - 5.0, c - 4.85, c - 4.5, c - 3.6, c - 2.4, c - 1.35, c - 0.95, c - 0.72,
                   c - 0.55, c - 0.42, c - 0.36])
    half = np.array([0.02, 0.75, 1.02, 0.78, 1.0, 1.04, 1.22, 1.1, 0.72, 0.34, 0.02])
    depth = np.array([0.02, 0.6, 0.72, 0.56, 0.7, 0.62, 0.56, 0.5, 0.44, 0.32, 0.02])
    t = np.linspace(0.0, 1.0, 36)
    y = np.interp(t, np.linspace(0.0, 1.0, len(ys)), ys)
    a = np.interp(y, ys, half)[:, None]
    d = np.interp(y, ys, depth)[:, None]
    theta = np.linspace(-np.pi, np.pi, 33)
    x = a * np.sin(theta)
    z = 0.12 - d * np.cos(theta)
    grid = np.stack(np.broadcast_arrays(x, y[:, None], z), -1)
    width = 1.3
    uv = np.stack([(grid[..., 0] + width) / (2 * width), (c - 0.4 - grid[..., 1]) / 4.7], -1)
    blend = smoothstep(body.waist - 0.3, body.waist + 0.3, grid[..., 1]).reshape(-1)
    skin = skin_blend(blend, "下半身", "上半身")
    return surface_part("torso", material, grid, uv, skin, outward_from=(0.0, c - 2.5, 0.12))


def neck(body: Body, head_joint: float, radius: float = 0.36) -> Part:
    """The neck, blended 上半身 -> 首 at its base and 首 -> 頭 at its top (BDEF2)."""
    y = np.linspace(body.neck_base - 0.45, head_joint + 0.75, 16)
    centres = np.stack([np.zeros_like(y), y, np.full_like(y, 0.18)], -1)
    r = np.full_like(y, radius)
    grid, uv = tube_grid(centres, r, r, (0.0, 0.0, -1.0), around=20)
    uv[..., 1] = 0.45 * (1.0 - uv[..., 1])  # top of the neck at v = 0
    yy = grid[..., 1].reshape(-1)
    t_low = smoothstep(body.neck_base - 0.25, body.neck_base + 0.25, yy)
    t_high = smoothstep(head_joint - 0.25, head_joint + 0.25, yy)
    low = skin_blend(t_low, "上半身", "首")
    high = skin_blend(t_high, "首", "頭")
    use_high = yy > 0.5 * (body.neck_base + head_joint)
    skin = Skin(np.where(use_high[:, None], high.bones, low.bones),
                np.where(use_high[:, None], high.weights, low.weights),
                np.where(use_high, high.kind, low.kind), low.sdef)
    return tube_part("neck", "skin", centres, grid, uv, skin)


def arms(body: Body, sleeve: str) -> list[Part]:
    """Arms hanging at the sides, SDEF-blended 上半身 -> 腕 at the shoulder."""
    parts = []
    u = np.linspace(0.0, 1.0, 18)
    for side, bone in ((1, "左腕"), (-1, "右腕")):
        shoulder = body.shoulder * np.array([side, 1.0, 1.0])
        wrist = shoulder + np.array([side * 0.55, -3.3, 0.05])
        centres = shoulder + u[:, None] * (wrist - shoulder)
        centres[:, 1] += 0.12 * (1 - u)
        r = 0.27 - 0.08 * u
        r[0] = 0.0
        grid, uv = tube_grid(centres, r, 0.95 * r, (0.0, 0.0, -1.0), around=14)
        t = smoothstep(shoulder[1] + 0.2, shoulder[1] - 0.45, grid[..., 1]).reshape(-1)
        skin = skin_sdef(t, "上半身", bone, shoulder, wrist - shoulder)
        # sleeves sample a plain corner of the clothes texture
        parts.append(tube_part("arm", sleeve, centres, grid, _uv_into(uv, (0.02, 0.82, 0.2, 0.95)),
                               skin))
        parts.append(ellipsoid("hand", "skin", wrist + np.array([side * 0.05, -0.25, 0.0]),
                               (0.17, 0.28, 0.2), bone, uv_box=(0.1, 0.6, 0.9, 0.95)))
    return parts


def skirt(body: Body, material: str, length: float, flare: float, pleats: int) -> Part:
    """A pleated skirt (or short trousers, with no flare) from the waist down."""
    top, bottom = body.waist + 0.25, body.waist - length
    q = np.linspace(0.0, 1.0, 10)[:, None]
    theta = np.linspace(-np.pi, np.pi, 8 * pleats + 1)
    y = top + (bottom - top) * q
    a = 0.82 + flare * q**0.8 + 0.06 * q * np.cos(pleats * theta)
    d = 0.64 + 0.6 * flare * q**0.8 + 0.05 * q * np.cos(pleats * theta)
    grid = np.stack(np.broadcast_arrays(a * np.sin(theta), y, 0.12 - d * np.cos(theta)), -1)
    uv = np.stack(np.broadcast_arrays((theta + np.pi) / (2 * np.pi), 0.05 + 0.9 * q), -1)
    return surface_part("skirt", material, grid, uv, skin_single(grid[..., 0].size, "下半身"),
                        outward_from=(0.0, top, 0.12))


def legs(body: Body, material: str, shoe: str) -> list[Part]:
    parts = []
    u = np.linspace(0.0, 1.0, 16)
    for side in (1, -1):
        hip = np.array([side * 0.42, body.waist - 1.0, 0.12])
        ankle = np.array([side * 0.45, 0.75, 0.12])
        centres = hip + u[:, None] * (ankle - hip)
        r = 0.34 - 0.14 * u
        grid, uv = tube_grid(centres, r, r, (0.0, 0.0, -1.0), around=12)
        skin = skin_single(grid[..., 0].size, "下半身")
        parts.append(tube_part("leg", material, centres, grid, uv, skin))
        parts.append(ellipsoid("shoe", shoe, (side * 0.45, 0.38, -0.05), (0.3, 0.38, 0.55),
                               "下半身"))
    return parts
