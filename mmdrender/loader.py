"""File → :class:`~mmdrender.model.Model`, for PMD and PMX alike.

The format readers parse; this module checks what they return against itself
(indices in range, weights that sum to one, material ranges that cover the
faces), converts vertices to the project frame, and resolves textures. Anything
odd but usable becomes a warning on the model; anything unusable is a
:class:`ModelLoadError` that names the file and the reason.

Non-finite numbers (NaN, infinity) in vertex or bone positions reject the
model, since no guess would pose correctly. Elsewhere the damaged part is
dropped or reset with a warning: a bone weight's influence (the others are
renormalised), a morph entry, an IK chain, a fixed or local axis; normals are
recomputed from the faces; UVs become 0.
"""

from __future__ import annotations

import math
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np

from mmdrender import textures
from mmdrender.errors import ModelLoadError
from mmdrender.files import read_input
from mmdrender.formats import frame
from mmdrender.formats.binary import FormatError
from mmdrender.formats.parts import ModelParts, RawMaterial
from mmdrender.formats.pmd_reader import read_pmd
from mmdrender.formats.pmx_reader import read_pmx
from mmdrender.model import (
    IK,
    Bone,
    BoneFlags,
    GroupMorph,
    Material,
    MaterialFlags,
    Model,
    Morph,
    Skinning,
    SphereMode,
    TextureRef,
    UnsupportedMorph,
    Vertices,
    frozen_array,
)

# What parsing raises on malformed bytes. Every call into pymeshio goes through
# ArrayReading.record, which turns whatever pymeshio raises (bare Exception
# included) into FormatError; struct.error is left for the header fields read
# directly. Anything else is a bug of ours and is not disguised as a bad file.
_PARSE_ERRORS = (FormatError, struct.error, UnicodeDecodeError, OverflowError, MemoryError)


def load_model(path: str | Path, root: str | Path | None = None) -> Model:
    """Read a PMD or PMX file.

    ``root`` is the models root that texture references may not leave; it
    defaults to the model's own folder.
    """
    path = Path(path)
    data = read_input(path, ModelLoadError, "model")
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
    if isinstance(error, MemoryError):
        return "a count in the file is too large to load (corrupt file?)"
    return f"malformed data ({type(error).__name__}: {error})"


def _assemble(path: Path, parts: ModelParts, model_dir: Path, models_root: Path) -> Model:
    warnings = list(parts.warnings)
    bones = _check_bones(parts.bones, warnings)
    faces, materials = _faces_and_materials(parts.indices, parts.materials,
                                            len(parts.vertices), model_dir, models_root, warnings)
    vertices = _vertices(parts.vertices, faces, len(bones), warnings)
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


def _vertices(raw: Vertices, faces: np.ndarray, bone_count: int,
              warnings: list[str]) -> Vertices:
    """Check and convert the vertices; ``faces`` are already in the project frame.

    Non-finite numbers: a position cannot be guessed, so it rejects the model;
    a weight drops its influence (the rest are renormalised); a normal is
    recomputed from the triangles around the vertex; UVs, SDEF parameters and
    edge scales are reset to neutral values. Each repair is a warning.
    """
    finite = _finite_rows_mask(raw.positions)
    if not finite.all():
        raise FormatError(f"{int((~finite).sum())} vertex positions are not finite numbers")
    indices = raw.bone_indices.astype(np.int32)
    invalid = (indices < -1) | (indices >= bone_count)
    if invalid.any():
        warnings.append(f"{int(invalid.any(axis=1).sum())} vertices refer to bones the model "
                        "does not have; those influences are dropped")
        indices = np.where(invalid, -1, indices)
    broken = ~np.isfinite(raw.bone_weights) & (indices >= 0)
    if broken.any():
        warnings.append(f"{int(broken.any(axis=1).sum())} vertices have bone weights that are "
                        "not finite numbers; those influences are dropped")
    keep = (indices >= 0) & ~broken
    weights = np.where(keep, raw.bone_weights, np.float32(0)).astype(np.float64).clip(0.0, None)
    totals = weights.sum(axis=1, keepdims=True)
    unweighted = totals[:, 0] <= 1e-6
    if unweighted.any():
        # A vertex with no usable influence stays where it is, on the root bone.
        indices[unweighted] = [0 if bone_count else -1, -1, -1, -1]
        weights[unweighted] = [1.0, 0.0, 0.0, 0.0]
        totals[unweighted] = 1.0
    weights = weights / totals
    normals = frame.vectors(_finite_rows(raw.normals, "normals", "recomputed from the faces",
                                         warnings, fill=np.nan))
    bad_normals = ~_finite_rows_mask(normals)
    if bad_normals.any():
        normals[bad_normals] = _vertex_normals(frame.vectors(raw.positions), faces)[bad_normals]
    sdef = _finite_rows(raw.sdef, "SDEF parameters", "skinned as BDEF2", warnings, fill=np.nan)
    skinning = raw.skinning.copy()
    bad_sdef = ~_finite_rows_mask(sdef)
    skinning[bad_sdef & (skinning == Skinning.SDEF)] = Skinning.BDEF2
    sdef[bad_sdef] = 0.0
    return Vertices(
        positions=frozen_array(frame.vectors(raw.positions), np.float32),
        normals=frozen_array(normals, np.float32),
        uvs=frozen_array(_finite_rows(raw.uvs, "UVs", "set to 0", warnings), np.float32),
        extra_uvs=frozen_array(_finite_rows(raw.extra_uvs, "additional UVs", "set to 0",
                                            warnings), np.float32),
        skinning=frozen_array(skinning, np.uint8),
        bone_indices=frozen_array(indices, np.int32),
        bone_weights=frozen_array(weights, np.float32),
        sdef=frozen_array(frame.vectors(sdef), np.float32),
        edge_scale=frozen_array(_finite_rows(raw.edge_scale, "edge scales", "set to 1",
                                             warnings, fill=1.0), np.float32),
    )


def _finite_rows(values: np.ndarray, what: str, repair: str, warnings: list[str],
                 fill: float = 0.0) -> np.ndarray:
    """(V, ...) float32 per-vertex values; rows holding a non-finite number are set to ``fill``
    (NaN: the caller repairs them) and counted in a warning that says ``repair``."""
    values = np.asarray(values, dtype=np.float32)
    bad = ~_finite_rows_mask(values)
    if not bad.any():
        return values
    warnings.append(f"{int(bad.sum())} vertices have {what} that are not finite numbers; "
                    f"{repair}")
    values = values.copy()
    values[bad] = fill
    return values


def _finite_rows_mask(values: np.ndarray) -> np.ndarray:
    """(n,) bool: which rows of an (n, ...) array hold only finite numbers."""
    finite = np.isfinite(values)
    if finite.all():  # the usual case, and far faster than reducing each short row
        return np.ones(len(values), dtype=bool)
    return finite.all(axis=tuple(range(1, values.ndim)))


def _vertex_normals(positions: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit area-weighted normals of the triangles around each vertex; 0 where none."""
    p = positions.astype(np.float64)
    face_normals = np.cross(p[faces[:, 1]] - p[faces[:, 0]], p[faces[:, 2]] - p[faces[:, 0]])
    normals = np.zeros_like(p)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], face_normals)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)


def _faces_and_materials(indices: np.ndarray, raw_materials: list[RawMaterial],
                         vertex_count: int, model_dir: Path, models_root: Path,
                         warnings: list[str]) -> tuple[np.ndarray, list[Material]]:
    if len(indices) % 3:
        warnings.append(f"{len(indices)} face indices is not a multiple of 3; "
                        "the last incomplete triangle is dropped")
        indices = indices[: len(indices) - len(indices) % 3]
    bad = (indices < 0) | (indices >= vertex_count)
    if bad.any():
        raise FormatError(f"a face refers to vertex {int(indices[bad][0])} but the model has "
                          f"{vertex_count} vertices (0 to {vertex_count - 1})")
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
        label = f"material {i} ({m.name or 'unnamed'})"
        if m.index_count < 0 or m.index_count % 3:
            warnings.append(f"{label} claims {m.index_count} face indices, not a multiple of 3; "
                            "it draws the whole triangles within that count")
        count = max(m.index_count, 0) // 3
        if start + count > len(faces):
            warnings.append(f"{label} claims more faces than the file has; its range is "
                            "cut short")
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


def _check_bones(bones: list[Bone], warnings: list[str]) -> list[Bone]:
    """Enforce the Bone contract: every index refers to a bone (or is -1), no parent cycles,
    finite numbers. A non-finite position rejects the model (posing needs it); a broken
    optional part (IK, append, fixed or local axes) is dropped with a warning."""
    count = len(bones)
    if not count:
        return []
    finite = _finite_rows_mask(np.stack([bone.position for bone in bones]))
    if not finite.all():
        first = bones[int(np.flatnonzero(~finite)[0])].name
        raise FormatError(f"{int((~finite).sum())} bone positions are not finite numbers "
                          f"(first: bone {first!r})")
    no_offset = np.zeros(3, dtype=np.float32)
    finite_tails = _finite_rows_mask(np.stack([
        no_offset if bone.tail_offset is None else bone.tail_offset for bone in bones]))
    checked = []
    for i, bone in enumerate(bones):
        fixes = {}
        if not -1 <= bone.parent < count or bone.parent == i:
            warnings.append(f"bone {bone.name!r} has invalid parent {bone.parent}; made a root")
            fixes["parent"] = -1
        if not -1 <= bone.append_parent < count or bone.append_parent == i:
            fixes["append_parent"] = -1
        if not math.isfinite(bone.append_ratio):
            warnings.append(f"bone {bone.name!r}: append ratio is not finite; ignored")
            fixes["append_parent"], fixes["append_ratio"] = -1, 0.0
        if not -1 <= bone.tail_bone < count:
            fixes["tail_bone"] = -1
        if not finite_tails[i]:
            fixes["tail_offset"] = no_offset
        if bone.fixed_axis is not None and not np.isfinite(bone.fixed_axis).all():
            warnings.append(f"bone {bone.name!r}: fixed axis is not finite; ignored")
            fixes["fixed_axis"], fixes["flags"] = None, bone.flags & ~BoneFlags.FIXED_AXIS
        if bone.local_axes is not None and not np.isfinite(bone.local_axes).all():
            warnings.append(f"bone {bone.name!r}: local axes are not finite; ignored")
            fixes["local_axes"] = None
            fixes["flags"] = fixes.get("flags", bone.flags) & ~BoneFlags.LOCAL_AXES
        problem = _ik_problem(bone.ik, count) if bone.ik is not None else None
        if problem:
            warnings.append(f"bone {bone.name!r}: IK {problem}; its IK is ignored")
            fixes["ik"] = None
            fixes["flags"] = fixes.get("flags", bone.flags) & ~BoneFlags.IK
        checked.append(replace(bone, **fixes) if fixes else bone)
    # Break parent cycles in one pass: walk up from each bone not yet cleared; a walk
    # that comes back onto itself has found a cycle, cut where it closed.
    parents = [bone.parent for bone in checked]
    state = [0] * count  # 0 unvisited, 1 on the current walk, 2 cleared
    for i in range(count):
        walk, j = [], i
        while j >= 0 and state[j] == 0:
            state[j] = 1
            walk.append(j)
            j = parents[j]
        if j >= 0 and state[j] == 1:
            warnings.append(f"bone {checked[j].name!r} is its own ancestor; made a root")
            checked[j] = replace(checked[j], parent=-1)
        for k in walk:
            state[k] = 2
    return checked


def _ik_problem(ik: IK, bone_count: int) -> str | None:
    """Why an IK cannot be used, or None: bone indices out of range or non-finite numbers."""
    if not 0 <= ik.target < bone_count:
        return f"target {ik.target} is not a bone of the model"
    for link in ik.links:
        if not 0 <= link.bone < bone_count:
            return f"link {link.bone} is not a bone of the model"
        if link.limits is not None and not np.isfinite(link.limits).all():
            return "angle limits are not finite numbers"
    if not math.isfinite(ik.limit_angle):
        return "angle step is not a finite number"
    return None


def _check_morphs(morphs: list[Morph], vertex_count: int, bone_count: int,
                  material_count: int, warnings: list[str]) -> list[Morph]:
    """Drop entries that refer outside the model or hold non-finite numbers, so posing
    never indexes outside the model or spreads NaN; a dropped entry moves nothing."""
    limits = {"indices": vertex_count, "bones": bone_count, "morphs": len(morphs),
              "materials": material_count}
    checked = []
    for position, morph in enumerate(morphs):
        data = morph.data
        if isinstance(data, UnsupportedMorph):
            warnings.append(f"morph {morph.name!r}: {data.reason}; it is skipped")
            checked.append(morph)
            continue
        arrays = {name: value for name, value in vars(data).items()
                  if isinstance(value, np.ndarray)}
        keep = None  # which entries stay, once one has to go
        for field, limit in limits.items():
            targets = arrays.get(field)
            if targets is None:
                continue
            lowest = -1 if field == "materials" else 0  # -1: every material
            in_range = (targets >= lowest) & (targets < limit)
            if isinstance(data, GroupMorph):
                in_range &= targets != position  # a group may not contain itself
            if not in_range.all():
                warnings.append(f"morph {morph.name!r}: {int((~in_range).sum())} entries refer "
                                f"to {field} the model does not have; dropped")
                keep = in_range if keep is None else keep & in_range
        numbers = [value for value in arrays.values() if value.dtype.kind == "f"]
        if not all(np.isfinite(value).all() for value in numbers):
            finite = np.logical_and.reduce([_finite_rows_mask(value) for value in numbers])
            dropped = ~finite if keep is None else keep & ~finite
            warnings.append(f"morph {morph.name!r}: {int(dropped.sum())} entries hold numbers "
                            "that are not finite; dropped")
            keep = finite if keep is None else keep & finite
        if keep is not None:
            data = type(data)(**{name: (value[keep] if name in arrays else value)
                                 for name, value in vars(data).items()})
        checked.append(replace(morph, data=_freeze(data)))
    return checked


def _freeze(data):
    for value in vars(data).values():
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return data
