"""THA2 and THA3/THA4 datasets (issue 15): sampling, runs, images, verification, training.

Runs go through ``pipeline dataset --schema`` on the sample characters, small
(128 pixels, a few examples) so the suite stays quick; what the images show
is checked against renders and against each other, what the shards say
against the schema.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SHARED_MODELS, is_character, shared_model_paths
from conftest import load_quietly as load
from conftest_gl import gl_context  # noqa: F401  (a fixture)

from mmdrender.camera import Camera, estimate_head_bounds
from mmdrender.cli import main as mmdrender_main
from mmdrender.errors import PoseError
from mmdrender.render import render
from mmdrender.rig import Rig
from mmdrender.schema_pose import ARM_BONES, BodySettings, SchemaPoser
from mmdrender.schemas import SCHEMAS
from pipeline.cli import main
from pipeline.feature_poses import (
    IRIS_SMALL_ZERO,
    ONE_ACTIVE,
    fit_to_model,
    sampling_schema,
    wide_pose_schema,
)
from pipeline.pose_checks import binomial_pvalue, check_wide_poses
from pipeline.poses import ramp_fit_pvalue, sample, sample_example, sample_examples
from pipeline.poses import uniform_fit_pvalue as uniform_p
from pipeline.shard_reader import open_dataset
from pipeline.wide_render import over

SIZE = 128
EXAMPLES = 4
FIT = 1e-3  # a p-value below this is a bad fit (the draws are seeded: no flakes)
STRIPPED = "akane-akane"  # its eyebrow_angry and wink_left roles are blanked in the runs' index


def run(command, args: list) -> object:
    return CliRunner().invoke(command, [str(a) for a in args])


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> tuple[Path, Path]:
    """The sample characters and their index, one model without eyebrow_angry roles and
    without a left wink of its own (a real model's lack: its both-eyes morph serves)."""
    root = tmp_path_factory.mktemp("wide_samples")
    index = root / "models_index.csv"
    result = run(main, ["index-samples", index, "--samples-dir", root])
    assert result.exit_code == 0, result.output
    with open(index, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        if row["model_id"] == STRIPPED:
            for column in ("eyebrow_angry", "eyebrow_angry_left", "eyebrow_angry_right",
                           "wink_left"):
                row[column] = ""
            row["status"] = "confirmed"
    with open(index, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root, index


def _dataset(library, out: Path, schema: str, *extra) -> Path:
    root, index = library
    result = run(main, ["dataset", "--index", index, "--root", root, "--out", out,
                        "--schema", schema, "--size", SIZE, "--examples-per-model", EXAMPLES,
                        "--msaa", 0, "--workers", 1, *extra])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def tha3(library, tmp_path_factory) -> Path:
    return _dataset(library, tmp_path_factory.mktemp("tha3"), "tha3")


@pytest.fixture(scope="module")
def tha2(library, tmp_path_factory) -> Path:
    return _dataset(library, tmp_path_factory.mktemp("tha2"), "tha2")


def _details(data, model_id: str) -> dict:
    return json.loads(next(m for m in data.models() if m.model_id == model_id).details)


# ------------------------------------------------------------------ sampling


def test_wide_sampling_follows_tha2s_rules():
    schema = wide_pose_schema("tha3")
    poses = sample(schema, np.random.default_rng(1), 20000)
    names = schema.names
    assert poses.shape == (20000, 45) and poses.dtype == np.float32
    for category in ("eyebrow", "eye"):
        for side in ("left", "right"):
            block = poses[:, [names.index(p.name) for p in SCHEMAS["tha3"].in_category(category)
                              if p.side == side]]
            assert block.shape[1] == 6
            active = (block > 0).sum(axis=1)
            assert set(np.unique(active)) <= {1, 2}
            assert (block.sum(axis=1) <= 1 + 1e-6).all()
            assert binomial_pvalue(int((active == 1).sum()), len(block), ONE_ACTIVE) > FIT
            assert ramp_fit_pvalue(block[active == 1].max(axis=1)) > FIT
    small = poses[:, names.index("iris_small_left")]
    assert binomial_pvalue(int((small == 0).sum()), len(small), IRIS_SMALL_ZERO) > FIT
    assert uniform_p(small[small > 0]) > FIT
    for name in ("iris_rotation_x", "iris_rotation_y"):
        assert uniform_p(poses[:, names.index(name)], -1, 1) > FIT
    for name in ("head_x", "head_y", "neck_z", "body_y", "body_z"):
        assert ramp_fit_pvalue(poses[:, names.index(name)]) > FIT
    assert uniform_p(poses[:, names.index("breathing")]) > FIT
    assert (poses >= schema.lows).all() and (poses <= schema.highs).all()


def test_the_tha2_schema_is_the_first_42_of_tha3():
    assert sampling_schema("tha2").names == sampling_schema("tha3").names[:42]
    assert sampling_schema("tha1").names == ("eye_left", "eye_right", "mouth", "head_x",
                                             "head_y", "neck_z")


def test_each_wide_example_is_regenerable_alone():
    schema = wide_pose_schema("tha2")
    poses = sample_examples(schema, 7, "someone", 0, 6)
    for e in range(6):
        assert np.array_equal(sample_example(schema, 7, "someone", e), poses[e])
    assert not np.array_equal(poses[0], poses[1])


def test_fitting_holds_absent_parameters_and_ties_shared_sides():
    registry = SCHEMAS["tha3"]
    names = registry.names
    poses = sample(wide_pose_schema("tha3"), np.random.default_rng(2), 5000)
    how = ["own"] * len(names)
    how[names.index("eyebrow_angry_left")] = how[names.index("eyebrow_angry_right")] = "absent"
    shared = ("eye_wink", "eye_relaxed", "eyebrow_troubled", "eyebrow_raised")
    for group in shared:  # two per feature: scaling one side must not untie another
        how[names.index(f"{group}_left")] = how[names.index(f"{group}_right")] = "shared"
    fitted = fit_to_model(registry, poses, tuple(how))
    assert (fitted[:, names.index("eyebrow_angry_left")] == 0).all()
    for group in shared:
        assert np.array_equal(fitted[:, names.index(f"{group}_right")],
                              fitted[:, names.index(f"{group}_left")])
    for category in ("eyebrow", "eye"):
        right = [names.index(p.name) for p in registry.in_category(category)
                 if p.side == "right"]
        assert (fitted[:, right].sum(axis=1) <= 1 + 1e-5).all()
        assert (fitted[:, right].sum(axis=1) > 1 - 1e-5).any()  # the cap was reached
    untouched = [i for i, h in enumerate(how) if h == "own" and registry.parameters[i].side
                 != "right"]
    assert np.array_equal(fitted[:, untouched], poses[:, untouched])


def test_a_side_without_a_morph_beside_one_with_its_own_is_held_not_shared():
    registry = SCHEMAS["tha3"]
    left, right = (registry.parameter(f"eye_happy_wink_{side}") for side in ("left", "right"))
    rig = Rig(morphs={("eye_happy_wink", None): "笑い", ("eye_happy_wink", "left"): "ウィンク笑"})
    assert rig.morph_for(left) == ("ウィンク笑", "own")
    assert rig.morph_for(right) == (None, "absent")  # 笑い would close the left eye too
    both_only = Rig(morphs={("eye_happy_wink", None): "笑い"})
    assert both_only.morph_for(right) == ("笑い", "shared")
    cut = Rig(morphs=rig.morphs, halves=frozenset({"eye_happy_wink"}))
    assert cut.morph_for(right) == ("笑い", "halves")


def test_the_pose_check_passes_seeded_poses_and_catches_a_changed_one():
    schema = wide_pose_schema("tha3")
    own = ("own",) * 45
    rows = [("m", e, sample_example(schema, 3, "m", e), None, own) for e in range(300)]
    from pipeline.feature_poses import rest_mouth
    from pipeline.poses import example_rng

    rows = [(m, e, pose, rest_mouth(example_rng(3, m, e, purpose="rest")), how)
            for m, e, pose, _, how in rows]
    fits, problems = check_wide_poses(schema, 3, rows)
    assert problems == []
    assert all(fit["p_value"] > FIT for fit in fits.values()), fits
    assert {"eyebrows left", "eyes right", "mouth", "iris_small_left", "body_y",
            "rest_mouth"} <= set(fits)
    changed = rows[5][2].copy()
    changed[0] = 0.5 if changed[0] != 0.5 else 0.25
    rows[5] = (*rows[5][:2], changed, *rows[5][3:])
    _, problems = check_wide_poses(schema, 3, rows)
    assert problems == ["m example 5: the stored pose is not the one its seed gives"]


# ------------------------------------------------------------------ THA3 runs


def test_a_tha3_run_verifies_and_trains_the_morpher_and_rotator(tha3, tmp_path):
    result = run(main, ["verify", tha3])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("ok")
    tiny = ["--steps", 2, "--batch-size", 2, "--channels", 4, "--downsamplings", 2,
            "--res-blocks", 1, "--val-every", 0]
    for network, pose_size in (("morpher", 39), ("rotator", 6)):
        result = run(main, ["train", network, "--data", tha3, "--run", tmp_path / network,
                            *tiny])
        assert result.exit_code == 0, result.output
        import torch

        checkpoint = torch.load(tmp_path / network / "checkpoint.pt", weights_only=False)
        assert checkpoint["model_config"]["pose_size"] == pose_size
        assert checkpoint["step"] == 2


def test_a_run_of_another_schema_cannot_resume_a_network(library, tha3, tha2, tmp_path):
    tiny = ["--steps", 1, "--batch-size", 2, "--channels", 4, "--downsamplings", 2,
            "--res-blocks", 1, "--val-every", 0]
    runs = tmp_path / "tha3", tmp_path / "tha2"
    assert run(main, ["train", "rotator", "--data", tha3, "--run", runs[0], *tiny]).exit_code \
        == 0
    result = run(main, ["train", "rotator", "--data", tha2, "--run", runs[0], "--steps", 2])
    assert result.exit_code == 1
    assert "takes tha3 poses (6 values)" in result.output and "holds tha2 data" in result.output
    # the same three rotations, another schema: refused too
    assert run(main, ["train", "rotator", "--data", tha2, "--run", runs[1], *tiny]).exit_code \
        == 0
    tha1 = _dataset(library, tmp_path / "tha1", "tha1", "--examples-per-model", 2)
    result = run(main, ["train", "rotator", "--data", tha1, "--run", runs[1], "--steps", 2])
    assert result.exit_code == 1 and "takes tha2 poses (3 values)" in result.output
    result = run(main, ["train", "combiner", "--data", tha1, "--run", tmp_path / "c",
                        "--rotator", runs[1], *tiny])
    assert result.exit_code == 1 and "the rotator of" in result.output


def test_tha3_images_frame_the_upper_body_with_a_mask_per_model(tha3):
    data = open_dataset(tha3)
    assert [i.name for i in data.image_sets] == ["rest", "mask", "face_morphed", "posed"]
    assert data.manifest["image_size"] == SIZE and data.schema.name == "tha3"
    assert data.manifest["renderer"]["body"]["arm_degrees"] == 12.0
    chin = SIZE * 3 // 8
    for index in range(len(data)):
        images = data.images(index)
        example = data[index]
        mask = images["mask"]
        assert set(np.unique(mask)) == {0, 255}
        covered = mask[..., 0] > 0
        assert 0 < covered.mean() < 0.05 and not covered[chin + SIZE // 16:].any()
        face = np.abs(images["face_morphed"].astype(np.int16) - example.rest).max(axis=2) > 8
        assert not face[chin + SIZE // 16:].any(), "the face values moved the body"
        turn = np.abs(example.posed.astype(np.int16) - images["face_morphed"]).max(axis=2) > 8
        assert turn[chin:].any(), "the body and head values left the body where it was"
        assert np.array_equal(example.rest, images["rest"])
        mouth = example.pose[data.schema.index("mouth_aaa")]
        assert example.rest_mouth in (0, 1) and 0 <= mouth <= 1


def test_the_closed_mouth_rest_is_used_where_the_example_says(tha3):
    data = open_dataset(tha3)
    mouths = [data[i].rest_mouth for i in range(len(data))]
    assert 0 in mouths and 1 in mouths
    with h5py.File(next(Path(tha3).glob("train-*.h5")), "r") as f:
        assert {"rest", "rest_closed", "mask", "face_morphed", "posed", "rest_mouth"} <= set(f)
        assert not np.array_equal(f["rest"][0], f["rest_closed"][0])


def test_a_model_without_a_role_holds_its_parameters_at_zero_and_says_so(tha3):
    data = open_dataset(tha3)
    details = _details(data, STRIPPED)
    names = data.schema.names
    for side in ("left", "right"):
        assert details["realisations"][f"eyebrow_angry_{side}"] == "absent"
        assert details["morphs"][f"eyebrow_angry_{side}"] is None
    rows = [i for i in range(len(data)) if data[i].model_id == STRIPPED]
    assert rows
    for i in rows:
        pose = data[i].pose
        assert pose[names.index("eyebrow_angry_left")] == 0
        assert pose[names.index("eyebrow_angry_right")] == 0
    assert details["realisations"]["eye_wink_left"] == "halves"
    assert next(m for m in data.models() if m.model_id == STRIPPED).wink_left is None
    others = _details(data, "midori-midori")
    assert others["realisations"]["eyebrow_angry_left"] != "absent"
    assert set(details["realisations"]) == set(names)
    assert set(details["arm_posture"]) == {"左腕", "右腕"}


def test_verify_catches_a_wide_pose_that_is_not_the_seeded_one(tha3, tmp_path):
    copy = shutil.copytree(tha3, tmp_path / "copy")
    manifest = json.loads((copy / "manifest.json").read_text())
    entry = manifest["shards"][0]
    shard = copy / entry["file"]
    with h5py.File(shard, "r+") as f:
        pose = f["pose"][0]
        column = int(np.argmax(pose < 0.5))
        pose[column] += 0.25
        f["pose"][0] = pose
    entry["bytes"] = shard.stat().st_size
    entry["sha256"] = hashlib.sha256(shard.read_bytes()).hexdigest()
    (copy / "manifest.json").write_text(json.dumps(manifest))
    result = run(main, ["verify", copy])
    assert result.exit_code == 1
    assert "the stored pose is not the one its seed gives" in result.output


# ------------------------------------------------------------------ THA2 runs


def test_tha2_ground_truths_compose(tha2):
    data = open_dataset(tha2)
    assert [i.name for i in data.image_sets] == [
        "rest", "no_eyebrows", "eyebrows_rest", "eyebrows_morphed", "with_eyebrows",
        "irises_mouth", "face_morphed", "posed"]
    assert run(main, ["verify", tha2]).exit_code == 0
    for index in range(len(data)):
        images = data.images(index)
        # (d) is (a) with (c) drawn over it where the eyebrows are, and (a) elsewhere
        assert np.array_equal(images["with_eyebrows"],
                              over(images["eyebrows_morphed"], images["no_eyebrows"]))
        brows = images["eyebrows_morphed"][..., 3] > 0
        assert brows.any()
        assert np.array_equal(images["with_eyebrows"][~brows], images["no_eyebrows"][~brows])
        # the eyebrows at rest over the rest without them give back the character
        rebuilt = over(images["eyebrows_rest"], images["no_eyebrows"]).astype(np.int16)
        close = (np.abs(rebuilt - images["rest"]).max(axis=2) <= 8).mean()
        assert close > 0.99, f"example {index}: {close:.1%} of the rebuilt rest image matches"
        # (a) lacks the eyebrows the rest image shows
        assert (np.abs(images["no_eyebrows"].astype(np.int16) - images["rest"]).max(axis=2)
                > 8).any()
        assert np.array_equal(images["face_morphed"], data[index].expression)


def test_tha2_says_which_eyebrow_modes_work_per_model(tha2):
    data = open_dataset(tha2)
    for model in data.models():
        modes = json.loads(model.details)["eyebrow_modes"]
        assert modes and set(modes) <= {"normal", "on_top", "black", "silhouette"}
        assert "on_top" in modes  # the samples' eyebrows are meshes of their own


def test_preview_names_every_image_set(tha2, tmp_path):
    result = run(main, ["preview", tha2, "-o", tmp_path / "sheet.png"])
    assert result.exit_code == 0, result.output
    from PIL import Image

    sheet = Image.open(tmp_path / "sheet.png")
    assert sheet.width >= 8 * 112
    result = run(main, ["preview", tha2, "-o", tmp_path / "sheet.txt"])
    assert result.exit_code == 1 and "name it .png" in result.output


def test_tha2_skips_a_model_without_eyebrows_and_says_why(library, tmp_path):
    root, index = library
    with open(index, encoding="utf-8", newline="") as f:
        rows = [row for row in csv.DictReader(f) if row["model_id"] == "midori-midori"]
    for column in rows[0]:
        if column.startswith("eyebrow_"):
            rows[0][column] = ""
    only = tmp_path / "index.csv"
    with open(only, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = _dataset((root, only), tmp_path / "out", "tha2")
    assert "no eyebrow morph in the index" in (out / "failures.csv").read_text()
    result = run(main, ["preview", out, "-o", tmp_path / "sheet.png"])
    assert result.exit_code == 1 and "holds no examples" in result.output


def test_body_options_belong_to_tha3(library, tmp_path):
    root, index = library
    result = run(main, ["dataset", "--index", index, "--root", root, "--out", tmp_path,
                        "--schema", "tha2", "--arm-degrees", 5])
    assert result.exit_code == 1 and "--arm-degrees: only --schema tha3" in result.output


def test_a_tha1_run_keeps_the_first_format(library, tmp_path):
    out = _dataset(library, tmp_path, "tha1", "--examples-per-model", 1)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format_version"] == 1
    with h5py.File(next(out.glob("train-*.h5")), "r") as f:
        assert "images" not in f.attrs and "rest_mouth" not in f
        assert {"rest", "expression", "posed"} <= set(f)


# ------------------------------------------------------------------ arms


BESIDE = 1.1  # head heights from the image's centre line the hanging hands may reach


def _arms(model, lower: bool, degrees: float = 12.0) -> tuple[int, float, float]:
    """Forearms and hands in THA3's framing at 256: (top row, the shoulder joints' lower
    row, how far they reach from the centre line in head heights)."""
    top, bottom, centre = estimate_head_bounds(model)
    camera = Camera.framing("upper_body", top, bottom, centre, 256)
    poser = SchemaPoser(model, SCHEMAS["tha3"], Rig(), BodySettings(arm_degrees=degrees),
                        lower_arms=lower)
    elbows = [model.bone_index(elbow) for _, elbow in ARM_BONES.values()]
    on = model.weight_on(model.subtree(*elbows)) > 0.5
    forearms = model.with_faces(on[model.faces].all(axis=1))
    from dataclasses import replace

    posed = poser.pose({})
    drawn = render(replace(posed, model=forearms), camera)[..., 3] > 0
    rows = np.flatnonzero(drawn.any(axis=1))
    columns = np.flatnonzero(drawn.any(axis=0))
    shoulders = [model.bone(arm).position for arm, _ in ARM_BONES.values()]
    shoulder_row = max(camera.to_pixels(np.array(shoulders, float))[:, 1])
    reach = np.abs(columns - 128).max() / 64 if len(columns) else 0.0
    return (rows.min() if len(rows) else 256), shoulder_row, reach


ARM_MODELS = [str(p.relative_to(SHARED_MODELS)) for p in shared_model_paths() if is_character(p)]


@pytest.mark.parametrize("relative", ARM_MODELS or [pytest.param(None, marks=pytest.mark.skip(
    reason="../shared is absent"))])
def test_lowered_arms_hang_beside_the_body_below_the_shoulders(gl_context,  # noqa: F811
                                                                relative):
    model = load(SHARED_MODELS / relative)
    if any(model.bone(arm) is None or model.bone(elbow) is None
           for arm, elbow in ARM_BONES.values()):
        pytest.skip(f"{relative} has no arm and elbow bones")
    top, shoulder, reach = _arms(model, lower=True)
    assert top > shoulder, f"{relative}: forearm pixels from row {top}, shoulders at {shoulder}"
    assert reach <= BESIDE, f"{relative}: the hands reach {reach:.2f} head heights out"
    if relative == "animasa_miku_v2/miku_v2.pmd":  # in the A-pose they stick out sideways
        assert _arms(model, lower=False)[2] > 1.5


def test_arms_held_out_level_fail_the_check(gl_context, samples_dir):  # noqa: F811
    model = load(samples_dir / "akane" / "akane.pmx")
    top, shoulder, reach = _arms(model, lower=True)
    assert top > shoulder and reach <= BESIDE
    top, shoulder, reach = _arms(model, lower=True, degrees=90.0)  # a T-pose
    assert top <= shoulder and reach > BESIDE


# ------------------------------------------------------------------ the command lines


def test_poses_are_exported_for_thas_distiller(tmp_path):
    import torch

    result = run(main, ["poses", "--schema", "tha3", "-n", 300, "-o", tmp_path / "p.pt",
                        "--seed", 4])
    assert result.exit_code == 0, result.output
    with open(tmp_path / "p.pt", "rb") as f:  # as THA4's distiller loads its pose dataset
        poses = torch.load(f, map_location=lambda storage, location: storage)
    assert isinstance(poses, torch.Tensor) and poses.shape == (300, 45)
    assert poses.dtype == torch.float32
    expected = sample(wide_pose_schema("tha3"), np.random.default_rng(4), 300)
    assert np.array_equal(poses.numpy(), expected)
    assert run(main, ["poses", "--schema", "tha2", "-n", 5, "-o", tmp_path / "p.npy"]
               ).exit_code == 0
    assert np.load(tmp_path / "p.npy").shape == (5, 42)
    result = run(main, ["poses", "-n", 5, "-o", tmp_path / "p.csv"])
    assert result.exit_code == 1 and ".pt (torch) or .npy" in result.output
    assert not (tmp_path / "p.csv").exists()
    (tmp_path / "file").write_text("")
    result = run(main, ["poses", "-n", 5, "-o", tmp_path / "file" / "p.npy"])
    assert result.exit_code == 1 and result.output.startswith("error: cannot write")


def test_render_any_wide_pose_through_a_rig(gl_context, samples_dir, tmp_path):  # noqa: F811
    from PIL import Image

    from annotate.cli import main as annotate_main

    model = samples_dir / "hinata" / "hinata.pmx"
    rig = tmp_path / "rig.json"
    result = run(annotate_main, ["suggest", model, "--schema", "tha3", "--rig", rig])
    assert result.exit_code == 0, result.output
    assert Rig.from_dict(json.loads(rig.read_text())).eye_bones == {"left": "左目",
                                                                      "right": "右目"}
    base = ["render", model, "--schema", "tha3", "--size", SIZE]
    assert run(mmdrender_main, [*base, "-o", tmp_path / "rest.png", "--rig", rig]).exit_code == 0
    pose = "eyebrow_angry_left=1,iris_rotation_y=-1,body_y=0.5,mouth_ooo=1"
    result = run(mmdrender_main, [*base, "-o", tmp_path / "posed.png", "--rig", rig,
                                  "--pose", pose])
    assert result.exit_code == 0, result.output
    rest = np.asarray(Image.open(tmp_path / "rest.png"))
    posed = np.asarray(Image.open(tmp_path / "posed.png"))
    assert rest.shape == (SIZE, SIZE, 4)
    changed = np.abs(posed.astype(np.int16) - rest).max(axis=2) > 8
    assert changed[: SIZE * 3 // 8].any() and changed[SIZE * 3 // 8:].any()
    result = run(mmdrender_main, [*base, "-o", tmp_path / "x.png",
                                  "--pose", "eyebrow_angry_left=1"])
    assert result.exit_code == 0
    assert "eyebrow_angry_left is held at 0" in result.output and "--rig" in result.output
    result = run(mmdrender_main, [*base, "-o", tmp_path / "x.png", "--morph", "あ=1"])
    assert result.exit_code == 1 and "--schema tha1 only" in result.output
    result = run(annotate_main, ["suggest", model, "--schema", "tha3", "--rig",
                                 tmp_path / "missing" / "rig.json"])
    assert result.exit_code == 1 and "error: cannot write" in result.output


def test_a_malformed_rig_is_a_clear_error():
    with pytest.raises(PoseError, match="no morph group or parameter"):
        Rig.from_dict({"morphs": {"eyebrow_sad_left": "x"}})
    with pytest.raises(PoseError, match="iris.left"):
        Rig.from_dict({"iris": {"left": {"x_pos": "ten"}}})
    with pytest.raises(PoseError, match="finite degrees"):
        Rig.from_dict({"iris": {"left": {"x_pos": float("nan")}}})
    for halves in (5, "eyebrow_angry", [{}], ["mouth_aaa"]):
        with pytest.raises(PoseError, match="halves must be a list of two-sided groups"):
            Rig.from_dict({"halves": halves})
    rig = Rig(morphs={("eye_wink", None): "まばたき", ("mouth_aaa", None): "あ"},
              halves=frozenset({"eye_wink"}), eye_bones={"left": "左目"},
              iris={"left": {"x_pos": 1.0, "x_neg": -1.0, "y_pos": 2.0, "y_neg": -2.0}})
    assert Rig.from_dict(json.loads(json.dumps(rig.to_dict()))) == rig
