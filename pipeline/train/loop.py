"""The training loop (spec section 8): Adam, L1 (+ optional VGG16 perceptual), checkpoints.

One flat loop, :func:`train`, for all three networks. A run lives in its own
folder: ``checkpoint.pt`` (written atomically) and ``log.jsonl`` (one line per
validation or checkpoint). The checkpoint holds the network's name and
config, the run config, the step, the model and optimiser states, the RNG
states (torch, numpy, python; CUDA for the device in use) and the number of
examples seen, so a rerun on the same folder resumes exactly where the last
checkpoint left off: the data order is a pure function of the seed and the
position (see :class:`~pipeline.train.data.EpochOrder`), and on the CPU the
weights after 2 + 2 steps are bit-identical to 4 straight steps. On resume,
log records after the checkpoint's step (written before a crash) are dropped.

SIGINT (Ctrl-C) or SIGTERM stops the run at the end of the current step and
saves a checkpoint first; a second one stops at once, keeping the last
checkpoint. The command line holds ``train.lock`` in the run folder
(:func:`locked_run`), so two trainers never write one run.

A combiner's checkpoint records which rotator it trains on: its run folder,
step and a hash of its weights. Resuming or evaluating the combiner with a
rotator that has changed since (trained further, say) is refused.

Losses: the morpher's output, both rotator outputs and the combiner's final
image against the ground truth, L1 on pixels; with a VGG16 weights file, plus
the feature reconstruction loss of Johnson et al. on relu1_2, relu2_2 and
relu3_3, on the RGB image and on the alpha channel copied to three channels,
each term ``weight * ||phi(a) - phi(b)||^2 / (C * H * W)``. Nothing is
downloaded: the file is a torchvision-style VGG16 state dict (``features.N.*``
keys; only the first 7 convolutions are used).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset

from pipeline.atomic import atomic_write
from pipeline.errors import PipelineError
from pipeline.progress import progress_bar
from pipeline.shard_reader import open_dataset
from pipeline.train.data import EpochOrder, TripleDataset
from pipeline.train.nets import build

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"
LOCK = "train.lock"
CHECKPOINT_VERSION = 1
BATCH_SIZE = {"morpher": 25, "rotator": 25, "combiner": 20}  # the spec's
VALIDATION_SEED = 0  # picks the validation examples: the same for every run and seed


@dataclass(frozen=True)
class RunConfig:
    """Everything about a run but the network's architecture (see :mod:`.nets` configs).

    ``data``: the dataset folder; ``rotator``: the trained rotator's run folder
    (the combiner only); ``vgg16``: a VGG16 weights file for the perceptual
    term (None: L1 only); ``batch_size`` None: the spec's for the network
    (:data:`BATCH_SIZE`).
    """

    network: str
    data: str
    steps: int = 1000
    batch_size: int | None = None
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
        if self.batch_size is None:
            object.__setattr__(self, "batch_size", BATCH_SIZE[self.network])
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


CPU_SMALL_IMAGES = 128  # at most this many pixels a side, a CPU run uses fewer blocks
CPU_RES_BLOCKS = 2  # 6 (the paper's) trained 1.6-4.4x slower at 64 px on 2 cores
CPU_FEW_CORES = 2  # with this many cores or fewer, loader workers only compete with training


def device_defaults(device: str, image_size: int, cores: int | None = None) -> dict:
    """Defaults that make a CPU run not needlessly slow; a GPU keeps the paper's.

    On a CPU: ``res_blocks`` 2 for images of at most 128 pixels, and ``workers``
    0 (loading in the training process) on machines of at most two cores.
    """
    if not str(device).startswith("cpu"):
        return {}
    cores = cores if cores is not None else (os.cpu_count() or 1)
    chosen = {}
    if image_size <= CPU_SMALL_IMAGES:
        chosen["res_blocks"] = CPU_RES_BLOCKS
    if cores <= CPU_FEW_CORES:
        chosen["workers"] = 0
    return chosen


def resolve(run_dir: str | os.PathLike, network: str, run_options: dict,
            net_options: dict, defaults: dict | None = None
            ) -> tuple[RunConfig, dict, dict | None]:
    """The run config, network config and checkpoint (or None) for a run folder.

    ``run_options`` and ``net_options`` hold what the user gave (None: not
    given). A new run fills the rest with ``defaults`` (:func:`device_defaults`),
    then the configs' own (the image size with the dataset's). A folder with a
    checkpoint resumes: given values that would change the run (anything but
    :data:`CHANGEABLE`) must match what it stored.
    """
    run_options = {k: v for k, v in run_options.items() if v is not None}
    net_options = {k: v for k, v in net_options.items() if v is not None}
    checkpoint = load_checkpoint(run_dir) if (Path(run_dir) / CHECKPOINT).exists() else None
    if checkpoint is None:
        for name, value in (defaults or {}).items():
            (net_options if name == "res_blocks" else run_options).setdefault(name, value)
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
    # A checkpoint from before pose_schema was recorded trained on THA1 data.
    return config, {"pose_schema": "tha1", **checkpoint["model_config"]}, checkpoint


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


def weights_sha256(state: dict[str, torch.Tensor]) -> str:
    """A hash of a state dict: every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def frozen_rotator(run_dir: str, data: TripleDataset, device: str | torch.device,
                   expected: dict | None = None) -> tuple[nn.Module, dict]:
    """A trained rotator for the combiner (eval mode, no gradients) and what identifies it.

    The identity is ``{"run", "step", "weights_sha256"}``. ``expected``: the
    identity a combiner recorded when it started; a rotator that differs from
    it (trained further since, say) is a PipelineError.
    """
    rotator, checkpoint = load_network(run_dir, device, expect="rotator")
    identity = {"run": str(run_dir), "step": int(checkpoint["step"]),
                "weights_sha256": weights_sha256(checkpoint["model"])}
    if expected is not None and (expected["step"], expected["weights_sha256"]) != \
            (identity["step"], identity["weights_sha256"]):
        raise PipelineError(
            f"the rotator in {run_dir} has changed since this combiner started: it is at step "
            f"{identity['step']} (weights {identity['weights_sha256'][:12]}), the combiner "
            f"was trained on step {expected['step']} (weights {expected['weights_sha256'][:12]}). "
            f"Put that rotator's checkpoint.pt back in {run_dir}, or start a new combiner "
            f"run (another --run) on the rotator as it is now")
    data.check_fits(rotator.config, f"the rotator of {run_dir}")
    for p in rotator.parameters():
        p.requires_grad_(False)
    return rotator, identity


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

def rng_states(device: torch.device) -> dict:
    """The RNG states to resume with: torch, numpy, python, and ``device``'s if a GPU."""
    state = {"torch": torch.get_rng_state(), "numpy": list(np.random.get_state()),
             "python": random.getstate()}
    state["numpy"][1] = state["numpy"][1].tolist()  # plain lists load with weights_only
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_states(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = list(state["numpy"])
    numpy_state[1] = np.array(numpy_state[1], dtype=np.uint32)
    np.random.set_state(tuple(numpy_state))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    # One device's state; older checkpoints hold a list (every GPU then visible): skipped.
    if device.type == "cuda" and isinstance(state.get("cuda"), torch.Tensor):
        torch.cuda.set_rng_state(state["cuda"], device)


def os_reason(error: BaseException) -> str | None:
    """The reason of the OSError in ``error`` or what it was raised from or during, if any.

    torch.save reports a failed write (a full disk) as a RuntimeError raised
    while handling the OSError, or the other way round.
    """
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError):
            return error.strerror or str(error)
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def save_checkpoint(run_dir: Path, *, network: str, model_config: dict, run: RunConfig,
                    step: int, model: nn.Module, optimizer: torch.optim.Optimizer,
                    device: torch.device, rotator: dict | None = None) -> Path:
    """Write ``run_dir/checkpoint.pt`` through a tmp file and an atomic rename.

    ``rotator``: the combiner's rotator identity (see :func:`frozen_rotator`).
    A failed write (a full disk) is a PipelineError and leaves the previous
    checkpoint as it was.
    """
    target = run_dir / CHECKPOINT
    state = {"version": CHECKPOINT_VERSION, "network": network, "model_config": model_config,
             "run_config": asdict(run), "step": step, "examples_seen": step * run.batch_size,
             "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "rng": rng_states(device)}
    if rotator is not None:
        state["rotator"] = rotator
    try:
        with atomic_write(target, "wb") as f:
            torch.save(state, f)
    except (OSError, RuntimeError) as error:
        reason = os_reason(error)
        if reason is None:
            raise
        kept = "the previous checkpoint is kept" if target.exists() else "no checkpoint yet"
        raise PipelineError(f"cannot write checkpoint {target}: {reason} (at step {step}; "
                            f"{kept}: free space and rerun to resume)") from None
    return target


def _log(run_dir: Path, record: dict) -> None:
    try:
        with open(run_dir / LOG, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
    except OSError as error:
        raise PipelineError(f"cannot write {run_dir / LOG}: {error.strerror or error}") from None


def _logged_step(line: str) -> int | None:
    """The step of one log line; None for a line torn by a crash."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    step = record.get("step") if isinstance(record, dict) else None
    return step if isinstance(step, int) else None


def trim_log(run_dir: Path, step: int) -> None:
    """Drop the log records after ``step`` (written after the checkpoint a run resumes from).

    The log is rewritten atomically, and only when something is dropped.
    """
    path = run_dir / LOG
    try:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    except FileNotFoundError:
        return
    except (OSError, UnicodeDecodeError) as error:
        raise PipelineError(f"cannot read {path}: {error}") from None
    kept = [line for line in lines
            if (logged := _logged_step(line)) is not None and logged <= step]
    if len(kept) == len(lines):
        return
    try:
        with atomic_write(path, "w", encoding="utf-8") as f:
            f.write("".join(line if line.endswith("\n") else line + "\n" for line in kept))
    except OSError as error:
        raise PipelineError(f"cannot rewrite {path}: {error.strerror or error}") from None


@contextmanager
def locked_run(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Create the run folder and hold its lock file: one trainer per run folder.

    A folder created here is removed again if the block fails before writing to it.
    """
    run_dir = Path(run_dir)
    created = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        file = open(run_dir / LOCK, "a")
    except OSError as error:
        raise PipelineError(f"cannot use {run_dir} as a run folder: "
                            f"{error.strerror or error}") from None
    with file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PipelineError(f"another trainer is writing {run_dir} (it holds "
                                f"{run_dir / LOCK}); wait for it to end or pass another "
                                f"--run") from None
        try:
            yield run_dir
        except BaseException:
            if created and [p.name for p in run_dir.iterdir()] == [LOCK]:
                (run_dir / LOCK).unlink()
                run_dir.rmdir()
            raise


def check_device(device: str) -> torch.device:
    """``device`` as a torch.device that this machine can allocate on, or a PipelineError."""
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise PipelineError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "meta":
        raise PipelineError("--device meta holds no data and cannot train; use cpu or cuda")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PipelineError(f"--device {device}: PyTorch sees no CUDA device here (a CPU-only "
                            f"build or no GPU); use --device cpu")
    try:
        torch.empty(0, device=dev)
    except Exception as error:  # each backend fails its own way (Assertion, NotImplemented...)
        reason = str(error).strip().split(". ")[0].splitlines()[0] if str(error).strip() \
            else type(error).__name__
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        choices = "cpu" + (f", or cuda:0 to cuda:{gpus - 1}" if gpus else "")
        raise PipelineError(f"--device {device}: PyTorch cannot use it here ({reason}); "
                            f"use --device {choices}") from None
    return dev


class _StopOnSignal:
    """While entered, SIGINT and SIGTERM set ``self.signal`` (the loop stops at a step boundary).

    A second signal raises KeyboardInterrupt at once. Signals can only be
    handled in the main thread; elsewhere this does nothing.
    """

    def __init__(self):
        self.signal: str | None = None
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def batches_of(loader: DataLoader) -> Iterator[dict]:
    """The batches of ``loader``; a PipelineError raised in a worker keeps its one-line message.

    (The DataLoader re-raises a worker's error with the worker's traceback as its message.)
    """
    iterator = iter(loader)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except PipelineError as error:
            message = str(error).rsplit("PipelineError: ", 1)[-1].strip()
            error.__traceback__ = None  # its frames hold the iterator in a reference cycle
        else:
            yield batch
            continue
        del iterator  # ends the workers now, not at the next garbage collection
        raise PipelineError(message)


def validation_indices(n: int, k: int) -> list[int]:
    """``min(n, k)`` examples of a split of ``n``, seeded and sorted, the same every time.

    Spread over the whole split (shards are ordered by model, so the first
    examples would all come from the first few models).
    """
    rng = np.random.default_rng(VALIDATION_SEED)
    return sorted(rng.choice(n, size=min(n, k), replace=False).tolist())


@torch.no_grad()
def validate(network: str, model: nn.Module, data: TripleDataset, config: RunConfig,
             device: torch.device, rotator: nn.Module | None,
             perceptual: PerceptualLoss | None,
             baseline: float | None = None) -> tuple[float, float]:
    """Mean loss per example, in eval mode, over ``val_batches`` batches' worth of ``data``,
    and the same loss of the identity baseline (output = the input image), which a network
    that learned nothing scores: a loss means something only beside it.

    The examples are :func:`validation_indices`: the same at every validation, so the
    baseline is too: pass the one an earlier validation returned to skip working it out.
    """
    was_training = model.training
    model.eval()
    indices = validation_indices(len(data), config.val_batches * config.batch_size)
    loader = DataLoader(Subset(data, indices), batch_size=config.batch_size, shuffle=False,
                        num_workers=config.workers)
    total, identity = 0.0, 0.0
    for batch in batches_of(loader):
        source, pose, target = (batch[k].to(device) for k in ("source", "pose", "target"))
        outputs = forward(network, model, source, pose, rotator)
        total += float(loss_of(outputs, target, perceptual)) * len(source)
        if baseline is None:  # every output taken as the input: the loss sums over outputs
            identity += float(loss_of((source,) * len(outputs), target, perceptual)) * len(source)
    model.train(was_training)
    return total / len(indices), identity / len(indices) if baseline is None else baseline


# --- the loop ------------------------------------------------------------------------------

def train(run_dir: str | os.PathLike, config: RunConfig, model_config: dict | None = None,
          checkpoint: dict | None = None, device: str = "cpu",
          progress: bool = True) -> dict:
    """Train ``config.network`` to ``config.steps`` steps in ``run_dir``; returns a summary.

    ``model_config``: the network config's fields (the image size defaults to
    the dataset's); ``checkpoint``: what :func:`resolve` found in ``run_dir``,
    to resume from. The command line calls both inside :func:`locked_run`.
    SIGINT or SIGTERM ends the run at the end of the current step: it saves a
    checkpoint, then raises a PipelineError that says so.
    """
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PipelineError(f"cannot create run folder {run_dir}: "
                            f"{error.strerror or error}") from None
    dev = check_device(device)
    network = config.network
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    random.seed(config.seed)

    data = TripleDataset(config.data, "train", network)
    val_data = None
    if config.val_every and "validation" in open_dataset(config.data).splits:
        val_data = TripleDataset(config.data, "validation", network)
    elif progress and config.val_every:
        print(f"note: {config.data} has no validation split: training without validation "
              "(no validation loss in the log); `pipeline split` gives it one",
              file=sys.stderr)
    elif progress:
        print("note: validation is off (--val-every 0)", file=sys.stderr)
    model_config = {"image_size": data.image_size, "pose_size": data.pose_size,
                    "pose_schema": data.schema_name, **(model_config or {})}
    if model_config["image_size"] != data.image_size:
        raise PipelineError(f"--image-size {model_config['image_size']} does not match the "
                            f"data's {data.image_size}-pixel images")
    model = build(network, model_config).to(dev)
    data.check_fits(model.config, f"the {network} of {run_dir}")
    model_config = asdict(model.config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr,
                                 betas=(config.beta1, config.beta2))
    rotator, rotator_identity = None, None
    if config.rotator:
        recorded = checkpoint.get("rotator") if checkpoint is not None else None
        rotator, rotator_identity = frozen_rotator(config.rotator, data, dev,
                                                   expected=recorded)
    perceptual = (PerceptualLoss(load_vgg16(config.vgg16), config.perceptual_weight).to(dev)
                  if config.vgg16 else None)
    step = 0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        step = int(checkpoint["step"])
        set_rng_states(checkpoint["rng"], dev)
    trim_log(run_dir, step)  # records a crash left after the checkpoint
    model.train()

    b = config.batch_size
    order = EpochOrder(len(data), config.seed, start=step * b)
    loader = DataLoader(data, batch_size=b, sampler=order, num_workers=config.workers,
                        pin_memory=dev.type == "cuda",
                        generator=torch.Generator().manual_seed(config.seed),
                        persistent_workers=False)
    bar = progress_bar(config.steps, initial=step, unit="step", desc=f"training {network}",
                       disable=not progress)
    summary = {"network": network, "start_step": step, "step": step, "loss": None,
               "val_loss": None, "val_baseline": None}
    running, count, since = 0.0, 0, time.perf_counter()
    saved = step  # the step of the checkpoint on disk

    def log_and_save(validating: bool, saving: bool) -> None:
        nonlocal running, count, since, saved
        record = {"step": step, "loss": running / count,
                  "examples_per_s": count * b / (time.perf_counter() - since)}
        if validating:
            record["val_loss"], record["val_baseline"] = validate(
                network, model, val_data, config, dev, rotator, perceptual,
                summary["val_baseline"])
            summary["val_loss"], summary["val_baseline"] = record["val_loss"], \
                record["val_baseline"]
            bar.write(f"step {step}: loss {record['loss']:.4f}, validation "
                      f"{record['val_loss']:.4f} (output = input: "
                      f"{record['val_baseline']:.4f})", file=sys.stderr)
        if saving:
            save_checkpoint(run_dir, network=network, model_config=model_config, run=config,
                            step=step, model=model, optimizer=optimizer, device=dev,
                            rotator=rotator_identity)
            saved = step
        _log(run_dir, record)
        running, count, since = 0.0, 0, time.perf_counter()

    batches = batches_of(loader)
    stop = _StopOnSignal()
    try:
        with stop:
            while step < config.steps and stop.signal is None:
                try:
                    batch = next(batches)
                except Exception:
                    if stop.signal is None:
                        raise
                    break  # a worker ended by the same Ctrl-C; the weights are at a step
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
                bar.update(1)
                bar.set_postfix(loss=f"{value:.4f}", refresh=False,
                                examples_per_s=f"{count * b / (time.perf_counter() - since):.3g}")
                validating = bool(config.val_every) and val_data is not None \
                    and step % config.val_every == 0
                saving = step % config.checkpoint_every == 0 or step == config.steps
                if validating or saving:
                    log_and_save(validating, saving)
            if stop.signal is not None:
                if saved != step:
                    log_and_save(validating=False, saving=True)
                where = f"{run_dir / CHECKPOINT} holds step {step}" if step else "nothing saved"
                raise PipelineError(f"stopped by {stop.signal} at step {step}; {where}: rerun "
                                    f"the command to resume")
    except KeyboardInterrupt:
        where = f"{run_dir / CHECKPOINT} holds step {saved}" if saved else "nothing saved"
        raise PipelineError(f"interrupted at step {step}; {where}: rerun the command to "
                            f"resume") from None
    finally:
        bar.close()
        batches.close()  # ends the DataLoader's workers
    return summary
