"""From an installed app (state + recipe + store) to the LaunchSpec the supervisor runs.

This is where the app protocol is filled in: the device, and DARKROOM_MODELS, the JSON
description of each chosen model's variant and its verified local files.
"""

from __future__ import annotations

from pathlib import Path

from . import appsource, catalogue, envs, protocol, suggest, weights
from . import state as state_mod
from .config import Settings
from .errors import DarkroomError
from .home import Home
from .state import InstalledApp, InstalledModel
from .supervisor import LaunchSpec
from .weights.store import RepoStore


def snapshot_dir(home: Home, repo: str, revision: str, repo_type: str = "model") -> Path:
    return RepoStore(home.models, repo, repo_type).snapshot(revision)


def model_choice(home: Home, m: InstalledModel) -> protocol.ModelChoice:
    """One installed model as the app protocol describes it: its variant and its files in the store."""
    files = [
        protocol.LocalFile(
            repo=f.repo,
            revision=f.revision,
            path=f.path,
            sha256=f.sha256,
            local=str(RepoStore(home.models, f.repo, f.repo_type).pointer(f.revision, f.path)),
        )
        for f in m.files
    ]
    snapshots = {f.repo: str(snapshot_dir(home, f.repo, f.revision, f.repo_type)) for f in m.files}
    return protocol.ModelChoice(
        variant=m.variant,
        precision=m.precision,
        offload=m.offload or "none",
        files=files,
        snapshots=snapshots,
    )


def models_spec(home: Home, installed: InstalledApp) -> protocol.ModelsSpec:
    """Every model of an installed app; the first is the one to load first."""
    return protocol.ModelsSpec(
        models={m.model: model_choice(home, m) for m in installed.models},
        default=installed.models[0].model if installed.models else None,
    )


def models_json(home: Home, installed: InstalledApp) -> str:
    """DARKROOM_MODELS: what each model is, how to run it, and where its files lie."""
    return models_spec(home, installed).to_json()


def check_weights(home: Home, installed: InstalledApp) -> None:
    """Refuse to start an app on a missing or damaged weight file. Cheap on every start: a
    file whose size, mtime and inode match a recorded verification is not hashed again."""
    files = [f for m in installed.models for f in m.files]
    problems = weights.verify(home, files, recorded=True) if files else []
    if problems:
        app = installed.app
        more = f" ({len(problems) - 1} more file(s) too)" if len(problems) > 1 else ""
        raise DarkroomError(
            f"{app} was not started: {problems[0].message}{more} It would load wrong weights.",
            f"Run `darkroom models pull {app}` to fetch the file(s) again "
            "(or `darkroom doctor --fix`), then start it.",
        )


def launch_spec(
    home: Home, settings: Settings, app: str, installed: InstalledApp | None = None
) -> LaunchSpec:
    """The LaunchSpec of an installed app; a clear sentence when it is not installed."""
    if installed is None:
        installed = state_mod.load(home).apps.get(app)
    recipe = catalogue.installed_recipe(installed, app)
    python = envs.env_python(home, app)
    if installed is None or not python.exists():
        raise suggest.not_installed(home, app)
    check_weights(home, installed)
    source = appsource.current(home, recipe)
    env = dict(recipe.launch.env)
    env[protocol.APP] = app
    env[protocol.DEVICE] = installed.device
    env[protocol.MODELS] = models_json(home, installed)
    env[protocol.IDLE_UNLOAD] = str(settings.idle_unload_minutes)
    cwd = source.app_dir if source.app_dir.is_dir() else None
    return LaunchSpec(
        app=app,
        argv=[*recipe.launch.command, *recipe.launch.backend_args.get(installed.backend, [])],  # type: ignore[call-overload]
        env=env,
        placeholders={
            "env_python": str(python),
            "app_dir": str(source.app_dir),
            "models_dir": str(home.models),
            "outputs_dir": str(home.output_dir(app)),
        },
        port=recipe.launch.port,
        health_path=recipe.launch.health,
        startup_timeout_s=recipe.launch.startup_timeout_s,
        cwd=cwd,
        vram_gb=installed.vram_gb,
        needs=list(recipe.needs),
    )
