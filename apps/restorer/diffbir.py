"""DiffBIR: a stage-1 cleaner, then Stable Diffusion 2.1 steered by the IRControlNet for texture.

Stage 1 removes noise, blur and compression with a regression model (DiffBIR's own SwinIR,
`general_swinir_v1.ckpt`, or any spandrel restoration / upscaling file), so the picture's
content is settled before the diffusion model sees it. Stage 2 encodes the cleaned picture
with SD's VAE and lets SD 2.1 regenerate fine texture (skin, fabric, foliage) from noise,
with the IRControlNet feeding that latent into every resolution of the UNet. It works at
the output size, so it upscales and rebuilds texture in one step.

Memory, as the plan chose it (`offload` in DARKROOM_MODELS, the variant's `tiled` suffix):
everything on the GPU; or `model` offload (each part moved to the GPU only while it works);
and tiled sampling (the latent in overlapping tiles whose noise predictions are blended with
Gaussian weights, the VAE in tiles too), which bounds the peak by the tile, not the photo.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import colourfix, difftexture, irnet
from .difftexture import DEFAULT, Sampling, blend_weights, snapshot_root, windows

POSITIVE = "a sharp, detailed, high quality photograph, natural skin and fabric texture"
NEGATIVE = (
    "blurry, out of focus, low quality, noisy, jpeg artifacts, smeared, oversmoothed, painting"
)

_REPAIR = "Run `darkroom models pull restorer` to fetch the model's files again."
_SUBFOLDERS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


class NotDiffBIR(ValueError):
    """The model's files are not a DiffBIR set; the text says which file and why."""


def is_diffusion_set(files: list[tuple[str, Path]]) -> bool:
    """A model whose files include a diffusers UNet folder (DiffBIR, SUPIR), not a spandrel file."""
    return any(p.replace("\\", "/").endswith("unet/config.json") for p, _ in files)


@dataclass
class Parts:
    """Which file is which, found from the files themselves."""

    sd_root: Path
    controlnet: Path
    cleaner: Path


def sort_files(files: list[tuple[str, Path]]) -> Parts:
    """The SD folder, the IRControlNet and the stage-1 cleaner among a model's files."""
    sd_root = next(
        (
            snapshot_root(p, loc)
            for p, loc in files
            if p.replace("\\", "/").endswith("unet/config.json")
        ),
        None,
    )
    if sd_root is None:
        raise NotDiffBIR("its files hold no Stable Diffusion UNet (unet/config.json)")
    loose = [
        loc
        for p, loc in files
        if Path(p).parts[0] not in _SUBFOLDERS
        and loc.suffix.lower() in (".pth", ".pt", ".ckpt", ".safetensors")
    ]
    control = [loc for loc in loose if _looks_like_controlnet(loc)]
    if len(control) != 1:
        names = ", ".join(loc.name for loc in loose) or "none"
        raise NotDiffBIR(
            f"exactly one of its loose weight files ({names}) must be an IRControlNet "
            f"(weights named input_blocks.* and zero_convs.*); {len(control)} are"
        )
    cleaners = [loc for loc in loose if loc not in control]
    if len(cleaners) != 1:
        raise NotDiffBIR(
            f"it needs one stage-1 cleaner file beside the IRControlNet, and has {len(cleaners)}"
        )
    return Parts(sd_root, control[0], cleaners[0])


def _looks_like_controlnet(path: Path) -> bool:
    try:
        state = irnet.read_state(path)
    except irnet.NotIRControlNet:
        return False
    return "input_blocks.0.0.weight" in state and any(k.startswith("zero_convs.") for k in state)


@dataclass
class DiffBIR(difftexture.DiffusionModel):
    """The loaded parts and how they are placed (LATENT_TILE: 512 px with SD's VAE)."""

    model_id: str
    device: str
    dtype: Any
    offload: str  # "none" or "model"
    tiled: bool
    cleaner: Any  # spandrel descriptor
    cleaner_arch: str
    unet: Any
    controlnet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler_config: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "DiffBIR",
            "stage1": self.cleaner_arch,
            "offload": self.offload,
            "tiled": self.tiled,
            "dtype": str(self.dtype).removeprefix("torch."),
            "files": self.files,
        }

    # -- the two stages -------------------------------------------------------------------

    def clean(self, rgb: np.ndarray, size: tuple[int, int], tile: int) -> np.ndarray:
        """Stage 1 at the output size (h, w): a cleaner of scale 1 works after a bicubic resize,
        an upscaler before it; either way the picture ends exactly `size`."""
        from PIL import Image

        from .tiling import run_tiled

        d = self.cleaner
        scale = int(d.scale)
        if scale == 1:
            rgb = np.asarray(Image.fromarray(rgb).resize(size[::-1], Image.BICUBIC))
        dtype = next(d.model.parameters()).dtype
        with self.on_device(d.model):
            out = run_tiled(lambda x, _m: d(x), rgb, scale, tile, 32, self.device, dtype)
        if out.shape[:2] != size:
            out = np.asarray(Image.fromarray(out).resize(size[::-1], Image.BICUBIC))
        return out

    def encode_prompt(self, prompt: str):
        import torch

        tok = self.tokenizer(
            [prompt],
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        with self.on_device(self.text_encoder), torch.inference_mode():
            dev = self.text_encoder.device
            return self.text_encoder(tok.input_ids.to(dev))[0].to(self.device, self.dtype)

    def restore(
        self,
        rgb: np.ndarray,
        scale: int,
        s: Sampling = DEFAULT,
        report: Callable[[float, str], None] = lambda f, m="": None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Clean, then regenerate texture at `scale` times the size, its colours matched to the
        cleaned picture by `s.colour_fix` (colourfix.py); returns (rgb, facts). The quality
        prompts left empty are DiffBIR's defaults (POSITIVE, NEGATIVE)."""
        import torch
        from diffusers import DPMSolverMultistepScheduler

        h, w = rgb.shape[:2]
        size = (h * scale, w * scale)
        f = self.vae_factor
        report(0.02, "stage 1: cleaning")
        clean = self.clean(rgb, size, s.tile)
        ph, pw = math.ceil(size[0] / f) * f, math.ceil(size[1] / f) * f
        padded = np.pad(clean, ((0, ph - size[0]), (0, pw - size[1]), (0, 0)), mode="reflect")

        report(0.15, "stage 2: reading the prompt")
        text, negative = s.prompts(POSITIVE, NEGATIVE)
        cond_txt = self.encode_prompt(text)
        uncond_txt = self.encode_prompt(negative)
        context = torch.cat([uncond_txt, cond_txt])

        image = torch.from_numpy(np.ascontiguousarray(padded)).permute(2, 0, 1)[None]
        image = image.to(self.device, self.dtype) / 127.5 - 1.0
        sf = float(self.vae.config.scaling_factor)
        window = self.latent_window(s.tile)
        big = max(ph, pw) // f > window
        if big:
            self.vae.enable_tiling()
        else:
            self.vae.disable_tiling()
        with self.on_device(self.vae), torch.inference_mode():
            c_img = self.vae.encode(image).latent_dist.mode() * sf
        del image

        scheduler = DPMSolverMultistepScheduler.from_config(self.scheduler_config)
        scheduler.set_timesteps(s.steps, device=self.device)
        gen = torch.Generator("cpu").manual_seed(int(s.seed))
        latents = torch.randn(c_img.shape, generator=gen, dtype=torch.float32)
        latents = (latents * scheduler.init_noise_sigma).to(self.device, self.dtype)
        wins = (
            windows(c_img.shape[-2], c_img.shape[-1], window, max(2, window // 4))
            if big
            else [(0, c_img.shape[-2], 0, c_img.shape[-1])]
        )
        weights = blend_weights(wins, c_img.shape[-2:], self.device, self.dtype)
        with self.on_device(self.unet, self.controlnet), torch.inference_mode():
            for i, t in enumerate(scheduler.timesteps):
                x_in = scheduler.scale_model_input(latents, t)
                eps = torch.zeros_like(latents)
                for (y0, y1, x0, x1), wgt in zip(wins, weights, strict=True):
                    part = self._eps(
                        x_in[..., y0:y1, x0:x1], c_img[..., y0:y1, x0:x1], t, context, s.guidance
                    )
                    eps[..., y0:y1, x0:x1] += part * wgt
                latents = scheduler.step(eps, t, latents).prev_sample
                report(0.2 + 0.7 * (i + 1) / len(scheduler.timesteps), "stage 2: sampling")
        report(0.92, "stage 2: decoding")
        with self.on_device(self.vae), torch.inference_mode():
            out = self.vae.decode(latents / sf).sample
        out = ((out[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        result = out.permute(1, 2, 0).cpu().numpy()[: size[0], : size[1]]
        result = colourfix.fix(s.colour_fix, np.ascontiguousarray(result), clean)
        facts = {
            "texture": "diffbir",
            "stage1": self.cleaner_arch,
            "steps": s.steps,
            "guidance": s.guidance,
            "seed": int(s.seed),
            "latent_tiles": len(wins),
            "offload": self.offload,
            "colour_fix": s.colour_fix,
        }
        return np.ascontiguousarray(result), facts

    def _eps(self, x, c_img, t, context, guidance: float):
        """Noise prediction with classifier-free guidance; both halves see the condition latent,
        as DiffBIR samples (the prompt is what guidance contrasts)."""
        import torch

        x2, c2 = torch.cat([x, x]), torch.cat([c_img, c_img])
        down, mid = self.controlnet(
            x2, t, encoder_hidden_states=context, controlnet_cond=c2, return_dict=False
        )
        pred = self.unet(
            x2,
            t,
            encoder_hidden_states=context,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
            return_dict=False,
        )[0]
        uncond, cond = pred.chunk(2)
        return uncond + guidance * (cond - uncond)


def load(
    model_id: str,
    files: list[tuple[str, Path]],
    variant: str,
    offload: str,
    device: str,
) -> DiffBIR:
    """Load a DiffBIR model from its files (repo path, local path), strictly; NotDiffBIR or
    irnet.NotIRControlNet with a sentence when a file is something else."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    from .loading import load_spandrel

    parts = sort_files(files)
    gpu = device.startswith("cuda")
    dtype = torch.float16 if gpu else torch.float32
    root = str(parts.sd_root)

    def fp16(sub: str) -> str | None:
        names = [p.name for p in (parts.sd_root / sub).glob("*.fp16.*")]
        return "fp16" if names else None

    try:
        unet = UNet2DConditionModel.from_pretrained(
            root, subfolder="unet", variant=fp16("unet"), torch_dtype=dtype
        )
        vae = AutoencoderKL.from_pretrained(
            root, subfolder="vae", variant=fp16("vae"), torch_dtype=dtype
        )
        text_encoder = CLIPTextModel.from_pretrained(
            root, subfolder="text_encoder", variant=fp16("text_encoder"), torch_dtype=dtype
        )
        tokenizer = CLIPTokenizer.from_pretrained(root, subfolder="tokenizer")
        scheduler_config = json.loads(
            (parts.sd_root / "scheduler" / "scheduler_config.json").read_text()
        )
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        raise NotDiffBIR(
            f"its Stable Diffusion 2.1 folder cannot be loaded ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    controlnet = irnet.load(parts.controlnet, unet).to(dtype)
    try:
        cleaner, _extra = load_spandrel(parts.cleaner, allow_extra=False)
    except Exception as exc:
        raise NotDiffBIR(
            f"its stage-1 file {parts.cleaner.name} is not a restoration model spandrel knows "
            f"({type(exc).__name__})"
        ) from None
    if cleaner.purpose not in ("Restoration", "SR"):
        raise NotDiffBIR(
            f"its stage-1 file {parts.cleaner.name} is a {cleaner.architecture.name} "
            f"({cleaner.purpose}) model, not a cleaner or upscaler"
        )
    cleaner.eval()
    if gpu and cleaner.supports_half:
        cleaner.to(torch.float16)
    offload = difftexture.place(
        [unet, vae, text_encoder, controlnet, cleaner.model], device, offload
    )
    return DiffBIR(
        model_id=model_id,
        device=device,
        dtype=dtype,
        offload=offload,
        tiled=variant.endswith("tiled"),
        cleaner=cleaner,
        cleaner_arch=cleaner.architecture.name,
        unet=unet,
        controlnet=controlnet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler_config=dict(scheduler_config),
        files={
            "stage1": parts.cleaner.name,
            "controlnet": parts.controlnet.name,
            "sd": parts.sd_root.name,
        },
    )


# ---- the chain's texture slot ---------------------------------------------------------------


difftexture.register(
    "diffbir",
    "DiffBIR",
    "DiffBIR",
    rank=10,  # rebuilds texture, where the upscaler only sharpens: preferred when it runs
    missing=(
        "DiffBIR is not installed; install it with `darkroom install restorer --models "
        "gfpgan,face-detection,realesrgan-x4,lama,scratch-detector,diffbir` (it needs an "
        "NVIDIA GPU with 8 GB), or use texture: upscaler."
    ),
)
