"""``pipeline motion2pose`` and ``pipeline clip``: MMD motions on indexed models.

``motion2pose`` writes, per motion frame, the pose vector of a schema
(:mod:`mmdrender.motion_pose`) as CSV (a ``frame`` column, then the
parameters) or a (F, P) float32 .npy; ``clip`` renders the motion to a sequence
shard (:mod:`pipeline.clips`) and, on request, a video.
"""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path

import click
import numpy as np

from mmdrender.loader import load_model
from mmdrender.motion import Motion
from mmdrender.motion_pose import MotionPoses, PoseTrack, frame_numbers
from mmdrender.schemas import SCHEMAS
from pipeline.atomic import atomic_write
from pipeline.errors import PipelineError, reports_errors
from pipeline.index import DEFAULT_INDEX, ModelEntry, read_index, resolve_model_path
from pipeline.index import models_root as default_models_root
from pipeline.progress import progress_bar

TRACK_FORMATS = (".csv", ".npy")


def entry_for(index_path: Path, model_id: str) -> ModelEntry:
    entries = read_index(index_path)
    for entry in entries:
        if entry.model_id == model_id:
            return entry
    known = ", ".join(e.model_id for e in entries[:10])
    more = f", ... ({len(entries)} in all)" if len(entries) > 10 else ""
    raise PipelineError(f"no model {model_id!r} in {index_path}; its models are {known}{more}")


def parse_frames(text: str | None) -> tuple[float | None, float | None]:
    """``A:B`` (both included; either may be left out) -> (start, end)."""
    if not text:
        return None, None
    start, sep, end = text.partition(":")
    if not sep:
        raise PipelineError(f"--frames {text!r}: write A:B (motion frames, both included), "
                            "e.g. 0:120, 30: or :60")
    try:
        return (float(start) if start.strip() else None, float(end) if end.strip() else None)
    except ValueError:
        raise PipelineError(f"--frames {text!r}: A and B must be frame numbers") from None


def motion_frames(motion: Motion, frames_text: str | None, fps: float) -> np.ndarray:
    start, end = parse_frames(frames_text)
    try:
        return frame_numbers(motion.last_frame, start, end, fps)
    except ValueError as error:
        raise PipelineError(f"--frames/--fps: {error}") from None


def clipped_line(track: PoseTrack) -> str:
    if not track.clipped:
        return "no value needed clipping"
    clipped = ", ".join(f"{name} {count}" for name, count in track.clipped.items())
    return f"pose values clipped to their ranges (frames per parameter): {clipped}"


def describe_track(track: PoseTrack, poses: MotionPoses) -> list[str]:
    """The summary lines: clipped values, and keyed morphs no parameter takes."""
    lines = [clipped_line(track)]
    bound = poses.bound
    used = poses.morphs_used()
    unused = [name for name in bound.matched_morphs
              if bound.model.morph_index(name) not in used]
    if unused:
        lines.append(f"morphs the {track.schema.name} schema has no role for on this model "
                     f"(not in the poses): {', '.join(unused)}")
    return lines


model_options = [
    click.argument("motion", type=click.Path(dir_okay=False, path_type=Path)),
    click.option("--model-id", required=True, help="The model's id in the index."),
    click.option("--index", "index_path", type=click.Path(dir_okay=False, path_type=Path),
                 default=str(DEFAULT_INDEX), show_default=True, help="The models index (CSV)."),
    click.option("--root", type=click.Path(file_okay=False, path_type=Path),
                 help="Folder the index's paths are relative to [default: $THA_MODELS_ROOT, "
                      "else out/samples beside the index]."),
    click.option("--schema", type=click.Choice(list(SCHEMAS)), default="tha1",
                 show_default=True, help="The pose vector: THA1 (6), THA2 (42), THA3 (45)."),
    click.option("--frames", "frames_text", metavar="A:B",
                 help="Motion frames A to B, both included (30 per second) [default: all]."),
    click.option("--fps", type=click.FloatRange(min=0.01, max=240), default=30.0,
                 show_default=True, help="Frames per second of the output (the motion is 30)."),
]


def with_model_options(command):
    for option in reversed(model_options):
        command = option(command)
    return command


def _inputs(motion_path: Path, model_id: str, index_path: Path, root: Path | None):
    """The index row, models root and model file of ``model_id``, and the motion read."""
    entry = entry_for(index_path, model_id)
    root = default_models_root(root, index_path)
    return entry, root, resolve_model_path(entry, root), Motion.load(motion_path)


@click.command("motion2pose")
@with_model_options
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="track.csv (a frame column, then the parameters) or track.npy ((F, P) "
                   "float32, the schema's order).")
@reports_errors
def motion2pose_command(motion, model_id, index_path, root, schema, frames_text, fps, out):
    """Turn MOTION (.vmd or .vpd) into one pose vector per frame for an indexed model.

    Morph weights go to the parameters whose roles (in the index) name those
    morphs; the head, neck and (tha3) body rotations are decomposed into the
    schema's axes; the eye bones' turns become iris rotations through the
    model's calibrated angles. Values beyond a parameter's range are clipped
    and counted.
    """
    from pipeline.roles import rig_of

    if out.suffix not in TRACK_FORMATS:
        raise PipelineError(f"{out}: write the track to a .csv or .npy file")
    entry, root, path, motion = _inputs(motion, model_id, index_path, root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing textures do not matter to a pose
        bound = motion.bind(load_model(path, root=root))
    bound.check_matches()
    frames = motion_frames(motion, frames_text, fps)
    poses = MotionPoses(bound, SCHEMAS[schema], rig_of(entry))
    track = poses.track(frames)
    click.echo(f"{motion.path.name} on {model_id}: {bound.summary()}")
    if not track.drives_anything:
        raise PipelineError(f"{motion.path.name} drives nothing the {schema} schema poses on "
                            f"{model_id}: every value is 0 on every frame (the motion moves "
                            f"{', '.join(bound.matched_bones + bound.matched_morphs) or 'nothing'}"
                            "; the roles come from the index: `annotate scan --schema "
                            f"{schema}`)")
    write_track(out, track)
    click.echo(f"wrote {len(frames)} {schema} poses ({len(SCHEMAS[schema])} values each, frames "
               f"{frames[0]:g} to {frames[-1]:g} at {fps:g} fps) to {out}")
    for line in describe_track(track, poses):
        click.echo(line)


def write_track(path: Path, track: PoseTrack) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".npy":
            with atomic_write(path, "wb") as f:
                np.save(f, track.values)
            return
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["frame", *track.schema.names])
        for frame, row in zip(track.frames, track.values, strict=True):
            writer.writerow([f"{frame:.10g}", *(f"{v + 0.0:.6g}" for v in row)])  # no -0
        with atomic_write(path, "w", encoding="utf-8", newline="") as f:
            f.write(text.getvalue())
    except OSError as error:
        raise PipelineError(f"cannot write {path}: {error.strerror or error}") from None


@click.command("clip")
@with_model_options
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The sequence shard (.h5): images, pose vectors, frame numbers, cameras "
                   "and the head's 3D vertex positions per frame.")
@click.option("--size", type=click.IntRange(16, 4096),
              help="Image side in pixels [default: the schema's, 256 or 512].")
@click.option("--camera", type=click.Choice(["follow", "fixed"]), default="follow",
              show_default=True, help="follow: the framing moves with the neck (tha3: the "
                                      "body bone); fixed: it stays where the rest pose puts it.")
@click.option("--video", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the frames as an H.264 .mp4 (over white).")
@reports_errors
def clip_command(motion, model_id, index_path, root, schema, frames_text, fps, out, size,
                 camera, video):
    """Render MOTION on an indexed model, frame by frame, to a sequence shard.

    Every bone and morph the motion keys is posed (IK is not solved and physics
    is not simulated). A stopped run started again with the same options goes
    on where it stopped.
    """
    from pipeline.clips import ClipJob, render_clip

    if out.suffix not in (".h5", ".hdf5"):
        raise PipelineError(f"{out}: the sequence shard is an HDF5 file (.h5)")
    if video is not None and video.suffix.lower() != ".mp4":
        raise PipelineError(f"--video {video}: write an .mp4 file")
    entry, root, path, loaded = _inputs(motion, model_id, index_path, root)
    frames = motion_frames(loaded, frames_text, fps)
    job = ClipJob(motion=motion, entry=entry, model_path=path, models_root=root, out=out,
                  schema=schema, frames=tuple(float(f) for f in frames), fps=fps, size=size,
                  camera=camera)
    bar = None

    def start(total, done):
        nonlocal bar
        if done == total:
            click.echo(f"{out} is already complete with these settings: kept")
        elif done:
            click.echo(f"going on from an earlier run: {done} of {total} frames already "
                       "rendered")
        bar = progress_bar(total, initial=done, unit="frame", desc="rendering")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = render_clip(job, progress=lambda n: bar.update(n), on_start=start,
                                 motion=loaded)
        finally:
            if bar is not None:
                bar.close()
    for message in sorted({str(w.message) for w in caught}):
        click.echo(f"warning: {message}", err=True)
    click.echo(f"{loaded.path.name} on {model_id}: {result.summary}")
    click.echo(f"wrote {result.frames} frames ({schema}, {job.image_size}px, frames "
               f"{frames[0]:g} to {frames[-1]:g} at {fps:g} fps, camera {camera}) to {out}")
    if result.track.clipped:
        click.echo(clipped_line(result.track))
    if video is not None:
        from pipeline.clip_reader import clip_images
        from pipeline.video import write_video

        written = write_video(video, clip_images(out), fps)
        click.echo(f"wrote {written} frames of video to {video}")
