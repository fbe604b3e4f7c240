"""The ``pipeline`` command line: index, splits, dataset runs, verification.

Every command exits with status 1 and prints ``error: ...`` (for a bad index:
every problem, one per line, with its line number and column) when its input
is not usable; it never prints a traceback for a problem the user can fix.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import click

from pipeline.dataset_cli import dataset, preview, verify
from pipeline.errors import PipelineError, reports_errors
from pipeline.index import (
    DEFAULT_INDEX,
    MODELS_ROOT_ENV,
    SPLITS,
    duplicate_files,
    modify_index,
    sample_entries,
    scan_index,
    write_index,
)
from pipeline.motion_cli import clip_command, motion2pose_command
from pipeline.poses_cli import poses_command
from pipeline.splits import (
    DEFAULT_FRACTIONS,
    DEFAULT_SEED,
    assign_splits,
    parse_assignments,
    parse_fractions,
    split_counts,
)
from pipeline.train.cli import eval_command, train_command

PROGRESS_MIN_FILES = 20  # fewer files than this hash too quickly for a bar to help
SAMPLE_FRACTIONS = (0.6, 0.2, 0.2)  # 5 samples -> 3 train, 1 validation, 1 test
SAMPLE_SEED = 0


index_option = click.option(
    "--index", "index_path", type=click.Path(dir_okay=False, path_type=Path),
    default=str(DEFAULT_INDEX), show_default=True, help="The models index (CSV).")


@click.group()
@click.version_option(package_name="tha-data-engine")
def main():
    """Build THA-style datasets from a library of MMD models."""


main.add_command(dataset)
main.add_command(verify)
main.add_command(preview)
main.add_command(poses_command)
main.add_command(motion2pose_command)
main.add_command(clip_command)
main.add_command(train_command)
main.add_command(eval_command)


@main.command()
@click.argument("folder", metavar="DIR",
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@index_option
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Models root that stored paths are relative to; DIR must lie inside it. "
                   "[default: $THA_MODELS_ROOT when DIR lies inside it, else DIR]")
@click.option("--update-changed", is_flag=True,
              help="Also re-hash files already indexed; a file that changed gets its new "
                   "sha256 and status auto (its annotation may no longer fit).")
@click.option("--keep-duplicates", is_flag=True,
              help="Index a file even when the same bytes are already indexed under another "
                   "path (split keeps such copies in one split).")
@click.option("--exclude", "exclude", multiple=True, metavar="PATTERN",
              help="Leave out files whose path below the models root, or any folder on it, "
                   "matches this glob (repeatable): --exclude _robustness --exclude 'old*' "
                   "--exclude 'maker/tests/*'.")
@reports_errors
def scan(folder: Path, index_path: Path, root: Path | None, update_changed: bool,
         keep_duplicates: bool, exclude: tuple[str, ...]):
    """Add every .pmx/.pmd under DIR that the index lacks (status auto).

    The source of a model (what splits group by) is the first folder below
    the models root on its path, whichever DIR is scanned; files directly in
    the root share the root's own name. Source names are compared without
    regard to case, spaces or Unicode form; the first spelling is kept.
    Existing rows are kept byte for byte; new rows are appended in path order.
    A file whose bytes are already indexed under another path is skipped
    (--keep-duplicates adds it). A file that cannot be indexed (unreadable, a
    broken link, a name that is not UTF-8) is skipped with its reason, the rest
    is saved, and the exit status is 1.
    """
    if root is None:  # the root every other command uses, when DIR is part of it
        env = os.environ.get(MODELS_ROOT_ENV)
        inside = env and folder.resolve().is_relative_to(Path(env).resolve())
        root = Path(env) if inside else folder

    def progress(items):
        if len(items) < PROGRESS_MIN_FILES:
            return contextlib.nullcontext(items)
        return click.progressbar(items, label="hashing model files", file=sys.stderr)

    result = scan_index(index_path, folder, root, update_changed=update_changed,
                        keep_duplicates=keep_duplicates, progress=progress, exclude=exclude)
    for name, reason in result.skipped:
        click.echo(f"skipped {name}: {reason}", err=True)
    for path, original in result.copies:
        if keep_duplicates:
            click.echo(f"warning: {path} is the same file as {original.model_id} "
                       f"({original.path}); both are indexed, and split keeps them in one "
                       "split", err=True)
        else:
            click.echo(f"skipped {path}: the same file as {original.model_id} "
                       f"({original.path}); pass --keep-duplicates to index it too", err=True)
    for old, new in result.changed:
        click.echo(f"changed {new.path}: sha256 refreshed, status auto (was {old.status})")
    summary = f"added {len(result.added)} model(s), {result.present} already indexed"
    if update_changed:
        summary += f", {len(result.changed)} changed file(s) back to status auto"
    if result.copies and not keep_duplicates:
        summary += f", {len(result.copies)} duplicate file(s) skipped"
    if result.skipped:
        summary += f", {len(result.skipped)} file(s) skipped"
    if exclude:
        summary += f", {result.excluded} file(s) excluded"
    click.echo(f"{index_path}: {summary}; paths are relative to {root} (pass it as the "
               f"models root, e.g. THA_MODELS_ROOT={root})")
    if result.skipped:
        raise PipelineError(f"{len(result.skipped)} file(s) could not be indexed (listed "
                            "above with the reason); the other models were saved")


@main.command()
@index_option
@click.option("--fractions", default=",".join(map(str, DEFAULT_FRACTIONS)), show_default=True,
              help="Target share of models for train,validation,test; sums to 1.")
@click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True,
              help="Decides which sources go where; the same seed gives the same splits.")
@click.option("--reassign", is_flag=True,
              help="Assign every row anew, ignoring splits already in the index.")
@click.option("--assign", "assign_items", multiple=True, metavar="SPLIT=PATTERN,...",
              help="Put the sources (or models' sources) whose name or model_id matches a "
                   "glob in SPLIT, before the fractions share out the rest (repeatable): "
                   "--assign validation=mokou --assign test='haku*'.")
@click.option("--every-split", is_flag=True,
              help="Give every split with a share at least one source first (its smallest): "
                   "for libraries of few sources.")
@reports_errors
def split(index_path: Path, fractions: str, seed: int, reassign: bool,
          assign_items: tuple[str, ...], every_split: bool):
    """Assign train/validation/test by source, so no source spans two splits.

    Sources holding byte-identical files (same sha256) count as one and share
    a split. Rejected models get no split; rows that already have one keep it
    unless --reassign.
    """
    targets = parse_fractions(fractions)
    assignments = parse_assignments(assign_items)
    before = []

    def assign(entries):
        before.extend(entries)
        return assign_splits(entries, targets, seed=seed, reassign=reassign,
                             assignments=assignments, every_split=every_split)

    result = modify_index(index_path, assign)
    for group in duplicate_files(result):
        click.echo(f"warning: one file under several model ids "
                   f"({', '.join(e.model_id for e in group)}; sha256 {group[0].sha256[:12]}): "
                   "they share a split; reject all but one if they are the same model",
                   err=True)
    changed = sum(1 for old, new in zip(before, result, strict=True) if old != new)
    click.echo(f"{index_path}: {changed} row(s) changed")
    echo_counts(result)
    counts = split_counts(result)
    sources = sum(count.sources for name, count in counts.items() if name)
    for name, share in zip(SPLITS, targets, strict=True):
        if share > 0 and counts[name].models == 0:
            click.echo(f"warning: the {name} split got no model: splits are made of whole "
                       f"sources (the first folders below the models root), and {sources} "
                       f"source(s) cannot give {name} a share of {share:g}; add sources, "
                       "pass --every-split, --assign sources to it, or change --fractions",
                       err=True)


def echo_counts(entries) -> None:
    counts = split_counts(entries)
    click.echo(f"  {'split':<12}{'models':>8}{'sources':>9}")
    for name in (*SPLITS, ""):
        if name in counts:
            label = name or "(none)"
            click.echo(f"  {label:<12}{counts[name].models:>8}{counts[name].sources:>9}")


@main.command("index-samples")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--samples-dir", type=click.Path(file_okay=False, path_type=Path),
              default="out/samples", show_default=True,
              help="Where the sample characters are written; stored paths are relative to it.")
@reports_errors
def index_samples(out: Path, samples_dir: Path):
    """Write the sample characters and an index OUT describing them.

    Rows are confirmed, with head bounds and morph names from the samples'
    ground truth, and split 3 train / 1 validation / 1 test. The committed
    models_index.csv is this command's output for the default --samples-dir.
    """
    from mmdrender.errors import MMDRenderError
    from mmdrender.samples import write_samples  # numpy geometry: load only when used

    try:
        write_samples(samples_dir)
    except (MMDRenderError, OSError) as error:
        raise PipelineError(f"cannot write the sample characters to {samples_dir}: "
                            f"{error}") from None
    entries = assign_splits(sample_entries(samples_dir), SAMPLE_FRACTIONS, seed=SAMPLE_SEED)
    write_index(out, entries)
    click.echo(f"{out}: {len(entries)} sample model(s), paths relative to {samples_dir}")
    echo_counts(entries)
