"""``pipeline train`` and ``pipeline eval``: the bundled THA1 trainer's commands.

PyTorch is imported inside the commands only, so the ``pipeline`` group (and
its ``--help``) works without it; a command run without it exits 1 with
``error: training needs PyTorch: ...``. Register :data:`train_command` and
:data:`eval_command` on the group.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import click

from pipeline.errors import PipelineError, reports_errors
from pipeline.train import NETWORKS

NEEDS_TORCH = "training needs PyTorch: pip install -e '.[train]' (or make setup-train)"


def _require_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise PipelineError(NEEDS_TORCH) from None


_folder = click.Path(file_okay=False, path_type=Path)


@contextmanager
def _interruptible(what: str):
    """Ctrl-C outside the training loop (which saves first) ends with one error line."""
    try:
        yield
    except KeyboardInterrupt:
        raise PipelineError(f"interrupted; {what}") from None


@click.command("train")
@click.argument("network", type=click.Choice(NETWORKS))
@click.option("--data", type=_folder, required=True, help="Dataset folder (with manifest.json).")
@click.option("--run", "run_dir", type=_folder, required=True,
              help="Run folder: checkpoint.pt and log.jsonl. A folder with a checkpoint "
                   "resumes.")
@click.option("--device", default="cpu", show_default=True,
              help="cpu, cuda or cuda:N.")
@click.option("--steps", type=click.IntRange(min=1),
              help="Train until this many steps in all (a resumed run continues to it). "
                   "[default: 1000]")
@click.option("--batch-size", type=click.IntRange(min=1),
              help="[default: the spec's: 25 for the morpher and rotator, 20 for the "
                   "combiner]")
@click.option("--image-size", type=click.IntRange(min=8),
              help="Network image size; must match the data. [default: the data's]")
@click.option("--channels", type=click.IntRange(min=1), help="Intermediate channels. "
              "[default: 64]")
@click.option("--downsamplings", type=click.IntRange(min=1),
              help="Down blocks to the bottleneck. [default: 3]")
@click.option("--res-blocks", type=click.IntRange(min=0),
              help="[default: 6, the paper's; on a CPU with images of at most 128 pixels: 2]")
@click.option("--val-every", type=click.IntRange(min=0),
              help="Validation loss every N steps (0: never). [default: 500]")
@click.option("--val-batches", type=click.IntRange(min=1),
              help="Batches of the validation split per validation. [default: 8]")
@click.option("--checkpoint-every", type=click.IntRange(min=1),
              help="Save every N steps (and at the end). [default: 500]")
@click.option("--workers", type=click.IntRange(min=0),
              help="DataLoader worker processes. [default: 2; on a CPU of at most 2 cores: 0]")
@click.option("--seed", type=click.IntRange(min=0), help="Weights and data order. [default: 0]")
@click.option("--rotator", type=_folder,
              help="The combiner only: the run folder of a trained rotator.")
@click.option("--vgg16", type=click.Path(dir_okay=False, path_type=Path),
              help="VGG16 weights (torchvision state dict) for the perceptual loss term; "
                   "without it the loss is L1 only. Nothing is downloaded.")
@click.option("--perceptual-weight", type=click.FloatRange(min=0),
              help="The perceptual terms' lambda. [default: 1.0]")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@reports_errors
def train_command(network, data, run_dir, device, steps, batch_size, image_size, channels,
                  downsamplings, res_blocks, val_every, val_batches, checkpoint_every, workers,
                  seed, rotator, vgg16, perceptual_weight, quiet):
    """Train the face MORPHER, the face ROTATOR or the COMBINER (spec section 8).

    The combiner trains on the outputs of a trained rotator (--rotator).
    Rerunning on a run folder resumes from its checkpoint exactly. Ctrl-C or
    SIGTERM saves a checkpoint at the end of the current step, then stops.
    """
    _require_torch()
    from pipeline.shard_reader import read_manifest
    from pipeline.train.loop import device_defaults, locked_run, resolve, train

    run_options = {"data": str(data), "steps": steps, "batch_size": batch_size, "seed": seed,
                   "val_every": val_every, "val_batches": val_batches,
                   "checkpoint_every": checkpoint_every, "workers": workers,
                   "rotator": str(rotator.resolve()) if rotator else None,
                   "vgg16": str(vgg16.resolve()) if vgg16 else None,
                   "perceptual_weight": perceptual_weight}
    net_options = {"image_size": image_size, "channels": channels,
                   "downsamplings": downsamplings, "res_blocks": res_blocks}
    size = image_size or int(read_manifest(data)["image_size"])
    defaults = {k: v for k, v in device_defaults(device, size).items()
                if {**run_options, **net_options}.get(k) is None}
    with _interruptible(f"{run_dir} keeps its last checkpoint"), locked_run(run_dir):
        config, model_config, checkpoint = resolve(run_dir, network, run_options, net_options,
                                                   defaults)
        if checkpoint is not None:
            click.echo(f"{run_dir}: resuming {network} at step {checkpoint['step']}", err=True)
        elif defaults:
            chosen = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in defaults.items())
            click.echo(f"note: on the CPU with {size}-pixel images: {chosen} (faster here; "
                       "the paper's are --res-blocks 6 --workers 2)", err=True)
        summary = train(run_dir, config, model_config, checkpoint, device=device,
                        progress=not quiet)
    message = f"{run_dir}: {network} at step {summary['step']}"
    if summary["loss"] is not None:
        message += f", loss {summary['loss']:.4f}"
    if summary["val_loss"] is not None:
        message += (f", validation loss {summary['val_loss']:.4f} (output = input: "
                    f"{summary['val_baseline']:.4f})")
    click.echo(message)


@click.command("eval")
@click.option("--data", type=_folder, required=True, help="Dataset folder.")
@click.option("--run", "run_dir", type=_folder, required=True, help="A training run folder.")
@click.option("--split", default="test", show_default=True)
@click.option("--device", default="cpu", show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=25, show_default=True)
@click.option("--max-examples", type=click.IntRange(min=1),
              help="Evaluate only the first N examples of the split.")
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True)
@reports_errors
def eval_command(data, run_dir, split, device, batch_size, max_examples, workers):
    """Mean per-pixel RMSE and SSIM of a run against the ground truth of a split.

    Writes RUN/eval.json and RUN/eval_grid.png (input, outputs, ground truth).
    """
    _require_torch()
    from pipeline.train.evaluate import evaluate_run

    with _interruptible("nothing written"):
        result = evaluate_run(data, run_dir, split=split, device=device,
                              batch_size=batch_size, max_examples=max_examples,
                              workers=workers, progress=True)
    for line in eval_summary(result):
        click.echo(line, err=True)
    click.echo(f"wrote {run_dir / 'eval.json'} and {run_dir / 'eval_grid.png'}", err=True)
    click.echo(json.dumps({**{k: result[k] for k in ("network", "split", "examples", "step",
                                                     "rmse", "ssim", "beats_baseline")},
                           "baseline_rmse": result["baseline"]["rmse"],
                           "baseline_ssim": result["baseline"]["ssim"]}))


MODELS_LISTED = 10  # per-model lines in the eval summary (all are in eval.json)


def eval_summary(result: dict) -> list[str]:
    """What a person reads after `pipeline eval`: every figure beside output = input."""
    def figures(f: dict) -> str:
        return (f"RMSE {f['rmse']:.4f} (output = input: {f['baseline_rmse']:.4f}), SSIM "
                f"{f['ssim']:.3f} ({f['baseline_ssim']:.3f}), better than output = input on "
                f"{f['beats_baseline']:.0%}")

    overall = {"rmse": result["rmse"], "ssim": result["ssim"],
               "baseline_rmse": result["baseline"]["rmse"],
               "baseline_ssim": result["baseline"]["ssim"],
               "beats_baseline": result["beats_baseline"]}
    count = result["examples"]
    lines = [f"{result['network']} at step {result['step']} on {count} {result['split']} "
             f"example{'s' if count != 1 else ''}: {figures(overall)}"]
    for name, f in result["far_from_rest"].items():
        lines.append(f"  {name.replace('_', ' ')} ({f['examples']} examples): "
                     + (figures(f) if f["examples"] else "none in this split"))
    ranked = sorted(result["per_model"].items(), key=lambda item: item[1]["beats_baseline"])
    for model_id, f in ranked[:MODELS_LISTED]:
        lines.append(f"  model {model_id} ({f['examples']} examples): {figures(f)}")
    if len(ranked) > MODELS_LISTED:
        lines.append(f"  ... {len(ranked) - MODELS_LISTED} more models in eval.json")
    return lines
