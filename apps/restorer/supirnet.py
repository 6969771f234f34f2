"""SUPIR's networks on diffusers' SDXL building blocks, loaded strictly from the released file.

Written from the paper (Yu et al., 2024, "Scaling Up to Excellence") and the released
checkpoint's names and shapes (supir.py checks them):

- **GLVControl** (`control_model.*`): a copy of SDXL's UNet encoder (time and size
  embeddings, conv_in, down blocks, middle block; no decoder) whose first conv's output gets
  the degraded image's latent through `input_hint_block.0` (one 3x3 conv) added. It reads the
  noisy latent and returns one feature map per encoder output, ten in all.
- **Connectors** (`model.diffusion_model.project_modules.*`): in SDXL's decoder, before each
  resnet, a ZeroSFT takes the skip features, adds a zero-conv of the control features,
  concatenates them after the decoder's features, and modulates the GroupNorm-ed result with
  a scale and shift computed from the control features; at the middle block a ZeroSFT
  without concatenation; before each upsampler a ZeroCrossAttn lets the decoder's features
  attend to the control features. diffusers' UNet concatenates skips inside its up blocks, so
  `unet_forward` walks diffusers' blocks itself and calls the connectors in between.
- **Degradation-robust encoder** (`first_stage_model.denoise_encoder.*`): a second SDXL VAE
  encoder trained on degraded photos; it takes the place of the VAE's encoder when the
  low-quality photo is encoded (the VAE's quant_conv follows as usual).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import irnet, supir

HIDDEN = 128  # the ZeroSFT's shared hidden width
CONTROL = "control_model."
CONNECT = "model.diffusion_model.project_modules."
DENOISE = "first_stage_model.denoise_encoder."


class ZeroSFT(nn.Module):
    """Skip features shifted by the control features, concatenated after the decoder's, then
    normalised and modulated (scale, shift) by a small conv net over the control features."""

    def __init__(self, label: int, norm: int, concat: int) -> None:
        super().__init__()
        width = norm + concat
        self.param_free_norm = nn.GroupNorm(32, width)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label, HIDDEN, 3, padding=1), nn.SiLU())
        self.zero_mul = nn.Conv2d(HIDDEN, width, 3, padding=1)
        self.zero_add = nn.Conv2d(HIDDEN, width, 3, padding=1)
        self.zero_conv = nn.Conv2d(label, norm, 1)

    def forward(self, c, h, h_dec=None, scale: float = 1.0):
        raw = h if h_dec is None else torch.cat([h_dec, h], dim=1)
        h = h + self.zero_conv(c)
        if h_dec is not None:
            h = torch.cat([h_dec, h], dim=1)
        act = self.mlp_shared(c)
        h = self.param_free_norm(h) * (1 + self.zero_mul(act)) + self.zero_add(act)
        return raw + scale * (h - raw)


class ZeroCrossAttn(nn.Module):
    """The decoder's features attend to the control features (both GroupNorm-ed); added back."""

    def __init__(self, context: int, query: int) -> None:
        from diffusers.models.attention_processor import Attention

        super().__init__()
        heads = max(1, query // 64)
        self.norm1 = nn.GroupNorm(32, query)
        self.norm2 = nn.GroupNorm(32, context)
        self.attn = Attention(
            query, cross_attention_dim=context, heads=heads, dim_head=query // heads, bias=False
        )

    def forward(self, c, h, scale: float = 1.0):
        b, ch, y, x = h.shape
        q = self.norm1(h).flatten(2).transpose(1, 2)
        k = self.norm2(c).flatten(2).transpose(1, 2)
        out = self.attn(q, encoder_hidden_states=k).transpose(1, 2).reshape(b, ch, y, x)
        return h + scale * out


def build_connectors(channels: int) -> nn.ModuleList:
    """The twelve connectors for an XL-shaped UNet of these model channels, in file order."""
    want = supir.expected_connectors(channels=channels)
    mods: list[nn.Module] = []
    for n in range(12):
        if f"{n}.attn.to_q.weight" in want:
            q, c = want[f"{n}.attn.to_k.weight"]
            mods.append(ZeroCrossAttn(c, q))
        else:
            label = want[f"{n}.mlp_shared.0.weight"][1]
            norm = want[f"{n}.zero_conv.weight"][0]
            mods.append(ZeroSFT(label, norm, want[f"{n}.param_free_norm.weight"][0] - norm))
    return nn.ModuleList(mods)


# -- GLVControl ------------------------------------------------------------------------------


def build_control(unet: Any) -> Any:
    """An empty GLVControl for `unet`: its encoder (built on the meta device, so no weights are
    allocated until the file's are assigned) and the hint conv."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        net = UNet2DConditionModel.from_config(unet.config)
        net.up_blocks = nn.ModuleList()
        net.conv_norm_out = net.conv_act = net.conv_out = None
        width = int(unet.config.block_out_channels[0])
        net.input_hint_block = nn.Conv2d(int(unet.config.in_channels), width, 3, padding=1)
    return net


def control_key(key: str, layers: int, blocks: int) -> str | None:
    """The diffusers name of one GLVControl entry (latent-diffusion names), or None."""
    if m := re.fullmatch(r"label_emb\.0\.([02])\.(weight|bias)", key):
        return f"add_embedding.linear_{1 if m[1] == '0' else 2}.{m[2]}"
    if m := re.fullmatch(r"input_hint_block\.0\.(weight|bias)", key):
        return f"input_hint_block.{m[1]}"
    if m := re.fullmatch(r"input_blocks\.0\.0\.(weight|bias)", key):
        return f"conv_in.{m[1]}"
    if key.startswith(("zero_convs.", "middle_block_out.")):
        return None  # a ControlNet's, not GLVControl's
    return irnet.diffusers_key(key, layers, blocks)


def control_forward(net: Any, x, hint, t, context, added: dict[str, Any]) -> list[Any]:
    """The control features: conv_in(x) + hint conv(LQ latent), then the encoder's outputs."""
    emb = _embed(net, x, t, context, added)
    h, feats = _encode(net, net.conv_in(x) + net.input_hint_block(hint), emb, context)
    feats.append(net.mid_block(h, emb, encoder_hidden_states=context))
    return feats


# -- the UNet with its connectors --------------------------------------------------------------


def _encode(net: Any, h, emb, context) -> tuple[Any, list[Any]]:
    """The down blocks of a UNet (or of GLVControl, its copy) from the first conv's output `h`:
    the last block's output and every output on the way (h first), as the skips/features."""
    outs = [h]
    for block in net.down_blocks:
        if getattr(block, "has_cross_attention", False):
            h, res = block(h, temb=emb, encoder_hidden_states=context)
        else:
            h, res = block(h, temb=emb)
        outs.extend(res)
    return h, outs


def _embed(net: Any, x, t, context, added: dict[str, Any]):
    emb = net.time_embedding(net.get_time_embed(sample=x, timestep=t))
    aug = net.get_aug_embed(emb=emb, encoder_hidden_states=context, added_cond_kwargs=added)
    return emb if aug is None else emb + aug


def unet_forward(unet: Any, connectors, x, t, context, added, control: list, scale: float = 1.0):
    """SDXL's noise prediction with the control features fused into its decoder.

    The connectors are used from the last to the first: the middle block's, then for each
    decoder resnet (skips popped in reverse) a ZeroSFT, and before each upsampler a
    ZeroCrossAttn with the same control features as the resnet before it.
    """
    emb = _embed(unet, x, t, context, added)
    h, skips = _encode(unet, unet.conv_in(x), emb, context)
    h = unet.mid_block(h, emb, encoder_hidden_states=context)
    a, c = len(connectors) - 1, len(control) - 1
    h = connectors[a](control[c], h, scale=scale)
    a, c = a - 1, c - 1
    for block in unet.up_blocks:
        attentions = getattr(block, "attentions", None)
        for k, resnet in enumerate(block.resnets):
            h = connectors[a](control[c], skips.pop(), h, scale=scale)
            a -= 1
            h = resnet(h, emb)
            if attentions is not None:
                h = attentions[k](h, encoder_hidden_states=context, return_dict=False)[0]
            if k == len(block.resnets) - 1 and block.upsamplers:
                h = connectors[a](control[c], h, scale=scale)
                a -= 1
                for up in block.upsamplers:
                    h = up(h)
            c -= 1
    h = unet.conv_out(unet.conv_act(unet.conv_norm_out(h)))
    return h


# -- the degradation-robust encoder ------------------------------------------------------------

_VAE_RES = {"nin_shortcut": "conv_shortcut"}


def denoise_key(key: str) -> str | None:
    """The diffusers Encoder name of one latent-diffusion VAE encoder entry, or None."""
    if m := re.fullmatch(r"down\.(\d+)\.block\.(\d+)\.(\w+)\.(weight|bias)", key):
        return f"down_blocks.{m[1]}.resnets.{m[2]}.{_VAE_RES.get(m[3], m[3])}.{m[4]}"
    if m := re.fullmatch(r"down\.(\d+)\.downsample\.conv\.(weight|bias)", key):
        return f"down_blocks.{m[1]}.downsamplers.0.conv.{m[2]}"
    if m := re.fullmatch(r"mid\.block_([12])\.(\w+)\.(weight|bias)", key):
        return f"mid_block.resnets.{int(m[1]) - 1}.{_VAE_RES.get(m[2], m[2])}.{m[3]}"
    if m := re.fullmatch(r"mid\.attn_1\.(norm|q|k|v|proj_out)\.(weight|bias)", key):
        part = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v"}.get(m[1], "to_out.0")
        return f"mid_block.attentions.0.{part}.{m[2]}"
    if m := re.fullmatch(r"(conv_in|conv_out)\.(weight|bias)", key):
        return key
    if m := re.fullmatch(r"norm_out\.(weight|bias)", key):
        return f"conv_norm_out.{m[1]}"
    return None


# -- strict loading ------------------------------------------------------------------------------


def _shape(t: Any) -> list[int]:
    return list(getattr(t, "shape", []))


def _place(part: str, state: dict[str, Any], rename, module: nn.Module) -> dict[str, Any]:
    """Rename one part's entries for `module`; every entry must land and fill every place."""
    expected = {k: _shape(v) for k, v in module.state_dict().items()}
    out: dict[str, Any] = {}
    unplaced = []
    for key, value in state.items():
        new = rename(key)
        if new is None or new not in expected:
            unplaced.append(key)
            continue
        if len(expected[new]) == 2 and value.ndim == 4:  # a 1x1 conv where diffusers has a linear
            value = value[:, :, 0, 0]
        out[new] = value
    if unplaced:
        raise supir.NotSUPIR(
            f"{len(unplaced)} weights of its {part} have no place in SDXL's "
            f"(first: {', '.join(unplaced[:3])})"
        )
    missing = [k for k in expected if k not in out]
    if missing:
        raise supir.NotSUPIR(
            f"{len(missing)} weights of its {part} are missing (first: {', '.join(missing[:3])}); "
            "it was made for another base model than this SDXL"
        )
    wrong = [k for k, v in out.items() if _shape(v) != expected[k]]
    if wrong:
        k = wrong[0]
        raise supir.NotSUPIR(
            f"{len(wrong)} weights of its {part} have other shapes than this SDXL's "
            f"({k}: {_shape(out[k])}, expected {expected[k]}); it was made for another base model"
        )
    return out


def load_parts(path: Path, unet: Any, vae: Any) -> tuple[Any, nn.ModuleList, Any]:
    """(GLVControl, connectors, degradation-robust encoder) from a SUPIR .safetensors, for this
    SDXL UNet and VAE; NotSUPIR with a sentence (starting with the file's name) otherwise."""
    from safetensors.torch import load_file

    channels = int(unet.config.block_out_channels[0])
    try:
        supir.inspect(path, channels)
        state = load_file(str(path))
        layers = int(unet.config.layers_per_block)
        blocks = len(unet.config.block_out_channels)
        parts = {CONTROL: {}, CONNECT: {}, DENOISE: {}}
        other = []
        for key, value in state.items():
            head = next((p for p in parts if p in key), None)
            if head is None:
                other.append(key)
            else:
                parts[head][key.split(head, 1)[1]] = value
        if other:
            raise supir.NotSUPIR(
                f"it holds {len(other)} entries besides SUPIR's three parts (first: "
                f"{', '.join(other[:2])}); use the pruned release, SUPIR-v0Q_fp16.safetensors"
            )
        control = build_control(unet)
        cstate = _place(
            "GLVControl", parts[CONTROL], lambda k: control_key(k, layers, blocks), control
        )
        control.load_state_dict(cstate, strict=True, assign=True)
        connectors = build_connectors(channels)
        connectors.load_state_dict(
            _place("connectors", parts[CONNECT], lambda k: k, connectors), strict=True
        )
        encoder = copy.deepcopy(vae.encoder)
        encoder.load_state_dict(
            _place("degradation-robust encoder", parts[DENOISE], denoise_key, encoder),
            strict=True,
        )
    except supir.NotSUPIR as exc:
        text = str(exc)
        if not text.startswith(path.name):
            text = f"{path.name}: {text.rstrip('.')}."
        raise supir.NotSUPIR(text) from None
    return control.float().eval(), connectors.float().eval(), encoder.float().eval()
