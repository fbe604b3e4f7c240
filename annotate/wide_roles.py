"""Which morph plays each role of the THA2/THA3 morph groups, from names and geometry.

Names nominate: each group has patterns for its common names (wide-schemas.md
section 2) and their variants in half-width kana, English and Chinese, with a
strength (1 for the usual name, less for a looser one). A nominee is kept only
when what it moves (:mod:`annotate.features`) is the group's feature: an
eyebrow group's morph must act on the eyebrows, an eye group's on the lids, an
iris group's on the irises, a mouth group's on the mouth. Where its mass lies
decides the side: both, the character's left or its right, whatever the name
says. The winks and the open mouth come from :mod:`annotate.morph_roles`,
which tells a normal wink from a smile by the lid's curve.

Each slot (group and side) takes its strongest nominee; a morph fills one slot
at most. A both-sides morph may serve the one-side parameters by halves when
its change lies clear of the face's centre line (:attr:`Footprint.splittable`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from annotate.features import MIDLINE, Footprint
from annotate.morph_roles import Role
from annotate.names import stem
from mmdrender.model import MorphPanel
from mmdrender.schemas import MORPH_GROUPS, group

#: groups whose morphs annotate.morph_roles proposes (winks by lid shape, the open mouth)
THA1_GROUPS = ("eye_wink", "eye_happy_wink", "mouth_aaa")
FEATURE = {"eyebrow": "eyebrow", "eye": "eye", "iris_morph": "iris", "mouth": "mouth"}
PANEL = {"eyebrow": MorphPanel.EYEBROW, "eye": MorphPanel.EYE, "iris": MorphPanel.EYE,
         "mouth": MorphPanel.MOUTH}
VARIANT = 0.8  # a numbered variant (なごみ2) ranks below its plain name

# Patterns match the stem of a name (annotate.names.stem: NFKC, lower case, without side
# words, separators and a trailing number), whole. (pattern, strength) per group.
_NAMES: dict[str, tuple[tuple[str, float], ...]] = {
    "eyebrow_troubled": ((r"困る|困り|困り眉|困眉|困った|困惑|为难|困扰|troubled?|worried", 1.0),
                         (r"悲しい?|悲しみ|悲し眉|sad|伤心|悲伤|.+困る", 0.7)),
    "eyebrow_angry": ((r"怒り|怒る|怒|怒り眉|怒眉|怒った|angry|anger|生气|愤怒", 1.0),
                      (r".+怒り", 0.7)),
    "eyebrow_lowered": ((r"下|眉下|眉毛下|下げ|眉下げ|眉毛下げ|browdown|eyebrowdown|lowered|"
                         r"眉低|眉毛向下", 1.0), (r"かなり下|眉.*下", 0.7)),
    "eyebrow_raised": ((r"上|眉上|眉毛上|上げ|眉上げ|眉毛上げ|browup|eyebrowup|raised|眉高|"
                        r"眉毛上扬|眉毛向上", 1.0), (r"びっくり眉|驚き眉|眉.*上", 0.6)),
    "eyebrow_happy": ((r"にこり|にこ|にこっ|にこ眉|笑い眉|笑眉|browhappy|eyebrowhappy|"
                       r"happybrows?|开心眉|高兴", 1.0), (r"happy|cheerful", 0.7)),
    "eyebrow_serious": ((r"真面目|まじめ|マジメ|serious|认真|严肃", 1.0),
                        (r"キリッ|キリッ眉|きりっ|凛々しい|凛", 0.8)),
    "eye_surprised": ((r"びっくり|ビックリ|驚き|驚く|surprised?|惊讶|吃惊", 1.0),
                      (r"見開き|目見開き|瞠目", 0.6)),
    "eye_relaxed": ((r"なごみ|和み|ナゴミ|relaxed?|calm|放松", 1.0),),
    "eye_unimpressed": ((r"ジト目|じと目|じとめ|ジトメ|ジト|jito|jitome|unimpressed|死鱼眼", 1.0),
                        (r"半目|半眼", 0.6)),
    "eye_raised_lower_eyelid": ((r"下瞼上げ|下まぶた上げ|下瞼上|下まぶた上|下眼瞼上げ|lowerlidup|"
                                 r"lowereyelidup|lowerlidraised?|raisedlowereyelid|下眼睑上|"
                                 r"下眼皮上", 1.0),),
    "iris_small": ((r"瞳小|瞳孔小|瞳小さく|ひとみ小|瞳孔縮小|瞳縮小|小瞳|瞳孔缩小|瞳缩小|smalliris|"
                    r"smallpupils?|irissmall|pupilsmall|smalleyes", 1.0),),
    "mouth_iii": ((r"い|イ|i|咿|衣", 1.0),),
    "mouth_uuu": ((r"う|ウ|u|呜|乌", 1.0),),
    "mouth_eee": ((r"え|エ|e|诶|欸", 1.0),),
    "mouth_ooo": ((r"お|オ|o|哦|噢|喔", 1.0),),
    "mouth_delta": ((r"[δ△▲∆]|デルタ|delta|口δ|口△|口▲", 1.0), (r"∧|\^", 0.6)),
    "mouth_smirk": ((r"はんっ!?|はん!|ハンッ!?|smirk|坏笑", 1.0), (r"にやり|ニヤリ|にやっ", 0.7)),
    "mouth_raised_corner": ((r"口角上げ|口角上|口角あげ|mouthcornerup|cornerup|"
                             r"mouthcornersup|raisedcorners?|口角上扬|嘴角上扬|嘴角上", 1.0),),
    "mouth_lowered_corner": ((r"口角下げ|口角下|口角さげ|mouthcornerdown|cornerdown|"
                              r"mouthcornersdown|loweredcorners?|嘴角下垂|嘴角向下|嘴角下", 1.0),
                             (r"への字|へ字|への字口", 0.6)),
}
_PATTERNS = {name: tuple((re.compile(p), s) for p, s in entries)
             for name, entries in _NAMES.items()}
assert set(_PATTERNS) == {g.name for g in MORPH_GROUPS} - set(THA1_GROUPS)


@dataclass(frozen=True)
class Nominee:
    footprint: Footprint
    group: str
    side: str | None  # None: both sides (or a group of arity 1)
    strength: float

    @property
    def score(self) -> float:
        panel_fits = self.footprint.panel == PANEL[self.footprint.feature]
        return self.strength + (0.05 if panel_fits else 0.0)


def name_strength(group_name: str, name: str) -> float:
    """How strongly ``name`` nominates its morph for ``group_name`` (0: not at all)."""
    text, numbered = stem(name)
    best = 0.0
    for pattern, strength in _PATTERNS.get(group_name, ()):
        if pattern.fullmatch(text):
            best = max(best, strength)
    return best * (VARIANT if numbered else 1.0)


def nominees(footprints: dict[int, Footprint]) -> tuple[list[Nominee], list[Footprint]]:
    """The nominees whose geometry fits, and the named morphs whose geometry did not."""
    fitting, misfits = [], []
    for footprint in footprints.values():
        for g in MORPH_GROUPS:
            if g.name in THA1_GROUPS:
                continue
            strength = name_strength(g.name, footprint.name)
            if not strength:
                continue
            if footprint.feature != FEATURE[g.category]:
                misfits.append(footprint)
                continue
            side = None
            if g.arity == 2 and footprint.side:
                side = "left" if footprint.side > 0 else "right"
            fitting.append(Nominee(footprint, g.name, side, strength))
    return fitting, misfits


def propose_wide_roles(footprints: dict[int, Footprint], taken: set[str]
                       ) -> tuple[dict[tuple[str, str | None], Role], set[str], dict]:
    """Roles for the morph groups other than THA1's, and the groups splittable by halves.

    ``taken``: morph names THA1's roles already hold (a wink is no other role).
    Returns (``{(group, side): Role}`` for every slot, side None = both),
    the set of groups whose both-sides morph can serve one side by halves, and
    ``{group: confidence}`` for those halves decisions.
    """
    fitting, misfits = nominees(footprints)
    slots = {(g.name, side): [] for g in MORPH_GROUPS if g.name not in THA1_GROUPS
             for side in g.slots}
    for nominee in fitting:
        if nominee.footprint.name not in taken:
            slots[(nominee.group, nominee.side)].append(nominee)
    order = sorted(((max(n.score for n in pool), key) for key, pool in slots.items() if pool),
                   key=lambda item: -item[0])
    used: set[int] = set()
    roles: dict[tuple[str, str | None], Role] = {}
    chosen: dict[tuple[str, str | None], Nominee] = {}
    for _, key in order:
        pool = [n for n in slots[key] if n.footprint.index not in used]
        if not pool:
            continue
        pool.sort(key=lambda n: (-n.score, -n.footprint.mass))
        best = pool[0]
        used.add(best.footprint.index)
        chosen[key] = best
        roles[key] = Role(best.footprint.name, _confidence(best, pool))
    misfit_groups = {g for f in misfits for g in _named_groups(f.name)}
    for key in slots:
        if key not in roles:
            doubtful = key[0] in misfit_groups
            roles[key] = Role(None, 0.6 if doubtful else 0.85)
    halves, halves_confidence = set(), {}
    for (name, side), nominee in chosen.items():
        if side is None and group(name).arity == 2:
            footprint = nominee.footprint
            if footprint.splittable:
                halves.add(name)
            margin = abs(footprint.midline - MIDLINE) / MIDLINE
            halves_confidence[name] = round(float(min(0.95, 0.6 + 0.35 * min(margin, 1.0))), 3)
    return roles, halves, halves_confidence


def _named_groups(name: str) -> list[str]:
    return [g for g in _PATTERNS if name_strength(g, name)]


def _confidence(best: Nominee, pool: list[Nominee]) -> float:
    footprint = best.footprint
    confidence = (0.55 + 0.4 * best.strength) * footprint.side_clarity
    if len(pool) > 1 and pool[1].score >= best.score:
        confidence *= 0.8  # two equally named candidates: a guess between them
    elif len(pool) > 1:
        confidence *= 0.95
    return round(float(min(confidence, 0.99)), 3)
