"""Load time per model for the shared real models (and the sample characters).

Prints each model's best-of-N load time, the slowest, and the ratio to plain
pymeshio (which reads vertices as Python objects and cannot read every file).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import pymeshio.pmd.reader
import pymeshio.pmx.reader

from mmdrender import load_model
from mmdrender.samples import write_samples

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "models"
REPEATS = 5


def best_time(function, *args) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        function(*args)
        best = min(best, time.perf_counter() - start)
    return best


def pymeshio_time(path: Path) -> float | None:
    reader = pymeshio.pmx.reader if path.suffix.lower() == ".pmx" else pymeshio.pmd.reader
    try:
        return best_time(reader.read_from_file, str(path))
    except Exception:
        return None


def main() -> int:
    with tempfile.TemporaryDirectory() as samples_dir:
        paths = sorted(SHARED.rglob("*.pm[dx]")) if SHARED.is_dir() else []
        if not paths:
            print("../shared/models is absent: timing the sample characters only")
        paths += write_samples(Path(samples_dir))
        rows = []
        print(f"{'model':58s} {'vertices':>8s} {'load ms':>8s} {'pymeshio ms':>11s} {'ratio':>6s}")
        for path in paths:
            model = load_model(path)
            ours = best_time(load_model, path)
            theirs = pymeshio_time(path)
            shared = SHARED in path.parents
            name = str(path.relative_to(SHARED)) if shared else f"sample/{path.name}"
            ratio = f"{theirs / ours:5.1f}x" if theirs else "  fails"
            theirs_ms = f"{theirs * 1000:11.1f}" if theirs else f"{'-':>11s}"
            print(f"{name:58s} {len(model.vertices):8d} {ours * 1000:8.1f} {theirs_ms} {ratio}")
            rows.append((ours, name, len(model.vertices)))
        slowest = max(rows)
        per_vertex = max(t / v for t, _, v in rows if v > 5000)
        print(f"slowest: {slowest[1]} at {slowest[0] * 1000:.1f} ms ({slowest[2]} vertices); "
              f"a 45k-vertex model projects to ~{per_vertex * 45000 * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
