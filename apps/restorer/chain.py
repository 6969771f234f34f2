"""The old-photo chain the seed recommends, as named steps each with its choice of model:

    defects (scratch U-Net + LaMa) -> global (BOPBTL's restoration: the "quality" setting, or
    the "scratch" one that fills the scratch mask itself instead of LaMa) -> texture (an upscaler,
    or a diffusion restorer) -> faces (GFPGAN / CodeFormer / GPEN / RestoreFormer(++) /
    BOPBTL's face enhancer) -> colour

The texture step is a slot: any module can add a `TextureStep` with `register_texture`
(the built-in one is spandrel's upscalers: Real-ESRGAN, SwinIR). A request names one by id
or leaves it to `pick_texture`, which takes the best-ranked step that is installed and fits
this machine, and says why the others were passed over. Modules listed in PLUGINS are
imported when they exist, so a new step is one module that calls `register_texture`:

    from .chain import Textured, TextureStep, register_texture

    def unavailable(box, req):  # None, or why not (not installed; "needs 8 GB of GPU memory")
    def run(box, rgb, req, report) -> Textured:  # report(0..1, message) for its own share
    register_texture(TextureStep("heavy", "Heavy", rank=10, unavailable=..., run=...))

A diffusion restorer (DiffBIR, SUPIR) registers through difftexture.register, which writes
both for a model class loaded into `box.diffusion`.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from appkit import progress
from appkit.errors import BadRequest

from .loading import Net, Toolbox
from .tiling import run_tiled, tiles

STEPS = ("defects", "global", "texture", "faces", "colour")
PLUGINS = ("diffbir", "supir")  # restorer.<name> modules that register texture steps
# The seed: "Faces, natural look: GFPGAN + RestoreFormer++"; CodeFormer is opt-in (licence).
FACE_PREFERENCE = (
    "GFPGAN",
    "RestoreFormer++",
    "CodeFormer",
    "GPEN",
    "RestoreFormer",
    "BOPBTL-Face",
)
FACE_NAMES = {
    "gfpgan": "GFPGAN",
    "codeformer": "CodeFormer",
    "restoreformer": "RestoreFormer",
    "restoreformer++": "RestoreFormer++",
    "gpen": "GPEN",
    "old-photo-face": "BOPBTL-Face",
}


@dataclass
class Textured:
    """What a texture step gives back: the new canvas, its scale to the input, facts to report."""

    canvas: np.ndarray
    scale: int
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TextureStep:
    """One way to upscale and rebuild texture.

    `unavailable(box, req)` says in a sentence why it cannot run here (not installed, too
    little GPU memory), or None when it can (req is None when /api/info asks); `run(box, rgb, req, report)` does it, reporting
    progress as fractions 0..1 of its own share."""

    id: str
    label: str
    rank: int  # higher is preferred when the request leaves the choice open
    unavailable: Callable[[Toolbox, Any], str | None]
    run: Callable[[Toolbox, np.ndarray, Any, progress.Report], Textured]


TEXTURE: dict[str, TextureStep] = {}


def share(report: progress.Report, lo: float, hi: float, label: str) -> progress.Report:
    """A Report for one step's own 0..1, reported as lo..hi of the whole job."""

    def on(fraction: float, message: str = "") -> None:
        report(lo + (hi - lo) * min(1.0, max(0.0, fraction)), message or label)

    return on


def register_texture(step: TextureStep) -> None:
    TEXTURE[step.id] = step


def _load_plugins() -> None:
    for name in PLUGINS:
        module = f"{__package__}.{name}"
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)


def pick_texture(box: Toolbox, req: Any) -> TextureStep:
    """The step the request names, or the best-ranked one that can run; a sentence otherwise."""
    if req.texture:
        step = TEXTURE.get(req.texture)
        if step is None:
            raise BadRequest(
                f"There is no texture step '{req.texture}'. Known: {', '.join(sorted(TEXTURE))}."
            )
        why = step.unavailable(box, req)
        if why:
            raise BadRequest(f"{step.label} cannot run: {why}")
        return step
    reasons = []
    for step in sorted(TEXTURE.values(), key=lambda s: -s.rank):
        why = step.unavailable(box, req)
        if why is None:
            return step
        reasons.append(f"{step.label}: {why}")
    raise BadRequest(
        f"No upscaler can run ({' '.join(reasons)}) Reinstall the restorer with Real-ESRGAN, "
        "or switch upscaling off."
    )


def describe(box: Toolbox, req: Any) -> dict[str, Any]:
    """Each step's choices on this install: what can run, and why the others cannot."""
    faces = box.by_purpose("FaceSR")
    return {
        "steps": list(STEPS),
        "defects": {
            "scratch_detector": box.scratch_id or "builtin",
            "inpaint": bool(box.by_purpose("Inpainting")),
        },
        "global": sorted(box.restorers),
        "global_settings": describe_global(box),
        "texture": {
            s.id: {"label": s.label, "unavailable": s.unavailable(box, req)}
            for s in sorted(TEXTURE.values(), key=lambda s: -s.rank)
        },
        "faces": {k: n.arch for k, n in faces.items()},
        "colour": sorted(colour_nets(box)),
    }


# ---- faces -------------------------------------------------------------------------------


def pick_face(box: Toolbox, wanted: str | None) -> Net:
    """A model id, an architecture name (gfpgan, gpen, restoreformer++, ...) or the preferred one."""
    found = box.by_purpose("FaceSR")
    if not found:
        raise BadRequest(
            "No face model is installed; reinstall the restorer with GFPGAN, or switch faces off."
        )
    if wanted and wanted != "auto":
        if wanted in found:
            return found[wanted]
        arch = FACE_NAMES.get(wanted.lower())
        for net in found.values():
            if net.arch == arch:
                return net
        raise BadRequest(
            f"The face model '{wanted}' is not installed. Installed: {', '.join(sorted(found))}. "
            "Add one with `darkroom install restorer --models gfpgan,face-detection,"
            "realesrgan-x4,lama,<model>` (gpen, restoreformer-pp, old-photo-face; CodeFormer is "
            "non-commercial)."
        )
    for arch in FACE_PREFERENCE:
        for net in found.values():
            if net.arch == arch:
                return net
    return next(iter(found.values()))


# ---- global restoration --------------------------------------------------------------------


GLOBAL_SETTINGS = ("auto", "quality", "scratch")
GLOBAL_LABELS = {
    "quality": "quality (grain, fading, blur)",
    "scratch": "with scratches (fills them from the rest of the photo)",
}
GLOBAL_IDS = {"quality": "old-photo-global", "scratch": "old-photo-global-scratch"}


def pick_global(
    box: Toolbox, wanted: bool | None, setting: str = "auto", scratched: bool = False
) -> tuple[str, Any] | None:
    """(model id, restorer) of BOPBTL's global restoration, or None when it is switched off or
    (left open) not installed. Setting "auto": the scratch setting when the photo has
    scratches to fill and it is installed, else the quality setting, else whichever is there."""
    if wanted is False:
        return None
    by_setting: dict[str, tuple[str, Any]] = {}
    for model_id, restorer in sorted(box.restorers.items()):
        by_setting.setdefault(restorer.setting, (model_id, restorer))
    if setting != "auto":
        if setting not in by_setting:
            have = ", ".join(f"{GLOBAL_IDS.get(s, s)} ({s})" for s in by_setting) or "none"
            raise BadRequest(
                f"The old-photo global restoration's {setting} setting is not installed "
                f"(installed: {have}); add it with `darkroom install restorer --models gfpgan,"
                f"face-detection,realesrgan-x4,lama,{GLOBAL_IDS.get(setting, setting)}`, or set "
                "global_setting to auto."
            )
        return by_setting[setting]
    if not by_setting:
        if wanted:
            raise BadRequest(
                "The old-photo global restoration is not installed; add it with `darkroom install "
                "restorer --models gfpgan,face-detection,realesrgan-x4,lama,old-photo-global` "
                "(or old-photo-global-scratch, which also fills scratches), or switch "
                "global_restore off."
            )
        return None
    if scratched and "scratch" in by_setting:
        return by_setting["scratch"]
    return by_setting.get("quality") or next(iter(by_setting.values()))


def describe_global(box: Toolbox) -> dict[str, dict[str, Any]]:
    """Each setting: its label, the installed model that runs it (or null), what it takes."""
    installed = {r.setting: k for k, r in sorted(box.restorers.items(), reverse=True)}
    return {
        s: {
            "label": GLOBAL_LABELS[s],
            "model": installed.get(s),
            "uses_scratch_mask": s == "scratch",
        }
        for s in GLOBAL_SETTINGS[1:]
    }


# ---- colour --------------------------------------------------------------------------------


def colour_nets(box: Toolbox) -> dict[str, Net]:
    return {k: n for k, n in box.nets.items() if n.arch == "DDColor"}


def colourise(
    box: Toolbox, rgb: np.ndarray, wanted: str | None, strength: float, size: int, report
) -> tuple[np.ndarray, str]:
    """DDColor's chroma on the photo's own luminance (the colorizer app's method)."""
    from colorizer.colorize import colorize

    found = colour_nets(box)
    if not found:
        raise BadRequest(
            "No colour model (DDColor) is installed for the restorer; add `ddcolor` to its "
            "models, use the colorizer app, or switch colour off."
        )
    if wanted and wanted not in found:
        raise BadRequest(
            f"The colour model '{wanted}' is not installed. Installed: {', '.join(sorted(found))}."
        )
    model_id = wanted or next(iter(found))
    return colorize(found[model_id].descriptor, rgb, strength, size, report), model_id


# ---- the built-in texture step: spandrel's upscalers ------------------------------------------


def pick_upscaler(box: Toolbox, wanted: str | None, scale: int) -> Net:
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


def _upscaler_unavailable(box: Toolbox, req: Any) -> str | None:
    if not box.by_purpose("SR"):
        return "no upscaler (Real-ESRGAN, SwinIR) is installed."
    return None


def _upscale(box: Toolbox, rgb: np.ndarray, req: Any, report: progress.Report) -> Textured:
    up = pick_upscaler(box, req.upscaler, req.scale)
    d = up.descriptor
    dtype = next(d.model.parameters()).dtype
    pieces = progress.Pieces(
        progress.span(report, 0.0, 1.0, f"upscaling x{up.scale}"),
        len(tiles(rgb.shape[0], rgb.shape[1], req.tile)),
    )
    pieces.inner(0.0)
    with progress.layers(d.model, pieces.inner):  # per tile, and through each tile's layers
        canvas = run_tiled(
            lambda x, _m: d(x),
            rgb,
            up.scale,
            req.tile,
            req.tile_overlap,
            box.device,
            dtype,
            progress=pieces.advance,
        )
    return Textured(canvas, up.scale, {"upscaler": up.model_id})


register_texture(
    TextureStep(
        id="upscaler",
        label="Real-ESRGAN / SwinIR upscaler",
        rank=0,  # always fits (tiled): the fallback for heavier steps
        unavailable=_upscaler_unavailable,
        run=_upscale,
    )
)
_load_plugins()
