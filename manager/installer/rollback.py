"""rollback: the version before the last update, put back (code, env and record)."""

from __future__ import annotations

import time

from .. import appsource, catalogue, envs, launching, suggest
from .. import state as state_mod
from ..config import Settings
from ..errors import Conflict
from ..events import (
    Message,
    Reporter,
    Stage,
    ignore,
)
from ..fsutil import (
    read_json,
)
from ..home import Home
from ..state import InstalledApp
from ..supervisor import control
from .journal import SOURCE, app_lock, recover


def rollback(home: Home, settings: Settings, app: str, report: Reporter = ignore) -> InstalledApp:
    """Return to the version before the last update: env, code and recorded models."""
    recover(home, report)
    with app_lock(home, app):
        installed = state_mod.load(home).apps.get(app)
        if installed is None:
            raise suggest.not_installed(home, app)
        if installed.previous is None:
            raise Conflict(
                f"There is no earlier version of {app} to go back to.",
                "Rollback works after an update.",
            )
        run = control.app_status(home, app)
        was_running = bool(run and run.active)
        if was_running:
            control.stop(home, app)
        _restore(home, settings, app, installed.previous, report)
        back = installed.previous.model_copy(
            update={
                "previous": installed.model_copy(update={"previous": None}),
                "updated_at": time.time(),
            }
        )
        with state_mod.transaction(home) as st:
            st.apps[app] = back
        if was_running:
            control.start(home, settings, launching.launch_spec(home, settings, app, back), report)
    report(Message(SOURCE, f"{app} is back to version {back.version}."))
    return back


def _restore(
    home: Home, settings: Settings, app: str, prev: InstalledApp, report: Reporter
) -> None:
    """Put back the code and env `prev` ran with: swapped back when kept, rebuilt otherwise."""
    if prev.source_revision:
        appsource.restore(home, catalogue.installed_recipe(prev, app), prev.source_revision, report)
    kept = read_json(envs.previous_dir(home, app) / envs.META_FILE, default={}) or {}
    if prev.env_hash and kept.get("spec_hash") == prev.env_hash:
        envs.rollback(home, app, report)
    elif prev.env_spec:
        report(Stage(SOURCE, "rebuilding", f"the environment {app} had before"))
        envs.build(home, settings, envs.EnvSpec.from_dict(prev.env_spec), report, force=True)
    else:
        envs.rollback(home, app, report)
