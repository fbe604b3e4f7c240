"""GL side of mmdrender: the context factory, the renderer and its shaders."""

from mmdrender.gl.context import create_context, get_context, release_context
from mmdrender.gl.renderer import SHADINGS, Lights, ModelScene, Renderer

__all__ = [
    "SHADINGS",
    "Lights",
    "ModelScene",
    "Renderer",
    "create_context",
    "get_context",
    "release_context",
]
