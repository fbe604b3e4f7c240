"""``pipeline verify``'s check of one shard against its manifest entry and the image rules."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np

from pipeline.errors import PipelineError
from pipeline.image_sets import THA1_IMAGES, stored_names
from pipeline.index import file_sha256
from pipeline.poses import PoseSchema
from pipeline.shard_reader import read_models
from pipeline.shards import (
    _MODEL_FLOATS,
    _MODEL_STRINGS,
    _image_problem,
    read_attrs,
    shard_images,
)

_LISTED = 10  # problems of one kind quoted by verify_shard before summarising


def _listed(kind: str, indices: np.ndarray | list[int], problem: str) -> str:
    indices = list(indices)
    shown = ", ".join(str(i) for i in indices[:_LISTED])
    more = f" and {len(indices) - _LISTED} more" if len(indices) > _LISTED else ""
    return f"{kind} {shown}{more}: {problem}"


def verify_shard(path: str | os.PathLike, manifest_entry: Mapping,
                 schema: PoseSchema | None = None) -> list[str]:
    """Problems with one shard against its manifest entry; an empty list when sound.

    Checks size and sha256, attributes and ``schema`` (when given), shapes and
    dtypes, the model table, pose ranges, and every image's rules: background
    exactly (0,0,0,0), character non-empty. Reports rather than raises.
    """
    path = Path(path)
    problems: list[str] = []
    if not path.is_file():
        return [f"{path.name}: file missing"]
    size = path.stat().st_size
    if size != manifest_entry.get("bytes"):
        problems.append(f"size {size} bytes, manifest says {manifest_entry.get('bytes')}")
    if file_sha256(path) != manifest_entry.get("sha256"):
        problems.append("sha256 differs from the manifest: the file changed or is corrupt")
    try:
        with h5py.File(path, "r") as f:
            problems += _verify_contents(f, path.name, manifest_entry, schema)
    except (OSError, KeyError, ValueError, RuntimeError) as error:
        problems.append(f"cannot read as an HDF5 shard: {error}")
    return [f"{path.name}: {p}" for p in problems]


def _verify_contents(f: h5py.File, name: str, entry: Mapping,
                     expected: PoseSchema | None) -> list[str]:
    try:
        attrs = read_attrs(f, name)
        schema = PoseSchema.from_dict(attrs["schema"])
    except PipelineError as error:
        return [str(error)]
    problems = []
    if expected is not None and schema != expected:
        problems.append(f"schema {schema.to_dict()} differs from the expected "
                        f"{expected.to_dict()}")
    if attrs["split"] != entry.get("split"):
        problems.append(f"split {attrs['split']!r}, manifest says {entry.get('split')!r}")
    images = shard_images(attrs)
    per_model, per_example = stored_names(images, "model"), stored_names(images, "example")
    wide = images != THA1_IMAGES
    tables = ("pose", "model", "example", "models", *(("rest_mouth",) if wide else ()))
    missing = [d for d in (*per_model, *per_example, *tables) if d not in f]
    if missing:
        return problems + [f"missing datasets {missing}"]
    s, p = attrs["image_size"], len(schema)
    m, n = f["rest"].shape[0], f["pose"].shape[0]
    expect = {"pose": ((n, p), np.float32), "model": ((n,), np.int32),
              "example": ((n,), np.int32),
              **{name: ((m, s, s, 4), np.uint8) for name in per_model},
              **{name: ((n, s, s, 4), np.uint8) for name in per_example},
              **({"rest_mouth": ((n,), np.uint8)} if wide else {})}
    for key, (shape, dtype) in expect.items():
        d = f[key]
        if d.shape != shape or d.dtype != dtype:
            problems.append(f"{key} is {d.shape} {d.dtype}, expected {shape} {np.dtype(dtype)}")
    for key in (*_MODEL_STRINGS, *_MODEL_FLOATS, "both_eyes_wink",
                *(("details",) if wide else ())):
        if key not in f["models"] or f["models"][key].shape != (m,):
            problems.append(f"model table column {key} missing or not of length {m}")
    if (m, n) != (entry.get("models"), entry.get("examples")):
        problems.append(f"{m} models and {n} examples, manifest says {entry.get('models')} "
                        f"and {entry.get('examples')}")
    if problems:
        return problems
    try:
        models = read_models(f)
    except PipelineError as error:
        problems.append(f"model table: {error}")
    else:
        ids = [e.model_id for e in models]
        if len(set(ids)) != len(ids):
            problems.append("model table repeats a model_id")
    rows, examples, poses = f["model"][()], f["example"][()], f["pose"][()]
    bad = np.flatnonzero((rows < 0) | (rows >= m))
    if bad.size:
        problems.append(_listed("examples", bad, f"model row outside [0, {m})"))
    bad = np.flatnonzero(examples < 0)
    if bad.size:
        problems.append(_listed("examples", bad, "negative example index"))
    if np.unique(np.stack([rows, examples], axis=1), axis=0).shape[0] != n:
        problems.append("a (model, example) pair appears twice")
    bad = np.flatnonzero(schema.out_of_range(poses))
    if bad.size:
        problems.append(_listed("examples", bad, "pose not finite or outside the schema's "
                                                 "ranges"))
    if wide:
        bad = np.flatnonzero(f["rest_mouth"][()] > 1)
        if bad.size:
            problems.append(_listed("examples", bad, "rest_mouth is not 0 or 1"))
    for key in (*per_model, *per_example):
        dataset = f[key]
        broken, reasons = [], set()
        for i in range(dataset.shape[0]):
            reason = _image_problem(dataset[i])
            if reason:
                broken.append(i)
                reasons.add(reason.split(":")[0])
        if broken:
            problems.append(_listed(f"{key} images", broken, "; ".join(sorted(reasons))))
    return problems
