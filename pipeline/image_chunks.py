"""Images into HDF5 datasets, one gzip-filtered chunk each, compressed by ISA-L.

Deflating is a large share of a dataset run's CPU time (zlib level 4: ~4 ms of
~14 ms an image on a 12k-vertex model). Intel's ISA-L (the ``isal`` package)
writes standard zlib streams ~9x faster, and each one goes into the file as a
ready chunk (``write_direct_chunk``), so the files stay plain gzip-filtered
HDF5 that any reader, plain h5py included, decompresses exactly as before.
``bench/shards.py`` compares it with the filters HDF5 runs itself:
ISA-L level 2 makes files ~10% larger than zlib level 4.
"""

from __future__ import annotations

import h5py
import numpy as np
from isal import isal_zlib

LEVEL = 2  # ISA-L's levels are 0-3; 3 is slower for no smaller file (bench/shards.py)
# What the datasets declare: readers decompress by it; HDF5 compresses with it only
# when someone writes through h5py (zlib's level 1 is the closest to ISA-L's 2).
FILTER = {"compression": "gzip", "compression_opts": 1}


def create_image_dataset(group: h5py.Group, name: str, size: int, count: int = 0,
                         resizable: bool = True) -> h5py.Dataset:
    """An (N, size, size, 4) uint8 dataset of ``count`` images, one chunk per image."""
    shape = (count, size, size, 4)
    return group.create_dataset(name, shape=shape, dtype=np.uint8, chunks=(1, size, size, 4),
                                maxshape=(None, size, size, 4) if resizable else shape, **FILTER)


def write_image(dataset: h5py.Dataset, index: int, image: np.ndarray) -> None:
    """Store ``image`` ((size, size, 4) uint8) as image ``index`` of those the dataset holds.

    A direct chunk write bypasses h5py's checks: an index past the end would
    lie hidden until the dataset grows, and any other dtype would be stored as bytes.
    """
    if image.dtype != np.uint8 or image.shape != dataset.shape[1:]:
        raise ValueError(f"a {image.dtype} image of shape {image.shape} for a dataset of "
                         f"uint8 images of shape {dataset.shape[1:]}")
    if not 0 <= index < dataset.shape[0]:
        raise IndexError(f"image {index} of a dataset of {dataset.shape[0]}")
    pixels = np.ascontiguousarray(image)
    dataset.id.write_direct_chunk((index, 0, 0, 0), isal_zlib.compress(pixels, LEVEL))
