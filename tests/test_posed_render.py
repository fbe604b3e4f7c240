"""Posed renders, checked by what the pixels show (front view, 256 px).

Image right is the character's left (+x). The sample characters are written
once per session; their ground truth (:func:`mmdrender.samples.sample_truth`)
names their winks and head bounds, so framing is exact: head top on row 64,
chin on row 192. Face positions are measured on the eyes: the pixels a blink
changes, in the pose under test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from conftest import is_character, shared_model, shared_model_params
from conftest_gl import gl_context  # noqa: F401  (a fixture)

from mmdrender import PoseError, load_model
from mmdrender.camera import Camera, estimate_head_bounds
from mmdrender.gl import Renderer
from mmdrender.gl.renderer import ModelScene
from mmdrender.model import Model, MorphKind
from mmdrender.pose import POSE_PARAMETERS, MorphMapping, Poser
from mmdrender.samples import SAMPLE_NAMES, sample_truth

SIZE = 256
HEAD_TOP_ROW, CHIN_ROW = SIZE // 4, 3 * SIZE // 4
# Eyes sit in the lower middle of the head: between 40% and 80% of the way to the chin.
EYE_BAND = (HEAD_TOP_ROW + 0.4 * (CHIN_ROW - HEAD_TOP_ROW),
            HEAD_TOP_ROW + 0.8 * (CHIN_ROW - HEAD_TOP_ROW))
SHIFT = 5.0  # pixels: a 15° turn moves the eyes 12-17 px at 256; noise is under 1
# Samples whose hair stays above the lower body (the others' tails hang past row 216).
SHORT_HAIR = ("midori", "kai")
POSED = {"head_x": 0.7, "head_y": -0.7, "neck_z": 0.5}


@pytest.fixture(scope="session")
def sample_paths(samples_dir) -> dict[str, object]:
    """Every sample character, written once for the session."""
    paths = [samples_dir / name / f"{name}.pmx" for name in SAMPLE_NAMES]
    return {path.stem: path for path in paths}


@pytest.fixture(scope="module")
def renderer(gl_context):  # noqa: F811
    with Renderer(gl_context, size=SIZE) as r:  # the default anti-aliasing
        yield r


@dataclass
class Sample:
    model: Model
    poser: Poser
    camera: Camera
    scene: ModelScene
    truth: object

    def draw(self, params=None, morphs=None) -> np.ndarray:
        return self.scene.draw(self.poser.pose(params or {}, morphs or {}), self.camera)

    def eyes(self, params=None) -> tuple[float, float, int]:
        """(row, column, count) of the pixels a both-eye blink changes in pose ``params``."""
        open_, closed = self.draw(params), self.draw(params, {self.truth.wink_both: 1.0})
        rows, columns = np.nonzero(changed(open_, closed))
        assert len(rows) > 200, "the blink changed too few pixels to locate the eyes"
        return rows.mean(), columns.mean(), len(rows)

    @property
    def centre_column(self) -> float:
        return float(self.camera.to_pixels([self.model.bone("頭").position])[0, 0])


@pytest.fixture(scope="module")
def samples(sample_paths, renderer):
    """name -> Sample, each with its scene prepared once for the module."""
    built = {}
    for name in SAMPLE_NAMES:
        model = load_model(sample_paths[name])
        truth = sample_truth(name)
        mapping = MorphMapping(truth.wink_left, truth.wink_right, truth.mouth_open)
        camera = Camera.from_head_bounds(truth.head_top_y, truth.head_bottom_y,
                                         model.bone("頭").position[0], SIZE)
        built[name] = Sample(model, Poser(model, mapping), camera, renderer.prepare(model), truth)
    yield built
    for sample in built.values():
        sample.scene.release()


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels that differ in any channel."""
    return (a != b).any(axis=-1)


def assert_background_exact(image: np.ndarray) -> None:
    assert image.dtype == np.uint8 and image.shape == (SIZE, SIZE, 4)
    empty = image[..., 3] == 0
    assert empty.sum() > SIZE * SIZE // 10, "almost no background: framing is off"
    assert not image[empty].any(), "a pixel with alpha 0 has a colour"
    for corner in (image[0, 0], image[0, -1]):
        assert not corner.any()


# --- face morphs ----------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_closing_the_left_eye_changes_only_image_right_at_eye_height(samples, name):
    sample = samples[name]
    rest = sample.draw()
    left = changed(rest, sample.draw({"eye_left": 1.0}))
    right = changed(rest, sample.draw({"eye_right": 1.0}))
    centre = sample.centre_column
    for mask, side in ((left, "left"), (right, "right")):
        rows, columns = np.nonzero(mask)
        assert len(rows) > 200, f"closing the {side} eye changed only {len(rows)} pixels"
        assert EYE_BAND[0] <= rows.min() and rows.max() <= EYE_BAND[1], (side, rows.min(),
                                                                         rows.max())
    columns_left, columns_right = np.nonzero(left)[1], np.nonzero(right)[1]
    assert (columns_left > centre).all(), "the character's left eye is on the image's right"
    assert not left[:, : int(centre)].any()
    assert (columns_right < centre).all()
    # The two winks mirror each other about the head's centre.
    assert abs((columns_left.mean() - centre) + (columns_right.mean() - centre)) < 2.0


def test_miku_left_wink_with_the_default_mapping_is_on_the_image_right(renderer):
    model = load_model(shared_model("animasa_miku_v2/miku_v2.pmd"))
    top, bottom, centre_x = estimate_head_bounds(model)
    camera = Camera.from_head_bounds(top, bottom, centre_x, SIZE)
    poser = Poser(model)
    with renderer.prepare(model) as scene:
        rest = scene.draw(poser.pose(), camera)
        mask = changed(rest, scene.draw(poser.pose({"eye_left": 1.0}), camera))
    rows, columns = np.nonzero(mask)
    assert len(rows) > 100
    assert columns.min() > SIZE / 2 and HEAD_TOP_ROW < rows.min() and rows.max() < CHIN_ROW


@pytest.mark.parametrize("name", ["akane", "yuki"])  # their まばたき is a group morph
def test_group_blink_closes_both_eyes(samples, name):
    sample = samples[name]
    blink = sample.model.morph(sample.truth.wink_both)
    assert blink.kind == MorphKind.GROUP
    mask = changed(sample.draw(), sample.draw({}, {blink.name: 1.0}))
    centre = int(round(sample.centre_column))
    left_half, right_half = mask[:, :centre].sum(), mask[:, centre:].sum()
    assert left_half > 200 and right_half > 200
    assert 0.7 < left_half / right_half < 1.4
    rows = np.nonzero(mask)[0]
    assert EYE_BAND[0] <= rows.min() and rows.max() <= EYE_BAND[1]


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_blush_overlay_turns_the_cheeks_pink(samples, name):
    sample = samples[name]
    cheeks = [m for m in sample.model.materials if m.name == "頬"]
    assert cheeks and cheeks[0].diffuse[3] == 0, "the blush overlay is invisible at rest"
    rest, blush = sample.draw(), sample.draw({}, {"照れ": 1.0})
    mask = changed(rest, blush)
    rows, columns = np.nonzero(mask)
    centre = sample.centre_column
    assert (columns < centre).sum() > 100 and (columns > centre).sum() > 100, "both cheeks"
    eye_row = sample.eyes()[0]
    assert rows.min() > eye_row and rows.max() < CHIN_ROW, "cheeks: below the eyes, above the chin"
    before, after = rest[mask][:, :3].astype(float), blush[mask][:, :3].astype(float)
    redness = lambda rgb: (rgb[:, 0] - (rgb[:, 1] + rgb[:, 2]) / 2).mean()  # noqa: E731
    assert redness(after) > redness(before) + 4.0
    assert after[:, 1].mean() < before[:, 1].mean() - 4.0, "green falls: toward red/pink"


# --- head and neck --------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_head_x_positive_moves_the_face_up(samples, name):
    sample = samples[name]
    row, column, _ = sample.eyes()
    up_row, up_column, _ = sample.eyes({"head_x": 1.0})
    down_row, down_column, _ = sample.eyes({"head_x": -1.0})
    assert up_row < row - SHIFT and down_row > row + SHIFT
    assert abs(up_column - column) < 1.0 and abs(down_column - column) < 1.0


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_head_y_positive_turns_the_face_toward_image_right(samples, name):
    sample = samples[name]
    row, column, _ = sample.eyes()
    right_row, right_column, _ = sample.eyes({"head_y": 1.0})
    left_row, left_column, _ = sample.eyes({"head_y": -1.0})
    assert right_column > column + SHIFT and left_column < column - SHIFT
    assert abs(right_row - row) < 1.0 and abs(left_row - row) < 1.0


def head_top_column(image: np.ndarray) -> float:
    """Mean column of the opaque pixels above row 80 (the head top is at 64)."""
    columns = np.nonzero(image[:80, :, 3] > 0)[1]
    assert len(columns) > 100
    return columns.mean()


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_neck_z_positive_moves_the_head_top_toward_image_left(samples, name):
    sample = samples[name]
    rest = head_top_column(sample.draw())
    assert head_top_column(sample.draw({"neck_z": 1.0})) < rest - SHIFT
    assert head_top_column(sample.draw({"neck_z": -1.0})) > rest + SHIFT
    # The neck carries the head: the eyes go the same way.
    assert sample.eyes({"neck_z": 1.0})[1] < sample.eyes()[1] - SHIFT


@pytest.mark.parametrize("name", SHORT_HAIR)
def test_head_rotation_leaves_the_lower_body_still(samples, name):
    sample = samples[name]
    rest = sample.draw()
    assert rest[-40:, :, 3].any(), "the body should fill the bottom rows"
    for params in ({"head_x": 1.0}, {"head_x": -1.0}, {"head_y": 1.0}, {"head_y": -1.0},
                   {"head_x": 0.6, "head_y": -0.8}):
        mask = changed(rest, sample.draw(params))
        assert mask[HEAD_TOP_ROW - 8:CHIN_ROW].sum() > 1000, (params, "the head should move")
        assert not mask[-40:].any(), (params, "the lower body moved")
    neck = changed(rest, sample.draw({"neck_z": 1.0}))
    assert neck[HEAD_TOP_ROW - 8:CHIN_ROW].sum() > 2 * 1000, "a neck turn moves the head"


# --- determinism and real models --------------------------------------------------


def test_posed_renders_are_byte_identical(samples, renderer):
    sample = samples["hinata"]
    params = {"head_x": 0.4, "head_y": -0.6, "neck_z": 0.3, "eye_left": 0.5, "mouth": 0.8}
    first = sample.draw(params, {"照れ": 0.7})
    samples["kai"].draw({"head_y": 1.0})  # something else in between
    second = sample.draw(params, {"照れ": 0.7})
    assert first.tobytes() == second.tobytes()
    with renderer.prepare(sample.model) as scene:  # a fresh scene: same bytes
        third = scene.draw(sample.poser.pose(params, {"照れ": 0.7}), sample.camera)
    assert first.tobytes() == third.tobytes()
    assert changed(first, sample.draw()).sum() > 1000  # and the pose did something


@pytest.mark.parametrize("path", shared_model_params())
def test_every_shared_model_renders_at_rest_and_posed_with_an_exact_background(path, renderer):
    model = load_model(path)
    poser = Poser(model)
    if model.bone_index("頭") is None:
        assert not is_character(path)
        low, high = model.vertices.positions.min(0), model.vertices.positions.max(0)
        camera = Camera.from_head_bounds(high[1] + 0.01, (low[1] + high[1]) / 2,
                                         (low[0] + high[0]) / 2, SIZE)
        with renderer.prepare(model) as scene:
            rest = scene.draw(poser.pose(), camera)
        assert rest[..., 3].any()
        assert not rest[rest[..., 3] == 0].any()
        with pytest.raises(PoseError, match="頭"):
            poser.pose(POSED)
        return
    top, bottom, centre_x = estimate_head_bounds(model)
    camera = Camera.from_head_bounds(top, bottom, centre_x, SIZE)
    with renderer.prepare(model) as scene:
        rest = scene.draw(poser.pose(), camera)
        posed = scene.draw(poser.pose(POSED), camera)
    assert renderer.ctx.error == "GL_NO_ERROR"
    for image in (rest, posed):
        assert_background_exact(image)
    assert changed(rest, posed)[HEAD_TOP_ROW:CHIN_ROW].sum() > 500, "the pose moved nothing"


# --- bad input --------------------------------------------------------------------


def test_unknown_parameter_is_a_pose_error_listing_the_valid_ones(samples):
    with pytest.raises(PoseError, match="head_z") as error:
        samples["akane"].draw({"head_z": 0.5})
    assert all(name in str(error.value) for name in POSE_PARAMETERS)


@pytest.mark.parametrize("params, morphs", [
    ({"head_x": math.nan}, {}),
    ({"eye_left": math.inf}, {}),
    ({}, {"あ": math.nan}),
])
def test_non_finite_values_are_pose_errors(samples, params, morphs):
    with pytest.raises(PoseError, match="finite"):
        samples["akane"].draw(params, morphs)
