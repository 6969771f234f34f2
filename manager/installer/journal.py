"""The journal of an action in progress, and recovery from one that died half-way.

Every action writes a small journal in staging/ before it touches anything and deletes it
when state.json says the new truth. A journal found later means the action died half-way:
`recover` puts things back to what state.json says (the old app, or cleanly nothing), so a
kill -9 or a power cut leaves either the old state or the new, never half of one.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from .. import appsource, envs, validate
from .. import state as state_mod
from ..errors import Conflict, DarkroomError
from ..events import (
    Message,
    Reporter,
    ignore,
)
from ..fsutil import (
    locked,
    read_json,
)
from ..home import Home
from ..supervisor import control

SOURCE = "install"


def app_lock(home: Home, app: str, timeout: float = 5.0):
    """One action per app at a time, across processes."""
    validate.app_id_or_fail(app)  # before the id becomes a lock file's name
    return locked(home.install_lock(app), timeout=timeout, what=f"installing {app}")


def recover(home: Home, report: Reporter = ignore) -> list[str]:
    """Finish or undo actions that died half-way; returns a line per app put right."""
    fixed = []
    for path in home.journals():
        app = path.stem.removeprefix("journal-")
        if not validate.APP_ID_RE.fullmatch(app):
            continue  # not one of ours: never turned into a path
        try:
            with app_lock(home, app, timeout=0.1):
                fixed.append(recover_one(home, app, path, report))
        except Conflict:
            continue  # someone is working on it right now
    return [f for f in fixed if f]


def recover_one(home: Home, app: str, path: Path, report: Reporter) -> str:
    journal = read_json(path, default={}) or {}
    installed = state_mod.load(home).apps.get(app)
    done = installed is not None and installed.updated_at >= journal.get("started", 0)
    line = ""
    if not done:
        with contextlib.suppress(DarkroomError):
            control.stop(home, app)
        if journal.get("action") == "install" and installed is None:
            with contextlib.suppress(DarkroomError, OSError):
                envs.remove(home, app)
            appsource.remove(home, app)
            line = f"An interrupted install of {app} was cleaned up; {app} is not installed."
        else:
            info = envs.info(home, app)
            if info and journal.get("env_hash") and info.spec_hash != journal["env_hash"]:
                with contextlib.suppress(DarkroomError, OSError):
                    envs.rollback(home, app)
            if journal.get("source_swapped"):
                appsource.rollback(home, app)
            line = f"An interrupted change to {app} was undone; the previous version is in place."
    appsource.clean_staging(home, app)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    if line:
        report(Message(SOURCE, line, "warning"))
    return line
