"""``mmdrender samples OUT_DIR``: write the procedural sample characters."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("samples")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
def samples_command(out_dir: Path) -> None:
    """Write the sample characters as OUT_DIR/<name>/<name>.pmx with textures."""
    from mmdrender.samples import write_samples  # numpy geometry: load only when used

    for path in write_samples(out_dir):
        click.echo(str(path))
