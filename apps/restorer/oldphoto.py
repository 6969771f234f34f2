"""Global restoration of "Bringing Old Photos Back to Life" (Wan et al., CVPR 2020).

The paper's triplet-domain translation: old photos (domain R) and synthetic degraded
photos (X) share one latent space learned by VAE_A; clean photos (Y) have their own,
learned by VAE_B; a mapping network translates A's latent codes into B's. Restoring a
photo is A's encoder, the mapping, then B's decoder - film grain, fading, blur and noise
go away while the picture stays. Two released settings: "quality" runs after the scratches
are found (scratchnet.py) and filled (LaMa); "with scratches" (oldscratch.py) takes the photo
with its scratch mask and fills the scratches itself, in the latent mapping, from the parts
of the picture no scratch touched.

The released setting: each VAE is a pix2pixHD-style generator (reflect-padded 7x7 conv,
two stride-2 4x4 convs, residual blocks at a quarter size, two 4x4 transposed convs, 7x7
conv + tanh), 64 channels throughout, InstanceNorm without weights; the mapping widens
64 -> 512 in four 3x3 convs, runs six residual blocks and narrows back to 64. Module
names follow the released files `Global/checkpoints/restoration/{VAE_A_quality,
VAE_B_quality}/latest_net_G.pth` and `mapping_quality/latest_net_mapping_net.pth`, so they
load with strict=True; widths are read from their shapes.

InstanceNorm normalises over the whole picture, so the network runs on the whole photo
(not tiles), at most WORK_PIXELS at once: a larger photo is worked on scaled down and the
result scaled back up, which bounds memory by the working size, not the photo.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from . import statedict

VAE_HINT = (
    "a VAE of the old-photo global restoration (VAE_A_quality or VAE_B_quality latest_net_G.pth)"
)
MAP_HINT = "the old-photo mapping network (mapping_quality/latest_net_mapping_net.pth)"
SETTINGS = ("quality", "scratch")
FOLDERS = {  # the released folders of each setting's three files
    "quality": {"a": "VAE_A_quality", "b": "VAE_B_quality", "mapping": "mapping_quality"},
    "scratch": {"a": "VAE_A_quality", "b": "VAE_B_scratch", "mapping": "mapping_scratch"},
}
WORK_PIXELS = 2_000_000
MULTIPLE = 4


def _norm_relu(c: int) -> list[nn.Module]:
    return [nn.InstanceNorm2d(c), nn.ReLU(True)]


class ResBlock(nn.Module):
    """x + (pad, 3x3 conv, IN, ReLU, pad, 3x3 conv, IN); conv weights at conv_block.1 and .5."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(c, c, 3),
            *_norm_relu(c),
            nn.ReflectionPad2d(1),
            nn.Conv2d(c, c, 3),
            nn.InstanceNorm2d(c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class VAE(nn.Module):
    """One domain's generator: `encoder` to a quarter-size code, `decoder` back to RGB."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        w = width
        self.encoder = nn.Sequential(
            nn.ReflectionPad2d(3),
            nn.Conv2d(3, w, 7),
            *_norm_relu(w),
            nn.Conv2d(w, w, 4, 2, 1),
            *_norm_relu(w),
            nn.Conv2d(w, w, 4, 2, 1),
            *_norm_relu(w),
            *(ResBlock(w) for _ in range(4)),
        )
        self.decoder = nn.Sequential(
            *(ResBlock(w) for _ in range(4)),
            nn.ConvTranspose2d(w, w, 4, 2, 1),
            *_norm_relu(w),
            nn.ConvTranspose2d(w, w, 4, 2, 1),
            *_norm_relu(w),
            nn.ReflectionPad2d(3),
            nn.Conv2d(w, 3, 7),
            nn.Tanh(),
        )


class Mapping(nn.Module):
    """Latent A -> latent B: four widening 3x3 convs, residual blocks, three narrowing, one out."""

    def __init__(self, down: list[int], blocks: int, up: list[int], out: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out in zip(down, down[1:], strict=False):
            layers += [nn.Conv2d(c_in, c_out, 3, 1, 1), *_norm_relu(c_out)]
        layers += [ResBlock(down[-1]) for _ in range(blocks)]
        for c_in, c_out in zip(up, up[1:], strict=False):
            layers += [nn.Conv2d(c_in, c_out, 3, 1, 1), *_norm_relu(c_out)]
        layers.append(nn.Conv2d(up[-1], out, 3, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def build_vae(state: dict[str, torch.Tensor], name: str) -> VAE:
    width = statedict.shape(state, "encoder.1.weight", name, VAE_HINT)[0]
    return statedict.load_strict(VAE(width), state, name, VAE_HINT)


def build_mapping(state: dict[str, torch.Tensor], name: str) -> Mapping:
    """Widths from the conv shapes: model.0/3/6/9 widen, residual blocks, three narrow, one out."""
    down = [statedict.shape(state, "model.0.weight", name, MAP_HINT)[1]]
    for i in (0, 3, 6, 9):
        down.append(statedict.shape(state, f"model.{i}.weight", name, MAP_HINT)[0])
    blocks = 0
    while f"model.{12 + blocks}.conv_block.1.weight" in state:
        blocks += 1
    first_up = 12 + blocks
    up = [down[-1]]
    for i in range(3):
        up.append(statedict.shape(state, f"model.{first_up + 3 * i}.weight", name, MAP_HINT)[0])
    out = statedict.shape(state, f"model.{first_up + 9}.weight", name, MAP_HINT)[0]
    return statedict.load_strict(Mapping(down, blocks, up, out), state, name, MAP_HINT)


def role(path: Path) -> str | None:
    """Which part of the released setting a file is, by its folder: 'a', 'b', 'mapping'."""
    folder = path.parent.name.lower()
    if folder.startswith("vae_a"):
        return "a"
    if folder.startswith("vae_b"):
        return "b"
    if folder.startswith("mapping"):
        return "mapping"
    return None


def setting_of(paths: list[Path]) -> str:
    """'scratch' when the set's mapping or VAE_B comes from a scratch folder, else 'quality'."""
    for path in paths:
        if role(path) in ("b", "mapping") and "scratch" in path.parent.name.lower():
            return "scratch"
    return "quality"


def working_size(height: int, width: int, budget: int = WORK_PIXELS) -> tuple[int, int]:
    """(h, w) the network runs at: within the pixel budget, both multiples of 4."""
    scale = min(1.0, (budget / (height * width)) ** 0.5)

    def snap(v: float) -> int:
        return max(MULTIPLE, int(round(v / MULTIPLE)) * MULTIPLE)

    return snap(height * scale), snap(width * scale)


@dataclass
class GlobalRestorer:
    """VAE_A's encoder -> mapping -> VAE_B's decoder, on a device; the "scratch" setting's
    mapping also takes the scratch mask (oldscratch.MaskedMapping)."""

    a: VAE
    mapping: nn.Module
    b: VAE
    device: str
    setting: str = "quality"

    @classmethod
    def from_files(
        cls, files: dict[str, Path], device: str, setting: str = "quality"
    ) -> GlobalRestorer:
        from . import oldscratch

        missing = [r for r in ("a", "mapping", "b") if r not in files]
        if missing:
            names = FOLDERS[setting]
            raise statedict.WrongFile(
                f"The old-photo global restoration ({setting} setting) needs three files and "
                f"{', '.join(names[m] for m in missing)} is not among them."
            )
        a = build_vae(statedict.read(files["a"], VAE_HINT), files["a"].name)
        b = build_vae(statedict.read(files["b"], VAE_HINT), files["b"].name)
        name = files["mapping"].name
        if setting == "scratch":
            m: nn.Module = oldscratch.build(statedict.read(files["mapping"], oldscratch.HINT), name)
            takes = m.in_channels
        else:
            m = build_mapping(statedict.read(files["mapping"], MAP_HINT), name)
            takes = m.model[0].in_channels
        if takes != a.encoder[1].out_channels:
            raise statedict.WrongFile(
                f"{name} takes {takes} channels but VAE_A gives {a.encoder[1].out_channels}: "
                "the three files are not one setting."
            )
        return cls(a.to(device), m.to(device), b.to(device), device, setting)

    @property
    def mask_aware(self) -> bool:
        return self.setting == "scratch"

    @property
    def modules(self) -> nn.ModuleList:
        return nn.ModuleList([self.a.encoder, self.mapping, self.b.decoder])

    def __call__(self, rgb: np.ndarray, scratches: np.ndarray | None = None) -> np.ndarray:
        """uint8 HxWx3 -> uint8 HxWx3, the same size. `scratches` (HxW, non-zero = scratch) is
        for the scratch setting: those pixels are rebuilt from the rest of the photo."""
        from . import oldscratch

        h, w = rgb.shape[:2]
        wh, ww = working_size(h, w, oldscratch.WORK_PIXELS if self.mask_aware else WORK_PIXELS)
        small = (
            rgb if (wh, ww) == (h, w) else cv2.resize(rgb, (ww, wh), interpolation=cv2.INTER_AREA)
        )
        hole = None
        if self.mask_aware:
            hole = np.zeros((wh, ww), bool)
            if scratches is not None:  # a scratch that shrinks to part of a pixel still counts
                m = (scratches > 0).astype(np.uint8) * 255
                if (wh, ww) != (h, w):
                    m = cv2.resize(m, (ww, wh), interpolation=cv2.INTER_AREA)
                hole = m > 0
            small = small.copy()
            small[hole] = 255  # the released setting paints the scratches white first
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(small)).to(self.device).float()
            x = x.permute(2, 0, 1)[None].div_(127.5).sub_(1.0)
            code = self.a.encoder(x)
            if hole is not None:
                mask = torch.from_numpy(hole).to(self.device, torch.float32)[None, None]
                code = self.mapping(code, mask)
            else:
                code = self.mapping(code)
            y = self.b.decoder(code)
            out = (
                y[0]
                .add(1.0)
                .mul_(127.5)
                .clamp_(0, 255)
                .round_()
                .byte()
                .permute(1, 2, 0)
                .cpu()
                .numpy()
            )
        if out.shape[:2] != (h, w):
            out = cv2.resize(out, (w, h), interpolation=cv2.INTER_CUBIC)
        return np.ascontiguousarray(out)
