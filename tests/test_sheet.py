"""Contact sheets: what a reader sees, pixel by pixel (mmdrender.sheet).

Cells are solid colours, so each can be found in the sheet by its colour and
its place checked against the layout the module promises: panels fill rows of
``columns`` in reading order, cells run left to right ``GAP`` pixels apart,
every panel has as many slots as the widest so columns line up, captions sit
under their cell and titles over their panel.
"""

from __future__ import annotations

import numpy as np
import pytest

from mmdrender.sheet import (
    GAP,
    LIGHT_GREY,
    NOTE,
    PLACEHOLDER,
    Cell,
    Panel,
    compose_sheet,
    composite,
)


def solid(colour, size=32, alpha=255) -> np.ndarray:
    image = np.empty((size, size, 4), np.uint8)
    image[..., :3], image[..., 3] = colour, alpha
    return image


def over(colour, alpha, background) -> np.ndarray:
    """Straight-alpha ``colour`` over an opaque ``background``, rounded to 8 bits."""
    a = alpha / 255
    return np.rint(np.asarray(colour) * a + np.asarray(background) * (1 - a)).astype(int)


def box(sheet: np.ndarray, colour) -> tuple[int, int, int, int, int]:
    """(top, left, bottom, right, count) of the pixels of exactly ``colour`` (bounds inclusive)."""
    mask = (sheet == np.asarray(colour, np.uint8)).all(axis=-1)
    assert mask.any(), f"{colour} is nowhere in the sheet"
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return rows[0], columns[0], rows[-1], columns[-1], int(mask.sum())


def dark(region: np.ndarray) -> bool:
    """Whether ``region`` holds text (drawn in a dark colour on a light background)."""
    return bool((region.astype(int).sum(axis=-1) < 400).any())


# --- composite ----------------------------------------------------------------------


def test_composite_is_straight_alpha_over_the_background():
    image = np.array([[[200, 0, 100, 128], [200, 0, 100, 0], [200, 0, 100, 255],
                       [10, 250, 60, 64]]], np.uint8)
    rgb = composite(image)
    assert rgb.dtype == np.uint8 and rgb.shape == (1, 4, 3)
    assert tuple(rgb[0, 0]) == (212, 112, 162)  # 200 * 128/255 + 224 * 127/255, ...
    assert tuple(rgb[0, 1]) == LIGHT_GREY  # transparent: the background
    assert tuple(rgb[0, 2]) == (200, 0, 100)  # opaque: the colour
    assert tuple(rgb[0, 3]) == tuple(over((10, 250, 60), 64, LIGHT_GREY))
    dark_grey = (40, 50, 60)
    rgb = composite(image, dark_grey)
    assert tuple(rgb[0, 1]) == dark_grey
    assert tuple(rgb[0, 0]) == tuple(over((200, 0, 100), 128, dark_grey))  # (120, 25, 80)


def test_composite_passes_rgb_through_and_refuses_other_arrays():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    out = composite(rgb)
    assert np.array_equal(out, rgb) and out is not rgb
    for bad in (rgb.astype(np.float32), rgb[..., 0], np.zeros((2, 2, 2), np.uint8)):
        with pytest.raises(ValueError, match="uint8"):
            composite(bad)


# --- layout ----------------------------------------------------------------------------

CELL = 32
PAPER = (240, 232, 210)  # a custom sheet background, light so that text shows
RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 200, 0), (0, 0, 255), (255, 255, 0)
CYAN, MAGENTA, ORANGE, PURPLE = (0, 255, 255), (255, 0, 255), (255, 128, 0), (120, 0, 160)
TRANSLUCENT = ((20, 40, 200), 100)  # colour, alpha


def layout_panels() -> list[Panel]:
    """Five panels, two columns: the widest (four slots) is in the second row."""
    return [
        Panel("alpha", [Cell(solid(RED), "r")]),
        Panel("beta", [Cell(solid(GREEN), "g"), Cell(solid(BLUE, size=16), "b"),
                       Cell(solid(TRANSLUCENT[0], alpha=TRANSLUCENT[1]), "t")]),
        Panel("gamma", [Cell(solid(YELLOW), "y"), Cell(None, "x", note="cannot pose"),
                        Cell(solid(CYAN), ""), Cell(solid(MAGENTA), "m")]),
        Panel("delta", [Cell(solid(ORANGE), "o")]),
        Panel("epsilon", [Cell(solid(PURPLE), "p")]),
    ]


@pytest.fixture(scope="module")
def sheet() -> np.ndarray:
    image = compose_sheet(layout_panels(), columns=2, cell_size=CELL, title="Sheet title",
                          background=PAPER)
    assert image.mode == "RGB"
    return np.asarray(image)


def cell_origin(sheet, colour) -> tuple[int, int]:
    """(top, left) of a solid cell, checking that it is one whole cell_size square."""
    top, left, bottom, right, count = box(sheet, colour)
    assert (bottom - top + 1, right - left + 1, count) == (CELL, CELL, CELL * CELL), colour
    return top, left


def test_cells_are_whole_squares_in_reading_order(sheet):
    r, g, b = (cell_origin(sheet, c) for c in (RED, GREEN, BLUE))  # BLUE was 16 px: resized
    y, c, m = (cell_origin(sheet, c) for c in (YELLOW, CYAN, MAGENTA))
    o, p = cell_origin(sheet, ORANGE), cell_origin(sheet, PURPLE)
    # Cells in a panel: one row, left to right, GAP apart (slot 1 of gamma is the placeholder).
    assert g[0] == b[0] and b == (g[0], g[1] + CELL + GAP)
    assert y[0] == c[0] == m[0]
    assert c[1] == y[1] + 2 * (CELL + GAP) and m[1] == y[1] + 3 * (CELL + GAP)
    # Panels: alpha | beta, then gamma | delta, then epsilon, in columns that line up.
    assert r[0] == g[0] < y[0] == o[0] < p[0]
    assert r[1] == y[1] == p[1]
    assert g[1] == o[1]
    gamma_right = m[1] + CELL  # the widest panel sets the column width
    assert g[1] > gamma_right, "the second column overlaps the widest panel of the first"
    assert y[0] > r[0] + CELL and p[0] > y[0] + CELL
    # Margins: GAP around the first cell, and no more than a few GAPs past the last.
    assert r[1] >= GAP and r[0] >= GAP
    height, width = sheet.shape[:2]
    assert width > b[1] + 2 * (CELL + GAP) and width - (g[1] + 4 * CELL + 3 * GAP) <= 3 * GAP
    assert height > p[0] + CELL and height - (p[0] + CELL) <= 3 * GAP + 20


def test_translucent_cells_show_the_sheet_background_through(sheet):
    g = cell_origin(sheet, GREEN)
    top, left = g[0], g[1] + 2 * (CELL + GAP)  # beta's third slot
    expected = over(*TRANSLUCENT, PAPER)
    tile = sheet[top:top + CELL, left:left + CELL].reshape(-1, 3)
    assert (tile == expected).all(), f"{np.unique(tile, axis=0)} != {expected}"
    assert tuple(sheet[1, 1]) == PAPER and tuple(sheet[-2, -2]) == PAPER
    assert tuple(sheet[g[0] + CELL // 2, g[1] + CELL + GAP // 2]) == PAPER  # between cells


def test_a_cell_without_an_image_shows_its_note_in_its_own_slot(sheet):
    y = cell_origin(sheet, YELLOW)
    top, left = y[0], y[1] + CELL + GAP  # gamma's second slot
    slot = sheet[top:top + CELL, left:left + CELL].astype(int)
    outline = np.concatenate([slot[0], slot[-1], slot[:, 0], slot[:, -1]])
    assert (outline == NOTE).all()
    inside = slot[1:-1, 1:-1].reshape(-1, 3)
    assert (inside == PLACEHOLDER).all(axis=1).mean() > 0.6
    assert (np.abs(inside - NOTE).max(axis=1) <= 40).any(), "the note's text is not drawn"
    # Nothing of the placeholder leaks outside its slot.
    placeholder = (sheet == np.asarray(PLACEHOLDER, np.uint8)).all(axis=-1)
    placeholder[top:top + CELL, left:left + CELL] = False
    assert placeholder.sum() < 10  # at most a few anti-aliased text pixels elsewhere


def test_captions_sit_under_their_cells_and_titles_over_their_panels(sheet):
    line = 14  # the font's 10 px for 32-pixel cells, plus 4
    for colour, captioned in [(RED, True), (GREEN, True), (YELLOW, True), (CYAN, False),
                              (MAGENTA, True), (ORANGE, True), (PURPLE, True)]:
        top, left = cell_origin(sheet, colour)
        under = sheet[top + CELL + 1:top + CELL + line + 2, left:left + CELL]
        assert dark(under) == captioned, f"caption under {colour}"
    for colour in (RED, GREEN, YELLOW, ORANGE, PURPLE):  # the first cell of each panel
        top, left = cell_origin(sheet, colour)
        assert dark(sheet[top - line:top, left:left + CELL]), f"panel title over {colour}"
    # The sheet's title sits above the first panel's title.
    first = cell_origin(sheet, RED)
    assert dark(sheet[:first[0] - line, :])
    untitled = np.asarray(compose_sheet(layout_panels(), columns=2, cell_size=CELL,
                                        background=PAPER))
    assert cell_origin(untitled, RED)[0] < first[0]
    assert not dark(untitled[:cell_origin(untitled, RED)[0] - line, :])


def test_default_cell_size_is_the_largest_image_and_one_column_stacks_panels():
    panels = [Panel("a", [Cell(solid(RED, size=24)), Cell(solid(GREEN, size=48))]),
              Panel("b", [Cell(solid(BLUE, size=48))])]
    image = np.asarray(compose_sheet(panels))
    top_r, left_r, bottom_r, right_r, count = box(image, RED)
    assert (bottom_r - top_r + 1, right_r - left_r + 1, count) == (48, 48, 48 * 48)
    _, left_g, *_ = box(image, GREEN)
    top_b, left_b, *_ = box(image, BLUE)
    assert left_g == left_r + 48 + GAP
    assert left_b == left_r and top_b > top_r + 48
    assert tuple(image[1, 1]) == LIGHT_GREY


@pytest.mark.parametrize(("panels", "columns", "message"), [
    ([], 1, "at least one panel"),
    ([Panel("a", [Cell(solid(RED))])], 0, "columns"),
])
def test_bad_sheets_are_refused(panels, columns, message):
    with pytest.raises(ValueError, match=message):
        compose_sheet(panels, columns=columns)


def test_japanese_titles_are_drawn_with_their_glyphs_where_a_font_has_them():
    """`pipeline preview` drew Japanese model ids as "???" (issue 12); `make setup`
    installs a Japanese font, and the sheet uses it."""
    from mmdrender.sheet import japanese_font_file

    if japanese_font_file() is None:
        pytest.skip("no font with Japanese glyphs here (make setup installs one)")
    image = np.zeros((8, 8, 4), np.uint8)

    def title_pixels(title: str) -> np.ndarray:
        sheet = np.asarray(compose_sheet([Panel(title, [Cell(image)])], cell_size=64,
                                         font_size=14))
        return sheet[:20]

    miku, marks, other = title_pixels("ミク式"), title_pixels("???"), title_pixels("ミナ式")
    assert (miku != marks).any() and (miku != other).any()
    ink = (miku < 128).any(axis=2).sum()
    assert ink > 30, "the glyphs drew almost nothing"
