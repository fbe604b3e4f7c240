"""Malformed model files found by review and fuzzing: each loads with a specific
warning or fails with a specific ModelLoadError, never a traceback or a NaN."""

from __future__ import annotations

import struct
import time
import warnings

import numpy as np
import pytest
from pmx_bytes import bone, ik, morph, pmd_bone, pmd_ik, triangle_pmd, triangle_pmx, vertex

from mmdrender import ModelLoadError, load_model
from mmdrender.model import BoneFlags

NAN = float("nan")
SIGNALLING_NAN = struct.unpack("<f", bytes.fromhex("0100807f"))[0]  # as random bytes give


def load(tmp_path, data: bytes, suffix: str = ".pmx"):
    """Load ``data`` with every Python warning (numpy's RuntimeWarning too) an error."""
    path = tmp_path / f"model{suffix}"
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return load_model(path)


def load_error(tmp_path, data: bytes, suffix: str = ".pmx") -> str:
    with pytest.raises(ModelLoadError) as error:
        load(tmp_path, data, suffix)
    assert str(tmp_path) in str(error.value)
    return error.value.reason


def bdef2(first: int, second: int, weight: float) -> bytes:
    return bytes([1]) + struct.pack("<bbf", first, second, weight)


def bdef4(indices, weights) -> bytes:
    return bytes([2]) + struct.pack("<4b4f", *indices, *weights)


def two_bones() -> list[bytes]:
    return [bone("センター"), bone("頭", parent=0, position=(0.0, 1.0, 0.0))]


# --- PMD bone types ----------------------------------------------------------


@pytest.mark.parametrize(("kind", "words"), [(3, "unused type 3"), (10, "unknown type 10"),
                                             (255, "unknown type 255")])
def test_pmd_bone_of_unused_or_unknown_type_is_a_plain_bone(tmp_path, kind, words):
    model = load(tmp_path, triangle_pmd([pmd_bone("センター"), pmd_bone("髪", kind, parent=0)]),
                 ".pmd")
    hair = model.bone("髪")
    assert hair.parent == 0 and hair.flags & BoneFlags.ROTATABLE and hair.ik is None
    assert any("'髪'" in w and words in w and "plain rotatable bone" in w
               for w in model.warnings), model.warnings


def test_pymeshio_record_errors_name_the_record(tmp_path):
    """An IK link's limit flag must be 0 or 1; pymeshio raises its own exception."""
    bones = [bone("センター"), bone("ik", flags=0x001B | 0x20, ik=ik(0, [0], limit_flag=7))]
    reason = load_error(tmp_path, triangle_pmx(bones=bones))
    assert "malformed bone 1" in reason and "limit_angle: 7" in reason


def test_pmd_truncated_in_an_ik_chain_is_named(tmp_path):
    chain = pmd_ik(1, 0, [0, 0])  # 15 bytes; the count check lets 11 through
    data = triangle_pmd([pmd_bone("a"), pmd_bone("b", 2)], [chain])
    cut = data.index(chain) + 13
    assert "file ends early in IK chain 0" in load_error(tmp_path, data[:cut], ".pmd")


# --- faces and materials -----------------------------------------------------


def test_negative_face_index_is_refused_like_a_too_large_one(tmp_path):
    reason = load_error(tmp_path, triangle_pmx(vertex_size=4, indices=(0, 1, -1)))
    assert "refers to vertex -1" in reason and "3 vertices" in reason
    reason = load_error(tmp_path, triangle_pmx(vertex_size=4, indices=(0, 1, 3)))
    assert "refers to vertex 3" in reason


def test_material_index_count_not_a_multiple_of_three_warns(tmp_path):
    model = load(tmp_path, triangle_pmx(indices=(0, 1, 2, 0, 2, 1), index_count=4))
    assert model.materials[0].face_count == 1
    assert any("claims 4 face indices, not a multiple of 3" in w for w in model.warnings)


def test_out_of_range_texture_index_warns_and_draws_untextured(tmp_path):
    model = load(tmp_path, triangle_pmx(textures=["a.png"], texture=5))
    assert model.materials[0].texture is None
    assert any("texture index 5 is out of range" in w and "1 textures" in w
               for w in model.warnings), model.warnings


def test_out_of_range_shared_toon_warns(tmp_path):
    model = load(tmp_path, triangle_pmx(toon=12))
    assert model.materials[0].toon is None
    assert any("shared toon 12 does not exist" in w for w in model.warnings)


# --- vertices ----------------------------------------------------------------


@pytest.mark.parametrize("bad", [NAN, float("inf"), SIGNALLING_NAN])
def test_non_finite_bone_weight_drops_that_influence(tmp_path, bad):
    vertices = [vertex(0, 0, bdef4((0, 1, -1, -1), (bad, 0.5, 0, 0))),
                vertex(1, 0, bdef2(0, 1, bad)), vertex(0, 1)]
    model = load(tmp_path, triangle_pmx(vertices=vertices, bones=two_bones()))
    v = model.vertices
    np.testing.assert_allclose(v.bone_weights.sum(axis=1), 1.0)
    assert v.bone_indices[0, 1] == 1 and v.bone_weights[0, 1] == 1.0  # the finite one stays
    assert any("2 vertices have bone weights that are not finite" in w for w in model.warnings)


def test_bone_index_below_minus_one_becomes_minus_one(tmp_path):
    vertices = [vertex(0, 0, bdef4((0, -5, -1, -1), (0.5, 0.5, 0, 0))), vertex(1, 0),
                vertex(0, 1)]
    model = load(tmp_path, triangle_pmx(vertices=vertices))
    assert model.vertices.bone_indices[0].tolist() == [0, -1, -1, -1]
    assert model.vertices.bone_weights[0].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert any("refer to bones the model does not have" in w for w in model.warnings)


def test_non_finite_uv_is_zeroed_with_a_warning(tmp_path):
    vertices = [vertex(0, 0, uv=(NAN, 0.5)), vertex(1, 0), vertex(0, 1)]
    model = load(tmp_path, triangle_pmx(vertices=vertices))
    assert model.vertices.uvs[0].tolist() == [0.0, 0.0]
    assert any("1 vertices have UVs that are not finite" in w for w in model.warnings)


def test_non_finite_normal_is_recomputed_from_the_faces(tmp_path):
    vertices = [vertex(0, 0, normal=(SIGNALLING_NAN, 0, 0)), vertex(1, 0), vertex(0, 1)]
    # Wound to face the file's -z, as its stored normals say: the project's +z (front).
    model = load(tmp_path, triangle_pmx(vertices=vertices, indices=(0, 2, 1)))
    np.testing.assert_allclose(model.vertices.normals, [[0, 0, 1]] * 3, atol=1e-6)
    assert any("normals that are not finite" in w and "recomputed" in w for w in model.warnings)


def test_non_finite_position_is_refused(tmp_path):
    vertices = [vertex(NAN, 0), vertex(1, 0), vertex(0, 1)]
    assert "1 vertex positions are not finite" in load_error(tmp_path,
                                                               triangle_pmx(vertices=vertices))


# --- morphs ------------------------------------------------------------------


def test_non_finite_morph_offsets_are_dropped(tmp_path):
    records = [struct.pack("<B3f", 0, SIGNALLING_NAN, 0, 0), struct.pack("<B3f", 1, 0, 0.5, 0)]
    model = load(tmp_path, triangle_pmx(morphs=morph("あ", 3, 1, records), morph_count=1))
    data = model.morph("あ").data
    assert data.indices.tolist() == [1] and np.isfinite(data.offsets).all()
    assert any("'あ': 1 entries hold numbers that are not finite" in w for w in model.warnings)


def test_non_finite_bone_morph_rotation_is_dropped(tmp_path):
    record = struct.pack("<b3f4f", 0, 0, 0, 0, 0, NAN, 0, 1)
    model = load(tmp_path, triangle_pmx(morphs=morph("b", 4, 2, [record]), morph_count=1))
    assert len(model.morph("b").data.bones) == 0
    assert any("'b': 1 entries" in w for w in model.warnings)


# --- bones -------------------------------------------------------------------


def test_non_finite_bone_position_is_refused_naming_the_bone(tmp_path):
    bones = [bone("センター"), bone("頭", parent=0, position=(NAN, 1.0, 0.0))]
    reason = load_error(tmp_path, triangle_pmx(bones=bones))
    assert "1 bone positions are not finite" in reason and "'頭'" in reason


def test_parent_cycle_is_broken_with_a_warning(tmp_path):
    bones = [bone("a", parent=2), bone("b", parent=0), bone("c", parent=1), bone("d", parent=0)]
    model = load(tmp_path, triangle_pmx(bones=bones))
    assert sum(b.parent == -1 for b in model.bones[:3]) == 1
    assert model.bones[3].parent == 0
    assert sum("is its own ancestor" in w for w in model.warnings) == 1


def test_a_long_bone_chain_loads_in_linear_time(tmp_path):
    """20,000 bones each the child of the last: the cycle check used to take ~13 s."""
    count = 20_000
    bones = [bone("", parent=i - 1, index_size=4) for i in range(count)]
    data = triangle_pmx(bones=bones, bone_size=4)
    start = time.perf_counter()
    model = load(tmp_path, data)
    assert time.perf_counter() - start < 5.0
    assert len(model.bones) == count and model.bones[-1].parent == count - 2


def test_ik_link_count_beyond_the_file_is_refused(tmp_path):
    bones = [bone("ik", flags=0x001B | 0x20, ik=ik(0, [0], link_count=2**31 - 1))]
    assert "claims 2147483647 IK links" in load_error(tmp_path, triangle_pmx(bones=bones))


def test_ik_with_more_links_than_bones_is_refused(tmp_path):
    bones = [bone("ik", flags=0x001B | 0x20, ik=ik(0, [0] * 1000))]
    reason = load_error(tmp_path, triangle_pmx(bones=bones))
    assert reason.startswith("bone 0: ") and "1000 links but the model has only 1 bones" in reason


@pytest.mark.parametrize(("target", "links", "words"), [(7, [0], "target 7"),
                                                         (0, [1, -3], "link -3")])
def test_ik_with_bones_out_of_range_is_dropped(tmp_path, target, links, words):
    bones = [bone("センター"), bone("足ＩＫ", flags=0x001B | 0x20, ik=ik(target, links))]
    model = load(tmp_path, triangle_pmx(bones=bones))
    foot = model.bone("足ＩＫ")
    assert foot.ik is None and not foot.flags & BoneFlags.IK
    assert any("'足ＩＫ'" in w and words in w and "IK is ignored" in w for w in model.warnings)


def test_pmd_ik_with_bones_out_of_range_is_dropped(tmp_path):
    bones = [pmd_bone("センター"), pmd_bone("足ＩＫ", 2, parent=0)]
    model = load(tmp_path, triangle_pmd(bones, [pmd_ik(1, 99, [0])]), ".pmd")
    assert model.bone("足ＩＫ").ik is None
    assert any("target 99 is not a bone" in w for w in model.warnings)


def test_pmd_ik_in_range_is_kept(tmp_path):
    bones = [pmd_bone("センター"), pmd_bone("足ＩＫ", 2, parent=0), pmd_bone("足首", 6)]
    model = load(tmp_path, triangle_pmd(bones, [pmd_ik(1, 2, [0])]), ".pmd")
    chain = model.bone("足ＩＫ").ik
    assert chain.target == 2 and [link.bone for link in chain.links] == [0]


def test_display_slot_entry_count_beyond_the_file_is_refused(tmp_path):
    slots = struct.pack("<i", 1) + b"".join([
        struct.pack("<i", 0), struct.pack("<i", 0), bytes([0]), struct.pack("<i", 10**9)])
    assert "claims 1000000000 display slot entries" in load_error(
        tmp_path, triangle_pmx(slots=slots))


def test_empty_morphs_and_an_empty_mesh_load(tmp_path):
    empty = morph("空", 4, 1, [])
    model = load(tmp_path, triangle_pmx(vertices=[], indices=(), morphs=empty, morph_count=1))
    assert len(model.vertices) == 0 and len(model.faces) == 0
    assert len(model.morph("空").data.indices) == 0


def test_non_finite_ik_limits_and_append_ratio_are_dropped(tmp_path):
    chain = ik(0, [0], limit_flag=1) + struct.pack("<6f", NAN, 0, 0, 0, 0, 0)
    append = struct.pack("<bf", 0, NAN)  # append parent 0, ratio NaN
    bones = [bone("センター"),
             bone("足ＩＫ", flags=0x001B | 0x20, ik=chain),
             bone("腕捩", flags=0x001B | 0x100) + append]
    model = load(tmp_path, triangle_pmx(bones=bones))
    assert model.bone("足ＩＫ").ik is None
    twist = model.bone("腕捩")
    assert twist.append_parent == -1 and twist.append_ratio == 0.0
    assert any("angle limits are not finite" in w for w in model.warnings)
    assert any("'腕捩': append ratio is not finite" in w for w in model.warnings)
