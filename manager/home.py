"""The on-disk layout of the data folder, in one place.

Every other module asks a `Home` for paths instead of joining strings itself, so the
layout in DESIGN.md is written down exactly once.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from .validate import app_id_or_fail

ENV_VAR = "DARKROOM_HOME"


@dataclass(frozen=True)
class Home:
    root: Path

    def __post_init__(self) -> None:
        # Always absolute: env builds and app processes run in other working folders, where a
        # relative root would name another place (an env's import check once failed so).
        object.__setattr__(self, "root", Path(self.root).expanduser().resolve())

    @classmethod
    def from_env(cls) -> Home:
        """DARKROOM_HOME if set, else the platform's user data folder."""
        value = os.environ.get(ENV_VAR)
        root = Path(value).expanduser() if value else Path(platformdirs.user_data_dir("darkroom"))
        return cls(root.resolve())

    # files
    @property
    def config_file(self) -> Path:
        return self.root / "config.yaml"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    @property
    def verified_file(self) -> Path:
        """Hashes of blobs already checked, keyed by size, mtime and inode."""
        return self.root / "verified.json"

    @property
    def ports_lock(self) -> Path:
        """Held while a port is chosen and claimed, so two apps starting at once pick different ones."""
        return self.run / ".ports.lock"

    # folders
    @property
    def envs(self) -> Path:
        return self.root / "envs"

    @property
    def models(self) -> Path:
        """The shared Hugging Face cache (HF_HUB_CACHE layout)."""
        return self.root / "models"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    @property
    def uv_cache(self) -> Path:
        """uv's cache, on the same filesystem as envs/ so uv can hardlink."""
        return self.root / "cache" / "uv"

    @property
    def staging(self) -> Path:
        """Half-built things live here until they are swapped in; safe to delete."""
        return self.root / "staging"

    @property
    def presets(self) -> Path:
        """Workflow presets of the user's own (.yaml): listed beside the bundled ones and run
        by name."""
        return self.root / "presets"

    def preset_files(self) -> list[Path]:
        """The user's own preset files, by name."""
        if not self.presets.is_dir():
            return []
        return sorted(p for p in self.presets.glob("*.y*ml") if p.suffix in (".yaml", ".yml"))

    @property
    def apps(self) -> Path:
        """Source trees of apps that are not bundled (git clones)."""
        return self.root / "apps"

    @property
    def appdata(self) -> Path:
        """User-data folders that recipes declare, kept across versions of the app."""
        return self.root / "appdata"

    @property
    def library(self) -> Path:
        """Friendly names (hardlinks) of store files, by kind, for apps that browse folders."""
        return self.models / "library"

    def model_file(self, key: str) -> Path:
        """A file in the model store named by its path relative to models/ (as records keep it)."""
        return self.models / key

    # Per-app paths: the id is checked here too (the CLI and the recipe schema check it first),
    # so no name such as '../x' or '/etc/passwd' can ever become a path outside the data folder.
    def env_dir(self, app: str) -> Path:
        return self.envs / app_id_or_fail(app)

    def log_dir(self, app: str) -> Path:
        return self.logs / app_id_or_fail(app)

    def run_file(self, app: str) -> Path:
        return self.run / f"{app_id_or_fail(app)}.json"

    def output_dir(self, app: str) -> Path:
        return self.outputs / app_id_or_fail(app)

    def app_dir(self, app: str) -> Path:
        return self.apps / app_id_or_fail(app)

    def app_data(self, app: str) -> Path:
        return self.appdata / app_id_or_fail(app)

    # The version kept for rollback beside the live one, and the locks of an app's actions.
    def env_previous(self, app: str) -> Path:
        return self.envs / f".{app_id_or_fail(app)}.previous"

    def app_previous(self, app: str) -> Path:
        return self.apps / f".{app_id_or_fail(app)}.previous"

    def env_lock(self, app: str) -> Path:
        return self.envs / f".{app_id_or_fail(app)}.lock"

    def install_lock(self, app: str) -> Path:
        return self.run / f"{app_id_or_fail(app)}.install.lock"

    # staging/: scratch folders named kind-app-random, and the journals of unfinished actions.
    def scratch(self, kind: str, app: str) -> Path:
        """A fresh name in staging/ for a half-built thing of `kind` ('env', 'src', 'trash'...)."""
        self.staging.mkdir(parents=True, exist_ok=True)
        return self.staging / f"{kind}-{app_id_or_fail(app)}-{uuid.uuid4().hex[:8]}"

    def scratch_left(
        self, kinds: tuple[str, ...], app: str | None = None
    ) -> Iterator[tuple[str, Path]]:
        """(app, path) of what `scratch` named for one of `kinds` and a process left behind."""
        if not self.staging.is_dir():
            return
        names = "|".join(re.escape(k) for k in kinds)
        pattern = re.compile(rf"^(?:{names})-([a-z][a-z0-9-]*)-[0-9a-f]{{8}}$")
        for path in self.staging.iterdir():
            m = pattern.match(path.name)
            if m and (app is None or m.group(1) == app):
                yield m.group(1), path

    def journal(self, app: str) -> Path:
        return self.staging / f"journal-{app_id_or_fail(app)}.json"

    def journals(self) -> list[Path]:
        return sorted(self.staging.glob("journal-*.json"))

    # run/: the supervisor's files of a running app.
    def launch_file(self, app: str) -> Path:
        """The resolved LaunchSpec handed to the runner (no .json suffix: not a run file)."""
        return self.run / f"{app_id_or_fail(app)}.launch"

    def stop_file(self, app: str) -> Path:
        """Its presence asks the runner to stop; works where signals do not (Windows)."""
        return self.run / f"{app_id_or_fail(app)}.stop"

    def control_lock(self, app: str) -> Path:
        """Held around start and stop so two Darkroom processes never act on one app at once."""
        return self.run / f"{app_id_or_fail(app)}.lock"

    def runner_lock(self, app: str) -> Path:
        """Held by the runner for its whole life: a second runner for the app refuses to start."""
        return self.run / f"{app_id_or_fail(app)}.runner.lock"

    def run_files(self) -> Iterator[Path]:
        return self.run.glob("*.json")

    def run_leftovers(self, app: str) -> Iterator[Path]:
        """Every file in run/ that belongs to the app (run file, launch spec, locks)."""
        return self.run.glob(f"{app_id_or_fail(app)}.*")

    def runner_log(self, app: str) -> Path:
        return self.log_dir(app) / "runner.log"

    def run_log(self, app: str) -> Path:
        """The stderr of a one-off run (the workflow engine's), kept for its details."""
        return self.log_dir(app) / "run.log"

    def app_log(self, app: str) -> Path:
        return self.log_dir(app) / f"{app}.log"

    def link_probes(self) -> tuple[Path, Path]:
        """A file name in uv's cache and one in envs/, to test whether hardlinks work between them."""
        tag = uuid.uuid4().hex[:8]
        return self.uv_cache / f".linkprobe-{tag}", self.envs / f".linkprobe-{tag}"

    def ensure(self) -> Home:
        """Create the top-level folders; cheap and idempotent."""
        for path in (
            self.root,
            self.envs,
            self.models,
            self.logs,
            self.run,
            self.outputs,
            self.uv_cache,
            self.staging,
            self.apps,
        ):
            path.mkdir(parents=True, exist_ok=True)
        return self
