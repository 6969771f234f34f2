"""One GPU, several apps: a VRAM budget from the plans, and switching that frees memory first.

Each running app's expected GPU memory comes from its plan (recorded in its run file). An
app that has unloaded its model (idle unload, or asked through /api/unload) counts as using
nothing. Starting an app that would not fit is refused with the numbers, and `--switch`
unloads (or, where an app cannot unload, stops) the others first.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import httpx

from .errors import DarkroomError
from .events import Message, Reporter, ignore
from .hardware import Hardware
from .home import Home
from .planner import VRAM_HEADROOM_GB
from .supervisor import RunInfo, control

SOURCE = "switch"


class NeedsSwitch(DarkroomError):
    """The app would not fit on the GPU beside the running ones; `--switch` would make room."""


@dataclass
class Usage:
    app: str
    expected_gb: float        # what the plan says the app holds while its model is loaded
    loaded: bool              # False once it has unloaded its model
    measured_gb: float | None  # from NVML, per process (None where NVML is not available)

    @property
    def counted_gb(self) -> float:
        return self.expected_gb if self.loaded else 0.0


def _info(run: RunInfo) -> dict:
    try:
        resp = httpx.get(run.url.rstrip("/") + "/api/info", timeout=2.0)
        return resp.json() if resp.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return {}


def measured_by_pid() -> dict[int, float] | None:
    """GPU memory per process in GB, read through NVML; None without an NVIDIA driver."""
    try:
        import pynvml
        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        out: dict[int, float] = {}
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                used = proc.usedGpuMemory or 0
                out[proc.pid] = out.get(proc.pid, 0.0) + used / 1024**3
        return out
    except Exception:
        return None
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def _tree_pids(pid: int | None) -> set[int]:
    if not pid:
        return set()
    try:
        import psutil

        proc = psutil.Process(pid)
        return {pid, *(c.pid for c in proc.children(recursive=True))}
    except Exception:
        return {pid}


def usage(home: Home) -> list[Usage]:
    """What each running app holds (expected, and measured where NVML can tell)."""
    by_pid = measured_by_pid()
    out = []
    for run in control.status(home):
        if not run.active:
            continue
        info = _info(run) if run.status == "ready" else {}
        loaded = bool(info.get("loaded", True))
        measured = None
        if by_pid is not None:
            measured = round(sum(by_pid.get(p, 0.0) for p in _tree_pids(run.app_pid)), 2)
        out.append(Usage(run.app, run.vram_gb, loaded, measured))
    return out


def budget_gb(hw: Hardware) -> float:
    gpu = hw.best_gpu
    return max(0.0, gpu.vram_total_gb - VRAM_HEADROOM_GB) if gpu else 0.0


def check_fits(home: Home, hw: Hardware, app: str, need_gb: float) -> None:
    """Refuse, with the numbers, to start an app that would not fit beside the running ones."""
    if need_gb <= 0 or hw.best_gpu is None:
        return
    others = [u for u in usage(home) if u.app != app and u.counted_gb > 0]
    used = sum(u.counted_gb for u in others)
    total = budget_gb(hw)
    if used + need_gb <= total:
        return
    names = ", ".join(f"{u.app} ({u.counted_gb:g} GB)" for u in others)
    raise NeedsSwitch(
        f"{app} needs about {need_gb:g} GB of GPU memory, but {names} already use {used:g} GB "
        f"of the {total:g} GB this GPU can give.",
        f"Run `darkroom start {app} --switch` to free the GPU from the others first, "
        "or stop one of them.")


def free_for(home: Home, hw: Hardware, app: str, need_gb: float, report: Reporter = ignore) -> list[str]:
    """Unload (or stop) other apps, biggest first, until `app` fits. Returns what was done."""
    done = []
    total = budget_gb(hw)
    others = sorted((u for u in usage(home) if u.app != app and u.counted_gb > 0),
                    key=lambda u: -u.counted_gb)
    used = sum(u.counted_gb for u in others)
    for u in others:
        if used + need_gb <= total:
            break
        run = control.app_status(home, u.app)
        if run is not None and _unload(run):
            done.append(f"{u.app} unloaded its model")
        else:
            control.stop(home, u.app)
            done.append(f"{u.app} stopped")
        used -= u.counted_gb
        report(Message(SOURCE, f"To make room for {app}: {done[-1]}."))
    return done


def _unload(run: RunInfo) -> bool:
    try:
        resp = httpx.post(run.url.rstrip("/") + "/api/unload", timeout=60.0)
    except httpx.HTTPError:
        return False
    return resp.status_code == 200


__all__ = ["Usage", "budget_gb", "check_fits", "free_for", "measured_by_pid", "usage"]


def start(home: Home, settings, hw: Hardware, app: str, resolve, switch: bool = False,
          report: Reporter = ignore) -> RunInfo:
    """Start `app` (and what it needs) within the GPU budget; with `switch`, make room first.

    `resolve(app) -> LaunchSpec` is the same resolver the supervisor's start_with_needs takes.
    """
    running = {u.app for u in usage(home)}
    spec = resolve(app)
    need = spec.vram_gb
    for dep in spec.needs:
        if dep not in running:
            need += resolve(dep).vram_gb
    if switch:
        free_for(home, hw, app, need, report)
    check_fits(home, hw, app, need)
    return control.start_with_needs(home, settings, app, resolve, report)
