"""The sample characters' iris angles by THA2's strip rule, from their geometry alone.

The annotator (annotate.iris) measures a model's eyes in rendered close-ups;
here the same rule is applied to the vertices the samples were built from, so
the two agree only if both are right. The eye's box is what closing the eye
visibly changes: the opening (the white of the eye, which the lid covers) and
the lash line at rest and closed (the lid over the skin around the opening
changes nothing one can see); the iris is its ellipse. Each is turned with its eye bone (the
pivot) about the project frame's x or y axis until the iris edge reaches the
strip: -1 / +1 put its top / bottom at 1/4 / 3/4 of the box's height (x) and
its left / right edge at 3/8 / 5/8 of its width (y).
"""

from __future__ import annotations

import math

import numpy as np

from mmdrender.formats import frame
from mmdrender.rig import STRIP_RULE


def _turned(points: np.ndarray, pivot: np.ndarray, axis: str, degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    p = points - pivot
    if axis == "x":  # right-handed about +x: the front (+z) goes down
        p = np.stack([p[:, 0], c * p[:, 1] - s * p[:, 2], s * p[:, 1] + c * p[:, 2]], 1)
    else:  # about +y: the front goes toward +x
        p = np.stack([c * p[:, 0] + s * p[:, 2], p[:, 1], -s * p[:, 0] + c * p[:, 2]], 1)
    return p + pivot


def _edge(points: np.ndarray, edge: str) -> float:
    """An edge of the points' 2D box, as image coordinates grow (x right, y down)."""
    return {"left": points[:, 0].min(), "right": points[:, 0].max(),
            "top": -points[:, 1].max(), "bottom": -points[:, 1].min()}[edge]


def iris_angles(parts, bones) -> dict[str, dict[str, float]]:
    """``{"left" | "right": {end: degrees}}`` for a built character's eyes.

    ``parts``: the character's :class:`~mmdrender.procedural.mesh.Part` list;
    ``bones``: its bone definitions (the eye bones 左目 / 右目 are the pivots).
    """
    pivots = {b.name: frame.vectors(np.array(b.position, float)) for b in bones}
    angles = {}
    for side, key, bone in (("left", "L", "左目"), ("right", "R", "右目")):
        def side_part(name, sign=1 if side == "left" else -1):
            return next(p for p in parts if p.name == name and sign * p.positions[:, 0].mean() > 0)

        lash, sclera, iris = side_part("lash"), side_part("sclera"), side_part("iris")
        covered = np.concatenate([lash.positions, lash.positions + lash.shapes[f"close_{key}"],
                                  sclera.positions])
        box = frame.vectors(covered)
        left, right = box[:, 0].min(), box[:, 0].max()
        top, bottom = -box[:, 1].max(), -box[:, 1].min()
        points = frame.vectors(iris.positions).astype(np.float64)
        pivot = pivots[bone].astype(np.float64)
        ends = {}
        for end, axis, edge, fraction in STRIP_RULE:
            start, span = (left, right - left) if axis == "y" else (top, bottom - top)
            target = start + fraction * span
            low, high = -60.0, 60.0
            for _ in range(50):
                middle = (low + high) / 2
                if _edge(_turned(points, pivot, axis, middle), edge) < target:
                    low = middle
                else:
                    high = middle
            ends[end] = round((low + high) / 2, 3)
        angles[side] = ends
    return angles
