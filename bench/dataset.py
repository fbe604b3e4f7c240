"""End-to-end dataset throughput: images rendered, compressed and written per second.

Runs the real generator (pipeline.generate) with 2 worker processes on the
sample characters, on the heavy sample (a model like today's: 57k vertices, 89k
triangles, 32 materials with 16 of alpha-tested hair cards) and, when ../shared
is beside the project, on a real model, and prints images/s, the ratio to the
targets (100 images/s end to end on 2 cores, 150 on the heavy sample; the
original THA system made ~18 images/s) and peak memory per worker (target <
1 GB).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from mmdrender.camera import estimate_head_bounds
from mmdrender.loader import load_model
from mmdrender.samples import HEAVY_SAMPLE, write_heavy_sample, write_samples
from pipeline.generate import RunConfig, finish, plan, run_tasks, total_images
from pipeline.index import ModelEntry, file_sha256, sample_entries

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "models"
REAL_MODEL = "animasa_miku_v2/miku_v2.pmd"
# The 2-core target's run; on a bigger machine (a GPU's) set BENCH_WORKERS to its
# cores and BENCH_EXAMPLES higher, so start-up does not dominate (see bench/gpu.sh).
EXAMPLES = int(os.environ.get("BENCH_EXAMPLES", 128))
WORKERS = int(os.environ.get("BENCH_WORKERS", 2))
TARGET = 100.0
HEAVY_TARGET = 150.0  # issue 14: end to end on a model like today's
THA1_RATE = 18.0


def real_entries(root: Path) -> list[ModelEntry]:
    """The real model, framed by the automatic head estimate, once per split."""
    path = root / REAL_MODEL
    top, bottom, _ = estimate_head_bounds(load_model(path))
    base = ModelEntry(model_id="", path=REAL_MODEL, source="bench", split="train",
                      status="confirmed", status_reason="", head_top_y=top,
                      head_bottom_y=bottom, wink_left="ウィンク右", wink_right="ウィンク",
                      wink_both="まばたき", smile_wink_left=None, smile_wink_right=None,
                      smile_wink_both=None, mouth_open="あ", sha256=file_sha256(path), notes="")
    # The same file under four ids: four shards' worth of work for two workers.
    return [replace(base, model_id=f"miku-{i}") for i in range(4)]


ANTIALIASING = (("SSAA 2x2", 2, 0), ("none", 1, 0))  # (label, supersample, MSAA samples)


def timed_run(entries: list[ModelEntry], config: RunConfig) -> tuple[int, float, float]:
    """Run the generator on ``entries`` with WORKERS processes: (images, seconds, peak MB)."""
    tasks = plan(entries, config)
    start = time.perf_counter()
    results = list(run_tasks(tasks, config, workers=WORKERS))
    finish(tasks, config)
    seconds = time.perf_counter() - start
    images = sum(r.images for r in results)
    assert images == total_images(tasks), "a model failed"
    return images, seconds, max(r.peak_memory_mb for r in results)


def measure(name: str, entries: list[ModelEntry], root: Path, antialiasing: tuple,
            target: float = TARGET) -> None:
    label, supersample, samples = antialiasing
    with tempfile.TemporaryDirectory() as out:
        config = RunConfig(out=Path(out), models_root=root, examples_per_model=EXAMPLES,
                           supersample=supersample, samples=samples, models_per_shard=1)
        images, seconds, peak = timed_run(entries, config)
        rate = images / seconds
        print(f"{name:34s} {label:8s}: {images:5d} images in {seconds:5.1f} s = "
              f"{rate:6.1f} images/s ({rate / target:4.2f}x target, {rate / THA1_RATE:4.1f}x "
              f"THA1); peak worker memory {peak:5.0f} MB")


def heavy_entries(root: Path) -> list[ModelEntry]:
    """The heavy sample (akane's roles and head bounds) under four ids: four shards."""
    write_heavy_sample(root)
    akane = next(e for e in sample_entries(root) if e.model_id.startswith("akane"))
    path = f"{HEAVY_SAMPLE}/{HEAVY_SAMPLE}.pmx"
    base = replace(akane, path=path, split="train", sha256=file_sha256(root / path))
    return [replace(base, model_id=f"{HEAVY_SAMPLE}-{i}") for i in range(4)]


def main() -> int:
    print(f"{WORKERS} workers, {EXAMPLES} examples per model, 256x256, phong, "
          "worker start-up included")
    with tempfile.TemporaryDirectory() as samples_dir:
        root = Path(samples_dir)
        write_samples(root)
        samples = [replace(e, split="train") for e in sample_entries(root)]
        for antialiasing in ANTIALIASING:
            measure("sample characters (5 models)", samples, root, antialiasing)
        heavy = heavy_entries(root)
        for antialiasing in ANTIALIASING:
            measure("heavy sample (57k vertices) x4", heavy, root, antialiasing,
                    target=HEAVY_TARGET)
    if (SHARED / REAL_MODEL).exists():
        for antialiasing in ANTIALIASING:
            measure(f"{REAL_MODEL} (12.4k vertices)", real_entries(SHARED), SHARED, antialiasing)
    else:
        print("../shared/models is absent: real-model figures skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
