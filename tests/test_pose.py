"""Posing: morphs, forward kinematics and skinning, checked by what a front view shows.

Front view: image right = +x = the character's left, image up = +y. Real models
come from ../shared (skipped when absent); group, bone, material and UV morphs
are built onto a loaded model with ``dataclasses.replace``, since the real
models only carry vertex morphs.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace

import numpy as np
import pytest
from conftest import shared_model, shared_model_params

from mmdrender import PoseError, load_model
from mmdrender.model import (
    BoneFlags,
    BoneMorph,
    GroupMorph,
    MaterialMorph,
    Morph,
    MorphKind,
    MorphPanel,
    UnsupportedMorph,
    UVMorph,
    frozen_array,
)
from mmdrender.morph import expand_groups
from mmdrender.pose import POSE_PARAMETERS, MorphMapping, Poser, pose_model
from mmdrender.posed import MaterialState
from mmdrender.skeleton import Skeleton, deform_order, quat_multiply, quat_power

MIKU = "animasa_miku_v2/miku_v2.pmd"
MAMAMA = "mamama_appearance_miku/index.pmx"
# mamama's Miku has no one-eye winks; map its both-eye morphs so every parameter works.
MAMAMA_MAPPING = MorphMapping(wink_left="まばたき", wink_right="笑い")
DEGREES = 15.0


@pytest.fixture(scope="module")
def miku():
    return load_model(shared_model(MIKU))


@pytest.fixture(scope="module")
def mamama():
    return load_model(shared_model(MAMAMA))


@pytest.fixture(scope="module", params=[MIKU, MAMAMA], ids=["miku_v2", "mamama"])
def character(request):
    return load_model(shared_model(request.param))


# ------------------------------------------------------------------ helpers


def subtree(model, name: str) -> np.ndarray:
    """(B,) bool: the bone called ``name`` and all its descendants."""
    root = model.bone_index(name)
    inside = np.zeros(len(model.bones), dtype=bool)
    for i in range(len(model.bones)):
        j = i
        while j >= 0 and j != root:
            j = model.bones[j].parent
        inside[i] = j == root
    return inside


def influenced_by(model, bones: np.ndarray) -> np.ndarray:
    """(V,) bool: vertices with any weight on a bone in the (B,) mask."""
    v = model.vertices
    hit = np.where(v.bone_indices >= 0, bones[v.bone_indices], False) & (v.bone_weights > 0)
    return hit.any(axis=1)


def only_on(model, name: str) -> np.ndarray:
    """(V,) bool: vertices skinned entirely to the bone ``name``."""
    v = model.vertices
    return (v.bone_indices[:, 0] == model.bone_index(name)) & (v.bone_weights[:, 0] >= 0.999)


def face(model) -> np.ndarray:
    """(V,) bool: head-only vertices in front of the head bone, near eye height."""
    p = model.vertices.positions
    head, eye = model.bone("頭").position, model.bone("左目").position
    front = (p[:, 2] > head[2]) & (np.abs(p[:, 1] - eye[1]) < 0.5)
    mask = only_on(model, "頭") & front
    assert mask.sum() > 100
    return mask


def head_top(model) -> np.ndarray:
    p = model.vertices.positions
    mask = only_on(model, "頭") & (p[:, 1] > np.quantile(p[only_on(model, "頭"), 1], 0.9))
    assert mask.sum() > 20
    return mask


def rot_x(deg):
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(deg):
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_z(deg):
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def moved(model, posed, tolerance=1e-6) -> np.ndarray:
    return np.linalg.norm(posed.positions - model.vertices.positions, axis=1) > tolerance


def with_morphs(model, *morphs: Morph):
    return replace(model, morphs=model.morphs + tuple(morphs))


def material_morph(entries) -> MaterialMorph:
    """entries: list of (material, additive, {field: value}); unnamed fields are neutral."""
    neutral = {"diffuse": 4, "specular": 3, "ambient": 3, "edge_colour": 4, "texture_tint": 4,
               "sphere_tint": 4, "toon_tint": 4, "specular_power": None, "edge_size": None}
    columns = {}
    for field, width in neutral.items():
        rows = []
        for _, additive, values in entries:
            base = 0.0 if additive else 1.0
            rows.append(values.get(field, base if width is None else [base] * width))
        columns[field] = frozen_array(rows, np.float32)
    return MaterialMorph(materials=frozen_array([e[0] for e in entries], np.int32),
                         additive=frozen_array([e[1] for e in entries], bool), **columns)


def morph(name, kind, data):
    return Morph(name, name, MorphPanel.OTHER, kind, data)


# ------------------------------------------------------------------ rest


@pytest.mark.parametrize("path", shared_model_params())
def test_rest_pose_is_the_loaded_arrays_exactly(path):
    model = load_model(path)
    expected = MaterialState.rest(model)
    for posed in (Poser(model).pose(), pose_model(model, dict.fromkeys(POSE_PARAMETERS, 0.0))):
        v = model.vertices
        assert np.array_equal(posed.positions, v.positions)
        assert np.array_equal(posed.normals, v.normals)
        assert np.array_equal(posed.uvs, v.uvs)
        for name in MaterialState.__dataclass_fields__:
            assert np.array_equal(getattr(posed.materials, name), getattr(expected, name)), name


# ------------------------------------------------------------------ rotations, by what is visible


def test_head_x_positive_tilts_the_face_up_negative_down(character):
    poser, mask = Poser(character, MAMAMA_MAPPING), face(character)
    rest_y = character.vertices.positions[mask, 1].mean()
    up = poser.pose({"head_x": 1.0}).positions[mask, 1].mean()
    down = poser.pose({"head_x": -1.0}).positions[mask, 1].mean()
    assert up > rest_y + 0.05
    assert down < rest_y - 0.05


def test_head_y_positive_turns_the_face_toward_plus_x(character):
    poser, mask = Poser(character, MAMAMA_MAPPING), face(character)
    rest_x = character.vertices.positions[mask, 0].mean()
    assert poser.pose({"head_y": 1.0}).positions[mask, 0].mean() > rest_x + 0.05
    assert poser.pose({"head_y": -1.0}).positions[mask, 0].mean() < rest_x - 0.05


def test_neck_z_positive_moves_the_head_top_toward_minus_x(character):
    poser, mask = Poser(character, MAMAMA_MAPPING), head_top(character)
    rest_x = character.vertices.positions[mask, 0].mean()
    assert poser.pose({"neck_z": 1.0}).positions[mask, 0].mean() < rest_x - 0.1
    assert poser.pose({"neck_z": -1.0}).positions[mask, 0].mean() > rest_x + 0.1


def test_rotations_match_hand_built_matrices(character):
    """R_head = R_y(yaw) R_x(pitch) about 頭, R_neck = R_z(roll) about 首, neck outside."""
    mask = only_on(character, "頭")
    p = character.vertices.positions[mask].astype(np.float64)
    head, neck = character.bone("頭").position, character.bone("首").position
    head_x, head_y, neck_z = 0.6, -0.8, 0.4
    posed = Poser(character, degrees=DEGREES).pose(
        {"head_x": head_x, "head_y": head_y, "neck_z": neck_z})
    r_head = rot_y(head_y * DEGREES) @ rot_x(-head_x * DEGREES)
    in_neck = (p - head) @ r_head.T + head
    expected = (in_neck - neck) @ rot_z(neck_z * DEGREES).T + neck
    np.testing.assert_allclose(posed.positions[mask], expected, atol=2e-5)
    normals = character.vertices.normals[mask] @ (rot_z(neck_z * DEGREES) @ r_head).T
    unit = np.linalg.norm(normals, axis=1) > 0.5
    np.testing.assert_allclose(posed.normals[mask][unit], normals[unit]
                               / np.linalg.norm(normals[unit], axis=1, keepdims=True), atol=1e-5)


def test_degrees_scales_the_rotation(miku):
    mask = only_on(miku, "頭")
    p = miku.vertices.positions[mask].astype(np.float64)
    neck = miku.bone("首").position
    posed = Poser(miku, degrees=30.0).pose({"neck_z": 0.5})
    np.testing.assert_allclose(posed.positions[mask], (p - neck) @ rot_z(15.0).T + neck,
                               atol=2e-5)


def test_neck_carries_the_head_and_head_leaves_the_body_still(character):
    poser = Poser(character)
    below_head = ~influenced_by(character, subtree(character, "頭"))
    below_neck = ~influenced_by(character, subtree(character, "首"))
    assert below_neck.sum() > 1000
    head_posed = poser.pose({"head_x": 1.0, "head_y": -1.0})
    rest = character.vertices.positions
    assert np.array_equal(head_posed.positions[below_head], rest[below_head])
    assert np.array_equal(head_posed.normals[below_head], character.vertices.normals[below_head])
    assert moved(character, head_posed)[face(character)].all()
    neck_posed = poser.pose({"neck_z": 1.0})
    assert np.array_equal(neck_posed.positions[below_neck], rest[below_neck])
    assert moved(character, neck_posed)[only_on(character, "頭")].all()


def test_skinning_matches_a_dense_reference(mamama):
    """Every vertex (BDEF1, BDEF2, SDEF-as-BDEF2) against sum_k w_k S_k p."""
    params = {"head_x": 0.7, "head_y": 0.5, "neck_z": -0.9}
    posed = Poser(mamama).pose(params)
    head, neck = mamama.bone_index("頭"), mamama.bone_index("首")
    rotations = np.tile([0.0, 0.0, 0.0, 1.0], (len(mamama.bones), 1))
    pitch, yaw = math.radians(-0.7 * DEGREES), math.radians(0.5 * DEGREES)
    rotations[head] = quat_multiply([0, math.sin(yaw / 2), 0, math.cos(yaw / 2)],
                                    [math.sin(pitch / 2), 0, 0, math.cos(pitch / 2)])
    roll = math.radians(-0.9 * DEGREES)
    rotations[neck] = [0, 0, math.sin(roll / 2), math.cos(roll / 2)]
    skin = Skeleton(mamama.bones).skin_matrices(rotations).astype(np.float64)
    v = mamama.vertices
    homogeneous = np.concatenate([v.positions, np.ones((len(v), 1))], axis=1)
    per_bone = np.einsum("vkij,vj->vki", skin[np.maximum(v.bone_indices, 0)], homogeneous)
    expected = np.einsum("vk,vki->vi", v.bone_weights, per_bone)[:, :3]
    np.testing.assert_allclose(posed.positions, expected, atol=2e-5)
    assert (np.abs(expected - v.positions).max(axis=1) > 1e-3).sum() > 1000


# ------------------------------------------------------------------ eyes and mouth


def test_miku_winks_close_the_eye_on_the_side_the_mapping_says(miku):
    """On Animasa's Miku ウィンク closes the character's right eye (x < 0) and
    ウィンク右 its left (x > 0): MMD names them by the screen side."""
    poser = Poser(miku)
    for params, morphs, side in (({"eye_right": 1.0}, {}, -1), ({"eye_left": 1.0}, {}, 1),
                                 ({}, {"ウィンク": 1.0}, -1), ({}, {"ウィンク右": 1.0}, 1)):
        posed = poser.pose(params, morphs)
        delta = posed.positions - miku.vertices.positions
        visible = np.linalg.norm(delta, axis=1) > 0.01
        assert visible.sum() > 100
        assert (np.sign(miku.vertices.positions[visible, 0]) == side).all(), (params, morphs)
        assert delta[visible, 1].mean() < 0  # the lid comes down


def test_mouth_moves_only_vertices_below_the_eyes(character):
    """Visibly: Miku's あ also nudges two vertices above the eyes by 0.005."""
    poser = Poser(character, MAMAMA_MAPPING)
    changed = moved(character, poser.pose({"mouth": 1.0}), tolerance=0.01)
    assert changed.sum() > 50
    eyes = character.bone("左目").position[1]
    assert (character.vertices.positions[changed, 1] < eyes).all()


def test_params_and_raw_morphs_add(miku):
    poser = Poser(miku)
    both = poser.pose({"mouth": 0.25}, {"あ": 0.5}).positions
    np.testing.assert_allclose(both, poser.pose({}, {"あ": 0.75}).positions, atol=1e-6)


# ------------------------------------------------------------------ other morph kinds


def test_group_morphs_expand_recursively_with_multiplied_weights(miku):
    a, wink = miku.morph_index("あ"), miku.morph_index("ウィンク")
    inner = len(miku.morphs)
    model = with_morphs(
        miku,
        morph("inner", MorphKind.GROUP, GroupMorph(frozen_array([wink], np.int32),
                                                   frozen_array([0.5], np.float32))),
        morph("outer", MorphKind.GROUP, GroupMorph(frozen_array([a, inner], np.int32),
                                                   frozen_array([0.5, 2.0], np.float32))))
    poser = Poser(model)
    grouped = poser.pose({}, {"outer": 0.8}).positions
    direct = poser.pose({}, {"あ": 0.4, "ウィンク": 0.8}).positions
    np.testing.assert_allclose(grouped, direct, atol=1e-6)
    assert moved(model, poser.pose({}, {"outer": 0.8})).sum() > 100


def test_group_morph_loops_are_cut_with_a_warning(miku):
    a = miku.morph_index("あ")
    first, second = len(miku.morphs), len(miku.morphs) + 1
    model = with_morphs(
        miku,
        morph("loop1", MorphKind.GROUP, GroupMorph(frozen_array([second, a], np.int32),
                                                   frozen_array([1.0, 0.5], np.float32))),
        morph("loop2", MorphKind.GROUP, GroupMorph(frozen_array([first], np.int32),
                                                   frozen_array([1.0], np.float32))))
    weights = np.zeros(len(model.morphs))
    weights[first] = 1.0
    with pytest.warns(UserWarning, match="loop1"):
        effective = expand_groups(model.morphs, weights)
    assert effective[a] == pytest.approx(0.5)
    assert effective[first] == 0 and effective[second] == 0


def test_material_morph_multiplies_then_adds(miku):
    entries = [
        (0, True, {"diffuse": [0.1, 0.2, 0.3, 0.0]}),                  # add, listed first
        (0, False, {"diffuse": [0.5, 1.0, 2.0, 1.0], "texture_tint": [0.0, 1.0, 1.0, 1.0]}),
        (-1, True, {"ambient": [0.2, 0.2, 0.2], "sphere_tint": [0.1, 0.0, 0.0, 0.0]}),
        (2, False, {"specular_power": 3.0, "edge_size": 0.0}),
    ]
    model = with_morphs(miku, morph("mat", MorphKind.MATERIAL, material_morph(entries)))
    rest = MaterialState.rest(model)
    w = 0.5
    state = Poser(model).pose({}, {"mat": w}).materials
    expected_diffuse = rest.diffuse[0] * (1 + (np.array([0.5, 1, 2, 1]) - 1) * w) \
        + np.array([0.1, 0.2, 0.3, 0.0]) * w
    np.testing.assert_allclose(state.diffuse[0], expected_diffuse, rtol=1e-6)
    np.testing.assert_array_equal(state.diffuse[1:], rest.diffuse[1:])
    np.testing.assert_allclose(state.texture_multiply[0], [0.5, 1, 1, 1])
    np.testing.assert_array_equal(state.texture_multiply[1:], 1.0)
    np.testing.assert_allclose(state.ambient, rest.ambient + 0.1, rtol=1e-6)  # -1: every one
    np.testing.assert_allclose(state.sphere_add[:, 0], 0.05)
    np.testing.assert_array_equal(state.texture_add, 0.0)
    assert state.specular_power[2] == pytest.approx(rest.specular_power[2] * 2.0)
    assert state.edge_size[2] == pytest.approx(rest.edge_size[2] * 0.5)
    assert np.array_equal(Poser(model).pose().materials.diffuse, rest.diffuse)


def test_bone_morph_moves_its_bone(miku):
    head = miku.bone_index("頭")
    angle = math.radians(DEGREES)
    rotation = [0.0, math.sin(angle / 2), 0.0, math.cos(angle / 2)]  # R_y(15 degrees)
    model = with_morphs(
        miku,
        morph("lift", MorphKind.BONE, BoneMorph(frozen_array([head], np.int32),
                                                frozen_array([[0.0, 1.0, 0.0]], np.float32),
                                                frozen_array([[0, 0, 0, 1]], np.float32))),
        morph("turn", MorphKind.BONE, BoneMorph(frozen_array([head], np.int32),
                                                frozen_array([[0.0, 0.0, 0.0]], np.float32),
                                                frozen_array([rotation], np.float32))))
    poser = Poser(model)
    mask = only_on(model, "頭")
    lifted = poser.pose({}, {"lift": 0.5}).positions
    shift = lifted[mask] - model.vertices.positions[mask]
    np.testing.assert_allclose(shift, np.broadcast_to([0, 0.5, 0], shift.shape), atol=1e-5)
    still = ~influenced_by(model, subtree(model, "頭"))
    assert np.array_equal(lifted[still], model.vertices.positions[still])
    for w in (1.0, 0.5):  # rotation = slerp(identity, q, w)
        np.testing.assert_allclose(poser.pose({}, {"turn": w}).positions,
                                   poser.pose({"head_y": w}).positions, atol=1e-5)


def test_uv_morph_moves_uvs_only(miku):
    data = UVMorph(0, frozen_array([0, 5, 5], np.int32),
                   frozen_array([[0.1, 0.2, 9, 9], [0.3, 0.0, 9, 9], [0.1, 0.1, 9, 9]],
                                np.float32))
    model = with_morphs(miku, morph("slide", MorphKind.UV, data))
    posed = Poser(model).pose({}, {"slide": 0.5})
    expected = model.vertices.uvs.copy()
    expected[0] += [0.05, 0.1]
    expected[5] += [0.2, 0.05]
    np.testing.assert_allclose(posed.uvs, expected, atol=1e-7)
    assert np.array_equal(posed.positions, model.vertices.positions)


def test_unsupported_morphs_are_skipped_with_a_warning(miku):
    model = with_morphs(miku, morph("flipper", MorphKind.FLIP, UnsupportedMorph("flip")))
    with pytest.warns(UserWarning, match="flipper"):
        posed = Poser(model).pose({}, {"flipper": 1.0})
    assert np.array_equal(posed.positions, model.vertices.positions)


@pytest.fixture(scope="module")
def sample_paths(tmp_path_factory):
    """The procedural sample characters, written once for this module."""
    samples = pytest.importorskip("mmdrender.samples", reason="mmdrender.samples not written yet")
    try:
        paths = samples.write_samples(tmp_path_factory.mktemp("samples"))
    except ImportError as error:  # its helper modules are still being written
        if not (error.name or "").startswith("mmdrender."):
            raise
        pytest.skip(f"mmdrender.samples needs {error.name}, not written yet")
    assert paths
    return paths


def test_sample_characters_pose_every_morph(sample_paths):
    for path in sample_paths:
        model = load_model(path)
        poser = Poser(model)
        rest = poser.pose()
        for m in model.morphs:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                posed = poser.pose({}, {m.name: 1.0})
            assert np.isfinite(posed.positions).all() and np.isfinite(posed.normals).all()
            changed = (not np.array_equal(posed.positions, rest.positions)
                       or not np.array_equal(posed.uvs, rest.uvs)
                       or any(not np.array_equal(getattr(posed.materials, f),
                                                 getattr(rest.materials, f))
                              for f in MaterialState.__dataclass_fields__))
            assert changed or not m.supported or m.kind in (
                MorphKind.UV1, MorphKind.UV2, MorphKind.UV3, MorphKind.UV4), (path.name, m.name)


def test_sample_characters_wink_and_turn_as_their_truth_says(sample_paths):
    """The samples disagree on wink names on purpose; their ground truth maps them."""
    from mmdrender.samples import sample_truth

    for path in sample_paths:
        model = load_model(path)
        truth = sample_truth(path.stem)
        poser = Poser(model, MorphMapping(truth.wink_left, truth.wink_right, truth.mouth_open))
        for parameter, side in (("eye_left", 1), ("eye_right", -1)):
            visible = moved(model, poser.pose({parameter: 1.0}), tolerance=0.01)
            assert visible.sum() > 20, (path.name, parameter)
            assert (np.sign(model.vertices.positions[visible, 0]) == side).all(), \
                (path.name, parameter)
        head = model.bone("頭").position
        front = only_on(model, "頭") & (model.vertices.positions[:, 2] > head[2] + 0.5)
        posed = poser.pose({"head_x": 1.0, "eye_left": 0.5, "mouth": 1.0})
        assert front.sum() > 20 and np.isfinite(posed.positions).all()
        assert posed.positions[front, 1].mean() > model.vertices.positions[front, 1].mean()


# ------------------------------------------------------------------ skeleton details


def test_append_rotation_follows_the_source_with_its_ratio(miku):
    """両目 drives 左目 and 右目 (ratio 1); a negative ratio turns the other way."""
    skeleton = Skeleton(miku.bones)
    both, left = miku.bone_index("両目"), miku.bone_index("左目")
    q = np.array([math.sin(0.2), 0.0, 0.0, math.cos(0.2)])
    rotations = np.tile([0.0, 0.0, 0.0, 1.0], (len(miku.bones), 1))
    rotations[both] = q
    resolved, _ = skeleton.resolve_appends(rotations, np.zeros((len(miku.bones), 3)))
    np.testing.assert_allclose(resolved[left], q, atol=1e-12)
    bones = list(miku.bones)
    bones[left] = replace(bones[left], append_ratio=-0.5)
    resolved, _ = Skeleton(bones).resolve_appends(rotations, np.zeros((len(bones), 3)))
    np.testing.assert_allclose(resolved[left], [math.sin(-0.1), 0, 0, math.cos(-0.1)], atol=1e-12)


def test_quat_power_handles_negative_and_zero():
    q = np.array([0.0, 0.0, math.sin(0.3), math.cos(0.3)])
    np.testing.assert_allclose(quat_power(q, -1.0), [0, 0, -math.sin(0.3), math.cos(0.3)])
    np.testing.assert_allclose(quat_power(q, 0.0), [0, 0, 0, 1])
    np.testing.assert_allclose(quat_power(-q, 0.5), [0, 0, math.sin(0.15), math.cos(0.15)])
    np.testing.assert_allclose(quat_power([0, 0, 0, 1.0], 0.7), [0, 0, 0, 1])
    np.testing.assert_allclose(quat_power([0, 0, 0, 0.0], 0.7), [0, 0, 0, 1])


def test_deform_order_sorts_after_physics_then_layer_then_index(miku):
    bones = list(miku.bones[:4])
    bones[0] = replace(bones[0], flags=bones[0].flags | BoneFlags.AFTER_PHYSICS)
    bones[2] = replace(bones[2], deform_layer=1)
    assert deform_order(bones).tolist() == [1, 3, 2, 0]


# ------------------------------------------------------------------ reuse


def test_poser_is_reusable_and_never_touches_rest_arrays(mamama):
    v = mamama.vertices
    before = {name: np.array(getattr(v, name)) for name in ("positions", "normals", "uvs")}
    poser = Poser(mamama, MAMAMA_MAPPING)
    params = {"eye_left": 0.3, "eye_right": 0.9, "mouth": 0.5, "head_x": -0.4,
              "head_y": 0.8, "neck_z": 0.2}
    first, second = poser.pose(params), poser.pose(params)
    assert np.array_equal(first.positions, second.positions)
    assert np.array_equal(first.normals, second.normals)
    assert first.positions is not v.positions
    for name, array in before.items():
        assert np.array_equal(getattr(v, name), array)
    assert not first.positions.flags.writeable and not first.normals.flags.writeable
    assert np.array_equal(poser.pose().positions, v.positions)


@pytest.mark.parametrize("kept", [8, 1])
def test_a_poser_that_posed_other_bone_sets_gives_what_a_fresh_one_gives(miku, monkeypatch,
                                                                       kept):
    """The Poser remembers moved vertices per set of moved bones; no set leaks into another."""
    monkeypatch.setattr("mmdrender.pose._SKIN_SETS_KEPT", kept)  # 1: forgets at every new set
    poses = [{"head_x": 0.5}, {"neck_z": -0.7}, {"head_y": 0.3, "neck_z": 0.2}, {"head_x": -1.0},
             {}, {"neck_z": 1.0}, {"mouth": 1.0, "head_y": -0.4}]
    poser = Poser(miku)
    for params in poses * 2:
        posed, fresh = poser.pose(params), Poser(miku).pose(params)
        assert np.array_equal(posed.positions, fresh.positions), params
        assert np.array_equal(posed.normals, fresh.normals), params


# ------------------------------------------------------------------ errors


def test_unknown_parameter_lists_the_valid_ones(miku):
    with pytest.raises(PoseError, match="head_z") as error:
        Poser(miku).pose({"head_z": 0.5})
    assert all(name in str(error.value) for name in POSE_PARAMETERS)


def test_unknown_morph_lists_the_models_morphs(miku):
    with pytest.raises(PoseError, match="smile") as error:
        Poser(miku).pose({}, {"smile": 1.0})
    assert "まばたき" in str(error.value) and "あ" in str(error.value)


def test_missing_mapped_morph_names_parameter_morph_and_alternatives(mamama):
    poser = Poser(mamama)  # default mapping: ウィンク右 / ウィンク, which mamama lacks
    assert np.array_equal(poser.pose({"mouth": 1.0, "head_x": 0.5}).positions,
                          Poser(mamama, MAMAMA_MAPPING).pose({"mouth": 1.0, "head_x": 0.5})
                          .positions)
    with pytest.raises(PoseError) as error:
        poser.pose({"eye_left": 0.5})
    message = str(error.value)
    assert "eye_left" in message and "ウィンク右" in message and "まばたき" in message
    assert "瞳縦" in message and "にやり" in message  # every eye and mouth morph is listed
    none = Poser(mamama, MorphMapping(wink_right=None))
    with pytest.raises(PoseError, match="eye_right.*wink_right is None"):
        none.pose({"eye_right": 1.0})


@pytest.mark.parametrize("params, morphs, match", [
    ({"head_x": float("nan")}, {}, "head_x"),
    ({"mouth": float("inf")}, {}, "mouth"),
    ({}, {"あ": float("nan")}, "あ"),
    ({"eye_left": 1.5}, {}, r"eye_left.*\[0, 1\]"),
    ({"mouth": -0.1}, {}, "mouth.*range"),
    ({"head_y": -1.01}, {}, r"head_y.*\[-1, 1\]"),
    ({"neck_z": "a lot"}, {}, "neck_z.*number"),
], ids=["nan-param", "inf-param", "nan-morph", "eye-range", "mouth-range", "head-range",
        "not-a-number"])
def test_bad_values_are_pose_errors(miku, params, morphs, match):
    with pytest.raises(PoseError, match=match):
        Poser(miku).pose(params, morphs)


def test_rotation_on_a_model_without_neck_or_head_is_a_pose_error(miku):
    renamed = tuple(replace(b, name=b.name + "_") if b.name in ("首", "頭") else b
                    for b in miku.bones)
    model = replace(miku, bones=renamed)
    poser = Poser(model)
    assert np.array_equal(poser.pose({"mouth": 1.0}).positions,
                          Poser(miku).pose({"mouth": 1.0}).positions)
    with pytest.raises(PoseError, match="頭"):
        poser.pose({"head_x": 0.5})
    with pytest.raises(PoseError, match="首"):
        poser.pose({"neck_z": -0.5})


def test_bad_degrees_is_a_pose_error(miku):
    with pytest.raises(PoseError, match="degrees"):
        Poser(miku, degrees=float("nan"))
