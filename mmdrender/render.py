"""The thin front end: one call from a model or pose to an image.

Joins the platform (the process's GL context from :mod:`mmdrender.gl.context`)
and the renderer. Renderers are cached per (size, shading, anti-aliasing) and the
last model's scene is kept, so rendering many poses of one model uploads its
textures once. For tight loops hold a :class:`~mmdrender.gl.renderer.ModelScene`
yourself::

    renderer = Renderer(get_context(), size=256)
    with renderer.prepare(model) as scene:
        image = scene.draw(posed, camera)
"""

from __future__ import annotations

import os
import warnings

from mmdrender.camera import Camera, estimate_head_bounds
from mmdrender.gl.context import get_context
from mmdrender.gl.renderer import (
    DEFAULT_SAMPLES,
    DEFAULT_SUPERSAMPLE,
    Lights,
    ModelScene,
    Renderer,
)
from mmdrender.model import Model
from mmdrender.posed import PosedModel

_renderers: dict[tuple, Renderer] = {}
_scenes: dict[tuple, ModelScene] = {}


def render(
    posed_or_model: PosedModel | Model,
    camera: Camera | None = None,
    size: int | None = None,
    shading: str = "phong",
    lights: Lights | None = None,
    samples: int = DEFAULT_SAMPLES,
    supersample: int = DEFAULT_SUPERSAMPLE,
):
    """Render a pose (or a model in its rest pose) with the process-wide context.

    ``camera`` defaults to framing the head found by
    :func:`~mmdrender.camera.estimate_head_bounds`; ``size`` defaults to the
    camera's, else 256. ``lights`` default to :class:`Lights` (). ``samples``
    (MSAA) and ``supersample`` are the anti-aliasing, as for :class:`Renderer`.

    Returns
    -------
    (size, size, 4) uint8 sRGB RGBA, straight alpha, first row = top; the
    background is exactly (0, 0, 0, 0).
    """
    posed = posed_or_model if isinstance(posed_or_model, PosedModel) else None
    if posed is None:
        if not isinstance(posed_or_model, Model):
            raise TypeError(f"render() takes a PosedModel or a Model, not {type(posed_or_model)}")
        posed = PosedModel.rest(posed_or_model)
    if camera is None:
        top, bottom, centre_x = estimate_head_bounds(posed.model)
        camera = Camera.from_head_bounds(top, bottom, centre_x, size if size else 256)
    elif size is not None and size != camera.size:
        raise ValueError(f"size {size} disagrees with the camera's size {camera.size}")
    renderer = get_renderer(camera.size, shading, samples, supersample)
    key = (os.getpid(), camera.size, shading, samples, supersample)
    scene = _scenes.get(key)
    if scene is None or scene.model is not posed.model:
        if scene is not None:
            scene.release()
        scene = _scenes[key] = renderer.prepare(posed.model)
        for message in scene.warnings:  # textures drawn without or scaled down
            warnings.warn(message, stacklevel=2)
    return scene.draw(posed, camera, lights)


def get_renderer(size: int = 256, shading: str = "phong", samples: int = DEFAULT_SAMPLES,
                 supersample: int = DEFAULT_SUPERSAMPLE) -> Renderer:
    """This process's renderer for these settings, made once on its GL context.

    Keyed by process too: a forked worker gets its own context, never its parent's objects.
    """
    key = (os.getpid(), size, shading, samples, supersample)
    renderer = _renderers.get(key)
    if renderer is None:
        renderer = _renderers[key] = Renderer(get_context(), size, samples, shading,
                                              supersample=supersample)
    return renderer


def clear_cache() -> None:
    """Release the cached scenes and renderers (the context stays)."""
    for scene in _scenes.values():
        scene.release()
    for renderer in _renderers.values():
        renderer.release()
    _scenes.clear()
    _renderers.clear()
