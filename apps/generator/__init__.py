"""The generator app on diffusers: text-to-image (FLUX.1, Stable Diffusion 3.5, Lumina-Next,
HunyuanDiT), inpainting (FLUX.1 Fill) and control images (FLUX.1 Canny / Depth)."""

__version__ = "0.1.0"
