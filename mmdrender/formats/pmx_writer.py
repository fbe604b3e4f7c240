"""PMX 2.0 writer: pymeshio's writer plus what it leaves out.

pymeshio 3.0.1 writes PMX 2.0 but hard-codes "no additional UVs" in the header,
rejects SDEF vertices and raises "not implemented" for every morph type except
vertex morphs. :class:`PMXWriter` subclasses its writer and adds, following the
PMX 2.0 specification:

* additional UVs: the header's count K (0..4) and, per vertex, K vec4 right
  after the main UV, read from ``vertex.extra_uvs`` (a sequence of K 4-tuples:
  an attribute this module's callers set on each ``pymeshio.pmx.Vertex``);
* SDEF deforms (type 3): two bone indices, weight of the first, then C, R0, R1;
* group (0), bone (2), UV (3), additional-UV (4-7) and material (8) morphs.

Everything else -- header layout, index sizes, text as UTF-16LE -- is exactly
pymeshio's, so a model that uses only what pymeshio supports is written to the
same bytes by both writers (a test checks this).

Index sizes follow pymeshio's choice (1 byte below 128 entries, 2 below
32768, else 4), which is valid PMX: every index fits its field. Vertex indices
are unsigned for sizes 1 and 2 and signed for 4, as the specification says and
as pymeshio's reader reads them; all other indices are signed, -1 meaning none.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Sequence
from pathlib import Path

from pymeshio import common, pmx
from pymeshio.pmx import writer as pymeshio_writer

#: PMX's text encodings (header byte 0); we always write UTF-16LE, as MMD does.
UTF16LE = 0

#: Morph types (PMX 2.0) that pymeshio writes itself.
_VERTEX_MORPH = 1
_UV_MORPH_TYPES = range(3, 8)  # UV and additional UV 1-4: vertex index + vec4

MAX_EXTRA_UVS = 4


class PMXWriter(pymeshio_writer.Writer):
    """pymeshio's PMX writer, completed for PMX 2.0 features pymeshio lacks.

    Parameters are those of :class:`pymeshio.pmx.writer.Writer`; ``extended_uv``
    is the number of additional UV channels each vertex carries (0..4).
    """

    def __init__(
        self,
        ios,
        text_encoding,
        extended_uv,
        vertex_index_size,
        texture_index_size,
        material_index_size,
        bone_index_size,
        morph_index_size,
        rigidbody_index_size,
    ):
        super().__init__(
            ios,
            text_encoding,
            extended_uv,
            vertex_index_size,
            texture_index_size,
            material_index_size,
            bone_index_size,
            morph_index_size,
            rigidbody_index_size,
        )
        if not 0 <= extended_uv <= MAX_EXTRA_UVS:
            raise common.WriteException(f"additional UV count must be 0..4, not {extended_uv}")
        self.extra_uv_count = extended_uv
        if vertex_index_size in (1, 2):
            # The specification makes vertex indices unsigned at sizes 1 and 2.
            vertex_format = "<B" if vertex_index_size == 1 else "<H"
            self.write_vertex_index = lambda index: self.ios.write(
                struct.pack(vertex_format, index)
            )

    def write_vector4(self, v) -> None:
        self.ios.write(struct.pack("=4f", v.x, v.y, v.z, v.w))

    def write_vertices(self, vertices):
        self.write_int(len(vertices), 4)
        count = self.extra_uv_count
        for v in vertices:
            self.write_vector3(v.position)
            self.write_vector3(v.normal)
            self.write_vector2(v.uv)
            if count:
                self._write_extra_uvs(v, count)
            self.write_deform(v.deform)
            self.write_float(v.edge_factor)

    def _write_extra_uvs(self, vertex, count: int) -> None:
        extra = getattr(vertex, "extra_uvs", None)
        if extra is None or len(extra) != count:
            found = "none" if extra is None else len(extra)
            raise common.WriteException(
                f"the header promises {count} additional UVs per vertex; a vertex has {found}"
            )
        for uv in extra:
            self.ios.write(struct.pack("=4f", *uv))

    def write_deform(self, deform):
        if isinstance(deform, pmx.Sdef):
            self.write_int(3, 1)
            self.write_bone_index(deform.index0)
            self.write_bone_index(deform.index1)
            self.write_float(deform.weight0)
            self.write_vector3(deform.sdef_c)
            self.write_vector3(deform.sdef_r0)
            self.write_vector3(deform.sdef_r1)
        else:
            super().write_deform(deform)

    def write_morph(self, morphs):
        self.write_int(len(morphs), 4)
        for m in morphs:
            self.write_text(m.name)
            self.write_text(m.english_name)
            self.write_int(m.panel, 1)
            self.write_int(m.morph_type, 1)
            entries = _morph_entries(m)
            self.write_int(len(entries), 4)
            if m.morph_type == 0:
                for o in entries:  # pmx.GroupMorphData
                    self.write_morph_index(o.morph_index)
                    self.write_float(o.value)
            elif m.morph_type == _VERTEX_MORPH:
                for o in entries:  # pmx.VertexMorphOffset
                    self.write_vertex_index(o.vertex_index)
                    self.write_vector3(o.position_offset)
            elif m.morph_type == 2:
                for o in entries:  # pmx.BoneMorphData; rotation quaternion x, y, z, w
                    self.write_bone_index(o.bone_index)
                    self.write_vector3(o.position)
                    self.write_vector4(o.rotation)
            elif m.morph_type in _UV_MORPH_TYPES:
                channel = m.morph_type - 3
                if channel > self.extra_uv_count:
                    raise common.WriteException(
                        f"morph {m.name!r} moves additional UV {channel}, but vertices "
                        f"carry {self.extra_uv_count}"
                    )
                for o in entries:  # pmx.UVMorphData
                    self.write_vertex_index(o.vertex_index)
                    self.write_vector4(o.uv)
            elif m.morph_type == 8:
                for o in entries:  # pmx.MaterialMorphData
                    self.write_material_index(o.material_index)
                    self.ios.write(struct.pack("<B", o.calc_mode))
                    self.write_rgba(o.diffuse)
                    self.write_rgb(o.specular)
                    self.write_float(o.specular_factor)
                    self.write_rgb(o.ambient)
                    self.write_rgba(o.edge_color)
                    self.write_float(o.edge_size)
                    self.write_rgba(o.texture_factor)
                    self.write_rgba(o.sphere_texture_factor)
                    self.write_rgba(o.toon_texture_factor)
            else:
                raise common.WriteException(
                    f"morph {m.name!r}: type {m.morph_type} is not a PMX 2.0 morph type"
                )


def _morph_entries(morph) -> Sequence:
    """A morph's entries. pymeshio's reader keeps material-morph entries in
    ``data`` and everything else in ``offsets``; accept either."""
    data = getattr(morph, "data", None)
    return data if data else morph.offsets


def index_size(count: int) -> int:
    """Bytes per index for a table of ``count`` entries, as pymeshio chooses."""
    if count < 128:
        return 1
    if count < 32768:
        return 2
    if count < 2147483647:
        return 4
    raise common.WriteException(f"too many entries for a PMX index: {count}")


def write_stream(ios: io.IOBase, model: pmx.Model, extra_uv_count: int = 0) -> None:
    """Write ``model`` as PMX 2.0 (UTF-16LE text) to a binary stream."""
    if not isinstance(model, pmx.Model):
        raise TypeError(f"expected a pymeshio.pmx.Model, not {type(model).__name__}")
    sizes = (
        index_size(len(model.vertices)),
        index_size(len(model.textures)),
        index_size(len(model.materials)),
        index_size(len(model.bones)),
        index_size(len(model.morphs)),
        index_size(len(model.rigidbodies)),
    )
    header = common.BinaryWriter(ios)
    header.write_bytes(b"PMX ")
    header.write_float(model.version)
    header.write_int(8, 1)  # eight header bytes follow
    header.write_int(UTF16LE, 1)
    header.write_int(extra_uv_count, 1)
    for size in sizes:
        header.write_int(size, 1)

    writer = PMXWriter(ios, UTF16LE, extra_uv_count, *sizes)
    writer.write_text(model.name)
    writer.write_text(model.english_name)
    writer.write_text(model.comment)
    writer.write_text(model.english_comment)
    writer.write_vertices(model.vertices)
    writer.write_indices(model.indices)
    writer.write_textures(model.textures)
    writer.write_materials(model.materials)
    writer.write_bones(model.bones)
    writer.write_morph(model.morphs)
    writer.write_display_slots(model.display_slots)
    writer.write_rigidbodies(model.rigidbodies)
    writer.write_joints(model.joints)


def pmx_bytes(model: pmx.Model, extra_uv_count: int = 0) -> bytes:
    """The PMX file ``write_pmx`` would write, as bytes."""
    buffer = io.BytesIO()
    write_stream(buffer, model, extra_uv_count)
    return buffer.getvalue()


def write_pmx(model: pmx.Model, path: str | os.PathLike, extra_uv_count: int = 0) -> Path:
    """Write ``model`` to ``path`` as PMX 2.0 and return the path.

    ``extra_uv_count`` (0..4) additional UVs are taken from each vertex's
    ``extra_uvs``. The file appears complete or not at all: it is written to a
    ``.tmp`` sibling first and then renamed.
    """
    path = Path(path)
    data = pmx_bytes(model, extra_uv_count)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path
