"""The bundled trainer: networks, data, loop, resume, evaluation and the CLI (CPU, small)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")

from conftest_gl import gl_context  # noqa: E402, F401  (a fixture)

from pipeline.cli import main  # noqa: E402
from pipeline.errors import PipelineError  # noqa: E402
from pipeline.poses import PoseSchema  # noqa: E402
from pipeline.shards import open_dataset  # noqa: E402
from pipeline.train import cli as train_cli  # noqa: E402
from pipeline.train import data as tdata  # noqa: E402
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


# --- networks ------------------------------------------------------------------------------

def test_default_configs_follow_the_spec():
    config = MorpherConfig()
    assert (config.image_size, config.channels, config.res_blocks) == (256, 64, 6)
    assert (config.bottleneck_size, config.bottleneck_channels) == (32, 512)
    with pytest.raises(PipelineError, match="divisible"):
        RotatorConfig(image_size=100)


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
    shuffled = PoseSchema("shuffled", tuple(reversed(schema.parameters)))
    assert [shuffled.names[i] for i in tdata.parameter_columns(shuffled, tdata.MORPH_PARAMS)] \
        == list(tdata.MORPH_PARAMS)
    with pytest.raises(PipelineError, match="lacks"):
        tdata.parameter_columns(PoseSchema("x", schema.parameters[:2]), tdata.ROTATION_PARAMS)
    items = tdata.TripleDataset(dataset, "train", "rotator")
    raw = open_dataset(dataset).split("train")[0]
    item = items[0]
    assert item["source"].shape == (4, SIZE, SIZE) and item["pose"].shape == (3,)
    assert item["pose"].tolist() == [raw.pose[schema.index(n)] for n in tdata.ROTATION_PARAMS]
    assert torch.equal(item["target"], tdata.to_tensor(raw.posed))
    morph = tdata.TripleDataset(dataset, "train", "morpher")[0]
    assert torch.equal(morph["source"], tdata.to_tensor(raw.rest))
    assert torch.equal(morph["target"], tdata.to_tensor(raw.expression))


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


def test_the_combiner_trains_on_a_frozen_rotator(dataset, rotator_run, tmp_path):
    before = load_checkpoint(rotator_run)["model"]
    result = cli("train", "combiner", "--data", dataset, "--run", tmp_path, "--steps", 1,
                 "--rotator", rotator_run, *SMALL_ARGS)
    assert result.exit_code == 0, result.output
    assert load_checkpoint(tmp_path)["run_config"]["rotator"] == str(rotator_run.resolve())
    after = load_checkpoint(rotator_run)["model"]
    assert all(torch.equal(before[k], after[k]) for k in before)
    result = cli("eval", "--data", dataset, "--run", tmp_path, "--max-examples", 1)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[-1])["examples"] == 1
    assert (tmp_path / "eval.json").is_file() and (tmp_path / "eval_grid.png").is_file()


def test_the_combiner_without_a_rotator_is_a_clear_error(dataset, tmp_path):
    result = cli("train", "combiner", "--data", dataset, "--run", tmp_path, *SMALL_ARGS)
    assert result.exit_code == 1
    assert "error: the combiner trains on a trained rotator's outputs" in result.output
    assert "Traceback" not in result.output


def test_resume_is_bit_identical(dataset, tmp_path):
    def run(folder, steps):
        config, net, checkpoint = resolve(folder, "morpher", {
            "data": str(dataset), "steps": steps, "batch_size": 2, "workers": 0,
            "val_every": 0, "seed": 5}, {"image_size": SIZE, **SMALL})
        train(folder, config, net, checkpoint, progress=False)

    run(tmp_path / "straight", 4)
    run(tmp_path / "resumed", 2)
    halfway = load_checkpoint(tmp_path / "resumed")
    assert halfway["step"] == 2 and halfway["examples_seen"] == 4
    run(tmp_path / "resumed", 4)
    a = load_checkpoint(tmp_path / "straight")
    b = load_checkpoint(tmp_path / "resumed")
    assert a["step"] == b["step"] == 4
    assert not all(torch.equal(halfway["model"][k], b["model"][k]) for k in b["model"])
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(),
                      strict=True):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resuming_with_other_settings_is_refused(dataset, tmp_path):
    args = ["train", "morpher", "--data", dataset, "--run", tmp_path, "--steps", 1]
    assert cli(*args, *SMALL_ARGS).exit_code == 0
    result = cli(*args[:-1], 2, *SMALL_ARGS[:-5], "--batch-size", 3, "--quiet")
    assert result.exit_code == 1 and "batch_size 3 (the run has 2)" in result.output
    result = cli("train", "rotator", "--data", dataset, "--run", tmp_path, "--quiet")
    assert result.exit_code == 1 and "holds a morpher run" in result.output


def test_the_perceptual_term_uses_a_local_vgg16_file(dataset, tmp_path):
    from pipeline.train.loop import VGG16Features

    weights = tmp_path / "vgg16.pth"
    torch.save({f"features.{k}": v for k, v in VGG16Features().features.state_dict().items()},
               weights)
    result = cli("train", "morpher", "--data", dataset, "--run", tmp_path / "run", "--steps", 1,
                 "--vgg16", weights, *SMALL_ARGS)
    assert result.exit_code == 0, result.output
    torch.save({"nothing": torch.zeros(1)}, tmp_path / "bad.pth")
    result = cli("train", "morpher", "--data", dataset, "--run", tmp_path / "bad", "--steps", 1,
                 "--vgg16", tmp_path / "bad.pth", *SMALL_ARGS)
    assert result.exit_code == 1 and "not a VGG16 state dict" in result.output


def test_clear_errors(dataset, tmp_path):
    result = cli("train", "morpher", "--data", tmp_path / "none", "--run", tmp_path / "r")
    assert result.exit_code == 1 and "manifest.json does not exist" in result.output
    result = cli("train", "morpher", "--data", dataset, "--run", tmp_path / "r",
                 "--image-size", 128, *SMALL_ARGS)
    assert result.exit_code == 1 and "does not match the data's 64-pixel" in result.output
    if not torch.cuda.is_available():
        result = cli("train", "morpher", "--data", dataset, "--run", tmp_path / "r",
                     "--device", "cuda", *SMALL_ARGS)
        assert result.exit_code == 1 and "no CUDA device" in result.output


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


def test_eval_writes_metrics_and_a_grid(dataset, rotator_run):
    from PIL import Image

    result = cli("eval", "--data", dataset, "--run", rotator_run, "--batch-size", 2)
    assert result.exit_code == 0, result.output
    metrics = json.loads((rotator_run / "eval.json").read_text())
    assert metrics["network"] == "rotator" and metrics["split"] == "test"
    assert metrics["examples"] == len(open_dataset(dataset).split("test"))
    assert set(metrics["outputs"]) == {"color_changed", "resampled"}
    assert 0 <= metrics["rmse"] <= 1 and -1 <= metrics["ssim"] <= 1
    grid = Image.open(rotator_run / "eval_grid.png")
    assert grid.size == (metrics["examples"] * SIZE, 4 * SIZE)  # input, 2 outputs, truth
    result = cli("eval", "--data", dataset, "--run", rotator_run, "--split", "nope")
    assert result.exit_code == 1 and "has no split 'nope'" in result.output


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
