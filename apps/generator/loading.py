"""Loading a diffusers pipeline for the chosen variant, strictly from the files the store holds.

bf16/fp16/fp32: the whole pipeline from the repo snapshot. GGUF: the transformer from the
single .gguf file (diffusers' GGUF loader, dequantized per layer at compute time), the rest
from the snapshot. fp8: float8 storage cast per layer (a Kijai-style single file, or the
snapshot's own transformer). NF4: the bitsandbytes transformer (CUDA only). Offload exactly as
the plan says (`_place`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appkit.errors import LoadError
from appkit.models import ModelChoice

FAMILIES = {
    "FluxPipeline": "flux",
    "FluxFillPipeline": "flux-fill",  # FLUX.1 Fill [dev]: inpainting and outpainting
    "FluxControlPipeline": "flux-control",  # FLUX.1 Canny / Depth [dev]: a control image
    "StableDiffusion3Pipeline": "sd3",
    "LuminaPipeline": "lumina",
    "LuminaText2ImgPipeline": "lumina",  # the name Lumina-Next's diffusers repo was saved with
    "HunyuanDiTPipeline": "hunyuan",
}
# What each family is asked for: a prompt alone, a picture and a mask, or a control image.
FAMILY_TASKS = {"flux-fill": "inpaint", "flux-control": "control"}

# Sensible defaults per known model; unknown ones fall back to their family's.
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "flux-schnell": {"steps": 4, "guidance": 0.0, "max_sequence_length": 256},
    "flux-dev": {"steps": 28, "guidance": 3.5, "max_sequence_length": 512},
    "sd35-large": {"steps": 28, "guidance": 3.5},
    "sd35-large-turbo": {"steps": 4, "guidance": 0.0},
    "sd35-medium": {"steps": 40, "guidance": 4.5},
    # Black Forest Labs' examples: Fill and Canny at guidance 30, Depth at 10.
    "flux-fill": {"steps": 50, "guidance": 30.0, "max_sequence_length": 512},
    "flux-canny": {"steps": 50, "guidance": 30.0, "control": "canny"},
    "flux-depth": {"steps": 30, "guidance": 10.0, "control": "depth"},
    "lumina-next": {"steps": 30, "guidance": 4.0},
    "hunyuan-dit": {"steps": 50, "guidance": 5.0},
}
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "flux": {"steps": 28, "guidance": 3.5, "max_sequence_length": 512},
    "flux-fill": {"steps": 50, "guidance": 30.0, "max_sequence_length": 512},
    "flux-control": {"steps": 50, "guidance": 30.0, "max_sequence_length": 512, "control": "canny"},
    "sd3": {"steps": 28, "guidance": 4.5},
    "lumina": {"steps": 30, "guidance": 4.0},
    "hunyuan": {"steps": 50, "guidance": 5.0},
}

_REPAIR = "Run `darkroom models pull generator` to fetch the model's files again."


@dataclass
class ModelInfo:
    """What the files say about a model before it is loaded: family and defaults."""

    model_id: str
    family: str
    snapshot: Path
    size: int
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def negative_prompt(self) -> bool:
        return self.family in ("sd3", "lumina", "hunyuan")

    @property
    def task(self) -> str:
        """The task this model serves: generate (a prompt), inpaint or control."""
        return FAMILY_TASKS.get(self.family, "generate")

    @property
    def flux_like(self) -> bool:
        return self.family.startswith("flux")


def inspect(model_id: str, choice: ModelChoice) -> ModelInfo:
    """Read model_index.json and the VAE config of the chosen model's snapshot."""
    snapshot = choice.snapshot()
    if snapshot is None or not (snapshot / "model_index.json").is_file():
        raise LoadError(
            f"The files of {model_id} are incomplete: model_index.json is missing. {_REPAIR}"
        )
    try:
        index = json.loads((snapshot / "model_index.json").read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise LoadError(
            f"The model_index.json of {model_id} cannot be read ({exc}). {_REPAIR}"
        ) from None
    family = FAMILIES.get(index.get("_class_name", ""))
    if family is None:
        raise LoadError(
            f"{model_id} is a {index.get('_class_name')!r}; the generator runs FLUX.1 (with "
            "Fill, Canny and Depth), Stable Diffusion 3.5, Lumina-Next and HunyuanDiT pipelines "
            "only. Reinstall the generator with `darkroom install generator`."
        )
    size = 1024
    try:
        vae = json.loads((snapshot / "vae" / "config.json").read_text("utf-8"))
        size = int(vae.get("sample_size") or 1024)
    except (OSError, ValueError, TypeError):
        pass
    size = max(64, min(2048, size // 16 * 16))
    defaults = {
        **FAMILY_DEFAULTS[family],
        **_model_defaults(model_id, family),
        "width": size,
        "height": size,
    }
    return ModelInfo(model_id, family, snapshot, size, defaults)


def _model_defaults(model_id: str, family: str) -> dict[str, Any]:
    """The known model's defaults. FLUX.1 Canny and Depth share one pipeline class and layout,
    so a control model the table does not list (a recipe's own id) is Depth when its id says so."""
    if model_id in MODEL_DEFAULTS:
        return MODEL_DEFAULTS[model_id]
    if family == "flux-control" and "depth" in model_id.lower():
        return MODEL_DEFAULTS["flux-depth"]
    return {}


def compute_dtype(precision: str):
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16}.get(precision, torch.bfloat16)


@dataclass
class Loaded:
    """A pipeline ready to run, and what it was loaded as."""

    pipe: Any
    info: ModelInfo
    choice: ModelChoice
    device: str
    dtype: str


_CLASSES = {
    "flux": ("FluxPipeline", "FluxTransformer2DModel"),
    "flux-fill": ("FluxFillPipeline", "FluxTransformer2DModel"),
    "flux-control": ("FluxControlPipeline", "FluxTransformer2DModel"),
    "sd3": ("StableDiffusion3Pipeline", "SD3Transformer2DModel"),
    "lumina": ("LuminaPipeline", "LuminaNextDiT2DModel"),
    "hunyuan": ("HunyuanDiTPipeline", "HunyuanDiT2DModel"),
}


def _classes(family: str) -> tuple[Any, Any]:
    """diffusers' pipeline and transformer classes for a family (by name: one import)."""
    import diffusers

    pipe, transformer = _CLASSES[family]
    return getattr(diffusers, pipe), getattr(diffusers, transformer)


def _one(choice: ModelChoice, pattern: str, what: str, model_id: str) -> Path:
    found = [f.local_path for f in choice.find(pattern)]
    if not found:
        raise LoadError(
            f"The {what} file of {model_id} ({choice.variant}) is not among its files. {_REPAIR}"
        )
    path = found[0]
    if not path.is_file():
        raise LoadError(
            f"The {what} file of {model_id} is missing from the store: {path}. {_REPAIR}"
        )
    return path


def load(model_id: str, choice: ModelChoice, device: str, progress) -> Loaded:
    """Build the pipeline for `choice` on `device`; every failure is a LoadError with a sentence."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    info = inspect(model_id, choice)
    progress(0.05, "importing diffusers")
    import torch

    pipe_cls, transformer_cls = _classes(info.family)
    precision = choice.precision
    dtype = compute_dtype(precision)
    snapshot = str(info.snapshot)
    transformer = None
    progress(0.2, "loading the transformer")
    if precision.startswith("gguf"):
        from diffusers import GGUFQuantizationConfig

        gguf = _one(choice, "*.gguf", "GGUF", model_id)
        transformer = transformer_cls.from_single_file(
            str(gguf),
            quantization_config=GGUFQuantizationConfig(compute_dtype=dtype),
            config=snapshot,
            subfolder="transformer",
            torch_dtype=dtype,
            local_files_only=True,
        )
    elif precision == "fp8":
        single = [f for f in choice.find("*.safetensors") if "/" not in f.path]
        if single:
            transformer = transformer_cls.from_single_file(
                str(single[0].local_path),
                config=snapshot,
                subfolder="transformer",
                torch_dtype=dtype,
                local_files_only=True,
            )
        else:
            transformer = transformer_cls.from_pretrained(
                snapshot, subfolder="transformer", torch_dtype=dtype, local_files_only=True
            )
        transformer.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=dtype)
    elif precision == "nf4":
        if not device.startswith("cuda"):
            raise LoadError(
                f"The NF4 variant of {model_id} needs an NVIDIA GPU (bitsandbytes); this app "
                f"runs on {device}. Reinstall the generator with another variant (GGUF or fp8)."
            )
        quant_files = [
            f
            for f in choice.find("transformer/*")
            if f.repo and choice.snapshot(f.repo) != info.snapshot
        ]
        where = choice.snapshot(quant_files[0].repo) if quant_files else info.snapshot
        transformer = transformer_cls.from_pretrained(
            str(where), subfolder="transformer", torch_dtype=dtype, local_files_only=True
        )
    elif precision not in ("bf16", "fp16", "fp32"):
        raise LoadError(
            f"The generator cannot run the {precision} precision of {model_id}. "
            "Reinstall it with a bf16, fp8, GGUF or NF4 variant."
        )
    progress(0.6, "loading the text encoders and VAE")
    extra = {"transformer": transformer} if transformer is not None else {}
    pipe = pipe_cls.from_pretrained(snapshot, torch_dtype=dtype, local_files_only=True, **extra)
    progress(0.9, f"moving to {device}")
    _place(pipe, device, choice.offload)
    pipe.set_progress_bar_config(disable=True)
    return Loaded(
        pipe=pipe, info=info, choice=choice, device=device, dtype=str(dtype).removeprefix("torch.")
    )


def _place(pipe: Any, device: str, offload: str) -> None:
    """Put the pipeline on the device exactly as the plan says.

    - "none": everything on the device.
    - "model": whole-model offload (accelerate hooks move one component at a time to the device).
    - "sequential": layer by layer, with diffusers' group offload at leaf level. Not accelerate's
      `enable_sequential_cpu_offload`: that re-creates every weight on the meta device, and a GGUF
      weight cannot be re-created without its quantization type (KeyError: None in
      GGUFParameter, diffusers issue 14691). Group offload swaps the tensor data inside the same
      Parameter object, so GGUF and fp8 weights keep what they are.

    Offload works wherever torch has a device to offload to: CUDA, and MPS on Apple silicon,
    where it keeps Metal's working set to one component. The every-plan test calls this with
    device "cpu": the same hooks are installed and run, with the CPU as execution device.
    """
    import torch

    if offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif offload == "sequential":
        pipe.enable_group_offload(
            onload_device=torch.device(device),
            offload_device=torch.device("cpu"),
            offload_type="leaf_level",
        )
    else:
        pipe.to(device)
    vae = getattr(pipe, "vae", None)
    if vae is not None and hasattr(vae, "enable_slicing"):
        vae.enable_slicing()


def set_tiling(pipe: Any, on: bool) -> None:
    """VAE tiling for large images: the decoder works in tiles so peak memory stays bounded."""
    vae = getattr(pipe, "vae", None)
    if vae is None or not hasattr(vae, "enable_tiling"):
        return
    vae.enable_tiling() if on else vae.disable_tiling()
