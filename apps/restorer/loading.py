"""Load every model the plan chose, from the store's files, through spandrel.

The architecture of each file is detected by spandrel from its weights (not from its
name): face models (GFPGAN, RestoreFormer, CodeFormer), upscalers (ESRGAN / Real-ESRGAN,
SwinIR, ...), and LaMa for inpainting. CodeFormer lives in spandrel_extra_arches
(non-commercial licence): those architectures are registered only when a file needs them,
which only happens when the user opted in to such a model at install time. Two files are
not spandrel architectures: the RetinaFace detector (retinaface.py) and the old-photo
scratch U-Net (scratchnet.py); both are loaded strictly by their own modules. Nor are the
GPEN and RestoreFormer++ face models (gpen.py, rfpp.py), BOPBTL's global restoration
(oldphoto.py, three files of one model) and its face enhancer (oldface.py): they are written in this project and loaded
strictly too, and stand in the toolbox next to spandrel's models.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appkit.errors import LoadError
from appkit.models import ModelChoice, ModelsSpec

WEIGHT_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors", ".bin")
_REPAIR = "Run `darkroom models pull restorer` to fetch the model's files again."


@dataclass
class Net:
    """One loaded spandrel model and what spandrel says it is."""

    model_id: str
    arch: str  # spandrel's architecture name: "GFPGAN", "ESRGAN", "LaMa", ...
    purpose: str  # "FaceSR", "SR", "Restoration", "Inpainting"
    scale: int
    descriptor: Any
    dtype: str
    path: Path
    extra: bool = False  # came from spandrel_extra_arches (non-commercial licences)

    def describe(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "purpose": self.purpose,
            "scale": self.scale,
            "dtype": self.dtype,
            "file": self.path.name,
            "non_commercial_arch": self.extra,
        }


@dataclass
class Own:
    """A network written in this project, shaped like a spandrel descriptor where the app needs it."""

    model: Any
    name: str
    supports_half: bool = False

    def to(self, *args: Any) -> Own:
        self.model.to(*args)
        return self

    def eval(self) -> Own:
        self.model.eval()
        return self


def own_face_arch(path: Path) -> str | None:
    """GPEN-BFR-*.pth -> GPEN; RestoreFormer++.ckpt (or ..PlusPlus / _PP) -> RestoreFormer++;
    BOPBTL's Face_Enhancement/checkpoints/*/latest_net_G.pth -> BOPBTL-Face (by repo path)."""
    if "face_enhancement" in (p.lower() for p in path.parts):
        return "BOPBTL-Face"
    name = path.name.lower()
    if name.startswith("gpen"):
        return "GPEN"
    if any(t in name for t in ("restoreformer++", "restoreformerplusplus", "restoreformer_pp")):
        return "RestoreFormer++"
    return None


@dataclass
class Toolbox:
    """Everything loaded for one app process."""

    device: str
    nets: dict[str, Net] = field(default_factory=dict)
    detector: Any = None  # retinaface.FaceDetector or None
    detector_id: str | None = None
    scratch: Any = None  # scratchnet.ScratchDetector or None (built-in detector then)
    scratch_id: str | None = None
    restorers: dict[str, Any] = field(default_factory=dict)  # id -> oldphoto.GlobalRestorer
    skipped: dict[str, str] = field(default_factory=dict)  # model id -> why it is not in use
    diffusion: dict[str, Any] = field(default_factory=dict)  # id -> DiffBIR / supirpipe.SUPIR

    def by_purpose(self, *purposes: str) -> dict[str, Net]:
        return {k: n for k, n in self.nets.items() if n.purpose in purposes}

    def describe(self) -> dict[str, Any]:
        return {
            "nets": {k: n.describe() for k, n in self.nets.items()},
            "face_detector": self.detector_id,
            "scratch_detector": self.scratch_id,
            "global_restoration": sorted(self.restorers),
            "global_settings": {k: r.setting for k, r in sorted(self.restorers.items())},
            "skipped": self.skipped,
            "diffusion": {k: d.describe() for k, d in self.diffusion.items()},
        }


def _files(choice: ModelChoice) -> list[Path]:
    return [f.local_path for f in choice.files if f.path.lower().endswith(WEIGHT_SUFFIXES)]


def _is_detector(path: Path) -> bool:
    return path.name.lower().startswith("detection_resnet50")


def _is_scratch_detector(path: Path) -> bool:
    """BOPBTL's `Global/checkpoints/detection/FT_Epoch_latest.pt` (or a copy named like it)."""
    name = path.name.lower()
    return name.startswith("ft_epoch") or (
        path.suffix.lower() == ".pt" and path.parent.name.lower() == "detection"
    )


_EXTRA = {"installed": False}


def install_extra_arches() -> None:
    """Register spandrel_extra_arches (CodeFormer, DDColor, ...) once per process."""
    if not _EXTRA["installed"]:
        import spandrel_extra_arches

        spandrel_extra_arches.install()
        _EXTRA["installed"] = True


def load_spandrel(path: Path, allow_extra: bool = True) -> tuple[Any, bool]:
    """(descriptor, came from the extra arches) for a weight file; extras only when needed."""
    from spandrel import ModelLoader, UnsupportedModelError

    try:
        return ModelLoader().load_from_file(str(path)), False
    except UnsupportedModelError:
        if not allow_extra or _EXTRA["installed"]:
            raise
    install_extra_arches()
    return ModelLoader().load_from_file(str(path)), True


def place(descriptor: Any, device: str) -> str:
    """Move to the device; fp16 on a GPU where the architecture supports it, else fp32."""
    import torch

    descriptor.to(device).eval()
    if device.startswith("cuda") and descriptor.supports_half:
        descriptor.to(torch.float16)
        return "float16"
    return "float32"


def load(spec: ModelsSpec, device: str, progress) -> Toolbox:
    """Load every model in DARKROOM_MODELS; a model that cannot be used is skipped with the reason,
    but a file that is missing or damaged stops the app with a sentence (it is a broken install)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    box = Toolbox(device=device)
    if not spec.models:
        raise LoadError(
            "No model is installed for the restorer; install it with `darkroom install restorer`."
        )
    total = max(1, len(spec.models))
    for i, (model_id, choice) in enumerate(spec.models.items()):
        progress(0.05 + 0.9 * i / total, f"loading {model_id}")
        if _load_diffusion(box, model_id, choice, device):
            continue
        files = _files(choice)
        if not files:
            raise LoadError(f"The weight file of {model_id} is not among its files. {_REPAIR}")
        for path in files:
            if not path.is_file():
                raise LoadError(
                    f"The file {path.name} of {model_id} is missing from the store ({path}). {_REPAIR}"
                )
        from . import oldphoto, statedict

        # BOPBTL's three files are told apart by their folders in the repo (VAE_A_quality, ...),
        # and so is the setting (VAE_B_scratch / mapping_scratch: the one that takes the mask).
        roles = {f.local_path: oldphoto.role(Path(f.path)) for f in choice.files}
        parts = {roles[p]: p for p in files if roles.get(p)}
        if parts:
            setting = oldphoto.setting_of([Path(f.path) for f in choice.files])
            try:
                box.restorers[model_id] = oldphoto.GlobalRestorer.from_files(parts, device, setting)
            except statedict.WrongFile as exc:
                raise LoadError(f"{exc} {_REPAIR}") from None
            files = [p for p in files if not roles.get(p)]
        repo_paths = {f.local_path: Path(f.path) for f in choice.files}
        for path in files:
            arch = own_face_arch(repo_paths.get(path, path))
            if arch is not None:
                from . import gpen, oldface, rfpp

                module = {"GPEN": gpen, "RestoreFormer++": rfpp}.get(arch, oldface)
                try:
                    net = module.load(path)
                    if module is oldface:  # the working size is named by the repo folder
                        net.size = oldface.working_size(repo_paths.get(path, path))
                except statedict.WrongFile as exc:
                    raise LoadError(f"{exc} {_REPAIR}") from None
                own = Own(net, arch)
                box.nets[model_id] = Net(model_id, arch, "FaceSR", 1, own, place(own, device), path)
                continue
            if _is_detector(path):
                from .retinaface import FaceDetector

                try:
                    box.detector, box.detector_id = FaceDetector(path, device), model_id
                except Exception as exc:  # a file of the wrong shape: say which and why
                    raise LoadError(
                        f"The face detector {path.name} of {model_id} cannot be loaded: {exc}. "
                        f"{_REPAIR}"
                    ) from None
                continue
            if _is_scratch_detector(path):
                from .scratchnet import NotScratchDetector, ScratchDetector

                try:
                    box.scratch, box.scratch_id = ScratchDetector(path, device), model_id
                except NotScratchDetector as exc:
                    raise LoadError(f"{exc} {_REPAIR}") from None
                continue
            if path.name.lower().startswith("parsing_"):
                box.skipped[f"{model_id}:{path.name}"] = (
                    "face parsing is not used: faces are pasted back with a feathered mask"
                )
                continue
            try:
                descriptor, extra = load_spandrel(path)
            except Exception as exc:
                raise LoadError(
                    f"{path.name} of {model_id} cannot be loaded by spandrel "
                    f"({type(exc).__name__}: {exc}). {_REPAIR}"
                ) from None
            dtype = place(descriptor, device)
            box.nets[model_id] = Net(
                model_id=model_id,
                arch=descriptor.architecture.name,
                purpose=descriptor.purpose,
                scale=int(descriptor.scale),
                descriptor=descriptor,
                dtype=dtype,
                path=path,
                extra=extra,
            )
    progress(1.0, "ready")
    return box


def _load_diffusion(box: Toolbox, model_id: str, choice: ModelChoice, device: str) -> bool:
    """DiffBIR (a diffusers SD folder + IRControlNet + stage-1 file, diffbir.py) or SUPIR (an SDXL
    folder + SUPIR's file, supirpipe.py), loaded strictly. False when the model is neither
    (then it is a spandrel file)."""
    from . import diffbir, irnet, supir, supirpipe

    files = [(f.path, f.local_path) for f in choice.files]
    if not diffbir.is_diffusion_set(files):
        return False
    for _, path in files:
        if not path.is_file():
            raise LoadError(
                f"The file {path.name} of {model_id} is missing from the store ({path}). {_REPAIR}"
            )
    if supirpipe.is_supir_set(files):  # SDXL's folder + SUPIR's file
        try:
            box.diffusion[model_id] = supirpipe.load(
                model_id, files, choice.variant, choice.offload, device
            )
        except supir.NotSUPIR as exc:
            text = str(exc).rstrip(".")
            raise LoadError(f"{model_id} cannot be loaded as SUPIR: {text}. {_REPAIR}") from None
        return True
    try:
        box.diffusion[model_id] = diffbir.load(
            model_id, files, choice.variant, choice.offload, device
        )
    except (diffbir.NotDiffBIR, irnet.NotIRControlNet) as exc:
        text = str(exc).rstrip(".")
        raise LoadError(f"{model_id} cannot be loaded as DiffBIR: {text}. {_REPAIR}") from None
    return True
