"""`mmdrender render`: one image or a pose contact sheet, and one-line errors."""

from __future__ import annotations

import shutil

import numpy as np
import pmx_bytes
import pytest
from click.testing import CliRunner
from conftest import shared_model
from conftest_gl import gl_context  # noqa: F401  (a fixture)
from PIL import Image

from mmdrender.cli import main
from mmdrender.samples import sample_truth, write_sample

ESTIMATE = "framing from estimated head bounds"


@pytest.fixture(scope="session")
def akane(tmp_path_factory):
    """One sample character, written once for the session."""
    return write_sample("akane", tmp_path_factory.mktemp("cli_samples"))


@pytest.fixture(scope="module")
def bounds():
    truth = sample_truth("akane")
    return ["--head-top", truth.head_top_y, "--head-bottom", truth.head_bottom_y]


def run(*args):
    return CliRunner().invoke(main, ["render", *map(str, args)])


def read(path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.mode == "RGBA"
        return np.asarray(image)


def assert_one_line_error(result):
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.output
    return errors[0]


def test_render_writes_a_256_rgba_png_with_a_transparent_background(akane, tmp_path, bounds,
                                                                    gl_context):  # noqa: F811
    out = tmp_path / "out.png"
    result = run(akane, "-o", out, *bounds)
    assert result.exit_code == 0, result.output
    assert ESTIMATE not in result.stderr
    image = read(out)
    assert image.shape == (256, 256, 4)
    for corner in (image[0, 0], image[0, -1], image[-1, 0], image[-1, -1]):
        assert not corner.any()
    assert not image[image[..., 3] == 0].any()
    # Framed on the sample's true head: hair top on row 64, nothing above it.
    opaque_rows = np.nonzero(image[..., 3].any(axis=1))[0]
    assert opaque_rows.min() in (63, 64)


def test_pose_and_morph_options_change_the_image(akane, tmp_path, bounds,
                                                 gl_context):  # noqa: F811
    rest, posed = tmp_path / "rest.png", tmp_path / "posed.png"
    assert run(akane, "-o", rest, *bounds).exit_code == 0
    result = run(akane, "-o", posed, *bounds, "--pose", "eye_left=1, head_y=-0.5",
                 "--morph", "照れ=1", "--map", "wink_left=ウィンク,wink_right=ウィンク右")
    assert result.exit_code == 0, result.output
    a, b = read(rest), read(posed)
    assert (a != b).any(axis=-1).sum() > 1000


def test_antialiasing_options(akane, tmp_path, bounds, gl_context):  # noqa: F811
    """Default: smoothed edges (partial alpha); --supersample 1 --msaa 0: hard edges."""
    smooth, hard, msaa = tmp_path / "smooth.png", tmp_path / "hard.png", tmp_path / "msaa.png"
    assert run(akane, "-o", smooth, *bounds).exit_code == 0
    assert run(akane, "-o", hard, *bounds, "--supersample", 1, "--msaa", 0).exit_code == 0
    assert run(akane, "-o", msaa, *bounds, "--supersample", 1, "--msaa", 4).exit_code == 0
    partial = {name: int(((a := read(path)[..., 3]) > 0).sum() - (a == 255).sum())
               for name, path in (("smooth", smooth), ("hard", hard), ("msaa", msaa))}
    assert partial["hard"] == 0
    assert partial["smooth"] > 300 and partial["msaa"] > 300, partial


def test_size_128(akane, tmp_path, gl_context):  # noqa: F811
    out = tmp_path / "small.png"
    result = run(akane, "-o", out, "--size", 128, "--shading", "toon")
    assert result.exit_code == 0, result.output
    image = read(out)
    assert image.shape == (128, 128, 4) and not image[0, 0].any()
    assert image[..., 3].any()


def test_without_bounds_the_estimate_is_announced_on_stderr(akane, tmp_path,
                                                            gl_context):  # noqa: F811
    result = run(akane, "-o", tmp_path / "e.png", "--size", 64)
    assert result.exit_code == 0, result.output
    assert ESTIMATE in result.stderr and ESTIMATE not in result.stdout
    truth = sample_truth("akane")
    assert f"{truth.head_bottom_y:.4g}" in result.stderr  # the estimated chin, printed


def test_sheet_is_a_larger_labelled_grid(akane, tmp_path, bounds, gl_context):  # noqa: F811
    single, sheet = tmp_path / "one.png", tmp_path / "sheet.png"
    assert run(akane, "-o", single, *bounds, "--size", 64).exit_code == 0
    result = run(akane, "-o", sheet, *bounds, "--size", 64, "--sheet")
    assert result.exit_code == 0, result.output
    with Image.open(sheet) as image:
        assert image.width > 3 * 64 and image.height > 4 * 64
        pixels = np.asarray(image.convert("RGB"))
    assert sheet.stat().st_size > single.stat().st_size
    # An opaque light-grey page with 12 different cells on it.
    assert (pixels[0, 0] > 200).all()
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 500


def test_sheet_cells_a_model_cannot_pose_become_notes(akane, tmp_path, bounds,
                                                      gl_context):  # noqa: F811
    result = run(akane, "-o", tmp_path / "s.png", *bounds, "--size", 32, "--sheet",
                 "--map", "wink_left=")
    assert result.exit_code == 0, result.output
    assert "warning: sheet cell eye_left=1" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--pose", "head_z=1"], "unknown pose parameter 'head_z'"),
    (["--pose", "head_x"], "expected NAME=VALUE"),
    (["--pose", "head_x=up"], "must be a number"),
    (["--pose", "head_x=nan"], "finite"),
    (["--pose", "head_x=2"], "outside its range"),
    (["--morph", "nosuchmorph=1"], "no morph 'nosuchmorph'"),
    (["--morph", "あ"], "expected NAME=WEIGHT"),
    (["--map", "wink_up=x"], "unknown --map field"),
    (["--map", "wink_left=", "--pose", "eye_left=1"], "MorphMapping.wink_left is None"),
    (["--head-top", "1", "--head-bottom", "2"], "must be above"),
    (["--head-top", "nan", "--head-bottom", "2"], "finite"),
    (["--head-top", "19"], "give both --head-top and --head-bottom"),
])
def test_bad_input_is_one_error_line(akane, tmp_path, args, message,
                                     gl_context):  # noqa: F811
    out = tmp_path / "x.png"
    line = assert_one_line_error(run(akane, "-o", out, *args))
    assert message in line
    assert not out.exists()


def test_unreadable_model_is_one_error_line(tmp_path):
    path = tmp_path / "broken.pmx"
    path.write_bytes(b"hello world")
    assert "not an MMD model" in assert_one_line_error(run(path, "-o", tmp_path / "x.png"))
    assert "no such file" in assert_one_line_error(run(tmp_path / "none.pmx", "-o",
                                                       tmp_path / "x.png"))


def test_a_model_without_a_head_bone_needs_bounds(tmp_path, gl_context):  # noqa: F811
    path = tmp_path / "triangle.pmx"
    path.write_bytes(pmx_bytes.triangle_pmx())
    line = assert_one_line_error(run(path, "-o", tmp_path / "x.png"))
    assert "頭" in line and "give head bounds explicitly" in line


def test_an_unwritable_output_is_one_error_line(akane, tmp_path, bounds,
                                                gl_context):  # noqa: F811
    line = assert_one_line_error(run(akane, "-o", tmp_path / "no" / "dir" / "x.png", *bounds))
    assert "cannot write" in line


def test_usage_errors_exit_2(akane, tmp_path):
    assert run(akane).exit_code == 2  # no -o
    assert run(akane, "-o", tmp_path / "x.png", "--size", 0).exit_code == 2
    assert run(akane, "-o", tmp_path / "x.png", "--shading", "flat").exit_code == 2


def test_a_real_model_renders_from_the_command_line(tmp_path, gl_context):  # noqa: F811
    out = tmp_path / "miku.png"
    result = run(shared_model("animasa_miku_v2/miku_v2.pmd"), "-o", out, "--size", 128,
                 "--pose", "eye_left=1,mouth=1,head_x=0.5")
    assert result.exit_code == 0, result.output
    image = read(out)
    assert image.shape == (128, 128, 4) and not image[0, 0].any() and image[..., 3].any()


def test_textures_that_cannot_be_decoded_are_warnings_naming_the_file(akane, tmp_path, bounds,
                                                                       gl_context):  # noqa: F811
    copy = tmp_path / "akane"
    shutil.copytree(akane.parent, copy)
    broken = sorted(copy.glob("*.png"))[0]
    broken.write_bytes(b"garbage")
    result = run(copy / akane.name, "-o", tmp_path / "out.png", *bounds)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert any(broken.name in line and "cannot decode texture" in line for line in warnings), \
        result.stderr
    assert "<_io" not in result.stderr


def test_head_bounds_that_frame_nothing_are_an_error_or_a_warning(akane, tmp_path,
                                                                  gl_context):  # noqa: F811
    tiny = run(akane, "-o", tmp_path / "tiny.png", "--head-top", "1e-39", "--head-bottom", "0")
    assert "too small to draw" in assert_one_line_error(tiny)
    far = run(akane, "-o", tmp_path / "far.png", "--head-top", "1000", "--head-bottom", "990")
    assert far.exit_code == 0, far.output
    assert "warning: the image is empty" in far.stderr


def test_samples_into_an_unusable_folder_is_one_error_line(tmp_path):
    (tmp_path / "afile").write_text("x")
    result = CliRunner().invoke(main, ["samples", str(tmp_path / "afile" / "sub")])
    assert "cannot write the samples" in assert_one_line_error(result)
