"""Tiny PMX and PMD files packed by hand, independent of the project's writer, so the
readers are checked against the specifications rather than against themselves."""

from __future__ import annotations

import struct

INDEX_FORMATS = {1: "b", 2: "h", 4: "i"}  # signed PMX indices
VERTEX_INDEX_FORMATS = {1: "B", 2: "H", 4: "i"}  # vertex indices: unsigned below 4 bytes


def text(value: str) -> bytes:
    raw = value.encode("utf-16-le")
    return struct.pack("<i", len(raw)) + raw


def vertex(x: float, y: float, deform: bytes = b"\x00\x00", normal=(0.0, 0.0, -1.0),
           uv=None) -> bytes:
    """One PMX vertex; ``deform`` is the type byte and its fields (default BDEF1 on bone 0)."""
    u, v = uv if uv is not None else (x, y)
    return struct.pack("<8f", x, y, 0.0, *normal, u, v) + deform + struct.pack("<f", 1.0)


def bone(name: str, parent: int = -1, position=(0.0, 0.0, 0.0), flags: int = 0x001B,
         ik: bytes = b"", index_size: int = 1) -> bytes:
    """One PMX bone with a tail bone of -1 (flag 0x1); ``ik`` follows when flags has 0x20."""
    index = "<" + INDEX_FORMATS[index_size]
    return (text(name) + text(name) + struct.pack("<3f", *position) + struct.pack(index, parent)
            + struct.pack("<iH", 0, flags) + struct.pack(index, -1) + ik)


def ik(target: int, links: list[int], link_count: int | None = None, limit_flag: int = 0,
       index_size: int = 1) -> bytes:
    """A PMX IK block; ``link_count`` overrides the count written before the links."""
    index = "<" + INDEX_FORMATS[index_size]
    count = len(links) if link_count is None else link_count
    out = struct.pack(index, target) + struct.pack("<if", 10, 1.0) + struct.pack("<i", count)
    return out + b"".join(struct.pack(index, link) + bytes([limit_flag]) for link in links)


def triangle_pmx(version: float = 2.0, deform: int = 0, morphs: bytes = b"", morph_count=0,
                 trailer: bytes = b"", *, vertices: list[bytes] | None = None,
                 indices=(0, 1, 2), vertex_size: int = 1, textures=(), texture: int = -1,
                 toon: int = 0, index_count: int | None = None, bones: list[bytes] | None = None,
                 bone_size: int = 1, slots: bytes | None = None) -> bytes:
    """One triangle, one material, one bone; index sizes 1 unless given.

    deform: 0 BDEF1 or 4 QDEF (PMX 2.1). morphs: packed morph records.
    vertices, bones: packed records (see `vertex`, `bone`) replacing the defaults.
    texture, toon: the material's texture index and shared toon number (0 = toon01).
    index_count: the material's face-index count (default: all). slots: the display
    slot section from its count on (default: none).
    """
    out = b"PMX " + struct.pack("<f", version)
    out += bytes([8, 0, 0, vertex_size, 1, 1, bone_size, 1, 1])
    out += text("triangle") + text("triangle") + text("") + text("")
    if vertices is None:
        vertices = []
        for x, y in ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0)):
            if deform == 4:
                record = bytes([4]) + struct.pack("<4b4f", 0, -1, -1, -1, 1.0, 0.0, 0.0, 0.0)
            else:
                record = bytes([0]) + bytes(bone_size)
            vertices.append(vertex(x, y, record))
    out += struct.pack("<i", len(vertices)) + b"".join(vertices)
    index = "<" + VERTEX_INDEX_FORMATS[vertex_size]
    out += struct.pack("<i", len(indices)) + b"".join(struct.pack(index, i) for i in indices)
    out += struct.pack("<i", len(textures)) + b"".join(text(t) for t in textures)
    out += struct.pack("<i", 1) + text("mat") + text("mat")
    out += struct.pack("<4f3ff3f", 1, 1, 1, 1, 0, 0, 0, 5, 0.5, 0.5, 0.5)
    out += bytes([0x01]) + struct.pack("<4ff", 0, 0, 0, 1, 1.0)
    out += struct.pack("<bbBBb", texture, -1, 0, 1, toon) + text("")
    out += struct.pack("<i", len(indices) if index_count is None else index_count)
    if bones is None:
        no_bone = struct.pack("<" + INDEX_FORMATS[bone_size], -1)
        bones = [text("センター") + text("center") + struct.pack("<3f", 0, 0, 0) + no_bone
                 + struct.pack("<iH", 0, 0x001B) + no_bone]
    out += struct.pack("<i", len(bones)) + b"".join(bones)
    out += struct.pack("<i", morph_count) + morphs
    out += struct.pack("<i", 0) if slots is None else slots
    out += struct.pack("<ii", 0, 0)  # rigid bodies, joints
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


def pmd_bone(name: str, kind: int = 0, parent: int = 0xFFFF, ik_field: int = 0) -> bytes:
    """One PMD bone (39 bytes): Shift-JIS name, parent, tail (0 = none), type, IK field."""
    return struct.pack("<20sHHBH3f", name.encode("cp932"), parent, 0, kind, ik_field, 0, 0, 0)


def pmd_ik(bone: int, target: int, links: list[int]) -> bytes:
    return struct.pack("<HHBHf", bone, target, len(links), 10, 0.5) + \
        b"".join(struct.pack("<H", link) for link in links)


def triangle_pmd(bones: list[bytes] | None = None, iks: list[bytes] = ()) -> bytes:
    """A PMD 1.0 file: one triangle, one material, the given bones (default one)."""
    bones = [pmd_bone("センター")] if bones is None else bones
    out = b"Pmd" + struct.pack("<f", 1.0) + struct.pack("<20s256s", b"triangle", b"")
    out += struct.pack("<I", 3)
    for x, y in ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0)):
        out += struct.pack("<8fHHBB", x, y, 0, 0, 0, -1, x, y, 0, 0, 100, 0)
    out += struct.pack("<I", 3) + struct.pack("<3H", 0, 1, 2)
    out += struct.pack("<I", 1) + struct.pack("<3fff3f3fbBI20s", 1, 1, 1, 1, 5, 0, 0, 0,
                                              0.5, 0.5, 0.5, 0, 1, 3, b"")
    out += struct.pack("<H", len(bones)) + b"".join(bones)
    out += struct.pack("<H", len(iks)) + b"".join(iks)
    out += struct.pack("<H", 0)  # morphs
    out += struct.pack("<BBI", 0, 0, 0)  # morph display list, bone groups, bone display list
    return out
