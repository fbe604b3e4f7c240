"""``mmdrender samples OUT_DIR``: write the procedural sample characters."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command("samples")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
def samples_command(out_dir: Path) -> None:
    """Write the sample characters as OUT_DIR/<name>/<name>.pmx with textures."""
    from mmdrender.samples import write_samples  # numpy geometry: load only when used

    try:
        paths = write_samples(out_dir)
    except OSError as error:
        click.echo(f"error: cannot write the samples to {out_dir}: "
                   f"{error.strerror or error}", err=True)
        sys.exit(1)
    for path in paths:
        click.echo(str(path))
