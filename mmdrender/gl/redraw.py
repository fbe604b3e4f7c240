"""The part of the image a draw can change, relative to a frame drawn earlier.

A pixel's colour follows only from the fragments that fall on it, in draw
order. If every triangle that covers a pixel has the same vertices (position,
normal, UVs), the same material state and the same camera and lights as in an
earlier frame, the pixel comes out as it did then. So a new pose whose
changes are confined to a box (an expression on a face framed as a whole
head) is drawn by copying the earlier frame and redrawing everything inside
the box alone: the same bytes as a full draw, for a fraction of the fragment
work, which is most of what a CPU rasteriser spends. tests/test_redraw.py
checks the bytes on every sample and shared model.

The box holds every changed triangle where it was and where it is now, a
pixel wider each way, with its sides on multiples of :data:`ALIGN` pixels:
llvmpipe rasterises in 16-pixel blocks of 64-pixel tiles, and a box on block
borders cuts no block in two. (Tile borders, 64, redraw 2-3x the area of a
face's box for the same bytes.) GL's invariance rules ask that the scissor
box change no fragment's value; the tests check that llvmpipe keeps to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmdrender.camera import Camera

ALIGN = 16  # llvmpipe's block side (see the module docstring)
WHOLE_SHARE = 0.6  # boxes larger than this share of the image are drawn whole


@dataclass(frozen=True)
class DrawInputs:
    """Everything that decides a frame's pixels besides the scene's static data."""

    positions: np.ndarray  # (V, 3) float32, as drawn
    normals: np.ndarray  # (V, 3)
    uvs: np.ndarray  # (V, 2)
    sub_uvs: np.ndarray | None  # (V, 2) where a sub-texture material reads them
    materials: np.ndarray  # (M, K) float32: each material's uniform block
    uniforms: tuple  # (name, bytes) pairs: camera and lights

    def copy(self) -> DrawInputs:
        """A copy that later changes to the caller's arrays cannot reach."""
        sub_uvs = None if self.sub_uvs is None else self.sub_uvs.copy()
        return DrawInputs(self.positions.copy(), self.normals.copy(), self.uvs.copy(),
                          sub_uvs, self.materials.copy(), self.uniforms)


def changed_faces(before: DrawInputs, after: DrawInputs, faces: np.ndarray,
                  face_material: np.ndarray) -> np.ndarray | None:
    """(F,) bool: the faces drawn differently; None when everything may differ."""
    if before.uniforms != after.uniforms or before.positions.shape != after.positions.shape \
            or before.materials.shape != after.materials.shape:
        return None
    moved = _rows_differ(before.positions, after.positions)
    moved |= _rows_differ(before.normals, after.normals)
    moved |= _rows_differ(before.uvs, after.uvs)
    if (before.sub_uvs is None) != (after.sub_uvs is None):
        return None
    if before.sub_uvs is not None:
        moved |= _rows_differ(before.sub_uvs, after.sub_uvs)
    restyled = _rows_differ(before.materials, after.materials)
    return _any_column(moved[faces]) | restyled[face_material]


def redraw_box(before: DrawInputs, after: DrawInputs, faces: np.ndarray,
               face_material: np.ndarray, camera: Camera,
               scale: int) -> tuple[int, int, int, int] | None:
    """(x, y, width, height) in GL window pixels (first row at the bottom) that holds every
    difference between the frames drawn from ``before`` and ``after``; (0, 0, 0, 0) when
    they are the same frame, None when the box would be most of the image.

    ``camera`` drew both, into an image ``scale`` times its size a side (supersampling).
    """
    changed = changed_faces(before, after, faces, face_material)
    if changed is None:
        return None
    if not changed.any():
        return (0, 0, 0, 0)
    corners = np.unique(faces[changed])
    points = np.concatenate([before.positions[corners], after.positions[corners]])
    pixels = camera.to_pixels(points) * scale
    width = height = camera.size * scale
    pixels[:, 1] = height - pixels[:, 1]  # GL's rows count from the bottom
    if not np.isfinite(pixels).all():
        return None
    low = np.floor(pixels.min(axis=0)) - 1
    high = np.ceil(pixels.max(axis=0)) + 1
    low = np.clip(np.floor(low / ALIGN) * ALIGN, 0, [width, height]).astype(int)
    high = np.clip(np.ceil(high / ALIGN) * ALIGN, 0, [width, height]).astype(int)
    size = np.maximum(high - low, 0)
    if size.prod() > WHOLE_SHARE * width * height:
        return None
    return (int(low[0]), int(low[1]), int(size[0]), int(size[1]))


def _rows_differ(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N,) bool: rows that differ (NaN rows count as differing, conservatively)."""
    return _any_column(a != b)


def _any_column(flags: np.ndarray) -> np.ndarray:
    """``flags.any(axis=1)`` for few columns, column by column: ~7x faster on 50k rows."""
    result = flags[:, 0].copy()
    for column in range(1, flags.shape[1]):
        result |= flags[:, column]
    return result
