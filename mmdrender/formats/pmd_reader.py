"""PMD 1.0 reading on top of pymeshio.

pymeshio's PMD reader trusts every count and returns raw Shift-JIS bytes; this
subclass checks counts against the file, reads the large fixed-size tables
(vertices, indices, morph offsets) in bulk, and maps PMD's bone types and
material conventions onto the PMX-style model the rest of the project uses.
"""

from __future__ import annotations

import io

import numpy as np
import pymeshio.pmd.reader

from mmdrender.formats import frame
from mmdrender.formats.binary import ArrayReading, FormatError, floats
from mmdrender.formats.parts import ModelParts, RawMaterial
from mmdrender.model import (
    IK,
    Bone,
    BoneFlags,
    IKLink,
    MaterialFlags,
    Morph,
    MorphKind,
    MorphPanel,
    SphereMode,
    VertexMorph,
    Vertices,
)

_VERTEX = np.dtype([("position", "<f4", 3), ("normal", "<f4", 3), ("uv", "<f4", 2),
                    ("bones", "<u2", 2), ("weight", "u1"), ("no_edge", "u1")])
_BONE = np.dtype([("name", "S20"), ("parent", "<u2"), ("tail", "<u2"), ("type", "u1"),
                  ("ik", "<u2"), ("position", "<f4", 3)])
_MORPH_OFFSET = np.dtype([("vertex", "<u4"), ("offset", "<f4", 3)])
_NO_BONE = 0xFFFF


class PmdReader(ArrayReading, pymeshio.pmd.reader.Reader):
    def text(self, size: int) -> str:
        """A fixed-size, NUL-terminated Shift-JIS field; mangled bytes become U+FFFD."""
        raw = self.take(size)
        return raw.split(b"\x00", 1)[0].decode("cp932", errors="replace")

    def read_text(self, size):  # pymeshio's record readers call this; keep its bytes contract
        return self.take(size).split(b"\x00", 1)[0]


def _decode(raw: bytes) -> str:
    return raw.decode("cp932", errors="replace")


def read_pmd(data: bytes) -> ModelParts:
    """Parse a PMD file's bytes into file-order parts in the project frame."""
    if data[:3] != b"Pmd":
        raise FormatError("not a PMD file (no 'Pmd' signature)")
    reader = PmdReader(io.BytesIO(data), 1.0)
    reader.take(3)
    version = reader.read_float()
    warnings = [] if version == 1.0 else [f"unknown PMD version {version:g}; read as 1.0"]
    name, comment = reader.text(20), reader.text(256)

    rows = reader.read_array(_VERTEX, reader.read_count(4, _VERTEX.itemsize, "vertices",
                                                        signed=False))
    weights = np.zeros((len(rows), 4), dtype=np.float32)
    weights[:, 0] = np.minimum(rows["weight"], 100) / 100.0
    weights[:, 1] = 1.0 - weights[:, 0]
    indices = np.full((len(rows), 4), -1, dtype=np.int32)
    indices[:, :2] = rows["bones"]
    vertices = Vertices(
        positions=rows["position"], normals=rows["normal"], uvs=rows["uv"],
        extra_uvs=np.zeros((len(rows), 0, 4), dtype=np.float32),
        skinning=np.ones(len(rows), dtype=np.uint8),  # BDEF2
        bone_indices=indices, bone_weights=weights,
        sdef=np.zeros((len(rows), 3, 3), dtype=np.float32),
        edge_scale=(rows["no_edge"] == 0).astype(np.float32))

    face_indices = reader.read_array("<u2", reader.read_count(4, 2, "face indices", signed=False))
    materials = [reader.record(reader.read_material, f"material {i}")
                 for i in range(reader.read_count(4, 70, "materials", signed=False))]
    bones = reader.read_array(_BONE, reader.read_count(2, _BONE.itemsize, "bones", signed=False))
    iks = [reader.record(reader.read_ik, f"IK chain {i}")
           for i in range(reader.read_count(2, 11, "IK chains", signed=False))]
    morph_count = reader.read_count(2, 25, "morphs", signed=False)
    morphs = []
    for _ in range(morph_count):
        morph_name = reader.text(20)
        size = reader.read_count(4, _MORPH_OFFSET.itemsize, f"offsets of morph {morph_name!r}",
                                 signed=False)
        panel = reader.take(1)[0]
        morphs.append((morph_name, panel, reader.read_array(_MORPH_OFFSET, size)))
    reader.section = "display lists"
    reader.take(2 * reader.read_count(1, 2, "morph display list", signed=False))
    group_count = reader.read_count(1, 50, "bone groups", signed=False)
    reader.take(50 * group_count)
    reader.take(3 * reader.read_count(4, 3, "bone display list", signed=False))

    english_name, english_comment = "", ""
    bone_english = [""] * len(bones)
    morph_english = [""] * morph_count
    if reader.remaining() and reader.take(1)[0] == 1:
        reader.section = "English names"
        english_name, english_comment = reader.text(20), reader.text(256)
        bone_english = [reader.text(20) for _ in bones]
        morph_english = [""] + [reader.text(20) for _ in range(max(morph_count - 1, 0))]
        reader.take(50 * group_count)
    toon_names = [f"toon{i:02d}.bmp" for i in range(1, 11)]
    if reader.remaining():
        reader.section = "toon textures"
        toon_names = [reader.text(100) for _ in range(10)]
    # Rigid bodies and joints follow; physics is not simulated, so they are not read.

    return ModelParts(
        format="pmd 1.0", name=name, english_name=english_name, comment=comment,
        english_comment=english_comment, vertices=vertices,
        indices=face_indices.astype(np.int64),
        materials=[_material(m, toon_names) for m in materials],
        bones=_bones(bones, iks, bone_english, warnings),
        morphs=_morphs(morphs, morph_english, len(rows), warnings), warnings=warnings)


def _material(m, toon_names: list[str]) -> RawMaterial:
    texture, sphere, sphere_mode = None, None, SphereMode.NONE
    for part in _decode(m.texture_file).split("*"):
        part = part.strip()
        suffix = part.lower().rsplit(".", 1)[-1] if "." in part else ""
        if suffix in ("sph", "spa"):
            sphere = part
            sphere_mode = SphereMode.MULTIPLY if suffix == "sph" else SphereMode.ADD
        elif part:
            texture = part
    flags = MaterialFlags(0)
    if m.alpha < 1.0:  # MMD draws translucent PMD materials without culling
        flags |= MaterialFlags.DOUBLE_SIDED
    if m.edge_flag:
        flags |= MaterialFlags.EDGE
    if abs(m.alpha - 0.98) > 1e-4:  # 0.98 is PMD's "no shadow" marker
        flags |= (MaterialFlags.GROUND_SHADOW | MaterialFlags.CAST_SELF_SHADOW
                  | MaterialFlags.RECEIVE_SELF_SHADOW)
    toon_index = m.toon_index & 0xFF
    return RawMaterial(
        name="", english_name="",
        diffuse=np.append(floats(m.diffuse_color, 3), np.float32(m.alpha)),
        specular=floats(m.specular_color, 3),
        specular_power=float(m.specular_factor),
        ambient=floats(m.ambient_color, 3), flags=int(flags),
        edge_colour=np.array([0, 0, 0, 1], dtype=np.float32), edge_size=1.0,
        texture=texture, sphere=sphere, sphere_mode=int(sphere_mode),
        toon=toon_names[toon_index] if toon_index < 10 else None,
        index_count=m.vertex_count)


def _bones(rows: np.ndarray, iks, english_names: list[str], warnings: list[str]) -> list[Bone]:
    """PMD bone types become PMX flags, as PMXEditor converts them.

    Type 5 (rotation-influenced) follows the rotation of its IK-field bone fully;
    type 9 (rotation-linked) follows its tail bone at ratio ik-field / 100;
    type 8 (twist) turns about the axis towards its tail. Type 3 is "unused" in
    the PMD specification and types above 9 do not exist, yet MMD loads such
    files: the type only decides how a bone is edited and linked, so these
    become plain rotatable bones with a warning rather than failing the model.
    """
    count = len(rows)
    positions = frame.vectors(rows["position"])
    chains = {ik.index: ik for ik in iks}
    result = []
    for i, (raw_name, parent, tail, kind, ik_field, _) in enumerate(rows.tolist()):
        name = _decode(raw_name.split(b"\x00", 1)[0])
        if kind == 3 or kind > 9:
            what = "the unused type 3" if kind == 3 else f"unknown type {kind}"
            warnings.append(f"bone {name!r} has {what}; treated as a plain rotatable bone")
            kind = 0
        flags = BoneFlags.ROTATABLE | BoneFlags.OPERABLE
        if kind not in (6, 7, 9):
            flags |= BoneFlags.VISIBLE
        if kind in (1, 2):
            flags |= BoneFlags.MOVABLE
        has_tail = 0 < tail < count
        if has_tail:
            flags |= BoneFlags.TAIL_IS_BONE
        append_parent, append_ratio, fixed_axis, ik = -1, 0.0, None, None
        if kind == 5 and ik_field < count:
            append_parent, append_ratio = ik_field, 1.0
        elif kind == 9 and has_tail:
            append_parent, append_ratio = tail, ik_field / 100.0
        if append_parent >= 0:
            flags |= BoneFlags.APPEND_ROTATE
        if kind == 8 and has_tail and np.isfinite(positions[[i, tail]]).all():
            axis = positions[tail].astype(np.float64) - positions[i]
            if np.linalg.norm(axis) > 0:
                flags |= BoneFlags.FIXED_AXIS
                fixed_axis = (axis / np.linalg.norm(axis)).astype(np.float32)
        if kind == 2 and i in chains:
            chain = chains[i]
            flags |= BoneFlags.IK
            ik = IK(chain.target, chain.iterations, float(chain.weight) * 4.0,
                    tuple(IKLink(int(c)) for c in chain.children))
        result.append(Bone(
            name=name, english_name=english_names[i],
            parent=-1 if parent == _NO_BONE else parent,
            position=positions[i].copy(), flags=flags, tail_bone=tail if has_tail else -1,
            tail_offset=None if has_tail else np.zeros(3, dtype=np.float32),
            append_parent=append_parent, append_ratio=append_ratio, fixed_axis=fixed_axis,
            ik=ik))
    return result


def _morphs(morphs, english_names: list[str], vertex_count: int,
            warnings: list[str]) -> list[Morph]:
    """PMD morphs index into the 'base' morph's vertex list; resolve to model vertices."""
    if not morphs:
        return []
    base_name, base_panel, base = morphs[0]
    if base_panel != 0:
        warnings.append("PMD morphs have no 'base' entry; facial morphs ignored")
        return []
    base_vertices = base["vertex"].astype(np.int64)
    if base_vertices.size and base_vertices.max() >= vertex_count:
        raise FormatError(f"morph 'base' refers to vertex {base_vertices.max()} but the model "
                          f"has {vertex_count}")
    result = []
    for (name, panel, rows), english in zip(morphs[1:], english_names[1:], strict=True):
        slots = rows["vertex"].astype(np.int64)
        valid = slots < len(base_vertices)
        if not valid.all():
            warnings.append(f"morph {name!r}: {int((~valid).sum())} offsets outside 'base' dropped")
        result.append(Morph(
            name=name, english_name=english,
            panel=MorphPanel(panel) if panel <= 4 else MorphPanel.OTHER, kind=MorphKind.VERTEX,
            data=VertexMorph(base_vertices[slots[valid]].astype(np.int32),
                             frame.vectors(rows["offset"][valid]))))
    return result
