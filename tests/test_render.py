"""The renderer: image rules of the dataset spec (sections 1 and 5) and MMD's draw semantics.

Synthetic quads pin the conventions exactly (framing rows, lighting, culling,
alpha); every real model checks the background and determinism.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_MODELS, is_character, shared_model, shared_model_params
from conftest_gl import gl_context  # noqa: F401  (a fixture)
from PIL import Image

from mmdrender import load_model
from mmdrender.camera import Camera, estimate_head_bounds
from mmdrender.errors import RenderError
from mmdrender.gl import Lights, Renderer
from mmdrender.model import (
    Bone,
    BoneFlags,
    Material,
    MaterialFlags,
    Model,
    SphereMode,
    TextureRef,
    Vertices,
    frozen_array,
)
from mmdrender.posed import PosedModel
from mmdrender.render import render

# --- synthetic models -------------------------------------------------------


def quad(x0, x1, y0, y1, z=0.0, facing=1.0):
    """Positions, normals, uvs, faces of an axis-aligned quad at depth z.

    ``facing`` +1: front face (counter-clockwise seen from +z, the viewer) and
    normal +z; -1: the same quad wound and lit facing away from the viewer.
    uv (0, 0) is the top-left corner (v = 0 is a texture's top row).
    """
    positions = [[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]]
    uvs = [[0, 1], [1, 1], [1, 0], [0, 0]]
    faces = [[0, 1, 2], [0, 2, 3]] if facing > 0 else [[0, 2, 1], [0, 3, 2]]
    normals = [[0, 0, facing]] * 4
    return positions, normals, uvs, faces


def material(diffuse=(1, 1, 1, 1), texture=None, double_sided=False, specular=(0, 0, 0),
             power=0.0, toon=None, sphere=None, sphere_mode=SphereMode.NONE):
    flags = MaterialFlags.DOUBLE_SIDED if double_sided else MaterialFlags(0)
    return dict(diffuse=diffuse, texture=texture, flags=flags, specular=specular, power=power,
                toon=toon, sphere=sphere, sphere_mode=sphere_mode)


def make_model(quads, materials, head_bone=True, path="synthetic.pmx") -> Model:
    """One material per quad, in order; every vertex weighted to bone 0 (頭 if ``head_bone``)."""
    positions, normals, uvs, faces, mats = [], [], [], [], []
    for (p, n, uv, f), m in zip(quads, materials, strict=True):
        base = len(positions)
        mats.append(Material(
            name="m", english_name="m",
            diffuse=frozen_array(m["diffuse"], np.float32),
            specular=frozen_array(m["specular"], np.float32),
            specular_power=float(m["power"]),
            ambient=frozen_array([0.5, 0.5, 0.5], np.float32),
            flags=m["flags"], edge_colour=frozen_array([0, 0, 0, 1], np.float32),
            edge_size=1.0, texture=m["texture"], sphere=m["sphere"],
            sphere_mode=m["sphere_mode"],
            toon=m["toon"], face_start=len(faces), face_count=len(f)))
        positions += p
        normals += n
        uvs += uv
        faces += [[base + i for i in tri] for tri in f]
    count = len(positions)
    vertices = Vertices(
        positions=frozen_array(positions, np.float32),
        normals=frozen_array(normals, np.float32),
        uvs=frozen_array(uvs, np.float32),
        extra_uvs=frozen_array(np.zeros((count, 0, 4)), np.float32),
        skinning=frozen_array(np.zeros(count), np.uint8),
        bone_indices=frozen_array(np.tile([0, -1, -1, -1], (count, 1)), np.int32),
        bone_weights=frozen_array(np.tile([1, 0, 0, 0], (count, 1)), np.float32),
        sdef=frozen_array(np.zeros((count, 3, 3)), np.float32),
        edge_scale=frozen_array(np.ones(count), np.float32),
    )
    bone = Bone(name="頭" if head_bone else "センター", english_name="head", parent=-1,
                position=frozen_array([0.25, 1.0, 0.0], np.float32), flags=BoneFlags.ROTATABLE)
    return Model(path=Path(path), format="pmx 2.0", name="quad", english_name="quad",
                 comment="", english_comment="", vertices=vertices,
                 faces=frozen_array(faces, np.int32), materials=tuple(mats), bones=(bone,),
                 morphs=(), textures=())


def texture_file(tmp_path, pixels, name="texture.png") -> TextureRef:
    path = tmp_path / name
    Image.fromarray(np.asarray(pixels, np.uint8)).save(path)
    return TextureRef(name, path)


def quadrants(colours, size=64) -> np.ndarray:
    """(size, size, 4) uint8: four uniform quadrants, top-left, top-right, bottom-left, -right."""
    image = np.zeros((size, size, 4), np.uint8)
    half = size // 2
    for (row, column), colour in zip([(0, 0), (0, 1), (1, 0), (1, 1)], colours, strict=True):
        image[row * half:(row + 1) * half, column * half:(column + 1) * half] = colour
    return image


FRONT_CAMERA = Camera(centre_x=0.0, centre_y=0.0, half_height=1.0, size=256)  # x, y in [-1, 1]


@pytest.fixture(scope="module")
def renderer(gl_context):  # noqa: F811
    with Renderer(gl_context, size=256) as r:  # the default anti-aliasing
        yield r


def draw(renderer, model, camera=FRONT_CAMERA, posed=None, lights=None):
    with renderer.prepare(model) as scene:
        image = scene.draw(posed if posed is not None else PosedModel.rest(model), camera, lights)
    assert renderer.ctx.error == "GL_NO_ERROR"
    return image


def assert_background_exact(image, bottom_corners=True):
    """Every pixel with alpha 0 is (0, 0, 0, 0), and so are the corners.

    Real models framed on the head fill the bottom of the image with the body,
    so only their top corners are background.
    """
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 4
    empty = image[..., 3] == 0
    assert not image[empty].any(), "a pixel with alpha 0 has a colour"
    corners = [image[0, 0], image[0, -1]]
    if bottom_corners:
        corners += [image[-1, 0], image[-1, -1]]
    for corner in corners:
        assert not corner.any()


# --- framing -----------------------------------------------------------------


def test_head_bounds_land_on_rows_64_and_192(renderer):
    top, bottom = 1.7, 1.2  # a head 0.5 units tall, its centre off the origin
    model = make_model([quad(0.05, 0.45, bottom, top)], [material(diffuse=(1, 0, 0, 1))])
    assert estimate_head_bounds(model) == pytest.approx((top, bottom, 0.25))
    camera = Camera.from_head_bounds(*estimate_head_bounds(model))
    image = draw(renderer, model, camera)
    rows = np.flatnonzero(image[..., 3].any(axis=1))
    columns = np.flatnonzero(image[..., 3].any(axis=0))
    assert abs(rows[0] - 64) <= 1 and abs(rows[-1] + 1 - 192) <= 1
    # Pixel-edge convention: the head top is the top edge of row 64 and the head
    # bottom the bottom edge of row 191, so those rows are fully covered and
    # their neighbours outside are empty (with pixel centres both would be half).
    assert image[64, 128, 3] == 255 and image[191, 128, 3] == 255
    assert image[63, 128, 3] == 0 and image[192, 128, 3] == 0
    # Centred on the 頭 bone's x: the quad spans x = centre ± 0.2 -> ±51.2 px.
    assert columns[0] + columns[-1] + 1 == 256
    assert np.allclose(camera.to_pixels([[0.25, top, 0], [0.25, bottom, 0]]),
                       [[128, 64], [128, 192]])


def test_from_head_bounds_at_other_sizes():
    camera = Camera.from_head_bounds(10.0, 8.0, 1.0, size=512)
    assert np.allclose(camera.to_pixels([[1.0, 10.0], [1.0, 8.0], [3.0, 9.0]]),
                       [[256, 128], [256, 384], [512, 256]])
    assert camera.pixel_size == pytest.approx(2.0 / 256)


@pytest.mark.parametrize("top, bottom, centre", [
    (1.0, 1.0, 0.0), (1.0, 2.0, 0.0), (math.nan, 1.0, 0.0), (2.0, 1.0, math.inf),
    (2.0, -math.inf, 0.0), ("a", 1.0, 0.0), (None, 1.0, 0.0),
])
def test_bad_head_bounds_are_rejected(top, bottom, centre):
    with pytest.raises(ValueError, match="head_top_y|head_bottom_y|centre_x"):
        Camera.from_head_bounds(top, bottom, centre)


def test_bad_camera_and_depth_range_are_rejected():
    with pytest.raises(ValueError, match="half_height"):
        Camera(0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="size"):
        Camera(0.0, 0.0, 1.0, size=0)
    with pytest.raises(ValueError, match="depth_range"):
        FRONT_CAMERA.projection((1.0, math.nan))
    with pytest.raises(ValueError, match="depth_range"):
        FRONT_CAMERA.projection((2.0, 1.0))


def test_projection_keeps_the_depth_range_inside_near_and_far():
    matrix = FRONT_CAMERA.projection((-3.0, 2.0))
    assert matrix.dtype == np.float32 and matrix.shape == (4, 4)
    near, far = matrix @ [0, 0, 2.0, 1], matrix @ [0, 0, -3.0, 1]
    assert -1 < near[2] < far[2] < 1  # larger z (towards the viewer) is nearer


def test_a_model_without_a_head_bone_needs_explicit_bounds(renderer):
    model = make_model([quad(-0.5, 0.5, -0.5, 0.5)], [material()], head_bone=False)
    with pytest.raises(RenderError, match="頭.*give head bounds explicitly"):
        estimate_head_bounds(model)
    with pytest.raises(RenderError, match="頭"):
        render(model)
    image = render(model, Camera.from_head_bounds(0.5, -0.5, 0.0))  # explicit bounds work
    assert image[..., 3].any()


# --- lighting and colour ----------------------------------------------------

COLOURS = [(200, 30, 40, 255), (10, 220, 90, 255), (60, 70, 250, 255), (255, 255, 255, 255)]


def test_textured_quad_facing_the_viewer_shows_its_texture_exactly(renderer, tmp_path):
    """Default lights (0.5 ambient + 0.5 along -z) and white diffuse: colour = texture."""
    ref = texture_file(tmp_path, quadrants(COLOURS))
    model = make_model([quad(-0.5, 0.5, -0.5, 0.5)], [material(texture=ref)])
    image = draw(renderer, model)
    # The quad covers pixels 64..191; sample each quadrant's interior, away from
    # the texture's own edges (bilinear filtering blends across them).
    for (row, column), colour in zip([(80, 80), (80, 170), (170, 80), (170, 170)], COLOURS,
                                     strict=True):
        assert tuple(image[row - 8:row + 8, column - 8:column + 8].reshape(-1, 4).min(0)) == colour
        assert tuple(image[row - 8:row + 8, column - 8:column + 8].reshape(-1, 4).max(0)) == colour
    assert_background_exact(image)


def test_diffuse_colour_multiplies_the_texture_and_alphas_multiply(renderer, tmp_path):
    ref = texture_file(tmp_path, quadrants([(200, 100, 50, 255)] * 3 + [(200, 100, 50, 128)]))
    model = make_model([quad(-0.5, 0.5, -0.5, 0.5)],
                       [material(diffuse=(0.5, 1.0, 0.25, 0.5), texture=ref)])
    image = draw(renderer, model).astype(int)
    expected = np.array([100, 100, 12.5])
    assert np.abs(image[90, 90, :3] - expected).max() <= 1
    assert abs(image[90, 90, 3] - 127.5) <= 1
    assert np.abs(image[170, 170, :3] - expected).max() <= 2  # straight alpha: colour kept
    assert abs(image[170, 170, 3] - 255 * 0.5 * 128 / 255) <= 1


def test_lighting_follows_the_phong_formula(renderer):
    """A surface tilted 60 degrees from the light gets ambient + directional * cos."""
    c = math.cos(math.radians(60))
    p, _, uv, f = quad(-0.5, 0.5, -0.5, 0.5)
    tilted = (p, [[math.sin(math.radians(60)), 0, c]] * 4, uv, f)
    model = make_model([tilted], [material(diffuse=(0.8, 0.8, 0.8, 1))])
    image = draw(renderer, model).astype(float)
    assert abs(image[128, 128, 0] - 255 * 0.8 * (0.5 + 0.5 * c)) <= 1
    bright = draw(renderer, model, lights=Lights(ambient=1.0, directional=0.5)).astype(float)
    assert abs(bright[128, 128, 0] - 255 * min(1.0, 0.8 * (1.0 + 0.5 * c))) <= 1
    # Specular: (specular * directional * (N.H)^power) is added; H = +z for the default light.
    shiny = make_model([tilted], [material(diffuse=(0.4, 0.4, 0.4, 1), specular=(0.6, 0, 0),
                                           power=2.0)])
    lit = draw(renderer, shiny).astype(float)
    h = c  # N.H with H = +z
    assert abs(lit[128, 128, 0] - 255 * (0.4 * (0.5 + 0.5 * c) + 0.6 * 0.5 * h**2)) <= 1
    assert abs(lit[128, 128, 1] - 255 * 0.4 * (0.5 + 0.5 * c)) <= 1


def test_phong_applies_the_sphere_map_before_lighting(renderer, tmp_path):
    """Sphere maps are looked up by the normal and added to (or multiply) the base colour."""
    halves = np.zeros((64, 64, 4), np.uint8)
    halves[..., 3] = 255
    halves[:, 32:, :3] = (60, 30, 90)  # right half: normals turned towards +x
    ref = texture_file(tmp_path, halves, "sphere.png")
    c = math.cos(math.radians(60))
    p, _, uv, f = quad(-0.5, 0.5, -0.5, 0.5)
    tilted = (p, [[math.sin(math.radians(60)), 0, c]] * 4, uv, f)
    add = make_model([tilted], [material(diffuse=(0.4, 0.4, 0.4, 1), sphere=ref,
                                         sphere_mode=SphereMode.ADD)])
    image = draw(renderer, add).astype(float)
    expected = (255 * 0.4 + np.array([60, 30, 90])) * (0.5 + 0.5 * c)
    assert np.abs(image[128, 128, :3] - expected).max() <= 1
    multiply = make_model([tilted], [material(sphere=ref, sphere_mode=SphereMode.MULTIPLY)])
    image = draw(renderer, multiply).astype(float)
    assert np.abs(image[128, 128, :3] - np.array([60, 30, 90]) * (0.5 + 0.5 * c)).max() <= 1
    mirrored = (p, [[-math.sin(math.radians(60)), 0, c]] * 4, uv, f)  # samples the black half
    left = make_model([mirrored], [material(diffuse=(0.4, 0.4, 0.4, 1), sphere=ref,
                                            sphere_mode=SphereMode.ADD)])
    image = draw(renderer, left).astype(float)
    assert np.abs(image[128, 128, :3] - 255 * 0.4 * (0.5 + 0.5 * c)).max() <= 1


# --- culling, alpha, draw order ------------------------------------------------


def test_back_faces_are_culled_unless_the_material_is_double_sided(renderer):
    back = quad(-0.5, 0.5, -0.5, 0.5, facing=-1.0)
    single = make_model([back], [material(diffuse=(0.2, 0.6, 1.0, 1))])
    assert not draw(renderer, single).any()
    double = make_model([back], [material(diffuse=(0.2, 0.6, 1.0, 1), double_sided=True)])
    image = draw(renderer, double)
    # Two-sided lighting: the back face is lit with its normal flipped towards
    # the viewer, so it shows the full material colour rather than ambient only.
    assert tuple(image[128, 128]) == (51, 153, 255, 255)
    assert_background_exact(image)


def test_a_material_with_alpha_zero_is_not_drawn(renderer):
    hidden_in_front = material(diffuse=(1, 1, 1, 0))
    red_behind = material(diffuse=(1, 0, 0, 1))
    model = make_model([quad(-0.5, 0.5, -0.5, 0.5, z=0.5), quad(-0.25, 0.25, -0.25, 0.25)],
                       [hidden_in_front, red_behind])
    image = draw(renderer, model)
    assert tuple(image[128, 128]) == (255, 0, 0, 255)  # no depth left by the hidden one
    assert not image[70, 70].any()
    # Hiding by a material morph (the posed MaterialState) works the same way.
    shown = make_model(model_quads := [quad(-0.5, 0.5, -0.5, 0.5)], [material()])
    posed = PosedModel.rest(shown)
    diffuse = posed.materials.diffuse.copy()
    diffuse[0, 3] = 0.0
    morphed = replace(posed, materials=replace(posed.materials, diffuse=diffuse))
    assert draw(renderer, shown).any() and len(model_quads) == 1
    assert not draw(renderer, shown, posed=morphed).any()


def test_cut_out_texels_leave_no_hole_in_later_materials(renderer, tmp_path):
    """Alpha test: transparent texels write no depth, so what is drawn later shows through."""
    cut = quadrants([(0, 0, 0, 0), (255, 255, 255, 255), (0, 0, 0, 0), (255, 255, 255, 255)])
    ref = texture_file(tmp_path, cut)
    model = make_model(
        [quad(-0.5, 0.5, -0.5, 0.5, z=0.5), quad(-0.5, 0.5, -0.5, 0.5, z=0.0)],
        [material(texture=ref), material(diffuse=(0, 0, 1, 1))])
    image = draw(renderer, model)
    assert tuple(image[128, 80]) == (0, 0, 255, 255)  # left half: the blue quad behind
    assert tuple(image[128, 170]) == (255, 255, 255, 255)  # right half: the front texels


def test_translucent_materials_blend_in_file_order(renderer):
    model = make_model(
        [quad(-0.5, 0.5, -0.5, 0.5, z=0.0), quad(-0.25, 0.25, -0.25, 0.25, z=0.1)],
        [material(diffuse=(0, 0, 1, 1)), material(diffuse=(1, 1, 1, 0.5))])
    image = draw(renderer, model).astype(int)
    assert np.abs(image[128, 128] - [127.5, 127.5, 255, 255]).max() <= 1
    # A translucent quad alone keeps its colour (straight alpha) and its alpha.
    alone = make_model([quad(-0.5, 0.5, -0.5, 0.5)], [material(diffuse=(1, 0.5, 0, 0.25))])
    pixel = draw(renderer, alone)[128, 128].astype(int)
    assert np.abs(pixel - [255, 127.5, 0, 63.75]).max() <= 2


ANTIALIASING = [(2, 0), (1, 4), (2, 4), (3, 0)]  # (supersample, MSAA samples)


@pytest.mark.parametrize(("supersample", "samples"), ANTIALIASING)
def test_antialiased_edges_keep_their_colour(gl_context, supersample, samples):  # noqa: F811
    """Edge pixels are partly transparent, and un-premultiplying restores their colour.

    Premultiplied 8-bit pixels hold a colour only to within about 255 / alpha
    (twice that when supersampling, which rounds once per sample and again
    after filtering), so faint pixels may be off by more than solid ones.
    """
    p, n, uv, f = quad(-0.5, 0.5, -0.5, 0.5)
    p = [[x + 0.3 * y, y, z] for x, y, z in p]  # a slanted edge
    model = make_model([(p, n, uv, f)], [material(diffuse=(0.8, 0.4, 0.2, 1))])
    with Renderer(gl_context, samples=samples, supersample=supersample) as r:
        image = draw(r, model)
    alpha = image[..., 3]
    edge = (alpha > 0) & (alpha < 255)
    assert edge.sum() > 100
    levels = len(np.unique(alpha[edge]))
    assert levels >= 2, "one coverage level only: not anti-aliased"
    error = np.abs(image[edge][:, :3].astype(int) - [204, 102, 51]).max(axis=1)
    assert (error <= 2 * 255 / alpha[edge] + 1).all()
    assert np.median(error) <= 2


# --- modes, sizes, lights, errors ------------------------------------------------------


def test_toon_mode_facing_the_viewer_matches_phong(gl_context, tmp_path):  # noqa: F811
    ref = texture_file(tmp_path, quadrants(COLOURS))
    toon = TextureRef("toon01.bmp", None, shared_toon=1)
    model = make_model([quad(-0.5, 0.5, -0.5, 0.5)], [material(texture=ref, toon=toon)])
    with Renderer(gl_context, shading="toon") as r:
        image = draw(r, model)
    for (row, column), colour in zip([(80, 80), (80, 170), (170, 80), (170, 170)], COLOURS,
                                     strict=True):
        assert tuple(image[row, column]) == colour


def test_toon_mode_renders_a_real_model_differently(gl_context):  # noqa: F811
    model = load_model(shared_model("animasa_miku_v2/miku_v2.pmd"))
    phong = render(model)
    toon = render(model, shading="toon")
    assert_background_exact(toon, bottom_corners=False)
    assert toon[..., 3].any()
    assert (toon != phong).any()
    assert gl_context.error == "GL_NO_ERROR"


def test_size_512(gl_context):  # noqa: F811
    model = load_model(shared_model("animasa_miku_v2/miku_v2.pmd"))
    image = render(model, size=512)
    assert image.shape == (512, 512, 4) and image.dtype == np.uint8
    assert_background_exact(image, bottom_corners=False)
    small = render(model)
    # Same framing: the head occupies the same fraction of the image.
    rows = np.flatnonzero(image[..., 3].any(axis=1))
    small_rows = np.flatnonzero(small[..., 3].any(axis=1))
    assert abs(rows[0] / 2 - small_rows[0]) <= 1


def premultiplied(image: np.ndarray) -> np.ndarray:
    """float RGBA with rgb * alpha / 255, the values the renderer blends and filters."""
    image = image.astype(np.float64)
    return np.concatenate([image[..., :3] * image[..., 3:] / 255.0, image[..., 3:]], axis=-1)


def test_supersampling_is_the_box_filter_of_the_large_image(gl_context):  # noqa: F811
    """2x2 supersampling at 256 = each 2x2 block of a plain 512 render, averaged (no shift)."""
    model = load_model(shared_model("animasa_miku_v2/miku_v2.pmd"))
    top, bottom, centre_x = estimate_head_bounds(model)
    with Renderer(gl_context, 512, samples=0, supersample=1) as r:
        large = draw(r, model, Camera.from_head_bounds(top, bottom, centre_x, 512))
    with Renderer(gl_context, 256, samples=0, supersample=2) as r:
        assert r.supersample == 2 and r.samples == 0
        small = draw(r, model, Camera.from_head_bounds(top, bottom, centre_x, 256))
    expected = premultiplied(large).reshape(256, 2, 256, 2, 4).mean(axis=(1, 3))
    difference = np.abs(premultiplied(small) - expected)
    assert difference.max() <= 1.5  # one rounding of each of the two images
    assert ((small[..., 3] > 0) & (small[..., 3] < 255)).sum() > 500  # edges are smoothed
    assert not small[small[..., 3] == 0].any()


@pytest.mark.parametrize(("settings", "message"), [
    ({"supersample": 0}, "supersample must be an int of at least 1"),
    ({"supersample": True}, "supersample must be an int"),
    ({"samples": -1}, "samples must be an int of at least 0"),
    ({"size": 0}, "size must be an int of at least 1"),
    ({"size": 8192, "supersample": 4}, "exceeds this GL's largest image side"),
])
def test_bad_antialiasing_settings_are_refused(gl_context, settings, message):  # noqa: F811
    with pytest.raises(ValueError, match=message):
        Renderer(gl_context, **settings)


def test_samples_zero_and_unsupported_counts(gl_context):  # noqa: F811
    with Renderer(gl_context, samples=0, supersample=1) as r:
        assert r.samples == 0
        model = make_model([quad(-0.5, 0.5, -0.5, 0.5)], [material(diffuse=(1, 0, 0, 1))])
        image = draw(r, model)
        assert set(np.unique(image[..., 3])) == {0, 255}  # no anti-aliasing
    with Renderer(gl_context, samples=64) as r:
        assert r.samples <= gl_context.max_samples


def test_lights_sampling_follows_the_papers():
    first = [Lights.sample(np.random.default_rng(7)) for _ in range(2)]
    assert first[0] == first[1]  # reproducible from the seed
    tha1 = [Lights.sample(np.random.default_rng(seed)) for seed in range(200)]
    assert all(0.5 <= x.ambient <= 1.2 and x.directional == 0.5 for x in tha1)
    assert max(x.ambient for x in tha1) > 1.1 and min(x.ambient for x in tha1) < 0.6
    tha2 = [Lights.sample(seed, "tha2") for seed in range(200)]
    assert all(0.5 <= x.ambient <= 0.75 and 0.5 <= x.directional <= 1.25 for x in tha2)
    assert Lights().direction == (0.0, 0.0, -1.0) and Lights().towards_light == (0.0, 0.0, 1.0)
    with pytest.raises(ValueError):
        Lights.sample(0, "tha9")
    with pytest.raises(ValueError):
        Lights(direction=(0.0, 0.0, 0.0))
    with pytest.raises(ValueError):
        Lights(ambient=math.nan)


def test_bad_draw_input_is_rejected(renderer):
    model = make_model([quad(-0.5, 0.5, -0.5, 0.5)], [material()])
    posed = PosedModel.rest(model)
    with renderer.prepare(model) as scene:
        with pytest.raises(RenderError, match="256"):
            scene.draw(posed, Camera(0.0, 0.0, 1.0, size=128))
        with pytest.raises(RenderError, match="positions"):
            scene.draw(replace(posed, positions=posed.positions[:2]), FRONT_CAMERA)
        with pytest.raises(RenderError, match="not finite"):
            scene.draw(replace(posed, positions=posed.positions * np.nan), FRONT_CAMERA)
        other = make_model([quad(-0.5, 0.5, -0.5, 0.5)], [material()])
        with pytest.raises(RenderError, match="not the model"):
            scene.draw(PosedModel.rest(other), FRONT_CAMERA)
    with pytest.raises(RenderError, match="released"):
        scene.draw(posed, FRONT_CAMERA)
    with pytest.raises(ValueError, match="shading"):
        Renderer(renderer.ctx, shading="cel")
    assert renderer.ctx.error == "GL_NO_ERROR"


def test_an_undecodable_texture_becomes_a_warning(renderer, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    model = make_model([quad(-0.5, 0.5, -0.5, 0.5)],
                       [material(texture=TextureRef("broken.png", broken))])
    with renderer.prepare(model) as scene:
        image = scene.draw(PosedModel.rest(model), FRONT_CAMERA)
        assert scene.warnings and "broken.png" in scene.warnings[0]
    assert tuple(image[128, 128]) == (255, 255, 255, 255)


# --- real models ---------------------------------------------------------------


def frame(model: Model) -> Camera:
    """The head when the model has one, else the whole model."""
    try:
        return Camera.from_head_bounds(*estimate_head_bounds(model))
    except RenderError:
        y = model.vertices.positions[:, 1]
        x = model.vertices.positions[:, 0]
        return Camera.from_head_bounds(float(y.max()), float(y.min()),
                                       float(x.max() + x.min()) / 2)


@pytest.mark.parametrize("path", shared_model_params())
def test_every_shared_model_renders_with_an_exact_background(path, renderer):
    model = load_model(path)
    camera = frame(model)
    posed = PosedModel.rest(model)
    with renderer.prepare(model) as scene:
        first = scene.draw(posed, camera)
        again = scene.draw(posed, camera)
    assert renderer.ctx.error == "GL_NO_ERROR"
    assert first.shape == (256, 256, 4) and first.dtype == np.uint8
    assert_background_exact(first, bottom_corners=not is_character(path))
    assert (first[..., 3] > 0).sum() > 1000, "the character is (nearly) empty"
    assert np.array_equal(first, again), "the same input rendered differently"


def test_a_fresh_renderer_gives_the_same_bytes(gl_context, renderer):  # noqa: F811
    model = load_model(shared_model("mamama_appearance_miku/index.pmx"))
    camera = frame(model)
    first = draw(renderer, model, camera)
    with Renderer(gl_context) as other:
        assert np.array_equal(draw(other, model, camera), first)


@pytest.mark.parametrize("path", [p for p in shared_model_params()
                                  if p.values[0] is None or "_robustness" not in str(p.values[0])])
def test_estimated_head_bounds_frame_the_head(path):
    model = load_model(path)
    top, bottom, centre_x = estimate_head_bounds(model)
    y = model.vertices.positions[:, 1]
    head = model.bone("頭").position
    assert top > head[1] > bottom
    # Hair chains hang from 頭 (Miku's twin tails reach her knees): they must
    # not drag the head's bottom down. (gumi_lowpoly's big head is 45% of her.)
    assert top - bottom < 0.5 * (y.max() - y.min())
    assert centre_x == pytest.approx(head[0])


def test_saved_renders_round_trip_through_png(tmp_path):
    model = load_model(shared_model("animasa_miku_v2/miku_v2.pmd"))
    image = render(model)
    Image.fromarray(image).save(tmp_path / "rest.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "rest.png")), image)
    assert SHARED_MODELS.is_dir()


# --- review findings: alpha above 1, textures GL refuses, stand-ins, depth ties, N.L ----


def test_alpha_above_one_draws_opaque_not_brighter(renderer):
    """MEIKO's lips store diffuse alpha 99; MMD draws that as opaque, colour unchanged."""
    opaque = make_model([quad(-0.5, 0.5, -0.5, 0.5)], [material(diffuse=(0.8, 0.4, 0.2, 1))])
    above = make_model([quad(-0.5, 0.5, -0.5, 0.5)], [material(diffuse=(0.8, 0.4, 0.2, 99))])
    expected = draw(renderer, opaque)
    assert tuple(expected[128, 128]) == (204, 102, 51, 255)
    assert np.array_equal(draw(renderer, above), expected)


def test_a_later_material_at_the_same_depth_covers_an_earlier_one(renderer):
    """MMD's depth test is LEQUAL: decals drawn later on the same surface show."""
    model = make_model([quad(-0.5, 0.5, -0.5, 0.5), quad(-0.25, 0.25, -0.25, 0.25)],
                       [material(diffuse=(1, 0, 0, 1)), material(diffuse=(0, 0, 1, 1))])
    image = draw(renderer, model)
    assert tuple(image[128, 128]) == (0, 0, 255, 255)
    assert tuple(image[128, 80]) == (255, 0, 0, 255)


def test_a_surface_facing_away_from_the_light_gets_ambient_only(renderer):
    """Front-facing triangles with normals pointing away: N.L < 0 adds nothing (not darkens)."""
    p, _, uv, f = quad(-0.5, 0.5, -0.5, 0.5)
    away = make_model([(p, [[0, 0, -1]] * 4, uv, f)], [material(diffuse=(0.8, 0.4, 0.2, 1))])
    assert tuple(draw(renderer, away)[128, 128]) == (102, 51, 26, 255)  # half: ambient 0.5


def test_an_undecodable_sphere_shared_by_multiply_and_add_gets_each_roles_stand_in(
        renderer, tmp_path):
    """The stand-in for a broken sphere is white for multiply and black for add: no change."""
    (tmp_path / "broken.spa").write_bytes(b"not an image")
    broken = TextureRef("broken.spa", tmp_path / "broken.spa")
    quads = [quad(-0.5, 0.0, -0.5, 0.5), quad(0.0, 0.5, -0.5, 0.5)]
    colours = [(0.8, 0.4, 0.2, 1), (0.2, 0.4, 0.8, 1)]
    plain = draw(renderer, make_model(quads, [material(diffuse=c) for c in colours]))
    model = make_model(quads, [material(diffuse=colours[0], sphere=broken,
                                        sphere_mode=SphereMode.MULTIPLY),
                               material(diffuse=colours[1], sphere=broken,
                                        sphere_mode=SphereMode.ADD)])
    with renderer.prepare(model) as scene:
        image = scene.draw(PosedModel.rest(model), FRONT_CAMERA)
        assert scene.warnings and all("<_io" not in w for w in scene.warnings)
    assert np.array_equal(image, plain)


def test_a_texture_wider_than_gl_allows_is_scaled_down_and_blames_no_one_else(
        gl_context, renderer, tmp_path):  # noqa: F811
    largest = int(gl_context.info["GL_MAX_TEXTURE_SIZE"])
    wide = np.zeros((2, largest + 16, 4), np.uint8)
    wide[..., 0], wide[..., 3] = 200, 255
    ref = texture_file(tmp_path, wide, "wide.png")
    model = make_model([quad(-0.5, 0.5, -0.5, 0.5)], [material(texture=ref)])
    with renderer.prepare(model) as scene:
        image = scene.draw(PosedModel.rest(model), FRONT_CAMERA)
        assert any("scaled down" in w for w in scene.warnings), scene.warnings
    assert tuple(image[128, 128]) == (200, 0, 0, 255)
    # A GL error some other code left pending is not blamed on the next model.
    gl_context.texture((largest + 1, 1), 4).release()
    plain = make_model([quad(-0.5, 0.5, -0.5, 0.5)], [material(diffuse=(1, 0, 0, 1))])
    assert tuple(draw(renderer, plain)[128, 128]) == (255, 0, 0, 255)


@pytest.mark.parametrize("half_height", [1e-39, 1e-7, 1e-4])
def test_a_view_too_small_to_draw_is_refused(half_height):
    with pytest.raises(ValueError, match="too small to draw"):
        Camera(centre_x=0.0, centre_y=17.0, half_height=half_height)
    Camera(centre_x=0.0, centre_y=17.0, half_height=0.01)  # a 2 cm view of a 17-unit model: fine
