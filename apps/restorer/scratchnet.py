"""The old-photo scratch detector of "Bringing Old Photos Back to Life" (Wan et al., 2020).

spandrel does not know this network, so its layout is written here: a 4-level U-Net on one
grey channel (64..1024 filters, two reflect-padded 3x3 conv + BatchNorm + LeakyReLU per
level, anti-aliased stride-2 blur between levels, bilinear upsampling on the way up) whose
one output channel is a scratch logit. The module and parameter names follow the released
checkpoint `Global/checkpoints/detection/FT_Epoch_latest.pt` (`{"model_state": state_dict}`),
so that file loads with strict=True and anything else is refused with a sentence.

The original runs the net on the greyscale photo scaled to a short side of 256 (both sides a
multiple of 16), normalised to [-1, 1], and keeps pixels whose sigmoid is >= 0.4; the mask is
then scaled back to the photo. That also bounds memory by the working size, not the photo.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from . import statedict

DEPTH, FIRST_FILTERS = 4, 64
WORK_SHORT_SIDE, WORK_LONG_CAP, MULTIPLE = 256, 2048, 2**DEPTH
THRESHOLD = 0.4  # the original's cut at sensitivity 0.5
FILE_HINT = "the old-photo scratch detector (Global/checkpoints/detection/FT_Epoch_latest.pt)"


class NotScratchDetector(ValueError):
    """The file is not (a state dict of) the scratch U-Net; the message is a sentence for people."""


def _conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [
        nn.ReflectionPad2d(1),
        nn.Conv2d(c_in, c_out, 3),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.2, True),
    ]


class ConvBlock(nn.Module):
    """Two padded 3x3 conv + BN + LeakyReLU (keys block.0..7)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.block = nn.Sequential(*_conv_bn(c_in, c_out), *_conv_bn(c_out, c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class BlurDown(nn.Module):
    """Anti-aliased downsampling: a fixed [1 2 1]x[1 2 1]/16 blur per channel, stride 2.
    The filter is a buffer named `filt`, as it is stored in the checkpoint."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        taps = torch.tensor([1.0, 2.0, 1.0])
        kernel = taps[:, None] * taps[None, :]
        self.register_buffer("filt", (kernel / kernel.sum()).expand(channels, 1, 3, 3).clone())
        self.pad = nn.ReflectionPad2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv2d(self.pad(x), self.filt, stride=2, groups=x.shape[1])


class UpBlock(nn.Module):
    """Bilinear x2, a padded 3x3 conv halving the filters, then the skip joined and a ConvBlock."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.ReflectionPad2d(1),
            nn.Conv2d(c_in, c_out, 3),
        )
        self.conv_block = ConvBlock(c_in, c_out)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv_block(torch.cat([self.up(x), skip], 1))


class ScratchUNet(nn.Module):
    """grey (N, 1, H, W) in [-1, 1], H and W multiples of 16 -> scratch logits (N, 1, H, W)."""

    def __init__(self, depth: int = DEPTH, filters: int = FIRST_FILTERS) -> None:
        super().__init__()
        self.first = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(1, filters, 7), nn.LeakyReLU(0.2, True)
        )
        widths = [filters * 2**i for i in range(depth + 1)]
        self.down_path = nn.ModuleList(ConvBlock(widths[i], widths[i + 1]) for i in range(depth))
        self.down_sample = nn.ModuleList(
            nn.Sequential(*_conv_bn(w, w), BlurDown(w)) for w in widths[:-1]
        )
        self.up_path = nn.ModuleList(
            UpBlock(widths[i + 1], widths[i]) for i in reversed(range(depth))
        )
        self.last = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(filters, 1, 3))
        self.multiple = 2**depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % self.multiple or x.shape[-1] % self.multiple:
            raise ValueError(
                f"the scratch U-Net needs sides that are multiples of {self.multiple}, "
                f"not {tuple(x.shape[-2:])}"
            )
        x = self.first(x)
        skips = []
        for down, conv in zip(self.down_sample, self.down_path, strict=True):
            skips.append(x)
            x = conv(down(x))
        for up, skip in zip(self.up_path, reversed(skips), strict=True):
            x = up(x, skip)
        return self.last(x)


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint, read without running pickled code; `model_state` unwrapped."""
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NotScratchDetector(
            f"{path.name} is not a PyTorch checkpoint that can be read safely "
            f"({first[:200]}), so it is not {FILE_HINT}."
        ) from None
    if isinstance(obj, dict) and isinstance(obj.get("model_state"), dict):
        obj = obj["model_state"]
    if (
        not isinstance(obj, dict)
        or not obj
        or not all(isinstance(v, torch.Tensor) for v in obj.values())
    ):
        held = (
            f"the entries {', '.join(repr(k) for k in list(obj)[:3])}"
            if isinstance(obj, dict) and obj
            else f"a {type(obj).__name__}"
        )
        raise NotScratchDetector(
            f"{path.name} holds {held}, not a model_state of weights, so it is not {FILE_HINT}."
        )
    if all(k.startswith("module.") for k in obj):  # saved from a DataParallel wrapper
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


def build(state: dict[str, torch.Tensor], name: str = "the file") -> ScratchUNet:
    """A ScratchUNet holding exactly these weights; a sentence naming what differs otherwise."""
    try:
        return statedict.load_strict(ScratchUNet(), state, name, FILE_HINT)
    except statedict.WrongFile as exc:
        raise NotScratchDetector(str(exc)) from None


def working_size(height: int, width: int) -> tuple[int, int]:
    """(h, w) the net runs at: short side 256, long side at most 2048, both multiples of 16."""
    scale = min(WORK_SHORT_SIDE / min(height, width), WORK_LONG_CAP / max(height, width))

    def snap(v: float) -> int:
        return max(MULTIPLE, int(round(v / MULTIPLE)) * MULTIPLE)

    return snap(height * scale), snap(width * scale)


class ScratchDetector:
    """The loaded U-Net on a device, turning photos into defect masks."""

    def __init__(self, path: Path, device: str) -> None:
        self.path = Path(path)
        self.device = device
        self.net = build(read_state(self.path), self.path.name).to(device)

    def probability(self, rgb: np.ndarray) -> np.ndarray:
        """float32 HxW scratch probability for an RGB (or grey) uint8 photo, at the photo's size."""
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
        h, w = grey.shape
        wh, ww = working_size(h, w)
        shrink = wh * ww < h * w
        small = cv2.resize(
            grey, (ww, wh), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        )
        with torch.inference_mode():
            x = torch.from_numpy(small).to(self.device).float().div_(127.5).sub_(1.0)[None, None]
            p = torch.sigmoid(self.net(x))[0, 0].float().cpu().numpy()
        return cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR)

    def mask(self, rgb: np.ndarray, sensitivity: float = 0.5) -> np.ndarray:
        """uint8 mask (255 = scratch); sensitivity 0.5 is the original's 0.4 cut, 0 -> 0.7, 1 -> 0.1."""
        threshold = THRESHOLD + 0.6 * (0.5 - float(np.clip(sensitivity, 0.0, 1.0)))
        mask = (self.probability(rgb) >= threshold).astype(np.uint8) * 255
        return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3)))
