"""Inputs that broke a run when tried as a hostile user would (issue 12).

Each case shows what the user sees: the exit code and one ``error:`` line, or
the run going on with a failures.csv row giving the reason, nothing lost and
no stray files.
"""

from __future__ import annotations

import csv
import resource
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import h5py
import pytest
import test_generate
from click.testing import CliRunner
from test_generate import copy_of, dataset_args, error_lines, run

from pipeline.index import write_index
from pipeline.shard_reader import open_dataset

library = test_generate.library  # fixtures: the sample characters and their index
reference = test_generate.reference


def rewrite_index(index: Path, out: Path, change) -> Path:
    """A copy of ``index`` at ``out`` with ``change(rows)`` applied to its rows (dicts)."""
    with open(index, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    change(rows)
    with open(out, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out


@pytest.mark.parametrize("model_id, words", [
    ("akane\0x", "contains a control character"),
    ("..", "is not a usable name"),
    ("a" * 300, "is 300 bytes long; at most 200"),
])
def test_a_model_id_no_file_system_accepts_is_refused_with_its_row(library, tmp_path,
                                                                    model_id, words):
    root, index = library

    def change(rows):
        rows[1]["model_id"] = model_id

    bad = rewrite_index(index, tmp_path / "models_index.csv", change)
    out = tmp_path / "out"
    result = run(dataset_args(bad, root, out))
    assert len(error_lines(result)) == 1 and "1 problem" in result.stderr
    problem = result.stderr.splitlines()[1]
    assert "models_index.csv:3, column model_id" in problem and words in problem, problem
    assert not out.exists() or not any(out.iterdir())


def copy_library(library, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the samples and their index to damage."""
    root, index = library
    copy = tmp_path / "lib"
    shutil.copytree(root, copy)
    return copy, copy / index.name


def read_csv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_a_texture_of_gigabytes_is_refused_unread_and_the_run_goes_on(library, tmp_path):
    """Under a 4 GiB address-space limit a sparse 6 GiB texture ended the run in a
    MemoryError; now the model is drawn without it and the run says so."""
    root, index = copy_library(library, tmp_path)
    texture = root / "akane" / "hair.png"
    with open(texture, "wb") as f:  # sparse: takes no disk
        f.write(b"BM" + bytes(52))
        f.truncate(6 * 2**30)
    out = tmp_path / "out"

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))

    pipeline = Path(sys.executable).with_name("pipeline")
    result = subprocess.run([str(pipeline), *map(str, dataset_args(index, root, out))],
                            preexec_fn=limit, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "warning: 1 model(s) were drawn without some of their textures" in result.stderr
    rows = read_csv(out / "warnings.csv")
    assert [r["model_id"] for r in rows] == ["akane-akane"]
    assert "hair.png: texture is 6144 MiB, more than any texture" in rows[0]["warning"]
    assert read_csv(out / "failures.csv") == []
    assert run(["verify", out]).exit_code == 0


def test_a_model_linked_from_outside_the_root_is_skipped_with_its_reason(library, tmp_path):
    root, index = copy_library(library, tmp_path)
    outside = tmp_path / "elsewhere"
    shutil.move(root / "kai", outside)
    (root / "kai").symlink_to(outside, target_is_directory=True)
    out = tmp_path / "out"
    result = run(dataset_args(index, root, out))
    assert result.exit_code == 0, result.output
    assert "1 model(s) were skipped" in result.stderr
    (row,) = read_csv(out / "failures.csv")
    assert row["model_id"] == "kai-kai" and "leads outside the models root" in row["reason"]
    assert str(outside / "kai.pmx") in row["reason"]
    data = open_dataset(out)
    assert "kai-kai" not in {m.model_id for m in data.models()}
    # once the model is inside the root, a rerun renders it without --retry-failed
    (root / "kai").unlink()
    shutil.move(outside, root / "kai")
    again = run(dataset_args(index, root, out))
    assert again.exit_code == 0 and read_csv(out / "failures.csv") == [], again.output


def test_a_scan_keeps_its_proposals_for_rows_whose_split_changed_meanwhile(
        library, tmp_path, monkeypatch):
    """A `pipeline split` while `annotate scan` ran made it drop proposals and still
    print "proposed N"; a person's edit meanwhile is still left alone, and said."""
    import annotate.auto
    from annotate.cli import main as annotate_main
    from pipeline.index import read_index, update_index

    root, index = copy_library(library, tmp_path)
    fresh = [replace(e, status="auto", notes="", status_reason="", halves="",
                     **{name: None for name in annotate.auto.ALL_FIELDS if name != "halves"})
             for e in read_index(index)]
    write_index(index, fresh)
    real, calls = annotate.auto.propose, []

    def propose_while_others_work(model, schema="tha1"):
        calls.append(model)
        if len(calls) == 1:  # meanwhile: a re-split of every row, and a person's edit of one
            rows = read_index(index)
            moved = [replace(r, split="test" if r.split != "test" else "train") for r in rows]
            update_index(index, moved[:-1] + [replace(moved[-1], head_top_y=42.0)])
        return real(model, schema)

    monkeypatch.setattr(annotate.auto, "propose", propose_while_others_work)
    result = CliRunner().invoke(annotate_main, ["scan", "--index", str(index), "--root",
                                                str(root)])
    assert result.exit_code == 0, result.output
    rows = read_index(index)
    edited = rows[-1]
    assert f"not proposed, as they were edited while the scan ran (scan again to propose " \
           f"them): {edited.model_id}" in result.stderr
    assert f"proposed {len(rows) - 1} auto row(s)" in result.output
    assert edited.head_top_y == 42.0 and edited.mouth_open is None
    for before, after in zip(fresh[:-1], rows[:-1], strict=True):
        assert after.split != before.split, after.model_id  # the re-split is kept
        assert after.head_top_y is not None and after.mouth_open, after.model_id
        assert "; proposal " in after.notes


def test_a_rerun_renders_a_damaged_shard_again_instead_of_keeping_it(library, reference,
                                                                     tmp_path):
    root, index = library
    out = copy_of(reference, tmp_path)
    shard = out / "train-00000.h5"
    with h5py.File(shard) as f:
        offset = f["rest"].id.get_chunk_info(0).byte_offset + 100
    with open(shard, "r+b") as f:  # one flipped bit inside an image chunk
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0x10]))
    result = run(dataset_args(index, root, out))
    assert result.exit_code == 0, result.output
    assert "train-00000.h5 was damaged since it was written" in result.stderr
    assert f"({len(list(reference.glob('*.h5'))) - 1} already done)" in result.output
    assert shard.read_bytes() == (reference / shard.name).read_bytes()
    assert run(["verify", out]).exit_code == 0


STOPPER = '''
import os
import signal
from pathlib import Path

if os.environ.get("THA_TEST_STOP"):
    import pipeline.generate as generate
    import pipeline.shards as shards

    kind, victim, flag = os.environ["THA_TEST_STOP"].split(",")
    real_render, real_statvfs = generate.render_model, shards.os.statvfs

    def render_model(entry, *args, **kwargs):
        if kind == "kill" and entry.model_id == victim and not Path(flag).exists():
            Path(flag).touch()  # once, as a user's kill -9 or the OOM killer would
            os.kill(os.getpid(), signal.SIGKILL)
        if kind == "full" and entry.model_id == victim:
            Path(flag).touch()  # from now on the disk is full, for every worker
        return real_render(entry, *args, **kwargs)

    class _Full:
        f_bavail, f_frsize = 0, 4096

    def statvfs(path):
        if kind == "full" and Path(flag).exists():
            return _Full()
        return real_statvfs(path)

    generate.render_model = render_model
    shards.os.statvfs = statvfs
'''


@pytest.fixture
def stopper(tmp_path, monkeypatch):
    """Worker processes that stop as the test says (THA_TEST_STOP=kind,victim,flag)."""
    import os

    from joblib.externals.loky import get_reusable_executor

    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(STOPPER)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hook), *sys.path]))
    get_reusable_executor().shutdown(wait=True)

    def arm(kind: str, victim: str) -> None:
        monkeypatch.setenv("THA_TEST_STOP", f"{kind},{victim},{tmp_path / 'flag'}")
        get_reusable_executor().shutdown(wait=True)  # new workers, which see it

    yield arm
    get_reusable_executor().shutdown(wait=True)


def test_a_worker_killed_once_is_reported_its_shard_redone_and_nothing_left(library, tmp_path,
                                                                            stopper):
    root, index = library
    stopper("kill", "hinata-hinata")
    out = tmp_path / "out"
    result = run(dataset_args(index, root, out, "--models-per-shard", 1, workers=2))
    assert result.exit_code == 0, result.output
    assert "a worker process died (killed, out of memory, or a crash) while rendering" in \
        result.stderr and "hinata-hinata" in result.stderr
    assert read_csv(out / "failures.csv") == []  # it rendered the second time
    assert len({m.model_id for m in open_dataset(out).models()}) == 5
    assert not list(out.glob("*.tmp")), list(out.glob("*.tmp"))


def test_a_full_disk_stops_the_run_with_one_error_and_no_half_written_shards(library,
                                                                            tmp_path, stopper):
    root, index = library
    stopper("full", "hinata-hinata")
    out = tmp_path / "out"
    result = run(dataset_args(index, root, out, "--models-per-shard", 1, workers=2))
    lines = error_lines(result)
    assert len(lines) == 1 and "disk is full" in lines[0], result.stderr
    assert not list(out.glob("*.tmp")), list(out.glob("*.tmp"))


def test_the_licence_is_an_spdx_expression_not_a_deprecated_table():
    import tomllib

    project = Path(__file__).resolve().parents[1]
    with open(project / "pyproject.toml", "rb") as f:
        meta = tomllib.load(f)
    assert meta["project"]["license"] == "MIT"
    # SPDX strings need setuptools 77 or newer to build
    assert any(r.startswith("setuptools>=") and int(r.split(">=")[1].split(".")[0]) >= 77
               for r in meta["build-system"]["requires"])


def test_ids_made_from_long_paths_fit_in_a_file_name():
    from pipeline.index import MODEL_ID_BYTES, _model_id_problem, model_id_for

    deep = "モデル/" * 60 + "miku.pmx"
    ids = {model_id_for(deep), model_id_for(deep.replace("miku", "rin"))}
    assert len(ids) == 2  # cut alike, told apart by the hash of the whole path
    for model_id in ids:
        assert len(model_id.encode("utf-8")) <= MODEL_ID_BYTES
        assert _model_id_problem(model_id) is None


def test_a_scan_says_per_row_what_it_could_not_propose(library, tmp_path, monkeypatch):
    """Issue 13: rows without an eye or mouth morph or head bounds were counted as proposed
    with an empty status_reason; the user found out from the dataset skipping them."""
    import annotate.auto
    from annotate.auto import Field
    from annotate.cli import main as annotate_main
    from pipeline.index import read_index

    root, index = copy_library(library, tmp_path)
    fresh = [replace(e, status="auto", notes="", status_reason="", halves="",
                     **{name: None for name in annotate.auto.ALL_FIELDS if name != "halves"})
             for e in read_index(index)]
    write_index(index, fresh)
    real = annotate.auto.propose
    blank = {"kai": ("mouth_open",), "yuki": ("head_top_y", "head_bottom_y", "wink_left",
                                              "wink_both")}

    def propose_with_gaps(model, schema="tha1"):
        proposal = real(model, schema)
        for name in blank.get(model.path.stem, ()):
            proposal.fields[name] = Field(None, 0.0)
        return proposal

    monkeypatch.setattr(annotate.auto, "propose", propose_with_gaps)
    result = CliRunner().invoke(annotate_main, ["scan", "--index", str(index), "--root",
                                                str(root)])
    assert result.exit_code == 0, result.output
    assert "proposed 5 auto row(s) (2 incomplete: see their status_reason)" in result.output
    assert "incomplete kai-kai: proposed without a mouth-open morph" in result.stderr
    assert "incomplete yuki-yuki: proposed without head bounds, eye morphs" in result.stderr
    reasons = {e.model_id: e.status_reason for e in read_index(index)}
    assert reasons["kai-kai"].startswith("proposed without a mouth-open morph")
    assert reasons["yuki-yuki"].startswith("proposed without head bounds, eye morphs")
    assert [m for m, r in reasons.items() if r] == ["kai-kai", "yuki-yuki"]


def test_a_texture_that_is_a_pipe_does_not_hang_the_run(library, tmp_path):
    """A FIFO (or a device) where a texture should be: opening it would block forever."""
    import os

    root, index = copy_library(library, tmp_path)
    texture = root / "akane" / "hair.png"
    texture.unlink()
    os.mkfifo(texture)
    out = tmp_path / "out"
    pipeline = Path(sys.executable).with_name("pipeline")
    result = subprocess.run([str(pipeline), *map(str, dataset_args(index, root, out))],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    (row,) = read_csv(out / "warnings.csv")
    assert row["model_id"] == "akane-akane" and "is not a file" in row["warning"]


def test_a_motion_that_is_a_device_is_one_error_line(library, tmp_path):
    root, index = library
    result = run(["motion2pose", "/dev/zero", "--model-id", "akane-akane", "--index", index,
                  "--root", root, "-o", tmp_path / "t.csv"])
    lines = error_lines(result)
    assert len(lines) == 1 and "is not a regular file" in lines[0]
