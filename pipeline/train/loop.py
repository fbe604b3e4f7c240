"""The training loop (spec section 8): Adam, L1 (+ optional VGG16 perceptual), checkpoints.

One flat loop, :func:`train`, for all three networks. A run lives in its own
folder: ``checkpoint.pt`` (written atomically) and ``log.jsonl`` (one line per
validation or checkpoint). The checkpoint holds the network's name and
config, the run config, the step, the model and optimiser states, the RNG
states (torch, numpy, python) and the number of examples seen, so a rerun
on the same folder resumes exactly where the last checkpoint left off: the
data order is a pure function of the seed and the position (see
:class:`~pipeline.train.data.EpochOrder`), and on the CPU the weights after
2 + 2 steps are bit-identical to 4 straight steps.

Losses: the morpher's output, both rotator outputs and the combiner's final
image against the ground truth, L1 on pixels; with a VGG16 weights file, plus
the feature reconstruction loss of Johnson et al. on relu1_2, relu2_2 and
relu3_3, on the RGB image and on the alpha channel copied to three channels,
each term ``weight * ||phi(a) - phi(b)||^2 / (C * H * W)``. Nothing is
downloaded: the file is a torchvision-style VGG16 state dict (``features.N.*``
keys; only the first 7 convolutions are used).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from pipeline.atomic import atomic_write
from pipeline.errors import PipelineError
from pipeline.shards import open_dataset
from pipeline.train.data import EpochOrder, TripleDataset
from pipeline.train.nets import build

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class RunConfig:
    """Everything about a run but the network's architecture (see :mod:`.nets` configs).

    ``data``: the dataset folder; ``rotator``: the trained rotator's run folder
    (the combiner only); ``vgg16``: a VGG16 weights file for the perceptual
    term (None: L1 only).
    """

    network: str
    data: str
    steps: int = 1000
    batch_size: int = 25
    seed: int = 0
    lr: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    val_every: int = 500
    val_batches: int = 8
    checkpoint_every: int = 500
    workers: int = 2
    rotator: str | None = None
    vgg16: str | None = None
    perceptual_weight: float = 1.0

    def __post_init__(self):
        if self.network not in ("morpher", "rotator", "combiner"):
            raise PipelineError(f"unknown network {self.network!r}; choose morpher, rotator "
                                f"or combiner")
        for name in ("steps", "batch_size", "val_batches", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise PipelineError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("seed", "val_every", "workers"):
            if getattr(self, name) < 0:
                raise PipelineError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.network == "combiner" and not self.rotator:
            raise PipelineError("the combiner trains on a trained rotator's outputs: pass "
                                "--rotator RUN_DIR (a rotator run folder)")
        if self.network != "combiner" and self.rotator:
            raise PipelineError("--rotator is for the combiner only")


# Run settings a resumed run may change; every other one must match the checkpoint.
CHANGEABLE = ("data", "steps", "val_every", "val_batches", "checkpoint_every", "workers")


def resolve(run_dir: str | os.PathLike, network: str, run_options: dict,
            net_options: dict) -> tuple[RunConfig, dict, dict | None]:
    """The run config, network config and checkpoint (or None) for a run folder.

    ``run_options`` and ``net_options`` hold what the user gave (None: not
    given). A new run fills the rest with defaults (the image size with the
    dataset's). A folder with a checkpoint resumes: given values that would
    change the run (anything but :data:`CHANGEABLE`) must match what it stored.
    """
    run_options = {k: v for k, v in run_options.items() if v is not None}
    net_options = {k: v for k, v in net_options.items() if v is not None}
    checkpoint = load_checkpoint(run_dir) if (Path(run_dir) / CHECKPOINT).exists() else None
    if checkpoint is None:
        config = RunConfig(network=network, **run_options)
        return config, net_options, None
    stored = checkpoint["run_config"]
    if checkpoint["network"] != network:
        raise PipelineError(f"{run_dir} holds a {checkpoint['network']} run, not a {network} "
                            f"run; pass another --run")
    clashes = [f"{k} {v!r} (the run has {stored.get(k)!r})" for k, v in run_options.items()
               if k not in CHANGEABLE and v != stored.get(k)]
    clashes += [f"{k} {v!r} (the run has {checkpoint['model_config'].get(k)!r})"
                for k, v in net_options.items() if v != checkpoint["model_config"].get(k)]
    if clashes:
        raise PipelineError(f"{run_dir} resumes a run started with other settings: "
                            f"{'; '.join(clashes)}. Leave them out or use a new --run")
    names = {f.name for f in fields(RunConfig)}
    config = RunConfig(**{**{k: v for k, v in stored.items() if k in names},
                          **{k: v for k, v in run_options.items() if k in CHANGEABLE}})
    return config, dict(checkpoint["model_config"]), checkpoint


def load_checkpoint(run_dir: str | os.PathLike) -> dict:
    """The checkpoint of a run folder, on the CPU."""
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise PipelineError(f"{path} does not exist: {run_dir} is not a training run folder "
                            f"(or it has not saved a checkpoint yet)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a torn or foreign file: torch raises many kinds
        raise PipelineError(f"{path} cannot be read as a checkpoint: {error}") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("version") != CHECKPOINT_VERSION:
        raise PipelineError(f"{path} is not a checkpoint of this trainer "
                            f"(version {CHECKPOINT_VERSION})")
    return checkpoint


def load_network(run_dir: str | os.PathLike, device: str = "cpu",
                 expect: str | None = None) -> tuple[nn.Module, dict]:
    """The trained network of a run folder in eval mode, and its checkpoint."""
    checkpoint = load_checkpoint(run_dir)
    if expect is not None and checkpoint["network"] != expect:
        raise PipelineError(f"{run_dir} holds a {checkpoint['network']} run, not a {expect}")
    model = build(checkpoint["network"], checkpoint["model_config"])
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval(), checkpoint


def frozen_rotator(run_dir: str, image_size: int, device: str) -> nn.Module:
    """A trained rotator for the combiner: eval mode, no gradients."""
    rotator, _ = load_network(run_dir, device, expect="rotator")
    if rotator.config.image_size != image_size:
        raise PipelineError(f"the rotator of {run_dir} works on {rotator.config.image_size}-pixel "
                            f"images, the data has {image_size}")
    for p in rotator.parameters():
        p.requires_grad_(False)
    return rotator


def forward(network: str, model: nn.Module, source: torch.Tensor, pose: torch.Tensor,
            rotator: nn.Module | None = None) -> tuple[torch.Tensor, ...]:
    """The network's outputs to compare with the target, each (N, 4, S, S).

    morpher: (output,); rotator: (colour-changed, resampled); combiner: (final,),
    on the frozen rotator's two outputs.
    """
    if network == "morpher":
        return (model(source, pose),)
    if network == "rotator":
        return tuple(model(source, pose))
    with torch.no_grad():
        first, second = rotator(source, pose)  # (N, 4, S, S) each
    return (model(first, second, pose),)


# --- the perceptual term -------------------------------------------------------------------

# torchvision's vgg16().features up to relu3_3: conv indices and their widths.
_VGG_CONVS = {0: (3, 64), 2: (64, 64), 5: (64, 128), 7: (128, 128), 10: (128, 256),
              12: (256, 256), 14: (256, 256)}
_VGG_TAPS = (3, 8, 15)  # outputs of relu1_2, relu2_2, relu3_3
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG16Features(nn.Module):
    """VGG16 up to relu3_3, layers numbered as torchvision's ``features``.

    ``forward(x (N, 3, H, W) in [-1, 1]) -> [relu1_2, relu2_2, relu3_3]``; the
    input is mapped to [0, 1] and normalised with the ImageNet mean and std.
    """

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(_VGG_TAPS[-1] + 1):
            if i in _VGG_CONVS:
                layers.append(nn.Conv2d(*_VGG_CONVS[i], 3, padding=1))
            elif i in (4, 9):
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers.append(nn.ReLU(inplace=False))
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((x + 1) / 2 - self.mean) / self.std
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _VGG_TAPS:
                taps.append(x)
        return taps


def load_vgg16(path: str | os.PathLike) -> VGG16Features:
    """VGG16 features from a local torchvision-style state dict; frozen, eval mode."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise PipelineError(f"VGG16 weights {path} do not exist") from None
    except Exception as error:
        raise PipelineError(f"{path} cannot be read as VGG16 weights: {error}") from None
    if not isinstance(state, dict):
        raise PipelineError(f"{path} is not a state dict")
    state = {k.removeprefix("features."): v for k, v in state.items()}
    wanted = {f"{i}.{kind}" for i in _VGG_CONVS for kind in ("weight", "bias")}
    missing = sorted(wanted - set(state), key=lambda k: int(k.split(".")[0]))
    if missing:
        raise PipelineError(f"{path} is not a VGG16 state dict: it lacks {missing[:4]}")
    vgg = VGG16Features()
    try:
        vgg.features.load_state_dict({k: state[k] for k in wanted})
    except RuntimeError as error:
        raise PipelineError(f"{path} does not fit VGG16: {error}") from None
    for p in vgg.parameters():
        p.requires_grad_(False)
    return vgg.eval()


class PerceptualLoss(nn.Module):
    """Feature reconstruction loss on (N, 4, H, W) images: RGB, then alpha as 3 channels."""

    def __init__(self, vgg: VGG16Features, weight: float):
        super().__init__()
        self.vgg, self.weight = vgg, weight

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = output.new_zeros(())
        for part in (slice(0, 3), slice(3, 4)):
            a = output[:, part].expand(-1, 3, -1, -1)  # (N, 3, H, W); alpha copied 3 times
            b = target[:, part].expand(-1, 3, -1, -1)
            with torch.no_grad():
                wanted = self.vgg(b)
            for fa, fb in zip(self.vgg(a), wanted, strict=True):
                total = total + self.weight * (fa - fb).pow(2).mean(dim=(1, 2, 3)).mean()
        return total


def loss_of(outputs: tuple[torch.Tensor, ...], target: torch.Tensor,
            perceptual: PerceptualLoss | None) -> torch.Tensor:
    loss = sum(F.l1_loss(o, target) for o in outputs)
    if perceptual is not None:
        loss = loss + sum(perceptual(o, target) for o in outputs)
    return loss


# --- state ---------------------------------------------------------------------------------

def rng_states() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": list(np.random.get_state()),
             "python": random.getstate()}
    state["numpy"][1] = state["numpy"][1].tolist()  # plain lists load with weights_only
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_states(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = list(state["numpy"])
    numpy_state[1] = np.array(numpy_state[1], dtype=np.uint32)
    np.random.set_state(tuple(numpy_state))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, *, network: str, model_config: dict, run: RunConfig,
                    step: int, model: nn.Module, optimizer: torch.optim.Optimizer) -> Path:
    """Write ``run_dir/checkpoint.pt`` through a tmp file and an atomic rename."""
    target = run_dir / CHECKPOINT
    state = {"version": CHECKPOINT_VERSION, "network": network, "model_config": model_config,
             "run_config": asdict(run), "step": step, "examples_seen": step * run.batch_size,
             "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "rng": rng_states()}
    with atomic_write(target, "wb") as f:
        torch.save(state, f)
    return target


def _log(run_dir: Path, record: dict) -> None:
    with open(run_dir / LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def check_device(device: str) -> torch.device:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise PipelineError("--device cuda: PyTorch sees no CUDA device here (a CPU-only build "
                            "or no GPU); use --device cpu")
    try:
        return torch.device(device)
    except RuntimeError as error:
        raise PipelineError(f"unknown device {device!r}: {error}") from None


@torch.no_grad()
def validate(network: str, model: nn.Module, data: TripleDataset, config: RunConfig,
             device: torch.device, rotator: nn.Module | None,
             perceptual: PerceptualLoss | None) -> float:
    """Mean loss over the first ``val_batches`` batches of ``data``, in eval mode."""
    was_training = model.training
    model.eval()
    loader = DataLoader(data, batch_size=config.batch_size, shuffle=False,
                        num_workers=config.workers)
    total, batches = 0.0, 0
    for batch in loader:
        if batches == config.val_batches:
            break
        source, pose, target = (batch[k].to(device) for k in ("source", "pose", "target"))
        total += float(loss_of(forward(network, model, source, pose, rotator), target,
                               perceptual))
        batches += 1
    model.train(was_training)
    return total / max(batches, 1)


# --- the loop ------------------------------------------------------------------------------

def train(run_dir: str | os.PathLike, config: RunConfig, model_config: dict | None = None,
          checkpoint: dict | None = None, device: str = "cpu",
          progress: bool = True) -> dict:
    """Train ``config.network`` to ``config.steps`` steps in ``run_dir``; returns a summary.

    ``model_config``: the network config's fields (the image size defaults to
    the dataset's); ``checkpoint``: what :func:`resolve` found in ``run_dir``,
    to resume from.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    dev = check_device(device)
    network = config.network
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    random.seed(config.seed)

    data = TripleDataset(config.data, "train", network)
    val_data = None
    if config.val_every and "validation" in open_dataset(config.data).splits:
        val_data = TripleDataset(config.data, "validation", network)
    model_config = {"image_size": data.image_size, **(model_config or {})}
    if model_config["image_size"] != data.image_size:
        raise PipelineError(f"--image-size {model_config['image_size']} does not match the "
                            f"data's {data.image_size}-pixel images")
    model = build(network, model_config).to(dev)
    model_config = asdict(model.config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr,
                                 betas=(config.beta1, config.beta2))
    rotator = frozen_rotator(config.rotator, data.image_size, dev) if config.rotator else None
    perceptual = (PerceptualLoss(load_vgg16(config.vgg16), config.perceptual_weight).to(dev)
                  if config.vgg16 else None)
    step = 0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        step = int(checkpoint["step"])
        set_rng_states(checkpoint["rng"])
    model.train()

    b = config.batch_size
    order = EpochOrder(len(data), config.seed, start=step * b)
    loader = DataLoader(data, batch_size=b, sampler=order, num_workers=config.workers,
                        pin_memory=dev.type == "cuda",
                        generator=torch.Generator().manual_seed(config.seed),
                        persistent_workers=False)
    from tqdm import tqdm

    bar = tqdm(total=config.steps * b, initial=step * b, unit="ex", desc=f"training {network}",
               file=sys.stderr, dynamic_ncols=True, disable=not progress)
    summary = {"network": network, "start_step": step, "step": step, "loss": None,
               "val_loss": None}
    running, count, since = 0.0, 0, time.perf_counter()
    batches = iter(loader)
    try:
        while step < config.steps:
            batch = next(batches)
            source, pose, target = (batch[k].to(dev, non_blocking=True)
                                    for k in ("source", "pose", "target"))
            outputs = forward(network, model, source, pose, rotator)  # each (N, 4, S, S)
            loss = loss_of(outputs, target, perceptual)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            value = loss.item()
            running, count = running + value, count + 1
            summary.update(step=step, loss=value)
            bar.update(b)
            bar.set_postfix(loss=f"{value:.4f}", refresh=False)
            validating = config.val_every and val_data is not None \
                and step % config.val_every == 0
            saving = step % config.checkpoint_every == 0 or step == config.steps
            if validating or saving:
                record = {"step": step, "loss": running / count,
                          "examples_per_s": count * b / (time.perf_counter() - since)}
                if validating:
                    record["val_loss"] = validate(network, model, val_data, config, dev,
                                                  rotator, perceptual)
                    summary["val_loss"] = record["val_loss"]
                    bar.write(f"step {step}: loss {record['loss']:.4f}, "
                              f"validation {record['val_loss']:.4f}", file=sys.stderr)
                if saving:
                    save_checkpoint(run_dir, network=network, model_config=model_config,
                                    run=config, step=step, model=model, optimizer=optimizer)
                _log(run_dir, record)
                running, count, since = 0.0, 0, time.perf_counter()
    finally:
        bar.close()
        del batches
    return summary
