"""Pulling a plan's files into the store: plan the download (sizes, disk room), fetch in
parallel with one progress line, adopt files already there, and report what is local.
"""

from __future__ import annotations

import shutil
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ..config import Settings
from ..config import load as load_settings
from ..errors import Cancelled, DarkroomError, DiskFull
from ..events import Message, Progress, Reporter, Stage, checkpoint, ignore, on_cancel
from ..home import Home
from ..recipe import ModelFile
from ..state import InstalledFile
from . import record
from .fetch import FetchContext, Mismatch, fetch_blob
from .remote import (
    RemoteFile,
    endpoint_of,
    offline_missing,
    resolve_local,
    resolve_remote,
)
from .store import SHA256_RE, RepoStore, blob_of, sha256_file
from .types import LocalFile

SOURCE = "weights"
DISK_RESERVE = 200 * 1000 * 1000  # kept free beyond the download itself
EMIT_EVERY_S = 0.25


@dataclass(frozen=True)
class PlannedFile:
    remote: RemoteFile
    present: bool
    partial_bytes: int = 0


@dataclass
class DownloadPlan:
    """What a pull would do: the concrete files, which are missing, and the disk it needs."""

    files: list[PlannedFile]
    free_bytes: int
    folder: Path
    exact: bool = True  # False when sizes come from the recipe (no hub asked)
    missing_specs: list[str] = field(default_factory=list)  # offline: specs not in the store

    @property
    def missing(self) -> list[PlannedFile]:
        return [f for f in self.files if not f.present]

    @property
    def total_bytes(self) -> int:
        return sum(f.remote.size for f in self.files)

    @property
    def download_bytes(self) -> int:
        """Bytes still to come over the network (partial downloads count as done)."""
        return sum(f.remote.size - f.partial_bytes for f in self.missing)

    @property
    def needed_bytes(self) -> int:
        return self.download_bytes

    @property
    def enough_disk(self) -> bool:
        return self.free_bytes >= self.needed_bytes + (DISK_RESERVE if self.needed_bytes else 0)

    def check_disk(self) -> None:
        if not self.enough_disk:
            raise DiskFull(
                f"Not enough disk space for the model files: they need {_gb(self.needed_bytes)}, "
                f"but only {_gb(self.free_bytes)} is free on {self.folder}.",
                "Free some space (`darkroom models gc` shows weights no app uses), or choose a "
                "smaller variant, then run the same command again.",
            )


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def _free_bytes(folder: Path) -> int:
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


# ---------------------------------------------------------------- planning


def plan_download(
    home: Home, files: list[ModelFile], settings: Settings | None = None, *, remote: bool = True
) -> DownloadPlan:
    """What is missing and how many bytes it needs. Asks the hub (exact sizes, globs
    expanded) unless offline or `remote=False`; then the store and the recipe's sizes answer."""
    settings = settings or load_settings(home)
    if (pinned := pinned_in_store(home, files)) is not None:
        return _plan(home, pinned, exact=True)
    if remote and not settings.offline:
        resolved = resolve_remote(files, endpoint_of(settings.hf_endpoint), settings.hf_token)
        return _plan(home, resolved, exact=True)
    found, missing = resolve_local(files, home.models)
    plan = _plan(home, found, exact=False)
    plan.missing_specs = missing
    for spec in files:  # recipe sizes stand in for what the store lacks
        if f"{spec.repo}/{spec.path}" in missing:
            stand_in = RemoteFile(spec, spec.path, "", "", spec.size, spec.sha256, "")
            plan.files.append(PlannedFile(stand_in, present=False))
    return plan


def pinned_in_store(home: Home, files: list[ModelFile]) -> list[RemoteFile] | None:
    """The store's files when every one is named exactly, pinned by sha256 and whole there:
    the hub has nothing to add then, so it is not asked (an imported file installs with no
    network). None as soon as one file needs the hub."""
    if not files or any(f.is_pattern or not f.sha256 for f in files):
        return None
    found, missing = resolve_local(files, home.models)
    if missing:
        return None
    for r in found:
        blob = blob_of(
            RepoStore(home.models, r.spec.repo, r.spec.repo_type).pointer(r.commit, r.path)
        )
        if not (blob.is_file() and record.intact(home, blob, r.sha256)[0]):
            return None
    return found


def _plan(home: Home, resolved: list[RemoteFile], exact: bool) -> DownloadPlan:
    planned = []
    for r in resolved:
        store = RepoStore(home.models, r.spec.repo, r.spec.repo_type)
        blob = store.blob(r.etag)
        # Present means whole: the right size and the right hash (a recorded verification
        # of the same size/mtime/inode counts), so a damaged blob is fetched again.
        present = (
            blob.is_file()
            and blob.stat().st_size == r.size
            and record.intact(home, blob, r.sha256)[0]
        )
        partial = store.incomplete(r.etag)
        got = partial.stat().st_size if not present and partial.is_file() else 0
        planned.append(PlannedFile(r, present, min(got, r.size)))
    return DownloadPlan(planned, _free_bytes(home.models), home.models, exact)


# ---------------------------------------------------------------- progress


class _Progress:
    """Per-file and total byte counts, turned into throttled Progress events (thread-safe)."""

    def __init__(self, report: Reporter, files: list[RemoteFile]) -> None:
        self.report = report
        self.lock = threading.Lock()
        self.size = {f.key: f.size for f in files}
        self.done = dict.fromkeys(self.size, 0)
        self.total = sum(self.size.values())
        self.start = time.monotonic()
        self.fetched = 0  # bytes that came over the network in this run
        self.last_emit: dict[object, float] = {}
        self.samples: list[tuple[float, int]] = [(self.start, 0)]

    def on_bytes(self, remote: RemoteFile, n: int, network: bool = True) -> None:
        with self.lock:
            self.done[remote.key] += n
            if n > 0 and network:
                self.fetched += n
            now = time.monotonic()
            finished = self.done[remote.key] >= self.size[remote.key]
            if finished or now - self.last_emit.get(remote.key, 0) >= EMIT_EVERY_S:
                self.last_emit[remote.key] = now
                self._emit(
                    remote.path, self.done[remote.key], self.size[remote.key], self._rate(now)
                )
            if now - self.last_emit.get("total", 0) >= EMIT_EVERY_S:
                self.last_emit["total"] = now
                self._emit("", sum(self.done.values()), self.total, self._rate(now))

    def _rate(self, now: float) -> float:
        """Bytes per second over the last few seconds (what the ETA should use)."""
        self.samples.append((now, self.fetched))
        while len(self.samples) > 2 and now - self.samples[1][0] > 5.0:
            self.samples.pop(0)
        t0, b0 = self.samples[0]
        return (self.fetched - b0) / (now - t0) if now > t0 else 0.0

    def _emit(self, item: str, done: int, total: int, rate: float) -> None:
        self.report(
            Progress(
                SOURCE, "download", done=max(done, 0), total=total, unit="B", item=item, rate=rate
            )
        )

    def finish(self) -> None:
        with self.lock:
            self._emit("", sum(self.done.values()), self.total, self._rate(time.monotonic()))


# ---------------------------------------------------------------- pulling


def pull(
    home: Home, settings: Settings, files: list[ModelFile], report: Reporter = ignore
) -> list[LocalFile]:
    """Fetch what is missing, verify every byte, and return the files as they lie in the store.

    Only the files named (globs expanded on the hub) are fetched, several at once; a file
    whose bytes do not match its sha256 is deleted and fetched once more, then the pull fails.
    Nothing unverified is ever linked into snapshots/, where apps look.
    """
    home.models.mkdir(parents=True, exist_ok=True)
    if settings.offline:
        found, missing = resolve_local(files, home.models)
        if missing:
            raise offline_missing(missing)
        report(Stage(SOURCE, "checking", "offline: using the files already in the store"))
        return _checked_local(home, found)

    if (pinned := pinned_in_store(home, files)) is not None:
        report(
            Stage(
                SOURCE,
                "checking",
                "every file is in the store with its pinned hash; the hub is not asked",
            )
        )
        return [_local(home, r) for r in pinned]

    endpoint = endpoint_of(settings.hf_endpoint)
    report(Stage(SOURCE, "resolving", f"asking {endpoint} which files to fetch"))
    try:
        resolved = resolve_remote(files, endpoint, settings.hf_token)
    except DarkroomError as exc:
        found, missing = resolve_local(files, home.models)
        if missing or "Could not reach" not in exc.message:
            raise
        report(Message(SOURCE, f"{exc.message} Using the files already in the store.", "warning"))
        return _checked_local(home, found)

    plan = _plan(home, resolved, exact=True)
    plan.check_disk()
    todo = [f.remote for f in plan.missing]
    if todo:
        report(
            Stage(
                SOURCE, "downloading", f"{len(todo)} file(s), {_gb(plan.download_bytes)} to fetch"
            )
        )
        _fetch_all(home, settings, endpoint, todo, report)
    report(Stage(SOURCE, "linking", f"{len(resolved)} file(s) in the store"))
    out = []
    for r in resolved:
        store = RepoStore(home.models, r.spec.repo, r.spec.repo_type)
        store.link(r.commit, r.path, r.etag)
        store.set_ref(r.spec.revision, r.commit)
        out.append(_local(home, r))
    return out


def specs_of(files: list[InstalledFile]) -> list[ModelFile]:
    """An installed app's files as pull takes them: exact commits, sizes and hashes, so a
    repair fetches exactly what the app was installed with."""
    return [
        ModelFile(
            repo=f.repo,
            path=f.path,
            revision=f.revision,
            size=f.size,
            sha256=f.sha256,
            repo_type=f.repo_type,
        )
        for f in files
    ]  # type: ignore[arg-type]


def _checked_local(home: Home, found: list[RemoteFile]) -> list[LocalFile]:
    """The store's files when the hub cannot be asked: each must still hash right, since
    nothing damaged is handed to an app and nothing can be fetched again now."""
    for r in found:
        pointer = RepoStore(home.models, r.spec.repo, r.spec.repo_type).pointer(r.commit, r.path)
        whole, got, want = record.intact(home, blob_of(pointer), r.sha256)
        if not whole:
            raise DarkroomError(
                f"{r.spec.repo}/{r.path} in the model store is damaged (its hash is {got[:12]}…, "
                f"not {want[:12]}…), and it cannot be fetched again without the hub.",
                "Connect to the internet (and turn offline mode off), then run the same command "
                "again; the damaged file is replaced.",
            )
    return [_local(home, r) for r in found]


def _local(home: Home, r: RemoteFile) -> LocalFile:
    store = RepoStore(home.models, r.spec.repo, r.spec.repo_type)
    pointer = store.pointer(r.commit, r.path)
    sha = r.sha256 or (r.etag if SHA256_RE.match(r.etag) else None)
    if sha is None and pointer.is_file():
        sha = sha256_file(pointer)  # small git-tracked files: cheap to hash
        record.remember(home, blob_of(pointer), ("sha256", sha))
    return LocalFile(r.spec, r.path, r.commit, pointer, sha, r.size)


class _Cancelled(Exception):
    """Stops a download thread between two chunks."""


def _fetch_all(
    home: Home, settings: Settings, endpoint: str, todo: list[RemoteFile], report: Reporter
) -> None:
    lock = threading.Lock()

    def safe_report(event) -> None:
        with lock:
            report(event)

    progress = _Progress(safe_report, todo)
    timeout = httpx.Timeout(60.0, connect=15.0)
    limits = httpx.Limits(max_connections=settings.parallel_downloads * 2)
    stop = threading.Event()

    def on_bytes(remote: RemoteFile, n: int, network: bool = True) -> None:
        if stop.is_set():
            raise _Cancelled()  # another file failed, or Ctrl-C: keep the partial, stop now
        progress.on_bytes(remote, n, network)

    with httpx.Client(timeout=timeout, limits=limits, follow_redirects=True) as client:
        ctx = FetchContext(client, endpoint, settings.hf_token, on_bytes, home)

        def one(remote: RemoteFile) -> None:
            if stop.is_set():
                return
            store = RepoStore(home.models, remote.spec.repo, remote.spec.repo_type)
            try:
                fetch_blob(ctx, store, remote)
            except Mismatch:
                safe_report(
                    Message(
                        SOURCE,
                        f"{remote.spec.repo}/{remote.path} arrived damaged "
                        "(checksum mismatch); downloading it again.",
                        "warning",
                    )
                )
                try:
                    fetch_blob(ctx, store, remote)
                except Mismatch as again:
                    raise DarkroomError(
                        f"{remote.spec.repo}/{remote.path} arrived damaged twice: its sha256 is "
                        f"{again.got[:12]}…, not {again.want[:12]}…. The bad file was deleted.",
                        "Run the same command again later; if it keeps failing the hub or mirror "
                        "serves a different file than the recipe expects.",
                    ) from None

        # A cancel wakes the wait at once (the downloads stop at their next chunk, keeping
        # what arrived, so a later run resumes).
        asked: Future[None] = Future()
        with (
            ThreadPoolExecutor(
                max_workers=settings.parallel_downloads, thread_name_prefix="darkroom-dl"
            ) as pool,
            on_cancel(report, lambda: asked.set_exception(Cancelled())),
        ):
            futures = [pool.submit(one, r) for r in sorted(todo, key=lambda r: -r.size)]
            pending: set[Future] = set(futures)
            try:
                failed = False
                while pending and not failed:
                    finished, pending = wait(pending | {asked}, return_when=FIRST_COMPLETED)
                    checkpoint(report)
                    pending.discard(asked)
                    failed = any(f.exception() is not None for f in finished)
            except BaseException:
                stop.set()
                raise
            errors = [
                f.exception()
                for f in futures
                if f not in pending
                and f.exception() is not None
                and not isinstance(f.exception(), _Cancelled)
            ]
            if errors:
                stop.set()
                for f in futures:
                    f.cancel()
        if errors:
            err = errors[0]
            if isinstance(err, DarkroomError):
                raise err
            if isinstance(err, OSError):
                raise DarkroomError(
                    f"Writing model files under {home.models} failed: {err.strerror or err}.",
                    "Check the disk has space and the folder is writable, then run "
                    "the same command again; downloads resume.",
                ) from None
            raise err
    progress.finish()
