"""What is installed: one JSON file, written atomically under the data-folder lock.

Readers may read without the lock (the file is always whole); writers go through
`transaction`, which re-reads under the lock so two processes never lose each other's
changes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from pydantic import BaseModel, Field, ValidationError

from .fsutil import atomic_write_json, locked, read_json
from .home import Home


class InstalledFile(BaseModel):
    """One weight file an installed app uses, as it lies in the store."""

    repo: str
    revision: str
    path: str
    sha256: str | None = None
    size: int = 0
    repo_type: str = "model"


class InstalledModel(BaseModel):
    model: str
    variant: str
    precision: str = ""
    offload: str = "none"
    files: list[InstalledFile] = Field(default_factory=list)


class InstalledApp(BaseModel):
    app: str
    version: str
    recipe_source: str = "bundled"  # "bundled", or the file/URL the recipe came from
    recipe_text: str | None = None  # kept for apps not bundled, so they can be re-planned
    backend: str = "cpu"  # torch backend the env was built for
    device: str = "cpu"
    models: list[InstalledModel] = Field(default_factory=list)
    vram_gb: float = 0.0  # what the plan expects the app to use on the GPU
    variants: dict[str, str] = Field(
        default_factory=dict
    )  # the user's variant overrides, kept for update
    chosen_models: list[str] | None = None  # None = the recipe's defaults
    source_revision: str | None = None  # git commit of a git-sourced app
    env_spec: dict | None = None  # what the env was built from (for rollback)
    env_hash: str | None = None
    accepted_licences: list[str] = Field(default_factory=list)
    previous: InstalledApp | None = None  # what `rollback` returns to
    installed_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)


class State(BaseModel):
    version: int = 1
    apps: dict[str, InstalledApp] = Field(default_factory=dict)

    def files_in_use(self) -> set[tuple[str, str, str]]:
        """(repo, revision, path) of every weight file some installed app refers to."""
        return {
            (f.repo, f.revision, f.path)
            for app in self.apps.values()
            for m in app.models
            for f in m.files
        }


def load(home: Home) -> State:
    raw = read_json(home.state_file, default=None)
    if raw is None:
        return State()
    try:
        return State.model_validate(raw)
    except ValidationError:
        # A state file we cannot read is kept aside for inspection, never silently lost.
        broken = home.state_file.with_suffix(f".broken-{int(time.time())}.json")
        with contextlib.suppress(OSError):
            home.state_file.rename(broken)
        return State()


def save(home: Home, state: State) -> None:
    atomic_write_json(home.state_file, state.model_dump(mode="json"))


@contextlib.contextmanager
def transaction(home: Home, timeout: float = 30.0) -> Iterator[State]:
    """Lock, load, let the caller change the state, save. Nothing is saved on error."""
    with locked(home.lock_file, timeout=timeout):
        state = load(home)
        yield state
        save(home, state)
