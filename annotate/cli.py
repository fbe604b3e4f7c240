"""The ``annotate`` command line (issue 5: proposals and the review GUI)."""

from __future__ import annotations

import click


@click.group()
@click.version_option(package_name="tha-data-engine")
def main():
    """Propose and review head bounds and wink morphs for models in the index."""
