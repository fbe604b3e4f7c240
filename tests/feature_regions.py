"""Where on a rendered face each feature's pixels may change (tests of roles and poses).

Rows are measured from landmarks the model itself shows: the eye row (the eye
bones' vertices, else what closing the eyes moves) and the mouth row (what
"a" moves), so the bands hold for any head framing.
"""

from __future__ import annotations

import numpy as np

from mmdrender.camera import Camera
from mmdrender.model import Model
from mmdrender.pose import Poser
from pipeline.roles import EYE_BONE_COLUMNS

CHANGED = 8  # a pixel changes when a channel moves by more than this (0-255)

# Morphs of real models that reach outside their feature or side: the models' own slips,
# seen in the renders. (model, index column) -> the share of changed pixels that is in.
QUIRKS = {
    # Rin's only wink closes her right eye and also moves her left eye's lower lashes;
    # Lat Miku's moves 8 vertices of her left eye, one by 0.1 units
    ("animasa_rin/rin.pmd", "smile_wink_right"): 0.7,
    ("lat_miku_white/Lat式ミクVer2.31_White.pmd", "smile_wink_right"): 0.95,
    # Len's smile and relaxed eyes also drag two vertices by his collar 0.29 units
    ("animasa_len/ren.pmd", "smile_wink_both"): 0.95,
    ("animasa_len/ren.pmd", "eye_relaxed"): 0.95,
    # Gumi's relaxed eyes swap in a drawn patch whose lowest row is just beyond the band
    ("gumi_lowpoly/gumi.pmd", "eye_relaxed"): 0.98,
    # every mouth morph of Haku also nudges 12 eyebrow vertices by 0.01 units
    **{("haku/haku.pmd", column): 0.5 for column in (
        "mouth_open", "mouth_iii", "mouth_uuu", "mouth_eee", "mouth_ooo", "mouth_delta",
        "mouth_smirk")},
}
INSIDE = 0.99  # share of a role's changed pixels that must lie in its feature and side,
STRAY = 5  # ... or all but this many (the edge of a small change)
def landmark_rows(model: Model, proposal, camera: Camera) -> tuple[float, float]:
    """Image rows of the eye row (the irises' centre) and the mouth row (what あ moves)."""
    def moved_by(name):
        weights = np.zeros(len(model.morphs))
        weights[model.morph_index(name)] = 1.0
        moved = np.linalg.norm(Poser(model).pose_weights(weights).positions
                               - model.vertices.positions, axis=1)
        return np.average(model.vertices.positions, axis=0, weights=moved)

    eyes = [getattr(proposal, EYE_BONE_COLUMNS[s]).value for s in ("left", "right")]
    if all(eyes):
        bones = [model.bone_index(b) for b in eyes]
        on = np.isin(model.vertices.bone_indices, bones) & (model.vertices.bone_weights > 0.5)
        eye = model.vertices.positions[on.any(axis=1)].mean(axis=0)
    else:
        eye = moved_by(next(getattr(proposal, c).value for c in (
            "wink_both", "eye_relaxed", "eye_surprised") if getattr(proposal, c).value))
    mouth = moved_by(proposal.mouth_open.value or proposal.mouth_delta.value)
    (_, eye_row), (_, mouth_row) = camera.to_pixels(np.stack([eye, mouth]))
    return float(eye_row), float(mouth_row)


def feature_band(category: str) -> tuple[float, float]:
    """Rows a feature may change, in eye-to-mouth distances below the eye row.

    The eye row is 0, the mouth row 1. Eyelid morphs may lift the brows and
    flush the cheeks (several models' smiles do) but stay above the nose; brows
    may come down over the upper lid; irises stay in the eye band; mouths stay
    below the lower lids.
    """
    return {"eyebrow": (-np.inf, 0.25), "eye": (-np.inf, 0.65), "iris_morph": (-0.45, 0.45),
            "mouth": (0.35, np.inf)}[category]
