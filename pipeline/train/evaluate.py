"""Evaluation of a trained run (spec section 8): mean per-pixel RMSE and mean SSIM.

Both on the network's images mapped from [-1, 1] to [0, 1] (linear RGB and
alpha, all four channels): RMSE per image over every pixel and channel, SSIM
per image with an 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03,
data range 1, over the valid region and averaged over channels (Wang et al.
2004). Both are then averaged over the examples of the split.

:func:`evaluate_run` writes ``eval.json`` (with the identity baseline beside
every figure) and ``eval_grid.png`` (one labelled row per example, chosen
across models and poses: the face of the input, each output and the ground
truth, enlarged) into the run folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from mmdrender.schemas import SCHEMAS
from pipeline.atomic import atomic_write
from pipeline.errors import PipelineError
from pipeline.progress import progress_bar
from pipeline.train.data import TripleDataset, to_image
from pipeline.train.loop import (
    batches_of,
    check_device,
    forward,
    frozen_rotator,
    load_network,
    os_reason,
)

EVAL_JSON = "eval.json"
EVAL_GRID = "eval_grid.png"
GRID_ROWS = 8  # examples in the grid, spread over models and poses
GRID_CELL = 160  # pixels: small images are enlarged to this
FAR = 0.75  # a morph at least this far from rest: eyes closed, mouth closed
LARGE_TURN = 0.5  # a rotation at least this far from 0 (7.5° at THA's 15°)
OUTPUT_NAMES = {"morpher": ("output",), "rotator": ("color_changed", "resampled"),
                "combiner": ("final",)}


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """(size, size) float64 Gaussian summing to 1."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Mean SSIM per image: a, b (N, C, H, W) in [0, 1] -> (N,) float64."""
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"ssim needs two (N, C, H, W) tensors of one shape, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    n, c, h, w = a.shape
    if min(h, w) < window:
        raise ValueError(f"images of {h}x{w} are smaller than the {window}-pixel SSIM window")
    a, b = a.double(), b.double()
    kernel = gaussian_window(window, sigma).to(a.device).expand(c, 1, window, window)

    def blur(x: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N, C, H-10, W-10)
        return F.conv2d(x, kernel, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = k1 ** 2, k2 ** 2
    value = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / \
        ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return value.mean(dim=(1, 2, 3))


def rmse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image RMSE over all pixels and channels: (N, C, H, W) x 2 -> (N,) float64."""
    return (a.double() - b.double()).pow(2).mean(dim=(1, 2, 3)).sqrt()


def unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped."""
    return ((x + 1) / 2).clamp(0, 1)


def far_from_rest(schema_name: str, parameters: tuple[str, ...],
                  poses: np.ndarray) -> dict[str, np.ndarray]:
    """Masks of the examples whose parameters are far from the rest input: where doing
    nothing is most wrong, so where a network must show it learned something."""
    schema = SCHEMAS[schema_name]
    category = {p.name: p.category for p in schema.parameters}
    columns = {name: i for i, name in enumerate(parameters)}
    subsets = {}
    closing = {p.name for p in schema.parameters if p.group in ("eye_wink", "eye_happy_wink")}
    eyes = [columns[n] for n in parameters if n in closing]  # not surprised, not raised lids
    if eyes:
        subsets["eyes_closed"] = poses[:, eyes].max(axis=1) >= FAR
    if "mouth" in columns:  # THA1's rest input has the mouth open
        subsets["mouth_closed"] = poses[:, columns["mouth"]] <= 1 - FAR
    shapes = [columns[n] for n in parameters if category[n] == "mouth"
              and n not in ("mouth_aaa", "mouth")]  # THA1's mouth is the open mouth
    if shapes:
        subsets["mouth_shapes"] = poses[:, shapes].max(axis=1) >= FAR
    turns = [columns[n] for n in parameters if category[n] in ("face_rotation",
                                                                "body_rotation")]
    if turns:
        subsets["large_rotations"] = np.abs(poses[:, turns]).max(axis=1) >= LARGE_TURN
    return subsets


def _scores(rmse_net: np.ndarray, ssim_net: np.ndarray, rmse_base: np.ndarray,
            ssim_base: np.ndarray, mask: np.ndarray) -> dict:
    """The network beside the identity baseline over the examples in ``mask``."""
    n = int(mask.sum())
    if n == 0:
        return {"examples": 0}
    return {"examples": n, "rmse": float(rmse_net[mask].mean()),
            "ssim": float(ssim_net[mask].mean()),
            "baseline_rmse": float(rmse_base[mask].mean()),
            "baseline_ssim": float(ssim_base[mask].mean()),
            "beats_baseline": float((rmse_net[mask] < rmse_base[mask]).mean())}


def rest_values(schema_name: str, parameters: tuple[str, ...]) -> np.ndarray:
    """The pose of a rest input: THA1's has the mouth open; the wide schemas' defaults."""
    schema = SCHEMAS[schema_name]
    return np.array([1.0 if (schema_name, n) == ("tha1", "mouth") else
                     schema.parameter(n).default for n in parameters])


def grid_examples(model_ids: list[str], poses: np.ndarray, count: int,
                  rest: np.ndarray | None = None) -> list[int]:
    """Up to ``count`` examples spread over the models and over each model's pose range:
    models in turn, each giving first its example farthest from ``rest`` (default: all 0),
    then its nearest, then the middle one, and so on."""
    if rest is None:
        rest = np.zeros(poses.shape[1] if poses.ndim == 2 else 0)
    distance = np.abs(poses - rest).max(axis=1) if poses.size else np.zeros(len(model_ids))
    by_model: dict[str, list[int]] = {}
    for i, model_id in enumerate(model_ids):
        by_model.setdefault(model_id, []).append(i)
    queues = []
    for indices in by_model.values():
        ranked = sorted(indices, key=lambda i: -distance[i])
        order, low, high = [], 0, len(ranked) - 1
        while low <= high:  # far, near, next far, next near...
            order.append(ranked[low])
            if high != low:
                order.append(ranked[high])
            low, high = low + 1, high - 1
        queues.append(order)
    chosen = []
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop(0))
    return chosen


def face_crop(image: np.ndarray, framing: str) -> np.ndarray:
    """The head and a margin around it: the middle 3/4 (head framing) or THA3's head box."""
    size = image.shape[0]
    if framing == "upper_body":  # the head in rows size/8..3size/8, centred
        top, bottom = size // 16, 7 * size // 16
        left, right = size // 2 - 3 * size // 16, size // 2 + 3 * size // 16
        return image[top:bottom, left:right]
    return image[size // 8: size - size // 8, size // 8: size - size // 8]


@torch.no_grad()
def evaluate_run(data_dir: str | os.PathLike, run_dir: str | os.PathLike,
                 split: str = "test", device: str = "cpu", batch_size: int = 25,
                 max_examples: int | None = None, workers: int = 0,
                 progress: bool = False) -> dict:
    """Evaluate the run's network on ``split``; write and return the metrics.

    Every example of the split is used (or the first ``max_examples``). The
    headline ``rmse`` and ``ssim`` are those of the network's last output (the
    rotator's resampled image); ``outputs`` has every output's. Beside them,
    always, the identity baseline (the input image as the output) and the share
    of examples the network beats it on (lower RMSE): overall, per model, and on
    the examples far from rest (:func:`far_from_rest`). A combiner is evaluated
    on the rotator it was trained on: if that rotator's run folder now holds
    other weights, it is a PipelineError.
    """

    run_dir = Path(run_dir)
    dev = check_device(device)
    model, checkpoint = load_network(run_dir, dev)
    network = checkpoint["network"]
    data = TripleDataset(data_dir, split, network)
    data.check_fits(model.config, f"the run's {network}")
    rotator = None
    if network == "combiner":
        rotator, _ = frozen_rotator(checkpoint["run_config"]["rotator"], data, dev,
                                    expected=checkpoint.get("rotator"))
    names = OUTPUT_NAMES[network]
    scores = {name: {"rmse": [], "ssim": []} for name in names}
    baseline = {"rmse": [], "ssim": []}
    limit = len(data) if max_examples is None else min(max_examples, len(data))
    loader = DataLoader(torch.utils.data.Subset(data, range(limit)), batch_size=batch_size,
                        shuffle=False, num_workers=workers)
    bar = progress_bar(len(loader), desc=f"evaluating {network}", unit="batch",
                       disable=not progress)
    for batch in batches_of(loader):
        bar.update(1)
        source, pose, target = (batch[k].to(dev) for k in ("source", "pose", "target"))
        outputs = forward(network, model, source, pose, rotator)  # each (N, 4, S, S)
        for name, output in zip(names, outputs, strict=True):
            scores[name]["rmse"] += rmse(unit(output), unit(target)).tolist()
            scores[name]["ssim"] += ssim(unit(output), unit(target)).tolist()
        baseline["rmse"] += rmse(unit(source), unit(target)).tolist()
        baseline["ssim"] += ssim(unit(source), unit(target)).tolist()
    bar.close()
    outputs_summary = {name: {"rmse": float(np.mean(s["rmse"])), "ssim": float(np.mean(s["ssim"]))}
                       for name, s in scores.items()}
    model_ids = data.data.model_ids()[:limit]
    poses = data.data.poses()[:limit][:, data.columns]
    net = (np.array(scores[names[-1]]["rmse"]), np.array(scores[names[-1]]["ssim"]))
    base = (np.array(baseline["rmse"]), np.array(baseline["ssim"]))
    ids = np.array(model_ids, dtype=object)
    result = {"network": network, "split": split, "examples": limit,
              "step": int(checkpoint["step"]), "data": str(data_dir),
              "rmse": outputs_summary[names[-1]]["rmse"],
              "ssim": outputs_summary[names[-1]]["ssim"],
              "outputs": outputs_summary,
              "baseline": {"what": "output = the input image", "rmse": float(base[0].mean()),
                           "ssim": float(base[1].mean())},
              "beats_baseline": float((net[0] < base[0]).mean()),
              "per_model": {m: _scores(*net, *base, ids == m) for m in dict.fromkeys(model_ids)},
              "far_from_rest": {name: _scores(*net, *base, mask) for name, mask in
                                far_from_rest(data.schema_name, data.parameters, poses).items()},
              "grid": {"columns": ["input", *names, "ground truth"]}}
    chosen = grid_examples(model_ids, poses, GRID_ROWS,
                           rest_values(data.schema_name, data.parameters))
    result["grid"]["examples"] = chosen
    picture = _grid_picture(data, chosen, network, model, rotator, dev, names, model_ids,
                            poses, checkpoint["step"])
    try:
        with atomic_write(run_dir / EVAL_JSON, "w", encoding="utf-8") as file:
            file.write(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        with atomic_write(run_dir / EVAL_GRID, "wb") as file:
            picture.save(file, format="PNG")
    except OSError as error:
        raise PipelineError(f"cannot write the evaluation into {run_dir}: "
                            f"{os_reason(error)}") from None
    return result


def _grid_picture(data, chosen, network, model, rotator, dev, names, model_ids, poses, step):
    """One labelled row per chosen example: the face of the input, each output and the
    ground truth, enlarged; the row's title names the model and the pose values."""
    from mmdrender.sheet import Cell, Panel, compose_sheet

    framing = SCHEMAS[data.schema_name].framing
    panels = []
    for index in chosen:
        item = data[index]
        source, pose, target = (item[k][None].to(dev) for k in ("source", "pose", "target"))
        outputs = forward(network, model, source, pose, rotator)
        images = [source, *outputs, target]
        cells = [Cell(face_crop(to_image(x[0].cpu()), framing), caption)
                 for x, caption in zip(images, ["input", *names, "ground truth"], strict=True)]
        values = " ".join(f"{name} {value:+.2f}" for name, value
                          in zip(data.parameters, poses[index], strict=True) if value)
        panels.append(Panel(f"{model_ids[index]} #{index}: {values or 'rest'}", cells))
    crop = face_crop(np.zeros((data.image_size, data.image_size)), framing).shape[1]
    return compose_sheet(panels, cell_size=max(GRID_CELL, crop), font_size=12,
                         title=f"{network} at step {step}, {data.split} split")
