"""Shard compression: size, write and read speed of the filters plain h5py reads.

Renders realistic images (rest, expression and posed, 256x256) of the five
sample characters and the shared real models, then writes them one image per
chunk, as :class:`pipeline.shards.ShardWriter` does, with each candidate filter
(no compression, lzf, gzip 1 and 4 with and without shuffle, gzip 6 and 9, and
gzip chunks deflated by ISA-L as pipeline.image_chunks writes them), and reads them
back in random order. Prints ratio (raw / file size) and MB/s of raw pixels,
best of ``REPEATS``, one core. Finishes with the real ShardWriter and reader.

    .venv/bin/python bench/shards.py [poses per model, default 8]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from mmdrender import load_model
from mmdrender.errors import PoseError
from mmdrender.pose import Poser
from mmdrender.render import render
from mmdrender.samples import write_samples
from pipeline.image_chunks import FILTER, LEVEL, create_image_dataset, write_image
from pipeline.poses import THA1, sample_example
from pipeline.shard_reader import open_dataset
from pipeline.shards import ShardWriter, write_manifest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "models"
REPEATS = 3
FILTERS = {
    "none": {},
    "lzf": {"compression": "lzf"},
    "gzip 1": {"compression": "gzip", "compression_opts": 1},
    "gzip 1+shuffle": {"compression": "gzip", "compression_opts": 1, "shuffle": True},
    "gzip 4": {"compression": "gzip", "compression_opts": 4},
    "gzip 4+shuffle": {"compression": "gzip", "compression_opts": 4, "shuffle": True},
    "gzip 6": {"compression": "gzip", "compression_opts": 6},
    "gzip 9": {"compression": "gzip", "compression_opts": 9},
    f"ISA-L {LEVEL} (ours)": None,  # pipeline.image_chunks: deflated in Python, chunks written
}
MOUTH_OPEN = {"mouth": 1.0}


def model_paths(samples_dir: Path) -> list[Path]:
    shared = sorted(p for p in SHARED.rglob("*.pm[dx]") if "_robustness" not in p.parts) \
        if SHARED.is_dir() else []
    return shared + write_samples(samples_dir)


def pose_or_rotations(poser: Poser, params: dict):
    """The pose, or its rotations only when the model lacks a morph it needs."""
    try:
        return poser.pose(params)
    except PoseError:
        return poser.pose({k: v for k, v in params.items() if k.startswith(("head", "neck"))})


def render_images(paths: list[Path], poses: int) -> np.ndarray:
    """(K, 256, 256, 4) uint8: per model a rest image, then expression and posed pairs."""
    images = []
    for path in paths:
        try:
            model = load_model(path)
        except Exception as error:  # a bench keeps going; the loader's tests own failures
            print(f"skipped {path.name}: {error}")
            continue
        poser = Poser(model)
        images.append(render(pose_or_rotations(poser, MOUTH_OPEN)))
        for example in range(poses):
            params = THA1.as_mapping(sample_example(THA1, 0, path.name, example))
            expression = {k: v for k, v in params.items() if k in ("eye_left", "eye_right",
                                                                    "mouth")}
            images.append(render(pose_or_rotations(poser, expression)))
            images.append(render(pose_or_rotations(poser, params)))
    return np.stack(images)


def best(function) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(images: np.ndarray, options: dict, path: Path) -> tuple[float, float, float]:
    n, h, w, c = images.shape

    def write():
        with h5py.File(path, "w") as f:
            if options is None:
                d = create_image_dataset(f, "images", h)
            else:
                d = f.create_dataset("images", shape=(0, h, w, c), maxshape=(None, h, w, c),
                                     dtype=np.uint8, chunks=(1, h, w, c), **options)
            for i, image in enumerate(images):
                d.resize(i + 1, axis=0)
                if options is None:
                    write_image(d, i, image)
                else:
                    d[i] = image

    order = np.random.default_rng(0).permutation(n)

    def read():
        with h5py.File(path, "r") as f:
            d = f["images"]
            for i in order:
                d[i]

    write_s = best(write)
    read_s = best(read)
    return images.nbytes / path.stat().st_size, images.nbytes / write_s, images.nbytes / read_s


def main() -> int:
    poses = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = model_paths(tmp / "samples")
        start = time.perf_counter()
        images = render_images(paths, poses)
        print(f"{len(images)} images of {len(paths)} models rendered in "
              f"{time.perf_counter() - start:.1f} s; {images.nbytes / 2**20:.1f} MiB raw; "
              f"{(images[..., 3] > 0).mean():.1%} of pixels are character")
        print(f"{'filter':16s} {'ratio':>6s} {'write MB/s':>11s} {'read MB/s':>10s} "
              f"{'KiB/image':>10s}")
        for name, options in FILTERS.items():
            ratio, write, read = measure(images, options, tmp / "bench.h5")
            print(f"{name:16s} {ratio:6.2f} {write / 1e6:11.0f} {read / 1e6:10.0f} "
                  f"{images[0].nbytes / ratio / 1024:10.1f}")
        print(f"ShardWriter uses ISA-L level {LEVEL}, declared as {FILTER}")
        shard = tmp / "data" / "train-00000.h5"
        rest, pairs = images[0], images[1:1 + 2 * ((len(images) - 1) // 2)]
        start = time.perf_counter()
        with ShardWriter(shard, THA1, images.shape[1], {}, 0, "train") as writer:
            m = writer.add_model(rest, model_id="bench", sha256="0" * 64, head_top_y=1.0,
                                 head_bottom_y=0.0, wink_left=None, wink_right=None,
                                 mouth_open=None)
            for i in range(len(pairs) // 2):
                writer.add_example(m, i, sample_example(THA1, 0, "bench", i), pairs[2 * i],
                                   pairs[2 * i + 1])
        elapsed = time.perf_counter() - start
        write_manifest(shard.parent, [shard])
        ds = open_dataset(shard.parent)
        start = time.perf_counter()
        for i in np.random.default_rng(0).permutation(len(ds)):
            ds[int(i)]
        read = time.perf_counter() - start
        print(f"ShardWriter: {len(pairs) / elapsed:.0f} images/s written (validation included); "
              f"reader: {len(ds) / read:.0f} examples/s (3 images each, random order)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
