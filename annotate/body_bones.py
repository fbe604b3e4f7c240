"""The upper-body bones THA3's body_y, body_z and breathing move.

By name, checked against the skeleton: the upper body (上半身) must carry the
neck (首) below it, the chest (上半身2, where a model has one) must lie
between them, and each shoulder (肩) must hang below the upper body (through a
collarbone, say) but not below the neck; a
shoulder's side is where the bone is (the character's left is +x), not what
its name says. Without a named upper body, the neck's parent stands in, with
a low confidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from annotate.names import stem
from mmdrender.camera import head_centre_x
from mmdrender.model import Model
from mmdrender.pose import NECK_BONE

BODY_STEMS = frozenset({"上半身", "upperbody", "上身", "spine"})
CHEST_STEMS = frozenset({"chest", "upperchest"})  # besides a numbered upper body (上半身2)
SHOULDER_STEMS = frozenset({"肩", "shoulder"})


@dataclass(frozen=True)
class BodyBones:
    """Bone names (None where absent) and a confidence per field, keyed like the index."""

    values: dict
    confidence: dict


def _ancestors(model: Model, bone: int) -> list[int]:
    chain, seen = [], set()
    parent = model.bones[bone].parent
    while 0 <= parent < len(model.bones) and parent not in seen:
        chain.append(parent)
        seen.add(parent)
        parent = model.bones[parent].parent
    return chain


def propose_body_bones(model: Model) -> BodyBones:
    neck = model.bone_index(NECK_BONE)
    centre_x = head_centre_x(model)
    above_neck = _ancestors(model, neck) if neck is not None else []
    values = dict.fromkeys(("body_bone", "chest_bone", "shoulder_left", "shoulder_right"))
    confidence = dict.fromkeys(values, 0.8)

    named_body = [b for b in above_neck if _is_body(model.bones[b].name)]
    body = named_body[-1] if named_body else None  # the one nearest the root
    if body is not None:
        values["body_bone"], confidence["body_bone"] = model.bones[body].name, 0.95
    elif above_neck:
        body = above_neck[0]  # the neck's parent
        values["body_bone"], confidence["body_bone"] = model.bones[body].name, 0.5
    else:
        confidence["body_bone"] = 0.6  # no neck to hang a body from: nothing to propose

    if body is not None:
        between = above_neck[:above_neck.index(body)]
        chests = [b for b in between if _is_chest(model.bones[b].name)]
        if chests:
            values["chest_bone"], confidence["chest_bone"] = model.bones[chests[-1]].name, 0.9
        for b, bone in enumerate(model.bones):
            above = _ancestors(model, b)
            if stem(bone.name)[0] not in SHOULDER_STEMS or body not in above or neck in above:
                continue  # a shoulder hangs from the upper body (maybe via a collarbone)
            side = "left" if float(bone.position[0]) > centre_x else "right"
            key = f"shoulder_{side}"
            if values[key] is None:
                values[key], confidence[key] = bone.name, 0.95
            else:
                confidence[key] = 0.6  # two shoulders on one side: a guess
    return BodyBones(values, {k: round(float(np.clip(v, 0, 1)), 3) for k, v in confidence.items()})


def _is_body(name: str) -> bool:
    text, numbered = stem(name)
    return not numbered and text in BODY_STEMS


def _is_chest(name: str) -> bool:
    text, numbered = stem(name)
    return (numbered and text in BODY_STEMS) or text in CHEST_STEMS
