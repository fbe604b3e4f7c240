"""The review window: one model at a time, keyboard first, every change saved at once.

Keys (also shown at the bottom of the window):

=====================  ====================================================
Enter                  confirm the model with the values shown, go to the next
r                      reject: type a reason, Enter (Esc cancels)
j / PageDown           next model;  k / PageUp: previous model
Ctrl+Z                 undo the last saved change (written back to the index)
Up / Down              move the active head line one pixel (Shift: ten); a held
                       key saves once, on release
t / b                  make the top / bottom line the active one
Left / Right (h / l)   previous / next candidate eye morph
1 … 6                  the shown eye morph is wink_left, wink_right, wink_both,
                       smile_wink_left, smile_wink_right, smile_wink_both
Alt+1 … Alt+6          that role has no morph
0                      the shown eye morph has no role
, / .                  previous / next candidate mouth morph
m  /  Alt+m            the shown mouth morph is mouth_open / there is none
f                      filter: all, unconfirmed (status auto), low confidence first
+ / -                  zoom the head view in / out
=====================  ====================================================

The mouse drags the head lines (a press away from both moves the nearer one
there) and picks models in the list.

Every change is written to the index when it is made (a drag or a held arrow
key when it ends), so a crash or a closed window loses nothing confirmed.
A model that cannot be loaded shows its reason and can only be rejected.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QStackedWidget,
    QTabBar,
    QVBoxLayout,
    QWidget,
)

from annotate.auto import SCHEMA_FIELDS, failure_reason
from mmdrender.errors import MMDRenderError
from mmdrender.model import MorphPanel as Panel
from mmdrender.schemas import SIDED_GROUPS
from pipeline.errors import PipelineError
from pipeline.index import models_root
from pipeline.roles import BODY_COLUMNS, HALVES, IRIS_ENDS, format_halves

from .pages import BodyPage, IrisPage, RolePage
from .source import VIEW_ZOOM, ModelSource, body_candidates, candidates
from .store import EYE_ROLES, FIELDS, ReviewStore, shown_values
from .widgets import (
    CropPreview,
    HeadView,
    ModelList,
    MorphPanel,
    ReasonEdit,
    marked_changes,
    rich,
    to_qimage,
)

FILTERS = ("all", "unconfirmed", "low confidence first")
FEATURE_PANELS = {"eyebrow": Panel.EYEBROW, "eye": Panel.EYE, "mouth": Panel.MOUTH}
EYE_KEYS = {Qt.Key.Key_1: "wink_left", Qt.Key.Key_2: "wink_right", Qt.Key.Key_3: "wink_both",
            Qt.Key.Key_4: "smile_wink_left", Qt.Key.Key_5: "smile_wink_right",
            Qt.Key.Key_6: "smile_wink_both"}
FIRST_PAGE_KEYS = {*EYE_KEYS, Qt.Key.Key_0, Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_H,
                   Qt.Key.Key_L, Qt.Key.Key_Comma, Qt.Key.Key_Period, Qt.Key.Key_Less,
                   Qt.Key.Key_Greater, Qt.Key.Key_M}
EYE_LABELS = ("wink left", "wink right", "wink both (blink)",
              "smile wink left", "smile wink right", "smile wink both")
WARNINGS_SHOWN = 3  # the loader's warnings listed under the model (the rest are counted)
HELP = ("Enter confirm · r reject · j/k next/prev · Ctrl+Z undo · ↑↓ move line (t/b pick) · "
        "←→ eye morph, 1-6 assign, Alt+1-6 none, 0 no role · ,/. mouth morph, m assign · "
        "f filter · +/- zoom")
WIDE_HELP = " · F1-F6 or Tab: pages (eyebrows, eyes, iris, mouth, body)"


class ReviewWindow(QWidget):
    """Review the models of one index file.

    ``source`` defaults to a :class:`ModelSource` on the models root;
    ``background`` computes every model's proposals while the window is idle
    (for the confidence column and "low confidence first").
    """

    def __init__(self, index_path, root=None, source: ModelSource | None = None,
                 background: bool = True, parent=None, schema: str = "tha1"):
        super().__init__(parent)
        self.setWindowTitle(f"annotate — {index_path}")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.schema = schema
        self.store = ReviewStore(index_path, SCHEMA_FIELDS[schema])
        self.source = source or ModelSource(models_root(root, index_path), schema=schema)
        self.current: str | None = None
        self.values: dict = {}
        self._held_nudges = False  # head lines moved by a held arrow key, not saved yet
        self._rejecting: str | None = None  # the model the reject prompt is open for
        self.loaded = False  # whether the current model loaded (only then can it be confirmed)
        self.warnings: tuple[str, ...] = ()  # the loader's warnings about the current model
        self.zoom: dict[str, float] = {}
        self._cameras: dict[str, object] = {}
        has_auto = any(e.status == "auto" for e in self.store.entries)
        self.filter = "unconfirmed" if has_auto else "all"
        self._build()
        self._background = QTimer(self)
        self._background.setInterval(0)
        self._background.timeout.connect(self._propose_one)
        self._background_next = 0  # the next row the idle work looks at
        self.refresh_list()
        order = self.order()
        self.select(order[0] if order else None)
        if background:
            self._background.start()

    # ---------------------------------------------------------------- layout

    def _build(self) -> None:
        self.filter_box = QComboBox()
        self.filter_box.addItems(FILTERS)
        self.filter_box.setCurrentText(self.filter)
        self.filter_box.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.filter_box.currentTextChanged.connect(self.set_filter)
        self.list = ModelList()
        self.list.modelClicked.connect(self.select)
        self.counts = QLabel()
        left = QVBoxLayout()
        left.addWidget(self.filter_box)
        left.addWidget(self.list, 1)
        left.addWidget(self.counts)

        self.head = HeadView()
        self.head.boundsChanging.connect(lambda *_: self._update_crop())
        self.head.boundsEdited.connect(self.on_bounds_edited)
        self.crop = CropPreview()
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.info.setTextFormat(Qt.TextFormat.RichText)
        under = QHBoxLayout()
        under.addWidget(self.crop)
        under.addWidget(self.info, 1)
        middle = QVBoxLayout()
        middle.addWidget(self.head, 1)
        middle.addLayout(under)

        keys = ("1", "2", "3", "4", "5", "6")
        self.eyes = MorphPanel("Eyes", zip(EYE_ROLES, keys, EYE_LABELS, strict=True),
                               "←/→ cycle · 1-6 assign · 0 no role")
        self.eyes.candidateChanged.connect(lambda _: self._show_morph(self.eyes))
        self.mouth = MorphPanel("Mouth", [("mouth_open", "m", "mouth open")],
                                ",/. cycle · m assign")
        self.mouth.candidateChanged.connect(lambda _: self._show_morph(self.mouth))
        first = QWidget()
        first_layout = QVBoxLayout(first)
        first_layout.setContentsMargins(0, 0, 0, 0)
        first_layout.addWidget(self.eyes)
        first_layout.addWidget(self.mouth)
        first_layout.addStretch(1)
        self.pages = QStackedWidget()
        self.pages.addWidget(first)
        self.tabs = QTabBar()
        self.tabs.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.tabs.setExpanding(False)
        self.tabs.setUsesScrollButtons(False)
        self.tabs.addTab("F1 THA1")
        self.role_pages: dict[str, RolePage] = {}
        self.iris_page = self.body_page = None
        if self.schema != "tha1":
            for feature, title in (("eyebrow", "Eyebrows"), ("eye", "Eyes")):
                self._add_page(title.lower(), self._role_page(feature, title))
            self.iris_page = self._add_page("iris", IrisPage())
            self._add_page("mouth", self._role_page("mouth", "Mouth"))
            if self.schema == "tha3":
                self.body_page = self._add_page("body", BodyPage())
        self.tabs.currentChanged.connect(self.show_page)
        self.tabs.setVisible(self.schema != "tha1")
        right = QVBoxLayout()
        right.addWidget(self.tabs)
        right.addWidget(self.pages, 1)

        columns = QHBoxLayout()
        columns.addLayout(left, 3)
        columns.addLayout(middle, 5)
        columns.addLayout(right, 4)
        self.reason = ReasonEdit()
        self.reason.hide()
        self.reason.submitted.connect(self.reject)
        self.reason.cancelled.connect(self._close_reason)
        self.status = QLabel()
        self.status.setTextFormat(Qt.TextFormat.RichText)
        help_line = QLabel(HELP + (WIDE_HELP if self.schema != "tha1" else ""))
        help_line.setStyleSheet("color: #777;")
        help_line.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.addLayout(columns, 1)
        layout.addWidget(self.reason)
        layout.addWidget(self.status)
        layout.addWidget(help_line)
        self.resize(1280, 800)

    def _role_page(self, feature: str, title: str) -> RolePage:
        page = RolePage(feature, title)
        page.candidateChanged.connect(lambda _: self._show_morph(page))
        self.role_pages[feature] = page
        return page

    def _add_page(self, title: str, page: QWidget) -> QWidget:
        self.pages.addWidget(page)
        self.tabs.addTab(f"F{self.tabs.count() + 1} {title}")
        return page

    def show_page(self, number: int) -> None:
        """Show page ``number`` (0 is THA1's winks and mouth) and draw what it needs."""
        number = max(0, min(self.pages.count() - 1, number))
        if self.tabs.currentIndex() != number:
            self.tabs.setCurrentIndex(number)  # calls back here
            return
        self.pages.setCurrentIndex(number)
        page = self.pages.currentWidget()
        if page is self.iris_page:
            self._show_iris()
        elif page is self.body_page:
            self._show_body()

    @property
    def page(self) -> QWidget:
        return self.pages.currentWidget()

    def focusNextPrevChild(self, next_child: bool) -> bool:  # noqa: N802  (Qt's name)
        return False  # Tab and Shift+Tab turn the pages (keyPressEvent), never move focus

    # ---------------------------------------------------------------- the list

    def order(self) -> list[str]:
        """Model ids in list order for the current filter."""
        entries = self.store.entries
        if self.filter == "all":
            return [e.model_id for e in entries]
        todo = [e for e in entries if e.status == "auto"]
        if self.filter == "unconfirmed":
            return [e.model_id for e in todo]

        def key(entry):
            if entry.model_id in self.source.errors:
                return (0, 0.0)
            confidence = self.source.confidence(entry)
            return (2, 0.0) if confidence is None else (1, confidence)

        return [e.model_id for e in sorted(todo, key=key)]

    def _row(self, entry):
        tip = entry.path + (f"\n{entry.status_reason}" if entry.status_reason else "")
        if entry.model_id in self.source.errors:
            tip += f"\n{self.source.errors[entry.model_id]}"
        return entry.model_id, entry.status, self.source.confidence(entry), tip

    def refresh_list(self) -> None:
        by_id = {e.model_id: e for e in self.store.entries}
        self.list.set_rows(self._row(by_id[model_id]) for model_id in self.order())
        self.list.select(self.current)
        statuses = [e.status for e in self.store.entries]
        self.counts.setText(f"{len(statuses)} models: {statuses.count('confirmed')} confirmed, "
                            f"{statuses.count('rejected')} rejected, "
                            f"{statuses.count('auto')} to review")

    def set_filter(self, name: str) -> None:
        if name not in FILTERS or name == self.filter:
            return
        self.filter = name
        self.filter_box.setCurrentText(name)
        self.refresh_list()
        order = self.order()
        if self.current not in order:
            self.select(order[0] if order else None)

    def _propose_one(self) -> None:
        """Compute the proposals of one more model (idle work).

        Each model is tried once: one that fails keeps its reason in
        ``source.errors`` and the work moves on. Models loaded here do not
        enter the cache, so the one under review stays loaded.
        """
        entries = self.store.entries
        while self._background_next < len(entries):
            entry = entries[self._background_next]
            self._background_next += 1
            if entry.model_id not in self.source.proposals and \
                    entry.model_id not in self.source.errors:
                self.source.proposed(entry, keep=False)
                self.list.update_row(*self._row(entry))
                return
        self._background.stop()
        if self.filter == "low confidence first":
            self.refresh_list()

    # ---------------------------------------------------------------- one model

    def select(self, model_id: str | None) -> None:
        """Show ``model_id`` (None: nothing left to show).

        Whatever goes wrong with the model, the window shows that model's own
        row (never the previous model's values) and its error.
        """
        self._save_held_nudges()  # they belong to the model shown so far
        if model_id != self.current:
            self._close_reason()  # a reject prompt belongs to the model it was opened for
        self.current = model_id
        self.list.select(model_id)
        self.values, self.loaded, self.warnings = {}, False, ()
        if model_id is None:
            self._show_nothing("nothing to review with this filter (press f for another)")
            self._update_info()
            return
        entry = self.store.entry(model_id)
        self.values = shown_values(entry, None, self.store.fields)
        try:
            self._show_model(entry)
        except Exception as error:  # noqa: BLE001  (a broken model must not break the window)
            self.source.errors[model_id] = failure_reason(error)
            self.values, self.loaded = shown_values(entry, None, self.store.fields), False
            self._show_nothing(self.source.errors[model_id])
        self.list.update_row(*self._row(entry))
        self._update_info()

    def _show_nothing(self, message: str) -> None:
        self.head.set_picture(None, None, message)
        self.head.set_bounds(None, None, 0.0)
        self._set_panel_roles()
        for panel in (self.eyes, self.mouth, *self.role_pages.values()):
            panel.set_candidates([])
            panel.set_pictures(None, None, "cannot load" if self.current else "")
        if self.iris_page is not None:
            self.iris_page.set_pictures(None, "cannot load" if self.current else "")
        if self.body_page is not None:
            self.body_page.set_candidates([])
            self.body_page.set_pictures(None, None, "cannot load" if self.current else "")
        self._update_crop()

    def _show_model(self, entry) -> None:
        model = self.source.try_model(entry)
        if model is None:
            self._show_nothing(self.source.errors.get(entry.model_id, "cannot load"))
            return
        proposed = self.source.proposed(entry)
        self.values = shown_values(entry, proposed.values if proposed else None,
                                   self.store.fields)
        self.loaded, self.warnings = True, tuple(model.warnings)
        self._show_head(entry, model, proposed)
        guesses = [self.values[r] for r in EYE_ROLES]
        if proposed:
            guesses += [proposed.values[r] for r in EYE_ROLES]
        self._set_panel_roles()
        self.eyes.set_candidates(candidates(model, Panel.EYE, guesses))
        mouth = [self.values["mouth_open"], proposed.values["mouth_open"] if proposed else None]
        self.mouth.set_candidates(candidates(model, Panel.MOUTH, mouth))
        for feature, page in self.role_pages.items():
            columns = [c for i in range(len(page.groups)) for c in page.columns(i) if c]
            guesses = [self.values.get(c) for c in columns]
            if proposed:
                guesses += [proposed.values.get(c) for c in columns]
            page.set_candidates(candidates(model, FEATURE_PANELS[feature], guesses))
        if self.body_page is not None:
            self.body_page.set_candidates(body_candidates(
                model, [self.values.get(c) for c in BODY_COLUMNS]))
        self.show_page(self.pages.currentIndex())

    def _show_head(self, entry, model, proposed) -> None:
        top, bottom = self.values["head_top_y"], self.values["head_bottom_y"]
        centre_x = self.source.centre_x(entry, model)
        camera = self._cameras.get(entry.model_id)
        if camera is None:
            camera = self.source.view_camera(model, top, bottom, centre_x,
                                             self.zoom.get(entry.model_id, VIEW_ZOOM))
            self._cameras[entry.model_id] = camera
        try:
            image, message = to_qimage(self.source.image(entry, camera)), ""
        except MMDRenderError as error:
            image, message = None, f"cannot render: {error}"
        self.head.set_picture(image, camera, message)
        conf = {}
        if proposed:
            for which in ("top", "bottom"):
                field = f"head_{which}_y"
                if self.values[field] == proposed.values[field]:
                    conf[which] = proposed.confidence[field]
        self.head.set_bounds(top, bottom, centre_x, conf)
        self._update_crop()

    def _update_crop(self) -> None:
        self.crop.set_crop(self.head.image, self.head.crop_source())

    def _set_panel_roles(self) -> None:
        proposed = self.source.proposals.get(self.current) if self.current else None
        conf = proposed.confidence if proposed else {}
        values = proposed.values if proposed else {}
        self.eyes.set_roles(self.values, conf, values)
        self.mouth.set_roles(self.values, conf, values)
        for page in (*self.role_pages.values(), self.iris_page, self.body_page):
            if page is not None:
                page.set_values(self.values, conf, values)

    def _show_iris(self) -> None:
        """The iris page: the shown eye at rest and at the shown angles."""
        page = self.iris_page
        if self.current is None or not self.loaded:
            return
        entry = self.store.entry(self.current)
        try:
            images = self.source.iris_images(entry, page.side, self.values)
        except MMDRenderError as error:
            page.set_pictures(None, f"cannot render: {error}")
            return
        if images is None:
            page.set_pictures(None, "no eye bone")
            return
        page.set_pictures({end: to_qimage(image) for end, image in images.items()})

    def _show_body(self) -> None:
        """The body page: the upper body at rest and with the chosen bone turned."""
        page = self.body_page
        camera = self._cameras.get(self.current) if self.current else None
        if camera is None or not self.loaded or page.current is None:
            return
        entry = self.store.entry(self.current)
        body = self.source.body_camera(camera)
        field = page.current_field
        axis, degrees = ("z", 25.0 if field == "shoulder_left" else -25.0) \
            if field.startswith("shoulder") else ("y", 40.0)
        try:
            rest = to_qimage(self.source.image(entry, body))
            turned = to_qimage(self.source.image(entry, body, turn=(page.current, axis,
                                                                    degrees)))
            page.set_pictures(rest, turned)
        except MMDRenderError as error:
            page.set_pictures(None, None, f"cannot render: {error}")

    def _show_morph(self, panel: MorphPanel) -> None:
        """Render the rest face and the panel's candidate at weight 1."""
        if self.current is None or panel.current is None:
            return
        entry = self.store.entry(self.current)
        camera = self._cameras.get(self.current)
        if camera is None:
            return
        face = self.source.face_camera(camera)
        try:
            rest = self.source.image(entry, face)
            morphed = self.source.image(entry, face, panel.current)
            if isinstance(panel, RolePage):  # wide pages: mark what changed (brows hide
                morphed = marked_changes(rest, morphed)  # under hair on many models)
            panel.set_pictures(to_qimage(rest), to_qimage(morphed))
        except MMDRenderError as error:
            panel.set_pictures(None, None, f"cannot render: {error}")

    def _update_info(self) -> None:
        if self.current is None:
            self.info.setText("")
            return
        entry = self.store.entry(self.current)
        lines = [f"<b>{rich(entry.model_id)}</b>", rich(entry.path),
                 f"status: <b>{rich(entry.status)}</b>"
                 + (f" — {rich(entry.status_reason)}" if entry.status_reason else "")]
        if self.current in self.source.errors:
            lines.append(f"<span style='color:#c04040'>{rich(self.source.errors[self.current])}"
                         "</span>")
        if self.warnings:
            shown = "<br>".join(f"⚠ {rich(w)}" for w in self.warnings[:WARNINGS_SHOWN])
            more = len(self.warnings) - WARNINGS_SHOWN
            lines.append(f"<span style='color:#b06000'>{shown}"
                         + (f"<br>… and {more} more" if more > 0 else "") + "</span>")
        top, bottom = self.values.get("head_top_y"), self.values.get("head_bottom_y")
        if top is not None or bottom is not None:
            lines.append(f"head {_number(top)} … {_number(bottom)}")
        self.info.setText("<br>".join(lines))

    # ---------------------------------------------------------------- changes

    def _save(self, values: dict, what: str, **columns) -> bool:
        """Write the shown values (with ``values`` changed) into the index; False if refused."""
        if self.current is None:
            return False
        new = {**self.values, **values}
        try:
            change = self.store.edit(self.current, new, what, **columns)
        except PipelineError as error:
            self.say(f"not saved: {error}", error=True)
            self.select(self.current)  # show what the file holds
            return False
        self.values = new
        self._set_panel_roles()
        self.list.update_row(*self._row(self.store.entry(self.current)))
        self._update_info()
        if change is not None:
            self.say(f"saved {self.current}: {what}")
        return True

    def on_bounds_edited(self, top: float, bottom: float) -> None:
        self._save({"head_top_y": round(top, 4), "head_bottom_y": round(bottom, 4)},
                   "head bounds")
        self.head.set_bounds(self.values["head_top_y"], self.values["head_bottom_y"],
                             self.head.centre_x, {})
        self._update_crop()

    def assign(self, field: str, name: str | None) -> None:
        """Give role ``field`` the morph ``name`` (None: the model has no such morph)."""
        self._save({field: name}, f"{field} = {name or 'none'}")

    def clear_roles_of(self, name: str | None, panel=None) -> None:
        held = (panel or self.eyes).roles_of(name)
        if held:
            self._save(dict.fromkeys(held), f"{name}: no role")

    def assign_slot(self, page: RolePage, slot: int, clear: bool) -> None:
        """Give the page's group slot (0 both, 1 left, 2 right) the shown candidate, or none."""
        column = page.columns()[slot]
        if column is None:
            self.say(f"{page.current_group} has no left or right side", error=True)
            return
        self.assign(column, None if clear else page.current)

    def toggle_halves(self, page: RolePage) -> None:
        group = page.current_group
        if group not in SIDED_GROUPS:
            self.say(f"{group} has no sides to split", error=True)
            return
        halves = set((self.values.get(HALVES) or "").split()) ^ {group}
        self._save({HALVES: format_halves(halves)},
                   f"{group} halves {'on' if group in halves else 'off'}")

    def turn_iris(self, degrees: float) -> None:
        page = self.iris_page
        column = page.column()
        if self.values.get(column) is None:
            self.say(f"{column} has no angle to turn (no eye bone?)", error=True)
            return
        self._save({column: round(self.values[column] + degrees, 3)},
                   f"{column} {self.values[column] + degrees:+.2f}°")
        self._show_iris()

    def assign_bone(self, clear: bool) -> None:
        page = self.body_page
        self.assign(page.current_field, None if clear else page.current)
        self._show_body()

    def missing_for_confirm(self) -> list[str]:
        """What the dataset generator needs and the shown values lack."""
        v = self.values
        missing = []
        if v.get("head_top_y") is None or v.get("head_bottom_y") is None:
            missing.append("head bounds")
        if not v.get("mouth_open"):
            missing.append("a mouth-open morph")
        if not (v.get("wink_left") and v.get("wink_right")) and not v.get("wink_both"):
            missing.append("eye morphs (wink left and right, or wink both)")
        return missing

    def confirm(self) -> None:
        if self.current is None:
            return
        if not self.loaded:
            self.say(f"cannot confirm {self.current}: the model could not be loaded; "
                     "reject it (r)", error=True)
            return
        missing = self.missing_for_confirm()
        if missing:
            self.say(f"cannot confirm {self.current}: no {', '.join(missing)}; "
                     "set them, or reject (r)", error=True)
            return
        self._decide(status="confirmed", status_reason="")

    def ask_reason(self) -> None:
        if self.current is None:
            return
        error = self.source.errors.get(self.current, "")
        self.reason.setText(error or self.reason.text())
        self.reason.selectAll()
        self._rejecting = self.current
        self.reason.show()
        self.reason.setFocus()

    def _close_reason(self) -> None:
        self._rejecting = None
        if not self.reason.isHidden():
            self.reason.hide()
            self.setFocus()

    def reject(self, reason: str) -> None:
        """Reject the model the prompt was opened for (and is still shown) with ``reason``."""
        if self._rejecting is None or self._rejecting != self.current:
            self._close_reason()
            return
        if not reason:
            self.say("give a reason to reject (Esc cancels)", error=True)
            return
        self._close_reason()
        self._decide(status="rejected", status_reason=reason)

    def _decide(self, **columns) -> None:
        before = self.order()
        model_id = self.current
        if not self._save({}, columns["status"], **columns):
            return
        self.refresh_list()
        after = self.order()
        start = before.index(model_id) + 1 if model_id in before else 0
        shown = set(after)
        following = next((m for m in before[start:] if m in shown and m != model_id), None)
        if following:
            self.select(following)
        elif model_id in after and after.index(model_id) + 1 < len(after):
            self.select(after[after.index(model_id) + 1])
        else:
            self.select(after[0] if after and after[0] != model_id else None)
            if self.current is None:
                self.say(f"saved {model_id}: {columns['status']} — nothing left to review "
                         "with this filter")

    def undo(self) -> None:
        try:
            change = self.store.undo()
        except PipelineError as error:
            self.say(f"undo failed: {error}", error=True)
            return
        if change is None:
            self.say("nothing to undo")
            return
        model_id = change.before.model_id
        self.refresh_list()
        if model_id not in self.order():
            self.set_filter("all")
        self.select(model_id)
        self.say(f"undid {model_id}: {change.what}")

    def step(self, delta: int) -> None:
        order = self.order()
        if not order:
            return
        if self.current in order:
            index = max(0, min(len(order) - 1, order.index(self.current) + delta))
        else:
            index = 0
        self.select(order[index])

    def set_zoom(self, factor: float) -> None:
        if self.current is None:
            return
        zoom = self.zoom.get(self.current, VIEW_ZOOM) * factor
        self.zoom[self.current] = min(8.0, max(0.8, zoom))
        self._cameras.pop(self.current, None)
        self.select(self.current)

    def say(self, text: str, error: bool = False) -> None:
        colour = "#c04040" if error else "#2a7a3a"
        self.status.setText(f"<span style='color:{colour}'>{rich(text)}</span>")

    # ---------------------------------------------------------------- keys

    def keyPressEvent(self, event):
        if not event.isAutoRepeat():
            self._save_held_nudges()
        key, mods = event.key(), event.modifiers()
        K, M = Qt.Key, Qt.KeyboardModifier
        alt = bool(mods & M.AltModifier)
        ctrl = bool(mods & M.ControlModifier)
        shift = bool(mods & M.ShiftModifier)
        if ctrl and key == K.Key_Z:
            self.undo()
        elif ctrl:
            super().keyPressEvent(event)
        elif K.Key_F1 <= key <= K.Key_F6:
            self.show_page(key - K.Key_F1)
        elif key in (K.Key_Tab, K.Key_Backtab):
            step = -1 if key == K.Key_Backtab else 1
            self.show_page((self.pages.currentIndex() + step) % self.pages.count())
        elif self.pages.currentIndex() and self._page_key(event, key, alt, shift):
            pass
        elif key in (K.Key_Return, K.Key_Enter):
            self.confirm()
        elif key == K.Key_R:
            self.ask_reason()
        elif key in (K.Key_J, K.Key_PageDown):
            self.step(1)
        elif key in (K.Key_K, K.Key_PageUp):
            self.step(-1)
        elif key in (K.Key_Up, K.Key_Down):
            pixels = (10 if shift else 1) * (1 if key == K.Key_Up else -1)
            held = event.isAutoRepeat()  # saved once, on release (each write takes a while)
            if self.head.nudge(self.head.active, pixels, save=not held) and held:
                self._held_nudges = True
        elif key in (K.Key_T, K.Key_B):
            self.head.active = "top" if key == K.Key_T else "bottom"
            self.head.update()
        elif key in (K.Key_Left, K.Key_H):
            self.eyes.step(-1)
        elif key in (K.Key_Right, K.Key_L):
            self.eyes.step(1)
        elif key in EYE_KEYS:
            self.assign(EYE_KEYS[key], None if alt else self.eyes.current)
        elif key == K.Key_0:
            self.clear_roles_of(self.eyes.current)
        elif key in (K.Key_Comma, K.Key_Less):
            self.mouth.step(-1)
        elif key in (K.Key_Period, K.Key_Greater):
            self.mouth.step(1)
        elif key == K.Key_M:
            self.assign("mouth_open", None if alt else self.mouth.current)
        elif key == K.Key_F:
            self.set_filter(FILTERS[(FILTERS.index(self.filter) + 1) % len(FILTERS)])
        elif key in (K.Key_Plus, K.Key_Equal):
            self.set_zoom(1 / 1.25)
        elif key in (K.Key_Minus, K.Key_Underscore):
            self.set_zoom(1.25)
        else:
            super().keyPressEvent(event)

    def _page_key(self, event, key, alt: bool, shift: bool) -> bool:
        """Keys of the wide pages; False for a key the page leaves to the window."""
        K = Qt.Key
        page = self.page
        slots = {K.Key_1: 0, K.Key_2: 1, K.Key_3: 2}
        if key in (K.Key_BracketLeft, K.Key_BracketRight):
            delta = -1 if key == K.Key_BracketLeft else 1
            if page is self.iris_page:
                page.end = (page.end + delta) % len(IRIS_ENDS)
                page.set_values(self.values, page.confidence, page.proposed)
            else:
                page.select(delta)
                if page is self.body_page:
                    self._show_body()
            return True
        if isinstance(page, RolePage):
            if key in (K.Key_Left, K.Key_H, K.Key_Right, K.Key_L):
                page.step(-1 if key in (K.Key_Left, K.Key_H) else 1)
            elif key in slots:
                self.assign_slot(page, slots[key], alt)
            elif key == K.Key_0:
                self.clear_roles_of(page.current, page)
            elif key == K.Key_S:
                self.toggle_halves(page)
            else:
                return key in FIRST_PAGE_KEYS
            return True
        if page is self.iris_page:
            if key == K.Key_E:
                page.side = "right" if page.side == "left" else "left"
                page.set_values(self.values, page.confidence, page.proposed)
                self._show_iris()
            elif key in (K.Key_Left, K.Key_Right):
                amount = (2.0 if shift else 0.5) * (1 if key == K.Key_Right else -1)
                self.turn_iris(amount)
            else:
                return key in FIRST_PAGE_KEYS
            return True
        if page is self.body_page:
            if key in (K.Key_Left, K.Key_Right):
                page.step(-1 if key == K.Key_Left else 1)
                self._show_body()
            elif key in slots and slots[key] == 0:
                self.assign_bone(alt)
            else:
                return key in FIRST_PAGE_KEYS
            return True
        return key in FIRST_PAGE_KEYS  # the winks' and mouth's keys act on the first page only

    def keyReleaseEvent(self, event):
        if not event.isAutoRepeat():
            self._save_held_nudges()
        super().keyReleaseEvent(event)

    def closeEvent(self, event):
        self._save_held_nudges()
        super().closeEvent(event)

    def _save_held_nudges(self) -> None:
        """Save the head lines moved by a held arrow key (a drag's worth of moves)."""
        if self._held_nudges:
            self._held_nudges = False
            if self.head.has_bounds():
                self.on_bounds_edited(self.head.top, self.head.bottom)


def _number(value: float | None) -> str:
    return "(none)" if value is None else f"{value:.4f}"


def run_gui(index_path: str | Path, root: str | Path | None = None,
            schema: str = "tha1") -> int:
    """Open the review window on ``index_path`` and run until it is closed."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = ReviewWindow(index_path, root, schema=schema)
    window.show()
    window.setFocus()
    return app.exec()


__all__ = ["FIELDS", "FILTERS", "ReviewWindow", "run_gui"]
