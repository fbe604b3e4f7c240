"""Motions (VMD) and poses (VPD): read, matched to a model, evaluated at any frame.

A motion is evaluated at 30 frames per second (MMD's rate); any real frame
number may be asked for. Between two keys of a bone, each translation channel
and the rotation follow their Bézier curve (stored on the later key) from (0, 0)
to (1, 1): the curve's y at the x that is the fraction of the way between the
keys' frames is how far the value has gone; rotations go by spherical
interpolation. Morph weights interpolate linearly. Before a track's first key
its first value holds, after its last key its last value.

Names are matched to the model's bones and morphs exactly, then after
normalising half- and full-width forms (NFKC: ｳｨﾝｸ = ウィンク, ＩＫ = IK), then
by the 15 Shift-JIS bytes a VMD keeps of a longer name. What matches nothing is
listed once, on the bound motion.

Values are converted to the project frame here, through
:mod:`mmdrender.formats.frame`, the one place that knows MMD's frame. Posing
from a motion (:meth:`BoundMotion.pose`) sets every keyed bone, not only the
head's; IK is not solved and physics is not simulated (hair and skirts follow
their bones rigidly), so a leg driven by its IK bone stays as modelled.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmdrender.errors import MotionError, listed_names
from mmdrender.files import read_input
from mmdrender.formats import frame as mmd_frame
from mmdrender.formats.binary import FormatError
from mmdrender.formats.vmd import (
    NAME_BYTES,
    RawMotion,
    Tracks,
    decode_name,
    read_vmd,
    read_vpd,
    stored_name,
)
from mmdrender.model import Model
from mmdrender.skeleton import IDENTITY_QUAT, quat_slerp

FPS = 30.0
MAX_MOTION_BYTES = 256 * 2**20  # the longest real motions are a few tens of MB
_BISECTIONS = 30  # Bézier x -> parameter: 2^-30 of the way, well below a float32 step


@dataclass(frozen=True)
class Motion:
    """A motion or pose file, in the project frame. Pose files (VPD) are one frame, 0."""

    path: Path
    kind: str
    model_name: str
    bones: Tracks  # values: positions (K, 3), rotations (K, 4) xyzw, curves (K, 4, 4)
    morphs: Tracks  # values: weights (K,)
    sha256: str

    @classmethod
    def load(cls, path: str | Path) -> Motion:
        """Read a .vmd or .vpd file; a :class:`MotionError` says what is wrong with it."""
        path = Path(path)
        data = read_input(path, MotionError, "motion", MAX_MOTION_BYTES)
        try:
            raw = read_vpd(data) if data.lstrip(b"\xef\xbb\xbf").startswith(b"Vocaloid Pose") \
                else read_vmd(data)
        except FormatError as error:
            raise MotionError(path, str(error)) from None
        return cls.from_raw(path, raw, hashlib.sha256(data).hexdigest())

    @classmethod
    def from_raw(cls, path: Path, raw: RawMotion, sha256: str = "") -> Motion:
        b, m = raw.bones, raw.morphs
        bones = _sorted(b, positions=mmd_frame.vectors(b.values["positions"]),
                        rotations=_unit(mmd_frame.quaternions(b.values["rotations"])),
                        curves=b.values["curves"])
        morphs = _sorted(m, weights=m.values["weights"])
        return cls(Path(path), raw.kind, raw.model_name, bones, morphs, sha256)

    @property
    def last_frame(self) -> int:
        """The last keyed frame (0 for a pose or an empty motion)."""
        ends = [int(t.frames.max()) for t in (self.bones, self.morphs) if len(t)]
        return max(ends, default=0)

    def bind(self, model: Model) -> BoundMotion:
        """This motion's tracks matched to ``model``'s bones and morphs."""
        return BoundMotion(self, model)


def _unit(q: np.ndarray) -> np.ndarray:
    """Unit quaternions; an all-zero one (seen in files) is the identity."""
    q = np.asarray(q, dtype=np.float64)
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(norm > 0, q / np.where(norm > 0, norm, 1.0), IDENTITY_QUAT)


def _sorted(tracks: Tracks, **values) -> Tracks:
    """Keys ordered by (track, frame); of keys on the same frame, the last in the file wins."""
    order = np.lexsort((np.arange(len(tracks)), tracks.frames, tracks.track))
    track, frames = tracks.track[order], tracks.frames[order]
    last = np.ones(len(order), dtype=bool)
    last[:-1] = (track[1:] != track[:-1]) | (frames[1:] != frames[:-1])
    keep = order[last]
    return Tracks(tracks.names, tracks.track[keep], tracks.frames[keep],
                  {k: np.asarray(v)[keep] for k, v in values.items()})


def _normal(name: str) -> str:
    return unicodedata.normalize("NFKC", name).strip()


def match_names(stored: tuple[bytes, ...], names: list[str]) -> np.ndarray:
    """For each stored (raw) name, the index of the model name it means, or -1.

    Exact first, then NFKC-normalised, then, for a name filling the 15 bytes a
    VMD keeps (14 where a two-byte character did not fit), the model name whose
    Shift-JIS form starts with it; the first model name wins.
    """
    exact, normal = {}, {}
    for i, name in enumerate(names):
        exact.setdefault(name, i)
        normal.setdefault(_normal(name), i)
    encoded = [stored_name(name, whole=True) for name in names]
    found = np.full(len(stored), -1, dtype=np.int64)
    for t, raw in enumerate(stored):
        text = decode_name(raw)
        for table, key in ((exact, text), (normal, _normal(text))):
            if key in table:
                found[t] = table[key]
                break
        else:
            if len(raw) >= NAME_BYTES - 1:
                found[t] = next((i for i, e in enumerate(encoded)
                                 if len(e) > len(raw) and e.startswith(raw)), -1)
    return found


class BoundMotion:
    """A motion matched to one model; evaluates to that model's bone and morph arrays."""

    def __init__(self, motion: Motion, model: Model):
        self.motion, self.model = motion, model
        self.bone_of_track = match_names(motion.bones.names, [b.name for b in model.bones])
        self.morph_of_track = match_names(motion.morphs.names, [m.name for m in model.morphs])
        self.unmatched_bones = _unmatched(motion.bones.names, self.bone_of_track)
        self.unmatched_morphs = _unmatched(motion.morphs.names, self.morph_of_track)
        self._bones = _Segments(motion.bones, self.bone_of_track)
        self._morphs = _Segments(motion.morphs, self.morph_of_track)

    @property
    def matched_bones(self) -> list[str]:
        return [self.model.bones[i].name for i in np.unique(self._bones.targets)]

    @property
    def matched_morphs(self) -> list[str]:
        return [self.model.morphs[i].name for i in np.unique(self._morphs.targets)]

    def check_matches(self) -> None:
        """Refuse a motion none of whose names the model has, naming what was missing."""
        if len(self.motion.bones) + len(self.motion.morphs) == 0:
            raise MotionError(self.motion.path, "holds no bone or morph keyframes")
        if not len(self._bones.targets) and not len(self._morphs.targets):
            missing = self.unmatched_bones + self.unmatched_morphs
            raise MotionError(self.motion.path, f"is for another model (made for "
                              f"{self.motion.model_name!r}): model {self.model.path.name!r} "
                              "has none of its bones or morphs; missing: "
                              f"{listed_names(missing)}")

    def summary(self) -> str:
        """One line: what matched and what did not."""
        text = (f"{len(self.matched_bones)} bone(s) and {len(self.matched_morphs)} morph(s) "
                "matched")
        for what, names in (("bones", self.unmatched_bones), ("morphs", self.unmatched_morphs)):
            if names:
                text += f"; {len(names)} {what} not in the model: {listed_names(names)}"
        return text

    def evaluate(self, frames) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Local bone rotations (F, B, 4) xyzw, translations (F, B, 3) and morph weights
        (F, N) at ``frames`` (F,) (30 per second, any real number), float64.

        Unkeyed bones keep the identity and zero, unkeyed morphs 0.
        """
        frames = np.atleast_1d(np.asarray(frames, dtype=np.float64))
        count = len(frames)
        rotations = np.tile(IDENTITY_QUAT, (count, len(self.model.bones), 1))
        translations = np.zeros((count, len(self.model.bones), 3))
        weights = np.zeros((count, len(self.model.morphs)))
        s = self._bones
        if len(s.targets):
            i0, i1, x = s.at(frames)
            curves = self.motion.bones.values["curves"][i1].astype(np.float64) / 127.0
            y = bezier(curves, x[..., None])  # (F, T, 4)
            p = self.motion.bones.values["positions"]
            q = self.motion.bones.values["rotations"]
            translations[:, s.targets] = p[i0] + (p[i1] - p[i0]) * y[..., :3]
            rotations[:, s.targets] = quat_slerp(q[i0], q[i1], y[..., 3])
        s = self._morphs
        if len(s.targets):
            i0, i1, x = s.at(frames)
            w = self.motion.morphs.values["weights"]
            weights[:, s.targets] = w[i0] + (w[i1] - w[i0]) * x
        return rotations, translations, weights


class _Segments:
    """Per matched track, which two keys a frame falls between."""

    def __init__(self, tracks: Tracks, target_of_track: np.ndarray):
        target = target_of_track[tracks.track]
        keep = target >= 0
        # A model bone keyed by two tracks (a name and its other width): the first one.
        used, first_track = np.unique(target[keep], return_index=True)
        tracks_used = tracks.track[keep][first_track]
        self.targets = used
        self.frames = tracks.frames.astype(np.float64)
        starts = np.searchsorted(tracks.track, tracks_used, side="left")
        ends = np.searchsorted(tracks.track, tracks_used, side="right")
        self.starts, self.ends = starts, ends
        self._tracks_used = tracks_used
        # one sorted key per keyframe: track, then frame (frames < 2^33)
        self._keys = tracks.track.astype(np.float64) * 2.0**33 + self.frames

    def at(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(F, T) indices of the keys before and after each frame, and how far between (0-1)."""
        wanted = self._tracks_used[None, :] * 2.0**33 + frames[:, None]
        after = np.searchsorted(self._keys, wanted, side="right")  # first key past the frame
        i1 = np.clip(after, self.starts, self.ends - 1)
        i0 = np.clip(after - 1, self.starts, self.ends - 1)
        span = self.frames[i1] - self.frames[i0]
        x = np.divide(frames[:, None] - self.frames[i0], span, out=np.zeros(span.shape),
                      where=span > 0)
        return i0, i1, np.clip(x, 0.0, 1.0)


def bezier(curves: np.ndarray, x: np.ndarray) -> np.ndarray:
    """y of MMD's cubic Bézier from (0, 0) to (1, 1) at ``x``.

    curves: (..., 4) control points (x1, y1, x2, y2) in [0, 1]; x broadcastable
    to ``curves.shape[:-1]``. The curve's x is monotonic in its parameter (x1,
    x2 in [0, 1]), so the parameter is found by bisection, all at once.
    """
    shape = np.broadcast_shapes(curves.shape[:-1], np.shape(x))
    x1, y1, x2, y2 = (np.broadcast_to(c, shape) for c in np.moveaxis(curves, -1, 0))
    x = np.broadcast_to(x, shape)
    low, high = np.zeros(shape), np.ones(shape)
    for _ in range(_BISECTIONS):
        s = (low + high) / 2
        u = 1 - s
        below = 3 * u * u * s * x1 + 3 * u * s * s * x2 + s ** 3 < x
        low = np.where(below, s, low)
        high = np.where(below, high, s)
    s = (low + high) / 2
    u = 1 - s
    return 3 * u * u * s * y1 + 3 * u * s * s * y2 + s ** 3


def _unmatched(names: tuple[bytes, ...], found: np.ndarray) -> list[str]:
    return [decode_name(names[t]) for t in np.flatnonzero(found < 0)]
