"""Reruns on an existing dataset folder: what is kept, what is rendered again, what is refused."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import h5py
import test_generate
from PIL import Image
from test_generate import EXAMPLES, copy_of, dataset_args, digests, error_lines, run

from pipeline import generate
from pipeline.index import read_index, write_index
from pipeline.poses import THA1, sample_example
from pipeline.shard_reader import open_dataset

MODELS = 5  # the sample characters
library = test_generate.library  # fixtures: the sample characters, a reference run
reference = test_generate.reference


def model_ids(out: Path) -> list[str]:
    return sorted(m.model_id for m in open_dataset(out).models())


def test_a_rerun_with_the_same_settings_keeps_every_shard(library, reference, tmp_path):
    root, index = library
    out = copy_of(reference, tmp_path)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.h5")}
    result = run(dataset_args(index, root, out))
    assert result.exit_code == 0, result.output
    assert "(4 already done)" in result.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.h5")} == before
    assert digests(out) == digests(reference)


def test_other_settings_render_every_shard_again(library, reference, tmp_path):
    root, index = library
    out = copy_of(reference, tmp_path)
    result = run(dataset_args(index, root, out, "--seed", 5))
    assert result.exit_code == 0, result.output
    assert "(0 already done)" in result.stderr
    data = open_dataset(out)
    assert data.manifest["dataset_seed"] == 5
    example = data[0]
    assert (example.pose == sample_example(THA1, 5, example.model_id, example.example)).all()
    # More examples per model (`make dataset EXAMPLES=500`) makes a bigger dataset.
    args = dataset_args(index, root, out, "--seed", 5)
    args[args.index("--examples-per-model") + 1] = EXAMPLES + 2
    result = run(args)
    assert result.exit_code == 0, result.output
    assert len(open_dataset(out)) == (EXAMPLES + 2) * MODELS
    with h5py.File(out / "train-00000.h5") as f:
        assert f.attrs["dataset_seed"] == 5
    assert run(["verify", out]).exit_code == 0


def test_a_smaller_shard_size_never_duplicates_a_model(library, reference, tmp_path):
    root, index = library
    out = copy_of(reference, tmp_path)
    args = dataset_args(index, root, out)
    args[args.index("--models-per-shard") + 1] = 1
    result = run(args)
    assert result.exit_code == 0, result.output
    assert "5 shards for 5 models (2 already done)" in result.stderr  # validation, test
    assert model_ids(out) == sorted(e.model_id for e in read_index(index))
    assert run(["verify", out]).exit_code == 0


def test_shards_left_by_a_larger_plan_are_refused_and_kept(library, reference, tmp_path):
    root, index = library
    out = copy_of(reference, tmp_path)
    before = digests(out)
    args = dataset_args(index, root, out)
    args[args.index("--models-per-shard") + 1] = 3  # train needs one shard, not two
    [line] = error_lines(run(args))
    assert "train-00001.h5" in line and "another --out" in line
    assert digests(out) == before  # nothing touched, the finished dataset still stands
    assert run(["verify", out]).exit_code == 0


def test_an_index_change_renders_only_the_shards_it_touches(library, reference, tmp_path):
    root, index = library
    out = copy_of(reference, tmp_path)
    entries = read_index(index)
    train = sorted(e.model_id for e in entries if e.split == "train")
    moved = {e.model_id: e for e in entries}[train[-1]]  # alone in train-00001
    changed = [replace(e, head_top_y=e.head_top_y + 0.25) if e is moved else e
               for e in entries]
    new_index = tmp_path / "index.csv"
    write_index(new_index, changed)
    kept = (out / "train-00000.h5").read_bytes()
    result = run(dataset_args(new_index, root, out))
    assert result.exit_code == 0, result.output
    assert "(3 already done)" in result.stderr
    assert (out / "train-00000.h5").read_bytes() == kept
    stored = {m.model_id: m for m in open_dataset(out).models()}
    assert stored[moved.model_id].head_top_y == moved.head_top_y + 0.25
    # A model rejected in the index leaves the dataset; train then needs one
    # shard, and the run refuses to go on beside the other until it is moved.
    rejected = [replace(e, status="rejected") if e.model_id == train[0] else e
                for e in changed]
    write_index(new_index, rejected)
    [line] = error_lines(run(dataset_args(new_index, root, out)))
    assert "train-00001.h5" in line
    for stale in out.glob("train-00001.h5*"):
        stale.unlink()
    result = run(dataset_args(new_index, root, out))
    assert result.exit_code == 0, result.output
    assert train[0] not in model_ids(out)
    assert len(model_ids(out)) == MODELS - 1


def test_a_model_whose_file_was_missing_is_tried_again(library, tmp_path):
    root, index = library
    library_copy = tmp_path / "models"
    shutil.copytree(root, library_copy)
    victim = read_index(index)[0]
    kept = tmp_path / "kept.pmx"
    shutil.move(library_copy / victim.path, kept)
    out = tmp_path / "out"
    result = run(dataset_args(index, library_copy, out))
    assert result.exit_code == 0 and "1 model(s) were skipped" in result.stderr
    assert "does not exist" in (out / "failures.csv").read_text()
    shutil.move(kept, library_copy / victim.path)
    result = run(dataset_args(index, library_copy, out))
    assert result.exit_code == 0, result.output
    assert "(3 already done)" in result.stderr
    assert "skipped" not in result.stderr
    assert victim.model_id in model_ids(out)
    with open(out / "failures.csv", encoding="utf-8") as file:
        assert list(csv.DictReader(file)) == []


def test_retry_failed_renders_shards_with_any_failure_again(library, reference, tmp_path,
                                                            monkeypatch):
    from pipeline.errors import PipelineError

    root, index = library
    out = tmp_path / "out"
    victim = read_index(index)[0].model_id
    real = generate.render_model

    def fails_for_victim(entry, *args):
        if entry.model_id == victim:
            raise PipelineError("the model has no 頭 (head) bone to rotate")
        return real(entry, *args)

    monkeypatch.setattr(generate, "render_model", fails_for_victim)
    assert run(dataset_args(index, root, out)).exit_code == 0
    monkeypatch.setattr(generate, "render_model", real)  # as after an upgrade
    again = run(dataset_args(index, root, out))
    assert "(4 already done)" in again.stderr  # a failure of the model itself is kept
    assert victim not in model_ids(out)
    retried = run(dataset_args(index, root, out, "--retry-failed"))
    assert retried.exit_code == 0, retried.output
    assert "(3 already done)" in retried.stderr
    assert digests(out) == digests(reference)


def test_a_run_that_changes_shards_first_removes_the_manifest(library, reference, tmp_path,
                                                              monkeypatch):
    root, index = library
    out = copy_of(reference, tmp_path)

    def interrupted(task, cfg, *rest):
        raise KeyboardInterrupt

    monkeypatch.setattr(generate, "render_shard", interrupted)
    result = run(dataset_args(index, root, out, "--seed", 1))
    assert result.exit_code != 0
    # The old manifest described shards this run is replacing: it is gone.
    assert not (out / "manifest.json").exists()
    assert run(["verify", out]).exit_code == 1


def test_finish_with_a_missing_shard_is_one_error_line(library, reference, tmp_path,
                                                       monkeypatch):
    root, index = library
    out = copy_of(reference, tmp_path)
    (out / "train-00001.h5").unlink()

    def writes_nothing(task, cfg, *rest):
        return generate.ShardResult(task)

    monkeypatch.setattr(generate, "render_shard", writes_nothing)
    [line] = error_lines(run(dataset_args(index, root, out, "--seed", 1)))
    assert ".h5 is missing or was made with other settings" in line
    assert not (out / "manifest.json").exists()


def test_a_second_run_on_one_folder_is_refused(library, tmp_path):
    root, index = library
    out = tmp_path / "out"
    with generate.locked(out):
        [line] = error_lines(run(dataset_args(index, root, out)))
    assert "another run is writing to" in line and "another --out" in line
    assert not list(out.glob("*.h5"))


def test_a_rerun_removes_temporary_files_a_killed_run_left(library, reference, tmp_path):
    root, index = library
    out = copy_of(reference, tmp_path)
    for name in ("train-00000.h5.1234.tmp", "train-00000.h5.tmp",
                 "train-00000.h5.failures.json.tmp", "manifest.json.tmp"):
        (out / name).write_bytes(b"half written")
    result = run(dataset_args(index, root, out))
    assert result.exit_code == 0, result.output
    assert not list(out.glob("*.tmp"))


def test_a_rerun_reuses_each_shards_recorded_sha256(library, reference, tmp_path,
                                                    monkeypatch):
    root, index = library
    out = copy_of(reference, tmp_path)
    record = json.loads((out / "train-00000.h5.failures.json").read_text())
    shard = out / "train-00000.h5"
    assert record["sha256"] == hashlib.sha256(shard.read_bytes()).hexdigest()
    assert record["bytes"] == shard.stat().st_size
    hashed = []
    from pipeline import shards

    real = shards.file_sha256
    monkeypatch.setattr(shards, "file_sha256", lambda path: hashed.append(path) or real(path))
    monkeypatch.setattr(generate, "file_sha256", lambda path: hashed.append(path) or real(path))
    assert run(dataset_args(index, root, out)).exit_code == 0
    # each kept shard is hashed once, to compare with its record (not again by finish)
    kept = sorted(str(p) for p in hashed if str(p).endswith(".h5"))
    assert kept == sorted(str(p) for p in out.glob("*.h5"))
    # A shard changed behind the record's back is caught by verify, and a rerun
    # renders it again rather than keeping it (see also tests/test_hardening.py).
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    result = run(["verify", out])
    assert result.exit_code == 1 and "sha256 differs" in result.output
    assert run(dataset_args(index, root, out)).exit_code == 0
    assert run(["verify", out]).exit_code == 0


def test_a_changed_texture_renders_its_models_shard_again(library, tmp_path):
    """Textures are inputs too: a repainted skin must not leave stale images."""
    root, index = library
    library_copy = tmp_path / "models"
    shutil.copytree(root, library_copy)
    out = tmp_path / "out"
    assert run(dataset_args(index, library_copy, out)).exit_code == 0
    victim = read_index(index)[0]
    texture = sorted((library_copy / victim.path).parent.glob("*.png"))[0]
    Image.open(texture).convert("RGBA").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(texture)
    os.utime(texture, ns=(1, 1))  # a different mtime, whatever the clock
    result = run(dataset_args(index, library_copy, out))
    assert result.exit_code == 0, result.output
    assert "(3 already done)" in result.stderr  # 4 shards; the victim's is redone


def test_a_row_without_sha256_is_rendered_again_when_its_file_changes(library, tmp_path):
    root, index = library
    library_copy = tmp_path / "models"
    shutil.copytree(root, library_copy)
    entries = read_index(index)
    victim, other = entries[0], entries[-1]
    blank = tmp_path / "index.csv"
    write_index(blank, [replace(e, sha256="") if e is victim else e for e in entries])
    out = tmp_path / "out"
    assert run(dataset_args(blank, library_copy, out)).exit_code == 0
    shutil.copyfile(library_copy / other.path, library_copy / victim.path)
    result = run(dataset_args(blank, library_copy, out))
    assert "(3 already done)" in result.stderr, result.output


def test_other_rendering_code_renders_every_shard_again(library, reference, tmp_path,
                                                        monkeypatch):
    """After an upgrade a rerun does not mix images of two renderer versions."""
    root, index = library
    out = copy_of(reference, tmp_path)
    monkeypatch.setattr(generate, "rendering_code", lambda: "another version")
    result = run(dataset_args(index, root, out))
    assert result.exit_code == 0, result.output
    assert "(0 already done)" in result.stderr


def test_a_fresh_run_hashes_each_shard_once(library, tmp_path, monkeypatch):
    """The worker hashes a shard as it writes it; finish trusts that, reading nothing again."""
    root, index = library
    hashed = []
    real = generate.file_sha256
    monkeypatch.setattr(generate, "file_sha256", lambda path: hashed.append(str(path)) or
                        real(path))
    out = tmp_path / "out"
    assert run(dataset_args(index, root, out)).exit_code == 0
    shards = [p for p in hashed if p.endswith(".h5")]
    assert sorted(shards) == sorted(str(p) for p in out.glob("*.h5"))
