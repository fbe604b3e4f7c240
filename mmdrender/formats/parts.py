"""What a format reader hands to the loader: file-order data, before checking.

Vertex arrays are still in the file's frame here (the loader converts them once,
with the weights); texture references are still the file's strings. Bones and
morphs are already model types.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mmdrender.model import Bone, Morph


@dataclass
class RawVertices:
    """As ``model.Vertices``, in the file's frame, weights not yet checked."""

    positions: np.ndarray
    normals: np.ndarray
    uvs: np.ndarray
    extra_uvs: np.ndarray
    skinning: np.ndarray
    bone_indices: np.ndarray
    bone_weights: np.ndarray
    sdef: np.ndarray
    edge_scale: np.ndarray


@dataclass
class RawMaterial:
    """A material with its texture references as written and its index count."""

    name: str
    english_name: str
    diffuse: np.ndarray
    specular: np.ndarray
    specular_power: float
    ambient: np.ndarray
    flags: int
    edge_colour: np.ndarray
    edge_size: float
    texture: str | None
    sphere: str | None
    sphere_mode: int
    toon: str | None
    index_count: int
    comment: str = ""


@dataclass
class ModelParts:
    format: str
    name: str
    english_name: str
    comment: str
    english_comment: str
    vertices: RawVertices
    indices: np.ndarray  # flat, int64, three per triangle
    materials: list[RawMaterial]
    bones: list[Bone]
    morphs: list[Morph]
    warnings: list[str] = field(default_factory=list)
