"""Posed renders per second at 256x256: pose + skin + draw + readback.

Each iteration samples a new pose the way the dataset does (spec section 3:
eye and mouth weights uniform on [0, 1], head_x, head_y and neck_z = s*sqrt(u)),
poses the model and renders it in phong. Models: the largest shared model
(mamama_appearance_miku, 22.5k vertices), lat_miku_white (18.5k) and a sample
character; only the sample where ../shared is absent. Prints renders/s for
each MSAA setting, the split between posing and drawing (draw + readback) and
the ratio to the target of 120 posed renders/s.

The eye parameter drives まばたき (blink, a group morph) where the model has
it; the other eye stays at 0 so the blink weight never exceeds 1.
"""

from __future__ import annotations

import sys
import tempfile
import time
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
SAMPLES = (4, 2, 0)  # llvmpipe supports only 4x: a 2x request draws 4x (same bytes)
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


def measure(scene, poser, morphs, camera) -> tuple[float, float, float]:
    """(renders/s, ms posing per render, ms drawing + reading back per render)."""
    rng = np.random.default_rng(0)
    for _ in range(WARMUP):
        scene.draw(poser.pose(sample_pose(rng, morphs)), camera)
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


def main() -> int:
    ctx = get_context()
    print(f"GL renderer: {ctx.info.get('GL_RENDERER')}; {SIZE}x{SIZE} phong, "
          f"target {TARGET:.0f} posed renders/s")
    with tempfile.TemporaryDirectory() as samples_dir:
        paths = [(name.split("/")[0], SHARED / name) for name in MODELS
                 if (SHARED / name).is_file()]
        if not paths:
            print("../shared/models is absent: timing the sample character only")
        paths += [(f"sample/{SAMPLE}", write_samples(Path(samples_dir), (SAMPLE,))[0])]
        renderers = {s: Renderer(ctx, SIZE, s, "phong") for s in SAMPLES}
        print(f"{'model':26s} {'verts':>6s} {'MSAA':>4s} {'renders/s':>9s} "
              f"{'pose ms':>7s} {'draw ms':>7s} {'/target':>7s}")
        for label, path in paths:
            model = load_model(path)
            poser, morphs = poser_for(model)
            top, bottom, centre_x = estimate_head_bounds(model)
            camera = Camera.from_head_bounds(top, bottom, centre_x, SIZE)
            for renderer in renderers.values():
                with renderer.prepare(model) as scene:
                    rate, pose_ms, draw_ms = measure(scene, poser, morphs, camera)
                print(f"{label:26s} {len(model.vertices):6d} {renderer.samples:>3d}x "
                      f"{rate:9.1f} {pose_ms:7.2f} {draw_ms:7.2f} {rate / TARGET:6.2f}x")
        for renderer in renderers.values():
            renderer.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
