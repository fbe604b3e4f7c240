"""Procedural sample characters, written as real PMX 2.0 files.

The project may not redistribute the community models it is tested against, so
it ships its own: five stylised anime characters built from numpy geometry
(:mod:`mmdrender.procedural.mesh`, ``face``, ``hair``, ``body``) with painted textures
(:mod:`mmdrender.procedural.textures`), assembled by
:mod:`mmdrender.procedural.characters` and written with
:mod:`mmdrender.formats.pmx_writer`. Between them they carry what real models
throw at a loader: every deform type (BDEF1/2/4, SDEF); group, vertex, bone,
UV, additional-UV and material morphs; shared, named and model-local toons;
sphere maps; alpha overlays; and wink morphs whose names disagree about which
eye they close (only the geometry tells).

Frame: MMD's file frame (left-handed, y up, the character faces -z, its own
left is +x); 1 unit is about 8 cm and a character about 20 units tall.

    >>> paths = write_samples(Path("out/samples"))  # doctest: +SKIP
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from pathlib import Path

from mmdrender.procedural.characters import (
    CharacterSpec,
    Palette,
    build,
    hair_top,
    write_character,
)
from mmdrender.procedural.face import EyeShape, HeadShape
from mmdrender.procedural.iris_truth import iris_angles
from mmdrender.schemas import MORPH_GROUPS, group


def _both(**names: str) -> dict:
    """Both-sides morph names by group: ``_both(eyebrow_angry="怒り")``."""
    return {(group, None): name for group, name in names.items()}


def _sided(**pairs: tuple[str, str]) -> dict:
    """One-side morph names by group: (the character's left one, its right one)."""
    return {(group, side): name for group, (left, right) in pairs.items()
            for side, name in (("left", left), ("right", right))}


# The THA2/THA3 morph groups of each character. Together they carry every one of the
# 37 morph parameters: akane has only both-sides morphs, midori only one-side ones
# (named by the viewer's side, as her winks), hinata mixes both with half-width kana,
# numbered variants, GROUP and BONE morphs, kai has English names and a MATERIAL
# morph, yuki Chinese names.
AKANE_FACES = _both(
    eyebrow_troubled="困る", eyebrow_angry="怒り", eyebrow_lowered="下", eyebrow_raised="上",
    eyebrow_happy="にこり", eyebrow_serious="真面目", eye_surprised="びっくり",
    eye_relaxed="なごみ", eye_unimpressed="ジト目", eye_raised_lower_eyelid="下瞼上げ",
    iris_small="瞳小", mouth_iii="い", mouth_uuu="う", mouth_eee="え", mouth_ooo="お",
    mouth_delta="▲", mouth_smirk="はんっ！", mouth_lowered_corner="口角下げ",
    mouth_raised_corner="口角上げ")
MIDORI_FACES = {
    **_sided(eyebrow_troubled=("困り眉右", "困り眉左"), eyebrow_angry=("怒り右", "怒り左"),
             eyebrow_lowered=("眉下右", "眉下左"), eyebrow_raised=("眉上右", "眉上左"),
             eyebrow_happy=("にこり右", "にこり左"), eyebrow_serious=("真面目右", "真面目左"),
             eye_surprised=("びっくり右", "びっくり左"), eye_relaxed=("なごみ右", "なごみ左"),
             eye_unimpressed=("じと目右", "じと目左"),
             eye_raised_lower_eyelid=("下まぶた上げ右", "下まぶた上げ左"),
             iris_small=("瞳小右", "瞳小左"), mouth_lowered_corner=("口角下げ右", "口角下げ左"),
             mouth_raised_corner=("口角上げ右", "口角上げ左")),
    **_both(mouth_iii="い", mouth_uuu="う", mouth_ooo="お", mouth_delta="Δ",
            mouth_smirk="にやり")}
HINATA_FACES = {
    **_both(eyebrow_raised="眉上", eyebrow_lowered="眉下", eyebrow_troubled="困る",
            eyebrow_angry="怒り", eyebrow_serious="ｷﾘｯ", eye_surprised="ﾋﾞｯｸﾘ",
            eye_relaxed="なごみ２", eye_unimpressed="ｼﾞﾄ目", iris_small="瞳小",
            mouth_iii="ｲ", mouth_uuu="ｳ", mouth_eee="ｴ", mouth_ooo="ｵ", mouth_delta="△",
            mouth_raised_corner="口角上げ"),
    **_sided(eyebrow_raised=("眉上L", "眉上R"), eyebrow_troubled=("困る左", "困る右"),
             iris_small=("瞳小L", "瞳小R"), mouth_raised_corner=("口角上げ左", "口角上げ右"))}
KAI_FACES = {
    **_both(eyebrow_troubled="troubled", eyebrow_angry="angry", eyebrow_lowered="brow down",
            eyebrow_raised="brow up", eyebrow_happy="happy brows", eyebrow_serious="serious",
            eye_surprised="surprised", eye_relaxed="relaxed", eye_unimpressed="unimpressed",
            eye_raised_lower_eyelid="lower lid up", iris_small="small pupils", mouth_iii="i",
            mouth_uuu="u", mouth_eee="e", mouth_ooo="o", mouth_delta="delta",
            mouth_smirk="smirk", mouth_lowered_corner="mouth corner down"),
    **_sided(mouth_raised_corner=("mouth corner up.L", "mouth corner up.R"))}
YUKI_FACES = _both(
    eyebrow_troubled="困扰", eyebrow_angry="生气", eyebrow_lowered="眉毛下",
    eyebrow_raised="眉毛上", eyebrow_happy="开心眉", eyebrow_serious="认真",
    eye_surprised="惊讶", eye_relaxed="放松", eye_unimpressed="死鱼眼",
    eye_raised_lower_eyelid="下眼睑上", iris_small="瞳孔缩小", mouth_iii="咿", mouth_uuu="呜",
    mouth_eee="诶", mouth_ooo="哦", mouth_delta="∆", mouth_smirk="坏笑",
    mouth_lowered_corner="嘴角下垂", mouth_raised_corner="嘴角上扬")

SPECS: dict[str, CharacterSpec] = {
    spec.name: spec
    for spec in (
        # Twin tails. ウィンク closes her own LEFT eye; まばたき is a group morph.
        CharacterSpec(
            "akane", "茜（サンプル）", "Akane (sample)", "twintails",
            Palette(hair="#c8283c", hair_dark="#6e0f22", hair_light="#ff9a9a",
                    iris="#e0a030", iris_dark="#6a3208", star="#ffffff",
                    trim="#1f2f5c", skirt="#1f2f5c", belt="#1f2f5c", accent="#ff5f7a"),
            {"wink_L": "ウィンク", "wink_R": "ウィンク右", "happy_L": "ウィンク２",
             "happy_R": "ウィンク２右", "blink": "まばたき", "happy": "笑い"},
            groups=("blink",), eye=EyeShape(h=0.38), star_eyes=True, faces=AKANE_FACES,
        ),
        # Bob. As in many real models, "右" means the viewer's right here, so
        # ウィンク closes her own RIGHT eye and ウィンク右 her left.
        CharacterSpec(
            "midori", "翠（サンプル）", "Midori (sample)", "bob",
            Palette(hair="#2f8f7a", hair_dark="#114036", hair_light="#a8ecd8",
                    iris="#3fb86a", iris_dark="#0f4a2a", star="#ffe0f0",
                    clothes="#fff8ee", trim="#8a2c3c", skirt="#6b5a4a", belt="#8a2c3c",
                    accent="#ffcc33", skin="#ffeadf"),
            {"wink_R": "ウィンク", "wink_L": "ウィンク右", "happy_R": "ｳｨﾝｸ２",
             "happy_L": "ｳｨﾝｸ２右", "blink": "まばたき", "happy": "笑い"},
            head=HeadShape(half_width=1.58, widest=0.44), eye=EyeShape(w=0.29, h=0.35),
            star_eyes=True, highlight_off=True, sphere="hair.sph", faces=MIDORI_FACES,
        ),
        # Side ponytail. Half-width ｳｨﾝｸ; 笑い is a group of the one-eye smiles.
        CharacterSpec(
            "hinata", "陽向（サンプル）", "Hinata (sample)", "side_ponytail",
            Palette(hair="#f0a040", hair_dark="#9a5010", hair_light="#ffe6b0",
                    iris="#b0602a", iris_dark="#4a1a08", clothes="#ffffff",
                    trim="#3a7fd0", skirt="#3a7fd0", belt="#3a7fd0", accent="#ff4f6f"),
            {"wink_L": "ｳｨﾝｸ", "wink_R": "右ウィンク", "happy_L": "ウィンク笑",
             "happy_R": "右ウィンク笑", "blink": "まばたき", "happy": "笑い"},
            groups=("happy",), eye=EyeShape(h=0.37, iris=0.78), star_eyes=True,
            sphere="hair.spa", faces=HINATA_FACES,
            face_groups=(("eyebrow_troubled", None), ("iris_small", None),
                         ("mouth_raised_corner", None)),
            brow_bones=True,
        ),
        # Spiky-haired boy: no one-eye smile winks, tears, a toon named by file.
        CharacterSpec(
            "kai", "海（サンプル）", "Kai (sample)", "spiky",
            Palette(hair="#28324a", hair_dark="#10141f", hair_light="#8a9cc8",
                    iris="#d9b23a", iris_dark="#5a3e0a", clothes="#e9eef5",
                    trim="#e9eef5", line="#2b3242", skirt="#2b3242", legwear="#2b3242",
                    belt="#2b3242", accent="#c0303a", shoes="#222222", skin="#fbe0cc"),
            {"wink_L": "ウィンクL", "wink_R": "ウィンクR", "blink": "まばたき", "happy": "笑い"},
            head=HeadShape(half_width=1.6, chin_back=0.78, squareness=2.4, jaw_round=0.85),
            eye=EyeShape(x=0.62, w=0.30, h=0.30, iris=0.74), mouth_width=0.16, collar=False,
            skirt_length=4.0, skirt_flare=0.12, tears=True, named_toon=True,
            faces=KAI_FACES, iris_swap=True,
        ),
        # Long hair and cat ears; two additional UV channels and an additional-UV morph.
        CharacterSpec(
            "yuki", "雪（サンプル）", "Yuki (sample)", "long_cat",
            Palette(hair="#e8ecf6", hair_dark="#8e97b8", hair_light="#ffffff",
                    iris="#7a5ce0", iris_dark="#2a1a66", clothes="#2b2b3a",
                    trim="#5a4a9a", line="#e8e8ff", skirt="#2b2b3a", belt="#5a4a9a",
                    legwear="#1a1a22", accent="#ff8fb8", skin="#fff0e8"),
            {"wink_L": "ウインク左", "wink_R": "ウインク右", "happy_L": "ウインク２左",
             "happy_R": "ウインク２右", "blink": "まばたき", "happy": "笑い"},
            groups=("blink",), eye=EyeShape(w=0.31, h=0.38), extra_uvs=2, own_toon=True,
            faces=YUKI_FACES,
        ),
    )
}

SAMPLE_NAMES: tuple[str, ...] = tuple(SPECS)

#: A model like today's downloads (issue 14): akane with 160 long hair cards and 200 frills
#: on the skirt, alpha-tested and double-sided, in 16 more materials: over 45k vertices,
#: 70k triangles and 30 materials, most of them outside a head framing.
#: Not among SAMPLE_NAMES (the index of the samples); written by write_heavy_sample.
HEAVY_SAMPLE = "kasane"
SPECS[HEAVY_SAMPLE] = replace(SPECS["akane"], name=HEAVY_SAMPLE, model_name="重ね（サンプル）",
                              english_name="Kasane (heavy sample)", hair_cards=160,
                              frills=200)


@dataclass(frozen=True)
class SampleTruth:
    """Ground truth a test or the annotator can check a sample against.

    head_top_y, head_bottom_y: model units, y up (the file's y, which the
    project's frame keeps). Wink names: left/right are the character's own;
    None where the model has no such morph. ``faces``: (group, side) -> morph
    name or None for every slot of the THA2/THA3 morph groups other than the
    winks and the open mouth (side None: both sides). ``halves``: the groups
    whose both-sides morph can serve one side (every one but a material
    swap). ``eye_bones``: "left"/"right" -> bone; ``iris``: "left"/"right" ->
    the strip rule's angles by end (x_pos, x_neg, y_pos, y_neg; degrees), from
    the geometry (:mod:`mmdrender.procedural.iris_truth`); ``body_bones``:
    body_bone, chest_bone, shoulder_left, shoulder_right -> bone.
    """

    name: str
    head_top_y: float
    head_bottom_y: float
    wink_left: str | None
    wink_right: str | None
    wink_both: str | None
    smile_wink_left: str | None
    smile_wink_right: str | None
    smile_wink_both: str | None
    mouth_open: str
    faces: dict = field(default_factory=dict)
    halves: frozenset = frozenset()
    eye_bones: dict = field(default_factory=dict)
    iris: dict = field(default_factory=dict)
    body_bones: dict = field(default_factory=dict)


def sample_spec(name: str) -> CharacterSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise ValueError(f"no sample character {name!r}; choose from {SAMPLE_NAMES}") from None


@functools.cache
def sample_truth(name: str) -> SampleTruth:
    """Head bounds (top of the hair on the skull, tip of the chin), morphs, bones, iris angles."""
    spec = sample_spec(name)
    character = build(spec)
    return SampleTruth(
        name=name,
        head_top_y=round(hair_top(spec), 4),
        head_bottom_y=round(spec.head.chin_y, 4),
        wink_left=spec.winks.get("wink_L"),
        wink_right=spec.winks.get("wink_R"),
        wink_both=spec.winks.get("blink"),
        smile_wink_left=spec.winks.get("happy_L"),
        smile_wink_right=spec.winks.get("happy_R"),
        smile_wink_both=spec.winks.get("happy"),
        mouth_open="あ",
        faces={key: spec.faces.get(key) for key in FACE_SLOTS},
        halves=_halves(spec),
        eye_bones={"left": "左目", "right": "右目"},
        iris=iris_angles(character.parts, character.bones),
        body_bones={"body_bone": "上半身", "chest_bone": "上半身2", "shoulder_left": "左肩",
                    "shoulder_right": "右肩"},
    )


#: the slots of ``SampleTruth.faces``: (group, side) for every morph group but THA1's
FACE_SLOTS = tuple((g.name, side) for g in MORPH_GROUPS
                   if g.name not in ("eye_wink", "eye_happy_wink", "mouth_aaa")
                   for side in g.slots)


def _halves(spec: CharacterSpec) -> frozenset:
    """Every arity-2 group with a both-sides morph, but a material swap (it cannot be cut)."""
    both = {name for name, side in spec.faces if side is None and group(name).arity == 2}
    both |= {g for g, role in (("eye_wink", "blink"), ("eye_happy_wink", "happy"))
             if role in spec.winks}
    if spec.iris_swap:
        both.discard("iris_small")
    return frozenset(both)


def write_sample(name: str, out_dir: Path) -> Path:
    """Write sample ``name`` to ``out_dir/<name>/<name>.pmx`` beside its textures.

    Returns the .pmx path. The same name always gives the same bytes.
    """
    return write_character(sample_spec(name), Path(out_dir) / name)


def write_heavy_sample(out_dir: Path) -> Path:
    """Write :data:`HEAVY_SAMPLE` under ``out_dir``; its truth is akane's, by name."""
    return write_sample(HEAVY_SAMPLE, out_dir)


def write_samples(out_dir: Path, names=SAMPLE_NAMES) -> list[Path]:
    """Write every sample in ``names`` under ``out_dir``; return the .pmx paths."""
    return [write_sample(name, out_dir) for name in names]
