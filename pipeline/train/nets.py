"""The three THA1 networks (spec section 8): face morpher, face rotator, combiner.

This module knows nothing about data: every network takes images
``(N, 4, S, S)`` float32 in [-1, 1] (linear RGB and alpha) and a pose
``(N, 3)`` float32, and returns images of the same shape. Each network is
built from one frozen config dataclass, stored in checkpoints with
:func:`dataclasses.asdict` and rebuilt with :func:`build`.

Shared blocks: :class:`Conv7Block` (7x7 conv, no bias, InstanceNorm(affine),
ReLU), :class:`Down` (4x4 stride-2 conv doubling channels), :class:`Up` (4x4
stride-2 transposed conv halving channels) and :class:`ResBlock` (two 3x3
convs with InstanceNorm, added to the input). Defaults follow the spec: 256
pixels, 64 intermediate channels, three downsamplings to a 32x32 bottleneck of
512 channels, six residual blocks.

Heads are 7x7 convs with a bias. Every alpha head has 4 channels, as the spec
says (one mask value per RGBA channel, not one broadcast channel).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import PipelineError

IMAGE_CHANNELS = 4  # RGBA
POSE_SIZE = 3  # THA1: three morph values (morpher) or three rotations (rotator, combiner)
MIN_BOTTLENECK = 2  # pixels a side: InstanceNorm needs more than one value per channel


def max_downsamplings(image_size: int) -> int:
    """The most halvings of ``image_size`` that stay exact and leave MIN_BOTTLENECK pixels."""
    d = 0
    while image_size % 2 ** (d + 1) == 0 and image_size // 2 ** (d + 1) >= MIN_BOTTLENECK:
        d += 1
    return d


@dataclass(frozen=True)
class _NetConfig:
    image_size: int = 256
    channels: int = 64
    downsamplings: int = 3
    res_blocks: int = 6
    image_channels: int = IMAGE_CHANNELS
    pose_size: int = POSE_SIZE
    pose_schema: str = "tha1"  # the dataset schema its pose inputs follow (mmdrender.schemas)

    def __post_init__(self):
        for name in ("image_size", "channels", "downsamplings", "image_channels", "pose_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PipelineError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.pose_schema, str) or not self.pose_schema:
            raise PipelineError(f"pose_schema must be a schema name, got {self.pose_schema!r}")
        if isinstance(self.res_blocks, bool) or not isinstance(self.res_blocks, int) \
                or self.res_blocks < 0:
            raise PipelineError(f"res_blocks must be a non-negative integer, "
                                f"got {self.res_blocks!r}")
        if self.image_size % (2 ** self.downsamplings) \
                or self.image_size // 2 ** self.downsamplings < MIN_BOTTLENECK:
            most = max_downsamplings(self.image_size)
            hint = f"use --downsamplings {most} or fewer" if most else \
                "use an image size divisible by 4"
            raise PipelineError(
                f"{self.downsamplings} downsamplings do not fit {self.image_size}-pixel images: "
                f"the size must divide by 2**{self.downsamplings} into a bottleneck of at "
                f"least {MIN_BOTTLENECK}x{MIN_BOTTLENECK} (InstanceNorm needs more than one "
                f"pixel); {hint}")

    @property
    def bottleneck_size(self) -> int:
        return self.image_size // 2 ** self.downsamplings

    @property
    def bottleneck_channels(self) -> int:
        return self.channels * 2 ** self.downsamplings


@dataclass(frozen=True)
class MorpherConfig(_NetConfig):
    """The face morpher: rest image + (eye_left, eye_right, mouth) -> expression image."""


@dataclass(frozen=True)
class RotatorConfig(_NetConfig):
    """The two-algorithm face rotator: expression image + (head_x, head_y, neck_z) -> posed."""


@dataclass(frozen=True)
class CombinerConfig(_NetConfig):
    """The combiner: both rotator outputs + the rotation params -> posed image."""


class Conv7Block(nn.Sequential):
    """7x7 conv (no bias) + InstanceNorm(affine) + ReLU; keeps the size."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(nn.Conv2d(in_channels, out_channels, 7, padding=3, bias=False),
                         nn.InstanceNorm2d(out_channels, affine=True), nn.ReLU(inplace=True))


class Down(nn.Sequential):
    """4x4 stride-2 conv + IN + ReLU: (N, C, H, W) -> (N, 2C, H/2, W/2) by default."""

    def __init__(self, in_channels: int, out_channels: int | None = None):
        out_channels = out_channels or 2 * in_channels
        super().__init__(nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1, bias=False),
                         nn.InstanceNorm2d(out_channels, affine=True), nn.ReLU(inplace=True))


class Up(nn.Sequential):
    """4x4 stride-2 transposed conv + IN + ReLU: (N, C, H, W) -> (N, C/2, 2H, 2W) by default."""

    def __init__(self, in_channels: int, out_channels: int | None = None):
        out_channels = out_channels or in_channels // 2
        super().__init__(nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1,
                                            bias=False),
                         nn.InstanceNorm2d(out_channels, affine=True), nn.ReLU(inplace=True))


class ResBlock(nn.Module):
    """x + IN(conv3(ReLU(IN(conv3(x))))): (N, C, H, W) -> (N, C, H, W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.InstanceNorm2d(channels, affine=True), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.InstanceNorm2d(channels, affine=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _head(in_channels: int, out_channels: int, activation: nn.Module | None) -> nn.Module:
    conv = nn.Conv2d(in_channels, out_channels, 7, padding=3)
    return nn.Sequential(conv, activation) if activation is not None else conv


def _with_pose(image: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) and (N, P) -> (N, C + P, H, W): the pose tiled as constant channels."""
    n, _, h, w = image.shape
    tiled = pose.to(image.dtype)[:, :, None, None].expand(n, pose.shape[1], h, w)  # (N, P, H, W)
    return torch.cat([image, tiled], dim=1)


def _check_inputs(config: _NetConfig, image: torch.Tensor, pose: torch.Tensor, what: str):
    s, c = config.image_size, config.image_channels
    if image.dim() != 4 or image.shape[1:] != (c, s, s):
        raise ValueError(f"{what}: image must be (N, {c}, {s}, {s}), got {tuple(image.shape)}")
    if pose.shape != (image.shape[0], config.pose_size):
        raise ValueError(f"{what}: pose must be ({image.shape[0]}, {config.pose_size}), "
                         f"got {tuple(pose.shape)}")


class EncoderDecoder(nn.Module):
    """The Pumarola et al. generator body: (N, Cin, S, S) -> (N, channels, S, S).

    Conv7Block, ``downsamplings`` Down blocks, ``res_blocks`` ResBlocks at the
    bottleneck, as many Up blocks.
    """

    def __init__(self, in_channels: int, config: _NetConfig):
        super().__init__()
        c = config.channels
        layers: list[nn.Module] = [Conv7Block(in_channels, c)]
        for i in range(config.downsamplings):
            layers.append(Down(c * 2 ** i))
        layers += [ResBlock(config.bottleneck_channels) for _ in range(config.res_blocks)]
        for i in reversed(range(config.downsamplings)):
            layers.append(Up(c * 2 ** (i + 1)))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class FaceMorpher(nn.Module):
    """Rest image + morph params -> expression image.

    ``forward(image (N, 4, S, S), pose (N, 3)) -> (N, 4, S, S)``:
    ``alpha * image + (1 - alpha) * change``, alpha (sigmoid) and change (tanh)
    from two 7x7 heads on the 64-channel features.
    """

    outputs = ("output",)

    def __init__(self, config: MorpherConfig = MorpherConfig()):
        super().__init__()
        self.config = config
        self.body = EncoderDecoder(config.image_channels + config.pose_size, config)
        self.color_change = _head(config.channels, config.image_channels, nn.Tanh())
        self.alpha_mask = _head(config.channels, config.image_channels, nn.Sigmoid())

    def forward(self, image: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        _check_inputs(self.config, image, pose, "face morpher")
        features = self.body(_with_pose(image, pose))  # (N, channels, S, S)
        alpha = self.alpha_mask(features)  # (N, 4, S, S) in (0, 1)
        change = self.color_change(features)  # (N, 4, S, S) in (-1, 1)
        return alpha * image + (1 - alpha) * change


class FaceRotator(nn.Module):
    """Expression image + rotation params -> (colour-changed, resampled) posed images.

    ``forward(image (N, 4, S, S), pose (N, 3)) -> tuple of two (N, 4, S, S)``.
    The Pumarola pair as in :class:`FaceMorpher`, and an appearance-flow head
    whose 2 channels are offsets (in grid_sample's [-1, 1] units) added to the
    identity sampling grid; the input is resampled bilinearly, border padding.
    """

    outputs = ("color_changed", "resampled")

    def __init__(self, config: RotatorConfig = RotatorConfig()):
        super().__init__()
        self.config = config
        self.body = EncoderDecoder(config.image_channels + config.pose_size, config)
        self.color_change = _head(config.channels, config.image_channels, nn.Tanh())
        self.alpha_mask = _head(config.channels, config.image_channels, nn.Sigmoid())
        self.grid_change = _head(config.channels, 2, None)

    def forward(self, image: torch.Tensor,
                pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_inputs(self.config, image, pose, "face rotator")
        n, _, h, w = image.shape
        features = self.body(_with_pose(image, pose))  # (N, channels, S, S)
        alpha = self.alpha_mask(features)  # (N, 4, S, S)
        color_changed = alpha * image + (1 - alpha) * self.color_change(features)
        offset = self.grid_change(features).permute(0, 2, 3, 1)  # (N, 2, S, S) -> (N, S, S, 2)
        identity = torch.eye(2, 3, dtype=image.dtype, device=image.device)  # (2, 3) affine
        grid = F.affine_grid(identity.expand(n, 2, 3), [n, 1, h, w],
                             align_corners=False)  # (N, S, S, 2), x then y
        resampled = F.grid_sample(image, grid + offset, mode="bilinear", padding_mode="border",
                                  align_corners=False)  # (N, 4, S, S)
        return color_changed, resampled


class Combiner(nn.Module):
    """Both rotator outputs + rotation params -> the posed image.

    ``forward(first (N, 4, S, S), second (N, 4, S, S), pose (N, 3)) -> (N, 4, S, S)``,
    ``first`` the colour-changed and ``second`` the resampled rotator output.

    A U-Net with a skip at every scale: the encoder keeps its output at each
    scale (full size and after each Down); the decoder concatenates the skip of
    its scale before each Up (so an Up takes 2C channels to C/2, halving the
    channel count of the scale it came from) and once more at full size,
    followed by a Conv7Block back to ``channels``. Heads: combine alpha
    (sigmoid), retouch alpha (sigmoid), retouch colour (tanh);
    ``combined = a1 * first + (1 - a1) * second``,
    ``final = a2 * combined + (1 - a2) * retouch``.
    """

    outputs = ("final",)

    def __init__(self, config: CombinerConfig = CombinerConfig()):
        super().__init__()
        self.config = config
        c, k = config.channels, config.image_channels
        self.stem = Conv7Block(2 * k + config.pose_size, c)
        self.downs = nn.ModuleList(Down(c * 2 ** i) for i in range(config.downsamplings))
        self.bottleneck = nn.Sequential(*[ResBlock(config.bottleneck_channels)
                                          for _ in range(config.res_blocks)])
        self.ups = nn.ModuleList(Up(2 * c * 2 ** (i + 1), c * 2 ** i)
                                 for i in reversed(range(config.downsamplings)))
        self.merge = Conv7Block(2 * c, c)
        self.combine_alpha = _head(c, k, nn.Sigmoid())
        self.retouch_alpha = _head(c, k, nn.Sigmoid())
        self.retouch_color = _head(c, k, nn.Tanh())

    def forward(self, first: torch.Tensor, second: torch.Tensor,
                pose: torch.Tensor) -> torch.Tensor:
        _check_inputs(self.config, first, pose, "combiner")
        _check_inputs(self.config, second, pose, "combiner")
        x = self.stem(_with_pose(torch.cat([first, second], dim=1), pose))  # (N, C, S, S)
        skips = [x]
        for down in self.downs:
            x = down(x)  # (N, 2C', S'/2, S'/2)
            skips.append(x)
        x = self.bottleneck(x)  # (N, C * 2**D, S / 2**D, S / 2**D)
        for up in self.ups:
            x = up(torch.cat([x, skips.pop()], dim=1))  # (N, 2C', S', S') -> (N, C'/2, 2S', 2S')
        x = self.merge(torch.cat([x, skips.pop()], dim=1))  # (N, 2C, S, S) -> (N, C, S, S)
        a1 = self.combine_alpha(x)
        a2 = self.retouch_alpha(x)
        combined = a1 * first + (1 - a1) * second
        return a2 * combined + (1 - a2) * self.retouch_color(x)


CONFIGS = {"morpher": MorpherConfig, "rotator": RotatorConfig, "combiner": CombinerConfig}
NETS = {"morpher": FaceMorpher, "rotator": FaceRotator, "combiner": Combiner}


def build(network: str, config: dict | _NetConfig | None = None) -> nn.Module:
    """The network named ``network`` ("morpher", "rotator", "combiner") from its config.

    ``config`` is its config dataclass, or a dict of its fields (as stored in a
    checkpoint), or None for the defaults.
    """
    if network not in NETS:
        raise PipelineError(f"unknown network {network!r}; choose one of {sorted(NETS)}")
    cls = CONFIGS[network]
    if config is None:
        config = cls()
    elif isinstance(config, dict):
        try:
            config = cls(**config)
        except TypeError as error:
            raise PipelineError(f"{network} config {config}: {error}") from None
    elif not isinstance(config, cls):
        raise PipelineError(f"{network} needs a {cls.__name__}, got {type(config).__name__}")
    return NETS[network](config)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
