"""``models_index.csv``: one row per model file, the head of the data line.

The index is a UTF-8 CSV with exactly the columns of :data:`COLUMNS`, in that
order. Each row becomes a frozen :class:`ModelEntry`; empty cells become
``None`` (head bounds, morph names) or ``""`` (split, status_reason, sha256,
notes).

Paths in the index are POSIX paths relative to a *models root*, which is
never stored in the file: :func:`models_root` picks it from an option, else
the environment variable ``THA_MODELS_ROOT``, else ``out/samples`` next to
the index file (where ``make samples`` writes the bundled sample characters,
which the committed index describes).

:func:`read_index` checks every row and raises one :class:`PipelineError`
listing every problem with its line number and column; :func:`write_index`
checks the same rules and replaces the file atomically, so a crash never
leaves half an index.

model_id rule (:func:`model_id_for`): the relative path without its suffix,
NFKC-normalised, lower-cased, each run of characters other than letters and
digits turned into one ``-``: ``animasa_miku_v2/miku_v2.pmd`` →
``animasa-miku-v2-miku-v2``. When that id is taken, ``-`` and the first 8 hex
digits of the SHA-256 of the path are appended. An id is assigned once, when
the row is added, and never recomputed, so it stays stable if files move.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import math
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path, PurePosixPath

from pipeline.atomic import atomic_write
from pipeline.errors import PipelineError

COLUMNS: tuple[str, ...] = (
    "model_id", "path", "source", "split", "status", "status_reason",
    "head_top_y", "head_bottom_y",
    "wink_left", "wink_right", "wink_both",
    "smile_wink_left", "smile_wink_right", "smile_wink_both",
    "mouth_open", "sha256", "notes",
)
STATUSES: tuple[str, ...] = ("auto", "confirmed", "rejected")
SPLITS: tuple[str, ...] = ("train", "validation", "test")
MODEL_SUFFIXES: tuple[str, ...] = (".pmx", ".pmd")
DEFAULT_INDEX = Path("models_index.csv")
MODELS_ROOT_ENV = "THA_MODELS_ROOT"
DEFAULT_ROOT = PurePosixPath("out/samples")  # relative to the index file's folder

FLOAT_COLUMNS = ("head_top_y", "head_bottom_y")
OPTIONAL_TEXT_COLUMNS = ("wink_left", "wink_right", "wink_both", "smile_wink_left",
                         "smile_wink_right", "smile_wink_both", "mouth_open")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ModelEntry:
    """One row of ``models_index.csv``.

    head_top_y, head_bottom_y: model units, y up (the file's y); None until
    annotated. Morph names: None where not annotated or the model lacks the
    morph; left/right are the character's own eyes, whatever the name says.
    """

    model_id: str
    path: str
    source: str
    split: str = ""
    status: str = "auto"
    status_reason: str = ""
    head_top_y: float | None = None
    head_bottom_y: float | None = None
    wink_left: str | None = None
    wink_right: str | None = None
    wink_both: str | None = None
    smile_wink_left: str | None = None
    smile_wink_right: str | None = None
    smile_wink_both: str | None = None
    mouth_open: str | None = None
    sha256: str = ""
    notes: str = ""


assert tuple(f.name for f in fields(ModelEntry)) == COLUMNS


# ------------------------------------------------------------------ roots and paths


def models_root(option: str | os.PathLike | None = None,
                index_path: str | os.PathLike = DEFAULT_INDEX) -> Path:
    """The folder that index paths are relative to.

    ``option`` if given, else ``$THA_MODELS_ROOT`` if set and non-empty, else
    ``out/samples`` in the folder of ``index_path``.
    """
    if option:
        return Path(option)
    env = os.environ.get(MODELS_ROOT_ENV)
    if env:
        return Path(env)
    return Path(index_path).parent / DEFAULT_ROOT


def resolve_model_path(entry: ModelEntry, root: str | os.PathLike) -> Path:
    """The model file of ``entry`` under ``root``."""
    problem = _path_problem(entry.path)
    if problem:
        raise PipelineError(f"model {entry.model_id}: {problem}")
    return Path(root).joinpath(*PurePosixPath(entry.path).parts)


def relative_model_path(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """``path`` as the POSIX path relative to ``root`` that the index stores."""
    try:
        relative = Path(os.path.abspath(path)).relative_to(os.path.abspath(root))
    except ValueError:
        raise PipelineError(f"{path} is not inside the models root {root}") from None
    return relative.as_posix()


def file_sha256(path: str | os.PathLike) -> str:
    """Lower-case hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    except OSError as error:
        raise PipelineError(f"{path}: cannot be read: {error.strerror or error}") from None
    return digest.hexdigest()


def model_id_for(path: str, taken: Iterable[str] = ()) -> str:
    """A readable, unique id for the model at relative ``path`` (see the module doc)."""
    stem = str(PurePosixPath(path).with_suffix("")) if PurePosixPath(path).suffix else path
    slug = re.sub(r"[\W_]+", "-", unicodedata.normalize("NFKC", stem).lower()).strip("-")
    slug = slug or "model"
    taken = set(taken)
    if slug not in taken:
        return slug
    candidate = f"{slug}-{hashlib.sha256(path.encode('utf-8')).hexdigest()[:8]}"
    n = 2
    while candidate in taken:  # only when a hash prefix also collides
        candidate = f"{slug}-{hashlib.sha256(f'{path}#{n}'.encode()).hexdigest()[:8]}"
        n += 1
    return candidate


def _path_problem(path: str) -> str | None:
    if not path:
        return "path is empty"
    if "\\" in path:
        return f"path {path!r} contains '\\'; write it with '/'"
    if path.startswith("/") or re.match(r"[A-Za-z]:", path):
        return f"path {path!r} is absolute; it must be relative to the models root"
    depth = 0
    for part in path.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return f"path {path!r} leaves the models root through '..'"
        elif part not in ("", "."):
            depth += 1
    if depth == 0:
        return f"path {path!r} names the models root itself, not a model file"
    return None


# ------------------------------------------------------------------ validation


def _is_finite_number(value: object) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _entry_problems(entry: ModelEntry) -> list[tuple[str, str]]:
    """(column, message) for everything wrong with one entry on its own."""
    problems = []
    if not entry.model_id:
        problems.append(("model_id", "model_id is empty"))
    elif re.search(r"[\s/\\]", entry.model_id):
        problems.append(("model_id", f"model_id {entry.model_id!r} contains whitespace or a "
                                     "slash"))
    problem = _path_problem(entry.path)
    if problem:
        problems.append(("path", problem))
    if entry.status not in STATUSES:
        problems.append(("status", f"status {entry.status!r} is not one of "
                                   f"{', '.join(STATUSES)}"))
    if entry.split not in ("", *SPLITS):
        problems.append(("split", f"split {entry.split!r} is not one of "
                                  f"{', '.join(SPLITS)} or empty"))
    for column in FLOAT_COLUMNS:
        value = getattr(entry, column)
        if value is not None and not _is_finite_number(value):
            problems.append((column, f"{column} {value!r} is not a finite number"))
    top, bottom = entry.head_top_y, entry.head_bottom_y
    if _is_finite_number(top) and _is_finite_number(bottom) and top <= bottom:
        problems.append(("head_top_y", f"head_top_y {top!r} is not above head_bottom_y "
                                       f"{bottom!r}"))
    for column in OPTIONAL_TEXT_COLUMNS:
        if getattr(entry, column) == "":
            problems.append((column, f"{column} is '' (use None for no morph)"))
    if entry.sha256 and not _SHA256.fullmatch(entry.sha256):
        problems.append(("sha256", f"sha256 {entry.sha256!r} is not 64 lower-case hex digits"))
    return problems


def _duplicate_problems(keyed: Sequence[tuple[str, ModelEntry]]) -> list[tuple[str, str, str]]:
    """(where, column, message) for model_ids and paths used twice; ``where`` labels rows."""
    problems = []
    for column in ("model_id", "path"):
        first: dict[str, str] = {}
        for where, entry in keyed:
            value = getattr(entry, column)
            if not value:
                continue
            if value in first:
                problems.append((where, column, f"duplicate {column} {value!r} (first at "
                                                f"{first[value]})"))
            else:
                first[value] = where
    return problems


def check_entries(entries: Sequence[ModelEntry]) -> None:
    """Raise one :class:`PipelineError` listing every problem of ``entries``."""
    keyed = [(f"entry {i} ({e.model_id or 'no model_id'})", e) for i, e in enumerate(entries)]
    problems = [f"{where}, column {column}: {message}"
                for where, entry in keyed for column, message in _entry_problems(entry)]
    problems += [f"{where}, column {column}: {message}"
                 for where, column, message in _duplicate_problems(keyed)]
    if problems:
        raise PipelineError(_listing("the index entries", problems))


def _listing(what: str, problems: list[str]) -> str:
    count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
    return f"{what}: {count}:\n" + "\n".join(f"  {p}" for p in problems)


# ------------------------------------------------------------------ reading


def _parse_float(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def read_index(path: str | os.PathLike) -> list[ModelEntry]:
    """Read and check ``models_index.csv``.

    Raises one :class:`PipelineError` that lists every problem as
    ``<file>:<line>, column <name>: <what is wrong>`` (line numbers count from 1,
    the header being line 1).
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise PipelineError(f"{path}: no such index file") from None
    except UnicodeDecodeError as error:
        line = error.object[:error.start].count(b"\n") + 1
        raise PipelineError(f"{path}:{line}: not UTF-8 ({error.reason}); save the index as "
                            "UTF-8") from None
    except OSError as error:
        raise PipelineError(f"{path}: cannot be read: {error.strerror or error}") from None
    entries, problems = _parse(text, path)
    if problems:
        raise PipelineError(_listing(str(path), problems))
    return entries


def _parse(text: str, path: Path) -> tuple[list[ModelEntry], list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return [], [f"{path}:1: the file is empty; expected the header "
                    f"{','.join(COLUMNS)}"]
    except csv.Error as error:
        return [], [f"{path}:1: {error}"]
    problems = []
    unknown = [c for c in header if c not in COLUMNS]
    missing = [c for c in COLUMNS if c not in header]
    doubled = sorted({c for c in header if header.count(c) > 1})
    if unknown:
        problems.append(f"{path}:1: unknown column(s) {', '.join(map(repr, unknown))}; "
                        f"the columns are {','.join(COLUMNS)}")
    if missing:
        problems.append(f"{path}:1: missing column(s) {', '.join(missing)}")
    if doubled:
        problems.append(f"{path}:1: column(s) {', '.join(doubled)} appear more than once")
    if problems:
        return [], problems

    entries: list[tuple[int, ModelEntry]] = []
    line = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            problems.append(f"{path}:{line}: {error}")
            break
        start, line = line, reader.line_num + 1
        if not row:
            continue  # a blank line
        where = f"{path}:{start}"
        if len(row) != len(header):
            problems.append(f"{where}: {len(row)} fields, the header has {len(header)}")
            continue
        cells = dict(zip(header, row, strict=True))
        values: dict[str, object] = {}
        for column in COLUMNS:
            cell = cells[column]
            if column in FLOAT_COLUMNS:
                values[column] = _parse_float(cell.strip()) if cell.strip() else None
            elif column in OPTIONAL_TEXT_COLUMNS:
                values[column] = cell or None
            else:
                values[column] = cell
        entry = ModelEntry(**values)
        for column, message in _entry_problems(entry):
            if column in FLOAT_COLUMNS and isinstance(getattr(entry, column), str):
                message = f"{column} {cells[column]!r} is not a number"
            problems.append(f"{where}, column {column}: {message}")
        entries.append((start, entry))
    problems += [f"{path}:{where}, column {column}: {message}"
                 for where, column, message in
                 _duplicate_problems([(str(n), e) for n, e in entries])]
    return [entry for _, entry in entries], problems


# ------------------------------------------------------------------ writing


def format_float(value: float | None) -> str:
    """The shortest text that reads back as exactly ``value`` ('' for None)."""
    return "" if value is None else repr(float(value))


def _cells(entry: ModelEntry, columns: Sequence[str] = COLUMNS) -> list[str]:
    cells = []
    for column in columns:
        value = getattr(entry, column)
        cells.append(format_float(value) if column in FLOAT_COLUMNS else (value or ""))
    return cells


def _csv_text(rows: Iterable[Sequence[str]], lineterminator: str = "\n") -> str:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator=lineterminator)
    writer.writerows(rows)
    return buffer.getvalue()


def write_index(path: str | os.PathLike, entries: Sequence[ModelEntry]) -> None:
    """Check ``entries`` and write them as the index at ``path``, atomically.

    UTF-8 without a BOM, ``\\n`` line ends, the columns of :data:`COLUMNS` in
    order, floats in their shortest round-trip form. The rows are written to a
    temporary file in the same folder, flushed to disk and moved over ``path``,
    so readers see the old index or the new one, never a mixture.
    """
    check_entries(entries)
    _write_atomically(Path(path), _csv_text([COLUMNS, *(_cells(e) for e in entries)]))


def _write_atomically(path: Path, text: str) -> None:
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as error:
        line = text[:error.start].count("\n") + 1
        raise PipelineError(f"{path}: line {line} cannot be written as UTF-8 "
                            f"({error.reason}); the index was left as it was") from None
    try:
        with atomic_write(path, "wb") as file:
            file.write(data)
    except OSError as error:
        raise PipelineError(f"{path}: cannot be written ({error.strerror or error}); "
                            "the index was left as it was") from None


def append_entries(path: str | os.PathLike, new: Sequence[ModelEntry]) -> None:
    """Add ``new`` rows to the end of the index at ``path``, atomically.

    The existing text is kept byte for byte (its column order and line ends
    too); the whole result is checked first. A missing file is created.
    """
    path = Path(path)
    if not path.exists():
        write_index(path, new)
        return
    old = read_index(path)
    check_entries([*old, *new])
    raw = path.read_bytes()
    text = raw.decode("utf-8-sig")
    bom = "\ufeff" if raw.startswith(b"\xef\xbb\xbf") else ""
    header = next(csv.reader(io.StringIO(text, newline="")))
    newline = "\r\n" if "\r\n" in text else "\n"
    if text and not text.endswith(("\n", "\r")):
        text += newline
    _write_atomically(path, bom + text + _csv_text((_cells(e, header) for e in new), newline))


def update_entries(entries: Sequence[ModelEntry],
                   replacements: Iterable[ModelEntry]) -> list[ModelEntry]:
    """``entries`` with each row replaced by the replacement of the same model_id.

    Order is kept. A replacement whose model_id is not in ``entries`` is an
    error (add rows with :func:`append_entries` or by concatenation).
    """
    by_id = {}
    for replacement in replacements:
        by_id[replacement.model_id] = replacement
    known = {entry.model_id for entry in entries}
    unknown = [model_id for model_id in by_id if model_id not in known]
    if unknown:
        raise PipelineError(f"no model(s) {', '.join(map(repr, unknown))} in the index to "
                            "replace")
    return [by_id.get(entry.model_id, entry) for entry in entries]


def update_index(path: str | os.PathLike, replacements: Iterable[ModelEntry]) -> list[ModelEntry]:
    """Read the index, replace rows by model_id, write it back; return the new rows."""
    entries = update_entries(read_index(path), replacements)
    write_index(path, entries)
    return entries


# ------------------------------------------------------------------ scanning


def find_model_files(folder: str | os.PathLike) -> list[Path]:
    """Every .pmx/.pmd file under ``folder`` (any letter case, recursively), sorted."""
    found = []
    for parent, dirs, files in os.walk(folder):
        dirs.sort()
        found += [Path(parent, name) for name in files
                  if os.path.splitext(name)[1].lower() in MODEL_SUFFIXES]
    return sorted(found, key=lambda p: Path(p).relative_to(folder).as_posix())


def source_for(file: str | os.PathLike, folder: str | os.PathLike) -> str:
    """The split group of a model found under ``folder``.

    The first folder below ``folder`` on the way to the file (the franchise or
    modeller folder: ``lib/animasa_miku_v2/miku_v2.pmd`` → ``animasa_miku_v2``).
    Files lying directly in ``folder`` all share one source: the name of
    ``folder`` itself, so loose files never leak across splits.
    """
    relative = Path(os.path.abspath(file)).relative_to(os.path.abspath(folder))
    if len(relative.parts) > 1:
        return relative.parts[0]
    return Path(os.path.abspath(folder)).name or "root"


def scan_entries(folder: str | os.PathLike, root: str | os.PathLike,
                 existing: Sequence[ModelEntry],
                 progress=None) -> tuple[list[ModelEntry], list[str]]:
    """New entries for the model files under ``folder`` that ``existing`` lacks.

    Returns (new entries, relative paths already present). ``progress``, if
    given, wraps the list of files to hash (e.g. ``click.progressbar``).
    """
    known_paths = {entry.path for entry in existing}
    taken = {entry.model_id for entry in existing}
    files = find_model_files(folder)
    present, todo = [], []
    for file in files:
        relative = relative_model_path(file, root)
        (present if relative in known_paths else todo).append((file, relative))
    new = []
    items = progress(todo) if progress else contextlib.nullcontext(todo)
    with items as bar:
        for file, relative in bar:
            model_id = model_id_for(relative, taken)
            taken.add(model_id)
            new.append(ModelEntry(model_id=model_id, path=relative,
                                  source=source_for(file, folder), status="auto",
                                  sha256=file_sha256(file)))
    return new, [relative for _, relative in present]



# ------------------------------------------------------------------ the sample characters


def sample_entries(samples_dir: str | os.PathLike) -> list[ModelEntry]:
    """Confirmed rows for the sample characters already written under ``samples_dir``.

    Head bounds and morph names come from :func:`mmdrender.samples.sample_truth`;
    ``source`` is the sample's name; paths are relative to ``samples_dir``;
    ``split`` is left empty.
    """
    from mmdrender.samples import SAMPLE_NAMES, sample_truth  # numpy geometry: only when used

    entries, taken = [], set()
    for name in SAMPLE_NAMES:
        truth = sample_truth(name)
        path = f"{name}/{name}.pmx"
        model_id = model_id_for(path, taken)
        taken.add(model_id)
        entries.append(ModelEntry(
            model_id=model_id, path=path, source=name, status="confirmed",
            status_reason="sample character: truth from mmdrender.samples",
            head_top_y=float(truth.head_top_y), head_bottom_y=float(truth.head_bottom_y),
            wink_left=truth.wink_left, wink_right=truth.wink_right, wink_both=truth.wink_both,
            smile_wink_left=truth.smile_wink_left, smile_wink_right=truth.smile_wink_right,
            smile_wink_both=truth.smile_wink_both, mouth_open=truth.mouth_open,
            sha256=file_sha256(Path(samples_dir, name, f"{name}.pmx")),
        ))
    return entries
