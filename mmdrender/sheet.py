"""Contact sheets: renders laid out in labelled panels on an opaque background.

Pure numpy and Pillow, no GL: a sheet is composed from images already
rendered. A :class:`Panel` is a title over one row of :class:`Cell` s, each an
RGBA image with a caption under it; panels are laid out ``columns`` to a row.
RGBA cells are composited (straight alpha) over the background, so what is
transparent in a render shows the sheet's grey. A cell without an image shows
its ``note`` instead (a pose a model cannot take, a model that failed).

Labels use a font with Japanese glyphs when fontconfig knows one (model ids and
morph names are often Japanese; ``make setup`` installs the IPA Gothic font),
else Pillow's built-in font, which draws characters outside Latin-1 as "?".

    >>> sheet = compose_sheet([Panel("head_x", [Cell(img_a, "-1"), Cell(img_b, "+1")])])
    ... # doctest: +SKIP
    >>> sheet.save("sheet.png")  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

LIGHT_GREY = (224, 224, 224)
TEXT = (20, 20, 20)
NOTE = (150, 30, 30)
PLACEHOLDER = (200, 200, 200)
GAP = 6  # pixels between cells, and around panels


@dataclass(frozen=True)
class Cell:
    """One image and the caption under it; ``image`` None shows ``note`` instead."""

    image: np.ndarray | None
    caption: str = ""
    note: str = ""


@dataclass(frozen=True)
class Panel:
    """A title over one row of cells."""

    title: str
    cells: Sequence[Cell] = field(default_factory=tuple)


def composite(image: np.ndarray, background=LIGHT_GREY) -> np.ndarray:
    """(H, W, 4) uint8 straight-alpha RGBA over an opaque colour -> (H, W, 3) uint8 RGB."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3 or 4) uint8 image, got {image.dtype} "
                         f"{image.shape}")
    if image.shape[2] == 3:
        return image.copy()
    alpha = image[..., 3:].astype(np.float32) / 255.0
    colour = image[..., :3].astype(np.float32)
    under = np.asarray(background, np.float32).reshape(1, 1, 3)
    return np.rint(colour * alpha + under * (1.0 - alpha)).astype(np.uint8)


def compose_sheet(panels: Sequence[Panel], columns: int = 1, cell_size: int | None = None,
                  title: str | None = None, background=LIGHT_GREY,
                  font_size: int | None = None) -> Image.Image:
    """Lay ``panels`` out ``columns`` to a row; return an RGB Pillow image.

    ``cell_size`` defaults to the largest image's side; images of another
    size are resized to it (square cells). Every panel gets as many cell slots
    as the widest panel, so columns line up.
    """
    if not panels:
        raise ValueError("a contact sheet needs at least one panel")
    if columns < 1:
        raise ValueError(f"columns must be at least 1, not {columns}")
    images = [c.image for p in panels for c in p.cells if c.image is not None]
    if cell_size is None:
        cell_size = max((max(i.shape[:2]) for i in images), default=128)
    font_px = font_size or max(10, min(16, cell_size // 10))
    font = _font(font_px)
    line = font_px + 4
    slots = max(1, max(len(p.cells) for p in panels))
    panel_w = slots * cell_size + (slots - 1) * GAP
    panel_h = line + cell_size + line
    header = line + GAP if title else 0
    rows = -(-len(panels) // columns)
    width = GAP + columns * (panel_w + 2 * GAP)
    height = header + GAP + rows * (panel_h + 2 * GAP)
    sheet = Image.new("RGB", (width, height), tuple(background))
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((GAP + 2, GAP), _fit(draw, title, font, width - 2 * GAP), fill=TEXT,
                  font=font)
    for index, panel in enumerate(panels):
        x0 = GAP + (index % columns) * (panel_w + 2 * GAP)
        y0 = header + GAP + (index // columns) * (panel_h + 2 * GAP)
        draw.text((x0, y0 + 1), _fit(draw, panel.title, font, panel_w), fill=TEXT, font=font)
        for slot, cell in enumerate(panel.cells):
            x, y = x0 + slot * (cell_size + GAP), y0 + line
            if cell.image is not None:
                rgb = composite(cell.image, background)
                tile = Image.fromarray(rgb)
                if tile.size != (cell_size, cell_size):
                    tile = tile.resize((cell_size, cell_size), Image.Resampling.LANCZOS)
                sheet.paste(tile, (x, y))
            else:
                draw.rectangle((x, y, x + cell_size - 1, y + cell_size - 1),
                               fill=PLACEHOLDER, outline=NOTE)
                _wrap(draw, cell.note or "no image", font, (x + 4, y + 4), cell_size - 8, line,
                      y + cell_size - 4)
            draw.text((x, y + cell_size + 2), _fit(draw, cell.caption, font, cell_size),
                      fill=TEXT, font=font)
    return sheet


@functools.cache
def japanese_font_file() -> str | None:
    """A font file with Japanese glyphs that fontconfig knows (a Gothic one first), or None."""
    try:
        listed = subprocess.run(["fc-list", ":lang=ja", "--format", "%{file}\n"],
                                capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    files = sorted({f for f in listed.splitlines() if f.lower().endswith((".ttf", ".otf",
                                                                          ".ttc"))})
    files.sort(key=lambda f: ("gothic" not in f.lower() and "sans" not in f.lower()))
    return files[0] if files else None


@functools.cache
def _font(size: int):
    file = japanese_font_file()
    if file is not None:
        try:
            return ImageFont.truetype(file, size)
        except OSError:
            pass
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        return ImageFont.load_default()


def _printable(text: str) -> str:
    """Without a Japanese font only Latin-1 can be drawn; anything else would be a box."""
    if japanese_font_file() is not None:
        return text
    return "".join(c if ord(c) < 256 else "?" for c in text)


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    """``text`` cut (with an ellipsis) to fit ``width`` pixels."""
    text = _printable(text)
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, origin, width: int, line: int,
          bottom: int) -> None:
    """Word-wrapped ``text`` from ``origin``; lines that would pass ``bottom`` are dropped."""
    x, y = origin
    current = ""
    for word in _printable(text).split():
        trial = f"{current} {word}".strip()
        if current and draw.textlength(trial, font=font) > width:
            if y + 2 * line > bottom:
                draw.text((x, y), _fit(draw, current + " ...", font, width), fill=NOTE,
                          font=font)
                return
            draw.text((x, y), _fit(draw, current, font, width), fill=NOTE, font=font)
            y += line
            current = word
        else:
            current = trial
    if current:
        draw.text((x, y), _fit(draw, current, font, width), fill=NOTE, font=font)


__all__ = ["LIGHT_GREY", "Cell", "Panel", "composite", "compose_sheet"]
