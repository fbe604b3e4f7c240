"""The one place that converts MMD's left-handed frame to the project's frame.

MMD files: left-handed, y up, the character faces -z, its own left is +x.
Project frame (dataset spec section 2): right-handed, y up, +x the character's
left, +z the character's front. Mirroring z is the whole conversion:

- positions and directions negate z;
- rotations (quaternions xyzw) negate x and y, and so do angles about x and y;
- triangle winding reverses. In the file, the right-hand rule on (v0, v1, v2)
  gives the outward normal; after the mirror it would point inward, so each
  triangle's last two indices are swapped to keep front faces counter-clockwise
  (OpenGL's default).
"""

from __future__ import annotations

import numpy as np


def vectors(values) -> np.ndarray:
    """Positions, normals, offsets or axes: (..., 3) float32, a new array.

    Sign flips rather than a multiply: the file's numbers are not checked yet,
    and arithmetic on a signalling NaN from the bytes would warn. (np.positive
    is also the fastest copy of the strided views the readers hand over.)
    """
    result = np.positive(values, dtype=np.float32)
    np.negative(result[..., 2], out=result[..., 2])
    return result


def quaternions(values) -> np.ndarray:
    """Rotations as (..., 4) float32 quaternions xyzw, a new array."""
    result = np.positive(values, dtype=np.float32)
    np.negative(result[..., :2], out=result[..., :2])
    return result


def angle_limits(minimum, maximum) -> np.ndarray:
    """IK angle limits (radians about x, y, z) as a (2, 3) min/max array.

    Mirroring z reverses the sense of rotations about x and y, so those limits
    swap ends and change sign.
    """
    low = np.asarray(minimum, dtype=np.float32).copy()
    high = np.asarray(maximum, dtype=np.float32).copy()
    low[:2], high[:2] = -high[:2].copy(), -low[:2].copy()
    return np.stack([low, high])


def triangles(indices) -> np.ndarray:
    """(F, 3) vertex indices with the winding reversed by the mirror restored."""
    return np.asarray(indices)[:, [0, 2, 1]]
