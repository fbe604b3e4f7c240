"""File → :class:`~mmdrender.model.Model`, for PMD and PMX alike.

The format readers parse; this module checks what they return against itself
(indices in range, weights that sum to one, material ranges that cover the
faces), converts vertices to the project frame, and resolves textures. Anything
odd but usable becomes a warning on the model; anything unusable is a
:class:`ModelLoadError` that names the file and the reason.
"""

from __future__ import annotations

import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pymeshio.common

from mmdrender import textures
from mmdrender.errors import ModelLoadError
from mmdrender.formats import frame
from mmdrender.formats.binary import FormatError
from mmdrender.formats.parts import ModelParts, RawMaterial
from mmdrender.formats.pmd_reader import read_pmd
from mmdrender.formats.pmx_reader import read_pmx
from mmdrender.model import (
    GroupMorph,
    Material,
    MaterialFlags,
    Model,
    Morph,
    SphereMode,
    TextureRef,
    UnsupportedMorph,
    Vertices,
    frozen_array,
)

# What a parser raises on malformed bytes; pymeshio's record readers add their own.
_PARSE_ERRORS = (FormatError, struct.error, pymeshio.common.ParseException, UnicodeDecodeError,
                 ValueError, IndexError, KeyError, TypeError, OverflowError, MemoryError)


def load_model(path: str | Path, root: str | Path | None = None) -> Model:
    """Read a PMD or PMX file.

    ``root`` is the models root that texture references may not leave; it
    defaults to the model's own folder.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelLoadError(path, "no such file") from None
    except IsADirectoryError:
        raise ModelLoadError(path, "is a folder, not a model file") from None
    except OSError as error:
        raise ModelLoadError(path, f"cannot be read: {error.strerror or error}") from None
    if not data:
        raise ModelLoadError(path, "the file is empty")
    if data[:4] == b"PMX ":
        reader = read_pmx
    elif data[:3] == b"Pmd":
        reader = read_pmd
    else:
        raise ModelLoadError(path, f"not an MMD model: starts with {data[:4]!r}, "
                                   "expected 'PMX ' or 'Pmd'")
    try:
        parts = reader(data)
    except _PARSE_ERRORS as error:
        raise ModelLoadError(path, _describe(error)) from None
    model_dir = path.resolve().parent
    models_root = Path(root).resolve() if root is not None else model_dir
    try:
        return _assemble(path, parts, model_dir, models_root)
    except FormatError as error:
        raise ModelLoadError(path, str(error)) from None


def _describe(error: Exception) -> str:
    if isinstance(error, FormatError):
        return str(error)
    if isinstance(error, struct.error):
        return "file ends early (truncated download?)"
    if isinstance(error, pymeshio.common.ParseException):
        return f"malformed record: {error.message}"
    if isinstance(error, MemoryError):
        return "a count in the file is too large to load (corrupt file?)"
    return f"malformed data ({type(error).__name__}: {error})"


def _assemble(path: Path, parts: ModelParts, model_dir: Path, models_root: Path) -> Model:
    warnings = list(parts.warnings)
    bones = _check_bones(parts.bones, warnings)
    vertices = _vertices(parts.vertices, len(bones), warnings)
    faces, materials = _faces_and_materials(parts.indices, parts.materials, len(vertices),
                                            model_dir, models_root, warnings)
    morphs = _check_morphs(parts.morphs, len(vertices), len(bones), len(materials), warnings)
    texture_refs: dict[str, TextureRef] = {}
    for material in materials:
        for ref in (material.texture, material.sphere, material.toon):
            if ref is not None:
                texture_refs.setdefault(ref.reference, ref)
    for ref in texture_refs.values():
        if not ref.found:
            warnings.append(f"texture {ref.reference!r} not found ({ref.problem}); "
                            "a neutral placeholder is used")
    return Model(
        path=path, format=parts.format, name=parts.name, english_name=parts.english_name,
        comment=parts.comment, english_comment=parts.english_comment, vertices=vertices,
        faces=faces, materials=tuple(materials), bones=tuple(bones), morphs=tuple(morphs),
        textures=tuple(texture_refs.values()), warnings=tuple(warnings))


def _vertices(raw: Vertices, bone_count: int, warnings: list[str]) -> Vertices:
    indices = raw.bone_indices.astype(np.int32)
    weights = np.where(indices >= 0, raw.bone_weights, 0.0).astype(np.float32)
    invalid = indices >= bone_count
    if invalid.any():
        bad = int(invalid.any(axis=1).sum())
        warnings.append(f"{bad} vertices refer to bones the model does not have; "
                        "those influences are dropped")
        indices = np.where(invalid, -1, indices)
        weights = np.where(invalid, 0.0, weights)
    weights = np.clip(weights, 0.0, None)
    totals = weights.sum(axis=1, keepdims=True)
    unweighted = totals[:, 0] <= 1e-6
    if unweighted.any():
        # A vertex with no usable influence stays where it is, on the root bone.
        indices[unweighted] = [0 if bone_count else -1, -1, -1, -1]
        weights[unweighted] = [1.0, 0.0, 0.0, 0.0]
        totals[unweighted] = 1.0
    weights = weights / totals
    finite = np.isfinite(raw.positions).all(axis=1)
    if not finite.all():
        raise FormatError(f"{int((~finite).sum())} vertex positions are not finite numbers")
    normals = np.nan_to_num(np.asarray(raw.normals, dtype=np.float32))
    return Vertices(
        positions=frozen_array(frame.vectors(raw.positions), np.float32),
        normals=frozen_array(frame.vectors(normals), np.float32),
        uvs=frozen_array(raw.uvs, np.float32),
        extra_uvs=frozen_array(raw.extra_uvs, np.float32),
        skinning=frozen_array(raw.skinning, np.uint8),
        bone_indices=frozen_array(indices, np.int32),
        bone_weights=frozen_array(weights, np.float32),
        sdef=frozen_array(frame.vectors(raw.sdef), np.float32),
        edge_scale=frozen_array(raw.edge_scale, np.float32),
    )


def _faces_and_materials(indices: np.ndarray, raw_materials: list[RawMaterial],
                         vertex_count: int, model_dir: Path, models_root: Path,
                         warnings: list[str]) -> tuple[np.ndarray, list[Material]]:
    if len(indices) % 3:
        warnings.append(f"{len(indices)} face indices is not a multiple of 3; "
                        "the last incomplete triangle is dropped")
        indices = indices[: len(indices) - len(indices) % 3]
    if len(indices) and int(indices.max()) >= vertex_count:
        raise FormatError(f"a face refers to vertex {int(indices.max())} but the model has "
                          f"{vertex_count} vertices")
    faces = frozen_array(frame.triangles(indices.reshape(-1, 3)), np.int32)
    resolved: dict[str, TextureRef] = {}

    def resolve(reference: str | None) -> TextureRef | None:
        if reference is None or not reference.strip():
            return None
        if reference not in resolved:
            resolved[reference] = textures.resolve_texture(reference, model_dir, models_root)
        return resolved[reference]

    materials, start = [], 0
    for i, m in enumerate(raw_materials):
        count = max(m.index_count, 0) // 3
        if start + count > len(faces):
            warnings.append(f"material {i} ({m.name or 'unnamed'}) claims more faces than the "
                            "file has; its range is cut short")
            count = max(len(faces) - start, 0)
        known_mode = m.sphere_mode in {mode.value for mode in SphereMode}
        sphere_mode = SphereMode(m.sphere_mode) if known_mode else SphereMode.NONE
        materials.append(Material(
            name=m.name, english_name=m.english_name,
            diffuse=frozen_array(m.diffuse, np.float32),
            specular=frozen_array(m.specular, np.float32), specular_power=m.specular_power,
            ambient=frozen_array(m.ambient, np.float32), flags=MaterialFlags(m.flags),
            edge_colour=frozen_array(m.edge_colour, np.float32), edge_size=m.edge_size,
            texture=resolve(m.texture),
            sphere=resolve(m.sphere) if sphere_mode != SphereMode.NONE else None,
            sphere_mode=sphere_mode, toon=resolve(m.toon), face_start=start, face_count=count,
            comment=m.comment))
        start += count
    if start < len(faces):
        warnings.append(f"{len(faces) - start} triangles belong to no material and are not drawn")
    return faces, materials


def _check_bones(bones, warnings: list[str]):
    count = len(bones)
    checked = []
    for i, bone in enumerate(bones):
        fixes = {}
        if not -1 <= bone.parent < count or bone.parent == i:
            warnings.append(f"bone {bone.name!r} has invalid parent {bone.parent}; made a root")
            fixes["parent"] = -1
        if not -1 <= bone.append_parent < count or bone.append_parent == i:
            fixes["append_parent"] = -1
        if not -1 <= bone.tail_bone < count:
            fixes["tail_bone"] = -1
        checked.append(replace(bone, **fixes) if fixes else bone)
    # Break parent cycles: walk each chain at most `count` steps.
    for i in range(count):
        seen, j = set(), i
        while j >= 0 and j not in seen:
            seen.add(j)
            j = checked[j].parent
        if j >= 0:
            warnings.append(f"bone {checked[j].name!r} is its own ancestor; made a root")
            checked[j] = replace(checked[j], parent=-1)
    return checked


def _check_morphs(morphs: list[Morph], vertex_count: int, bone_count: int,
                  material_count: int, warnings: list[str]) -> list[Morph]:
    """Drop out-of-range entries so posing never indexes outside the model."""
    limits = {"indices": vertex_count, "bones": bone_count, "morphs": len(morphs),
              "materials": material_count}
    checked = []
    for position, morph in enumerate(morphs):
        data = morph.data
        if isinstance(data, UnsupportedMorph):
            warnings.append(f"morph {morph.name!r}: {data.reason}; it is skipped")
            checked.append(morph)
            continue
        for field, limit in limits.items():
            targets = getattr(data, field, None)
            if targets is None:
                continue
            lowest = -1 if field == "materials" else 0  # -1: every material
            valid = (targets >= lowest) & (targets < limit)
            if isinstance(data, GroupMorph):
                valid &= targets != position  # a group may not contain itself
            if not valid.all():
                warnings.append(f"morph {morph.name!r}: {int((~valid).sum())} entries refer to "
                                f"{field} the model does not have; dropped")
                data = type(data)(**{
                    name: (value[valid] if isinstance(value, np.ndarray) else value)
                    for name, value in vars(data).items()})
        checked.append(replace(morph, data=_freeze(data)))
    return checked


def _freeze(data):
    for value in vars(data).values():
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return data
