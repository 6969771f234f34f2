"""The plain data the weight store hands out: files in the store, problems, gc results."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from ..recipe import ModelFile
from ..state import InstalledFile


class FileSpec(Protocol):
    """Anything naming a file in a repo: a recipe's ModelFile or a state's InstalledFile."""

    repo: str
    path: str
    revision: str
    sha256: str | None
    repo_type: str


@dataclass(frozen=True)
class LocalFile:
    """A verified file in the store, ready for an app: where it lies and what it hashes to."""

    spec: ModelFile
    path: str  # path inside the repo (a glob in spec.path expands to several)
    commit: str
    local_path: Path  # models/<repo>/snapshots/<commit>/<path>
    sha256: str | None
    size: int

    def installed(self) -> InstalledFile:
        """The state entry; it names the commit, so a moved branch never changes what an app loads."""
        return InstalledFile(
            repo=self.spec.repo,
            revision=self.commit,
            path=self.path,
            sha256=self.sha256,
            size=self.size,
            repo_type=self.spec.repo_type,
        )


@dataclass(frozen=True)
class Problem:
    """A file an app needs that is missing or damaged in the store."""

    repo: str
    path: str
    kind: Literal["missing", "corrupt"]
    message: str
    local_path: Path | None = None

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class StoreEntry:
    """One file of one snapshot in the store, and the installed apps that use it."""

    repo: str
    repo_type: str
    commit: str
    path: str
    size: int
    blob: str
    refs: list[str] = field(default_factory=list)
    apps: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class GcItem:
    repo: str
    repo_type: str
    name: str  # blob name (or snapshot path where links are copies)
    size: int
    paths: list[str]  # repo paths that pointed at it
    partial: bool = False


@dataclass
class GcResult:
    items: list[GcItem]
    deleted: bool

    @property
    def freed_bytes(self) -> int:
        return sum(i.size for i in self.items)
