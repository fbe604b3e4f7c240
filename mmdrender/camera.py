"""Orthographic framing from head bounds.

The camera looks along -z at the character's front, with no rotation: image
right is +x (the character's left), image up is +y. Drawings have no
foreshortening, so the projection is orthographic (dataset spec section 5).

Pixel convention: image coordinates are measured in pixels from the image's
top-left *corner* (pixel edges, not centres), rows growing downwards. Pixel
row r covers [r, r + 1). :meth:`Camera.from_head_bounds` puts the head top on
the top edge of row ``size / 4`` and the head bottom on the bottom edge of
row ``3 * size / 4 - 1``, so a 256-pixel image's head fills rows 64..191: the
middle 128-pixel strip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mmdrender.errors import RenderError
from mmdrender.model import Model

HEAD_BONE = "頭"
HEAD_WEIGHT = 0.5  # a vertex belongs to the head when more than this is weighted to it
_SMALLEST_VIEW = 1e-4  # half_height at least this fraction of the largest centre coordinate


@dataclass(frozen=True)
class Camera:
    """An orthographic camera on the +z side, looking along -z.

    The image shows x in ``centre_x ± half_height`` and y in
    ``centre_y ± half_height`` (square pixels, square image), ``size`` pixels
    on a side.
    """

    centre_x: float
    centre_y: float
    half_height: float
    size: int = 256

    def __post_init__(self):
        for name in ("centre_x", "centre_y", "half_height"):
            value = getattr(self, name)
            if not isinstance(value, int | float | np.floating | np.integer) or not math.isfinite(
                value
            ):
                raise ValueError(f"Camera.{name} must be a finite number, not {value!r}")
        if self.half_height <= 0:
            raise ValueError(f"Camera.half_height must be positive, not {self.half_height}")
        # float32 (the GPU's precision) must still tell pixels apart at this scale.
        scale = max(1.0, abs(self.centre_x), abs(self.centre_y))
        if self.half_height < _SMALLEST_VIEW * scale:
            raise ValueError(f"Camera.half_height {self.half_height:g} is too small to draw at "
                             f"centre ({self.centre_x:g}, {self.centre_y:g}): head bounds this "
                             "close together frame nothing recognisable; check them")
        if isinstance(self.size, bool) or not isinstance(self.size, int | np.integer):
            raise ValueError(f"Camera.size must be an int, not {self.size!r}")
        if self.size < 1:
            raise ValueError(f"Camera.size must be at least 1, not {self.size}")

    @classmethod
    def from_head_bounds(
        cls, head_top_y: float, head_bottom_y: float, centre_x: float, size: int = 256
    ) -> Camera:
        """Frame a head: ``head_top_y`` on row ``size / 4``, ``head_bottom_y`` on ``3 * size / 4``.

        Rows are pixel edges counted from the top of the image (see the module
        docstring), so the head spans the middle half of the image height,
        horizontally centred on ``centre_x``. Bounds are model units (y up).
        """
        values = {"head_top_y": head_top_y, "head_bottom_y": head_bottom_y, "centre_x": centre_x}
        for name, value in values.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a number, not {value!r}") from None
            if not math.isfinite(number):
                raise ValueError(f"{name} must be finite, not {value!r}")
        top, bottom = float(head_top_y), float(head_bottom_y)
        if not top > bottom:
            raise ValueError(
                f"head_top_y ({top}) must be above head_bottom_y ({bottom}): y is up"
            )
        # The head's height is half the image's, so half the image is the head's height.
        return cls(float(centre_x), (top + bottom) / 2.0, top - bottom, size)

    @classmethod
    def framing(cls, framing: str, head_top_y: float, head_bottom_y: float, centre_x: float,
                size: int) -> Camera:
        """A schema's framing (:attr:`mmdrender.schemas.Schema.framing`) of a head.

        ``"head"``: :meth:`from_head_bounds`. ``"upper_body"`` (THA3): the head
        top and chin on rows ``size / 8`` and ``3 * size / 8`` (64 and 192 of
        512), centred on ``centre_x``, so the head fills the middle of the top
        half and the upper body the rest.
        """
        head = cls.from_head_bounds(head_top_y, head_bottom_y, centre_x, size)
        if framing == "head":
            return head
        if framing != "upper_body":
            raise ValueError(f"unknown framing {framing!r}; expected 'head' or 'upper_body'")
        height = head_top_y - head_bottom_y
        return cls(head.centre_x, head_top_y - 1.5 * height, 2.0 * height, size)

    @property
    def pixel_size(self) -> float:
        """The side of one pixel in model units."""
        return 2.0 * self.half_height / self.size

    def to_pixels(self, points) -> np.ndarray:
        """(n, 3) or (n, 2) model-space points -> (n, 2) float64 (column, row) image coordinates.

        Coordinates are in pixels from the image's top-left corner (edges, see the
        module docstring); z is ignored.
        """
        p = np.asarray(points, dtype=np.float64).reshape(-1, np.shape(points)[-1])
        column = (p[:, 0] - self.centre_x) / self.pixel_size + self.size / 2.0
        row = (self.centre_y - p[:, 1]) / self.pixel_size + self.size / 2.0
        return np.stack([column, row], axis=1)

    def projection(self, depth_range: tuple[float, float]) -> np.ndarray:
        """The (4, 4) float32 matrix taking project-frame points to clip space.

        ``depth_range`` is ``(z_min, z_max)``, the z-extent of what is drawn;
        near and far planes are put a margin outside it, so nothing in the
        range is clipped. Larger z is nearer the camera (depth -1). Row-major:
        ``clip = M @ (x, y, z, 1)``; upload ``M.T`` to GL's column-major mat4.
        """
        try:
            z_min, z_max = (float(z) for z in depth_range)
        except (TypeError, ValueError):
            raise ValueError(f"depth_range must be (z_min, z_max), not {depth_range!r}") from None
        if not (math.isfinite(z_min) and math.isfinite(z_max)):
            raise ValueError(f"depth_range must be finite, not {depth_range!r}")
        if z_min > z_max:
            raise ValueError(f"depth_range ({z_min}, {z_max}) must be (z_min, z_max)")
        margin = 0.01 * (z_max - z_min) + 0.01 * self.half_height
        near, far = z_max + margin, z_min - margin
        h = self.half_height
        return np.array(
            [
                [1.0 / h, 0.0, 0.0, -self.centre_x / h],
                [0.0, 1.0 / h, 0.0, -self.centre_y / h],
                [0.0, 0.0, -2.0 / (near - far), (near + far) / (near - far)],
                [0.0, 0.0, 0.0, 1.0],
            ],
            dtype=np.float32,
        )


def head_centre_x(model: Model) -> float:
    """The x a head is framed on: the 頭 bone's (0 without one)."""
    head = model.bone_index(HEAD_BONE)
    return float(model.bones[head].position[0]) if head is not None else 0.0


def estimate_head_bounds(model: Model) -> tuple[float, float, float]:
    """An automatic guess at ``(head_top_y, head_bottom_y, centre_x)`` from the rest pose.

    The head is the vertices weighted more than half to the 頭 (head) bone:
    bottom = the lowest of them (the chin), top = the highest (skull and the
    hair on it), centre_x = the 頭 bone's x. Bones *below* 頭 in the tree
    (hair chains, ribbons, twin tails) are deliberately left out: on the shared
    models they hang to the knees (Miku's twin tails) or point up (Rin's
    ribbon), and the spec's annotation ignores both. Only when no vertex is
    weighted to 頭 itself are its descendant bones counted. A human annotation
    is better; this is a fallback and a starting proposal.

    Raises RenderError when the model has no 頭 bone or no vertex on it.
    """
    head = model.bone_index(HEAD_BONE)
    explicit = "give head bounds explicitly (mmdrender render: --head-top and --head-bottom)"
    if head is None:
        raise RenderError(f"{model.path}: the model has no 頭 (head) bone; {explicit}")
    vertices = model.vertices
    y = vertices.positions[:, 1]
    alone = np.zeros(len(model.bones), dtype=bool)
    alone[head] = True
    inside = model.weight_on(alone) > HEAD_WEIGHT
    if not inside.any():
        inside = model.weight_on(model.subtree(head)) > HEAD_WEIGHT
    if not inside.any():
        raise RenderError(f"{model.path}: no vertex is weighted to the 頭 (head) bone; {explicit}")
    top, bottom = float(y[inside].max()), float(y[inside].min())
    if not top > bottom:
        raise RenderError(f"{model.path}: the 頭 (head) vertices have no height; {explicit}")
    return top, bottom, head_centre_x(model)
