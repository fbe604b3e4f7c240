"""Models, proposals and pictures for the review window (no Qt here).

:func:`render_image` is the one call into the renderer; tests monkeypatch it.
:class:`ModelSource` loads models (a few kept), runs
:func:`annotate.auto.propose` once per model and caches rendered pictures, so
stepping back and forth between models and morphs redraws nothing twice.
"""

from __future__ import annotations

import functools
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annotate.auto import ALL_FIELDS, SCHEMA_FIELDS, failure_reason
from mmdrender.camera import HEAD_BONE, Camera, estimate_head_bounds
from mmdrender.errors import MMDRenderError
from mmdrender.model import Model, MorphPanel
from pipeline.index import ModelEntry, resolve_model_path

from .store import EYE_ROLES, FIELDS

VIEW_SIZE = 384   # the head view's picture, pixels on a side
FACE_SIZE = 192   # each morph picture
VIEW_ZOOM = 1.7   # the head view shows this many head heights above and below the centre
_NOTES = re.compile(r"(\w+) ([01](?:\.\d+)?)")


def render_image(model: Model, camera: Camera, morphs: Mapping[str, float] | None = None,
                 turn: tuple[str, str, float] | None = None) -> np.ndarray:
    """``model`` in its rest pose with ``morphs`` applied, seen by ``camera``.

    ``turn``: (bone name, axis "x"/"y"/"z", degrees) to turn one bone too (the
    body page shows which part a body bone moves).

    Returns (size, size, 4) uint8 RGBA, first row = top (mmdrender's layout).
    """
    from mmdrender.pose import Poser
    from mmdrender.render import render
    from mmdrender.skeleton import turn_about

    turns = {}
    if turn is not None and model.bone_index(turn[0]) is not None:
        bone, axis, degrees = turn
        turns[bone] = turn_about(axis, degrees)
    posed = Poser(model).pose(morphs=dict(morphs or {}), turns=turns)
    return render(posed, camera, shading="toon")


@dataclass(frozen=True)
class Proposed:
    """What :func:`annotate.auto.propose` said, flattened for the window."""

    values: dict          # field -> value
    confidence: dict      # field -> confidence in [0, 1]
    centre_x: float

    @property
    def overall(self) -> float:
        """The weakest field's confidence (what "low confidence first" sorts by)."""
        return min(self.confidence.values()) if self.confidence else 0.0


@functools.lru_cache(maxsize=65536)  # the list asks again on every refresh
def notes_confidence(notes: str) -> float | None:
    """The weakest confidence in an ``auto: field 0.93, ...`` notes line, else None."""
    if not notes.startswith("auto:"):
        return None
    found = [float(v) for name, v in _NOTES.findall(notes) if name in ALL_FIELDS]
    return min(found) if found else None


class ModelSource:
    """Loads the models of an index and renders what the window shows."""

    def __init__(self, root: str | Path, keep_models: int = 4, keep_images: int = 256,
                 schema: str = "tha1"):
        self.root = Path(root)
        self.schema = schema
        self.fields = SCHEMA_FIELDS[schema]
        self._models: OrderedDict[str, Model] = OrderedDict()
        self._keep_models = keep_models
        self._images: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._keep_images = keep_images
        self.proposals: dict[str, Proposed] = {}
        self.errors: dict[str, str] = {}

    # ---------------------------------------------------------------- models

    def model(self, entry: ModelEntry, keep: bool = True) -> Model:
        """The loaded model of ``entry``; raises whatever loading raises.

        ``keep``: put it in the cache of recently shown models (background
        work passes False, so it never pushes out the model being reviewed).
        """
        model = self._models.get(entry.model_id)
        if model is None:
            from mmdrender.loader import load_model

            model = load_model(resolve_model_path(entry, self.root), root=self.root)
            if not keep:
                return model
            self._models[entry.model_id] = model
            while len(self._models) > self._keep_models:
                self._models.popitem(last=False)
        self._models.move_to_end(entry.model_id)
        return model

    def try_model(self, entry: ModelEntry, keep: bool = True) -> Model | None:
        """The model, or None with the reason in ``errors[model_id]``; never raises.

        Any exception counts: a corrupt file can make the parser raise anything.
        """
        try:
            return self.model(entry, keep)
        except Exception as error:  # noqa: BLE001  (the model is skipped with the reason)
            self.errors[entry.model_id] = failure_reason(error)
            return None

    def proposed(self, entry: ModelEntry, keep: bool = True) -> Proposed | None:
        """The proposals for ``entry`` (computed once), or None with the reason in ``errors``.

        Never raises; a model that fails is not tried again.
        """
        if entry.model_id in self.proposals:
            return self.proposals[entry.model_id]
        if entry.model_id in self.errors:
            return None
        model = self.try_model(entry, keep)
        if model is None:
            return None
        from annotate.auto import propose

        try:
            proposal = propose(model, self.schema)
        except Exception as error:  # noqa: BLE001  (shown as the model's error)
            self.errors[entry.model_id] = f"no proposals: {failure_reason(error)}"
            return None
        result = Proposed({name: proposal.fields[name].value for name in self.fields},
                          {name: float(proposal.fields[name].confidence)
                           for name in self.fields}, float(proposal.centre_x))
        self.proposals[entry.model_id] = result
        return result

    def confidence(self, entry: ModelEntry) -> float | None:
        """The weakest proposal confidence, from computed proposals or the notes line."""
        proposed = self.proposals.get(entry.model_id)
        return proposed.overall if proposed else notes_confidence(entry.notes)

    # ---------------------------------------------------------------- framing

    def centre_x(self, entry: ModelEntry, model: Model) -> float:
        """The x the crop is centred on: the 頭 bone's, as the dataset generator does."""
        head = model.bone_index(HEAD_BONE)
        if head is not None:
            return float(model.bones[head].position[0])
        proposed = self.proposals.get(entry.model_id)
        return proposed.centre_x if proposed else 0.0

    def view_camera(self, model: Model, top: float | None, bottom: float | None,
                    centre_x: float, zoom: float = VIEW_ZOOM) -> Camera:
        """The head view's fixed camera: around the given bounds, else a guess, else the body."""
        if top is None or bottom is None or not top > bottom:
            try:
                top, bottom, _ = estimate_head_bounds(model)
            except MMDRenderError:
                y = model.vertices.positions[:, 1]
                high, low = float(y.max()), float(y.min())
                top, bottom = high, high - max(high - low, 1e-3) / 7.0
        height = top - bottom
        return Camera(centre_x, (top + bottom) / 2.0, zoom * height, VIEW_SIZE)

    @staticmethod
    def body_camera(view: Camera) -> Camera:
        """The upper body for the body page, from the view's framing."""
        head = view.half_height / VIEW_ZOOM
        return Camera(view.centre_x, view.centre_y - 0.9 * head, 1.4 * head, FACE_SIZE)

    @staticmethod
    def face_camera(view: Camera) -> Camera:
        """A close-up of the face for the morph pictures, from the view's framing."""
        head = view.half_height / VIEW_ZOOM
        return Camera(view.centre_x, view.centre_y - 0.05 * head, 0.42 * head, FACE_SIZE)

    # ---------------------------------------------------------------- pictures

    def image(self, entry: ModelEntry, camera: Camera, morph: str | None = None,
              turn: tuple[str, str, float] | None = None) -> np.ndarray:
        """The picture of ``entry`` through ``camera`` with ``morph`` at weight 1 (cached).

        ``turn``: (bone, axis, degrees), a bone turned as well.
        """
        key = (entry.model_id, camera, morph, turn)
        image = self._images.get(key)
        if image is None:
            model = self.model(entry)
            image = render_image(model, camera, {morph: 1.0} if morph else None, turn)
            self._images[key] = image
            while len(self._images) > self._keep_images:
                self._images.popitem(last=False)
        self._images.move_to_end(key)
        return image


    def iris_images(self, entry: ModelEntry, side: str, values: Mapping[str, object]
                    ) -> dict[str, np.ndarray] | None:
        """One eye's close-ups at rest and at the shown angles (see annotate.iris); cached.

        None when the model has no such eye bone.
        """
        from annotate.features import face_map
        from annotate.iris import review_images
        from pipeline.roles import IRIS_COLUMNS, IRIS_ENDS

        angles = {end: values.get(IRIS_COLUMNS[(side, end)]) for end in IRIS_ENDS}
        closing = values.get(f"wink_{side}") or values.get("wink_both")
        key = (entry.model_id, "iris", side, tuple(sorted(angles.items())), closing)
        if key in self._images:
            self._images.move_to_end(key)
            return self._images[key]
        model = self.model(entry)
        eye = face_map(model).eyes.get(side)
        if eye is None:
            return None
        index = model.morph_index(closing) if closing else None
        images = review_images(model, eye, angles, index)
        self._images[key] = images
        return images


def body_candidates(model: Model | None, first: list[str | None]) -> list[str]:
    """Bone names for the body page: ``first`` (the shown values), then upper-body-like
    bones (上半身, 肩, chest, spine...), then every other bone."""
    if model is None:
        return []
    from annotate.body_bones import BODY_STEMS, CHEST_STEMS, SHOULDER_STEMS
    from annotate.names import stem

    names = [b.name for b in model.bones]
    likely = [n for n in names if stem(n)[0] in BODY_STEMS | CHEST_STEMS | SHOULDER_STEMS]
    shown = [n for n in first if n and n in names]
    return list(dict.fromkeys([*shown, *likely, *names]))


def candidates(model: Model | None, panel: MorphPanel, first: list[str | None]) -> list[str]:
    """Morph names to look at for one panel: ``first`` (the guesses) then the panel's others.

    Unknown and repeated names are dropped; morphs of other panels follow only
    when the panel has none (some models put everything under "other").
    """
    if model is None:
        return []
    names = [m.name for m in model.morphs if m.supported]
    seen: list[str] = []
    for name in first:
        if name and name in names and name not in seen:
            seen.append(name)
    on_panel = [m.name for m in model.morphs if m.supported and m.panel == panel]
    rest = on_panel if on_panel else [m.name for m in model.morphs
                                      if m.supported and m.panel != MorphPanel.SYSTEM]
    seen += [name for name in rest if name not in seen]
    return seen


__all__ = ["EYE_ROLES", "FIELDS", "ModelSource", "Proposed", "candidates", "render_image"]
