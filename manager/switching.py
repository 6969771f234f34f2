"""One GPU, several apps: a VRAM budget from the plans, and switching that frees memory first.

Each running app's expected GPU memory comes from its plan (recorded in its run file). An
app that has unloaded its model (idle unload, or asked through /api/unload) counts as using
nothing. Starting an app that would not fit is refused with the numbers, and `--switch`
asks the others to unload their models first.

A switch never throws away work in progress unless the person says so: an app with a job
running is waited for (its job, progress and estimate reported), a batch of the workflow
runner that calls it pauses after its current item (see holds below), and only
`mode="now"` cancels the job — reported as cancelled by the person, not as a crash. An app
that cannot unload is stopped only when it has no job running (or with `mode="now"`).
Setting `cancel` (Ctrl-C, the TUI's Cancel) withdraws the queued start and leaves
everything running as it was.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field

import httpx

from . import protocol
from .errors import DarkroomError
from .events import Message, Progress, Reporter, ignore
from .fsutil import atomic_write_json
from .hardware import Hardware
from .home import Home
from .planner import usable_vram_gb
from .supervisor import RunInfo, control

SOURCE = "switch"
WAIT, NOW = "wait", "now"
CANCEL_GRACE_S = 30.0  # how long a cancelled job may take to stop before its app is stopped


class NeedsSwitch(DarkroomError):
    """The app would not fit on the GPU beside the running ones; `--switch` would make room."""


class SwitchRefused(DarkroomError):
    """Making room would break a batch the person asked to keep running."""


class SwitchWithdrawn(DarkroomError):
    """The person withdrew a queued start (Ctrl-C, Cancel); everything runs as it did."""


@dataclass
class Usage:
    app: str
    expected_gb: float  # what the plan says the app holds while its model is loaded
    loaded: bool  # False once it has unloaded its model
    measured_gb: float | None  # from NVML, per process (None where NVML is not available)
    busy: bool = False  # a job is running or queued (apps that say; others: False)
    job: dict | None = None  # the running job: id, task, progress, eta_s
    idle_unload_min: float = 0.0  # the app frees its model after this many idle minutes (0: never)
    unloaded_by: str = ""  # "idle" or "request" while the model is unloaded

    @property
    def counted_gb(self) -> float:
        return self.expected_gb if self.loaded else 0.0


Batch = protocol.Batch  # a workflow batch at work, as the engine writes it


@dataclass
class Obstacle:
    """One app that must give up its GPU memory, and the work it would have to stop for that."""

    app: str
    gb: float
    job: dict | None = None
    batches: list[Batch] = field(default_factory=list)

    @property
    def work(self) -> str:
        """The work in progress, in words ('' if none): what a confirmation has to name."""
        parts = []
        if self.job:
            parts.append(f"{self.app}'s job {describe_job(self.job)}")
        parts += [f"the batch {b.preset} ({b.done} of {b.total} done)" for b in self.batches]
        return " and ".join(parts)


def describe_job(job: dict) -> str:
    """'restore (a1b2c3), 45%, about 2 min left'."""
    text = f"{job.get('task', 'job')} ({str(job.get('id', '?'))[:8]})"
    progress = float(job.get("progress") or 0.0)
    if progress:
        text += f", {progress * 100:.0f}%"
    eta = job.get("eta_s")
    if eta is not None:
        text += f", about {_duration(float(eta))} left"
    return text


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


# ---------------------------------------------------------------- what runs, what it holds


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


def _usage_of(run: RunInfo, info: dict, measured: float | None) -> Usage:
    return Usage(
        run.app,
        run.vram_gb,
        bool(info.get("loaded", True)),
        measured,
        busy=bool(info.get("busy", False)),
        job=info.get("job") or None,
        idle_unload_min=float(info.get("idle_unload_minutes") or 0.0),
        unloaded_by=str(info.get("unloaded_by") or ""),
    )


def usage(home: Home) -> list[Usage]:
    """What each running app holds (expected, and measured where NVML can tell)."""
    by_pid = measured_by_pid()
    out = []
    for run in control.status(home):
        if not run.active:
            continue
        info = _info(run) if run.status == "ready" else {}
        measured = None
        if by_pid is not None:
            measured = round(sum(by_pid.get(p, 0.0) for p in _tree_pids(run.app_pid)), 2)
        out.append(_usage_of(run, info, measured))
    return out


def budget_gb(hw: Hardware) -> float:
    """The GPU memory apps may share: the same usable figure the planner plans against."""
    gpu = hw.best_gpu
    return usable_vram_gb(gpu) if gpu else 0.0


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
        "or stop one of them.",
    )


# ---------------------------------------------------------------- batches and holds


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    import psutil

    return psutil.pid_exists(pid)


def batches(home: Home) -> list[Batch]:
    """The workflow batches at work now (files of dead processes are ignored)."""
    folder = protocol.batches_dir(home.root)
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        b = protocol.Batch.read(path)
        if b is None or not _pid_alive(b.pid):
            continue
        out.append(b)
    return out


def _hold(home: Home, hold: protocol.Hold) -> None:
    path = protocol.hold_file(home.root, hold.app)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, hold.to_dict())


def release(home: Home, app: str) -> None:
    """`app` is back (started again by the person): batches that call it may go on."""
    with contextlib.suppress(FileNotFoundError):
        protocol.hold_file(home.root, app).unlink()


def _holds_for(home: Home, app: str) -> list[str]:
    """The apps this process's switch holds to make room for `app`."""
    folder = protocol.hold_file(home.root, app).parent
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        hold = protocol.Hold.read(home.root, path.stem)
        if hold is not None and hold.for_app == app and hold.waiter_pid == os.getpid():
            out.append(path.stem)
    return out


# ---------------------------------------------------------------- making room


def obstacles(home: Home, hw: Hardware, app: str, need_gb: float) -> list[Obstacle]:
    """The apps that must give up their GPU memory for `app` to fit (biggest first), each
    with the job and batches it would keep waiting for. Empty when `app` fits already."""
    total = budget_gb(hw)
    if need_gb <= 0 or hw.best_gpu is None:
        return []
    others = sorted(
        (u for u in usage(home) if u.app != app and u.counted_gb > 0), key=lambda u: -u.counted_gb
    )
    used = sum(u.counted_gb for u in others)
    running = batches(home)
    out = []
    for u in others:
        if used + need_gb <= total:
            break
        out.append(
            Obstacle(
                u.app,
                u.counted_gb,
                u.job if u.busy else None,
                [b for b in running if u.app in b.apps],
            )
        )
        used -= u.counted_gb
    return out


def free_for(
    home: Home,
    hw: Hardware,
    app: str,
    need_gb: float,
    report: Reporter = ignore,
    mode: str = WAIT,
    cancel: threading.Event | None = None,
    poll_s: float = 0.2,
) -> list[str]:
    """Make room for `app`: the apps in the way unload their models, biggest first, once their
    work is done (mode "wait") or cut short (mode "now"). Returns what was done.

    Raises SwitchRefused when a batch in the way was asked to keep running, and
    SwitchWithdrawn when `cancel` is set while waiting (holds are then lifted)."""
    cancel = cancel or threading.Event()
    todo = obstacles(home, hw, app, need_gb)
    kept = [(o, b) for o in todo for b in o.batches if b.keep_running]
    if kept:
        o, b = kept[0]
        raise SwitchRefused(
            f"{app} cannot get room: {o.app} is working through the batch {b.preset} "
            f"({b.done} of {b.total} done), which was started to keep running.",
            f"Wait until the batch is done, then run `darkroom start {app} --switch` again; "
            "or stop the batch first.",
        )
    for o in todo:  # batches that call these apps pause after their current item
        _hold(home, protocol.Hold(app=o.app, for_app=app, waiter_pid=os.getpid()))
    done: list[str] = []
    try:
        for o in todo:
            done.append(_make_room(home, o, app, mode, cancel, report, poll_s))
            report(Message(SOURCE, f"To make room for {app}: {done[-1]}."))
    except BaseException:
        for o in todo:
            release(home, o.app)
        raise
    return done


def _make_room(
    home: Home,
    o: Obstacle,
    app: str,
    mode: str,
    cancel: threading.Event,
    report: Reporter,
    poll_s: float,
) -> str:
    """Wait for (or cut short) the work of one app, then unload it; stop it only when idle."""
    said = ""
    cancelled_at: float | None = None
    cut_short = ""
    silent = 0  # unload calls the app did not answer
    while True:
        if cancel.is_set():
            raise SwitchWithdrawn(
                f"The start of {app} was withdrawn; everything keeps running as it was."
            )
        run = control.app_status(home, o.app)
        if run is None or not run.active:
            return f"{o.app} had stopped"
        info = _info(run) if run.status == "ready" else {}
        speaks_jobs = "busy" in info
        waiting_for = [b for b in batches(home) if o.app in b.apps and b.state != "paused"]
        if speaks_jobs and info.get("busy"):
            job = info.get("job") or {}
            if mode == NOW:
                if cancelled_at is None:
                    cut_short = _cancel_jobs(run, info, app)
                    cancelled_at = time.monotonic()
                    report(
                        Message(
                            SOURCE, f"Cancelling {o.app}'s {cut_short}, as you asked.", "warning"
                        )
                    )
                elif time.monotonic() - cancelled_at > CANCEL_GRACE_S:
                    control.stop(home, o.app)
                    return (
                        f"{o.app} stopped; its {cut_short} was cancelled by you "
                        "(it did not stop by itself)"
                    )
            else:
                said = _say_waiting(report, o.app, app, job, waiting_for, said)
            cancel.wait(poll_s)
            continue
        if waiting_for and mode != NOW:
            said = _say_waiting(report, o.app, app, None, waiting_for, said)
            cancel.wait(poll_s)
            continue
        code = _unload(run)
        if code == protocol.UNLOAD_DONE:
            suffix = f" (its {cut_short} was cancelled by you)" if cut_short else ""
            return f"{o.app} unloaded its model{suffix}"
        if (
            code == protocol.UNLOAD_BUSY
        ):  # busy (a job slipped in, or an app that only says so here): wait
            said = _say_waiting(report, o.app, app, None, [], said)
            cancel.wait(poll_s)
            continue
        if code == 0 and silent < 3:  # no answer: a loaded machine, or a restart; ask again
            silent += 1
            cancel.wait(poll_s)
            continue
        # It cannot unload (no such endpoint, or it never answers) and shows no job running,
        # so stopping it loses nothing it reported.
        control.stop(home, o.app)
        return f"{o.app} stopped (it cannot unload its model on its own)"


def _say_waiting(
    report: Reporter, busy_app: str, app: str, job: dict | None, waiting_for: list[Batch], said: str
) -> str:
    if job:
        text = f"Waiting for {busy_app} to finish its job {describe_job(job)} before {app} starts."
        percent = round(float(job.get("progress") or 0.0) * 100)
        eta = job.get("eta_s")
        report(
            Progress(
                SOURCE,
                "waiting",
                percent,
                100,
                unit="%",
                item=f"{busy_app}: {job.get('task', 'job')}",
                rate=(100 - percent) / eta if eta else 0.0,
            )
        )
    elif waiting_for:
        b = waiting_for[0]
        text = (
            f"Waiting for the batch {b.preset} ({b.done} of {b.total} done) to finish its "
            f"current item on {busy_app}; it then pauses until {busy_app} is back."
        )
    else:
        text = f"Waiting for {busy_app} to finish its work before {app} starts."
    key = text.split(",")[0] if job else text
    if key != said:
        report(
            Message(SOURCE, text + " Ctrl-C (or Cancel) withdraws the start; nothing else changes.")
        )
    return key


def _cancel_jobs(run: RunInfo, info: dict, app: str) -> str:
    """Cancel the running job and those queued behind it; the running one's name, in words."""
    reason = f"Cancelled by you, to make room for {app}."
    job = info.get("job") or {}
    ids = [j for j in [job.get("id"), *(info.get("queued") or [])] if j]
    base = run.url.rstrip("/")
    for job_id in ids:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"{base}/api/jobs/{job_id}/cancel", json={"reason": reason}, timeout=10.0)
    return f"job {describe_job(job)}" if job else "queued jobs"


def _unload(run: RunInfo) -> int:
    """The unload answer's status; 0 if the app did not answer."""
    try:
        resp = httpx.post(
            run.url.rstrip("/") + protocol.UNLOAD_PATH, params={"timeout": 2}, timeout=60.0
        )
    except httpx.HTTPError:
        return 0
    return resp.status_code


__all__ = [
    "NOW",
    "WAIT",
    "Batch",
    "Obstacle",
    "SwitchRefused",
    "SwitchWithdrawn",
    "Usage",
    "batches",
    "budget_gb",
    "check_fits",
    "describe_job",
    "free_for",
    "measured_by_pid",
    "need_gb",
    "obstacles",
    "release",
    "start",
    "usage",
]


def need_gb(home: Home, app: str, resolve) -> float:
    """GPU memory `app` needs to start: its own, plus that of what it needs and is not running."""
    running = {u.app for u in usage(home)}
    spec = resolve(app)
    return spec.vram_gb + sum(resolve(dep).vram_gb for dep in spec.needs if dep not in running)


def start(
    home: Home,
    settings,
    hw: Hardware,
    app: str,
    resolve,
    switch: bool | str = False,
    report: Reporter = ignore,
    cancel: threading.Event | None = None,
) -> RunInfo:
    """Start `app` (and what it needs) within the GPU budget; with `switch`, make room first.

    `switch` is False, True or "wait" (wait for work in progress), or "now" (cut it short).
    `resolve(app) -> LaunchSpec` is the same resolver the supervisor's start_with_needs takes.
    """
    need = need_gb(home, app, resolve)
    release(home, app)  # started again by the person: batches that wait for it may go on
    if switch:
        free_for(home, hw, app, need, report, mode=NOW if switch == NOW else WAIT, cancel=cancel)
    held = _holds_for(home, app)
    try:
        check_fits(home, hw, app, need)
        info = control.start_with_needs(home, settings, app, resolve, report)
    except BaseException:
        for name in held:
            release(home, name)
        raise
    for name in held:  # the hold lasts while `app` runs; batches resume when it stops
        _hold(home, protocol.Hold(app=name, for_app=app, runner_pid=info.runner_pid))
    return info
