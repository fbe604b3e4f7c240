"""Which morph closes which eye, and which opens the mouth: from names and geometry.

Every candidate's effect is measured on the vertices (group morphs expanded, so
a group counts as what it does): where its displacement mass lies (near the
eye row or the mouth row; on the character's left, +x, or right, -x, of the
face's centre, or both), and how it closes an eye. Names only nominate
candidates and give a *prior* for normal vs smile; they never decide a side.

Normal vs smile wink. A normal wink/blink brings the upper lid straight down;
a smile wink closes into an upward arch (∩), so its centre travels less than
its corners and the lower lid often rises. Three cues, combined:

- a match: a one-eye morph whose displacement equals one half of a both-eye
  morph (cosine over that side's vertices) takes that morph's kind;
- curvature: ``cdy``, the u² coefficient of a quadratic fit of dy across the
  eye's width (u = x offset from the eye's centre in standard deviations) —
  lower for a smile. Only relative values mean anything, so it is compared
  with the model's own both-eye references or with the other candidate on the
  same side;
- the name: 笑/smile/happy strongly smile, まばたき/blink strongly normal; a
  plain ウィンク weakly normal, ウィンク２ weakly smile (modellers disagree).

Confidences fall when the cues disagree.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np

from mmdrender.model import Model, MorphPanel
from mmdrender.morph import offsets_of

EYE_FIELDS = ("wink_left", "wink_right", "wink_both",
              "smile_wink_left", "smile_wink_right", "smile_wink_both")

# Patterns on NFKC-normalised, lower-cased names (NFKC turns ｳｨﾝｸ into ウィンク, ２ into 2).
_WINK = re.compile(r"ウィンク|ウインク|wink|眨眼|单眼|単眼")
_BLINK = re.compile(r"まばたき|瞬き|blink|眨眼|闭眼|閉眼|目閉じ|目とじ")
_SMILE = re.compile(r"笑|smile|happy|にこ")
_DIGIT_TWO = re.compile(r"2")
_MOUTH_OPEN = re.compile(r"^(あ|a|ア|ah|口開け|口あけ|mouth ?open|啊|张嘴)$")

SIDE_EPS = 0.02  # model units either side of the centre that count as neither side
MIN_MOVE = 1e-4  # a vertex moves when its offset is longer than this fraction of the largest


def normalise(name: str) -> str:
    return unicodedata.normalize("NFKC", name).strip().lower()


@dataclass(frozen=True)
class Effect:
    """What one morph does to the vertices (groups expanded).

    mass: summed offset length. left: share of the mass on x > centre (the
    character's left). y, x: mass-weighted centroid. down: share of |dy| that
    goes down. cdy: per side (+1 left, -1 right) the u² coefficient of dy.
    offsets: (V, 3) float64.
    """

    index: int
    name: str
    mass: float
    left: float
    x: float
    y: float
    down: float
    mean_dy: float
    cdy: dict
    offsets: np.ndarray


def morph_effect(model: Model, index: int, centre_x: float) -> Effect | None:
    """The :class:`Effect` of morph ``index``; None when it moves no vertex.

    A morph with an infinite or NaN offset (a corrupt file) is None too: it
    cannot be measured.
    """
    offsets = offsets_of(model, index)
    if offsets is None:
        return None
    length = np.linalg.norm(offsets, axis=1)
    if not length.max() > 0:
        return None
    moved = length > MIN_MOVE * length.max()
    positions = model.vertices.positions
    x, y = positions[:, 0].astype(np.float64), positions[:, 1].astype(np.float64)
    dy = offsets[:, 1].astype(np.float64)
    on_left = moved & (x > centre_x + SIDE_EPS)
    on_right = moved & (x < centre_x - SIDE_EPS)
    sided = length[on_left].sum() + length[on_right].sum()
    left = float(length[on_left].sum() / sided) if sided > 0 else 0.5
    total_dy = np.abs(dy[moved]).sum()
    down = float(np.clip(-dy[moved], 0, None).sum() / total_dy) if total_dy > 0 else 0.0
    cdy = {}
    for side, mask in ((1, on_left), (-1, on_right)):
        if length[mask].sum() < 0.2 * length[moved].sum() or mask.sum() < 4:
            continue
        w = length[mask]
        ex = np.average(x[mask], weights=w)
        spread = np.sqrt(np.average((x[mask] - ex) ** 2, weights=w)) or 1.0
        u = (x[mask] - ex) / spread
        basis = np.stack([np.ones_like(u), u, u * u], axis=1) * np.sqrt(w)[:, None]
        coefficients = np.linalg.lstsq(basis, dy[mask] * np.sqrt(w), rcond=None)[0]
        cdy[side] = float(coefficients[2])
    w = length[moved]
    return Effect(index=index, name=model.morphs[index].name, mass=float(w.sum()), left=left,
                  x=float(np.average(x[moved], weights=w)),
                  y=float(np.average(y[moved], weights=w)), down=down,
                  mean_dy=float(np.average(dy[moved], weights=w)), cdy=cdy, offsets=offsets)


@dataclass(frozen=True)
class Role:
    """A proposed morph (or None) for one field, with a confidence in [0, 1]."""

    value: str | None
    confidence: float


@dataclass(frozen=True)
class Face:
    """Face landmarks found from the morphs: y of the eye and mouth rows, or None."""

    eye_y: float | None
    mouth_y: float | None
    eye_x: float | None  # mean |x - centre| of the eye-closing mass (half the eye spacing)
    mouth_bottom_y: float | None  # lowest vertex the mouth-open morph moves
    mouth_z: float | None = None  # depth of the mouth-open morph's mass (the face's front)


def _eye_name(name: str) -> bool:
    return bool(_WINK.search(name) or _BLINK.search(name) or _SMILE.search(name))


def _name_prior(name: str) -> float:
    """> 0: the name suggests a smile wink; < 0: a normal one; weak where modellers differ."""
    if _SMILE.search(name):
        return 1.0
    if _BLINK.search(name):
        return -1.0
    if _WINK.search(name):
        return 0.3 if _DIGIT_TWO.search(name) else -0.3
    return 0.0


def _side(effect: Effect) -> tuple[int, float]:
    """(+1 left, -1 right, 0 both) and how clearly."""
    share = effect.left
    if 0.3 <= share <= 0.7:
        return 0, float(1.0 - abs(share - 0.5) / 0.2 * 0.3)
    side = 1 if share > 0.5 else -1
    one = max(share, 1.0 - share)
    return side, float(np.clip((one - 0.7) / 0.2, 0.3, 1.0))


def propose_morphs(model: Model, centre_x: float) -> tuple[dict[str, Role], Face]:
    """Roles for the six eye fields and mouth_open, and the face landmarks found."""
    names = [normalise(m.name) for m in model.morphs]
    effects: dict[int, Effect] = {}

    def effect(i: int) -> Effect | None:
        if i not in effects:
            effects[i] = morph_effect(model, i, centre_x)
        return effects[i]

    named_eye = [i for i, n in enumerate(names) if _eye_name(n)]
    eye_panel = [i for i, m in enumerate(model.morphs) if m.panel == MorphPanel.EYE]
    mouth_panel = [i for i, m in enumerate(model.morphs) if m.panel == MorphPanel.MOUTH]

    # The eye row: where the named eye morphs (else the eye panel) move vertices.
    eye_y = _weighted_row([effect(i) for i in named_eye] or [effect(i) for i in eye_panel])

    # Mouth open: the morph below the eye row moving vertices down the most, "あ" favoured.
    mouth_role, mouth = _mouth_open(model, names, effect, eye_y, mouth_panel)
    mouth_y = mouth.y if mouth is not None else None

    candidates = []
    for i in named_eye:
        e = effect(i)
        if e is None or e.down < 0.5 or e.mean_dy >= 0:
            continue  # opens, or moves sideways: not an eye closing
        if eye_y is not None and mouth_y is not None and abs(e.y - eye_y) > abs(e.y - mouth_y):
            continue  # a mouth morph with an eye-like name (笑 as a smiling mouth)
        if mouth_y is not None and e.y < mouth_y:
            continue
        candidates.append(e)
    roles = _eye_roles(candidates, names, model.vertices.positions[:, 0] - centre_x)
    eye_x = None
    closing = [e for e in candidates if _side(e)[0] == 0]
    if closing:
        e = max(closing, key=lambda e: e.mass)
        length = np.linalg.norm(e.offsets, axis=1)
        eye_x = float(np.average(np.abs(model.vertices.positions[:, 0] - centre_x),
                                 weights=length))
    mouth_bottom = mouth_z = None
    if mouth is not None:
        length = np.linalg.norm(mouth.offsets, axis=1)
        moved = length > 0.05 * length.max()
        mouth_bottom = float(model.vertices.positions[moved, 1].min())
        mouth_z = float(np.average(model.vertices.positions[:, 2], weights=length))
    roles["mouth_open"] = mouth_role
    return roles, Face(eye_y, mouth_y, eye_x, mouth_bottom, mouth_z)


def _weighted_row(effects) -> float | None:
    effects = [e for e in effects if e is not None and e.mass > 0]
    if not effects:
        return None
    return float(np.average([e.y for e in effects], weights=[e.mass for e in effects]))


def _mouth_open(model, names, effect, eye_y, mouth_panel) -> tuple[Role, Effect | None]:
    pool = set(mouth_panel) | {i for i, n in enumerate(names) if _MOUTH_OPEN.match(n)}
    scored = []
    for i in sorted(pool):
        e = effect(i)
        if e is None or (eye_y is not None and e.y >= eye_y):
            continue
        opening = float(np.clip(-e.offsets[:, 1], 0, None).sum())
        if opening <= 0:
            continue
        scored.append((e, opening, bool(_MOUTH_OPEN.match(names[i]))))
    if not scored:
        return Role(None, 0.6 if pool else 0.8), None
    best_open = max(s[1] for s in scored)
    ranked = sorted(scored, key=lambda s: (s[1] / best_open + (1.0 if s[2] else 0.0)),
                    reverse=True)
    e, opening, named = ranked[0]
    top_geometry = opening >= 0.999 * best_open
    if named and top_geometry:
        confidence = 0.97
    elif named:
        confidence = 0.6 + 0.3 * opening / best_open
    else:
        confidence = 0.45 if top_geometry else 0.3
    return Role(e.name, round(float(confidence), 3)), e


def _cosine_on_side(a: Effect, b: Effect, side: int, x: np.ndarray) -> float:
    mask = (x * side) > 0
    u, v = a.offsets[mask].ravel(), b.offsets[mask].ravel()
    norm = float(np.linalg.norm(u) * np.linalg.norm(v))
    return float(u @ v / norm) if norm > 0 else 0.0


def _eye_roles(candidates: list[Effect], names: list[str], x: np.ndarray) -> dict[str, Role]:
    """``x``: (V,) vertex x relative to the face's centre."""
    if not candidates:
        return {f: Role(None, 0.8) for f in EYE_FIELDS}
    sides = {e.index: _side(e) for e in candidates}
    prior = {e.index: _name_prior(names[e.index]) for e in candidates}
    both = [e for e in candidates if sides[e.index][0] == 0]
    one = [e for e in candidates if sides[e.index][0] != 0]

    # Both-eye morphs: the name decides (it is rarely wrong for まばたき/笑い); the
    # curvature ordering confirms when there is a pair to compare.
    kind: dict[int, float] = {}  # > 0 smile, < 0 normal; magnitude = certainty
    for e in both:
        geometry = 0.0
        others = [o for o in both if o is not e]
        for o in others:
            mine, theirs = np.mean(list(e.cdy.values())), np.mean(list(o.cdy.values()))
            if prior[o.index] * prior[e.index] < 0 or prior[o.index] == 0:
                geometry += float(np.sign(theirs - mine)) / len(others)
        kind[e.index] = prior[e.index] + 0.5 * geometry if prior[e.index] else geometry
    refs_normal = [e for e in both if kind[e.index] < 0]
    refs_smile = [e for e in both if kind[e.index] > 0]

    for e in one:
        side = sides[e.index][0]
        cues = []
        # cue 1: which both-eye morph it is half of
        if refs_normal and refs_smile:
            cn = max(_cosine_on_side(e, r, side, x) for r in refs_normal)
            cs = max(_cosine_on_side(e, r, side, x) for r in refs_smile)
            if max(cn, cs) >= 0.9:
                cues.append(float(np.clip((cs - cn) / 0.02, -1.0, 1.0)))
        # cue 2: curvature against the both-eye references, else against its neighbour
        mine = e.cdy.get(side)
        if mine is not None:
            normal_c = [r.cdy[side] for r in refs_normal if side in r.cdy]
            smile_c = [r.cdy[side] for r in refs_smile if side in r.cdy]
            if normal_c and smile_c and np.mean(normal_c) > np.mean(smile_c):
                cn_, cs_ = float(np.mean(normal_c)), float(np.mean(smile_c))
                cues.append(float(np.clip(((cn_ + cs_) / 2 - mine) / (cn_ - cs_) * 2, -1, 1)))
            else:
                rivals = [o.cdy[side] for o in one
                          if o is not e and sides[o.index][0] == side and side in o.cdy]
                if rivals:
                    cues.append(float(np.sign(np.mean(rivals) - mine)))
        geometry = float(np.mean(cues)) if cues else 0.0
        kind[e.index] = geometry + 0.5 * prior[e.index]

    roles: dict[str, Role] = {}
    for field, want_side, want_smile in (
            ("wink_left", 1, False), ("wink_right", -1, False), ("wink_both", 0, False),
            ("smile_wink_left", 1, True), ("smile_wink_right", -1, True),
            ("smile_wink_both", 0, True)):
        fits = [e for e in candidates if sides[e.index][0] == want_side
                and (kind[e.index] > 0) == want_smile and kind[e.index] != 0]
        if not fits:
            same_side = [e for e in candidates if sides[e.index][0] == want_side]
            roles[field] = Role(None, 0.55 if same_side else 0.85)
            continue
        # Several fit: the one most sure of its kind, the strongest name next.
        best = max(fits, key=lambda e: (abs(kind[e.index]) + abs(prior[e.index]) * 0.1,
                                        e.mass))
        certainty = min(1.0, abs(kind[best.index]))
        agree = prior[best.index] == 0 or (prior[best.index] > 0) == want_smile
        confidence = sides[best.index][1] * (0.55 + 0.4 * certainty) * (1.0 if agree else 0.85)
        if len(fits) > 1:
            confidence *= 0.85
        roles[field] = Role(best.name, round(float(np.clip(confidence, 0.0, 1.0)), 3))
    return roles
