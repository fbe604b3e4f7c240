"""A motion rendered on one model: a sequence shard of frames and their pose vectors.

Each frame poses every bone and morph the motion keys (no IK, no physics: see
:mod:`mmdrender.motion`) and is drawn with the schema's framing: THA1/THA2 the
head (rows size/4 to 3*size/4), THA3 the upper body. The camera keeps the
framing of the rest pose and, by default (``follow``), moves with the neck (THA3:
the body bone) as the motion carries it, so a dancing character stays in the
frame while the head's and body's own turns show; ``fixed`` keeps it still.

The shard (HDF5, ``format`` ``clip``) holds, per frame F:

- ``images`` (F, S, S, 4) uint8 RGBA, straight alpha, background 0;
- ``pose`` (F, P) float32: the schema's pose vector of the frame
  (:mod:`mmdrender.motion_pose`), parameter names in the ``parameters`` attribute;
- ``frame`` (F,) float64: the motion frame shown (30 per second);
- ``camera`` (F, 3) float64: the camera's centre x, y and half height, model units;
- ``face_positions`` (F, V, 3) float32: the posed 3D positions of the head's
  vertices (those weighted more than half to 頭 and the bones below it) in the
  project frame, model units; ``face_vertices`` (V,) int32 their indices in the
  model file, ``face_faces`` (T, 3) int32 the triangles among them (indices
  into ``face_vertices``), for mesh-based face-animation training.

Attributes say which motion (path, sha256), which model (id, sha256), the
schema, fps, camera mode, renderer settings, and how many frames each
parameter was clipped in, and the settings the images depend on. Rendering
goes in chunks written beside the output (``OUT.parts/``); a stopped run
started again with the same settings goes on from the last finished chunk, and
the shard appears, whole, at the end; a finished shard with the same settings
is kept as it is.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import h5py
import numpy as np

from mmdrender.camera import HEAD_BONE, HEAD_WEIGHT, Camera, head_centre_x
from mmdrender.errors import MMDRenderError
from mmdrender.gl.context import describe
from mmdrender.gl.renderer import DEFAULT_SAMPLES, DEFAULT_SUPERSAMPLE, Lights
from mmdrender.loader import load_model
from mmdrender.motion import Motion
from mmdrender.motion_pose import MotionPoses, PoseTrack
from mmdrender.pose import NECK_BONE, MorphMapping, Poser
from mmdrender.render import get_renderer
from mmdrender.schemas import SCHEMAS
from pipeline.atomic import atomic_write
from pipeline.errors import PipelineError
from pipeline.image_chunks import create_image_dataset, write_image
from pipeline.index import ModelEntry, file_sha256
from pipeline.roles import rig_of

CLIP_FORMAT = "clip"
CLIP_FORMAT_VERSION = 1
CAMERAS = ("follow", "fixed")
CHUNK_FRAMES = 16  # frames per resumable part
COMPRESSION = {"compression": "gzip", "compression_opts": 4}


@dataclass(frozen=True)
class ClipJob:
    """What to render: a motion on one indexed model, the frames, the look."""

    motion: Path
    entry: ModelEntry
    model_path: Path
    models_root: Path
    out: Path
    schema: str = "tha1"
    frames: tuple = ()  # motion frames (floats) to show, in order
    fps: float = 30.0
    size: int | None = None
    camera: str = "follow"
    shading: str = "phong"
    samples: int = DEFAULT_SAMPLES
    supersample: int = DEFAULT_SUPERSAMPLE
    lights: dict = field(default_factory=lambda: asdict(Lights()))

    @property
    def image_size(self) -> int:
        return self.size or SCHEMAS[self.schema].image_size

    def settings(self, motion_sha: str, model_sha: str) -> dict:
        """What the output depends on: a rerun with other settings starts afresh."""
        return {"motion_sha256": motion_sha,  # not the path: another spelling is the same
                "model_id": self.entry.model_id, "model_sha256": model_sha,
                "schema": self.schema, "frames": [float(f) for f in self.frames],
                "fps": self.fps, "size": self.image_size, "camera": self.camera,
                "renderer": {"shading": self.shading, "msaa_samples": self.samples,
                             "supersample": self.supersample, "lights": self.lights},
                "head_top_y": self.entry.head_top_y, "head_bottom_y": self.entry.head_bottom_y,
                "rig": rig_of(self.entry).to_dict()}


def parts_folder(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def face_mesh(model) -> tuple[np.ndarray, np.ndarray]:
    """The head's vertices (weighted more than half to 頭's subtree) and their triangles."""
    head = model.bone_index(HEAD_BONE)
    if head is None:
        return np.zeros(0, np.int32), np.zeros((0, 3), np.int32)
    inside = model.weight_on(model.subtree(head)) > HEAD_WEIGHT
    vertices = np.flatnonzero(inside).astype(np.int32)
    faces = model.faces[inside[model.faces].all(axis=1)]
    remap = np.full(len(model.vertices), -1, np.int64)
    remap[vertices] = np.arange(len(vertices))
    return vertices, remap[faces].astype(np.int32)


class ClipRenderer:
    """Loads the motion and the model once; renders chunks of frames."""

    def __init__(self, job: ClipJob, motion: Motion | None = None):
        entry = job.entry
        if entry.head_top_y is None or entry.head_bottom_y is None:
            raise PipelineError(f"model {entry.model_id} has no head bounds in the index; "
                                "annotate it first (`annotate scan`)")
        if job.camera not in CAMERAS:
            raise PipelineError(f"camera must be one of {', '.join(CAMERAS)}, not {job.camera!r}")
        self.job = job
        self.motion = motion if motion is not None else Motion.load(job.motion)
        self.model = load_model(job.model_path, root=job.models_root)
        self.bound = self.motion.bind(self.model)
        self.bound.check_matches()
        self.schema = SCHEMAS[job.schema]
        self.rig = rig_of(entry)
        poses = MotionPoses(self.bound, self.schema, self.rig)
        self.track: PoseTrack = poses.track(np.asarray(job.frames, dtype=np.float64))
        self.poser = Poser(self.model, MorphMapping(None, None, None))
        self.skeleton = poses.skeleton
        self.camera = Camera.framing(self.schema.framing, entry.head_top_y, entry.head_bottom_y,
                                     head_centre_x(self.model), job.image_size)
        self.anchor = self._anchor()
        self.face_vertices, self.face_faces = face_mesh(self.model)
        self._scene = None

    def _anchor(self) -> int | None:
        """The bone the camera follows: the neck (THA3: the body bone), else the head."""
        names = [NECK_BONE, HEAD_BONE]
        if self.schema.framing == "upper_body":
            names = [self.rig.body_bone or "上半身", *names]
        for name in names:
            index = self.model.bone_index(name) if name else None
            if index is not None:
                return index
        return None

    def render(self, first: int, count: int) -> dict:
        """Frames ``first`` .. ``first + count - 1`` of the job: their arrays."""
        frames = np.asarray(self.job.frames[first:first + count], dtype=np.float64)
        rotations, translations, weights = self.bound.evaluate(frames)
        if self._scene is None:
            renderer = get_renderer(self.job.image_size, self.job.shading, self.job.samples,
                                    self.job.supersample)
            self._scene = renderer.prepare(self.model)
        lights = Lights(**self.job.lights)
        size = self.job.image_size
        images = np.zeros((len(frames), size, size, 4), np.uint8)
        faces = np.zeros((len(frames), len(self.face_vertices), 3), np.float32)
        cameras = np.zeros((len(frames), 3))
        for i in range(len(frames)):
            camera = self.camera_at(rotations[i], translations[i])
            posed = self.poser.pose_bones(rotations[i], translations[i], weights[i])
            images[i] = self._scene.draw(posed, camera, lights)
            faces[i] = posed.positions[self.face_vertices]
            cameras[i] = (camera.centre_x, camera.centre_y, camera.half_height)
        return {"images": images, "face_positions": faces, "camera": cameras}

    def camera_at(self, rotations: np.ndarray, translations: np.ndarray) -> Camera:
        if self.job.camera == "fixed" or self.anchor is None:
            return self.camera
        _, moved = self.skeleton.global_transforms(rotations, translations)
        shift = moved[self.anchor] - self.skeleton.positions[self.anchor]
        return replace(self.camera, centre_x=self.camera.centre_x + float(shift[0]),
                       centre_y=self.camera.centre_y + float(shift[1]))

    def release(self) -> None:
        if self._scene is not None:
            self._scene.release()
            self._scene = None


@dataclass
class ClipResult:
    out: Path
    frames: int
    resumed: int  # frames found already rendered
    track: PoseTrack
    summary: str  # what matched


def render_clip(job: ClipJob, progress: Callable[[int], None] | None = None,
                on_start: Callable[[int, int], None] | None = None,
                motion: Motion | None = None) -> ClipResult:
    """Render ``job`` to its sequence shard, going on from finished parts of a stopped run.

    ``on_start(total, done)`` is called once the work is known; ``progress(n)``
    after each rendered chunk of ``n`` frames. ``motion``: ``job.motion`` already read.
    """
    if not job.frames:
        raise PipelineError("no frames to render")
    try:
        clip = ClipRenderer(job, motion)
    except MMDRenderError as error:
        raise PipelineError(str(error)) from None
    # As they read back from a file: compared with what earlier runs stored.
    settings = json.loads(json.dumps(job.settings(clip.motion.sha256,
                                                  file_sha256(job.model_path))))
    if _complete(job.out, settings):
        if on_start:
            on_start(len(job.frames), len(job.frames))
        return ClipResult(job.out, len(job.frames), len(job.frames), clip.track,
                          clip.bound.summary())
    parts = parts_folder(job.out)
    done = _finished_parts(parts, settings)
    total = len(job.frames)
    resumed = sum(count for _, count in done.values())
    if on_start:
        on_start(total, resumed)
    try:
        for first in range(0, total, CHUNK_FRAMES):
            if first in done:
                continue
            count = min(CHUNK_FRAMES, total - first)
            arrays = clip.render(first, count)
            with atomic_write(parts / f"part-{first:07d}.npz", "wb") as f:
                np.savez(f, **arrays, drawn_with=np.array(describe()))
            if progress:
                progress(count)
    finally:
        clip.release()
    _assemble(job, clip, settings, parts)
    shutil.rmtree(parts, ignore_errors=True)
    return ClipResult(job.out, total, resumed, clip.track, clip.bound.summary())


def _complete(out: Path, settings: dict) -> bool:
    """Whether ``out`` is this job's finished shard (then a rerun has nothing to do)."""
    try:
        with h5py.File(out, "r") as f:
            return json.loads(f.attrs["settings"]) == settings
    except (OSError, KeyError, ValueError):
        return False


def _finished_parts(parts: Path, settings: dict) -> dict[int, tuple[Path, int]]:
    """Parts of an earlier run with the same settings; anything else is cleared."""
    record = parts / "settings.json"
    if parts.is_dir():
        try:
            same = json.loads(record.read_text(encoding="utf-8")) == settings
        except (OSError, ValueError):
            same = False
        if not same:
            shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    if not record.exists():
        with atomic_write(record, "w", encoding="utf-8") as f:
            json.dump(settings, f)
    found = {}
    for path in parts.glob("part-*.npz"):
        try:
            first = int(path.stem.split("-")[1])
            with np.load(path) as arrays:
                count = len(arrays["camera"])
        except (OSError, ValueError, KeyError, IndexError):
            path.unlink(missing_ok=True)  # unreadable: render it again
            continue
        found[first] = (path, count)
    return found


def _assemble(job: ClipJob, clip: ClipRenderer, settings: dict, parts: Path) -> None:
    total, size = len(job.frames), job.image_size
    track = clip.track
    job.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(job.out, "wb") as f, h5py.File(f, "w") as h5:
        images = create_image_dataset(h5, "images", size, total, resizable=False)
        faces = h5.create_dataset("face_positions", (total, len(clip.face_vertices), 3),
                                  np.float32, chunks=(1, len(clip.face_vertices) or 1, 3),
                                  **COMPRESSION)
        cameras = h5.create_dataset("camera", (total, 3), np.float64)
        drivers = set()  # a stopped clip may be resumed on another machine
        for first in range(0, total, CHUNK_FRAMES):
            with np.load(parts / f"part-{first:07d}.npz") as arrays:
                drivers.add(str(arrays["drawn_with"]) if "drawn_with" in arrays.files
                            else "not recorded")
                end = first + len(arrays["camera"])
                for i, image in enumerate(arrays["images"]):
                    write_image(images, first + i, image)
                faces[first:end] = arrays["face_positions"]
                cameras[first:end] = arrays["camera"]
        h5.create_dataset("pose", data=track.values)
        h5.create_dataset("frame", data=np.asarray(job.frames, dtype=np.float64))
        h5.create_dataset("face_vertices", data=clip.face_vertices)
        h5.create_dataset("face_faces", data=clip.face_faces)
        attrs = {
            "format": CLIP_FORMAT, "format_version": CLIP_FORMAT_VERSION,
            "schema": job.schema, "parameters": json.dumps(list(clip.schema.names)),
            "model_id": job.entry.model_id, "model_sha256": settings["model_sha256"],
            "motion": job.motion.name, "motion_path": str(job.motion),
            "motion_sha256": settings["motion_sha256"],
            "motion_model_name": clip.motion.model_name, "fps": job.fps,
            "camera_mode": job.camera, "renderer": json.dumps(settings["renderer"]),
            "rig": json.dumps(settings["rig"], ensure_ascii=False),
            "clipped": json.dumps(track.clipped),
            "matched": clip.bound.summary(),
            "posing": "every keyed bone and morph; IK not solved, physics not simulated",
            "settings": json.dumps(settings, ensure_ascii=False),
            "drawn_with": "; ".join(sorted(drivers)),  # the GL drivers (see pipeline.shards)
        }
        for name, value in attrs.items():
            h5.attrs[name] = value
