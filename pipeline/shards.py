"""HDF5 shards of rendered examples and their manifest: the format and the writer.

One file per shard, each of one split. A shard holds:

=================  ==================  ==========================================
``rest``           (M, S, S, 4) uint8  one rest image per model (spec section 4a)
``expression``     (N, S, S, 4) uint8  morphs only (4b)
``posed``          (N, S, S, 4) uint8  morphs and rotations (4c)
``pose``           (N, P) float32      columns named by the ``schema`` attribute
``model``          (N,) int32          row of the model table
``example``        (N,) int32          example index within its model (regenerable
                                       with :func:`pipeline.poses.sample_example`)
``models/*``       (M,)                model table, parallel datasets: ``model_id``,
                                       ``sha256``, ``wink_left``, ``wink_right``,
                                       ``mouth_open`` (str, "" = none),
                                       ``head_top_y``, ``head_bottom_y`` (float64),
                                       ``both_eyes_wink`` (bool: one-eye winks
                                       were realised through the both-eyes morph)
=================  ==================  ==========================================

Root attributes: ``format_version``, ``schema`` (JSON of
:meth:`~pipeline.poses.PoseSchema.to_dict`), ``image_size``, ``renderer``
(JSON: shading, anti-aliasing, lights), ``dataset_seed``, ``package_version``,
``split``, and optionally ``fingerprint`` (JSON: everything the run that wrote
the shard decided its bytes with, see :func:`pipeline.generate.fingerprint`)
and ``drawn_with`` (the GL driver that drew it, :func:`mmdrender.gl.context.describe`).
Images are RGBA sRGB, straight alpha, background exactly (0,0,0,0).

Compression: one image per chunk, ``(1, S, S, 4)``, gzip: a filter built into
every HDF5, so plain h5py reads the files without plugins. The chunks are
deflated by ISA-L and written ready-made (:mod:`pipeline.image_chunks`),
~9x faster than HDF5's own zlib at level 4 for 9% larger files. Measured by
``bench/shards.py`` on real renders (256x256; rest, expression and posed
images of the 13 shared real models and the 5 sample characters, 162 images,
40.5 MiB raw, 36% character pixels), one core of a busy 2-core machine, best of 3:

===============  =====  ==========  =========  =========
filter           ratio  write MB/s  read MB/s  KiB/image
===============  =====  ==========  =========  =========
none             1.00   919         3774       256.1
lzf              4.25   145         279        60.3
gzip 1           5.28   106         254        48.5
gzip 4           5.71   54          228        44.9
gzip 9           5.80   25          301        44.1
ISA-L 2 (ours)   5.25   493         308        48.8
===============  =====  ==========  =========  =========

Shuffle changes nothing for one-byte elements, so it is left out. Deflating
with zlib at level 4 was ~4 of the ~14 CPU-ms an image costs a run on a
12k-vertex model; ISA-L takes ~0.5 ms. THA1's ~1.05M images: ~49 GiB against
~45 GiB with zlib 4. Reading (~1,200 images/s per core here) is not the
trainer's bottleneck.

Writers are single-process: workers write their own shards, and
:func:`write_manifest` lists them all, last. Every file is written as
``<name>[.<pid>].tmp`` and renamed into place with :func:`os.replace` once complete.
Images go to the file as they are added (a model's images are never all in
memory); :meth:`ShardWriter.rollback` takes back a model that failed half way.
A write error (a full disk) raises at once and discards the shard.

Reading is :mod:`pipeline.shard_reader` (:func:`~pipeline.shard_reader.open_dataset`),
checking :mod:`pipeline.shard_verify`.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import h5py
import numpy as np

from pipeline.atomic import atomic_write, fsync_folder
from pipeline.errors import PipelineError
from pipeline.image_chunks import create_image_dataset, write_image
from pipeline.image_sets import THA1_IMAGES, ImageSet, from_dicts, stored_names
from pipeline.index import file_sha256
from pipeline.poses import PoseSchema

FORMAT_VERSION = 1  # THA1 shards: rest, expression, posed
WIDE_FORMAT_VERSION = 2  # the wide schemas': image sets named by the ``images`` attribute
READABLE_VERSIONS = (FORMAT_VERSION, WIDE_FORMAT_VERSION)
MANIFEST = "manifest.json"
SUFFIX = ".h5"
_STRING = h5py.string_dtype("utf-8")
_MODEL_STRINGS = ("model_id", "sha256", "wink_left", "wink_right", "mouth_open")
_MODEL_FLOATS = ("head_top_y", "head_bottom_y")
_ATTRIBUTES = ("format_version", "schema", "image_size", "renderer", "dataset_seed",
               "package_version", "split")
# Dataset-level attributes every shard of a dataset must agree on.
_SHARED = ("format_version", "schema", "image_size", "renderer", "dataset_seed",
           "package_version")
# Space a writer leaves free on the disk: HDF5 can crash when a write of its own
# bookkeeping fails, so a nearly full disk is reported before it gets there.
FREE_SPACE_MARGIN = 64 << 20


def package_version() -> str:
    """The installed tha-data-engine version, or ``"unknown"`` when not installed."""
    try:
        return metadata.version("tha-data-engine")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class ShardModel:
    """One row of a shard's model table.

    Morph names are the model's own (Japanese) names; ``None`` when the model
    lacks the morph. ``both_eyes_wink``: one-eye closing was realised through
    the both-eyes morph (the model has no one-eye winks). ``details`` (wide
    schemas only): JSON of how the model realises each parameter, the morphs,
    bones and angles it was posed with, and which eyebrow drawing modes work.
    """

    model_id: str
    sha256: str
    head_top_y: float
    head_bottom_y: float
    wink_left: str | None
    wink_right: str | None
    mouth_open: str | None
    both_eyes_wink: bool = False
    details: str = ""  # wide schemas: JSON of the roles, realisations and settings used

    def __post_init__(self):
        if not isinstance(self.model_id, str) or not self.model_id:
            raise PipelineError(f"model_id must be a non-empty string, got {self.model_id!r}")
        sha = self.sha256
        if (not isinstance(sha, str) or len(sha) != 64
                or any(c not in "0123456789abcdef" for c in sha)):
            raise PipelineError(f"{self.model_id}: sha256 must be 64 lowercase hex digits, "
                                f"got {sha!r}")
        for field in _MODEL_FLOATS:
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
                raise PipelineError(f"{self.model_id}: {field} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise PipelineError(f"{self.model_id}: {field} must be finite, got {value!r}")
            object.__setattr__(self, field, float(value))
        if not self.head_top_y > self.head_bottom_y:
            raise PipelineError(f"{self.model_id}: head_top_y {self.head_top_y} must be above "
                                f"head_bottom_y {self.head_bottom_y}")
        for field in ("wink_left", "wink_right", "mouth_open"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, str) or not value):
                raise PipelineError(f"{self.model_id}: {field} must be a morph name or None, "
                                    f"got {value!r}")
        if not isinstance(self.both_eyes_wink, (bool, np.bool_)):
            raise PipelineError(f"{self.model_id}: both_eyes_wink must be a bool")
        object.__setattr__(self, "both_eyes_wink", bool(self.both_eyes_wink))
        if not isinstance(self.details, str):
            raise PipelineError(f"{self.model_id}: details must be JSON text")


def _check_image(image, size: int, what: str) -> np.ndarray:
    """The image if it is (size, size, 4) uint8 with an exact (0,0,0,0) background."""
    if not isinstance(image, np.ndarray):
        raise PipelineError(f"{what}: expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise PipelineError(f"{what}: dtype must be uint8, got {image.dtype}")
    if image.shape != (size, size, 4):
        raise PipelineError(f"{what}: shape must be ({size}, {size}, 4), got {image.shape}")
    problem = _image_problem(image)
    if problem:
        raise PipelineError(f"{what}: {problem}")
    return image


def _image_problem(image: np.ndarray) -> str | None:
    """What breaks the image rules (spec section 1), or None. ``image`` (S, S, 4) uint8."""
    # One 32-bit word per pixel, alpha in the high byte (RGBA, little-endian): a pixel is
    # transparent when the word is below 2**24, and stray when it is so but not 0.
    words = np.ascontiguousarray(image).view("<u4")
    transparent = words < np.uint32(1 << 24)
    if transparent.all():
        return "no character: every pixel is transparent"
    stray = int(np.count_nonzero(transparent & (words != 0)))
    if stray:
        return f"background not (0,0,0,0): {stray} pixels have alpha 0 but a colour"
    return None


def _check_json(value, what: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise PipelineError(f"{what} must be JSON-serialisable: {error}") from None


def _check_split(split) -> str:
    if not isinstance(split, str) or not split.isidentifier():
        raise PipelineError(f"split must be a name such as 'train', got {split!r}")
    return split


class ShardWriter:
    """Writes one shard, validating everything added; a context manager.

    Written to ``<path>.<pid>.tmp``; on a clean exit the file is flushed, synced and
    renamed to ``path``. An exception inside the ``with`` block (or
    :meth:`abort`) removes the tmp file and leaves no file at ``path``.

    Images are written as they are added. :meth:`commit` marks what is there
    so far as kept and flushes it; :meth:`rollback` removes everything added
    since (a model that failed half way). A write error (disk full) discards
    the shard at once and raises :class:`OSError` with a short reason.

    ``settings`` are the renderer settings (JSON-serialisable: shading,
    anti-aliasing, lights); ``size`` the image side in pixels; ``fingerprint``
    (JSON-serialisable, optional) is stored as the ``fingerprint`` attribute;
    ``drawn_with`` (optional) names the GL driver that drew the images, stored
    as ``drawn_with``: GPUs and llvmpipe may differ in the last bit of an edge.
    """

    def __init__(self, path: str | os.PathLike, schema: PoseSchema, size: int,
                 settings: Mapping, seed: int, split: str, fingerprint: Mapping | None = None,
                 images: tuple[ImageSet, ...] = THA1_IMAGES, drawn_with: str = ""):
        self.path = Path(path)
        self.images = tuple(images)
        self.wide = self.images != THA1_IMAGES
        if self.path.suffix != SUFFIX:
            raise PipelineError(f"shard file name must end in {SUFFIX}: {self.path}")
        if not isinstance(schema, PoseSchema):
            raise PipelineError(f"schema must be a PoseSchema, got {type(schema).__name__}")
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0:
            raise PipelineError(f"image size must be a positive integer, got {size!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise PipelineError(f"dataset seed must be a non-negative integer, got {seed!r}")
        if not isinstance(settings, Mapping):
            raise PipelineError(f"renderer settings must be a mapping, got {settings!r}")
        self.schema = schema
        self.size = int(size)
        self.split = _check_split(split)
        self._attrs = {
            "format_version": WIDE_FORMAT_VERSION if self.wide else FORMAT_VERSION,
            "schema": _check_json(schema.to_dict(), "pose schema"),
            "image_size": self.size,
            "renderer": _check_json(dict(settings), "renderer settings"),
            "dataset_seed": int(seed),
            "package_version": package_version(),
            "split": self.split,
        }
        if self.wide:
            self._attrs["images"] = _check_json([i.to_dict() for i in self.images], "images")
        if fingerprint is not None:
            self._attrs["fingerprint"] = _check_json(dict(fingerprint), "shard fingerprint")
        if drawn_with:
            self._attrs["drawn_with"] = str(drawn_with)
        self._per_model = stored_names(self.images, "model")
        self._per_example = stored_names(self.images, "example")
        self._rest_mouths: list[int] = []
        self._models: list[ShardModel] = []
        self._model_ids: set[str] = set()
        self._poses: list[np.ndarray] = []
        self._model_rows: list[int] = []
        self._examples: list[int] = []
        self._keys: set[tuple[int, int]] = set()
        self._kept = (0, 0)  # (models, examples) at the last commit
        # Named per process: a worker left running by an interrupted run never
        # writes to, or renames, the file of a writer of the next run.
        self.tmp_path = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.closed = False
        self._images: dict[str, h5py.Dataset] = {}
        try:
            # No chunk cache: every image (one chunk) goes to the file when it is
            # added, so a write error is raised there, not lost in a cache.
            self._file = h5py.File(self.tmp_path, "w", rdcc_nbytes=0)
        except (OSError, RuntimeError) as error:
            self.closed = True
            self.tmp_path.unlink(missing_ok=True)
            raise _write_error(self.tmp_path, error) from None
        with self._writing():
            s = self.size
            for name in (*self._per_model, *self._per_example):
                self._images[name] = create_image_dataset(self._file, name, s)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    @property
    def models(self) -> int:
        return len(self._models)

    @property
    def examples(self) -> int:
        return len(self._examples)

    def _check_open(self) -> None:
        if self.closed:
            raise PipelineError(f"shard {self.path.name} is closed (finished, or discarded after "
                                "an error)")

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """HDF5 calls that write: an error discards the shard and raises a short OSError."""
        try:
            yield
        except (OSError, RuntimeError) as error:
            self._discard()
            raise _write_error(self.tmp_path, error) from None

    def _check_space(self) -> None:
        stat = os.statvfs(self.tmp_path.parent)
        free = stat.f_bavail * stat.f_frsize
        if free < FREE_SPACE_MARGIN:
            self._discard()
            raise OSError(errno.ENOSPC, f"cannot write {self.tmp_path.name}: the disk is full "
                                        f"({free >> 20} MiB free, {FREE_SPACE_MARGIN >> 20} "
                                        f"MiB are kept free)")

    def _append(self, name: str, image: np.ndarray) -> None:
        self._check_space()
        dataset = self._images[name]
        n = dataset.shape[0]
        with self._writing():
            dataset.resize(n + 1, axis=0)
            write_image(dataset, n, image)

    def commit(self) -> None:
        """Keep everything added so far (a later :meth:`rollback` stops here).

        Flushes the file, so a disk that filled up is reported now.
        """
        self._check_open()
        with self._writing():
            self._file.flush()
        self._kept = (len(self._models), len(self._examples))

    def rollback(self) -> None:
        """Remove everything added since the last :meth:`commit` (or the start)."""
        self._check_open()
        models, examples = self._kept
        for model in self._models[models:]:
            self._model_ids.discard(model.model_id)
        self._keys.difference_update(zip(self._model_rows[examples:],
                                         self._examples[examples:], strict=True))
        del self._models[models:]
        del self._poses[examples:], self._model_rows[examples:], self._examples[examples:]
        del self._rest_mouths[examples:]
        with self._writing():
            for name in self._per_model:
                self._images[name].resize(models, axis=0)
            for name in self._per_example:
                self._images[name].resize(examples, axis=0)

    def add_model(self, rest_image: np.ndarray | None = None, *, model_id: str, sha256: str,
                  head_top_y: float, head_bottom_y: float, wink_left: str | None,
                  wink_right: str | None, mouth_open: str | None,
                  both_eyes_wink: bool = False, images: Mapping | None = None,
                  details: str = "") -> int:
        """Add a model and its images, (S, S, 4) uint8; returns its row in the table.

        THA1: ``rest_image``. The wide schemas: ``images``, by name, every
        per-model image of the shard's image sets (closed twins too).
        """
        self._check_open()
        entry = ShardModel(model_id, sha256, head_top_y, head_bottom_y, wink_left, wink_right,
                           mouth_open, both_eyes_wink, details)
        if entry.model_id in self._model_ids:
            raise PipelineError(f"model {model_id!r} is already in shard {self.path.name}")
        images = self._named(images, {"rest": rest_image}, self._per_model, model_id)
        for name in self._per_model:
            _check_image(images[name], self.size, f"{model_id}: {name} image")
        for name in self._per_model:
            self._append(name, images[name])
        self._models.append(entry)
        self._model_ids.add(entry.model_id)
        return len(self._models) - 1

    def _named(self, images: Mapping | None, tha1: dict, names: list[str], what: str) -> dict:
        """The images of one model or example by name, whichever way they were passed."""
        images = dict(images) if images is not None else tha1
        missing = [name for name in names if images.get(name) is None]
        unknown = sorted(set(images) - set(names))
        if missing or unknown:
            raise PipelineError(f"{what}: this shard's images are {names}; missing {missing}, "
                                f"unknown {unknown}")
        return images

    def add_example(self, model_index: int, example: int, pose: np.ndarray,
                    expression: np.ndarray | None = None, posed: np.ndarray | None = None, *,
                    images: Mapping | None = None, rest_mouth: int | None = None) -> None:
        """Add one example of the model at row ``model_index``.

        ``pose`` (P,) floating, finite and inside the schema's ranges. THA1:
        ``expression`` and ``posed`` (S, S, 4) uint8. The wide schemas: ``images``
        by name and ``rest_mouth`` (1: the input's mouth is open, 0: closed).
        """
        self._check_open()
        if (isinstance(model_index, bool) or not isinstance(model_index, (int, np.integer))
                or not 0 <= model_index < len(self._models)):
            raise PipelineError(f"model index {model_index!r} is not a model of shard "
                                f"{self.path.name} ({len(self._models)} models)")
        model_id = self._models[model_index].model_id
        what = f"{model_id} example {example!r}"
        if isinstance(example, bool) or not isinstance(example, (int, np.integer)) \
                or not 0 <= example <= np.iinfo(np.int32).max:
            raise PipelineError(f"{what}: example index must be a non-negative int32")
        key = (int(model_index), int(example))
        if key in self._keys:
            raise PipelineError(f"{what} is already in shard {self.path.name}")
        pose = np.asarray(pose)
        if not np.issubdtype(pose.dtype, np.floating):
            raise PipelineError(f"{what}: pose dtype must be floating, got {pose.dtype}")
        if pose.shape != (len(self.schema),):
            raise PipelineError(f"{what}: pose shape must be ({len(self.schema)},) for schema "
                                f"{self.schema.name!r}, got {pose.shape}")
        pose = pose.astype(np.float32)
        if self.schema.out_of_range(pose[None])[0]:
            bad = [f"{n}={v!s}" for n, v, lo, hi in zip(self.schema.names, pose,
                                                     self.schema.lows, self.schema.highs,
                                                     strict=True)
                   if not lo <= v <= hi]
            raise PipelineError(f"{what}: pose outside the schema's ranges or not finite: "
                                f"{', '.join(bad)}")
        images = self._named(images, {"expression": expression, "posed": posed},
                             self._per_example, what)
        if self.wide and rest_mouth not in (0, 1):
            raise PipelineError(f"{what}: rest_mouth must be 0 or 1, got {rest_mouth!r}")
        for name in self._per_example:
            _check_image(images[name], self.size, f"{what}: {name} image")
        for name in self._per_example:
            self._append(name, images[name])
        if self.wide:
            self._rest_mouths.append(int(rest_mouth))
        self._poses.append(pose)
        self._model_rows.append(key[0])
        self._examples.append(key[1])
        self._keys.add(key)

    def close(self) -> None:
        """Write the tables and attributes, sync, and rename the tmp file into place."""
        if self.closed:
            return
        try:
            self._check_space()
            with self._writing():
                self._write_tables()
            _fsync_file(self.tmp_path)
            os.replace(self.tmp_path, self.path)
            fsync_folder(self.path.parent)
        except BaseException:
            self._discard()
            raise
        self.closed = True

    def _write_tables(self) -> None:
        f = self._file
        p = len(self.schema)
        poses = np.stack(self._poses) if self._poses else np.zeros((0, p), np.float32)
        f.create_dataset("pose", data=poses.astype(np.float32))
        f.create_dataset("model", data=np.array(self._model_rows, dtype=np.int32))
        f.create_dataset("example", data=np.array(self._examples, dtype=np.int32))
        group = f.create_group("models")
        for name in _MODEL_STRINGS:
            values = [getattr(m, name) or "" for m in self._models]
            group.create_dataset(name, data=np.array(values, dtype=object), dtype=_STRING)
        for name in _MODEL_FLOATS:
            values = [getattr(m, name) for m in self._models]
            group.create_dataset(name, data=np.array(values, dtype=np.float64))
        group.create_dataset("both_eyes_wink",
                             data=np.array([m.both_eyes_wink for m in self._models], bool))
        if self.wide:
            group.create_dataset("details", data=np.array([m.details for m in self._models],
                                                          dtype=object), dtype=_STRING)
            f.create_dataset("rest_mouth", data=np.array(self._rest_mouths, dtype=np.uint8))
        for name, value in self._attrs.items():
            f.attrs[name] = value
        f.flush()
        f.close()

    def abort(self) -> None:
        """Drop the shard: close and remove the tmp file; no file appears at ``path``."""
        if not self.closed:
            self._discard()

    def _discard(self) -> None:
        self.closed = True
        try:
            self._file.close()  # closes the datasets too, before their handles go
        except Exception:
            pass
        self._images = {}
        self.tmp_path.unlink(missing_ok=True)


def _write_error(path: Path, error: Exception) -> OSError:
    """A one-line OSError for an HDF5 write failure (HDF5's own message spans lines)."""
    code = getattr(error, "errno", None)
    if not code:
        found = re.search(r"errno = (\d+)", str(error))
        code = int(found.group(1)) if found else None
    reason = os.strerror(code) if code else str(error).strip().splitlines()[0]
    return OSError(code or errno.EIO, f"cannot write {path.name}: {reason}")


def _fsync_file(path: Path) -> None:
    """h5py writes the file itself, so it is synced by path before the rename."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_attrs(f: h5py.File, where: str) -> dict:
    missing = [name for name in _ATTRIBUTES if name not in f.attrs]
    if missing:
        raise PipelineError(f"{where}: missing attributes {missing}; not a shard of this format")
    attrs = {name: f.attrs[name] for name in _ATTRIBUTES}
    for name in ("format_version", "image_size", "dataset_seed"):
        attrs[name] = int(attrs[name])
    for name in ("schema", "renderer", "package_version", "split"):
        value = attrs[name]
        attrs[name] = value.decode("utf-8") if isinstance(value, bytes) else str(value)
    if attrs["format_version"] not in READABLE_VERSIONS:
        raise PipelineError(f"{where}: format version {attrs['format_version']}, this reader "
                            f"reads {', '.join(map(str, READABLE_VERSIONS))}")
    try:
        attrs["schema"] = json.loads(attrs["schema"])
        attrs["renderer"] = json.loads(attrs["renderer"])
        images = f.attrs.get("images")
        attrs["images"] = json.loads(images.decode("utf-8") if isinstance(images, bytes)
                                     else images) if images is not None else None
    except json.JSONDecodeError as error:
        raise PipelineError(f"{where}: an attribute is not valid JSON: {error}") from None
    return attrs


def shard_images(attrs: Mapping) -> tuple[ImageSet, ...]:
    """The image sets of a shard (or a manifest) from its attributes: THA1's without any."""
    return from_dicts(attrs["images"]) if attrs.get("images") else THA1_IMAGES


def write_manifest(directory: str | os.PathLike, shards: Iterable[str | os.PathLike],
                   digests: Mapping[str, str] | None = None) -> Path:
    """Write ``manifest.json`` listing ``shards`` (closed shard files in ``directory``).

    Call it last, after every shard is complete: counts, byte sizes and sha256
    are read from the files themselves, and the dataset-level attributes must
    agree across shards. Shards keep the given order, which fixes the global
    example indices of :class:`Dataset`. ``digests`` gives the sha256 of shards
    (by file name) already hashed when they were written, so they are not read
    again; ``pipeline verify`` checks them against the files. Returns the
    manifest's path.
    """
    digests = digests or {}
    directory = Path(directory)
    entries, shared = [], None
    for shard in shards:
        path = Path(shard)
        path = path if path.is_absolute() or path.parent != Path() else directory / path
        if path.resolve().parent != directory.resolve():
            raise PipelineError(f"shard {path} is not in the dataset directory {directory}")
        if not path.is_file():
            raise PipelineError(f"shard {path} does not exist (not closed yet?)")
        if any(e["file"] == path.name for e in entries):
            raise PipelineError(f"shard {path.name} is listed twice")
        try:
            with h5py.File(path, "r") as f:
                attrs = read_attrs(f, path.name)
                models, examples = f["rest"].shape[0], f["pose"].shape[0]
        except OSError as error:
            raise PipelineError(f"shard {path.name} cannot be read by HDF5: {error}") from None
        these = {name: attrs[name] for name in _SHARED}
        if attrs.get("images"):
            these["images"] = attrs["images"]
        if shared is None:
            shared = these
        elif these != shared:
            differ = [name for name in _SHARED if these[name] != shared[name]]
            raise PipelineError(f"shard {path.name} differs from {entries[0]['file']} in "
                                f"{differ}: shards of one dataset must agree")
        entries.append({"file": path.name, "split": attrs["split"], "models": int(models),
                        "examples": int(examples), "bytes": path.stat().st_size,
                        "sha256": digests.get(path.name) or file_sha256(path)})
    if shared is None:
        raise PipelineError("a manifest needs at least one shard")
    totals: dict[str, dict[str, int]] = {}
    for e in entries:
        t = totals.setdefault(e["split"], {"shards": 0, "models": 0, "examples": 0})
        t["shards"] += 1
        t["models"] += e["models"]
        t["examples"] += e["examples"]
    manifest = {**shared, "splits": totals, "shards": entries}
    target = directory / MANIFEST
    with atomic_write(target, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)
        f.write("\n")
    return target


def read_fingerprint(path: str | os.PathLike) -> dict | None:
    """The ``fingerprint`` a shard was written with; None if it has none or cannot be read."""
    try:
        with h5py.File(path, "r") as f:
            value = f.attrs.get("fingerprint")
    except (OSError, RuntimeError):
        return None
    if value is None:
        return None
    try:
        return json.loads(value.decode("utf-8") if isinstance(value, bytes) else str(value))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
