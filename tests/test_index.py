"""models_index.csv: reading, checking, atomic writing, scanning, splits, the CLI."""

from __future__ import annotations

import math
import os
import random
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import ABSENT, PROJECT, SHARED_MODELS, is_character, shared_model_paths

from pipeline import index as index_module
from pipeline.cli import main
from pipeline.errors import PipelineError
from pipeline.index import (
    COLUMNS,
    ModelEntry,
    append_entries,
    file_sha256,
    model_id_for,
    models_root,
    read_index,
    resolve_model_path,
    update_entries,
    update_index,
    write_index,
)
from pipeline.roles import LEGACY_COLUMNS
from pipeline.splits import assign_splits, parse_fractions, split_counts

HEADER = ",".join(LEGACY_COLUMNS)  # what a THA1-only index is written with


def run(*args):
    return CliRunner().invoke(main, list(map(str, args)))


def entry(model_id: str, source: str = "src", **fields) -> ModelEntry:
    return ModelEntry(model_id=model_id, path=f"{source}/{model_id}.pmx", source=source,
                      **fields)


def row(model_id="m", path="s/m.pmx", source="s", split="", status="auto", reason="",
        top="", bottom="", notes="") -> str:
    cells = [model_id, path, source, split, status, reason, top, bottom,
             *[""] * 7, "", notes]
    assert len(cells) == len(LEGACY_COLUMNS)
    return ",".join(cells)


def write_text(path: Path, *lines: str) -> Path:
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    return path


# ------------------------------------------------------------------ round trip


ODD_FLOATS = [0.1 + 0.2, 1e-17, -3.0, 19.0502, 2 / 3, 1e300]


def rich_entries() -> list[ModelEntry]:
    return [
        ModelEntry(
            model_id="akane-akane", path="akane/akane.pmx", source="akane", split="train",
            status="confirmed", status_reason="checked, by hand", head_top_y=19.0502,
            head_bottom_y=15.2, wink_left="ウィンク", wink_right="ウィンク右",
            wink_both="まばたき", smile_wink_left="ｳｨﾝｸ２", smile_wink_right=None,
            smile_wink_both="笑い", mouth_open="あ", sha256="0" * 64,
            notes='quotes " and, commas\nand a second line'),
        entry("plain"),
        *[entry(f"float-{i}", source="floats", head_top_y=value + abs(value) + 1,
                head_bottom_y=value)
          for i, value in enumerate(ODD_FLOATS)],
        entry("rejected", status="rejected", status_reason="not a character"),
    ]


def test_round_trip_is_exact(tmp_path):
    path = tmp_path / "models_index.csv"
    entries = rich_entries()
    write_index(path, entries)
    assert read_index(path) == entries
    text = path.read_text("utf-8")
    assert text.splitlines()[0] == HEADER
    assert "\r" not in text.replace('"quotes', "")
    write_index(path, read_index(path))  # rewriting changes nothing
    assert path.read_text("utf-8") == text


def test_empty_cells_become_none_and_whitespace_around_numbers_is_fine(tmp_path):
    path = write_text(tmp_path / "i.csv", HEADER, row(top=" 2.5 ", bottom="1"))
    (e,) = read_index(path)
    assert (e.head_top_y, e.head_bottom_y, e.wink_left, e.split, e.notes) == \
        (2.5, 1.0, None, "", "")


def test_a_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "i.csv"
    path.write_bytes(b"\xef\xbb\xbf" + f"{HEADER}\n{row()}\n".encode())
    assert [e.model_id for e in read_index(path)] == ["m"]


# ------------------------------------------------------------------ validation


def test_every_problem_is_listed_with_its_line_and_column(tmp_path):
    path = write_text(
        tmp_path / "i.csv",
        HEADER,
        row("a", notes='"two\nlines"'),                       # lines 2-3, fine
        row("b", "s/b.pmx", status="done"),                    # 4
        row("c", "s/c.pmx", split="holdout"),                  # 5
        row("d", "s/d.pmx", top="tall", bottom="1"),           # 6
        row("e", "s/e.pmx", top="inf", bottom="1"),            # 7
        row("f", "s/f.pmx", top="1.5", bottom="1.5"),          # 8
        row("g", "/models/g.pmx"),                             # 9
        row("h", "s/../../h.pmx"),                             # 10
        row("i", ""),                                          # 11
        row("a", "s/a2.pmx"),                                  # 12: duplicate model_id
        row("j", "s/j.pmx", top="nan"),                        # 13
    )
    with pytest.raises(PipelineError) as caught:
        read_index(path)
    message = str(caught.value)
    expected = [(4, "status", "'done'"), (5, "split", "'holdout'"), (6, "head_top_y", "'tall'"),
                (7, "head_top_y", "finite"), (8, "head_top_y", "not above"),
                (9, "path", "absolute"), (10, "path", ".."), (11, "path", "empty"),
                (12, "model_id", "duplicate model_id 'a' (first at 2)"),
                (13, "head_top_y", "finite")]
    for line, column, words in expected:
        hit = [m for m in message.splitlines() if f"i.csv:{line}, column {column}:" in m]
        assert hit and words in hit[0], (line, column, message)
    assert f"{len(expected)} problems" in message
    assert ":2," not in message and ":3," not in message


@pytest.mark.parametrize("header, words", [
    (HEADER + ",colour", "unknown column(s) 'colour'"),
    (HEADER.replace(",notes", ""), "missing column(s) notes"),
    (HEADER + ",notes", "notes appear more than once"),
])
def test_header_problems_are_reported_on_line_1(tmp_path, header, words):
    path = write_text(tmp_path / "i.csv", header)
    with pytest.raises(PipelineError, match=r"i\.csv:1: ") as caught:
        read_index(path)
    assert words in str(caught.value)


def test_short_rows_empty_files_and_non_utf8_are_reported(tmp_path):
    short = write_text(tmp_path / "short.csv", HEADER, row(), "x,y")
    with pytest.raises(PipelineError, match=r"short\.csv:3: 2 fields, the header has 17"):
        read_index(short)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(PipelineError, match="empty"):
        read_index(empty)
    latin = tmp_path / "latin.csv"
    latin.write_bytes(f"{HEADER}\n{row()}\n".encode() + "m2,s/é.pmx,s,,auto".encode("latin-1"))
    with pytest.raises(PipelineError, match=r"latin\.csv:3: not UTF-8"):
        read_index(latin)
    with pytest.raises(PipelineError, match="no such index file"):
        read_index(tmp_path / "absent.csv")


def test_write_index_refuses_entries_read_index_would_reject(tmp_path):
    path = tmp_path / "i.csv"
    bad = [entry("a", head_top_y=1.0, head_bottom_y=2.0), entry("a"), entry("b", split="dev")]
    with pytest.raises(PipelineError) as caught:
        write_index(path, bad)
    assert "4 problems" in str(caught.value)  # 'a' twice: its model_id and its path
    assert not path.exists()


# ------------------------------------------------------------------ atomic writes


def test_a_failed_replace_leaves_the_old_index_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "i.csv"
    write_index(path, rich_entries())
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(index_module.os, "replace", broken_replace)
    with pytest.raises(PipelineError, match="No space left on device.*left as it was"):
        write_index(path, [entry("new")])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["i.csv", "i.csv.lock"]


def test_a_row_that_cannot_be_encoded_leaves_the_old_index(tmp_path):
    path = tmp_path / "i.csv"
    write_index(path, rich_entries())
    before = path.read_bytes()
    with pytest.raises(PipelineError, match=r"entry 1 \(b\), column notes: .* not UTF-8"):
        write_index(path, [entry("a"), entry("b", notes="lone surrogate \udc80")])
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["i.csv", "i.csv.lock"]


def test_rewriting_keeps_the_file_mode(tmp_path):
    path = tmp_path / "i.csv"
    write_index(path, [entry("a")])
    os.chmod(path, 0o640)
    write_index(path, [entry("b")])
    assert path.stat().st_mode & 0o777 == 0o640


# ------------------------------------------------------------------ helpers


def test_model_ids_are_readable_and_unique():
    assert model_id_for("animasa_miku_v2/miku_v2.pmd") == "animasa-miku-v2-miku-v2"
    assert model_id_for("Lat/Lat式ミクVer2.31_White.pmd") == "lat-lat式ミクver2-31-white"
    assert model_id_for("ＡＢ/ｳｨﾝｸ.pmx") == "ab-ウィンク"  # NFKC: full/half width folded
    first = model_id_for("a_b/c.pmx")
    second = model_id_for("a-b/c.pmd", taken={first})
    assert first == "a-b-c" and second.startswith("a-b-c-") and len(second) == len("a-b-c-") + 8
    assert model_id_for("a-b/c.pmd", taken={first}) == second  # the same every time
    assert model_id_for("・/・.pmx") == "model"


def test_models_root_prefers_the_option_then_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("THA_MODELS_ROOT", raising=False)
    assert models_root(None, tmp_path / "models_index.csv") == tmp_path / "out" / "samples"
    assert models_root() == Path("out/samples")
    monkeypatch.setenv("THA_MODELS_ROOT", "/lib")
    assert models_root(None, tmp_path / "models_index.csv") == Path("/lib")
    assert models_root("/mine") == Path("/mine")


def test_resolve_model_path_and_file_sha256(tmp_path):
    target = tmp_path / "src" / "m.pmx"
    target.parent.mkdir()
    target.write_bytes(b"abc")
    e = entry("m")
    assert resolve_model_path(e, tmp_path) == target
    assert file_sha256(target) == \
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    with pytest.raises(PipelineError, match="leaves the models root"):
        resolve_model_path(replace(e, path="../m.pmx"), tmp_path)
    with pytest.raises(PipelineError, match="cannot be read"):
        file_sha256(tmp_path / "nothing.pmx")


def test_update_entries_replaces_rows_by_model_id():
    entries = [entry("a"), entry("b"), entry("c")]
    done = replace(entries[1], status="confirmed", head_top_y=2.0, head_bottom_y=1.0)
    assert update_entries(entries, [done]) == [entries[0], done, entries[2]]
    with pytest.raises(PipelineError, match="'zz'"):
        update_entries(entries, [entry("zz")])


# ------------------------------------------------------------------ scan


def make_library(root: Path, files) -> None:
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"model {name}".encode())


def test_scan_adds_models_with_sources_and_hashes(tmp_path):
    lib = tmp_path / "lib"
    make_library(lib, ["franchise_a/x.pmx", "franchise_a/sub/y.PMD", "b/z.Pmx", "loose.pmd",
                       "b/readme.txt", "b/tex.bmp"])
    index = tmp_path / "models_index.csv"
    result = run("scan", lib, "--index", index)
    assert result.exit_code == 0, result.output
    assert "added 4 model(s), 0 already indexed" in result.output
    entries = read_index(index)
    assert [(e.path, e.source, e.status, e.split) for e in entries] == [
        ("b/z.Pmx", "b", "auto", ""),
        ("franchise_a/sub/y.PMD", "franchise_a", "auto", ""),
        ("franchise_a/x.pmx", "franchise_a", "auto", ""),
        ("loose.pmd", "lib", "auto", ""),
    ]
    assert [e.model_id for e in entries] == ["b-z", "franchise-a-sub-y", "franchise-a-x", "loose"]
    for e in entries:
        assert e.sha256 == file_sha256(lib / e.path)


def test_scan_appends_only_new_files_and_keeps_existing_rows_byte_for_byte(tmp_path):
    lib = tmp_path / "lib"
    make_library(lib, ["a/one.pmx", "b/two.pmx"])
    index = tmp_path / "models_index.csv"
    assert run("scan", lib, "--index", index).exit_code == 0
    # A person annotates by hand, with their own number format and CRLF line ends.
    lines = index.read_text("utf-8").splitlines()
    lines[1] = lines[1].replace(",auto,,,,", ",confirmed,ok,19.50,15.20,")
    before = ("\r\n".join(lines) + "\r\n").encode("utf-8")
    index.write_bytes(before)
    assert read_index(index)[0].head_top_y == 19.5

    make_library(lib, ["a/three.pmd", "c/four.pmx"])
    result = run("scan", lib, "--index", index)
    assert result.exit_code == 0, result.output
    assert "added 2 model(s), 2 already indexed" in result.output
    after = index.read_bytes()
    assert after.startswith(before)
    assert [e.path for e in read_index(index)] == \
        ["a/one.pmx", "b/two.pmx", "a/three.pmd", "c/four.pmx"]
    assert after[len(before):].count(b"\r\n") == 2

    result = run("scan", lib, "--index", index)
    assert "added 0 model(s), 4 already indexed" in result.output
    assert index.read_bytes() == after


def test_scan_with_a_root_stores_paths_relative_to_it(tmp_path):
    make_library(tmp_path / "lib", ["anime/a/one.pmx", "games/b/two.pmx"])
    index = tmp_path / "i.csv"
    result = run("scan", tmp_path / "lib" / "anime", "--root", tmp_path / "lib",
                 "--index", index)
    assert result.exit_code == 0, result.output
    (e,) = read_index(index)
    assert (e.path, e.source) == ("anime/a/one.pmx", "anime")  # first folder below the root
    result = run("scan", tmp_path / "lib", "--root", tmp_path / "lib" / "anime",
                 "--index", index)
    assert result.exit_code == 1 and "is not inside the models root" in result.output


def test_scan_gives_colliding_ids_a_hash_suffix(tmp_path):
    make_library(tmp_path / "lib", ["a_b/c.pmx", "a-b/c.pmx"])
    index = tmp_path / "i.csv"
    assert run("scan", tmp_path / "lib", "--index", index).exit_code == 0
    ids = [e.model_id for e in read_index(index)]
    assert ids[0] == "a-b-c" and ids[1].startswith("a-b-c-") and len(set(ids)) == 2


def test_scan_of_many_files_shows_a_progress_bar_and_still_works(tmp_path):
    make_library(tmp_path / "lib", [f"s{i % 7}/m{i:03}.pmx" for i in range(45)])
    index = tmp_path / "i.csv"
    result = run("scan", tmp_path / "lib", "--index", index)
    assert result.exit_code == 0, result.output
    assert "hashing model files" in result.output
    assert len(read_index(index)) == 45


def test_scan_of_the_shared_models_finds_all_sixteen(tmp_path):
    if not shared_model_paths():
        pytest.skip(ABSENT)
    index = tmp_path / "i.csv"
    result = run("scan", SHARED_MODELS, "--index", index)
    assert result.exit_code == 0, result.output
    entries = read_index(index)
    assert len(entries) == len(shared_model_paths()) == 16
    by_path = {e.path: e for e in entries}
    assert by_path["animasa_miku_v2/miku_v2.pmd"].source == "animasa_miku_v2"
    assert by_path["animasa_miku_v2/miku_v2.pmd"].model_id == "animasa-miku-v2-miku-v2"
    for path in shared_model_paths():
        relative = path.relative_to(SHARED_MODELS)
        e = by_path[relative.as_posix()]
        assert e.source == relative.parts[0]
        assert resolve_model_path(e, SHARED_MODELS) == path
    assert sum(is_character(SHARED_MODELS / e.path) for e in entries) == 13


# ------------------------------------------------------------------ splits


def synthetic(n_sources=30, seed=7) -> list[ModelEntry]:
    rng = random.Random(seed)
    entries = []
    for s in range(n_sources):
        for m in range(rng.randint(1, 6)):
            status = "rejected" if rng.random() < 0.08 else rng.choice(["auto", "confirmed"])
            entries.append(entry(f"s{s}-m{m}", source=f"source{s}", status=status))
    return entries


def sources_by_split(entries):
    found = defaultdict(set)
    for e in entries:
        found[e.source].add(e.split)
    return found


def test_split_keeps_each_source_in_one_split_and_rejected_rows_out():
    entries = synthetic()
    assert 80 <= len(entries) <= 120
    result = assign_splits(entries, (0.8, 0.1, 0.1), seed=3)
    assert [e.model_id for e in result] == [e.model_id for e in entries]
    for e in result:
        assert (e.split == "") == (e.status == "rejected")
    for source, splits in sources_by_split(e for e in result if e.status != "rejected").items():
        assert len(splits) == 1, source


def test_split_respects_the_fractions_approximately():
    entries = synthetic()
    kept = sum(e.status != "rejected" for e in entries)
    for seed in range(5):
        counts = split_counts(assign_splits(entries, (0.8, 0.1, 0.1), seed=seed))
        assert abs(counts["train"].models / kept - 0.8) < 0.08, (seed, counts)
        for name in ("validation", "test"):
            assert 0.04 < counts[name].models / kept < 0.18, (seed, counts)
            assert counts[name].sources >= 1


def test_split_is_deterministic_for_a_seed_and_the_seed_matters():
    entries = synthetic()
    first = assign_splits(entries, seed=11)
    assert assign_splits(list(entries), seed=11) == first
    assert assign_splits(entries[::-1], seed=11) == first[::-1]  # row order does not matter
    assert any(assign_splits(entries, seed=s) != first for s in range(12, 16))


def test_split_keeps_existing_splits_unless_reassigned():
    entries = [entry("a1", "a", split="test"), entry("a2", "a"), entry("b1", "b"),
               entry("r", "c", split="train", status="rejected")]
    result = assign_splits(entries, (1.0, 0.0, 0.0))
    assert [e.split for e in result] == ["test", "test", "train", ""]
    assert [e.split for e in assign_splits(entries, (1.0, 0.0, 0.0), reassign=True)] == \
        ["train", "train", "train", ""]


def test_split_refuses_a_source_already_in_two_splits():
    entries = [entry("a1", "a", split="test"), entry("a2", "a", split="train")]
    with pytest.raises(PipelineError, match="'a' in test, train.*--reassign"):
        assign_splits(entries)
    assert {e.split for e in assign_splits(entries, reassign=True)} == {"train"}


def test_split_fractions_are_checked():
    assert parse_fractions("0.9, 0.05,0.05") == (0.9, 0.05, 0.05)
    for text in ["0.9,0.1", "a,b,c", "0.5,0.5,0.5", "1.2,-0.1,-0.1", "nan,0,0"]:
        with pytest.raises(PipelineError):
            parse_fractions(text)


def test_split_command_writes_splits_and_prints_counts(tmp_path):
    index = tmp_path / "i.csv"
    write_index(index, synthetic())
    result = run("split", "--index", index, "--fractions", "0.8,0.1,0.1", "--seed", "2")
    assert result.exit_code == 0, result.output
    counts = split_counts(read_index(index))
    for name in ("train", "validation", "test"):
        assert f"{name:<12}{counts[name].models:>8}{counts[name].sources:>9}" in result.output
    assert "(none)" in result.output  # the rejected rows
    before = index.read_bytes()
    result = run("split", "--index", index, "--fractions", "0.8,0.1,0.1", "--seed", "9")
    assert "0 row(s) changed" in result.output and index.read_bytes() == before


# ------------------------------------------------------------------ CLI errors


def test_a_bad_index_exits_1_listing_the_problems_without_a_traceback(tmp_path):
    index = write_text(tmp_path / "i.csv", HEADER, row("a", status="ok"),
                       row("b", "s/b.pmx", split="dev"))
    for args in (["split", "--index", index], ["scan", tmp_path, "--index", index]):
        result = run(*args)
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit)
        assert "Traceback" not in result.output
        assert "error: " in result.output and "2 problems" in result.output
        assert "i.csv:2, column status" in result.output
        assert "i.csv:3, column split" in result.output


def test_cli_usage_errors(tmp_path):
    result = run("split", "--index", tmp_path / "none.csv")
    assert result.exit_code == 1 and "no such index file" in result.output
    write_index(tmp_path / "i.csv", [entry("a")])
    result = run("split", "--index", tmp_path / "i.csv", "--fractions", "1,1")
    assert result.exit_code == 1 and "three numbers" in result.output
    result = run("scan", tmp_path / "missing-dir")
    assert result.exit_code == 2 and "does not exist" in result.output


# ------------------------------------------------------------------ the sample index


def test_the_committed_index_is_what_index_samples_writes(tmp_path):
    out = tmp_path / "models_index.csv"
    result = run("index-samples", out, "--samples-dir", tmp_path / "out" / "samples")
    assert result.exit_code == 0, result.output
    committed = PROJECT / "models_index.csv"
    without_hashes = [[replace(e, sha256="") for e in read_index(p)] for p in (committed, out)]
    assert without_hashes[0] == without_hashes[1], (
        "models_index.csv is stale: run `.venv/bin/pipeline index-samples models_index.csv` "
        "from the repository root and commit the result")
    assert committed.read_bytes() == out.read_bytes(), (
        "the sample PMX files written here hash differently from the committed index: "
        "either the samples changed (then run `.venv/bin/pipeline index-samples "
        "models_index.csv` from the repository root and commit the result), or this "
        "machine's floating point makes different bytes (then the samples are not portable)")

    entries = read_index(committed)
    assert {e.status for e in entries} == {"confirmed"}
    assert len({e.source for e in entries}) == len(entries) == 5
    counts = split_counts(entries)
    assert (counts["train"].models, counts["validation"].models, counts["test"].models) == \
        (3, 1, 1)
    root = models_root(None, out)  # out/samples beside the index, as committed
    for e in entries:
        assert e.path == f"{e.source}/{e.source}.pmx"
        assert e.sha256 == file_sha256(resolve_model_path(e, root))
        assert math.isfinite(e.head_top_y) and e.head_top_y > e.head_bottom_y
        assert e.mouth_open == "あ" and e.wink_left and e.wink_right


def test_sample_truth_reaches_the_index(tmp_path):
    from mmdrender.samples import sample_truth

    entries = read_index(PROJECT / "models_index.csv")
    for e in entries:
        truth = sample_truth(e.source)
        for column in COLUMNS[6:15]:
            assert getattr(e, column) == getattr(truth, column), (e.source, column)


def test_update_index_rewrites_one_row(tmp_path):
    path = tmp_path / "i.csv"
    write_index(path, [entry("a"), entry("b")])
    done = entry("b", status="confirmed", head_top_y=20, head_bottom_y=15.5)
    update_index(path, [done])
    assert read_index(path) == [entry("a"), done]
    assert "confirmed,,20.0,15.5," in path.read_text("utf-8")


def test_append_entries_creates_a_missing_index(tmp_path):
    path = tmp_path / "new.csv"
    append_entries(path, [entry("a")])
    assert read_index(path) == [entry("a")]
