"""The dataset run: index rows → rendered (rest, expression, posed) triples in shards.

The work is cut into shard tasks fixed by the index alone (each split's usable
models, sorted by model_id, in groups of ``models_per_shard``), and every pose
comes from (seed, model_id, example). So a task renders the same bytes whoever
runs it and whenever: a rerun skips finished shards and redoes the rest, and
the result equals an uninterrupted run. A shard and its failure record are each
written to a temporary name and renamed, so a crash leaves a task either done
or absent. Workers are processes (joblib's loky, or a Dask cluster), each with
its one GL context and its renderer from :func:`mmdrender.render.get_renderer`.
"""

from __future__ import annotations

import csv
import json
import resource
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mmdrender.camera import Camera
from mmdrender.errors import MMDRenderError
from mmdrender.gl.renderer import DEFAULT_SAMPLES, DEFAULT_SUPERSAMPLE, Lights
from mmdrender.loader import load_model
from mmdrender.pose import HEAD_BONE, MorphMapping, Poser
from mmdrender.render import get_renderer
from pipeline.atomic import atomic_write
from pipeline.errors import PipelineError
from pipeline.index import ModelEntry, file_sha256, resolve_model_path
from pipeline.poses import THA1, PoseSchema, example_rng, sample_examples
from pipeline.shards import ShardWriter, write_manifest

FAILURES_SUFFIX = ".failures.json"
MORPH_PARAMETERS = ("eye_left", "eye_right", "mouth")


@dataclass(frozen=True)
class RunConfig:
    """Everything that decides the bytes of a dataset; stored in every shard."""

    out: Path
    models_root: Path
    examples_per_model: int
    split_examples: tuple[tuple[str, int], ...] = ()  # (split, total): overrides per model
    seed: int = 0
    size: int = 256
    shading: str = "phong"
    samples: int = DEFAULT_SAMPLES  # MSAA
    supersample: int = DEFAULT_SUPERSAMPLE
    models_per_shard: int = 4
    schema: PoseSchema = THA1
    lights: str = "fixed"  # or "tha1" / "tha2": sampled per model (spec section 5)

    def renderer_settings(self) -> dict:
        lights = asdict(Lights()) if self.lights == "fixed" else {
            "sampling": self.lights, "per": "model",
            "seed": "example_rng(seed, model_id, 0, purpose='lights')"}
        return {"shading": self.shading, "msaa_samples": self.samples,
                "supersample": self.supersample, "lights": lights,
                "projection": "orthographic",
                "framing": "head top/bottom -> rows size/4 and 3*size/4"}

    def model_lights(self, model_id: str) -> Lights:
        """One lighting per model, so its rest, expression and posed images match."""
        if self.lights == "fixed":
            return Lights()
        return Lights.sample(example_rng(self.seed, model_id, 0, purpose="lights"), self.lights)


@dataclass(frozen=True)
class ShardTask:
    split: str
    number: int
    entries: tuple[ModelEntry, ...]
    examples: tuple[int, ...]  # per entry

    @property
    def name(self) -> str:
        return f"{self.split}-{self.number:05d}.h5"

    @property
    def images(self) -> int:
        return sum(1 + 2 * n for n in self.examples)


@dataclass
class ShardResult:
    task: ShardTask
    images: int = 0
    failures: list[dict] = field(default_factory=list)
    peak_memory_mb: float = 0.0  # of the worker process that rendered it


def plan(entries: Iterable[ModelEntry], config: RunConfig) -> list[ShardTask]:
    """Shard tasks for every usable model: not rejected and assigned a split."""
    if config.examples_per_model < 1:
        raise PipelineError("examples per model must be at least 1")
    if config.models_per_shard < 1:
        raise PipelineError("models per shard must be at least 1")
    if config.supersample < 1 or config.samples < 0:
        raise PipelineError(f"supersample must be at least 1 and MSAA samples at least 0, "
                            f"not {config.supersample} and {config.samples}")
    if config.lights not in ("fixed", "tha1", "tha2"):
        raise PipelineError(f"lights must be fixed, tha1 or tha2, not {config.lights!r}")
    by_split: dict[str, list[ModelEntry]] = {}
    for entry in entries:
        if entry.status != "rejected" and entry.split:
            by_split.setdefault(entry.split, []).append(entry)
    totals = dict(config.split_examples)
    unknown = set(totals) - set(by_split)
    if unknown:
        raise PipelineError(f"example totals given for splits with no usable model: "
                            f"{sorted(unknown)}")
    tasks = []
    for split in sorted(by_split):
        models = sorted(by_split[split], key=lambda e: e.model_id)
        counts = _spread(totals[split], len(models)) if split in totals else \
            [config.examples_per_model] * len(models)
        for number, start in enumerate(range(0, len(models), config.models_per_shard)):
            stop = start + config.models_per_shard
            tasks.append(ShardTask(split, number, tuple(models[start:stop]),
                                   tuple(counts[start:stop])))
    return tasks


def _spread(total: int, models: int) -> list[int]:
    """``total`` examples over ``models`` as evenly as possible, extras to the first."""
    if total < models:
        raise PipelineError(f"{total} examples cannot give each of {models} models one")
    return [total // models + (1 if i < total % models else 0) for i in range(models)]


def is_done(task: ShardTask, out: Path) -> bool:
    return (out / task.name).exists() and (out / (task.name + FAILURES_SUFFIX)).exists()


# ------------------------------------------------------------------ one worker

def render_shard(task: ShardTask, config: RunConfig) -> ShardResult:
    """Render one shard; a model that fails is recorded and left out, never half-written."""
    result = ShardResult(task)
    out = Path(config.out)
    with ShardWriter(out / task.name, config.schema, config.size,
                     config.renderer_settings(), config.seed, task.split) as writer:
        for entry, examples in zip(task.entries, task.examples, strict=True):
            try:
                rendered = render_model(entry, config, examples)
            except (MMDRenderError, PipelineError) as error:
                result.failures.append({"model_id": entry.model_id, "path": entry.path,
                                        "reason": str(error)})
                continue
            rest, poses, expressions, posed, fields = rendered
            index = writer.add_model(rest, **fields)
            for example, (pose, expression, image) in enumerate(
                    zip(poses, expressions, posed, strict=True)):
                writer.add_example(index, example, pose, expression, image)
            result.images += 1 + 2 * len(poses)
    _write_json_atomically(out / (task.name + FAILURES_SUFFIX), result.failures)
    result.peak_memory_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def render_model(entry: ModelEntry, config: RunConfig, examples: int):
    """All images of one model, or a specific error saying why it cannot be used."""
    path = resolve_model_path(entry, config.models_root)
    if entry.head_top_y is None or entry.head_bottom_y is None:
        raise PipelineError("no head bounds in the index; annotate the model first")
    if not entry.mouth_open:
        raise PipelineError("no mouth-open morph in the index (column mouth_open)")
    if entry.sha256 and file_sha256(path) != entry.sha256:
        raise PipelineError("the model file changed since it was indexed (sha256 differs); "
                            "rescan it")
    model = load_model(path, root=config.models_root)
    if model.bone_index(HEAD_BONE) is None:
        raise PipelineError("the model has no 頭 (head) bone to rotate")
    one_eye = bool(entry.wink_left and entry.wink_right)
    if not one_eye and not entry.wink_both:
        raise PipelineError("no eye morphs in the index (wink_left/right or wink_both)")
    mapping = MorphMapping(wink_left=entry.wink_left if one_eye else None,
                           wink_right=entry.wink_right if one_eye else None,
                           mouth_open=entry.mouth_open)
    poser = Poser(model, mapping, degrees=_degrees(config.schema))
    head_x = float(model.bones[model.bone_index(HEAD_BONE)].position[0])
    camera = Camera.from_head_bounds(entry.head_top_y, entry.head_bottom_y, head_x,
                                     size=config.size)
    poses = sample_examples(config.schema, config.seed, entry.model_id, 0, examples)
    if not one_eye:
        # One sampled eye value, closed through the both-eyes morph; the stored
        # pose says so (both eyes equal) and the shard flags the model.
        poses[:, config.schema.index("eye_right")] = poses[:, config.schema.index("eye_left")]

    def pose(values: dict[str, float]):
        morphs = {}
        if not one_eye:
            morphs[entry.wink_both] = values.pop("eye_left", 0.0)
            values.pop("eye_right", None)
        return poser.pose(values, morphs)

    lights = config.model_lights(entry.model_id)
    scene = get_renderer(config.size, config.shading, config.samples,
                         config.supersample).prepare(model)
    try:
        rest = scene.draw(pose({"mouth": 1.0}), camera, lights)
        expressions, posed = [], []
        for values in poses:
            named = config.schema.as_mapping(values)
            morph_only = {k: v for k, v in named.items() if k in MORPH_PARAMETERS}
            expressions.append(scene.draw(pose(morph_only), camera, lights))
            posed.append(scene.draw(pose(dict(named)), camera, lights))
    finally:
        scene.release()
    fields = {"model_id": entry.model_id, "sha256": entry.sha256 or file_sha256(path),
              "head_top_y": entry.head_top_y, "head_bottom_y": entry.head_bottom_y,
              "wink_left": mapping.wink_left or "", "wink_right": mapping.wink_right or "",
              "mouth_open": entry.mouth_open, "both_eyes_wink": not one_eye}
    if not one_eye:
        fields["wink_left"] = fields["wink_right"] = entry.wink_both
    return rest, poses, expressions, posed, fields


def _degrees(schema: PoseSchema) -> float:
    degrees = {p.degrees for p in schema.parameters if p.kind == "rotation"}
    if len(degrees) != 1:
        raise PipelineError("all rotation parameters of the schema must share one range in "
                            f"degrees, got {sorted(degrees)}")
    return degrees.pop()


def _write_json_atomically(path: Path, value) -> None:
    with atomic_write(path, "w", encoding="utf-8") as file:
        json.dump(value, file, ensure_ascii=False, indent=1)


# ------------------------------------------------------------------ the run


def run_tasks(tasks: list[ShardTask], config: RunConfig, workers: int = 1,
              backend: str = "loky") -> Iterator[ShardResult]:
    """Results as tasks finish, in any order. ``backend``: loky (processes) or dask."""
    if workers == 1 and backend == "loky":
        for task in tasks:
            yield render_shard(task, config)
        return
    from joblib import Parallel, delayed, parallel_config

    with parallel_config(backend=backend, n_jobs=workers):
        yield from Parallel(return_as="generator_unordered")(
            delayed(render_shard)(task, config) for task in tasks)


def finish(tasks: list[ShardTask], config: RunConfig) -> tuple[Path, list[dict]]:
    """The manifest (written last) and failures.csv, from the finished shards."""
    out = Path(config.out)
    failures = []
    for task in tasks:
        records = json.loads((out / (task.name + FAILURES_SUFFIX)).read_text(encoding="utf-8"))
        failures += [{"split": task.split, "shard": task.name, **r} for r in records]
    with atomic_write(out / "failures.csv", "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=["model_id", "path", "split", "shard",
                                                  "reason"])
        writer.writeheader()
        writer.writerows(failures)
    return write_manifest(out, [out / task.name for task in tasks]), failures


def total_images(tasks: list[ShardTask]) -> int:
    return sum(task.images for task in tasks)
