"""The generator app: text-to-image with FLUX.1 and Stable Diffusion 3.5 on diffusers."""

__version__ = "0.1.0"
