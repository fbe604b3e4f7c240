"""Reading a dataset: its manifest, its shards' examples, lazily and per process.

:func:`open_dataset` opens files lazily, read-only and per process: a
:class:`Dataset` may be handed to ``fork``- or ``spawn``-started workers (a
DataLoader's), and each reopens what it reads. The format is described in
:mod:`pipeline.shards`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from pipeline.errors import PipelineError
from pipeline.image_sets import THA1_IMAGES
from pipeline.poses import PoseSchema
from pipeline.shards import (
    _MODEL_FLOATS,
    _MODEL_STRINGS,
    _SHARED,
    MANIFEST,
    READABLE_VERSIONS,
    ShardModel,
    shard_images,
)


def read_manifest(directory: str | os.PathLike) -> dict:
    """The parsed ``manifest.json`` of a dataset directory."""
    path = Path(directory) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PipelineError(f"{path} does not exist: not a dataset directory, or its "
                            f"generation has not finished") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PipelineError(f"{path} cannot be read: {error}") from None
    keys = set(_SHARED) | {"splits", "shards"}
    if not isinstance(manifest, dict) or not keys <= set(manifest):
        raise PipelineError(f"{path} lacks keys {sorted(keys - set(manifest or {}))}")
    if manifest["format_version"] not in READABLE_VERSIONS:
        raise PipelineError(f"{path}: format version {manifest['format_version']}, this reader "
                            f"reads {', '.join(map(str, READABLE_VERSIONS))}")
    for entry in manifest["shards"]:
        if not isinstance(entry, dict) or not {"file", "split", "models", "examples",
                                               "bytes", "sha256"} <= set(entry):
            raise PipelineError(f"{path}: malformed shard entry {entry!r}")
        if Path(entry["file"]).name != entry["file"]:
            raise PipelineError(f"{path}: shard file {entry['file']!r} must be a plain name")
    return manifest


@dataclass(frozen=True)
class Example:
    """One example as read back. Images (S, S, 4) uint8; ``pose`` (P,) float32.

    Whatever the schema: ``rest`` is the input (a wide schema's mouth open or
    closed as ``rest_mouth`` says), ``expression`` the face morphed without
    rotation (THA2's (f) and THA3's face_morphed) and ``posed`` everything
    applied; :meth:`Dataset.images` reads every image set of an example.
    """

    rest: np.ndarray
    expression: np.ndarray
    posed: np.ndarray
    pose: np.ndarray
    model_id: str
    split: str
    example: int
    rest_mouth: int = 1


class _Shard:
    """One shard file, opened lazily in the process that reads it."""

    def __init__(self, path: Path, entry: dict):
        self.path = path
        self.entry = entry
        self._file: h5py.File | None = None
        self._pid: int | None = None
        self._tables: tuple | None = None

    def __getstate__(self):
        return {"path": self.path, "entry": self.entry, "_file": None, "_pid": None,
                "_tables": None}

    def file(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            # A handle inherited through fork is forgotten, never closed or shared.
            if not self.path.is_file():
                raise PipelineError(f"shard {self.path} is missing; {self._verify_hint()}")
            try:
                self._file = h5py.File(self.path, "r", swmr=False)
            except OSError as error:
                raise PipelineError(f"shard {self.path} cannot be opened ({error}); "
                                    f"{self._verify_hint()}") from None
            self._pid = os.getpid()
        return self._file

    def read(self, name: str, row: int) -> np.ndarray:
        """Row ``row`` of dataset ``name``; a damaged file is a PipelineError."""
        try:
            return self.file()[name][row]
        except (OSError, KeyError, ValueError, RuntimeError) as error:
            raise PipelineError(f"shard {self.path} cannot be read ({error}); "
                                f"{self._verify_hint()}") from None

    def _verify_hint(self) -> str:
        return f"`pipeline verify {self.path.parent}` checks the whole dataset"

    def tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], np.ndarray]:
        """(pose, model, example, model_ids, rest_mouth), read once and kept (they are small)."""
        if self._tables is None:
            ids = [s.decode("utf-8") if isinstance(s, bytes) else s
                   for s in self.read("models/model_id", ())]
            poses = self.read("pose", ())
            mouths = self.read("rest_mouth", ()) if "rest_mouth" in self.file() else \
                np.ones(len(poses), np.uint8)
            self._tables = (poses, self.read("model", ()), self.read("example", ()), ids, mouths)
            if len(self._tables[0]) != self.entry["examples"]:
                raise PipelineError(f"shard {self.path.name} holds {len(self._tables[0])} "
                                    f"examples, the manifest says {self.entry['examples']}")
        return self._tables

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None


class Dataset:
    """Examples across the shards of a manifest, in manifest order; see :func:`open_dataset`."""

    def __init__(self, directory: Path, manifest: dict, shards: Sequence[_Shard]):
        self.directory = directory
        self.manifest = manifest
        self.schema = PoseSchema.from_dict(manifest["schema"])
        self.image_sets = shard_images(manifest)
        self.face_morphed = "expression" if self.image_sets == THA1_IMAGES else "face_morphed"
        self._shards = list(shards)
        counts = [s.entry["examples"] for s in self._shards]
        self._starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.entry["split"] for s in self._shards))

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _locate(self, index) -> tuple[_Shard, int, int, bool]:
        """(shard, example row, model row, mouth open) of global example ``index``."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"dataset indices are integers, not {type(index).__name__}")
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"example {index} out of range for {n} examples")
        index = int(index) % n
        k = int(np.searchsorted(self._starts, index, side="right")) - 1
        shard = self._shards[k]
        row = index - int(self._starts[k])
        _, models, _, _, mouths = shard.tables()
        return shard, row, int(models[row]), bool(mouths[row])

    def __getitem__(self, index: int) -> Example:
        shard, row, model, mouth_open = self._locate(index)
        poses, _, examples, ids, _ = shard.tables()
        rest = "rest" if mouth_open or self.image_sets == THA1_IMAGES else "rest_closed"
        return Example(rest=shard.read(rest, model), expression=shard.read(self.face_morphed, row),
                       posed=shard.read("posed", row), pose=poses[row].copy(),
                       model_id=ids[model], split=shard.entry["split"],
                       example=int(examples[row]), rest_mouth=int(mouth_open))

    def images(self, index: int) -> dict[str, np.ndarray]:
        """Every image of example ``index`` by image-set name, in the sets' order.

        A per-model image with a closed-mouth twin is the one the example's rest
        input uses.
        """
        shard, row, model, mouth_open = self._locate(index)
        out = {}
        for image in self.image_sets:
            if image.per == "model":
                name = image.name if mouth_open or not image.closed_twin \
                    else f"{image.name}_closed"
                out[image.name] = shard.read(name, model)
            else:
                out[image.name] = shard.read(image.name, row)
        return out

    def split(self, name: str) -> Dataset:
        """A view of the shards of one split (its own file handles)."""
        if name not in self.splits:
            raise PipelineError(f"dataset {self.directory} has no split {name!r}; it has "
                                f"{list(self.splits)}")
        return Dataset(self.directory, self.manifest,
                       [_Shard(s.path, s.entry) for s in self._shards
                        if s.entry["split"] == name])

    def poses(self) -> np.ndarray:
        """(N, P) float32: every pose, in example order, without reading any image."""
        tables = [s.tables()[0] for s in self._shards]
        return np.concatenate(tables) if tables else \
            np.zeros((0, len(self.schema.parameters)), dtype=np.float32)

    def model_ids(self) -> list[str]:
        """The model_id of every example, in example order, without reading any image."""
        ids = []
        for shard in self._shards:
            _, rows, _, names, _ = shard.tables()
            ids += [names[r] for r in rows]
        return ids

    def models(self) -> list[ShardModel]:
        """The model tables of all shards, in order."""
        return [entry for s in self._shards for entry in read_models(s.file())]

    def close(self) -> None:
        for shard in self._shards:
            shard.close()

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_dataset(directory: str | os.PathLike) -> Dataset:
    """The dataset whose ``manifest.json`` is in ``directory``. Files open on first read."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    shards = [_Shard(directory / e["file"], e) for e in manifest["shards"]]
    return Dataset(directory, manifest, shards)


def read_models(shard: h5py.File | str | os.PathLike) -> list[ShardModel]:
    """The model table of one shard (an open file or a path)."""
    if not isinstance(shard, h5py.File):
        with h5py.File(shard, "r") as f:
            return read_models(f)
    group = shard["models"]
    columns = {}
    for name in _MODEL_STRINGS:
        columns[name] = [s.decode("utf-8") if isinstance(s, bytes) else s
                         for s in group[name][()]]
    for name in _MODEL_FLOATS:
        columns[name] = group[name][()].tolist()
    columns["both_eyes_wink"] = group["both_eyes_wink"][()].tolist()
    if "details" in group:
        columns["details"] = [s.decode("utf-8") if isinstance(s, bytes) else s
                              for s in group["details"][()]]
    rows = []
    for i in range(len(columns["model_id"])):
        values = {name: column[i] for name, column in columns.items()}
        for name in ("wink_left", "wink_right", "mouth_open"):
            values[name] = values[name] or None
        rows.append(ShardModel(**values))
    return rows
