"""DiffBIR's IRControlNet on diffusers' ControlNetModel, loaded strictly from the released file.

The IRControlNet (DiffBIR v2, `lxq007/DiffBIR-v2/v2.pth`) is a copy of the SD 2.1 UNet's
encoder (time embedding, input blocks, middle block) with a 1x1 zero-conv after every input
block and after the middle block, saved with the original latent-diffusion names:
`time_embed.{0,2}`, `input_blocks.N.M.*`, `zero_convs.N.0`, `middle_block.{0,1,2}.*`,
`middle_block_out.0`. Unlike the ControlNets of the ControlNet paper it has no
`input_hint_block`: its condition is the VAE latent of the stage-1 cleaned image,
concatenated to the noisy latent before the first conv, so `input_blocks.0.0.weight` has
4 + 4 input channels.

A conv over a concatenation is the sum of two convs over its parts, so the first conv splits
into diffusers' `conv_in` (the noisy-latent half, with the bias) and a plain 3x3 conv over
the condition latent that takes the place of diffusers' `controlnet_cond_embedding` (which
ControlNetModel adds to `conv_in`'s output). Everything else maps name for name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

HINT_CHANNELS = 4  # the condition is a 4-channel SD latent


class NotIRControlNet(ValueError):
    """The file is not a DiffBIR IRControlNet of the UNet it is paired with; the text says why."""


_RES = {
    "in_layers.0": "norm1",
    "in_layers.2": "conv1",
    "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2",
    "out_layers.3": "conv2",
    "skip_connection": "conv_shortcut",
}


def _resnet(rest: str) -> str | None:
    for old, new in _RES.items():
        if rest.startswith(old + "."):
            return new + rest[len(old) :]
    return None


def diffusers_key(key: str, layers_per_block: int, n_blocks: int) -> str | None:
    """The diffusers ControlNetModel name of one IRControlNet entry, or None if it has none.

    Input block 0 is the first conv; then each of the `n_blocks` down blocks has
    `layers_per_block` blocks of (ResBlock, SpatialTransformer) and, except the last, a
    downsampler; the zero-convs follow the same numbering.
    """
    if m := re.fullmatch(r"time_embed\.([02])\.(weight|bias)", key):
        return f"time_embedding.linear_{1 if m[1] == '0' else 2}.{m[2]}"
    if m := re.fullmatch(r"zero_convs\.(\d+)\.0\.(weight|bias)", key):
        return f"controlnet_down_blocks.{m[1]}.{m[2]}"
    if m := re.fullmatch(r"middle_block_out\.0\.(weight|bias)", key):
        return f"controlnet_mid_block.{m[1]}"
    if m := re.fullmatch(r"middle_block\.([012])\.(.+)", key):
        if m[1] == "1":
            return f"mid_block.attentions.0.{m[2]}"
        rest = _resnet(m[2])
        return f"mid_block.resnets.{int(m[1]) // 2}.{rest}" if rest else None
    if m := re.fullmatch(r"input_blocks\.(\d+)\.([01])\.(.+)", key):
        n, part, rest = int(m[1]), m[2], m[3]
        if n == 0:
            return None  # the split first conv: see split_first_conv
        block, slot = divmod(n - 1, layers_per_block + 1)
        if block >= n_blocks:
            return None
        if slot == layers_per_block:  # the downsampler
            if part == "0" and (d := re.fullmatch(r"op\.(weight|bias)", rest)):
                return f"down_blocks.{block}.downsamplers.0.conv.{d[1]}"
            return None
        if part == "1":
            return f"down_blocks.{block}.attentions.{slot}.{rest}"
        res = _resnet(rest)
        return f"down_blocks.{block}.resnets.{slot}.{res}" if res else None
    return None


def _shape(t: Any) -> list[int]:
    return list(getattr(t, "shape", []))


def to_diffusers(state: dict[str, Any], model: Any) -> dict[str, Any]:
    """Rename and split a released IRControlNet state dict for `model`; every entry must land.

    `model` is the ControlNetModel built by `build` (its config fixes the numbering). Raises
    NotIRControlNet, saying what is off, when an entry has no place, a place has no entry, or
    a shape differs.
    """
    cfg = model.config
    layers, blocks = int(cfg.layers_per_block), len(cfg.block_out_channels)
    expected = {k: _shape(v) for k, v in model.state_dict().items()}
    first = state.get("input_blocks.0.0.weight")
    if first is None or len(_shape(first)) != 4:
        keys = ", ".join(list(state)[:3]) or "nothing"
        raise NotIRControlNet(
            f"it holds {keys} ... but no 'input_blocks.0.0.weight', so it is not a DiffBIR "
            "IRControlNet (v2.pth)"
        )
    in_ch = int(cfg.in_channels)
    if _shape(first)[1] != in_ch + HINT_CHANNELS:
        raise NotIRControlNet(
            f"its first conv takes {_shape(first)[1]} channels, not {in_ch} + {HINT_CHANNELS} "
            "(noisy latent + condition latent): a ControlNet with another kind of condition, "
            "not DiffBIR's IRControlNet"
        )
    out: dict[str, Any] = {
        "conv_in.weight": first[:, :in_ch].contiguous(),
        "controlnet_cond_embedding.weight": first[:, in_ch:].contiguous(),
    }
    if "input_blocks.0.0.bias" in state:
        out["conv_in.bias"] = state["input_blocks.0.0.bias"]
    unplaced = []
    for key, value in state.items():
        if key.startswith("input_blocks.0.0."):
            continue
        new = diffusers_key(key, layers, blocks)
        if new is None or new not in expected:
            unplaced.append(key)
            continue
        out[new] = value
    if unplaced:
        raise NotIRControlNet(
            f"{len(unplaced)} of its weights have no place in an IRControlNet of this UNet "
            f"(first: {', '.join(unplaced[:3])})"
        )
    missing = [k for k in expected if k not in out]
    if missing:
        raise NotIRControlNet(
            f"{len(missing)} weights of the IRControlNet are missing from it "
            f"(first: {', '.join(missing[:3])}); it was made for another UNet"
        )
    wrong = [k for k, v in out.items() if _shape(v) != expected[k]]
    if wrong:
        k = wrong[0]
        raise NotIRControlNet(
            f"{len(wrong)} weights have other shapes than this UNet's IRControlNet "
            f"({k}: {_shape(out[k])}, expected {expected[k]}); it was made for another UNet"
        )
    return out


def build(unet: Any) -> Any:
    """An empty IRControlNet shaped like `unet`'s encoder: ControlNetModel + the latent hint conv."""
    import torch
    from diffusers import ControlNetModel

    net = ControlNetModel.from_unet(unet, load_weights_from_unet=False)
    net.controlnet_cond_embedding = torch.nn.Conv2d(
        HINT_CHANNELS, int(unet.config.block_out_channels[0]), 3, padding=1, bias=False
    )
    return net


def read_state(path: Path) -> dict[str, Any]:
    """The tensors of a released file: .pth/.pt (maybe under 'state_dict', maybe with the
    DataParallel 'module.' prefix) or .safetensors; only tensors are read (weights_only)."""
    import torch

    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise NotIRControlNet(f"it is not a readable safetensors file ({exc})") from None
    try:  # memory-mapped: sorting a model's files reads the names, not 1.5 GB of weights
        data = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # a legacy (pre-zip) file cannot be mapped
        data = None
    except Exception as exc:
        raise NotIRControlNet(
            f"it is not a PyTorch checkpoint that can be read safely ({type(exc).__name__})"
        ) from None
    try:
        if data is None:
            data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise NotIRControlNet(
            f"it is not a PyTorch checkpoint that can be read safely ({type(exc).__name__})"
        ) from None
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not all(isinstance(k, str) for k in data):
        raise NotIRControlNet("it does not hold a table of named weights")
    if data and all(k.startswith("module.") for k in data):
        data = {k[len("module.") :]: v for k, v in data.items()}
    return data


def load(path: Path, unet: Any) -> Any:
    """The IRControlNet in `path` for `unet`, loaded strictly; NotIRControlNet with a sentence."""
    net = build(unet)
    try:
        state = to_diffusers(read_state(path), net)
    except NotIRControlNet as exc:
        raise NotIRControlNet(f"{path.name}: {exc}.") from None
    net.load_state_dict(state, strict=True)
    return net.eval()
