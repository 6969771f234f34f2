"""The face stage of "Bringing Old Photos Back to Life" (Wan et al., 2020): a SPADE generator
that redraws an aligned face, steered by the degraded face itself.

From the paper: the degraded face, shrunk to 1/32 of the working size, enters a 3x3 conv
to 16x the base width; seven residual blocks follow (two at the start size, then one per
doubling: 16, 16, 16 -> 8 -> 4 -> 2 -> 1 times the base) with nearest x2 upsampling between
them; each block normalises its input (batch statistics from training, no weights of its
own) and re-modulates it with a per-pixel scale and shift computed from the degraded face
(SPADE: a shared 3x3 conv of 128 filters + ReLU, then one 3x3 conv each for scale and
shift). The convs of the blocks are spectrally normalised; a leaky ReLU, a 3x3 conv and
tanh give the face. The released setting has no parsing map (`--no_parsing_map`).

Names follow the released `Face_Enhancement/checkpoints/Setting_9_epoch_100/latest_net_G.pth`
(spectral norm's `weight_orig`, `weight_u`, `weight_v` on each block conv); widths and the
working size (256 for that release, 512 for FaceSR_512) are read from the file.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from . import statedict

HINT = (
    "the old-photo face enhancer (Face_Enhancement/checkpoints/Setting_9_epoch_100/"
    "latest_net_G.pth)"
)
HIDDEN = 128
BLOCKS = ("head_0", "G_middle_0", "G_middle_1", "up_0", "up_1", "up_2", "up_3")
WIDTHS = (16, 16, 16, 8, 4, 2, 1)  # each block's output, times the base width


class SNConv(nn.Module):
    """A conv under spectral norm, as saved: its weight is weight_orig over the largest
    singular value, estimated from the stored vectors u and v (no iteration at inference)."""

    def __init__(self, c_in: int, c_out: int, k: int, bias: bool = True) -> None:
        super().__init__()
        self.weight_orig = nn.Parameter(torch.zeros(c_out, c_in, k, k))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        self.register_buffer("weight_u", torch.ones(c_out))
        self.register_buffer("weight_v", torch.ones(c_in * k * k))
        self.padding = k // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight_orig
        sigma = torch.dot(self.weight_u, w.reshape(w.shape[0], -1) @ self.weight_v)
        return F.conv2d(x, w / sigma, self.bias, padding=self.padding)


class FrozenNorm(nn.Module):
    """Batch normalisation with the training's statistics and no weights of its own."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.register_buffer("running_mean", torch.zeros(c))
        self.register_buffer("running_var", torch.ones(c))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, training=False, eps=1e-5)


class SPADE(nn.Module):
    def __init__(self, c: int, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.param_free_norm = FrozenNorm(c)
        self.mlp_shared = nn.Sequential(nn.Conv2d(3, hidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, c, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, c, 3, padding=1)

    def forward(self, x: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        guide = F.interpolate(face, size=x.shape[-2:], mode="bilinear")
        actv = self.mlp_shared(guide)
        return self.param_free_norm(x) * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, hidden: int = HIDDEN) -> None:
        super().__init__()
        mid = min(c_in, c_out)
        self.conv_0, self.conv_1 = SNConv(c_in, mid, 3), SNConv(mid, c_out, 3)
        self.norm_0, self.norm_1 = SPADE(c_in, hidden), SPADE(mid, hidden)
        if c_in != c_out:
            self.conv_s = SNConv(c_in, c_out, 1, bias=False)
            self.norm_s = SPADE(c_in, hidden)

    def forward(self, x: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        skip = self.conv_s(self.norm_s(x, face)) if hasattr(self, "conv_s") else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, face), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, face), 0.2))
        return skip + dx


class FaceEnhancer(nn.Module):
    """Degraded aligned face (N, 3, S, S) in [-1, 1] -> enhanced face, same shape and range."""

    def __init__(self, base: int = 64, size: int = 256, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.size = size
        self.fc = nn.Conv2d(3, 16 * base, 3, padding=1)
        c_in = 16 * base
        for name, mult in zip(BLOCKS, WIDTHS, strict=True):
            setattr(self, name, Block(c_in, mult * base, hidden))
            c_in = mult * base
        self.conv_img = nn.Conv2d(base, 3, 3, padding=1)

    def forward(self, face: torch.Tensor) -> torch.Tensor:
        start = face.shape[-1] // 32
        x = self.fc(F.interpolate(face, size=(start, start), mode="bilinear"))
        for i, name in enumerate(BLOCKS):
            if i in (1, 3, 4, 5, 6):  # x2 before G_middle_0 and before each up block
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = getattr(self, name)(x, face)
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))


def build(state: dict[str, torch.Tensor], name: str = "the file", size: int = 256) -> FaceEnhancer:
    """A FaceEnhancer holding exactly these weights; a sentence naming what differs otherwise."""
    base = statedict.shape(state, "conv_img.weight", name, HINT)[1]
    hidden = statedict.shape(state, "head_0.norm_0.mlp_shared.0.weight", name, HINT)[0]
    net = FaceEnhancer(base, size, hidden)
    return statedict.load_strict(net, state, name, HINT)


def working_size(path: Path) -> int:
    """256 for the released Setting_9_epoch_100, 512 for FaceSR_512 (named by its folder)."""
    return 512 if "512" in path.parent.name else 256


def load(path: Path) -> FaceEnhancer:
    return build(statedict.read(path, HINT), Path(path).name, working_size(Path(path)))
