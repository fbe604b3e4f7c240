"""The ``annotate`` command line (issue 5: proposals and the review GUI).

Every command exits with status 1 and prints one ``error: ...`` line when its
input is not usable; it never prints a traceback for a problem the user can fix.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import warnings
from dataclasses import fields, replace
from pathlib import Path

import click

from mmdrender.schemas import SCHEMAS
from pipeline.errors import PipelineError, reports_errors
from pipeline.index import (
    DEFAULT_INDEX,
    models_root,
    modify_index,
    read_index,
    resolve_model_path,
)

PROGRESS_MIN_MODELS = 2  # a bar for a single model is noise
SAVE_EVERY_S = 10.0  # scan writes its proposals this often (and at the end, and on Ctrl+C)
PROBE_TIMEOUT_S = 30.0


@click.group()
@click.version_option(package_name="tha-data-engine")
def main():
    """Propose and review head bounds and wink morphs for models in the index."""


SCHEMA_OPTION = click.option(
    "--schema", type=click.Choice(list(SCHEMAS)), default="tha1", show_default=True,
    help="Which fields to propose: THA1's (head bounds, winks, mouth), or also every morph "
         "group, the iris angles (tha2) and the upper-body bones (tha3).")


@main.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@SCHEMA_OPTION
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object {field: {value, confidence}} instead of a table.")
@click.option("--rig", "rig_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the proposal's rig (morphs, halves, eye bones, iris angles, "
                   "body bones) as JSON, for `mmdrender render --schema ... --rig`; "
                   "needs --schema tha2 or tha3.")
@reports_errors(one_line=True)
def suggest(model_path: Path, schema: str, as_json: bool, rig_path: Path | None):
    """Print the automatic proposal for MODEL (.pmx/.pmd): each field's value and confidence."""
    if rig_path is not None and schema == "tha1":
        raise PipelineError("--rig needs --schema tha2 or tha3 (a rig holds their roles)")
    proposal = _propose_file(model_path, None, schema)
    fields = proposal.to_json()
    if rig_path is not None:
        from pipeline.atomic import atomic_write

        try:
            with atomic_write(rig_path, encoding="utf-8") as f:
                json.dump(proposal.rig().to_dict(), f, ensure_ascii=False, indent=2)
        except OSError as error:
            raise PipelineError(f"cannot write {rig_path}: {error.strerror or error}") from None
        click.echo(f"rig: {rig_path}", err=True)
    if as_json:
        click.echo(json.dumps(fields, ensure_ascii=False, indent=2))
        return
    click.echo(f"{model_path}")
    width = max(map(len, fields)) + 2
    for name, field in fields.items():
        value = "(none)" if field["value"] is None else field["value"]
        click.echo(f"  {name:<{width}}{value!s:<16} {field['confidence']:.2f}")


def _propose_file(path: Path, root: Path | None, schema: str = "tha1"):
    """Load and propose one model; any failure is a PipelineError with a one-line reason."""
    from annotate.auto import failure_reason, propose
    from mmdrender.loader import load_model

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return propose(load_model(path, root), schema)
    except Exception as error:  # noqa: BLE001  (a corrupt file can make a parser raise anything)
        reason = failure_reason(error)
        raise PipelineError(reason if str(path) in reason else f"{path}: {reason}") from None


#: A scan writes status_reason, notes and the annotated fields; a change to anything but
#: these two while it ran (a person's edit, a changed file) makes it leave the row alone.
_SCAN_IGNORES = ("split", "source")  # `pipeline split` may run meanwhile


def _same_for_scan(now, then) -> bool:
    return all(getattr(now, f.name) == getattr(then, f.name) for f in fields(now)
               if f.name not in _SCAN_IGNORES)


@main.command()
@click.option("--index", "index_path", type=click.Path(dir_okay=False, path_type=Path),
              default=str(DEFAULT_INDEX), show_default=True, help="The models index (CSV).")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path),
              help="Models root that index paths are relative to "
                   "[default: $THA_MODELS_ROOT, else out/samples beside the index].")
@SCHEMA_OPTION
@reports_errors(one_line=True)
def scan(index_path: Path, root: Path | None, schema: str):
    """Fill or refresh the proposals of the auto rows nobody has edited.

    Writes head bounds and morph names (with --schema tha2/tha3 also every
    morph group, halves, the eye bones and iris angles, and the body bones)
    into the row and the confidences into its notes. Confirmed and rejected rows are never touched,
    nor auto rows a person edited (in the review window or by hand) since their
    last proposal, nor rows edited while the scan ran. A model that cannot be
    loaded or proposed keeps status auto, with the reason in status_reason, and
    is listed on stderr; the scan goes on. Proposals are saved every few
    seconds, at the end, and when interrupted (Ctrl+C).
    """
    from annotate.auto import ALL_FIELDS, PROPOSED_WITHOUT, apply_proposal, refreshable

    writes = ("status_reason", "notes", *ALL_FIELDS)

    entries = read_index(index_path)
    root = models_root(root, index_path)
    todo = [entry for entry in entries if refreshable(entry)]
    edited = sum(entry.status == "auto" and not refreshable(entry) for entry in entries)
    pending: dict[str, tuple] = {}  # model_id -> (row as read, row with the proposal)
    failures: list[str] = []
    incomplete: list[str] = []  # rows proposed without something a dataset needs
    kept: list[str] = []  # rows a person changed while the scan ran: left as they are

    def save() -> None:
        # Under the index's lock, replace only rows nobody changed meanwhile (the
        # review window may be open and saving): its confirmations and edits win.
        if not pending:
            return

        def fill(current):
            rows = []
            for entry in current:
                old, new = pending.get(entry.model_id, (None, None))
                if old is None:
                    rows.append(entry)
                elif _same_for_scan(entry, old):  # a split changed meanwhile: still ours
                    rows.append(replace(entry, **{name: getattr(new, name)
                                                  for name in writes}))
                else:
                    kept.append(entry.model_id)
                    rows.append(entry)
            return rows

        modify_index(index_path, fill)
        pending.clear()

    bar = (click.progressbar(todo, label="proposing", file=sys.stderr)
           if len(todo) >= PROGRESS_MIN_MODELS else contextlib.nullcontext(todo))
    last_save = time.monotonic()
    done, interrupted = 0, False
    try:
        with bar as rows:
            for entry in rows:
                try:
                    new = apply_proposal(entry, _propose_file(resolve_model_path(entry, root),
                                                              root, schema))
                except PipelineError as error:
                    reason = " ".join(str(error).split())
                    failures.append(f"skipped {entry.model_id}: {reason}")
                    new = replace(entry, status_reason=reason)
                if new != entry:
                    pending[entry.model_id] = (entry, new)
                if new.status_reason.startswith(PROPOSED_WITHOUT):
                    incomplete.append(f"incomplete {entry.model_id}: {new.status_reason}")
                done += 1
                if time.monotonic() - last_save >= SAVE_EVERY_S:
                    save()
                    last_save = time.monotonic()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        save()  # at the end, on Ctrl+C, and on any error: no proposal made is lost
        for line in failures + incomplete:
            click.echo(line, err=True)
    if interrupted:
        raise PipelineError(f"interrupted after {done} of {len(todo)} model(s); the "
                            f"proposals made so far are saved in {index_path}")
    if kept:
        click.echo(f"not proposed, as they were edited while the scan ran (scan again to "
                   f"propose them): {', '.join(kept)}", err=True)
    click.echo(f"{index_path}: proposed {done - len(failures) - len(kept)} auto row(s) "
               f"({len(incomplete)} incomplete: see their status_reason), "
               f"{len(failures)} failed, {edited} edited by hand and kept, "
               f"{sum(e.status != 'auto' for e in entries)} confirmed/rejected left alone"
               + (f", {len(kept)} edited meanwhile and kept" if kept else ""))


@main.command()
@click.option("--index", "index_path", type=click.Path(dir_okay=False, path_type=Path),
              default=str(DEFAULT_INDEX), show_default=True,
              help="The models index (CSV); every change is written to it at once.")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path),
              help="Models root that index paths are relative to "
                   "[default: $THA_MODELS_ROOT, else out/samples beside the index].")
@SCHEMA_OPTION
@reports_errors(one_line=True)
def gui(index_path: Path, root: Path | None, schema: str):
    """Review models in a window: head bounds, eye and mouth morphs; confirm or reject.

    Keys: Enter confirm, r reject, j/k next/previous, Ctrl+Z undo, Up/Down move
    the head line, Left/Right then 1-6 for eye morphs, ,/. then m for the mouth
    morph (the full list is in annotate/gui/app.py and at the window's foot).
    With --schema tha2/tha3, F1-F6 (or Tab) turn pages for the eyebrows, eyes,
    iris, mouth and body. Needs PySide6: make setup-gui.
    """
    read_index(index_path)  # a bad index is one error line, before any window
    if sys.platform.startswith("linux") and not any(
            os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
        raise PipelineError("no display to open the window on (DISPLAY and WAYLAND_DISPLAY "
                            "are unset); run it in a desktop session or over ssh -X")
    try:
        import PySide6
    except ImportError as error:
        raise PipelineError(f"the review window needs PySide6 ({error}); install it with "
                            "`make setup-gui` (pip install -e '.[gui]')") from None
    problem = pyside_problem(PySide6.__version_info__[:2], sys.version_info[:2]) or \
        qt_window_problem()
    if problem:
        raise PipelineError(problem)
    from annotate.gui.app import run_gui

    sys.exit(run_gui(index_path, root, schema))


def pyside_problem(pyside: tuple[int, int], python: tuple[int, int]) -> str | None:
    """Why this PySide6 cannot run the window on this Python, or None."""
    if pyside >= (6, 12) and python < (3, 12):
        return (f"PySide6 {pyside[0]}.{pyside[1]} on Python {python[0]}.{python[1]} aborts "
                "the window after a few hundred key presses (it drops references to None); "
                "install a working one: pip install 'PySide6-Essentials>=6.6,<6.12' "
                "(make setup-gui)")
    return None


def qt_window_problem() -> str | None:
    """Why Qt cannot open a window here, or None.

    Qt aborts the whole process when its platform plugin fails (no X server
    at DISPLAY, a missing system library), printing several lines; so a
    throwaway process tries first and its output becomes one actionable line.
    """
    probe = "from PySide6.QtGui import QGuiApplication; QGuiApplication([])"
    try:
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None  # slow, not broken: let the window try
    if done.returncode == 0:
        return None
    return describe_qt_failure(done.stderr, os.environ)


def describe_qt_failure(output: str, environ, missing: list[str] | None = None) -> str:
    """One actionable line for what Qt printed when it could not start.

    ``missing``: the system libraries the xcb plugin cannot find (default: asked
    of the dynamic linker, :mod:`annotate.qt_libraries`). Qt's own message names
    libxcb-cursor0 whatever is missing, so it is not repeated.
    """
    from annotate.qt_libraries import missing_libraries, packages_for

    display = environ.get("DISPLAY", "")
    if "could not connect to display" in output:
        return (f"cannot connect to the X display {display!r} (DISPLAY): start the desktop "
                "session or X server, or reconnect with ssh -X; for tests use "
                "QT_QPA_PLATFORM=offscreen")
    if "platform plugin" in output or "xcb" in output:
        missing = missing_libraries() if missing is None else missing
        if missing:
            packages = " ".join(packages_for(missing))
            return (f"Qt's X11 (xcb) platform plugin cannot load: the system "
                    f"librar{'ies' if len(missing) > 1 else 'y'} {', '.join(missing)} "
                    f"{'are' if len(missing) > 1 else 'is'} missing; install "
                    f"{'them' if len(missing) > 1 else 'it'} with `make setup-gui` or sudo "
                    f"apt install {packages}, or use QT_QPA_PLATFORM=offscreen for tests")
        platform = environ.get("QT_QPA_PLATFORM") or "xcb"
        return (f"Qt cannot load its {platform!r} platform plugin, though every library it "
                "links against is found; run with QT_DEBUG_PLUGINS=1 to see why, or use "
                "QT_QPA_PLATFORM=offscreen for tests")
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    last = lines[-1] if lines else "it exited without a message"
    return (f"Qt cannot open a window ({last}); for tests use QT_QPA_PLATFORM=offscreen")
