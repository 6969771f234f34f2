"""SUPIR in the restorer: SDXL-base steered by GLVControl, sampled with restoration guidance.

The photo is enlarged (bicubic) to the output size and encoded by SUPIR's degradation-robust
encoder into the low-quality latent z_lq. Sampling is EDM-style (Euler steps over SDXL's
noise levels, the eps-prediction UNet wrapped as a denoiser D(x, sigma) = x - sigma * eps);
at each step the denoised estimate is pulled towards z_lq by k = (sigma / sigma_max) ** tau,
fully at the start and hardly at the end (the paper's restoration-guided sampling: the
structure comes from the photo, the late steps are free to add texture). The prompt (SDXL's
two text encoders) is contrasted with a negative one by classifier-free guidance.

Memory, as the plan chose it: everything on the GPU, `model` offload (each part on the GPU
only while it works), and the tiled variant (latent windows blended with Gaussian weights
and a tiled VAE, as diffbir.py does), which bounds the peak by the window, not the photo.

Last, as the released pipeline does, the result's colours are matched (colourfix.py, the
wavelet fix by default) to the stage-1 picture: z_lq decoded again, the photo with its
degradations removed by the robust encoder but its colours kept.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import colourfix, difftexture, supir
from .difftexture import DEFAULT, Sampling, blend_weights, snapshot_root, windows

# The quality prompts the SUPIR paper's released demo starts with (its "default positive /
# negative prompt"): the user's own prompt says what the photo shows, these how it should look.
POSITIVE = (
    "Cinematic, High Contrast, highly detailed, taken using a Canon EOS R camera, hyper detailed "
    "photo - realistic maximum detail, 32k, Color Grading, ultra HD, extreme meticulous "
    "detailing, skin pore detailing, hyper sharpness, perfect without deformations."
)
NEGATIVE = (
    "painting, oil painting, illustration, drawing, art, sketch, oil painting, cartoon, CG Style, "
    "3D render, unreal engine, blurring, dirty, messy, worst quality, low quality, frames, "
    "watermark, signature, jpeg artifacts, deformed, lowres, over-smooth"
)
RESTORATION_TAU = 4.0  # k = (sigma / sigma_max) ** tau


def is_supir_set(files: list[tuple[str, Path]]) -> bool:
    """A diffusers SDXL folder (two text encoders) with a loose .safetensors beside it."""
    parts = {Path(p.replace("\\", "/")).parts[0] for p, _ in files}
    return "text_encoder_2" in parts and any(
        len(Path(p).parts) == 1 and p.lower().endswith(".safetensors") for p, _ in files
    )


@dataclass
class SUPIR(difftexture.DiffusionModel):
    """The loaded parts and how they are placed (LATENT_TILE: 1024 px with SDXL's VAE)."""

    LATENT_TILE = 128

    model_id: str
    device: str
    dtype: Any
    offload: str
    tiled: bool
    unet: Any
    control: Any
    connectors: Any
    vae: Any
    denoise_encoder: Any
    text_encoders: list[Any]
    tokenizers: list[Any]
    scheduler_config: dict[str, Any]
    files: dict[str, str] = field(default_factory=dict)

    @property
    def multiple(self) -> int:
        """Latent sizes must halve cleanly through the UNet's down blocks."""
        return 2 ** (len(self.unet.config.block_out_channels) - 1)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "SUPIR",
            "offload": self.offload,
            "tiled": self.tiled,
            "dtype": str(self.dtype).removeprefix("torch."),
            "files": self.files,
        }

    def encode_prompt(self, prompt: str):
        """(context, pooled): both encoders' penultimate hidden states side by side, and the
        second one's projected pooled output, as SDXL is conditioned."""
        import torch

        states, pooled = [], None
        for tok, enc in zip(self.tokenizers, self.text_encoders, strict=True):
            ids = tok(
                [prompt],
                padding="max_length",
                max_length=tok.model_max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids
            with self.on_device(enc), torch.inference_mode():
                out = enc(ids.to(enc.device), output_hidden_states=True)
            states.append(out.hidden_states[-2])
            pooled = out[0]
        context = torch.cat(states, dim=-1).to(self.device, self.dtype)
        return context, pooled.to(self.device, self.dtype)

    def _encode_lq(self, image):
        """The LQ latent: the VAE with its encoder swapped for the degradation-robust one."""
        import torch

        own = self.vae.encoder
        self.vae.encoder = self.denoise_encoder
        try:
            with self.on_device(self.vae), torch.inference_mode():
                return self.vae.encode(image).latent_dist.mode()
        finally:
            self.vae.encoder = own

    def encode_photo(self, rgb: np.ndarray, scale: int, tile: int) -> tuple[Any, tuple[int, int]]:
        """The photo enlarged (bicubic) by `scale` and encoded by the degradation-robust
        encoder: (z_lq, scaled as the UNet sees latents; the output size (h, w))."""
        import torch
        from PIL import Image

        h, w = rgb.shape[:2]
        size = (h * scale, w * scale)
        step = self.vae_factor * self.multiple
        ph, pw = math.ceil(size[0] / step) * step, math.ceil(size[1] / step) * step
        big = np.asarray(Image.fromarray(rgb).resize(size[::-1], Image.BICUBIC))
        padded = np.pad(big, ((0, ph - size[0]), (0, pw - size[1]), (0, 0)), mode="reflect")
        if max(ph, pw) // self.vae_factor > self.latent_window(tile):
            self.vae.enable_tiling()
        else:
            self.vae.disable_tiling()
        image = torch.from_numpy(np.ascontiguousarray(padded)).permute(2, 0, 1)[None]
        image = image.to(self.device, self.vae.dtype) / 127.5 - 1.0
        sf = float(self.vae.config.scaling_factor)
        return (self._encode_lq(image) * sf).to(self.dtype), size

    def decode(self, latent: Any, size: tuple[int, int]) -> np.ndarray:
        """A latent (scaled as the UNet sees it) as an RGB picture, cropped to `size`."""
        import torch

        sf = float(self.vae.config.scaling_factor)
        with self.on_device(self.vae), torch.inference_mode():
            out = self.vae.decode((latent / sf).to(self.vae.dtype)).sample
        out = ((out[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return np.ascontiguousarray(out.permute(1, 2, 0).cpu().numpy()[: size[0], : size[1]])

    def stage1(self, rgb: np.ndarray, scale: int, tile: int = 512) -> np.ndarray:
        """SUPIR's stage-1 picture: the photo through the degradation-robust encoder and back
        (degradations gone, colours kept); the colour fix matches the result to it."""
        return self.decode(*self.encode_photo(rgb, scale, tile))

    def restore(
        self,
        rgb: np.ndarray,
        scale: int,
        s: Sampling = DEFAULT,
        control_scale: float = 1.0,
        tau: float = RESTORATION_TAU,
        report: Callable[[float, str], None] = lambda f, m="": None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Enlarge by `scale` and restore, the colours matched to the stage-1 picture by
        `s.colour_fix` (colourfix.py); returns (rgb, facts). The quality prompts left empty are
        the paper's (POSITIVE, NEGATIVE)."""
        import torch

        report(0.02, "encoding the photo")
        z_lq, size = self.encode_photo(rgb, scale, s.tile)
        window = self.latent_window(s.tile)
        report(0.08, "reading the prompt")
        text, negative = s.prompts(POSITIVE, NEGATIVE)
        ctx_c, pool_c = self.encode_prompt(text)
        ctx_u, pool_u = self.encode_prompt(negative)
        context = torch.cat([ctx_u, ctx_c])
        pooled = torch.cat([pool_u, pool_c])

        sigmas, timesteps = edm_schedule(self.scheduler_config, s.steps)
        gen = torch.Generator("cpu").manual_seed(int(s.seed))
        noise = torch.randn(z_lq.shape, generator=gen, dtype=torch.float32)
        x = z_lq.float() + float(sigmas[0]) * noise.to(self.device)
        lh, lw = z_lq.shape[-2:]
        wins = (
            windows(lh, lw, window, max(self.multiple, window // 4))
            if max(lh, lw) > window
            else [(0, lh, 0, lw)]
        )
        weights = blend_weights(wins, (lh, lw), self.device, torch.float32)
        sigma_max = float(sigmas[0])
        with self.on_device(self.unet, self.control, self.connectors), torch.inference_mode():
            for i, t in enumerate(timesteps):
                sigma, nxt = float(sigmas[i]), float(sigmas[i + 1])
                x_in = (x / math.sqrt(sigma**2 + 1)).to(self.dtype)
                eps = torch.zeros_like(x)
                for (y0, y1, x0, x1), wgt in zip(wins, weights, strict=True):
                    sl = (..., slice(y0, y1), slice(x0, x1))
                    part = self._eps(
                        x_in[sl],
                        z_lq[sl],
                        t,
                        context,
                        pooled,
                        (y1 - y0, x1 - x0),
                        s.guidance,
                        control_scale,
                    )
                    eps[sl] += part.float() * wgt
                denoised = x - sigma * eps
                k = (sigma / sigma_max) ** tau if tau > 0 else 0.0
                denoised = denoised + k * (z_lq.float() - denoised)
                x = x + (x - denoised) / sigma * (nxt - sigma)
                report(0.15 + 0.75 * (i + 1) / len(timesteps), "sampling")
        report(0.92, "decoding")
        result = self.decode(x, size)
        if s.colour_fix != "none":
            report(0.96, "matching the colours")
            result = colourfix.fix(s.colour_fix, result, self.decode(z_lq, size))
        facts = {
            "texture": "supir",
            "steps": s.steps,
            "guidance": s.guidance,
            "seed": int(s.seed),
            "restoration_tau": tau,
            "control_scale": control_scale,
            "latent_tiles": len(wins),
            "offload": self.offload,
            "colour_fix": s.colour_fix,
        }
        return np.ascontiguousarray(result), facts

    def _eps(self, x, z_lq, t, context, pooled, hw, guidance, control_scale):
        """Noise prediction with classifier-free guidance; both halves see the photo's control."""
        import torch

        from .supirnet import control_forward, unet_forward

        f = self.vae_factor
        size = [hw[0] * f, hw[1] * f]
        time_ids = torch.tensor([size + [0, 0] + size] * 2, device=self.device, dtype=self.dtype)
        added = {"text_embeds": pooled, "time_ids": time_ids}
        x2, z2 = torch.cat([x, x]), torch.cat([z_lq, z_lq])
        tt = torch.full((2,), int(t), device=self.device, dtype=torch.long)
        feats = control_forward(self.control, x2, z2, tt, context, added)
        pred = unet_forward(
            self.unet, self.connectors, x2, tt, context, added, feats, control_scale
        )
        uncond, cond = pred.chunk(2)
        return uncond + guidance * (cond - uncond)


def edm_schedule(config: dict[str, Any], steps: int):
    """Noise levels of SDXL's training schedule for `steps` Euler steps (plus a final 0) and the
    training timestep each level belongs to, evenly spaced from the noisiest down."""
    import torch

    n = int(config.get("num_train_timesteps", 1000))
    b0, b1 = float(config.get("beta_start", 0.00085)), float(config.get("beta_end", 0.012))
    betas = torch.linspace(b0**0.5, b1**0.5, n, dtype=torch.float64) ** 2
    alphas = torch.cumprod(1 - betas, 0)
    all_sigmas = ((1 - alphas) / alphas).sqrt()
    idx = torch.linspace(n - 1, 0, steps).round().long()
    sigmas = torch.cat([all_sigmas[idx], torch.zeros(1, dtype=torch.float64)])
    return sigmas.tolist(), idx.tolist()


def load(
    model_id: str, files: list[tuple[str, Path]], variant: str, offload: str, device: str
) -> SUPIR:
    """Load SUPIR from its files (the SDXL folder and the SUPIR .safetensors), strictly;
    supir.NotSUPIR with a sentence when a file is something else."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    from . import supirnet

    roots = [
        snapshot_root(p, loc)
        for p, loc in files
        if p.replace("\\", "/").endswith("unet/config.json")
    ]
    if not roots:
        raise supir.NotSUPIR("its files hold no SDXL UNet (unet/config.json)")
    root = roots[0]
    loose = [loc for p, loc in files if len(Path(p).parts) == 1 and loc.suffix == ".safetensors"]
    if len(loose) != 1:
        raise supir.NotSUPIR(
            f"it needs exactly one SUPIR file (.safetensors) beside SDXL, and has {len(loose)}"
        )
    gpu = device.startswith("cuda")
    dtype = torch.float16 if gpu else torch.float32

    def fp16(sub: str) -> str | None:
        return "fp16" if any((root / sub).glob("*.fp16.*")) else None

    try:
        unet = UNet2DConditionModel.from_pretrained(
            str(root), subfolder="unet", variant=fp16("unet"), torch_dtype=dtype
        )
        # SDXL's VAE overflows in fp16: it runs in fp32 (tiled when the photo is large)
        vae = AutoencoderKL.from_pretrained(
            str(root), subfolder="vae", variant=fp16("vae"), torch_dtype=torch.float32
        )
        encoders = [
            CLIPTextModel.from_pretrained(
                str(root),
                subfolder="text_encoder",
                variant=fp16("text_encoder"),
                torch_dtype=dtype,
            ),
            CLIPTextModelWithProjection.from_pretrained(
                str(root),
                subfolder="text_encoder_2",
                variant=fp16("text_encoder_2"),
                torch_dtype=dtype,
            ),
        ]
        tokenizers = [
            CLIPTokenizer.from_pretrained(str(root), subfolder=s)
            for s in ("tokenizer", "tokenizer_2")
        ]
        scheduler_config = json.loads((root / "scheduler" / "scheduler_config.json").read_text())
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        raise supir.NotSUPIR(
            f"its SDXL folder cannot be loaded ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    if unet.config.get("addition_embed_type") != "text_time":
        raise supir.NotSUPIR("its UNet is not SDXL's (no text_time size conditioning)")
    control, connectors, denoise = supirnet.load_parts(loose[0], unet, vae)
    control.to(dtype)
    connectors.to(dtype)
    offload = difftexture.place(
        [unet, vae, control, connectors, denoise, *encoders], device, offload
    )
    return SUPIR(
        model_id=model_id,
        device=device,
        dtype=dtype,
        offload=offload,
        tiled=variant.endswith("tiled"),
        unet=unet,
        control=control,
        connectors=connectors,
        vae=vae,
        denoise_encoder=denoise,
        text_encoders=encoders,
        tokenizers=tokenizers,
        scheduler_config=dict(scheduler_config),
        files={"supir": loose[0].name, "sdxl": root.name},
    )
