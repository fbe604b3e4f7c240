"""The loader against every real model, the two Miku files against each other,
and malformed input: each gives a model or a specific error, never a traceback."""

from __future__ import annotations

import os
import shutil
import struct

import numpy as np
import pmx_bytes
import pytest
from conftest import is_character, shared_model, shared_model_params

from mmdrender import ModelLoadError, load_model
from mmdrender.model import MorphKind, Skinning


def dense_weights(model):
    """(V, B) skin weight matrix: compares skinning however it is encoded."""
    v = model.vertices
    dense = np.zeros((len(v), len(model.bones)), dtype=np.float64)
    rows = np.repeat(np.arange(len(v)), 4)
    cols, weights = v.bone_indices.ravel(), v.bone_weights.ravel()
    used = cols >= 0
    np.add.at(dense, (rows[used], cols[used]), weights[used])
    return dense


@pytest.mark.parametrize("path", shared_model_params())
def test_every_shared_model_loads_into_consistent_arrays(path):
    model = load_model(path)
    v = model.vertices
    count = len(v)
    assert count > 0 and len(model.faces) > 0 and model.materials
    assert v.positions.shape == (count, 3) and v.positions.dtype == np.float32
    assert v.normals.shape == (count, 3) and v.uvs.shape == (count, 2)
    assert v.extra_uvs.shape[0] == count and v.extra_uvs.shape[2] == 4
    assert v.bone_indices.shape == (count, 4) and v.bone_indices.dtype == np.int32
    assert np.isfinite(v.positions).all()
    assert np.allclose(v.bone_weights.sum(axis=1), 1.0, atol=1e-5)
    assert v.bone_indices.max() < len(model.bones)
    assert model.faces.dtype == np.int32 and 0 <= model.faces.min() and \
        model.faces.max() < count
    # Materials tile the faces in file order.
    starts = [m.face_start for m in model.materials]
    assert starts == sorted(starts)
    assert sum(m.face_count for m in model.materials) == len(model.faces)
    # Rest data can never be edited by posing code.
    with pytest.raises(ValueError):
        v.positions[0, 0] = 1.0
    for bone in model.bones:
        assert -1 <= bone.parent < len(model.bones)


@pytest.mark.parametrize("path", shared_model_params())
def test_front_faces_are_counter_clockwise_in_project_frame(path):
    """The frame mirror keeps stored normals and triangle winding in agreement."""
    model = load_model(path)
    p, f = model.vertices.positions.astype(np.float64), model.faces
    geometric = np.cross(p[f[:, 1]] - p[f[:, 0]], p[f[:, 2]] - p[f[:, 0]])
    stored = model.vertices.normals[f].sum(axis=1)
    agreement = (geometric * stored).sum(axis=1)
    decided = np.abs(agreement) > 1e-9
    assert (agreement[decided] > 0).mean() > 0.9


@pytest.mark.parametrize("path", shared_model_params())
def test_characters_face_plus_z_with_their_left_at_plus_x(path):
    if not is_character(path):
        pytest.skip("not a character")
    model = load_model(path)
    assert model.bone("首") is not None and model.bone("頭") is not None
    head, left_eye, right_eye = model.bone("頭"), model.bone("左目"), model.bone("右目")
    if left_eye is None:
        pytest.skip("this model has no eye bones to check the frame with")
    assert left_eye.position[0] > 0 > right_eye.position[0]
    assert left_eye.position[2] > head.position[2]  # eyes are in front of the head joint


@pytest.mark.parametrize("relative, counts", [
    ("animasa_miku_v2/miku_v2.pmd", (12354, 22961, 17, 140, 30)),
    ("animasa_miku_pmx/index.pmx", (12354, 22961, 17, 140, 30)),
    ("animasa_kaito/kaito.pmd", (7133, 13144, 15, 106, 24)),
    ("gumi_lowpoly/gumi.pmd", (1438, 1695, 2, 59, 12)),
    ("mamama_appearance_miku/index.pmx", (22511, 37459, 15, 130, 45)),
])
def test_known_counts(relative, counts):
    model = load_model(shared_model(relative))
    assert (len(model.vertices), len(model.faces), len(model.materials), len(model.bones),
            len(model.morphs)) == counts


def test_pmd_and_pmx_versions_of_the_same_miku_agree():
    pmd = load_model(shared_model("animasa_miku_v2/miku_v2.pmd"))
    pmx = load_model(shared_model("animasa_miku_pmx/index.pmx"))
    assert pmd.format == "pmd 1.0" and pmx.format == "pmx 2.0"
    np.testing.assert_allclose(pmd.vertices.positions, pmx.vertices.positions, atol=1e-5)
    np.testing.assert_allclose(pmd.vertices.normals, pmx.vertices.normals, atol=1e-5)
    np.testing.assert_allclose(pmd.vertices.uvs, pmx.vertices.uvs, atol=1e-5)
    np.testing.assert_array_equal(pmd.faces, pmx.faces)
    np.testing.assert_allclose(dense_weights(pmd), dense_weights(pmx), atol=1e-5)
    assert [b.name for b in pmd.bones] == [b.name for b in pmx.bones]
    assert [b.parent for b in pmd.bones] == [b.parent for b in pmx.bones]
    np.testing.assert_allclose(np.stack([b.position for b in pmd.bones]),
                               np.stack([b.position for b in pmx.bones]), atol=1e-5)
    assert [(m.name, m.panel, m.kind) for m in pmd.morphs] == \
        [(m.name, m.panel, m.kind) for m in pmx.morphs]
    for a, b in zip(pmd.morphs, pmx.morphs, strict=True):
        np.testing.assert_array_equal(a.data.indices, b.data.indices)
        np.testing.assert_allclose(a.data.offsets, b.data.offsets, atol=1e-5)
    for a, b in zip(pmd.materials, pmx.materials, strict=True):
        np.testing.assert_allclose(a.diffuse, b.diffuse, atol=1e-6)
        assert (a.face_start, a.face_count) == (b.face_start, b.face_count)
        assert (a.toon.reference if a.toon else None) == (b.toon.reference if b.toon else None)


def test_the_pmx_miku_uses_generated_shared_toons():
    """animasa_miku_pmx ships no toon01-10.bmp: MMD's shared toons are generated."""
    model = load_model(shared_model("animasa_miku_pmx/index.pmx"))
    toons = {m.toon.shared_toon for m in model.materials if m.toon}
    assert toons and None not in toons
    assert not model.missing_textures


def test_additional_uvs_and_every_deform_type_load():
    """pymeshio 3.0.1 alone raises TypeError on this file."""
    model = load_model(shared_model("_robustness/yw_test_model.pmx"))
    v = model.vertices
    assert v.extra_uvs.shape == (2141, 1, 4)
    kinds = set(np.unique(v.skinning))
    assert {Skinning.BDEF1, Skinning.BDEF2, Skinning.BDEF4} <= kinds
    assert v.extra_uvs.any()


def test_sphere_map_material():
    model = load_model(shared_model("_robustness/matcap_sample.pmx"))
    assert len(model.materials) == 1 and len(model.bones) == 2 and not model.morphs


def test_pmd_morphs_resolve_base_indices_into_model_vertices():
    model = load_model(shared_model("animasa_miku_v2/miku_v2.pmd"))
    blink = model.morph("まばたき")
    assert blink.kind == MorphKind.VERTEX and blink.panel.name == "EYE"
    assert blink.data.indices.max() < len(model.vertices)
    # A blink moves eyelids down (y) on both sides of the face.
    moved = model.vertices.positions[blink.data.indices]
    assert blink.data.offsets[:, 1].mean() < 0
    assert (moved[:, 0] > 0).any() and (moved[:, 0] < 0).any()


# ---------------------------------------------------------------- bad input


def test_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file"):
        load_model(tmp_path / "nothing.pmx")


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(ModelLoadError, match="folder"):
        load_model(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pmx"
    path.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="empty") as error:
        load_model(path)
    assert error.value.path == path


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.pmd"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelLoadError, match="not an MMD model"):
        load_model(path)


@pytest.mark.parametrize("signature", [b"PMX ", b"Pmd"])
def test_random_bytes_behind_a_valid_signature(tmp_path, signature):
    rng = np.random.default_rng(1)
    for attempt in range(20):
        path = tmp_path / f"noise{attempt}"
        path.write_bytes(signature + rng.bytes(2000))
        with pytest.raises(ModelLoadError):
            load_model(path)


def test_a_huge_count_is_refused_before_allocating(tmp_path):
    """A header claiming two billion vertices in a 100-byte file."""
    header = b"PMX " + struct.pack("<f", 2.0) + bytes([8, 0, 0, 2, 1, 1, 1, 1, 1])
    empty_texts = struct.pack("<i", 0) * 4
    path = tmp_path / "bomb.pmx"
    path.write_bytes(header + empty_texts + struct.pack("<i", 2**31 - 1) + bytes(40))
    with pytest.raises(ModelLoadError, match="claims 2147483647 vertices"):
        load_model(path)


def test_a_bad_header_is_named(tmp_path):
    header = b"PMX " + struct.pack("<f", 2.0) + bytes([8, 0, 0, 3, 1, 1, 1, 1, 1])
    path = tmp_path / "odd.pmx"
    path.write_bytes(header + bytes(64))
    with pytest.raises(ModelLoadError, match="index size 3"):
        load_model(path)


@pytest.mark.parametrize("relative", ["animasa_miku_pmx/index.pmx",
                                      "_robustness/yw_test_model.pmx",
                                      "animasa_miku_v2/miku_v2.pmd"])
def test_truncated_files_give_a_specific_error(tmp_path, relative):
    source = shared_model(relative)
    data = source.read_bytes()
    cuts = [int(len(data) * f) for f in (0.001, 0.01, 0.1, 0.3, 0.5, 0.7)]
    if source.suffix == ".pmx":
        cuts.append(len(data) - 1)  # PMD's last sections are optional, PMX's are not
    for cut in cuts:
        path = tmp_path / f"cut{cut}{source.suffix}"
        path.write_bytes(data[:cut])
        with pytest.raises(ModelLoadError) as error:
            load_model(path)
        assert str(path) in str(error.value)
        assert any(word in error.value.reason for word in ("ends early", "claims")), \
            error.value.reason


def test_missing_texture_is_a_warning_and_a_placeholder(tmp_path):
    source = shared_model("mokou/mokou_B.pmd")
    folder = tmp_path / "mokou"
    shutil.copytree(source.parent, folder)
    (folder / "moko_hair_01.tga").unlink()
    model = load_model(folder / source.name)
    missing = [ref.reference for ref in model.missing_textures]
    assert missing == ["moko_hair_01.tga"]
    assert any("moko_hair_01.tga" in w and "placeholder" in w for w in model.warnings)


def test_model_in_a_folder_with_odd_names(tmp_path):
    source = shared_model("mokou/mokou_B.pmd")
    folder = tmp_path / "東方 [Touhou] models (v1.0)" / "藤原 妹紅 #1"
    shutil.copytree(source.parent, folder)
    renamed = folder / "妹紅 model (B).pmd"
    os.replace(folder / source.name, renamed)
    # Zip tools often change a texture's letter case.
    os.replace(folder / "Moko_Body_01.bmp", folder / "MOKO_BODY_01.BMP")
    model = load_model(renamed)
    assert not model.missing_textures
    assert len(model.vertices) == 14699


# ---------------------------------------------------------------- PMX 2.1


def test_pmx21_qdef_flip_impulse_and_soft_bodies(tmp_path):
    morphs, count = pmx_bytes.flip_and_impulse_morphs()
    path = tmp_path / "v21.pmx"
    path.write_bytes(pmx_bytes.triangle_pmx(version=2.1, deform=4, morphs=morphs,
                                            morph_count=count,
                                            trailer=struct.pack("<i", 0)))  # soft bodies
    model = load_model(path)
    assert model.format == "pmx 2.1"
    assert list(model.vertices.skinning) == [Skinning.QDEF] * 3
    assert [m.kind for m in model.morphs] == [MorphKind.VERTEX, MorphKind.FLIP, MorphKind.IMPULSE]
    assert [m.supported for m in model.morphs] == [True, False, False]
    assert any("soft bodies" in w for w in model.warnings)
    assert any("'flip'" in w for w in model.warnings)
    # The mirror: a file's -z normal (towards MMD's camera) is +z, the front, here.
    np.testing.assert_allclose(model.vertices.normals[:, 2], 1.0)
    np.testing.assert_allclose(model.morph("あ").data.offsets, [[0.0, -0.5, 0.0]])


def test_hand_packed_pmx20_triangle(tmp_path):
    path = tmp_path / "t.pmx"
    path.write_bytes(pmx_bytes.triangle_pmx())
    model = load_model(path)
    assert (model.name, len(model.vertices), len(model.faces)) == ("triangle", 3, 1)
    assert model.materials[0].toon.shared_toon == 1 and model.materials[0].double_sided
    assert model.bone("センター").english_name == "center" and not model.warnings
