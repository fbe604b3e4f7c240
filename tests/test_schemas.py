"""The pose schema registry (issue 10): THA1, THA2 and THA3 exactly as wide-schemas.md says."""

from __future__ import annotations

import pytest

from mmdrender.errors import PoseError
from mmdrender.schemas import GROUPS, MORPH_GROUPS, SCHEMAS, schema
from pipeline.poses import THA1

# wide-schemas.md section 1, row by row: (first index, group, arity, category)
TABLE = [
    (0, "eyebrow_troubled", 2, "eyebrow"), (2, "eyebrow_angry", 2, "eyebrow"),
    (4, "eyebrow_lowered", 2, "eyebrow"), (6, "eyebrow_raised", 2, "eyebrow"),
    (8, "eyebrow_happy", 2, "eyebrow"), (10, "eyebrow_serious", 2, "eyebrow"),
    (12, "eye_wink", 2, "eye"), (14, "eye_happy_wink", 2, "eye"),
    (16, "eye_surprised", 2, "eye"), (18, "eye_relaxed", 2, "eye"),
    (20, "eye_unimpressed", 2, "eye"), (22, "eye_raised_lower_eyelid", 2, "eye"),
    (24, "iris_small", 2, "iris_morph"), (26, "mouth_aaa", 1, "mouth"),
    (27, "mouth_iii", 1, "mouth"), (28, "mouth_uuu", 1, "mouth"), (29, "mouth_eee", 1, "mouth"),
    (30, "mouth_ooo", 1, "mouth"), (31, "mouth_delta", 1, "mouth"),
    (32, "mouth_lowered_corner", 2, "mouth"), (34, "mouth_raised_corner", 2, "mouth"),
    (36, "mouth_smirk", 1, "mouth"), (37, "iris_rotation_x", 1, "iris_rotation"),
    (38, "iris_rotation_y", 1, "iris_rotation"), (39, "head_x", 1, "face_rotation"),
    (40, "head_y", 1, "face_rotation"), (41, "neck_z", 1, "face_rotation"),
    (42, "body_y", 1, "body_rotation"), (43, "body_z", 1, "body_rotation"),
    (44, "breathing", 1, "breathing"),
]


def test_tha3_is_the_table_of_wide_schemas_section_1():
    tha3 = SCHEMAS["tha3"]
    assert len(tha3) == 45
    for first, name, arity, category in TABLE:
        names = [f"{name}_left", f"{name}_right"] if arity == 2 else [name]
        for offset, expected in enumerate(names):
            p = tha3.parameters[first + offset]
            assert (p.name, p.group, p.category) == (expected, name, category)
            assert p.side == (("left", "right")[offset] if arity == 2 else None)
    assert [g.name for g in GROUPS] == [row[1] for row in TABLE]


def test_ranges_defaults_and_kinds():
    tha3 = SCHEMAS["tha3"]
    for p in tha3.parameters:
        if p.category in ("iris_rotation", "face_rotation", "body_rotation"):
            assert (p.low, p.high, p.kind) == (-1.0, 1.0, "rotation")
        else:
            assert (p.low, p.high, p.kind) == (0.0, 1.0, "morph")
    assert tha3.parameter("mouth_aaa").default == 1.0
    assert sum(p.default for p in tha3.parameters) == 1.0
    assert tha3.parameter("head_x").degrees == 15.0
    assert tha3.parameter("iris_rotation_x").degrees is None  # calibrated per model
    assert len(MORPH_GROUPS) == 22
    assert sum(g.arity for g in MORPH_GROUPS) == 37


def test_tha2_is_the_first_42_and_its_networks_slices():
    tha2, tha3 = SCHEMAS["tha2"], SCHEMAS["tha3"]
    assert tha2.names == tha3.names[:42]
    assert [p.category for p in tha2.parameters[:12]] == ["eyebrow"] * 12
    face = tha2.parameters[12:39]  # THA2's 27 face values, iris rotation included
    assert {p.category for p in face} == {"eye", "iris_morph", "mouth", "iris_rotation"}
    assert tha2.names[39:] == ("head_x", "head_y", "neck_z")
    assert (tha2.image_size, tha2.framing) == (256, "head")
    assert (tha3.image_size, tha3.framing) == (512, "upper_body")


def test_tha1_keeps_its_names_and_maps_them_to_groups():
    tha1 = SCHEMAS["tha1"]
    assert tha1.names == ("eye_left", "eye_right", "mouth", "head_x", "head_y", "neck_z")
    assert [(p.group, p.side) for p in tha1.parameters[:3]] == [
        ("eye_wink", "left"), ("eye_wink", "right"), ("mouth_aaa", None)]
    assert THA1.names == tha1.names  # the sampler's schema reads the registry


def test_unknown_names_are_errors_that_list_the_choices():
    with pytest.raises(PoseError, match="tha1, tha2, tha3"):
        schema("tha5")
    with pytest.raises(PoseError, match="eyebrow_troubled_left"):
        SCHEMAS["tha2"].parameter("body_y")
