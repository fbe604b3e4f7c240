"""Body of the sample characters: torso, neck, arms, skirt, legs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmdrender.procedural.mesh import (
    Part,
    Skin,
    _uv_into,
    ellipsoid,
    skin_blend,
    skin_sdef,
    skin_single,
    smoothstep,
    surface_part,
    tube_grid,
    tube_part,
)

CHEST = "上半身2"  # the upper chest: the neck, the arms and the collar hang on it


@dataclass(frozen=True)
class Body:
    """Body landmarks, derived from the chin height."""

    chin: float

    @property
    def neck_base(self) -> float:  # the 首 joint
        return self.chin - 0.5

    @property
    def shoulder(self) -> np.ndarray:  # the left shoulder joint (腕)
        return np.array([1.12, self.chin - 0.95, 0.1])

    @property
    def waist(self) -> float:
        return self.chin - 3.6

    @property
    def chest(self) -> float:  # the 上半身2 joint
        return self.chin - 2.3

    def arm_joints(self, side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Shoulder (腕), elbow (ひじ) and wrist of the arm on ``side`` (+1 left, -1 right)."""
        shoulder = self.shoulder * np.array([side, 1.0, 1.0])
        wrist = shoulder + np.array([side * 0.55, -3.3, 0.05])
        return shoulder, (shoulder + wrist) / 2, wrist

    def collarbone(self, side: int) -> np.ndarray:  # the 肩 joint
        return np.array([side * 0.35, self.chin - 0.8, 0.14])


def torso(body: Body, material: str) -> Part:
    """Chest, waist and hips as one loft, closing over the shoulders at the neck."""
    c = body.chin
    ys = np.array([c - 5.0, c - 4.85, c - 4.5, c - 3.6, c - 2.4, c - 1.35, c - 0.95, c - 0.72,
                   c - 0.55, c - 0.42, c - 0.36])
    half = np.array([0.02, 0.75, 1.02, 0.78, 1.0, 1.04, 1.22, 1.1, 0.72, 0.34, 0.02])
    depth = np.array([0.02, 0.6, 0.72, 0.56, 0.7, 0.62, 0.56, 0.5, 0.44, 0.32, 0.02])
    t = np.linspace(0.0, 1.0, 36)
    y = np.interp(t, np.linspace(0.0, 1.0, len(ys)), ys)
    a = np.interp(y, ys, half)[:, None]
    d = np.interp(y, ys, depth)[:, None]
    theta = np.linspace(-np.pi, np.pi, 33)
    x = a * np.sin(theta)
    z = 0.12 - d * np.cos(theta)
    grid = np.stack(np.broadcast_arrays(x, y[:, None], z), -1)
    width = 1.3
    uv = np.stack([(grid[..., 0] + width) / (2 * width), (c - 0.4 - grid[..., 1]) / 4.7], -1)
    yy = grid[..., 1].reshape(-1)
    hips = skin_blend(smoothstep(body.waist - 0.3, body.waist + 0.3, yy), "下半身", "上半身")
    chest = skin_blend(smoothstep(body.chest - 0.4, body.chest + 0.4, yy), "上半身", CHEST)
    skin = _pick(yy > (body.waist + body.chest) / 2, chest, hips)
    return surface_part("torso", material, grid, uv, skin, outward_from=(0.0, c - 2.5, 0.12))


def _pick(upper: np.ndarray, above: Skin, below: Skin) -> Skin:
    """Per vertex, the skinning of ``above`` where ``upper`` holds, else ``below``'s."""
    return Skin(np.where(upper[:, None], above.bones, below.bones),
                np.where(upper[:, None], above.weights, below.weights),
                np.where(upper, above.kind, below.kind), below.sdef)


def neck(body: Body, head_joint: float, radius: float = 0.36) -> Part:
    """The neck, blended 上半身 -> 首 at its base and 首 -> 頭 at its top (BDEF2)."""
    y = np.linspace(body.neck_base - 0.45, head_joint + 0.75, 16)
    centres = np.stack([np.zeros_like(y), y, np.full_like(y, 0.18)], -1)
    r = np.full_like(y, radius)
    grid, uv = tube_grid(centres, r, r, (0.0, 0.0, -1.0), around=20)
    uv[..., 1] = 0.45 * (1.0 - uv[..., 1])  # top of the neck at v = 0
    yy = grid[..., 1].reshape(-1)
    t_low = smoothstep(body.neck_base - 0.25, body.neck_base + 0.25, yy)
    t_high = smoothstep(head_joint - 0.25, head_joint + 0.25, yy)
    low = skin_blend(t_low, CHEST, "首")
    high = skin_blend(t_high, "首", "頭")
    skin = _pick(yy > 0.5 * (body.neck_base + head_joint), high, low)
    return tube_part("neck", "skin", centres, grid, uv, skin)


def arms(body: Body, sleeve: str) -> list[Part]:
    """Arms hanging at the sides: SDEF-blended 上半身2 -> 腕 at the shoulder, 腕 -> ひじ at
    the elbow; the hand on the forearm (ひじ)."""
    parts = []
    u = np.linspace(0.0, 1.0, 18)
    for side, lr in ((1, "左"), (-1, "右")):
        arm, elbow_bone = f"{lr}腕", f"{lr}ひじ"
        shoulder, elbow, wrist = body.arm_joints(side)
        centres = shoulder + u[:, None] * (wrist - shoulder)
        centres[:, 1] += 0.12 * (1 - u)
        r = 0.27 - 0.08 * u
        r[0] = 0.0
        grid, uv = tube_grid(centres, r, 0.95 * r, (0.0, 0.0, -1.0), around=14)
        yy = grid[..., 1].reshape(-1)
        upper = skin_sdef(smoothstep(shoulder[1] + 0.2, shoulder[1] - 0.45, yy), CHEST, arm,
                          shoulder, wrist - shoulder)
        lower = skin_blend(smoothstep(elbow[1] + 0.25, elbow[1] - 0.25, yy), arm, elbow_bone)
        skin = _pick(yy < (shoulder[1] + elbow[1]) / 2, lower, upper)
        # sleeves sample a plain corner of the clothes texture
        parts.append(tube_part("arm", sleeve, centres, grid, _uv_into(uv, (0.02, 0.82, 0.2, 0.95)),
                               skin))
        parts.append(ellipsoid("hand", "skin", wrist + np.array([side * 0.05, -0.25, 0.0]),
                               (0.17, 0.28, 0.2), elbow_bone, uv_box=(0.1, 0.6, 0.9, 0.95)))
    return parts


def skirt(body: Body, material: str, length: float, flare: float, pleats: int) -> Part:
    """A pleated skirt (or short trousers, with no flare) from the waist down."""
    top, bottom = body.waist + 0.25, body.waist - length
    q = np.linspace(0.0, 1.0, 10)[:, None]
    theta = np.linspace(-np.pi, np.pi, 8 * pleats + 1)
    y = top + (bottom - top) * q
    a = 0.82 + flare * q**0.8 + 0.06 * q * np.cos(pleats * theta)
    d = 0.64 + 0.6 * flare * q**0.8 + 0.05 * q * np.cos(pleats * theta)
    grid = np.stack(np.broadcast_arrays(a * np.sin(theta), y, 0.12 - d * np.cos(theta)), -1)
    uv = np.stack(np.broadcast_arrays((theta + np.pi) / (2 * np.pi), 0.05 + 0.9 * q), -1)
    return surface_part("skirt", material, grid, uv, skin_single(grid[..., 0].size, "下半身"),
                        outward_from=(0.0, top, 0.12))


def legs(body: Body, material: str, shoe: str) -> list[Part]:
    parts = []
    u = np.linspace(0.0, 1.0, 16)
    for side in (1, -1):
        hip = np.array([side * 0.42, body.waist - 1.0, 0.12])
        ankle = np.array([side * 0.45, 0.75, 0.12])
        centres = hip + u[:, None] * (ankle - hip)
        r = 0.34 - 0.14 * u
        grid, uv = tube_grid(centres, r, r, (0.0, 0.0, -1.0), around=12)
        skin = skin_single(grid[..., 0].size, "下半身")
        parts.append(tube_part("leg", material, centres, grid, uv, skin))
        parts.append(ellipsoid("shoe", shoe, (side * 0.45, 0.38, -0.05), (0.3, 0.38, 0.55),
                               "下半身"))
    return parts
