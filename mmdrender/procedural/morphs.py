"""The sample characters' morphs, as pymeshio PMX records.

A character's face morphs come from shape keys its parts carry (see
:mod:`mmdrender.procedural.face`): one-side keys end in ``_L`` / ``_R`` (the
character's own left and right), and a both-sides morph sums the two. Which
roles a character has, and their names, are in its spec; each role becomes a
vertex morph, or, where the spec says, a GROUP morph of its one-side morphs, a
BONE morph of the brow bones, or a MATERIAL morph that swaps in a small iris.
So the samples carry every kind of morph a real model uses for a face.
"""

from __future__ import annotations

import numpy as np
from pymeshio import common, pmx

from mmdrender.schemas import GROUPS, group

#: shape keys of each THA1 wink role; L/R are the character's own left/right
ROLE_SHAPES = {
    "wink_L": ("close_L",), "wink_R": ("close_R",),
    "happy_L": ("happy_L",), "happy_R": ("happy_R",),
    "blink": ("close_L", "close_R"), "happy": ("happy_L", "happy_R"),
}
GROUP_PARTS = {"blink": ("wink_L", "wink_R"), "happy": ("happy_L", "happy_R")}
#: morph group -> the shape key stem that realises it (one side: ``<stem>_L``/``_R``)
GROUP_SHAPES = {
    "eyebrow_troubled": "brow_sad", "eyebrow_angry": "brow_angry",
    "eyebrow_lowered": "brow_down", "eyebrow_raised": "brow_up",
    "eyebrow_happy": "brow_happy", "eyebrow_serious": "brow_serious",
    "eye_surprised": "surprised", "eye_relaxed": "relaxed", "eye_unimpressed": "unimpressed",
    "eye_raised_lower_eyelid": "lower_up", "iris_small": "iris_small",
    "mouth_lowered_corner": "corner_down", "mouth_raised_corner": "corner_up",
    "mouth_iii": "mouth_i", "mouth_uuu": "mouth_u", "mouth_eee": "mouth_e",
    "mouth_ooo": "mouth_o", "mouth_delta": "mouth_delta", "mouth_smirk": "mouth_smirk",
}
GROUP_ORDER = {g.name: i for i, g in enumerate(GROUPS)}
PANELS = {"eyebrow": 1, "eye": 2, "iris_morph": 2, "mouth": 3}
KEYS = {"left": "L", "right": "R"}
BROW_BONES = {"left": "左眉", "right": "右眉"}
#: how far a brow bone moves for eyebrow_raised / eyebrow_lowered (model units)
BROW_MOVES = {"eyebrow_raised": 0.13, "eyebrow_lowered": -0.1}
ENGLISH = {
    "まばたき": "Blink", "笑い": "Smile", "あ": "a", "星目": "Star eyes", "照れ": "Blush",
    "涙": "Tears", "ハイライト消": "Highlight off", "発光": "Glow",
}


def f32(array) -> list:
    """Round to float32 first, so written values are exactly what was built."""
    return np.asarray(array, dtype=np.float32).astype(np.float64).tolist()


def v3(v) -> common.Vector3:
    return common.Vector3(float(v[0]), float(v[1]), float(v[2]))


def rgba(values) -> common.RGBA:
    return common.RGBA(*(float(x) for x in values))


def rgb(values) -> common.RGB:
    return common.RGB(*(float(x) for x in values))


def english_of(name: str) -> str:
    """A literal English rendering of a morph name (as ambiguous as the original)."""
    if name in ENGLISH:
        return ENGLISH[name]
    for japanese, word in (("ウィンク", " Wink "), ("ウインク", " Wink "), ("ｳｨﾝｸ", " Wink "),
                           ("笑", " smile "), ("右", " right "), ("左", " left "), ("２", " 2 ")):
        name = name.replace(japanese, word)
    return " ".join(name.split())


def material_entry(material_index: int, additive: bool, diffuse) -> pmx.MaterialMorphData:
    """One material-morph entry changing only the diffuse colour (and alpha)."""
    fill = 0.0 if additive else 1.0
    return pmx.MaterialMorphData(
        material_index, 1 if additive else 0, rgba(diffuse), rgb((fill,) * 3), fill,
        rgb((fill,) * 3), rgba((fill,) * 4), fill, rgba((fill,) * 4), rgba((fill,) * 4),
        rgba((fill,) * 4))


def material_morph(name: str, entries: list[pmx.MaterialMorphData], panel: int = 4
                   ) -> pmx.Morph:
    return pmx.Morph(name, english_of(name), panel, 8, entries)


def vertex_morph(name: str, panel: int, offsets: np.ndarray) -> pmx.Morph:
    moved = np.flatnonzero(np.abs(offsets).max(axis=1) > 1e-6)
    values = f32(offsets[moved])
    data = [pmx.VertexMorphOffset(int(i), common.Vector3(*v))
            for i, v in zip(moved.tolist(), values, strict=True)]
    return pmx.Morph(name, english_of(name), panel, 1, data)


def uv_morph(name: str, panel: int, morph_type: int, offsets: np.ndarray) -> pmx.Morph:
    moved = np.flatnonzero(np.abs(offsets).max(axis=1) > 1e-6)
    values = f32(offsets[moved])
    data = [pmx.UVMorphData(int(i), common.Vector4(*v))
            for i, v in zip(moved.tolist(), values, strict=True)]
    return pmx.Morph(name, english_of(name), panel, morph_type, data)


def bone_morph(name: str, panel: int, entries) -> pmx.Morph:
    """``entries``: (bone index, translation, xyzw rotation) per bone."""
    data = [pmx.BoneMorphData(bone, v3(move), common.Quaternion(*rotation))
            for bone, move, rotation in entries]
    return pmx.Morph(name, english_of(name), panel, 2, data)


def group_morph(name: str, panel: int, members: list[int]) -> pmx.Morph:
    return pmx.Morph(name, english_of(name), panel, 0,
                     [pmx.GroupMorphData(member, 1.0) for member in members])


def face_role_morphs(spec, shapes: dict, bone_index: dict, material_index: dict,
                     first: int) -> list[pmx.Morph]:
    """The morphs of ``spec.faces`` (the THA2/THA3 groups other than winks and あ).

    ``first``: the index the first of them will have (group morphs point at
    their one-side members by index). One-side morphs come before the
    both-sides morph of each group.
    """
    morphs: list[pmx.Morph] = []
    position: dict = {}

    def shape(stem: str, side: str | None) -> np.ndarray:
        if side is not None:
            return shapes[f"{stem}_{KEYS[side]}"]
        return sum((shapes[f"{stem}_{k}"] for k in KEYS.values()) if f"{stem}_L" in shapes
                   else (shapes[stem],))

    ordered = sorted(spec.faces, key=lambda key: (GROUP_ORDER[key[0]], key[1] is None,
                                                  key[1] or ""))
    for key in ordered:
        name = spec.faces[key]
        group_name, side = key
        g = group(group_name)
        panel = PANELS[g.category]
        position[key] = first + len(morphs)
        if key in spec.face_groups:
            members = [position[(group_name, s)] for s in ("left", "right")]
            morphs.append(group_morph(name, panel, members))
        elif group_name in BROW_MOVES and spec.brow_bones:
            sides = (side,) if side else ("left", "right")
            move = (0.0, BROW_MOVES[group_name], 0.0)
            morphs.append(bone_morph(name, panel, [(bone_index[BROW_BONES[s]], move,
                                                    (0.0, 0.0, 0.0, 1.0)) for s in sides]))
        elif group_name == "iris_small" and side is None and spec.iris_swap:
            morphs.append(material_morph(name, [
                material_entry(material_index["iris"], False, (1, 1, 1, 0)),
                material_entry(material_index["iris small"], True, (0, 0, 0, 1))], panel))
        else:
            morphs.append(vertex_morph(name, panel, shape(GROUP_SHAPES[group_name], side)))
    return morphs
