"""A long review session in one process: PySide6 6.12.0 on Python 3.11 dropped a
reference to None on every void Qt call and aborted the process (Fatal Python error:
none_dealloc) after about a hundred key presses; the pin in pyproject.toml keeps it out.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from dataclasses import replace

import pytest

from mmdrender.samples import write_samples
from pipeline.index import read_index, sample_entries, write_index

MISSING = [name for name, module in (("PySide6", "PySide6"), ("pytest-qt", "pytestqt"))
           if importlib.util.find_spec(module) is None]
needs_qt = pytest.mark.skipif(bool(MISSING), reason=f"{' and '.join(MISSING)} not installed "
                              "(make setup-gui; pip install pytest-qt)")
PRESSES = 2000


@needs_qt
def test_void_qt_calls_keep_none_alive(qapp):
    from PySide6.QtWidgets import QLabel, QTableWidget, QTableWidgetItem

    table, label = QTableWidget(3, 3), QLabel()
    before = sys.getrefcount(None)
    for n in range(2000):
        item = QTableWidgetItem("x")
        item.setToolTip("tip")
        table.setItem(n % 3, 0, item)
        table.selectRow(n % 3)
        label.setText(str(n))
    assert sys.getrefcount(None) > before - 500  # 6.12.0 on 3.11: about 10,000 fewer


@needs_qt
def test_thousands_of_key_presses_with_idle_proposals_on(tmp_path):
    samples, index = tmp_path / "samples", tmp_path / "models_index.csv"
    write_samples(samples)
    write_index(index, [replace(e, status="auto") if i % 2 else e
                        for i, e in enumerate(sample_entries(samples))])
    session = textwrap.dedent(f"""
        import warnings
        warnings.simplefilter("ignore")
        from PySide6.QtCore import Qt
        from PySide6.QtTest import QTest
        from PySide6.QtWidgets import QApplication
        app = QApplication([])
        from annotate.gui.app import ReviewWindow
        window = ReviewWindow({str(index)!r}, {str(samples)!r}, background=True)
        window.show()
        keys = [Qt.Key.Key_J, Qt.Key.Key_J, Qt.Key.Key_Right, Qt.Key.Key_K, Qt.Key.Key_Period,
                Qt.Key.Key_K, Qt.Key.Key_F]
        for n in range({PRESSES}):
            QTest.keyClick(window, keys[n % len(keys)])
            app.processEvents()
        print("presses", {PRESSES}, "current", window.current)
    """)
    done = subprocess.run([sys.executable, "-c", session], capture_output=True, text=True,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"}, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"presses {PRESSES}" in done.stdout
    assert read_index(index) == [replace(e, status="auto") if i % 2 else e
                                 for i, e in enumerate(sample_entries(samples))]
