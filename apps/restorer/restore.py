"""The `restore` task: defects -> upscale -> faces, each step switchable, EXIF and ICC kept."""

from __future__ import annotations

import time
from typing import Any, Literal

import numpy as np
from appkit import images, progress
from appkit.errors import BadRequest
from appkit.jobs import Job
from appkit.outputs import output_stem
from appkit.runtime import Runtime, TaskResult
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from . import __version__, defects, faces
from .loading import Net, Toolbox
from .tiling import run_tiled, tiles

FACE_ARCHES = {"gfpgan": "GFPGAN", "codeformer": "CodeFormer", "restoreformer": "RestoreFormer"}
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
    faces: bool = Field(True, description="restore faces")
    face_model: str | None = Field(
        None, description="model id or gfpgan / codeformer / restoreformer"
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
    upscale: bool = Field(True, description="upscale the whole photo")
    scale: int = Field(
        4, description="2 or 4; 4 by default: a default install has the x4 upscaler only"
    )
    upscaler: str | None = Field(
        None, description="model id; default: the installed one of that scale"
    )
    texture: Literal["auto", "diffbir", "upscaler"] = Field(
        "auto",
        description="how the upscale rebuilds texture: diffbir = Stable Diffusion with DiffBIR's "
        "IRControlNet (slow, needs its GPU), upscaler = Real-ESRGAN / SwinIR, "
        "auto = DiffBIR when it is installed",
    )
    prompt: str = Field("", max_length=500, description="DiffBIR: what the photo shows (optional)")
    diffusion_steps: int = Field(20, ge=1, le=100, description="DiffBIR: sampling steps")
    guidance: float = Field(4.0, ge=1, le=15, description="DiffBIR: how strongly the prompt steers")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="DiffBIR: the noise seed")
    tile: int = Field(
        512, ge=0, le=4096, description="tile size in pixels (0 = whole image at once)"
    )
    tile_overlap: int = Field(16, ge=0, le=256)
    return_mask: bool = Field(False, description="also save the defect mask")

    _decoded: Any = PrivateAttr(default=None)
    _mask: Any = PrivateAttr(default=None)


def _pick_face(box: Toolbox, wanted: str | None) -> Net:
    found = box.by_purpose("FaceSR")
    if not found:
        raise BadRequest(
            "No face model is installed; reinstall the restorer with GFPGAN, or switch faces off."
        )
    if wanted:
        if wanted in found:
            return found[wanted]
        arch = FACE_ARCHES.get(wanted.lower())
        for net in found.values():
            if net.arch == arch:
                return net
        raise BadRequest(
            f"The face model '{wanted}' is not installed. Installed: {', '.join(sorted(found))}. "
            "CodeFormer is non-commercial and installed only on request "
            "(`darkroom install restorer --models gfpgan,codeformer,face-detection,realesrgan-x4,lama`)."
        )
    for net in found.values():
        if net.arch == "GFPGAN":
            return net
    return next(iter(found.values()))


def _pick_upscaler(box: Toolbox, wanted: str | None, scale: int) -> Net:
    found = box.by_purpose("SR")
    if wanted:
        if wanted not in found:
            raise BadRequest(
                f"The upscaler '{wanted}' is not installed. Installed: {', '.join(sorted(found)) or 'none'}."
            )
        return found[wanted]
    same = [n for n in found.values() if n.scale == scale]
    if same:
        return same[0]
    if not found:
        raise BadRequest(
            "No upscaler is installed; reinstall the restorer with Real-ESRGAN, or switch upscaling off."
        )
    have = ", ".join(f"{k} (x{n.scale})" for k, n in found.items())
    raise BadRequest(
        f"No x{scale} upscaler is installed ({have}); pick scale {next(iter(found.values())).scale}."
    )


def texture_model(box: Toolbox, req: RestoreRequest):
    """The DiffBIR model the texture step uses, or None for the upscaler (a sentence when asked
    for DiffBIR and it is not installed)."""
    if req.texture == "upscaler" or (req.texture == "auto" and req.upscaler):
        return None
    if box.diffusion:
        return next(iter(box.diffusion.values()))
    if req.texture == "diffbir":
        raise BadRequest(
            "DiffBIR is not installed, so texture: diffbir cannot run; install it with "
            "`darkroom install restorer --models "
            "gfpgan,face-detection,realesrgan-x4,lama,scratch-detector,diffbir` (it needs an NVIDIA "
            "GPU with 8 GB), "
            "or use texture: upscaler."
        )
    return None


def check(runtime: Runtime, req: RestoreRequest) -> None:
    """Decode before queueing, so a bad file is a 400 at once, never a crash in the worker."""
    req._decoded = images.decode_b64(req.image)
    if req.mask:
        req._mask = images.decode_b64(req.mask, "mask")
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
    if req.inpaint and defect is not None and defect.any():
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

    found: list = []
    face_net = None
    if req.faces:
        face_net = _pick_face(box, req.face_model)
        if req.face_boxes is not None:
            found = faces.from_boxes(req.face_boxes)
        elif box.detector is not None:
            report(0.3, "finding faces")  # one quick pass of the detector
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
    canvas = rgb
    diffusion = texture_model(box, req) if req.upscale else None
    if diffusion is not None:
        span = progress.span(report, 0.35, 0.8 if face_net else 0.95, f"DiffBIR x{req.scale}")
        canvas, more = diffusion.restore(
            rgb,
            req.scale,
            steps=req.diffusion_steps,
            guidance=req.guidance,
            prompt=req.prompt,
            seed=req.seed,
            tile=req.tile,
            report=lambda f, m="": span(f),
        )
        scale = req.scale
        facts["steps"].append("texture")
        facts["texture"] = {"model": diffusion.model_id, **more}
    elif req.upscale:
        up = _pick_upscaler(box, req.upscaler, req.scale)
        d = up.descriptor
        dtype = next(d.model.parameters()).dtype
        pieces = progress.Pieces(
            progress.span(report, 0.35, 0.8 if face_net else 0.95, f"upscaling x{up.scale}"),
            _tile_count(rgb, req.tile),
        )
        pieces.inner(0.0)
        with progress.layers(d.model, pieces.inner):  # per tile, and through each tile's layers
            canvas = run_tiled(
                lambda x, _m: d(x),
                rgb,
                up.scale,
                req.tile,
                req.tile_overlap,
                device,
                dtype,
                progress=pieces.advance,
            )
        scale = up.scale
        facts["steps"].append("upscale")
        facts["upscaler"] = up.model_id
    else:
        canvas = rgb.copy()
    facts["timings"]["upscale_s"] = round(time.perf_counter() - t, 3)

    t = time.perf_counter()
    if face_net is not None:
        lo = 0.8 if req.upscale else 0.35
        for n, a in enumerate(aligned):
            one = progress.span(
                report,
                lo + (0.95 - lo) * n / len(aligned),
                lo + (0.95 - lo) * (n + 1) / len(aligned),
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
    return canvas, facts, defect


def run(runtime: Runtime, box: Toolbox, req: RestoreRequest, job: Job) -> TaskResult:
    from PIL import Image

    src = req._decoded or images.decode_b64(req.image)
    rgb = np.asarray(src.image.convert("RGB"))
    mask = None
    if req.mask:
        mask = defects.user_mask((req._mask or images.decode_b64(req.mask, "mask")).image, src.size)
    result, facts, defect = process(box, rgb, req, mask, job.report)
    out = images.finish(Image.fromarray(result), src)
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
