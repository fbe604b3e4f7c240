"""Evaluation of a trained run (spec section 8): mean per-pixel RMSE and mean SSIM.

Both on the network's images mapped from [-1, 1] to [0, 1] (linear RGB and
alpha, all four channels): RMSE per image over every pixel and channel, SSIM
per image with an 11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03,
data range 1, over the valid region and averaged over channels (Wang et al.
2004). Both are then averaged over the examples of the split.

:func:`evaluate_run` writes ``eval.json`` and ``eval_grid.png`` (rows: input,
each output, ground truth; composited over grey) into the run folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from pipeline.atomic import atomic_write
from pipeline.errors import PipelineError
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
GRID_COLUMNS = 8
GREY = 128  # sRGB background of the grid
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


def composite(image: np.ndarray) -> np.ndarray:
    """(S, S, 4) uint8 sRGB RGBA -> (S, S, 3) uint8 over a grey background."""
    rgb = image[..., :3].astype(np.float32)
    alpha = image[..., 3:].astype(np.float32) / 255
    return np.round(rgb * alpha + GREY * (1 - alpha)).astype(np.uint8)


def image_grid(rows: list[torch.Tensor]) -> np.ndarray:
    """Rows of (K, 4, S, S) images in [-1, 1] -> one (R*S, K*S, 3) uint8 sRGB picture."""
    return np.concatenate([np.concatenate([composite(to_image(x)) for x in row], axis=1)
                           for row in rows], axis=0)


@torch.no_grad()
def evaluate_run(data_dir: str | os.PathLike, run_dir: str | os.PathLike,
                 split: str = "test", device: str = "cpu", batch_size: int = 25,
                 max_examples: int | None = None, workers: int = 0,
                 progress: bool = False) -> dict:
    """Evaluate the run's network on ``split``; write and return the metrics.

    Every example of the split is used (or the first ``max_examples``). The
    headline ``rmse`` and ``ssim`` are those of the network's last output (the
    rotator's resampled image); ``outputs`` has every output's. A combiner is
    evaluated on the rotator it was trained on: if that rotator's run folder
    now holds other weights, it is a PipelineError.
    """
    from PIL import Image

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
    grid: list[list[torch.Tensor]] = [[] for _ in range(len(names) + 2)]
    limit = len(data) if max_examples is None else min(max_examples, len(data))
    loader = DataLoader(torch.utils.data.Subset(data, range(limit)), batch_size=batch_size,
                        shuffle=False, num_workers=workers)
    from tqdm import tqdm

    for batch in tqdm(batches_of(loader), total=len(loader), desc=f"evaluating {network}",
                      unit="batch", disable=not progress):
        source, pose, target = (batch[k].to(dev) for k in ("source", "pose", "target"))
        outputs = forward(network, model, source, pose, rotator)  # each (N, 4, S, S)
        for name, output in zip(names, outputs, strict=True):
            scores[name]["rmse"] += rmse(unit(output), unit(target)).tolist()
            scores[name]["ssim"] += ssim(unit(output), unit(target)).tolist()
        room = GRID_COLUMNS - sum(len(x) for x in grid[0])
        if room > 0:
            for row, images in zip(grid, (source, *outputs, target), strict=True):
                row.append(images[:room].cpu())
    outputs_summary = {name: {"rmse": float(np.mean(s["rmse"])), "ssim": float(np.mean(s["ssim"]))}
                       for name, s in scores.items()}
    result = {"network": network, "split": split, "examples": limit,
              "step": int(checkpoint["step"]), "data": str(data_dir),
              "rmse": outputs_summary[names[-1]]["rmse"],
              "ssim": outputs_summary[names[-1]]["ssim"],
              "outputs": outputs_summary,
              "grid_rows": ["input", *names, "ground_truth"]}
    picture = image_grid([torch.cat(row) for row in grid])
    try:
        with atomic_write(run_dir / EVAL_JSON, "w", encoding="utf-8") as file:
            file.write(json.dumps(result, indent=2) + "\n")
        with atomic_write(run_dir / EVAL_GRID, "wb") as file:
            Image.fromarray(picture).save(file, format="PNG")
    except OSError as error:
        raise PipelineError(f"cannot write the evaluation into {run_dir}: "
                            f"{os_reason(error)}") from None
    return result
