"""``pipeline poses``: sampled pose vectors as a plain file, for tools outside the pipeline.

THA4's distiller reads a file of sampled 45-value poses (``torch.load`` of an
(N, 45) float tensor, parameters in the schema's order); ``.npy`` holds the
same array for numpy users. The poses are those :func:`pipeline.poses.sample`
draws for the schema with one seed, so a file can be made again exactly.
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from mmdrender.schemas import SCHEMAS
from pipeline.atomic import atomic_write
from pipeline.errors import PipelineError, reports_errors
from pipeline.feature_poses import sampling_schema
from pipeline.poses import sample

FORMATS = (".pt", ".npy")


def check_suffix(path: Path) -> None:
    if path.suffix not in FORMATS:
        raise PipelineError(f"{path}: write poses to a .pt (torch) or .npy (numpy) file")


def write_poses(path: Path, poses: np.ndarray) -> None:
    """``poses`` (N, P) float32 to ``path``: a torch tensor (.pt) or a numpy array (.npy)."""
    check_suffix(path)
    if path.suffix == ".pt":
        try:
            import torch
        except ImportError:
            raise PipelineError("writing .pt needs PyTorch (pip install -e '.[train]'); "
                                ".npy needs nothing more") from None
        with atomic_write(path, "wb") as f:
            torch.save(torch.from_numpy(np.ascontiguousarray(poses)), f)
    else:
        with atomic_write(path, "wb") as f:
            np.save(f, poses)


@click.command("poses")
@click.option("--schema", type=click.Choice(list(SCHEMAS)), default="tha3", show_default=True)
@click.option("-n", "count", type=click.IntRange(min=1), required=True,
              help="How many poses.")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="A .pt file (a float32 torch tensor, what THA4's distiller loads as its "
                   "pose dataset) or a .npy file; (N, P) with the schema's parameters in order.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@reports_errors
def poses_command(schema, count, out, seed):
    """Sample COUNT poses of a schema as the dataset samples them and write them to a file."""
    check_suffix(out)
    poses = sample(sampling_schema(schema), np.random.default_rng(seed), count)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_poses(out, poses)
    except OSError as error:
        raise PipelineError(f"cannot write {out}: {error.strerror or error}") from None
    click.echo(f"wrote {len(poses)} {schema} poses ({poses.shape[1]} values each) to {out}")
