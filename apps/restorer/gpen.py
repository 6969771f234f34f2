"""GPEN, "GAN Prior Embedded Network for Blind Face Restoration in the Wild" (Yang et al., 2021).

spandrel does not know it, so its layout is written here from the paper: a StyleGAN2
generator (mapping MLP, a learned 4x4 constant, modulated 3x3 convs with upsampling, one
RGB output per resolution) whose noise inputs are replaced by the feature maps of a plain
convolutional encoder of the degraded face. The encoder is one 1x1 conv at full size, then
stride-2 blurred 3x3 convs down to 4x4; its last map, flattened, is the latent code. Each
generator conv *concatenates* the encoder map of its resolution (instead of adding noise),
so every modulated conv after the first sees twice the channels.

Module and parameter names follow the released `GPEN-BFR-512.pth` (a bare state dict:
`ecd0..ecd8`, `final_linear.0`, `generator.{style,input,conv1,to_rgb1,convs,to_rgbs}`), so
that file loads with strict=True; every width is read from the file's shapes, so the 256,
1024 and 2048 releases build the same way. Faces go in and come out as RGB in [-1, 1] at
the model's own size (512 for the BFR-512 release).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from . import statedict

HINT = "a GPEN face model (GPEN-BFR-512.pth or another GPEN-BFR size)"
BLUR = (1.0, 3.0, 3.0, 1.0)
SQRT2 = math.sqrt(2.0)


def _kernel(scale: float = 1.0) -> torch.Tensor:
    k = torch.tensor(BLUR)
    k2 = k[:, None] * k[None, :]
    return k2 / k2.sum() * scale


def upfirdn(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, pad: tuple[int, int] = (0, 0)):
    """Zero-stuff by `up`, pad both axes by (before, after), filter with `kernel` per channel."""
    n, c, h, w = x.shape
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, (0, up - 1, 0, 0, 0, up - 1)).reshape(n, c, h * up, w * up)
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    k = torch.flip(kernel, (0, 1)).to(x.dtype)
    return F.conv2d(x, k[None, None].expand(c, 1, *k.shape), groups=c)


def lrelu(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU on x + bias, scaled by sqrt 2 (StyleGAN2's fused activation)."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return F.leaky_relu(x + bias.view(shape), 0.2) * SQRT2


class Blur(nn.Module):
    def __init__(self, pad: tuple[int, int], scale: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("kernel", _kernel(scale))
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn(x, self.kernel, 1, self.pad)


class Upsample(nn.Module):
    """x2 by zero-stuffing and the blur kernel (the RGB skip path)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("kernel", _kernel(4.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn(x, self.kernel, 2, (2, 1))


class Activate(nn.Module):
    """The fused leaky ReLU's bias (key `bias`)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lrelu(x, self.bias)


class EqualLinear(nn.Module):
    """A linear layer with the equalised learning rate: weights scaled at run time."""

    def __init__(self, c_in: int, c_out: int, lr_mul: float = 1.0, act: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(c_out, c_in))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.scale, self.lr_mul, self.act = lr_mul / math.sqrt(c_in), lr_mul, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.act:
            return lrelu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class EqualConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int, padding: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(c_out, c_in, k, k))
        self.scale, self.stride, self.padding = 1 / math.sqrt(c_in * k * k), stride, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, None, self.stride, self.padding)


def conv_layer(c_in: int, c_out: int, k: int, down: bool) -> nn.Sequential:
    """Encoder step: [blur,] conv (stride 2 when down), biased leaky ReLU."""
    if down:
        return nn.Sequential(Blur((2, 2)), EqualConv(c_in, c_out, k, 2, 0), Activate(c_out))
    return nn.Sequential(EqualConv(c_in, c_out, k, 1, k // 2), Activate(c_out))


class ModConv(nn.Module):
    """A conv whose weights are scaled per input channel by the style (and demodulated)."""

    def __init__(
        self, c_in: int, c_out: int, k: int, style: int, demod: bool = True, up: bool = False
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, c_out, c_in, k, k))
        self.modulation = EqualLinear(style, c_in)
        self.scale, self.demod, self.up, self.k = 1 / math.sqrt(c_in * k * k), demod, up, k
        if up:
            self.blur = Blur((1, 1), 4.0)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        n, c, h, wd = x.shape
        weight = self.scale * self.weight * self.modulation(w).view(n, 1, c, 1, 1)
        if self.demod:
            weight = weight * torch.rsqrt(weight.pow(2).sum((2, 3, 4)) + 1e-8).view(n, -1, 1, 1, 1)
        c_out = weight.shape[1]
        x = x.reshape(1, n * c, h, wd)
        if self.up:
            weight = weight.transpose(1, 2).reshape(n * c, c_out, self.k, self.k)
            out = F.conv_transpose2d(x, weight, stride=2, groups=n)
            return self.blur(out.view(n, c_out, *out.shape[-2:]))
        out = F.conv2d(
            x, weight.reshape(n * c_out, c, self.k, self.k), padding=self.k // 2, groups=n
        )
        return out.view(n, c_out, *out.shape[-2:])


class Concat(nn.Module):
    """Where StyleGAN2 adds noise, GPEN concatenates the encoder's map (scaled by `weight`)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        return torch.cat((x, self.weight * feature), 1)


class StyledConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, style: int, up: bool = False) -> None:
        super().__init__()
        self.conv = ModConv(c_in, c_out, 3, style, up=up)
        self.noise = Concat()
        self.activate = Activate(c_out * 2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, feature: torch.Tensor) -> torch.Tensor:
        return self.activate(self.noise(self.conv(x, w), feature))


class ToRGB(nn.Module):
    def __init__(self, c_in: int, style: int, up: bool = True) -> None:
        super().__init__()
        if up:
            self.upsample = Upsample()
        self.conv = ModConv(c_in, 3, 1, style, demod=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None = None):
        out = self.conv(x, w) + self.bias
        return out if skip is None else out + self.upsample(skip)


class Constant(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.zeros(1, channels, 4, 4))


class Generator(nn.Module):
    """StyleGAN2's synthesis network with concatenated encoder features (keys `generator.*`)."""

    def __init__(self, widths: dict[int, int], style: int, n_mlp: int) -> None:
        super().__init__()
        self.style = nn.Sequential(
            nn.Identity(), *[EqualLinear(style, style, 0.01, act=True) for _ in range(n_mlp)]
        )
        self.input = Constant(widths[4])
        self.conv1 = StyledConv(widths[4], widths[4], style)
        self.to_rgb1 = ToRGB(widths[4] * 2, style, up=False)
        self.convs, self.to_rgbs = nn.ModuleList(), nn.ModuleList()
        sizes = sorted(widths)
        for prev, size in zip(sizes, sizes[1:], strict=False):
            self.convs.append(StyledConv(widths[prev] * 2, widths[size], style, up=True))
            self.convs.append(StyledConv(widths[size] * 2, widths[size], style))
            self.to_rgbs.append(ToRGB(widths[size] * 2, style))

    def forward(self, z: torch.Tensor, features: list[torch.Tensor]) -> torch.Tensor:
        """z: the encoder's code; features: the encoder maps from 4x4 up to full size."""
        w = self.style[1:](z * torch.rsqrt(z.pow(2).mean(1, keepdim=True) + 1e-8))
        x = self.conv1(self.input.input.expand(z.shape[0], -1, -1, -1), w, features[0])
        skip = self.to_rgb1(x, w)
        for i, to_rgb in enumerate(self.to_rgbs):
            x = self.convs[2 * i](x, w, features[i + 1])
            x = self.convs[2 * i + 1](x, w, features[i + 1])
            skip = to_rgb(x, w, skip)
        return skip


class GPEN(nn.Module):
    """Degraded face (N, 3, S, S) in [-1, 1] -> restored face (N, 3, S, S) in [-1, 1]."""

    def __init__(self, widths: dict[int, int], style: int = 512, n_mlp: int = 8) -> None:
        super().__init__()
        self.size = max(widths)
        sizes = sorted(widths, reverse=True)
        self.ecd0 = nn.Sequential(conv_layer(3, widths[self.size], 1, down=False))
        for i, (big, small) in enumerate(zip(sizes, sizes[1:], strict=False), start=1):
            setattr(self, f"ecd{i}", nn.Sequential(conv_layer(widths[big], widths[small], 3, True)))
        self.levels = len(sizes)
        self.final_linear = nn.Sequential(EqualLinear(widths[4] * 16, style, act=True))
        self.generator = Generator(widths, style, n_mlp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.size, self.size):
            raise ValueError(f"GPEN takes {self.size}x{self.size} faces, not {tuple(x.shape[-2:])}")
        maps = []
        for i in range(self.levels):
            x = getattr(self, f"ecd{i}")(x)
            maps.append(x)
        z = self.final_linear(x.flatten(1))
        return self.generator(z, maps[::-1])


def widths_of(state: dict[str, torch.Tensor], name: str) -> tuple[dict[int, int], int, int]:
    """(channels per resolution, style size, mapping depth) as the file's shapes say."""
    levels = 1
    while f"ecd{levels}.0.1.weight" in state:
        levels += 1
    size = 2 ** (levels + 1)
    widths = {size: statedict.shape(state, "ecd0.0.0.weight", name, HINT)[0]}
    for i in range(1, levels):
        widths[size >> i] = statedict.shape(state, f"ecd{i}.0.1.weight", name, HINT)[0]
    style = statedict.shape(state, "final_linear.0.weight", name, HINT)[0]
    n_mlp = 0
    while f"generator.style.{n_mlp + 1}.weight" in state:
        n_mlp += 1
    if levels < 2 or n_mlp < 1:
        raise statedict.WrongFile(
            f"{name} is not {HINT}: it has {levels} encoder levels and {max(0, n_mlp)} mapping layers."
        )
    return widths, style, n_mlp


def build(state: dict[str, torch.Tensor], name: str = "the file") -> GPEN:
    """A GPEN holding exactly these weights; a sentence naming what differs otherwise."""
    widths, style, n_mlp = widths_of(state, name)
    net = GPEN(widths, style, n_mlp)
    fixed = [k for k in net.state_dict() if k.endswith("kernel")]
    return statedict.load_strict(net, state, name, HINT, fixed)


def load(path: Path) -> GPEN:
    return build(statedict.read(path, HINT), Path(path).name)
