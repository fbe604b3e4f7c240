"""A THA1 run's images are what a plain whole-model render of the same pose gives (issue 14).

Runs take shortcuts to go faster (only the triangles that can reach the image,
expressions redrawn from the rest frame); none may change a byte. Here
``pipeline.generate.render_model`` draws a few examples of every shared
model and the heavy sample, and each image is compared with
:func:`mmdrender.render.render` of the whole model, posed by a fresh Poser,
framed and lit the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_MODELS, shared_model_params
from conftest import load_quietly as load
from conftest_gl import gl_context  # noqa: F401  (a fixture)

from mmdrender.camera import Camera, estimate_head_bounds, head_centre_x
from mmdrender.gl.renderer import Lights
from mmdrender.model import MorphPanel
from mmdrender.pose import MorphMapping, Poser
from mmdrender.render import render
from mmdrender.samples import HEAVY_SAMPLE, sample_truth
from pipeline.generate import MORPH_PARAMETERS, RunConfig, render_model
from pipeline.index import ModelEntry

SIZE, EXAMPLES = 96, 3
BLINK, MOUTH = "まばたき", "あ"  # the standard morphs, else the first of the eye/mouth panel


class _Images:
    """A shard writer that keeps what it is given."""

    def __init__(self):
        self.rest, self.examples = None, []

    def add_model(self, rest, **fields):
        self.rest = rest.copy()
        return 0

    def add_example(self, row, example, values, expression, posed):
        self.examples.append((np.array(values), expression.copy(), posed.copy()))


def _check(path: Path, root: Path, label: str, bounds: tuple[float, float] | None = None):
    """``bounds``: the head's top and bottom y; None: estimated from the model."""
    model = load(path)
    top, bottom = bounds or estimate_head_bounds(model)[:2]
    blink, mouth = (_morph(model, name, panel) for name, panel in ((BLINK, MorphPanel.EYE),
                                                                    (MOUTH, MorphPanel.MOUTH)))
    entry = ModelEntry(model_id="m", path=str(path.relative_to(root)), source="test",
                       split="train", status="confirmed", status_reason="", head_top_y=top,
                       head_bottom_y=bottom, wink_left=None, wink_right=None, wink_both=blink,
                       smile_wink_left=None, smile_wink_right=None, smile_wink_both=None,
                       mouth_open=mouth, sha256="", notes="")
    config = RunConfig(out=root, models_root=root, examples_per_model=EXAMPLES, size=SIZE)
    images = _Images()
    render_model(entry, config, EXAMPLES, path, images)

    camera = Camera.from_head_bounds(top, bottom, head_centre_x(model), SIZE)
    poser = Poser(model, MorphMapping(None, None, mouth))

    def plain(values: dict) -> np.ndarray:
        values = dict(values)
        closed = values.pop("eye_left", 0.0)
        values.pop("eye_right", None)
        return render(poser.pose(values, {blink: closed}), camera, lights=Lights())

    assert np.array_equal(images.rest, plain({"mouth": 1.0})), f"{label}: the rest image"
    for k, (values, expression, posed) in enumerate(images.examples):
        named = config.schema.as_mapping(values)
        morphs = {n: v for n, v in named.items() if n in MORPH_PARAMETERS}
        for what, drawn, expected in (("expression", expression, plain(morphs)),
                                      ("posed", posed, plain(named))):
            differ = int((drawn != expected).any(axis=2).sum())
            assert differ == 0, f"{label}: example {k}'s {what} image differs in {differ} pixels"


def _morph(model, name: str, panel) -> str:
    names = [m.name for m in model.morphs]
    if name in names:
        return name
    return next(m.name for m in model.morphs if m.panel == panel)


def _check_heavy(heavy_dir: Path) -> None:
    truth = sample_truth(HEAVY_SAMPLE)
    _check(heavy_dir / HEAVY_SAMPLE / f"{HEAVY_SAMPLE}.pmx", heavy_dir, HEAVY_SAMPLE,
           (truth.head_top_y, truth.head_bottom_y))


def test_the_heavy_sample_is_drawn_as_a_plain_render(heavy_dir, gl_context):  # noqa: F811
    _check_heavy(heavy_dir)


@pytest.mark.parametrize("path", shared_model_params(characters_only=True))
def test_real_models_are_drawn_as_plain_renders(path, gl_context):  # noqa: F811
    _check(path, SHARED_MODELS, str(path.relative_to(SHARED_MODELS)))


def test_a_changed_pixel_would_be_seen(heavy_dir, gl_context, monkeypatch):  # noqa: F811
    """The comparison is live: a run whose posed images are drawn with the head one step
    further turned fails it."""
    import pipeline.generate as generate

    class TurnedAStepFurther(Poser):
        def pose(self, params=None, morphs=None, **kwargs):
            params = dict(params or {})
            if params.get("head_y"):
                params["head_y"] = min(1.0, params["head_y"] + 0.01)
            return super().pose(params, morphs or {}, **kwargs)

    monkeypatch.setattr(generate, "Poser", TurnedAStepFurther)
    with pytest.raises(AssertionError, match="posed image differs"):
        _check_heavy(heavy_dir)
