"""The on-disk weight store: the standard Hugging Face cache layout under Home.models.

    models/models--owner--name/blobs/<etag>            the bytes (sha256 for LFS files, git sha1 else)
    models/models--owner--name/snapshots/<commit>/<path> -> ../../blobs/<etag>
    models/models--owner--name/refs/<branch>           the commit a branch pointed at

Keeping exactly this layout lets apps load with HF_HUB_CACHE + HF_HUB_OFFLINE=1 and lets other
Hugging Face tools reuse the files. Only this module knows the layout.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..fsutil import atomic_write_text

COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
HASH_CHUNK = 4 << 20


def repo_folder_name(repo: str, repo_type: str = "model") -> str:
    return "--".join([f"{repo_type}s", *repo.split("/")])


@dataclass(frozen=True)
class RepoStore:
    """One repository's folder in the store."""

    models: Path
    repo: str
    repo_type: str = "model"

    @property
    def root(self) -> Path:
        return self.models / repo_folder_name(self.repo, self.repo_type)

    def blob(self, etag: str) -> Path:
        return self.root / "blobs" / etag

    def blobs(self) -> list[Path]:
        """Every file in blobs/ (whole or partial), sorted."""
        base = self.root / "blobs"
        return sorted(base.iterdir()) if base.is_dir() else []

    def incomplete(self, etag: str) -> Path:
        """The partial download of a blob; a stable name, so a later run resumes it."""
        return self.root / "blobs" / f"{etag}.incomplete"

    def snapshot(self, commit: str) -> Path:
        """The folder an app is pointed at for one revision (HF's snapshots/<commit>)."""
        return self.root / "snapshots" / commit

    def pointer(self, commit: str, path: str) -> Path:
        return self.snapshot(commit) / Path(*path.split("/"))

    def lock_file(self, etag: str) -> Path:
        # The same lock path huggingface_hub uses, so the two never write one blob at once.
        return self.models / ".locks" / repo_folder_name(self.repo, self.repo_type) / f"{etag}.lock"

    def ref(self, revision: str) -> str | None:
        """The commit for `revision`: itself if it is a commit hash, else what refs/ recorded."""
        if COMMIT_RE.match(revision):
            return revision
        try:
            value = (self.root / "refs" / revision).read_text().strip()
        except OSError:
            return None
        return value if COMMIT_RE.match(value) else None

    def set_ref(self, revision: str, commit: str) -> None:
        if revision == commit or COMMIT_RE.match(revision):
            return
        path = self.root / "refs" / revision
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            if path.read_text() == commit:
                return
        atomic_write_text(path, commit)

    def link(self, commit: str, path: str, etag: str) -> Path:
        """Make snapshots/<commit>/<path> point at the blob (relative symlink, else hardlink/copy)."""
        pointer = self.pointer(commit, path)
        blob = self.blob(etag)
        pointer.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            pointer.unlink()
        try:
            os.symlink(os.path.relpath(blob, pointer.parent), pointer)
        except OSError:  # no symlinks (Windows without developer mode)
            try:
                os.link(blob, pointer)
            except OSError:
                shutil.copyfile(blob, pointer)
        return pointer

    def local_file(self, commit: str, path: str) -> Path | None:
        """The snapshot entry if it exists and leads to a whole blob."""
        pointer = self.pointer(commit, path)
        return pointer if pointer.is_file() else None

    def drop_ref(self, name: str) -> None:
        with contextlib.suppress(OSError):
            (self.root / "refs" / name).unlink()

    def prune(self) -> None:
        """Drop links to deleted blobs, empty folders, refs to vanished snapshots, empty repos."""
        snapshots = self.root / "snapshots"
        if snapshots.is_dir():
            for dirpath, _dirs, names in os.walk(snapshots):
                for name in names:
                    p = Path(dirpath) / name
                    if p.is_symlink() and not p.exists():
                        p.unlink()
            for dirpath, _dirs, _names in sorted(os.walk(snapshots), key=lambda t: -len(t[0])):
                with contextlib.suppress(OSError):
                    Path(dirpath).rmdir()
        commits = set(commits_of(self))
        for name, commit in refs_of(self).items():
            if commit not in commits:
                self.drop_ref(name)
        if not commits and not self.blobs():
            shutil.rmtree(self.root, ignore_errors=True)

    def snapshot_files(self, commit: str) -> list[str]:
        """Repo paths present in a snapshot, '/'-separated."""
        base = self.snapshot(commit)
        if not base.is_dir():
            return []
        out = []
        for dirpath, _dirs, names in os.walk(base):
            for name in names:
                full = Path(dirpath) / name
                if full.is_file():
                    out.append(full.relative_to(base).as_posix())
        return sorted(out)


def blob_of(pointer: Path) -> Path:
    """The blob a snapshot entry leads to (itself where links were not possible)."""
    return Path(os.path.realpath(pointer))


def match_pattern(pattern: str, paths: list[str]) -> list[str]:
    """Repo paths matching a recipe glob: '*' and '?' stay within one folder, '**' crosses."""
    regex = re.compile(_glob_regex(pattern))
    return [p for p in paths if regex.fullmatch(p)]


def _glob_regex(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[" and (end := pattern.find("]", i + 1)) > i + 1:
            body = pattern[i + 1 : end]
            out.append(
                "[" + ("^" + body[1:] if body[0] == "!" else body).replace("\\", "\\\\") + "]"
            )
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def sha256_file(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            h.update(chunk)
            if on_bytes:
                on_bytes(len(chunk))
    return h.hexdigest()


def git_sha1_file(path: Path) -> str:
    """The git blob id, the name the hub gives small (non-LFS) files."""
    h = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def iter_repos(models: Path) -> Iterator[RepoStore]:
    """Every repository folder in the store."""
    if not models.is_dir():
        return
    for entry in sorted(models.iterdir()):
        kind, sep, rest = entry.name.partition("--")
        if not sep or not entry.is_dir() or kind not in ("models", "datasets", "spaces"):
            continue
        yield RepoStore(models, rest.replace("--", "/", 1), kind[:-1])


def all_blobs(models: Path) -> Iterator[Path]:
    """Every blob of every repository in the store."""
    for store in iter_repos(models):
        yield from store.blobs()


def refs_of(store: RepoStore) -> dict[str, str]:
    """branch/tag name -> commit, for every ref recorded."""
    out: dict[str, str] = {}
    base = store.root / "refs"
    if base.is_dir():
        for path in base.rglob("*"):
            if path.is_file() and not path.name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    out[path.relative_to(base).as_posix()] = path.read_text().strip()
    return out


def commits_of(store: RepoStore) -> list[str]:
    base = store.root / "snapshots"
    return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
