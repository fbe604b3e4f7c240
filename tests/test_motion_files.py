"""Motion (VMD) and pose (VPD) files: read, matched and evaluated (issue 11).

Motions with known keys and curves are written through the project's writer
and evaluated at keys and between them; the expected values are worked out
here independently (the Bézier curve sampled densely, rotations about one
axis), in the project frame (MMD's z mirrored). The shared sample files load,
including the interpolation rows MMD fills with physics flags.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_MODELS

from mmdrender.errors import MotionError
from mmdrender.formats.vmd import read_vmd
from mmdrender.formats.vmd_writer import BoneKey, MorphKey, interpolation_bytes, vmd_bytes, vpd_text
from mmdrender.motion import MAX_MOTION_BYTES, Motion, bezier, match_names

MOTIONS = SHARED_MODELS.parent / "motions"
EASE = (64, 0, 64, 127)  # a strong ease-in-out
LATE = (100, 10, 120, 60)  # slow start, never quite catching up until the end
EARLY = (5, 90, 30, 127)
PHYSICS = (99, 15)  # what MMD writes into row 0 bytes 2 and 3


def reference_curve(points, x: float) -> float:
    """MMD's Bézier y at ``x``, by sampling the curve densely (not the code's bisection)."""
    x1, y1, x2, y2 = (v / 127.0 for v in points)
    s = np.linspace(0.0, 1.0, 200_001)
    u = 1 - s
    xs = 3 * u * u * s * x1 + 3 * u * s * s * x2 + s ** 3
    ys = 3 * u * u * s * y1 + 3 * u * s * s * y2 + s ** 3
    return float(np.interp(x, xs, ys))


def file_quaternion(axis, degrees: float) -> tuple:
    """A rotation about ``axis`` written in MMD's frame (x, y of the quaternion as stored)."""
    half = math.radians(degrees) / 2
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    return (*(a * math.sin(half)), math.cos(half))


def angle_about(q: np.ndarray, axis) -> float:
    """Degrees of a project-frame quaternion about a project-frame axis (it must be that axis)."""
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    sine = float(np.dot(q[:3], a))
    assert np.allclose(q[:3], a * sine, atol=1e-6), f"{q} does not turn about {axis}"
    return math.degrees(2 * math.atan2(sine, q[3]))


def write(tmp_path: Path, data: bytes, name: str = "m.vmd") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


class FakeModel:
    """What binding needs of a model: bone and morph names."""

    def __init__(self, bones, morphs=()):
        from types import SimpleNamespace

        self.bones = [SimpleNamespace(name=n) for n in bones]
        self.morphs = [SimpleNamespace(name=n) for n in morphs]
        self.path = Path("fake.pmx")


def test_bone_keys_follow_their_curves_between_keys(tmp_path):
    curves = (EASE, LATE, EARLY, LATE)  # x, y, z, rotation
    keys = [BoneKey("頭", 10, (0.0, 0.0, 0.0), file_quaternion((0, 1, 0), 0.0)),
            BoneKey("頭", 40, (3.0, -6.0, 9.0), file_quaternion((0, 1, 0), 60.0), curves),
            BoneKey("頭", 50, (3.0, -6.0, 9.0), file_quaternion((0, 1, 0), 60.0))]
    motion = Motion.load(write(tmp_path, vmd_bytes("test", keys, physics=PHYSICS)))
    bound = motion.bind(FakeModel(["センター", "頭"]))
    frames = np.array([0.0, 10.0, 17.5, 25.0, 31.0, 40.0, 45.0, 99.0])
    rotations, translations, _ = bound.evaluate(frames)
    for f, rotation, move in zip(frames, rotations[:, 1], translations[:, 1], strict=True):
        x = np.clip((f - 10) / 30, 0, 1) if f <= 40 else 1.0
        expected = [3.0 * reference_curve(EASE, x), -6.0 * reference_curve(LATE, x),
                    -9.0 * reference_curve(EARLY, x)]  # z mirrored into the project frame
        np.testing.assert_allclose(move, expected, atol=1e-4, err_msg=f"frame {f}")
        # MMD's +y turn is the project frame's -y turn (the mirror flips x and y rotations)
        assert angle_about(rotation, (0, 1, 0)) == pytest.approx(
            -60.0 * reference_curve(LATE, x), abs=1e-3), f"frame {f}"
    assert np.array_equal(rotations[:, 0], np.tile([0, 0, 0, 1.0], (len(frames), 1)))


def test_each_channel_is_read_from_its_own_row_not_row_zero():
    """MMD writes physics flags over row 0's bytes 2 and 3 (z's and rotation's x1)."""
    stored = interpolation_bytes((LINEAR_, LINEAR_, EASE, LATE), PHYSICS)
    assert tuple(stored[2:4]) == PHYSICS  # the trap is in the bytes
    data = vmd_bytes("m", [BoneKey("a", 0), BoneKey("a", 8, curves=(LINEAR_, LINEAR_, EASE,
                                                                    LATE))], physics=PHYSICS)
    curves = read_vmd(data).bones.values["curves"][1]
    assert [tuple(c) for c in curves] == [LINEAR_, LINEAR_, EASE, LATE]


LINEAR_ = (20, 20, 107, 107)


def test_rotation_is_spherical_and_takes_the_shorter_way(tmp_path):
    # 170 degrees then -170 (= +190): the shorter way passes through 180, not 0.
    keys = [BoneKey("首", 0, rotation=file_quaternion((0, 0, 1), 170.0)),
            BoneKey("首", 10, rotation=file_quaternion((0, 0, 1), -170.0))]
    bound = Motion.load(write(tmp_path, vmd_bytes("m", keys))).bind(FakeModel(["首"]))
    rotations, _, _ = bound.evaluate([0, 5, 10])
    angles = [abs(angle_about(q, (0, 0, 1))) for q in rotations[:, 0]]
    assert angles == pytest.approx([170.0, 180.0, 170.0], abs=0.5)
    # linear curve: a constant speed (a straight 4-component lerp would not keep it)
    keys = [BoneKey("首", 0, rotation=file_quaternion((1, 0, 0), 0.0)),
            BoneKey("首", 30, rotation=file_quaternion((1, 0, 0), 120.0))]
    bound = Motion.load(write(tmp_path, vmd_bytes("m", keys))).bind(FakeModel(["首"]))
    rotations, _, _ = bound.evaluate(np.arange(0, 31, 5))
    turned = [-angle_about(q, (1, 0, 0)) for q in rotations[:, 0]]  # x mirrored
    assert turned == pytest.approx(list(np.arange(0, 121, 20.0)), abs=0.05)


def test_morph_weights_interpolate_linearly_and_the_last_key_of_a_frame_wins(tmp_path):
    morphs = [MorphKey("あ", 20, 1.0), MorphKey("あ", 0, 0.0), MorphKey("まばたき", 5, 0.2),
              MorphKey("まばたき", 5, 0.8), MorphKey("あ", 30, 0.5)]
    bound = Motion.load(write(tmp_path, vmd_bytes("m", morphs=morphs))).bind(
        FakeModel([], ["まばたき", "あ"]))
    _, _, weights = bound.evaluate([0, 5, 10, 20, 25, 30, 60])
    np.testing.assert_allclose(weights[:, 1], [0.0, 0.25, 0.5, 1.0, 0.75, 0.5, 0.5], atol=1e-6)
    np.testing.assert_allclose(weights[:, 0], 0.8, atol=1e-6)


def test_bezier_matches_the_dense_reference_at_many_points():
    points = np.array([EASE, LATE, EARLY, LINEAR_], float) / 127.0
    x = np.linspace(0, 1, 41)
    got = bezier(points[:, None, :], x[None, :])
    for curve, row in zip((EASE, LATE, EARLY, LINEAR_), got, strict=True):
        np.testing.assert_allclose(row, [reference_curve(curve, v) for v in x], atol=2e-5)


def test_names_match_exactly_then_by_width_then_by_the_stored_15_bytes():
    long_name = "左スカート前ボーン先端"  # 22 Shift-JIS bytes: a VMD keeps 15
    stored = [n.encode("cp932") for n in ("頭", "ｳｨﾝｸ", "ＩＫ")] + \
        [long_name.encode("cp932")[:15], "ない".encode("cp932")]
    found = match_names(tuple(stored), ["IK", "頭", "ウィンク", long_name])
    assert found.tolist() == [1, 2, 0, 3, -1]


def test_a_long_name_written_to_a_vmd_finds_its_bone(tmp_path):
    long_name = "左スカート前ボーン先端"
    data = vmd_bytes("m", [BoneKey(long_name, 0, rotation=file_quaternion((0, 0, 1), 10.0)),
                           BoneKey("しっぽ", 0)], [MorphKey("ｳｨﾝｸ", 0, 1.0)])
    bound = Motion.load(write(tmp_path, data)).bind(FakeModel(["頭", long_name], ["ウィンク"]))
    assert bound.matched_bones == [long_name] and bound.matched_morphs == ["ウィンク"]
    assert bound.unmatched_bones == ["しっぽ"] and bound.unmatched_morphs == []
    assert "1 bones not in the model: しっぽ" in bound.summary()


def test_a_motion_for_another_model_names_the_missing_bones(tmp_path):
    data = vmd_bytes("other", [BoneKey("tail_1", 0), BoneKey("tail_2", 3)],
                     [MorphKey("smile", 0, 1.0)])
    bound = Motion.load(write(tmp_path, data)).bind(FakeModel(["頭", "首"], ["あ"]))
    with pytest.raises(MotionError, match=r"another model.*missing: tail_1, tail_2, smile"):
        bound.check_matches()


def test_a_pose_file_is_one_frame(tmp_path):
    bones = [BoneKey("頭", 0, (0.5, 0.0, 2.0), file_quaternion((0, 1, 0), 30.0)),
             BoneKey("右腕", 0, rotation=file_quaternion((0, 0, 1), -40.0))]
    path = write(tmp_path, vpd_text("model.pmx", bones, [MorphKey("あ", 0, 0.4)]), "p.vpd")
    motion = Motion.load(path)
    assert motion.kind == "vpd" and motion.last_frame == 0
    bound = motion.bind(FakeModel(["右腕", "頭"], ["あ"]))
    rotations, translations, weights = bound.evaluate([0, 10])
    for f in range(2):
        assert angle_about(rotations[f, 1], (0, 1, 0)) == pytest.approx(-30.0, abs=1e-3)
        assert angle_about(rotations[f, 0], (0, 0, 1)) == pytest.approx(-40.0, abs=1e-3)
        np.testing.assert_allclose(translations[f, 1], [0.5, 0.0, -2.0], atol=1e-6)
        assert weights[f, 0] == pytest.approx(0.4)


@pytest.mark.parametrize("damage, reason", [
    (lambda d: b"", "the file is empty"),
    (lambda d: d[:60], "bone keyframe section claims 2 keys"),
    (lambda d: d[:52], "file ends early in the bone keyframe count"),
    (lambda d: d[:20], "file ends early in the signature"),
    (lambda d: b"Vocaloid Motion Data 0003" + d[25:], "not a VMD motion"),
    (lambda d: b"PMX " + d[4:], "not a VMD motion"),
    (lambda d: d[:50] + (10**9).to_bytes(4, "little") + d[54:], "claims 1000000000 keys"),
])
def test_damaged_motions_say_what_is_wrong(tmp_path, damage, reason):
    good = vmd_bytes("m", [BoneKey("頭", 0), BoneKey("頭", 10)])
    with pytest.raises(MotionError, match=reason) as error:
        Motion.load(write(tmp_path, damage(good)))
    assert str(error.value).startswith(str(tmp_path / "m.vmd"))


def test_a_non_finite_key_is_refused(tmp_path):
    data = vmd_bytes("m", [BoneKey("頭", 0, rotation=(0.0, float("nan"), 0.0, 1.0))])
    with pytest.raises(MotionError, match=r"holds \[0, nan, 0, 1\]: not finite"):
        Motion.load(write(tmp_path, data))


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path, monkeypatch):
    import pathlib

    import mmdrender.files

    path = tmp_path / "huge.vmd"
    with open(path, "wb") as f:  # sparse: no disk used
        f.write(vmd_bytes("m", [BoneKey("頭", 0)]))
        f.truncate(MAX_MOTION_BYTES + 1)

    def no_reading(*args, **kwargs):
        raise AssertionError("the file was opened for reading before its size was checked")

    monkeypatch.setattr(mmdrender.files, "open", no_reading, raising=False)
    monkeypatch.setattr(pathlib.Path, "read_bytes", no_reading)
    with pytest.raises(MotionError, match="MiB, more than any motion"):
        Motion.load(path)
    assert os.stat(path).st_size > MAX_MOTION_BYTES


@pytest.mark.parametrize("key, words", [
    (BoneKey("頭", 0xFFFFFFFF), "at frame 4294967295, beyond any real motion"),
    (BoneKey("頭", 0, position=(3e38, 0.0, 0.0)), "beyond any real motion (|value| <= 1e+06)"),
    (MorphKey("あ", 0, -3e38), "morph keyframe 0 holds [-3e+38]"),
])
def test_numbers_no_real_motion_holds_are_refused(tmp_path, key, words):
    data = vmd_bytes("m", [key] if isinstance(key, BoneKey) else [],
                     [key] if isinstance(key, MorphKey) else [])
    with pytest.raises(MotionError) as error:
        Motion.load(write(tmp_path, data))
    assert words in str(error.value)


def test_damage_after_the_morph_keys_leaves_the_motion_usable(tmp_path):
    """The camera, light, shadow and IK sections are not used; other readers skip them."""
    good = vmd_bytes("m", [BoneKey("頭", 0), BoneKey("頭", 9)], [MorphKey("あ", 3, 0.5)],
                     tail=False)
    for tail in (b"\x01\x02", b"\xff\xff\xff\xff", b"\x00" * 12 + b"\x05\x00\x00\x00"):
        motion = Motion.load(write(tmp_path, good + tail))
        assert (len(motion.bones), len(motion.morphs), motion.last_frame) == (2, 1, 9)


def test_pose_files_in_utf8_without_a_count_or_with_old_mac_lines_read(tmp_path):
    bones = [BoneKey("センター", 0, (0.0, 1.0, 0.0)), BoneKey("頭", 0)]
    text = vpd_text("m.pmx", bones, [MorphKey("まばたき", 0, 0.0)]).decode("cp932")
    utf8 = text.encode("utf-8")  # センター and 頭 in UTF-8 are valid (other) cp932 text
    no_count = text.replace("\r\n2;\r\n", "\r\n").encode("cp932")
    old_mac = text.replace("\r\n", "\r").encode("cp932")
    for data in (utf8, no_count, old_mac):
        motion = Motion.load(write(tmp_path, data, "p.vpd"))
        bound = motion.bind(FakeModel(["頭", "センター"], ["まばたき"]))
        assert bound.unmatched_bones == [] and bound.matched_morphs == ["まばたき"]
        _, translations, _ = bound.evaluate([0])
        assert translations[0, 1].tolist() == [0.0, 1.0, 0.0]


def test_the_shared_motion_and_pose_load():
    if not MOTIONS.is_dir():
        pytest.skip("../shared/motions is absent (as on a user's machine)")
    motion = Motion.load(MOTIONS / "test.vmd")
    assert (len(motion.bones), len(motion.bones.names), len(motion.morphs)) == (1316, 188, 0)
    assert motion.last_frame == 24 and motion.model_name == "GirlsFrontline Qiuhu"
    # row 0 holds physics flags (0, 0) where the rotation curve's x1 is 42
    raw = read_vmd((MOTIONS / "test.vmd").read_bytes())
    assert tuple(raw.bones.values["curves"][1, 3]) == (42, 0, 85, 95)
    pose = Motion.load(MOTIONS / "test.vpd")
    assert len(pose.bones) == 188 and pose.kind == "vpd"
    assert pose.bones.names[2].decode("cp932") == "センター"
