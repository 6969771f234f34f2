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

from .errors import DarkroomError, NotFound
from .hardware import Gpu, Hardware
from .recipe import Model, ModelFile, Recipe, Variant

# Headroom on each GPU, so a plan that "fits" still fits with a desktop running:
# the CUDA context and cuBLAS workspace (about 0.3-0.5 GB on current drivers), the desktop's
# share of a GPU that drives a display (compositor, browser: 0.5-1 GB), and the caching
# allocator's fragmentation (about 5% of the card at peak).
CUDA_CONTEXT_GB = 0.5
DESKTOP_GB = 0.8
ALLOCATOR_SHARE = 0.05
# RAM: the machine reports GiB, the recipes count GB (file sizes); the OS, the app's Python
# and torch keep about 2 GB for themselves. No tolerance: a pipeline bigger than what is left
# goes to swap or the OOM killer.
GB_PER_GIB = 1024**3 / 1e9
RAM_RESERVE_GB = 2.0
# A plan that uses more than this share of the usable memory gets a warning.
TIGHT_SHARE = 0.9
# What manager/switching.py still takes off each GPU; the planner uses usable_vram_gb().
VRAM_HEADROOM_GB = CUDA_CONTEXT_GB
# Rough size of an app environment per backend (torch dominates), for the disk estimate.
ENV_DISK_GB = {"cuda": 6.0, "rocm": 9.0, "mps": 1.0, "cpu": 1.0, "none": 0.3}

Offload = Literal["none", "model", "sequential"]
OFFLOAD_WORDS = {
    "none": "everything on the GPU",
    "model": "model offload to RAM",
    "sequential": "layer-by-layer (group) offload to RAM",
}


def vram_headroom_gb(gpu: Gpu) -> float:
    """GPU memory a plan must leave free on this GPU (see the constants above).

    Apple silicon: the GPU's figure is already Metal's share of the unified memory, so
    nothing more is taken off it; the same memory is counted once, as RAM, in `usable_ram_gb`.
    """
    if gpu.vendor == "apple":
        return 0.0
    desktop = DESKTOP_GB if gpu.display else 0.0
    return round(CUDA_CONTEXT_GB + desktop + ALLOCATOR_SHARE * gpu.vram_total_gb, 2)


def usable_vram_gb(gpu: Gpu) -> float:
    return round(max(0.0, gpu.vram_total_gb - vram_headroom_gb(gpu)), 2)


def _gb(value: float) -> str:
    return f"{round(value, 1):g}"


def usable_ram_gb(hw: Hardware) -> float:
    """RAM, in GB, that a pipeline's weights may take (the machine's GiB less the reserve)."""
    return round(max(0.0, hw.ram_total_gb * GB_PER_GIB - RAM_RESERVE_GB), 1)


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

    @property
    def resident_gb(self) -> float:
        """GPU memory it holds while another model of the app works: its weights when they stay
        on the GPU (the files' size; its whole figure when the size is unknown), nothing when
        offload takes them back to RAM after each use."""
        if self.offload != "none":
            return 0.0
        weights = self.download_bytes / 1e9
        return round(min(self.vram_gb, weights) if weights > 0 else self.vram_gb, 2)


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

    @property
    def files(self) -> list[ModelFile]:
        """Every file the chosen variants need, once (models may share a file)."""
        out: dict[tuple[str, str, str, str], ModelFile] = {}
        for model in self.models:
            for f in model.files:
                out.setdefault((f.repo_type, f.repo, f.revision, f.path), f)
        return list(out.values())

    def to_dict(self) -> dict:
        from dataclasses import asdict

        data = asdict(self)
        for m, mp in zip(data["models"], self.models, strict=True):
            m["files"] = [f.model_dump() for f in mp.files]
        return data


def choose_backend(
    hw: Hardware, choices: Choices
) -> tuple[str, str | None, str, Gpu | None, list[str]]:
    """(backend, torch wheel flavour, device, gpu, reasons) for this machine."""
    reasons: list[str] = []
    gpus = hw.gpus
    if choices.gpu_index is not None:
        gpus = [g for g in gpus if g.index == choices.gpu_index]
        if not gpus:
            raise NotFound(
                f"There is no GPU number {choices.gpu_index} on {hw.name}.",
                "Run `darkroom probe` to see the GPUs and their numbers.",
            )
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
        reasons.append(
            f"The NVIDIA driver ({gpu.driver or 'unknown'}) supports CUDA "
            f"{gpu.cuda_version or 'unknown'}, older than 11.8, so models run on the CPU. "
            "Update the NVIDIA driver to use the GPU."
        )
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
    for flavour, needed in (
        ("cu128", 128),
        ("cu126", 126),
        ("cu124", 124),
        ("cu121", 121),
        ("cu118", 118),
    ):
        if version >= needed and not (flavour == "cu128" and 0 < cc < 7.0):
            return flavour
    return None


def _needs(v: Variant, offload: Offload) -> float:
    return v.vram_gb if offload == "none" else v.offload[offload]


def _options(v: Variant) -> list[Offload]:
    out: list[Offload] = ["none"]
    out += [p for p in ("model", "sequential") if p in v.offload]
    return out


def plan_model(
    model: Model,
    backend: str,
    gpu: Gpu | None,
    hw: Hardware,
    forced: str | None,
    held_gb: float = 0.0,
) -> ModelPlan:
    """Pick one variant and one offload policy for one model, and say why.

    Every variant must fit in RAM (the whole pipeline's weights pass through it while loading,
    and offload keeps them there); then the best quality whose GPU peak fits the usable VRAM
    with everything on the GPU or whole-model offload; then layer-by-layer offload. `held_gb`
    is GPU memory the app's other models keep while this one works (apps that hold several).
    """
    usable = [v for v in model.variants if backend in v.backends]
    if not usable:
        raise DarkroomError(
            f"{model.name} has no variant that runs on {backend.upper()}.",
            "Pick another model, or use a machine with a supported GPU.",
        )
    by_quality = sorted(usable, key=lambda v: -v.quality)
    ram = usable_ram_gb(hw)
    ram_words = f"this machine has {hw.ram_total_gb * GB_PER_GIB:.1f} GB RAM, {ram:g} GB usable"

    if forced:
        variant = model.variant(forced)
        if backend not in variant.backends:
            raise DarkroomError(
                f"{model.name} {variant.label} does not run on {backend.upper()} "
                f"(it needs {', '.join(b.upper() for b in variant.backends)}).",
                f"Choose one of: {', '.join(v.id for v in usable)}.",
            )
        return _forced(model, variant, gpu, hw)

    def ram_blocked(v: Variant) -> str | None:
        return f"{v.label} needs {v.ram_gb:g} GB RAM" if v.ram_gb > ram else None

    if gpu is None:  # CPU: everything lives in RAM
        for v in by_quality:
            if v.ram_gb <= ram:
                skipped = [ram_blocked(b) for b in by_quality if b.quality > v.quality]
                why = f"{v.label} runs on the CPU in {v.ram_gb:g} GB RAM ({ram_words})"
                if skipped:
                    why = "; ".join(w for w in skipped if w) + f" → {why}"
                return _model_plan(model, v, "none", 0.0, why + ".")
        smallest = min(usable, key=lambda v: (v.ram_gb, v.quality))
        raise DarkroomError(
            f"{model.name} does not fit in this machine's memory: the smallest variant ({smallest.label}) "
            f"needs {smallest.ram_gb:g} GB RAM and {ram_words}.",
            "Close other programs, add memory, or choose a smaller model.",
        )

    avail = round(max(0.0, usable_vram_gb(gpu) - held_gb), 2)
    vram_words = (
        f"Metal may use {_gb(avail)} GB of the unified memory"
        if gpu.vendor == "apple"
        else f"this GPU has {_gb(gpu.vram_total_gb)} GB, {_gb(avail)} GB usable"
    )
    if held_gb:
        vram_words += f" beside the {_gb(held_gb)} GB the app's other models keep on it"
    for tier in (("none", "model"), ("sequential",)):
        for v in by_quality:
            if v.ram_gb > ram:
                continue
            for policy in _options(v):
                need = _needs(v, policy)
                if policy not in tier or need > avail:
                    continue
                skipped = []
                for b in by_quality:
                    if b.quality <= v.quality:
                        continue
                    least = min(_needs(b, p) for p in _options(b))
                    skipped.append(ram_blocked(b) or f"{b.label} needs {least:g} GB VRAM at least")
                if policy == "sequential" and "model" in v.offload:
                    skipped.append(
                        f"{v.label} with model offload needs {v.offload['model']:g} GB VRAM"
                    )
                head = ""
                if skipped:
                    head = f"{'; '.join(skipped)} ({vram_words}; {ram_words}) → "
                why = (
                    f"{head}{v.label} with {OFFLOAD_WORDS[policy]} "
                    f"({need:g} of {_gb(avail)} GB usable VRAM, {v.ram_gb:g} of {ram:g} GB usable RAM)"
                )
                if policy == "sequential" and v.precision.startswith("gguf"):
                    why += (
                        "; the layers move with diffusers' group offload, which keeps GGUF weights "
                        "(accelerate's sequential offload cannot move them)"
                    )
                return _model_plan(model, v, policy, need, why + ".")
    fits_ram = [v for v in usable if v.ram_gb <= ram]
    if not fits_ram:
        smallest = min(usable, key=lambda v: (v.ram_gb, v.quality))
        raise DarkroomError(
            f"{model.name} does not fit in this machine's RAM: even {smallest.label} needs "
            f"{smallest.ram_gb:g} GB RAM for its weights, and {ram_words}.",
            "Choose a smaller model, or add memory.",
        )
    need, v, policy = min(
        ((_needs(v, p), v, p) for v in fits_ram for p in _options(v)), key=lambda t: t[0]
    )
    on_cpu = any("cpu" in u.backends for u in model.variants)
    raise DarkroomError(
        f"{model.name} does not fit on {gpu.name}: even {v.label} with {OFFLOAD_WORDS[policy]} "
        f"needs {need:g} GB VRAM, and {vram_words}.",
        "Choose a smaller model, or run it on the CPU with `--cpu` (slow)."
        if on_cpu
        else f"Choose a smaller model: {model.name} runs only on a GPU with {need:g} GB or more "
        "usable (it has no CPU build).",
    )


def _forced(model: Model, v: Variant, gpu: Gpu | None, hw: Hardware) -> ModelPlan:
    ram = usable_ram_gb(hw)
    ram_short = (
        (
            f" It needs {v.ram_gb:g} GB RAM and this machine has {ram:g} GB usable: "
            "it may fail or swap."
        )
        if v.ram_gb > ram
        else ""
    )
    if gpu is None:
        why = f"{v.label}, as you chose, on the CPU ({v.ram_gb:g} GB RAM)."
        return _model_plan(model, v, "none", 0.0, why + ram_short, forced=True)
    avail = usable_vram_gb(gpu)
    for policy in _options(v):
        need = _needs(v, policy)
        if need <= avail:
            return _model_plan(
                model,
                v,
                policy,
                need,
                f"{v.label}, as you chose, with {OFFLOAD_WORDS[policy]} "
                f"({need:g} of {avail:g} GB usable VRAM).{ram_short}",
                forced=True,
            )
    policy = _options(v)[-1]
    need = _needs(v, policy)
    return _model_plan(
        model,
        v,
        policy,
        need,
        f"{v.label}, as you chose, with {OFFLOAD_WORDS[policy]}: it needs {need:g} GB VRAM "
        f"and this GPU has {avail:g} GB usable, so it will probably run out of memory.{ram_short}",
        forced=True,
    )


def _model_plan(
    model: Model, v: Variant, offload: Offload, vram: float, reason: str, forced: bool = False
) -> ModelPlan:
    files = [*model.common_files, *v.files]
    return ModelPlan(
        model=model.id,
        name=model.name,
        variant=v.id,
        variant_label=v.label,
        precision=v.precision,
        offload=offload,
        vram_gb=vram,
        ram_gb=v.ram_gb,
        files=files,
        download_bytes=sum(f.size for f in files),
        license=model.license,
        license_url=model.license_url,
        commercial=model.commercial,
        gated=model.gated,
        reason=reason,
        forced=forced,
    )


def plan(recipe: Recipe, hw: Hardware, choices: Choices | None = None) -> Plan:
    """The whole plan for one app on one machine."""
    choices = choices or Choices()
    backend, flavour, device, gpu, reasons = choose_backend(hw, choices)
    if recipe.torch is None:
        flavour = None

    known = {m.id for m in recipe.models}
    wanted = (
        list(choices.models)
        if choices.models is not None
        else [m.id for m in recipe.models if m.default]
    )
    unknown = [m for m in wanted if m not in known]
    if unknown:
        raise NotFound(
            f"{recipe.name} has no model called {', '.join(unknown)}.",
            f"Its models are: {', '.join(sorted(known)) or 'none'}.",
        )
    for key in choices.variants:
        if key != "*" and key not in known:
            raise NotFound(
                f"{recipe.name} has no model called {key}.",
                f"Its models are: {', '.join(sorted(known))}.",
            )

    models: list[ModelPlan] = []
    substitutes: list[str] = []
    for model in recipe.models:
        if model.id not in wanted or any(m.model == model.id for m in models):
            continue
        forced = choices.variants.get(model.id)
        if (
            forced is None
            and "*" in choices.variants
            and any(v.id == choices.variants["*"] for v in model.variants)
        ):
            forced = choices.variants["*"]
        try:
            models.append(plan_model(model, backend, gpu, hw, forced))
        except DarkroomError as exc:
            if model.fallback and not forced:  # an optional heavy step: its lighter one instead
                other, lighter = _fall_back_plan(recipe, model, backend, gpu, hw, wanted, models)
                substitutes.append(
                    f"{exc.message.rstrip('.')}, so it is left out; "
                    f"{other.name} does its step instead."
                )
                if lighter is not None:
                    models.append(lighter)
                continue
            if choices.models is not None or forced:
                raise
            other = _substitute(
                recipe, model, backend, gpu, hw, {m.id for m in models} | set(wanted)
            )
            if other is None:
                raise
            other.reason = f"{exc.message.rstrip('.')} → {other.name} instead: {other.reason}"
            substitutes.append(
                f"{model.name} does not fit this machine, so {other.name} is installed instead "
                f"(see why below)."
            )
            models.append(other)
    if recipe.concurrent_models and gpu is not None:
        models = _make_room(recipe, models, backend, gpu, hw)
    warnings: list[str] = list(substitutes)
    if backend == "cpu" and recipe.torch is not None and recipe.models:
        warnings.append(
            "No GPU will be used: this will be slow (minutes per image instead of seconds)."
        )
    for m in models:
        if not m.commercial:
            warnings.append(
                f"{m.name} is licensed for non-commercial use only ({m.license}); "
                f"you will be asked to accept it{' at ' + m.license_url if m.license_url else ''}."
            )
        if m.gated:
            warnings.append(
                f"{m.name} is gated on Hugging Face: accept its licence on the model page and "
                "set your token with `darkroom config set hf_token <token>`."
            )
        if m.offload == "sequential":
            warnings.append(
                f"{m.name} runs with layer-by-layer offload: it works, but each image takes much longer."
            )
        if m.forced and ("probably run out of memory" in m.reason or "may fail" in m.reason):
            warnings.append(f"{m.name}: {m.reason}")
    for m in models:
        reasons.append(f"{m.name}: {m.reason}")

    download = _unique_bytes(models)
    env_gb = ENV_DISK_GB[backend if recipe.torch is not None else "none"]
    disk_needed = download + int(env_gb * 1e9)
    if disk_needed > hw.disk_free_gb * 1e9:
        warnings.append(
            f"Not enough disk space: this needs {disk_needed / 1e9:.1f} GB and "
            f"{hw.disk_free_gb:g} GB is free. Free some space before installing."
        )
    vram = (
        _together_gb(models)
        if recipe.concurrent_models
        else max((m.vram_gb for m in models), default=0.0)
    )
    warnings += _tight(models, vram, gpu, hw, recipe.concurrent_models)
    return Plan(
        app=recipe.id,
        app_name=recipe.name,
        version=recipe.version,
        hardware=hw.name,
        backend=backend if recipe.torch is not None else "none",
        torch_backend=flavour,
        device=device,
        python=recipe.python,
        packages=[*recipe.packages, *recipe.backend_packages.get(backend, [])],  # type: ignore[call-overload]
        torch_packages=list(recipe.torch.packages) if recipe.torch else [],
        models=models,
        warnings=warnings,
        reasons=reasons,
        download_bytes=download,
        disk_needed_bytes=disk_needed,
        vram_gb=round(vram, 2),
    )


def _together_gb(models: list[ModelPlan]) -> float:
    """An app that holds several models runs one at a time: its peak is what they all keep on
    the GPU, plus the most any one needs beyond that while it works."""
    held = sum(m.resident_gb for m in models)
    return round(held + max((m.vram_gb - m.resident_gb for m in models), default=0.0), 2)


def _make_room(
    recipe: Recipe, models: list[ModelPlan], backend: str, gpu: Gpu, hw: Hardware
) -> list[ModelPlan]:
    """Where the models together overflow the GPU, plan the hungriest again (largest first) in
    the room the others leave: a diffusion step then takes model offload or smaller windows
    instead of the plan warning that large images may run out of memory."""
    avail = usable_vram_gb(gpu)
    out = list(models)
    for m in sorted(out, key=lambda p: p.vram_gb - p.resident_gb, reverse=True):
        if _together_gb(out) <= avail:
            break
        if m.forced:
            continue
        i = out.index(m)
        held = sum(o.resident_gb for j, o in enumerate(out) if j != i)
        try:
            again = plan_model(recipe.model(m.model), backend, gpu, hw, None, held_gb=held)
        except DarkroomError:
            continue  # it does not fit beside them at all: keep the plan, the warning says so
        if again.vram_gb < m.vram_gb:
            out[i] = again
    return out


def _fall_back(recipe: Recipe, model: Model) -> Model:
    """The model a recipe names to do `model`'s step where `model` cannot run."""
    for other in recipe.models:
        if other.id == model.fallback:
            return other
    raise DarkroomError(
        f"{model.name} names '{model.fallback}' as its fallback, and the recipe has no such model.",
        "Fix the recipe's `fallback` field.",
    )


def _fall_back_plan(
    recipe: Recipe,
    model: Model,
    backend: str,
    gpu: Gpu | None,
    hw: Hardware,
    wanted: list[str],
    planned: list[ModelPlan],
) -> tuple[Model, ModelPlan | None]:
    """The first model down `model`'s fallback chain (SUPIR -> DiffBIR -> Real-ESRGAN) that
    plans here, with its plan; None as the plan when it is chosen anyway (it plans itself)."""
    seen = {model.id}
    other = model
    while True:
        other = _fall_back(recipe, other)
        if other.id in wanted or any(m.model == other.id for m in planned):
            return other, None
        try:
            return other, plan_model(other, backend, gpu, hw, None)
        except DarkroomError:
            seen.add(other.id)
            if not other.fallback or other.fallback in seen:  # the end of the chain (or a loop)
                raise


def _substitute(
    recipe: Recipe, model: Model, backend: str, gpu: Gpu | None, hw: Hardware, taken: set[str]
) -> ModelPlan | None:
    """A default model that cannot fit: the first other model for the same task that does."""
    task = model.task.split(",")[0].strip()
    for other in recipe.models:
        if other.id in taken or other.task.split(",")[0].strip() != task:
            continue
        try:
            return plan_model(other, backend, gpu, hw, None)
        except DarkroomError:
            continue
    return None


def _tight(
    models: list[ModelPlan], vram: float, gpu: Gpu | None, hw: Hardware, concurrent: bool
) -> list[str]:
    """Warnings for plans that fit with little to spare, or (several models at once) do not fit."""
    out: list[str] = []
    ram = usable_ram_gb(hw)
    need_ram = (
        sum(m.ram_gb for m in models)
        if concurrent
        else max((m.ram_gb for m in models), default=0.0)
    )
    if gpu is not None and vram > 0:
        avail = usable_vram_gb(gpu)
        if vram > avail:
            out.append(
                f"The models together need {vram:g} GB of GPU memory and this GPU has {_gb(avail)} GB usable "
                f"({gpu.vram_total_gb:g} GB less {vram_headroom_gb(gpu):g} GB for the driver and desktop): "
                "large images may run out of memory. Install fewer models, or use `--cpu`."
            )
        elif vram > TIGHT_SHARE * avail:
            out.append(
                f"GPU memory is tight: {vram:g} of {_gb(avail)} GB usable. Close other programs that use "
                "the GPU (games, browsers with video) before generating."
            )
    if need_ram > ram:
        out.append(
            f"The models need {need_ram:g} GB RAM and this machine has {ram:g} GB usable: "
            "it will swap and may be stopped by the system. Install fewer models."
        )
    elif need_ram > TIGHT_SHARE * ram:
        out.append(
            f"RAM is tight: the models take {need_ram:g} of {ram:g} GB usable. Close other programs first."
        )
    return out


def _unique_bytes(models: list[ModelPlan]) -> int:
    """Bytes to download, counting a file shared by two models once (the store dedupes it)."""
    seen: dict[tuple[str, str, str], int] = {}
    for m in models:
        for f in m.files:
            seen[(f.repo, f.revision, f.path)] = f.size
    return sum(seen.values())
