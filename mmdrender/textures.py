"""Texture lookup and decoding: from the name a model file gives to RGBA pixels.

Why this is its own module: texture references in PMD/PMX files were typed on
Windows by many modellers and the archives were unzipped by many tools, so the
name in the file and the name on disk rarely agree byte for byte. Backslashes,
stray spaces, the wrong case and Shift-JIS names mangled into cp437 or raw
bytes are all common; each one would otherwise render a character untextured.
Lookup never leaves the models root, because references are untrusted input.

Decoding goes through Pillow except for one case MMD treats differently:
32-bit BI_RGB bitmaps, whose fourth byte MMD uses as alpha and Pillow drops.
RLE TGAs are fed to Pillow's decoder as one long row, since it cannot follow a
run across a row end. Sizes are checked from the header before decoding
(`MAX_TEXTURE_PIXELS`), as a small file can expand to gigabytes.
MMD's own shared toons (toon01-10.bmp) may not be redistributed, so when a
model folder does not ship them we generate look-alikes.
"""

from __future__ import annotations

import errno
import io
import os
import re
import struct
import unicodedata
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from mmdrender.errors import TextureError
from mmdrender.files import read_input
from mmdrender.model import TextureRef

SHARED_TOON_NAMES = tuple(f"toon{i:02d}.bmp" for i in range(1, 11))

# Larger textures are refused (TextureError) before decoding: 256 MB as RGBA,
# far beyond what a model needs and what small files should expand to.
MAX_TEXTURE_PIXELS = 8192 * 8192
# Nor is a file larger than such a texture stored raw could be: checked before reading.
MAX_TEXTURE_BYTES = MAX_TEXTURE_PIXELS * 4 + 2**20

# What a missing texture is replaced with: the identity of how each role is
# combined in MMD's shader (multiply by white, add black).
_PLACEHOLDERS = {
    "diffuse": (255, 255, 255, 255),
    "sphere_multiply": (255, 255, 255, 255),
    "sphere_add": (0, 0, 0, 255),
    "toon": (255, 255, 255, 255),
}

# Shared toons as MMD-era model packs ship them: 32x32, constant along each
# row, lit colour at the top (v = 0, where N.L = 1) and shadow colour at the
# bottom, with the step from one to the other near the middle. 01-04 are hard
# steps at half height (greys, pink, beige); 05 is a soft skin tone ramp a little
# lower; 06 is yellow (lit yellow over dark yellow, plus a highlight band we do
# not reproduce); 07-10 are plain white. Columns: lit RGB, shadow RGB, centre and
# width of the step as fractions of the height (top = 0).
_SHARED_TOONS = (
    ((255, 255, 255), (205, 205, 205), 0.5, 1 / 32),
    ((255, 255, 255), (245, 225, 225), 0.5, 1 / 32),
    ((255, 255, 255), (154, 154, 154), 0.5, 1 / 32),
    ((255, 255, 255), (248, 239, 235), 0.5, 1 / 32),
    ((255, 255, 255), (255, 231, 221), 0.69, 0.24),
    ((255, 237, 97), (195, 172, 3), 0.74, 0.1),
    ((255, 255, 255), (255, 255, 255), 0.5, 1 / 32),
    ((255, 255, 255), (255, 255, 255), 0.5, 1 / 32),
    ((255, 255, 255), (255, 255, 255), 0.5, 1 / 32),
    ((255, 255, 255), (255, 255, 255), 0.5, 1 / 32),
)
_TOON_SIZE = 32
_SHARED_TOON = re.compile(r"toon(0[1-9]|10)\.bmp")
_DRIVE = re.compile(r"[a-z]:", re.IGNORECASE)


def shared_toon_number(reference: str) -> int | None:
    """1..10 when ``reference`` names MMD's shared toon ``toonNN.bmp``, else None.

    Only the last path component counts, compared as Windows would (case and
    surrounding spaces ignored), since models write e.g. ``Toon01.BMP``.
    """
    parts = _split(reference)
    match = _SHARED_TOON.fullmatch(_key(parts[-1])) if parts else None
    return int(match.group(1)) if match else None


def resolve_texture(reference: str, model_dir: Path, root: Path | None = None) -> TextureRef:
    """Find the file that ``reference`` (as written in the model) means.

    Each component is matched against the directory listing, case- and
    Unicode-insensitively and through Shift-JIS mangling (see `_find`).
    ``root`` (default ``model_dir``) is the models root; nothing that resolves
    outside it is returned, whatever ``..`` or symlinks say. The returned path
    is absolute and resolved. A shared toon that is not shipped is found with
    ``path=None`` and ``shared_toon`` set, because we generate it.
    """
    root_dir = Path(root if root is not None else model_dir).resolve()
    toon = shared_toon_number(reference)
    parts = _split(reference)
    if not parts:
        return TextureRef(reference, None, None, "empty reference")
    if _DRIVE.fullmatch(parts[0]) or reference.strip().startswith("\\\\"):
        # An absolute Windows path from the modeller's machine: the file, if
        # shipped at all, sits beside the model.
        parts = parts[-1:]
    path, problem = _walk(Path(model_dir).resolve(), parts, root_dir)
    if path is None and toon is not None:
        return TextureRef(reference, None, toon, None)
    return TextureRef(reference, path, toon, problem)


def load_texture(ref: TextureRef | None, role: str = "diffuse") -> np.ndarray:
    """Pixels of a texture, or a neutral stand-in when it is missing.

    Returns
    -------
    (h, w, 4) uint8, contiguous, RGBA with straight alpha, first row = top.
    A missing texture gives a 1x1 placeholder that leaves the shading as if
    there were no texture (see ``_PLACEHOLDERS``); an unshipped shared toon
    gives `shared_toon_image`. Raises TextureError when a file exists but
    cannot be decoded, and ValueError for an unknown ``role``.
    """
    if role not in _PLACEHOLDERS:
        raise ValueError(f"unknown texture role {role!r}; expected one of {sorted(_PLACEHOLDERS)}")
    if ref is not None and ref.path is not None:
        return _decode(ref.path)
    if ref is not None and ref.shared_toon is not None:
        return shared_toon_image(ref.shared_toon)
    return np.array(_PLACEHOLDERS[role], dtype=np.uint8).reshape(1, 1, 4)


def shared_toon_image(number: int) -> np.ndarray:
    """Our stand-in for MMD's ``toon{number:02d}.bmp``: (32, 32, 4) uint8 RGBA."""
    if not 1 <= number <= len(_SHARED_TOONS):
        raise ValueError(f"shared toon number must be 1..10, not {number}")
    lit, shadow, centre, width = _SHARED_TOONS[number - 1]
    y = (np.arange(_TOON_SIZE) + 0.5) / _TOON_SIZE  # (32,) row centres, top = 0
    t = np.clip((y - centre) / width + 0.5, 0.0, 1.0)
    t = t * t * (3.0 - 2.0 * t)  # smoothstep: soft toons ease in and out
    lit_rgba, shadow_rgba = np.array([*lit, 255.0]), np.array([*shadow, 255.0])
    column = lit_rgba + t[:, None] * (shadow_rgba - lit_rgba)  # (32, 4)
    image = np.repeat(column.round().astype(np.uint8)[:, None, :], _TOON_SIZE, axis=1)
    return np.ascontiguousarray(image)  # (32, 32, 4)


# --- lookup ---------------------------------------------------------------


def _split(reference: str) -> list[str]:
    """Path components of a reference: either slash, spaces and ``.`` dropped."""
    parts = (part.strip() for part in reference.strip().replace("\\", "/").split("/"))
    return [part for part in parts if part not in ("", ".")]


def _key(name: str) -> str:
    """A name as Windows compares it: case-insensitive, trailing dots and spaces ignored.

    NFKC also folds full-width letters and the decomposed (NFD) names macOS writes.
    """
    folded = unicodedata.normalize("NFKC", name).casefold()
    return unicodedata.normalize("NFKC", folded).strip().rstrip(". ")


def _unmangled(name: str) -> list[str]:
    """The Shift-JIS names an on-disk name may be a mangled form of.

    Zip tools that ignore the archive's encoding write the cp932 bytes decoded
    as cp437 or latin-1, or write the raw bytes, which Python shows with
    surrogate escapes. Re-encoding each way and decoding as cp932 undoes that.
    """
    candidates = [os.fsencode(name)]
    for codec in ("cp437", "latin-1"):
        try:
            candidates.append(name.encode(codec))
        except UnicodeEncodeError:
            pass
    names = []
    for raw in candidates:
        try:
            names.append(raw.decode("cp932"))
        except UnicodeDecodeError:
            pass
    return names


def _find(directory: Path, part: str, cache: dict[Path, dict[str, str]]) -> str | None:
    """The on-disk name in ``directory`` that ``part`` means, or None.

    An exact name wins, then a true name matched by `_key`, then an unmangled
    one; ties go to the first name in sorted order so results are repeatable.
    """
    if directory not in cache:
        names = sorted(os.listdir(directory))
        keys = {name: name for name in names}
        for name in names:
            keys.setdefault(_key(name), name)
        for name in names:
            for decoded in _unmangled(name):
                keys.setdefault(_key(decoded), name)
        cache[directory] = keys
    keys = cache[directory]
    return keys.get(part) or keys.get(_key(part))


def _walk(start: Path, parts: list[str], root: Path) -> tuple[Path | None, str | None]:
    """Follow ``parts`` from ``start``; (resolved file, None) or (None, problem)."""
    if not start.is_relative_to(root):
        return None, f"model folder {start} is outside the models root {root}"
    cache: dict[Path, dict[str, str]] = {}
    current = start
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "..":
            current = current.parent
        else:
            try:
                name = _find(current, part, cache)
            except OSError as error:
                return None, f"cannot list {current}: {error.strerror or error}"
            if name is None:
                return None, f"no {'file' if last else 'folder'} {part!r} in {current}"
            try:
                current = (current / name).resolve()
            except (OSError, RuntimeError) as error:  # RuntimeError: a loop, before 3.13
                if isinstance(error, RuntimeError) or error.errno == errno.ELOOP:
                    return None, f"{current / name} is a symlink loop"
                return None, f"cannot follow {current / name}: {error.strerror or error}"
        if not current.is_relative_to(root):
            return None, f"{'/'.join(parts)!r} leads outside the models root {root}"
        if not last and not current.is_dir():
            return None, f"{current} is not a folder"
    if not current.is_file():
        return None, f"{current} is not a file"
    return current, None


# --- decoding -------------------------------------------------------------


def _decode(path: Path) -> np.ndarray:
    """Decode by content (``.sph``/``.spa`` are BMPs in disguise), not by extension.

    The file's size is checked before it is read (a sparse or runaway file of
    gigabytes), and the image's from its header before decoding (a small
    compressed file can claim gigabytes of pixels).
    """
    data = read_input(path, lambda p, reason: TextureError(f"{p}: texture {reason}"),
                      "texture", MAX_TEXTURE_BYTES)
    try:
        rgba = _bmp32(data, path)
        if rgba is None:
            with warnings.catch_warnings():
                # Pillow warns from 89 M pixels; our own, lower limit is checked below.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(io.BytesIO(data))
            with image:
                _check_size(image.width, image.height, path)
                if image.tile and image.tile[0][0] == "tga_rle":
                    with _tga_rle(image, data) as pixels:
                        rgba = _to_rgba(pixels)
                else:
                    image.load()
                    rgba = _to_rgba(image)
    except TextureError:
        raise
    except Image.DecompressionBombError:
        raise TextureError(f"{path}: texture is larger than {MAX_TEXTURE_PIXELS} pixels "
                           "(corrupt or not meant for real-time use); it is refused") from None
    # Pillow's plugins raise OSError, SyntaxError, ValueError, EOFError,
    # struct.error, NotImplementedError... on bad input; all mean "undecodable".
    except Image.UnidentifiedImageError:
        raise TextureError(f"{path}: cannot decode texture: not an image format Pillow "
                           "recognises (truncated, or not an image)") from None
    except Exception as error:
        raise TextureError(f"{path}: cannot decode texture: {error}") from error
    return np.ascontiguousarray(rgba, dtype=np.uint8)


def _check_size(width: int, height: int, path: Path) -> None:
    if width * height > MAX_TEXTURE_PIXELS:
        raise TextureError(f"{path}: texture is {width}x{height} pixels, more than the "
                           f"{MAX_TEXTURE_PIXELS} pixels (8192x8192) allowed; it is refused")


def _tga_rle(image: Image.Image, data: bytes) -> Image.Image:
    """An RLE TGA whose packets may run across row ends, ready to load.

    The TGA specification lets a run continue onto the next row and some
    writers do that, but Pillow's decoder stops with "buffer overrun". Decoding
    the pixels as one long row with that same decoder avoids the problem; the
    result is then handed back to Pillow as raw pixels appended to the file
    (with the footer repeated after them), so orientation, palette and the TGA
    2.0 alpha attribute are applied exactly as for any other TGA.
    """
    _, _, offset, (rawmode, orientation, depth) = image.tile[0]
    width, height = image.size
    row = Image.frombytes(image.mode, (width * height, 1), data[offset:], "tga_rle",
                          rawmode, 1, depth)
    pixels = Image.open(io.BytesIO(data + row.tobytes() + data[-26:]))
    pixels.tile = [("raw", (0, 0, width, height), len(data), (pixels.mode, 0, orientation))]
    return pixels


def _bmp32(data: bytes, path: Path) -> np.ndarray | None:
    """A 32-bit BI_RGB bitmap read MMD's way (4th byte is alpha), else None.

    Pillow reads these as BGRX and drops the 4th byte. MMD uses it as alpha,
    except that writers which leave it all zero mean "opaque".
    """
    if len(data) < 54 or data[:2] != b"BM":
        return None
    (offset,) = struct.unpack_from("<I", data, 10)
    header_size, width, height, _, bits, compression = struct.unpack_from("<IiiHHI", data, 14)
    if header_size < 40 or bits != 32 or compression != 0:
        return None
    rows, count = abs(height), width * abs(height) * 4
    _check_size(width, rows, path)
    if width <= 0 or rows == 0 or offset + count > len(data):
        raise ValueError(f"truncated 32-bit BMP ({width}x{height}, {len(data)} bytes)")
    bgra = np.frombuffer(data, np.uint8, count, offset).reshape(rows, width, 4)
    if height > 0:  # bottom-up, the usual BMP row order
        bgra = bgra[::-1]
    rgba = bgra[..., [2, 1, 0, 3]]  # fancy indexing copies: the result is writable
    if not rgba[..., 3].any():
        rgba[..., 3] = 255
    return rgba


def _to_rgba(image: Image.Image) -> np.ndarray:
    """(h, w, 4) uint8 from any Pillow mode, keeping palette and tRNS transparency."""
    if image.mode == "I" or image.mode.startswith("I;16"):
        # 16-bit grey: Pillow's convert() clips to 255 instead of scaling.
        raw = np.asarray(image)
        grey = np.clip(raw.astype(np.float64) / 257.0, 0, 255).round().astype(np.uint8)
        alpha = np.full_like(grey, 255)
        transparent = image.info.get("transparency")
        if isinstance(transparent, int):
            alpha[raw == transparent] = 0
        return np.stack([grey, grey, grey, alpha], axis=-1)
    return np.asarray(image.convert("RGBA"))
