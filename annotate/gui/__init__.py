"""The review GUI (issue 5): a PySide6 window beside the data line.

It reads models through :mod:`mmdrender`, shows :func:`annotate.auto.propose`'s
guesses and writes each change straight into ``models_index.csv``
(:func:`pipeline.index.update_index`, atomic). Nothing on the data line imports
this package. Qt is imported only by :mod:`annotate.gui.widgets` and
:mod:`annotate.gui.app`; :mod:`annotate.gui.store` and :mod:`annotate.gui.source`
are plain Python, so they work (and are tested) without PySide6.
"""
