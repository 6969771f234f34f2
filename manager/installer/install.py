"""install: the env and the weights built side by side, templates rendered, the record
written once everything is in place (an update is an install over the old version)."""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from pathlib import Path

from .. import appsource, envs, launching, library, weights
from .. import state as state_mod
from ..config import Settings
from ..errors import DarkroomError, DiskFull
from ..events import (
    Cancellable,
    CancelToken,
    Message,
    Reporter,
    Stage,
    checkpoint,
    ignore,
    on_cancel,
)
from ..fsutil import (
    atomic_write_json,
    atomic_write_text,
    disk_full_error,
    is_disk_full,
)
from ..home import Home
from ..planner import ENV_DISK_GB, Plan
from ..recipe import (
    Recipe,
)
from ..state import InstalledApp, InstalledModel
from ..supervisor import control
from .journal import SOURCE, app_lock, recover, recover_one
from .preview import Preview, placeholder_values


def env_spec(recipe: Recipe, p: Plan, source: appsource.AppSource) -> envs.EnvSpec:
    return envs.EnvSpec(
        app=recipe.id,
        python=recipe.python,
        packages=list(p.packages),
        local_packages=list(source.local_packages),
        requirement_files=list(source.requirement_files),
        torch_packages=list(p.torch_packages),
        torch_backend=p.torch_backend or "cpu",
        check_import=recipe.check_import,
    )


def _precheck_disk(home: Home, settings: Settings, pv: Preview, report: Reporter) -> list:
    files = [f for m in pv.plan.models for f in m.files]
    dplan = weights.plan_download(home, files, settings) if files else None
    need = dplan.needed_bytes if dplan else 0
    has_env = envs.info(home, pv.recipe.id) is not None
    warm = home.uv_cache.exists() and any(home.uv_cache.iterdir())
    env_gb = 0.0 if has_env else (0.5 if warm else ENV_DISK_GB.get(pv.plan.backend, 1.0))
    free = shutil.disk_usage(home.root).free
    if free < need + env_gb * 1e9:
        raise DiskFull(
            f"Not enough disk space to install {pv.recipe.name}: it needs about "
            f"{(need + env_gb * 1e9) / 1e9:.1f} GB and {free / 1e9:.1f} GB is free.",
            "Free some space (`darkroom models gc`, `darkroom cache prune`) or pick a smaller variant, "
            "then try again.",
        )
    report(Stage(SOURCE, "disk", f"{need / 1e9:.2f} GB to download, {free / 1e9:.1f} GB free"))
    return files


def build_and_pull(
    home: Home, settings: Settings, spec: envs.EnvSpec, files: list, report: Reporter
) -> list[weights.LocalFile]:
    """Env and weights at once, one stream of progress; the first error wins, and a failed
    download (or a cancel, or Ctrl-C) stops the build at once instead of waiting for it."""
    errors: list[BaseException] = []
    stop_build = CancelToken()
    build_report = Cancellable(report, stop_build)

    def build() -> None:
        try:
            envs.build(home, settings, spec, build_report)
        except BaseException as exc:  # handed to the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=build, name=f"env-{spec.app}", daemon=True)
    local: list[weights.LocalFile] = []
    with on_cancel(report, stop_build.cancel):
        thread.start()
        try:
            if files:
                local = weights.pull(home, settings, files, report)
            thread.join()
        except BaseException:  # a failed pull, or Ctrl-C even while waiting for the build
            stop_build.cancel()
            thread.join()
            raise
    if errors:
        raise errors[0]
    return local


def render_templates(
    home: Home, settings: Settings, recipe: Recipe, source: appsource.AppSource
) -> list[Path]:
    """Write the recipe's config files into the app folder, placeholders filled.

    {port} and {host} take the recipe's port and the bind address; the supervisor may move
    the port at start if it is taken, so templates should prefer command-line arguments.
    """
    values = placeholder_values(home, settings, recipe, source.app_dir)
    written: list[Path] = []
    if recipe.bundled:  # bundled apps take their settings from the environment, not files
        return written
    if recipe.templates:
        library.ensure(home)
    for template in recipe.templates:
        text = template.content
        for key, value in values.items():
            text = text.replace("{" + key + "}", value)
        dest = source.app_dir / template.dest
        if not dest.resolve().is_relative_to(source.app_dir.resolve()):
            raise DarkroomError(
                f"The recipe of {recipe.name} writes outside its folder ({template.dest}).",
                "Fix the recipe's templates.",
            )
        dest.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(dest, text)
        written.append(dest)
    return written


def _check_start(home: Home, settings: Settings, installed: InstalledApp, report: Reporter) -> None:
    """Start the app, wait for its health check, stop it: 'installed' means it really runs."""
    spec = launching.launch_spec(home, settings, installed.app, installed)
    report(Stage(SOURCE, "checking", f"starting {installed.app} once to see that it answers"))
    try:
        control.start(home, settings, spec, report)
    finally:
        with contextlib.suppress(DarkroomError):
            control.stop(home, installed.app)


def _installed_record(
    pv: Preview, local: list[weights.LocalFile], revision: str | None, previous: InstalledApp | None
) -> InstalledApp:
    by_spec: dict[tuple, list] = {}
    for lf in local:
        by_spec.setdefault((lf.spec.repo, lf.spec.path, lf.spec.revision), []).append(
            lf.installed()
        )
    models = []
    for m in pv.plan.models:
        files = [
            f for spec in m.files for f in by_spec.get((spec.repo, spec.path, spec.revision), [])
        ]
        models.append(
            InstalledModel(
                model=m.model,
                variant=m.variant,
                precision=m.precision,
                offload=m.offload,
                files=files,
            )
        )
    now = time.time()
    return InstalledApp(
        app=pv.recipe.id,
        version=pv.recipe.version,
        recipe_source=pv.origin,
        recipe_text=pv.recipe_text,
        backend=pv.plan.backend,
        device=pv.plan.device,
        models=models,
        vram_gb=pv.plan.vram_gb,
        variants=dict(pv.choices.variants),
        chosen_models=list(pv.choices.models) if pv.choices.models else None,
        source_revision=revision,
        accepted_licences=[lic.model for lic in pv.licences],
        installed_at=previous.installed_at if previous else now,
        updated_at=now,
        previous=previous.model_copy(update={"previous": None}) if previous else None,
    )


def install(
    home: Home,
    settings: Settings,
    pv: Preview,
    report: Reporter = ignore,
    *,
    accepted: bool = False,
    check_start: bool = True,
) -> InstalledApp:
    """Install (or, when already installed, update) the app the preview describes.

    `accepted` means the user saw the plan, the manifest and the licences and said yes;
    without it nothing happens. On any failure the app is left as it was before.
    """
    if (pv.licences or pv.manifest) and not accepted:
        raise DarkroomError(
            f"Installing {pv.recipe.name} needs your consent first.",
            "Read the plan and licences, then confirm (in the CLI: --yes --accept-licences).",
        )
    home.ensure()
    recover(home, report)
    app = pv.recipe.id
    with app_lock(home, app):
        previous = state_mod.load(home).apps.get(app)
        info = envs.info(home, app)
        action = "update" if previous else "install"
        journal = {
            "action": action,
            "app": app,
            "started": time.time(),
            "env_hash": info.spec_hash if info else None,
            "source_swapped": False,
        }
        # Nothing is touched yet: a full disk here ends in fsutil's sentence, state unchanged.
        atomic_write_json(home.journal(app), journal)
        was_running = False
        try:
            files = _precheck_disk(home, settings, pv, report)
            source, staged = appsource.stage(home, pv.recipe, report)
            if staged is not None:
                source = appsource.swap_in(home, pv.recipe, staged)
                journal["source_swapped"] = True
                atomic_write_json(home.journal(app), journal)
            spec = env_spec(pv.recipe, pv.plan, source)
            run = control.app_status(home, app)
            was_running = bool(run and run.active)
            local = build_and_pull(home, settings, spec, files, report)
            record = _installed_record(pv, local, source.revision, previous)
            record.env_spec, record.env_hash = spec.to_dict(), spec.fingerprint()
            library.link(home, pv.recipe, record)
            render_templates(home, settings, pv.recipe, source)
            if was_running:
                control.stop(home, app)
            if check_start:
                _check_start(home, settings, record, report)
            checkpoint(report)  # the last moment a cancel undoes the install
            with state_mod.transaction(home) as st:
                st.apps[app] = record
            home.journal(app).unlink()
        except BaseException as exc:
            recover_one(home, app, home.journal(app), ignore)
            error = disk_full_error(home.root) if is_disk_full(exc) else exc
            if isinstance(error, DarkroomError) and previous is not None:
                error.hint = (
                    error.hint + " " if error.hint else ""
                ) + f"The previous version of {app} was put back and still works."
            if was_running and previous is not None:
                with contextlib.suppress(DarkroomError):
                    control.start(
                        home, settings, launching.launch_spec(home, settings, app, previous), report
                    )
            if error is not exc:
                raise error from None
            raise
        if was_running:
            control.start(
                home, settings, launching.launch_spec(home, settings, app, record), report
            )
    verb = "updated" if previous else "installed"
    after = "It is running again." if was_running else f"Start it with `darkroom start {app}`."
    report(Message(SOURCE, f"{pv.recipe.name} is {verb}. {after}"))
    return record
