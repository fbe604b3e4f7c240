"""PMX 2.0/2.1 reading on top of pymeshio.

pymeshio 3.0.1 refuses additional UVs (and crashes in its own error path doing
so), stops at PMX 2.1's QDEF deforms and flip/impulse morphs, and reads every
vertex as a Python object. This subclass keeps pymeshio's record readers for
materials, bones, display slots and physics, and replaces the parts that fail or
are slow: the header, vertices, indices and morphs are read here, in bulk.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import pymeshio.common
import pymeshio.pmx.reader

from mmdrender.formats import frame
from mmdrender.formats.binary import ArrayReading, FormatError, floats, index_dtype
from mmdrender.formats.parts import ModelParts, RawMaterial
from mmdrender.model import (
    IK,
    Bone,
    BoneFlags,
    BoneMorph,
    GroupMorph,
    IKLink,
    MaterialMorph,
    Morph,
    MorphKind,
    MorphPanel,
    UnsupportedMorph,
    UVMorph,
    VertexMorph,
    Vertices,
)

# Bytes of a deform record after the type byte, given the bone index size b.
_DEFORM_BYTES = {0: lambda b: b, 1: lambda b: 2 * b + 4, 2: lambda b: 4 * b + 16,
                 3: lambda b: 2 * b + 40, 4: lambda b: 4 * b + 16}


class PmxReader(ArrayReading, pymeshio.pmx.reader.Reader):
    def __init__(self, ios: io.BytesIO, encoding: int, extra_uvs: int, sizes: dict[str, int]):
        # pymeshio raises on extra UVs, so tell it there are none and handle them here.
        super().__init__(ios, encoding, 0, sizes["vertex"], sizes["texture"], sizes["material"],
                         sizes["bone"], sizes["morph"], sizes["rigidbody"])
        self.codec = "utf-16-le" if encoding == 0 else "utf-8"
        self.extra_uvs = extra_uvs
        self.sizes = sizes
        self.warnings: list[str] = []
        self.bone_count = 0  # known once the bone section starts

    def read_text(self) -> str:
        size = struct.unpack("<i", self.take(4))[0]
        if size < 0:
            raise FormatError(f"negative text length {size} in the {self.section} section")
        # Mangled text (zip tools, broken editors) must not stop a load.
        return self.take(size).decode(self.codec, errors="replace")

    def read_vertices(self) -> Vertices:
        b = self.sizes["bone"]
        head = 32 + 16 * self.extra_uvs  # position, normal, uv, additional uvs
        count = self.read_count(4, head + 1 + b + 4, "vertices")
        buffer = self.ios.getbuffer()
        start = self.ios.tell()
        # Records vary in size with the deform type: one cheap pass finds offsets,
        # then every field is gathered with numpy.
        sizes = {t: head + 1 + size(b) + 4 for t, size in _DEFORM_BYTES.items()}
        offsets = np.empty(count, dtype=np.int64)
        types = np.empty(count, dtype=np.uint8)
        offset, end = start, self.end
        for i in range(count):
            if offset + head >= end:
                break
            kind = buffer[offset + head]
            if kind not in sizes:
                raise FormatError(
                    f"vertex {i} has unknown deform type {kind} (byte {offset + head})")
            offsets[i], types[i] = offset, kind
            offset += sizes[kind]
        else:
            i = count
        del buffer
        if i < count or offset > end:
            raise FormatError(f"file ends early in the vertices section ({count} vertices "
                              "declared; truncated download?)")
        self.ios.seek(offset)
        data = np.frombuffer(self.ios.getbuffer(), dtype=np.uint8)

        def gather(at: np.ndarray, dtype, n: int) -> np.ndarray:
            dtype = np.dtype(dtype)
            columns = at[:, None] + np.arange(n * dtype.itemsize)
            return data[columns].copy().view(dtype).reshape(len(at), n)

        floats = gather(offsets, "<f4", head // 4)
        bone_dtype = index_dtype(b)
        indices = np.full((count, 4), -1, dtype=np.int32)
        weights = np.zeros((count, 4), dtype=np.float32)
        sdef = np.zeros((count, 3, 3), dtype=np.float32)
        edge = np.empty(count, dtype=np.float32)
        for kind, n_bones in ((0, 1), (1, 2), (2, 4), (3, 2), (4, 4)):
            rows = np.flatnonzero(types == kind)
            if rows.size == 0:
                continue
            at = offsets[rows] + head + 1
            indices[rows, :n_bones] = gather(at, bone_dtype, n_bones)
            at = at + n_bones * b
            if kind == 0:
                weights[rows, 0] = 1.0
            elif kind in (1, 3):
                w = gather(at, "<f4", 1)[:, 0]
                with np.errstate(invalid="ignore"):  # the loader reports NaN weights
                    weights[rows, 0], weights[rows, 1] = w, 1.0 - w
                if kind == 3:
                    sdef[rows] = gather(at + 4, "<f4", 9).reshape(-1, 3, 3)
            else:
                weights[rows] = gather(at, "<f4", 4)
            edge[rows] = gather(offsets[rows] + sizes[kind] - 4, "<f4", 1)[:, 0]
        return Vertices(
            positions=floats[:, 0:3], normals=floats[:, 3:6], uvs=floats[:, 6:8],
            extra_uvs=floats[:, 8:].reshape(count, self.extra_uvs, 4),
            skinning=types, bone_indices=indices, bone_weights=weights, sdef=sdef,
            edge_scale=edge)

    def read_ik(self):
        """pymeshio's, with the link count checked before the links are read."""
        ik = pymeshio.pmx.Ik(target_index=self.read_bone_index(), loop=self.read_int(4),
                             limit_radian=self.read_float())
        count = self.read_count(4, self.sizes["bone"] + 1, "IK links")
        if count > self.bone_count:
            raise FormatError(f"an IK chain has {count} links but the model has only "
                              f"{self.bone_count} bones (corrupt file?)")
        ik.link = [self.read_ik_link() for _ in range(count)]
        return ik

    def read_display_slot(self) -> None:
        """Skip one display slot (not used for rendering), its entry count checked first."""
        self.read_text()  # name
        self.read_text()  # English name
        self.take(1)  # special-slot flag
        entry_bytes = {0: self.sizes["bone"], 1: self.sizes["morph"]}
        count = self.read_count(4, 1 + min(entry_bytes.values()), "display slot entries")
        for _ in range(count):
            kind = self.take(1)[0]
            if kind not in entry_bytes:
                raise FormatError(f"display slot entry of unknown type {kind}")
            self.take(entry_bytes[kind])

    def read_indices(self) -> np.ndarray:
        size = self.sizes["vertex"]
        count = self.read_count(4, size, "face indices")
        return self.read_array(index_dtype(size, unsigned=True), count).astype(np.int64)

    def read_morph(self) -> Morph:
        name, english_name = self.read_text(), self.read_text()
        panel, kind = self.take(1)[0], self.take(1)[0]
        s = self.sizes
        records = {
            MorphKind.GROUP: [("morph", index_dtype(s["morph"])), ("weight", "<f4")],
            MorphKind.FLIP: [("morph", index_dtype(s["morph"])), ("weight", "<f4")],
            MorphKind.VERTEX: [("vertex", index_dtype(s["vertex"], True)), ("offset", "<f4", 3)],
            MorphKind.BONE: [("bone", index_dtype(s["bone"])), ("move", "<f4", 3),
                             ("rotate", "<f4", 4)],
            MorphKind.MATERIAL: [("material", index_dtype(s["material"])), ("op", "u1"),
                                 ("diffuse", "<f4", 4), ("specular", "<f4", 3),
                                 ("power", "<f4"), ("ambient", "<f4", 3),
                                 ("edge_colour", "<f4", 4), ("edge_size", "<f4"),
                                 ("texture", "<f4", 4), ("sphere", "<f4", 4), ("toon", "<f4", 4)],
            MorphKind.IMPULSE: [("body", index_dtype(s["rigidbody"])), ("local", "u1"),
                                ("velocity", "<f4", 3), ("torque", "<f4", 3)],
        }
        for uv_kind in range(MorphKind.UV, MorphKind.UV4 + 1):
            records[MorphKind(uv_kind)] = [("vertex", index_dtype(s["vertex"], True)),
                                           ("offset", "<f4", 4)]
        if kind not in records:
            raise FormatError(f"morph {name!r} has unknown type {kind}")
        kind = MorphKind(kind)
        dtype = np.dtype(records[kind])
        count = self.read_count(4, dtype.itemsize, f"offsets of morph {name!r}")
        section = self.section
        rows = self.read_array(dtype, count)
        self.section = section
        try:
            panel = MorphPanel(panel)
        except ValueError:
            self.warnings.append(f"morph {name!r} has unknown panel {panel}; shown as 'other'")
            panel = MorphPanel.OTHER
        return Morph(name, english_name, panel, kind, _morph_data(kind, rows))


def _morph_data(kind: MorphKind, rows: np.ndarray):
    if kind == MorphKind.VERTEX:
        return VertexMorph(rows["vertex"].astype(np.int32), frame.vectors(rows["offset"]))
    if kind in (MorphKind.UV, MorphKind.UV1, MorphKind.UV2, MorphKind.UV3, MorphKind.UV4):
        return UVMorph(int(kind - MorphKind.UV), rows["vertex"].astype(np.int32),
                       rows["offset"].astype(np.float32))
    if kind == MorphKind.GROUP:
        return GroupMorph(rows["morph"].astype(np.int32), rows["weight"].astype(np.float32))
    if kind == MorphKind.BONE:
        return BoneMorph(rows["bone"].astype(np.int32), frame.vectors(rows["move"]),
                         frame.quaternions(rows["rotate"]))
    if kind == MorphKind.MATERIAL:
        return MaterialMorph(
            materials=rows["material"].astype(np.int32), additive=rows["op"] == 1,
            diffuse=rows["diffuse"].copy(), specular=rows["specular"].copy(),
            specular_power=rows["power"].copy(), ambient=rows["ambient"].copy(),
            edge_colour=rows["edge_colour"].copy(), edge_size=rows["edge_size"].copy(),
            texture_tint=rows["texture"].copy(), sphere_tint=rows["sphere"].copy(),
            toon_tint=rows["toon"].copy())
    reason = ("flip morphs (PMX 2.1) are not supported" if kind == MorphKind.FLIP
              else "impulse morphs drive physics, which is not simulated")
    return UnsupportedMorph(reason)


def _vec(v) -> np.ndarray:
    return floats(v, 3)


def read_pmx(data: bytes) -> ModelParts:
    """Parse a PMX file's bytes into file-order parts in the project frame."""
    ios = io.BytesIO(data)
    header = pymeshio.common.BinaryReader(ios)
    if header.unpack("4s", 4) != b"PMX ":
        raise FormatError("not a PMX file (no 'PMX ' signature)")
    version = round(header.read_float(), 2)
    warnings = []
    if version not in (2.0, 2.1):
        warnings.append(f"unknown PMX version {version}; read as 2.0")
    flag_count = header.read_uint(1)
    if flag_count < 8:
        raise FormatError(f"header has {flag_count} setting bytes; PMX needs 8")
    flags = ios.read(flag_count)
    if len(flags) < 8:
        raise FormatError("file ends early in the header (truncated download?)")
    encoding, extra_uvs = flags[0], flags[1]
    if encoding not in (0, 1):
        raise FormatError(f"unknown text encoding {encoding} in the header (0 UTF-16, 1 UTF-8)")
    if extra_uvs > 4:
        raise FormatError(f"header declares {extra_uvs} additional UVs; PMX allows 0 to 4")
    sizes = dict(zip(("vertex", "texture", "material", "bone", "morph", "rigidbody"),
                     flags[2:8], strict=True))
    for size in sizes.values():
        index_dtype(size)
    reader = PmxReader(ios, encoding, extra_uvs, sizes)
    reader.warnings = warnings
    name, english_name = reader.read_text(), reader.read_text()
    comment, english_comment = reader.read_text(), reader.read_text()
    vertices = reader.read_vertices()
    indices = reader.read_indices()
    textures = [reader.read_text() for _ in range(reader.read_count(4, 4, "textures"))]
    materials = [reader.record(reader.read_material, f"material {i}")
                 for i in range(reader.read_count(4, 64, "materials"))]
    reader.bone_count = reader.read_count(4, 16, "bones")
    bones = [reader.record(reader.read_bone, f"bone {i}") for i in range(reader.bone_count)]
    morphs = [reader.read_morph() for _ in range(reader.read_count(4, 14, "morphs"))]
    # Display slots and physics are not used for rendering; read them to check the file.
    for i in range(reader.read_count(4, 13, "display slots")):
        reader.record(reader.read_display_slot, f"display slot {i}")
    # Smallest records: two empty names, then fixed fields (PMX 2.0 specification).
    for i in range(reader.read_count(4, 8 + sizes["bone"] + 61, "rigid bodies")):
        reader.record(reader.read_rigidbody, f"rigid body {i}")
    for i in range(reader.read_count(4, 8 + 1 + 2 * sizes["rigidbody"] + 96, "joints")):
        reader.record(reader.read_joint, f"joint {i}")
    if reader.remaining() > 0:
        what = "soft bodies (PMX 2.1)" if version >= 2.1 else "trailing data"
        reader.warnings.append(f"{what} ignored ({reader.remaining()} bytes)")
    return ModelParts(
        format=f"pmx {version:.1f}", name=name, english_name=english_name, comment=comment,
        english_comment=english_comment, vertices=vertices, indices=indices,
        materials=[_material(m, textures, reader.warnings) for m in materials],
        bones=[_bone(b) for b in bones], morphs=morphs, warnings=reader.warnings)


def _texture(index: int, textures: list[str], material, role: str,
             warnings: list[str]) -> str | None:
    """The texture a material's index names; -1 is none, anything else out of range warns."""
    if 0 <= index < len(textures):
        return textures[index]
    if index != -1:
        warnings.append(f"material {material.name!r}: {role} index {index} is out of range "
                        f"(the file lists {len(textures)} textures); drawn without it")
    return None


def _material(m, textures: list[str], warnings: list[str]) -> RawMaterial:
    if m.toon_sharing_flag == 1:
        toon = None
        if 0 <= m.toon_texture_index < 10:
            toon = f"toon{m.toon_texture_index + 1:02d}.bmp"
        elif m.toon_texture_index != -1:
            warnings.append(f"material {m.name!r}: shared toon {m.toon_texture_index} does not "
                            "exist (MMD has 0 to 9); drawn without a toon")
    else:
        toon = _texture(m.toon_texture_index, textures, m, "toon texture", warnings)
    return RawMaterial(
        name=m.name, english_name=m.english_name,
        diffuse=np.append(floats(m.diffuse_color, 3), np.float32(m.alpha)),
        specular=floats(m.specular_color, 3), specular_power=float(m.specular_factor),
        ambient=floats(m.ambient_color, 3), flags=m.flag & 0xFF,
        edge_colour=floats(m.edge_color, 4), edge_size=float(m.edge_size),
        texture=_texture(m.texture_index, textures, m, "texture", warnings),
        sphere=_texture(m.sphere_texture_index, textures, m, "sphere texture", warnings),
        sphere_mode=m.sphere_mode, toon=toon, index_count=m.vertex_count, comment=m.comment)


def _bone(b) -> Bone:
    flags = BoneFlags(b.flag & 0xFFFF)
    ik = None
    if b.ik is not None:
        links = tuple(
            IKLink(link.bone_index, frame.angle_limits(_vec(link.limit_min), _vec(link.limit_max))
                   if link.limit_angle == 1 else None)
            for link in b.ik.link)
        ik = IK(b.ik.target_index, b.ik.loop, float(b.ik.limit_radian), links)
    appends = bool(flags & (BoneFlags.APPEND_ROTATE | BoneFlags.APPEND_TRANSLATE))
    return Bone(
        name=b.name, english_name=b.english_name, parent=b.parent_index,
        position=frame.vectors(_vec(b.position)), flags=flags, deform_layer=b.layer,
        tail_bone=b.tail_index if flags & BoneFlags.TAIL_IS_BONE else -1,
        tail_offset=None if flags & BoneFlags.TAIL_IS_BONE
        else frame.vectors(_vec(b.tail_position)),
        append_parent=b.effect_index if appends else -1,
        append_ratio=float(b.effect_factor) if appends else 0.0,
        fixed_axis=frame.vectors(_vec(b.fixed_axis)) if flags & BoneFlags.FIXED_AXIS else None,
        local_axes=frame.vectors(np.stack([_vec(b.local_x_vector), _vec(b.local_z_vector)]))
        if flags & BoneFlags.LOCAL_AXES else None,
        ik=ik)
