"""What DiffBIR's and SUPIR's texture steps have in common, so each module keeps only its own
model: where the parts sit while they work, the latent sampling windows and their blending,
and the chain's texture slot (installed or not, and one call with the request's settings).

Both models are dataclasses with `vae`, `tiled`, `offload` and `device`; they take
`DiffusionModel` as a base for the shared properties, and register their step with
`register(...)` at import (chain.py imports the plugin modules).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Sampling:
    """One restore's diffusion settings, as the request gives them (or a test)."""

    steps: int = 20
    guidance: float = 4.0
    prompt: str = ""  # what the photo shows
    positive: str | None = None  # the quality prompt; None or empty: the model's own
    negative: str | None = None
    colour_fix: str = "wavelet"  # colourfix.KINDS
    seed: int = 0
    tile: int = 512  # image pixels; 0 = the plan's largest window

    def prompts(self, positive: str, negative: str) -> tuple[str, str]:
        """(what to steer towards, what away from): the user's prompt before the quality
        prompt, the model's defaults where the request leaves them empty."""
        text = ", ".join(t for t in (self.prompt.strip(), self.positive or positive) if t)
        return text, self.negative or negative

    @classmethod
    def from_request(cls, req: Any) -> Sampling:
        return cls(
            steps=req.diffusion_steps,
            guidance=req.guidance,
            prompt=req.prompt,
            positive=req.positive_prompt,
            negative=req.negative_prompt,
            colour_fix=req.colour_fix,
            seed=req.seed,
            tile=req.tile,
        )


DEFAULT = Sampling()


def snapshot_root(path: str, local: Path) -> Path:
    """The snapshot folder a file of a diffusers-format repo lies in (its repo path taken off)."""
    return local.parents[len(Path(path).parts) - 1]


@contextmanager
def on_device(offload: str, device: str, *modules: Any) -> Iterator[None]:
    """With model offload, the modules visit the GPU only for the block's work."""
    if offload != "model":
        yield
        return
    for m in modules:
        m.to(device)
    try:
        yield
    finally:
        for m in modules:
            m.to("cpu")


def place(modules: list[Any], device: str, offload: str) -> str:
    """Freeze the loaded parts and put each where it waits: on the device, or on the CPU to
    visit the GPU under `model` offload. Returns the offload that applies (none on the CPU)."""
    gpu = device.startswith("cuda")
    for m in modules:
        m.eval()
        m.requires_grad_(False)
        m.to("cpu" if offload == "model" or not gpu else device)
    return offload if gpu else "none"


class DiffusionModel:
    """Shared properties of a loaded DiffBIR / SUPIR (a dataclass with vae, tiled, offload,
    device). LATENT_TILE: the sampling window of the tiled variant, in latent pixels."""

    LATENT_TILE = 64
    vae: Any
    tiled: bool
    offload: str
    device: str

    @property
    def vae_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def multiple(self) -> int:
        """What a latent window's sides must be a multiple of (1: any size)."""
        return 1

    def latent_window(self, tile: int) -> int:
        """The sampling window in latent pixels: the request's tile (image pixels), capped by
        what the plan allows (the tiled variant's LATENT_TILE, else twice that); 0 = the cap."""
        cap = self.LATENT_TILE if self.tiled else 2 * self.LATENT_TILE
        w = max(8, min(cap, tile // self.vae_factor)) if tile > 0 else cap
        m = self.multiple
        return max(m, w // m * m)

    def on_device(self, *modules: Any):
        return on_device(self.offload, self.device, *modules)


def windows(h: int, w: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Overlapping (y0, y1, x0, x1) latent windows covering h x w; the last ones flush with the edge."""

    def starts(n: int) -> list[int]:
        if n <= tile:
            return [0]
        step = tile - overlap
        out = list(range(0, n - tile + 1, step))
        if out[-1] != n - tile:
            out.append(n - tile)
        return out

    return [(y, min(y + tile, h), x, min(x + tile, w)) for y in starts(h) for x in starts(w)]


def blend_weights(wins, shape, device, dtype) -> list[Any]:
    """Per-window Gaussian weights, normalised so they sum to one at every latent pixel."""
    import torch

    if len(wins) == 1:
        return [torch.ones((), device=device, dtype=dtype)]
    total = torch.zeros(tuple(shape), dtype=torch.float32)
    raw = []
    for y0, y1, x0, x1 in wins:
        yy = torch.linspace(-1, 1, y1 - y0)[:, None]
        xx = torch.linspace(-1, 1, x1 - x0)[None, :]
        g = torch.exp(-(yy**2 + xx**2) / (2 * 0.3**2))
        total[y0:y1, x0:x1] += g
        raw.append(g)
    return [
        (g / total[y0:y1, x0:x1]).to(device, dtype)
        for g, (y0, y1, x0, x1) in zip(raw, wins, strict=True)
    ]


# ---- the chain's texture slot ---------------------------------------------------------------


def installed(box: Any, kind: str) -> list[Any]:
    """The loaded diffusion models of one kind (its class name: "DiffBIR", "SUPIR")."""
    return [m for m in box.diffusion.values() if type(m).__name__ == kind]


def register(step_id: str, label: str, kind: str, rank: int, missing: str) -> None:
    """Add `step_id` to the chain's texture steps: it runs the installed model of `kind` with
    the request's diffusion settings; `missing` says what to do when none is installed."""
    from .chain import Textured, TextureStep, register_texture

    def unavailable(box: Any, req: Any) -> str | None:
        if not installed(box, kind):
            return missing
        if req is not None and not req.texture and req.upscaler:
            return "the request names an upscaler, so the upscaler does this step."
        return None

    def run(box: Any, rgb: np.ndarray, req: Any, report: Callable[..., None]) -> Any:
        model = installed(box, kind)[0]
        canvas, facts = model.restore(
            rgb, req.scale, Sampling.from_request(req), report=lambda f, m="": report(f, m)
        )
        return Textured(canvas, req.scale, {step_id: {"model": model.model_id, **facts}})

    register_texture(
        TextureStep(id=step_id, label=label, rank=rank, unavailable=unavailable, run=run)
    )
