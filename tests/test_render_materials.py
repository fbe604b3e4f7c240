"""Material shading pinned pixel by pixel: sphere lookups, morph factors, toon shading.

Expected colours come from the formulas at the top of
``mmdrender/gl/shaders/material.frag.glsl``, applied to 8-bit sRGB values
directly: Phong ``base * (ambient + directional * max(N.L, 0))`` with ``base =
diffuse * texture`` (sphere ``*`` or ``+`` before lighting); toon
``clamp(diffuse * (ambient + directional)) * texture * sphere * toon(v = 0.5 -
0.5 * N.L)``; every texture sample's RGB scaled by its material-morph factors
as ``clamp(mix(neutral, rgb * multiply + add, multiply.a + add.a))``, which is
``rgb * multiply + add`` for the opaque factors used here. Pixels are read well
inside flat regions, away from the anti-aliased edges and the textures' own
colour boundaries.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from conftest_gl import gl_context  # noqa: F401  (a fixture)
from test_render import FRONT_CAMERA, make_model, material, quad, quadrants, texture_file

from mmdrender.gl import Lights, Renderer
from mmdrender.model import (
    MaterialMorph,
    Morph,
    MorphKind,
    MorphPanel,
    SphereMode,
    TextureRef,
    frozen_array,
)
from mmdrender.pose import pose_model
from mmdrender.posed import PosedModel

COLOURS = [(200, 30, 40, 255), (10, 220, 90, 255), (60, 70, 250, 255), (255, 255, 255, 255)]
LEFT, RIGHT = (-0.9, -0.1), (0.1, 0.9)  # x spans of two quads: pixels 13..115 and 141..243
LEFT_PIXEL, RIGHT_PIXEL = (128, 64), (128, 192)  # (row, column) inside each


@pytest.fixture(scope="module")
def phong(gl_context):  # noqa: F811
    with Renderer(gl_context, size=256) as r:  # the default 2x2 supersampling
        yield r


@pytest.fixture(scope="module")
def toon(gl_context):  # noqa: F811
    with Renderer(gl_context, size=256, shading="toon") as r:
        yield r


def draw(renderer, model, posed=None, lights=None) -> np.ndarray:
    with renderer.prepare(model) as scene:
        image = scene.draw(posed if posed is not None else PosedModel.rest(model), FRONT_CAMERA,
                           lights)
    assert renderer.ctx.error == "GL_NO_ERROR"
    return image


def assert_colour(image, pixel, expected, tolerance=1.0):
    """The 9x9 block around ``pixel`` is opaque and within ``tolerance`` of ``expected`` RGB."""
    row, column = pixel
    block = image[row - 4:row + 5, column - 4:column + 5].reshape(-1, 4).astype(float)
    assert (block[:, 3] == 255).all(), f"not opaque at {pixel}: {block[:, 3].min()}"
    error = np.abs(block[:, :3] - np.asarray(expected, float)).max()
    assert error <= tolerance, f"at {pixel}: {block[0, :3]} != expected {expected}"


def uniform_image(colour, size=16) -> np.ndarray:
    return np.tile(np.asarray(colour, np.uint8), (size, size, 1))


def tilted(x_span, normal):
    """A front-facing quad over ``x_span`` (y in -0.5..0.5) whose vertex normals are ``normal``."""
    p, _, uv, f = quad(*x_span, -0.5, 0.5)
    return p, [list(normal)] * 4, uv, f


def material_morph(name, entries) -> Morph:
    """entries: (material, additive, {field: value}); fields left out are neutral."""
    widths = {"diffuse": 4, "specular": 3, "ambient": 3, "edge_colour": 4, "texture_tint": 4,
              "sphere_tint": 4, "toon_tint": 4, "specular_power": 0, "edge_size": 0}
    columns = {}
    for field, width in widths.items():
        rows = []
        for _, additive, values in entries:
            neutral = 0.0 if additive else 1.0
            default = [neutral] * width if width else neutral
            rows.append(values.get(field, default))
        columns[field] = frozen_array(rows, np.float32)
    data = MaterialMorph(materials=frozen_array([e[0] for e in entries], np.int32),
                         additive=frozen_array([e[1] for e in entries], bool), **columns)
    return Morph(name=name, english_name=name, panel=MorphPanel.OTHER, kind=MorphKind.MATERIAL,
                 data=data)


# --- sphere map lookups ----------------------------------------------------------


def test_sphere_map_v_runs_down_the_texture_as_the_normal_turns_up(phong, tmp_path):
    """v = 0.5 - 0.5 * n.y: a normal turned up (+y) reads the sphere map's top half."""
    halves = np.zeros((64, 64, 4), np.uint8)
    halves[..., 3] = 255
    halves[:32, :, :3] = (200, 40, 120)  # top half
    halves[32:, :, :3] = (40, 160, 80)  # bottom half
    ref = texture_file(tmp_path, halves, "sphere.png")
    s, c = math.sin(math.radians(60)), math.cos(math.radians(60))
    model = make_model(
        [tilted(LEFT, (0, s, c)), tilted(RIGHT, (0, -s, c))],
        [material(sphere=ref, sphere_mode=SphereMode.MULTIPLY)] * 2)
    image = draw(phong, model)
    light = 0.5 + 0.5 * c  # N.L = cos 60 for both
    assert_colour(image, LEFT_PIXEL, np.array([200, 40, 120]) * light)
    assert_colour(image, RIGHT_PIXEL, np.array([40, 160, 80]) * light)


def test_sub_texture_sphere_mode_reads_additional_uv_1(phong, tmp_path):
    """PMX sphere mode 3 multiplies by the sphere texture read at additional UV 1, not the UV."""
    ref = texture_file(tmp_path, quadrants(COLOURS), "sub.png")
    model = make_model([quad(-0.5, 0.5, -0.5, 0.5)],
                       [material(diffuse=(0.5, 1.0, 0.8, 1), sphere=ref,
                                 sphere_mode=SphereMode.SUBTEXTURE)])
    uvs = model.vertices.uvs
    mirrored = np.zeros((len(uvs), 1, 4), np.float32)
    mirrored[:, 0, 0], mirrored[:, 0, 1] = 1.0 - uvs[:, 0], uvs[:, 1]  # left and right swapped
    model = replace(model, vertices=replace(model.vertices,
                                            extra_uvs=frozen_array(mirrored, np.float32)))
    image = draw(phong, model)
    diffuse = np.array([0.5, 1.0, 0.8])
    # Image quadrant (top-left, top-right, bottom-left, bottom-right) -> the texture's mirror.
    for pixel, source in zip([(90, 90), (90, 166), (166, 90), (166, 166)], [1, 0, 3, 2],
                             strict=True):
        assert_colour(image, pixel, diffuse * COLOURS[source][:3])


# --- material morphs on the texture, sphere and toon factors ---------------------


def test_a_material_morph_multiplies_and_adds_to_the_texture(phong, tmp_path):
    ref = texture_file(tmp_path, uniform_image((100, 50, 200, 255)))
    model = make_model([quad(-0.5, 0.5, -0.5, 0.5)], [material(texture=ref)])
    model = replace(model, morphs=(
        material_morph("tex_mul", [(0, False, {"texture_tint": [0.5, 1.0, 1.0, 1.0]})]),
        material_morph("tex_add", [(0, True, {"texture_tint": [0.2, 0.4, -0.1, 0.0]})]),
    ))
    assert_colour(draw(phong, model), (128, 128), (100, 50, 200))  # at rest: the texture
    posed = pose_model(model, morphs={"tex_mul": 1.0, "tex_add": 1.0})
    expected = np.array([100 * 0.5, 50, 200]) + 255 * np.array([0.2, 0.4, -0.1])
    assert_colour(draw(phong, model, posed), (128, 128), expected)  # (101, 152, 174.5)


def test_a_material_morph_scales_and_offsets_the_sphere_map(phong, tmp_path):
    """Both sphere modes apply ``clamp(sphere * multiply + add)`` (opaque factors), before
    lighting."""
    ref = texture_file(tmp_path, uniform_image((60, 120, 200, 255)), "sphere.png")
    model = make_model(
        [quad(*LEFT, -0.5, 0.5), quad(*RIGHT, -0.5, 0.5)],
        [material(diffuse=(0.4, 0.4, 0.4, 1), sphere=ref, sphere_mode=SphereMode.ADD),
         material(sphere=ref, sphere_mode=SphereMode.MULTIPLY)])
    model = replace(model, morphs=(material_morph("sphere", [
        (-1, False, {"sphere_tint": [0.5, 0.5, 0.25, 1.0]}),
        (-1, True, {"sphere_tint": [0.1, 0.2, 0.0, 0.0]}),
    ]),))
    rest = draw(phong, model)
    assert_colour(rest, LEFT_PIXEL, np.minimum(102 + np.array([60, 120, 200]), 255))
    assert_colour(rest, RIGHT_PIXEL, (60, 120, 200))
    image = draw(phong, model, pose_model(model, morphs={"sphere": 1.0}))
    sphere = np.array([60, 120, 200]) * [0.5, 0.5, 0.25] + 255 * np.array([0.1, 0.2, 0.0])
    assert_colour(image, LEFT_PIXEL, 102 + sphere)  # (157.5, 213, 152)
    assert_colour(image, RIGHT_PIXEL, sphere)  # (55.5, 111, 50)


def test_toon_ramp_is_read_by_n_dot_l_and_scaled_by_a_material_morph(toon, tmp_path):
    """toon(v = 0.5 - 0.5 * N.L): lit surfaces read the top row, unlit ones the bottom row."""
    ramp = np.zeros((32, 32, 4), np.uint8)
    ramp[..., 3] = 255
    ramp[:16, :, :3] = (100, 180, 100)  # lit
    ramp[16:, :, :3] = (50, 60, 40)  # shadow
    ref = texture_file(tmp_path, ramp, "toon.png")
    diffuse = np.array([0.8, 0.6, 1.0])
    model = make_model([tilted(LEFT, (0, 0, 1)), tilted(RIGHT, (0, 0, -1))],
                       [material(diffuse=(*diffuse, 1), toon=ref)] * 2)
    model = replace(model, morphs=(material_morph("toon", [
        (-1, False, {"toon_tint": [0.5, 1.0, 1.0, 1.0]}),
        (-1, True, {"toon_tint": [0.2, 0.1, 0.3, 0.0]}),
    ]),))
    rest = draw(toon, model)
    assert_colour(rest, LEFT_PIXEL, diffuse * [100, 180, 100])
    assert_colour(rest, RIGHT_PIXEL, diffuse * [50, 60, 40])
    image = draw(toon, model, pose_model(model, morphs={"toon": 1.0}))
    add = 255 * np.array([0.2, 0.1, 0.3])
    assert_colour(image, LEFT_PIXEL, diffuse * ([100 * 0.5, 180, 100] + add))
    assert_colour(image, RIGHT_PIXEL, diffuse * ([50 * 0.5, 60, 40] + add))


# --- toon shading under bright lights ----------------------------------------------


def test_toon_clamps_the_lit_diffuse_before_the_texture(toon, tmp_path):
    """ambient 1.2 + directional 0.5 = 1.7: diffuse 0.8 saturates at 1, then * texture."""
    ref = texture_file(tmp_path, uniform_image((128, 200, 100, 255)))
    white_ramp = TextureRef("toon10.bmp", None, shared_toon=10)  # plain white
    model = make_model([quad(*LEFT, -0.5, 0.5), quad(*RIGHT, -0.5, 0.5)],
                       [material(diffuse=(0.8, 0.4, 0.2, 1), texture=ref),
                        material(diffuse=(0.8, 0.4, 0.2, 1), texture=ref, toon=white_ramp)])
    image = draw(toon, model, lights=Lights(ambient=1.2))
    lit = np.minimum(np.array([0.8, 0.4, 0.2]) * 1.7, 1.0)  # (1.0, 0.68, 0.34)
    expected = lit * [128, 200, 100]  # (128, 136, 34); unclamped red would be 174
    assert_colour(image, LEFT_PIXEL, expected)
    assert_colour(image, RIGHT_PIXEL, expected)
