"""Writers of one index never lose each other's changes (issue: lost updates)."""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import traceback
from dataclasses import replace

from pipeline.index import ModelEntry, read_index, update_index, write_index

ROUNDS = 60


def bump_own_row(path, model_id, start, errors):
    """Count this process's row up ROUNDS times, one read and update_index each."""
    try:
        start.wait()
        for _ in range(ROUNDS):
            (mine,) = [e for e in read_index(path) if e.model_id == model_id]
            update_index(path, [replace(mine, notes=str(int(mine.notes) + 1))])
    except BaseException:
        errors.put(f"{model_id}: {traceback.format_exc()}")


def test_two_processes_updating_different_rows_keep_all_their_updates(tmp_path):
    path = tmp_path / "models_index.csv"
    write_index(path, [ModelEntry(f"m{i}", f"s/m{i}.pmx", "s", notes="0") for i in range(3)])
    context = multiprocessing.get_context("fork")
    start, errors = context.Barrier(2), context.Queue()
    workers = [context.Process(target=bump_own_row, args=(path, model_id, start, errors))
               for model_id in ("m0", "m2")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    problems = []
    with contextlib.suppress(queue.Empty):
        while True:
            problems.append(errors.get(timeout=0.5))
    assert not problems, "\n".join(problems)
    assert [w.exitcode for w in workers] == [0, 0]
    assert [e.notes for e in read_index(path)] == [str(ROUNDS), "0", str(ROUNDS)]


def test_another_users_lock_file_is_locked_read_only(tmp_path, monkeypatch):
    """A lock file this user cannot write (made by another user) still serialises writers."""
    import os

    from pipeline import index as index_module

    path = tmp_path / "models_index.csv"
    index_module.write_index(path, [])
    real_open = os.open

    def refuse_writing_the_lock(name, flags, *args):
        if str(name).endswith(".lock") and flags & os.O_RDWR:
            raise PermissionError(13, "Permission denied", str(name))
        return real_open(name, flags, *args)

    monkeypatch.setattr(index_module.os, "open", refuse_writing_the_lock)
    index_module.write_index(path, [])  # no "cannot create the index's lock file"
    assert (tmp_path / "models_index.csv.lock").exists()
