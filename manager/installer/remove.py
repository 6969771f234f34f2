"""remove: an app's code, env, logs and run files gone; its models and data kept if asked."""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from .. import appsource, envs, library, suggest, weights
from .. import state as state_mod
from ..config import Settings
from ..errors import DarkroomError, NotFound
from ..events import (
    Message,
    Reporter,
    Stage,
    ignore,
)
from ..home import Home
from ..supervisor import control
from .journal import SOURCE, app_lock, recover


@dataclass
class Removed:
    app: str
    freed_bytes: int
    models_kept: bool
    data_kept: Path | None = None  # the app's user-data folder, when it was kept


def data_folder(home: Home, app: str) -> Path | None:
    """The app's user-data folder (saved workflows, custom nodes ...), if it has one: what a
    front end names when it asks whether `remove` should keep it."""
    folder = appsource.data_dir(home, app)
    return folder if folder.is_dir() else None


def remove(
    home: Home,
    settings: Settings,
    app: str,
    keep_models: bool = False,
    report: Reporter = ignore,
    *,
    keep_data: bool = True,
) -> Removed:
    """Remove env, code, logs, run file and state; models only when no other app uses them.

    The app's user data (appdata/<id>/) is kept unless `keep_data` is False: deleting a
    person's saved work is something a front end asks about first, never a default."""
    recover(home, report)
    with app_lock(home, app):
        st = state_mod.load(home)
        if app not in st.apps and envs.info(home, app) is None:
            raise suggest.not_installed(home, app, "Nothing was changed.")
        with contextlib.suppress(DarkroomError):
            control.stop(home, app, report)
        report(Stage(SOURCE, "removing", app))
        with state_mod.transaction(home) as st:
            st.apps.pop(app, None)
            remaining = st.model_copy(deep=True)
        with contextlib.suppress(NotFound):
            envs.remove(home, app, report)
        data_kept = appsource.remove(home, app, keep_data=keep_data)
        shutil.rmtree(home.log_dir(app), ignore_errors=True)
        for leftover in home.run_leftovers(app):
            with contextlib.suppress(OSError):
                leftover.unlink()
        freed = 0
        if not keep_models:
            result = weights.gc(home, remaining, dry_run=False)
            freed = result.freed_bytes
            library.unlink_unused(home, set())
    report(
        Message(
            SOURCE,
            f"{app} was removed"
            + (f"; {freed / 1e9:.2f} GB of model files freed." if freed else "."),
        )
    )
    if data_kept is not None:
        report(
            Message(
                SOURCE,
                f"Its saved work is kept in {data_kept}; installing {app} again uses it, "
                "or delete that folder if you no longer need it.",
            )
        )
    return Removed(app, freed, keep_models, data_kept)
