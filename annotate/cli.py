"""The ``annotate`` command line (issue 5: proposals and the review GUI).

Every command exits with status 1 and prints one ``error: ...`` line when its
input is not usable; it never prints a traceback for a problem the user can fix.
"""

from __future__ import annotations

import contextlib
import json
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import click

from pipeline.errors import PipelineError, reports_errors
from pipeline.index import (
    DEFAULT_INDEX,
    models_root,
    read_index,
    resolve_model_path,
    update_index,
)

PROGRESS_MIN_MODELS = 2  # a bar for a single model is noise


@click.group()
@click.version_option(package_name="tha-data-engine")
def main():
    """Propose and review head bounds and wink morphs for models in the index."""


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object {column: {value, confidence}} instead of a table.")
@reports_errors(one_line=True)
def suggest(model_path: Path, as_json: bool):
    """Print the automatic proposal for MODEL (.pmx/.pmd): each field's value and confidence."""
    from annotate.auto import FIELDS, propose
    from mmdrender.loader import load_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proposal = propose(load_model(model_path))
    if as_json:
        click.echo(json.dumps(proposal.to_json(), ensure_ascii=False, indent=2))
        return
    click.echo(f"{model_path}")
    for name in FIELDS:
        field = getattr(proposal, name)
        value = "(none)" if field.value is None else field.value
        click.echo(f"  {name:<18}{value!s:<16}{field.confidence:.2f}")


@main.command()
@click.option("--index", "index_path", type=click.Path(dir_okay=False, path_type=Path),
              default=str(DEFAULT_INDEX), show_default=True, help="The models index (CSV).")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path),
              help="Models root that index paths are relative to "
                   "[default: $THA_MODELS_ROOT, else out/samples beside the index].")
@reports_errors(one_line=True)
def scan(index_path: Path, root: Path | None):
    """Fill or refresh the proposals of every row whose status is auto.

    Writes head bounds and morph names into the row and the per-field
    confidences into its notes; confirmed and rejected rows are never touched,
    nor rows edited (in the review window, say) while the scan ran. A model
    that fails to load keeps status auto, with the reason in status_reason. The
    index is replaced atomically.
    """
    from annotate.auto import apply_proposal, propose
    from mmdrender.errors import MMDRenderError
    from mmdrender.loader import load_model

    entries = read_index(index_path)
    root = models_root(root, index_path)
    todo = [i for i, entry in enumerate(entries) if entry.status == "auto"]
    result = list(entries)
    failed = 0
    bar = (click.progressbar(todo, label="proposing", file=sys.stderr)
           if len(todo) >= PROGRESS_MIN_MODELS else contextlib.nullcontext(todo))
    with bar as rows:
        for i in rows:
            entry = entries[i]
            try:
                path = resolve_model_path(entry, root)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result[i] = apply_proposal(entry, propose(load_model(path, root)))
            except (MMDRenderError, PipelineError) as error:
                failed += 1
                result[i] = replace(entry, status_reason=" ".join(str(error).split()))
    # Replace only rows nobody changed meanwhile (the review window may be open
    # and saving): a confirmation or an edit made during the scan always wins.
    proposed = {entries[i].model_id: (entries[i], result[i]) for i in todo
                if result[i] != entries[i]}
    current = read_index(index_path) if proposed else []
    updates = [proposed[e.model_id][1] for e in current
               if e.model_id in proposed and e == proposed[e.model_id][0]]
    if updates:
        update_index(index_path, updates)
    skipped = len(proposed) - len(updates)
    click.echo(f"{index_path}: proposed {len(todo) - failed} auto row(s), {failed} failed to "
               f"load, {len(entries) - len(todo)} confirmed/rejected left alone"
               + (f", {skipped} edited meanwhile and kept" if skipped else ""))


@main.command()
@click.option("--index", "index_path", type=click.Path(dir_okay=False, path_type=Path),
              default=str(DEFAULT_INDEX), show_default=True,
              help="The models index (CSV); every change is written to it at once.")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path),
              help="Models root that index paths are relative to "
                   "[default: $THA_MODELS_ROOT, else out/samples beside the index].")
@reports_errors(one_line=True)
def gui(index_path: Path, root: Path | None):
    """Review models in a window: head bounds, eye and mouth morphs; confirm or reject.

    Keys: Enter confirm, r reject, j/k next/previous, Ctrl+Z undo, Up/Down move
    the head line, Left/Right then 1-6 for eye morphs, ,/. then m for the mouth
    morph (the full list is in annotate/gui/app.py and at the window's foot).
    Needs PySide6: make setup-gui.
    """
    import os

    read_index(index_path)  # a bad index is one error line, before any window
    if sys.platform.startswith("linux") and not any(
            os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
        raise PipelineError("no display to open the window on (DISPLAY and WAYLAND_DISPLAY "
                            "are unset); run it in a desktop session or over ssh -X")
    try:
        from annotate.gui.app import run_gui
    except ImportError as error:
        raise PipelineError(f"the review window needs PySide6 ({error}); install it with "
                            "`make setup-gui` (pip install -e '.[gui]')") from None
    sys.exit(run_gui(index_path, root))
