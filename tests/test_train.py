"""The bundled trainer: networks, data, loop, resume, evaluation and the CLI (CPU, small)."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")

from conftest_gl import gl_context  # noqa: E402, F401  (a fixture)

from mmdrender.schemas import SCHEMAS  # noqa: E402
from pipeline.cli import main  # noqa: E402
from pipeline.errors import PipelineError  # noqa: E402
from pipeline.poses import PoseSchema  # noqa: E402
from pipeline.shard_reader import open_dataset  # noqa: E402
from pipeline.train import cli as train_cli  # noqa: E402
from pipeline.train import data as tdata  # noqa: E402
from pipeline.train import loop  # noqa: E402
from pipeline.train.evaluate import rmse, ssim  # noqa: E402
from pipeline.train.loop import load_checkpoint, resolve, train  # noqa: E402
from pipeline.train.nets import (  # noqa: E402
    Combiner,
    FaceMorpher,
    FaceRotator,
    MorpherConfig,
    RotatorConfig,
    build,
)

SIZE = 64
SMALL = {"channels": 4, "downsamplings": 2, "res_blocks": 1}
SMALL_ARGS = ["--channels", 4, "--downsamplings", 2, "--res-blocks", 1, "--batch-size", 2,
              "--workers", 0, "--quiet"]


def cli(*args) -> object:
    return CliRunner().invoke(_group(), [str(a) for a in args])


def _group():
    # The lead registers these on `pipeline`; until then, test them on a copy of the group.
    import click

    group = click.Group(commands={**main.commands, "train": train_cli.train_command,
                                  "eval": train_cli.eval_command})
    return group


@pytest.fixture(scope="session")
def dataset(tmp_path_factory, gl_context) -> Path:  # noqa: F811
    """A real dataset of the sample characters at 64 px: 2 examples per model, every split."""
    root = tmp_path_factory.mktemp("train-samples")
    index = root / "models_index.csv"
    result = CliRunner().invoke(main, ["index-samples", str(index), "--samples-dir", str(root)])
    assert result.exit_code == 0, result.output
    out = tmp_path_factory.mktemp("train-data")
    result = CliRunner().invoke(main, [str(a) for a in [
        "dataset", "--index", index, "--root", root, "--out", out, "--size", SIZE,
        "--msaa", 0, "--examples-per-model", 2]])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def rotator_run(dataset, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("rotator-run")
    result = cli("train", "rotator", "--data", dataset, "--run", run, "--steps", 1, *SMALL_ARGS)
    assert result.exit_code == 0, result.output
    return run


def batch(n: int = 2, size: int = 32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 4, size, size, generator=g) * 2 - 1, torch.rand(n, 3, generator=g)


# Written out here, not imported, so that a wrong table in pipeline.train.data fails.
ROTATION = ("head_x", "head_y", "neck_z")
COLUMNS = {"morpher": ("rest", "expression", ("eye_left", "eye_right", "mouth")),
           "rotator": ("expression", "posed", ROTATION),
           "combiner": ("expression", "posed", ROTATION)}


def raw_batch(dataset, split: str, indices, network: str):
    """(source, pose, target) of examples ``indices``, straight from the shards."""
    source_key, target_key, names = COLUMNS[network]
    data = open_dataset(dataset).split(split)
    examples = [data[int(i)] for i in indices]
    columns = [data.schema.index(n) for n in names]
    return (torch.stack([tdata.to_tensor(getattr(e, source_key)) for e in examples]),
            torch.stack([torch.from_numpy(e.pose[columns].astype(np.float32))
                         for e in examples]),
            torch.stack([tdata.to_tensor(getattr(e, target_key)) for e in examples]))


def first_indices(dataset, split: str, k: int, seed: int = 0) -> list[int]:
    """The examples of a run's first k/batch steps: epoch 0 of its seeded order."""
    n = len(open_dataset(dataset).split(split))
    return np.random.default_rng([seed, 0]).permutation(n)[:k].tolist()


def network_of(run) -> torch.nn.Module:
    checkpoint = load_checkpoint(run)
    model = build(checkpoint["network"], checkpoint["model_config"])
    model.load_state_dict(checkpoint["model"])
    return model.eval()


def ssim_reference(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al.'s SSIM of two (C, H, W) images in [0, 1], written out with numpy."""
    from numpy.lib.stride_tricks import sliding_window_view

    x = np.arange(11) - 5
    g = np.exp(-x ** 2 / (2 * 1.5 ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()

    def blur(im):  # (H, W) -> (H - 10, W - 10)
        return (sliding_window_view(im, (11, 11)) * w).sum(axis=(-1, -2))

    values = []
    for p, q in zip(a, b, strict=True):
        mp, mq = blur(p), blur(q)
        vp, vq, cov = blur(p * p) - mp ** 2, blur(q * q) - mq ** 2, blur(p * q) - mp * mq
        c1, c2 = 0.01 ** 2, 0.03 ** 2
        values.append((((2 * mp * mq + c1) * (2 * cov + c2))
                       / ((mp ** 2 + mq ** 2 + c1) * (vp + vq + c2))).mean())
    return float(np.mean(values))


# --- networks ------------------------------------------------------------------------------

def test_default_configs_follow_the_spec():
    config = MorpherConfig()
    assert (config.image_size, config.channels, config.res_blocks) == (256, 64, 6)
    assert (config.bottleneck_size, config.bottleneck_channels) == (32, 512)
    with pytest.raises(PipelineError, match="use --downsamplings 2 or fewer"):
        RotatorConfig(image_size=100)
    # 64 px halved 6 times is a 1x1 bottleneck, which InstanceNorm cannot normalise.
    with pytest.raises(PipelineError, match="at least 2x2.*use --downsamplings 5 or fewer"):
        RotatorConfig(image_size=64, downsamplings=6)
    combiner = build("combiner", {"image_size": 8, "channels": 1, "downsamplings": 2})
    image, pose = batch(n=1, size=8)
    assert combiner.train()(image, image, pose).shape == (1, 4, 8, 8)  # 2x2 is enough


@pytest.mark.parametrize("network", ["morpher", "rotator", "combiner"])
def test_outputs_have_the_input_shape_and_stay_in_range(network):
    model = build(network, {"image_size": 32, **SMALL})
    image, pose = batch()
    with torch.no_grad():
        outputs = model(image, pose) if network != "combiner" else model(image, -image, pose)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    assert len(outputs) == len(type(model).outputs)
    for output in outputs:
        assert output.shape == (2, 4, 32, 32) and output.dtype == torch.float32
        assert output.min() >= -1 and output.max() <= 1
    with pytest.raises(ValueError, match="pose must be"):
        model(image, pose[:, :2]) if network != "combiner" else model(image, image, pose[:, :2])


def test_blocks_are_as_the_spec_says():
    model = FaceMorpher(MorpherConfig(image_size=32, **SMALL))
    conv7 = model.body.body[0][0]
    assert conv7.kernel_size == (7, 7) and conv7.bias is None
    assert model.alpha_mask[0].out_channels == 4 and model.color_change[0].out_channels == 4
    rotator = FaceRotator(RotatorConfig(image_size=32, **SMALL))
    assert rotator.grid_change.out_channels == 2 and rotator.grid_change.kernel_size == (7, 7)
    assert isinstance(build("combiner", {"image_size": 32, **SMALL}), Combiner)


def test_a_rotator_with_zero_flow_resamples_to_the_input():
    rotator = FaceRotator(RotatorConfig(image_size=32, **SMALL))
    torch.nn.init.zeros_(rotator.grid_change.weight)
    torch.nn.init.zeros_(rotator.grid_change.bias)
    image, pose = batch()
    with torch.no_grad():
        _, resampled = rotator(image, pose)
    assert torch.allclose(resampled, image, atol=1e-5)


def test_flow_beyond_the_image_takes_the_border_pixels():
    rotator = FaceRotator(RotatorConfig(image_size=32, **SMALL))
    torch.nn.init.zeros_(rotator.grid_change.weight)
    image, pose = batch()
    with torch.no_grad():
        # Offsets of a whole image width (2 in grid units) sample past the right edge,
        # then past the top: border padding repeats the last column, then the first row.
        rotator.grid_change.bias.copy_(torch.tensor([2.0, 0.0]))
        _, right = rotator(image, pose)
        rotator.grid_change.bias.copy_(torch.tensor([0.0, -2.0]))
        _, top = rotator(image, pose)
    assert torch.allclose(right, image[:, :, :, -1:].expand_as(image), atol=1e-6)
    assert torch.allclose(top, image[:, :, :1, :].expand_as(image), atol=1e-6)


def test_the_morpher_overfits_one_batch():
    torch.manual_seed(0)
    model = FaceMorpher(MorpherConfig(image_size=32, channels=8, downsamplings=2, res_blocks=1))
    source, pose = batch(seed=1)
    target, _ = batch(seed=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.999))
    losses = []
    for _ in range(60):
        loss = torch.nn.functional.l1_loss(model(source, pose), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 2, losses[::10]


# --- data ----------------------------------------------------------------------------------

def test_srgb_decoding_is_the_exact_eotf_and_alpha_stays_linear():
    image = np.zeros((2, 2, 4), np.uint8)
    image[0, 0] = (255, 128, 10, 128)
    x = tdata.to_tensor(image)  # (4, 2, 2)
    assert x.shape == (4, 2, 2) and x.dtype == torch.float32
    assert x[0, 0, 0] == 1 and x[0, 1, 1] == -1 and x[3, 1, 1] == -1
    assert x[1, 0, 0].item() == pytest.approx(2 * ((128 / 255 + 0.055) / 1.055) ** 2.4 - 1)
    assert x[2, 0, 0].item() == pytest.approx(2 * (10 / 255 / 12.92) - 1)
    assert x[3, 0, 0].item() == pytest.approx(2 * 128 / 255 - 1)
    every = np.random.default_rng(0).integers(0, 256, (16, 16, 4), dtype=np.uint8)
    assert np.array_equal(tdata.to_image(tdata.to_tensor(every)), every)


def test_parameters_are_picked_by_name(dataset):
    schema = open_dataset(dataset).schema
    morph = tdata.network_parameters("tha1", "morpher")
    assert morph == ("eye_left", "eye_right", "mouth")
    shuffled = PoseSchema("shuffled", tuple(reversed(schema.parameters)))
    assert [shuffled.names[i] for i in tdata.parameter_columns(shuffled, morph)] == list(morph)
    with pytest.raises(PipelineError, match="lacks"):
        tdata.parameter_columns(PoseSchema("x", schema.parameters[:2]),
                                tdata.network_parameters("tha1", "rotator"))
    with pytest.raises(PipelineError, match="none the trainer knows"):
        tdata.network_parameters("tha9", "morpher")


def test_wide_schemas_split_their_parameters_between_face_and_movement():
    for name, face, movement in (("tha2", 39, 3), ("tha3", 39, 6)):
        morph = tdata.network_parameters(name, "morpher")
        rotations = tdata.network_parameters(name, "rotator")
        assert (len(morph), len(rotations)) == (face, movement)
        assert set(morph) | set(rotations) == set(SCHEMAS[name].names)
        assert "iris_rotation_x" in morph and "head_x" in rotations
    assert tdata.network_parameters("tha3", "rotator")[3:] == ("body_y", "body_z", "breathing")


@pytest.mark.parametrize("network", ["morpher", "rotator", "combiner"])
def test_each_network_gets_its_images_and_pose_columns(dataset, network):
    raw = open_dataset(dataset).split("train")[1]
    # The three images and the two halves of the pose differ, so a swap shows.
    images = [tdata.to_tensor(x) for x in (raw.rest, raw.expression, raw.posed)]
    assert not any(torch.equal(a, b) for i, a in enumerate(images) for b in images[i + 1:])
    source, pose, target = raw_batch(dataset, "train", [1], network)
    assert not torch.equal(raw_batch(dataset, "train", [1], "morpher")[1],
                           raw_batch(dataset, "train", [1], "rotator")[1])
    item = tdata.TripleDataset(dataset, "train", network)[1]
    assert item["source"].shape == (4, SIZE, SIZE) and item["pose"].shape == (3,)
    assert torch.equal(item["source"], source[0]) and torch.equal(item["target"], target[0])
    assert torch.equal(item["pose"], pose[0]) and item["index"] == 1


def test_two_dataloader_workers_return_what_no_workers_return(dataset):
    from torch.utils.data import DataLoader

    items = tdata.TripleDataset(dataset, "train", "morpher")
    order = tdata.EpochOrder(len(items), seed=3)

    def first(workers):
        loader = DataLoader(items, batch_size=2, sampler=order, num_workers=workers)
        out = []
        for i, b in enumerate(loader):
            out.append(b)
            if i == 3:
                break
        return out

    for a, b in zip(first(0), first(2), strict=True):
        for key in a:
            assert torch.equal(a[key], b[key])


def test_the_data_order_is_seeded_and_resumable():
    def take(sampler, k):
        it = iter(sampler)
        return [next(it) for _ in range(k)]

    straight = take(tdata.EpochOrder(5, seed=1), 12)
    assert sorted(straight[:5]) == list(range(5)) and sorted(straight[5:10]) == list(range(5))
    assert take(tdata.EpochOrder(5, seed=1, start=7), 5) == straight[7:12]
    assert straight != take(tdata.EpochOrder(5, seed=2), 12)


def test_validation_uses_the_same_examples_spread_over_the_split():
    picked = loop.validation_indices(1000, 16)
    assert picked == loop.validation_indices(1000, 16) == sorted(set(picked))
    assert len(picked) == 16 and picked[0] < 250 and picked[-1] > 750
    assert loop.validation_indices(5, 16) == [0, 1, 2, 3, 4]

    class Recording(torch.utils.data.Dataset):
        def __init__(self):
            self.seen = []

        def __len__(self):
            return 100

        def __getitem__(self, i):
            self.seen.append(i)
            image, pose = batch(n=1, size=8, seed=i)
            return {"source": image[0], "pose": pose[0], "target": -image[0]}

    data = Recording()
    model = build("morpher", {"image_size": 8, "channels": 1, "downsamplings": 1})
    config = loop.RunConfig("morpher", "unused", batch_size=2, val_batches=3, workers=0)
    first = loop.validate("morpher", model, data, config, torch.device("cpu"), None, None)
    second = loop.validate("morpher", model, data, config, torch.device("cpu"), None, None)
    assert data.seen == 2 * loop.validation_indices(100, 6) and first == second


# --- training ------------------------------------------------------------------------------

@pytest.mark.parametrize("network", ["morpher", "rotator"])
def test_one_step_from_real_shards(dataset, tmp_path, network):
    result = cli("train", network, "--data", dataset, "--run", tmp_path, "--steps", 1,
                 "--val-every", 1, "--val-batches", 1, *SMALL_ARGS)
    assert result.exit_code == 0, result.output
    checkpoint = load_checkpoint(tmp_path)
    assert checkpoint["network"] == network and checkpoint["step"] == 1
    assert checkpoint["model_config"] == asdict(build(network, {"image_size": SIZE,
                                                               **SMALL}).config)
    assert checkpoint["run_config"]["batch_size"] == 2 and checkpoint["examples_seen"] == 2
    assert set(checkpoint["rng"]) >= {"torch", "numpy", "python"}
    assert "optimizer" in checkpoint and "model" in checkpoint
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 1 and np.isfinite(log[-1]["val_loss"])


def test_the_combiner_trains_on_the_frozen_rotators_outputs(dataset, rotator_run, tmp_path,
                                                           monkeypatch):
    before = load_checkpoint(rotator_run)["model"]
    seen = []
    original = Combiner.forward

    def spy(self, first, second, pose):
        seen.append((first.clone(), second.clone(), pose.clone()))
        return original(self, first, second, pose)

    monkeypatch.setattr(Combiner, "forward", spy)
    result = cli("train", "combiner", "--data", dataset, "--run", tmp_path, "--steps", 2,
                 "--rotator", rotator_run, *SMALL_ARGS)
    assert result.exit_code == 0, result.output
    assert load_checkpoint(tmp_path)["run_config"]["rotator"] == str(rotator_run.resolve())
    after = load_checkpoint(rotator_run)["model"]
    assert all(torch.equal(before[k], after[k]) for k in before)
    # Both steps' inputs are the saved rotator's outputs on the examples trained on: the
    # rotator is the one on disk and does not change while the combiner trains.
    source, pose, _ = raw_batch(dataset, "train", first_indices(dataset, "train", 4),
                                "combiner")
    with torch.no_grad():
        first, second = network_of(rotator_run)(source, pose)
    assert len(seen) == 2
    for step, (a, b, p) in enumerate(seen):
        rows = slice(2 * step, 2 * step + 2)
        assert torch.equal(p, pose[rows])
        assert torch.allclose(a, first[rows], atol=1e-6)
        assert torch.allclose(b, second[rows], atol=1e-6)


def test_a_combiner_refuses_a_rotator_that_changed(dataset, rotator_run, tmp_path):
    rotator = tmp_path / "rotator"
    shutil.copytree(rotator_run, rotator)
    run = tmp_path / "combiner"
    result = cli("train", "combiner", "--data", dataset, "--run", run, "--steps", 1,
                 "--rotator", rotator, *SMALL_ARGS)
    assert result.exit_code == 0, result.output
    trained_on = load_checkpoint(rotator)
    assert load_checkpoint(run)["rotator"] == {
        "run": str(rotator.resolve()), "step": trained_on["step"],
        "weights_sha256": loop.weights_sha256(trained_on["model"])}
    original = (rotator / "checkpoint.pt").read_bytes()
    # The rotator trained on: one weight moved, a step further.
    changed = load_checkpoint(rotator)
    changed["step"] += 1
    changed["model"]["grid_change.bias"] += 0.01
    torch.save(changed, rotator / "checkpoint.pt")
    for args in (["train", "combiner", "--data", dataset, "--run", run, "--steps", 2,
                  *SMALL_ARGS],
                 ["eval", "--data", dataset, "--run", run, "--max-examples", 1]):
        result = cli(*args)
        assert result.exit_code == 1
        assert f"error: the rotator in {rotator.resolve()} has changed since this combiner " \
               f"started: it is at step 2" in result.output
        assert "Put that rotator's checkpoint.pt back" in result.output
        assert "Traceback" not in result.output
    assert load_checkpoint(run)["step"] == 1
    (rotator / "checkpoint.pt").write_bytes(original)
    result = cli("eval", "--data", dataset, "--run", run, "--max-examples", 1)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[-1])["examples"] == 1
    assert (run / "eval.json").is_file() and (run / "eval_grid.png").is_file()


def test_the_spec_batch_sizes_are_the_defaults():
    assert loop.RunConfig("morpher", "d").batch_size == loop.RunConfig("rotator", "d").batch_size \
        == 25
    assert loop.RunConfig("combiner", "d", rotator="r").batch_size == 20
    assert loop.RunConfig("combiner", "d", rotator="r", batch_size=3).batch_size == 3


def test_the_combiner_without_a_rotator_is_a_clear_error(dataset, tmp_path):
    result = cli("train", "combiner", "--data", dataset, "--run", tmp_path, *SMALL_ARGS)
    assert result.exit_code == 1
    assert "error: the combiner trains on a trained rotator's outputs" in result.output
    assert "Traceback" not in result.output


@pytest.fixture
def sigterm_guard():
    """SIGTERM that no trainer handles fails the test instead of ending pytest."""
    def unhandled(signum, frame):
        raise AssertionError("the trainer does not handle SIGTERM")

    previous = signal.signal(signal.SIGTERM, unhandled)
    yield unhandled
    signal.signal(signal.SIGTERM, previous)


def sigterm_in_step(monkeypatch, step: int, times: int = 1) -> None:
    """Send SIGTERM ``times`` times during optimiser step number ``step``."""
    original = torch.optim.Adam.step
    calls = []

    def preempted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == step:
            for _ in range(times):
                signal.raise_signal(signal.SIGTERM)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", preempted)


def train_morpher(dataset, folder, steps, **options):
    config, net, checkpoint = resolve(folder, "morpher", {
        "data": str(dataset), "steps": steps, "batch_size": 2, "workers": 0, "val_every": 0,
        "seed": 5, **options}, {"image_size": SIZE, **SMALL})
    train(folder, config, net, checkpoint, progress=False)


def test_sigterm_saves_and_a_resumed_run_is_bit_identical(dataset, tmp_path, monkeypatch,
                                                          sigterm_guard):
    run = functools.partial(train_morpher, dataset)
    run(tmp_path / "straight", 4)
    with monkeypatch.context() as patch:
        sigterm_in_step(patch, 2)
        with pytest.raises(PipelineError, match="stopped by SIGTERM at step 2; .* holds step 2"):
            run(tmp_path / "resumed", 4)
    assert signal.getsignal(signal.SIGTERM) is sigterm_guard
    halfway = load_checkpoint(tmp_path / "resumed")
    assert halfway["step"] == 2 and halfway["examples_seen"] == 4
    # A crash after the checkpoint left records of later steps, the last one torn.
    log = tmp_path / "resumed" / "log.jsonl"
    with open(log, "a") as f:
        f.write('{"step": 3, "loss": 9.0}\n{"step": 4, "lo')
    run(tmp_path / "resumed", 4)
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [2, 4]
    a = load_checkpoint(tmp_path / "straight")
    b = load_checkpoint(tmp_path / "resumed")
    assert a["step"] == b["step"] == 4
    assert not all(torch.equal(halfway["model"][k], b["model"][k]) for k in b["model"])
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(),
                      strict=True):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_second_sigterm_stops_at_once(dataset, tmp_path, monkeypatch, sigterm_guard):
    sigterm_in_step(monkeypatch, 2, times=2)
    with pytest.raises(PipelineError, match="interrupted at step 1; .* holds step 1: rerun"):
        train_morpher(dataset, tmp_path, 3, checkpoint_every=1)
    assert load_checkpoint(tmp_path)["step"] == 1
    assert not (tmp_path / "checkpoint.pt.tmp").exists()


def test_resuming_with_other_settings_is_refused(dataset, tmp_path):
    args = ["train", "morpher", "--data", dataset, "--run", tmp_path, "--steps", 1]
    assert cli(*args, *SMALL_ARGS).exit_code == 0
    result = cli(*args[:-1], 2, *SMALL_ARGS[:-5], "--batch-size", 3, "--quiet")
    assert result.exit_code == 1 and "batch_size 3 (the run has 2)" in result.output
    result = cli("train", "rotator", "--data", dataset, "--run", tmp_path, "--quiet")
    assert result.exit_code == 1 and "holds a morpher run" in result.output


def test_the_perceptual_term_uses_a_local_vgg16_file(dataset, tmp_path):
    torch.manual_seed(1)
    vgg = loop.VGG16Features().eval()  # random weights stand in for VGG16's
    weights = tmp_path / "vgg16.pth"
    torch.save({f"features.{k}": v for k, v in vgg.features.state_dict().items()}, weights)
    result = cli("train", "morpher", "--data", dataset, "--run", tmp_path / "run", "--steps", 1,
                 "--vgg16", weights, "--perceptual-weight", 0.5, *SMALL_ARGS)
    assert result.exit_code == 0, result.output
    # The logged loss of step 1 is that of the seeded initial weights on the first batch:
    # L1 + 0.5 * sum over (RGB, alpha as RGB) x (relu1_2, relu2_2, relu3_3) of the mean
    # squared feature difference, i.e. ||phi(a) - phi(b)||^2 / (C * H * W) per image.
    checkpoint = load_checkpoint(tmp_path / "run")
    torch.manual_seed(checkpoint["run_config"]["seed"])
    model = build("morpher", checkpoint["model_config"])
    source, pose, target = raw_batch(dataset, "train", first_indices(dataset, "train", 2),
                                     "morpher")
    with torch.no_grad():
        output = model(source, pose)
        l1 = (output - target).abs().mean().item()
        perceptual = 0.0
        for a, b in ((output[:, :3], target[:, :3]),
                     (output[:, 3:].repeat(1, 3, 1, 1), target[:, 3:].repeat(1, 3, 1, 1))):
            for fa, fb in zip(vgg(a), vgg(b), strict=True):
                perceptual += ((fa - fb) ** 2).mean().item()
    assert perceptual > 0.01 * l1  # far above the tolerance below
    logged = json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[0])["loss"]
    assert logged == pytest.approx(l1 + 0.5 * perceptual, rel=1e-5, abs=1e-7)
    torch.save({"nothing": torch.zeros(1)}, tmp_path / "bad.pth")
    result = cli("train", "morpher", "--data", dataset, "--run", tmp_path / "bad", "--steps", 1,
                 "--vgg16", tmp_path / "bad.pth", *SMALL_ARGS)
    assert result.exit_code == 1 and "not a VGG16 state dict" in result.output


def test_clear_errors(dataset, tmp_path):
    def error(*args):
        result = cli("train", "morpher", "--data", dataset, "--run", tmp_path / "r", *args)
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
        return result.output

    assert "manifest.json does not exist" in cli(
        "train", "morpher", "--data", tmp_path / "none", "--run", tmp_path / "r").output
    assert "does not match the data's 64-pixel" in error("--image-size", 128, *SMALL_ARGS)
    assert "use --downsamplings 5 or fewer" in error(*SMALL_ARGS, "--downsamplings", 6)
    assert "error: --device mps: PyTorch cannot use it here" in error("--device", "mps",
                                                                      *SMALL_ARGS)
    if not torch.cuda.is_available():
        assert "no CUDA device" in error("--device", "cuda", *SMALL_ARGS)
    assert not (tmp_path / "r").exists()  # a failed start leaves no run folder behind


@pytest.mark.parametrize("device", ["meta", "mps", "xpu", "cuda:7", "gpu"])
def test_devices_that_cannot_train_are_refused(device):
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    with pytest.raises(PipelineError, match=f"{device}.*use (--device )?cpu"):
        loop.check_device(device)
    assert loop.check_device("cpu") == torch.device("cpu")


def test_a_full_disk_at_checkpoint_time_keeps_the_last_checkpoint(dataset, tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    args = ["train", "morpher", "--data", dataset, "--run", tmp_path, *SMALL_ARGS]
    assert cli(*args, "--steps", 1).exit_code == 0
    checkpoint = tmp_path / "checkpoint.pt"
    log = (tmp_path / "log.jsonl").read_text()
    (tmp_path / "checkpoint.pt.tmp").symlink_to("/dev/full")  # every write: ENOSPC
    result = cli(*args, "--steps", 2)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"error: cannot write checkpoint {checkpoint}: No space left on device (at step " \
           f"2; the previous checkpoint is kept" in result.output
    assert load_checkpoint(tmp_path)["step"] == 1
    assert (tmp_path / "log.jsonl").read_text() == log
    assert not (tmp_path / "checkpoint.pt.tmp").exists()


def test_a_damaged_shard_names_the_example_even_from_a_worker(dataset, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(dataset, data)
    shard = data / next(e["file"] for e in open_dataset(data).manifest["shards"]
                        if e["split"] == "train")
    with open(shard, "r+b") as f:
        f.truncate(shard.stat().st_size // 2)
    result = cli("train", "morpher", "--data", data, "--run", tmp_path / "run", "--steps", 1,
                 *SMALL_ARGS[:-3], "--workers", 1, "--quiet")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.output.startswith("error: train example ")
    assert str(shard) in result.output and "pipeline verify" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_two_trainers_cannot_share_a_run_folder(dataset, tmp_path):
    with loop.locked_run(tmp_path):
        result = cli("train", "morpher", "--data", dataset, "--run", tmp_path, *SMALL_ARGS)
        assert result.exit_code == 1
        assert result.output == f"error: another trainer is writing {tmp_path} (it holds " \
                                f"{tmp_path / 'train.lock'}); wait for it to end or pass " \
                                f"another --run\n"
    assert not (tmp_path / "checkpoint.pt").exists()
    with loop.locked_run(tmp_path):  # free again
        pass


def test_the_commands_import_without_pytorch():
    code = ("import sys; sys.modules['torch'] = None; "
            "from pipeline.train.cli import train_command, eval_command; import pipeline.cli; "
            "assert not any(m == 'torch' or m.startswith('torch.') "
            "for m, v in sys.modules.items() if v is not None)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_pytorch_the_commands_say_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    for args in (["train", "morpher"], ["eval"]):
        result = cli(*args, "--data", tmp_path, "--run", tmp_path)
        assert result.exit_code == 1
        assert "error: training needs PyTorch: pip install -e '.[train]'" in result.output


# --- evaluation ----------------------------------------------------------------------------

def test_identical_images_give_rmse_0_and_ssim_1():
    image = (batch(n=3, size=32)[0] + 1) / 2
    assert torch.equal(rmse(image, image), torch.zeros(3, dtype=torch.float64))
    assert torch.allclose(ssim(image, image), torch.ones(3, dtype=torch.float64), atol=1e-12)
    other = (image + 0.1 * torch.randn_like(image)).clamp(0, 1)
    assert (ssim(image, other) < 0.99).all() and (rmse(image, other) > 0.05).all()


def test_rmse_and_ssim_match_a_computation_written_out():
    a = np.random.default_rng(0).random((2, 4, 16, 16))
    b = np.clip(a + 0.2 * np.random.default_rng(1).standard_normal(a.shape), 0, 1)
    got_ssim = ssim(torch.tensor(a), torch.tensor(b)).tolist()
    got_rmse = rmse(torch.tensor(a), torch.tensor(b)).tolist()
    assert got_ssim == pytest.approx([ssim_reference(a[i], b[i]) for i in range(2)], abs=1e-12)
    assert got_rmse == pytest.approx(np.sqrt(((a - b) ** 2).mean(axis=(1, 2, 3))), abs=1e-12)
    assert rmse(torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.5)).item() == 0.5


def test_eval_scores_each_output_against_the_ground_truth(dataset, rotator_run):
    from PIL import Image

    result = cli("eval", "--data", dataset, "--run", rotator_run, "--batch-size", 2)
    assert result.exit_code == 0, result.output
    metrics = json.loads((rotator_run / "eval.json").read_text())
    assert metrics["network"] == "rotator" and metrics["split"] == "test"
    assert metrics["examples"] == len(open_dataset(dataset).split("test"))
    # The same, computed here: the saved rotator on the raw test examples, in [0, 1].
    source, pose, target = raw_batch(dataset, "test", range(metrics["examples"]), "rotator")
    with torch.no_grad():
        outputs = network_of(rotator_run)(source, pose)

    def unit(x):
        return ((x.double().numpy() + 1) / 2).clip(0, 1)

    def scores(image):
        a, b = unit(image), unit(target)
        return {"rmse": np.sqrt(((a - b) ** 2).mean(axis=(1, 2, 3))).mean(),
                "ssim": np.mean([ssim_reference(p, q) for p, q in zip(a, b, strict=True)])}

    expected = {"color_changed": scores(outputs[0]), "resampled": scores(outputs[1])}
    assert metrics["outputs"] == {name: pytest.approx(v, abs=1e-9) for name, v in
                                  expected.items()}
    assert (metrics["rmse"], metrics["ssim"]) == (metrics["outputs"]["resampled"]["rmse"],
                                                  metrics["outputs"]["resampled"]["ssim"])
    # ...and those differ from each other and from scoring the input: a mix-up shows.
    candidates = [*expected.values(), scores(source)]
    assert len({round(c["rmse"], 6) for c in candidates}) == 3
    assert len({round(c["ssim"], 6) for c in candidates}) == 3
    # Beside every figure, the identity baseline: the input image taken as the output.
    base = scores(source)
    assert (metrics["baseline"]["rmse"], metrics["baseline"]["ssim"]) == \
        (pytest.approx(base["rmse"], abs=1e-9), pytest.approx(base["ssim"], abs=1e-9))
    a, b, t = unit(outputs[1]), unit(source), unit(target)
    per_example = (np.sqrt(((a - t) ** 2).mean(axis=(1, 2, 3))),
                   np.sqrt(((b - t) ** 2).mean(axis=(1, 2, 3))))
    assert metrics["beats_baseline"] == pytest.approx((per_example[0] < per_example[1]).mean())
    ids = open_dataset(dataset).split("test").model_ids()
    assert sorted(metrics["per_model"]) == sorted(set(ids))
    for model_id, figures in metrics["per_model"].items():
        mine = np.array(ids) == model_id
        assert figures["examples"] == mine.sum()
        assert figures["baseline_rmse"] == pytest.approx(per_example[1][mine].mean(), abs=1e-9)
    assert set(metrics["far_from_rest"]) == {"large_rotations"}  # the rotator's parameters
    grid = Image.open(rotator_run / "eval_grid.png")
    rows = metrics["grid"]["examples"]
    assert metrics["grid"]["columns"] == ["input", "color_changed", "resampled", "ground truth"]
    assert len(rows) == min(8, metrics["examples"]) and len(set(rows)) == len(rows)
    assert len({ids[i] for i in rows}) == min(len(set(ids)), len(rows))  # across models
    # enlarged: each of the 4 columns is at least 160 pixels wide, each row as tall
    assert grid.size[0] >= 4 * 160 and grid.size[1] >= len(rows) * 160
    result = cli("eval", "--data", dataset, "--run", rotator_run, "--split", "nope")
    assert result.exit_code == 1 and "has no split 'nope'" in result.output


def test_the_grid_spreads_over_models_and_starts_with_each_models_extremes():
    from pipeline.train.evaluate import face_crop, far_from_rest, grid_examples

    ids = ["a"] * 4 + ["b"] * 3 + ["c"]
    poses = np.array([[0.1], [0.9], [0.5], [0.0], [-1.0], [0.2], [0.3], [0.4]])
    assert grid_examples(ids, poses, 8) == [1, 4, 7, 3, 5, 2, 6, 0]
    assert grid_examples(ids, poses, 3) == [1, 4, 7]
    # measured from the rest input: THA1's has the mouth open, so mouth 1 is near rest
    from pipeline.train.evaluate import rest_values

    rest = rest_values("tha1", ("eye_left", "eye_right", "mouth"))
    assert rest.tolist() == [0.0, 0.0, 1.0]
    assert grid_examples(["a", "a"], np.array([[0, 0, 1], [0.7, 0.7, 0.2]]), 1, rest) == [1]
    wide = far_from_rest("tha3", ("eye_surprised_left", "eye_wink_left"),
                         np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert wide["eyes_closed"].tolist() == [False, True]  # wide open is not closed
    tha1 = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 0.1], [0.5, 0.6, 0.5]])
    masks = far_from_rest("tha1", ("eye_left", "eye_right", "mouth"), tha1)
    assert masks["eyes_closed"].tolist() == [True, False, False]
    assert masks["mouth_closed"].tolist() == [False, True, False]
    turns = far_from_rest("tha1", ("head_x", "head_y", "neck_z"),
                          np.array([[0.1, -0.6, 0.0], [0.2, 0.3, 0.4]]))
    assert turns["large_rotations"].tolist() == [True, False]
    image = np.arange(64 * 64).reshape(64, 64)
    assert face_crop(image, "head").shape == (48, 48) and face_crop(image, "head")[0, 0] == \
        image[8, 8]
    assert face_crop(np.zeros((512, 512)), "upper_body").shape == (192, 192)


def test_eval_of_a_perfect_network_gives_rmse_0_and_ssim_1(dataset, tmp_path, monkeypatch):
    from pipeline.train import evaluate

    result = cli("train", "morpher", "--data", dataset, "--run", tmp_path, "--steps", 1,
                 *SMALL_ARGS)
    assert result.exit_code == 0, result.output
    # The morpher's output is alpha * input + (1 - alpha) * change: alpha = 1 copies the
    # input, so evaluating it against its own input as ground truth must be perfect.
    monkeypatch.setattr(evaluate, "forward", lambda network, model, source, pose, rotator:
                        (source.clone(),))
    metrics = evaluate.evaluate_run(dataset, tmp_path, split="validation", batch_size=2)
    assert metrics["rmse"] > 0  # rest vs expression differ
    monkeypatch.setattr(tdata, "IMAGES", {**tdata.IMAGES, "morpher": ("rest", "rest")})
    metrics = evaluate.evaluate_run(dataset, tmp_path, split="validation", batch_size=2)
    assert metrics["rmse"] == 0 and metrics["ssim"] == pytest.approx(1, abs=1e-12)
    assert (tmp_path / "eval_grid.png").is_file()


TRAIN_ARGS = [a for a in SMALL_ARGS if a != "--quiet"]


def test_training_reports_steps_and_the_baseline_in_plain_lines(dataset, tmp_path):
    """Not a terminal (a log file, CI): whole lines, no carriage returns; every validation
    loss has the identity baseline beside it, in the log and on screen."""
    result = cli("train", "morpher", "--data", dataset, "--run", tmp_path, "--steps", 4,
                 "--val-every", 2, "--val-batches", 1, *TRAIN_ARGS)
    assert result.exit_code == 0, result.output
    assert "\r" not in result.stderr
    lines = result.stderr.splitlines()
    assert any(line.startswith("step 2: loss ") and "(output = input: " in line
               for line in lines), lines
    progress = [line for line in lines if line.startswith("training morpher: ")]
    assert progress and progress[-1].startswith("training morpher: 4/4 step (100%)")
    assert "loss " in progress[-1] and "examples_per_s " in progress[-1]
    assert re.search(r"validation loss [\d.]+ \(output = input: [\d.]+\)", result.stdout)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    validated = [r for r in log if "val_loss" in r]
    assert [r["step"] for r in validated] == [2, 4]
    assert all(np.isfinite(r["val_baseline"]) and r["val_baseline"] != r["val_loss"]
               for r in validated)


def test_training_without_a_validation_split_says_so_at_the_start(dataset, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(dataset, data)
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["shards"] = [s for s in manifest["shards"] if s["split"] != "validation"]
    manifest["splits"].pop("validation")
    (data / "manifest.json").write_text(json.dumps(manifest))
    result = cli("train", "morpher", "--data", data, "--run", tmp_path / "run", "--steps", 1,
                 *TRAIN_ARGS)
    assert result.exit_code == 0, result.output
    first = result.stderr.splitlines()[0]
    assert "has no validation split: training without validation" in first
    off = cli("train", "morpher", "--data", dataset, "--run", tmp_path / "run2", "--steps", 1,
              "--val-every", 0, *TRAIN_ARGS)
    assert "validation is off (--val-every 0)" in off.stderr


def test_eval_prints_every_figure_beside_the_baseline(dataset, rotator_run):
    result = cli("eval", "--data", dataset, "--run", rotator_run, "--batch-size", 2)
    assert result.exit_code == 0, result.output
    metrics = json.loads((rotator_run / "eval.json").read_text())
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert printed["baseline_rmse"] == metrics["baseline"]["rmse"]
    assert printed["beats_baseline"] == metrics["beats_baseline"]
    lines = result.stderr.splitlines()
    head = next(line for line in lines if line.startswith("rotator at step 1 on "))
    assert f"RMSE {metrics['rmse']:.4f} (output = input: {metrics['baseline']['rmse']:.4f})" \
        in head and f"on {metrics['beats_baseline']:.0%}" in head
    assert any(line.startswith("  large rotations (") for line in lines)
    for model_id in metrics["per_model"]:
        assert any(line.startswith(f"  model {model_id} (") for line in lines)


def test_cpu_defaults_follow_the_device_and_the_image_size(dataset, tmp_path, monkeypatch):
    assert loop.device_defaults("cuda:0", 64) == {}  # a GPU keeps the paper's
    assert loop.device_defaults("cpu", 256, cores=16) == {}
    assert loop.device_defaults("cpu", 64, cores=16) == {"res_blocks": 2}
    assert loop.device_defaults("cpu", 512, cores=2) == {"workers": 0}
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    result = cli("train", "morpher", "--data", dataset, "--run", tmp_path, "--steps", 1,
                 "--channels", 4, "--downsamplings", 2, "--batch-size", 2, "--quiet")
    assert result.exit_code == 0, result.output
    assert "note: on the CPU with 64-pixel images: --res-blocks 2, --workers 0" in result.stderr
    checkpoint = load_checkpoint(tmp_path)
    assert checkpoint["model_config"]["res_blocks"] == 2
    assert checkpoint["run_config"]["workers"] == 0
    given = cli("train", "morpher", "--data", dataset, "--run", tmp_path / "given", "--steps", 1,
                "--channels", 4, "--downsamplings", 2, "--batch-size", 2, "--res-blocks", 1,
                "--quiet")
    assert given.exit_code == 0, given.output
    assert "--res-blocks 2" not in given.stderr and "--workers 0" in given.stderr
    assert load_checkpoint(tmp_path / "given")["model_config"]["res_blocks"] == 1
    # given values win, and a resumed run keeps what it started with
    again = cli("train", "morpher", "--data", dataset, "--run", tmp_path, "--steps", 2,
                "--channels", 4, "--downsamplings", 2, "--batch-size", 2, "--quiet")
    assert again.exit_code == 0, again.output
    assert "note: on the CPU" not in again.stderr
    assert load_checkpoint(tmp_path)["model_config"]["res_blocks"] == 2


def test_the_readme_reader_example_runs_and_yields_what_it_says(dataset):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- reader-example")[1].split("```python\n")[1].split("```")[0]
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    triples = namespace["Triples"](dataset, "train")
    item = triples[0]
    assert set(item) == {"rest", "expression", "posed", "pose", "model_id"}
    for name in ("rest", "expression", "posed"):
        assert item[name].shape == (4, SIZE, SIZE) and 0 <= item[name].min() <= 1
    assert item["pose"].shape == (len(triples.parameters),)
    assert item["model_id"] in open_dataset(dataset).split("train").model_ids()
    loader = torch.utils.data.DataLoader(triples, batch_size=2)
    batch = next(iter(loader))
    assert batch["rest"].shape == (2, 4, SIZE, SIZE) and len(batch["model_id"]) == 2


def test_the_rotators_baseline_counts_both_its_outputs(dataset, rotator_run, monkeypatch):
    """A rotator handing back its input for both outputs scores exactly the baseline."""
    model, checkpoint = loop.load_network(rotator_run)
    data = tdata.TripleDataset(dataset, "validation", "rotator")
    config = loop.RunConfig(network="rotator", data=str(dataset), batch_size=2, val_batches=1,
                            workers=0)
    monkeypatch.setattr(loop, "forward", lambda network, model, source, pose, rotator:
                        (source.clone(), source.clone()))
    loss, baseline = loop.validate("rotator", model, data, config, torch.device("cpu"), None,
                                   None)
    assert loss == pytest.approx(baseline) and baseline > 0
