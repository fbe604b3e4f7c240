"""Where on the face a morph acts: landmarks, footprints, features and sides.

Every morph kind counts: the footprint of a morph is what it changes per
vertex at weight 1, posed through :class:`mmdrender.pose.Poser` (so vertex,
bone and group morphs all move vertices), plus the vertices whose UVs a UV
morph shifts and the vertices of the materials a material morph changes.
Each vertex is placed halfway between its rest and morphed position, so a
feature that a morph swaps in from a hidden, collapsed mesh (a low-poly trick)
counts where it appears.

The face's landmarks (:class:`FaceMap`) put every footprint on one scale:
``t`` is the height above the eye row in eye-to-mouth distances (the mouth
row at -1). On the 13 real characters in ../shared and the samples, eyebrow
morphs centre at t = 0.3 to 1.9, eyelid morphs at -0.45 to 0.15, mouth morphs
at -1.1 to -0.75; the irises are the vertices on the eye bones. A footprint's
feature is read off that scale (:func:`feature_of`), its side from where its
mass lies (the character's left is +x).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from annotate.names import stem
from mmdrender.camera import HEAD_BONE, estimate_head_bounds, head_centre_x
from mmdrender.errors import MMDRenderError
from mmdrender.model import Model, MorphPanel
from mmdrender.morph import alone, apply_morphs, offsets_of
from mmdrender.pose import Poser
from mmdrender.posed import MaterialState

FEATURES = ("eyebrow", "eye", "iris", "mouth", "other")
IRIS_SHARE = 0.6  # a morph whose mass is mostly on the eye bones acts on the irises
HEAD_SHARE = 0.5  # ... and one mostly off the head acts on something else
MOUTH_T = -0.6  # below this (face units under the eye row) a morph acts on the mouth
CHIN_T = -2.0  # ... down to here
BROW_MARGIN = 0.1  # eyebrows start this far above the top of the irises (face units)
LOWEST_BROW_T = 0.12  # the top of the irises counts as at least this high
MIDLINE = 0.1  # a both-sides morph with under this share of its mass near the centre
#                line can be split into halves (the band is MIDLINE face units wide)
SIDED = 0.7  # share of the mass on one side that makes a morph one-sided
EYE_STEMS = frozenset({"目", "eye", "eyeball", "目玉", "眼球", "眼"})
_MOVED = 1e-4  # a vertex changes when it moves more than this fraction of the most


@dataclass(frozen=True)
class Eye:
    """One eye: the bone that turns its iris, the iris vertices, their 2D box (model units)."""

    bone: int
    vertices: np.ndarray  # (V,) bool
    box: tuple[float, float, float, float]  # x_min, x_max, y_min, y_max

    @property
    def centre(self) -> tuple[float, float]:
        x0, x1, y0, y1 = self.box
        return (x0 + x1) / 2, (y0 + y1) / 2


@dataclass(frozen=True)
class FaceMap:
    """Landmarks that put every footprint on one scale.

    ``scale``: eye row to mouth row, model units. ``brow_t``: footprints
    centred above this (face units from the eye row) act on the eyebrows;
    ``top_t``: the head's top. ``eyes``: "left"/"right" -> :class:`Eye` where
    eye bones exist. ``iris``, ``head``: (V,) weight of each vertex on the eye
    bones and on 頭 and the bones below it.
    """

    centre_x: float
    eye_y: float
    mouth_y: float
    scale: float
    brow_t: float
    top_t: float
    eyes: dict
    iris: np.ndarray
    head: np.ndarray

    def t(self, y):
        return (np.asarray(y, dtype=np.float64) - self.eye_y) / self.scale


@dataclass(frozen=True)
class Footprint:
    """What one morph changes at weight 1, on the face's scale.

    ``weights``: (V,) float64, how much each vertex changes (model units);
    ``displacement``: (V, 3) float64, how it moves (zeros for UV and
    material changes). ``left``: share of the sided mass on the character's
    left; ``iris``/``head``: share on the eye bones / the head; ``midline``:
    share within the centre band. ``kinds``: what the morph expands to
    (vertex, bone, uv, material).
    """

    index: int
    name: str
    panel: MorphPanel
    weights: np.ndarray
    displacement: np.ndarray
    mass: float
    x: float
    y: float
    t: float
    left: float
    iris: float
    head: float
    midline: float
    kinds: frozenset
    feature: str

    @property
    def side(self) -> int:
        """+1 the character's left, -1 its right, 0 both."""
        if self.left >= SIDED:
            return 1
        if self.left <= 1.0 - SIDED:
            return -1
        return 0

    @property
    def side_clarity(self) -> float:
        """How clearly the mass says :attr:`side`, 0.3 to 1."""
        one = max(self.left, 1.0 - self.left)
        if self.side == 0:
            return float(np.clip(1.0 - abs(self.left - 0.5) / 0.2 * 0.3, 0.3, 1.0))
        return float(np.clip((one - SIDED) / 0.2, 0.3, 1.0) * 0.3 + 0.7)

    @property
    def splittable(self) -> bool:
        """Whether this (both-sides) morph can be restricted to one half of the face.

        Its change must lie clear of the centre line, and be one that can be
        cut per vertex: a material morph changes whole materials.
        """
        return self.midline < MIDLINE and "material" not in self.kinds


def eye_bones(model: Model, centre_x: float) -> dict[str, int]:
    """"left"/"right" -> the bone that turns that eye's iris, by name and geometry.

    A bone named as an eye (左目, 右目, eye_L, 眼R ...; 両目 turns both and is
    not one) with vertices mostly on it; the side is where those vertices lie.
    """
    found: dict[str, tuple[int, int]] = {}
    indices, weights = model.vertices.bone_indices, model.vertices.bone_weights
    x = model.vertices.positions[:, 0]
    for b, bone in enumerate(model.bones):
        if stem(bone.name)[0] not in EYE_STEMS:
            continue
        on = np.where(indices == b, weights, 0.0).sum(axis=1) > 0.5
        if on.sum() < 3:
            continue
        side = "left" if float(x[on].mean()) > centre_x else "right"
        if side not in found or on.sum() > found[side][1]:
            found[side] = (b, int(on.sum()))
    return {side: b for side, (b, _) in found.items()}


def face_map(model: Model, face=None) -> FaceMap:
    """The landmarks of ``model``'s face.

    ``face`` (a :class:`annotate.morph_roles.Face`, optional) gives the eye
    and mouth rows found from the wink and mouth morphs; the irises (vertices
    on the eye bones) give better eye centres where they exist, and the
    eye/mouth panels' footprints stand in where neither does.
    """
    head_bone = model.bone_index(HEAD_BONE)
    centre_x = head_centre_x(model)
    positions = model.vertices.positions.astype(np.float64)
    indices, weights = model.vertices.bone_indices, model.vertices.bone_weights
    bones = eye_bones(model, centre_x)
    iris = np.zeros(len(positions))
    eyes = {}
    for side, b in bones.items():
        on_bone = np.where(indices == b, weights, 0.0).sum(axis=1)
        iris += on_bone
        p = positions[on_bone > 0.5]
        eyes[side] = Eye(b, on_bone > 0.5, (float(p[:, 0].min()), float(p[:, 0].max()),
                                             float(p[:, 1].min()), float(p[:, 1].max())))
    head = np.zeros(len(positions))
    if head_bone is not None:
        head = model.weight_on(model.subtree(head_bone))
    try:
        top, bottom, _ = estimate_head_bounds(model)
    except MMDRenderError:
        y = positions[:, 1]
        top, bottom = float(y.max()), float(y.max() - (y.max() - y.min()) / 7)
    height = top - bottom

    # eye row: the irises, else the eye panel's morphs, else the named eye morphs
    eye_y = float(np.mean([e.centre[1] for e in eyes.values()])) if len(eyes) == 2 else None
    mouth_y = face.mouth_y if face is not None else None
    if eye_y is None or mouth_y is None:
        rows = _panel_rows(model, positions)
        eye_y = eye_y if eye_y is not None else rows.get(MorphPanel.EYE)
        mouth_y = mouth_y if mouth_y is not None else rows.get(MorphPanel.MOUTH)
    if eye_y is None:
        eye_y = face.eye_y if face is not None and face.eye_y is not None else \
            bottom + 0.4 * height
    if mouth_y is None or not mouth_y < eye_y:
        mouth_y = eye_y - 0.22 * height
    scale = eye_y - mouth_y
    iris_top = max((e.box[3] for e in eyes.values()), default=eye_y)
    brow_t = max((iris_top - eye_y) / scale, LOWEST_BROW_T) + BROW_MARGIN
    return FaceMap(centre_x, float(eye_y), float(mouth_y), float(scale), float(brow_t),
                   float((top - eye_y) / scale), eyes, iris, head)


def _panel_rows(model: Model, positions: np.ndarray) -> dict:
    """Median centre height of the eye and mouth panels' vertex morphs (rows by panel)."""
    rows = {}
    for panel in (MorphPanel.EYE, MorphPanel.MOUTH):
        ys = []
        for i, morph in enumerate(model.morphs):
            if morph.panel != panel:
                continue
            offsets = offsets_of(model, i)
            if offsets is None:
                continue
            length = np.linalg.norm(offsets, axis=1)
            if length.max() > 0:
                ys.append(float(np.average(positions[:, 1] + offsets[:, 1] / 2, weights=length)))
        if ys:
            rows[panel] = float(np.median(ys))
    return rows


def footprints(model: Model, faces: FaceMap, poser: Poser | None = None) -> dict[int, Footprint]:
    """The :class:`Footprint` of every supported morph that changes something."""
    poser = poser or Poser(model)
    rest = MaterialState.rest(model)
    positions = model.vertices.positions.astype(np.float64)
    result = {}
    for i, morph in enumerate(model.morphs):
        if not morph.supported:
            continue
        footprint = _footprint(model, faces, poser, rest, positions, i)
        if footprint is not None:
            result[i] = footprint
    return result


def _footprint(model, faces: FaceMap, poser: Poser, rest: MaterialState,
               positions: np.ndarray, index: int) -> Footprint | None:
    """``positions``: the model's rest positions as float64."""
    effective = alone(model, index)
    kinds = {type(model.morphs[i].data).__name__ for i in np.flatnonzero(effective)}
    try:
        posed = poser.pose_weights(effective)  # expanding again changes nothing
    except Exception:  # noqa: BLE001  (a corrupt morph cannot be measured; it gets no role)
        return None
    displacement = posed.positions.astype(np.float64) - positions
    if not np.isfinite(displacement).all():
        return None
    change = np.linalg.norm(displacement, axis=1)
    changes = apply_morphs(model, effective, rest)
    if changes.uv_offsets is not None:
        change = change + np.linalg.norm(changes.uv_offsets, axis=1) * faces.scale
    material = _material_change(model, changes.materials, rest)
    if material is not None:
        change = change + material * faces.scale
    if not np.isfinite(change).all() or not change.max() > 0:
        return None
    change = np.where(change > _MOVED * change.max(), change, 0.0)
    where = positions + displacement / 2
    mass = float(change.sum())
    x, y = (float(np.average(where[:, k], weights=change)) for k in (0, 1))
    dx = where[:, 0] - faces.centre_x
    band = 0.02 * faces.scale
    sided = change[dx > band].sum() + change[dx < -band].sum()
    left = float(change[dx > band].sum() / sided) if sided > 0 else 0.5
    names = {"VertexMorph": "vertex", "BoneMorph": "bone", "UVMorph": "uv",
             "MaterialMorph": "material"}
    footprint = Footprint(
        index=index, name=model.morphs[index].name, panel=model.morphs[index].panel,
        weights=change, displacement=displacement, mass=mass, x=x, y=y, t=float(faces.t(y)),
        left=left, iris=float((change * np.clip(faces.iris, 0, 1)).sum() / mass),
        head=float((change * np.clip(faces.head, 0, 1)).sum() / mass),
        midline=float(change[np.abs(dx) < MIDLINE * faces.scale / 2].sum() / mass),
        kinds=frozenset(names[k] for k in kinds if k in names), feature="other")
    return replace(footprint, feature=feature_of(footprint, faces))


def _material_change(model: Model, after: MaterialState, rest: MaterialState
                     ) -> np.ndarray | None:
    """(V,) how much a material morph changes each vertex's materials, or None."""
    if after is rest:
        return None
    per_material = np.zeros(len(model.materials))
    for name in MaterialState.__dataclass_fields__:
        a, b = getattr(after, name), getattr(rest, name)
        per_material = np.maximum(per_material, np.abs(a - b).reshape(len(a), -1).max(axis=1))
    per_material = np.where(per_material > 1e-3, np.minimum(per_material, 1.0), 0.0)
    if not per_material.any():
        return None
    change = np.zeros(len(model.vertices))
    for m, material in enumerate(model.materials):
        if per_material[m]:
            faces = model.faces[material.face_start:material.face_start + material.face_count]
            change[np.unique(faces)] = np.maximum(change[np.unique(faces)], per_material[m])
    return change


def feature_of(footprint: Footprint, faces: FaceMap) -> str:
    """"eyebrow", "eye", "iris", "mouth" or "other": where the footprint's mass lies."""
    if footprint.head < HEAD_SHARE and faces.head.any():
        return "other"
    if footprint.iris >= IRIS_SHARE:
        return "iris"
    t = footprint.t
    if faces.brow_t <= t <= faces.top_t + 0.3:
        return "eyebrow"
    if MOUTH_T < t < faces.brow_t:
        return "eye"
    if CHIN_T <= t <= MOUTH_T:
        return "mouth"
    return "other"
