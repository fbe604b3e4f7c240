"""`mmdrender info`: what a data engineer sees, and what scripts read."""

from __future__ import annotations

import json

import pmx_bytes
import pytest
from click.testing import CliRunner
from conftest import shared_model

from mmdrender.cli import main

JSON_KEYS = {"format", "vertices", "faces", "materials", "bones", "morphs", "has_neck_bone",
             "has_head_bone", "missing_textures", "warnings"}


def run(*args):
    return CliRunner().invoke(main, list(map(str, args)))


def test_info_reports_a_missing_head_bone(tmp_path):
    path = tmp_path / "triangle.pmx"
    path.write_bytes(pmx_bytes.triangle_pmx())
    result = run("info", path)
    assert result.exit_code == 0
    assert "MISSING (首)" in result.output and "head bone MISSING (頭)" in result.output


def test_info_json_on_a_real_model():
    result = run("info", shared_model("animasa_miku_v2/miku_v2.pmd"), "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert JSON_KEYS <= info.keys()
    assert (info["format"], info["vertices"], info["faces"], info["materials"], info["bones"]) == \
        ("pmd 1.0", 12354, 22961, 17, 140)
    assert info["has_neck_bone"] and info["has_head_bone"]
    assert "まばたき" in info["morphs_by_panel"]["eye"]
    assert "あ" in info["morphs_by_panel"]["mouth"]
    assert info["missing_textures"] == [] and info["warnings"] == []


def test_info_text_reports_missing_textures():
    result = run("info", shared_model("_robustness/yw_test_model.pmx"))
    assert result.exit_code == 0
    assert "MISSING tex/diffuse.png" in result.output
    assert "head bone yes (頭)" in result.output


def test_info_json_lists_missing_textures():
    result = run("info", shared_model("_robustness/yw_test_model.pmx"), "--json")
    info = json.loads(result.output)
    assert {t["reference"] for t in info["missing_textures"]} == {"tex/diffuse.png", "tex/sph.png"}
    assert info["has_head_bone"] and info["morphs"] == 0


@pytest.mark.parametrize("content, reason", [
    (b"", "the file is empty"),
    (b"hello world", "not an MMD model"),
    (b"PMX \x00\x00\x00\x40\x08", "ends early"),
])
def test_info_on_an_unreadable_file_is_one_line_and_exit_1(tmp_path, content, reason):
    path = tmp_path / "broken.pmx"
    path.write_bytes(content)
    result = run("info", path)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and reason in lines[0]
    assert str(path) in lines[0]
