"""VMD (motion) and VPD (pose) files -> keyframe arrays, still in MMD's frame.

Our own reader rather than pymeshio's: pymeshio 3.0.1 compares the NUL-padded
30-byte signature exactly and so rejects files MMD itself writes (the shared
sample among them), and builds one Python object per keyframe where a motion
has tens of thousands; a fixed-size record reads here in one ``np.frombuffer``.
Counts are checked against the bytes left before anything is allocated, as for
models (:mod:`mmdrender.formats.binary`).

Layout (wide-schemas.md section 6): a 30-byte signature, the model name (20
bytes; 10 in the old "Vocaloid Motion Data file" version), bone keyframes
(15-byte name, u32 frame, 3 floats position, 4 floats quaternion xyzw, 64
bytes of interpolation), morph keyframes (15-byte name, u32 frame, float
weight), then camera, light, self-shadow and IK/visibility sections, which older
files omit and which are not read.

The 64 interpolation bytes are four rows of 16; row ``r`` is the sequence
``x1 of channels X Y Z R, y1 of X Y Z R, x2 ..., y2 ...`` shifted left by ``r``.
Channel ``c`` (0-2 translation x y z, 3 rotation) is therefore read from row
``c`` at bytes ``16c, 16c+4, 16c+8, 16c+12``. Row 0 alone would do for every
channel but MMD reuses its bytes 2 and 3 (the z and rotation ``x1``) for
physics flags: reading row 0 only gets those two curves wrong.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

import numpy as np

from mmdrender.formats.binary import FormatError

SIGNATURE = b"Vocaloid Motion Data 0002"
OLD_SIGNATURE = b"Vocaloid Motion Data file"  # version 1: a 10-byte model name
VPD_SIGNATURE = "Vocaloid Pose Data file"
NAME_BYTES = 15
LINEAR = (20, 20, 107, 107)  # MMD's straight line, x1 y1 x2 y2 in 0..127
_ENCODING = "cp932"  # Shift-JIS as Windows writes it

BONE_KEY = np.dtype([("name", f"S{NAME_BYTES}"), ("frame", "<u4"), ("position", "<f4", 3),
                     ("rotation", "<f4", 4), ("curves", "u1", 64)])
MORPH_KEY = np.dtype([("name", f"S{NAME_BYTES}"), ("frame", "<u4"), ("weight", "<f4")])
# Beyond these a value is damage, not motion (MMD units are about 8 cm; a day is 2.6M frames).
MAX_POSITION = 1e6
MAX_QUATERNION = 1e3  # stored unnormalised by some tools, but never wildly so
MAX_WEIGHT = 1e3
MAX_FRAME = 30 * 3600 * 24


@dataclass(frozen=True)
class Tracks:
    """Keyframes of one kind grouped by name: the arrays hold every key, K of them.

    ``names``: one raw name per track (bytes up to the first NUL, as stored:
    Shift-JIS, possibly cut mid-character at 15 bytes); ``track``: (K,) int64
    index into ``names``; ``frames``: (K,) int64. Bone keys add ``positions``
    (K, 3) and ``rotations`` (K, 4) xyzw float32 and ``curves`` (K, 4, 4)
    uint8, channel (x, y, z, rotation) by (x1, y1, x2, y2); morph keys add
    ``weights`` (K,) float32.
    """

    names: tuple[bytes, ...]
    track: np.ndarray
    frames: np.ndarray
    values: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frames)


@dataclass(frozen=True)
class RawMotion:
    """A motion or pose file's contents in the file's own (left-handed) frame."""

    kind: str  # "vmd" or "vpd"
    model_name: str
    bones: Tracks
    morphs: Tracks


def decode_name(raw: bytes) -> str:
    """A stored name as text; a character cut at the 15-byte limit is dropped, and bytes
    that are not Shift-JIS show as escapes."""
    for candidate in (raw, raw[:-1]):
        try:
            return candidate.decode(_ENCODING)
        except UnicodeDecodeError:
            continue
    return raw.decode(_ENCODING, errors="backslashreplace")


def encode_name(name: str, size: int = NAME_BYTES) -> bytes:
    """``name`` as stored: Shift-JIS cut to ``size`` bytes (not mid-character), NUL-padded."""
    raw = name.encode(_ENCODING)
    while len(raw) > size:
        name = name[:-1]
        raw = name.encode(_ENCODING)
    return raw.ljust(size, b"\0")


def stored_name(name: str, whole: bool = False) -> bytes:
    """What a VMD keeps of a model's ``name``: its first 15 Shift-JIS bytes (``whole``:
    all of them). A name with characters Shift-JIS lacks cannot be in a VMD: empty bytes.
    """
    try:
        raw = name.encode(_ENCODING)
    except UnicodeEncodeError:
        return b""
    return raw if whole else raw[:NAME_BYTES]


class _Cursor:
    def __init__(self, data: bytes):
        self.data, self.at = data, 0

    def left(self) -> int:
        return len(self.data) - self.at

    def take(self, size: int, what: str) -> bytes:
        if size > self.left():
            raise FormatError(f"file ends early in the {what}: needs {size} bytes at byte "
                              f"{self.at}, {self.left()} left (truncated download?)")
        chunk = self.data[self.at:self.at + size]
        self.at += size
        return chunk

    def count(self, record_bytes: int, what: str) -> int | None:
        """A section's key count, or None where the file ends before the section."""
        if self.left() == 0:
            return None
        (number,) = struct.unpack("<I", self.take(4, f"{what} count"))
        if number * record_bytes > self.left():
            raise FormatError(f"the {what} section claims {number} keys ({number * record_bytes} "
                              f"bytes) but only {self.left()} bytes follow (truncated or "
                              "not a motion file)")
        return number

    def records(self, dtype: np.dtype, what: str) -> np.ndarray:
        number = self.count(dtype.itemsize, what)
        if number is None:
            return np.zeros(0, dtype)
        return np.frombuffer(self.take(number * dtype.itemsize, what), dtype=dtype)


def read_vmd(data: bytes) -> RawMotion:
    """Parse a VMD file's bytes; raises :class:`FormatError` saying what is wrong."""
    cursor = _Cursor(data)
    signature = cursor.take(30, "signature").split(b"\0", 1)[0]
    if signature == SIGNATURE:
        name_bytes = 20
    elif signature == OLD_SIGNATURE:
        name_bytes = 10
    else:
        raise FormatError(f"not a VMD motion: starts with {data[:30].rstrip(bytes(1))!r}, "
                          f"expected {SIGNATURE.decode()!r}")
    model_name = decode_name(cursor.take(name_bytes, "model name").split(b"\0", 1)[0])
    bone_keys = cursor.records(BONE_KEY, "bone keyframe")
    morph_keys = cursor.records(MORPH_KEY, "morph keyframe")
    _check_values(bone_keys["position"], bone_keys["rotation"], morph_keys["weight"])
    frames = np.concatenate([bone_keys["frame"], morph_keys["frame"]]).astype(np.int64)
    if len(frames) and frames.max() > MAX_FRAME:
        raise FormatError(f"a keyframe is at frame {int(frames.max())}, beyond any real motion "
                          f"(frame {MAX_FRAME}, {MAX_FRAME / 30 / 3600:.0f} hours, at most); "
                          "the file is damaged")
    curves = bone_keys["curves"].reshape(-1, 4, 16)[:, :, 0::4]  # row c, bytes 0 4 8 12
    bones = _tracks(bone_keys["name"], bone_keys["frame"],
                    positions=bone_keys["position"].astype(np.float32),
                    rotations=bone_keys["rotation"].astype(np.float32),
                    curves=np.ascontiguousarray(curves, dtype=np.uint8))
    morphs = _tracks(morph_keys["name"], morph_keys["frame"],
                     weights=morph_keys["weight"].astype(np.float32))
    return RawMotion("vmd", model_name, bones, morphs)


def _check_values(positions, rotations, weights) -> None:
    """Refuse keys holding NaN, infinity or numbers no real motion has."""
    for name, values, largest in (("bone", positions, MAX_POSITION),
                                  ("bone", rotations, MAX_QUATERNION),
                                  ("morph", weights, MAX_WEIGHT)):
        if not len(values):
            continue
        flat = np.asarray(values, np.float64).reshape(len(values), -1)
        bad = ~(np.abs(flat) <= largest).all(axis=1)  # NaN fails too
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            shown = ", ".join(f"{v:g}" for v in flat[row])
            raise FormatError(f"{name} keyframe {row} holds [{shown}]: not finite, "
                              f"or beyond any real motion (|value| <= {largest:g}); the file "
                              "is damaged")


def _tracks(names: np.ndarray, frames: np.ndarray, **values) -> Tracks:
    """Keys grouped by name (first appearance order); raw names cut at their first NUL."""
    raw = [bytes(n).split(b"\0", 1)[0] for n in names.tolist()]
    order: dict[bytes, int] = {}
    track = np.array([order.setdefault(n, len(order)) for n in raw], dtype=np.int64)
    return Tracks(tuple(order), track, frames.astype(np.int64), values)


_VPD_BONE = re.compile(r"Bone\d*\{(?P<name>[^\n]*)\n\s*(?P<pos>[^;{}]*);\s*(?P<rot>[^;{}]*);")
_VPD_MORPH = re.compile(r"Morph\d*\{(?P<name>[^\n]*)\n\s*(?P<weight>[^;{}]*);")


def read_vpd(data: bytes) -> RawMotion:
    """Parse a VPD pose: one frame (0) of bone and morph keys."""
    try:  # Shift-JIS Japanese is almost never valid UTF-8; the reverse is often valid cp932
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = data.decode(_ENCODING)
        except UnicodeDecodeError:
            raise FormatError("not a VPD pose: the text is neither Shift-JIS nor UTF-8") from None
    text = re.sub(r"//[^\n]*", "", text.replace("\r\n", "\n").replace("\r", "\n"))
    if not text.lstrip("\ufeff").startswith(VPD_SIGNATURE):
        raise FormatError(f"not a VPD pose: the first line is not {VPD_SIGNATURE!r}")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    model_name = lines[1].rstrip(";") if len(lines) > 1 else ""
    names, positions, rotations = [], [], []
    for match in _VPD_BONE.finditer(text):
        names.append(match["name"].strip())
        positions.append(_numbers(match["pos"], 3, f"bone {match['name'].strip()!r} position"))
        rotations.append(_numbers(match["rot"], 4, f"bone {match['name'].strip()!r} rotation"))
    morph_names, weights = [], []
    for match in _VPD_MORPH.finditer(text):
        morph_names.append(match["name"].strip())
        weights.append(_numbers(match["weight"], 1, f"morph {match['name'].strip()!r}")[0])
    header = re.split(r"(?:Bone|Morph)\d*\{", text.split(VPD_SIGNATURE, 1)[1], maxsplit=1)[0]
    declared = re.search(r"^\s*(\d+)\s*;", header, re.MULTILINE)
    if declared and int(declared[1]) != len(names):
        raise FormatError(f"the pose declares {declared[1]} bones but holds {len(names)} "
                          "readable Bone{...} blocks (truncated or damaged)")

    def raw(values):
        return np.array([v.encode(_ENCODING, errors="replace") for v in values],
                        dtype=object)

    _check_values(np.array(positions, np.float64).reshape(-1, 3),
                  np.array(rotations, np.float64).reshape(-1, 4), np.array(weights, np.float64))
    bones = _tracks(raw(names), np.zeros(len(names), np.int64),
                    positions=np.array(positions, np.float32).reshape(-1, 3),
                    rotations=np.array(rotations, np.float32).reshape(-1, 4),
                    curves=np.tile(np.array(LINEAR, np.uint8), (len(names), 4, 1)))
    morphs = _tracks(raw(morph_names), np.zeros(len(morph_names), np.int64),
                     weights=np.array(weights, np.float32))
    return RawMotion("vpd", model_name, bones, morphs)


def _numbers(text: str, count: int, what: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise FormatError(f"{what}: {text.strip()!r} is not {count} numbers") from None
    if len(values) != count or not all(np.isfinite(values)):
        raise FormatError(f"{what}: {text.strip()!r} is not {count} finite numbers")
    return values
