"""Recipe + Hardware + choices -> Plan, with the reasons. Pure: no disk, no network.

The rule: prefer the best quality that fits on the GPU with headroom, everything on the
GPU or with whole-model offload to RAM; only when nothing fits that way, fall back to
the variants the recipe says still run with sequential (layer by layer) offload; when
nothing fits at all, refuse with the numbers. On a machine without a usable GPU, pick
the best variant that runs on the CPU and fits in RAM, and say it will be slow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .errors import DarkroomError
from .hardware import Gpu, Hardware
from .recipe import Model, ModelFile, Recipe, Variant

# GPU memory kept free for the desktop, the CUDA context and fragmentation.
VRAM_HEADROOM_GB = 0.4
# Marketing "16 GB" of RAM reports as ~15.6 GiB; tolerate that much.
RAM_TOLERANCE_GB = 1.0
# Rough size of an app environment per backend (torch dominates), for the disk estimate.
ENV_DISK_GB = {"cuda": 6.0, "rocm": 9.0, "mps": 1.0, "cpu": 1.0, "none": 0.3}

Offload = Literal["none", "model", "sequential"]
OFFLOAD_WORDS = {"none": "everything on the GPU", "model": "model offload to RAM",
                 "sequential": "sequential (layer-by-layer) offload to RAM"}


@dataclass(frozen=True)
class Choices:
    """What the user asked for on top of the defaults."""

    variants: dict[str, str] = field(default_factory=dict)  # model id (or "*") -> variant id
    models: tuple[str, ...] | None = None  # which models to install; None = the recipe's defaults
    backend: str | None = None  # force "cpu" (or another backend)
    gpu_index: int | None = None


@dataclass
class ModelPlan:
    model: str
    name: str
    variant: str
    variant_label: str
    precision: str
    offload: Offload
    vram_gb: float  # expected GPU memory in use under the chosen offload
    ram_gb: float
    files: list[ModelFile]
    download_bytes: int
    license: str
    license_url: str | None
    commercial: bool
    gated: bool
    reason: str
    forced: bool = False


@dataclass
class Plan:
    app: str
    app_name: str
    version: str
    hardware: str
    backend: str  # cuda / rocm / mps / cpu / none
    torch_backend: str | None  # wheel flavour: cu128, cu126, ..., rocm6.3, cpu; None = no torch
    device: str  # what the app is told: cuda:0, mps, cpu
    python: str
    packages: list[str]
    torch_packages: list[str]
    models: list[ModelPlan]
    warnings: list[str]
    reasons: list[str]
    download_bytes: int
    disk_needed_bytes: int
    vram_gb: float  # what the app is expected to hold on the GPU at once

    def to_dict(self) -> dict:
        from dataclasses import asdict

        data = asdict(self)
        for m, mp in zip(data["models"], self.models, strict=True):
            m["files"] = [f.model_dump() for f in mp.files]
        return data


def choose_backend(hw: Hardware, choices: Choices) -> tuple[str, str | None, str, Gpu | None, list[str]]:
    """(backend, torch wheel flavour, device, gpu, reasons) for this machine."""
    reasons: list[str] = []
    gpus = hw.gpus
    if choices.gpu_index is not None:
        gpus = [g for g in gpus if g.index == choices.gpu_index]
        if not gpus:
            raise DarkroomError(f"There is no GPU number {choices.gpu_index} on {hw.name}.",
                                "Run `darkroom probe` to see the GPUs and their numbers.")
    gpu = max(gpus, key=lambda g: g.vram_total_gb, default=None)
    if choices.backend == "cpu" or gpu is None:
        if gpu is None:
            reasons.append("No usable GPU was found, so models run on the CPU.")
        else:
            reasons.append("Running on the CPU because you asked for it.")
        return "cpu", "cpu", "cpu", None, reasons
    if gpu.vendor == "apple":
        reasons.append(f"{gpu.name}: PyTorch uses Metal (mps); no CUDA-only formats such as NF4.")
        return "mps", "mps", "mps", gpu, reasons
    if gpu.vendor == "amd":
        reasons.append(f"{gpu.name}: PyTorch for ROCm; no CUDA-only formats such as NF4.")
        return "rocm", "rocm6.3", f"cuda:{gpu.index}", gpu, reasons
    if gpu.vendor != "nvidia":
        reasons.append(f"{gpu.name} is not supported by PyTorch here, so models run on the CPU.")
        return "cpu", "cpu", "cpu", None, reasons
    flavour = cuda_flavour(gpu)
    if flavour is None:
        reasons.append(f"The NVIDIA driver ({gpu.driver or 'unknown'}) supports CUDA "
                       f"{gpu.cuda_version or 'unknown'}, older than 11.8, so models run on the CPU. "
                       "Update the NVIDIA driver to use the GPU.")
        return "cpu", "cpu", "cpu", None, reasons
    reasons.append(f"{gpu.name} with driver CUDA {gpu.cuda_version}: PyTorch built for {flavour}.")
    return "cuda", flavour, f"cuda:{gpu.index}", gpu, reasons


def cuda_flavour(gpu: Gpu) -> str | None:
    """The newest PyTorch CUDA wheel flavour the driver can run (None when too old)."""
    try:
        major, minor = (int(x) for x in (gpu.cuda_version or "0.0").split(".")[:2])
    except ValueError:
        return None
    version = major * 10 + minor
    cc = float(gpu.compute_capability or "0")
    # CUDA 12.8 wheels dropped Maxwell/Pascal (compute capability < 7.0); Blackwell needs 12.8.
    for flavour, needed in (("cu128", 128), ("cu126", 126), ("cu124", 124), ("cu121", 121), ("cu118", 118)):
        if version >= needed and not (flavour == "cu128" and 0 < cc < 7.0):
            return flavour
    return None


def _needs(v: Variant, offload: Offload) -> float:
    return v.vram_gb if offload == "none" else v.offload[offload]


def _options(v: Variant) -> list[Offload]:
    out: list[Offload] = ["none"]
    out += [p for p in ("model", "sequential") if p in v.offload]
    return out


def plan_model(model: Model, backend: str, gpu: Gpu | None, hw: Hardware,
               forced: str | None) -> ModelPlan:
    """Pick one variant and one offload policy for one model, and say why."""
    usable = [v for v in model.variants if backend in v.backends]
    if not usable:
        raise DarkroomError(f"{model.name} has no variant that runs on {backend.upper()}.",
                            "Pick another model, or use a machine with a supported GPU.")
    by_quality = sorted(usable, key=lambda v: -v.quality)
    ram = hw.ram_total_gb + RAM_TOLERANCE_GB

    if forced:
        variant = model.variant(forced)
        if backend not in variant.backends:
            raise DarkroomError(
                f"{model.name} {variant.label} does not run on {backend.upper()} "
                f"(it needs {', '.join(b.upper() for b in variant.backends)}).",
                f"Choose one of: {', '.join(v.id for v in usable)}.")
        return _forced(model, variant, backend, gpu, hw)

    if gpu is None:  # CPU: everything lives in RAM
        for v in by_quality:
            if v.ram_gb <= ram:
                skipped = [f"{b.label} needs {b.ram_gb:g} GB RAM" for b in by_quality if b.quality > v.quality]
                why = f"{v.label} runs on the CPU in {v.ram_gb:g} GB RAM (this machine has {hw.ram_total_gb:g} GB)"
                if skipped:
                    why = "; ".join(skipped) + f" → {why}"
                return _model_plan(model, v, "none", 0.0, why + ".")
        smallest = min(usable, key=lambda v: v.ram_gb)
        raise DarkroomError(
            f"{model.name} does not fit in this machine's memory: the smallest variant ({smallest.label}) "
            f"needs {smallest.ram_gb:g} GB RAM and this machine has {hw.ram_total_gb:g} GB.",
            "Close other programs, add memory, or use a machine with a GPU.")

    avail = max(0.0, gpu.vram_total_gb - VRAM_HEADROOM_GB)
    rejected: list[str] = []
    for tier in (("none", "model"), ("sequential",)):
        for v in by_quality:
            for policy in _options(v):
                if policy not in tier:
                    continue
                need = _needs(v, policy)
                if need > avail:
                    continue
                if policy != "none" and v.ram_gb > ram:
                    rejected.append(f"{v.label} with {OFFLOAD_WORDS[policy]} needs {v.ram_gb:g} GB RAM, "
                                    f"this machine has {hw.ram_total_gb:g} GB")
                    continue
                best = by_quality[0]
                head = ""
                if v is not best or policy != "none":
                    best_need = min(_needs(best, p) for p in _options(best))
                    head = (f"{model.name} {best.label} needs {best_need:g} GB VRAM at least, "
                            f"this GPU has {gpu.vram_total_gb:g} GB → ") if v is not best else ""
                why = (f"{head}{v.label} with {OFFLOAD_WORDS[policy]} "
                       f"({need:g} GB of {avail:g} GB usable VRAM)")
                if rejected:
                    why += "; not chosen: " + "; ".join(rejected)
                return _model_plan(model, v, policy, need, why + ".")
    smallest = min(((_needs(v, p), v, p) for v in usable for p in _options(v)), key=lambda t: t[0])
    raise DarkroomError(
        f"{model.name} does not fit on {gpu.name}: even {smallest[1].label} with "
        f"{OFFLOAD_WORDS[smallest[2]]} needs {smallest[0]:g} GB VRAM and {smallest[1].ram_gb:g} GB RAM; "
        f"this machine has {gpu.vram_total_gb:g} GB VRAM and {hw.ram_total_gb:g} GB RAM.",
        "Choose a smaller model, or run it on the CPU with `--cpu` (slow).")


def _forced(model: Model, v: Variant, backend: str, gpu: Gpu | None, hw: Hardware) -> ModelPlan:
    if gpu is None:
        fits = v.ram_gb <= hw.ram_total_gb + RAM_TOLERANCE_GB
        why = f"{v.label}, as you chose, on the CPU ({v.ram_gb:g} GB RAM)"
        plan = _model_plan(model, v, "none", 0.0, why + ".", forced=True)
        if not fits:
            plan.reason += f" It needs more RAM than this machine has ({hw.ram_total_gb:g} GB): it may fail."
        return plan
    avail = max(0.0, gpu.vram_total_gb - VRAM_HEADROOM_GB)
    for policy in _options(v):
        need = _needs(v, policy)
        if need <= avail:
            return _model_plan(model, v, policy, need,
                               f"{v.label}, as you chose, with {OFFLOAD_WORDS[policy]} ({need:g} GB VRAM).",
                               forced=True)
    policy = _options(v)[-1]
    need = _needs(v, policy)
    plan = _model_plan(model, v, policy, need,
                       f"{v.label}, as you chose, with {OFFLOAD_WORDS[policy]}: it needs {need:g} GB VRAM "
                       f"and this GPU has {gpu.vram_total_gb:g} GB, so it will probably run out of memory.",
                       forced=True)
    return plan


def _model_plan(model: Model, v: Variant, offload: Offload, vram: float, reason: str,
                forced: bool = False) -> ModelPlan:
    files = [*model.common_files, *v.files]
    return ModelPlan(model=model.id, name=model.name, variant=v.id, variant_label=v.label,
                     precision=v.precision, offload=offload, vram_gb=vram, ram_gb=v.ram_gb, files=files,
                     download_bytes=sum(f.size for f in files), license=model.license,
                     license_url=model.license_url, commercial=model.commercial, gated=model.gated,
                     reason=reason, forced=forced)


def plan(recipe: Recipe, hw: Hardware, choices: Choices | None = None) -> Plan:
    """The whole plan for one app on one machine."""
    choices = choices or Choices()
    backend, flavour, device, gpu, reasons = choose_backend(hw, choices)
    if recipe.torch is None:
        flavour = None

    known = {m.id for m in recipe.models}
    wanted = list(choices.models) if choices.models is not None else [m.id for m in recipe.models if m.default]
    unknown = [m for m in wanted if m not in known]
    if unknown:
        raise DarkroomError(f"{recipe.name} has no model called {', '.join(unknown)}.",
                            f"Its models are: {', '.join(sorted(known)) or 'none'}.")
    for key in choices.variants:
        if key != "*" and key not in known:
            raise DarkroomError(f"{recipe.name} has no model called {key}.",
                                f"Its models are: {', '.join(sorted(known))}.")

    models: list[ModelPlan] = []
    for model in recipe.models:
        if model.id not in wanted:
            continue
        forced = choices.variants.get(model.id)
        if forced is None and "*" in choices.variants and any(v.id == choices.variants["*"] for v in model.variants):
            forced = choices.variants["*"]
        models.append(plan_model(model, backend, gpu, hw, forced))

    warnings: list[str] = []
    if backend == "cpu" and recipe.torch is not None and recipe.models:
        warnings.append("No GPU will be used: this will be slow (minutes per image instead of seconds).")
    for m in models:
        if not m.commercial:
            warnings.append(f"{m.name} is licensed for non-commercial use only ({m.license}); "
                            f"you will be asked to accept it{' at ' + m.license_url if m.license_url else ''}.")
        if m.gated:
            warnings.append(f"{m.name} is gated on Hugging Face: accept its licence on the model page and "
                            "set your token with `darkroom config set hf_token <token>`.")
        if m.offload == "sequential":
            warnings.append(f"{m.name} runs with sequential offload: it works, but each image takes much longer.")
        if m.forced and ("probably run out of memory" in m.reason or "may fail" in m.reason):
            warnings.append(f"{m.name}: {m.reason}")
    for m in models:
        reasons.append(f"{m.name}: {m.reason}")

    download = _unique_bytes(models)
    env_gb = ENV_DISK_GB[backend if recipe.torch is not None else "none"]
    disk_needed = download + int(env_gb * 1e9)
    if disk_needed > hw.disk_free_gb * 1e9:
        warnings.append(f"Not enough disk space: this needs {disk_needed / 1e9:.1f} GB and "
                        f"{hw.disk_free_gb:g} GB is free. Free some space before installing.")
    vram = sum(m.vram_gb for m in models) if recipe.concurrent_models else max((m.vram_gb for m in models), default=0.0)
    return Plan(app=recipe.id, app_name=recipe.name, version=recipe.version, hardware=hw.name,
                backend=backend if recipe.torch is not None else "none", torch_backend=flavour,
                device=device, python=recipe.python,
                packages=[*recipe.packages, *recipe.backend_packages.get(backend, [])],  # type: ignore[call-overload]
                torch_packages=list(recipe.torch.packages) if recipe.torch else [],
                models=models, warnings=warnings, reasons=reasons, download_bytes=download,
                disk_needed_bytes=disk_needed, vram_gb=round(vram, 2))


def _unique_bytes(models: list[ModelPlan]) -> int:
    """Bytes to download, counting a file shared by two models once (the store dedupes it)."""
    seen: dict[tuple[str, str, str], int] = {}
    for m in models:
        for f in m.files:
            seen[(f.repo, f.revision, f.path)] = f.size
    return sum(seen.values())
