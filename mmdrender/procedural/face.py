"""The head, eyes, brows, mouth, cheeks and tears of the sample characters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmdrender.procedural.mesh import Part, grid_faces, normalize, orient, skin_single, smoothstep


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


# z offsets of face decals toward the viewer, back to front. A turned iris keeps its
# distance to its pivot, not to the face, so it needs room: ~0.025 either way between
# the sclera and the socket at the strip ends (see eye_pivot).
Z_SCLERA, Z_IRIS, Z_HIGHLIGHT, Z_LOWER_LASH = 0.004, 0.030, 0.040, 0.070
Z_LID, Z_LASH = 0.080, 0.090  # the lid covers the eye, the lash line lies on the lid
Z_BROW, Z_BLUSH, Z_INNER_MOUTH, Z_MOUTH_LINE = 0.012, 0.072, 0.020, 0.030  # blush: over the socket
Z_SOCKET = 0.065  # skin around the opening: in front of the iris and highlights, behind the lids
SOCKET = 0.2  # the socket ring's width, model units
IRIS_SMALL = 0.6  # iris_small shrinks the iris to this fraction
SURPRISE = 0.18  # eye heights the lashes rise by when surprised
LOWER_LID = 0.35  # how far up the opening the raised lower lid reaches


def eye_pivot(head: HeadShape, eye: EyeShape, side: int) -> np.ndarray:
    """Where an eye bone turns its iris about: behind the eye, along the face's normal.

    The iris is a decal on a curved face; turned about a point straight behind
    it, it would sink behind the sclera on the nose's side. About the centre of
    the face's curvature across the eye it slides along the face, between the
    sclera and the socket (up and down it moves less, where the face is flatter).
    """
    centre = np.array([side * eye.x, eye.y])
    point, normal = head.lift(centre, 0.0)
    step = np.array([1e-3, 0.0])
    (p0, n0), (p1, n1) = head.lift(centre - step, 0.0), head.lift(centre + step, 0.0)
    radius = np.linalg.norm(p1 - p0) / np.linalg.norm(n1 - n0)
    return point - radius * normal


def _polar(n_rings: int, n_angles: int):
    rho = np.linspace(0.0, 1.0, n_rings + 1)
    alpha = np.linspace(0.0, 2 * np.pi, n_angles + 1)
    rr, aa = np.meshgrid(rho, alpha, indexing="ij")
    return rr * np.cos(aa), rr * np.sin(aa)


def eye_parts(head: HeadShape, eye: EyeShape, side: int, eye_bone: str, key: str) -> list[Part]:
    """Sclera, iris, highlights, the socket around them, eyelids and lashes of one eye.

    ``side`` is +1 for the character's left eye (+x), -1 for its right. The
    iris and its highlights hang on ``eye_bone``; the socket, a ring of skin
    just in front of them around the opening, hides whatever of the iris a
    turned eye bone moves out of it. Shape keys, each ``<shape>_<key>``:
    ``close`` and ``happy`` close the eye (the upper lid, which rests folded to
    zero area along the top of the opening, unrolls down over it and the lash
    line follows); ``relaxed`` and ``unimpressed`` close it part way to a flat
    line; ``surprised`` lifts the lashes; ``lower_up`` raises a lower lid that
    rests folded along the bottom; ``iris_small`` shrinks the iris. The iris
    carries the UV shape ``star``.
    """
    cx = side * eye.x

    def at(s, y):
        return np.stack(np.broadcast_arrays(cx + side * s * eye.w, y), -1)

    def lifted(xy, offset):
        return head.lift(xy, offset)[0].reshape(-1, 3)

    parts = []
    # sclera: between the top and bottom curves
    s = np.linspace(-1.0, 1.0, 17)
    r = np.linspace(0.0, 1.0, 9)[:, None]
    xy = at(s, eye.bottom(s) + r * (eye.top(s) - eye.bottom(s)))
    uv = np.stack(np.broadcast_arrays((s + 1) / 2, 1.0 - r), -1)
    parts.append(decal("sclera", "sclera", head, xy, Z_SCLERA, uv,
                       skin_single(xy[..., 0].size, "頭")))

    # iris: a whole ellipse (the socket hides what lies outside the opening)
    px, py = _polar(10, 32)
    ix, iy = cx, eye.y - 0.15 * eye.h
    rx, ry = eye.iris * eye.w, 1.05 * eye.iris * eye.h
    xy = np.stack([ix + rx * px, iy + ry * py], -1)
    uv = np.stack([0.25 + 0.25 * px, 0.5 - 0.5 * py], -1)
    iris = decal("iris", "iris", head, xy, Z_IRIS, uv, skin_single(xy[..., 0].size, eye_bone))
    iris.uv_shapes["star"] = np.tile([0.5, 0.0, 0.0, 0.0], (len(iris), 1))
    small = np.stack([ix + IRIS_SMALL * rx * px, iy + IRIS_SMALL * ry * py], -1)
    iris.shapes[f"iris_small_{key}"] = lifted(small, Z_IRIS) - iris.positions
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
    shrunk = np.stack([ix + IRIS_SMALL * (xy[..., 0] - ix), iy + IRIS_SMALL * (xy[..., 1] - iy)],
                      -1)
    highlight.shapes[f"iris_small_{key}"] = lifted(shrunk, Z_HIGHLIGHT) - highlight.positions
    parts.append(highlight)
    parts.append(socket_part(head, eye, side))

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
    shut_positions = lifted(shut, Z_LID)
    lid.shapes[f"close_{key}"] = shut_positions - lid.positions
    lid.shapes[f"happy_{key}"] = shut_positions - lid.positions
    for shape, line in (("relaxed", eye.y - 0.2 * eye.h), ("unimpressed", eye.y + 0.4 * eye.h)):
        part_way = at(s, lid_top + r * (np.maximum(line, lid_bottom) - lid_top))
        lid.shapes[f"{shape}_{key}"] = lifted(part_way, Z_LID) - lid.positions
    lift = np.zeros((len(r), len(s), 2))
    lift[..., 1] = SURPRISE * eye.h
    lid.shapes[f"surprised_{key}"] = lifted(rest + lift, Z_LID) - lid.positions
    parts.append(lid)

    # lower lid: skin folded along the bottom of the opening, raised part way up
    low = eye.bottom(s) - 0.01
    rest = at(s, np.broadcast_to(low, (len(r), len(s))))
    raised_line = eye.bottom(s) + LOWER_LID * (eye.top(s) - eye.bottom(s))
    raised = at(s, low - 0.04 + r * (raised_line - low + 0.04))
    uv = head.face_uv(raised[..., 0], raised[..., 1])
    lower = decal("lower eyelid", "face", head, rest, Z_LID, uv,
                  skin_single(rest[..., 0].size, "頭"), open_xy=raised)
    lower.shapes[f"lower_up_{key}"] = lifted(raised, Z_LID) - lower.positions
    parts.append(lower)

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
    flat = {"relaxed": eye.y - 0.2 * eye.h, "unimpressed": eye.y + 0.4 * eye.h}
    curves = {"close": eye.closed, "happy": eye.happy,
              **{shape: (lambda s, y=y: np.full_like(s, y)) for shape, y in flat.items()}}
    for shape, curve in curves.items():
        lash_part.shapes[f"{shape}_{key}"] = lifted(lash(curve, -0.8, 1.0), Z_LASH) - \
            lash_part.positions
    raised_lash = lash(lambda s: eye.top(s) + SURPRISE * eye.h, 1.3, 0.0)
    lash_part.shapes[f"surprised_{key}"] = lifted(raised_lash, Z_LASH) - lash_part.positions
    parts.append(lash_part)

    # lower lash: a thin stroke under the outer half
    s = np.linspace(0.15, 1.0, 10)
    r = np.array([0.0, 1.0])[:, None]
    width = 0.022 * (0.3 + 0.7 * smoothstep(0.15, 0.6, s))
    xy = at(s, eye.bottom(s) - r * width)
    lower_lash = decal("lower lash", "lash", head, xy, Z_LOWER_LASH, np.zeros(xy.shape),
                       skin_single(xy[..., 0].size, "頭"))
    up = at(s, eye.bottom(s) + LOWER_LID * (eye.top(s) - eye.bottom(s)) - r * width)
    lower_lash.shapes[f"lower_up_{key}"] = lifted(up, Z_LOWER_LASH) - lower_lash.positions
    down = at(s, eye.bottom(s) - 0.4 * SURPRISE * eye.h - r * width)
    lower_lash.shapes[f"surprised_{key}"] = lifted(down, Z_LOWER_LASH) - lower_lash.positions
    parts.append(lower_lash)
    return parts


def small_iris_part(head: HeadShape, eye: EyeShape, side: int, eye_bone: str,
                    material: str) -> Part:
    """The iris at :data:`IRIS_SMALL` of its size, just in front of it, for a material swap."""
    px, py = _polar(10, 32)
    ix, iy = side * eye.x, eye.y - 0.15 * eye.h
    rx, ry = IRIS_SMALL * eye.iris * eye.w, IRIS_SMALL * 1.05 * eye.iris * eye.h
    xy = np.stack([ix + rx * px, iy + ry * py], -1)
    uv = np.stack([0.25 + 0.25 * px, 0.5 - 0.5 * py], -1)
    return decal("small iris", material, head, xy, Z_IRIS + 0.002, uv,
                 skin_single(xy[..., 0].size, eye_bone))


def socket_part(head: HeadShape, eye: EyeShape, side: int) -> Part:
    """A ring of skin around the eye's opening, in front of the iris and its highlights.

    Its inner edge is the opening (the top and bottom curves), its outer edge
    ``SOCKET`` further out; it samples the face texture where the face does,
    so it looks like the face itself and hides a turned iris outside the eye.
    """
    s = np.concatenate([np.linspace(-1.0, 1.0, 17), np.linspace(1.0, -1.0, 17)[1:-1]])
    upper = np.arange(len(s)) < 17
    y = np.where(upper, eye.top(s), eye.bottom(s))
    inner = np.stack([side * eye.x + side * s * eye.w, y], -1)
    inner = np.concatenate([inner, inner[:1]])  # closed loop
    centre = np.array([side * eye.x, eye.y])
    outward = inner - centre
    outward /= np.linalg.norm(outward, axis=1, keepdims=True)
    r = np.linspace(0.0, 1.0, 3)[:, None, None]
    xy = inner[None] + r * SOCKET * outward[None]
    uv = head.face_uv(xy[..., 0], xy[..., 1])
    return decal("eye socket", "face", head, xy, Z_SOCKET, uv,
                 skin_single(xy[..., 0].size, "頭"))


def _not_across(grid_shape, copies: int, faces: np.ndarray) -> np.ndarray:
    """Mask of faces that stay inside one of ``copies`` stacked grids."""
    rows, cols = grid_shape
    block = faces // cols // rows
    return (block.min(axis=1) == block.max(axis=1)) & (block.max(axis=1) < copies)


def brow_part(head: HeadShape, eye: EyeShape, side: int, key: str, bone: str = "頭") -> Part:
    """An eyebrow over ``eye``, on ``bone``, with shapes ``brow_<kind>_<key>``.

    Kinds: ``up`` and ``down`` (raised, lowered), ``sad`` (inner end up: troubled),
    ``angry`` (inner end down), ``happy`` (arched up) and ``serious`` (flattened, low).
    """
    s = np.linspace(-1.0, 1.0, 15)
    r = np.array([-0.5, 0.5])[:, None]
    x = side * eye.x + side * eye.w * (0.15 + 1.05 * s)
    base = eye.y + eye.h + 0.30 + 0.07 * (1 - s**2) - 0.02 * s
    thick = 0.055 * (1 - 0.6 * smoothstep(0.1, 1.0, s))

    def grid(dy):
        return np.stack(np.broadcast_arrays(x, base + dy + r * thick), -1)

    rest = grid(0.0)
    part = decal("eyebrow", "brow", head, rest, Z_BROW, np.zeros(rest.shape),
                 skin_single(rest[..., 0].size, bone))
    inner = (1 - s) / 2
    for kind, dy in (("up", 0.13 + 0 * s), ("down", -0.1 + 0 * s),
                     ("sad", 0.14 * inner - 0.04 * (1 - inner)),
                     ("angry", -0.09 * inner + 0.05 * (1 - inner)),
                     ("happy", 0.02 + 0.09 * (1 - s**2)),
                     ("serious", -0.05 - 0.07 * (1 - s**2) - 0.03 * inner)):
        target = head.lift(grid(dy), Z_BROW)[0].reshape(-1, 3)
        part.shapes[f"brow_{kind}_{key}"] = target - part.positions
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
        "e": (1.15, 0.15, 0.01, 0.05),
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
    """Closed-mouth line and the inner mouth (zero area at rest).

    Shapes: ``mouth_a/i/u/e/o`` open it and drop the jaw; ``mouth_delta`` opens a
    triangle (▲); ``mouth_smirk`` lifts the character's left corner alone;
    ``corner_up_<L|R>`` and ``corner_down_<L|R>`` move one corner of the line.
    """
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
    # ▲: a triangle opening with its apex up
    top = mouth.y + 0.13 * (1 - np.abs(s))
    xy = np.stack(np.broadcast_arrays(0.8 * w * s, top + r * (mouth.y - 0.05 - top)), -1)
    opened["delta"] = (xy, 0.0)
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

    def line(width, dy=0.0):
        return np.stack(np.broadcast_arrays(w * width * s, mouth.y + 0.02 * s**2 + dy
                                            + r * thick), -1)

    rest = line(1.0)
    lips = decal("mouth line", "lips", head, rest, Z_MOUTH_LINE, np.zeros(rest.shape),
                 skin_single(rest[..., 0].size, "頭"))
    widths = {vowel: wf for vowel, (wf, *_unused) in Mouth.VOWELS.items()}
    for vowel, width in {**widths, "delta": 0.8}.items():
        target = head.lift(line(width), Z_MOUTH_LINE)[0].reshape(-1, 3)
        lips.shapes[f"mouth_{vowel}"] = target - lips.positions
    corners = {}
    for side, key in ((1, "L"), (-1, "R")):
        corners[key] = smoothstep(0.45, 1.0, side * s)  # 0 on the middle half, 1 at that corner
        for shape, amount in (("corner_up", 0.1), ("corner_down", -0.09)):
            target = head.lift(line(1.0, amount * corners[key]), Z_MOUTH_LINE)[0].reshape(-1, 3)
            lips.shapes[f"{shape}_{key}"] = target - lips.positions
    smirk = line(1.0, 0.11 * corners["L"] - 0.02 * corners["R"])
    lips.shapes["mouth_smirk"] = head.lift(smirk, Z_MOUTH_LINE)[0].reshape(-1, 3) - \
        lips.positions
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
