"""Iris rotation angles by THA2's strip rule (wide-schemas.md section 3).

iris_rotation_x and _y are defined visually per model, not as angles. In the
front view, the eye's 2D box is split into 4 horizontal strips: -1 puts the
iris's top at the bottom of strip 1, +1 its bottom at the top of strip 4;
and into 8 vertical strips: -1 puts the iris's left edge (image left) at the
right edge of strip 3, +1 its right edge at the left edge of strip 6. So +x
looks up and +y toward the character's right (image left), as THA's face
trackers drive them.

Measured here, in a close-up of each eye (orthographic, as the dataset):

- the eye's box: the pixels the eye-closing morph changes around the iris
  (the opening with its lash line; the connected region of the difference
  between the open and the closed eye that holds the iris's centre);
- the iris: the faces on the eye bone drawn alone, so lids and hair hide
  nothing of it, texture alpha included.

The eye bone is then turned about the project frame's x axis (for _x) and y
axis (for _y) until the iris edge reaches its target, by bisection on the
rendered image; the four angles per eye are what the index stores
(``iris_<side>_<x|y>_<pos|neg>``, degrees). Without an eye-closing morph the
iris's own box stands in for the eye's, with a low confidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from annotate.features import Eye
from mmdrender.camera import Camera
from mmdrender.model import Model
from mmdrender.pose import Poser
from mmdrender.posed import PosedModel
from mmdrender.render import get_renderer
from mmdrender.rig import STRIP_RULE
from mmdrender.skeleton import turn_about

SIZE = 256  # the close-up's side in pixels
VIEW = 1.6  # the close-up is this many iris sizes high, either side of the iris's centre
SEARCH_DEGREES = 60.0  # the angles searched, either way
STEPS = 18  # bisection steps: 120 degrees / 2**18
CHANGED = 24  # a pixel changes when a channel moves by more than this (0-255)


@dataclass(frozen=True)
class IrisCalibration:
    """One eye's angles (degrees about +x / +y) for +-1, and what they were measured on.

    ``eye_box`` and ``iris_box`` are (x_min, x_max, y_min, y_max) in model
    units at rest; ``angles`` maps x_pos, x_neg, y_pos, y_neg to degrees.
    """

    bone: str
    angles: dict
    eye_box: tuple[float, float, float, float]
    iris_box: tuple[float, float, float, float]
    confidence: float


def close_up(eye: Eye) -> Camera:
    """The eye's close-up camera: centred on the iris, :data:`VIEW` iris sizes across."""
    x0, x1, y0, y1 = eye.box
    size = max(x1 - x0, y1 - y0)
    return Camera((x0 + x1) / 2, (y0 + y1) / 2, VIEW * size, SIZE)


def rotated_positions(poser: Poser, bone: int, axis: str, degrees: float) -> np.ndarray:
    """(V, 3) float32 positions with ``bone`` turned by ``degrees`` about ``axis`` (x or y)."""
    return poser.pose(turns={poser.model.bones[bone].name: turn_about(axis, degrees)}).positions


class _Drawer:
    """Draws the iris alone, and the whole face, in one eye's close-up."""

    def __init__(self, model: Model, eye: Eye, camera: Camera):
        self.model, self.eye, self.camera = model, eye, camera
        self.poser = Poser(model)
        on_bone = eye.vertices[model.faces].all(axis=1)
        self.iris_model = model.with_faces(on_bone)
        renderer = get_renderer(SIZE)
        self.iris_scene = renderer.prepare(self.iris_model)
        self.rest_iris = PosedModel.rest(self.iris_model)

    def iris_pixels(self, axis: str, degrees: float) -> np.ndarray | None:
        """(x_min, x_max, y_min, y_max) of the drawn iris in pixel edges, or None if unseen."""
        positions = rotated_positions(self.poser, self.eye.bone, axis, degrees)
        image = self.iris_scene.draw(PosedModel(self.iris_model, positions,
                                                self.rest_iris.normals, self.rest_iris.uvs,
                                                self.rest_iris.materials), self.camera)
        return _box(image[..., 3] > 0)

    def release(self) -> None:
        self.iris_scene.release()


def _box(mask: np.ndarray) -> np.ndarray | None:
    rows, columns = np.nonzero(mask)
    if not len(rows):
        return None
    return np.array([columns.min(), columns.max() + 1, rows.min(), rows.max() + 1], float)


def _component(mask: np.ndarray, seed: tuple[int, int]) -> np.ndarray:
    """The 4-connected region of ``mask`` that holds ``seed`` (row, column)."""
    reach = np.zeros_like(mask)
    reach[seed] = True
    while True:
        grown = reach.copy()
        grown[1:] |= reach[:-1]
        grown[:-1] |= reach[1:]
        grown[:, 1:] |= reach[:, :-1]
        grown[:, :-1] |= reach[:, 1:]
        grown &= mask
        if (grown == reach).all():
            return reach
        reach = grown


def eye_box_pixels(model: Model, camera: Camera, closing: int | None,
                   iris: np.ndarray) -> np.ndarray | None:
    """The eye's box in the close-up: what the closing morph changes around the iris."""
    if closing is None:
        return None
    poser = Poser(model)
    weights = np.zeros(len(model.morphs))
    weights[closing] = 1.0
    renderer = get_renderer(SIZE)
    with renderer.prepare(model) as scene:
        rest = scene.draw(poser.pose(), camera).astype(np.int16)
        shut = scene.draw(poser.pose_weights(weights), camera).astype(np.int16)
    changed = np.abs(rest - shut).max(axis=2) > CHANGED
    if not changed.any():
        return None
    centre = ((iris[2] + iris[3]) / 2, (iris[0] + iris[1]) / 2)
    rows, columns = np.nonzero(changed)
    nearest = np.argmin((rows - centre[0]) ** 2 + (columns - centre[1]) ** 2)
    return _box(_component(changed, (int(rows[nearest]), int(columns[nearest]))))


def _edge(box: np.ndarray, edge: str) -> float:
    return float(box[{"left": 0, "right": 1, "top": 2, "bottom": 3}[edge]])


def _search(drawer: _Drawer, axis: str, edge: str, target: float) -> float | None:
    """The angle (degrees) at which the iris's ``edge`` is at pixel ``target``."""
    def offset(degrees: float) -> float | None:
        box = drawer.iris_pixels(axis, degrees)
        return None if box is None else _edge(box, edge) - target

    # the edge moves toward larger columns / rows as the angle grows: the front of the
    # eye (+z) turns toward +x about y, and toward -y (down the image) about x
    low, high = -SEARCH_DEGREES, SEARCH_DEGREES
    at_low, at_high = offset(low), offset(high)
    while at_low is None and low < -1.0:  # turned so far the iris faces away or leaves
        low /= 2
        at_low = offset(low)
    while at_high is None and high > 1.0:
        high /= 2
        at_high = offset(high)
    if at_low is None or at_high is None or not at_low <= 0 <= at_high:
        return None
    for _ in range(STEPS):
        middle = (low + high) / 2
        value = offset(middle)
        if value is None:
            return None
        if value < 0:
            low = middle
        else:
            high = middle
    return round((low + high) / 2, 3)


def calibrate(model: Model, eye: Eye, closing: int | None) -> IrisCalibration | None:
    """Angles for one eye by the strip rule; None when the iris cannot be drawn or reached.

    ``closing``: index of a morph that closes this eye (its wink, or both eyes'
    blink), whose change gives the eye's box.
    """
    camera = close_up(eye)
    drawer = _Drawer(model, eye, camera)
    try:
        iris = drawer.iris_pixels("x", 0.0)
        if iris is None:
            return None
        box = eye_box_pixels(model, camera, closing, iris)
        confidence = 0.85
        if box is None:
            box, confidence = iris, 0.3  # no closing morph: the iris's own box stands in
        width, height = box[1] - box[0], box[3] - box[2]
        angles = {}
        for end, axis, edge, fraction in STRIP_RULE:
            start = box[0] if axis == "y" else box[2]
            span = width if axis == "y" else height
            angle = _search(drawer, axis, edge, start + fraction * span)
            if angle is None:
                return None
            angles[end] = angle
    finally:
        drawer.release()
    if not (angles["x_pos"] < angles["x_neg"] and angles["y_pos"] < angles["y_neg"]):
        confidence *= 0.5  # +1 and -1 should turn the eye opposite ways
    return IrisCalibration(model.bones[eye.bone].name, angles, _model_box(camera, box),
                           _model_box(camera, iris), round(confidence, 3))


def _model_box(camera: Camera, box: np.ndarray) -> tuple[float, float, float, float]:
    """A pixel-edge box (columns, rows) in model units: (x_min, x_max, y_min, y_max)."""
    step = camera.pixel_size
    left = camera.centre_x - camera.size / 2 * step
    top = camera.centre_y + camera.size / 2 * step
    return (float(left + box[0] * step), float(left + box[1] * step),
            float(top - box[3] * step), float(top - box[2] * step))


def review_images(model: Model, eye: Eye, angles: dict, closing: int | None
                  ) -> dict[str, np.ndarray]:
    """The eye's close-up at rest and at each end, with the box and the target strip drawn.

    ``angles``: end -> degrees (x_pos, x_neg, y_pos, y_neg; an end missing or
    None is left out). Returns ``{"rest" | end: (SIZE, SIZE, 4) uint8}``, the
    whole face drawn with only this eye turned; the eye's box (measured as
    :func:`calibrate` does) in yellow and each end's target line in cyan, so a
    person sees the rule being kept.
    """
    camera = close_up(eye)
    drawer = _Drawer(model, eye, camera)
    try:
        iris = drawer.iris_pixels("x", 0.0)
    finally:
        drawer.release()
    box = eye_box_pixels(model, camera, closing, iris) if iris is not None else None
    poser = Poser(model)
    images = {}
    with get_renderer(SIZE).prepare(model) as scene:
        for end in ("rest", *(e for e, *_ in STRIP_RULE if angles.get(e) is not None)):
            posed, target = poser.pose(), None
            if end != "rest":
                _, axis, _edge, fraction = next(t for t in STRIP_RULE if t[0] == end)
                posed = poser.pose(turns={model.bones[eye.bone].name:
                                          turn_about(axis, angles[end])})
                if box is not None:
                    start, span = (box[0], box[1] - box[0]) if axis == "y" else \
                        (box[2], box[3] - box[2])
                    target = (axis, start + fraction * span)
            image = scene.draw(posed, camera).copy()
            if box is not None:
                _outline(image, box, (255, 220, 0, 255))
            if target is not None:
                _line(image, *target, (0, 220, 255, 255))
            images[end] = image
    return images


def _outline(image: np.ndarray, box: np.ndarray, colour) -> None:
    c0, c1, r0, r1 = (int(np.clip(round(v), 0, image.shape[0] - 1)) for v in box)
    image[r0:r1 + 1, [c0, c1]] = colour
    image[[r0, r1], c0:c1 + 1] = colour


def _line(image: np.ndarray, axis: str, at: float, colour) -> None:
    k = int(np.clip(round(at), 0, image.shape[0] - 1))
    if axis == "y":
        image[:, k] = colour
    else:
        image[k, :] = colour
