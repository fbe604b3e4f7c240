"""``pipeline verify``'s pose checks for the wide schemas (THA2, THA3).

Every example's pose is regenerable from (seed, model_id, example), so verify
samples each again and checks two things:

- the stored pose is exactly the sample fitted to its model (absent
  parameters 0, shared sides equal; :func:`pipeline.feature_poses.fit_to_model`),
  which catches any damage or mix-up;
- the samples follow their distributions, per parameter: the rotations the
  linear ramp, the irises' rotations and breathing uniform (KS tests);
  iris_small zero a quarter of the time and uniform otherwise; per feature
  (each side's eyebrows and eyes, the mouth) one semantic active a quarter of
  the time with its value on the ramp, and the active values summing to at
  most 1; the rest input's mouth open three quarters of the time.
"""

from __future__ import annotations

import math

import numpy as np

from mmdrender.schemas import SCHEMAS
from pipeline.feature_poses import (
    FEATURES,
    IRIS_SMALL_ZERO,
    ONE_ACTIVE,
    REST_MOUTH_OPEN,
    fit_to_model,
    rest_mouth,
)
from pipeline.poses import (
    PoseSchema,
    example_rng,
    fit_pvalue,
    ramp_fit_pvalue,
    sample_example,
    uniform_fit_pvalue,
)

SUM_TOLERANCE = 1e-5


def binomial_pvalue(successes: int, trials: int, p: float) -> float:
    """Two-sided p-value of a share this far from ``p`` (normal approximation)."""
    if trials == 0:
        return 1.0
    z = (successes - trials * p) / math.sqrt(trials * p * (1 - p))
    return math.erfc(abs(z) / math.sqrt(2))


def check_wide_poses(schema: PoseSchema, seed: int, rows: list[tuple]) -> tuple[dict, list]:
    """Fits and problems for examples ``rows``: (model_id, example, stored pose, rest_mouth,
    realisations) each. Returns ({name: {"sampler", "p_value"}}, [problem, ...])."""
    registry = SCHEMAS[schema.name]
    problems, raw, mouths = [], [], []
    for model_id, example, stored, mouth, realisations in rows:
        sampled = sample_example(schema, seed, model_id, int(example))
        fitted = fit_to_model(registry, sampled[None], realisations)[0]
        if not np.array_equal(fitted, np.asarray(stored, np.float32)):
            problems.append(f"{model_id} example {example}: the stored pose is not the one "
                            "its seed gives")
        expected_mouth = rest_mouth(example_rng(seed, model_id, int(example), purpose="rest"))
        if mouth != expected_mouth:
            problems.append(f"{model_id} example {example}: rest_mouth {mouth} is not the "
                            f"seeded {expected_mouth}")
        raw.append(sampled)
        mouths.append(expected_mouth)
    fits = {}
    if len(raw) < 20:
        return fits, problems
    poses = np.stack(raw)
    names = schema.names
    for column, parameter in enumerate(schema.parameters):
        values = poses[:, column]
        if parameter.sampler in ("linear_ramp", "uniform"):
            p = fit_pvalue(parameter, values)
        elif parameter.sampler == "zero_or_uniform":
            zero = values == 0
            p = min(binomial_pvalue(int(zero.sum()), len(values), IRIS_SMALL_ZERO),
                    uniform_fit_pvalue(values[~zero]) if (~zero).sum() >= 20 else 1.0)
        else:
            continue  # feature parameters: checked per feature below
        fits[parameter.name] = {"sampler": parameter.sampler, "p_value": p}
    for label, columns in _features(names):
        block = np.stack([poses[:, c].max(axis=1) for c in columns], axis=1)
        active = (block > 0).sum(axis=1)
        if (block.sum(axis=1) > 1 + SUM_TOLERANCE).any():
            problems.append(f"{label}: the active morphs sum to more than 1")
        one = active == 1
        p = binomial_pvalue(int(one.sum()), len(block), ONE_ACTIVE)
        if one.sum() >= 20:
            p = min(p, ramp_fit_pvalue(block[one].max(axis=1)))
        fits[label] = {"sampler": "feature", "p_value": p}
    fits["rest_mouth"] = {"sampler": "bernoulli 0.75", "p_value": binomial_pvalue(
        int(sum(mouths)), len(mouths), REST_MOUTH_OPEN)}
    return fits, problems


def _features(names: tuple[str, ...]) -> list[tuple[str, list[list[int]]]]:
    """(label, columns per group) of each feature draw: eyebrows and eyes per side, the mouth.

    A mouth corner group is one semantic with two columns (it acts on both
    sides or one); its value is the larger.
    """
    features = []
    for feature in ("eyebrow", "eye"):
        for side in ("left", "right"):
            features.append((f"{feature}s {side}", [[names.index(f"{g}_{side}")]
                                                   for g in FEATURES[feature]]))
    mouth = [[names.index(g)] if g in names else
             [names.index(f"{g}_left"), names.index(f"{g}_right")] for g in FEATURES["mouth"]]
    return [*features, ("mouth", mouth)]
