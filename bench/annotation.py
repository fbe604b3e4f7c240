"""Seconds per model of `annotate scan`, THA1's fields against every wide field (tha3).

Indexes the real models in ../shared/models (or, without them, the sample
characters) into a temporary index and times `annotate scan --schema tha1`
and `--schema tha3` over it, one process, as a user runs them; then prints how
many wide fields each model got a value for.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from click.testing import CliRunner

from annotate.cli import main as annotate
from mmdrender.samples import write_samples
from pipeline.cli import main as pipeline
from pipeline.index import read_index
from pipeline.roles import WIDE_COLUMNS

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "models"


def run(command, *args) -> None:
    result = CliRunner().invoke(command, [str(a) for a in args])
    if result.exit_code != 0:
        sys.exit(f"{' '.join(map(str, args))} failed:\n{result.output}")


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = SHARED if SHARED.is_dir() else Path(folder, "samples")
        if root != SHARED:
            write_samples(root)
        figures = {}
        for schema in ("tha1", "tha3"):
            index = Path(folder, f"{schema}.csv")
            run(pipeline, "scan", root, "--root", root, "--index", index)
            models = len(read_index(index))
            start = time.perf_counter()
            run(annotate, "scan", "--index", index, "--root", root, "--schema", schema)
            figures[schema] = (time.perf_counter() - start) / models
        print(f"annotate scan over {models} models in {root}:")
        for schema, seconds in figures.items():
            print(f"  --schema {schema}: {seconds:.2f} s per model")
        print(f"  tha3 / tha1: {figures['tha3'] / figures['tha1']:.1f}x")
        print("wide fields with a value, per model (of "
              f"{len(WIDE_COLUMNS)}: morphs, halves, eye bones, iris angles, body bones):")
        for entry in read_index(Path(folder, "tha3.csv")):
            filled = sum(getattr(entry, c) not in (None, "") for c in WIDE_COLUMNS)
            print(f"  {entry.path:<48}{filled:>4}")


if __name__ == "__main__":
    main()
