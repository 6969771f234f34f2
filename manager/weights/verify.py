"""Checking, adopting and cleaning the store: verify, import_file, list_store, gc.

verify finds what an app would load that is missing or damaged; import_file turns a file the
user already has into a proper blob + snapshot entry once its hash checks out; gc removes
blobs no installed app refers to, after showing what that frees.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from ..config import Settings
from ..errors import DarkroomError, NotFound
from ..events import Progress, Reporter, Stage, ignore
from ..fsutil import locked
from ..home import Home
from ..recipe import ModelFile
from ..state import InstalledFile, State
from . import record
from .remote import endpoint_of, resolve_remote
from .store import (
    RepoStore,
    blob_of,
    commits_of,
    iter_repos,
    match_pattern,
    refs_of,
    sha256_file,
)
from .types import FileSpec, GcItem, GcResult, LocalFile, Problem, StoreEntry

SOURCE = "weights"


# ---------------------------------------------------------------- verify


def verify(
    home: Home,
    files: Iterable[FileSpec],
    *,
    full: bool = True,
    remove_bad: bool = False,
    recorded: bool = False,
    report: Reporter = ignore,
) -> list[Problem]:
    """Problems with the files as an app would load them; [] when all is well.

    `full` hashes every byte (sha256 against the pin or the blob's LFS name, git sha1 for
    small files); without it only presence is checked. `recorded` lets a verification
    recorded for the same size, mtime and inode stand in for the hash (cheap enough
    for every start). `remove_bad` deletes damaged files so the next pull fetches them again.
    """
    problems: list[Problem] = []
    for spec in files:
        store = RepoStore(home.models, spec.repo, spec.repo_type)
        commit = store.ref(spec.revision)
        is_pattern = any(ch in spec.path for ch in "*?[")
        paths: list[str] = []
        if commit:
            paths = (
                match_pattern(spec.path, store.snapshot_files(commit))
                if is_pattern
                else [spec.path]
            )
        if not paths:
            problems.append(
                Problem(
                    spec.repo, spec.path, "missing", f"{spec.repo}/{spec.path} is not in the store."
                )
            )
            continue
        for path in paths:
            pointer = store.pointer(commit, path)
            if not pointer.is_file():
                problems.append(
                    Problem(
                        spec.repo,
                        path,
                        "missing",
                        f"{spec.repo}/{path} is not in the store.",
                        pointer,
                    )
                )
                continue
            if not full:
                continue
            report(Stage(SOURCE, "checking", f"{spec.repo}/{path}"))
            blob = blob_of(pointer)
            whole, got, want = record.intact(
                home, blob, None if is_pattern else spec.sha256, trust_record=recorded
            )
            if whole:
                continue
            size = blob.stat().st_size
            # A state entry knows the exact size; a recipe's size is only an estimate.
            known = spec.size if isinstance(spec, InstalledFile) and not is_pattern else 0
            how = (
                f"it is cut short ({size:,} of {known:,} bytes)"
                if 0 < size < known
                else f"its hash is {got[:12]}…, not {want[:12]}…"
            )
            problems.append(
                Problem(
                    spec.repo, path, "corrupt", f"{spec.repo}/{path} is damaged: {how}.", pointer
                )
            )
            if remove_bad:
                for victim in {pointer, blob}:
                    with contextlib.suppress(FileNotFoundError):
                        victim.unlink()
    return problems


# ---------------------------------------------------------------- import


def import_file(
    home: Home,
    path: str | Path,
    spec: ModelFile,
    settings: Settings | None = None,
    *,
    repo_path: str | None = None,
    sha256: str | None = None,
    report: Reporter = ignore,
) -> LocalFile:
    """Adopt a file the user already has as the store's copy of `spec` (hash checked first).

    The file is hardlinked into blobs/ when it is on the same disk, copied otherwise; the
    user's file is left where it was. The expected hash is the recipe's pin, else the hub's
    LFS sha256 (asked unless offline).
    """
    src = Path(path).expanduser()
    if not src.is_file():
        raise NotFound(f"There is no file at {src}.", "Give the path of the weight file to import.")
    target = repo_path or spec.path
    if any(ch in target for ch in "*?["):
        raise DarkroomError(
            f"The recipe names several files with '{spec.path}'.",
            "Say which one this is with --file <path in the repo>.",
        )
    size = src.stat().st_size
    if sha256 is None:
        report(Stage(SOURCE, "checking", f"hashing {src.name}"))
        done = [0]

        def tick(n: int) -> None:
            done[0] += n
            report(Progress(SOURCE, "hashing", done[0], size, "B", src.name))

        sha256 = sha256_file(src, tick)
    concrete = ModelFile(
        repo=spec.repo,
        path=target,
        revision=spec.revision,
        size=size,
        sha256=spec.sha256 if target == spec.path else None,
        repo_type=spec.repo_type,
    )
    store = RepoStore(home.models, spec.repo, spec.repo_type)
    remote = None
    if settings is not None and not settings.offline:
        with contextlib.suppress(DarkroomError):
            remote = resolve_remote(
                [concrete], endpoint_of(settings.hf_endpoint), settings.hf_token
            )[0]
    want = concrete.sha256 or (remote.sha256 if remote else None)
    if want is None:
        raise DarkroomError(
            f"Darkroom cannot check {src.name}: the recipe pins no hash for {spec.repo}/{target} "
            "and the hub could not be asked.",
            "Connect to the internet (and turn offline mode off) once, then import again.",
        )
    if sha256 != want:
        raise DarkroomError(
            f"{src} is not {spec.repo}/{target}: its sha256 is {sha256[:12]}…, the expected one is {want[:12]}….",
            "Check you picked the right file (and variant); nothing was imported.",
        )
    commit = remote.commit if remote else store.ref(spec.revision)
    if commit is None:
        raise DarkroomError(
            f"Darkroom does not know which commit of {spec.repo} '{spec.revision}' is, so it cannot "
            "file the import.",
            "Connect to the internet once and import again.",
        )
    etag = remote.etag if remote else sha256
    blob = store.blob(etag)
    blob.parent.mkdir(parents=True, exist_ok=True)
    if not (blob.is_file() and blob.stat().st_size == size):
        tmp = blob.with_name(f"{etag}.importing")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            report(Stage(SOURCE, "copying", f"{src.name} is on another disk; copying it"))
            shutil.copyfile(src, tmp)
        os.replace(tmp, blob)
    pointer = store.link(commit, target, etag)
    store.set_ref(spec.revision, commit)
    return LocalFile(spec, target, commit, pointer, sha256, size)


# ---------------------------------------------------------------- listing and gc


def _in_use(
    home: Home, state: State
) -> tuple[set[tuple[int, int]], dict[tuple[str, str, str, str], list[str]]]:
    """Inodes of every file an installed app uses, and (type, repo, commit, path) -> apps."""
    inodes: set[tuple[int, int]] = set()
    users: dict[tuple[str, str, str, str], list[str]] = {}
    in_use = state.files_in_use()
    for app_id, app in state.apps.items():
        for model in app.models:
            for f in model.files:
                store = RepoStore(home.models, f.repo, f.repo_type)
                commit = store.ref(f.revision) or f.revision
                users.setdefault((f.repo_type, f.repo, commit, f.path), []).append(app_id)
    for repo, revision, path in in_use:
        for repo_type in ("model", "dataset"):
            store = RepoStore(home.models, repo, repo_type)
            commit = store.ref(revision)
            if commit is None:
                continue
            with contextlib.suppress(OSError):
                st = store.pointer(commit, path).stat()
                inodes.add((st.st_dev, st.st_ino))
    return inodes, users


def list_store(home: Home, state: State) -> list[StoreEntry]:
    """Every file in the store, with the branches that name its commit and the apps using it."""
    _inodes, users = _in_use(home, state)
    out: list[StoreEntry] = []
    for store in iter_repos(home.models):
        refs = refs_of(store)
        for commit in commits_of(store):
            names = sorted(r for r, c in refs.items() if c == commit)
            for path in store.snapshot_files(commit):
                pointer = store.pointer(commit, path)
                out.append(
                    StoreEntry(
                        store.repo,
                        store.repo_type,
                        commit,
                        path,
                        pointer.stat().st_size,
                        blob_of(pointer).name,
                        names,
                        sorted(set(users.get((store.repo_type, store.repo, commit, path), []))),
                    )
                )
    return out


def gc(home: Home, state: State, dry_run: bool = True) -> GcResult:
    """Blobs (and partial downloads) no installed app refers to; deleted unless dry_run."""
    keep, _users = _in_use(home, state)
    items: list[GcItem] = []
    victims: list[Path] = []
    seen: set[tuple[int, int]] = set()
    for store in iter_repos(home.models):
        pointers: dict[tuple[int, int], list[str]] = {}
        for commit in commits_of(store):
            for path in store.snapshot_files(commit):
                with contextlib.suppress(OSError):
                    st = store.pointer(commit, path).stat()
                    pointers.setdefault((st.st_dev, st.st_ino), []).append(path)
        candidates = store.blobs()
        for commit in commits_of(store):  # copies where links were impossible
            candidates += [
                store.pointer(commit, p)
                for p in store.snapshot_files(commit)
                if not store.pointer(commit, p).is_symlink()
            ]
        for file in candidates:
            if file.is_symlink() or not file.is_file():
                continue
            st = file.stat()
            key = (st.st_dev, st.st_ino)
            if key in keep:
                continue
            partial = file.name.endswith((".incomplete", ".importing"))
            if partial and _busy(store, file):
                continue  # a download is writing it right now
            victims.append(file)
            if key in seen:
                continue
            seen.add(key)
            items.append(
                GcItem(
                    store.repo,
                    store.repo_type,
                    file.name,
                    st.st_size,
                    sorted(set(pointers.get(key, []))),
                    partial,
                )
            )
    if not dry_run and victims:
        with locked(home.lock_file, what="the model store"):
            for file in victims:
                with contextlib.suppress(FileNotFoundError):
                    file.unlink()
            for store in iter_repos(home.models):
                store.prune()
    return GcResult(items, deleted=not dry_run)


def _busy(store: RepoStore, partial: Path) -> bool:
    etag = partial.name.split(".")[0]
    lock = FileLock(str(store.lock_file(etag)))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


@dataclass(frozen=True)
class _StoreSpec:
    """A file as the store holds it (named by commit), for checking files no app names."""

    repo: str
    path: str
    revision: str
    repo_type: str
    sha256: str | None = None


def verify_targets(home: Home, state: State, apps: list[str] | None = None) -> list[FileSpec]:
    """What `verify` should look at: the named apps' files; with no apps named, every
    installed app's files; with nothing installed, the whole store."""
    names = list(apps) if apps else sorted(state.apps)
    specs: list[FileSpec] = [f for a in names for m in state.apps[a].models for f in m.files]
    if not names:
        specs = [_StoreSpec(e.repo, e.path, e.commit, e.repo_type) for e in list_store(home, state)]
    return specs
