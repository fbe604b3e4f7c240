"""The dataset run: index rows → rendered (rest, expression, posed) triples in shards.

The work is cut into shard tasks fixed by the index alone (each split's usable
models, sorted by model_id, in groups of ``models_per_shard``), and every pose
comes from (seed, model_id, example). So a task renders the same bytes whoever
runs it and whenever: a rerun keeps finished shards and redoes the rest, and
the result equals an uninterrupted run.

A shard is finished when its record (``<shard>.failures.json``: the task's
:func:`fingerprint`, the shard's size and sha256, the models that failed)
matches the task, and so does the fingerprint stored in the shard itself. The
fingerprint holds everything that decides the shard's bytes (settings, models,
their annotations and sha256), so a rerun with other settings or a changed
index renders again exactly the shards that change. A shard whose models
failed for a reason outside the index (file missing, unreadable or changed)
is rendered again on every rerun; ``retry_failed`` redoes any shard with a
failure. A shard and its record are each written to a temporary name and
renamed, so a crash leaves a task either done or absent; one run at a time
holds an output folder (:func:`locked`).

Workers are processes (joblib's loky, or a Dask cluster), each with its one GL
context and its renderer from :func:`mmdrender.render.get_renderer`. Images go
into the shard as they are drawn; a model that fails half way is taken back out.
"""

from __future__ import annotations

import csv
import fcntl
import functools
import hashlib
import json
import multiprocessing
import resource
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mmdrender.camera import Camera, head_centre_x
from mmdrender.errors import MMDRenderError
from mmdrender.gl.context import describe
from mmdrender.gl.renderer import DEFAULT_SAMPLES, DEFAULT_SUPERSAMPLE, Lights
from mmdrender.loader import load_model
from mmdrender.pose import HEAD_BONE, MorphMapping, Poser
from mmdrender.reach import reachable_faces
from mmdrender.render import get_renderer
from mmdrender.schema_pose import BodySettings
from pipeline.atomic import atomic_write
from pipeline.errors import PipelineError
from pipeline.image_sets import IMAGE_SETS, THA1_IMAGES, stored_names
from pipeline.index import ModelEntry, file_sha256, resolve_model_path
from pipeline.motion_source import describe as describe_motions
from pipeline.motion_source import example_poses
from pipeline.poses import THA1, PoseSchema, example_rng, is_wide
from pipeline.roles import LEGACY_ROLE_COLUMNS, WIDE_COLUMNS
from pipeline.shards import (
    FORMAT_VERSION,
    MANIFEST,
    SUFFIX,
    ShardWriter,
    package_version,
    read_fingerprint,
    write_manifest,
)
from pipeline.wide_render import render_wide_model, wide_settings

FAILURES_SUFFIX = ".failures.json"  # the shard's record: fingerprint, size, sha256, failures
FAILURES_CSV = "failures.csv"
WARNINGS_CSV = "warnings.csv"
WARNINGS_SHOWN = 5  # texture warnings printed at the end of a run; all are in warnings.csv
LOCK = ".lock"
# OUT/.rendering/<model_id> exists while a worker renders that model; one left
# behind means the process died there, or the run was killed: a suspect, checked
# alone. OUT/.crashed/<model_id>: a model that killed its worker rendering alone.
RENDERING = ".rendering"
CRASHED = ".crashed"
CRASH_REASON = ("its worker process died while rendering it (a crash in the GL driver, or out "
                "of memory?); skipped (--retry-failed tries it again)")
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
    body: BodySettings = BodySettings()  # the wide schemas' body choices (schema_pose)
    motions: tuple = ()  # MotionFile: poses from these motions' frames (motion_source)

    @property
    def wide(self) -> bool:
        """A THA2 or THA3 run (pipeline.wide_render), not THA1's triples."""
        return is_wide(self.schema)

    @property
    def images(self) -> tuple:
        return IMAGE_SETS[self.schema.name] if self.wide else THA1_IMAGES

    def renderer_settings(self) -> dict:
        lights = asdict(Lights()) if self.lights == "fixed" else {
            "sampling": self.lights, "per": "model",
            "seed": "example_rng(seed, model_id, 0, purpose='lights')"}
        settings = {"shading": self.shading, "msaa_samples": self.samples,
                    "supersample": self.supersample, "lights": lights,
                    "projection": "orthographic",
                    "framing": "head top/bottom -> rows size/4 and 3*size/4"}
        if self.wide:
            settings.update(wide_settings(self))
        if self.motions:
            settings["poses"] = describe_motions(self.motions)
        return settings

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
    images_per: tuple[int, int] = (1, 2)  # images per model and per example

    @property
    def name(self) -> str:
        return f"{self.split}-{self.number:05d}.h5"

    @property
    def images(self) -> int:
        return sum(self.model_images(n) for n in self.examples)

    def model_images(self, examples: int) -> int:
        per_model, per_example = self.images_per
        return per_model + per_example * examples


@dataclass
class ShardResult:
    task: ShardTask
    images: int = 0
    failures: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)  # models drawn without some textures
    shard: str = ""  # the file written, and its sha256 (see trust_written)
    sha256: str = ""
    drawn_with: str = ""  # the GL driver of the process that drew it
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
        images_per = tuple(len(stored_names(config.images, per)) for per in ("model", "example"))
        for number, start in enumerate(range(0, len(models), config.models_per_shard)):
            stop = start + config.models_per_shard
            tasks.append(ShardTask(split, number, tuple(models[start:stop]),
                                   tuple(counts[start:stop]), images_per))
    return tasks


def _spread(total: int, models: int) -> list[int]:
    """``total`` examples over ``models`` as evenly as possible, extras to the first."""
    if total < models:
        raise PipelineError(f"{total} examples cannot give each of {models} models one")
    return [total // models + (1 if i < total % models else 0) for i in range(models)]


def fingerprint(task: ShardTask, config: RunConfig) -> dict:
    """Everything that decides the bytes of ``task``'s shard, as plain JSON values.

    Settings, the code that renders (:func:`rendering_code`), the shard's split
    and number, and per model its file, sha256 (the file's own when the index
    has none), annotations and example count: a shard is kept by a rerun only
    when this is unchanged. Textures are checked from the shard's record
    (:func:`_inputs_unchanged`). ``models_root`` is left out: the sha256 says
    the file is the same wherever the library lives.
    """
    models = [{"model_id": e.model_id, "path": e.path,
               "sha256": e.sha256 or _current_sha256(e, config),
               "head_top_y": e.head_top_y, "head_bottom_y": e.head_bottom_y,
               "wink_left": e.wink_left, "wink_right": e.wink_right,
               "wink_both": e.wink_both, "mouth_open": e.mouth_open, "examples": n,
               **({"roles": _roles(e)} if config.wide else {})}
              for e, n in zip(task.entries, task.examples, strict=True)]
    value = {"format_version": FORMAT_VERSION, "package_version": package_version(),
             "code": rendering_code(),
             "schema": config.schema.to_dict(), "image_size": config.size,
             "dataset_seed": config.seed, "renderer": config.renderer_settings(),
             "split": task.split, "shard": task.number, "models": models}
    return json.loads(json.dumps(value))  # as it reads back from a file


def _roles(entry: ModelEntry) -> dict:
    """A wide run's share of an index row: every role, halves, bone and angle."""
    return {column: getattr(entry, column) for column in (*LEGACY_ROLE_COLUMNS, *WIDE_COLUMNS)}


def _current_sha256(entry: ModelEntry, config: RunConfig) -> str:
    try:
        return file_sha256(resolve_model_path(entry, config.models_root))
    except PipelineError:
        return "unreadable"


@functools.cache
def rendering_code() -> str:
    """sha256 of the source that decides a shard's bytes (mmdrender, poses, roles, shards...).

    Upgrading the project therefore re-renders finished shards on a rerun
    instead of mixing images from two versions of the renderer in one dataset.
    """
    import mmdrender

    digest = hashlib.sha256()
    package = Path(mmdrender.__file__).parent
    files = sorted([*package.rglob("*.py"), *package.rglob("*.glsl")])
    files += [Path(__file__).with_name(name) for name in (
        "generate.py", "poses.py", "shards.py", "feature_poses.py", "wide_render.py",
        "image_sets.py", "roles.py", "motion_source.py", "image_chunks.py")]
    for path in files:
        digest.update(path.relative_to(path.parents[1]).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def texture_report(model, scenes) -> tuple[list[list], list[str]]:
    """A rendered model's texture files' stats (:func:`_texture_stats`) and what it was
    drawn without: textures not found, refused (too large) or undecodable."""
    warnings = [f"texture {ref.reference!r} {ref.problem or 'not found'}; drawn without it"
                for ref in model.missing_textures]
    for scene in scenes:
        warnings += [w for w in scene.warnings if w not in warnings]
    return _texture_stats(model), warnings


def _texture_stats(model) -> list[list]:
    """[path, size, mtime_ns] of each texture file the model names (None, None: missing)."""
    stats = []
    for ref in model.textures:
        if ref.path is None:
            continue
        try:
            status = Path(ref.path).stat()
            stats.append([str(ref.path), status.st_size, status.st_mtime_ns])
        except OSError:
            stats.append([str(ref.path), None, None])
    return stats


def _inputs_unchanged(record: dict) -> bool:
    """Whether every texture file the shard's models used is as it was when rendered."""
    for stats in record.get("textures", {}).values():
        for path, size, mtime in stats:
            try:
                status = Path(path).stat()
                now = [status.st_size, status.st_mtime_ns]
            except OSError:
                now = [None, None]
            if now != [size, mtime]:
                return False
    return True


def read_record(task: ShardTask, out: Path) -> dict | None:
    """The record written beside ``task``'s shard; None if absent, unreadable or older."""
    try:
        record = json.loads((Path(out) / (task.name + FAILURES_SUFFIX)).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not {"fingerprint", "bytes", "sha256",
                                            "failures"} <= set(record):
        return None  # a list of failures: written before shards had fingerprints
    return record


def finished_record(task: ShardTask, config: RunConfig) -> dict | None:
    """The record of ``task``'s shard if the shard on disk is the one this task makes,
    byte for byte as it was written (its sha256 is checked against the record's)."""
    out = Path(config.out)
    record = read_record(task, out)
    if record is None or record["fingerprint"] != fingerprint(task, config):
        return None
    shard = out / task.name
    try:
        size = shard.stat().st_size
    except OSError:
        return None
    if size != record["bytes"] or read_fingerprint(shard) != record["fingerprint"]:
        return None
    if _shard_sha256(shard) != record["sha256"]:  # damaged since written: render it again
        return None
    if not _inputs_unchanged(record):
        return None
    return record


_HASHES: dict[tuple, str] = {}  # (path, size, mtime_ns, inode) -> sha256, this process


def _shard_sha256(shard: Path) -> str:
    """The shard file's sha256, hashed once per process for each state of the file (a
    rewritten shard is a new inode and mtime), however many shards a dataset has."""
    status = shard.stat()
    key = (str(shard), status.st_size, status.st_mtime_ns, status.st_ino)
    if key not in _HASHES:
        _HASHES[key] = file_sha256(shard)
    return _HASHES[key]


def trust_written(result: ShardResult) -> None:
    """A shard this run just wrote hashes as its record says (the worker hashed it as it
    wrote it): :func:`finish` need not read it again. :func:`run_tasks` calls it."""
    if result.shard and result.sha256:
        status = Path(result.shard).stat()
        _HASHES[(result.shard, status.st_size, status.st_mtime_ns, status.st_ino)] = \
            result.sha256


def damaged_shards(tasks: list[ShardTask], config: RunConfig) -> list[str]:
    """Shards on disk whose bytes are no longer those their record says were written.

    Only shards a rerun would keep are read: one made with other settings or code is
    rendered again anyway."""
    out, damaged = Path(config.out), []
    for task in tasks:
        record, shard = read_record(task, out), out / task.name
        if record is None or record["fingerprint"] != fingerprint(task, config):
            continue
        try:
            if shard.stat().st_size == record["bytes"] and \
                    _shard_sha256(shard) != record["sha256"]:
                damaged.append(task.name)
        except OSError:
            continue
    return damaged


def is_done(task: ShardTask, config: RunConfig, retry_failed: bool = False) -> bool:
    """Whether a rerun keeps ``task``'s shard as it is.

    Only a shard this task would write (see :func:`fingerprint`), and not one
    with a model that failed for a reason outside the index (a missing,
    unreadable or changed file), nor, with ``retry_failed``, any failed model.
    """
    record = finished_record(task, config)
    return record is not None and not any(retry_failed or failure.get("retry")
                                          for failure in record["failures"])


# ------------------------------------------------------------------ one worker

def render_shard(task: ShardTask, config: RunConfig,
                 progress: Callable[[int], object] | None = None,
                 crashed: frozenset[str] = frozenset()) -> ShardResult:
    """Render one shard and its record; a model that fails is recorded and left out.

    ``progress``, when given, is called with image counts as each example is
    stored, and with the rest of a model's count once it is done (rendered or
    failed). Models in ``crashed`` (ids) killed a
    worker before and are recorded as failed without rendering. A shard that
    cannot be written (a full disk) is a PipelineError and leaves no shard file.
    """
    result = ShardResult(task)
    out = Path(config.out)
    shard = out / task.name
    record = out / (task.name + FAILURES_SUFFIX)
    tag = fingerprint(task, config)
    result.drawn_with = describe()
    try:
        record.unlink(missing_ok=True)  # it describes the shard about to be replaced
        with ShardWriter(shard, config.schema, config.size, config.renderer_settings(),
                         config.seed, task.split, fingerprint=tag,
                         images=config.images, drawn_with=result.drawn_with) as writer:
            textures: dict[str, list] = {}  # per model rendered: its texture files' stats
            for entry, examples in zip(task.entries, task.examples, strict=True):
                reporting = _Reporting(writer, progress, task.images_per)
                failure = _add_model(reporting, entry, config, examples, crashed, textures,
                                     result.warnings)
                if failure:
                    result.failures.append(failure)
                else:
                    result.images += task.model_images(examples)
                reporting.finish(task.model_images(examples))
        result.shard, result.sha256 = str(shard), file_sha256(shard)
        _write_json_atomically(record, {"fingerprint": tag, "bytes": shard.stat().st_size,
                                        "sha256": result.sha256,
                                        "failures": result.failures, "textures": textures,
                                        "warnings": result.warnings})
    except OSError as error:
        raise PipelineError(f"shard {shard} could not be written: {error.strerror or error}; "
                            "free some space (or fix the folder) and rerun: finished shards "
                            "are kept") from None
    result.peak_memory_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


class _Reporting:
    """A shard writer that reports images to ``progress`` as each example is stored, so a
    run's progress moves per example, not in jumps of a model's thousands of images."""

    def __init__(self, writer: ShardWriter, progress, images_per: tuple[int, int]):
        self.writer, self.progress = writer, progress
        self.per_model, self.per_example = images_per
        self.counted = 0

    def _count(self, images: int) -> None:
        if self.progress is not None:
            self.progress(images)
        self.counted += images

    def add_model(self, *args, **kwargs):
        row = self.writer.add_model(*args, **kwargs)
        self._count(self.per_model)
        return row

    def add_example(self, *args, **kwargs):
        done = self.writer.add_example(*args, **kwargs)
        self._count(self.per_example)
        return done

    def finish(self, images: int) -> None:
        """The model is done (rendered or failed): its images in all count as done."""
        if images != self.counted:
            self._count(images - self.counted)

    def __getattr__(self, name: str):
        return getattr(self.writer, name)


def _add_model(writer: ShardWriter, entry: ModelEntry, config: RunConfig,
               examples: int, crashed: frozenset[str] = frozenset(),
               textures: dict | None = None, warnings: list | None = None) -> dict | None:
    """Render one model into the shard; its failure record if it cannot be used.

    A model that fails half way leaves nothing in the shard. ``retry`` marks a
    failure whose cause is the file, not the index: a rerun tries it again.
    While the model renders, a marker file names it (see :func:`crashed_models`).
    """
    failure = {"model_id": entry.model_id, "path": entry.path}
    if entry.model_id in crashed:
        return {**failure, "reason": CRASH_REASON}
    try:
        path = resolve_model_path(entry, config.models_root)
    except PipelineError as error:  # a link out of the root: the file system, not the index
        return {**failure, "reason": str(error), "retry": True}
    marker = Path(config.out) / RENDERING / entry.model_id
    marker.parent.mkdir(exist_ok=True)
    marker.touch()
    try:
        problem = _file_problem(entry, path)
        if problem is None:
            render = render_wide_model if config.wide else render_model
            used, drawn_without = render(entry, config, examples, path, writer)
            writer.commit()
            if textures is not None:
                textures[entry.model_id] = used
            if warnings is not None:
                warnings += [{**failure, "warning": w} for w in drawn_without]
    except (MMDRenderError, PipelineError) as error:
        writer.rollback()
        return {**failure, "reason": str(error)}
    finally:
        marker.unlink(missing_ok=True)  # left behind only when the process dies
    return {**failure, "reason": problem, "retry": True} if problem else None


def crashed_models(out: Path) -> frozenset[str]:
    """Ids of the models that killed their worker process when rendered alone."""
    return _marked(Path(out) / CRASHED)


def suspect_models(out: Path) -> frozenset[str]:
    """Ids of the models being rendered when a process died or the run was killed."""
    return _marked(Path(out) / RENDERING)


def _marked(folder: Path) -> frozenset[str]:
    try:
        return frozenset(path.name for path in folder.iterdir())
    except FileNotFoundError:
        return frozenset()


def _file_problem(entry: ModelEntry, path: Path) -> str | None:
    """Why the model's file cannot be used as indexed (missing, unreadable, changed)."""
    if not path.is_file():
        return f"model file {path} does not exist (check the models root and the index's path)"
    if entry.sha256:
        try:
            digest = file_sha256(path)
        except PipelineError as error:
            return str(error)
        if digest != entry.sha256:
            return ("the model file changed since it was indexed (sha256 differs); refresh it "
                    "with `pipeline scan MODELS_ROOT --index INDEX --update-changed`, then review "
                    "the model again (its status goes back to auto)")
    return None


def render_model(entry: ModelEntry, config: RunConfig, examples: int, path: Path,
                 writer: ShardWriter) -> list[list]:
    """Draw one model's rest image and examples into ``writer`` as they are rendered.

    Returns the stats of the texture files the model names and what it was drawn
    without (:func:`texture_report`), for the shard's record. Raises a specific
    error saying why the model cannot be used; what it had added by then is left
    for the caller to roll back.
    """
    if entry.head_top_y is None or entry.head_bottom_y is None:
        raise PipelineError("no head bounds in the index; annotate the model first")
    if not entry.mouth_open:
        raise PipelineError("no mouth-open morph in the index (column mouth_open)")
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
    head_x = head_centre_x(model)
    camera = Camera.from_head_bounds(entry.head_top_y, entry.head_bottom_y, head_x,
                                     size=config.size)
    poses = example_poses(config, entry, model, examples)
    if not one_eye:
        # One sampled eye value, closed through the both-eyes morph; the stored
        # pose says so (both eyes equal) and the shard flags the model.
        poses[:, config.schema.index("eye_right")] = poses[:, config.schema.index("eye_left")]

    fields = {"model_id": entry.model_id, "sha256": entry.sha256 or file_sha256(path),
              "head_top_y": entry.head_top_y, "head_bottom_y": entry.head_bottom_y,
              "wink_left": mapping.wink_left or "", "wink_right": mapping.wink_right or "",
              "mouth_open": entry.mouth_open, "both_eyes_wink": not one_eye}
    if not one_eye:
        fields["wink_left"] = fields["wink_right"] = entry.wink_both
    lights = config.model_lights(entry.model_id)
    drawn = model.with_faces(reachable_faces(model, camera, poser.turn_bounds()))
    scene = get_renderer(config.size, config.shading, config.samples,
                         config.supersample).prepare(drawn)

    def pose(values: dict[str, float]):
        morphs = {}
        if not one_eye:
            morphs[entry.wink_both] = values.pop("eye_left", 0.0)
            values.pop("eye_right", None)
        return poser.pose(values, morphs)

    try:
        # Expressions start from the rest frame and redraw only the face (mmdrender.gl.redraw).
        rest = scene.draw(pose({"mouth": 1.0}), camera, lights, remember=True)
        if not rest[..., 3].any():
            raise PipelineError(f"the rest image is empty: the head bounds in the index (top "
                                f"{entry.head_top_y}, bottom {entry.head_bottom_y}) frame no "
                                "part of the model; check them")
        row = writer.add_model(rest, **fields)
        for example, values in enumerate(poses):
            named = config.schema.as_mapping(values)
            morph_only = {k: v for k, v in named.items() if k in MORPH_PARAMETERS}
            expression = scene.draw(pose(morph_only), camera, lights)
            posed = scene.draw(pose(dict(named)), camera, lights)
            writer.add_example(row, example, values, expression, posed)
    finally:
        scene.release()
    return texture_report(model, [scene])


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


@contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold the output folder for one run; a second run on it is a clear error."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        try:
            file = open(out / LOCK, "a")
        except PermissionError:  # another user's lock file: flock works read-only too
            file = open(out / LOCK)
    except OSError as error:
        raise PipelineError(f"cannot write to {out}: {error.strerror or error}") from None
    with file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PipelineError(f"another run is writing to {out} (it holds {out / LOCK}); "
                                "wait for it to end, or use another --out") from None
        yield


def remove_leftovers(out: Path) -> int:
    """Remove the unfinished files stopped workers left (<shard>.h5.<pid>.tmp, <name>.json.tmp,
    ...); only while no worker of this folder's run is writing. Returns how many."""
    removed = 0
    for leftover in Path(out).glob("*.tmp"):
        if any(kind in leftover.name for kind in (SUFFIX + ".", ".json.", ".csv.")):
            leftover.unlink(missing_ok=True)
            removed += 1
    return removed


def start_run(tasks: list[ShardTask], config: RunConfig,
              retry_failed: bool = False) -> list[ShardTask]:
    """The tasks to render, after readying the output folder; call it under :func:`locked`.

    Removes the temporary files a killed run left (and, with ``retry_failed``,
    the marks of models that killed a worker). Refuses when the folder holds
    shards no task writes (left by a run with another index or shard size:
    they would stay beside the new ones), so nothing is lost or mixed up. When
    any shard is to be rendered, removes ``manifest.json`` and ``failures.csv``:
    they describe a finished dataset, and :func:`finish` writes them anew.
    """
    out = Path(config.out)
    remove_leftovers(out)
    planned = {task.name for task in tasks}
    stale = sorted(path.name for path in out.glob("*" + SUFFIX) if path.name not in planned)
    if stale:
        shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
        raise PipelineError(
            f"{out} holds {len(stale)} shard(s) this index and these settings do not make, "
            f"left by an earlier run with another index or --models-per-shard: {shown}; move "
            f"them (with their {FAILURES_SUFFIX} files) out of the folder or delete them, or "
            "use another --out")
    if retry_failed:  # models that killed a worker get another chance too
        for marker in crashed_models(out):
            (out / CRASHED / marker).unlink(missing_ok=True)
    pending = [task for task in tasks if not is_done(task, config, retry_failed)]
    if pending:
        for name in (MANIFEST, FAILURES_CSV, WARNINGS_CSV):
            (out / name).unlink(missing_ok=True)
    return pending


def run_tasks(tasks: list[ShardTask], config: RunConfig, workers: int = 1,
              backend: str = "loky",
              progress: Callable[[int], object] | None = None,
              notice: Callable[[str], object] | None = None) -> Iterator[ShardResult]:
    """Results as tasks finish, in any order. ``backend``: loky (processes) or dask.

    ``progress``, when given, is called here with image counts as work gets
    done: per example in this process and with loky, per shard with Dask.

    A model that kills its worker process (a crash in the GL driver) must not
    stop a run of thousands. The models being rendered when a worker died (or
    when an earlier run was killed) are suspects: with loky their shards are
    rendered again one at a time in a worker of their own, so a death names
    the model, which is recorded as failed (:data:`CRASH_REASON`) and skipped,
    by later runs too. Without loky (in this process) a crash ends the run and
    the next run checks the suspects. With Dask, a shard whose task killed
    workers as often as the scheduler allows is an error naming it. ``notice``,
    when given, is told in words when a worker died and what happens next.
    Each shard written counts as hashed (:func:`trust_written`).
    """
    results = _on_dask(tasks, config, progress) if backend == "dask" else \
        _on_loky(tasks, config, workers, progress, notice)
    for result in results:
        trust_written(result)
        yield result


def _on_loky(tasks: list[ShardTask], config: RunConfig, workers: int,
             progress: Callable[[int], object] | None,
             notice: Callable[[str], object] | None) -> Iterator[ShardResult]:
    """:func:`run_tasks` with loky worker processes (or this process, for one)."""
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    out = Path(config.out)
    crashed, suspects = set(crashed_models(out)), set(suspect_models(out))
    remaining = list(tasks)
    counted = 0  # images reported through progress, to take back a dead pool's
    finished = 0  # images of the shards that finished

    def count(images: int) -> None:
        nonlocal counted
        counted += images
        if progress is not None:
            progress(images)

    with ExitStack() as stack:
        report = None  # the workers' progress channel, opened with the first pool

        def pool(batch: list[ShardTask], jobs: int) -> Iterator[ShardResult]:
            nonlocal finished, report
            if report is None:
                report = stack.enter_context(_from_workers(count))
            for result in _parallel(batch, config, jobs, report, frozenset(crashed)):
                finished += result.task.images
                remaining.remove(result.task)
                yield result

        def take_back() -> None:  # a dead pool's shards are redone: uncount their models
            nonlocal counted
            if progress is not None and counted > finished:
                progress(finished - counted)
            counted = finished
            remove_leftovers(out)  # the dead pool's unfinished shards: no worker writes now

        while remaining:
            for model_id in suspects:
                (out / RENDERING / model_id).unlink(missing_ok=True)
            for task in [t for t in remaining if _model_ids(t) & suspects]:
                while task in remaining:  # alone in one worker: a death names its model
                    try:
                        yield from pool([task], 2)
                    except TerminatedWorkerError:
                        take_back()
                        crashed |= _confirm_crashes(out)
            suspects = set()
            if workers == 1:
                for task in list(remaining):
                    result = render_shard(task, config, count, frozenset(crashed))
                    finished += task.images
                    remaining.remove(task)
                    yield result
                return
            try:
                yield from pool(remaining, workers)
            except TerminatedWorkerError:
                take_back()
                suspects = set(suspect_models(out))
                if notice is not None and suspects:
                    notice(f"a worker process died (killed, out of memory, or a crash) while "
                           f"rendering {', '.join(sorted(suspects))}; their shards are "
                           "rendered again, one at a time, to find a model that kills its "
                           "worker")
                if not suspects:
                    raise PipelineError("a worker process died while no model was being "
                                        "rendered (out of memory?); rerun to go on: finished "
                                        "shards are kept") from None


def _on_dask(tasks: list[ShardTask], config: RunConfig,
             progress: Callable[[int], object] | None) -> Iterator[ShardResult]:
    """Run the tasks on the current Dask client's cluster, as they finish."""
    from dask.distributed import KilledWorker, as_completed, get_client

    crashed = crashed_models(config.out)
    futures = get_client().map(render_shard, tasks, config=config, crashed=crashed, pure=False)
    for future in as_completed(futures):
        try:
            result = future.result()
        except KilledWorker:
            raise PipelineError(
                f"shard {future.key} killed Dask workers as often as the scheduler allows (a "
                "model in it crashes the renderer?); finished shards are kept: rerun with "
                "--backend loky to find the model and skip it") from None
        if progress is not None:
            progress(result.task.images)
        yield result


def _model_ids(task: ShardTask) -> set[str]:
    return {entry.model_id for entry in task.entries}


def _confirm_crashes(out: Path) -> frozenset[str]:
    """Move the suspects' markers (one, from a worker rendering alone) to confirmed crashes."""
    culprits = suspect_models(out)
    if not culprits:
        raise PipelineError("a worker process died while no model was being rendered (out of "
                            "memory?); rerun to go on: finished shards are kept")
    (out / CRASHED).mkdir(exist_ok=True)
    for model_id in culprits:
        (out / RENDERING / model_id).replace(out / CRASHED / model_id)
    return culprits


def _parallel(tasks: list[ShardTask], config: RunConfig, jobs: int,
              report: Callable, crashed: frozenset[str]) -> Iterator[ShardResult]:
    """The tasks' results as loky worker processes finish them."""
    from joblib import Parallel, delayed, parallel_config

    with parallel_config(backend="loky", n_jobs=jobs):
        yield from Parallel(return_as="generator_unordered")(
            delayed(render_shard)(task, config, report, crashed)
            for task in dispatch_order(tasks, config))


def dispatch_order(tasks: list[ShardTask], config: RunConfig) -> list[ShardTask]:
    """The costliest shards first (model file bytes times images), so that the run does
    not end with one worker rendering a heavy shard while the others idle. Which shard
    holds what, and what each holds, is unchanged."""
    def cost(task: ShardTask) -> int:
        total = 0
        for entry, examples in zip(task.entries, task.examples, strict=True):
            try:
                size = resolve_model_path(entry, config.models_root).stat().st_size
            except (OSError, PipelineError):
                size = 0
            total += size * task.model_images(examples)
        return total

    return sorted(tasks, key=cost, reverse=True)


@contextmanager
def _from_workers(progress: Callable[[int], object]) -> Iterator[Callable]:
    """A picklable callable for worker processes that calls ``progress`` in this one."""
    with multiprocessing.Manager() as manager:
        queue = manager.Queue()
        thread = threading.Thread(target=_forward, args=(queue, progress), daemon=True)
        thread.start()
        try:
            yield queue.put
        finally:
            queue.put(None)
            thread.join()


def _forward(queue, progress: Callable[[int], object]) -> None:
    for images in iter(queue.get, None):
        progress(images)


def finish(tasks: list[ShardTask], config: RunConfig) -> tuple[Path, list[dict], list[dict]]:
    """The manifest (written last), failures.csv (models skipped) and warnings.csv (models
    drawn without some of their textures), from the finished shards' records.

    Each shard's sha256 comes from its record, written with the shard, so
    finished shards are not read again.
    """
    out = Path(config.out)
    failures, warnings, digests = [], [], {}
    for task in tasks:
        record = finished_record(task, config)
        if record is None:
            raise PipelineError(f"shard {out / task.name} is missing or was made with other "
                                "settings or another index; rerun `pipeline dataset`")
        digests[task.name] = record["sha256"]
        failures += [{"split": task.split, "shard": task.name, **r} for r in record["failures"]]
        warnings += [{"split": task.split, "shard": task.name, **r}
                     for r in record.get("warnings", [])]
    try:
        for name, rows, column in ((FAILURES_CSV, failures, "reason"),
                                   (WARNINGS_CSV, warnings, "warning")):
            with atomic_write(out / name, "w", newline="", encoding="utf-8") as file:
                writer = csv.DictWriter(file, fieldnames=["model_id", "path", "split", "shard",
                                                          column], extrasaction="ignore")
                writer.writeheader()
                writer.writerows(rows)
        manifest = write_manifest(out, [out / task.name for task in tasks], digests)
    except OSError as error:
        raise PipelineError(f"cannot write the dataset's manifest in {out}: "
                            f"{error.strerror or error}") from None
    return manifest, failures, warnings


def total_images(tasks: list[ShardTask]) -> int:
    return sum(task.images for task in tasks)
