"""The runtime model: one immutable type for PMD and PMX alike.

Everything here is already in the project's frame (right-handed, y up, +x the
character's left, +z the character's front); :mod:`mmdrender.formats.convert` is
the one place that converts from MMD's left-handed files. Arrays are read-only
numpy arrays so that posing can never mutate rest data by accident.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np


class Skinning(enum.IntEnum):
    """Per-vertex deform type, numbered as in PMX."""

    BDEF1 = 0
    BDEF2 = 1
    BDEF4 = 2
    SDEF = 3
    QDEF = 4


class MorphPanel(enum.IntEnum):
    """Where MMD shows a morph; numbered as in PMD and PMX."""

    SYSTEM = 0
    EYEBROW = 1
    EYE = 2
    MOUTH = 3
    OTHER = 4


class MorphKind(enum.IntEnum):
    """Morph type, numbered as in PMX (PMD morphs are all VERTEX)."""

    GROUP = 0
    VERTEX = 1
    BONE = 2
    UV = 3
    UV1 = 4
    UV2 = 5
    UV3 = 6
    UV4 = 7
    MATERIAL = 8
    FLIP = 9
    IMPULSE = 10


class MaterialFlags(enum.IntFlag):
    DOUBLE_SIDED = 0x01
    GROUND_SHADOW = 0x02
    CAST_SELF_SHADOW = 0x04
    RECEIVE_SELF_SHADOW = 0x08
    EDGE = 0x10
    VERTEX_COLOUR = 0x20
    POINT_DRAW = 0x40
    LINE_DRAW = 0x80


class BoneFlags(enum.IntFlag):
    TAIL_IS_BONE = 0x0001
    ROTATABLE = 0x0002
    MOVABLE = 0x0004
    VISIBLE = 0x0008
    OPERABLE = 0x0010
    IK = 0x0020
    APPEND_LOCAL = 0x0080
    APPEND_ROTATE = 0x0100
    APPEND_TRANSLATE = 0x0200
    FIXED_AXIS = 0x0400
    LOCAL_AXES = 0x0800
    AFTER_PHYSICS = 0x1000
    EXTERNAL_PARENT = 0x2000


class SphereMode(enum.IntEnum):
    NONE = 0
    MULTIPLY = 1
    ADD = 2
    SUBTEXTURE = 3


def frozen_array(values, dtype) -> np.ndarray:
    """A read-only contiguous copy: the model's arrays are shared, never edited."""
    array = np.ascontiguousarray(values, dtype=dtype)
    array.setflags(write=False)
    return array


@dataclass(frozen=True)
class TextureRef:
    """A texture as the file names it, and where (or whether) it was found.

    ``shared_toon`` is 1..10 for MMD's own toon01-10.bmp, which are used from
    the model's folder when it ships them and are generated otherwise.
    """

    reference: str
    path: Path | None
    shared_toon: int | None = None
    problem: str | None = None

    @property
    def found(self) -> bool:
        return self.path is not None or self.shared_toon is not None


@dataclass(frozen=True)
class Vertices:
    """Per-vertex arrays, V vertices.

    positions, normals: (V, 3) float32. uvs: (V, 2) float32.
    extra_uvs: (V, K, 4) float32 with K in 0..4 (PMX additional UVs).
    skinning: (V,) uint8 of :class:`Skinning`.
    bone_indices: (V, 4) int32, -1 where unused. bone_weights: (V, 4) float32,
    each row sums to 1 (SDEF and BDEF2 use the first two).
    sdef: (V, 3, 3) float32 rows C, R0, R1; zero for non-SDEF vertices.
    edge_scale: (V,) float32.
    """

    positions: np.ndarray
    normals: np.ndarray
    uvs: np.ndarray
    extra_uvs: np.ndarray
    skinning: np.ndarray
    bone_indices: np.ndarray
    bone_weights: np.ndarray
    sdef: np.ndarray
    edge_scale: np.ndarray

    def __len__(self) -> int:
        return len(self.positions)


@dataclass(frozen=True)
class Material:
    """One material and the run of triangles it draws.

    diffuse: (4,) RGBA. specular: (3,). ambient: (3,). edge_colour: (4,).
    Triangles ``faces[face_start : face_start + face_count]`` of the model.
    """

    name: str
    english_name: str
    diffuse: np.ndarray
    specular: np.ndarray
    specular_power: float
    ambient: np.ndarray
    flags: MaterialFlags
    edge_colour: np.ndarray
    edge_size: float
    texture: TextureRef | None
    sphere: TextureRef | None
    sphere_mode: SphereMode
    toon: TextureRef | None
    face_start: int
    face_count: int
    comment: str = ""

    @property
    def double_sided(self) -> bool:
        return bool(self.flags & MaterialFlags.DOUBLE_SIDED)


@dataclass(frozen=True)
class IKLink:
    bone: int
    limits: np.ndarray | None = None  # (2, 3) min, max radians, or None


@dataclass(frozen=True)
class IK:
    target: int
    iterations: int
    limit_angle: float
    links: tuple[IKLink, ...]


@dataclass(frozen=True)
class Bone:
    """One bone. Indices refer to ``Model.bones``; -1 means none.

    position: (3,) rest position in model space.
    local_axes: (2, 3) x and z axes, or None. fixed_axis: (3,) or None.
    """

    name: str
    english_name: str
    parent: int
    position: np.ndarray
    flags: BoneFlags
    deform_layer: int = 0
    tail_bone: int = -1
    tail_offset: np.ndarray | None = None
    append_parent: int = -1
    append_ratio: float = 0.0
    fixed_axis: np.ndarray | None = None
    local_axes: np.ndarray | None = None
    ik: IK | None = None

    @property
    def appends_rotation(self) -> bool:
        return self.append_parent >= 0 and bool(self.flags & BoneFlags.APPEND_ROTATE)

    @property
    def appends_translation(self) -> bool:
        return self.append_parent >= 0 and bool(self.flags & BoneFlags.APPEND_TRANSLATE)


@dataclass(frozen=True)
class VertexMorph:
    """indices: (n,) int32 vertex indices. offsets: (n, 3) float32."""

    indices: np.ndarray
    offsets: np.ndarray


@dataclass(frozen=True)
class UVMorph:
    """channel 0 moves ``uvs`` (first two components used), 1-4 ``extra_uvs``.

    indices: (n,) int32. offsets: (n, 4) float32.
    """

    channel: int
    indices: np.ndarray
    offsets: np.ndarray


@dataclass(frozen=True)
class GroupMorph:
    """A weighted sum of other morphs. morphs: (n,) int32. weights: (n,) float32."""

    morphs: np.ndarray
    weights: np.ndarray


@dataclass(frozen=True)
class BoneMorph:
    """bones: (n,) int32. translations: (n, 3). rotations: (n, 4) quaternions xyzw."""

    bones: np.ndarray
    translations: np.ndarray
    rotations: np.ndarray


@dataclass(frozen=True)
class MaterialMorph:
    """Per-entry material changes; material -1 means every material.

    materials: (n,) int32. additive: (n,) bool (False = multiply).
    diffuse, edge_colour, texture_tint, sphere_tint, toon_tint: (n, 4).
    specular, ambient: (n, 3). specular_power, edge_size: (n,).
    """

    materials: np.ndarray
    additive: np.ndarray
    diffuse: np.ndarray
    specular: np.ndarray
    specular_power: np.ndarray
    ambient: np.ndarray
    edge_colour: np.ndarray
    edge_size: np.ndarray
    texture_tint: np.ndarray
    sphere_tint: np.ndarray
    toon_tint: np.ndarray


@dataclass(frozen=True)
class UnsupportedMorph:
    """Flip and impulse morphs (PMX 2.1): kept so names and indices line up."""

    reason: str


MorphData = VertexMorph | UVMorph | GroupMorph | BoneMorph | MaterialMorph | UnsupportedMorph


@dataclass(frozen=True)
class Morph:
    name: str
    english_name: str
    panel: MorphPanel
    kind: MorphKind
    data: MorphData

    @property
    def supported(self) -> bool:
        return not isinstance(self.data, UnsupportedMorph)


@dataclass(frozen=True)
class Model:
    """A loaded model. faces: (F, 3) int32 triangles, grouped by material in file order."""

    path: Path
    format: str  # "pmd 1.0", "pmx 2.0", "pmx 2.1"
    name: str
    english_name: str
    comment: str
    english_comment: str
    vertices: Vertices
    faces: np.ndarray
    materials: tuple[Material, ...]
    bones: tuple[Bone, ...]
    morphs: tuple[Morph, ...]
    textures: tuple[TextureRef, ...]
    warnings: tuple[str, ...] = ()
    _bone_lookup: dict[str, int] = field(init=False, repr=False, compare=False)
    _morph_lookup: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        # First name wins, as in MMD, when a file repeats one.
        bones: dict[str, int] = {}
        for i, bone in enumerate(self.bones):
            bones.setdefault(bone.name, i)
        morphs: dict[str, int] = {}
        for i, morph in enumerate(self.morphs):
            morphs.setdefault(morph.name, i)
        object.__setattr__(self, "_bone_lookup", bones)
        object.__setattr__(self, "_morph_lookup", morphs)

    def bone_index(self, name: str) -> int | None:
        """Index of the bone called ``name`` (Japanese name), or None."""
        return self._bone_lookup.get(name)

    def morph_index(self, name: str) -> int | None:
        """Index of the morph called ``name`` (Japanese name), or None."""
        return self._morph_lookup.get(name)

    def bone(self, name: str) -> Bone | None:
        index = self.bone_index(name)
        return None if index is None else self.bones[index]

    def morph(self, name: str) -> Morph | None:
        index = self.morph_index(name)
        return None if index is None else self.morphs[index]

    def subtree(self, *bones: int) -> np.ndarray:
        """(B,) bool: ``bones`` and every bone below them in the tree."""
        parents = np.array([b.parent for b in self.bones], dtype=np.int64)
        inside = np.zeros(len(self.bones), dtype=bool)
        inside[list(bones)] = True
        while True:
            grown = inside | ((parents >= 0) & inside[np.clip(parents, 0, None)])
            if (grown == inside).all():
                return inside
            inside = grown

    def weight_on(self, bones: np.ndarray) -> np.ndarray:
        """(V,) each vertex's total skinning weight on the bones of a (B,) bool mask."""
        indices = self.vertices.bone_indices
        weights = np.where(indices >= 0, self.vertices.bone_weights, 0.0)
        return (weights * np.asarray(bones)[np.clip(indices, 0, None)]).sum(axis=1)

    def with_faces(self, keep: np.ndarray) -> Model:
        """This model drawing only the faces where ``keep`` ((F,) bool) is True.

        Vertices, bones, morphs and materials stay as they are (so a pose of
        this model poses the subset too); each material's run of faces
        shrinks to the kept ones. For drawing part of a model alone: an iris
        to measure it, the eyebrows in front of the hair.
        """
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != (len(self.faces),):
            raise ValueError(f"keep must be ({len(self.faces)},) bool, not {keep.shape}")
        counts = [int(keep[m.face_start:m.face_start + m.face_count].sum())
                  for m in self.materials]
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int).tolist()
        materials = tuple(replace(m, face_start=start, face_count=count)
                          for m, start, count in zip(self.materials, starts, counts, strict=True))
        return replace(self, faces=frozen_array(self.faces[keep], np.int32), materials=materials)

    @property
    def missing_textures(self) -> tuple[TextureRef, ...]:
        """Every referenced texture (material, sphere or toon) that was not found."""
        seen: dict[str, TextureRef] = {}
        for material in self.materials:
            for ref in (material.texture, material.sphere, material.toon):
                if ref is not None and not ref.found:
                    seen.setdefault(ref.reference, ref)
        return tuple(seen.values())
