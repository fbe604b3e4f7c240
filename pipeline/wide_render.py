"""One model's examples for the THA2 (42) and THA3/THA4 (45) datasets.

What each image shows is :mod:`pipeline.image_sets`; how each parameter is
posed, :mod:`mmdrender.schema_pose`; how poses are sampled,
:mod:`pipeline.feature_poses`. Per model: its :class:`~mmdrender.rig.Rig` from
the index row, each parameter's realisation (own, halves, shared or absent),
the sampled poses fitted to what it can show, and, per example, whether its
rest input has the mouth open.

THA2's eyebrows: the eyebrow vertices are those any of the model's eyebrow
morphs moves; the faces made only of them are "the eyebrows", drawn alone for
(b) and (c) and composited over the rest of the character, in front of the
hair, for (d) to (g) (THA2's "eyebrows on top of hair" mode). Each model's
details say which of THA2's eyebrow modes work: ``normal`` (the eyebrows show
in a plain render: hair hides at most a fifth of them), ``on_top``, ``black``
and ``silhouette`` (the eyebrows are a mesh of their own, small against the
head, so drawing them alone shows eyebrows).

THA3: the upper body (the head top and chin on rows 64 and 192 of 512, centred
on the head), arms lowered; the rest input, the face morphed (the 39 face
values), everything posed; and per model a mask of the eyes and the mouth:
every pixel any eye, iris or mouth parameter at its extremes changes, grown by
two pixels.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mmdrender.camera import Camera, head_centre_x
from mmdrender.loader import load_model
from mmdrender.pose import HEAD_BONE
from mmdrender.reach import reachable_faces
from mmdrender.render import get_renderer
from mmdrender.rig import Rig
from mmdrender.schema_pose import SchemaPoser
from mmdrender.schemas import FACE_CATEGORIES, SCHEMAS, Parameter
from pipeline.errors import PipelineError
from pipeline.feature_poses import fit_to_model, rest_mouth
from pipeline.index import ModelEntry, file_sha256
from pipeline.motion_source import example_poses
from pipeline.poses import example_rng
from pipeline.roles import rig_of

FACE = set(FACE_CATEGORIES)  # THA3's 39 face values
IRISES_MOUTH = {"iris_morph", "iris_rotation", "mouth"}  # THA2's (e) adds these to (d)
EYEBROW_SHARE_VISIBLE = 0.8  # "normal" mode: at least this share of the brows shows
EYEBROW_HEIGHT = 0.4  # "on_top" mode: the brows span at most this share of the head's height
MASK_GROW = 2  # pixels the eyes-and-mouth mask grows by
CHANGED = 8  # a pixel changes when a channel moves by more than this (0-255)


def wide_settings(config) -> dict:
    """What a wide run adds to the renderer settings stored in every shard."""
    schema = SCHEMAS[config.schema.name]
    settings = {"schema_images": config.schema.name,
                "rest_mouth": "mouth_aaa = 1 in 75% of rest inputs (rest_mouth per example)"}
    if schema.framing == "upper_body":
        settings["framing"] = ("upper body: head top/bottom -> rows size/8 and 3*size/8, "
                               "centred on the head (THA3: rows 64-192 of 512)")
        settings["body"] = config.body.to_dict()
    else:
        settings["eyebrows"] = "drawn alone and composited over the rest, in front of hair"
    return settings


def camera_for(schema_name: str, entry: ModelEntry, centre_x: float, size: int) -> Camera:
    """THA2: the head framing of THA1. THA3: the head in the middle of the top half."""
    return Camera.framing(SCHEMAS[schema_name].framing, entry.head_top_y, entry.head_bottom_y,
                          centre_x, size)


def over(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """Straight-alpha RGBA uint8 ``top`` composited over ``bottom`` (exact 0 background)."""
    a_top = top[..., 3:].astype(np.float64) / 255.0
    a_bottom = bottom[..., 3:].astype(np.float64) / 255.0
    alpha = a_top + a_bottom * (1.0 - a_top)
    colour = top[..., :3] * a_top + bottom[..., :3] * a_bottom * (1.0 - a_top)
    colour = np.divide(colour, alpha, out=np.zeros_like(colour), where=alpha > 0)
    out = np.concatenate([colour, alpha * 255.0], axis=-1)
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    out[out[..., 3] == 0] = 0
    return out


def eyebrow_faces(model, poser: SchemaPoser) -> np.ndarray:
    """(F,) bool: the faces made only of vertices an eyebrow parameter moves."""
    moved = np.zeros(len(model.vertices), dtype=bool)
    rest = poser.pose({}).positions  # with the posture every image of the model has
    for p in poser.schema.parameters:
        if p.category == "eyebrow" and poser.realisations[p.name] != "absent":
            posed = poser.pose({p.name: 1.0}, categories={"eyebrow"}).positions
            moved |= np.abs(posed - rest).max(axis=1) > 1e-6
    return moved[model.faces].all(axis=1)


def render_wide_model(entry: ModelEntry, config, examples: int, path: Path, writer) -> list:
    """Draw one model's images and examples into ``writer`` (see the module doc).

    Returns the stats of the texture files the model names and what it was drawn
    without (:func:`pipeline.generate.texture_report`), for the shard's record;
    raises a PipelineError saying why the model cannot be used.
    """
    from pipeline.generate import texture_report  # the run's helper (no import cycle)

    if entry.head_top_y is None or entry.head_bottom_y is None:
        raise PipelineError("no head bounds in the index; annotate the model first")
    model = load_model(path, root=config.models_root)
    head = model.bone_index(HEAD_BONE)
    if head is None:
        raise PipelineError("the model has no 頭 (head) bone to rotate")
    schema = SCHEMAS[config.schema.name]
    rig = rig_of(entry)
    upper_body = schema.framing == "upper_body"  # arms hang only where the body shows
    poser = SchemaPoser(model, schema, rig, config.body, lower_arms=upper_body)
    realisations = tuple(poser.realisations[name] for name in schema.names)
    if all(how == "absent" for p, how in zip(schema.parameters, realisations, strict=True)
           if p.is_morph):
        raise PipelineError("no morph of any group in the index (annotate it with "
                            f"`annotate scan --schema {schema.name}`)")
    if schema.name == "tha2" and all(how == "absent" for p, how in zip(
            schema.parameters, realisations, strict=True) if p.category == "eyebrow"):
        raise PipelineError("no eyebrow morph in the index: THA2's eyebrow images need one "
                            "(annotate it with `annotate scan --schema tha2`)")
    camera = camera_for(schema.name, entry, head_centre_x(model), config.size)
    poses = fit_to_model(schema, example_poses(config, entry, model, examples), realisations)
    mouths = [rest_mouth(example_rng(config.seed, entry.model_id, e, purpose="rest"))
              for e in range(examples)]
    lights = config.model_lights(entry.model_id)
    renderer = get_renderer(config.size, config.shading, config.samples, config.supersample)
    draw = _Drawing(renderer, model, camera, lights,
                    reachable_faces(model, camera, poser.turn_bounds()))
    try:
        if schema.name == "tha2":
            _tha2(entry, schema, poser, poses, mouths, realisations, draw, writer, path)
        else:
            _tha3(entry, schema, poser, poses, mouths, realisations, draw, writer, path)
        scenes = list(draw.scenes.values())
        return texture_report(model, scenes)
    finally:
        draw.release()


class _Drawing:
    """Scenes of one model on one renderer: the whole, and face subsets drawn alone, each
    with only the triangles that can reach the image (``reach``, see mmdrender.reach)."""

    def __init__(self, renderer, model, camera, lights, reach: np.ndarray):
        self.renderer, self.model, self.camera, self.lights = renderer, model, camera, lights
        self.reach = reach
        self.scenes = {}

    def __call__(self, posed, faces: str = "all", keep: np.ndarray | None = None,
                 remember: bool = False):
        """Draw ``posed`` with the ``faces`` subset (made of ``keep`` on first use);
        ``remember``: later poses near this one redraw only what differs (see ModelScene.draw)."""
        scene = self.scenes.get(faces)
        if scene is None:
            keep = self.reach if keep is None else keep & self.reach
            scene = self.scenes[faces] = self.renderer.prepare(self.model.with_faces(keep))
        return scene.draw(posed, self.camera, self.lights, remember=remember)

    def release(self) -> None:
        for scene in self.scenes.values():
            scene.release()


def _rest_values(mouth_open: int) -> dict:
    return {"mouth_aaa": float(mouth_open)}


def _details(entry, schema, rig: Rig, realisations, poser, **extra) -> str:
    morphs = {p.name: rig.morph_for(p)[0] for p in schema.parameters if p.is_morph}
    return json.dumps({
        "realisations": dict(zip(schema.names, realisations, strict=True)),
        "morphs": morphs, "eye_bones": rig.eye_bones, "iris": rig.iris,
        "body_bone": rig.body_bone, "chest_bone": rig.chest_bone, "shoulders": rig.shoulders,
        "arm_posture": {bone: [round(float(v), 6) for v in q]
                        for bone, q in poser.posture.items()}, **extra},
        ensure_ascii=False, sort_keys=True)


def _fields(entry: ModelEntry, path: Path, details: str) -> dict:
    return {"model_id": entry.model_id, "sha256": entry.sha256 or file_sha256(path),
            "head_top_y": entry.head_top_y, "head_bottom_y": entry.head_bottom_y,
            "wink_left": entry.wink_left, "wink_right": entry.wink_right,
            "mouth_open": entry.mouth_open, "details": details}


def _tha2(entry, schema, poser, poses, mouths, realisations, draw, writer, path) -> None:
    model = poser.model
    brows = eyebrow_faces(model, poser)
    if not brows.any():
        raise PipelineError("its eyebrow morphs move no face of their own (the brows share "
                            "faces with the skin), so THA2 cannot draw the eyebrows alone")
    rest = {m: poser.pose(_rest_values(m)) for m in (1, 0)}
    images = {}
    for m, suffix in ((1, ""), (0, "_closed")):
        images[f"rest{suffix}"] = draw(rest[m])
        images[f"no_eyebrows{suffix}"] = draw(rest[m], "no_brows", ~brows, remember=True)
    images["eyebrows_rest"] = draw(rest[1], "brows", brows, remember=True)
    if not images["rest"][..., 3].any():
        raise PipelineError("the rest image is empty: the head bounds in the index frame no "
                            "part of the model; check them")
    modes = _eyebrow_modes(images, brows, model, draw.camera)
    details = _details(entry, schema, poser.rig, realisations, poser, eyebrow_modes=modes)
    row = writer.add_model(images=images, **_fields(entry, path, details))
    for example, (values, mouth) in enumerate(zip(poses, mouths, strict=True)):
        named = dict(zip(schema.names, values.tolist(), strict=True))
        brow_values = {k: v for k, v in named.items()
                       if schema.parameter(k).category == "eyebrow"}
        at_rest = {**_rest_values(mouth), **brow_values}
        brows_morphed = draw(poser.pose(at_rest), "brows", brows)
        base = images["no_eyebrows" if mouth else "no_eyebrows_closed"]
        with_brows = over(brows_morphed, base)
        turned = draw(poser.pose(named, {"eyebrow", "face_rotation"}), "brows", brows)
        irises_mouth = poser.pose(named, {"eyebrow", *IRISES_MOUTH})
        example_images = {
            "eyebrows_morphed": brows_morphed,
            "with_eyebrows": with_brows,
            "irises_mouth": over(brows_morphed, draw(irises_mouth, "no_brows")),
            "face_morphed": over(brows_morphed, draw(poser.pose(named, FACE), "no_brows")),
            "posed": over(turned, draw(poser.pose(named), "no_brows")),
        }
        writer.add_example(row, example, values, images=example_images, rest_mouth=mouth)


def _eyebrow_modes(images: dict, brows: np.ndarray, model, camera: Camera) -> list[str]:
    """Which of THA2's eyebrow drawing modes work for this model (see the module doc)."""
    alone = images["eyebrows_rest"][..., 3] > 0
    if not brows.any() or not alone.any():
        return []
    modes = []
    rows = np.flatnonzero(alone.any(axis=1))
    head_rows = camera.size / 2  # the head spans half the image's height
    if (rows.max() - rows.min() + 1) <= EYEBROW_HEIGHT * head_rows:
        modes += ["on_top", "black", "silhouette"]
    shown = np.abs(images["rest"].astype(np.int16)
                   - images["no_eyebrows"].astype(np.int16)).max(axis=2) > CHANGED
    if (shown & alone).sum() >= EYEBROW_SHARE_VISIBLE * alone.sum():
        modes.insert(0, "normal")
    return modes


def _tha3(entry, schema, poser, poses, mouths, realisations, draw, writer, path) -> None:
    rest = {m: draw(poser.pose(_rest_values(m)), remember=True) for m in (1, 0)}
    if not rest[1][..., 3].any():
        raise PipelineError("the rest image is empty: the head bounds in the index frame no "
                            "part of the model; check them")
    mask = _eyes_and_mouth(schema, poser, draw, rest[0])
    details = _details(entry, schema, poser.rig, realisations, poser)
    row = writer.add_model(images={"rest": rest[1], "rest_closed": rest[0], "mask": mask},
                           **_fields(entry, path, details))
    for example, (values, mouth) in enumerate(zip(poses, mouths, strict=True)):
        named = dict(zip(schema.names, values.tolist(), strict=True))
        writer.add_example(row, example, values, rest_mouth=mouth, images={
            "face_morphed": draw(poser.pose(named, FACE)), "posed": draw(poser.pose(named))})


def _eyes_and_mouth(schema, poser, draw, rest: np.ndarray) -> np.ndarray:
    """THA4's mask: white where an eye, iris or mouth parameter at an extreme draws."""
    changed = np.zeros(rest.shape[:2], dtype=bool)
    for p in schema.parameters:
        if p.category not in ("eye", "iris_morph", "iris_rotation", "mouth") or \
                poser.realisations[p.name] == "absent":
            continue
        for value in _extremes(p):
            image = draw(poser.pose({p.name: value}))
            changed |= np.abs(image.astype(np.int16) - rest).max(axis=2) > CHANGED
    changed = grow(changed, MASK_GROW)
    if not changed.any():
        raise PipelineError("no eye, iris or mouth parameter changes the image (no roles in "
                            "the index?); THA3 needs at least one")
    mask = np.zeros((*rest.shape[:2], 4), dtype=np.uint8)
    mask[changed] = 255
    return mask


def grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    """(H, W) bool ``mask`` grown by ``pixels`` steps to the four neighbours."""
    out = mask.copy()
    for _ in range(pixels):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def _extremes(parameter: Parameter) -> tuple[float, ...]:
    return (parameter.low, parameter.high) if parameter.low < 0 else (parameter.high,)
