"""Head bounds from geometry: the chin tip and the top of the skull.

The head is the vertices weighted mostly (> 0.5) to the 頭 bone, as in
:func:`mmdrender.camera.estimate_head_bounds`; the face landmarks from the
morphs (eye row, mouth row, eye spacing) narrow it down:

- chin (head_bottom_y): the lowest head vertex in the face's central column,
  in front of the head bone, below the mouth; where the mouth-open morph
  reaches lower (its jaw), that counts too.
- skull top (head_top_y): in the central column above the eyes, the highest
  upward-facing head vertex per narrow x-bin, and the median over the bins —
  spike and ahoge flanks face sideways, a thin tip takes a bin or two and does
  not move the median; cat ears and side ribbons are outside the column.

Cross-check: anime heads put the skull top about 1.5 eye-to-chin heights above
the eye row (the eye row being where the lids move; 1.1-2.0 on the shared
models and samples). Confidence falls as
the geometric answer strays from that, and where the landmarks are missing
the proportion (or, without both an eye row and a mouth, the plain
head-vertex extent) is the answer, with a low confidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from annotate.morph_roles import Face
from mmdrender.camera import HEAD_BONE, HEAD_WEIGHT, estimate_head_bounds, head_centre_x
from mmdrender.errors import RenderError
from mmdrender.model import Model

TOP_RATIO = 1.5  # (skull top - eye row) / (eye row - chin): 1.1-2.0 on the shared models
TOP_RATIO_RANGE = (1.0, 2.3)
UP_NORMAL = 0.7  # a vertex on the flat top of the hair faces up (normal y above this)
BINS = 9


@dataclass(frozen=True)
class HeadBounds:
    top: float | None
    top_confidence: float
    bottom: float | None
    bottom_confidence: float
    centre_x: float


def head_weight(model: Model) -> np.ndarray:
    """(V,) each vertex's skinning weight on the 頭 bone (zeros when there is none)."""
    head = model.bone_index(HEAD_BONE)
    if head is None:
        return np.zeros(len(model.vertices))
    indices = model.vertices.bone_indices
    return np.where(indices == head, model.vertices.bone_weights, 0.0).sum(axis=1)


def propose_head_bounds(model: Model, face: Face) -> HeadBounds:
    head = model.bone_index(HEAD_BONE)
    centre_x = head_centre_x(model)
    try:
        fallback_top, fallback_bottom, _ = estimate_head_bounds(model)
    except RenderError:
        fallback_top = fallback_bottom = None
    inside = head_weight(model) > HEAD_WEIGHT
    if head is None or not inside.any() or face.eye_y is None or face.mouth_y is None:
        if fallback_top is None:
            return HeadBounds(None, 0.0, None, 0.0, centre_x)
        return HeadBounds(round(fallback_top, 4), 0.2, round(fallback_bottom, 4), 0.2, centre_x)

    p = model.vertices.positions.astype(np.float64)
    x, y, z = p[:, 0] - centre_x, p[:, 1], p[:, 2]
    eye_y = face.eye_y
    half = face.eye_x if face.eye_x else 0.1 * (fallback_top - fallback_bottom)
    column = np.abs(x) < 0.6 * half
    mouth_y = face.mouth_y if face.mouth_y is not None else eye_y - 0.6 * half

    # chin: lowest central, frontal head vertex below the mouth (and not absurdly far down)
    gap = max(eye_y - mouth_y, 1e-3)
    bone_z = float(model.bones[head].position[2])
    front = z > (bone_z if face.mouth_z is None else (bone_z + face.mouth_z) / 2)
    low = inside & column & front & (y < mouth_y) & (y > mouth_y - 1.5 * gap)
    candidates = [float(y[low].min())] if low.any() else []
    if face.mouth_bottom_y is not None and face.mouth_bottom_y < mouth_y:
        candidates.append(face.mouth_bottom_y)
    if candidates:
        bottom = min(candidates)
        bottom_confidence = 0.85 if low.any() else 0.5
        below_mouth = (mouth_y - bottom) / gap
        if not 0.15 <= below_mouth <= 1.2:
            bottom_confidence *= 0.6
    else:
        bottom = mouth_y - 0.4 * gap
        bottom_confidence = 0.3

    # skull top: median over x-bins of the highest head vertex, above the eyes
    expected = eye_y + TOP_RATIO * (eye_y - bottom)
    facing_up = model.vertices.normals[:, 1] > UP_NORMAL  # spike and ahoge flanks face sideways
    upper = inside & column & (y > eye_y) & facing_up
    tops = []
    if upper.any():
        edges = np.linspace(-0.6 * half, 0.6 * half, BINS + 1)
        which = np.digitize(x[upper], edges) - 1
        ys = y[upper]
        tops = [float(ys[which == b].max()) for b in range(BINS) if (which == b).any()]
    if len(tops) >= 3:
        top = float(np.median(tops))
        ratio = (top - eye_y) / max(eye_y - bottom, 1e-3)
        lo, hi = TOP_RATIO_RANGE
        if lo <= ratio <= hi:
            top_confidence = 0.9 - 0.4 * abs(ratio - TOP_RATIO) / (hi - lo)
        else:
            # the geometry is off the chart (a hat, a ribbon on the crown, a bald mesh):
            # split the difference and say so
            top = float(np.clip(top, eye_y + lo * (eye_y - bottom), eye_y + hi * (eye_y - bottom)))
            top_confidence = 0.35
    else:
        top, top_confidence = expected, 0.3
    return HeadBounds(round(top, 4), round(top_confidence, 3), round(bottom, 4),
                      round(bottom_confidence, 3), centre_x)
