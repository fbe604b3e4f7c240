"""The index against a real library: duplicate files, path aliases, sources,
odd file names and files that changed since they were indexed."""

from __future__ import annotations

import os
import unicodedata
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.errors import PipelineError
from pipeline.index import (
    ModelEntry,
    file_sha256,
    read_index,
    resolve_model_path,
    update_index,
    write_index,
)
from pipeline.roles import LEGACY_COLUMNS
from pipeline.splits import assign_splits, split_counts

HEADER = ",".join(LEGACY_COLUMNS)  # what a THA1-only index is written with


def run(*args):
    return CliRunner().invoke(main, list(map(str, args)))


def make_library(root: Path, files: dict[str, bytes] | list[str]) -> None:
    if isinstance(files, list):
        files = {name: f"model {name}".encode() for name in files}
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def entry(model_id: str, source: str, **fields) -> ModelEntry:
    return ModelEntry(model_id=model_id, path=f"{source}/{model_id}.pmx", source=source,
                      **fields)


def many_sources(n=12) -> list[ModelEntry]:
    return [entry(f"m{i}", f"source{i}", sha256=f"{i:064x}") for i in range(n)]


# ------------------------------------------------------------------ 1. identical files


def test_byte_identical_models_always_land_in_one_split():
    same = "a" * 64
    entries = [*many_sources(), entry("akane", "akane", sha256=same),
               entry("akane-again", "zz_reupload", sha256=same)]
    splits_seen = set()
    for seed in range(40):
        result = {e.model_id: e.split for e in assign_splits(entries, (0.5, 0.25, 0.25),
                                                              seed=seed)}
        assert result["akane"] == result["akane-again"], seed
        splits_seen.add(result["akane"])
    assert len(splits_seen) > 1  # the pair still moves between splits with the seed


def test_sources_sharing_files_are_joined_transitively():
    entries = [*many_sources(),
               entry("a1", "a", sha256="1" * 64), entry("a2", "a", sha256="2" * 64),
               entry("b1", "b", sha256="2" * 64), entry("b2", "b", sha256="3" * 64),
               entry("c1", "c", sha256="3" * 64)]
    for seed in range(40):
        result = assign_splits(entries, (0.4, 0.3, 0.3), seed=seed)
        assert len({e.split for e in result if e.source in "abc"}) == 1, seed


def test_a_new_copy_joins_the_split_of_the_indexed_one():
    same = "a" * 64
    entries = [entry("akane", "akane", split="test", sha256=same),
               entry("copy", "zz_reupload", sha256=same), entry("other", "other")]
    result = assign_splits(entries, (1.0, 0.0, 0.0))
    assert [e.split for e in result] == ["test", "test", "train"]


def test_kept_splits_that_separate_identical_files_are_refused():
    same = "a" * 64
    entries = [entry("akane", "akane", split="train", sha256=same),
               entry("copy", "zz_reupload", split="validation", sha256=same)]
    with pytest.raises(PipelineError, match=r"'akane', 'zz_reupload' \(they share a model "
                                            r"file\) in train, validation.*--reassign"):
        assign_splits(entries)
    assert len({e.split for e in assign_splits(entries, reassign=True)}) == 1


def test_rejected_copies_do_not_join_sources():
    same = "a" * 64
    entries = [entry("akane", "akane", split="train", sha256=same),
               entry("copy", "zz_reupload", split="", status="rejected", sha256=same),
               entry("other", "zz_reupload", split="validation")]
    assert [e.split for e in assign_splits(entries)] == ["train", "", "validation"]


@pytest.mark.parametrize("alias, normal", [
    ("akane/./akane.pmx", "akane/akane.pmx"),
    ("./akane//akane.pmx", "akane/akane.pmx"),
    ("akane/akane.pmx/", "akane/akane.pmx"),
    ("akane/x/../akane.pmx", "akane/akane.pmx"),
])
def test_path_aliases_are_refused_naming_the_normal_form(tmp_path, alias, normal):
    index = tmp_path / "i.csv"
    index.write_text(f"{HEADER}\na,{alias},akane,,auto,,,,,,,,,,,,\n", "utf-8")
    with pytest.raises(PipelineError, match=f"i.csv:2, column path: .*write it as '{normal}'"):
        read_index(index)
    with pytest.raises(PipelineError, match=f"write it as '{normal}'"):
        write_index(tmp_path / "j.csv", [ModelEntry("a", alias, "akane")])
    with pytest.raises(PipelineError, match=f"write it as '{normal}'"):
        resolve_model_path(ModelEntry("a", alias, "akane"), tmp_path)


def test_scan_skips_a_copy_of_an_indexed_file_unless_asked_to_keep_it(tmp_path):
    lib, index = tmp_path / "lib", tmp_path / "i.csv"
    make_library(lib, {"akane/akane.pmx": b"akane", "hinata/hinata.pmx": b"hinata"})
    assert run("scan", lib, "--index", index).exit_code == 0
    make_library(lib, {"zz_reupload/akane.pmx": b"akane", "zz_reupload/two.pmx": b"two",
                       "zz_reupload/two_copy.pmx": b"two"})
    result = run("scan", lib, "--index", index)
    assert result.exit_code == 0, result.output
    assert "skipped zz_reupload/akane.pmx: the same file as akane-akane (akane/akane.pmx)" \
        in result.output
    assert "skipped zz_reupload/two_copy.pmx: the same file as zz-reupload-two" in result.output
    assert "--keep-duplicates" in result.output
    assert "added 1 model(s), 2 already indexed, 2 duplicate file(s) skipped" \
        in result.output
    assert [e.path for e in read_index(index)] == \
        ["akane/akane.pmx", "hinata/hinata.pmx", "zz_reupload/two.pmx"]

    result = run("scan", lib, "--index", index, "--keep-duplicates")
    assert result.exit_code == 0, result.output
    assert "warning: zz_reupload/akane.pmx is the same file as akane-akane" in result.output
    entries = read_index(index)
    assert len(entries) == 5
    result = run("split", "--index", index, "--fractions", "0.34,0.33,0.33", "--seed", "1")
    assert result.exit_code == 0, result.output
    assert "warning: one file under several model ids" in result.output
    by_path = {e.path: e.split for e in read_index(index)}
    assert by_path["akane/akane.pmx"] == by_path["zz_reupload/akane.pmx"]
    assert by_path["zz_reupload/two.pmx"] == by_path["zz_reupload/two_copy.pmx"]


# ------------------------------------------------------------------ 2. sources


def test_the_source_is_the_first_folder_below_the_root_whatever_folder_is_scanned(tmp_path):
    lib, index = tmp_path / "lib2", tmp_path / "i.csv"
    make_library(lib, ["touhou/mokou/a.pmx", "touhou/reimu/y.pmx", "vocaloid/miku/k.pmx",
                       "loose.pmx"])
    assert run("scan", lib / "touhou" / "reimu", "--root", lib, "--index", index).exit_code == 0
    assert run("scan", lib / "touhou", "--root", lib, "--index", index).exit_code == 0
    assert run("scan", lib, "--index", index).exit_code == 0
    assert {e.path: e.source for e in read_index(index)} == {
        "touhou/reimu/y.pmx": "touhou", "touhou/mokou/a.pmx": "touhou",
        "loose.pmx": "lib2", "vocaloid/miku/k.pmx": "vocaloid"}


def test_source_names_are_normalised_and_compared_without_case(tmp_path):
    lib, index = tmp_path / "lib", tmp_path / "i.csv"
    nfd = unicodedata.normalize("NFD", "Pokémon")
    make_library(lib, ["Touhou/a.pmx", f"{nfd}/p.pmx"])
    assert run("scan", lib, "--index", index).exit_code == 0
    make_library(lib, ["touhou/b.pmx", " TOUHOU /c.pmx", "pokémon/q.pmx"])
    assert run("scan", lib, "--index", index).exit_code == 0
    sources = {e.path: e.source for e in read_index(index)}
    assert sources[f"{nfd}/p.pmx"] == unicodedata.normalize("NFC", "Pokémon")
    assert {sources["Touhou/a.pmx"], sources["touhou/b.pmx"], sources[" TOUHOU /c.pmx"]} == \
        {"Touhou"}  # the first spelling is kept
    assert sources["pokémon/q.pmx"] == "Pokémon"


def test_splits_group_source_spellings_that_differ_only_in_case_space_or_form():
    spellings = ["Touhou", "touhou ", "TOUHOU", " touhou", "ＴＯＵＨＯＵ",
                 unicodedata.normalize("NFD", "Pokémon"), "pokémon"]
    entries = [*many_sources(),
               *[entry(f"t{i}", source) for i, source in enumerate(spellings)]]
    for seed in range(30):
        result = assign_splits(entries, (0.4, 0.3, 0.3), seed=seed)
        splits = {e.source: e.split for e in result}
        assert len({splits[s] for s in spellings[:5]}) == 1, seed
        assert len({splits[s] for s in spellings[5:]}) == 1, seed
    counts = split_counts(assign_splits(entries, (1.0, 0.0, 0.0)))
    assert counts["train"].sources == 12 + 2


# ------------------------------------------------------------------ 3. odd files


def test_a_broken_link_is_skipped_with_its_reason_and_the_rest_is_saved(tmp_path):
    lib, index = tmp_path / "lib", tmp_path / "i.csv"
    make_library(lib, ["a/good.pmx", "c/fine.pmd"])
    (lib / "b").mkdir()
    os.symlink(lib / "nowhere.pmx", lib / "b" / "broken.pmx")
    result = run("scan", lib, "--index", index)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "skipped b/broken.pmx: a broken symbolic link" in result.output
    assert "added 2 model(s), 0 already indexed, 1 file(s) skipped" in result.output
    assert result.output.count("error:") == 1
    assert "error: 1 file(s) could not be indexed" in result.output
    assert [e.path for e in read_index(index)] == ["a/good.pmx", "c/fine.pmd"]


def test_a_file_name_that_is_not_utf8_is_skipped_naming_it_and_a_rename(tmp_path):
    lib, index = tmp_path / "lib", tmp_path / "i.csv"
    make_library(lib, ["a/akane.pmx"])
    mangled = os.path.join(os.fsencode(lib), b"b", "ミク.pmx".encode("cp932"))
    os.makedirs(os.path.dirname(mangled))
    with open(mangled, "wb") as file:
        file.write(b"miku")
    result = run("scan", lib, "--index", index)
    assert result.exit_code == 1, result.output
    shown = repr(os.fsdecode(mangled[len(os.fsencode(lib)) + 1:]))
    assert f"skipped {shown}: the name is not UTF-8" in result.output
    assert "rename it to 'b/ミク.pmx'" in result.output
    (e,) = read_index(index)
    assert e.path == "a/akane.pmx" and resolve_model_path(e, lib).is_file()


def test_a_file_name_with_a_backslash_is_skipped(tmp_path):
    lib, index = tmp_path / "lib", tmp_path / "i.csv"
    make_library(lib, ["a/akane.pmx", "a/odd\\name.pmx"])
    result = run("scan", lib, "--index", index)
    assert result.exit_code == 1
    assert "skipped 'a/odd\\\\name.pmx': " in result.output and "rename" in result.output
    assert [e.path for e in read_index(index)] == ["a/akane.pmx"]


def test_entries_that_cannot_be_written_as_utf8_name_their_row(tmp_path):
    bad = ModelEntry("m", "a/\udc83\udc7e.pmx", "a")
    with pytest.raises(PipelineError, match=r"entry 0 \(m\), column path: .*not UTF-8"):
        write_index(tmp_path / "i.csv", [bad])


# ------------------------------------------------------------------ 4. changed files


def test_update_changed_refreshes_the_hash_and_sends_the_row_back_to_review(tmp_path):
    lib, index = tmp_path / "lib", tmp_path / "i.csv"
    make_library(lib, {"a/akane.pmx": b"v1", "b/hinata.pmx": b"same"})
    assert run("scan", lib, "--index", index).exit_code == 0
    akane, hinata = read_index(index)
    done = replace(akane, status="confirmed", head_top_y=20.0, head_bottom_y=15.0,
                   mouth_open="あ")
    update_index(index, [done])
    make_library(lib, {"a/akane.pmx": b"v2"})

    result = run("scan", lib, "--index", index)  # without the option: nothing is re-hashed
    assert "added 0 model(s), 2 already indexed" in result.output
    assert read_index(index) == [done, hinata]

    result = run("scan", lib, "--index", index, "--update-changed")
    assert result.exit_code == 0, result.output
    assert "changed a/akane.pmx: sha256 refreshed, status auto (was confirmed)" in result.output
    assert "1 changed file(s) back to status auto" in result.output
    now, hinata_now = read_index(index)
    assert hinata_now == hinata
    assert now.sha256 == file_sha256(lib / "a/akane.pmx") != akane.sha256
    assert now.status == "auto" and "changed since it was indexed" in now.status_reason
    assert (now.head_top_y, now.head_bottom_y, now.mouth_open) == (20.0, 15.0, "あ")
    assert akane.sha256 in now.notes and "confirmed" in now.notes

    result = run("scan", lib, "--index", index, "--update-changed")
    assert "0 changed file(s)" in result.output
    assert read_index(index) == [now, hinata_now]


def test_a_folder_that_cannot_be_listed_is_reported_and_the_rest_is_saved(tmp_path,
                                                                          monkeypatch):
    lib, index = tmp_path / "lib", tmp_path / "i.csv"
    make_library(lib, ["a/akane.pmx", "locked/x.pmx"])
    real_scandir = os.scandir

    def scandir(path):
        if os.fspath(path).endswith("locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    result = run("scan", lib, "--index", index)
    assert result.exit_code == 1
    assert "skipped locked/: the folder cannot be listed (Permission denied)" in result.output
    assert [e.path for e in read_index(index)] == ["a/akane.pmx"]


# ------------------------------------------------------------------ files from elsewhere


def test_an_index_saved_on_windows_is_read_and_a_backslash_path_is_explained(tmp_path):
    index = tmp_path / "i.csv"
    rows = [HEADER, "a,akane\\akane.pmx,akane,,auto,,,,,,,,,,,,"]
    index.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode() + b"\r\n")
    with pytest.raises(PipelineError, match=r"i\.csv:2, column path: .*contains '\\'; "
                                            "write it with '/'"):
        read_index(index)
    index.write_bytes(index.read_bytes().replace(b"\\", b"/"))
    (e,) = read_index(index)
    assert e.path == "akane/akane.pmx"
    update_index(index, [replace(e, status="confirmed")])
    assert read_index(index) == [replace(e, status="confirmed")]


def test_changing_a_missing_index_creates_nothing(tmp_path):
    result = run("split", "--index", tmp_path / "none.csv")
    assert result.exit_code == 1 and "no such index file" in result.output
    with pytest.raises(PipelineError, match="no such index file"):
        update_index(tmp_path / "none.csv", [])
    assert list(tmp_path.iterdir()) == []


def test_scanning_a_subfolder_of_the_models_root_keeps_paths_relative_to_the_root(
        tmp_path, monkeypatch):
    """$THA_MODELS_ROOT is the root every command uses; scan of a part of it agrees."""
    root = tmp_path / "lib"
    make_library(root, ["franchise/akane/akane.pmx", "other/kai/kai.pmx"])
    monkeypatch.setenv("THA_MODELS_ROOT", str(root))
    index = tmp_path / "index.csv"
    result = run("scan", root / "other", "--index", index)
    assert result.exit_code == 0, result.output
    [entry] = read_index(index)
    assert (entry.path, entry.source) == ("other/kai/kai.pmx", "other")


def test_split_warns_when_a_split_gets_no_model(tmp_path):
    root = tmp_path / "lib"
    make_library(root, ["a/m1/m.pmx", "b/m2/m.pmx"])
    index = tmp_path / "index.csv"
    assert run("scan", root, "--index", index).exit_code == 0
    result = run("split", "--index", index, "--fractions", "0.9,0.05,0.05")
    assert result.exit_code == 0, result.output
    assert "warning: the validation split got no model" in result.stderr
    assert "warning: the test split got no model" in result.stderr
