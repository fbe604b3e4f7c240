"""The dataset run end to end on the sample characters: shards, resume, failures, Dask, verify."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from pipeline import generate
from pipeline.cli import main
from pipeline.generate import RunConfig, finish, plan, run_tasks
from pipeline.index import read_index
from pipeline.shard_reader import open_dataset

EXAMPLES = 3
SIZE = 64


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> tuple[Path, Path]:
    """The sample characters and an index of them (all splits non-empty)."""
    root = tmp_path_factory.mktemp("samples")
    index = root / "models_index.csv"  # index-samples writes the characters beside it
    result = CliRunner().invoke(main, ["index-samples", str(index), "--samples-dir", str(root)])
    assert result.exit_code == 0, result.output
    return root, index


def config(root: Path, out: Path, **overrides) -> RunConfig:
    return replace(RunConfig(out=out, models_root=root, examples_per_model=EXAMPLES, size=SIZE,
                             samples=0, models_per_shard=2), **overrides)


def run(args: list) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def dataset_args(index: Path, root: Path, out: Path, *extra, workers: int | None = 1) -> list:
    """In-process (one worker) unless ``workers`` says otherwise; None: the CLI's default."""
    return ["dataset", "--index", index, "--root", root, "--out", out,
            "--examples-per-model", EXAMPLES, "--size", SIZE, "--msaa", 0,
            "--models-per-shard", 2, *(["--workers", workers] if workers else []), *extra]


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.suffix in (".h5", ".json", ".csv")}


@pytest.fixture(scope="module")
def reference(library, tmp_path_factory) -> Path:
    """One uninterrupted run through the CLI, for the other tests to compare with."""
    root, index = library
    out = tmp_path_factory.mktemp("reference")
    result = run(dataset_args(index, root, out))
    assert result.exit_code == 0, result.output
    return out


def test_a_run_writes_every_split_and_the_triples(library, reference):
    root, index = library
    entries = read_index(index)
    data = open_dataset(reference)
    assert set(data.splits) == {"train", "validation", "test"}
    assert len(data) == EXAMPLES * len(entries)
    assert sorted({m.model_id for m in data.models()}) == sorted(e.model_id for e in entries)
    example = data[0]
    for image in (example.rest, example.expression, example.posed):
        assert image.shape == (SIZE, SIZE, 4) and image.dtype == np.uint8
        assert (image[image[..., 3] == 0] == 0).all() and (image[..., 3] > 0).any()
    # The rest image has no rotation; the posed one (head turned) differs from its expression.
    assert not np.array_equal(example.expression, example.posed)
    with h5py.File(reference / "train-00000.h5") as f:
        assert f.attrs["dataset_seed"] == 0 and f.attrs["image_size"] == SIZE
        renderer = json.loads(f.attrs["renderer"])
    # The anti-aliasing that made the images is recorded: the default 2x2 supersampling.
    assert (renderer["supersample"], renderer["msaa_samples"]) == (2, 0)
    assert json.loads((reference / "manifest.json").read_text())["renderer"] == renderer
    assert (reference / "failures.csv").read_text().strip() == "model_id,path,split,shard,reason"


def test_poses_stored_are_the_seeded_ones(reference):
    from pipeline.poses import THA1, sample_example

    data = open_dataset(reference)
    for i in (0, len(data) - 1):
        example = data[i]
        np.testing.assert_array_equal(
            example.pose, sample_example(THA1, 0, example.model_id, example.example))


def test_kill_and_resume_gives_identical_shards(library, reference, tmp_path, monkeypatch):
    root, index = library
    real = generate.render_shard
    calls = []

    def crash_on_second(task, cfg, *rest):
        calls.append(task.name)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as Ctrl-C mid-run
        return real(task, cfg, *rest)

    monkeypatch.setattr(generate, "render_shard", crash_on_second)
    interrupted = run(dataset_args(index, root, tmp_path))
    assert interrupted.exit_code != 0
    assert not (tmp_path / "manifest.json").exists()
    finished = sorted(p.name for p in tmp_path.glob("*.h5"))
    assert len(finished) == 1  # one complete shard, nothing partial under a final name
    monkeypatch.setattr(generate, "render_shard", real)
    resumed = run(dataset_args(index, root, tmp_path))
    assert resumed.exit_code == 0, resumed.output
    assert "(1 already done)" in resumed.output
    assert digests(tmp_path) == digests(reference)


def test_a_broken_model_is_recorded_and_the_rest_succeeds(library, tmp_path):
    root, index = library
    broken_root = tmp_path / "models"
    shutil.copytree(root, broken_root)
    entries = read_index(index)
    victim = entries[0]
    (broken_root / victim.path).write_bytes(b"PMX \x00\x00\x00\x40 truncated")
    out = tmp_path / "out"
    result = run(dataset_args(index, broken_root, out))
    # A finished run that skipped a model succeeds, and says so on stderr.
    assert result.exit_code == 0, result.output
    assert f"1 model(s) were skipped; their reasons are in {out / 'failures.csv'}" \
        in result.stderr
    with open(out / "failures.csv", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert [r["model_id"] for r in rows] == [victim.model_id]
    assert "sha256" in rows[0]["reason"] or "ends early" in rows[0]["reason"]
    data = open_dataset(out)
    assert len(data) == EXAMPLES * (len(entries) - 1)
    assert victim.model_id not in {m.model_id for m in data.models()}
    assert run(["verify", out]).exit_code == 0
    # --strict: any skipped model makes the status 1 (the dataset is still complete).
    strict = run(dataset_args(index, broken_root, out, "--strict"))
    assert strict.exit_code == 1 and "1 model(s) were skipped" in strict.stderr
    assert (out / "manifest.json").exists()


def test_a_model_without_head_bounds_is_rejected_with_the_reason(library, tmp_path):
    root, index = library
    entries = [replace(e, head_top_y=None, head_bottom_y=None) if i == 0 else e
               for i, e in enumerate(read_index(index))]
    cfg = config(root, tmp_path)
    tasks = plan(entries, cfg)
    results = list(run_tasks(tasks, cfg))
    failures = [f for r in results for f in r.failures]
    assert len(failures) == 1 and "head bounds" in failures[0]["reason"]
    finish(tasks, cfg)


def test_a_model_with_only_a_both_eyes_morph_closes_both_through_it(library, tmp_path):
    root, index = library
    entries = read_index(index)
    entries[0] = replace(entries[0], wink_left=None, wink_right=None)
    cfg = config(root, tmp_path, models_per_shard=1)
    task = next(t for t in plan(entries, cfg) if t.entries[0].model_id == entries[0].model_id)
    generate.render_shard(task, cfg)
    with h5py.File(tmp_path / task.name) as f:
        assert bool(f["models/both_eyes_wink"][0])
        poses = f["pose"][()]
    np.testing.assert_array_equal(poses[:, 0], poses[:, 1])


def test_verify_passes_then_catches_a_corrupted_shard(reference, tmp_path):
    copy = copy_of(reference, tmp_path)
    ok = run(["verify", copy, "--json"])
    assert ok.exit_code == 0, ok.output
    shard = copy / "train-00000.h5"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    bad = run(["verify", copy])
    assert bad.exit_code == 1
    assert "train-00000.h5" in bad.output and "sha256" in bad.output


def test_shards_name_the_gl_driver_and_verify_warns_when_drivers_are_mixed(reference,
                                                                            tmp_path):
    """A GPU and llvmpipe may draw an edge a bit apart: each shard says which drew it."""
    from mmdrender.gl.context import describe
    from pipeline.shards import write_manifest

    copy = copy_of(reference, tmp_path)
    shards = sorted(copy.glob("*.h5"))
    for shard in shards:
        with h5py.File(shard, "r") as f:
            assert f.attrs["drawn_with"] == describe() != ""
    report = run(["verify", copy])
    assert report.exit_code == 0 and f"drawn with {describe()}" in report.output
    with h5py.File(shards[0], "a") as f:  # as if resumed on a GPU machine
        f.attrs["drawn_with"] = "NVIDIA H100 PCIe/PCIe/SSE2, NVIDIA 550.54.14"
    write_manifest(copy, shards)
    mixed = run(["verify", copy])
    assert mixed.exit_code == 0, mixed.output  # a warning, not a damaged dataset
    assert "warning: the shards were drawn by different GL drivers" in mixed.output
    assert f"NVIDIA H100 PCIe/PCIe/SSE2, NVIDIA 550.54.14 (1 shards, e.g. {shards[0].name})" \
        in mixed.output


def test_split_totals_are_spread_over_the_models_of_each_split(library, tmp_path):
    root, index = library
    result = run(dataset_args(index, root, tmp_path, "--split-examples", "train=7,test=2"))
    assert result.exit_code == 0, result.output
    data = open_dataset(tmp_path)
    assert len(data.split("train")) == 7 and len(data.split("test")) == 2
    assert len(data.split("validation")) == EXAMPLES  # not named: per-model count
    per_model = {}
    for i in range(len(data.split("train"))):
        example = data.split("train")[i]
        per_model[example.model_id] = per_model.get(example.model_id, 0) + 1
    assert sorted(per_model.values()) == [2, 2, 3]
    bad = run(dataset_args(index, root, tmp_path / "x", "--split-examples", "train=lots"))
    assert bad.exit_code == 1 and "SPLIT=N" in bad.output


def test_sampled_lights_are_per_model_and_reproducible(library, reference, tmp_path):
    root, index = library
    result = run(dataset_args(index, root, tmp_path, "--lights", "tha1"))
    assert result.exit_code == 0, result.output
    lit, plain = open_dataset(tmp_path), open_dataset(reference)
    brighter, models = 0, 0
    for i in range(0, len(lit), EXAMPLES):
        models += 1
        a, b = lit[i], plain[i]
        np.testing.assert_array_equal(a.pose, b.pose)  # lighting never shifts the poses
        np.testing.assert_array_equal(a.rest[..., 3], b.rest[..., 3])  # same coverage
        brighter += int(a.rest[..., :3].astype(int).sum() > b.rest[..., :3].astype(int).sum())
    assert brighter == models  # THA1 ambient is drawn from [0.5, 1.2], above the fixed 0.5
    cfg = config(root, tmp_path, lights="tha1")
    assert cfg.model_lights("akane-akane") == cfg.model_lights("akane-akane")
    assert cfg.model_lights("akane-akane") != cfg.model_lights("kai-kai")


def test_preview_writes_a_sheet(reference, tmp_path):
    result = run(["preview", reference, "-o", tmp_path / "sheet.png"])
    assert result.exit_code == 0, result.output
    from PIL import Image

    sheet = Image.open(tmp_path / "sheet.png")
    assert sheet.width > 3 * 128 and sheet.height > 128


def test_an_index_without_splits_is_a_clear_error(library, tmp_path):
    root, index = library
    entries = [replace(e, split="") for e in read_index(index)]
    from pipeline.index import write_index

    index = tmp_path / "index.csv"
    write_index(index, entries)
    result = run(dataset_args(index, root, tmp_path / "out"))
    assert result.exit_code == 1 and "pipeline split" in result.output


def test_by_default_a_run_uses_a_process_per_core_and_equals_one_process(library, reference,
                                                                         tmp_path):
    from pipeline.dataset_cli import usable_cores

    root, index = library
    result = run(dataset_args(index, root, tmp_path, workers=None))
    assert result.exit_code == 0, result.output
    cores = usable_cores()
    assert f"on {cores} worker process{'es' if cores > 1 else ''}" in result.stderr
    from mmdrender.gl.context import describe

    assert f"drawn with {describe()}" in result.stdout  # the workers' driver
    assert digests(tmp_path) == digests(reference)


def test_a_dask_local_cluster_run_equals_the_local_run(library, reference, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    root, index = library
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        result = run(dataset_args(index, root, tmp_path, "--backend", "dask", "--scheduler",
                                  cluster.scheduler_address, workers=2))
    assert result.exit_code == 0, result.output
    assert digests(tmp_path) == digests(reference)


def copy_of(dataset: Path, tmp_path: Path) -> Path:
    """A copy of a finished dataset folder to rerun or damage."""
    out = tmp_path / "copy"
    shutil.copytree(dataset, out)
    return out


def error_lines(result) -> list[str]:
    """The ``error:`` lines of a CLI run that ended with status 1 and no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_a_blank_render_skips_that_model_and_the_run_goes_on(library, reference, tmp_path):
    root, index = library
    entries = read_index(index)
    victim = entries[0]
    # Head bounds far above the character: the framing shows nothing of it.
    entries[0] = replace(victim, head_top_y=1000.0, head_bottom_y=990.0)
    from pipeline.index import write_index

    bad_index = tmp_path / "index.csv"
    write_index(bad_index, entries)
    out = tmp_path / "out"
    for _ in range(2):  # and a rerun neither dies nor renders it again
        result = run(dataset_args(bad_index, root, out))
        assert result.exit_code == 0, result.output
    assert "4 shards for 5 models (4 already done)" in result.stderr
    with open(out / "failures.csv", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert [r["model_id"] for r in rows] == [victim.model_id]
    assert "rest image is empty" in rows[0]["reason"] and "head bounds" in rows[0]["reason"]
    data = open_dataset(out)
    assert victim.model_id not in {m.model_id for m in data.models()}
    assert len(data) == EXAMPLES * (len(entries) - 1)
    assert run(["verify", out]).exit_code == 0


class CountingRenderer:
    """Wraps the renderer and counts every draw, to see when images reach the shard."""

    def __init__(self, renderer, draws: list):
        self.renderer, self.draws = renderer, draws

    def prepare(self, model):
        scene, draws = self.renderer.prepare(model), self.draws

        class Scene:
            def draw(self, *args, **kwargs):
                draws.append(1)
                return scene.draw(*args, **kwargs)

            def release(self):
                scene.release()

            @property
            def warnings(self):
                return scene.warnings

        return Scene()


def test_images_go_into_the_shard_as_they_are_drawn(library, tmp_path, monkeypatch):
    from pipeline.shards import ShardWriter

    root, index = library
    draws, drawn_at_add = [], []
    real_renderer, real_add = generate.get_renderer, ShardWriter.add_example
    monkeypatch.setattr(generate, "get_renderer",
                        lambda *a: CountingRenderer(real_renderer(*a), draws))

    def add_example(self, *args):
        drawn_at_add.append(len(draws))
        return real_add(self, *args)

    monkeypatch.setattr(ShardWriter, "add_example", add_example)
    cfg = config(root, tmp_path, models_per_shard=1)
    generate.render_shard(plan(read_index(index), cfg)[0], cfg)
    # rest, then (expression, posed) per example, each example stored at once:
    # a model's images are never all held in memory.
    assert drawn_at_add == [1 + 2 * (i + 1) for i in range(EXAMPLES)]


def test_a_model_failing_half_way_leaves_nothing_in_the_shard(library, tmp_path, monkeypatch):
    from pipeline.errors import PipelineError
    from pipeline.shards import ShardWriter

    root, index = library
    cfg = config(root, tmp_path, models_per_shard=3)
    task = next(t for t in plan(read_index(index), cfg) if len(t.entries) == 3)
    victim = task.entries[1].model_id
    real_add = ShardWriter.add_example

    def add_example(self, row, example, *args):
        if self._models[row].model_id == victim and example == 2:
            raise PipelineError("renderer gave up")
        return real_add(self, row, example, *args)

    monkeypatch.setattr(ShardWriter, "add_example", add_example)
    result = generate.render_shard(task, cfg)
    assert [f["model_id"] for f in result.failures] == [victim]
    with h5py.File(tmp_path / task.name) as f:
        ids = [s.decode() for s in f["models/model_id"][()]]
        assert ids == [task.entries[0].model_id, task.entries[2].model_id]
        assert f["rest"].shape[0] == 2
        assert f["posed"].shape[0] == f["expression"].shape[0] == f["pose"].shape[0] \
            == 2 * EXAMPLES
        np.testing.assert_array_equal(f["model"][()], [0] * EXAMPLES + [1] * EXAMPLES)
    finish([task], cfg)
    assert run(["verify", tmp_path]).exit_code == 0


def test_progress_is_reported_per_example(library, tmp_path):
    root, index = library
    cfg = config(root, tmp_path)
    tasks = plan(read_index(index), cfg)
    per_example = [1, *[2] * EXAMPLES] * len(read_index(index))
    calls = []
    list(run_tasks(tasks, cfg, progress=calls.append))
    assert calls == per_example  # in this process
    calls = []
    list(run_tasks(tasks, replace(cfg, out=tmp_path / "two"), workers=2,
                   progress=calls.append))
    assert sorted(calls) == sorted(per_example)  # from two worker processes, interleaved


def test_a_full_disk_stops_the_run_cleanly_and_a_rerun_finishes(library, reference, tmp_path):
    import resource
    import signal

    root, index = library
    out = tmp_path / "out"
    # Files may not grow past 20 kB: the first shard's images cannot be written
    # (EFBIG, as ENOSPC on a full disk). Needs no root and no small filesystem.
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, hard))
    try:
        result = run(dataset_args(index, root, out))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    [line] = error_lines(result)
    assert "could not be written" in line and "File too large" in line
    assert "rerun" in line
    # No shard, partial or whole, and no manifest: nothing claims to be done.
    assert not list(out.glob("*.h5")) and not list(out.glob("*.tmp"))
    assert not (out / "manifest.json").exists()
    resumed = run(dataset_args(index, root, out))
    assert resumed.exit_code == 0, resumed.output
    assert digests(out) == digests(reference)


def test_a_nearly_full_disk_is_reported_before_hdf5_fails(library, tmp_path, monkeypatch):
    from pipeline import shards

    root, index = library
    monkeypatch.setattr(shards, "FREE_SPACE_MARGIN", 1 << 62)  # more than any disk
    result = run(dataset_args(index, root, tmp_path))
    [line] = error_lines(result)
    assert "the disk is full" in line and "free some space" in line
    assert not list(tmp_path.glob("*.h5*"))


CRASHER = '''
import os
import signal

if os.environ.get("THA_TEST_CRASH_MODEL"):
    import pipeline.generate as generate

    real = generate.render_model

    def render_model(entry, *args, **kwargs):
        if entry.model_id in os.environ["THA_TEST_CRASH_MODEL"].split(","):
            os.kill(os.getpid(), signal.SIGSEGV)  # as a crash in the GL driver would
        return real(entry, *args, **kwargs)

    generate.render_model = render_model
'''


def test_a_model_that_kills_its_worker_is_found_skipped_and_stays_skipped(
        library, reference, tmp_path, monkeypatch):
    """A segfault in one model's rendering must not stop a run of thousands."""
    from joblib.externals.loky import get_reusable_executor

    root, index = library
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(CRASHER)  # runs in every new worker process
    victim = read_index(index)[1].model_id
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hook), *sys.path]))
    monkeypatch.setenv("THA_TEST_CRASH_MODEL", victim)
    get_reusable_executor().shutdown(wait=True)  # new workers, which see the hook
    out = tmp_path / "out"
    try:
        result = run(dataset_args(index, root, out, workers=2))
    finally:
        get_reusable_executor().shutdown(wait=True)
    assert result.exit_code == 0, result.output
    assert f"skipped {victim}: its worker process died" in result.stderr
    with open(out / "failures.csv", newline="", encoding="utf-8") as file:
        failed = [row["model_id"] for row in csv.DictReader(file)]
    assert failed == [victim]
    others = sorted(e.model_id for e in read_index(index) if e.model_id != victim)
    assert sorted({m.model_id for m in open_dataset(out).models()}) == others
    # The next run (no crash hook now) keeps it skipped, says so, and renders nothing.
    monkeypatch.delenv("THA_TEST_CRASH_MODEL")
    again = run(dataset_args(index, root, out))
    assert again.exit_code == 0, again.output
    assert "killed a worker process in an earlier run and are skipped" in again.stderr
    assert "rendered 0 images" in again.output


def _crash_hook(tmp_path, monkeypatch, victims: str) -> None:
    from joblib.externals.loky import get_reusable_executor

    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(CRASHER)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hook), *sys.path]))
    monkeypatch.setenv("THA_TEST_CRASH_MODEL", victims)
    get_reusable_executor().shutdown(wait=True)  # new workers, which see the hook


def test_two_models_that_kill_workers_are_both_found_and_no_other(library, tmp_path,
                                                                  monkeypatch):
    from joblib.externals.loky import get_reusable_executor

    root, index = library
    ids = [e.model_id for e in read_index(index)]
    victims = [ids[0], ids[3]]
    _crash_hook(tmp_path, monkeypatch, ",".join(victims))
    out = tmp_path / "out"
    try:
        result = run(dataset_args(index, root, out, "--models-per-shard", 1, workers=2))
    finally:
        get_reusable_executor().shutdown(wait=True)
    assert result.exit_code == 0, result.output
    with open(out / "failures.csv", newline="", encoding="utf-8") as file:
        assert sorted(row["model_id"] for row in csv.DictReader(file)) == sorted(victims)
    assert sorted(m.model_id for m in open_dataset(out).models()) == \
        sorted(set(ids) - set(victims))


def test_a_model_left_marked_by_a_killed_run_is_checked_not_blamed(library, reference,
                                                                   tmp_path):
    """A run killed mid-model (SIGTERM, OOM of the main process) leaves a marker: a suspect."""
    root, index = library
    innocent = read_index(index)[2].model_id
    out = tmp_path / "out"
    (out / generate.RENDERING).mkdir(parents=True)
    (out / generate.RENDERING / innocent).touch()
    result = run(dataset_args(index, root, out))
    assert result.exit_code == 0, result.output
    assert "were being rendered when an earlier run ended" in result.stderr
    assert (out / "failures.csv").read_text().strip() == "model_id,path,split,shard,reason"
    assert digests(out) == digests(reference)
    assert not list((out / generate.RENDERING).iterdir())


def test_on_dask_a_shard_that_kills_workers_is_one_error_line_not_a_hang(library, tmp_path,
                                                                         monkeypatch):
    distributed = pytest.importorskip("dask.distributed")
    import threading

    import dask

    root, index = library
    victim = read_index(index)[0].model_id
    _crash_hook(tmp_path, monkeypatch, victim)
    results = []
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                     dashboard_address=None) as cluster:
        args = dataset_args(index, root, tmp_path / "out", "--backend", "dask", "--scheduler",
                            cluster.scheduler_address, workers=2)
        worker = threading.Thread(target=lambda: results.append(run(args)), daemon=True)
        worker.start()
        worker.join(120)
        assert not worker.is_alive(), "the run hangs after a worker died"
    [line] = error_lines(results[0])
    assert "killed Dask workers" in line and "--backend loky" in line


def test_progress_moves_per_example_and_adds_up_per_model(library, tmp_path):
    """Issue 13: the bar moved once per model, in jumps of thousands of images."""
    root, index = library
    cfg = config(root, tmp_path, models_per_shard=2)
    task = plan(read_index(index), cfg)[0]
    calls = []
    result = generate.render_shard(task, cfg, progress=calls.append)
    per_model = [1, *[2] * EXAMPLES]  # the rest image, then each example's two
    assert calls == per_model * len(task.entries)
    assert sum(calls) == task.images == result.images


def test_a_run_off_a_terminal_prints_whole_progress_lines(library, tmp_path):
    root, index = library
    result = run(dataset_args(index, root, tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "\r" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("rendering: ")]
    assert lines and lines[-1].startswith("rendering: ") and "(100%)" in lines[-1]
    assert " img/s" in lines[-1]


def test_the_costliest_shards_are_dispatched_first(library, tmp_path):
    """Issue 14: a heavy shard dealt last leaves the other workers idle at the end."""
    root, index = library
    entries = read_index(index)
    big = root / "big" / "big.pmx"
    big.parent.mkdir(exist_ok=True)
    big.write_bytes((root / entries[0].path).read_bytes() * 3)  # three times the bytes
    heavy = replace(entries[0], model_id="big", path="big/big.pmx", sha256="")
    cfg = config(root, tmp_path, models_per_shard=1)
    tasks = plan([*entries, heavy], cfg)
    order = generate.dispatch_order(tasks, cfg)
    assert order[0].entries[0].model_id == "big"
    assert sorted(t.name for t in order) == sorted(t.name for t in tasks)  # the same shards
