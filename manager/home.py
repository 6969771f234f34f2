"""The on-disk layout of the data folder, in one place.

Every other module asks a `Home` for paths instead of joining strings itself, so the
layout in DESIGN.md is written down exactly once.
"""

from __future__ import annotations

import os
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
    def apps(self) -> Path:
        """Source trees of apps that are not bundled (git clones)."""
        return self.root / "apps"

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
