"""Reading a clip's sequence shard (:mod:`pipeline.clips` says what it holds)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from pipeline.errors import PipelineError


@dataclass(frozen=True)
class ClipInfo:
    """A clip's per-frame arrays (images left on disk) and its attributes."""

    path: Path
    schema: str
    parameters: tuple[str, ...]
    pose: np.ndarray  # (F, P) float32
    frame: np.ndarray  # (F,) float64
    camera: np.ndarray  # (F, 3)
    face_vertices: np.ndarray  # (V,)
    face_faces: np.ndarray  # (T, 3)
    attrs: dict

    def __len__(self) -> int:
        return len(self.frame)


def _open(path: Path) -> h5py.File:
    try:
        f = h5py.File(path, "r")
    except OSError as error:
        raise PipelineError(f"{path}: not a readable clip shard ({error})") from None
    if f.attrs.get("format") != "clip":
        f.close()
        raise PipelineError(f"{path}: not a clip shard (made by `pipeline clip`)")
    return f


def read_clip(path: str | Path) -> ClipInfo:
    path = Path(path)
    with _open(path) as f:
        attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
        return ClipInfo(path, attrs["schema"], tuple(json.loads(attrs["parameters"])),
                        f["pose"][:], f["frame"][:], f["camera"][:], f["face_vertices"][:],
                        f["face_faces"][:], attrs)


def clip_images(path: str | Path) -> Iterator[np.ndarray]:
    """The clip's frames, (S, S, 4) uint8 each, one at a time."""
    with _open(Path(path)) as f:
        images = f["images"]
        for i in range(len(images)):
            yield images[i]


def clip_face_positions(path: str | Path) -> np.ndarray:
    """(F, V, 3) float32: the head's vertices, posed, per frame."""
    with _open(Path(path)) as f:
        return f["face_positions"][:]
