"""A dataset run's CPU side alone: the ceiling a GPU cannot lift.

On a GPU the draw is nearly free and what is left is the work the CPU does for
each image: sampling and checking the pose, morphs and skinning, vertex
uploads, the redraw bookkeeping, turning the read-back pixels into straight
alpha, the image checks, compression and the HDF5 writes. This runs the real
generator in one process with the GL draw calls skipped and the read-back
replaced by the first frame drawn (so compression sees real pixels), and
prints the CPU time per image and the images/s that many cores would give if
drawing cost nothing. With ``bench/dataset.py`` on a GPU machine it tells
whether the draw or the CPU side is the next bottleneck.

    .venv/bin/python bench/cpu_side.py [examples per model, default 64]
"""

from __future__ import annotations

import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.dataset import REAL_MODEL, SHARED, heavy_entries, real_entries  # noqa: E402
from mmdrender.gl.renderer import ModelScene, Renderer  # noqa: E402
from mmdrender.samples import write_samples  # noqa: E402
from pipeline.generate import RunConfig, plan, run_tasks, total_images  # noqa: E402
from pipeline.index import sample_entries  # noqa: E402

CORES = (2, 16, 64)  # machines to extrapolate to


@contextmanager
def drawing_for_free():
    """Skip the GL draw calls and read-back once each image size has one real frame;
    later reads get that frame's bytes as GL returned them."""
    frames: dict[int, bytearray] = {}
    draw_calls, read = ModelScene._draw_calls, Renderer.read_premultiplied

    def skip_draw_calls(self, uniforms, box):
        if self.renderer.size not in frames:
            draw_calls(self, uniforms, box)

    def first_frame(self):
        if self.size not in frames:
            frames[self.size] = read(self)
        return bytearray(frames[self.size])  # a copy, as a read-back is

    ModelScene._draw_calls, Renderer.read_premultiplied = skip_draw_calls, first_frame
    try:
        yield
    finally:
        ModelScene._draw_calls, Renderer.read_premultiplied = draw_calls, read


def measure(name: str, entries, root: Path, examples: int) -> None:
    with tempfile.TemporaryDirectory() as out, drawing_for_free():
        config = RunConfig(out=Path(out), models_root=root, examples_per_model=examples,
                           models_per_shard=1)
        tasks = plan(entries, config)
        start = time.process_time()
        images = sum(r.images for r in run_tasks(tasks, config, workers=1))
        seconds = time.process_time() - start
    assert images == total_images(tasks), "a model failed"
    per_image = seconds / images * 1000
    ceilings = ", ".join(f"{n} cores {n * 1000 / per_image:,.0f}" for n in CORES)
    print(f"{name:34s}: {per_image:5.2f} CPU-ms an image besides drawing; images/s if "
          f"drawing were free: {ceilings}")


def main() -> int:
    examples = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    print(f"one process, {examples} examples per model, 256x256 THA1, model loading included")
    with tempfile.TemporaryDirectory() as samples_dir:
        root = Path(samples_dir)
        write_samples(root)
        samples = [replace(e, split="train") for e in sample_entries(root)]
        measure("sample characters (5 models)", samples, root, examples)
        measure("heavy sample (57k vertices) x4", heavy_entries(root), root, examples)
    if (SHARED / REAL_MODEL).exists():
        measure(f"{REAL_MODEL} x4", real_entries(SHARED), SHARED, examples)
    return 0


if __name__ == "__main__":
    sys.exit(main())
