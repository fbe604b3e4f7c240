"""Example poses drawn from real motions (``pipeline dataset --motions DIR``).

Instead of the synthetic sampler, each example of a model takes one frame of
one motion of the folder (``*.vmd`` and ``*.vpd``, searched recursively): the
motion uniformly among those that move the model (a motion with none of its
bones or morphs is left out for it), then a whole frame uniformly from 0 to
the motion's last key, both drawn by ``example_rng(seed, model_id, example,
purpose="motion")``, so a rerun draws the same frames. The frame becomes the
run's pose vector through the model's roles (:mod:`mmdrender.motion_pose`),
clipped to the schema's ranges; the wide runs then fit it to what the model
shows, as they do sampled poses. The shards' renderer settings list the
motions (file names and sha256), so a shard says where its poses came from.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmdrender.errors import MMDRenderError
from mmdrender.motion import Motion
from mmdrender.motion_pose import MotionPoses
from mmdrender.schemas import SCHEMAS
from pipeline.errors import PipelineError
from pipeline.poses import example_rng, sample_examples
from pipeline.roles import rig_of

MOTION_SUFFIXES = (".vmd", ".vpd")


@dataclass(frozen=True)
class MotionFile:
    path: str  # where this machine reads it (not part of the fingerprint)
    name: str  # relative to the folder
    sha256: str


def motion_library(folder: str | os.PathLike) -> tuple[MotionFile, ...]:
    """The motion files under ``folder``, in a fixed order; each must load."""
    folder = Path(folder)
    if not folder.is_dir():
        raise PipelineError(f"--motions {folder}: no such folder")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in MOTION_SUFFIXES
                   and p.is_file())
    if not paths:
        raise PipelineError(f"--motions {folder}: no .vmd or .vpd file in it")
    files = []
    for path in paths:
        motion = _load(str(path))  # a damaged motion stops the run before any model is drawn
        files.append(MotionFile(str(path), path.relative_to(folder).as_posix(), motion.sha256))
    return tuple(files)


def describe(files: tuple[MotionFile, ...]) -> dict:
    """What a shard records of the pose source."""
    return {"source": "motions", "motions": [{"file": f.name, "sha256": f.sha256}
                                             for f in files],
            "draw": "per example: a motion moving the model, then a frame 0..last, by "
                    "example_rng(seed, model_id, example, purpose='motion')"}


@functools.lru_cache(maxsize=64)
def _load(path: str) -> Motion:
    try:
        return Motion.load(path)
    except MMDRenderError as error:
        raise PipelineError(f"--motions: {error}") from None


def example_poses(config, entry, model, examples: int) -> np.ndarray:
    """``examples`` pose vectors of the run's schema for one model: sampled, or from the
    run's motions. (examples, P) float32, the schema's order."""
    if not config.motions:
        return sample_examples(config.schema, config.seed, entry.model_id, 0, examples)
    schema = SCHEMAS[config.schema.name]
    rig = rig_of(entry)
    usable = []
    for file in config.motions:
        bound = _load(file.path).bind(model)
        try:
            bound.check_matches()
        except MMDRenderError:
            continue
        usable.append(MotionPoses(bound, schema, rig, config.body))
    if not usable:
        names = sorted({n for f in config.motions
                        for n in _load(f.path).bind(model).unmatched_bones})[:10]
        raise PipelineError("none of the --motions files moves this model: no bone or morph "
                            f"name in common (the motions' bones include {', '.join(names)})")
    chosen = np.zeros(examples, np.int64)
    frames = np.zeros(examples)
    for e in range(examples):
        rng = example_rng(config.seed, entry.model_id, e, purpose="motion")
        chosen[e] = rng.integers(len(usable))
        frames[e] = rng.integers(usable[chosen[e]].bound.motion.last_frame + 1)
    poses = np.zeros((examples, len(schema)))
    for m, poser in enumerate(usable):
        rows = np.flatnonzero(chosen == m)
        if len(rows):
            poses[rows] = poser.track(frames[rows]).unclipped
    return _in_run_degrees(poses, schema, config.schema)


def _in_run_degrees(poses: np.ndarray, schema, run_schema) -> np.ndarray:
    """Unclipped values in the run's ranges: a THA1 run may turn the head by other than
    15° at +-1 (rescaled first), then every value is clipped. (n, P) float32."""
    for i, (p, q) in enumerate(zip(schema.parameters, run_schema.parameters, strict=True)):
        degrees = getattr(q, "degrees", None)
        if p.degrees and degrees and degrees != p.degrees:
            poses[:, i] *= p.degrees / degrees
    low = np.array([p.low for p in schema.parameters])
    high = np.array([p.high for p in schema.parameters])
    return np.clip(poses, low, high).astype(np.float32)
