"""Posed renders per second at 256x256: pose + skin + draw + readback.

Each iteration samples a new pose the way the dataset does (spec section 3:
eye and mouth weights uniform on [0, 1], head_x, head_y and neck_z = s*sqrt(u)),
poses the model and renders it in phong. Models: the largest shared model
(mamama_appearance_miku, 22.5k vertices, 37k triangles, all double-sided),
lat_miku_white (18.5k vertices, the "~20k-vertex model" of the target) and a
sample character; only the sample where ../shared is absent.

For each anti-aliasing setting it prints two rates:
- "1 proc": one process rendering (llvmpipe rasterises on every core);
- "machine": one rendering process per core, as `pipeline dataset --workers N`
  runs, summed: what the machine produces.
and the ratio of the better of the two to the target of 120 posed renders/s,
plus the split of one process's time between posing and drawing (draw,
anti-aliasing and readback).

The eye parameter drives まばたき (blink, a group morph) where the model has
it; the other eye stays at 0 so the blink weight never exceeds 1.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from mmdrender import load_model
from mmdrender.camera import Camera, estimate_head_bounds
from mmdrender.gl.context import get_context
from mmdrender.gl.renderer import Renderer
from mmdrender.pose import MorphMapping, Poser
from mmdrender.samples import write_samples

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "models"
MODELS = ("mamama_appearance_miku/index.pmx", "lat_miku_white/Lat式ミクVer2.31_White.pmd")
SAMPLE = "akane"
SIZE = 256
# (label, supersample, MSAA samples). llvmpipe offers only 4x MSAA (2x draws 4x).
ANTIALIASING = (("SSAA 2x2", 2, 0), ("MSAA 4x", 1, 4), ("none", 1, 0))
TARGET = 120.0
SECONDS = 1.5  # timed per model and setting, after a warm-up
WARMUP = 5


def poser_for(model) -> tuple[Poser, tuple[str, ...]]:
    """A Poser and the morph parameters it can pose (blink and あ where present)."""
    names = {m.name for m in model.morphs}
    blink = "まばたき" if "まばたき" in names else None
    mouth = "あ" if "あ" in names else None
    mapping = MorphMapping(wink_left=blink, wink_right=None, mouth_open=mouth)
    morphs = tuple(p for p, name in (("eye_left", blink), ("mouth", mouth)) if name)
    return Poser(model, mapping), morphs


def sample_pose(rng: np.random.Generator, morphs: tuple[str, ...]) -> dict[str, float]:
    pose = {name: float(rng.uniform(0.0, 1.0)) for name in morphs}
    for name in ("head_x", "head_y", "neck_z"):
        pose[name] = float(rng.choice((-1.0, 1.0)) * np.sqrt(rng.uniform(0.0, 1.0)))
    return pose


def measure(path: Path, supersample: int, samples: int,
            start_at: float | None = None) -> tuple[float, float, float]:
    """(renders/s, ms posing per render, ms drawing + reading back per render).

    ``start_at``: a time.time() to begin timing at, so that parallel workers
    time the same interval.
    """
    model = load_model(path)
    poser, morphs = poser_for(model)
    top, bottom, centre_x = estimate_head_bounds(model)
    camera = Camera.from_head_bounds(top, bottom, centre_x, SIZE)
    rng = np.random.default_rng(os.getpid())
    with Renderer(get_context(), SIZE, samples, supersample=supersample) as renderer, \
            renderer.prepare(model) as scene:
        for _ in range(WARMUP):
            scene.draw(poser.pose(sample_pose(rng, morphs)), camera)
        if start_at is not None:
            time.sleep(max(0.0, start_at - time.time()))
        pose_time = draw_time = 0.0
        count = 0
        start = time.perf_counter()
        while time.perf_counter() - start < SECONDS:
            params = sample_pose(rng, morphs)
            t0 = time.perf_counter()
            posed = poser.pose(params)
            t1 = time.perf_counter()
            scene.draw(posed, camera)
            t2 = time.perf_counter()
            pose_time += t1 - t0
            draw_time += t2 - t1
            count += 1
        total = time.perf_counter() - start
    return count / total, 1000 * pose_time / count, 1000 * draw_time / count


def _single_threaded() -> None:
    """Worker initialiser: llvmpipe on one thread, since each core has its own process."""
    os.environ["LP_NUM_THREADS"] = "1"


def measure_machine(pool: ProcessPoolExecutor, workers: int, path: Path, supersample: int,
                    samples: int) -> float:
    """Renders/s summed over ``workers`` processes rendering at once."""
    start_at = time.time() + 3.0  # time for every worker to load, compile and warm up
    futures = [pool.submit(measure, path, supersample, samples, start_at)
               for _ in range(workers)]
    return sum(f.result()[0] for f in futures)


def main() -> int:
    ctx = get_context()
    workers = os.cpu_count() or 1
    print(f"GL renderer: {ctx.info.get('GL_RENDERER')}; {SIZE}x{SIZE} phong; {workers} cores; "
          f"target {TARGET:.0f} posed renders/s")
    with tempfile.TemporaryDirectory() as samples_dir, ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_single_threaded) as pool:
        paths = [(name.split("/")[0], SHARED / name) for name in MODELS
                 if (SHARED / name).is_file()]
        if not paths:
            print("../shared/models is absent: timing the sample character only")
        paths += [(f"sample/{SAMPLE}", write_samples(Path(samples_dir), (SAMPLE,))[0])]
        print(f"{'model':24s} {'verts':>6s} {'anti-aliasing':13s} {'1 proc/s':>8s} "
              f"{'machine/s':>9s} {'pose ms':>7s} {'draw ms':>7s} {'/target':>7s}")
        for label, path in paths:
            vertices = len(load_model(path).vertices)
            for name, supersample, samples in ANTIALIASING:
                rate, pose_ms, draw_ms = measure(path, supersample, samples)
                machine = measure_machine(pool, workers, path, supersample, samples)
                print(f"{label:24s} {vertices:6d} {name:13s} {rate:8.1f} {machine:9.1f} "
                      f"{pose_ms:7.2f} {draw_ms:7.2f} {max(rate, machine) / TARGET:6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
