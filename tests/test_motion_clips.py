"""Motions on models: posed, turned into pose vectors, rendered to clips (issue 11).

On the samples: a motion of the head, neck, eyes and role morphs, rendered by
``pipeline clip``, is reproduced by ``pipeline motion2pose`` followed by
``mmdrender render --schema`` of those vectors, pixel for pixel within a small
tolerance, at the schema's framing. The clip shard holds what it says, resumes
after a stop, and makes a video. On every real model: the shared motion and
pose bind, evaluate and render, and the head's vertices go where the motion's
head bone takes them. Bad motions give one ``error:`` line.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import test_generate
from click.testing import CliRunner
from conftest import SHARED_MODELS, is_character, shared_model_paths
from conftest import load_quietly as load
from conftest_gl import gl_context  # noqa: F401  (a fixture)

from mmdrender.camera import HEAD_BONE, HEAD_WEIGHT, Camera, estimate_head_bounds, head_centre_x
from mmdrender.cli import main as mmdrender_main
from mmdrender.formats import frame as mmd_frame
from mmdrender.formats.vmd_writer import BoneKey, MorphKey, vmd_bytes
from mmdrender.gl.context import describe
from mmdrender.motion import Motion
from mmdrender.pose import MorphMapping, Poser
from mmdrender.render import render
from mmdrender.schemas import SCHEMAS
from mmdrender.skeleton import Skeleton, quat_multiply, turn_about
from pipeline.cli import main
from pipeline.clip_reader import clip_images, read_clip
from pipeline.clips import ClipJob, render_clip
from pipeline.index import read_index
from pipeline.roles import rig_of

MODEL_ID = "akane-akane"
SIZE = 128
EASE = (64, 0, 64, 127)
CHANGED = 8  # levels
MOTIONS = SHARED_MODELS.parent / "motions"
REAL = [p for p in shared_model_paths() if is_character(p)]
library = test_generate.library  # the sample characters and their index


def run(command, args: list):
    return CliRunner().invoke(command, [str(a) for a in args])


def entry_of(index: Path, model_id: str = MODEL_ID):
    return next(e for e in read_index(index) if e.model_id == model_id)


def stored(q: np.ndarray) -> tuple:
    """A project-frame rotation as a VMD stores it (the mirror is its own inverse)."""
    return tuple(mmd_frame.quaternions(np.asarray(q, np.float32)).tolist())


def expression_motion(entry, eyes: bool = True) -> bytes:
    """Rest at frame 0; at 6 the head pitched down, the neck tilted, a wink half closed and
    the mouth half open; at 12 the head also turned, the eyes turned (``eyes``), the wink
    and mouth further: what THA2 (THA1 without the eyes) expresses exactly on frames 0-6
    (one axis per bone) and on the keys (between 6 and 12 a slerped head turn has a roll
    that THA puts at the neck's pivot, not the head's)."""
    rig = rig_of(entry)
    pitch = turn_about("x", -0.4 * 15)
    head = quat_multiply(turn_about("y", 0.6 * 15), pitch)
    neck = turn_about("z", -0.5 * 15)
    bones = [BoneKey(name, 0) for name in ("頭", "首", *rig.eye_bones.values())]
    bones += [BoneKey("頭", 6, rotation=stored(pitch), curves=(EASE,) * 4),
              BoneKey("首", 6, rotation=stored(neck), curves=(EASE,) * 4),
              BoneKey("頭", 12, rotation=stored(head)), BoneKey("首", 12, rotation=stored(neck))]
    for side, bone in rig.eye_bones.items() if eyes else ():  # each by its calibration
        angles = rig.iris[side]
        eye = quat_multiply(turn_about("y", 0.5 * angles["y_pos"]),
                            turn_about("x", 0.5 * angles["x_neg"]))
        bones += [BoneKey(bone, 6), BoneKey(bone, 12, rotation=stored(eye))]
    morphs = [MorphKey(entry.wink_left, 0, 0.0), MorphKey(entry.wink_left, 6, 0.4),
              MorphKey(entry.wink_left, 12, 0.8), MorphKey(entry.mouth_open, 0, 0.0),
              MorphKey(entry.mouth_open, 6, 0.5), MorphKey(entry.mouth_open, 12, 1.0)]
    return vmd_bytes(entry.model_id, bones, morphs)


def changed_share(a: np.ndarray, b: np.ndarray) -> float:
    return float((np.abs(a.astype(np.int16) - b).max(axis=2) > CHANGED).mean())


@pytest.mark.parametrize("schema", ["tha1", "tha2"])
def test_pose_vectors_of_a_motion_redraw_its_clip(library, tmp_path, schema, gl_context):  # noqa: F811
    root, index = library
    entry = entry_of(index)
    motion = tmp_path / "face.vmd"
    motion.write_bytes(expression_motion(entry, eyes=schema != "tha1"))
    common = [motion, "--model-id", MODEL_ID, "--index", index, "--root", root,
              "--schema", schema, "--frames", "0:12", "--fps", 10]
    clip = run(main, ["clip", *common, "-o", tmp_path / "clip.h5", "--size", SIZE])
    assert clip.exit_code == 0, clip.output
    track = run(main, ["motion2pose", *common, "-o", tmp_path / "track.csv"])
    assert track.exit_code == 0, track.output
    assert "no value needed clipping" in track.output
    with open(tmp_path / "track.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["frame"]) for r in rows] == [0.0, 3.0, 6.0, 9.0, 12.0]
    last = {k: float(v) for k, v in rows[-1].items() if k != "frame"}
    wink = "eye_left" if schema == "tha1" else "eye_wink_left"
    mouth = "mouth" if schema == "tha1" else "mouth_aaa"
    assert (last[wink], last[mouth], last["head_x"], last["head_y"], last["neck_z"]) == \
        pytest.approx((0.8, 1.0, 0.4, 0.6, -0.5), abs=1e-4)
    if schema == "tha2":
        assert (last["iris_rotation_x"], last["iris_rotation_y"]) == \
            pytest.approx((-0.5, 0.5), abs=1e-4)
    rig_path = tmp_path / "rig.json"
    rig_path.write_text(json.dumps(rig_of(entry).to_dict(), ensure_ascii=False), "utf-8")
    model_path = root / entry.path
    centre_x = head_centre_x(load(model_path))
    images = list(clip_images(tmp_path / "clip.h5"))
    rest = images[0]
    for i in (1, 2, 4):  # frames 3, 6 and 12
        values = ",".join(f"{k}={v}" for k, v in rows[i].items() if k != "frame")
        extra = ["--rig", rig_path] if schema != "tha1" else [
            "--map", f"wink_left={entry.wink_left},wink_right={entry.wink_right},"
                     f"mouth_open={entry.mouth_open}"]
        out = tmp_path / f"redrawn{i}.png"
        result = run(mmdrender_main, ["render", model_path, "-o", out, "--schema", schema,
                                      "--pose", values, "--head-top", entry.head_top_y,
                                      "--head-bottom", entry.head_bottom_y, "--centre-x",
                                      centre_x, "--size", SIZE, *extra])
        assert result.exit_code == 0, result.output
        from PIL import Image

        redrawn = np.asarray(Image.open(out))
        assert changed_share(images[i], rest) > 0.02, "the motion moved nothing visible"
        assert changed_share(redrawn, images[i]) < 0.003, f"frame {i} of the {schema} clip"


def test_the_clip_shard_holds_frames_poses_cameras_and_the_face_mesh(library, tmp_path,
                                                                      gl_context):  # noqa: F811
    root, index = library
    entry = entry_of(index)
    motion = tmp_path / "face.vmd"
    lean = turn_about("z", 20.0)  # the upper body leans: the head moves, the camera follows
    motion.write_bytes(vmd_bytes("m", [
        BoneKey("上半身", 0), BoneKey("上半身", 9, rotation=stored(lean)),
        BoneKey("頭", 0), BoneKey("頭", 9, rotation=stored(turn_about("y", 40.0)))]))
    out = tmp_path / "clip.h5"
    result = run(main, ["clip", motion, "--model-id", MODEL_ID, "--index", index, "--root",
                        root, "-o", out, "--size", 64, "--schema", "tha2",
                        "--video", tmp_path / "clip.mp4"])
    assert result.exit_code == 0, result.output
    assert "wrote 10 frames (tha2, 64px" in result.output
    assert "clipped to their ranges (frames per parameter): head_y" in result.output
    clip = read_clip(out)
    assert len(clip) == 10 and clip.pose.shape == (10, 42) and clip.schema == "tha2"
    assert clip.frame.tolist() == list(range(10))
    assert clip.pose[-1, clip.parameters.index("head_y")] == 1.0  # 40° + lean: beyond 15°
    model = load(root / entry.path)
    head = model.weight_on(model.subtree(model.bone_index(HEAD_BONE))) > HEAD_WEIGHT
    assert clip.face_vertices.tolist() == np.flatnonzero(head).tolist()
    assert clip.face_faces.max() < len(clip.face_vertices)
    with h5py.File(out) as f:
        faces = f["face_positions"][:]
        assert f["images"].shape == (10, 64, 64, 4)
        assert f.attrs["camera_mode"] == "follow" and f.attrs["motion"] == "face.vmd"
        assert f.attrs["drawn_with"] == describe()
    rest = model.vertices.positions[clip.face_vertices]
    np.testing.assert_allclose(faces[0], rest, atol=1e-5)
    assert np.abs(faces[-1] - rest).max() > 0.5  # the head turned and moved
    # the camera followed the neck: it moved left with the lean, by the neck's shift
    skeleton = Skeleton(model.bones)
    rotations = np.tile([0, 0, 0, 1.0], (len(model.bones), 1))
    rotations[model.bone_index("上半身")] = lean
    _, moved = skeleton.global_transforms(rotations, np.zeros((len(model.bones), 3)))
    neck = model.bone_index("首")
    shift = moved[neck] - skeleton.positions[neck]
    np.testing.assert_allclose(clip.camera[-1, :2] - clip.camera[0, :2], shift[:2], atol=1e-6)
    assert shift[0] < -0.3
    import av

    with av.open(str(tmp_path / "clip.mp4")) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 10 and decoded[0].shape == (64, 64, 3)
    fixed = run(main, ["clip", motion, "--model-id", MODEL_ID, "--index", index, "--root", root,
                       "-o", tmp_path / "fixed.h5", "--size", 32, "--camera", "fixed"])
    assert fixed.exit_code == 0, fixed.output
    fixed_camera = read_clip(tmp_path / "fixed.h5").camera
    np.testing.assert_allclose(fixed_camera, np.tile(clip.camera[0], (10, 1)), atol=1e-6)
    first = next(iter(clip_images(out)))
    alpha = first[..., 3:] / 255.0
    over_white = first[..., :3] * alpha + 255 * (1 - alpha)
    assert np.abs(decoded[0] - over_white).mean() < 6


def test_a_stopped_clip_goes_on_and_ends_as_an_unbroken_run(library, tmp_path, gl_context,  # noqa: F811
                                                             monkeypatch):
    root, index = library
    entry = entry_of(index)
    motion = tmp_path / "face.vmd"
    motion.write_bytes(expression_motion(entry))
    frames = tuple(float(f) for f in range(0, 13))  # 13 frames: one full part and one short

    def job(out):
        return ClipJob(motion=motion, entry=entry, model_path=root / entry.path,
                       models_root=root, out=out, schema="tha1", frames=frames, size=48)

    whole = render_clip(job(tmp_path / "whole.h5"))
    assert whole.frames == 13 and whole.resumed == 0

    class Stop(Exception):
        pass

    def stop(_):
        raise Stop

    out = tmp_path / "stopped.h5"
    from pipeline import clips

    monkeypatch.setattr(clips, "CHUNK_FRAMES", 5)
    with pytest.raises(Stop):
        render_clip(job(out), progress=stop)
    assert not out.exists() and len(list((tmp_path / "stopped.h5.parts").glob("*.npz"))) == 1
    monkeypatch.setattr(clips, "describe", lambda: "Another GPU, driver 1")  # resumed elsewhere
    again = render_clip(job(out))
    assert again.resumed == 5 and out.exists()
    assert not (tmp_path / "stopped.h5.parts").exists()
    written = out.stat().st_mtime_ns
    kept = render_clip(job(out))  # finished with the same settings: nothing to do
    assert kept.resumed == 13 and out.stat().st_mtime_ns == written
    with h5py.File(out) as a, h5py.File(tmp_path / "whole.h5") as b:
        for name in ("images", "pose", "frame", "camera", "face_positions"):
            assert np.array_equal(a[name][:], b[name][:]), name
        assert a.attrs["drawn_with"] == "; ".join(sorted(["Another GPU, driver 1", describe()]))


def _one_error_line(result, *expected):
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for text in expected:
        assert text in lines[0], lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["motion2pose", "clip"])
@pytest.mark.parametrize("content, expected", [
    (b"", "the file is empty"),
    (b"Vocaloid Motion Data 0002\0\0\0\0\0abc", "file ends early"),
    (b"Some other file format entirely, nothing like a motion" * 3, "not a VMD motion"),
    (vmd_bytes("m", [BoneKey("頭", 0)])[:50] + b"\xff\xff\xff\x7f", "claims 2147483647 keys"),
    (vmd_bytes("robot", [BoneKey("arm_joint_1", 0), BoneKey("gripper", 5)]),
     "is for another model (made for 'robot')"),
])
def test_bad_motions_give_one_error_line(library, tmp_path, command, content, expected):
    root, index = library
    motion = tmp_path / "bad.vmd"
    motion.write_bytes(content)
    out = tmp_path / ("out.csv" if command == "motion2pose" else "out.h5")
    result = run(main, [command, motion, "--model-id", MODEL_ID, "--index", index, "--root",
                        root, "-o", out])
    _one_error_line(result, expected)
    if "another model" in expected:
        assert "missing: arm_joint_1, gripper" in result.output
    assert not out.exists()


def test_a_motion_that_drives_nothing_the_schema_poses_says_so(library, tmp_path):
    root, index = library
    motion = tmp_path / "legs.vmd"
    motion.write_bytes(vmd_bytes("m", [BoneKey("左腕", 0), BoneKey("左腕", 10, rotation=stored(
        turn_about("x", 30.0)))]))
    result = run(main, ["motion2pose", motion, "--model-id", MODEL_ID, "--index", index,
                        "--root", root, "-o", tmp_path / "t.npy", "--schema", "tha3"])
    assert result.exit_code == 1
    assert "error: legs.vmd drives nothing the tha3 schema poses" in result.output
    assert "左腕" in result.output and not (tmp_path / "t.npy").exists()


def test_motion2pose_writes_npy_and_counts_what_it_clipped(library, tmp_path):
    root, index = library
    motion = tmp_path / "turn.vmd"
    motion.write_bytes(vmd_bytes("m", [
        BoneKey("頭", 0), BoneKey("頭", 10, rotation=stored(turn_about("y", 30.0))),
        BoneKey("上半身", 0, rotation=stored(turn_about("y", -7.5)))],
        [MorphKey("まばたき", 0, 1.0), MorphKey("ない", 0, 1.0), MorphKey("真面目", 0, 0.5)]))
    out = tmp_path / "t.npy"
    result = run(main, ["motion2pose", motion, "--model-id", MODEL_ID, "--index", index,
                        "--root", root, "-o", out, "--schema", "tha3"])
    assert result.exit_code == 0, result.output
    values = np.load(out)
    assert values.shape == (11, 45) and values.dtype == np.float32
    names = list(SCHEMAS["tha3"].names)
    head_y, body_y = values[:, names.index("head_y")], values[:, names.index("body_y")]
    assert body_y == pytest.approx(-0.5, abs=1e-5)
    assert head_y[5] == pytest.approx(1.0) and head_y[0] == pytest.approx(0.0, abs=1e-6)
    # 0..30° in 10 frames, relative to the body's -7.5°: beyond 15° from frame 5 on
    assert "clipped to their ranges (frames per parameter): head_y 5" in result.output
    # the both-eyes morph closes both eyes; the eyebrow morph serves both sides
    for name in ("eye_wink_left", "eye_wink_right"):
        assert values[0, names.index(name)] == pytest.approx(1.0)
    assert values[0, names.index("eyebrow_serious_left")] == pytest.approx(0.5)
    assert "1 morphs not in the model: ない" in result.output


@pytest.mark.parametrize("path", REAL or [None], ids=lambda p: p.parent.name if p else "none")
def test_the_shared_motion_and_pose_move_every_real_model(path, gl_context):  # noqa: F811
    if path is None or not MOTIONS.is_dir():
        pytest.skip("../shared is absent (as on a user's machine)")
    model = load(path)
    poser = Poser(model, MorphMapping(None, None, None))
    skeleton = Skeleton(model.bones)
    top, bottom, centre = estimate_head_bounds(model)
    camera = Camera.framing("upper_body", top, bottom, centre, 96)
    rest = render(model, camera)
    head = model.bone_index(HEAD_BONE)
    only_head = np.flatnonzero((model.vertices.bone_indices[:, 0] == head)
                               & (model.vertices.bone_weights[:, 0] >= 1.0))
    for name, frame in (("test.vmd", 12), ("test.vpd", 0)):
        bound = Motion.load(MOTIONS / name).bind(model)
        bound.check_matches()
        assert {"頭", "首", "上半身"} <= set(bound.matched_bones), bound.summary()
        rotations, translations, weights = bound.evaluate([frame])
        posed = poser.pose_bones(rotations[0], translations[0], weights[0])
        global_r, global_t = skeleton.global_transforms(rotations[0], translations[0])
        rest_head = model.vertices.positions[only_head].astype(np.float64)
        expected = (rest_head - skeleton.positions[head]) @ global_r[head].T + global_t[head]
        np.testing.assert_allclose(posed.positions[only_head], expected, atol=1e-3)
        turned = math.degrees(math.acos(np.clip((np.trace(global_r[head]) - 1) / 2, -1, 1)))
        assert turned > 2.0, f"{name}: the head barely turned"
        image = render(posed, camera)
        assert image[..., 3].any() and changed_share(image, rest) > 0.01, name



def test_a_dataset_takes_its_poses_from_the_frames_of_real_motions(library, tmp_path):
    root, index = library
    motions = tmp_path / "motions"
    (motions / "poses").mkdir(parents=True)
    nod = turn_about("y", 7.5)  # head_y = 0.5
    from mmdrender.formats.vmd_writer import vpd_text

    (motions / "poses" / "look.vpd").write_bytes(vpd_text("m.pmx", [BoneKey("頭", 0,
                                                   rotation=stored(nod))]))
    (motions / "tilt.vmd").write_bytes(vmd_bytes("m", [
        BoneKey("首", 0), BoneKey("首", 30, rotation=stored(turn_about("z", -15.0)))]))
    args = ["dataset", "--index", index, "--root", root, "--examples-per-model", 12,
            "--size", 32, "--msaa", 0, "--workers", 1, "--motions", motions]
    first = run(main, [*args, "--out", tmp_path / "a"])
    assert first.exit_code == 0, first.output
    again = run(main, [*args, "--out", tmp_path / "b"])
    assert again.exit_code == 0, again.output
    verified = run(main, ["verify", tmp_path / "a"])
    assert verified.exit_code == 0, verified.output
    assert "poses from motions" in verified.output
    shards = sorted((tmp_path / "a").glob("*.h5"))
    looks = tilts = 0
    for shard in shards:
        with h5py.File(shard) as f, h5py.File(tmp_path / "b" / shard.name) as g:
            poses = f["pose"][()]
            assert np.array_equal(poses, g["pose"][()])  # seeded: the same draws again
            settings = json.loads(f.attrs["renderer"])["poses"]
            assert settings["source"] == "motions"
            assert [m["file"] for m in settings["motions"]] == ["poses/look.vpd", "tilt.vmd"]
        eyes_mouth, head_x, head_y, neck_z = poses[:, :3], poses[:, 3], poses[:, 4], poses[:, 5]
        assert not eyes_mouth.any() and np.allclose(head_x, 0, atol=1e-6)
        look = np.isclose(head_y, 0.5, atol=1e-5) & np.isclose(neck_z, 0, atol=1e-6)
        tilt = np.isclose(head_y, 0, atol=1e-6) & (neck_z <= 1e-6) & (neck_z >= -1 - 1e-6)
        assert (look | tilt).all()
        # tilt frames: whole frames 0..30 of a linear 0 -> -15° roll
        frames = -neck_z[tilt] * 30
        assert np.allclose(frames, np.round(frames), atol=1e-3)
        looks, tilts = looks + look.sum(), tilts + tilt.sum()
    assert looks > 5 and tilts > 5


def test_long_motions_keep_exact_frame_numbers_and_absurd_ranges_are_refused(library,
                                                                           tmp_path):
    root, index = library
    motion = tmp_path / "long.vmd"
    motion.write_bytes(vmd_bytes("m", [BoneKey("頭", 0), BoneKey("頭", 12000, rotation=stored(
        turn_about("y", 10.0)))]))
    common = [motion, "--model-id", MODEL_ID, "--index", index, "--root", root]
    result = run(main, ["motion2pose", *common, "--frames", "10000:10001", "--fps", 120,
                        "-o", tmp_path / "t.csv"])
    assert result.exit_code == 0, result.output
    with open(tmp_path / "t.csv", encoding="utf-8") as f:
        frames = [row["frame"] for row in csv.DictReader(f)]
    assert frames == ["10000", "10000.25", "10000.5", "10000.75", "10001"]
    for command, out in (("motion2pose", "t2.csv"), ("clip", "c.h5")):
        result = run(main, [command, *common, "--frames", "0:1e10", "-o", tmp_path / out])
        _one_error_line(result, "more than 1000000", "choose a shorter range with --frames")


def test_a_stopped_clip_goes_on_whatever_the_motion_path_is_called(library, tmp_path,
                                                                   gl_context,  # noqa: F811
                                                                   monkeypatch):
    root, index = library
    entry = entry_of(index)
    (tmp_path / "m").mkdir()
    motion = tmp_path / "m" / "face.vmd"
    motion.write_bytes(expression_motion(entry))
    out = tmp_path / "clip.h5"

    def job(path):
        return ClipJob(motion=path, entry=entry, model_path=root / entry.path,
                       models_root=root, out=out, frames=tuple(range(8)), size=32)

    from pipeline import clips

    monkeypatch.setattr(clips, "CHUNK_FRAMES", 4)

    def stop(_):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        render_clip(job(motion), progress=stop)
    monkeypatch.chdir(tmp_path / "m")
    again = render_clip(job(Path("face.vmd")))  # relative, where the first was absolute
    assert again.resumed == 4
