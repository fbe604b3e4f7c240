"""mmdrender: load MMD models (PMD/PMX), pose them, and render them headless."""

from mmdrender.errors import MMDRenderError, ModelLoadError, PoseError, RenderError, TextureError
from mmdrender.loader import load_model
from mmdrender.model import Model

__all__ = [
    "MMDRenderError",
    "Model",
    "ModelLoadError",
    "PoseError",
    "RenderError",
    "TextureError",
    "load_model",
]
