"""Pose schema, sampling distributions, per-example seeding and the KS helper."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from mmdrender.pose import POSE_PARAMETERS, RANGES
from pipeline.errors import PipelineError
from pipeline.poses import (
    THA1,
    PoseParameter,
    PoseSchema,
    example_rng,
    ramp_fit_pvalue,
    sample,
    sample_example,
    sample_examples,
    uniform_fit_pvalue,
)

THA2_EYEBROWS = PoseSchema("tha2_part", (
    PoseParameter("eyebrow_troubled_left", 0.0, 1.0),
    PoseParameter("iris_rotation_x", -1.0, 1.0, "rotation", 20.0, "uniform"),
    PoseParameter("head_x", -1.0, 1.0, "rotation", 15.0, "linear_ramp"),
))


def test_tha1_matches_the_spec_and_the_renderer():
    assert THA1.names == POSE_PARAMETERS
    for p in THA1.parameters:
        assert (p.low, p.high) == RANGES[p.name]
    morphs = THA1.parameters[:3]
    rotations = THA1.parameters[3:]
    assert all(p.kind == "morph" and p.sampler == "uniform" and p.degrees is None
               for p in morphs)
    assert all(p.kind == "rotation" and p.sampler == "linear_ramp" and p.degrees == 15.0
               for p in rotations)


@pytest.mark.parametrize("schema", [THA1, THA2_EYEBROWS], ids=["tha1", "wider"])
def test_schema_json_round_trip(schema):
    text = json.dumps(schema.to_dict())
    again = PoseSchema.from_dict(json.loads(text))
    assert again == schema
    assert again.names == schema.names


def test_schema_from_dict_rejects_malformed():
    data = THA1.to_dict()
    with pytest.raises(PipelineError, match="unknown keys"):
        PoseSchema.from_dict({**data, "parameters": [{**data["parameters"][0], "bogus": 1}]})
    with pytest.raises(PipelineError, match="keys"):
        PoseSchema.from_dict({"parameters": data["parameters"]})
    with pytest.raises(PipelineError, match="repeats"):
        PoseSchema.from_dict({**data, "parameters": data["parameters"] * 2})
    with pytest.raises(PipelineError, match="sampler"):
        PoseSchema.from_dict({**data, "parameters": [{**data["parameters"][0],
                                                      "sampler": "gaussian"}]})


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="a", low=1.0, high=0.0), "below"),
    (dict(name="a", low=0.0, high=float("nan")), "finite"),
    (dict(name="a b", low=0.0, high=1.0), "identifier"),
    (dict(name="a", low=-1.0, high=1.0, kind="rotation"), "degrees"),
    (dict(name="a", low=0.0, high=1.0, degrees=15.0), "no degrees"),
    (dict(name="a", low=0.0, high=1.0, sampler="linear_ramp"), "symmetric"),
    (dict(name="a", low=0.0, high=1.0, kind="bone"), "kind"),
])
def test_parameter_validation(kwargs, match):
    with pytest.raises(PipelineError, match=match):
        PoseParameter(**kwargs)


def test_sample_shape_dtype_and_ranges():
    poses = sample(THA1, np.random.default_rng(1), 5000)
    assert poses.shape == (5000, 6) and poses.dtype == np.float32
    assert not THA1.out_of_range(poses).any()
    assert (poses[:, :3] >= 0).all() and (poses[:, 3:] < 0).any()
    assert sample(THA1, np.random.default_rng(1), 0).shape == (0, 6)


def test_ramp_sampler_passes_the_ks_test_and_a_uniform_one_fails():
    poses = sample(THA1, np.random.default_rng(2024), 20_000)
    for column in range(3, 6):
        assert ramp_fit_pvalue(poses[:, column]) > 1e-3
    for column in range(3):
        assert uniform_fit_pvalue(poses[:, column]) > 1e-3
    uniform = np.random.default_rng(2024).uniform(-1, 1, 20_000)
    assert ramp_fit_pvalue(uniform) < 1e-6
    assert uniform_fit_pvalue(poses[:, 3], -1.0, 1.0) < 1e-6
    # Both signs equally likely: the ramp is symmetric.
    assert abs(float((poses[:, 3:] > 0).mean()) - 0.5) < 0.02


def test_ks_pvalue_against_known_values():
    # The Kolmogorov distribution's 5% point is lambda = 1.358; a sample whose
    # empirical CDF exactly matches F has D = 1/(2n) and p = 1.
    n = 10_000
    exact = np.sqrt((np.arange(n) + 0.5) / n)
    assert ramp_fit_pvalue(exact) == 1.0
    d = 1.358 / (np.sqrt(n) + 0.12 + 0.11 / np.sqrt(n))
    shifted = np.sqrt(np.clip((np.arange(n) + 0.5) / n + d - 0.5 / n, 0, 1))
    assert ramp_fit_pvalue(shifted) == pytest.approx(0.05, abs=0.002)
    with pytest.raises(PipelineError):
        ramp_fit_pvalue([])
    with pytest.raises(PipelineError):
        ramp_fit_pvalue([0.1, np.nan])


def test_single_and_batched_examples_agree():
    batched = sample_examples(THA1, 7, "miku/miku.pmx", 3, 40)
    single = np.stack([sample_example(THA1, 7, "miku/miku.pmx", e) for e in range(3, 40)])
    np.testing.assert_array_equal(batched, single)
    assert batched.dtype == np.float32
    reversed_order = np.stack([sample_example(THA1, 7, "miku/miku.pmx", e)
                               for e in reversed(range(3, 40))])[::-1]
    np.testing.assert_array_equal(reversed_order, single)
    assert sample_examples(THA1, 7, "miku/miku.pmx", 5, 5).shape == (0, 6)


def test_examples_differ_by_key():
    base = sample_example(THA1, 7, "a/model.pmx", 0)
    assert not np.array_equal(base, sample_example(THA1, 8, "a/model.pmx", 0))
    assert not np.array_equal(base, sample_example(THA1, 7, "b/model.pmx", 0))
    assert not np.array_equal(base, sample_example(THA1, 7, "a/model.pmx", 1))
    poses = sample_examples(THA1, 7, "a/model.pmx", 0, 100)
    assert np.unique(poses, axis=0).shape[0] == 100


def test_streams_are_separated_by_purpose():
    a = example_rng(1, "m", 0).random(4)
    b = example_rng(1, "m", 0, purpose="lights").random(4)
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, example_rng(1, "m", 0).random(4))


def test_examples_are_the_same_in_another_process():
    """The key hash is stable: a fresh interpreter (new hash seed) draws the same poses."""
    code = ("import sys; from pipeline.poses import THA1, sample_examples; "
            "sys.stdout.write(sample_examples(THA1, 7, 'ミク/miku.pmx', 0, 20).tobytes().hex())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONHASHSEED": "12345", "PATH": ""}).stdout
    here = sample_examples(THA1, 7, "ミク/miku.pmx", 0, 20)
    assert bytes.fromhex(out) == here.tobytes()


def test_pinned_values():
    """A change of hashing or draw layout silently changes every dataset: pin one pose."""
    pose = sample_example(THA1, 0, "pinned/model.pmx", 0)
    pinned = [0.9018969535827637, 0.6946734189987183, 0.974785327911377,
              0.46982282400131226, -0.3310423493385315, 0.9439733028411865]
    assert pose.tolist() == pinned


@pytest.mark.parametrize("args", [(-1, "m", 0), (1.5, "m", 0), (True, "m", 0),
                                  (1, "", 0), (1, 3, 0), (1, "m", -1)])
def test_bad_keys(args):
    with pytest.raises(PipelineError):
        example_rng(*args)


def test_as_mapping():
    pose = sample_example(THA1, 0, "m", 0)
    mapping = THA1.as_mapping(pose)
    assert list(mapping) == list(POSE_PARAMETERS)
    assert mapping["neck_z"] == float(pose[5])
    with pytest.raises(PipelineError):
        THA1.as_mapping(pose[:5])
