"""The picture-in tasks: `inpaint` (FLUX.1 Fill: repaint the masked part, or extend the
canvas) and `control` (FLUX.1 Canny / Depth: a new picture that follows an edge or depth map).

Both take their pictures as base64 in JSON, as the restorer's tasks do. Inpainting pastes the
input's own pixels back outside the mask, so what the user did not paint over stays exactly
as it was (the VAE's round trip would otherwise soften it).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from appkit.errors import BadRequest
from appkit.images import decode_b64
from appkit.jobs import Job
from appkit.runtime import Runtime, TaskResult
from pydantic import BaseModel, ConfigDict, Field

from . import depth
from .edges import canny_image
from .generate import MAX_SEED, checked_info, render
from .loading import Loaded, ModelInfo

MULTIPLE = 16  # FLUX packs 2x2 latents of an 8x VAE: sides in multiples of 16


class _Common(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str = Field(min_length=1, max_length=4000)
    steps: int | None = Field(None, ge=1, le=100)
    guidance: float | None = Field(None, ge=0.0, le=100.0)
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="None: a random seed")
    count: int = Field(1, ge=1, le=8, description="Images to make, seeds seed, seed+1, ...")
    model: str | None = Field(None, description="A model id from /api/info")


class InpaintRequest(_Common):
    """POST /api/inpaint: repaint where the mask is white; black is kept.

    Outpainting: `expand` adds that many pixels on each side (left, top, right, bottom); the
    new border is painted by the model, with or without a mask on the picture itself."""

    image: str = Field(min_length=1, description="The picture, base64 (PNG, JPEG, WebP)")
    mask: str | None = Field(
        None, description="Same size as the picture, base64: white = repaint, black = keep"
    )
    expand: list[int] | None = Field(
        None, min_length=4, max_length=4, description="Pixels to add: left, top, right, bottom"
    )


class ControlRequest(_Common):
    """POST /api/control: a new picture that follows the control image's edges or depth."""

    control_image: str = Field(min_length=1, description="base64 picture")
    control: Literal["photo", "map"] | None = Field(
        None,
        description="photo (default): the app computes the map, Canny edges or a depth map "
        "(Depth Anything V2 Small); map: the picture is already an edge map (white on black) "
        "or a depth map (near = white).",
    )
    width: int | None = Field(None, ge=64, le=2048, multiple_of=16)
    height: int | None = Field(None, ge=64, le=2048, multiple_of=16)


def fit(width: int, height: int, pixels: int) -> tuple[int, int]:
    """The working size: the same shape, at most `pixels`, sides in multiples of 16."""
    scale = min(1.0, math.sqrt(pixels / (width * height)))
    w = max(MULTIPLE, int(width * scale) // MULTIPLE * MULTIPLE)
    h = max(MULTIPLE, int(height * scale) // MULTIPLE * MULTIPLE)
    return w, h


def _params(req: _Common, info: ModelInfo, width: int, height: int) -> dict[str, Any]:
    d = info.defaults
    return {
        "model": info.model_id,
        "prompt": req.prompt,
        "negative_prompt": "",
        "width": width,
        "height": height,
        "steps": req.steps if req.steps is not None else d["steps"],
        "guidance": req.guidance if req.guidance is not None else d["guidance"],
    }


# ---------------------------------------------------------------- inpaint


def check_inpaint(runtime: Runtime, req: InpaintRequest) -> None:
    """Refuse before queueing: the wrong model, nothing to repaint, or pictures that do not
    fit together (decoded here once more, so the caller gets a 400, not a failed job)."""
    info = checked_info(runtime, req.model, "inpaint")
    if req.mask is None and not any(req.expand or []):
        raise BadRequest(
            "Nothing to repaint: send a mask (white where the picture should change) or "
            "`expand` with the pixels to add on each side."
        )
    if req.expand is not None and any(not 0 <= e <= 2048 for e in req.expand):
        raise BadRequest(
            "expand takes four numbers of pixels from 0 to 2048: left, top, right, bottom."
        )
    prepare_inpaint(req, 2 * info.size * info.size)


def prepare_inpaint(req: InpaintRequest, pixels: int) -> tuple[Any, Any]:
    """(picture, mask) at the working size: the canvas expanded, the mask binary (L, 0/255)."""
    from PIL import Image, ImageOps

    source = decode_b64(req.image, "image").image.convert("RGB")
    if req.mask is not None:
        mask = decode_b64(req.mask, "mask")
        # A transparent layer with strokes on it (what a paint program exports): the strokes
        # are where the alpha is; an opaque picture: white is.
        painted = mask.alpha is not None and mask.alpha.getextrema()[0] < 255
        m = (mask.alpha if painted else mask.image).convert("L")
        if m.size != source.size:
            raise BadRequest(
                f"The mask is {m.size[0]}x{m.size[1]} pixels and the picture "
                f"{source.size[0]}x{source.size[1]}; send a mask of the picture's own size."
            )
        m = m.point(lambda v: 255 if v > 127 else 0)
    else:
        m = Image.new("L", source.size, 0)
    left, top, right, bottom = req.expand or [0, 0, 0, 0]
    if left or top or right or bottom:
        w, h = source.size
        size = (w + left + right, h + top + bottom)
        mean = tuple(int(c) for c in ImageOps.fit(source, (1, 1)).getpixel((0, 0)))
        canvas = Image.new("RGB", size, mean)
        canvas.paste(source, (left, top))
        border = Image.new("L", size, 255)
        border.paste(m, (left, top))
        source, m = canvas, border
    if m.getextrema()[1] == 0:
        raise BadRequest(
            "The mask is empty: paint over the part to repaint (white = repaint, black = keep)."
        )
    work = fit(*source.size, pixels)
    if work != source.size:
        source = source.resize(work, Image.Resampling.LANCZOS)
        m = m.resize(work, Image.Resampling.NEAREST)
    return source, m


def run_inpaint(runtime: Runtime, loaded: Loaded, req: InpaintRequest, job: Job) -> TaskResult:
    from PIL import Image

    info = loaded.info
    image, mask = prepare_inpaint(req, 2 * info.size * info.size)
    params = {**_params(req, info, *image.size), "expand": req.expand}

    def keep_unmasked(result: Any) -> Any:
        result = result.convert("RGB")
        if result.size != image.size:
            result = result.resize(image.size, Image.Resampling.LANCZOS)
        return Image.composite(result, image, mask)

    extra = {"image": image, "mask_image": mask}
    return render(runtime, loaded, params, extra, job, req.seed, req.count, keep_unmasked)


# ---------------------------------------------------------------- control


def check_control(runtime: Runtime, req: ControlRequest) -> None:
    info = checked_info(runtime, req.model, "control")
    if (req.control or "photo") == "photo" and info.defaults.get("control") == "depth":
        # A photo for FLUX.1 Depth: its depth estimator must be installed (a 400, not a job
        # that fails after queueing).
        depth.require(runtime.settings.models.get(info.model_id)[1])
    decode_b64(req.control_image, "control image")  # a bad picture is a 400, before queueing


def run_control(runtime: Runtime, loaded: Loaded, req: ControlRequest, job: Job) -> TaskResult:
    from PIL import Image

    info = loaded.info
    kind = info.defaults.get("control", "canny")
    picture = decode_b64(req.control_image, "control image").image.convert("RGB")
    width, height = (
        (req.width, req.height)
        if req.width and req.height
        else fit(*picture.size, 2 * info.size * info.size)
    )
    picture = picture.resize((width, height), Image.Resampling.LANCZOS)
    mode = req.control or "photo"
    if mode == "map":
        job.report(0.0, "reading the control map")
        control = picture
    elif kind == "depth":
        job.report(0.0, f"estimating depth with {depth.NAME}")
        control = depth.depth_image(picture, depth.require(loaded.choice), loaded.device)
    else:
        job.report(0.0, "making the edge map")
        control = canny_image(picture)
    params = {**_params(req, info, width, height), "control": kind, "control_from": mode}
    result = render(runtime, loaded, params, {"control_image": control}, job, req.seed, req.count)
    from appkit.outputs import save_png

    stem = f"{job.id}-control"
    path = save_png(control, runtime.settings.outputs, stem, params, "Darkroom generator")
    result.data["control_map"] = path.relative_to(runtime.settings.outputs).as_posix()
    return result
