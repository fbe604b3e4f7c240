"""The procedural sample characters and the PMX writer they are written with.

Samples are read back three ways: with pymeshio's own reader (which cannot read
additional UVs, so the character that has them is checked byte by byte
instead), with :func:`mmdrender.load_model`, and against the truth
:func:`mmdrender.samples.sample_truth` states.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from pymeshio import common, pmx
from pymeshio.pmx import reader as pymeshio_reader
from pymeshio.pmx import writer as pymeshio_writer

from mmdrender import load_model
from mmdrender.formats.pmx_writer import PMXWriter, pmx_bytes, write_pmx
from mmdrender.model import GroupMorph, MorphKind, Skinning, VertexMorph
from mmdrender.samples import SAMPLE_NAMES, sample_spec, sample_truth, write_sample
from mmdrender.samples_cli import samples_command


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("samples")
    return {name: write_sample(name, out) for name in SAMPLE_NAMES}


@pytest.fixture(scope="module")
def loaded(written):
    return {name: load_model(path) for name, path in written.items()}


def truth_names(name: str) -> list[str]:
    t = sample_truth(name)
    names = [t.wink_left, t.wink_right, t.wink_both, t.smile_wink_left, t.smile_wink_right,
             t.smile_wink_both, t.mouth_open]
    return [n for n in names if n is not None]


# ------------------------------------------------------------------ files on disk


def test_there_are_a_handful_of_distinct_samples():
    assert 4 <= len(SAMPLE_NAMES) <= 5
    assert len({sample_spec(n).style for n in SAMPLE_NAMES}) == len(SAMPLE_NAMES)


def test_each_sample_is_a_pmx_beside_its_textures(written):
    for name, path in written.items():
        assert path == path.parent.parent / name / f"{name}.pmx"
        assert path.read_bytes()[:4] == b"PMX "
        assert (path.parent / "face.png").is_file() and (path.parent / "iris.png").is_file()


def test_writing_twice_gives_identical_bytes(written, tmp_path):
    for name, first in written.items():
        second = write_sample(name, tmp_path)
        files = sorted(p.name for p in first.parent.iterdir())
        assert files == sorted(p.name for p in second.parent.iterdir())
        for file_name in files:
            a = (first.parent / file_name).read_bytes()
            assert a == (second.parent / file_name).read_bytes(), (name, file_name)


def test_unknown_sample_is_refused():
    with pytest.raises(ValueError, match="no sample character"):
        sample_truth("nobody")


def test_samples_command_writes_and_prints_each_path(tmp_path):
    result = CliRunner().invoke(samples_command, [str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    printed = [Path(line) for line in result.output.splitlines()]
    assert [p.stem for p in printed] == list(SAMPLE_NAMES)
    assert all(p.is_file() for p in printed)


# ------------------------------------------------------------------ read back with pymeshio


def readable_by_pymeshio(name: str) -> bool:
    return sample_spec(name).extra_uvs == 0


def test_pymeshio_reads_what_we_wrote(written):
    kinds, deforms = set(), set()
    for name, path in written.items():
        if not readable_by_pymeshio(name):
            continue
        model = pymeshio_reader.read(io.BytesIO(path.read_bytes()))
        assert 3000 <= len(model.vertices) <= 15000
        assert len(model.indices) % 3 == 0 and max(model.indices) < len(model.vertices)
        assert sum(m.vertex_count for m in model.materials) == len(model.indices)
        names = {m.name for m in model.morphs}
        assert set(truth_names(name)) <= names
        assert {"首", "頭"} <= {b.name for b in model.bones}
        kinds |= {m.morph_type for m in model.morphs}
        deforms |= {type(v.deform).__name__ for v in model.vertices}
    assert {0, 1, 2, 3, 8} <= kinds
    assert {"Bdef1", "Bdef2", "Bdef4", "Sdef"} <= deforms


def test_records_pymeshio_cannot_write_round_trip(written):
    """SDEF, group, bone, UV and material morphs, read back field by field."""
    for name, path in written.items():
        if not readable_by_pymeshio(name):
            continue
        model = pymeshio_reader.read(io.BytesIO(path.read_bytes()))
        bones = {b.name: i for i, b in enumerate(model.bones)}
        for v in model.vertices:
            if isinstance(v.deform, pmx.Sdef):
                d = v.deform
                assert {d.index0, d.index1} == {bones["上半身2"], bones[arm_of(model, d)]}
                assert 0.0 < d.weight0 < 1.0
                assert abs(d.sdef_r0.y - d.sdef_c.y) > 0.01  # R0, R1 straddle C on the arm
        morphs = {m.name: m for m in model.morphs}
        for m in model.morphs:
            if m.morph_type == 0:  # group: one-eye morphs at weight 1
                parts = {model.morphs[o.morph_index].name for o in m.offsets}
                assert len(parts) == 2 and all(o.value == 1.0 for o in m.offsets)
            elif m.morph_type == 2:  # bone: the hair turns, or the brow bones move
                for o in m.offsets:
                    q, t = o.rotation, o.position
                    assert abs(q.x**2 + q.y**2 + q.z**2 + q.w**2 - 1) < 1e-5
                    assert q.w < 1 or abs(t.y) > 0.05
            elif m.morph_type == 3:
                assert all(abs(o.uv.x - 0.5) < 1e-6 and o.uv.y == 0 for o in m.offsets)
        blush = morphs["照れ"].data[0]
        assert model.materials[blush.material_index].alpha == 0.0
        assert blush.calc_mode == 1 and blush.diffuse.a == 1.0
        if "ハイライト消" in morphs:
            off = morphs["ハイライト消"].data[0]
            assert off.calc_mode == 0 and off.diffuse.a == 0.0 and off.toon_texture_factor.r == 1


def arm_of(model, deform) -> str:
    """The SDEF partner of 上半身2 (the chest): an arm bone."""
    names = {model.bones[deform.index0].name, model.bones[deform.index1].name}
    arm = (names - {"上半身2"}).pop()
    assert arm in ("左腕", "右腕")
    return arm


def test_additional_uvs_sit_between_the_uv_and_the_deform(written):
    """pymeshio's reader refuses additional UVs, so check the layout by hand."""
    name = next(n for n in SAMPLE_NAMES if sample_spec(n).extra_uvs)
    data = written[name].read_bytes()
    count = sample_spec(name).extra_uvs
    assert data[4:9] == struct.pack("<f", 2.0) + b"\x08"
    assert data[9] == 0 and data[10] == count  # UTF-16LE, K additional UVs
    offset = 17
    for _ in range(4):  # name, English name, comment, English comment
        (size,) = struct.unpack_from("<i", data, offset)
        offset += 4 + size
    (vertex_count,) = struct.unpack_from("<i", data, offset)
    offset += 4
    bone_size = data[14]
    sizes = {0: bone_size, 1: 2 * bone_size + 4, 2: 4 * bone_size + 16, 3: 2 * bone_size + 40}
    for _ in range(min(vertex_count, 500)):
        u, v = struct.unpack_from("<2f", data, offset + 24)
        extra = struct.unpack_from(f"<{4 * count}f", data, offset + 32)
        assert extra[:2] == (u, v)  # channel 1 repeats the UV
        deform = data[offset + 32 + 16 * count]
        offset += 32 + 16 * count + 1 + sizes[deform] + 4


# ------------------------------------------------------------------ the writer itself


def small_pymeshio_model(vertex_count: int = 200) -> pmx.Model:
    """A model using only features pymeshio's writer supports."""
    model = pmx.Model(2.0, "小さい", "small", "コメント", "comment")
    deforms = [pmx.Bdef1(0), pmx.Bdef2(0, 1, 0.25), pmx.Bdef4(0, 1, 2, 0, 0.5, 0.25, 0.25, 0.0)]
    model.vertices = [
        pmx.Vertex(common.Vector3(i * 0.1, i % 7 * 0.5, -1.0), common.Vector3(0, 0, -1),
                   common.Vector2(i / vertex_count, 0.5), deforms[i % 3], 1.0)
        for i in range(vertex_count)
    ]
    model.indices = [i for i in range(vertex_count - 2) for i in (i, i + 1, i + 2)]
    model.textures = ["a.png", "サブ/b.png"]
    model.materials = [pmx.Material(
        "材質", "mat", common.RGB(1, 0.5, 0.25), 1.0, 5.0, common.RGB(0.1, 0.1, 0.1),
        common.RGB(0.5, 0.5, 0.5), 0x1F, common.RGBA(0, 0, 0, 1), 1.0, 0, 1, 2, 1, 3, "",
        len(model.indices))]
    model.bones = [
        pmx.Bone("センター", "center", common.Vector3(0, 8, 0), -1, 0, 0x1E,
                 tail_position=common.Vector3(0, -1, 0)),
        pmx.Bone("頭", "head", common.Vector3(0, 16, 0), 0, 0, 0x1B, tail_index=2),
        pmx.Bone("左目", "eye", common.Vector3(0.5, 17, -0.5), 1, 0, 0x11A,
                 tail_position=common.Vector3(0, 0, -1), effect_index=1, effect_factor=0.5),
    ]
    moved = (0, 5, vertex_count - 1)
    model.morphs = [pmx.Morph("あ", "a", 3, 1, [
        pmx.VertexMorphOffset(i, common.Vector3(0, -0.1 * i, 0)) for i in moved])]
    model.display_slots = [pmx.DisplaySlot("Root", "Root", 1, [(0, 0)]),
                           pmx.DisplaySlot("表情", "Exp", 1, [(1, 0)])]
    model.rigidbodies = [pmx.RigidBody("頭", "head", 1, 0, 0, 0, common.Vector3(1, 1, 1),
                                       common.Vector3(0, 16, 0), common.Vector3(), 1, 0.5, 0.5,
                                       0, 0, 0)]
    return model


@pytest.mark.parametrize("vertex_count", [10, 200])
def test_writer_matches_pymeshio_on_what_pymeshio_supports(vertex_count):
    model = small_pymeshio_model(vertex_count)
    theirs = io.BytesIO()
    pymeshio_writer.write(theirs, model)
    assert pmx_bytes(model) == theirs.getvalue()


def test_write_pmx_writes_the_file_whole(tmp_path):
    path = write_pmx(small_pymeshio_model(), tmp_path / "small.pmx")
    assert path.read_bytes() == pmx_bytes(small_pymeshio_model())
    assert [p.name for p in tmp_path.iterdir()] == ["small.pmx"]


def test_writer_refuses_vertices_without_the_promised_additional_uvs():
    with pytest.raises(common.WriteException, match="additional UVs"):
        pmx_bytes(small_pymeshio_model(), extra_uv_count=1)


def test_writer_refuses_an_additional_uv_morph_beyond_the_channels():
    model = small_pymeshio_model()
    model.morphs.append(pmx.Morph("glow", "glow", 4, 5, [
        pmx.UVMorphData(0, common.Vector4(0, 0, 1, 0))]))
    for v in model.vertices:
        v.extra_uvs = [(0.0, 0.0, 0.0, 0.0)]
    with pytest.raises(common.WriteException, match="additional UV 2"):
        pmx_bytes(model, extra_uv_count=1)


def test_vertex_indices_are_unsigned_at_two_bytes():
    """Vertex indices 0x8000 and up must survive, as the specification reads them."""
    out = io.BytesIO()
    PMXWriter(out, 0, 0, 2, 1, 1, 1, 1, 1).write_indices([0, 40000, 65535])
    assert out.getvalue()[4:] == struct.pack("<3H", 0, 40000, 65535)


# ------------------------------------------------------------------ through mmdrender.load_model


def test_load_model_reads_every_sample(loaded):
    for name, model in loaded.items():
        assert model.format == "pmx 2.0"
        assert model.bone("首") is not None and model.bone("頭") is not None
        assert model.bones[model.bone_index("頭")].parent == model.bone_index("首")
        for morph_name in truth_names(name):
            assert model.morph(morph_name) is not None, (name, morph_name)
        assert not model.missing_textures, (name, model.missing_textures)
        assert "sample character" in model.comment


def test_samples_cover_every_morph_kind_and_deform(loaded):
    kinds = {m.kind for model in loaded.values() for m in model.morphs}
    assert {MorphKind.GROUP, MorphKind.VERTEX, MorphKind.BONE, MorphKind.UV,
            MorphKind.MATERIAL, MorphKind.UV1} <= kinds
    skinning = set(np.concatenate([m.vertices.skinning for m in loaded.values()]).tolist())
    assert {Skinning.BDEF1, Skinning.BDEF2, Skinning.BDEF4, Skinning.SDEF} <= skinning


def test_one_sample_has_additional_uvs(loaded):
    with_extra = {n: m for n, m in loaded.items() if m.vertices.extra_uvs.shape[1] > 0}
    assert len(with_extra) >= 1
    for name, model in with_extra.items():
        extra = model.vertices.extra_uvs
        assert extra.shape == (len(model.vertices), sample_spec(name).extra_uvs, 4)
        np.testing.assert_allclose(extra[:, 0, :2], model.vertices.uvs, atol=1e-6)
        assert any(m.kind == MorphKind.UV1 for m in model.morphs)


def test_head_bounds_bracket_the_head_bone(loaded):
    for name, model in loaded.items():
        truth = sample_truth(name)
        assert truth.head_top_y - truth.head_bottom_y > 3.0
        assert truth.head_bottom_y < model.bone("頭").position[1] < truth.head_top_y
        face = model.materials[[m.name for m in model.materials].index("顔")]
        faces = model.faces[face.face_start : face.face_start + face.face_count]
        y = model.vertices.positions[np.unique(faces), 1]
        assert abs(y.min() - truth.head_bottom_y) < 0.05  # the chin is the face's lowest point
        assert y.max() < truth.head_top_y  # the hair sits on the skull


def vertex_offsets(model, name: str) -> np.ndarray:
    """(V, 3) offsets of morph ``name`` at weight 1, group morphs expanded."""
    total = np.zeros_like(model.vertices.positions)
    morph = model.morph(name)
    if isinstance(morph.data, GroupMorph):
        for index, weight in zip(morph.data.morphs, morph.data.weights, strict=True):
            total += weight * vertex_offsets(model, model.morphs[index].name)
    elif isinstance(morph.data, VertexMorph):
        total[morph.data.indices] += morph.data.offsets
    return total


def test_each_wink_closes_the_eye_its_truth_names(loaded):
    """Only geometry tells which eye a wink closes; +x is the character's left."""
    for name, model in loaded.items():
        t = sample_truth(name)
        for morph_name, sign in ((t.wink_left, 1), (t.wink_right, -1),
                                 (t.smile_wink_left, 1), (t.smile_wink_right, -1)):
            if morph_name is None:
                continue
            offsets = vertex_offsets(model, morph_name)
            moved = np.abs(offsets).max(axis=1) > 1e-6
            x = model.vertices.positions[moved, 0]
            assert moved.sum() > 20 and np.all(np.sign(x) == sign), (name, morph_name)
            assert offsets[moved, 1].mean() < -0.1  # the lid comes down
        both = np.abs(vertex_offsets(model, t.wink_both)).max(axis=1) > 1e-6
        x = model.vertices.positions[both, 0]
        assert (x > 0).any() and (x < 0).any()


def test_wink_names_disagree_between_samples():
    """ウィンク closes the left eye on one sample and the right eye on another."""
    sides = {"left" if sample_truth(n).wink_left == "ウィンク" else
             "right" if sample_truth(n).wink_right == "ウィンク" else None
             for n in SAMPLE_NAMES}
    assert {"left", "right"} <= sides


def material_area(model, material_name: str, positions: np.ndarray) -> float:
    names = [m.name for m in model.materials]
    material = model.materials[names.index(material_name)]
    p = positions[model.faces[material.face_start : material.face_start + material.face_count]]
    return float(np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1).sum())


def test_mouth_open_reveals_the_inner_mouth(loaded):
    for model in loaded.values():
        rest = model.vertices.positions
        assert material_area(model, "口内", rest) < 1e-6
        assert material_area(model, "口内", rest + vertex_offsets(model, "あ")) > 0.02


def test_draw_order_and_the_hidden_overlay(loaded):
    for model in loaded.values():
        names = [m.name for m in model.materials]
        order = [names.index(n) for n in ("顔", "白目", "瞳", "ハイライト")]
        assert order == sorted(order)
        assert names[-1] in ("頬", "涙") and names.index("髪") < names.index("ハイライト")
        blush = model.materials[names.index("頬")]
        assert blush.diffuse[3] == 0.0
        morph = model.morph("照れ")
        assert morph.kind == MorphKind.MATERIAL and names.index("頬") in morph.data.materials
        assert model.materials[names.index("髪")].double_sided
