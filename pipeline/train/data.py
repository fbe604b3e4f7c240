"""Shards -> tensors for the trainer (spec sections 4, 5 and 8).

Images are stored as 8-bit sRGB RGBA with straight alpha. The networks see
them as ``(4, S, S)`` float32 in [-1, 1]: RGB through the exact sRGB EOTF to
linear, alpha (already linear) as is, then ``2 * v - 1``.

Which images and parameters each network trains on (spec section 4;
wide-schemas.md sections 3 and 4). The parameters are the categories of the
shard's schema in :mod:`mmdrender.schemas`, so one trainer reads tha1, tha2
and tha3 data:

=========  ==========  ============================================  ==========
network    source      pose (the schema's parameters in categories)  target
=========  ==========  ============================================  ==========
morpher    rest        the face: eyebrow, eye, iris, mouth, iris     expression
                       rotation (tha1: 3 values; tha2 and tha3: 39)
rotator    expression  face and body rotations, breathing            posed
                       (tha1 and tha2: 3 values; tha3: 6)
combiner   expression  as the rotator                                posed
=========  ==========  ============================================  ==========

``expression`` is a wide dataset's ``face_morphed`` image and ``rest`` the
rest input with the example's ``rest_mouth``.

:class:`TripleDataset` is safe in DataLoader workers: the shard reader
reopens its HDF5 files in each process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from mmdrender.schemas import FACE_CATEGORIES, MOVEMENT_CATEGORIES, SCHEMAS
from pipeline.errors import PipelineError
from pipeline.shard_reader import open_dataset

CATEGORIES = {"morpher": FACE_CATEGORIES, "rotator": MOVEMENT_CATEGORIES,
              "combiner": MOVEMENT_CATEGORIES}
IMAGES = {"morpher": ("rest", "expression"), "rotator": ("expression", "posed"),
          "combiner": ("expression", "posed")}


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """The sRGB EOTF (IEC 61966-2-1) on values in [0, 1]; float64 in, float64 out."""
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    """The inverse of :func:`srgb_to_linear` on values in [0, 1]."""
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


# uint8 -> [-1, 1] float32, one table per kind of channel (exact per code value).
_COLOUR = (2 * srgb_to_linear(np.arange(256) / 255.0) - 1).astype(np.float32)
_ALPHA = (2 * (np.arange(256) / 255.0) - 1).astype(np.float32)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(S, S, 4) uint8 sRGB RGBA -> (4, S, S) float32 in [-1, 1], linear RGB."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 4:
        raise ValueError(f"expected (S, S, 4) uint8, got {image.shape} {image.dtype}")
    out = np.empty(image.shape, dtype=np.float32)  # (S, S, 4)
    out[..., :3] = _COLOUR[image[..., :3]]
    out[..., 3] = _ALPHA[image[..., 3]]
    return torch.from_numpy(out).permute(2, 0, 1).contiguous()  # (S, S, 4) -> (4, S, S)


def to_image(tensor: torch.Tensor) -> np.ndarray:
    """(4, S, S) in [-1, 1], linear -> (S, S, 4) uint8 sRGB RGBA (straight alpha)."""
    v = ((tensor.detach().float().cpu().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()
    out = np.empty(v.shape, dtype=np.float64)  # (S, S, 4)
    out[..., :3] = linear_to_srgb(v[..., :3])
    out[..., 3] = v[..., 3]
    return np.round(out * 255).astype(np.uint8)


def network_parameters(schema_name: str, network: str) -> tuple[str, ...]:
    """The parameters ``network`` conditions on in pose schema ``schema_name``, in its order."""
    if schema_name not in SCHEMAS:
        raise PipelineError(f"the dataset's pose schema {schema_name!r} is none the trainer "
                            f"knows ({', '.join(SCHEMAS)})")
    return tuple(p.name for p in SCHEMAS[schema_name].in_category(*CATEGORIES[network]))


def parameter_columns(schema, names: tuple[str, ...]) -> list[int]:
    """Columns of ``names`` in a shard's pose schema, looked up by name."""
    missing = [n for n in names if n not in schema.names]
    if missing:
        raise PipelineError(f"the dataset's pose schema {schema.name!r} lacks {missing}; "
                            f"it has {list(schema.names)}")
    return [schema.index(n) for n in names]


class TripleDataset(Dataset):
    """One split of a dataset as ``{"source", "pose", "target"}`` items for ``network``.

    ``source`` and ``target`` (4, S, S) float32 in [-1, 1]; ``pose``
    (pose_size,) float32; ``index`` the example's position in the split. A
    shard that cannot be read is a PipelineError naming the example.
    """

    def __init__(self, directory: str | os.PathLike, split: str, network: str):
        if network not in CATEGORIES:
            raise PipelineError(f"unknown network {network!r}; choose one of "
                                f"{sorted(CATEGORIES)}")
        self.network = network
        self.directory = directory
        self.data = open_dataset(directory).split(split)
        self.split = split
        self.image_size = int(self.data.manifest["image_size"])
        self.schema_name = self.data.schema.name
        self.parameters = network_parameters(self.schema_name, network)
        self.columns = parameter_columns(self.data.schema, self.parameters)
        self.pose_size = len(self.columns)
        self.source_key, self.target_key = IMAGES[network]
        if len(self.data) == 0:
            raise PipelineError(f"split {split!r} of {directory} has no examples")

    def __len__(self) -> int:
        return len(self.data)

    def check_fits(self, config, who: str) -> None:
        """A PipelineError unless a network ``config`` takes this data's images and poses."""
        if config.image_size != self.image_size:
            raise PipelineError(f"{who} works on {config.image_size}-pixel images, "
                                f"{self.directory} has {self.image_size}")
        if (config.pose_schema, config.pose_size) != (self.schema_name, self.pose_size):
            raise PipelineError(
                f"{who} takes {config.pose_schema} poses ({config.pose_size} values), "
                f"{self.directory} holds {self.schema_name} data ({self.pose_size} for the "
                f"{self.network}): a network trains on one pose schema; start a new run "
                f"for this data")

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        try:
            example = self.data[int(index)]
        except (PipelineError, OSError) as error:  # a damaged shard, read in a long run
            hint = "" if "pipeline verify" in str(error) else \
                "; run `pipeline verify` on the dataset"
            raise PipelineError(f"{self.split} example {index}: {error}{hint}") from None
        return {"source": to_tensor(getattr(example, self.source_key)),
                "pose": torch.from_numpy(example.pose[self.columns].astype(np.float32)),
                "target": to_tensor(getattr(example, self.target_key)),
                "index": torch.tensor(int(index))}


class EpochOrder(Sampler):
    """An endless index stream: epoch ``e`` is a permutation seeded by ``(seed, e)``.

    ``start`` skips that many indices (examples already trained on), so a
    resumed run sees exactly the examples an uninterrupted one would.
    """

    def __init__(self, n: int, seed: int, start: int = 0):
        self.n, self.seed, self.start = n, seed, start

    def permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def __iter__(self) -> Iterator[int]:
        epoch, offset = divmod(self.start, self.n)
        while True:
            for i in self.permutation(epoch)[offset:]:
                yield int(i)
            epoch, offset = epoch + 1, 0

    def __len__(self) -> int:  # endless; DataLoader only needs it for len(loader)
        return 2 ** 62
