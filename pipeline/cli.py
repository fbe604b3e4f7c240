"""The ``pipeline`` command line: index, splits, dataset runs, verification."""

from __future__ import annotations

import click


@click.group()
@click.version_option(package_name="tha-data-engine")
def main():
    """Build THA-style datasets from a library of MMD models."""
