"""What posing hands to the renderer: the model's arrays after morphs and skinning.

The renderer needs nothing else from a pose, so it never learns about bones,
morph names or pose parameters; and posing never touches GL.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmdrender.model import Model


@dataclass(frozen=True)
class MaterialState:
    """Per-material values after material morphs, M materials.

    diffuse, edge_colour: (M, 4). specular, ambient: (M, 3). specular_power,
    edge_size: (M,). texture_multiply/add, sphere_multiply/add, toon_multiply/add:
    (M, 4) RGBA factors (identity: ones and zeros) the shader applies to each
    texture sample's RGB as MMD does, ``mix(neutral, rgb * multiply.rgb + add.rgb,
    multiply.a + add.a)`` (see material.frag.glsl); the sample's alpha is untouched.
    """

    diffuse: np.ndarray
    specular: np.ndarray
    specular_power: np.ndarray
    ambient: np.ndarray
    edge_colour: np.ndarray
    edge_size: np.ndarray
    texture_multiply: np.ndarray
    texture_add: np.ndarray
    sphere_multiply: np.ndarray
    sphere_add: np.ndarray
    toon_multiply: np.ndarray
    toon_add: np.ndarray

    @classmethod
    def rest(cls, model: Model) -> MaterialState:
        """The materials as the file defines them, with identity texture factors."""
        m = model.materials
        count = len(m)

        def stack(values, width):
            return np.array(values, dtype=np.float32).reshape(count, width)

        ones, zeros = np.ones((count, 4), np.float32), np.zeros((count, 4), np.float32)
        return cls(
            diffuse=stack([x.diffuse for x in m], 4),
            specular=stack([x.specular for x in m], 3),
            specular_power=np.array([x.specular_power for x in m], dtype=np.float32),
            ambient=stack([x.ambient for x in m], 3),
            edge_colour=stack([x.edge_colour for x in m], 4),
            edge_size=np.array([x.edge_size for x in m], dtype=np.float32),
            texture_multiply=ones, texture_add=zeros,
            sphere_multiply=ones.copy(), sphere_add=zeros.copy(),
            toon_multiply=ones.copy(), toon_add=zeros.copy(),
        )


@dataclass(frozen=True)
class PosedModel:
    """A model in one pose, ready to draw. V vertices.

    positions, normals: (V, 3) float32 in the project frame (normals unit length).
    uvs: (V, 2) float32 after UV morphs. materials: after material morphs.
    sub_uvs: (V, 2) float32, additional UV 1 (x, y) after UV morphs on it (what a
    sphere-mode-3 sub-texture is read with), or None when no morph moved it (the
    model's own). ``model`` supplies faces, material order, flags and textures.
    """

    model: Model
    positions: np.ndarray
    normals: np.ndarray
    uvs: np.ndarray
    materials: MaterialState
    sub_uvs: np.ndarray | None = None

    @classmethod
    def rest(cls, model: Model) -> PosedModel:
        """The model unposed, with no morph applied."""
        v = model.vertices
        return cls(model, v.positions, v.normals, v.uvs, MaterialState.rest(model))
