"""A library of ten sources, as a new user has (issue 13): splits it can actually
get, and scans that leave folders out."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from pipeline.cli import main
from pipeline.index import ModelEntry, read_index, write_index

SOURCES = [f"maker{i:02d}" for i in range(10)]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def library(tmp_path: Path) -> Path:
    """10 sources, one model each but maker00 (three): too few for a 5% test share."""
    entries = [ModelEntry(model_id=f"{s}-{n}", path=f"{s}/{n}.pmx", source=s)
               for s in SOURCES for n in (("a", "b", "c") if s == "maker00" else ("a",))]
    index = tmp_path / "index.csv"
    write_index(index, entries)
    return index


def splits_of(index: Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for e in read_index(index):
        out.setdefault(e.split, set()).add(e.source)
    return out


def test_few_sources_get_every_split_with_every_split_and_the_warning_stays_without(tmp_path):
    index = library(tmp_path)
    plain = run("split", "--index", index)
    assert plain.exit_code == 0, plain.output
    assert "warning: the test split got no model" in plain.stderr
    assert "pass --every-split, --assign sources to it" in plain.stderr
    assert set(splits_of(index)) == {"train", "validation"}
    fixed = run("split", "--index", index, "--reassign", "--every-split")
    assert fixed.exit_code == 0, fixed.output
    assert "warning" not in fixed.stderr
    groups = splits_of(index)
    assert len(groups["validation"]) == len(groups["test"]) == 1
    assert len(groups["train"]) == 8 and "maker00" in groups["train"]  # the big one trains
    again = run("split", "--index", index, "--reassign", "--every-split")
    assert splits_of(index) == groups and again.exit_code == 0  # seeded: the same


def test_sources_can_be_put_in_a_split_by_name_or_model_pattern(tmp_path):
    index = library(tmp_path)
    result = run("split", "--index", index, "--assign", "validation=MAKER03,maker04",
                 "--assign", "test=maker0[89]-a")
    assert result.exit_code == 0, result.output
    groups = splits_of(index)
    assert groups["validation"] == {"maker03", "maker04"}
    assert groups["test"] == {"maker08", "maker09"}
    assert "warning" not in result.stderr
    # a pattern that matches nothing, or one source asked into two splits: one error line
    for args, words in ((["--assign", "test=nobody"], "no source or model_id matches it"),
                        (["--assign", "test=maker05", "--assign", "validation=maker0*"],
                         "puts one source in several splits"),
                        (["--assign", "dev=maker05"], "write SPLIT=PATTERN")):
        bad = run("split", "--index", index, *args)
        assert bad.exit_code == 1 and bad.stderr.startswith("error: ") and words in bad.stderr


def test_scan_leaves_out_the_folders_and_files_it_is_told_to(tmp_path):
    root = tmp_path / "models"
    for relative in ("a/m.pmx", "_robustness/broken.pmx", "b/old/m.pmd", "b/new/m.pmd",
                     "c/test_copy.pmx"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(relative.encode())
    index = tmp_path / "index.csv"
    result = run("scan", root, "--index", index, "--exclude", "_robustness",
                 "--exclude", "*/old", "--exclude", "*test_*")
    assert result.exit_code == 0, result.output
    assert sorted(e.path for e in read_index(index)) == ["a/m.pmx", "b/new/m.pmd"]
    assert "added 2 model(s), 0 already indexed, 3 file(s) excluded" in result.output


def test_every_split_never_leaves_train_without_a_source(tmp_path):
    entries = [ModelEntry(model_id=f"{s}-a", path=f"{s}/a.pmx", source=s) for s in ("x", "y")]
    index = tmp_path / "index.csv"
    write_index(index, entries)
    result = run("split", "--index", index, "--every-split", "--fractions", "0.8,0.1,0.1")
    assert result.exit_code == 0, result.output
    groups = splits_of(index)
    assert len(groups["train"]) == 1 and len(groups["validation"]) == 1
    assert "warning: the test split got no model" in result.stderr  # kept: too few sources
