"""doctor and du: what is wrong with this installation (each finding with a one-line fix),
and where the disk goes.

Checks read only; `fix` applies the fixes marked safe (they never delete user data).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import catalogue, envs, installer, uvtool, weights
from . import state as state_mod
from .config import Settings
from .errors import DarkroomError
from .fsutil import dir_size
from .hardware import Hardware
from .home import Home
from .supervisor import control
from .weights.store import RepoStore

LOW_DISK_GB = 10.0
_FLAVOUR_NEEDS = {
    "cu128": (12, 8),
    "cu126": (12, 6),
    "cu124": (12, 4),
    "cu121": (12, 1),
    "cu118": (11, 8),
}


@dataclass
class Finding:
    level: str  # "ok", "warning", "error"
    topic: str
    text: str  # what is wrong, in a sentence
    fix: str = ""  # what to do, in one line
    safe_fix: Callable[[], object] | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return {
            "level": self.level,
            "topic": self.topic,
            "text": self.text,
            "fix": self.fix,
            "auto_fixable": self.safe_fix is not None,
        }


def _driver_findings(st: state_mod.State, hw: Hardware) -> list[Finding]:
    out = []
    gpu = hw.best_gpu
    for app in st.apps.values():
        flavour = app.env_spec.get("torch_backend") if app.env_spec else None
        if not flavour or not flavour.startswith("cu"):
            continue
        if gpu is None or gpu.vendor != "nvidia":
            out.append(
                Finding(
                    "error",
                    "driver",
                    f"{app.app} was built for an NVIDIA GPU ({flavour}), "
                    "but no NVIDIA GPU is working now.",
                    f"Check the NVIDIA driver, or run `darkroom update {app.app}` to switch to the CPU.",
                )
            )
            continue
        try:
            have = tuple(int(x) for x in (gpu.cuda_version or "0.0").split(".")[:2])
        except ValueError:
            have = (0, 0)
        need = _FLAVOUR_NEEDS.get(flavour, (0, 0))
        if have < need:
            out.append(
                Finding(
                    "error",
                    "driver",
                    f"{app.app} uses PyTorch for CUDA {need[0]}.{need[1]}, "
                    f"but the NVIDIA driver supports only CUDA {gpu.cuda_version}.",
                    f"Update the NVIDIA driver, or run `darkroom update {app.app}`.",
                )
            )
    return out


def torch_mismatch(flavour: str | None, packages: dict[str, str]) -> tuple[str, str] | None:
    """(level, what is wrong) when an env's torch is not the build its plan asked for; None when
    it is (or the env has no torch). `packages` is the env's lock: name -> version."""
    torch = packages.get("torch")
    if not torch or not flavour or flavour == "mps":
        return None
    local = torch.partition("+")[2]
    nvidia = [p for p in packages if p.startswith("nvidia-")]
    if flavour == "cpu":
        if local == "cpu" or (not local and not nvidia):
            return None
        return "warning", (
            f"was planned for the CPU but holds PyTorch's CUDA build (torch {torch}, "
            f"{len(nvidia)} nvidia-* packages): gigabytes this machine cannot use"
        )
    if local == "cpu":
        return (
            "error",
            f"was planned for {flavour} but holds PyTorch's CPU build, so it never uses the GPU",
        )
    if local and local != flavour:
        return "warning", f"was planned for {flavour} but holds torch {torch}"
    return None


def _torch_findings(home: Home, app: str) -> list[Finding]:
    info = envs.info(home, app)
    wrong = torch_mismatch(info.torch_backend, info.packages) if info else None
    if wrong is None:
        return []
    return [
        Finding(
            wrong[0],
            "torch",
            f"The environment of {app} {wrong[1]}.",
            "If you use a package mirror, name its PyTorch index (`darkroom config set torch_index_urls "
            f"cpu=URL`), then run `darkroom update {app}`.",
        )
    ]


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        if os.name != "nt":
            # As the apps' servers do: a connection in TIME_WAIT does not make a port busy, only
            # a listener does. (On Windows this option would let us share a live port instead.)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            return True
        except OSError:
            return False


def check(home: Home, settings: Settings, hw: Hardware, deep: bool = False) -> list[Finding]:
    """Everything doctor looks at; an empty list never happens (an all-clear is a finding too)."""
    st = state_mod.load(home)
    findings: list[Finding] = []

    journals = home.journals()
    if journals:
        findings.append(
            Finding(
                "warning",
                "interrupted",
                f"{len(journals)} install or update was interrupted.",
                "Run `darkroom doctor --fix` to finish cleaning it up.",
                lambda: installer.recover(home),
            )
        )

    findings += _driver_findings(st, hw)

    free_gb = shutil.disk_usage(home.root).free / 1e9
    if free_gb < LOW_DISK_GB:
        findings.append(
            Finding(
                "warning",
                "disk",
                f"Only {free_gb:.1f} GB is free for Darkroom's data folder.",
                "Free some space: `darkroom models gc` and `darkroom cache prune` help.",
            )
        )

    if not uvtool.hardlinks_work(home):
        findings.append(
            Finding(
                "warning",
                "cache",
                "uv's cache cannot hardlink into envs/, so every app "
                "environment uses its full size on disk (files are copied).",
                "Keep the data folder on one filesystem (DARKROOM_HOME) and allow hard links.",
            )
        )

    for info in control.status(home):
        if info.stale:
            findings.append(
                Finding(
                    "warning",
                    "run files",
                    f"{info.app} is recorded as running, but its supervisor is gone.",
                    f"`darkroom doctor --fix` (or `darkroom stop {info.app}`).",
                    lambda app=info.app: control.stop(home, app),
                )
            )

    running = {i.app for i in control.status(home) if i.active}
    for app in sorted(st.apps):
        recipe = None
        with contextlib.suppress(DarkroomError):
            recipe = catalogue.installed_recipe(st.apps[app], app)
        if recipe and app not in running and not _port_free(settings.bind_host, recipe.launch.port):
            findings.append(
                Finding(
                    "ok",
                    "ports",
                    f"Port {recipe.launch.port} of {app} is used by another "
                    "program; Darkroom will use the next free port.",
                    "",
                )
            )
        if envs.info(home, app) is None:
            # Installed, but its environment is gone (deleted by hand, or a disk cleaner): a
            # finding to fix, not a reason for the whole check to stop.
            findings.append(
                Finding(
                    "error",
                    "environments",
                    f"{app} is installed but its environment is missing, so it cannot start.",
                    f"`darkroom install {app}` builds it again (your models and outputs are kept).",
                )
            )
            files = [f for m in st.apps[app].models for f in m.files]
            findings += _model_findings(home, settings, app, files, deep)
            continue
        result = envs.verify(home, app, check_import=True)
        if not result.ok:
            problems = "; ".join(result.problems[:2]) or "it differs from what was installed"
            findings.append(
                Finding(
                    "error",
                    "environments",
                    f"The environment of {app} is damaged: {problems}.",
                    f"`darkroom doctor --fix` repairs it (or `darkroom env repair {app}`).",
                    lambda app=app: _repair_env(home, settings, app),
                )
            )
        findings += _torch_findings(home, app)
        files = [f for m in st.apps[app].models for f in m.files]
        findings += _model_findings(home, settings, app, files, deep)

    orphans = [e for e in envs.list_envs(home) if e not in st.apps]
    for app in orphans:
        findings.append(
            Finding(
                "warning",
                "environments",
                f"There is an environment for {app}, which is not installed.",
                "`darkroom doctor --fix` removes it.",
                lambda app=app: envs.remove(home, app),
            )
        )

    if not any(f.level != "ok" for f in findings):
        findings.append(Finding("ok", "all", "Nothing is wrong with this installation.", ""))
    return findings


def _model_findings(
    home: Home, settings: Settings, app: str, files: list, deep: bool
) -> list[Finding]:
    """Every byte is hashed once; later runs trust a verification recorded for the same size,
    mtime and inode (deep: hash everything again)."""
    bad = weights.verify(home, files, recorded=not deep) if files else []
    if not bad:
        return []
    return [
        Finding(
            "error",
            "models",
            f"{len(bad)} model file(s) of {app} are missing or damaged: {bad[0].message}",
            f"`darkroom doctor --fix` fetches them again (or `darkroom models pull {app}`).",
            lambda files=files: weights.pull(home, settings, weights.specs_of(files)),
        )
    ]


def _repair_env(home: Home, settings: Settings, app: str) -> object:
    """Repair in place; when that cannot make the app import again, rebuild it whole."""
    try:
        return envs.repair(home, settings, app)
    except DarkroomError:
        spec = envs.recorded_spec(home, app)
        if spec is None:
            raise
        return envs.build(home, settings, spec, force=True)


def fix(findings: list[Finding]) -> list[tuple[Finding, str]]:
    """Apply the safe fixes; each result is 'fixed' or the sentence of what went wrong."""
    results = []
    for finding in findings:
        if finding.safe_fix is None:
            continue
        try:
            finding.safe_fix()
            results.append((finding, "fixed"))
        except DarkroomError as exc:
            results.append((finding, str(exc)))
    return results


@dataclass
class DiskUse:
    """Disk use whose figures add up: separately - saved = actual, for environments and for
    models; what no app uses (uv's cache, unused store files) is counted apart, not mixed in."""

    apps: dict[str, dict[str, int]]  # app -> {"env": bytes, "models": bytes}
    envs_separate: int  # each env on its own, as if nothing were shared
    envs_actual: int  # all envs together, each hardlinked file once
    models_separate: int  # model bytes counted per app
    models_actual: int  # the model files apps use, each once
    cache: int = 0  # uv's package cache beyond what the envs share with it
    models_unused: int = 0  # files in the store no installed app uses

    @property
    def saved(self) -> int:
        return max(0, self.envs_separate - self.envs_actual) + max(
            0, self.models_separate - self.models_actual
        )

    @property
    def total(self) -> int:
        return self.envs_actual + self.cache + self.models_actual + self.models_unused

    def to_dict(self) -> dict:
        return {
            "apps": self.apps,
            "envs_separate": self.envs_separate,
            "envs_actual": self.envs_actual,
            "models_separate": self.models_separate,
            "models_actual": self.models_actual,
            "cache": self.cache,
            "models_unused": self.models_unused,
            "saved": self.saved,
            "total": self.total,
        }


def _size_together(folders: list[Path]) -> int:
    """Bytes under all `folders` together, each hardlinked file once across them."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for folder in folders:
        for root, _dirs, files in os.walk(folder):
            for name in files:
                try:
                    info = os.lstat(os.path.join(root, name))
                except OSError:
                    continue
                if (info.st_dev, info.st_ino) not in seen:
                    seen.add((info.st_dev, info.st_ino))
                    total += info.st_size
    return total


def _used_model_bytes(home: Home, st: state_mod.State) -> int:
    """Bytes of the files installed apps use, each blob once (apps may share a file)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for app in st.apps.values():
        for m in app.models:
            for f in m.files:
                try:
                    info = (
                        RepoStore(home.models, f.repo, f.repo_type)
                        .pointer(f.revision, f.path)
                        .stat()
                    )
                except OSError:
                    continue
                if (info.st_dev, info.st_ino) not in seen:
                    seen.add((info.st_dev, info.st_ino))
                    total += info.st_size
    return total


def disk_use(home: Home) -> DiskUse:
    st = state_mod.load(home)
    apps: dict[str, dict[str, int]] = {}
    for name in sorted(set(st.apps) | set(envs.list_envs(home))):
        env_bytes = dir_size(home.env_dir(name)) if home.env_dir(name).exists() else 0
        installed = st.apps.get(name)
        model_bytes = sum(f.size for m in installed.models for f in m.files) if installed else 0
        apps[name] = {"env": env_bytes, "models": model_bytes}
    envs_actual = dir_size(home.envs) if home.envs.exists() else 0
    with_cache = _size_together([home.envs, home.uv_cache])
    models_actual = _used_model_bytes(home, st)
    store = dir_size(home.models) if home.models.exists() else 0
    return DiskUse(
        apps=apps,
        envs_separate=sum(a["env"] for a in apps.values()),
        envs_actual=envs_actual,
        models_separate=sum(a["models"] for a in apps.values()),
        models_actual=models_actual,
        cache=max(0, with_cache - envs_actual),
        models_unused=max(0, store - models_actual),
    )
