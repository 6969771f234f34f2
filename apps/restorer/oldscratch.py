"""The mask-aware mapping of BOPBTL's global restoration "with scratches".

"Bringing Old Photos Back to Life" (Wan et al., CVPR 2020; TPAMI 2022) restores photos with
structured damage by giving the latent mapping the scratch mask: a partial non-local block
between the mapping's widening convs and its residual blocks lets each latent position that
a scratch touched be rebuilt as a weighted mix of the positions no scratch touched, found by
their similarity; untouched positions pass through unchanged. The released setting
(`Global/test.py --Scratch_and_Quality_restore`, without --HR) is:

- VAE_A_quality (the same encoder as the quality setting), VAE_B_scratch (a decoder trained
  with scratches), mapping_scratch; the VAEs have the quality setting's layout (oldphoto.VAE).
- The photo's scratch pixels are painted white before the encoder; the mask (1 = scratch,
  one channel, the photo's size, no dilation) goes to the mapping.
- The mapping: `before_NL` widens 64 -> 128 -> 256 -> 512 -> 512 (3x3 conv, IN, ReLU each);
  `NL` is the block below at 512 channels; `after_NL` holds six residual blocks, three
  narrowing convs (512 -> 512 -> 256 -> 128, IN, ReLU) and a 3x3 conv to 64.
- The block: 1x1 convs `theta`, `phi`, `g` (512 -> 512); the mask shrunk to the latent size
  twice (bilinear: anything above 0 is a scratch; nearest) and a position kept only when
  neither marks it; attention = softmax over all positions of theta(x)_p . phi(x)_q, then
  multiplied by the kept mask over q and renormalised to sum 1 (correlation renormalisation,
  temperature 1, no self term); y = attention . g(x); the fill is `res_block` (three
  residual blocks) of `W`(y) (1x1 conv); the output is x where kept, the fill elsewhere.
  Here that attention is computed as a softmax over the kept positions only: the same numbers,
  without the underflow of renormalising a softmax whose mass sits on scratched positions
  (zero when no position is kept, as the released renormalisation gives).

Module names follow mapping_scratch/latest_net_mapping_net.pth (`before_NL.*`, `NL.*`,
`after_NL.*`), so it loads with strict=True; widths are read from its shapes. Attention over
every latent position is quadratic in the photo's size: it is computed a band of query rows
at a time (exactly, bounded memory), and the photo is worked on at up to WORK_PIXELS.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import statedict
from .oldphoto import ResBlock, _norm_relu

HINT = "the old-photo mapping network with scratches (mapping_scratch/latest_net_mapping_net.pth)"
WORK_PIXELS = 1_000_000  # 62,500 latent positions: attention of 3.9 G pairs, in bands
BAND_VALUES = 1 << 25  # attention values held at once (128 MB in fp32)


def kept_positions(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 1, h, w): 1 where no scratch reaches a latent position, from a (B, 1, H, W) 0/1 mask.

    A position counts as scratched when the bilinear shrink of the mask is above zero there,
    or the nearest-pixel shrink is a scratch: the released setting's two tests."""
    touched = F.interpolate(mask, size, mode="bilinear") > 0
    hit = F.interpolate(mask, size, mode="nearest") > 0.5
    return (~(touched | hit)).to(mask.dtype)


class ContextFill(nn.Module):
    """Rebuild scratched latent positions from the kept ones (a partial non-local block)."""

    def __init__(self, width: int, inner: int) -> None:
        super().__init__()
        self.g = nn.Conv2d(width, inner, 1)
        self.W = nn.Conv2d(inner, width, 1)
        self.theta = nn.Conv2d(width, inner, 1)
        self.phi = nn.Conv2d(width, inner, 1)
        self.res_block = nn.Sequential(*(ResBlock(width) for _ in range(3)))

    def attend(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """y: each position's mix of g(x) over the kept positions, by query/key similarity."""
        b, _, h, w = x.shape
        n = h * w
        query = self.theta(x).flatten(2).transpose(1, 2)  # B, n, inner
        key = self.phi(x).flatten(2)  # B, inner, n
        value = self.g(x).flatten(2).transpose(1, 2)  # B, n, inner
        scratched = keep.flatten(2) == 0  # B, 1, n
        any_kept = (~scratched).any(-1, keepdim=True)  # B, 1, 1
        y = torch.empty_like(value)
        band = max(1, BAND_VALUES // max(1, n * b))
        for start in range(0, n, band):
            stop = min(n, start + band)
            logits = torch.bmm(query[:, start:stop], key).masked_fill(scratched, float("-inf"))
            weights = torch.softmax(logits, dim=-1).where(any_kept, 0.0)
            y[:, start:stop] = torch.bmm(weights, value)
        return y.transpose(1, 2).reshape(b, -1, h, w)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = kept_positions(mask, (x.shape[2], x.shape[3]))
        fill = self.res_block(self.W(self.attend(x, keep)))
        return keep * x + (1 - keep) * fill


class MaskedMapping(nn.Module):
    """Latent A -> latent B with the scratch mask: widen, fill from context, residual blocks, narrow."""

    mask_aware = True

    def __init__(self, down: list[int], inner: int, blocks: int, up: list[int], out: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out in zip(down, down[1:], strict=False):
            layers += [nn.Conv2d(c_in, c_out, 3, 1, 1), *_norm_relu(c_out)]
        self.before_NL = nn.Sequential(*layers)
        self.NL = ContextFill(down[-1], inner)
        layers = [ResBlock(down[-1]) for _ in range(blocks)]
        for c_in, c_out in zip(up, up[1:], strict=False):
            layers += [nn.Conv2d(c_in, c_out, 3, 1, 1), *_norm_relu(c_out)]
        layers.append(nn.Conv2d(up[-1], out, 3, 1, 1))
        self.after_NL = nn.Sequential(*layers)

    @property
    def in_channels(self) -> int:
        return self.before_NL[0].in_channels

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.after_NL(self.NL(self.before_NL(x), mask))


def build(state: dict[str, torch.Tensor], name: str) -> MaskedMapping:
    """Widths from the shapes: before_NL.0/3/6/9 widen, NL's inner width, after_NL's blocks."""
    down = [statedict.shape(state, "before_NL.0.weight", name, HINT)[1]]
    for i in (0, 3, 6, 9):
        down.append(statedict.shape(state, f"before_NL.{i}.weight", name, HINT)[0])
    inner = statedict.shape(state, "NL.theta.weight", name, HINT)[0]
    blocks = 0
    while f"after_NL.{blocks}.conv_block.1.weight" in state:
        blocks += 1
    up = [down[-1]]
    for i in range(3):
        up.append(statedict.shape(state, f"after_NL.{blocks + 3 * i}.weight", name, HINT)[0])
    out = statedict.shape(state, f"after_NL.{blocks + 9}.weight", name, HINT)[0]
    return statedict.load_strict(MaskedMapping(down, inner, blocks, up, out), state, name, HINT)
