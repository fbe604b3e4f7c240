"""Trainer throughput: training examples/s per network, and the DataLoader's alone.

Generates a small 256-pixel dataset from the sample characters, then measures

* the DataLoader (shards -> decoded [-1, 1] tensors, morpher items) with 0 and
  2 worker processes, examples/s;
* one training step after another for each network at the spec's default size
  (256 pixels, 64 channels, 3 downsamplings, 6 residual blocks; the combiner
  including its frozen rotator's forward pass), examples/s after one warm-up
  step, data loading included (DataLoader with 2 workers).

On a CPU the spec's batch sizes (25, 25, 20) take about a minute a step, so
the default is batch 2 and 2 timed steps; ``--spec-batches`` uses the spec's.
Skips (exit 0) when PyTorch is not installed, because ``make bench`` runs
every script in bench/.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

SPEC_BATCHES = {"morpher": 25, "rotator": 25, "combiner": 20}
SIZE = 256
EXAMPLES_PER_MODEL = 8
LOADER_EXAMPLES = 200


def make_dataset(out: Path) -> Path:
    from mmdrender.samples import write_samples
    from pipeline.generate import RunConfig, finish, plan, run_tasks
    from pipeline.index import sample_entries

    samples = out / "samples"
    write_samples(samples)
    entries = [replace(e, split="train") for e in sample_entries(samples)]
    config = RunConfig(out=out / "data", models_root=samples,
                       examples_per_model=EXAMPLES_PER_MODEL, size=SIZE, samples=0,
                       models_per_shard=2)
    tasks = plan(entries, config)
    list(run_tasks(tasks, config, workers=2))
    finish(tasks, config)
    return out / "data"


def bench_loader(data: Path, workers: int, batch_size: int = 25) -> float:
    import torch
    from torch.utils.data import DataLoader

    from pipeline.train.data import EpochOrder, TripleDataset

    items = TripleDataset(data, "train", "morpher")
    loader = DataLoader(items, batch_size=batch_size, sampler=EpochOrder(len(items), seed=0),
                        num_workers=workers)
    batches = iter(loader)
    next(batches)  # worker start-up and first reads are not what we measure
    start = time.perf_counter()
    n = 0
    for batch in itertools.islice(batches, LOADER_EXAMPLES // batch_size):
        n += batch["source"].shape[0]
        assert batch["source"].dtype == torch.float32
    return n / (time.perf_counter() - start)


def bench_network(data: Path, network: str, batch_size: int, steps: int, device: str) -> float:
    """Examples/s of ``steps`` training steps after one warm-up step, loading included.

    The steps of :func:`pipeline.train.loop.train` (DataLoader with 2 workers,
    forward, L1, backward, Adam) without its checkpoints; the combiner's
    rotator is a fresh, frozen one (its weights do not change the cost).
    """
    import torch
    from torch.utils.data import DataLoader

    from pipeline.train.data import EpochOrder, TripleDataset
    from pipeline.train.loop import forward, loss_of
    from pipeline.train.nets import build

    torch.manual_seed(0)
    items = TripleDataset(data, "train", network)
    model = build(network).to(device).train()
    rotator = None
    if network == "combiner":
        rotator = build("rotator").to(device).eval().requires_grad_(False)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.5, 0.999))
    loader = DataLoader(items, batch_size=batch_size, sampler=EpochOrder(len(items), seed=0),
                        num_workers=2)
    batches = iter(loader)

    def step() -> None:
        batch = next(batches)
        source, pose, target = (batch[k].to(device) for k in ("source", "pose", "target"))
        loss = loss_of(forward(network, model, source, pose, rotator), target, None)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()  # waits for the device

    step()  # warm-up: worker start-up, allocator, Adam state
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch_size / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec-batches", action="store_true",
                        help="the spec's batch sizes (25, 25, 20) instead of 2")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per network")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        print("skipped: PyTorch is not installed (pip install -e '.[train]' or "
              "make setup-train)")
        return 0
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        data = make_dataset(Path(tmp))
        print(f"dataset: 5 sample characters x {EXAMPLES_PER_MODEL} examples at {SIZE} px "
              f"in {time.perf_counter() - start:.1f} s")
        for workers in (0, 2):
            rate = bench_loader(data, workers)
            print(f"DataLoader, {workers} workers, batch 25: {rate:7.1f} examples/s")
        from pipeline.train.nets import build, parameter_count

        for network in ("morpher", "rotator", "combiner"):
            batch = SPEC_BATCHES[network] if args.spec_batches else 2
            rate = bench_network(data, network, batch, args.steps, args.device)
            millions = parameter_count(build(network)) / 1e6
            print(f"train {network:8s} {SIZE} px, 64 ch ({millions:.1f}M parameters), "
                  f"batch {batch:2d}, {args.steps} steps: "
                  f"{rate:6.2f} examples/s ({1 / rate:5.2f} s/example)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
