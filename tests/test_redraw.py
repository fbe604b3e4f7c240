"""Redrawing only what an expression changes gives the bytes of a whole draw (issue 14).

A scene that remembers its rest frame draws an expression by copying that frame
and redrawing the box the changed triangles cover (mmdrender.gl.redraw). On
every shared model, the samples and the heavy sample, each kind of morph the
model has (vertex, UV, material, group, bone), every morph at once and head
turns in between come out byte-identical to a scene that draws every frame
whole; and the box really is part of the image, so the test sees a wrong box.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from conftest import SHARED_MODELS, shared_model_params
from conftest import load_quietly as load
from conftest_gl import gl_context  # noqa: F401  (a fixture)
from test_reach import _models

from mmdrender.camera import Camera, estimate_head_bounds, head_centre_x
from mmdrender.gl.redraw import DrawInputs, redraw_box
from mmdrender.gl.renderer import KEPT_FRAMES, Renderer
from mmdrender.model import MorphKind, SphereMode
from mmdrender.pose import MorphMapping, Poser
from mmdrender.reach import reachable_faces
from mmdrender.render import get_renderer

SIZE = 128
PER_KIND = 2  # morphs of each kind tried alone


def _expressions(model, poser) -> list[tuple[str, object]]:
    """(label, posed): morphs of each kind alone at full weight, then every morph at once."""
    chosen: dict[MorphKind, list[int]] = {}
    for i, morph in enumerate(model.morphs):
        if morph.supported and len(chosen.setdefault(morph.kind, [])) < PER_KIND:
            chosen[morph.kind].append(i)
    poses = []
    for kind, indices in chosen.items():
        for i in indices:
            weights = np.zeros(len(model.morphs))
            weights[i] = 1.0
            poses.append((f"{kind.name} morph {model.morphs[i].name}", poser.pose_weights(weights)))
    poses.append(("every morph", poser.pose_weights(np.ones(len(model.morphs)))))
    return poses


def _same(redrawn, whole, posed, camera, what) -> tuple | None:
    a, b = redrawn.draw(posed, camera), whole.draw(posed, camera)
    assert np.array_equal(a, b), f"{what}: {int((a != b).any(axis=2).sum())} pixels differ, " \
        f"box {redrawn.redrawn_box}"
    return redrawn.redrawn_box


def _check(model, top, bottom, label, renderer=None, supersample=2):
    """Redrawn and whole frames agree; returns how many draws were partial redraws."""
    camera = Camera.from_head_bounds(top, bottom, head_centre_x(model), SIZE)
    poser = Poser(model, MorphMapping(None, None, None))
    drawn = model.with_faces(reachable_faces(model, camera, poser.turn_bounds()))
    renderer = renderer or get_renderer(SIZE, supersample=supersample)
    partial = 0
    with renderer.prepare(drawn) as redrawn, renderer.prepare(drawn) as whole:
        rest = poser.pose()
        assert np.array_equal(redrawn.draw(rest, camera, remember=True), whole.draw(rest, camera))
        turned = poser.pose({"head_x": 1.0, "head_y": -1.0, "neck_z": 1.0})
        for name, posed in _expressions(model, poser):
            for frame, what in ((posed, name), (turned, "a head turn"),
                                (rest, "the rest pose again")):
                box = _same(redrawn, whole, frame, camera, f"{label}: {what} (after {name})")
                partial += box is not None and 0 < box[2] * box[3] < (supersample * SIZE) ** 2
                assert whole.redrawn_box is None
            if not renderer.samples:
                assert redrawn.redrawn_box == (0, 0, 0, 0), f"{label}: the rest pose was redrawn"
    return partial


@pytest.mark.parametrize("supersample", [2, 1])  # 1: the drawn target is the image read
def test_samples_redraw_the_same_bytes(samples_dir, heavy_dir, gl_context,  # noqa: F811
                                       supersample):
    for name, path, truth in _models(samples_dir, heavy_dir):
        partial = _check(load(path), truth.head_top_y, truth.head_bottom_y, name,
                         supersample=supersample)
        assert partial >= 2, f"{name}: no expression was redrawn in part"


@pytest.mark.parametrize("supersample", [2, 1])
@pytest.mark.parametrize("path", shared_model_params(characters_only=True))
def test_real_models_redraw_the_same_bytes(path, supersample, gl_context):  # noqa: F811
    model = load(path)
    top, bottom, _ = estimate_head_bounds(model)
    partial = _check(model, top, bottom, str(path.relative_to(SHARED_MODELS)),
                     supersample=supersample)
    assert partial >= 1, "no expression was redrawn in part"


def test_multisampled_frames_are_drawn_whole(samples_dir, gl_context):  # noqa: F811
    renderer = Renderer(gl_context, SIZE, samples=4, supersample=1)
    try:
        if renderer.samples == 0:
            pytest.skip("this GL has no multisampling")
        model = load(samples_dir / "akane" / "akane.pmx")
        top, bottom, _ = estimate_head_bounds(model)
        assert _check(model, top, bottom, "akane 4x MSAA", renderer) == 0
    finally:
        renderer.release()


def _inputs(positions, material=0.0, mvp=b"camera") -> DrawInputs:
    positions = np.asarray(positions, np.float32)
    uvs = np.zeros((len(positions), 2), np.float32)
    materials = np.full((2, 4), material, np.float32)
    return DrawInputs(positions, np.zeros_like(positions), uvs, None, materials, (("mvp", mvp),))


SQUARE = [[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0], [0.5, 0.5, 0], [0.6, 0.5, 0],
          [0.5, 0.6, 0]]
FACES = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6]])
FACE_MATERIAL = np.array([0, 0, 1])
SQUARE_CAMERA = Camera(0.0, 0.0, 1.0, 256)  # the square [-1, 1]² fills the image


def _box(before: DrawInputs, after: DrawInputs):
    return redraw_box(before, after, FACES, FACE_MATERIAL, SQUARE_CAMERA, 1)


def test_the_box_holds_a_moved_triangle_where_it_was_and_where_it_is():
    before = _inputs(SQUARE)
    moved = np.array(SQUARE, np.float32)
    moved[4] = [0.3, 0.2, 0.0]  # NDC -> pixels of a 256 image: (166.4, 153.6)
    box = _box(before, _inputs(moved))
    x, y, w, h = box
    # Every corner, before (192, 192), (204.8, 192), (192, 204.8) and after, lies inside.
    for px, py in ((166.4, 153.6), (192, 192), (204.8, 192), (192, 204.8)):
        assert x < px < x + w and y < py < y + h
    assert x % 16 == y % 16 == w % 16 == h % 16 == 0
    assert w * h < 0.2 * 256 * 256  # the square's big triangles did not move


def test_a_box_is_none_when_the_camera_or_most_of_the_image_changes():
    before = _inputs(SQUARE)
    assert _box(before, _inputs(SQUARE, mvp=b"other")) is None
    moved = np.array(SQUARE, np.float32)
    moved[0] += 0.01  # a corner of the image-filling square
    assert _box(before, _inputs(moved)) is None
    # A material's state change redraws all its faces: material 0 is the whole square.
    assert _box(before, _inputs(SQUARE, material=1.0)) is None
    assert _box(before, _inputs(SQUARE)) == (0, 0, 0, 0)


def _akane(samples_dir):
    model = load(samples_dir / "akane" / "akane.pmx")
    top, bottom, _ = estimate_head_bounds(model)
    camera = Camera.from_head_bounds(top, bottom, head_centre_x(model), SIZE)
    return model, camera, Poser(model, MorphMapping("ウィンク", "ウィンク右", "あ"))


def test_many_kept_frames_start_the_right_draws(samples_dir, gl_context):  # noqa: F811
    """Frames kept after partial redraws, and slots reused once KEPT_FRAMES are kept,
    hold the right pixels: each later draw starts from the nearest and matches a whole draw."""
    model, camera, poser = _akane(samples_dir)
    keep = [{}, {"mouth": 1.0}, {"eye_left": 1.0}, {"eye_right": 1.0}, {"mouth": 0.5},
            {"eye_left": 0.5, "eye_right": 0.5}]  # more than KEPT_FRAMES
    assert len(keep) > KEPT_FRAMES
    with get_renderer(SIZE).prepare(model) as redrawn, get_renderer(SIZE).prepare(model) as whole:
        for values in keep:
            redrawn.draw(poser.pose(values), camera, remember=True)
        # Each kept expression again: the very frame, copied whole, no redraw.
        for values in keep[-KEPT_FRAMES:]:
            assert _same(redrawn, whole, poser.pose(values), camera, values) == (0, 0, 0, 0)
        # Near each: a small box from the nearest kept frame.
        for values in keep[-KEPT_FRAMES:]:
            near = {**values, "mouth": min(1.0, values.get("mouth", 0.0) + 0.25)}
            box = _same(redrawn, whole, poser.pose(near), camera, near)
            assert box is not None and 0 < box[2] * box[3] < 0.2 * (2 * SIZE) ** 2
        # The first ones were pushed out: the rest pose is redrawn from another.
        assert _same(redrawn, whole, poser.pose(), camera, "rest") != (0, 0, 0, 0)


def test_normal_and_sub_uv_changes_alone_are_redrawn(samples_dir, gl_context):  # noqa: F811
    """A change of normals only, or of the additional UV a sub-texture material reads only."""
    model, camera, _ = _akane(samples_dir)
    texture = next(m.texture for m in model.materials if m.texture is not None and m.texture.found)
    model = replace(model, materials=tuple(
        replace(m, sphere=texture, sphere_mode=SphereMode.SUBTEXTURE) for m in model.materials))
    poser = Poser(model, MorphMapping(None, None, None))
    rest = poser.pose()
    skin = next(m for m in model.materials if m.name == "顔")
    face = np.unique(model.faces[skin.face_start:skin.face_start + skin.face_count])
    normals = rest.normals.copy()
    normals[face] = -normals[face]
    sub_uvs = np.zeros((len(normals), 2), np.float32)  # akane has none: all read (0, 0)
    sub_uvs[face] = 0.3
    with get_renderer(SIZE).prepare(model) as redrawn, get_renderer(SIZE).prepare(model) as whole:
        redrawn.draw(rest, camera, remember=True)
        for what, posed in (("normals", replace(rest, normals=normals)),
                            ("sub-UVs", replace(rest, sub_uvs=sub_uvs)),
                            ("rest", rest)):
            box = _same(redrawn, whole, posed, camera, what)
            assert box is not None and box[2] * box[3] > 0 or what == "rest", what


def test_a_scissor_left_on_by_other_code_changes_nothing(samples_dir, gl_context):  # noqa: F811
    model, camera, poser = _akane(samples_dir)
    renderer = get_renderer(SIZE)
    with renderer.prepare(model) as redrawn, renderer.prepare(model) as other, \
            Renderer(gl_context, SIZE) as reference:
        redrawn.draw(poser.pose(), camera, remember=True)
        other.draw(poser.pose({"head_y": 0.5}), camera)  # the shared target holds another frame
        stray = gl_context.framebuffer(color_attachments=[gl_context.renderbuffer((SIZE, SIZE))])
        try:
            stray.scissor = (0, 0, 8, 8)
            stray.use()  # other code on the context leaves a small scissor on
            image = redrawn.draw(poser.pose({"mouth": 1.0}), camera)
        finally:
            stray.release()
        assert redrawn.redrawn_box[2] > 0
        with reference.prepare(model) as whole:
            assert np.array_equal(image, whole.draw(poser.pose({"mouth": 1.0}), camera))
