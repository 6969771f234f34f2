"""SUPIR's checkpoint layout, checked before anything is loaded, and its texture step.

SUPIR (Yu et al., 2024) restores on SDXL-base: a trimmed copy of SDXL's encoder (GLVControl,
its own `input_hint_block`) reads the low-quality latent; twelve connectors (`project_modules`)
fuse its features into the SDXL UNet's decoder, one per skip connection; and a second VAE
encoder (`denoise_encoder`) trained on degraded photos makes that latent. The released
SUPIR-v0Q / v0F files hold these three parts (Kijai's fp16 `SUPIR-v0Q_fp16.safetensors`
only them, 2.66 GB); SDXL-base itself comes from its own file.

The connectors, as the paper's XL-base configuration builds them (project channel scale 2):
ten ZeroSFT blocks (a 3x3 conv of the control features to 128 channels, SiLU, two zero
3x3 convs giving a scale and a shift for the GroupNorm-ed UNet features concatenated with
the skip, and a zero 1x1 conv added before) and two ZeroCrossAttn blocks (GroupNorms and a
cross-attention from the UNet features to the control features), inserted at positions 3
and 7. `expected_connectors` writes that layout; `check` holds a file's names and shapes
against it and says in a sentence what is off. The networks are built in supirnet.py, the
sampler in supirpipe.py; the bottom of this module registers `texture: supir` with the chain.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

# XL-base (model channels 320, widths x1 x2 x4), per connector in units of the model
# channels: the skip features' width (the encoder's outputs, conv_in .. the middle block),
# the control features' (before the channel scale) and the decoder features concatenated.
_COND = [1] * 4 + [2] * 3 + [4] * 3
_PROJECT = [0.5] * 4 + [1] * 3 + [2] * 3
_CONCAT = [1] * 2 + [2] * 3 + [4] * 4 + [0]
_CROSS_AT = (6, 3)  # inserted in this order, so they end at 3 and 7
XL_CHANNELS = 320
_HIDDEN = 128
SEED_VRAM_GB = {"minimum (tiled)": 12, "recommended": 16, "optimal": 24}  # shared/seed/DIGEST.md


class NotSUPIR(ValueError):
    """The file is not a SUPIR checkpoint; the text says why."""


def _sft(p: str, label: int, norm: int, concat: int) -> dict[str, list[int]]:
    width = norm + concat
    return {
        f"{p}.param_free_norm.weight": [width],
        f"{p}.param_free_norm.bias": [width],
        f"{p}.mlp_shared.0.weight": [_HIDDEN, label, 3, 3],
        f"{p}.mlp_shared.0.bias": [_HIDDEN],
        f"{p}.zero_mul.weight": [width, _HIDDEN, 3, 3],
        f"{p}.zero_mul.bias": [width],
        f"{p}.zero_add.weight": [width, _HIDDEN, 3, 3],
        f"{p}.zero_add.bias": [width],
        f"{p}.zero_conv.weight": [norm, label, 1, 1],
        f"{p}.zero_conv.bias": [norm],
    }


def _cross(p: str, context: int, query: int) -> dict[str, list[int]]:
    return {
        f"{p}.attn.to_q.weight": [query, query],
        f"{p}.attn.to_k.weight": [query, context],
        f"{p}.attn.to_v.weight": [query, context],
        f"{p}.attn.to_out.0.weight": [query, query],
        f"{p}.attn.to_out.0.bias": [query],
        f"{p}.norm1.weight": [query],
        f"{p}.norm1.bias": [query],
        f"{p}.norm2.weight": [context],
        f"{p}.norm2.bias": [context],
    }


def expected_connectors(
    channel_scale: int = 2, channels: int = XL_CHANNELS
) -> dict[str, list[int]]:
    """Names (under `project_modules.`) and shapes of the twelve connectors of XL-base (or of
    an XL-shaped UNet with other model channels: the tests' tiny one)."""
    c = channels
    blocks: list[tuple[str, tuple[int, int, int]]] = [
        ("sft", (int(_PROJECT[i] * c * channel_scale), _COND[i] * c, _CONCAT[i] * c))
        for i in range(len(_COND))
    ]
    for i in _CROSS_AT:
        blocks.insert(i, ("cross", (_COND[i] * c, _CONCAT[i] * c, 0)))
    out: dict[str, list[int]] = {}
    for n, (kind, (a, b, c)) in enumerate(blocks):
        out.update(_sft(f"{n}", a, b, c) if kind == "sft" else _cross(f"{n}", a, b))
    return out


@dataclass
class Layout:
    """What a SUPIR file holds, by part."""

    connectors: int  # entries under project_modules
    control: int  # entries of GLVControl (control_model.*)
    denoise_encoder: int  # entries of the degradation-robust VAE encoder
    other: int  # anything else (a full SDXL, in the unpruned .ckpt)
    prefix: str  # what comes before project_modules. (e.g. "model.diffusion_model.")


def check(shapes: dict[str, list[int]], channels: int = XL_CHANNELS) -> Layout:
    """Hold a file's entries against SUPIR's layout; NotSUPIR with a sentence when it is not."""
    heads = {k.split("project_modules.")[0] for k in shapes if "project_modules." in k}
    if len(heads) != 1:
        some = ", ".join(list(shapes)[:3]) or "nothing"
        raise NotSUPIR(
            f"it holds {some} ... and no SUPIR connectors (project_modules.*), so it is not a "
            "SUPIR checkpoint (SUPIR-v0Q / v0F)"
        )
    prefix = heads.pop()
    want = expected_connectors(channels=channels)
    head = f"{prefix}project_modules."
    have = {k.removeprefix(head): v for k, v in shapes.items() if k.startswith(head)}
    missing = [k for k in want if k not in have]
    extra = [k for k in have if k not in want]
    if missing or extra:
        raise NotSUPIR(
            f"its connectors differ from SUPIR XL-base's ({len(missing)} missing, first "
            f"{', '.join(missing[:2]) or '-'}; {len(extra)} unknown, first "
            f"{', '.join(extra[:2]) or '-'})"
        )
    wrong = [k for k in want if list(have[k]) != want[k]]
    if wrong:
        k = wrong[0]
        raise NotSUPIR(
            f"{len(wrong)} connector weights have other shapes than SUPIR XL-base's "
            f"(project_modules.{k}: {list(have[k])}, expected {want[k]})"
        )
    control = sum(1 for k in shapes if "control_model." in k)
    denoise = sum(1 for k in shapes if "denoise_encoder." in k)
    if not control or not denoise:
        raise NotSUPIR(
            "it has SUPIR's connectors but no "
            + ("GLVControl (control_model.*)" if not control else "denoise_encoder.*")
            + ": an incomplete file"
        )
    return Layout(
        connectors=len(want),
        control=control,
        denoise_encoder=denoise,
        other=len(shapes) - len(want) - control - denoise,
        prefix=prefix,
    )


def read_shapes(path: Path) -> dict[str, list[int]]:
    """Names and shapes from a .safetensors header, without reading the weights."""
    try:
        with open(path, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            if size > 100_000_000:
                raise ValueError("header too large")
            header = json.loads(f.read(size))
    except (OSError, ValueError, struct.error) as exc:
        raise NotSUPIR(
            f"{path.name} is not a safetensors file ({type(exc).__name__}); SUPIR is read "
            "from its .safetensors release (SUPIR-v0Q_fp16.safetensors)."
        ) from None
    return {k: list(v["shape"]) for k, v in header.items() if k != "__metadata__"}


def inspect(path: Path, channels: int = XL_CHANNELS) -> Layout:
    try:
        return check(read_shapes(path), channels)
    except NotSUPIR as exc:
        text = str(exc)
        raise NotSUPIR(text if text.startswith(path.name) else f"{path.name}: {text}.") from None


# ---- the chain's texture slot (the sampler: supirpipe.py) -----------------------------------


def _register() -> None:
    from . import difftexture

    difftexture.register(
        "supir",
        "SUPIR",
        "SUPIR",
        rank=20,  # the seed's choice for large restorations where its GPU is there
        missing=(
            "SUPIR is not installed; it is non-commercial and needs an NVIDIA GPU with 12 GB: "
            "install it with `darkroom install restorer --models "
            "gfpgan,face-detection,realesrgan-x4,lama,scratch-detector,supir`, or use "
            "texture: upscaler."
        ),
    )


if __package__:  # as the restorer's module (tests also read this file alone, without torch)
    _register()
