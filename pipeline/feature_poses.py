"""THA2 and THA3/THA4 pose sampling (wide-schemas.md section 3), and the schemas' sampling side.

Groups are independent. For each *feature* (the eyebrows and the eyes of each
side of the face, and the mouth) one semantic is active with probability 0.25,
its value drawn with density growing linearly on [0, 1] (``x = sqrt(u)``), and
two with probability 0.75, the first uniform on [0, 1] and the second uniform
on [0, 1 - first]: the morphs acting on one feature sum to at most 1. The
mouth's corner groups have sides: an active corner acts on both sides with one
value, or on the left or the right alone, a third of the time each.
iris_small is 0 a quarter of the time, else uniform, per side; the irises'
rotations are uniform on [-1, 1]; the head and body rotations follow THA1's
linear ramp; breathing is uniform on [0, 1]. The rest (input) image has
mouth_aaa = 1 for 75% of examples (:func:`rest_mouth`), otherwise all zero.

Each example reads one fixed block of :data:`BLOCK` uniforms from its own
generator (:func:`pipeline.poses.example_rng`), so any example is regenerable
alone. :func:`fit_to_model` then holds what a model cannot show: absent
parameters at 0, a both-sides morph that cannot be cut with one value on both
sides; the shards store the pose as rendered and say per model how each
parameter is realised.
"""

from __future__ import annotations

import numpy as np

from mmdrender.schema_pose import BodySettings
from mmdrender.schemas import GROUPS, SCHEMAS, Schema, group
from pipeline.poses import THA1, PoseParameter, PoseSchema

BLOCK = 48  # uniforms per example, whichever wide schema
REST_MOUTH_OPEN = 0.75  # share of rest images with mouth_aaa = 1
ONE_ACTIVE = 0.25  # share of feature draws with one active semantic (else two)
IRIS_SMALL_ZERO = 0.25
#: per feature: its groups in schema order; eyebrows and eyes are drawn per side
FEATURES = {
    "eyebrow": tuple(g.name for g in GROUPS if g.category == "eyebrow"),
    "eye": tuple(g.name for g in GROUPS if g.category == "eye"),
    "mouth": tuple(g.name for g in GROUPS if g.category == "mouth"),
}


def wide_pose_schema(name: str, settings: BodySettings | None = None) -> PoseSchema:
    """The sampling schema of ``tha2`` or ``tha3`` (body degrees from ``settings``)."""
    settings = settings or BodySettings()
    body = {"body_y": settings.body_y_degrees, "body_z": settings.body_z_degrees}
    parameters = []
    for p in SCHEMAS[name].parameters:
        if p.category in ("eyebrow", "eye", "mouth"):
            parameters.append(PoseParameter(p.name, p.low, p.high, "morph", None, "feature"))
        elif p.category == "iris_morph":
            parameters.append(PoseParameter(p.name, p.low, p.high, "morph", None,
                                            "zero_or_uniform"))
        elif p.category == "iris_rotation":
            parameters.append(PoseParameter(p.name, p.low, p.high, "calibrated", None,
                                            "uniform"))
        elif p.category == "breathing":
            parameters.append(PoseParameter(p.name, p.low, p.high, "amount", None, "uniform"))
        else:
            degrees = body.get(p.name, p.degrees)
            parameters.append(PoseParameter(p.name, p.low, p.high, "rotation", degrees,
                                            "linear_ramp"))
    return PoseSchema(name, tuple(parameters))


def sampling_schema(name: str, settings: BodySettings | None = None) -> PoseSchema:
    """The sampling schema of registry schema ``name`` (tha1, tha2 or tha3)."""
    return THA1 if name == "tha1" else wide_pose_schema(name, settings)


def _feature(u: np.ndarray, groups: tuple[str, ...]) -> dict[str, np.ndarray]:
    """(n, 5) uniforms -> {group: (n,) value} for one feature draw."""
    k = len(groups)
    one = u[:, 0] < ONE_ACTIVE
    first = np.minimum((u[:, 1] * k).astype(int), k - 1)
    second = np.minimum((u[:, 3] * (k - 1)).astype(int), k - 2)
    second = second + (second >= first)  # a different group
    first_value = np.where(one, np.sqrt(u[:, 2]), u[:, 2])
    second_value = np.where(one, 0.0, u[:, 4] * (1.0 - u[:, 2]))
    values = {}
    for i, name in enumerate(groups):
        values[name] = np.where(first == i, first_value, 0.0) + \
            np.where(second == i, second_value, 0.0)
    return values


def transform(schema: PoseSchema, uniforms: np.ndarray) -> np.ndarray:
    """(n, BLOCK) uniforms -> (n, P) float32 poses of a wide schema (see the module doc)."""
    u = np.asarray(uniforms, dtype=np.float64)
    n = u.shape[0]
    values: dict[str, np.ndarray] = {}
    at = 1  # column 0: the rest image's mouth (rest_mouth reads its own stream)
    for feature in ("eyebrow", "eye"):
        for side in ("left", "right"):
            drawn = _feature(u[:, at:at + 5], FEATURES[feature])
            at += 5
            values.update({f"{g}_{side}": v for g, v in drawn.items()})
    for side in ("left", "right"):
        values[f"iris_small_{side}"] = np.where(u[:, at] < IRIS_SMALL_ZERO, 0.0, u[:, at + 1])
        at += 2
    drawn = _feature(u[:, at:at + 5], FEATURES["mouth"])
    sides = u[:, at + 5]
    at += 6
    for g, v in drawn.items():
        if group(g).arity == 1:
            values[g] = v
        else:  # both sides alike, the left alone or the right alone: a third each
            values[f"{g}_left"] = np.where(sides < 2 / 3, v, 0.0)
            values[f"{g}_right"] = np.where((sides < 1 / 3) | (sides >= 2 / 3), v, 0.0)
    for name in ("iris_rotation_x", "iris_rotation_y"):
        values[name] = 2.0 * u[:, at] - 1.0
        at += 1
    for name in ("head_x", "head_y", "neck_z", "body_y", "body_z"):
        values[name] = np.where(u[:, at + 1] < 0.5, -1.0, 1.0) * np.sqrt(u[:, at])
        at += 2
    values["breathing"] = u[:, at]
    at += 1
    assert at <= BLOCK
    out = np.stack([values[name] if name in values else np.zeros(n) for name in schema.names],
                   axis=1).astype(np.float32)
    return np.clip(out, schema.lows, schema.highs)


def rest_mouth(rng: np.random.Generator) -> int:
    """1 when the example's rest (input) image has its mouth open (mouth_aaa = 1), else 0."""
    return int(rng.random() < REST_MOUTH_OPEN)


def fit_to_model(schema: Schema, poses: np.ndarray, realisations: tuple[str, ...]
                 ) -> np.ndarray:
    """``poses`` (n, P) as one model can show them: absent parameters 0, shared sides equal.

    A group whose both-sides morph cannot be cut (shared) takes its left side's
    value on the right too; where that makes a right eyebrow's (or eye's)
    morphs sum to more than 1, its other, unshared morphs are scaled down (the
    shared values, copies of the left's, sum to at most 1 themselves).
    """
    poses = np.array(poses, dtype=np.float32, copy=True)
    names = schema.names
    index = {name: i for i, name in enumerate(names)}
    for i, how in enumerate(realisations):
        if how == "absent":
            poses[:, i] = 0.0
    shared = [i for i, how in enumerate(realisations)
              if how == "shared" and schema.parameters[i].side == "right"]
    for i in shared:
        poses[:, i] = poses[:, index[f"{schema.parameters[i].group}_left"]]
    for category in ("eyebrow", "eye"):  # the mouth is one feature for both sides
        feature = [i for i, p in enumerate(schema.parameters)
                   if p.category == category and p.side == "right"]
        tied = [i for i in feature if i in shared]
        free = [i for i in feature if i not in shared]
        if not tied or not free:
            continue
        room = np.clip(1.0 - poses[:, tied].sum(axis=1), 0.0, 1.0)
        rest = poses[:, free].sum(axis=1)
        over = room < rest
        scale = np.divide(room, rest, out=np.ones_like(rest), where=over & (rest > 0))
        poses[:, free] *= scale[:, None]
    return poses
