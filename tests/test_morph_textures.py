"""Morphs that change how textures are read: sub-texture UVs and texture factors, as MMD does.

- A UV morph on additional UV 1 (PMX morph type 4) moves where a sphere-mode-3
  sub-texture is read, so the posed additional UV 1 reaches the renderer.
- A sub-texture is an image read by UV: it wraps like a diffuse texture.
- Material-morph texture factors act on a sample's RGB only, with ``multiply.a +
  add.a`` as the weight between white and ``rgb * multiply.rgb + add.rgb``
  (MMEffect's full.fx); the texture's alpha is left alone.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from conftest_gl import gl_context  # noqa: F401  (a fixture)
from test_render import FRONT_CAMERA, make_model, material, quad, quadrants, texture_file
from test_render_materials import (
    COLOURS,
    assert_colour,
    draw,
    material_morph,
    phong,  # noqa: F401  (a fixture)
    uniform_image,
)

from mmdrender.model import Morph, MorphKind, MorphPanel, SphereMode, UVMorph, frozen_array
from mmdrender.pose import pose_model

CENTRE_PIXELS = [(90, 90), (90, 166), (166, 90), (166, 166)]  # image quadrants of the quad


def sub_textured_quad(tmp_path, sub_uvs=None):
    """A white quad whose sub-texture (four coloured quadrants) is read at ``sub_uvs``.

    ``sub_uvs``: (4, 2) additional UV 1 per corner; default the quad's own UVs.
    """
    ref = texture_file(tmp_path, quadrants(COLOURS), "sub.png")
    model = make_model([quad(-0.5, 0.5, -0.5, 0.5)],
                       [material(sphere=ref, sphere_mode=SphereMode.SUBTEXTURE)])
    extra = np.zeros((4, 1, 4), np.float32)
    extra[:, 0, :2] = model.vertices.uvs if sub_uvs is None else sub_uvs
    return replace(model, vertices=replace(model.vertices,
                                           extra_uvs=frozen_array(extra, np.float32)))


def uv1_morph(name, offsets) -> Morph:
    """A morph moving additional UV 1 of vertices 0-3 by ``offsets`` (4, 2)."""
    padded = np.zeros((4, 4), np.float32)
    padded[:, :2] = offsets
    data = UVMorph(channel=1, indices=frozen_array(np.arange(4), np.int32),
                   offsets=frozen_array(padded, np.float32))
    return Morph(name=name, english_name=name, panel=MorphPanel.OTHER, kind=MorphKind.UV1,
                 data=data)


def test_a_uv_morph_on_additional_uv_1_moves_the_sub_texture(phong, tmp_path):  # noqa: F811
    model = sub_textured_quad(tmp_path)
    model = replace(model, morphs=(uv1_morph("swap", np.tile([0.5, 0.0], (4, 1))),))
    rest = pose_model(model)
    assert rest.sub_uvs is None  # nothing moved it: the renderer keeps the model's own
    shifted = pose_model(model, morphs={"swap": 1.0})
    np.testing.assert_allclose(shifted.sub_uvs, model.vertices.uvs + [0.5, 0.0])
    with phong.prepare(model) as scene:
        images = [scene.draw(posed, FRONT_CAMERA) for posed in (rest, shifted, rest)]
    # Rest: each image quadrant shows its own texture quadrant. Shifted half a
    # texture to the right (wrapping): left and right swap.
    for pixel, source in zip(CENTRE_PIXELS, [0, 1, 2, 3], strict=True):
        assert_colour(images[0], pixel, COLOURS[source][:3])
    for pixel, source in zip(CENTRE_PIXELS, [1, 0, 3, 2], strict=True):
        assert_colour(images[1], pixel, COLOURS[source][:3])
    np.testing.assert_array_equal(images[2], images[0])  # back at rest: the rest UVs again


def test_a_uv_morph_on_another_channel_leaves_the_sub_texture_alone(tmp_path):
    model = sub_textured_quad(tmp_path)
    extra = np.zeros((4, 2, 4), np.float32)
    extra[:, 0, :2] = model.vertices.extra_uvs[:, 0, :2]
    model = replace(model, vertices=replace(model.vertices, extra_uvs=frozen_array(extra,
                                                                                   np.float32)))
    morph = uv1_morph("uv2", np.tile([0.5, 0.0], (4, 1)))
    morph = replace(morph, kind=MorphKind.UV2, data=replace(morph.data, channel=2))
    model = replace(model, morphs=(morph,))
    assert pose_model(model, morphs={"uv2": 1.0}).sub_uvs is None


def test_a_sub_texture_wraps_like_a_diffuse_texture(phong, tmp_path):  # noqa: F811
    """Additional UVs one whole texture to the right read the same texels."""
    plain = sub_textured_quad(tmp_path)
    shifted = sub_textured_quad(tmp_path, plain.vertices.uvs + [1.0, 0.0])
    image = draw(phong, shifted)
    for pixel, source in zip(CENTRE_PIXELS, [0, 1, 2, 3], strict=True):
        assert_colour(image, pixel, COLOURS[source][:3])
    np.testing.assert_array_equal(image, draw(phong, plain))


def test_texture_factors_leave_the_texture_alpha_alone(phong, tmp_path):  # noqa: F811
    """A multiply factor with alpha 0 fades the texture's colour to white, not to transparent."""
    ref = texture_file(tmp_path, uniform_image((100, 50, 200, 255)))
    model = make_model([quad(-0.5, 0.5, -0.5, 0.5)], [material(texture=ref)])
    model = replace(model, morphs=(
        material_morph("fade", [(0, False, {"texture_tint": [1.0, 1.0, 1.0, 0.0]})]),))
    image = draw(phong, model, pose_model(model, morphs={"fade": 1.0}))
    assert_colour(image, (128, 128), (255, 255, 255))
    half = draw(phong, model, pose_model(model, morphs={"fade": 0.5}))
    # multiply.a = 0.5: halfway between white and the texture.
    assert_colour(half, (128, 128), (np.array([100, 50, 200]) + 255) / 2)


def test_texture_factor_alpha_weights_the_tinted_colour_against_white(phong,  # noqa: F811
                                                                       tmp_path):
    """rgb = mix(1, rgb * m.rgb + a.rgb, m.a + a.a); the add entry's alpha adds to the weight."""
    ref = texture_file(tmp_path, uniform_image((100, 50, 200, 255)))
    model = make_model([quad(-0.5, 0.5, -0.5, 0.5)], [material(texture=ref)])
    model = replace(model, morphs=(material_morph("tint", [
        (0, False, {"texture_tint": [0.5, 1.0, 1.0, 0.25]}),
        (0, True, {"texture_tint": [0.0, 0.2, 0.0, 0.25]}),
    ]),))
    image = draw(phong, model, pose_model(model, morphs={"tint": 1.0}))
    tinted = np.array([100 * 0.5, 50 + 0.2 * 255, 200])
    assert_colour(image, (128, 128), 255 + (tinted - 255) * 0.5)
