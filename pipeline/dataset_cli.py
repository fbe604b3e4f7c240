"""``pipeline dataset``, ``verify`` and ``preview``: make a dataset, check it, look at it."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click
import h5py
import numpy as np
from click.core import ParameterSource

from mmdrender.gl.renderer import DEFAULT_SAMPLES, DEFAULT_SUPERSAMPLE
from mmdrender.schema_pose import BodySettings
from mmdrender.schemas import SCHEMAS
from pipeline.errors import PipelineError, reports_errors
from pipeline.feature_poses import sampling_schema
from pipeline.generate import (
    FAILURES_CSV,
    WARNINGS_CSV,
    WARNINGS_SHOWN,
    RunConfig,
    crashed_models,
    damaged_shards,
    finish,
    locked,
    plan,
    remove_leftovers,
    run_tasks,
    start_run,
    suspect_models,
    total_images,
)
from pipeline.index import models_root as default_models_root
from pipeline.index import read_index
from pipeline.motion_source import motion_library
from pipeline.pose_checks import check_wide_poses
from pipeline.poses import PoseSchema, fit_pvalue, is_wide
from pipeline.progress import progress_bar
from pipeline.shard_reader import open_dataset, read_manifest, read_models
from pipeline.shard_verify import verify_shard

# Below this p-value a sampled column does not follow its distribution. The
# tests are exact for the seeded sampler, so this only trips on real damage.
FIT_P_MIN = 1e-4
FIT_PROBLEMS_LISTED = 10
DASK_TIMEOUT_S = 30  # to reach the scheduler


@click.command()
@click.option("--index", "index_path", type=click.Path(dir_okay=False, path_type=Path),
              default="models_index.csv", show_default=True, help="The models index (CSV).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Dataset folder (created). A rerun keeps the shards whose settings and "
                   "models are unchanged and renders the rest again.")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path),
              help="Models root the index's paths are relative to "
                   "(default: $THA_MODELS_ROOT, else out/samples beside the index).")
@click.option("--examples-per-model", type=click.IntRange(min=1), default=64,
              show_default=True)
@click.option("--split-examples", metavar="SPLIT=N,...",
              help="Examples per split in total (e.g. train=500000,validation=10000,"
                   "test=10000), spread evenly over each split's models; overrides "
                   "--examples-per-model for the splits named.")
@click.option("--schema", type=click.Choice(list(SCHEMAS)), default="tha1",
              show_default=True,
              help="tha1: rest/expression/posed triples, 6 parameters. tha2: 42 parameters, "
                   "the rest input and THA2's seven ground truths. tha3 (THA3/THA4): 45 "
                   "parameters, the upper body at 512x512, face-morphed and posed images and "
                   "an eyes-and-mouth mask per model. The wide schemas need the roles "
                   "`annotate scan --schema tha3` proposes.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--size", type=click.IntRange(16, 4096),
              help="Image side in pixels [default: 256; 512 with --schema tha3].")
@click.option("--body-degrees", metavar="Y,Z", default="15,15", show_default=True,
              help="tha3: the upper body's turn at body_y = +-1 and tilt at body_z = +-1.")
@click.option("--breathing-degrees", metavar="CHEST,SHOULDERS", default="2.5,3",
              show_default=True,
              help="tha3: at breathing = 1 the chest leans back and each shoulder rises by "
                   "these angles.")
@click.option("--arm-degrees", type=click.FloatRange(0, 90), default=12.0, show_default=True,
              help="tha3: the upper arms hang this far out from straight down (0: vertical).")
@click.option("--shading", type=click.Choice(["phong", "toon"]), default="phong",
              show_default=True)
@click.option("--supersample", type=click.IntRange(1, 4), default=DEFAULT_SUPERSAMPLE,
              show_default=True,
              help="Anti-aliasing: draw at N times the size per side, box-filter down (1: off).")
@click.option("--msaa", type=click.IntRange(0, 16), default=DEFAULT_SAMPLES, show_default=True,
              help="Multisample anti-aliasing samples on top (0: off; slow on llvmpipe).")
@click.option("--lights", type=click.Choice(["fixed", "tha1", "tha2"]), default="fixed",
              show_default=True,
              help="fixed: ambient 0.5 + directional 0.5 along -z. tha1: ambient uniform in "
                   "[0.5, 1.2] (removes dark circles at closed eyes); tha2: ambient in "
                   "[0.5, 0.75], directional in [0.5, 1.25]. Sampled once per model.")
@click.option("--motions", "motions_dir", type=click.Path(path_type=Path),
              help="Take each example's pose from a frame of a real motion in this folder "
                   "(.vmd/.vpd, searched recursively) instead of the sampler: per example a "
                   "motion that moves the model, then a frame, seeded. The shards list the "
                   "motions.")
@click.option("--models-per-shard", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--workers", type=click.IntRange(min=1),
              help="Parallel worker processes, each with its own GL context (default: one "
                   "per core of this machine; with dask, every worker of the cluster).")
@click.option("--backend", type=click.Choice(["loky", "dask"]), default="loky",
              show_default=True, help="loky: processes on this machine; dask: a Dask cluster.")
@click.option("--scheduler", help="Dask scheduler address, with --backend dask.")
@click.option("--retry-failed", is_flag=True,
              help="Render again every shard with a skipped model (after fixing the models "
                   "or upgrading). Models whose file was missing, unreadable or changed are "
                   "always retried.")
@click.option("--strict", is_flag=True, help="Exit with status 1 when any model was skipped.")
@reports_errors
def dataset(index_path, out, root, examples_per_model, split_examples, schema, seed, size,
            body_degrees, breathing_degrees, arm_degrees, shading, supersample, msaa, lights,
            motions_dir, models_per_shard, workers, backend, scheduler, retry_failed, strict):
    """Render every usable model of the index into HDF5 shards under OUT.

    Exits with status 0 when the dataset is complete, even if some models were
    skipped (listed with their reasons in OUT/failures.csv; --strict makes that
    status 1), and 1 on an error.
    """
    if schema != "tha3":
        context = click.get_current_context()
        given = [f"--{name.replace('_', '-')}" for name in ("body_degrees", "breathing_degrees",
                                                             "arm_degrees")
                 if context.get_parameter_source(name) != ParameterSource.DEFAULT]
        if given:
            raise PipelineError(f"{', '.join(given)}: only --schema tha3 poses the body and "
                                "lowers the arms")
    entries = read_index(index_path)
    root = default_models_root(root, index_path)
    body_y, body_z = _pair(body_degrees, "--body-degrees")
    chest, shoulders = _pair(breathing_degrees, "--breathing-degrees")
    body = BodySettings(body_y, body_z, chest, shoulders, arm_degrees=arm_degrees)
    poses = sampling_schema(schema, body)
    config = RunConfig(out=out, models_root=root, examples_per_model=examples_per_model,
                       split_examples=_parse_split_examples(split_examples), seed=seed,
                       size=size or SCHEMAS[schema].image_size, shading=shading, samples=msaa,
                       supersample=supersample, lights=lights, models_per_shard=models_per_shard,
                       schema=poses, body=body,
                       motions=motion_library(motions_dir) if motions_dir else ())
    tasks = plan(entries, config)
    if not tasks:
        raise PipelineError(f"{index_path}: no model has a split and is not rejected; "
                            "run `pipeline split` first")
    client = _dask_client(backend, scheduler)
    try:
        with locked(out):
            for name in damaged_shards(tasks, config):
                click.echo(f"{name} was damaged since it was written (its sha256 is not the "
                           "one recorded then): rendering it again", err=True)
            pending = start_run(tasks, config, retry_failed)
            try:
                rendered, seconds, peak_mb, drivers = _render(tasks, pending, config, workers,
                                                              backend, root)
            finally:  # a stop (full disk, Ctrl+C) leaves no half-written shards behind
                removed = remove_leftovers(out) if backend != "dask" else 0
                if removed:
                    click.echo(f"removed {removed} unfinished file(s) that stopped workers "
                               "left", err=True)
            manifest, failures, warnings = finish(tasks, config)
    finally:
        if client is not None:
            client.close()
    rate = rendered / seconds if seconds > 0 else 0.0
    click.echo(f"rendered {rendered} images in {seconds:.1f} s ({rate:.1f} images/s); "
               f"peak worker memory {peak_mb:.0f} MB")
    if len(drivers) == 1:
        click.echo(f"drawn with {drivers.pop()}")
    elif drivers:
        click.echo(f"warning: the shards were drawn by different GL drivers: "
                   f"{'; '.join(sorted(drivers))}", err=True)
    click.echo(f"dataset: {out}  manifest: {manifest}")
    if warnings:
        models = len({w["model_id"] for w in warnings})
        click.echo(f"warning: {models} model(s) were drawn without some of their textures "
                   f"({len(warnings)} in all, listed in {out / WARNINGS_CSV}):", err=True)
        for w in warnings[:WARNINGS_SHOWN]:
            click.echo(f"  {w['model_id']}: {w['warning']}", err=True)
    if failures:
        click.echo(f"{len(failures)} model(s) were skipped; their reasons are in "
                   f"{out / FAILURES_CSV}", err=True)
        if strict:
            sys.exit(1)


def _render(tasks, pending, config, workers, backend, root) -> tuple[int, float, float, set]:
    """Render the pending shards with a progress bar: (images, seconds, peak MB, the GL
    drivers that drew them)."""
    if workers is None:
        workers = -1 if backend == "dask" else usable_cores()
    done_images = total_images(tasks) - total_images(pending)
    processes = "every Dask worker" if workers == -1 else \
        f"{workers} worker process{'es' if workers > 1 else ''}"
    click.echo(f"{len(tasks)} shards for {sum(len(t.entries) for t in tasks)} models "
               f"({len(tasks) - len(pending)} already done) on {processes}; "
               f"models root {root}", err=True)
    suspects = sorted(suspect_models(config.out))
    if suspects:
        click.echo(f"{len(suspects)} model(s) were being rendered when an earlier run ended; "
                   "their shards are rendered first, one at a time, to check whether one of them "
                   "kills its worker", err=True)
    crashed = sorted(crashed_models(config.out))
    if crashed:
        click.echo(f"{len(crashed)} model(s) killed a worker process in an earlier run and are "
                   f"skipped (--retry-failed tries them again): {', '.join(crashed[:10])}"
                   + (" ..." if len(crashed) > 10 else ""), err=True)
    start = time.perf_counter()
    rendered, peak_mb, drivers = 0, 0.0, set()
    with progress_bar(total_images(tasks), initial=done_images, unit="img",
                      desc="rendering") as bar:
        for result in run_tasks(pending, config, workers, backend, progress=bar.update,
                                notice=lambda text: bar.write(text, file=sys.stderr)):
            rendered += result.images
            peak_mb = max(peak_mb, result.peak_memory_mb)
            drivers.add(result.drawn_with)
            for failure in result.failures:
                bar.write(f"skipped {failure['model_id']}: {failure['reason']}", file=sys.stderr)
    return rendered, time.perf_counter() - start, peak_mb, drivers


def _wide_rows(f, models, schema: PoseSchema) -> list[tuple]:
    """(model_id, example, pose, rest_mouth, realisations) of a wide shard's examples."""
    realisations = []
    for model in models:
        stated = json.loads(model.details or "{}").get("realisations", {})
        realisations.append(tuple(stated.get(name, "own") for name in schema.names))
    rows = f["model"][()]
    return [(models[r].model_id, int(e), pose, int(m), realisations[r])
            for r, e, pose, m in zip(rows, f["example"][()], f["pose"][()],
                                     f["rest_mouth"][()], strict=True)]


def _pair(text: str, option: str) -> tuple[float, float]:
    """Two angles in degrees from 'A,B'."""
    try:
        first, second = (float(v) for v in text.split(","))
    except ValueError:
        raise PipelineError(f"{option} takes two angles in degrees, like 15,10; got "
                            f"{text!r}") from None
    if not all(0.0 <= v <= 90.0 for v in (first, second)):
        raise PipelineError(f"{option}: angles must be between 0 and 90 degrees, got {text!r}")
    return first, second


def _parse_split_examples(text: str | None) -> tuple[tuple[str, int], ...]:
    if not text:
        return ()
    totals = []
    for item in text.split(","):
        split, _, count = item.partition("=")
        if not count.strip().isdigit() or split.strip() not in ("train", "validation", "test"):
            raise PipelineError(f"--split-examples: {item!r} is not SPLIT=N with SPLIT one of "
                                "train, validation, test")
        totals.append((split.strip(), int(count)))
    return tuple(totals)


def usable_cores() -> int:
    """The cores this process may run on (fewer than the machine's under a CPU limit)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _dask_client(backend: str, scheduler: str | None):
    if backend != "dask":
        return None
    if not scheduler:
        raise PipelineError("--backend dask needs --scheduler ADDRESS (e.g. tcp://host:8786)")
    try:
        from dask.distributed import Client
    except ImportError:
        raise PipelineError("the dask backend needs dask.distributed: "
                            "pip install 'tha-data-engine[cluster]'") from None
    try:
        return Client(scheduler, timeout=DASK_TIMEOUT_S)
    except (OSError, TimeoutError) as error:
        raise PipelineError(f"cannot reach the Dask scheduler at {scheduler} ({error}); "
                            "check the address and that the scheduler is running") from None


def verify_dataset(directory: Path) -> dict:
    """Every check ``pipeline verify`` makes; problems listed per shard.

    Each shard is checked against the manifest and the image rules; then,
    over the shards that can be read, that no model_id is in two shards and
    that the poses follow their distributions.
    """
    manifest = read_manifest(directory)
    schema = PoseSchema.from_dict(manifest["schema"])
    report = {"dataset": str(directory), "shards": len(manifest["shards"]), "problems": {}}
    tables, first_shard, wide_rows, drivers = [], {}, [], {}
    for entry in manifest["shards"]:
        path = directory / entry["file"]
        problems = verify_shard(path, entry)
        try:
            with h5py.File(path, "r") as f:
                driver = f.attrs.get("drawn_with", "not recorded")
                drivers.setdefault(driver.decode() if isinstance(driver, bytes) else str(driver),
                                   []).append(entry["file"])
                poses = f["pose"][()]
                models = read_models(f)
                ids = [model.model_id for model in models]
                if is_wide(schema):
                    wide_rows += _wide_rows(f, models, schema)
            if poses.ndim == 2 and poses.shape[1] == len(schema):  # else reported above
                tables.append(poses)
        except (OSError, KeyError, ValueError, RuntimeError, PipelineError) as error:
            if not problems:
                problems.append(f"{entry['file']}: cannot read its tables: {error}")
            ids = []
        for model_id in ids:
            if model_id in first_shard:
                problems.append(f"{entry['file']}: model {model_id} is also in "
                                f"{first_shard[model_id]}")
            first_shard.setdefault(model_id, entry["file"])
        if problems:
            report["problems"][entry["file"]] = problems
    poses = np.concatenate(tables) if tables else np.zeros((0, len(schema)), np.float32)
    fits = {}
    if (manifest.get("renderer") or {}).get("poses", {}).get("source") == "motions":
        report["poses_from"] = "motions: ranges checked; no sampler to fit or regenerate"
    elif is_wide(schema):
        fits, problems = check_wide_poses(schema, int(manifest["dataset_seed"]), wide_rows)
        for problem in problems[:FIT_PROBLEMS_LISTED]:
            report["problems"].setdefault("poses", []).append(problem)
        if len(problems) > FIT_PROBLEMS_LISTED:
            report["problems"]["poses"].append(
                f"... and {len(problems) - FIT_PROBLEMS_LISTED} more pose problems")
    elif len(poses) >= 20:
        fits = {p.name: {"sampler": p.sampler, "p_value": fit_pvalue(p, poses[:, column])}
                for column, p in enumerate(schema.parameters)}
    statistic = "p" if is_wide(schema) else "KS p"
    for name, fit in fits.items():
        if fit["p_value"] < FIT_P_MIN:
            report["problems"].setdefault("poses", []).append(
                f"{name} does not follow its {fit['sampler']} distribution "
                f"({statistic} = {fit['p_value']:.2g})")
    report["drawn_with"] = {driver: len(files) for driver, files in drivers.items()}
    if len(drivers) > 1:  # not wrong, but the images of one driver may differ at edges
        report["warnings"] = ["the shards were drawn by different GL drivers: " + "; ".join(
            f"{driver} ({len(files)} shards, e.g. {files[0]})"
            for driver, files in drivers.items())]
    report["examples"] = int(len(poses))
    report["distribution_fits"] = fits
    report["ok"] = not report["problems"]
    return report


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@reports_errors
def verify(directory, as_json):
    """Check every shard against the manifest, the schema and the image rules.

    Lists every problem of every shard; exits with status 1 if there is any.
    """
    report = verify_dataset(directory)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(f"{directory}: {report['shards']} shards, {report['examples']} examples")
        if "poses_from" in report:
            click.echo(f"  poses from {report['poses_from']}")
        if len(report["drawn_with"]) == 1:
            click.echo(f"  drawn with {next(iter(report['drawn_with']))}")
        for warning in report.get("warnings", []):
            click.echo(f"  warning: {warning}")
        for name, fit in report["distribution_fits"].items():
            click.echo(f"  {name:<10} {fit['sampler']:<12} KS p = {fit['p_value']:.3f}")
        for where, problems in report["problems"].items():
            for problem in problems:
                problem = problem.removeprefix(f"{where}: ")  # some already name the file
                click.echo(f"  PROBLEM {where}: {problem}")
        click.echo("ok" if report["ok"] else "FAILED")
    sys.exit(0 if report["ok"] else 1)


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              required=True, help="PNG contact sheet to write.")
@click.option("--per-split", type=click.IntRange(min=1), default=4, show_default=True,
              help="Examples shown per split.")
@reports_errors
def preview(directory, output, per_split):
    """A contact sheet of each example's image set, named, with its pose.

    THA1: rest / expression / posed. The wide schemas: every image of the set
    (THA2's rest input and (a)-(g); THA3's rest, mask, face-morphed and posed)
    and the pose's non-zero values.
    """
    from mmdrender.sheet import Cell, Panel, compose_sheet

    data = open_dataset(directory)
    panels = []
    names = [image.name for image in data.image_sets]
    with data:
        for split in data.splits:
            view = data.split(split)
            picks = np.linspace(0, len(view) - 1, min(per_split, len(view))).round().astype(int)
            for i in picks:
                example = view[int(i)]
                pose = ", ".join(f"{name}={value:+.2f}" for name, value in
                                 zip(data.schema.names, example.pose, strict=True)
                                 if value or len(data.schema) <= 6)
                title = f"{split} {example.model_id} #{example.example}: {pose}"
                images = view.images(int(i))
                panels.append(Panel(title, [Cell(images[name], name) for name in names]))
    if not panels:
        raise PipelineError(f"{directory} holds no examples to preview (were all its models "
                            "skipped? see failures.csv)")
    sheet = compose_sheet(panels, columns=2 if len(names) <= 4 else 1,
                          cell_size=128 if len(names) <= 4 else 112,
                          title=f"{directory}: {' | '.join(names)}")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        sheet.save(output)
    except OSError as error:
        raise PipelineError(f"cannot write {output}: {error.strerror or error}") from None
    except ValueError:  # Pillow: no image format for the suffix
        raise PipelineError(f"cannot write {output}: name it .png (or .jpg, .webp)") from None
    click.echo(f"preview: {output}")
