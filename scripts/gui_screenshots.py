"""Screenshots of the review window's pages for docs/ (annotate_<page>.png).

Opens the window offscreen with ``--schema tha3`` on the sample characters,
two of them fresh (so the pages show proposals), and grabs each page:

    .venv/bin/python scripts/gui_screenshots.py docs
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtWidgets import QApplication  # noqa: E402

from annotate.gui.app import ReviewWindow  # noqa: E402
from annotate.gui.store import FIELDS  # noqa: E402
from mmdrender.samples import write_samples  # noqa: E402
from pipeline.index import sample_entries, write_index  # noqa: E402
from pipeline.roles import WIDE_COLUMNS  # noqa: E402

PAGES = {1: "eyebrows", 2: "eyes", 3: "iris", 4: "mouth", 5: "body"}  # by page number
FRESH = ("midori", "akane")  # one-side morphs only; both-sides only


def main(out: Path) -> None:
    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory() as folder:
        samples, index = Path(folder, "samples"), Path(folder, "models_index.csv")
        write_samples(samples)
        blank = {**dict.fromkeys(FIELDS), **dict.fromkeys(WIDE_COLUMNS), "halves": "",
                 "status": "auto", "status_reason": ""}
        write_index(index, [replace(e, **blank) if e.source in FRESH else e
                            for e in sample_entries(samples)])
        window = ReviewWindow(index, samples, background=False, schema="tha3")
        window.resize(1400, 860)
        window.show()
        for number, page in PAGES.items():
            window.select(FRESH[1] + "-" + FRESH[1] if page in ("eyes", "mouth") else
                          FRESH[0] + "-" + FRESH[0])
            window.show_page(number)
            app.processEvents()
            path = out / f"annotate_{page}.png"
            window.grab().save(str(path))
            print(path)
        window.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))
