"""The index as the GUI edits it: every change written at once, with undo.

:class:`ReviewStore` keeps the index's rows in memory and writes each change
with :func:`pipeline.index.update_index` (re-read, replace by model_id,
atomic write), so closing the window or a crash loses nothing, and rows other
programs changed meanwhile are kept. A failed write raises
:class:`~pipeline.errors.PipelineError` and leaves memory as it was.

Values shown for a model (:func:`shown_values`): the row's own values, except
for a row with *no* annotated value at all (fresh from ``pipeline scan``),
which shows the proposals (THA1's fields and, with a wide schema, the wide
fields are judged apart). The first edit of such a row writes every shown
value, so from then on the file holds exactly what the window shows (a morph
the user set to none stays none).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from annotate.auto import FIELDS
from annotate.morph_roles import EYE_FIELDS
from pipeline.errors import PipelineError
from pipeline.index import ModelEntry, read_index, update_index

EYE_ROLES: tuple[str, ...] = EYE_FIELDS


@dataclass(frozen=True)
class Change:
    """One written change: the row before and after, and a few words for the status bar."""

    before: ModelEntry
    after: ModelEntry
    what: str


def has_values(entry: ModelEntry, fields: tuple[str, ...] = FIELDS) -> bool:
    """Whether any of the annotated ``fields`` of ``entry`` is filled."""
    return any(getattr(entry, name) not in (None, "") for name in fields)


def shown_values(entry: ModelEntry, proposed: Mapping[str, object] | None,
                 fields: tuple[str, ...] = FIELDS) -> dict:
    """``{field: value}`` the window shows: the row's, or the proposals for an empty row.

    THA1's fields and the wide schemas' (when ``fields`` has them) are decided
    apart: a row annotated for THA1 alone, confirmed or not, shows its own THA1
    values and the proposals for the wide fields it has never had. A row with
    only one head bound shows the proposal's other one (when it lies on the
    right side), so the lines can be drawn and moved.
    """
    values = _shown_tha1(entry, proposed)
    wide = tuple(name for name in fields if name not in FIELDS)
    source = proposed if proposed and not has_values(entry, wide) else None
    values |= {name: source.get(name) if source else getattr(entry, name) for name in wide}
    return values


def _shown_tha1(entry: ModelEntry, proposed: Mapping[str, object] | None) -> dict:
    if has_values(entry) or entry.status == "confirmed" or not proposed:
        values = {name: getattr(entry, name) for name in FIELDS}
        top, bottom = values["head_top_y"], values["head_bottom_y"]
        if proposed and (top is None) != (bottom is None):
            top = proposed.get("head_top_y") if top is None else top
            bottom = proposed.get("head_bottom_y") if bottom is None else bottom
            if top is not None and bottom is not None and top > bottom:
                values["head_top_y"], values["head_bottom_y"] = top, bottom
        return values
    return {name: proposed.get(name) for name in FIELDS}


class ReviewStore:
    """The rows of one index file; :meth:`apply` and :meth:`undo` write through."""

    def __init__(self, index_path: str | Path, fields: tuple[str, ...] = FIELDS):
        self.path = Path(index_path)
        self.fields = fields
        self._undo: list[Change] = []
        self._set_entries(read_index(self.path))

    def _set_entries(self, entries: list[ModelEntry]) -> None:
        self.entries = entries
        self._by_id = {entry.model_id: entry for entry in entries}

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def ids(self) -> list[str]:
        return [entry.model_id for entry in self.entries]

    def entry(self, model_id: str) -> ModelEntry:
        try:
            return self._by_id[model_id]
        except KeyError:
            raise PipelineError(f"no model {model_id!r} in {self.path}") from None

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    def apply(self, after: ModelEntry, what: str) -> Change | None:
        """Write ``after`` over the row of its model_id; None when nothing changed."""
        before = self.entry(after.model_id)
        if before == after:
            return None
        self._set_entries(update_index(self.path, [after]))
        change = Change(before, after, what)
        self._undo.append(change)
        return change

    def edit(self, model_id: str, values: Mapping[str, object], what: str, **columns
             ) -> Change | None:
        """Write ``values`` (annotated fields) and other ``columns`` (status, ...) into a row."""
        unknown = [name for name in values if name not in self.fields]
        if unknown:
            raise ValueError(f"not annotated fields: {unknown}")
        return self.apply(replace(self.entry(model_id), **values, **columns), what)

    def undo(self) -> Change | None:
        """Write back the row as it was before the last change; None when there is none."""
        if not self._undo:
            return None
        change = self._undo[-1]
        self._set_entries(update_index(self.path, [change.before]))
        self._undo.pop()
        return change
