"""The review window's pages for the wide schemas (THA2/THA3): one per feature.

- :class:`RolePage` (eyebrows, eyes, mouth): the morph groups of one feature,
  a both / left / right slot each and whether the both-sides morph may serve
  one side by halves; a candidate morph at weight 1 beside the rest face.
- :class:`IrisPage`: one eye's close-up at rest and at +-1 on both axes, with
  the eye's box and the strip each end must reach (annotate.iris).
- :class:`BodyPage`: the upper-body bones, the chosen one turned.

Like every widget of the window they take no keyboard focus; the window owns
the keys and calls :meth:`step`, :meth:`select`, ... Values are shown as the
window holds them (its ``values`` dict, keyed by index column).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from mmdrender.schemas import MORPH_GROUPS
from pipeline.roles import (
    BODY_COLUMNS,
    EYE_BONE_COLUMNS,
    HALVES,
    IRIS_COLUMNS,
    IRIS_ENDS,
    morph_column,
)

from .widgets import LOW_CONFIDENCE, Candidates, Picture, rich

SLOTS = (None, "left", "right")  # both sides, the character's left, its right
SLOT_LABELS = ("both", "left", "right")
#: the wide groups each morph page shows; THA1's winks and open mouth have their own panels
PAGE_GROUPS = {
    "eyebrow": tuple(g for g in MORPH_GROUPS if g.category == "eyebrow"),
    "eye": tuple(g for g in MORPH_GROUPS if g.category in ("eye", "iris_morph")
                 and g.name not in ("eye_wink", "eye_happy_wink")),
    "mouth": tuple(g for g in MORPH_GROUPS if g.category == "mouth" and g.name != "mouth_aaa"),
}
END_LABELS = {"x_pos": "x = +1 (up)", "x_neg": "x = −1 (down)",
              "y_pos": "y = +1 (her right)", "y_neg": "y = −1 (her left)"}


def _quiet(widget: QWidget) -> None:
    widget.setFocusPolicy(Qt.FocusPolicy.NoFocus)


def _bold(cells, bold: bool) -> None:
    for cell in cells:
        font = cell.font()
        font.setBold(bold)
        cell.setFont(font)


def _stack(page: QWidget, header, pictures, counter, grid) -> None:
    """A page's layout, top to bottom: its header, pictures, counter line and field grid."""
    layout = QVBoxLayout(page)
    layout.setContentsMargins(4, 4, 4, 4)
    layout.addWidget(header)
    layout.addLayout(pictures)
    layout.addWidget(counter)
    layout.addLayout(grid)
    layout.addStretch(1)


def _value_text(value, confidence, proposed, unset: str = "none") -> str:
    """A value as the pages show it: greyed when unset, its confidence while untouched."""
    text = rich(str(value)) if value not in (None, "") else \
        f"<span style='color:#999'>{unset}</span>"
    if confidence is not None and value == proposed:
        colour = "#d08000" if confidence < LOW_CONFIDENCE else "#777"
        text += f" <span style='color:{colour}'>({confidence:.2f})</span>"
    elif proposed is not None and value != proposed:
        text += " <span style='color:#777'>(edited)</span>"
    return text


class _Page(QWidget):
    """A wide page: it shows the window's values, their confidences and the proposals."""

    def set_values(self, values: dict, confidence: dict | None = None,
                   proposed: dict | None = None) -> None:
        self.values, self.confidence, self.proposed = values, confidence or {}, proposed or {}
        self._refresh()


class RolePage(Candidates, _Page):
    """The morph groups of one feature: pick a group, cycle candidates, assign slots.

    ``candidateChanged`` fires when the shown candidate changes (the window
    renders it at weight 1 into :meth:`set_pictures`).
    """

    candidateChanged = Signal(str)

    def __init__(self, feature: str, title: str, parent=None):
        super().__init__(parent)
        _quiet(self)
        self.groups = PAGE_GROUPS[feature]
        self.group = 0
        self.names: list[str] = []
        self.index = 0
        self.values: dict = {}
        self.confidence: dict = {}
        self.proposed: dict = {}
        header = QLabel(f"<b>{title}</b> &nbsp; <span style='color:#888'>[ ] group · ←/→ "
                        "candidate · 1 both, 2 left, 3 right (Alt: none) · 0 no role · "
                        "s halves</span>")
        header.setWordWrap(True)
        self.rest, self.morphed = Picture("rest"), Picture("")
        self.counter = QLabel()
        pictures = QHBoxLayout()
        pictures.addWidget(self.rest)
        pictures.addWidget(self.morphed)
        pictures.addStretch(1)
        self.grid = QGridLayout()
        self.grid.setHorizontalSpacing(8)
        self.grid.setVerticalSpacing(1)
        for column, label in enumerate(("group", *SLOT_LABELS, "halves")):
            self.grid.addWidget(QLabel(f"<span style='color:#888'>{label}</span>"), 0, column)
        self.cells: list[list[QLabel]] = []
        for row, g in enumerate(self.groups, start=1):
            cells = [QLabel(g.name.removeprefix(f"{feature}_").replace("_", " "))]
            cells += [QLabel() for _ in range(4)]
            for column, cell in enumerate(cells):
                self.grid.addWidget(cell, row, column)
            self.cells.append(cells)
        _stack(self, header, pictures, self.counter, self.grid)

    # ---------------------------------------------------------------- state

    @property
    def current_group(self) -> str:
        return self.groups[self.group].name

    def columns(self, group_index: int | None = None) -> list[str | None]:
        """The index columns of a group's slots (None where the group has no such side)."""
        g = self.groups[self.group if group_index is None else group_index]
        return [morph_column(g.name, side) if side is None or g.arity == 2 else None
                for side in SLOTS]

    def select(self, delta: int) -> None:
        """Move to another group; show the morph it holds, if any."""
        self.group = (self.group + delta) % len(self.groups)
        held = next((self.values.get(c) for c in self.columns() if c and self.values.get(c)),
                    None)
        if held in self.names and held != self.current:
            self.index = self.names.index(held)
            self.candidateChanged.emit(held)
        self._refresh()

    def set_pictures(self, rest: QImage | None, morphed: QImage | None, message: str = "") -> None:
        self.rest.set_image(rest, "rest", message)
        self.morphed.set_image(morphed, f"{self.current or '—'} = 1", message)

    def roles_of(self, name: str | None) -> list[str]:
        """The columns of this page that hold ``name``."""
        return [c for i in range(len(self.groups)) for c in self.columns(i)
                if c and name and self.values.get(c) == name]

    def _refresh(self) -> None:
        name = self.current
        self.show_counter(self.counter, self.roles_of(name))
        halves = set((self.values.get(HALVES) or "").split())
        for row, cells in enumerate(self.cells):
            selected = row == self.group
            for cell, column in zip(cells[1:4], self.columns(row), strict=True):
                if column is None:
                    cell.setText("<span style='color:#ccc'>—</span>")
                    continue
                cell.setText(_value_text(self.values.get(column), self.confidence.get(column),
                                         self.proposed.get(column)))
            arity_two = self.groups[row].arity == 2
            cells[4].setText(("✓" if self.groups[row].name in halves else "·")
                             if arity_two else "")
            _bold(cells, selected)
            cells[0].setStyleSheet("color: #2a8a3a;" if selected else "")


class IrisPage(_Page):
    """One eye at rest and at the four ends, with its box (yellow) and target strip (cyan)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        _quiet(self)
        self.side = "left"
        self.end = 0
        self.values: dict = {}
        self.confidence: dict = {}
        self.proposed: dict = {}
        header = QLabel("<b>Iris</b> &nbsp; <span style='color:#888'>e other eye · [ ] end · "
                        "←/→ turn by 0.5° (Shift 2°)</span>")
        header.setWordWrap(True)
        self.pictures = {end: Picture(end, side=118) for end in ("rest", *IRIS_ENDS)}
        row = QGridLayout()
        for i, end in enumerate(("rest", *IRIS_ENDS)):
            row.addWidget(self.pictures[end], i // 3, i % 3)
        self.title = QLabel()
        self.grid = QGridLayout()
        self.labels = {}
        for i, end in enumerate(IRIS_ENDS):
            name, value = QLabel(END_LABELS[end]), QLabel()
            self.grid.addWidget(name, i, 0)
            self.grid.addWidget(value, i, 1)
            self.labels[end] = (name, value)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(header)
        layout.addWidget(self.title)
        layout.addLayout(row)
        layout.addLayout(self.grid)
        layout.addStretch(1)

    @property
    def current_end(self) -> str:
        return IRIS_ENDS[self.end]

    def column(self, end: str | None = None) -> str:
        return IRIS_COLUMNS[(self.side, end or self.current_end)]

    def set_pictures(self, images: dict | None, message: str = "") -> None:
        for end, picture in self.pictures.items():
            image = images.get(end) if images else None
            picture.set_image(image, END_LABELS.get(end, "rest"),
                              message or ("" if image is not None else "no angle"))

    def _refresh(self) -> None:
        column = EYE_BONE_COLUMNS[self.side]
        bone = _value_text(self.values.get(column), self.confidence.get(column),
                           self.proposed.get(column))
        self.title.setText(f"the character's <b>{self.side}</b> eye · bone {bone}")
        for i, end in enumerate(IRIS_ENDS):
            name, value = self.labels[end]
            column = self.column(end)
            angle = self.values.get(column)
            shown = None if angle is None else f"{angle:+.2f}°"
            proposed = self.proposed.get(column)
            value.setText(_value_text(shown, self.confidence.get(column),
                                      None if proposed is None else f"{proposed:+.2f}°"))
            _bold((name, value), i == self.end)


class BodyPage(_Page):
    """The upper-body bones; the selected one turned, so a person sees what it moves."""

    def __init__(self, parent=None):
        super().__init__(parent)
        _quiet(self)
        self.field = 0
        self.names: list[str] = []
        self.index = 0
        self.values: dict = {}
        self.confidence: dict = {}
        self.proposed: dict = {}
        header = QLabel("<b>Body</b> &nbsp; <span style='color:#888'>[ ] field · ←/→ bone · "
                        "1 assign (Alt: none)</span>")
        header.setWordWrap(True)
        self.rest, self.turned = Picture("rest"), Picture("")
        pictures = QHBoxLayout()
        pictures.addWidget(self.rest)
        pictures.addWidget(self.turned)
        pictures.addStretch(1)
        self.counter = QLabel()
        self.grid = QGridLayout()
        self.rows = []
        for i, column in enumerate(BODY_COLUMNS):
            name, value = QLabel(column.replace("_", " ")), QLabel()
            self.grid.addWidget(name, i, 0)
            self.grid.addWidget(value, i, 1)
            self.rows.append((name, value))
        _stack(self, header, pictures, self.counter, self.grid)

    @property
    def current_field(self) -> str:
        return BODY_COLUMNS[self.field]

    @property
    def current(self) -> str | None:
        return self.names[self.index] if self.names else None

    def set_candidates(self, names: list[str]) -> None:
        self.names = list(names)
        held = self.values.get(self.current_field)
        self.index = self.names.index(held) if held in self.names else 0
        self._refresh()

    def step(self, delta: int) -> None:
        if self.names:
            self.index = (self.index + delta) % len(self.names)
            self._refresh()

    def select(self, delta: int) -> None:
        self.field = (self.field + delta) % len(BODY_COLUMNS)
        self.set_candidates(self.names)

    def set_pictures(self, rest: QImage | None, turned: QImage | None, message: str = "") -> None:
        self.rest.set_image(rest, "rest", message)
        self.turned.set_image(turned, f"{self.current or '—'} turned", message)

    def _refresh(self) -> None:
        self.counter.setText(f"{self.index + 1}/{len(self.names)} &nbsp; <b>"
                             f"{rich(self.current)}</b>" if self.current else
                             "<i>no bones</i>")
        for i, (column, (name, value)) in enumerate(zip(BODY_COLUMNS, self.rows, strict=True)):
            value.setText(_value_text(self.values.get(column), self.confidence.get(column),
                                      self.proposed.get(column)))
            _bold((name, value), i == self.field)
