"""What a format reader hands to the loader: file-order data, before checking.

``vertices`` is a :class:`~mmdrender.model.Vertices` still in the file's frame,
its weights unchecked (the loader converts and checks it once); texture
references are still the file's strings. Bones and morphs are already final.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mmdrender.model import Bone, Morph, Vertices


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
    vertices: Vertices  # in the file's frame, weights unchecked
    indices: np.ndarray  # flat, int64, three per triangle
    materials: list[RawMaterial]
    bones: list[Bone]
    morphs: list[Morph]
    warnings: list[str] = field(default_factory=list)
