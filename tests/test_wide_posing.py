"""Every THA2/THA3 parameter at its extremes, posed as the wide datasets pose it (issue 15).

Through :class:`mmdrender.schema_pose.SchemaPoser` and the rig the annotator
proposes, on the samples and on every real model in ../shared: a face
parameter changes only its feature's rows (eyebrows, eyelids, irises, mouth)
and, if it has a side and the model can show one side alone, only that side
of the face; an eyebrow parameter hidden by hair in a plain render moves the
eyebrows drawn alone (as THA2's images draw them); the irises
turn inside the eyes; the body parameters move what is
below the neck and carry the head, never the lower body, and turn the way the
schema says. Pixel by pixel, at the datasets' framings.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from conftest import ABSENT, SHARED_MODELS, is_character, shared_model, shared_model_paths
from conftest import load_quietly as load
from conftest_gl import gl_context  # noqa: F401  (a fixture)
from feature_regions import CHANGED, INSIDE, QUIRKS, STRAY, feature_band, landmark_rows

from annotate.auto import propose
from mmdrender.camera import Camera
from mmdrender.render import render
from mmdrender.samples import SAMPLE_NAMES
from mmdrender.schema_pose import HALF_BAND, SchemaPoser
from mmdrender.schemas import MORPH_CATEGORIES, SCHEMAS
from pipeline.roles import morph_column
from pipeline.wide_render import eyebrow_faces, grow

SIZE = 256
SCHEMA = SCHEMAS["tha3"]
EYES_GROW = 3  # pixels around the closed-eye change the turned irises may reach
REAL = [str(p.relative_to(SHARED_MODELS)) for p in shared_model_paths() if is_character(p)]


def _changed(after: np.ndarray, before: np.ndarray) -> np.ndarray:
    return np.abs(after.astype(np.int16) - before).max(axis=2) > CHANGED


def _assert_mostly(inside: np.ndarray, share: float, what: str) -> None:
    assert inside.mean() >= share or (~inside).sum() <= STRAY, (
        f"{what}: {inside.mean():.1%} of its changed pixels where they belong")


def _check_face(model, proposal, label: str) -> None:
    poser = SchemaPoser(model, SCHEMA, proposal.rig(), lower_arms=False)
    camera = Camera.from_head_bounds(proposal.head_top_y.value, proposal.head_bottom_y.value,
                                     proposal.centre_x, SIZE)
    eye_row, mouth_row = landmark_rows(model, proposal, camera)
    scale = mouth_row - eye_row
    centre = camera.to_pixels([[proposal.centre_x, 0.0]])[0][0]
    y = model.vertices.positions[:, 1]
    ramp = HALF_BAND * float(y.max() - y.min()) / camera.pixel_size + 1  # a cut morph's seam
    rest_pose = poser.pose({})
    rest = render(rest_pose, camera)
    brows = model.with_faces(eyebrow_faces(model, poser))
    brows_rest = render(replace(rest_pose, model=brows), camera)
    acted = 0
    for p in SCHEMA.in_category(*MORPH_CATEGORIES):
        how = poser.realisations[p.name]
        if how == "absent":
            continue
        posed = poser.pose({p.name: 1.0})
        changed = _changed(render(posed, camera), rest)
        if p.category == "eyebrow" and not changed.any():  # hidden by hair: drawn alone
            changed_alone = _changed(render(replace(posed, model=brows), camera), brows_rest)
            assert changed_alone.any(), f"{label}: {p.name} ({how}) moves no eyebrow"
        rows, columns = np.nonzero(changed)
        assert len(rows) or p.category == "eyebrow", f"{label}: {p.name} ({how}) changes nothing"
        low, high = feature_band(p.category)
        t = (rows - eye_row) / scale
        inside = (t >= low) & (t <= high)
        if p.side is not None and how != "shared":  # the character's left is image right
            inside &= columns >= centre - ramp if p.side == "left" else columns <= centre + ramp
        column = morph_column(p.group, p.side if how == "own" else None)
        if len(rows):
            _assert_mostly(inside, QUIRKS.get((label, column), INSIDE),
                           f"{label}: {p.name} ({how})")
        acted += 1
    assert acted >= 6, f"{label}: only {acted} face parameters act"
    _check_irises(poser, proposal, camera, rest, label)


def _check_irises(poser, proposal, camera, rest, label: str) -> None:
    if poser.realisations["iris_rotation_x"] == "absent":
        return
    closing = [proposal.wink_both.value] if proposal.wink_both.value else \
        [proposal.wink_left.value, proposal.wink_right.value]
    shut = render(poser.poser.pose({}, {name: 1.0 for name in closing if name}), camera)
    eyes = grow(_changed(shut, rest), EYES_GROW)
    moved = np.zeros_like(eyes)
    for name in ("iris_rotation_x", "iris_rotation_y"):
        for value in (-1.0, 1.0):
            changed = _changed(render(poser.pose({name: value}), camera), rest)
            if changed.any():
                _assert_mostly(eyes[changed], INSIDE, f"{label}: {name} = {value:g}")
            moved |= changed
    assert moved.sum() > 20, f"{label}: the irises do not turn"


def _lower_body(model, bone: str) -> np.ndarray:
    """(V,) bool: vertices no bone at or below ``bone`` moves."""
    return model.weight_on(model.subtree(model.bone_index(bone))) == 0


def _check_body(model, proposal, label: str) -> None:
    rig = proposal.rig()
    poser = SchemaPoser(model, SCHEMA, rig, lower_arms=True)
    if poser.realisations["body_y"] == "absent":
        return
    camera = Camera.framing("upper_body", proposal.head_top_y.value,
                            proposal.head_bottom_y.value, proposal.centre_x, SIZE)
    chin_row = SIZE * 3 // 8
    rest_pose = poser.pose({})
    rest = render(rest_pose, camera)
    still = _lower_body(model, rig.body_bone)
    head = ~_lower_body(model, "頭")
    z = model.vertices.positions[:, 2]
    face = head & (z >= np.quantile(z[head], 0.95))  # the front of the head
    for name, value in (("body_y", 1.0), ("body_y", -1.0), ("body_z", 1.0), ("body_z", -1.0),
                        ("breathing", 1.0)):
        posed = poser.pose({name: value})
        what = f"{label}: {name} = {value:g}"
        assert np.array_equal(posed.positions[still], rest_pose.positions[still]), \
            f"{what} moves the lower body"
        changed = _changed(render(posed, camera), rest)
        assert changed[chin_row:].sum() > 20, f"{what} changes nothing below the neck"
        shift = (posed.positions[head] - rest_pose.positions[head]).mean(axis=0)
        if name == "body_z":  # the head carried along: its top toward image left for > 0
            assert changed[:chin_row].sum() > 20, f"{what} leaves the head where it was"
            assert np.sign(shift[0]) == -np.sign(value), f"{what} tilts the wrong way"
        elif name == "body_y":  # the face turns toward the character's left (+x) for > 0
            turn = (posed.positions[face, 0] - rest_pose.positions[face, 0]).mean()
            assert np.sign(turn) == np.sign(value), f"{what} turns the wrong way"


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_every_sample_parameter_changes_only_its_feature_and_side(gl_context,  # noqa: F811
                                                                 samples_dir, name):
    model = load(samples_dir / name / f"{name}.pmx")
    proposal = propose(model, "tha3")
    _check_face(model, proposal, name)
    _check_body(model, proposal, name)


@pytest.mark.parametrize("relative", REAL or [pytest.param(None, marks=pytest.mark.skip(
    reason=ABSENT))])
def test_every_real_parameter_changes_only_its_feature_and_side(gl_context,  # noqa: F811
                                                               relative):
    model = load(shared_model(relative))
    proposal = propose(model, "tha3")
    _check_face(model, proposal, relative)
    _check_body(model, proposal, relative)
