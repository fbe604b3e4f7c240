"""Drawing only the triangles that can reach the image changes no pixel (issue 14).

On every shared model, the samples and the heavy sample: renders of the
culled model and of the whole model are byte-identical at the extremes of the
poses a run draws (THA1's head framing; THA3's upper body with its body,
breathing and arm posture), including every morph at full weight at once; and
the culling does leave out triangles, so the test would see a wrong bound.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from conftest import SHARED_MODELS, shared_model_params
from conftest import load_quietly as load
from conftest_gl import gl_context  # noqa: F401  (a fixture)

from mmdrender.camera import Camera, estimate_head_bounds, head_centre_x
from mmdrender.pose import MorphMapping, Poser
from mmdrender.reach import _turned, movement_bounds, reachable_faces
from mmdrender.render import get_renderer
from mmdrender.rig import Rig
from mmdrender.samples import HEAVY_SAMPLE, SAMPLE_NAMES, sample_truth
from mmdrender.schema_pose import SchemaPoser
from mmdrender.schemas import SCHEMAS

CORNERS = [(1, 1, 1), (-1, -1, -1), (1, -1, 1), (-1, 1, -1)]


def _models(samples_dir, heavy_dir):
    named = [(n, samples_dir / n / f"{n}.pmx", sample_truth(n)) for n in SAMPLE_NAMES]
    named.append((HEAVY_SAMPLE, heavy_dir / HEAVY_SAMPLE / f"{HEAVY_SAMPLE}.pmx",
                  sample_truth(HEAVY_SAMPLE)))
    return named


def _same_pixels(renderer, model, posed_list, camera, keep, label):
    culled = model.with_faces(keep)
    with renderer.prepare(model) as whole, renderer.prepare(culled) as part:
        for k, posed in enumerate(posed_list):
            a = whole.draw(posed, camera)
            b = part.draw(replace(posed, model=culled), camera)
            assert np.array_equal(a, b), f"{label}: pose {k} differs in " \
                f"{int((a != b).any(axis=2).sum())} pixels"
            assert a[..., 3].any(), f"{label}: pose {k} draws nothing"


def _check(model, top, bottom, label):
    camera = Camera.from_head_bounds(top, bottom, head_centre_x(model), 96)
    poser = Poser(model, MorphMapping(None, None, None))
    keep = reachable_faces(model, camera, poser.turn_bounds())
    assert keep.sum() < len(keep) or len(keep) < 2000, f"{label}: nothing culled"
    poses = [poser.pose({"head_x": x, "head_y": y, "neck_z": z}) for x, y, z in CORNERS]
    poses.append(poser.pose_parts({"head_x": 1.0, "head_y": -1.0, "neck_z": 1.0},
                                  np.ones(len(model.morphs))))  # every morph at once
    renderer = get_renderer(96)
    _same_pixels(renderer, model, poses, camera, keep, f"{label} tha1")
    _moved_at_most_the_bound(model, poser, [{"head_x": x, "head_y": y, "neck_z": z}
                                            for x, y, z in CORNERS], f"{label} tha1")
    # THA3: the upper body, the body turned and breathing, the arms lowered
    schema = SCHEMAS["tha3"]
    bones = {b.name for b in model.bones}
    rig = Rig(body_bone="上半身" if "上半身" in bones else None,
              chest_bone="上半身2" if "上半身2" in bones else None,
              shoulders={s: n for s, n in (("left", "左肩"), ("right", "右肩")) if n in bones})
    wide = SchemaPoser(model, schema, rig, lower_arms=True)
    camera = Camera.framing("upper_body", top, bottom, head_centre_x(model), 96)
    keep = reachable_faces(model, camera, wide.turn_bounds())
    poses = [wide.pose({"head_x": x, "head_y": y, "neck_z": z, "body_y": -y, "body_z": z,
                        "breathing": 1.0}) for x, y, z in CORNERS[:2]]
    _same_pixels(renderer, model, poses, camera, keep, f"{label} tha3")
    _moved_at_most_the_bound(model, wide, [
        {"head_x": x, "head_y": y, "neck_z": z, "body_y": -y, "body_z": z, "breathing": 1.0}
        for x, y, z in CORNERS], f"{label} tha3")


def test_culled_samples_draw_the_same_bytes(samples_dir, heavy_dir, gl_context):  # noqa: F811
    for name, path, truth in _models(samples_dir, heavy_dir):
        _check(load(path), truth.head_top_y, truth.head_bottom_y, name)


@pytest.mark.parametrize("path", shared_model_params(characters_only=True))
def test_culled_real_models_draw_the_same_bytes(path, gl_context):  # noqa: F811
    model = load(path)
    top, bottom, _ = estimate_head_bounds(model)
    _check(model, top, bottom, str(path.relative_to(SHARED_MODELS)))


def test_the_heavy_sample_is_a_model_like_todays(heavy_dir):
    model = load(heavy_dir / HEAVY_SAMPLE / f"{HEAVY_SAMPLE}.pmx")
    assert len(model.vertices) >= 45_000 and len(model.faces) >= 70_000
    assert len(model.materials) >= 30
    cards = [m for m in model.materials if m.name.startswith(("髪カード", "フリル"))]
    assert len(cards) >= 15 and all(m.double_sided for m in cards)
    assert sum(m.double_sided for m in model.materials) >= len(model.materials) / 2


def test_the_bound_covers_what_a_turn_really_does():
    """A point 2 units below a pivot turned 15° about x moves 2 (1 - cos 15°) in y and
    2 sin 15° in z, never in x; about any axis, up to the angle times the distance."""
    offset = np.array([[0.0, 2.0, 0.0]])
    spread = np.zeros((1, 3))
    angle = np.radians(15)
    x = _turned(spread, offset, "x", angle)[0]
    assert x[0] == 0 and x[1] == pytest.approx(2 * (1 - np.cos(angle)))
    assert x[2] == pytest.approx(2 * np.sin(angle))
    assert _turned(spread, offset, None, angle)[0] == pytest.approx(2 * angle)


def _moved_at_most_the_bound(model, poser, poses, label):
    bound = movement_bounds(model, poser.turn_bounds())
    rest = model.vertices.positions.astype(np.float64)
    for values in poses:
        moved = np.abs(poser.pose(values).positions - rest)
        over = moved - bound - 1e-4
        assert (over <= 0).all(), f"{label} {values}: a vertex moved {over.max():.4f} past " \
            f"its bound (vertex {int(np.argmax(over.max(axis=1)))})"


def test_every_vertex_moves_within_its_bound_appended_bones_included(samples_dir):
    """An append (付与) bone turns with its source even when that is not its ancestor: a
    shoulder here copies the head's turns, so the arm swings with the head."""
    from mmdrender.model import BoneFlags

    model = load(samples_dir / "akane" / "akane.pmx")
    poses = [{"head_x": x, "head_y": y, "neck_z": z} for x, y, z in CORNERS]
    _moved_at_most_the_bound(model, Poser(model, MorphMapping(None, None, None)), poses,
                             "akane")
    head, shoulder = model.bone_index("頭"), model.bone_index("左肩")
    for ratio in (1.0, -1.0, 0.5, -0.5, 3.0):  # a part or the inverse: tilted, reversed axes
        bones = list(model.bones)
        bones[shoulder] = replace(bones[shoulder], append_parent=head, append_ratio=ratio,
                                  flags=bones[shoulder].flags | BoneFlags.APPEND_ROTATE)
        appended = replace(model, bones=tuple(bones))
        poser = Poser(appended, MorphMapping(None, None, None))
        arm = appended.weight_on(appended.subtree(model.bone_index("左腕"))) > 0.5
        swing = poser.pose({"head_y": 1.0}).positions[arm] - model.vertices.positions[arm]
        assert np.abs(swing).max() > 0.1  # the arm does swing with the head
        _moved_at_most_the_bound(appended, poser, poses, f"akane, shoulder appended x{ratio}")
    # turns past 90° (an API user's Poser): the 1 - cos term keeps growing
    _moved_at_most_the_bound(model, Poser(model, MorphMapping(None, None, None), degrees=120),
                             poses, "akane at 120°")
