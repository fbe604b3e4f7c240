"""Textures for the procedural sample characters, painted with numpy.

Every function returns a float RGBA image (h, w, 4) in [0, 1]; :func:`save`
writes it as a PNG (or, by extension, BMP) with no timestamp, so the same
input gives the same bytes. Texture v grows downward, as in MMD.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mmdrender.procedural.face import EyeShape, HeadShape
from mmdrender.procedural.mesh import smoothstep


def rgb(hex_colour: str) -> np.ndarray:
    """'#rrggbb' -> (3,) floats in [0, 1]."""
    h = hex_colour.lstrip("#")
    return np.array([int(h[i : i + 2], 16) for i in (0, 2, 4)], dtype=float) / 255.0


def _pixels(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre (u, v) in [0, 1], each (height, width)."""
    v, u = np.mgrid[0:height, 0:width].astype(float)
    return (u + 0.5) / width, (v + 0.5) / height


def _fill(colour, shape) -> np.ndarray:
    image = np.ones(shape + (4,))
    image[..., :3] = colour
    return image


def _mix(image: np.ndarray, colour, amount) -> None:
    amount = np.asarray(amount, dtype=float)[..., None]
    image[..., :3] = image[..., :3] * (1 - amount) + np.asarray(colour) * amount


def save(image: np.ndarray, path: Path) -> None:
    data = np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    if path.suffix.lower() in (".bmp", ".spa", ".sph"):
        Image.fromarray(data[..., :3], "RGB").save(path, format="BMP")
    else:
        Image.fromarray(data, "RGBA").save(path, format="PNG")


def face(head: HeadShape, eye: EyeShape, skin: str, shade: str, cheek: str,
         size: int = 256) -> np.ndarray:
    """Skin over the face's planar projection: cheek tint, a nose mark and the
    shadow the bangs cast on the forehead."""
    u, v = _pixels(size, size)
    w = 1.1 * head.half_width
    x, y = u * 2 * w - w, head.top_y - v * head.height
    image = _fill(rgb(skin), u.shape)
    cheek_y = eye.y - eye.h - 0.12
    for side in (1, -1):
        d2 = ((x - side * (eye.x + 0.3 * eye.w)) / 0.32) ** 2 + ((y - cheek_y) / 0.16) ** 2
        _mix(image, rgb(cheek), 0.35 * np.exp(-d2))
    nose = ((x / 0.035) ** 2 + ((y - (eye.y - eye.h - 0.12)) / 0.05) ** 2) < 1
    _mix(image, rgb(shade), 0.55 * nose)
    _mix(image, rgb(shade), 0.5 * smoothstep(eye.y + eye.h + 0.25, eye.y + eye.h + 0.55, y))
    return image


def skin(skin_hex: str, shade: str) -> np.ndarray:
    """Neck and limbs: the top of the neck (v < 0.12) lies in the chin's shadow."""
    u, v = _pixels(32, 64)
    image = _fill(rgb(skin_hex), u.shape)
    _mix(image, rgb(shade), 0.8 * smoothstep(0.16, 0.06, v))
    return image


def clothes(base: str, trim: str, line: str, belt: str, collar: bool,
            size: int = 256) -> np.ndarray:
    """The torso's front projection: a sailor collar (or a plain neckline),
    buttons and a belt. Sleeves sample the plain bottom-left corner."""
    u, v = _pixels(size, size)
    x, depth = u * 2.6 - 1.3, v * 4.7  # model x, and distance below the neck
    image = _fill(rgb(base), u.shape)
    if collar:
        region = (depth < 0.75 - 0.1 * np.abs(x)) & (np.abs(x) > 0.1)
        opening = np.abs(x) < (0.75 - depth) * 0.55
        _mix(image, rgb(trim), region & ~opening)
        stripe = region & ~opening & (np.abs((0.75 - 0.1 * np.abs(x)) - depth - 0.06) < 0.025)
        _mix(image, rgb(line), stripe)
        _mix(image, rgb(line), opening & (depth < 0.75))
    else:
        _mix(image, rgb(trim), depth < 0.18)
    for d in (1.2, 1.65, 2.1):
        _mix(image, rgb(line), ((x / 0.06) ** 2 + ((depth - d) / 0.06) ** 2) < 1)
    _mix(image, rgb(belt), (depth > 3.05) & (depth < 3.3))
    return image


def hair(base: str, dark: str, light: str) -> np.ndarray:
    """Strands across u, a shine band near the top, darker tips."""
    u, v = _pixels(64, 128)
    image = _fill(rgb(base), u.shape)
    stripes = 0.5 + 0.5 * np.sin(u * 2 * np.pi * 12 + 3 * np.sin(v * 9))
    _mix(image, rgb(dark), 0.25 * stripes)
    _mix(image, rgb(light), 0.7 * np.exp(-(((v - 0.28) / 0.05) ** 2)) * (0.6 + 0.4 * stripes))
    _mix(image, rgb(dark), 0.5 * smoothstep(0.7, 1.0, v))
    return image


def hair_card(base: str, dark: str, light: str) -> np.ndarray:
    """The hair texture with see-through gaps between strands and at the tips (alpha 0),
    as hair cards are painted: drawn alpha-tested."""
    image = hair(base, dark, light)
    u, v = _pixels(64, 128)
    strands = 0.5 + 0.5 * np.sin(u * 2 * np.pi * 6 + 2 * np.sin(v * 7))
    image[..., 3] = ((strands > 0.25) & (v < 0.97 - 0.25 * strands)).astype(float)
    return image


def iris(colour: str, dark: str, star: str) -> np.ndarray:
    """Two 64x64 cells: the normal iris (u < 0.5) and a star-pupil variant,
    which the UV morph 星目 shifts the iris to."""
    cells = []
    for variant in range(2):
        u, v = _pixels(64, 64)
        px, py = 2 * u - 1, 1 - 2 * v
        r = np.hypot(px, py)
        image = _fill(rgb(dark), u.shape)
        _mix(image, rgb(colour), smoothstep(0.9, -0.7, py) * (r < 0.9))
        _mix(image, rgb(colour) * 0.35 + 0.65, 0.55 * ((r > 0.45) & (r < 0.8) & (py < -0.35)))
        _mix(image, rgb(dark) * 0.35, (r > 0.88) | (np.hypot(px / 0.75, py) < 0.36))
        if variant:
            angle = np.arctan2(py, px) - np.pi / 2
            star_r = 0.2 + 0.22 * np.abs(np.cos(2.5 * angle)) ** 3
            _mix(image, rgb(star), r < star_r)
        cells.append(image)
    return np.concatenate(cells, axis=1)


def sclera() -> np.ndarray:
    u, v = _pixels(8, 32)
    image = _fill(np.ones(3), u.shape)
    _mix(image, rgb("#b9c3dd"), 0.8 * smoothstep(0.45, 0.0, v))
    return image


def mouth(inner: str, tongue: str) -> np.ndarray:
    """The inner mouth: teeth along the top, a tongue at the bottom."""
    u, v = _pixels(32, 32)
    image = _fill(rgb(inner), u.shape)
    _mix(image, rgb(tongue), (((u - 0.5) / 0.32) ** 2 + ((v - 1.0) / 0.45) ** 2) < 1)
    _mix(image, np.ones(3), v < 0.14)
    return image


def highlight() -> np.ndarray:
    u, v = _pixels(32, 32)
    r = np.hypot(2 * u - 1, 2 * v - 1)
    image = _fill(np.ones(3), u.shape)
    image[..., 3] = smoothstep(1.0, 0.6, r)
    return image


def blush(colour: str) -> np.ndarray:
    """A soft pink oval with the diagonal hatching anime blush is drawn with."""
    u, v = _pixels(64, 32)
    px, py = 2 * u - 1, 2 * v - 1
    image = _fill(rgb(colour), u.shape)
    hatch = (np.sin((px * 2 - py) * np.pi * 3.5) > 0.75) & (np.abs(py) < 0.5) & (np.abs(px) < 0.6)
    _mix(image, rgb(colour) * 0.7, hatch)
    image[..., 3] = np.clip(np.exp(-2.5 * (px**2 + py**2)) * (0.6 + 0.35 * hatch), 0, 1)
    return image


def tears() -> np.ndarray:
    u, v = _pixels(16, 32)
    image = _fill(rgb("#bfe6ff"), u.shape)
    image[..., 3] = 0.8 * smoothstep(1.0, 0.3, np.abs(2 * u - 1)) * smoothstep(1.0, 0.7, v)
    return image


def sphere_add(tint: str) -> np.ndarray:
    """An additive sphere map (.spa): a soft sheen up and to the left."""
    u, v = _pixels(64, 64)
    d = np.hypot(u - 0.38, v - 0.3)
    image = _fill(np.zeros(3), u.shape)
    _mix(image, rgb(tint), 0.5 * np.exp(-((d / 0.22) ** 2)))
    return image


def sphere_multiply() -> np.ndarray:
    """A multiplying sphere map (.sph): white in the middle, darker at the rim."""
    u, v = _pixels(64, 64)
    d = np.hypot(2 * u - 1, 2 * v - 1)
    image = _fill(np.ones(3), u.shape)
    _mix(image, rgb("#8a8fa8"), smoothstep(0.55, 1.0, d))
    return image


def toon(shade: str) -> np.ndarray:
    """A model's own toon ramp: lit at the top, ``shade`` at the bottom."""
    u, v = _pixels(32, 32)
    image = _fill(np.ones(3), u.shape)
    _mix(image, rgb(shade), smoothstep(0.45, 0.6, v))
    return image
