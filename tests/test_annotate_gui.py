"""The review window (annotate.gui), driven by pytest-qt on the sample characters.

Runs on Qt's offscreen platform. Skips with a reason when PySide6 or pytest-qt
is missing (make setup-gui; pip install pytest-qt). Pictures come from the
real renderer; where GL is missing the window says "cannot render" and the
geometry under test still works.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import replace

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from annotate.gui.store import FIELDS, ReviewStore, shown_values  # noqa: E402
from pipeline.cli import main as pipeline_main  # noqa: E402
from pipeline.index import read_index, write_index  # noqa: E402

MISSING = [name for name, module in (("PySide6", "PySide6"), ("pytest-qt", "pytestqt"))
           if importlib.util.find_spec(module) is None]
needs_qt = pytest.mark.skipif(bool(MISSING), reason=f"{' and '.join(MISSING)} not installed "
                              "(make setup-gui; pip install pytest-qt)")
BLANK = dict.fromkeys(FIELDS) | {"status": "auto", "status_reason": ""}
AUTO_ROWS = (1, 2, 3)  # rows set to auto with blank fields; 0 and 4 stay confirmed


@pytest.fixture
def index(tmp_path):
    """An index of the sample characters with rows 1-3 fresh (auto, nothing annotated)."""
    path, samples = tmp_path / "models_index.csv", tmp_path / "samples"
    result = CliRunner().invoke(pipeline_main, ["index-samples", str(path),
                                                "--samples-dir", str(samples)])
    assert result.exit_code == 0, result.output
    entries = read_index(path)
    write_index(path, [replace(e, **BLANK) if i in AUTO_ROWS else e
                       for i, e in enumerate(entries)])
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
    press(qtbot, window, Qt.Key.Key_1)              # ... is wink_left
    assert row(index, model_id).wink_left == chosen
    assert window.eyes.roles_of(chosen)[:1] == ["wink_left"] or chosen == window.values[
        "wink_left"]
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


@needs_qt
def test_a_crash_after_confirm_loses_nothing(qtbot, open_window, index, monkeypatch):
    from PySide6.QtCore import Qt

    import annotate.gui.store as store_module

    window = open_window()
    confirmed = window.current
    press(qtbot, window, Qt.Key.Key_Return)
    # the window is never closed: the file alone must already hold the confirm
    assert row(index, confirmed).status == "confirmed"

    def crash(*_args, **_kwargs):
        raise RuntimeError("simulated crash inside a handler")

    monkeypatch.setattr(store_module, "update_index", crash)
    # a morph assignment that dies mid-write; PySide6 >= 6.8 re-raises the handler's
    # exception from keyClick, older ones hand it to sys.excepthook (which pytest-qt catches)
    with qtbot.capture_exceptions() as raised:
        try:
            press(qtbot, window, Qt.Key.Key_2)
        except RuntimeError as error:
            raised.append((type(error), error, None))
    assert raised and "simulated crash" in str(raised[0][1])
    saved = row(index, confirmed)
    assert saved.status == "confirmed" and saved.mouth_open == "あ"
    assert len(read_index(index)) == 5
    assert not list(index.parent.glob(".*.tmp"))  # no half-written index left behind


@needs_qt
def test_reject_with_a_reason(qtbot, open_window, index):
    from PySide6.QtCore import Qt

    window = open_window()
    model_id = window.current
    press(qtbot, window, Qt.Key.Key_R)
    assert window.reason.isVisible()
    window.reason.clear()
    qtbot.keyClicks(window.reason, "hair covers the face")
    qtbot.keyClick(window.reason, Qt.Key.Key_Return)
    assert not window.reason.isVisible()
    saved = row(index, model_id)
    assert (saved.status, saved.status_reason) == ("rejected", "hair covers the face")
    assert window.current != model_id


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
def test_the_window_grabs_a_picture(open_window, tmp_path):
    window = open_window()
    picture = window.grab()
    assert picture.width() >= 1000 and picture.save(str(tmp_path / "annotate.png"))


def test_gui_command_reports_a_missing_index_in_one_line(tmp_path):
    from annotate.cli import main as annotate_main

    result = CliRunner().invoke(annotate_main, ["gui", "--index", str(tmp_path / "none.csv")])
    assert result.exit_code == 1
    assert "no such index file" in result.output and "Traceback" not in result.output
