"""`pipeline dataset`, `verify` and `preview` on bad input: one `error:` line, or a full report."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import test_generate
from test_generate import copy_of, dataset_args, error_lines, run

from pipeline import dataset_cli
from pipeline.shard_reader import read_manifest
from pipeline.shards import write_manifest

library = test_generate.library  # fixtures: the sample characters, a reference run
reference = test_generate.reference


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:2000])


def test_an_unreachable_dask_scheduler_is_one_error_line(library, tmp_path, monkeypatch):
    pytest.importorskip("dask.distributed")
    root, index = library
    monkeypatch.setattr(dataset_cli, "DASK_TIMEOUT_S", 1)
    result = run(dataset_args(index, root, tmp_path / "out", "--backend", "dask",
                              "--scheduler", "tcp://127.0.0.1:1", workers=2))
    [line] = error_lines(result)
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in line


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_preview_of_a_damaged_dataset_is_one_error_line(reference, tmp_path, damage):
    data = copy_of(reference, tmp_path)
    shard = data / "train-00000.h5"
    shard.unlink() if damage == "missing" else truncate(shard)
    [line] = error_lines(run(["preview", data, "-o", tmp_path / "sheet.png"]))
    assert "train-00000.h5" in line and "pipeline verify" in line
    assert not (tmp_path / "sheet.png").exists()


def test_verify_reports_every_damaged_shard(reference, tmp_path):
    data = copy_of(reference, tmp_path)
    truncate(data / "train-00000.h5")
    (data / "test-00000.h5").unlink()
    result = run(["verify", data])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "error:" not in result.output
    assert "PROBLEM train-00000.h5" in result.output
    assert "PROBLEM test-00000.h5" in result.output and "file missing" in result.output
    assert result.output.strip().endswith("FAILED")
    # The shards that can be read are still checked, and counted.
    assert f"{data}: 4 shards" in result.output


def test_verify_catches_a_model_in_two_shards(reference, tmp_path):
    data = copy_of(reference, tmp_path)
    shutil.copy(data / "train-00001.h5", data / "validation-00001.h5")
    names = [e["file"] for e in read_manifest(data)["shards"]]
    write_manifest(data, [*names, "validation-00001.h5"])
    result = run(["verify", data])
    assert result.exit_code == 1
    assert "is also in train-00001.h5" in result.output
