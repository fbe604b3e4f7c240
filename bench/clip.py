"""Frames per second of `pipeline clip`, and docs/motion_strip.png.

    .venv/bin/python bench/clip.py [--strip docs/motion_strip.png]

The shared real motion (../shared/motions/test.vmd, 25 frames) sampled at
120 fps (97 frames, every quarter frame) on a sample character and on two
real models, THA1 (256², head) and THA3 (512², upper body): the command end to
end, as a user runs it (process start, model and motion load, rendering,
the shard's assembly), and the share of one in-process frame spent evaluating
and posing versus drawing. Without ../shared only the sample is measured,
with a motion written here.

The strip shows every fourth motion frame of the THA3 clips, captioned with
the pose vector's head and body values: the head and body move as the motion
says, the camera follows the body, arms keep the motion's (not THA3's lowered)
posture; hair and skirts follow their bones rigidly (no physics).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

import numpy as np  # noqa: E402

from bench.wide_dataset import real_entry  # noqa: E402
from mmdrender.formats.vmd_writer import BoneKey, vmd_bytes  # noqa: E402
from mmdrender.samples import write_samples  # noqa: E402
from mmdrender.sheet import Cell, Panel, compose_sheet  # noqa: E402
from mmdrender.skeleton import turn_about  # noqa: E402
from pipeline.clip_reader import clip_images, read_clip  # noqa: E402
from pipeline.index import write_index  # noqa: E402

SHARED = PROJECT.parent / "shared"
MOTION = SHARED / "motions" / "test.vmd"
REAL = {"lat_miku_white": "lat_miku_white/Lat式ミクVer2.31_White.pmd",
        "mamama_miku": "mamama_appearance_miku/index.pmx",
        "miku_v2": "animasa_miku_v2/miku_v2.pmd"}
FPS = 120
PIPELINE = PROJECT / ".venv" / "bin" / "pipeline"
SHOWN = ("head_x", "head_y", "neck_z", "body_y", "body_z")


def library(folder: Path) -> tuple[Path, dict[str, Path], Path]:
    """An index of one sample and the real models (roots by id) and the motion to play."""
    samples = folder / "samples"
    write_samples(samples)
    entries = [real_entry(samples, "akane/akane.pmx", "sample-akane")]
    roots = {"sample-akane": samples}
    motion = MOTION
    if SHARED.is_dir():
        for model_id, relative in REAL.items():
            entries.append(real_entry(SHARED / "models", relative, model_id))
            roots[model_id] = SHARED / "models"
    else:
        motion = folder / "sway.vmd"
        motion.write_bytes(vmd_bytes("m", [
            BoneKey("上半身", 0), BoneKey("上半身", 24, rotation=tuple(turn_about("z", -20.0))),
            BoneKey("頭", 0), BoneKey("頭", 24, rotation=tuple(turn_about("y", 20.0)))]))
    index = folder / "index.csv"
    write_index(index, entries)
    return index, roots, motion


def clip(index: Path, root: Path, motion: Path, model_id: str, schema: str, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run([str(PIPELINE), "clip", str(motion), "--model-id", model_id, "--index",
                    str(index), "--root", str(root), "--schema", schema, "--fps", str(FPS),
                    "-o", str(out)], check=True, capture_output=True)
    return time.perf_counter() - start


def split(index, root, motion, model_id, schema) -> tuple[float, float]:
    """Milliseconds per frame evaluating + posing, and drawing, in one process."""
    from pipeline.clips import ClipJob, ClipRenderer
    from pipeline.index import read_index

    entry = next(e for e in read_index(index) if e.model_id == model_id)
    job = ClipJob(motion=motion, entry=entry, model_path=root / entry.path, models_root=root,
                  out=Path("unused.h5"), schema=schema, frames=tuple(np.arange(0, 24, 0.25)))
    renderer = ClipRenderer(job)
    renderer.render(0, 2)  # warm: scene upload, shaders
    frames = np.asarray(job.frames)
    start = time.perf_counter()
    rotations, translations, weights = renderer.bound.evaluate(frames)
    posed = [renderer.poser.pose_bones(rotations[i], translations[i], weights[i])
             for i in range(len(frames))]
    posing = time.perf_counter() - start
    start = time.perf_counter()
    for p in posed:
        renderer._scene.draw(p, renderer.camera_at(rotations[0], translations[0]))
    drawing = time.perf_counter() - start
    renderer.release()
    return posing / len(frames) * 1000, drawing / len(frames) * 1000


def strip(clips: dict[str, Path], out: Path) -> None:
    panels = []
    for model_id, path in clips.items():
        info = read_clip(path)
        cells = []
        for i, image in enumerate(clip_images(path)):
            frame = info.frame[i]
            if frame % 4 or frame != int(frame):
                continue
            v = {name: info.pose[i, info.parameters.index(name)] for name in SHOWN}
            values = (f"{v['head_x']:+.2f} {v['head_y']:+.2f} {v['neck_z']:+.2f} | "
                      f"{v['body_y']:+.2f} {v['body_z']:+.2f}")
            cells.append(Cell(image, f"{frame:g}: {values}"))
        matched = info.attrs["matched"].split(";")[0]  # the names are Japanese: counts only
        panels.append(Panel(f"{model_id}: {matched}", cells))
    title = (f"pipeline clip {MOTION.name} --schema tha3 (captions: frame: head_x head_y "
             "neck_z | body_y body_z; camera follows the body; no IK, no physics)")
    compose_sheet(panels, cell_size=256, title=title).save(out)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--strip", type=Path, help="also write the contact strip here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        index, roots, motion = library(folder)
        print(f"{motion.name} at {FPS} fps on 2 cores: `pipeline clip` end to end")
        tha3 = {}
        for model_id, root in roots.items():
            for schema in ("tha1", "tha3"):
                out = folder / f"{model_id}-{schema}.h5"
                seconds = clip(index, root, motion, model_id, schema, out)
                frames = len(read_clip(out))
                posing, drawing = split(index, root, motion, model_id, schema)
                print(f"  {model_id:16s} {schema} {512 if schema == 'tha3' else 256}px: "
                      f"{frames} frames in {seconds:5.2f} s = {frames / seconds:5.1f} frames/s "
                      f"(in process per frame: evaluate+pose {posing:4.1f} ms, "
                      f"draw {drawing:4.1f} ms)")
                if schema == "tha3":
                    tha3[model_id] = out
        if args.strip:
            strip(tha3, args.strip)


if __name__ == "__main__":
    main()
