"""The `generate` task: prompt and settings in, PNGs (with their parameters inside) out."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from appkit.errors import AppError, BadRequest
from appkit.jobs import Job
from appkit.outputs import save_png
from appkit.runtime import Runtime, TaskResult
from pydantic import BaseModel, ConfigDict, Field

from . import __version__
from .loading import Loaded, ModelInfo, inspect, set_tiling

TILE_ABOVE_PIXELS = 1024 * 1024  # decode larger images in tiles
MAX_SEED = 2**32 - 1


class GenerateRequest(BaseModel):
    """POST /api/generate. Unset steps/guidance/size take the model's defaults."""

    model_config = ConfigDict(extra="forbid", strict=True)

    prompt: str = Field(min_length=1, max_length=4000)
    negative_prompt: str = Field("", max_length=4000, description="Stable Diffusion 3.5 only")
    width: int | None = Field(None, ge=64, le=2048, multiple_of=16)
    height: int | None = Field(None, ge=64, le=2048, multiple_of=16)
    steps: int | None = Field(None, ge=1, le=100)
    guidance: float | None = Field(None, ge=0.0, le=30.0)
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="None: a random seed")
    count: int = Field(1, ge=1, le=8, description="Images to make, seeds seed, seed+1, ...")
    model: str | None = Field(
        None, description="A model id from /api/info; default: the loaded one"
    )


def model_info(runtime: Runtime, model_id: str | None) -> ModelInfo:
    key, choice = runtime.settings.models.get(model_id or runtime.loaded_model)
    return inspect(key, choice)


def check(runtime: Runtime, req: GenerateRequest) -> None:
    """Refuse, before queueing, what the chosen model cannot do."""
    info = checked_info(runtime, req.model, "generate")
    if req.negative_prompt.strip() and not info.negative_prompt:
        raise BadRequest(
            f"{info.model_id} does not use a negative prompt; leave it empty or "
            "choose a Stable Diffusion 3.5, Lumina-Next or HunyuanDiT model."
        )


_TASK_WORDS = {
    "generate": "makes a picture from a prompt alone: use /api/generate",
    "inpaint": "repaints the masked part of a picture: use /api/inpaint with an image and a mask",
    "control": "follows a control image (edges or depth): use /api/control with a control image",
}


def checked_info(runtime: Runtime, model_id: str | None, task: str) -> ModelInfo:
    """The model's info, or a BadRequest when it does not serve `task` (or is unknown)."""
    try:
        info = model_info(runtime, model_id)
    except KeyError as exc:
        raise BadRequest(str(exc.args[0]), 404) from None
    if info.task != task:
        fits = [
            k
            for k, c in runtime.settings.models.models.items()
            if task_of(k, c) == task and k != info.model_id
        ]
        other = f" Installed models for this: {', '.join(fits)}." if fits else ""
        raise BadRequest(f"{info.model_id} {_TASK_WORDS[info.task]}.{other}")
    return info


def task_of(model_id: str, choice: Any) -> str | None:
    try:
        return inspect(model_id, choice).task
    except AppError:  # an incomplete model is reported when it is chosen, not here
        return None


def settings_for(req: GenerateRequest, info: ModelInfo) -> dict[str, Any]:
    d = info.defaults
    return {
        "model": info.model_id,
        "prompt": req.prompt,
        "negative_prompt": req.negative_prompt if info.negative_prompt else "",
        "width": req.width or d["width"],
        "height": req.height or d["height"],
        "steps": req.steps if req.steps is not None else d["steps"],
        "guidance": req.guidance if req.guidance is not None else d["guidance"],
    }


def run(runtime: Runtime, loaded: Loaded, req: GenerateRequest, job: Job) -> TaskResult:
    params = settings_for(req, loaded.info)
    return render(runtime, loaded, params, {}, job, req.seed, req.count)


def render(
    runtime: Runtime,
    loaded: Loaded,
    params: dict[str, Any],
    extra: dict[str, Any],
    job: Job,
    seed: int | None,
    count: int,
    finish: Callable[[Any], Any] | None = None,
) -> TaskResult:
    """Run the pipeline `count` times (seeds seed, seed+1, ...), save each PNG with its
    parameters. `extra`: the task's own pipeline arguments (image, mask, control image);
    `finish`: what to do with each picture before it is saved (paste the kept pixels back)."""
    import torch

    pipe = loaded.pipe
    info = loaded.info
    seed = seed if seed is not None else secrets.randbelow(MAX_SEED + 1)
    steps = params["steps"]
    set_tiling(pipe, params["width"] * params["height"] > TILE_ABOVE_PIXELS)
    files, seeds = [], []
    for i in range(count):
        image_seed = (seed + i) % (MAX_SEED + 1)

        # Each image's share: the denoising steps to 90 %, then decoding the latents (the VAE, slow
        # on a CPU for large images) the rest, so the bar does not sit at 100 % while it decodes.
        def on_step(
            _pipe: Any, step: int, _t: Any, kwargs: dict[str, Any], i: int = i
        ) -> dict[str, Any]:
            if step + 1 < steps:
                job.report(
                    (i + 0.9 * (step + 1) / steps) / count,
                    f"image {i + 1}/{count}, step {step + 1}/{steps}",
                )
            else:
                job.report((i + 0.9) / count, f"image {i + 1}/{count}: decoding the picture")
            return kwargs

        job.report(i / count, f"image {i + 1}/{count}: reading the prompt")

        call: dict[str, Any] = dict(
            prompt=params["prompt"],
            width=params["width"],
            height=params["height"],
            num_inference_steps=steps,
            guidance_scale=params["guidance"],
            output_type="pil",
            generator=torch.Generator("cpu").manual_seed(image_seed),
            callback_on_step_end=on_step,
            **extra,
        )
        if info.flux_like:
            call["max_sequence_length"] = info.defaults.get("max_sequence_length", 512)
        elif params["negative_prompt"]:
            call["negative_prompt"] = params["negative_prompt"]
        if info.family == "lumina":
            call["clean_caption"] = False  # needs bs4 + ftfy, which the env does not carry
        if info.family == "hunyuan":
            # HunyuanDiT snaps sizes to the shapes it was trained on; a model whose own size is
            # small (the tests' tiny one) is asked for the size as given.
            call["use_resolution_binning"] = info.size >= 512
        with torch.inference_mode():
            image = pipe(**call).images[0]
        if finish is not None:
            image = finish(image)
        record = {
            **params,
            "seed": image_seed,
            "variant": loaded.choice.variant,
            "precision": loaded.choice.precision,
            "app": f"darkroom-generator {__version__}",
        }
        stem = f"{time.strftime('%H%M%S')}-{job.id}-{i}"
        path = save_png(
            image, runtime.settings.outputs, stem, record, f"Darkroom generator {__version__}"
        )
        files.append(path.relative_to(runtime.settings.outputs).as_posix())
        seeds.append(image_seed)
        job.report((i + 1) / count, f"image {i + 1}/{count} saved")
    return TaskResult(files=files, data={"seeds": seeds, "settings": params})
