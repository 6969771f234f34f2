"""The `colorize` task: DDColor paints chroma on a small grey copy; the photo keeps its own
luminance (L of Lab) and takes the model's a/b, blended with its own by `strength`, so a
faded colour photo is revived and a greyscale one coloured, at any size."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from appkit import images, progress
from appkit.errors import BadRequest
from appkit.jobs import Job
from appkit.outputs import output_stem
from appkit.runtime import Runtime, TaskResult
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from . import __version__, lab

WORK_SIDE = 1024  # the model sees a grey copy at most this large; chroma is upsampled


class ColorizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: str = Field(exclude=True, description="the photo, base64 (or a data: URL)")
    filename: str | None = Field(
        None, max_length=255, description="the photo's file name: the result is named after it"
    )
    model: str | None = Field(None, description="model id (default: the installed default)")
    strength: float = Field(
        1.0, ge=0, le=1, description="0 = the photo's own colour, 1 = the model's"
    )
    render_size: int = Field(512, ge=128, le=1024, description="the square size DDColor works at")

    _decoded: Any = PrivateAttr(default=None)


def check(runtime: Runtime, req: ColorizeRequest) -> None:
    req._decoded = images.decode_b64(req.image)
    if req.render_size % 32:
        raise BadRequest(f"render_size must be a multiple of 32, not {req.render_size}.")


def colorize(
    descriptor: Any,
    rgb: np.ndarray,
    strength: float = 1.0,
    render_size: int = 512,
    report: progress.Report | None = None,
) -> np.ndarray:
    """RGB uint8 in, RGB uint8 out: original L, a/b = mix of the photo's and DDColor's.

    `report(fraction, message)` hears how far DDColor's pass is, layer by layer."""
    import contextlib

    import torch
    import torch.nn.functional as F

    source = lab.rgb_to_lab(rgb)
    h, w = rgb.shape[:2]
    k = min(1.0, WORK_SIDE / max(h, w))
    small = source if k >= 1.0 else _resize(source, int(round(w * k)), int(round(h * k)))
    grey = lab.lab_to_rgb(
        np.stack([small[..., 0], np.zeros_like(small[..., 0]), np.zeros_like(small[..., 0])], -1)
    )
    model = descriptor.model
    model.input_size = (render_size, render_size)
    param = next(model.parameters())
    watch = (
        progress.layers(model, progress.span(report, 0.1, 0.9, "colourising"))
        if report is not None
        else contextlib.nullcontext()
    )
    with torch.inference_mode(), watch:
        x = torch.from_numpy(np.ascontiguousarray(grey[..., 0])).to(param.device)
        x = x.to(param.dtype).div_(255.0)[None, None]
        painted = descriptor(x)[0].float().clamp_(0, 1).permute(1, 2, 0).cpu().numpy()
    ab = lab.rgb_to_lab(painted)[..., 1:]
    if ab.shape[:2] != (h, w):
        t = torch.from_numpy(np.ascontiguousarray(ab)).permute(2, 0, 1)[None]
        ab = (
            F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)[0]
            .permute(1, 2, 0)
            .numpy()
        )
    s = float(strength)
    mixed = source.copy()
    mixed[..., 1:] = (1 - s) * source[..., 1:] + s * ab
    return lab.lab_to_rgb(mixed)


def _resize(arr: np.ndarray, w: int, h: int) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None]
    return F.interpolate(t, size=(h, w), mode="area")[0].permute(1, 2, 0).numpy()


def run(runtime: Runtime, loaded: Any, req: ColorizeRequest, job: Job) -> TaskResult:
    from PIL import Image

    src = req._decoded or images.decode_b64(req.image)
    job.report(0.05, "preparing the photo")
    started = time.perf_counter()
    out_rgb = colorize(
        loaded.descriptor,
        np.asarray(src.image.convert("RGB")),
        req.strength,
        req.render_size,
        job.report,
    )
    job.report(0.95, "saving")
    # A grey input becomes colour, so its output is RGB; a grey ICC profile would not fit and is left off.
    out = images.finish(
        Image.fromarray(out_rgb),
        images.Decoded(
            image=Image.new("RGB", (1, 1)),
            alpha=src.alpha,
            exif=src.exif,
            icc=src.icc,
            orientation=src.orientation,
            mode=src.mode,
            format=src.format,
        ),
    )
    params = {**req.model_dump(mode="json"), "model": loaded.model_id, "variant": loaded.variant}
    stem = output_stem(req.filename, "colorized")
    path = images.save_png(
        out, runtime.settings.outputs, stem, params, f"Darkroom colorizer {__version__}", src
    )
    return TaskResult(
        files=[path.relative_to(runtime.settings.outputs).as_posix()],
        data={
            "size": list(out.size),
            "model": loaded.model_id,
            "variant": loaded.variant,
            "seconds": round(time.perf_counter() - started, 3),
        },
    )
