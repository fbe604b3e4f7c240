"""Shards: write, validate, manifest, read back (in this and other processes), verify."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline.errors import PipelineError
from pipeline.poses import THA1, PoseParameter, PoseSchema, sample_example
from pipeline.shard_reader import open_dataset, read_manifest, read_models
from pipeline.shard_verify import verify_shard
from pipeline.shards import (
    FORMAT_VERSION,
    MANIFEST,
    ShardModel,
    ShardWriter,
    package_version,
    write_manifest,
)

SIZE = 32
SEED = 11
SETTINGS = {"shading": "phong", "samples": 4,
            "lights": {"ambient": 0.5, "directional": 0.5, "direction": [0, 0, -1]}}


def character(rng: np.random.Generator, size: int = SIZE) -> np.ndarray:
    """A render-like image: a random-coloured blob, background exactly (0,0,0,0)."""
    y, x = np.mgrid[:size, :size]
    (cy, cx), r = rng.uniform(0.4, 0.6, 2) * size, rng.uniform(0.2, 0.35) * size
    inside = (y - cy) ** 2 + (x - cx) ** 2 < r * r
    image = rng.integers(0, 256, (size, size, 4), dtype=np.uint8)
    image[..., 3] = np.maximum(image[..., 3], 1)
    image[~inside] = 0
    return image


def model_fields(name: str, **overrides) -> dict:
    fields = dict(model_id=name, sha256=hashlib.sha256(name.encode()).hexdigest(),
                  head_top_y=20.5, head_bottom_y=18.25, wink_left="ウィンク右",
                  wink_right="ウィンク", mouth_open="あ", both_eyes_wink=False)
    fields.update(overrides)
    return fields


def write_shard(path: Path, split: str, models: dict[str, int], seed: int = 0,
                schema: PoseSchema = THA1) -> dict:
    """Write a shard of ``{model_id: examples}``; returns what was written, by (model, ex)."""
    rng = np.random.default_rng(seed)
    written = {}
    with ShardWriter(path, schema, SIZE, SETTINGS, SEED, split) as writer:
        for name, count in models.items():
            rest = character(rng)
            fields = model_fields(name, both_eyes_wink=name.endswith("both"),
                                  wink_left=None if name.endswith("both") else "ウィンク右")
            index = writer.add_model(rest, **fields)
            for example in range(count):
                pose = sample_example(schema, SEED, name, example)
                expression, posed = character(rng), character(rng)
                writer.add_example(index, example, pose, expression, posed)
                written[name, example] = (rest, expression, posed, pose, split)
        assert (writer.models, writer.examples) == (len(models), sum(models.values()))
    return written


@pytest.fixture
def dataset_dir(tmp_path):
    """Three shards over two splits, a manifest, and every example written."""
    written = {}
    written |= write_shard(tmp_path / "train-00000.h5", "train", {"a/a.pmx": 3, "b/b.pmx": 2})
    written |= write_shard(tmp_path / "train-00001.h5", "train", {"c/c_both": 4}, seed=1)
    written |= write_shard(tmp_path / "test-00000.h5", "test", {"d/d.pmx": 2}, seed=2)
    write_manifest(tmp_path, ["train-00000.h5", "train-00001.h5", "test-00000.h5"])
    return tmp_path, written


def check_all(ds, written) -> None:
    seen = set()
    for i in range(len(ds)):
        ex = ds[i]
        rest, expression, posed, pose, split = written[ex.model_id, ex.example]
        assert ex.rest.tobytes() == rest.tobytes() and ex.rest.dtype == np.uint8
        assert ex.expression.tobytes() == expression.tobytes()
        assert ex.posed.tobytes() == posed.tobytes()
        assert ex.pose.dtype == np.float32 and np.array_equal(ex.pose, pose)
        assert ex.split == split
        seen.add((ex.model_id, ex.example))
    assert len(seen) == len(ds)


def test_round_trip_through_the_reader(dataset_dir):
    directory, written = dataset_dir
    with open_dataset(directory) as ds:
        assert len(ds) == len(written) == 11
        assert ds.schema == THA1
        assert ds.splits == ("train", "test")
        check_all(ds, written)
        assert [ds[i].model_id for i in range(5)] == ["a/a.pmx"] * 3 + ["b/b.pmx"] * 2
        assert ds[-1].model_id == "d/d.pmx" and ds[-1].example == 1
        with pytest.raises(IndexError):
            ds[len(ds)]
        train, test = ds.split("train"), ds.split("test")
        assert (len(train), len(test)) == (9, 2)
        assert {train[i].split for i in range(len(train))} == {"train"}
        assert test[0].model_id == "d/d.pmx"
        with pytest.raises(PipelineError, match="no split 'validation'"):
            ds.split("validation")
        models = ds.models()
    assert [m.model_id for m in models] == ["a/a.pmx", "b/b.pmx", "c/c_both", "d/d.pmx"]
    assert models[0] == ShardModel(**model_fields("a/a.pmx"))
    assert models[2].both_eyes_wink and models[2].wink_left is None
    assert models[2].wink_right == "ウィンク" and models[2].mouth_open == "あ"


def test_shard_attributes_and_layout(dataset_dir):
    directory, _ = dataset_dir
    with h5py.File(directory / "train-00000.h5", "r") as f:
        assert f.attrs["format_version"] == FORMAT_VERSION
        assert PoseSchema.from_dict(json.loads(f.attrs["schema"])) == THA1
        assert json.loads(f.attrs["renderer"]) == SETTINGS
        assert (f.attrs["image_size"], f.attrs["dataset_seed"]) == (SIZE, SEED)
        assert f.attrs["package_version"] == package_version() != ""
        assert f.attrs["split"] == "train"
        assert f["rest"].shape == (2, SIZE, SIZE, 4)
        for name in ("rest", "expression", "posed"):
            assert f[name].chunks == (1, SIZE, SIZE, 4)
            assert f[name].compression == "gzip"  # a filter every HDF5 has
        assert f["pose"].dtype == np.float32 and f["pose"].shape == (5, 6)
        assert f["model"].dtype == np.int32 and f["model"][()].tolist() == [0, 0, 0, 1, 1]
        assert f["example"].dtype == np.int32 and f["example"][()].tolist() == [0, 1, 2, 0, 1]
    assert [m.model_id for m in read_models(directory / "train-00000.h5")] == \
        ["a/a.pmx", "b/b.pmx"]


def test_manifest_lists_every_shard(dataset_dir):
    directory, _ = dataset_dir
    manifest = read_manifest(directory)
    assert not list(directory.glob("*.tmp"))
    files = [e["file"] for e in manifest["shards"]]
    assert files == ["train-00000.h5", "train-00001.h5", "test-00000.h5"]
    for entry in manifest["shards"]:
        path = directory / entry["file"]
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert entry["bytes"] == path.stat().st_size
        assert verify_shard(path, entry, THA1) == []
    assert [(e["models"], e["examples"]) for e in manifest["shards"]] == [(2, 5), (1, 4), (1, 2)]
    assert manifest["splits"] == {"train": {"shards": 2, "models": 3, "examples": 9},
                                  "test": {"shards": 1, "models": 1, "examples": 2}}
    assert manifest["schema"] == THA1.to_dict() and manifest["renderer"] == SETTINGS
    assert manifest["dataset_seed"] == SEED and manifest["image_size"] == SIZE


def test_manifest_refuses_disagreeing_or_missing_shards(tmp_path):
    write_shard(tmp_path / "a.h5", "train", {"m": 1})
    other = PoseSchema("other", THA1.parameters[:3])
    write_shard(tmp_path / "b.h5", "train", {"n": 1}, schema=other)
    with pytest.raises(PipelineError, match="schema"):
        write_manifest(tmp_path, ["a.h5", "b.h5"])
    with pytest.raises(PipelineError, match="does not exist"):
        write_manifest(tmp_path, ["a.h5", "c.h5"])
    with pytest.raises(PipelineError):
        write_manifest(tmp_path, [])
    assert not (tmp_path / MANIFEST).exists()
    with pytest.raises(PipelineError, match="manifest.json does not exist"):
        open_dataset(tmp_path)


def test_verify_catches_a_corrupted_byte(dataset_dir):
    directory, _ = dataset_dir
    entry = read_manifest(directory)["shards"][0]
    path = directory / entry["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    problems = verify_shard(path, entry)
    assert any("sha256" in p for p in problems)


def test_verify_catches_a_changed_image(dataset_dir):
    directory, _ = dataset_dir
    entry = read_manifest(directory)["shards"][1]
    path = directory / entry["file"]
    with h5py.File(path, "r+") as f:
        image = f["posed"][2]
        image[0, 0] = (9, 0, 0, 0)  # a coloured pixel in the transparent background
        f["posed"][2] = image
        f["expression"][1] = np.zeros((SIZE, SIZE, 4), np.uint8)  # no character
    problems = verify_shard(path, entry)
    assert any("sha256" in p for p in problems)
    assert any("posed images 2" in p and "background not (0,0,0,0)" in p for p in problems)
    assert any("expression images 1" in p and "no character" in p for p in problems)
    # The image checks stand alone: with a manifest rewritten over the damage,
    # only they remain.
    write_manifest(directory, [e["file"] for e in read_manifest(directory)["shards"]])
    entry = read_manifest(directory)["shards"][1]
    problems = verify_shard(path, entry)
    assert len(problems) == 2 and not any("sha256" in p for p in problems)


def test_verify_catches_bad_poses_and_wrong_schema(dataset_dir):
    directory, _ = dataset_dir
    entry = read_manifest(directory)["shards"][2]
    path = directory / entry["file"]
    with h5py.File(path, "r+") as f:
        f["pose"][1, 3] = 1.5
    problems = verify_shard(path, entry)
    assert any("examples 1: pose" in p for p in problems)
    other = PoseSchema("tha1", THA1.parameters[:5] + (
        PoseParameter("neck_z", -1.0, 1.0, "rotation", 20.0, "linear_ramp"),))
    assert any("differs from the expected" in p for p in verify_shard(path, entry, other))
    assert verify_shard(directory / "missing.h5", entry) == ["missing.h5: file missing"]


@pytest.fixture
def writer(tmp_path):
    w = ShardWriter(tmp_path / "s.h5", THA1, SIZE, SETTINGS, SEED, "train")
    w.add_model(character(np.random.default_rng(0)), **model_fields("m"))
    yield w
    w.abort()


def stray_colour(image):
    image = image.copy()
    image[image[..., 3] == 0, 0] = 7
    return image


def good_example(rng=None):
    rng = rng or np.random.default_rng(5)
    return sample_example(THA1, SEED, "m", 0), character(rng), character(rng)


@pytest.mark.parametrize("change, match", [
    (lambda p, e, q: (p, e[:-1], q), "shape"),
    (lambda p, e, q: (p, e, q[..., :3]), "shape"),
    (lambda p, e, q: (p, e.astype(np.float32), q), "dtype"),
    (lambda p, e, q: (p, e, q.astype(np.int64)), "dtype"),
    (lambda p, e, q: (p[:5], e, q), "pose shape"),
    (lambda p, e, q: (np.where(np.arange(6) == 4, np.nan, p), e, q), "head_y=nan"),
    (lambda p, e, q: (np.where(np.arange(6) == 0, 1.01, p), e, q), "eye_left=1.01"),
    (lambda p, e, q: (np.where(np.arange(6) == 3, -1.5, p), e, q), "head_x=-1.5"),
    (lambda p, e, q: (p.astype(np.int64), e, q), "floating"),
    (lambda p, e, q: (p, np.zeros_like(e), q), "no character"),
    (lambda p, e, q: (p, e, stray_colour(q)), "background"),
])
def test_add_example_validates(writer, change, match):
    pose, expression, posed = change(*good_example())
    with pytest.raises(PipelineError, match=match):
        writer.add_example(0, 0, pose, expression, posed)
    assert writer.examples == 0
    writer.add_example(0, 0, *good_example())  # the writer is still usable
    assert writer.examples == 1


def test_add_validates_keys(writer):
    writer.add_example(0, 0, *good_example())
    with pytest.raises(PipelineError, match="already"):
        writer.add_example(0, 0, *good_example())
    with pytest.raises(PipelineError, match="model index"):
        writer.add_example(1, 0, *good_example())
    with pytest.raises(PipelineError, match="example index"):
        writer.add_example(0, -1, *good_example())
    rest = character(np.random.default_rng(1))
    with pytest.raises(PipelineError, match="already"):
        writer.add_model(rest, **model_fields("m"))
    with pytest.raises(PipelineError, match="sha256"):
        writer.add_model(rest, **model_fields("n", sha256="xyz"))
    with pytest.raises(PipelineError, match="above"):
        writer.add_model(rest, **model_fields("n", head_top_y=1.0, head_bottom_y=2.0))
    with pytest.raises(PipelineError, match="rest image"):
        writer.add_model(rest[:-1], **model_fields("n"))
    assert writer.models == 1


def test_writer_refuses_bad_settings(tmp_path):
    with pytest.raises(PipelineError, match="JSON"):
        ShardWriter(tmp_path / "s.h5", THA1, SIZE, {"lights": object()}, SEED, "train")
    with pytest.raises(PipelineError, match="split"):
        ShardWriter(tmp_path / "s.h5", THA1, SIZE, SETTINGS, SEED, "no split")
    with pytest.raises(PipelineError, match=".h5"):
        ShardWriter(tmp_path / "s.hdf", THA1, SIZE, SETTINGS, SEED, "train")
    assert list(tmp_path.iterdir()) == []


def test_a_failure_inside_the_writer_leaves_no_file(tmp_path):
    path = tmp_path / "s.h5"
    with pytest.raises(RuntimeError, match="renderer died"):
        with ShardWriter(path, THA1, SIZE, SETTINGS, SEED, "train") as w:
            w.add_model(character(np.random.default_rng(0)), **model_fields("m"))
            w.add_example(0, 0, *good_example())
            assert w.tmp_path.exists() and not path.exists()
            raise RuntimeError("renderer died")
    assert list(tmp_path.iterdir()) == []


def test_a_validation_error_inside_the_writer_leaves_no_file(tmp_path):
    with pytest.raises(PipelineError):
        with ShardWriter(tmp_path / "s.h5", THA1, SIZE, SETTINGS, SEED, "train") as w:
            w.add_example(0, 0, *good_example())  # no model yet
    assert list(tmp_path.iterdir()) == []


def test_an_empty_shard_and_a_rewrite(tmp_path):
    path = tmp_path / "s.h5"
    with ShardWriter(path, THA1, SIZE, SETTINGS, SEED, "train"):
        pass
    with h5py.File(path, "r") as f:
        assert f["pose"].shape == (0, 6) and f["rest"].shape == (0, SIZE, SIZE, 4)
    write_shard(path, "train", {"m": 2})  # replaces the old file whole
    write_manifest(tmp_path, [path])
    assert len(open_dataset(tmp_path)) == 2


def test_a_handle_from_another_process_is_forgotten_not_reused(dataset_dir, monkeypatch):
    directory, _ = dataset_dir
    ds = open_dataset(directory)
    first = ds[0]
    shard = ds._shards[0]
    inherited = shard.file()
    assert shard.file() is inherited
    monkeypatch.setattr(os, "getpid", lambda: -1)  # as in a forked child
    again = ds[0]
    assert shard.file() is not inherited and inherited.id.valid  # reopened, old left open
    assert again.posed.tobytes() == first.posed.tobytes()
    ds.close()
    assert shard._file is None  # closed what this "process" opened
    monkeypatch.undo()
    inherited.close()


# Workers are module-level so the 'spawn' context can import them.
def _read_in_worker(ds, indices):
    out = []
    for i in indices:
        ex = ds[i]
        out.append((ex.rest.tobytes(), ex.expression.tobytes(), ex.posed.tobytes(),
                    ex.pose.tobytes(), ex.model_id, ex.split, ex.example, os.getpid()))
    return out


def _flatten(ds, indices):
    return [row[:-1] for row in _read_in_worker(ds, indices)]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_reading_from_other_processes(dataset_dir, method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method on this platform")
    directory, _ = dataset_dir
    ds = open_dataset(directory)
    indices = list(range(len(ds)))
    expected = _flatten(ds, indices)  # opens handles in the parent before forking
    context = multiprocessing.get_context(method)
    chunks = [indices[0::2], indices[1::2][::-1], indices]
    with context.Pool(3) as pool:
        results = pool.starmap(_read_in_worker, [(ds, chunk) for chunk in chunks])
    assert {row[-1] for rows in results for row in rows} - {os.getpid()}
    by_index = {}
    for chunk, rows in zip(chunks, results, strict=True):
        for i, row in zip(chunk, rows, strict=True):
            assert by_index.setdefault(i, row[:-1]) == row[:-1]
    assert [by_index[i] for i in indices] == expected
    assert _flatten(ds, indices) == expected  # the parent's handles still work
    ds.close()


def test_rollback_takes_back_what_was_added_since_the_last_commit(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "s.h5"
    with ShardWriter(path, THA1, SIZE, SETTINGS, SEED, "train") as w:
        kept = w.add_model(character(rng), **model_fields("kept"))
        for example in range(2):
            w.add_example(kept, example, sample_example(THA1, SEED, "kept", example),
                          character(rng), character(rng))
        w.commit()
        failed = w.add_model(character(rng), **model_fields("failed"))
        w.add_example(failed, 0, sample_example(THA1, SEED, "failed", 0), character(rng),
                      character(rng))
        w.rollback()
        assert (w.models, w.examples) == (1, 2)
        # The same model can be added again after a rollback.
        again = w.add_model(character(rng), **model_fields("failed"))
        w.add_example(again, 0, sample_example(THA1, SEED, "failed", 0), character(rng),
                      character(rng))
        w.rollback()
    with h5py.File(path) as f:
        assert f["rest"].shape[0] == 1
        assert f["expression"].shape[0] == f["posed"].shape[0] == f["pose"].shape[0] == 2
        assert [m.model_id for m in read_models(f)] == ["kept"]
    write_manifest(tmp_path, [path])
    assert verify_shard(path, read_manifest(tmp_path)["shards"][0], THA1) == []


def test_a_write_error_raises_at_once_and_leaves_no_file(tmp_path):
    import resource
    import signal

    path = tmp_path / "s.h5"
    rng = np.random.default_rng(4)
    w = ShardWriter(path, THA1, 256, SETTINGS, SEED, "train")
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, hard))  # as a disk filling up
    try:
        with pytest.raises(OSError, match=r"cannot write s\.h5\.\d+\.tmp: File too large"):
            row = w.add_model(character(rng, 256), **model_fields("m"))
            for example in range(20):
                w.add_example(row, example, sample_example(THA1, SEED, "m", example),
                              character(rng, 256), character(rng, 256))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert w.closed
    w.close()  # does nothing: the shard was discarded
    assert list(tmp_path.iterdir()) == []


def test_a_nearly_full_disk_is_refused_before_hdf5_fails(tmp_path, monkeypatch):
    from pipeline import shards

    w = ShardWriter(tmp_path / "s.h5", THA1, SIZE, SETTINGS, SEED, "train")
    monkeypatch.setattr(shards, "FREE_SPACE_MARGIN", 1 << 62)
    with pytest.raises(OSError, match="the disk is full"):
        w.add_model(character(np.random.default_rng(0)), **model_fields("m"))
    assert list(tmp_path.iterdir()) == []


def test_the_fingerprint_is_stored_and_read_back(tmp_path):
    from pipeline.shards import read_fingerprint

    tag = {"dataset_seed": SEED, "models": [{"model_id": "m", "examples": 2}]}
    with ShardWriter(tmp_path / "s.h5", THA1, SIZE, SETTINGS, SEED, "train", fingerprint=tag):
        pass
    assert read_fingerprint(tmp_path / "s.h5") == tag
    with ShardWriter(tmp_path / "t.h5", THA1, SIZE, SETTINGS, SEED, "train"):
        pass
    assert read_fingerprint(tmp_path / "t.h5") is None
    assert read_fingerprint(tmp_path / "absent.h5") is None


def test_write_manifest_uses_known_digests_without_reading_the_shards(dataset_dir,
                                                                       monkeypatch):
    from pipeline import shards

    directory, _ = dataset_dir
    names = [e["file"] for e in read_manifest(directory)["shards"]]
    known = {name: hashlib.sha256((directory / name).read_bytes()).hexdigest()
             for name in names}

    def no_hashing(path):
        raise AssertionError(f"{path} was hashed again")

    monkeypatch.setattr(shards, "file_sha256", no_hashing)
    write_manifest(directory, names, known)
    assert [e["sha256"] for e in read_manifest(directory)["shards"]] == \
        [known[name] for name in names]


def test_reading_a_damaged_shard_is_a_pipeline_error(dataset_dir):
    directory, _ = dataset_dir
    shard = directory / "train-00000.h5"
    data = bytearray(shard.read_bytes())
    with h5py.File(shard) as f:
        offset = f["posed"].id.get_chunk_info(0).byte_offset
    data[offset:offset + 64] = bytes(64)  # the first posed image's compressed bytes
    shard.write_bytes(bytes(data))
    ds = open_dataset(directory)
    with pytest.raises(PipelineError, match="train-00000.h5 cannot be read .*pipeline verify"):
        ds[0]
