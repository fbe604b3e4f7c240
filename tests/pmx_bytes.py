"""A tiny PMX file packed by hand, independent of the project's writer, so the
reader is checked against the specification rather than against itself."""

from __future__ import annotations

import struct


def text(value: str) -> bytes:
    raw = value.encode("utf-16-le")
    return struct.pack("<i", len(raw)) + raw


def triangle_pmx(version: float = 2.0, deform: int = 0, morphs: bytes = b"", morph_count=0,
                 trailer: bytes = b"") -> bytes:
    """One triangle, one material, one bone; all index sizes 1.

    deform: 0 BDEF1 or 4 QDEF (PMX 2.1). morphs: packed morph records.
    """
    out = b"PMX " + struct.pack("<f", version) + bytes([8, 0, 0, 1, 1, 1, 1, 1, 1])
    out += text("triangle") + text("triangle") + text("") + text("")
    out += struct.pack("<i", 3)
    for x, y in ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0)):
        out += struct.pack("<8f", x, y, 0.0, 0.0, 0.0, -1.0, x, y)
        if deform == 4:
            out += bytes([4]) + struct.pack("<4b4f", 0, -1, -1, -1, 1.0, 0.0, 0.0, 0.0)
        else:
            out += bytes([0]) + struct.pack("<b", 0)
        out += struct.pack("<f", 1.0)
    out += struct.pack("<i", 3) + bytes([0, 1, 2])
    out += struct.pack("<i", 0)  # textures
    out += struct.pack("<i", 1) + text("mat") + text("mat")
    out += struct.pack("<4f3ff3f", 1, 1, 1, 1, 0, 0, 0, 5, 0.5, 0.5, 0.5)
    out += bytes([0x01]) + struct.pack("<4ff", 0, 0, 0, 1, 1.0)
    out += struct.pack("<bbBBb", -1, -1, 0, 1, 0) + text("") + struct.pack("<i", 3)
    out += struct.pack("<i", 1) + text("センター") + text("center")
    out += struct.pack("<3fbiH", 0, 0, 0, -1, 0, 0x001B) + struct.pack("<b", -1)
    out += struct.pack("<i", morph_count) + morphs
    out += struct.pack("<iii", 0, 0, 0)  # display slots, rigid bodies, joints
    return out + trailer


def morph(name: str, panel: int, kind: int, records: list[bytes]) -> bytes:
    return text(name) + text(name) + bytes([panel, kind]) + struct.pack("<i", len(records)) + \
        b"".join(records)


def flip_and_impulse_morphs() -> tuple[bytes, int]:
    """A vertex morph, a flip morph (type 9) and an impulse morph (type 10)."""
    records = [
        morph("あ", 3, 1, [struct.pack("<B3f", 2, 0.0, -0.5, 0.0)]),
        morph("flip", 4, 9, [struct.pack("<bf", 0, 1.0)]),
        morph("impulse", 4, 10, [struct.pack("<bB3f3f", 0, 0, 0, 0, 1, 0, 0, 0)]),
    ]
    return b"".join(records), len(records)
