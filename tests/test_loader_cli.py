"""``mmdrender info`` on models whose files break loaders: what the user reads and
the exit code."""

from __future__ import annotations

import json
import os
import sys

import pytest
from click.testing import CliRunner
from pmx_bytes import pmd_bone, triangle_pmd, triangle_pmx

from mmdrender.cli import main


def info(*args: str):
    return CliRunner().invoke(main, ["info", *args])


@pytest.fixture
def raw_shift_jis_texture(tmp_path):
    """A model whose texture 髪.png is on disk under its raw Shift-JIS bytes, as an
    unzip that ignores the archive's encoding leaves it."""
    if sys.getfilesystemencoding().lower() not in ("utf-8", "utf8"):
        pytest.skip("raw cp932 names need a bytes-transparent (utf-8) file system encoding")
    texture = tmp_path / os.fsdecode("髪.png".encode("cp932"))
    try:
        texture.write_bytes(b"not decoded by info")
    except OSError as error:
        pytest.skip(f"file system rejects the raw name: {error}")
    model = tmp_path / "m.pmx"
    model.write_bytes(triangle_pmx(textures=["髪.png"], texture=0))
    return model, texture


def test_info_json_is_valid_utf8_with_raw_shift_jis_file_names(raw_shift_jis_texture):
    model, texture = raw_shift_jis_texture
    result = info("--json", str(model))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout_bytes.decode("utf-8"))  # strict: raises if invalid
    paths = [t["path"] for t in summary["textures"] if t["reference"] == "髪.png"]
    assert paths == [str(texture)]  # the escape gives back the exact name
    assert os.path.exists(paths[0])


def test_info_text_is_valid_utf8_with_raw_shift_jis_file_names(raw_shift_jis_texture):
    model, _ = raw_shift_jis_texture
    result = info(str(model))
    assert result.exit_code == 0, result.output
    text = result.stdout_bytes.decode("utf-8")
    assert "髪.png -> " in text and "\\udc94\\udcaf.png" in text


def test_info_on_a_pmd_with_an_unknown_bone_type_warns(tmp_path):
    path = tmp_path / "m.pmd"
    path.write_bytes(triangle_pmd([pmd_bone("センター", 10)]))
    result = info(str(path))
    assert result.exit_code == 0, result.output
    assert "warning     bone 'センター' has unknown type 10" in result.output


def test_info_on_a_malformed_model_is_one_error_line(tmp_path):
    path = tmp_path / "m.pmx"
    path.write_bytes(triangle_pmx(vertex_size=4, indices=(0, 1, -1)))
    result = info(str(path))
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"error: {path}: a face refers to vertex -1 but the model "
                                     "has 3 vertices (0 to 2)")


def test_info_warns_about_a_texture_symlink_loop(tmp_path):
    try:
        (tmp_path / "loop.png").symlink_to("loop.png")
    except OSError as error:
        pytest.skip(f"cannot create symlinks here: {error}")
    path = tmp_path / "m.pmx"
    path.write_bytes(triangle_pmx(textures=["loop.png"], texture=0))
    result = info("--json", str(path))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert [t["reference"] for t in summary["missing_textures"]] == ["loop.png"]
    assert "symlink loop" in summary["missing_textures"][0]["problem"]
