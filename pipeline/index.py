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

Paths are stored in normal form: no ``.``, ``..`` or empty parts, so one file
has one spelling (``a/./b.pmx`` is refused, naming ``a/b.pmx``). ``source``
(what splits group by) is the first folder below the models root; names are
stored stripped and in Unicode NFC, and compared by :func:`source_key`
(NFKC, case-folded, runs of spaces as one), so ``Touhou`` and ``touhou `` are
one source whose first spelling is kept.

Every change to an index file (:func:`write_index`, :func:`append_entries`,
:func:`update_index`, :func:`modify_index`, :func:`scan_index`) holds an
exclusive lock on the sibling file ``<index>.lock`` and re-reads the index
under it, so two programs writing one index never lose each other's changes.
Reading needs no lock: the file is always replaced whole.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import fnmatch
import hashlib
import io
import math
import os
import posixpath
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields, make_dataclass, replace
from pathlib import Path, PurePosixPath

from pipeline.atomic import atomic_write
from pipeline.errors import PipelineError
from pipeline.roles import (
    EYE_BONE_COLUMNS,
    HALVES,
    IRIS_COLUMNS,
    LEGACY_COLUMNS,
    WIDE_COLUMNS,
    WIDE_FLOAT_COLUMNS,
    WIDE_TEXT_COLUMNS,
    format_halves,
    halves_problem,
    morph_column,
)

COLUMNS: tuple[str, ...] = (*LEGACY_COLUMNS, *WIDE_COLUMNS)
STATUSES: tuple[str, ...] = ("auto", "confirmed", "rejected")
SPLITS: tuple[str, ...] = ("train", "validation", "test")
MODEL_SUFFIXES: tuple[str, ...] = (".pmx", ".pmd")
DEFAULT_INDEX = Path("models_index.csv")
MODELS_ROOT_ENV = "THA_MODELS_ROOT"
DEFAULT_ROOT = PurePosixPath("out/samples")  # relative to the index file's folder

FLOAT_COLUMNS = ("head_top_y", "head_bottom_y", *WIDE_FLOAT_COLUMNS)
OPTIONAL_TEXT_COLUMNS = ("wink_left", "wink_right", "wink_both", "smile_wink_left",
                         "smile_wink_right", "smile_wink_both", "mouth_open", *WIDE_TEXT_COLUMNS)
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class _Row:
    """The columns every index has had (THA1's annotation); see :class:`ModelEntry`."""

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


def _wide_field(column: str):
    if column == HALVES:
        return (column, str, field(default=""))
    kind = float if column in WIDE_FLOAT_COLUMNS else str
    return (column, kind | None, field(default=None))


ModelEntry = make_dataclass(
    "ModelEntry", [_wide_field(column) for column in WIDE_COLUMNS], bases=(_Row,), frozen=True,
    namespace={"__module__": __name__, "__doc__": """One row of ``models_index.csv``.

    head_top_y, head_bottom_y: model units, y up (the file's y); None until
    annotated. Morph names: None where not annotated or the model lacks the
    morph; left/right are the character's own eyes, whatever the name says.
    After THA1's columns come the wide schemas' (:data:`pipeline.roles.WIDE_COLUMNS`,
    one field each, generated from the schema registry so no name is spelled
    twice): a morph per group and side, ``halves``, the eye bones and iris
    angles (float degrees) and the body bones; see :mod:`pipeline.roles`.
    """})
ModelEntry.__qualname__ = "ModelEntry"


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
    """The model file of ``entry`` under ``root``.

    A path that a symbolic link takes out of the root is refused, as texture
    references are: the model's textures would be looked for outside the root
    and refused, so it would render untextured.
    """
    problem = _path_problem(entry.path)
    if problem:
        raise PipelineError(f"model {entry.model_id}: {problem}")
    path = Path(root).joinpath(*PurePosixPath(entry.path).parts)
    real, real_root = path.resolve(), Path(root).resolve()
    if real != real_root and real_root not in real.parents:
        raise PipelineError(f"model {entry.model_id}: {entry.path} leads outside the models "
                            f"root {root} (a link to {real}); models and their textures are "
                            "read only under the root: copy the model into it, or pass a "
                            "--root that holds both")
    return path


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
    if len(slug.encode("utf-8")) > MODEL_ID_BYTES - 9:  # room for "-<hash>": cut, then hash
        while len(slug.encode("utf-8")) > MODEL_ID_BYTES - 9:
            slug = slug[:-1]
        slug = slug.rstrip("-")
        taken.add(slug)  # a cut slug always carries the hash of the whole path
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
    normal = posixpath.normpath(path)
    if normal == ".." or normal.startswith("../"):
        return f"path {path!r} leaves the models root through '..'"
    if normal == ".":
        return f"path {path!r} names the models root itself, not a model file"
    if normal != path:
        return (f"path {path!r} is not in normal form (no '.', '..' or empty parts, so one "
                f"file has one spelling); write it as {normal!r}")
    return None


def source_key(source: str) -> str:
    """What two sources must share to be one source: NFKC, case-folded, spaces squeezed."""
    return " ".join(unicodedata.normalize("NFKC", source).casefold().split())


def clean_source(name: str) -> str:
    """A folder name as a stored source: NFC, stripped."""
    return unicodedata.normalize("NFC", name).strip()


# ------------------------------------------------------------------ validation


def _is_finite_number(value: object) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


MODEL_ID_BYTES = 200  # a model_id names files (a running model's marker): 255 bytes at most


def _model_id_problem(model_id: str) -> str | None:
    """Why ``model_id`` cannot be an id (it must also serve as a file name), or None."""
    if not model_id:
        return "model_id is empty"
    if re.search(r"[\s/\\]", model_id):
        return f"model_id {model_id!r} contains whitespace or a slash"
    if any(ord(c) < 32 or ord(c) == 127 for c in model_id):
        return f"model_id {model_id!r} contains a control character (a NUL byte?)"
    if model_id in (".", ".."):
        return f"model_id {model_id!r} is not a usable name (it means a folder)"
    size = len(model_id.encode("utf-8", errors="surrogatepass"))
    if size > MODEL_ID_BYTES:
        return (f"model_id {model_id[:40]!r}... is {size} bytes long; at most "
                f"{MODEL_ID_BYTES} (it names files, and file systems allow 255 bytes a name)")
    return None


def _entry_problems(entry: ModelEntry) -> list[tuple[str, str]]:
    """(column, message) for everything wrong with one entry on its own."""
    problems = []
    texts = [(column, value) for column in COLUMNS
             if isinstance(value := getattr(entry, column), str)]
    if not _is_utf8("".join(value for _, value in texts)):  # one encode for the usual case
        problems += [(column, f"{column} {value!r} is not UTF-8 text (a file name with "
                              "undecodable bytes?)") for column, value in texts
                     if not _is_utf8(value)]
    problem = _model_id_problem(entry.model_id)
    if problem:
        problems.append(("model_id", problem))
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
    if not isinstance(entry.halves, str):
        problems.append((HALVES, f"halves {entry.halves!r} is not text"))
    elif entry.halves and (problem := halves_problem(entry.halves)):
        problems.append((HALVES, problem))
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


def check_entries(entries: Sequence[ModelEntry], checked: Sequence[ModelEntry] = ()) -> None:
    """Raise one :class:`PipelineError` listing every problem of ``entries``.

    Rows in ``checked`` (the very objects, e.g. as just read) are known to be
    fine on their own; only their model_ids and paths are compared with the rest.
    """
    known = {id(entry) for entry in checked}
    keyed = [(f"entry {i} ({e.model_id or 'no model_id'})", e) for i, e in enumerate(entries)]
    problems = [f"{where}, column {column}: {message}"
                for where, entry in keyed if id(entry) not in known
                for column, message in _entry_problems(entry)]
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
    missing = [c for c in LEGACY_COLUMNS if c not in header]  # wide columns may be absent
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
            cell = cells.get(column, "")  # a wide column an older index lacks is empty
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


def row_cells(entry: ModelEntry, columns: Sequence[str] = COLUMNS) -> list[str]:
    """The cells of ``entry`` under ``columns`` as the index file stores them."""
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


@contextlib.contextmanager
def index_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold the exclusive lock of the index at ``path`` (``<path>.lock``, flock).

    Every change to an index goes through this lock, so read-modify-write
    cycles of different processes never interleave. Not re-entrant: the
    functions below take it once and call only unlocked helpers inside.
    """
    lock = Path(path).with_name(Path(path).name + ".lock")
    try:
        try:
            descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except PermissionError:  # another user's lock file: flock works read-only too
            descriptor = os.open(lock, os.O_RDONLY)
    except OSError as error:
        raise PipelineError(f"{lock}: cannot create the index's lock file "
                            f"({error.strerror or error}); the index folder must exist and "
                            "be writable") from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def write_index(path: str | os.PathLike, entries: Sequence[ModelEntry]) -> None:
    """Check ``entries`` and write them as the index at ``path``, atomically.

    UTF-8 without a BOM, ``\\n`` line ends, the columns of :data:`COLUMNS` in
    order, floats in their shortest round-trip form. The rows are written to a
    temporary file in the same folder, flushed to disk and moved over ``path``,
    so readers see the old index or the new one, never a mixture. The whole
    file is replaced: to change some rows use :func:`update_index` or
    :func:`modify_index`, which re-read the index under its lock.
    """
    with index_lock(path):
        _write_entries(Path(path), entries)


def _write_entries(path: Path, entries: Sequence[ModelEntry],
                   checked: Sequence[ModelEntry] = ()) -> None:
    check_entries(entries, checked)
    columns = layout(entries, _header(path))
    _write_atomically(path, _csv_text([columns, *(row_cells(e, columns) for e in entries)]))


def has_wide_values(entry: ModelEntry) -> bool:
    """Whether ``entry`` fills any column of the wide schemas (:mod:`pipeline.roles`)."""
    return any(getattr(entry, column) not in (None, "") for column in WIDE_COLUMNS)


def layout(entries: Sequence[ModelEntry], header: Sequence[str] | None = None
           ) -> tuple[str, ...]:
    """The columns an index of ``entries`` is written with.

    Every column once the file has the wide ones or a row fills one; until
    then THA1's seventeen alone, so the index of a library annotated for
    THA1 keeps its shape (and its diffs stay readable).
    """
    if header is not None and set(WIDE_COLUMNS) <= set(header):
        return COLUMNS
    return COLUMNS if any(has_wide_values(e) for e in entries) else LEGACY_COLUMNS


def _header(path: Path) -> tuple[str, ...] | None:
    """The header of the index file at ``path``; None when there is none to read."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as file:
            return tuple(next(csv.reader(file), ()))
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def _write_atomically(path: Path, text: str) -> None:
    data = text.encode("utf-8")  # check_entries made sure every cell is UTF-8 text
    try:
        with atomic_write(path, "wb") as file:
            file.write(data)
    except OSError as error:
        raise PipelineError(f"{path}: cannot be written ({error.strerror or error}); "
                            "the index was left as it was") from None


def append_entries(path: str | os.PathLike, new: Sequence[ModelEntry]) -> None:
    """Add ``new`` rows to the end of the index at ``path``, atomically, under its lock.

    The existing text is kept byte for byte (its column order and line ends
    too); the whole result is checked first. A missing file is created.
    """
    with index_lock(path):
        _append_entries(Path(path), new)


def _append_entries(path: Path, new: Sequence[ModelEntry]) -> None:
    if not path.exists():
        _write_entries(path, new)
        return
    old = read_index(path)
    check_entries([*old, *new])
    header = _header(path) or LEGACY_COLUMNS
    if layout(new, header) != LEGACY_COLUMNS and not set(WIDE_COLUMNS) <= set(header):
        _write_entries(path, [*old, *new], checked=old)  # the first wide value adds the columns
        return
    raw = path.read_bytes()
    text = raw.decode("utf-8-sig")
    bom = "\ufeff" if raw.startswith(b"\xef\xbb\xbf") else ""
    header = next(csv.reader(io.StringIO(text, newline="")))
    newline = "\r\n" if "\r\n" in text else "\n"
    if text and not text.endswith(("\n", "\r")):
        text += newline
    _write_atomically(path, bom + text + _csv_text((row_cells(e, header) for e in new), newline))


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


def modify_index(path: str | os.PathLike,
                 change: Callable[[list[ModelEntry]], list[ModelEntry]]) -> list[ModelEntry]:
    """Under the index's lock: read it, ``change`` the rows, write them; return them.

    ``change`` gets the rows as they are now on disk (changes other programs
    made meanwhile included) and must not write the index itself.
    """
    path = Path(path)
    if not path.exists():
        raise PipelineError(f"{path}: no such index file")
    with index_lock(path):
        current = read_index(path)
        entries = change(list(current))
        _write_entries(path, entries, checked=current)  # unchanged rows were checked on reading
    return entries


def update_index(path: str | os.PathLike, replacements: Iterable[ModelEntry]) -> list[ModelEntry]:
    """Read the index, replace rows by model_id, write it back; return the new rows.

    Done under the index's lock, so rows other programs change meanwhile are kept.
    """
    replacements = list(replacements)
    return modify_index(path, lambda entries: update_entries(entries, replacements))


def duplicate_files(entries: Sequence[ModelEntry]) -> list[list[ModelEntry]]:
    """Groups of two or more rows (rejected ones aside) whose files have one sha256.

    Byte-identical files under several model ids: allowed (splits keep them
    together), but usually a re-upload to reject.
    """
    by_hash: dict[str, list[ModelEntry]] = {}
    for entry in entries:
        if entry.sha256 and entry.status != "rejected":
            by_hash.setdefault(entry.sha256, []).append(entry)
    return [group for group in by_hash.values() if len(group) > 1]


# ------------------------------------------------------------------ scanning


def find_model_files(folder: str | os.PathLike,
                     on_error: Callable[[OSError], None] | None = None) -> list[Path]:
    """Every .pmx/.pmd file under ``folder`` (any letter case, recursively), sorted.

    A folder that cannot be listed is passed to ``on_error`` (default: left out).
    """
    found = []
    for parent, dirs, files in os.walk(folder, onerror=on_error):
        dirs.sort()
        found += [Path(parent, name) for name in files
                  if os.path.splitext(name)[1].lower() in MODEL_SUFFIXES]
    return sorted(found, key=lambda p: Path(p).relative_to(folder).as_posix())


def source_for(relative: str, root: str | os.PathLike) -> str:
    """The split group of the model at ``relative`` (an index path under ``root``).

    The first folder below the models root (the franchise or modeller folder:
    ``animasa_miku_v2/miku_v2.pmd`` → ``animasa_miku_v2``), whichever folder
    was scanned. Files lying directly in the root all share one source: the
    root's own name, so loose files never leak across splits. NFC, stripped.
    """
    parts = PurePosixPath(relative).parts
    name = parts[0] if len(parts) > 1 else Path(os.path.abspath(root)).name
    return clean_source(name) or "root"


@dataclass
class ScanResult:
    """What :func:`scan_index` did.

    added: new rows, in path order. changed: (old row, new row) for files that
    changed since they were indexed (``update_changed``). present: files
    already indexed.
    copies: (path, indexed row with the same bytes) for files found again
    under another path: skipped, or added too with ``keep_duplicates``.
    skipped: (file name as repr or path, reason) for files that cannot be indexed.
    excluded: files an exclude pattern left out.
    """

    added: list[ModelEntry] = field(default_factory=list)
    changed: list[tuple[ModelEntry, ModelEntry]] = field(default_factory=list)
    excluded: int = 0  # files left out by an exclude pattern
    present: int = 0
    copies: list[tuple[str, ModelEntry]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def excluded(relative: str, patterns: Sequence[str]) -> str | None:
    """The first of ``patterns`` (globs) that leaves out the file at index path ``relative``:
    matched against the whole path or any folder on it (``_robustness`` or ``*/old/*``)."""
    parts = PurePosixPath(relative).parts
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pattern in patterns:
        pattern = pattern.strip("/")
        if any(fnmatch.fnmatchcase(text, pattern) for text in prefixes) or \
                any(fnmatch.fnmatchcase(part, pattern) for part in parts[:-1]):
            return pattern
    return None


def scan_index(index_path: str | os.PathLike, folder: str | os.PathLike,
               root: str | os.PathLike, *, update_changed: bool = False,
               keep_duplicates: bool = False, progress=None,
               exclude: Sequence[str] = ()) -> ScanResult:
    """Add the model files under ``folder`` that the index lacks; write the index.

    Paths are relative to ``root``, which must contain ``folder``. A file that
    cannot be indexed (unreadable, a broken link, a name that is not UTF-8 or
    holds a backslash) is skipped with its reason in ``skipped``; the others
    are written. A file with the same bytes as an indexed one (or an earlier
    new one) is left out unless ``keep_duplicates``. ``update_changed``
    re-hashes files already indexed: a row whose sha256 differs gets the new
    hash, status auto and a note (its annotation may no longer fit).
    Files ``excluded`` by a pattern of ``exclude`` are left out (counted).
    Existing rows are kept byte for byte unless a row changed. Hashing runs
    before the index is locked; the rows are worked out from the index as it
    is when the lock is held. ``progress`` wraps the list of files to hash.
    """
    index_path = Path(index_path)
    relative_model_path(folder, root)  # folder inside root, or one clear error
    existing = read_index(index_path) if index_path.exists() else []
    known = {entry.path for entry in existing}
    result = ScanResult()

    def unlistable(error: OSError) -> None:
        name = relative_model_path(error.filename, root) + "/"
        result.skipped.append((name, f"the folder cannot be listed ({error.strerror})"))

    todo = []
    for file in find_model_files(folder, unlistable):
        relative = relative_model_path(file, root)
        if exclude and excluded(relative, exclude):
            result.excluded += 1
            continue
        problem = _file_name_problem(relative)
        if problem:
            result.skipped.append((repr(relative), problem))
        elif update_changed or relative not in known:
            todo.append((file, relative))
        else:
            result.present += 1
    hashes = {}
    items = progress(todo) if progress else contextlib.nullcontext(todo)
    with items as bar:
        for file, relative in bar:
            try:
                hashes[relative] = _hash_model_file(file)
            except PipelineError as error:
                result.skipped.append((relative, str(error)))
    with index_lock(index_path):
        current = read_index(index_path) if index_path.exists() else []
        _plan_scan(result, current, hashes, root, update_changed, keep_duplicates)
        if result.changed:
            _write_entries(index_path,
                           [*update_entries(current, [new for _, new in result.changed]),
                            *result.added])
        elif result.added or not index_path.exists():
            _append_entries(index_path, result.added)
    return result


def _file_name_problem(relative: str) -> str | None:
    """Why a found file's relative path cannot be stored in the index, if it cannot."""
    if not _is_utf8(relative):
        return ("the name is not UTF-8 (mangled by a zip tool?), so the index cannot store "
                f"it; {_rename_hint(relative)} and scan again")
    if "\\" in relative:
        return "the name contains '\\', which index paths cannot hold; rename it and scan again"
    problem = _path_problem(relative)
    if problem:
        return f"the index cannot store it ({problem}); rename it and scan again"
    return None


def _rename_hint(relative: str) -> str:
    """A UTF-8 name for a path whose undecodable parts read as Shift-JIS, if they do."""
    parts = []
    for part in relative.split("/"):
        if not _is_utf8(part):
            try:
                part = os.fsencode(part).decode("cp932")
            except UnicodeDecodeError:
                return "rename it to a UTF-8 name"
        parts.append(part)
    return f"rename it to {'/'.join(parts)!r} (read as Shift-JIS)"


def _hash_model_file(file: Path) -> str:
    if file.is_symlink() and not file.exists():
        raise PipelineError(f"a broken symbolic link (to {os.readlink(file)!r})")
    try:
        return file_sha256(file)
    except PipelineError as error:
        raise PipelineError(str(error).removeprefix(f"{file}: ")) from None


def _plan_scan(result: ScanResult, current: Sequence[ModelEntry], hashes: dict[str, str],
               root: str | os.PathLike, update_changed: bool, keep_duplicates: bool) -> None:
    by_path = {entry.path: entry for entry in current}
    by_hash: dict[str, ModelEntry] = {}
    spelling: dict[str, str] = {}
    for entry in current:
        if entry.sha256:
            by_hash.setdefault(entry.sha256, entry)
        spelling.setdefault(source_key(entry.source), entry.source)
    taken = {entry.model_id for entry in current}
    for relative, sha256 in hashes.items():
        old = by_path.get(relative)
        if old is not None:
            result.present += 1
            if update_changed and old.sha256 and old.sha256 != sha256:
                result.changed.append((old, _changed_file(old, sha256)))
            continue
        copy_of = by_hash.get(sha256)
        if copy_of is not None:
            result.copies.append((relative, copy_of))
            if not keep_duplicates:
                continue
        source = source_for(relative, root)
        source = spelling.setdefault(source_key(source), source)
        model_id = model_id_for(relative, taken)
        taken.add(model_id)
        new = ModelEntry(model_id=model_id, path=relative, source=source, status="auto",
                         sha256=sha256)
        result.added.append(new)
        by_path[relative] = new
        by_hash.setdefault(sha256, new)


def _changed_file(entry: ModelEntry, sha256: str) -> ModelEntry:
    note = (f"rescan: file changed; it was {entry.status} with sha256 {entry.sha256}"
            + (f" ({entry.status_reason})" if entry.status_reason else ""))
    return replace(entry, sha256=sha256, status="auto",
                   status_reason="the model file changed since it was indexed; check its "
                                 "head bounds and morphs",
                   notes=f"{entry.notes}\n{note}" if entry.notes else note)


# ------------------------------------------------------------------ the sample characters


def sample_entries(samples_dir: str | os.PathLike) -> list[ModelEntry]:
    """Confirmed rows for the sample characters already written under ``samples_dir``.

    Head bounds, morph names (every group's), bones and iris angles come from
    :func:`mmdrender.samples.sample_truth`;
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
        wide = {morph_column(g, side): morph for (g, side), morph in truth.faces.items()}
        wide |= {EYE_BONE_COLUMNS[side]: bone for side, bone in truth.eye_bones.items()}
        wide |= {IRIS_COLUMNS[(side, end)]: float(angle)
                 for side, ends in truth.iris.items() for end, angle in ends.items()}
        entries.append(ModelEntry(
            model_id=model_id, path=path, source=name, status="confirmed",
            status_reason="sample character: truth from mmdrender.samples",
            head_top_y=float(truth.head_top_y), head_bottom_y=float(truth.head_bottom_y),
            wink_left=truth.wink_left, wink_right=truth.wink_right, wink_both=truth.wink_both,
            smile_wink_left=truth.smile_wink_left, smile_wink_right=truth.smile_wink_right,
            smile_wink_both=truth.smile_wink_both, mouth_open=truth.mouth_open,
            sha256=file_sha256(Path(samples_dir, name, f"{name}.pmx")),
            halves=format_halves(truth.halves), **wide, **truth.body_bones,
        ))
    return entries
