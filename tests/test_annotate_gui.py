"""The review window (annotate.gui), driven by pytest-qt on the sample characters.

Runs on Qt's offscreen platform. Skips with a reason when PySide6 or pytest-qt
is missing (make setup-gui; pip install pytest-qt). Pictures come from the
real renderer; where GL is missing the window says "cannot render" and the
geometry under test still works.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from conftest_gl import gl_context  # noqa: E402, F401  (a fixture)

from annotate.gui.store import FIELDS, ReviewStore, shown_values  # noqa: E402
from pipeline.index import read_index, sample_entries, write_index  # noqa: E402
from pipeline.roles import WIDE_COLUMNS  # noqa: E402

MISSING = [name for name, module in (("PySide6", "PySide6"), ("pytest-qt", "pytestqt"))
           if importlib.util.find_spec(module) is None]
needs_qt = pytest.mark.skipif(bool(MISSING), reason=f"{' and '.join(MISSING)} not installed "
                              "(make setup-gui; pip install pytest-qt)")
BLANK = dict.fromkeys(FIELDS) | {"status": "auto", "status_reason": ""}
AUTO_ROWS = (1, 2, 3)  # rows set to auto with blank fields; 0 and 4 stay confirmed


@pytest.fixture
def written_samples(samples_dir):
    return samples_dir


@pytest.fixture
def index(tmp_path, written_samples):
    """An index of the sample characters with rows 1-3 fresh (auto, nothing annotated)."""
    path, samples = tmp_path / "models_index.csv", tmp_path / "samples"
    shutil.copytree(written_samples, samples)
    write_index(path, [replace(e, **BLANK) if i in AUTO_ROWS else e
                       for i, e in enumerate(sample_entries(samples))])
    return path


def row(index_path, model_id):
    return next(e for e in read_index(index_path) if e.model_id == model_id)


@pytest.fixture
def open_window(qtbot, index):
    from annotate.gui.app import ReviewWindow

    def make():
        window = ReviewWindow(index, index.parent / "samples", background=False)
        qtbot.addWidget(window)
        window.resize(1280, 800)
        window.show()
        qtbot.waitExposed(window)
        return window
    return make


def press(qtbot, window, key, modifier=None):
    from PySide6.QtCore import Qt

    qtbot.keyClick(window, key, modifier or Qt.KeyboardModifier.NoModifier)


def plain(label) -> str:
    """What a rich-text label shows a person (its text with the markup rendered)."""
    from PySide6.QtGui import QTextDocument

    document = QTextDocument()
    document.setHtml(label.text())
    return document.toPlainText()


def break_loader(monkeypatch, path_part: str, error: Exception) -> list[str]:
    """Make loading any model whose path contains ``path_part`` raise ``error``.

    Returns the list of paths loaded from then on (broken ones included).
    """
    import mmdrender.loader

    real, loads = mmdrender.loader.load_model, []

    def load(path, *args, **kwargs):
        loads.append(str(path))
        if path_part in str(path):
            raise error
        return real(path, *args, **kwargs)

    monkeypatch.setattr(mmdrender.loader, "load_model", load)
    return loads


# ------------------------------------------------------------------ without Qt


def test_store_writes_each_change_and_undoes_it(index):
    store = ReviewStore(index)
    model_id = store.ids[1]
    store.edit(model_id, {"head_top_y": 20.0, "head_bottom_y": 15.0}, "bounds")
    assert row(index, model_id).head_top_y == 20.0
    store.edit(model_id, {}, "confirm", status="confirmed")
    assert row(index, model_id).status == "confirmed"
    assert store.undo().what == "confirm"
    assert row(index, model_id).status == "auto"
    assert row(index, model_id).head_top_y == 20.0
    store.undo()
    assert row(index, model_id).head_top_y is None
    assert store.undo() is None


def test_an_empty_auto_row_shows_the_proposals_a_filled_one_its_own_values(index):
    entries = read_index(index)
    proposed = dict.fromkeys(FIELDS, "p") | {"head_top_y": 2.0, "head_bottom_y": 1.0}
    assert shown_values(entries[1], proposed) == proposed
    assert shown_values(entries[0], proposed)["wink_left"] == entries[0].wink_left
    touched = replace(entries[1], wink_left="mine")  # a later None is kept, not re-filled
    assert shown_values(touched, proposed)["wink_both"] is None


# ------------------------------------------------------------------ the window


@needs_qt
def test_opens_on_the_first_unconfirmed_model_with_proposals(open_window, index):
    window = open_window()
    auto_ids = [e.model_id for i, e in enumerate(read_index(index)) if i in AUTO_ROWS]
    assert window.filter == "unconfirmed"
    assert window.list.ids == auto_ids
    assert window.current == auto_ids[0]
    assert window.values["mouth_open"] == "あ"
    assert window.values["head_top_y"] > window.values["head_bottom_y"]
    assert window.eyes.names[:1] and window.eyes.current in window.eyes.names
    assert window.list.item(0, 2).text()  # its confidence is shown


@needs_qt
def test_dragging_the_top_line_moves_head_top_by_the_camera_scale(qtbot, open_window, index):
    from PySide6.QtCore import QPoint, Qt

    window = open_window()
    head, model_id = window.head, window.current
    top_before, line_before = head.top, head.line_y("top")
    _, _, scale = head._frame()  # widget pixels per camera pixel
    x, y = head.width() // 2, round(line_before)
    qtbot.mousePress(head, Qt.MouseButton.LeftButton, pos=QPoint(x, y))  # grabs the line
    qtbot.mouseMove(head, QPoint(x, y - 10))
    qtbot.mouseMove(head, QPoint(x, y - 30))
    qtbot.mouseRelease(head, Qt.MouseButton.LeftButton, pos=QPoint(x, y - 30))
    # the line went (line_before - (y - 30)) widget pixels up: / scale camera pixels, each
    # camera.pixel_size model units
    expected = top_before + (line_before - (y - 30)) / scale * head.camera.pixel_size
    assert expected == pytest.approx(head.widget_to_y(y - 30))
    assert expected - top_before > 0.1
    assert head.top == pytest.approx(round(expected, 4))
    saved = row(index, model_id)
    assert saved.head_top_y == pytest.approx(expected, abs=1e-4)
    assert saved.status == "auto"  # edited, not yet confirmed
    assert saved.mouth_open == "あ"  # the first edit writes every shown value


@needs_qt
def test_the_framing_box_follows_the_lines(qtbot, open_window):
    from PySide6.QtCore import Qt

    window = open_window()
    head = window.head

    def check():
        top, bottom = head.line_y("top"), head.line_y("bottom")
        crop, box = head.crop_rect(), head.head_rect()
        assert box.top() == pytest.approx(top) and box.bottom() == pytest.approx(bottom)
        assert crop.height() == pytest.approx(2 * (bottom - top))  # head = rows 64..192 of 256
        assert crop.center().y() == pytest.approx((top + bottom) / 2)
        assert crop.width() == pytest.approx(crop.height())
        return crop

    before = check()
    press(qtbot, window, Qt.Key.Key_Up, Qt.KeyboardModifier.ShiftModifier)  # top up 10 px
    press(qtbot, window, Qt.Key.Key_B)
    press(qtbot, window, Qt.Key.Key_Down)                                   # bottom down 1 px
    after = check()
    assert after.height() > before.height()
    assert window.crop.source is not None


@needs_qt
def test_assign_a_morph_confirm_and_reopen(qtbot, open_window, index):
    from PySide6.QtCore import Qt

    window = open_window()
    model_id = window.current
    press(qtbot, window, Qt.Key.Key_Right)          # another eye candidate
    chosen = window.eyes.current
    assert chosen != window.values["wink_left"]     # so the key below changes something
    press(qtbot, window, Qt.Key.Key_1)              # ... is wink_left
    assert row(index, model_id).wink_left == chosen
    assert "wink_left" in window.eyes.roles_of(chosen)
    assert plain(window.eyes.rows["wink_left"][2]).startswith(chosen)  # the panel shows it
    assert "wink_left" in plain(window.eyes.counter)
    press(qtbot, window, Qt.Key.Key_Return)
    assert window.current != model_id               # moved on to the next model
    assert model_id not in window.list.ids          # the unconfirmed list dropped it
    shown = {name: window.store.entry(model_id).__getattribute__(name) for name in FIELDS}
    window.close()

    again = open_window()
    saved = again.store.entry(model_id)
    assert saved.status == "confirmed" and saved.status_reason == ""
    assert saved.wink_left == chosen
    assert {name: getattr(saved, name) for name in FIELDS} == shown
    assert again.current != model_id


@needs_qt
def test_one_key_confirms_a_model_whose_proposals_are_right(qtbot, open_window, index):
    from PySide6.QtCore import Qt

    window = open_window()
    for _ in AUTO_ROWS:
        press(qtbot, window, Qt.Key.Key_Return)
    assert [e.status for e in read_index(index)] == ["confirmed"] * 5
    assert window.current is None  # nothing left with this filter


class Crash(BaseException):
    """The process dying: not an error any handler catches."""


@needs_qt
def test_a_crash_after_confirm_loses_nothing(qtbot, open_window, index, monkeypatch):
    from PySide6.QtCore import Qt

    window = open_window()
    confirmed = window.current
    press(qtbot, window, Qt.Key.Key_Return)
    # the window is never closed: the file alone must already hold the confirm
    assert row(index, confirmed).status == "confirmed"
    before = index.read_bytes()

    crashed = []
    real_replace = os.replace

    def crash(source, target, *args, **kwargs):
        if str(target) == str(index):  # the new index is written in full; then the power fails
            crashed.append(source)
            raise Crash()
        return real_replace(source, target, *args, **kwargs)

    monkeypatch.setattr(os, "replace", crash)
    # a morph assignment that dies mid-write; PySide6 >= 6.8 re-raises the handler's
    # exception from keyClick, older ones hand it to sys.excepthook (which pytest-qt catches)
    with qtbot.capture_exceptions() as raised:
        try:
            press(qtbot, window, Qt.Key.Key_2)
        except Crash as error:
            raised.append((type(error), error, None))
    assert crashed, "the key did not reach the index write"
    assert raised and raised[0][0] is Crash
    assert index.read_bytes() == before  # the old index whole, nothing half written
    saved = row(index, confirmed)
    assert saved.status == "confirmed" and saved.mouth_open == "あ"
    assert not list(index.parent.glob("*.tmp"))  # no temporary file left behind


@needs_qt
def test_reject_with_a_reason(qtbot, open_window, index):
    from PySide6.QtCore import Qt

    window = open_window()
    model_id = window.current
    others = [e for e in read_index(index) if e.model_id != model_id]
    press(qtbot, window, Qt.Key.Key_R)
    assert window.reason.isVisible()
    window.reason.clear()
    qtbot.keyClicks(window.reason, "hair covers the face")
    qtbot.keyClick(window.reason, Qt.Key.Key_Return)
    assert not window.reason.isVisible()
    saved = row(index, model_id)
    assert (saved.status, saved.status_reason) == ("rejected", "hair covers the face")
    assert window.current != model_id
    # the Enter that rejected must not also confirm the model shown next
    assert [e for e in read_index(index) if e.model_id != model_id] == others


@needs_qt
def test_escape_cancels_a_reject(qtbot, open_window, index):
    from PySide6.QtCore import Qt

    window = open_window()
    model_id = window.current
    press(qtbot, window, Qt.Key.Key_R)
    qtbot.keyClick(window.reason, Qt.Key.Key_Escape)
    assert not window.reason.isVisible() and window.current == model_id
    assert row(index, model_id).status == "auto"


@needs_qt
def test_undo_restores_the_previous_values_in_the_file(qtbot, open_window, index):
    from PySide6.QtCore import Qt

    window = open_window()
    model_id = window.current
    original = row(index, model_id)
    press(qtbot, window, Qt.Key.Key_3, Qt.KeyboardModifier.AltModifier)  # wink_both: none
    assert row(index, model_id).wink_both is None
    assert row(index, model_id).mouth_open == "あ"
    press(qtbot, window, Qt.Key.Key_Return)
    assert row(index, model_id).status == "confirmed"

    press(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert row(index, model_id).status == "auto"
    assert row(index, model_id).mouth_open == "あ"
    assert window.current == model_id  # undo shows the model it changed
    press(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert row(index, model_id) == original  # back to the blank row


@needs_qt
def test_confirm_is_refused_without_a_mouth_morph(qtbot, open_window, index):
    from PySide6.QtCore import Qt

    window = open_window()
    model_id = window.current
    press(qtbot, window, Qt.Key.Key_M, Qt.KeyboardModifier.AltModifier)  # mouth_open: none
    press(qtbot, window, Qt.Key.Key_Return)
    assert window.current == model_id
    assert row(index, model_id).status == "auto"
    assert "mouth" in window.status.text()


@needs_qt
def test_navigation_and_filters(qtbot, open_window):
    from PySide6.QtCore import Qt

    window = open_window()
    first = window.current
    press(qtbot, window, Qt.Key.Key_J)
    second = window.current
    press(qtbot, window, Qt.Key.Key_PageDown)
    press(qtbot, window, Qt.Key.Key_K)
    assert window.current == second != first
    press(qtbot, window, Qt.Key.Key_PageUp)
    assert window.current == first
    press(qtbot, window, Qt.Key.Key_F)
    assert window.filter == "low confidence first" and len(window.list.ids) == 3
    confidences = [window.source.confidence(window.store.entry(m)) for m in window.list.ids]
    assert confidences == sorted(confidences)
    press(qtbot, window, Qt.Key.Key_F)
    assert window.filter == "all" and len(window.list.ids) == 5


@needs_qt
def test_a_model_that_cannot_load_can_still_be_rejected(qtbot, open_window, index):
    from PySide6.QtCore import Qt

    broken = read_index(index)[2]
    (index.parent / "samples" / broken.path).write_bytes(b"not a model")
    window = open_window()
    window.select(broken.model_id)
    assert broken.model_id in window.source.errors
    press(qtbot, window, Qt.Key.Key_Return)  # nothing to confirm with
    assert row(index, broken.model_id).status == "auto"
    press(qtbot, window, Qt.Key.Key_R)
    assert "MMD model" in window.reason.text()  # the load error is offered as the reason
    qtbot.keyClick(window.reason, Qt.Key.Key_Return)
    assert row(index, broken.model_id).status == "rejected"


@needs_qt
def test_the_window_grabs_a_picture(gl_context, open_window, tmp_path):  # noqa: F811
    import numpy as np

    window = open_window()
    assert window.head.image is not None, window.head.message  # the model was rendered
    assert window.eyes.rest.image is not None and window.eyes.morphed.image is not None
    picture = window.grab()
    assert picture.width() >= 1000 and picture.save(str(tmp_path / "annotate.png"))
    view = window.head.grab().toImage().convertToFormat(window.head.image.Format.Format_RGB888)
    pixels = np.frombuffer(view.constBits(), np.uint8).reshape(
        view.height(), view.bytesPerLine())[:, :3 * view.width()].reshape(
        view.height(), view.width(), 3)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200  # a shaded character, not a fill


def test_gui_command_reports_a_missing_index_in_one_line(tmp_path):
    from annotate.cli import main as annotate_main

    result = CliRunner().invoke(annotate_main, ["gui", "--index", str(tmp_path / "none.csv")])
    assert result.exit_code == 1
    assert "no such index file" in result.output and "Traceback" not in result.output


# ------------------------------------------------------------------ models that break


@needs_qt
def test_a_model_the_loader_crashes_on_is_never_confirmed_with_another_models_values(
        qtbot, open_window, index, monkeypatch):
    from PySide6.QtCore import Qt

    broken = read_index(index)[2]  # the second model of the unconfirmed list
    break_loader(monkeypatch, broken.path, Exception("unknown bone type: 239"))
    window = open_window()
    assert window.current != broken.model_id and window.values["mouth_open"] == "あ"
    press(qtbot, window, Qt.Key.Key_J)
    assert window.current == broken.model_id
    assert window.values == dict.fromkeys(FIELDS)  # its own (blank) row, not the last model's
    assert "unknown bone type" in plain(window.info)
    press(qtbot, window, Qt.Key.Key_Return)
    assert row(index, broken.model_id) == broken  # nothing written
    assert window.current == broken.model_id
    assert "could not be loaded" in plain(window.status)
    press(qtbot, window, Qt.Key.Key_R)
    assert "unknown bone type" in window.reason.text()  # offered as the reason
    qtbot.keyClick(window.reason, Qt.Key.Key_Return)
    assert row(index, broken.model_id).status == "rejected"


@needs_qt
def test_a_model_whose_proposals_fail_shows_its_own_row_and_the_reason(
        qtbot, open_window, index, monkeypatch):
    from PySide6.QtCore import Qt

    import annotate.auto

    broken = read_index(index)[2]
    real = annotate.auto.propose

    def propose(model, schema="tha1"):
        if broken.path in model.path.as_posix():
            raise ZeroDivisionError("Weights sum to zero, can't be normalized")
        return real(model, schema)

    monkeypatch.setattr(annotate.auto, "propose", propose)
    window = open_window()
    press(qtbot, window, Qt.Key.Key_J)
    assert window.current == broken.model_id and window.loaded
    assert window.values == dict.fromkeys(FIELDS)
    assert "ZeroDivisionError" in plain(window.info)
    press(qtbot, window, Qt.Key.Key_Return)  # no values to confirm
    assert row(index, broken.model_id) == broken
    assert "cannot confirm" in plain(window.status)


@needs_qt
def test_idle_work_tries_a_failing_model_once_and_keeps_the_shown_one_loaded(
        qtbot, index, monkeypatch):
    from annotate.gui.app import ReviewWindow
    from annotate.gui.source import ModelSource

    entries = read_index(index)
    broken = entries[0]  # a confirmed row: idle work proposes every row
    loads = break_loader(monkeypatch, broken.path, Exception("unknown bone type: 239"))
    source = ModelSource(index.parent / "samples", keep_models=2)
    window = ReviewWindow(index, index.parent / "samples", source=source, background=True)
    qtbot.addWidget(window)
    shown = window.current
    qtbot.waitUntil(lambda: not window._background.isActive(), timeout=60_000)
    assert sum(broken.path in path for path in loads) == 1
    assert broken.model_id in window.source.errors
    assert set(window.source.proposals) == {e.model_id for e in entries[1:]}
    loads.clear()
    window.select(shown)
    assert loads == []  # the model under review was not pushed out of the cache


@needs_qt
def test_a_row_with_only_head_top_opens_and_can_be_finished(qtbot, open_window, index):
    from PySide6.QtCore import Qt

    entries = read_index(index)
    write_index(index, [replace(e, head_top_y=19.0) if i == 1 else e
                        for i, e in enumerate(entries)])
    window = open_window()
    model_id = entries[1].model_id
    assert window.current == model_id
    assert window.values["head_top_y"] == 19.0
    bottom = window.values["head_bottom_y"]
    assert bottom is not None and bottom < 19.0  # the proposal's, so the lines can be drawn
    assert window.head.has_bounds()
    assert f"head 19.0000 … {bottom:.4f}" in plain(window.info)
    press(qtbot, window, Qt.Key.Key_B)
    press(qtbot, window, Qt.Key.Key_Down)  # moving the bottom line writes both bounds
    saved = row(index, model_id)
    assert saved.head_top_y == 19.0 and saved.head_bottom_y == window.head.bottom < bottom


@needs_qt
def test_the_reject_prompt_closes_when_another_model_is_picked(qtbot, open_window, index):
    from PySide6.QtCore import Qt

    window = open_window()
    before = read_index(index)
    press(qtbot, window, Qt.Key.Key_R)
    qtbot.keyClicks(window.reason, "no face")
    other = window.list.ids[2]
    rect = window.list.visualRect(window.list.model().index(2, 0))
    qtbot.mouseClick(window.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.current == other
    assert not window.reason.isVisible()
    qtbot.keyClick(window.reason, Qt.Key.Key_Return)  # even a stray Enter reaching it
    assert read_index(index) == before


@needs_qt
def test_text_with_markup_is_shown_as_written(qtbot, open_window, index):
    from PySide6.QtWidgets import QLabel

    entries = read_index(index)
    reason = "<b>hair</b> & <eyes> missing"
    write_index(index, [replace(e, status_reason=reason) if i == 1 else e
                        for i, e in enumerate(entries)])
    window = open_window()
    assert reason in plain(window.info)
    tooltip = QLabel(window.list.item(0, 0).toolTip())
    assert reason in plain(tooltip)
    window.say("cannot confirm <m> & co")
    assert "cannot confirm <m> & co" in plain(window.status)
    window.eyes.set_candidates(["x<y>&z"])
    assert "x<y>&z" in plain(window.eyes.counter)
    window.eyes.set_roles({"wink_left": "<w>"})
    assert plain(window.eyes.rows["wink_left"][2]).startswith("<w>")


@needs_qt
def test_the_loaders_warnings_are_shown(qtbot, open_window, index):
    model = read_index(index)[1]
    (index.parent / "samples" / model.path).with_name("hair.png").unlink()
    window = open_window()
    assert window.current == model.model_id
    assert "texture 'hair.png' not found" in plain(window.info)


@needs_qt
def test_a_held_arrow_key_saves_once_on_release(qtbot, open_window, index):
    from PySide6.QtCore import QEvent, Qt
    from PySide6.QtGui import QKeyEvent
    from PySide6.QtWidgets import QApplication

    window = open_window()
    model_id = window.current

    def send(kind, repeated):
        QApplication.sendEvent(window, QKeyEvent(kind, Qt.Key.Key_Up,
                                                 Qt.KeyboardModifier.NoModifier, "", repeated))

    start = window.head.top
    send(QEvent.Type.KeyPress, False)  # a press is saved at once
    first = row(index, model_id).head_top_y
    assert first == window.head.top > start
    for _ in range(5):  # holding the key: the line moves, the file waits
        send(QEvent.Type.KeyRelease, True)
        send(QEvent.Type.KeyPress, True)
    assert window.head.top > first + 1e-3
    assert row(index, model_id).head_top_y == first
    send(QEvent.Type.KeyRelease, False)
    assert row(index, model_id).head_top_y == pytest.approx(window.head.top, abs=1e-4) != first
    released = row(index, model_id).head_top_y
    for _ in range(3):  # held again, and Enter before the release: the confirm has the line
        send(QEvent.Type.KeyPress, True)
    press(qtbot, window, Qt.Key.Key_Return)
    saved = row(index, model_id)
    assert saved.status == "confirmed" and saved.head_top_y > released + 1e-3


@needs_qt
def test_confirming_updates_the_list_in_place(qtbot, open_window, index):
    from PySide6.QtCore import Qt

    window = open_window()
    mark = Qt.ItemDataRole.UserRole
    for r in range(len(window.list.ids)):
        window.list.item(r, 0).setData(mark, "kept")
    first, rest = window.list.ids[0], window.list.ids[1:]
    press(qtbot, window, Qt.Key.Key_Return)
    assert window.list.ids == rest  # the confirmed row left the unconfirmed list
    # the next model's row shows its new confidence; a row nothing happened to is untouched
    assert window.list.item(len(rest) - 1, 0).data(mark) == "kept"
    assert window.current == rest[0] and window.list.currentRow() == 0
    window.set_filter("all")
    assert window.list.item(window.list.ids.index(first), 1).text() == "confirmed"


# ------------------------------------------------------------------ opening the window


def test_gui_command_refuses_a_pyside6_that_aborts_long_sessions():
    from annotate.cli import pyside_problem

    problem = pyside_problem((6, 12), (3, 11))
    assert "PySide6-Essentials>=6.6,<6.12" in problem and "\n" not in problem
    assert pyside_problem((6, 11), (3, 11)) is None
    assert pyside_problem((6, 12), (3, 12)) is None  # None is immortal from Python 3.12


XCB_FAILED = ("qt.qpa.plugin: From 6.5.0, xcb-cursor0 or libxcb-cursor0 is needed to load the "
              "Qt xcb platform plugin.\nqt.qpa.plugin: Could not load the Qt platform plugin "
              "\"xcb\" in \"\" even though it was found.\nThis application failed to start ...")


@pytest.mark.parametrize("qt_said, missing, hint", [
    (XCB_FAILED, ["libxcb-cursor.so.0"], "sudo apt install libxcb-cursor0"),
    # Qt names libxcb-cursor0 whatever is missing: the message names what is
    (XCB_FAILED, ["libxcb-icccm.so.4", "libxkbcommon-x11.so.0"],
     "the system libraries libxcb-icccm.so.4, libxkbcommon-x11.so.0 are missing; install them "
     "with `make setup-gui` or sudo apt install libxcb-icccm4 libxkbcommon-x11-0"),
    ("qt.qpa.xcb: could not connect to display :987\nqt.qpa.plugin: Could not load the Qt "
     "platform plugin \"xcb\" in \"\" even though it was found.", [], "DISPLAY"),
    (XCB_FAILED, [], "every library it links against is found"),
])
def test_qt_failures_become_one_actionable_line(qt_said, missing, hint):
    from annotate.cli import describe_qt_failure

    message = describe_qt_failure(qt_said, {"DISPLAY": ":987"}, missing)
    assert hint in message and "QT_QPA_PLATFORM=offscreen" in message and "\n" not in message
    if missing and "libxcb-cursor.so.0" not in missing:
        assert "cursor" not in message


def test_the_setup_installs_the_package_of_every_library_the_qt_window_links():
    """`make setup-gui` installs what `python -m annotate.qt_libraries` names: each library
    the xcb plugin needs maps to the Debian package that really ships it here."""
    import subprocess

    from annotate.qt_libraries import debian_package, missing_packages, xcb_plugin

    plugin = xcb_plugin()
    if plugin is None or shutil.which("ldd") is None or shutil.which("dpkg") is None:
        pytest.skip("needs PySide6's xcb plugin, ldd and dpkg (Debian/Ubuntu)")
    linked = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True).stdout
    checked = 0
    for soname, path in re.findall(r"^\s*(\S+)\s+=>\s+(/\S+)", linked, re.MULTILINE):
        if "PySide6" in path or soname.startswith("ld-linux"):
            continue  # bundled with the wheel
        owner = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
        if owner.returncode != 0:  # a merged-/usr path: ask for the /usr one
            owner = subprocess.run(["dpkg", "-S", "/usr" + path], capture_output=True,
                                   text=True)
        if owner.returncode == 0:
            package = owner.stdout.split(":")[0]
            assert debian_package(soname) == package, (soname, package)
            checked += 1
    assert checked >= 15, linked
    project = Path(__file__).resolve().parents[1]
    script = (project / "scripts" / "ensure-qt.sh").read_text()
    assert "annotate.qt_libraries" in script and "install-packages.sh" in script
    assert "ensure-qt.sh" in (project / "Makefile").read_text().split("setup-gui:")[1]
    for package in missing_packages():  # what this machine lacks is a real package name
        shown = subprocess.run(["apt-cache", "show", package], capture_output=True)
        assert shown.returncode == 0 or shutil.which("apt-cache") is None, package


@pytest.mark.skipif(not sys.platform.startswith("linux") or bool(MISSING),
                    reason="X11 displays are a Linux matter; needs PySide6")
def test_gui_command_with_an_unreachable_display_prints_one_error_line(tmp_path, index,
                                                                      monkeypatch):
    import annotate.gui.app
    from annotate.cli import main as annotate_main

    def must_not_open(*_args, **_kwargs):
        raise AssertionError("the window was opened; Qt would abort the process here")

    monkeypatch.setattr(annotate.gui.app, "run_gui", must_not_open)
    result = CliRunner().invoke(
        annotate_main, ["gui", "--index", str(index)],
        env={"DISPLAY": ":987", "QT_QPA_PLATFORM": None, "WAYLAND_DISPLAY": None})
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "QT_QPA_PLATFORM=offscreen" in lines[0]


# ------------------------------------------------------------------ the wide pages (tha2/tha3)

WIDE_BLANK = {**BLANK, **{c: None for c in WIDE_COLUMNS if c != "halves"}, "halves": ""}


@pytest.fixture
def wide_window(qtbot, tmp_path, written_samples):
    """The window with --schema tha3 on the samples, rows 1-3 fresh (no value at all)."""
    from annotate.gui.app import ReviewWindow

    path, samples = tmp_path / "models_index.csv", tmp_path / "samples"
    shutil.copytree(written_samples, samples)
    write_index(path, [replace(e, **WIDE_BLANK) if i in AUTO_ROWS else e
                       for i, e in enumerate(sample_entries(samples))])

    def make():
        window = ReviewWindow(path, samples, background=False, schema="tha3")
        qtbot.addWidget(window)
        window.resize(1400, 860)
        window.show()
        qtbot.waitExposed(window)
        return window
    return make, path


@needs_qt
def test_tha1_window_has_no_extra_pages(open_window):
    window = open_window()
    assert window.pages.count() == 1 and not window.tabs.isVisible()


@needs_qt
def test_pages_turn_with_function_keys_and_tab(qtbot, wide_window):
    from PySide6.QtCore import Qt

    make, _ = wide_window
    window = make()
    assert [window.tabs.tabText(i) for i in range(window.pages.count())] == [
        "F1 THA1", "F2 eyebrows", "F3 eyes", "F4 iris", "F5 mouth", "F6 body"]
    press(qtbot, window, Qt.Key.Key_F3)
    assert window.page is window.role_pages["eye"]
    press(qtbot, window, Qt.Key.Key_Tab)
    assert window.page is window.iris_page
    press(qtbot, window, Qt.Key.Key_Backtab)
    press(qtbot, window, Qt.Key.Key_Backtab)
    assert window.pages.currentIndex() == 1


@needs_qt
def test_one_key_confirms_every_wide_field_of_a_right_proposal(gl_context, qtbot,  # noqa: F811
                                                                wide_window):
    from PySide6.QtCore import Qt

    from mmdrender.samples import sample_truth
    from pipeline.roles import morph_column

    make, path = wide_window
    window = make()
    model_id = window.current
    press(qtbot, window, Qt.Key.Key_Return)
    saved = row(path, model_id)
    truth = sample_truth(saved.source)
    assert saved.status == "confirmed"
    for (group, side), morph in truth.faces.items():
        assert getattr(saved, morph_column(group, side)) == morph
    assert set(saved.halves.split()) == truth.halves
    assert saved.eye_bone_left == "左目" and saved.shoulder_right == "右肩"
    assert saved.iris_left_x_pos == pytest.approx(truth.iris["left"]["x_pos"], abs=1.0)


@needs_qt
def test_assign_slots_and_halves_on_the_eyebrow_page(gl_context, qtbot, wide_window):  # noqa: F811
    from PySide6.QtCore import Qt

    make, path = wide_window
    window = make()
    model_id = window.current  # midori: one-side brows only
    press(qtbot, window, Qt.Key.Key_F2)
    page = window.role_pages["eyebrow"]
    assert page.current_group == "eyebrow_troubled"
    press(qtbot, window, Qt.Key.Key_BracketRight)
    assert page.current_group == "eyebrow_angry"
    assert page.current == window.values["eyebrow_angry_left"]  # it shows what the group holds
    press(qtbot, window, Qt.Key.Key_Right)
    chosen = page.current
    press(qtbot, window, Qt.Key.Key_3)  # ... plays the right side
    assert row(path, model_id).eyebrow_angry_right == chosen
    press(qtbot, window, Qt.Key.Key_1, Qt.KeyboardModifier.AltModifier)  # no both-sides morph
    assert row(path, model_id).eyebrow_angry is None
    press(qtbot, window, Qt.Key.Key_S)
    assert "eyebrow_angry" in row(path, model_id).halves.split()
    assert plain(page.cells[1][4]) == "✓"
    press(qtbot, window, Qt.Key.Key_S)
    assert "eyebrow_angry" not in row(path, model_id).halves.split()
    # the winks' keys do nothing here: 4 would make the candidate a smile wink on page 1
    before = row(path, model_id)
    press(qtbot, window, Qt.Key.Key_4)
    assert row(path, model_id) == before
    assert page.morphed.image is not None and page.rest.image is not None
    press(qtbot, window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert "eyebrow_angry" in row(path, model_id).halves.split()  # undo works here too


@needs_qt
def test_the_iris_page_shows_both_axes_and_turns_an_end(gl_context, qtbot,  # noqa: F811
                                                        wide_window):
    from PySide6.QtCore import Qt

    make, path = wide_window
    window = make()
    model_id = window.current
    press(qtbot, window, Qt.Key.Key_F4)
    page = window.iris_page
    assert all(page.pictures[end].image is not None
               for end in ("rest", "x_pos", "x_neg", "y_pos", "y_neg"))
    before = window.values["iris_left_x_pos"]
    press(qtbot, window, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)
    assert row(path, model_id).iris_left_x_pos == pytest.approx(before + 2.0)
    press(qtbot, window, Qt.Key.Key_E)
    assert page.side == "right" and "right" in plain(page.title)
    press(qtbot, window, Qt.Key.Key_BracketRight)
    press(qtbot, window, Qt.Key.Key_Left)
    assert row(path, model_id).iris_right_x_neg == pytest.approx(
        window.source.proposals[model_id].values["iris_right_x_neg"] - 0.5)


@needs_qt
def test_the_body_page_assigns_bones(gl_context, qtbot, wide_window):  # noqa: F811
    from PySide6.QtCore import Qt

    make, path = wide_window
    window = make()
    model_id = window.current
    press(qtbot, window, Qt.Key.Key_F6)
    page = window.body_page
    assert page.current == "上半身" and page.turned.image is not None
    press(qtbot, window, Qt.Key.Key_BracketRight)  # chest
    press(qtbot, window, Qt.Key.Key_1, Qt.KeyboardModifier.AltModifier)
    assert row(path, model_id).chest_bone is None
    press(qtbot, window, Qt.Key.Key_Right)
    press(qtbot, window, Qt.Key.Key_1)
    assert row(path, model_id).chest_bone == page.current


@needs_qt
def test_japanese_names_are_drawn_with_a_japanese_font(qtbot, wide_window):
    from PySide6.QtGui import QFontDatabase

    japanese = QFontDatabase.families(QFontDatabase.WritingSystem.Japanese)
    if not japanese:
        pytest.skip("no Japanese font installed (scripts/ensure-fonts.sh installs one)")
    make, _ = wide_window
    window = make()
    text = plain(window.role_pages["eyebrow"].cells[0][2])
    assert "困り眉" in text  # the label holds the name itself, which a Japanese font draws
