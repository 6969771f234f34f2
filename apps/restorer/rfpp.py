"""RestoreFormer++ (Wang et al., TPAMI 2023): faces rebuilt from a high-quality codebook by
cross-attention between the degraded face's features and the decoder's.

spandrel knows RestoreFormer v1, not ++, so the layout is written here from the paper: a
VQGAN-style encoder (GroupNorm/SiLU residual blocks, six levels 512 -> 16, multi-head
self-attention at 16x16 and in the middle), the encoder code snapped to the nearest entry
of a 1024-entry codebook, and a decoder whose multi-head attention blocks (at 16x16 and,
the "multi-scale" ++ part, 32x32) take their *queries* from the encoder's features of that
resolution and keys and values from the decoder's own. Four heads, as the released
configuration says (the head count leaves no trace in the weights).

Names follow the released `RestoreFormer++.ckpt`, a Lightning checkpoint whose
`state_dict` holds the network under `vqvae.` next to the training losses' networks
(`loss.`, dropped here). Widths, levels, blocks and where attention sits are read from the
file's shapes, then the file is loaded with strict=True. Faces: RGB in [-1, 1], 512x512.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from . import statedict

HINT = "a RestoreFormer++ face model (RestoreFormer++.ckpt)"
HEADS = 4


def norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, c, eps=1e-6)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm2, self.conv2 = norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        if c_in != c_out:
            self.nin_shortcut = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x) + h


class Attention(nn.Module):
    """Multi-head attention over positions; queries from `query` (normed) when it is given."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = norm(c), norm(c)
        self.q, self.k, self.v = (nn.Conv2d(c, c, 1) for _ in range(3))
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor, query: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm1(x)
        src = h if query is None else self.norm2(query)
        n, c, hh, ww = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:  # (n, heads, positions, c / heads)
            return t.reshape(n, HEADS, c // HEADS, hh * ww).transpose(2, 3)

        out = F.scaled_dot_product_attention(heads(self.q(src)), heads(self.k(h)), heads(self.v(h)))
        out = out.transpose(2, 3).reshape(n, c, hh, ww)
        return x + self.proj_out(out)


class Level(nn.Module):
    """One resolution: residual blocks, attention after each where the level has it, resampling."""

    def __init__(self, c_in: int, c_out: int, blocks: int, attn: bool, resample: str | None):
        super().__init__()
        self.block = nn.ModuleList(
            ResBlock(c_in if i == 0 else c_out, c_out) for i in range(blocks)
        )
        self.attn = nn.ModuleList(Attention(c_out) for _ in range(blocks if attn else 0))
        if resample == "down":
            self.downsample = nn.Module()
            self.downsample.conv = nn.Conv2d(c_out, c_out, 3, stride=2)
        elif resample == "up":
            self.upsample = nn.Module()
            self.upsample.conv = nn.Conv2d(c_out, c_out, 3, padding=1)

    def blocks(self, h: torch.Tensor, query: torch.Tensor | None = None) -> torch.Tensor:
        for i, block in enumerate(self.block):
            h = block(h)
            if len(self.attn):
                h = self.attn[i](h, query)
        return h

    def resample(self, h: torch.Tensor) -> torch.Tensor:
        if hasattr(self, "downsample"):
            return self.downsample.conv(F.pad(h, (0, 1, 0, 1)))
        if hasattr(self, "upsample"):
            return self.upsample.conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return h


def _mid(c: int) -> nn.Module:
    mid = nn.Module()
    mid.block_1, mid.attn_1, mid.block_2 = ResBlock(c, c), Attention(c), ResBlock(c, c)
    return mid


class Encoder(nn.Module):
    def __init__(self, ch: int, mult: list[int], blocks: int, attn: set[int], z: int) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(3, ch, 3, padding=1)
        widths = [ch, *(ch * m for m in mult)]
        last = len(mult) - 1
        self.down = nn.ModuleList(
            Level(widths[i], widths[i + 1], blocks, i in attn, "down" if i < last else None)
            for i in range(len(mult))
        )
        self.mid = _mid(widths[-1])
        self.norm_out, self.conv_out = norm(widths[-1]), nn.Conv2d(widths[-1], z, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """(code, the features per level the decoder's attention asks with)."""
        h = self.conv_in(x)
        feats: dict[int, torch.Tensor] = {}
        for i, level in enumerate(self.down):
            h = level.blocks(h)
            if i < len(self.down) - 1:
                feats[i] = h
                h = level.resample(h)
        h = self.mid.block_1(h)
        feats[len(self.down) - 1] = h  # the deepest level asks with the middle's first block
        h = self.mid.attn_1(h)
        h = self.mid.block_2(h)
        feats[-1] = h  # the middle attention's query
        return self.conv_out(F.silu(self.norm_out(h))), feats


class Decoder(nn.Module):
    def __init__(self, ch: int, mult: list[int], blocks: int, attn: set[int], z: int) -> None:
        super().__init__()
        top = ch * mult[-1]
        self.conv_in = nn.Conv2d(z, top, 3, padding=1)
        self.mid = _mid(top)
        levels: list[Level] = []
        c_in = top
        for i in reversed(range(len(mult))):
            c_out = ch * mult[i]
            levels.insert(0, Level(c_in, c_out, blocks + 1, i in attn, "up" if i else None))
            c_in = c_out
        self.up = nn.ModuleList(levels)
        self.norm_out, self.conv_out = norm(c_in), nn.Conv2d(c_in, 3, 3, padding=1)

    def forward(self, z: torch.Tensor, feats: dict[int, torch.Tensor]) -> torch.Tensor:
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(self.conv_in(z)), feats[-1]))
        for i in reversed(range(len(self.up))):
            h = self.up[i].resample(self.up[i].blocks(h, feats.get(i)))
        return self.conv_out(F.silu(self.norm_out(h)))


class Codebook(nn.Module):
    def __init__(self, entries: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(entries, dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        n, c, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, c)
        book = self.embedding.weight
        dist = flat.pow(2).sum(1, keepdim=True) + book.pow(2).sum(1) - 2 * flat @ book.t()
        return book[dist.argmin(1)].view(n, h, w, c).permute(0, 3, 1, 2)


class RestoreFormerPP(nn.Module):
    """Degraded face (N, 3, 512, 512) in [-1, 1] -> restored face, same shape and range."""

    def __init__(
        self,
        ch: int = 64,
        mult: tuple[int, ...] = (1, 2, 2, 4, 4, 8),
        blocks: int = 2,
        enc_attn: tuple[int, ...] = (5,),
        dec_attn: tuple[int, ...] = (4, 5),
        z: int = 256,
        embed: int = 256,
        entries: int = 1024,
    ) -> None:
        super().__init__()
        self.encoder = Encoder(ch, list(mult), blocks, set(enc_attn), z)
        self.decoder = Decoder(ch, list(mult), blocks, set(dec_attn), z)
        self.quantize = Codebook(entries, embed)
        self.quant_conv = nn.Conv2d(z, embed, 1)
        self.post_quant_conv = nn.Conv2d(embed, z, 1)
        self.multiple = 2 ** (len(mult) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % self.multiple or x.shape[-1] % self.multiple:
            raise ValueError(f"RestoreFormer++ needs sides that are multiples of {self.multiple}")
        code, feats = self.encoder(x)
        quant = self.quantize(self.quant_conv(code))
        return self.decoder(self.post_quant_conv(quant), feats)


def network_part(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The `vqvae.` weights of a training checkpoint (its loss networks dropped), prefix removed."""
    if any(k.startswith("vqvae.") for k in state):
        return {k[len("vqvae.") :]: v for k, v in state.items() if k.startswith("vqvae.")}
    return state


def layout(state: dict[str, torch.Tensor], name: str) -> dict:
    """The constructor's arguments, as the file's shapes say."""
    ch = statedict.shape(state, "encoder.conv_in.weight", name, HINT)[0]
    levels = statedict.count(state, "encoder.down")
    if levels < 2:
        raise statedict.WrongFile(f"{name} is not {HINT}: its encoder has {levels} levels.")
    mult = tuple(
        statedict.shape(state, f"encoder.down.{i}.block.0.conv1.weight", name, HINT)[0] // ch
        for i in range(levels)
    )
    dec_attn = tuple(i for i in range(levels) if f"decoder.up.{i}.attn.0.q.weight" in state)
    if len(dec_attn) < 2:
        raise statedict.WrongFile(
            f"{name} is not {HINT}: its decoder attends at {len(dec_attn)} scale(s), not the two "
            "of ++; a RestoreFormer (v1) file loads through spandrel when named RestoreFormer.pth."
        )
    return {
        "ch": ch,
        "mult": mult,
        "blocks": statedict.count(state, "encoder.down.0.block"),
        "enc_attn": tuple(i for i in range(levels) if f"encoder.down.{i}.attn.0.q.weight" in state),
        "dec_attn": dec_attn,
        "z": statedict.shape(state, "encoder.conv_out.weight", name, HINT)[0],
        "embed": statedict.shape(state, "quant_conv.weight", name, HINT)[0],
        "entries": statedict.shape(state, "quantize.embedding.weight", name, HINT)[0],
    }


def build(state: dict[str, torch.Tensor], name: str = "the file") -> RestoreFormerPP:
    """A RestoreFormer++ holding exactly these weights; a sentence naming what differs otherwise."""
    state = network_part(state)
    net = RestoreFormerPP(**layout(state, name))
    return statedict.load_strict(net, state, name, HINT)


def load(path: Path) -> RestoreFormerPP:
    return build(statedict.read(path, HINT), Path(path).name)
