"""The index's wide-schema columns (issue 10): roles per group and side, eyes, body, migration."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from pathlib import Path

import pytest

from mmdrender.schemas import MORPH_GROUPS
from pipeline.errors import PipelineError
from pipeline.index import (
    COLUMNS,
    ModelEntry,
    append_entries,
    read_index,
    update_index,
    write_index,
)
from pipeline.roles import (
    LEGACY_COLUMNS,
    MORPH_COLUMNS,
    WIDE_COLUMNS,
    format_halves,
    halves_of,
    morph_column,
    morph_of,
)

LEGACY_INDEX = Path(__file__).parent / "data" / "legacy_models_index.csv"  # models_index.csv
#                                           as committed before the wide columns existed


def wide(model_id="m", **values) -> ModelEntry:
    return ModelEntry(model_id=model_id, path=f"s/{model_id}.pmx", source="s", **values)


def test_every_group_and_side_has_one_column_and_thas_seven_keep_theirs():
    columns = list(MORPH_COLUMNS.values())
    assert len(columns) == len(set(columns)) == sum(3 if g.arity == 2 else 1
                                                     for g in MORPH_GROUPS)
    assert set(columns) <= set(COLUMNS)
    assert morph_column("eye_wink") == "wink_both"
    assert morph_column("eye_wink", "left") == "wink_left"
    assert morph_column("eye_happy_wink", "right") == "smile_wink_right"
    assert morph_column("mouth_aaa") == "mouth_open"
    assert morph_column("eyebrow_troubled", "left") == "eyebrow_troubled_left"
    assert morph_column("mouth_smirk") == "mouth_smirk"
    with pytest.raises(ValueError, match="arity 1"):
        morph_column("mouth_smirk", "left")
    assert COLUMNS[:len(LEGACY_COLUMNS)] == LEGACY_COLUMNS


def test_the_committed_legacy_index_reads_unchanged_and_keeps_its_shape(tmp_path):
    legacy_text = LEGACY_INDEX.read_text("utf-8")
    assert legacy_text.splitlines()[0] == ",".join(LEGACY_COLUMNS)
    entries = read_index(LEGACY_INDEX)
    assert len(entries) == 5
    rows = list(csv.DictReader(io.StringIO(legacy_text)))
    for entry, row in zip(entries, rows, strict=True):
        assert entry.wink_left == row["wink_left"] and entry.mouth_open == row["mouth_open"]
        assert morph_of(entry, "eye_wink", "right") == row["wink_right"]
        assert all(getattr(entry, c) in (None, "") for c in WIDE_COLUMNS)
    # a THA1-only index written again is byte for byte the same file
    copy = tmp_path / "models_index.csv"
    write_index(copy, entries)
    assert copy.read_text("utf-8") == legacy_text
    # editing one of THA1's columns keeps the seventeen columns
    update_index(copy, [replace(entries[0], notes="looked at")])
    assert copy.read_text("utf-8").splitlines()[0] == ",".join(LEGACY_COLUMNS)


def test_the_first_wide_value_migrates_the_file_and_every_value_survives(tmp_path):
    copy = tmp_path / "models_index.csv"
    copy.write_bytes(LEGACY_INDEX.read_bytes())
    before = read_index(copy)
    roles = dict(eyebrow_troubled="困る", eyebrow_troubled_left="困り眉左",
                 halves="eyebrow_troubled eye_relaxed", eye_bone_left="左目",
                 iris_left_x_pos=-12.5, iris_left_y_neg=20.25, body_bone="上半身")
    update_index(copy, [replace(before[1], **roles)])
    text = copy.read_text("utf-8")
    assert text.splitlines()[0] == ",".join(COLUMNS)
    after = read_index(copy)
    assert after[0] == before[0] and after[2:] == before[2:]
    assert after[1] == replace(before[1], **roles)
    assert halves_of(after[1]) == {"eyebrow_troubled", "eye_relaxed"}
    # plain csv reads it: one header, every row as wide
    table = list(csv.reader(io.StringIO(text)))
    assert {len(r) for r in table} == {len(COLUMNS)}
    assert table[2][COLUMNS.index("iris_left_x_pos")] == "-12.5"
    # appending to a legacy file with a wide row migrates it too
    other = tmp_path / "other.csv"
    other.write_bytes(LEGACY_INDEX.read_bytes())
    append_entries(other, [wide("new", mouth_delta="▲")])
    assert read_index(other)[-1].mouth_delta == "▲"
    assert other.read_text("utf-8").splitlines()[0] == ",".join(COLUMNS)


def test_pandas_reads_the_wide_index(tmp_path):
    pandas = pytest.importorskip("pandas", reason="pandas is not installed here")
    path = tmp_path / "i.csv"
    write_index(path, [wide("a", mouth_delta="▲", iris_right_y_pos=-9.0), wide("b")])
    frame = pandas.read_csv(path, dtype=str, keep_default_na=False)
    assert list(frame.columns) == list(COLUMNS)
    assert frame.loc[0, "mouth_delta"] == "▲" and frame.loc[1, "mouth_delta"] == ""


@pytest.mark.parametrize("values, words", [
    (dict(halves="eyebrow_sad"), "not morph groups"),
    (dict(halves="mouth_smirk"), "not morph groups"),
    (dict(halves="eye_relaxed eyebrow_troubled"), "schema order"),
    (dict(eyebrow_angry=""), "use None"),
    (dict(iris_left_x_pos=float("nan")), "not a finite number"),
])
def test_wide_values_are_validated_with_their_column(tmp_path, values, words):
    with pytest.raises(PipelineError, match=words) as error:
        write_index(tmp_path / "i.csv", [wide(**values)])
    assert f"column {next(iter(values))}" in str(error.value)
    assert not (tmp_path / "i.csv").exists()


def test_a_non_number_in_an_iris_column_names_its_line(tmp_path):
    path = tmp_path / "i.csv"
    write_index(path, [wide("a", iris_left_x_pos=3.0)])
    text = path.read_text("utf-8").replace(",3.0,", ",left,")
    path.write_text(text, "utf-8")
    with pytest.raises(PipelineError, match=r"i.csv:2, column iris_left_x_pos: .*'left'"):
        read_index(path)


def test_format_halves_orders_and_deduplicates():
    assert format_halves(["eye_relaxed", "eyebrow_troubled", "eye_relaxed"]) == \
        "eyebrow_troubled eye_relaxed"
