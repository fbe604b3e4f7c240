"""Texture lookup and decoding, on the ways real model folders break loaders."""

from __future__ import annotations

import io
import os
import struct
import sys
import unicodedata
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmdrender.errors import TextureError
from mmdrender.model import TextureRef
from mmdrender.textures import (
    SHARED_TOON_NAMES,
    load_texture,
    resolve_texture,
    shared_toon_image,
    shared_toon_number,
)

SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
IMAGE_SUFFIXES = {".bmp", ".png", ".tga", ".jpg", ".jpeg", ".spa", ".sph", ".dds"}


def pixels(h: int, w: int, seed: int = 0) -> np.ndarray:
    """(h, w, 4) uint8 random RGBA, non-square so a transposition shows."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 4), dtype=np.uint8)


def touch(path: Path, data: bytes = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def bmp32(rgba: np.ndarray, top_down: bool = False) -> bytes:
    """A 32-bit BI_RGB BMP written by hand: BGRA rows, bottom-up unless top_down."""
    h, w, _ = rgba.shape
    rows = rgba[..., [2, 1, 0, 3]]
    body = (rows if top_down else rows[::-1]).tobytes()
    info = struct.pack(
        "<IiiHHIIiiII", 40, w, -h if top_down else h, 1, 32, 0, len(body), 0, 0, 0, 0
    )
    return struct.pack("<2sIHHI", b"BM", 14 + 40 + len(body), 0, 0, 54) + info + body


def tga32(rgba: np.ndarray) -> bytes:
    """An uncompressed 32-bit TGA written by hand, bottom-left origin, 8 alpha bits."""
    h, w, _ = rgba.shape
    header = struct.pack("<BBBHHBHHHHBB", 0, 0, 2, 0, 0, 0, 0, 0, w, h, 32, 8)
    return header + rgba[::-1][..., [2, 1, 0, 3]].tobytes()


def encode(rgba: np.ndarray, fmt: str, mode: str = "RGBA", **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgba).convert(mode).save(buffer, fmt, **options)
    return buffer.getvalue()


def load_file(path: Path) -> np.ndarray:
    """Decode through the public API, checking the contract every texture keeps."""
    image = load_texture(TextureRef(path.name, path))
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 4
    assert image.flags.c_contiguous
    return image


# --- shared toon names ----------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "number"),
    [
        ("toon01.bmp", 1),
        ("TOON10.BMP ", 10),
        ("Data\\toon03.bmp", 3),
        (" ./toon05.bmp", 5),
        ("ｔｏｏｎ０７.bmp", 7),
        ("toon00.bmp", None),
        ("toon11.bmp", None),
        ("toon1.bmp", None),
        ("mytoon01.bmp", None),
        ("toon01.png", None),
        ("", None),
    ],
)
def test_shared_toon_number(reference, number):
    assert shared_toon_number(reference) == number


def test_shared_toon_names():
    assert SHARED_TOON_NAMES[0] == "toon01.bmp" and SHARED_TOON_NAMES[-1] == "toon10.bmp"
    assert [shared_toon_number(name) for name in SHARED_TOON_NAMES] == list(range(1, 11))


# --- lookup ---------------------------------------------------------------


@pytest.fixture
def tree(tmp_path):
    """root/model holds the model; decoys with the same base name sit elsewhere."""
    root = tmp_path / "root"
    for name in ("model/tex/hair.png", "model/hair.png", "model/sub/x.txt", "common/skin.bmp"):
        touch(root / name, name.encode())
    touch(root / "model" / unicodedata.normalize("NFD", "が.png"), b"nfd")
    return root


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("Tex\\Hair.PNG ", "model/tex/hair.png"),
        ("tex/hair.png", "model/tex/hair.png"),
        ("./tex/hair.png", "model/tex/hair.png"),
        (" tex \\ hair.png\t", "model/tex/hair.png"),
        (".\\\\TEX\\\\HAIR.png", "model/tex/hair.png"),
        ("sub\\..\\tex\\hair.png", "model/tex/hair.png"),
        ("sub\\ .. \\tex\\hair.png", "model/tex/hair.png"),
        ("HAIR.png", "model/hair.png"),
        ("..\\Common\\skin.BMP", "common/skin.bmp"),
        ("が.png", "model/" + unicodedata.normalize("NFD", "が.png")),
        ("C:\\Users\\modeller\\Desktop\\hair.png", "model/hair.png"),
    ],
)
def test_resolves_windows_style_references(tree, reference, expected):
    ref = resolve_texture(reference, tree / "model", tree)
    assert ref.problem is None
    assert ref.path == (tree / expected).resolve()
    assert ref.reference == reference and ref.found and ref.shared_toon is None


def test_exact_case_wins_on_case_sensitive_disks(tmp_path):
    touch(tmp_path / "Hair.png", b"upper")
    touch(tmp_path / "hair.png", b"lower")
    if len(os.listdir(tmp_path)) < 2:
        pytest.skip("case-insensitive file system")
    assert resolve_texture("hair.png", tmp_path).path.name == "hair.png"
    assert resolve_texture("Hair.png", tmp_path).path.name == "Hair.png"


@pytest.mark.parametrize(
    ("model", "reference"),
    [("model", "..\\..\\secret.png"), ("model", "tex/../../../secret.png"), (".", "../secret.png")],
)
def test_dotdot_cannot_escape_the_root(tree, model, reference):
    touch(tree.parent / "secret.png")
    ref = resolve_texture(reference, tree / model, tree)
    assert ref.path is None and not ref.found
    assert "models root" in ref.problem


def test_root_defaults_to_the_model_folder(tree):
    ref = resolve_texture("..\\common\\skin.bmp", tree / "model")
    assert ref.path is None and "models root" in ref.problem


def test_model_folder_outside_the_root(tree):
    ref = resolve_texture("secret.png", tree.parent / "elsewhere", tree)
    assert ref.path is None and "models root" in ref.problem


def test_symlinks_cannot_escape_the_root(tree):
    outside = touch(tree.parent / "outside" / "secret.png")
    try:
        (tree / "model" / "link.png").symlink_to(outside)
        (tree / "model" / "linkdir").symlink_to(outside.parent, target_is_directory=True)
        (tree / "model" / "inside.png").symlink_to(tree / "common" / "skin.bmp")
    except OSError as error:
        pytest.skip(f"cannot create symlinks here: {error}")
    for reference in ("link.png", "LinkDir\\secret.png"):
        ref = resolve_texture(reference, tree / "model", tree)
        assert ref.path is None and "models root" in ref.problem, reference
    inside = resolve_texture("inside.png", tree / "model", tree)
    assert inside.path == (tree / "common" / "skin.bmp").resolve()


def test_symlink_loop_is_a_missing_texture(tmp_path):
    try:
        (tmp_path / "loop.png").symlink_to("loop.png")
        (tmp_path / "a").symlink_to("b", target_is_directory=True)
        (tmp_path / "b").symlink_to("a", target_is_directory=True)
    except OSError as error:
        pytest.skip(f"cannot create symlinks here: {error}")
    for reference in ("loop.png", "a\\skin.png"):
        ref = resolve_texture(reference, tmp_path)
        assert ref.path is None and not ref.found, reference
        assert "symlink loop" in ref.problem, ref.problem


def _cp437(name: str) -> str:
    return name.encode("cp932").decode("cp437")


def _latin1(name: str) -> str:
    return name.encode("cp932").decode("latin-1")


def _raw(name: str) -> str:
    return os.fsdecode(name.encode("cp932"))


@pytest.mark.parametrize("mangle", [_cp437, _latin1, _raw])
def test_shift_jis_names_mangled_by_zip_tools(tmp_path, mangle):
    if mangle is _raw and sys.getfilesystemencoding().lower() not in ("utf-8", "utf8"):
        pytest.skip("raw cp932 names need a bytes-transparent (utf-8) file system encoding")
    try:
        target = touch(tmp_path / mangle("テクスチャ") / mangle("髪.png"), b"hair")
    except OSError as error:
        pytest.skip(f"file system rejects the mangled name: {error}")
    touch(tmp_path / "hair.png")  # a decoy: only the mangled name is right
    ref = resolve_texture("テクスチャ\\髪.png", tmp_path)
    assert ref.problem is None
    assert ref.path == target.resolve()
    assert ref.path.read_bytes() == b"hair"


def test_missing_file_names_what_is_missing(tmp_path):
    touch(tmp_path / "tex" / "other.png")
    ref = resolve_texture("tex\\nothere.png", tmp_path)
    assert ref.path is None and ref.shared_toon is None and not ref.found
    assert "nothere.png" in ref.problem and "tex" in ref.problem
    folder = resolve_texture("nofolder\\a.png", tmp_path)
    assert folder.path is None and "nofolder" in folder.problem
    np.testing.assert_array_equal(load_texture(ref), np.full((1, 1, 4), 255, np.uint8))


def test_a_folder_is_not_a_texture(tmp_path):
    (tmp_path / "tex").mkdir()
    ref = resolve_texture("tex", tmp_path)
    assert ref.path is None and "not a file" in ref.problem


@pytest.mark.parametrize("reference", ["", "   ", ".\\", "/"])
def test_empty_reference_does_not_crash(tmp_path, reference):
    ref = resolve_texture(reference, tmp_path)
    assert ref.path is None and not ref.found and ref.problem == "empty reference"


def test_missing_model_folder(tmp_path):
    ref = resolve_texture("a.png", tmp_path / "gone")
    assert ref.path is None and ref.problem


# --- placeholders and shared toons ----------------------------------------


@pytest.mark.parametrize(
    ("role", "rgba"),
    [
        ("diffuse", (255, 255, 255, 255)),
        ("sphere_multiply", (255, 255, 255, 255)),
        ("sphere_add", (0, 0, 0, 255)),
        ("toon", (255, 255, 255, 255)),
    ],
)
def test_placeholders_are_neutral_for_their_role(role, rgba):
    missing = TextureRef("gone.png", None, None, "no file 'gone.png' in /x")
    for ref in (None, missing):
        image = load_texture(ref, role)
        assert image.shape == (1, 1, 4) and image.dtype == np.uint8
        assert tuple(image[0, 0]) == rgba


def test_unknown_role_is_rejected():
    with pytest.raises(ValueError, match="role"):
        load_texture(None, "specular")


def test_unshipped_shared_toon_is_generated(tmp_path):
    ref = resolve_texture("Toon03.bmp", tmp_path)
    assert ref == TextureRef("Toon03.bmp", None, 3, None)
    assert ref.found
    image = load_texture(ref, "toon")
    np.testing.assert_array_equal(image, shared_toon_image(3))
    assert image.shape == (32, 32, 4)
    assert image[0, :, :3].astype(int).sum() > image[-1, :, :3].astype(int).sum()


def test_shipped_shared_toon_is_used(tmp_path):
    red = np.zeros((32, 32, 4), np.uint8)
    red[...] = (200, 10, 10, 255)
    touch(tmp_path / "TOON03.BMP", encode(red, "BMP", "RGB"))
    ref = resolve_texture("toon03.bmp", tmp_path)
    assert ref.path == (tmp_path / "TOON03.BMP").resolve() and ref.shared_toon == 3
    np.testing.assert_array_equal(load_texture(ref, "toon"), red)


@pytest.mark.parametrize("number", range(1, 11))
def test_generated_toons_are_vertical_ramps(number):
    image = shared_toon_image(number)
    assert image.shape == (32, 32, 4) and image.dtype == np.uint8
    assert (image[..., 3] == 255).all()
    assert (image == image[:, :1]).all(), "constant along each row"
    assert (np.diff(image[:, 0, :3].astype(int), axis=0) <= 0).all(), "lit at the top"


@pytest.mark.parametrize("number", [0, 11])
def test_generated_toon_numbers_are_checked(number):
    with pytest.raises(ValueError):
        shared_toon_image(number)


# --- decoding -------------------------------------------------------------


def test_png_rgba_round_trip_is_exact(tmp_path):
    rgba = pixels(3, 5)
    np.testing.assert_array_equal(load_file(touch(tmp_path / "a.png", encode(rgba, "PNG"))), rgba)


def test_24_bit_bmp(tmp_path):
    rgba = pixels(4, 7)
    image = load_file(touch(tmp_path / "a.bmp", encode(rgba, "BMP", "RGB")))
    np.testing.assert_array_equal(image[..., :3], rgba[..., :3])
    assert (image[..., 3] == 255).all()


@pytest.mark.parametrize("top_down", [False, True])
def test_32_bit_bmp_keeps_its_alpha(tmp_path, top_down):
    rgba = pixels(3, 5)
    rgba[0, 0, 3] = 0
    image = load_file(touch(tmp_path / "a.bmp", bmp32(rgba, top_down)))
    np.testing.assert_array_equal(image, rgba)


def test_32_bit_bmp_with_zero_fourth_bytes_is_opaque(tmp_path):
    rgba = pixels(3, 5)
    rgba[..., 3] = 0
    image = load_file(touch(tmp_path / "a.bmp", bmp32(rgba)))
    np.testing.assert_array_equal(image[..., :3], rgba[..., :3])
    assert (image[..., 3] == 255).all()


def test_tga_with_alpha(tmp_path):
    rgba = pixels(3, 5)
    np.testing.assert_array_equal(load_file(touch(tmp_path / "a.tga", tga32(rgba))), rgba)


def test_rle_tga_written_by_pillow(tmp_path):
    rgba = pixels(6, 4)
    data = encode(rgba, "TGA", compression="tga_rle")
    np.testing.assert_array_equal(load_file(touch(tmp_path / "a.tga", data)), rgba)


def tga_rle(image: np.ndarray, top_down: bool = False, footer: bytes = b"") -> bytes:
    """An RLE TGA (type 10 RGBA or 11 grey) whose packets ignore row ends, as the
    specification allows: runs of equal pixels, else raw packets of up to 128."""
    h, w = image.shape[:2]
    grey = image.ndim == 2
    rows = image if top_down else image[::-1]
    flat = (rows.reshape(-1, 1) if grey else rows[..., [2, 1, 0, 3]].reshape(-1, 4)).tolist()
    header = struct.pack("<BBBHHBHHHHBB", 0, 0, 11 if grey else 10, 0, 0, 0, 0, 0, w, h,
                         8 if grey else 32, (0 if grey else 8) | (0x20 if top_down else 0))
    body, i = b"", 0
    while i < len(flat):
        run = 1
        while i + run < len(flat) and run < 128 and flat[i + run] == flat[i]:
            run += 1
        if run > 1:
            body += bytes([0x80 | (run - 1), *flat[i]])
        else:  # raw up to the next pair of equal pixels
            run = 1
            while (i + run < len(flat) and run < 128
                   and (i + run + 1 == len(flat) or flat[i + run] != flat[i + run + 1])):
                run += 1
            body += bytes([run - 1]) + b"".join(bytes(p) for p in flat[i:i + run])
        i += run
    return header + body + footer


@pytest.mark.parametrize("top_down", [False, True])
def test_rle_tga_with_packets_across_rows(tmp_path, top_down):
    """Pillow's own decoder stops at the first packet that crosses a row end."""
    rgba = pixels(4, 5)
    rgba[1:3] = (10, 200, 30, 128)  # a run from the middle of row 1 into row 3
    decoded = load_file(touch(tmp_path / "a.tga", tga_rle(rgba, top_down)))
    np.testing.assert_array_equal(decoded, rgba)


def test_grey_rle_tga_with_packets_across_rows(tmp_path):
    grey = np.random.default_rng(3).integers(0, 256, (3, 7), dtype=np.uint8)
    grey.reshape(-1)[5:16] = 77  # a run from row 0 into row 2
    decoded = load_file(touch(tmp_path / "a.tga", tga_rle(grey, top_down=True)))
    np.testing.assert_array_equal(decoded[..., 0], grey)
    assert (decoded[..., 3] == 255).all()


def test_rle_tga_keeps_the_tga2_no_alpha_attribute(tmp_path):
    """A TGA 2.0 extension area whose attributes type is 0 says: ignore the alpha bytes."""
    rgba = pixels(3, 4)
    rgba[1:] = (40, 50, 60, 0)  # a run across rows
    rgba[..., 3] = 0
    body = tga_rle(rgba)
    extension = struct.pack("<H", 495) + bytes(492) + bytes([0])
    footer = extension + struct.pack("<II", len(body), 0) + b"TRUEVISION-XFILE.\x00"
    decoded = load_file(touch(tmp_path / "a.tga", tga_rle(rgba, footer=footer)))
    np.testing.assert_array_equal(decoded[..., :3], rgba[..., :3])
    assert (decoded[..., 3] == 255).all()


def png_claiming(width: int, height: int) -> bytes:
    """A small valid PNG whose header claims ``width`` x ``height`` pixels."""
    data = bytearray(encode(pixels(8, 8), "PNG"))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.mark.parametrize(("width", "height", "data"), [
    (9000, 9000, png_claiming(9000, 9000)),  # Pillow would decode it, 324 MB as RGBA
    (9500, 9500, png_claiming(9500, 9500)),  # Pillow would warn, then decode it
    (20000, 20000, png_claiming(20000, 20000)),  # Pillow's own limit
    (10000, 10000, bmp32(pixels(2, 2))[:18] + struct.pack("<ii", 10000, 10000)
     + bmp32(pixels(2, 2))[26:]),
], ids=["png-9000", "png-9500", "png-20000", "bmp32-10000"])
def test_huge_textures_fail_from_the_header(tmp_path, width, height, data):
    path = touch(tmp_path / "huge.png", data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning either
        with pytest.raises(TextureError, match="huge.png") as error:
            load_texture(TextureRef(path.name, path))
    message = str(error.value)
    assert "; it is refused" in message
    assert f"{width}x{height} pixels" in message or "larger than 67108864 pixels" in message


@pytest.mark.parametrize("name", ["a.sph", "a.spa", "a.png"])
def test_sphere_maps_are_opened_by_content(tmp_path, name):
    rgba = pixels(4, 6)
    image = load_file(touch(tmp_path / name, encode(rgba, "BMP", "RGB")))
    np.testing.assert_array_equal(image[..., :3], rgba[..., :3])


def test_uncompressed_dds(tmp_path):
    rgba = pixels(4, 8)
    np.testing.assert_array_equal(load_file(touch(tmp_path / "a.dds", encode(rgba, "DDS"))), rgba)


@pytest.mark.parametrize("pixel_format", ["DXT1", "DXT5"])
def test_compressed_dds(tmp_path, pixel_format):
    # Solid 4x4 blocks of colours that RGB565 holds exactly survive DXT losslessly.
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[...] = 255
    rgba[:4, 4:, :3] = (255, 0, 0)
    rgba[4:, :4, :3] = (0, 0, 255)
    data = encode(rgba, "DDS", pixel_format=pixel_format)
    np.testing.assert_array_equal(load_file(touch(tmp_path / "a.dds", data)), rgba)


def test_palette_with_transparency(tmp_path):
    grey = np.array([[0, 1, 2, 1]], np.uint8)
    image = Image.fromarray(grey, "L").convert("P")
    buffer = io.BytesIO()
    image.save(buffer, "PNG", transparency=bytes([255, 0, 128]))
    decoded = load_file(touch(tmp_path / "a.png", buffer.getvalue()))
    np.testing.assert_array_equal(decoded[0, :, 3], [255, 0, 128, 0])


def test_gif_with_transparency(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0] = (255, 0, 0, 255)
    data = encode(rgba[..., :3], "GIF", "P", transparency=0)
    decoded = load_file(touch(tmp_path / "a.gif", data))
    assert decoded.shape == (2, 2, 4)
    assert decoded[0, 0, 3] == 0 or decoded[1, 0, 3] == 0


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [("L", 90, (90, 90, 90, 255)), ("LA", (90, 40), (90, 90, 90, 40))],
)
def test_grey_modes(tmp_path, mode, value, expected):
    buffer = io.BytesIO()
    Image.new(mode, (3, 2), value).save(buffer, "PNG")
    decoded = load_file(touch(tmp_path / "a.png", buffer.getvalue()))
    assert (decoded == expected).all()


def test_16_bit_grey_is_scaled_not_clipped(tmp_path):
    grey = np.array([[0, 32896, 65535]], np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, "PNG")
    decoded = load_file(touch(tmp_path / "a.png", buffer.getvalue()))
    np.testing.assert_array_equal(decoded[0, :, 0], [0, 128, 255])
    assert (decoded[..., 3] == 255).all()


def test_cmyk_jpeg(tmp_path):
    buffer = io.BytesIO()
    Image.new("CMYK", (8, 8), (0, 0, 0, 0)).save(buffer, "JPEG", quality=95)
    decoded = load_file(touch(tmp_path / "a.jpg", buffer.getvalue()))
    assert (decoded[..., :3] > 240).all(), "CMYK white stays white"


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\nnot really a png",
        b"plain text, not an image",
        bmp32(pixels(4, 4))[:-20],  # truncated: our own 32-bit path
        encode(pixels(16, 16), "PNG")[:-40],  # truncated: Pillow's path
    ],
)
def test_undecodable_file_raises_with_its_path(tmp_path, data):
    path = touch(tmp_path / "bad texture.bmp", data)
    with pytest.raises(TextureError, match="bad texture.bmp"):
        load_texture(TextureRef("bad texture.bmp", path))


# --- the real models ------------------------------------------------------


def real_textures() -> list[Path]:
    if not SHARED_MODELS.is_dir():
        pytest.skip(f"../shared is absent ({SHARED_MODELS}); real-model checks need it")
    files = sorted(p for p in SHARED_MODELS.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        pytest.skip(f"no texture files under {SHARED_MODELS}")
    return files


def test_every_real_texture_decodes_and_resolves():
    for path in real_textures():
        image = load_file(path)
        assert image.shape[0] > 0 and image.shape[1] > 0, path
        shouted = resolve_texture(".\\" + path.name.upper() + " ", path.parent, SHARED_MODELS)
        assert shouted.path == path.resolve(), (path, shouted.problem)


def test_generated_toons_look_like_the_shipped_ones():
    for path in real_textures():
        number = shared_toon_number(path.name)
        if number is None:
            continue
        real = load_file(path).astype(int)
        ours = shared_toon_image(number).astype(int)
        assert real.shape == ours.shape, path
        assert np.abs(real - ours).mean() < 4, path
        assert np.abs(real[[0, -1]] - ours[[0, -1]]).max() <= 2, path
