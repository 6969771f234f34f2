"""run/<app>.json and its neighbours: where they are, how they are written and read.

The run file is the only channel between a runner and everyone else: the runner writes
it atomically, readers never parse process tables to guess. A reader checks that the
runner named in it is still that process (pid and create time) and otherwise calls the
file stale.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..fsutil import atomic_write_json, read_json
from ..home import Home
from ..validate import APP_ID_RE
from . import proctree
from .spec import ACTIVE, STALE, LaunchSpec, RunInfo


def run_file(home: Home, app: str) -> Path:
    return home.run_file(app)


def launch_file(home: Home, app: str) -> Path:
    """The resolved LaunchSpec handed to the runner (no .json suffix: not a run file)."""
    return home.launch_file(app)


def stop_file(home: Home, app: str) -> Path:
    """Its presence asks the runner to stop; works where signals do not (Windows)."""
    return home.stop_file(app)


def control_lock(home: Home, app: str) -> Path:
    """Held around start and stop so two Darkroom processes never act on one app at once."""
    return home.control_lock(app)


def runner_lock(home: Home, app: str) -> Path:
    """Held by the runner for its whole life: a second runner for the app refuses to start."""
    return home.runner_lock(app)


def ports_lock(home: Home) -> Path:
    """Held while a port is chosen and claimed, so two apps starting at once pick different ones."""
    return home.ports_lock


def runner_log(home: Home, app: str) -> Path:
    return home.runner_log(app)


def app_log(home: Home, app: str) -> Path:
    return home.app_log(app)


def write(home: Home, info: RunInfo) -> None:
    info.updated = time.time()
    data = info.to_dict()
    data.pop("stale", None)
    atomic_write_json(run_file(home, info.app), data)


def read_raw(home: Home, app: str) -> RunInfo | None:
    data = read_json(run_file(home, app))
    if not isinstance(data, dict) or data.get("app") != app:
        return None
    try:
        return RunInfo.from_dict(data)
    except TypeError:
        return None


def inspect(home: Home, app: str) -> RunInfo | None:
    """The run file with liveness checked: an active status whose runner is gone is stale."""
    info = read_raw(home, app)
    if info is None:
        return None
    if info.status in ACTIVE and not proctree.alive(info.runner_pid, info.runner_created):
        info.stale = True
        info.status = STALE
    return info


def apps_with_run_files(home: Home) -> list[str]:
    if not home.run.is_dir():
        return []
    # Only names that are app ids: a stray file must not make every status call fail.
    return sorted(p.stem for p in home.run_files() if APP_ID_RE.fullmatch(p.stem))


def write_launch(home: Home, spec: LaunchSpec) -> None:
    """The resolved spec plus every path the runner needs, so it can launch the app before
    it imports anything heavy (0600: the env may hold settings the user wants private)."""
    app = spec.app
    paths = {
        "log": app_log(home, app),
        "runner_log": runner_log(home, app),
        "stop": stop_file(home, app),
        "run": run_file(home, app),
    }
    atomic_write_json(
        launch_file(home, app),
        {"spec": spec.to_dict(), "paths": {k: str(v) for k, v in paths.items()}},
        mode=0o600,
    )


def remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
