"""End-to-end throughput of the wide datasets: THA2 at 256x256 and THA3 at 512x512.

Runs the real generator (pipeline.generate) with 2 worker processes on the
sample characters and, when ../shared is beside the project, on a real model
whose roles the annotator proposes (as `annotate scan --schema tha3` would),
and prints images/s (every stored image counts: THA2 stores 5 per example and
5 per model, THA3 2 per example and 3 per model) and examples/s, with the THA1 run of
bench/dataset.py as the yardstick (same machine, same two workers).
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from annotate.auto import apply_proposal, propose  # noqa: E402
from bench.dataset import WORKERS, timed_run  # noqa: E402
from mmdrender.loader import load_model  # noqa: E402
from mmdrender.samples import write_samples  # noqa: E402
from pipeline.feature_poses import sampling_schema  # noqa: E402
from pipeline.generate import RunConfig  # noqa: E402
from pipeline.index import ModelEntry, file_sha256, sample_entries  # noqa: E402

SHARED = PROJECT.parent / "shared" / "models"
REAL_MODEL = "animasa_miku_v2/miku_v2.pmd"
EXAMPLES = 32
RUNS = (("tha1", 256), ("tha2", 256), ("tha3", 512))


def real_entry(root: Path, relative: str, model_id: str) -> ModelEntry:
    """An index row for a real model with the roles the annotator proposes, confirmed."""
    path = root / relative
    proposal = propose(load_model(path), "tha3")
    blank = {name: None for name in ModelEntry.__dataclass_fields__
             if name not in ("model_id", "path", "source", "split", "status", "status_reason",
                             "sha256", "notes")}
    entry = ModelEntry(model_id=model_id, path=relative, source="bench", split="train",
                       status="auto", status_reason="", sha256=file_sha256(path), notes="",
                       **blank)
    return replace(apply_proposal(entry, proposal), status="confirmed")


def real_entries(root: Path) -> list[ModelEntry]:
    """The real model under four ids: four shards' worth of work for two workers."""
    base = real_entry(root, REAL_MODEL, "miku")
    return [replace(base, model_id=f"miku-{i}") for i in range(4)]


def measure(name: str, entries: list[ModelEntry], root: Path, schema: str, size: int) -> None:
    with tempfile.TemporaryDirectory() as out:
        config = RunConfig(out=Path(out), models_root=root, examples_per_model=EXAMPLES,
                           size=size, schema=sampling_schema(schema), models_per_shard=1)
        images, seconds, peak = timed_run(entries, config)
        examples = EXAMPLES * len(entries)
        print(f"{name:30s} {schema} {size:3d}px: {images:5d} images in {seconds:5.1f} s = "
              f"{images / seconds:6.1f} images/s, {examples / seconds:5.1f} examples/s; "
              f"peak worker memory {peak:5.0f} MB")


def main() -> int:
    print(f"{WORKERS} workers, {EXAMPLES} examples per model, phong, SSAA 2x2, "
          "worker start-up included")
    with tempfile.TemporaryDirectory() as samples_dir:
        root = Path(samples_dir)
        write_samples(root)
        samples = [replace(e, split="train") for e in sample_entries(root)]
        for schema, size in RUNS:
            measure("sample characters (5 models)", samples, root, schema, size)
    if (SHARED / REAL_MODEL).exists():
        entries = real_entries(SHARED)
        for schema, size in RUNS:
            measure(f"{REAL_MODEL} (4 copies)", entries, SHARED, schema, size)
    else:
        print("../shared/models is absent: real-model figures skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
