"""The hardware probe: GPUs through NVML, RAM and disk through psutil, the platform.

It never imports torch (that would cost seconds and GBs before anything is installed).
A probe can also be loaded from a JSON profile, so `darkroom plan --hardware rtx3060-12gb`
answers "what would I get on that machine" and tests cover many machines.
"""

from __future__ import annotations

import contextlib
import json
import platform
import shutil
from pathlib import Path
from typing import Literal

import psutil
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import bundled
from .errors import DarkroomError, NotFound

GIB = 1024**3
GB = 1000**3


class Gpu(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int = 0
    name: str
    vendor: Literal["nvidia", "amd", "apple", "intel"] = "nvidia"
    vram_total_gb: float = Field(ge=0)
    vram_free_gb: float = Field(ge=0)
    driver: str | None = None
    cuda_version: str | None = Field(
        None, description="Highest CUDA version the driver supports, e.g. '12.4'"
    )
    compute_capability: str | None = Field(None, description="e.g. '8.6'")
    display: bool = Field(
        True, description="Drives a display: the desktop keeps some of its memory"
    )


class Hardware(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "this machine"
    os: Literal["linux", "windows", "macos", "other"]
    arch: str
    apple_silicon: bool = False
    ram_total_gb: float = Field(ge=0)
    ram_free_gb: float = Field(ge=0)
    disk_free_gb: float = Field(ge=0)
    gpus: list[Gpu] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    @property
    def best_gpu(self) -> Gpu | None:
        return max(self.gpus, key=lambda g: g.vram_total_gb, default=None)

    def summary(self) -> str:
        gpu = self.best_gpu
        gpu_text = f"{gpu.name} {gpu.vram_total_gb:.0f} GB" if gpu else "no GPU"
        return (
            f"{gpu_text}, {self.ram_total_gb:.0f} GB RAM, {self.disk_free_gb:.0f} GB free disk, "
            f"{self.os}/{self.arch}"
        )


def _os_name() -> Literal["linux", "windows", "macos", "other"]:
    system = platform.system()
    return {"Linux": "linux", "Windows": "windows", "Darwin": "macos"}.get(system, "other")  # type: ignore[return-value]


def _decode(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def probe_nvidia() -> tuple[list[Gpu], str | None]:
    """NVIDIA GPUs via NVML. Returns (gpus, note); no driver means no GPUs, never a crash."""
    try:
        import pynvml
    except ImportError:
        return [], "nvidia-ml-py is not installed, so NVIDIA GPUs were not checked"
    try:
        pynvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound, DriverNotLoaded, ... all mean "no usable GPU"
        return [], "no NVIDIA GPU found (no NVIDIA driver is loaded)"
    try:
        driver = _decode(pynvml.nvmlSystemGetDriverVersion())
        cuda = None
        try:
            raw = pynvml.nvmlSystemGetCudaDriverVersion_v2()
            cuda = f"{raw // 1000}.{(raw % 1000) // 10}"
        except Exception:
            pass
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            try:
                major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
                cc = f"{major}.{minor}"
            except Exception:
                cc = None
            try:
                display = bool(pynvml.nvmlDeviceGetDisplayActive(handle))
            except Exception:
                display = True  # unknown: assume a desktop shares it
            gpus.append(
                Gpu(
                    index=i,
                    name=_decode(pynvml.nvmlDeviceGetName(handle)),
                    vendor="nvidia",
                    vram_total_gb=round(mem.total / GIB, 2),
                    vram_free_gb=round(mem.free / GIB, 2),
                    driver=driver,
                    cuda_version=cuda,
                    compute_capability=cc,
                    display=display,
                )
            )
        return gpus, None if gpus else "no NVIDIA GPU found"
    except Exception as exc:
        return [], f"NVIDIA driver present but could not be read ({type(exc).__name__})"
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def probe(data_dir: Path | None = None) -> Hardware:
    """Probe this machine. `data_dir` is where disk space is measured (the data folder)."""
    os_name = _os_name()
    arch = platform.machine().lower() or "unknown"
    apple = os_name == "macos" and arch in ("arm64", "aarch64")
    vm = psutil.virtual_memory()
    target = data_dir or Path.home()
    while not target.exists() and target != target.parent:
        target = target.parent
    disk_free = shutil.disk_usage(target).free
    gpus, note = probe_nvidia()
    notes = [note] if note else []
    if apple:
        # Apple silicon shares memory between CPU and GPU; about 70% is usable by Metal.
        unified = round(vm.total / GIB * 0.7, 1)
        gpus.append(
            Gpu(
                name=f"Apple {platform.processor() or 'silicon'} GPU",
                vendor="apple",
                vram_total_gb=unified,
                vram_free_gb=unified,
            )
        )
        notes = ["Apple silicon: the GPU shares system memory"]
    return Hardware(
        os=os_name,
        arch=arch,
        apple_silicon=apple,
        ram_total_gb=round(vm.total / GIB, 1),
        ram_free_gb=round(vm.available / GIB, 1),
        disk_free_gb=round(disk_free / GB, 1),
        gpus=gpus,
        notes=notes,
    )


def profile_names() -> list[str]:
    return sorted(p.stem for p in bundled.profiles_dir().glob("*.json"))


def load_profile(name_or_path: str) -> Hardware:
    """A hardware profile by name (bundled) or by path to a JSON file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = bundled.profiles_dir() / f"{name_or_path}.json"
    try:
        usable = path.is_file()
    except (OSError, ValueError):  # a name too long for the system, or with a NUL
        usable = False
    if not usable:
        raise NotFound(
            f"There is no hardware profile '{name_or_path[:80]}'.",
            f"Known profiles: {', '.join(profile_names())}; or give a path to a JSON file.",
        )
    try:
        data = json.loads(path.read_text("utf-8"))
        return Hardware.model_validate(data)
    except (json.JSONDecodeError, UnicodeDecodeError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        raise DarkroomError(
            f"The hardware profile {path} is not valid ({first}).",
            "Compare it with one produced by `darkroom probe --json`.",
        ) from None
