"""Motion (VMD) and pose (VPD) files from keyframe arrays in MMD's own frame.

What the tests write motions with known contents through, and what a user can
write a motion with (e.g. a pose track turned back into bone keys). The
layout is the reader's (:mod:`mmdrender.formats.vmd`); MMD's physics flags may
be written into row 0's bytes 2 and 3, as MMD does, to check that readers
take each channel from its own row.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmdrender.formats.vmd import (
    _ENCODING,
    BONE_KEY,
    LINEAR,
    MORPH_KEY,
    SIGNATURE,
    VPD_SIGNATURE,
    encode_name,
)


@dataclass(frozen=True)
class BoneKey:
    """One bone keyframe in the file's frame; ``curves``: per channel (x, y, z, rotation)
    the Bézier control points (x1, y1, x2, y2) in 0..127, for the segment ending here."""

    name: str
    frame: int
    position: Sequence[float] = (0.0, 0.0, 0.0)
    rotation: Sequence[float] = (0.0, 0.0, 0.0, 1.0)  # xyzw
    curves: Sequence[Sequence[int]] = (LINEAR, LINEAR, LINEAR, LINEAR)


@dataclass(frozen=True)
class MorphKey:
    name: str
    frame: int
    weight: float


def interpolation_bytes(curves, physics: tuple[int, int] | None = None) -> np.ndarray:
    """The 64 interpolation bytes of one key: row r is the 16-value sequence shifted by r."""
    points = np.asarray(curves, dtype=np.uint8).reshape(4, 4)  # channel, (x1 y1 x2 y2)
    sequence = points.T.reshape(16)  # x1 of X Y Z R, y1 of X Y Z R, ...
    rows = np.zeros((4, 16), np.uint8)
    for r in range(4):
        rows[r, :16 - r] = sequence[r:]
    if physics is not None:
        rows[0, 2:4] = physics
    return rows.reshape(64)


def vmd_bytes(model_name: str, bones: Sequence[BoneKey] = (), morphs: Sequence[MorphKey] = (),
              physics: tuple[int, int] | None = None, tail: bool = True) -> bytes:
    """A VMD file. ``tail``: write the (empty) camera, light, shadow and IK sections."""
    keys = np.zeros(len(bones), BONE_KEY)
    for i, key in enumerate(bones):
        keys[i] = (encode_name(key.name), key.frame, key.position, key.rotation,
                   interpolation_bytes(key.curves, physics))
    morph_keys = np.zeros(len(morphs), MORPH_KEY)
    for i, key in enumerate(morphs):
        morph_keys[i] = (encode_name(key.name), key.frame, key.weight)
    parts = [SIGNATURE.ljust(30, b"\0"), encode_name(model_name, 20),
             struct.pack("<I", len(keys)), keys.tobytes(),
             struct.pack("<I", len(morph_keys)), morph_keys.tobytes()]
    if tail:
        parts.append(struct.pack("<4I", 0, 0, 0, 0))
    return b"".join(parts)


def vpd_text(model_file: str, bones: Sequence[BoneKey] = (),
             morphs: Sequence[MorphKey] = ()) -> bytes:
    """A VPD pose (Shift-JIS) of ``bones`` and ``morphs``; frames and curves are ignored."""
    lines = [VPD_SIGNATURE, "", f"{model_file};\t\t// 親ファイル名", f"{len(bones)};", ""]
    for i, key in enumerate(bones):
        lines += [f"Bone{i}{{{key.name}",
                  "  " + ",".join(f"{v:.6f}" for v in key.position) + ";",
                  "  " + ",".join(f"{v:.6f}" for v in key.rotation) + ";", "}", ""]
    for i, key in enumerate(morphs):
        lines += [f"Morph{i}{{{key.name}", f"  {key.weight:.6f};", "}", ""]
    return "\r\n".join(lines).encode(_ENCODING)
