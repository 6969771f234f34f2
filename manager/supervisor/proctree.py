"""Process trees: telling a live process from a reused pid, and ending a whole tree.

An app that leaves a child behind can keep gigabytes of GPU memory, so stopping always
takes the process group and every descendant psutil can still see.
"""

from __future__ import annotations

import contextlib
import os
import signal

import psutil

# Windows has no SIGKILL; only POSIX code paths signal groups, but the name must resolve.
SIGKILL = getattr(signal, "SIGKILL", signal.SIGTERM)


def create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return None


def process(pid: int | None, created: float | None) -> psutil.Process | None:
    """The live process with this pid and create time; None if gone, a zombie, or reused."""
    if not pid:
        return None
    try:
        proc = psutil.Process(pid)
        if created is not None and abs(proc.create_time() - created) > 0.05:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (psutil.Error, OSError):
        return None


def alive(pid: int | None, created: float | None) -> bool:
    return process(pid, created) is not None


def _descendants(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except (psutil.Error, OSError):
        return []


def _signal_group(pgid: int | None, sig: int) -> None:
    if pgid and os.name == "posix":
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


def terminate(procs: list[psutil.Process], pgid: int | None, timeout: float) -> bool:
    """SIGTERM the group and the processes, wait up to `timeout`, then SIGKILL what is left.

    Returns True if force was needed.
    """
    _signal_group(pgid, signal.SIGTERM)
    for proc in procs:
        with contextlib.suppress(psutil.Error, OSError):
            proc.terminate()
    _gone, alive_procs = psutil.wait_procs(procs, timeout=timeout)
    forced = bool(alive_procs)
    if forced:
        _signal_group(pgid, SIGKILL)
        for proc in alive_procs:
            with contextlib.suppress(psutil.Error, OSError):
                proc.kill()
        psutil.wait_procs(alive_procs, timeout=5)
    # Whatever is still in the group (a child that ignored SIGTERM while its parent exited
    # in time) is killed now: nothing of the app may outlive a stop.
    _signal_group(pgid, SIGKILL)
    return forced


def terminate_tree(
    pid: int, created: float | None, timeout: float, pgid: int | None = None
) -> bool:
    """End `pid` (if it is still the same process), its group and all its descendants."""
    root = process(pid, created)
    procs = ([root] + _descendants(root)) if root else []
    if pgid is None and root is not None and os.name == "posix":
        with contextlib.suppress(ProcessLookupError, PermissionError):
            pgid = os.getpgid(pid)
            if pgid != pid:  # not a group of its own: never signal someone else's group
                pgid = None
    return terminate(procs, pgid, timeout)


def own_descendants() -> list[psutil.Process]:
    """Every process below this one (with set_subreaper, orphans of children included)."""
    return _descendants(psutil.Process())
