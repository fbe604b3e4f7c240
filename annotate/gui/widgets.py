"""The review window's parts: plain QWidget subclasses, each testable alone.

- :class:`HeadView`: the front view with two draggable lines (head top, head
  bottom) and the 256x256 crop they frame, drawn live;
- :class:`CropPreview`: what that crop will look like;
- :class:`MorphPanel`: one candidate morph at weight 1 beside the rest face,
  and the roles assigned so far;
- :class:`ModelList`: the models with status and confidence.

None of them takes keyboard focus: the window owns every key.
"""

from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mmdrender.camera import Camera

TOP_COLOUR = QColor(255, 120, 40)
BOTTOM_COLOUR = QColor(40, 200, 255)
CROP_COLOUR = QColor(255, 255, 255)
HEAD_BOX_COLOUR = QColor(255, 230, 60)
BACKGROUND = QColor(72, 74, 80)
LOW_CONFIDENCE = 0.6  # below this a proposal is shown in orange
STATUS_COLOURS = {"confirmed": QColor(70, 170, 80), "rejected": QColor(200, 70, 70),
                  "auto": QColor(150, 150, 150)}
GRAB_PIXELS = 8  # a press this close to a line picks that line


def to_qimage(image: np.ndarray | None) -> QImage | None:
    """(h, w, 4) uint8 RGBA (straight alpha, first row = top) -> an owned QImage."""
    if image is None:
        return None
    image = np.ascontiguousarray(image, dtype=np.uint8)
    height, width = image.shape[:2]
    return QImage(image.data, width, height, 4 * width, QImage.Format.Format_RGBA8888).copy()


def marked_changes(before: np.ndarray, after: np.ndarray, threshold: int = 8) -> np.ndarray:
    """``after`` with the pixels that differ from ``before`` tinted red (RGBA uint8)."""
    changed = np.abs(after.astype(np.int16) - before.astype(np.int16)).max(axis=2) > threshold
    marked = after.copy()
    marked[changed, 0] = 255
    marked[changed, 1:3] //= 2
    marked[changed, 3] = 255
    return marked


def rich(text: str) -> str:
    """Plain ``text`` (a path, a morph name, an error) made safe inside a rich-text label."""
    return html.escape(text).replace("\n", "<br>")


def confidence_text(confidence: float | None) -> str:
    return "" if confidence is None else f"{confidence:.2f}"


def _quiet(widget: QWidget) -> None:
    widget.setFocusPolicy(Qt.FocusPolicy.NoFocus)


def crop_camera(top: float, bottom: float, centre_x: float) -> Camera:
    """The dataset's 256x256 framing of these head bounds (head on rows 64..192)."""
    return Camera.from_head_bounds(top, bottom, centre_x, 256)


class HeadView(QWidget):
    """The model's front view; drag the orange (top) or blue (bottom) line.

    A press within :data:`GRAB_PIXELS` of a line grabs it, a press elsewhere
    moves the nearer line there. ``boundsChanging`` fires while dragging,
    ``boundsEdited`` once on release (that is when the window saves).
    """

    boundsChanging = Signal(float, float)
    boundsEdited = Signal(float, float)

    def __init__(self, parent=None):
        super().__init__(parent)
        _quiet(self)
        self.setMinimumSize(320, 320)
        self.camera: Camera | None = None
        self.image: QImage | None = None
        self.message = ""
        self.top: float | None = None
        self.bottom: float | None = None
        self.centre_x = 0.0
        self.confidence: dict[str, float | None] = {}
        self.active = "top"
        self._drag: str | None = None
        self._pressed_bounds: tuple | None = None

    # ---------------------------------------------------------------- state

    def set_picture(self, image: QImage | None, camera: Camera | None, message: str = "") -> None:
        self.image, self.camera, self.message = image, camera, message
        self.update()

    def set_bounds(self, top: float | None, bottom: float | None, centre_x: float,
                   confidence: dict | None = None) -> None:
        self.top, self.bottom, self.centre_x = top, bottom, centre_x
        self.confidence = dict(confidence or {})
        self.update()

    def has_bounds(self) -> bool:
        return self.camera is not None and self.top is not None and self.bottom is not None

    # ---------------------------------------------------------------- geometry

    def _frame(self) -> tuple[float, float, float]:
        """(left, top, scale): where the camera's image lies in the widget."""
        side = float(min(self.width(), self.height()))
        return ((self.width() - side) / 2.0, (self.height() - side) / 2.0,
                side / self.camera.size)

    def to_widget(self, x: float, y: float) -> QPointF:
        """Model (x, y) -> widget coordinates."""
        left, top, scale = self._frame()
        column, row = self.camera.to_pixels([[x, y]])[0]
        return QPointF(left + column * scale, top + row * scale)

    def widget_to_y(self, widget_y: float) -> float:
        """Widget y -> model y (through the camera: image row, then model units)."""
        _, top, scale = self._frame()
        row = (widget_y - top) / scale
        return self.camera.centre_y - (row - self.camera.size / 2.0) * self.camera.pixel_size

    def line_y(self, which: str) -> float:
        """The widget y of the ``"top"`` or ``"bottom"`` line."""
        return self.to_widget(self.centre_x, getattr(self, which)).y()

    def model_rect(self, left: float, top: float, right: float, bottom: float) -> QRectF:
        a, b = self.to_widget(left, top), self.to_widget(right, bottom)
        return QRectF(a, b).normalized()

    def crop_rect(self) -> QRectF:
        """The 256x256 crop the lines frame, in widget coordinates."""
        camera = crop_camera(self.top, self.bottom, self.centre_x)
        h = camera.half_height
        return self.model_rect(camera.centre_x - h, camera.centre_y + h,
                               camera.centre_x + h, camera.centre_y - h)

    def head_rect(self) -> QRectF:
        """The crop's middle 128x128 box (rows and columns 64..192), where the head goes."""
        half = (self.top - self.bottom) / 2.0
        return self.model_rect(self.centre_x - half, self.top, self.centre_x + half, self.bottom)

    def crop_source(self) -> QRectF | None:
        """The crop in the view picture's own pixels (for :class:`CropPreview`)."""
        if not self.has_bounds() or not self.top > self.bottom:
            return None
        camera = crop_camera(self.top, self.bottom, self.centre_x)
        h = camera.half_height
        (c0, r0), (c1, r1) = self.camera.to_pixels([[camera.centre_x - h, camera.centre_y + h],
                                                    [camera.centre_x + h, camera.centre_y - h]])
        return QRectF(QPointF(c0, r0), QPointF(c1, r1))

    # ---------------------------------------------------------------- editing

    def _min_gap(self) -> float:
        return 2.0 * self.camera.pixel_size

    def move_line(self, which: str, y: float) -> None:
        """Put line ``which`` at model ``y``, kept on its side of the other line."""
        if which == "top":
            self.top = max(y, self.bottom + self._min_gap())
        else:
            self.bottom = min(y, self.top - self._min_gap())
        self.update()
        self.boundsChanging.emit(self.top, self.bottom)

    def nudge(self, which: str, pixels: float, save: bool = True) -> bool:
        """Move a line ``pixels`` view pixels up (positive) or down; False if there is none.

        ``save``: emit ``boundsEdited`` (the window saves); a held key passes
        False and the window saves when it is released, as after a drag.
        """
        if not self.has_bounds():
            return False
        self.active = which
        self.move_line(which, getattr(self, which) + pixels * self.camera.pixel_size)
        if save:
            self.boundsEdited.emit(self.top, self.bottom)
        return True

    def mousePressEvent(self, event):
        if event.button() != Qt.MouseButton.LeftButton or not self.has_bounds():
            return
        y = event.position().y()
        distance = {which: abs(self.line_y(which) - y) for which in ("top", "bottom")}
        which = min(distance, key=distance.get)
        self.active = self._drag = which
        self._pressed_bounds = (self.top, self.bottom)
        if distance[which] > GRAB_PIXELS:
            self.move_line(which, self.widget_to_y(y))

    def mouseMoveEvent(self, event):
        if self._drag:
            self.move_line(self._drag, self.widget_to_y(event.position().y()))

    def mouseReleaseEvent(self, event):
        if not self._drag:
            return
        self._drag = None
        if (self.top, self.bottom) != self._pressed_bounds:
            self.boundsEdited.emit(self.top, self.bottom)

    # ---------------------------------------------------------------- drawing

    def paintEvent(self, event):
        painter = QPainter(self)
        painter.fillRect(self.rect(), BACKGROUND)
        if self.camera is None or self.image is None:
            painter.setPen(QColor(230, 230, 230))
            painter.drawText(self.rect().adjusted(12, 12, -12, -12),
                             Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             self.message or "no picture")
            if self.camera is None:
                return
        left, top, scale = self._frame()
        side = self.camera.size * scale
        target = QRectF(left, top, side, side)
        if self.image is not None:
            painter.fillRect(target, QColor(105, 108, 116))
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            painter.drawImage(target, self.image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if not self.has_bounds():
            return
        crop, head = self.crop_rect(), self.head_rect()
        shade = QColor(0, 0, 0, 90)  # dim what the crop leaves out
        for rect in (QRectF(target.left(), target.top(), target.width(),
                            crop.top() - target.top()),
                     QRectF(target.left(), crop.bottom(), target.width(),
                            target.bottom() - crop.bottom()),
                     QRectF(target.left(), crop.top(), crop.left() - target.left(),
                            crop.height()),
                     QRectF(crop.right(), crop.top(), target.right() - crop.right(),
                            crop.height())):
            if rect.width() > 0 and rect.height() > 0:
                painter.fillRect(rect.intersected(target), shade)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(CROP_COLOUR, 1.5))
        painter.drawRect(crop)
        painter.setPen(QPen(HEAD_BOX_COLOUR, 1.0, Qt.PenStyle.DashLine))
        painter.drawRect(head)
        font = QFont(painter.font())
        font.setPointSizeF(max(8.0, font.pointSizeF() * 0.9))
        painter.setFont(font)
        for which, colour in (("top", TOP_COLOUR), ("bottom", BOTTOM_COLOUR)):
            y = self.line_y(which)
            width = 2.5 if which == self.active else 1.5
            painter.setPen(QPen(colour, width))
            painter.drawLine(QPointF(0, y), QPointF(self.width(), y))
            conf = self.confidence.get(which)
            label = f"{which} {getattr(self, which):.3f}"
            if conf is not None:
                label += f"  ({conf:.2f})"
            painter.drawText(QPointF(6, y - 4 if which == "top" else y + 14), label)
        painter.setPen(CROP_COLOUR)
        painter.drawText(QPointF(crop.left() + 4, crop.top() + 14), "256×256 crop")


class CropPreview(QWidget):
    """The crop the lines frame, cut from the view picture (what the dataset will see)."""

    def __init__(self, parent=None, side: int = 160):
        super().__init__(parent)
        _quiet(self)
        self.setFixedSize(side, side)
        self.image: QImage | None = None
        self.source: QRectF | None = None

    def set_crop(self, image: QImage | None, source: QRectF | None) -> None:
        self.image, self.source = image, source
        self.update()

    def paintEvent(self, event):
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(105, 108, 116))
        if self.image is not None and self.source is not None:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            painter.drawImage(QRectF(self.rect()), self.image, self.source)
            quarter = self.width() / 4.0
            painter.setPen(QPen(HEAD_BOX_COLOUR, 1.0, Qt.PenStyle.DashLine))
            painter.drawRect(QRectF(quarter, quarter, 2 * quarter, 2 * quarter))
        painter.setPen(QColor(200, 200, 200))
        painter.drawRect(self.rect().adjusted(0, 0, -1, -1))


class Picture(QWidget):
    """One picture with a caption under it."""

    def __init__(self, caption: str = "", side: int = 150, parent=None):
        super().__init__(parent)
        _quiet(self)
        self.setFixedSize(side, side + 18)
        self.image: QImage | None = None
        self.caption = caption
        self.message = ""

    def set_image(self, image: QImage | None, caption: str | None = None,
                  message: str = "") -> None:
        self.image, self.message = image, message
        if caption is not None:
            self.caption = caption
        self.update()

    def paintEvent(self, event):
        painter = QPainter(self)
        side = self.width()
        box = QRectF(0, 0, side, side)
        painter.fillRect(box, QColor(105, 108, 116))
        if self.image is not None:
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            painter.drawImage(box, self.image)
        elif self.message:
            painter.setPen(QColor(230, 230, 230))
            painter.drawText(box.adjusted(6, 6, -6, -6),
                             Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             self.message)
        painter.setPen(self.palette().color(self.foregroundRole()))
        painter.drawText(QRectF(0, side, side, 18), Qt.AlignmentFlag.AlignCenter,
                         painter.fontMetrics().elidedText(self.caption,
                                                          Qt.TextElideMode.ElideMiddle, side))


class Candidates:
    """Cycling through candidate morphs: ``names``, the shown one, and ``candidateChanged``.

    For QWidget subclasses that define the ``candidateChanged`` signal and ``_refresh``.
    """

    names: list[str]
    index: int

    @property
    def current(self) -> str | None:
        return self.names[self.index] if self.names else None

    def set_candidates(self, names: list[str], current: str | None = None) -> None:
        self.names = list(names)
        self.index = self.names.index(current) if current in self.names else 0
        self._refresh()
        if self.current:
            self.candidateChanged.emit(self.current)

    def step(self, delta: int) -> None:
        if not self.names:
            return
        self.index = (self.index + delta) % len(self.names)
        self._refresh()
        self.candidateChanged.emit(self.current)

    def show_counter(self, counter: QLabel, roles: list[str]) -> None:
        """The counter line: which candidate of how many is shown, and the roles it holds."""
        if self.current is None:
            counter.setText("<i>no candidate morphs</i>")
            return
        held = ", ".join(roles) or "no role"
        counter.setText(f"{self.index + 1}/{len(self.names)} &nbsp; <b>{rich(self.current)}</b>"
                        f" &nbsp; → {rich(held)}")


class MorphPanel(Candidates, QWidget):
    """Cycle through candidate morphs and see which role each holds.

    ``roles``: (field, key, label) per role. The window renders the pictures
    (:meth:`set_pictures`) when ``candidateChanged`` fires.
    """

    candidateChanged = Signal(str)

    def __init__(self, title: str, roles, step_keys: str, parent=None):
        super().__init__(parent)
        _quiet(self)
        self.roles = list(roles)
        self.names: list[str] = []
        self.index = 0
        self.values: dict[str, str | None] = {}
        self.confidence: dict[str, float | None] = {}
        self.proposed: dict[str, str | None] = {}

        self.title = QLabel(f"<b>{title}</b> &nbsp; <span style='color:#888'>{step_keys}</span>")
        self.rest = Picture("rest")
        self.morphed = Picture("")
        self.counter = QLabel()
        pictures = QHBoxLayout()
        pictures.addWidget(self.rest)
        pictures.addWidget(self.morphed)
        pictures.addStretch(1)
        grid = QGridLayout()
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(1)
        self.rows: dict[str, tuple[QLabel, QLabel, QLabel]] = {}
        for row, (field, key, label) in enumerate(self.roles):
            cells = (QLabel(f"<b>{key}</b>"), QLabel(label), QLabel())
            for column, cell in enumerate(cells):
                grid.addWidget(cell, row, column)
            self.rows[field] = cells
        grid.setColumnStretch(2, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addLayout(pictures)
        layout.addWidget(self.counter)
        layout.addLayout(grid)

    def show_candidate(self, name: str) -> None:
        if name in self.names and name != self.current:
            self.index = self.names.index(name)
            self._refresh()
            self.candidateChanged.emit(name)

    def set_roles(self, values: dict, confidence: dict | None = None,
                  proposed: dict | None = None) -> None:
        self.values = {field: values.get(field) for field, _, _ in self.roles}
        self.confidence = dict(confidence or {})
        self.proposed = dict(proposed or {})
        self._refresh()

    def set_pictures(self, rest: QImage | None, morphed: QImage | None, message: str = "") -> None:
        self.rest.set_image(rest, "rest", message)
        self.morphed.set_image(morphed, f"{self.current or '—'} = 1", message)

    def roles_of(self, name: str | None) -> list[str]:
        return [field for field, value in self.values.items() if name and value == name]

    def _refresh(self) -> None:
        name = self.current
        self.show_counter(self.counter, self.roles_of(name))
        for field, (_key, label, value) in self.rows.items():
            assigned = self.values.get(field)
            conf = self.confidence.get(field)
            text = rich(assigned) if assigned else "<span style='color:#999'>none</span>"
            if conf is not None and assigned == self.proposed.get(field, assigned):
                colour = "#d08000" if conf < LOW_CONFIDENCE else "#777"
                text += f" <span style='color:{colour}'>({conf:.2f})</span>"
            elif field in self.proposed and assigned != self.proposed.get(field):
                text += " <span style='color:#777'>(edited)</span>"
            value.setText(text)
            bold = bool(name) and assigned == name
            for cell in (label, value):
                font = cell.font()
                font.setBold(bold)
                cell.setFont(font)
            label.setStyleSheet("color: #2a8a3a;" if bold else "")


class ModelList(QTableWidget):
    """Model, status and confidence, one row per model; clicking a row selects it."""

    modelClicked = Signal(str)

    def __init__(self, parent=None):
        super().__init__(0, 3, parent)
        _quiet(self)
        self.setHorizontalHeaderLabels(["model", "status", "conf"])
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(20)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.ids: list[str] = []
        self._row_of: dict[str, int] = {}
        self._shown: dict[str, tuple] = {}  # model_id -> the row as last written
        self.cellClicked.connect(lambda row, _column: self.modelClicked.emit(self.ids[row]))

    def set_rows(self, rows) -> None:
        """rows: (model_id, status, confidence or None, tooltip) in display order.

        Only what changed is redone: rows that left are removed, rows whose
        content differs are rewritten; a new order rebuilds the table.
        """
        rows = list(rows)
        ids = [row[0] for row in rows]
        if ids != self.ids:
            wanted = set(ids)
            if [model_id for model_id in self.ids if model_id in wanted] == ids:
                for r in reversed(range(len(self.ids))):
                    if self.ids[r] not in wanted:
                        self.removeRow(r)
                        del self._shown[self.ids[r]]
            else:
                self.setRowCount(0)
                self.setRowCount(len(rows))
                self._shown = {}
            self.ids = ids
            self._row_of = {model_id: r for r, model_id in enumerate(ids)}
        for r, row in enumerate(rows):
            if self._shown.get(row[0]) != row:
                self._set_row(r, *row)

    def _set_row(self, r, model_id, status, confidence, tooltip) -> None:
        self._shown[model_id] = (model_id, status, confidence, tooltip)
        cells = (QTableWidgetItem(model_id), QTableWidgetItem(status),
                 QTableWidgetItem(confidence_text(confidence)))
        cells[1].setForeground(QBrush(STATUS_COLOURS.get(status, QColor(0, 0, 0))))
        if confidence is not None and confidence < LOW_CONFIDENCE:
            cells[2].setForeground(QBrush(QColor(208, 128, 0)))
        for column, cell in enumerate(cells):
            cell.setToolTip(f"<p>{rich(tooltip)}</p>")  # rich text, so a path's < > & show
            self.setItem(r, column, cell)

    def update_row(self, model_id, status, confidence, tooltip) -> None:
        r = self._row_of.get(model_id)
        if r is not None and self._shown.get(model_id) != (model_id, status, confidence, tooltip):
            self._set_row(r, model_id, status, confidence, tooltip)

    def select(self, model_id: str | None) -> None:
        r = self._row_of.get(model_id)
        if r is not None:
            self.selectRow(r)
            self.scrollToItem(self.item(r, 0))
        else:
            self.clearSelection()


class ReasonEdit(QLineEdit):
    """The one-line reject prompt: Enter submits, Escape cancels.

    Both keys stop here: a plain QLineEdit passes Enter on to its parent,
    where the window would take it as "confirm" for the next model.
    """

    submitted = Signal(str)
    cancelled = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setPlaceholderText("why reject this model? Enter = reject, Esc = cancel")

    def keyPressEvent(self, event):
        if event.key() == Qt.Key.Key_Escape:
            self.cancelled.emit()
        elif event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.submitted.emit(self.text().strip())
        else:
            super().keyPressEvent(event)
            return
        event.accept()
