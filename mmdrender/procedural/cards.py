"""Cards: the thin, alpha-tested, double-sided strips today's models are made of.

Models people download now carry 20k-50k vertices, much of them in hair and
frills built from hundreds of cards in dozens of materials. The heavy sample
adds such cards to a light character so that tests and benchmarks see a model
like today's: long hair cards rooted over the cranium and hanging past the
waist (skinned to 頭), and frills around the skirt's hem (skinned to 下半身),
each card a grid of ``CARD_ROWS`` x ``CARD_ACROSS`` vertices, dealt round-robin
over their materials. Like a real model's, most of their triangles lie outside
a head framing.
"""

from __future__ import annotations

import numpy as np

from mmdrender.procedural import mesh
from mmdrender.procedural.face import HeadShape
from mmdrender.procedural.mesh import Part

CARD_ROWS = 25
CARD_ACROSS = 5


def card_material(k: int) -> str:
    return f"hair card {k + 1:02d}"


def frill_material(k: int) -> str:
    return f"frill {k + 1:02d}"


def _card_parts(grids: list[list[np.ndarray]], name, bone: str) -> list[Part]:
    """One part per material from each material's card grids (R, A, 3)."""
    parts = []
    u, v = np.meshgrid(np.linspace(0, 1, CARD_ACROSS), np.linspace(0, 1, CARD_ROWS))
    for m, cards in enumerate(grids):
        if not cards:
            continue
        positions = np.concatenate([g.reshape(-1, 3) for g in cards])
        faces = np.concatenate([mesh.grid_faces(CARD_ROWS, CARD_ACROSS) + k * CARD_ROWS
                                * CARD_ACROSS for k in range(len(cards))])
        normals = mesh.vertex_normals(positions, faces)
        uvs = np.tile(np.stack([u, v], -1).reshape(-1, 2), (len(cards), 1))
        parts.append(Part(f"{name(m)} cards", name(m), positions, normals, uvs, faces,
                          mesh.skin_single(len(positions), bone)))
    return parts


def _card(points: np.ndarray, side: np.ndarray, width: float) -> np.ndarray:
    """A card along the Bézier ``points``, ``width`` across at the root, narrowing."""
    spine = mesh.bezier(points, np.linspace(0.0, 1.0, CARD_ROWS))
    half = width * np.linspace(1.0, 0.35, CARD_ROWS)[:, None]
    across = np.linspace(-1.0, 1.0, CARD_ACROSS)
    return spine[:, None, :] + half[:, :, None] * across[None, :, None] * side


def skirt_frills(hem_y: float, radii: tuple[float, float], centre_z: float, count: int,
                 materials: int, seed: int = 11) -> list[Part]:
    """``count`` frill cards around a skirt hem at ``hem_y`` (ellipse ``radii`` x, z)."""
    rng = np.random.default_rng(seed)
    grids: list[list[np.ndarray]] = [[] for _ in range(materials)]
    for k in range(count):
        theta = 2 * np.pi * (k + rng.uniform(0, 0.5)) / count
        outward = np.array([np.sin(theta), 0.0, -np.cos(theta)])
        root = np.array([radii[0] * np.sin(theta), hem_y, centre_z - radii[1] * np.cos(theta)])
        drop = rng.uniform(0.4, 0.8)
        points = np.stack([root, root + outward * 0.15, root + outward * 0.3 + [0, -drop / 2, 0],
                           root + outward * 0.35 + [0, -drop, 0]])
        side = np.array([np.cos(theta), 0.0, np.sin(theta)])
        grids[k % materials].append(_card(points, side, rng.uniform(0.12, 0.2)))
    return _card_parts(grids, frill_material, "下半身")


def hair_cards(head: HeadShape, count: int, materials: int, seed: int = 7) -> list[Part]:
    """``count`` long hair cards as one part per material (cards dealt round-robin)."""
    rng = np.random.default_rng(seed)
    centre = head.centre
    radius = np.array([head.half_width * 1.08, head.height * 0.55, (head.front + head.back)
                       * 0.55])
    grids: list[list[np.ndarray]] = [[] for _ in range(materials)]
    for k in range(count):
        azimuth = rng.uniform(-0.55, 0.55) * np.pi  # the back and sides (MMD: face at -z)
        elevation = rng.uniform(0.15, 0.5) * np.pi  # from the crown down to the ears
        outward = np.array([np.sin(elevation) * np.sin(azimuth), np.cos(elevation),
                            np.sin(elevation) * np.cos(azimuth)])
        root = centre + outward * radius
        length = rng.uniform(6.0, 14.0)  # past the shoulders, like long hair
        drop = np.array([0.0, -1.0, 0.0])
        points = np.stack([root, root + outward * 0.6 + drop * 0.3,
                           root + outward * 0.9 + drop * length * 0.6,
                           root + outward * 0.7 + drop * length])
        side = np.cross(drop, outward)
        side /= max(np.linalg.norm(side), 1e-6)
        grids[k % materials].append(_card(points, side, rng.uniform(0.12, 0.3)))
    return _card_parts(grids, card_material, "頭")
