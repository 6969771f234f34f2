"""The `restore` task: the seed's old-photo chain (chain.py) - defects -> global restoration ->
texture (upscale) -> faces -> colour - each step switchable and with its model, EXIF and
ICC kept."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Literal

import numpy as np
from appkit import images, progress
from appkit.errors import BadRequest
from appkit.jobs import Job
from appkit.outputs import output_stem
from appkit.runtime import Runtime, TaskResult
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from . import __version__, chain, colourfix, defects, faces
from .loading import Toolbox
from .tiling import tiles

MAX_OUTPUT_PIXELS = 200_000_000


class RestoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image: str = Field(exclude=True, description="the photo, base64 (or a data: URL)")
    mask: str | None = Field(
        None, exclude=True, description="optional defect mask, base64; white = fill"
    )
    filename: str | None = Field(
        None, max_length=255, description="the photo's file name: the result is named after it"
    )
    scratches: bool = Field(True, description="find scratches and dust automatically")
    sensitivity: float = Field(
        0.5, ge=0, le=1, description="scratch detection: 0 cautious .. 1 eager"
    )
    scratch_detector: Literal["auto", "model", "builtin"] = Field(
        "auto",
        description="model = the old-photo scratch U-Net, builtin = streak/speck filter, "
        "auto = the U-Net when it is installed",
    )
    inpaint: bool = Field(True, description="fill scratches / the mask with LaMa")
    global_restore: bool | None = Field(
        None,
        description="remove film grain, fading and blur with the old-photo global restoration "
        "(BOPBTL); default: when it is installed",
    )
    global_setting: Literal["auto", "quality", "scratch"] = Field(
        "auto",
        description="BOPBTL's setting: quality (after LaMa fills the scratches) or scratch (takes "
        "the scratch mask and fills the scratches itself, from the rest of the photo, instead of "
        "LaMa); auto = scratch when the photo has scratches to fill and it is installed",
    )
    faces: bool = Field(True, description="restore faces")
    face_model: str | None = Field(
        None,
        description="model id or gfpgan / codeformer / gpen / restoreformer / restoreformer++; "
        "default (or auto): GFPGAN, else RestoreFormer++, CodeFormer, GPEN, RestoreFormer",
    )
    fidelity: float = Field(
        0.5, ge=0, le=1, description="CodeFormer w: 0 = most repair, 1 = most faithful"
    )
    face_boxes: list[list[float]] | None = Field(
        None, description="[[x0, y0, x1, y1], ...]: skip detection"
    )
    face_threshold: float = Field(0.9, gt=0, lt=1)
    max_faces: int = Field(
        20, ge=1, le=100, description="restore at most this many faces (largest first)"
    )
    upscale: bool = Field(True, description="upscale the whole photo (the texture step)")
    texture: str | None = Field(
        None,
        max_length=64,
        description="the texture step: upscaler (Real-ESRGAN / SwinIR) or another installed "
        "one; default: the best that is installed and fits this machine",
    )
    scale: int = Field(
        4, description="2 or 4; 4 by default: a default install has the x4 upscaler only"
    )
    upscaler: str | None = Field(
        None, description="model id; default: the installed one of that scale"
    )
    prompt: str = Field(
        "", max_length=500, description="DiffBIR / SUPIR: what the photo shows (optional)"
    )
    positive_prompt: str | None = Field(
        None,
        max_length=1000,
        description="DiffBIR / SUPIR: how the result should look, added after the prompt; "
        "default (empty): the model's own quality prompt (SUPIR: the paper's)",
    )
    negative_prompt: str | None = Field(
        None,
        max_length=1000,
        description="DiffBIR / SUPIR: what the result should not look like; default (empty): "
        "the model's own (SUPIR: the paper's)",
    )
    colour_fix: colourfix.Kind = Field(
        "wavelet",
        description="DiffBIR / SUPIR: match the result's colours to the cleaned photo's - "
        "wavelet (broad colour from the photo, fine detail from the model), adain (each "
        "channel's mean and spread), none (as sampled)",
    )
    diffusion_steps: int = Field(20, ge=1, le=100, description="DiffBIR / SUPIR: sampling steps")
    guidance: float = Field(
        4.0, ge=1, le=15, description="DiffBIR / SUPIR: how strongly the prompt steers"
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="DiffBIR / SUPIR: the noise seed")
    tile: int = Field(
        512, ge=0, le=4096, description="tile size in pixels (0 = whole image at once)"
    )
    tile_overlap: int = Field(16, ge=0, le=256)
    colour: bool = Field(False, description="colourise last with DDColor (installed on request)")
    colour_model: str | None = Field(None, max_length=128, description="model id of a DDColor")
    colour_strength: float = Field(1.0, ge=0, le=1, description="0 = own colour, 1 = DDColor's")
    colour_size: int = Field(
        512, ge=128, le=1024, description="the square size DDColor works at (a multiple of 32)"
    )
    return_mask: bool = Field(False, description="also save the defect mask")

    @field_validator("texture")
    @classmethod
    def _auto_is_open(cls, value: str | None) -> str | None:
        """ "auto" leaves the choice to the chain, as leaving it out does."""
        return None if value in (None, "", "auto") else value

    _decoded: Any = PrivateAttr(default=None)
    _mask: Any = PrivateAttr(default=None)


def check(runtime: Runtime, req: RestoreRequest) -> None:
    """Decode before queueing, so a bad file is a 400 at once, never a crash in the worker."""
    req._decoded = images.decode_b64(req.image)
    if req.mask:
        req._mask = images.decode_b64(req.mask, "mask")
    if req.texture and req.texture not in chain.TEXTURE:
        raise BadRequest(
            f"There is no texture step '{req.texture}'. Known: {', '.join(sorted(chain.TEXTURE))}."
        )
    if req.colour and req.colour_size % 32:
        raise BadRequest(f"colour_size must be a multiple of 32, not {req.colour_size}.")
    if req.scale not in (2, 4):
        raise BadRequest(f"scale must be 2 or 4, not {req.scale}.")
    w, h = req._decoded.size
    if req.upscale and w * h * req.scale**2 > MAX_OUTPUT_PIXELS:
        raise BadRequest(
            f"Upscaling {w}x{h} by {req.scale} would make {w * h * req.scale**2 / 1e6:.0f} "
            f"megapixels (the limit is {MAX_OUTPUT_PIXELS / 1e6:.0f}); use a smaller scale or image."
        )


def _tile_count(rgb: np.ndarray, tile: int) -> int:
    return len(tiles(rgb.shape[0], rgb.shape[1], tile))


def process(
    box: Toolbox,
    rgb: np.ndarray,
    req: RestoreRequest,
    mask: np.ndarray | None = None,
    report=lambda f, m="": None,
) -> tuple[np.ndarray, dict[str, Any], np.ndarray | None]:
    """The pipeline on an upright RGB uint8 array; returns (result, facts, defect mask)."""
    facts: dict[str, Any] = {"steps": [], "timings": {}}
    device = box.device
    started = time.perf_counter()
    defect = None
    if req.scratches or mask is not None:
        defect = np.zeros(rgb.shape[:2], np.uint8)
        if req.scratches:
            report(0.05, "finding scratches")
            found, facts["scratch_detector"] = defects.find(
                box.scratch, box.scratch_id, rgb, req.sensitivity, req.scratch_detector
            )
            defect |= found
            facts["steps"].append("scratches")
        if mask is not None:
            defect |= mask
            facts["steps"].append("mask")
        facts["defect_pixels"] = int((defect > 0).sum())
    fill = bool(req.inpaint and defect is not None and defect.any())
    restorer = chain.pick_global(box, req.global_restore, req.global_setting, fill)
    # BOPBTL's scratch setting fills the scratches itself, in its latent mapping: no LaMa then.
    by_global = fill and restorer is not None and restorer[1].mask_aware
    if fill and not by_global:
        lama = box.by_purpose("Inpainting")
        if not lama:
            raise BadRequest(
                "No inpainting model (LaMa) is installed; reinstall the restorer, or switch inpaint off."
            )
        net = next(iter(lama.values()))
        pieces = progress.Pieces(
            progress.span(report, 0.1, 0.3, "filling scratches"), _tile_count(rgb, req.tile)
        )
        pieces.inner(0.0)
        with progress.layers(net.descriptor.model, pieces.inner):
            rgb = defects.inpaint(net, rgb, defect, device, req.tile, progress=pieces.advance)
        facts["steps"].append("inpaint")
    facts["timings"]["defects_s"] = round(time.perf_counter() - started, 3)

    t = time.perf_counter()
    if restorer is not None:
        global_id, net = restorer
        words = "filling scratches, removing grain" if by_global else "removing grain"
        lo = 0.1 if by_global else 0.3  # it does LaMa's share too
        one = progress.span(report, lo, 0.35, f"{words}, fading and blur")
        one(0.0)
        with progress.layers(net.modules, one):
            rgb = net(rgb, defect if by_global else None)
        facts["steps"].append("global")
        facts["global_restoration"] = global_id
        facts["global_setting"] = net.setting
        if by_global:
            facts["scratches_filled_by"] = global_id
    facts["timings"]["global_s"] = round(time.perf_counter() - t, 3)

    found: list = []
    face_net = None
    if req.faces:
        face_net = chain.pick_face(box, req.face_model)
        if req.face_boxes is not None:
            found = faces.from_boxes(req.face_boxes)
        elif box.detector is not None:
            report(0.35, "finding faces")  # one quick pass of the detector
            found = box.detector.detect(rgb, threshold=req.face_threshold)
        else:
            raise BadRequest(
                "The face detector is not installed; give face_boxes, reinstall the restorer, "
                "or switch faces off."
            )
        found = sorted(
            found, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]), reverse=True
        )
        facts["faces_found"] = len(found)
        found = found[: req.max_faces]
        facts["face_model"] = face_net.model_id
    aligned = [faces.align(rgb, f) for f in found]

    t = time.perf_counter()
    scale = 1
    hi = 0.8 if face_net else 0.95
    if req.colour:
        hi -= 0.1
    if req.upscale:
        step = chain.pick_texture(box, req)
        done = step.run(box, rgb, req, chain.share(report, 0.35, hi, step.label))
        canvas, scale = done.canvas, done.scale
        facts["steps"].append("upscale")
        facts["texture"] = step.id
        facts.update(done.facts)
    else:
        canvas = rgb.copy()
    facts["timings"]["upscale_s"] = round(time.perf_counter() - t, 3)

    t = time.perf_counter()
    if face_net is not None:
        lo, top = hi, 0.85 if req.colour else 0.95
        for n, a in enumerate(aligned):
            one = progress.span(
                report,
                lo + (top - lo) * n / len(aligned),
                lo + (top - lo) * (n + 1) / len(aligned),
                f"restoring face {n + 1} of {len(aligned)}",
            )
            one(0.0)
            with progress.layers(face_net.descriptor.model, one):
                faces.paste(
                    canvas, faces.restore(face_net, a.crop, device, req.fidelity), a.matrix, scale
                )
        facts["steps"].append("faces")
        facts["faces"] = [{"box": [round(v, 1) for v in a.box]} for a in aligned]
    facts["timings"]["faces_s"] = round(time.perf_counter() - t, 3)

    if req.colour:
        t = time.perf_counter()
        canvas, facts["colour_model"] = chain.colourise(
            box,
            canvas,
            req.colour_model,
            req.colour_strength,
            req.colour_size,
            chain.share(report, 0.85, 0.97, "colourising"),
        )
        facts["steps"].append("colour")
        facts["timings"]["colour_s"] = round(time.perf_counter() - t, 3)
    return canvas, facts, defect


def run(runtime: Runtime, box: Toolbox, req: RestoreRequest, job: Job) -> TaskResult:
    from PIL import Image

    src = req._decoded or images.decode_b64(req.image)
    rgb = np.asarray(src.image.convert("RGB"))
    mask = None
    if req.mask:
        mask = defects.user_mask((req._mask or images.decode_b64(req.mask, "mask")).image, src.size)
    result, facts, defect = process(box, rgb, req, mask, job.report)
    # A grey photo that was coloured stays RGB (finish keeps a grey input grey otherwise).
    keep = replace(src, image=Image.new("RGB", (1, 1))) if "colour" in facts["steps"] else src
    out = images.finish(Image.fromarray(result), keep)
    params = {**req.model_dump(mode="json"), "steps": facts["steps"], "input_size": list(src.size)}
    outputs = runtime.settings.outputs
    stem = output_stem(req.filename, "restored")
    files = [images.save_png(out, outputs, stem, params, f"Darkroom restorer {__version__}", src)]
    if req.return_mask and defect is not None:  # named after the result it belongs to
        files.append(
            images.save_png(
                images.to_stored_orientation(Image.fromarray(defect), src.orientation),
                outputs,
                files[0].stem + "-mask",
                params,
                f"Darkroom restorer {__version__}",
            )
        )
    return TaskResult(
        files=[p.relative_to(outputs).as_posix() for p in files],
        data={**facts, "size": list(out.size)},
    )
