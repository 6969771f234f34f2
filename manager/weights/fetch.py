"""Fetching one blob: resumable, hashed while it streams, never visible until verified.

Why not huggingface_hub's own downloader: it writes to a per-process temporary name that it
deletes on failure, so a download killed with kill -9 starts over, and after a dropped
connection it resumes only from its last whole 10 MB chunk. Here the partial file has a
stable name (blobs/<etag>.incomplete) and every byte received is kept, so a later run or a
retry asks for exactly the missing range. The layout stays huggingface_hub's.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from filelock import FileLock

from ..errors import DarkroomError
from ..home import Home
from . import record
from .remote import RemoteFile, http_error, network_error
from .store import HASH_CHUNK, RepoStore, git_sha1_file

WRITE_CHUNK = 1 << 20
MAX_STALLS = 5  # consecutive attempts that brought no new byte
RETRY_SLEEP_S = 0.5


class Mismatch(Exception):
    """The bytes did not hash to what they must; the partial file has been deleted."""

    def __init__(self, got: str, want: str) -> None:
        super().__init__(f"sha256 {got} != {want}")
        self.got, self.want = got, want


@dataclass
class FetchContext:
    client: httpx.Client
    endpoint: str
    token: str | None
    # bytes newly on disk; network=False for bytes kept from an earlier run or discarded (< 0)
    on_bytes: Callable[..., None]
    home: Home | None = None  # where verifications are recorded; None: hash every time


def fetch_blob(ctx: FetchContext, store: RepoStore, remote: RemoteFile) -> int:
    """Make blobs/<etag> hold the verified bytes of `remote`; returns bytes downloaded now.

    Holds the blob's lock (shared with huggingface_hub) so two processes never write it at once.
    """
    blob = store.blob(remote.etag)
    blob.parent.mkdir(parents=True, exist_ok=True)
    lock = store.lock_file(remote.etag)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock)):
        if blob.is_file() and blob.stat().st_size == remote.size:
            # The size alone proves nothing (one flipped byte keeps it): check the hash first.
            if _whole(ctx, blob, remote):
                return 0
            blob.unlink()
        part = _Partial(store.incomplete(remote.etag), remote, ctx)
        got = part.download()
        want = part.verify()
        os.chmod(part.path, 0o644)
        os.replace(part.path, blob)
        if ctx.home is not None:  # hashed as it streamed: no need to read it again
            record.remember(ctx.home, blob, want)
        return got


def _whole(ctx: FetchContext, blob: Path, remote: RemoteFile) -> bool:
    if ctx.home is not None:
        return record.intact(ctx.home, blob, remote.sha256)[0]
    want = record.expected_hash(blob, remote.sha256)
    return want is None or record.hash_of(blob, want[0]) == want[1]


class _Partial:
    """blobs/<etag>.incomplete and the running sha256 of what it holds."""

    def __init__(self, path: Path, remote: RemoteFile, ctx: FetchContext) -> None:
        self.path, self.remote, self.ctx = path, remote, ctx
        self.hasher = hashlib.sha256()
        self.size = 0
        if path.exists():
            if path.stat().st_size > remote.size:
                path.unlink()
            else:  # bytes kept from an earlier run: hash them once, then carry on after them
                with open(path, "rb") as handle:
                    while chunk := handle.read(HASH_CHUNK):
                        self.hasher.update(chunk)
                        self.size += len(chunk)
                ctx.on_bytes(remote, self.size, network=False)

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.ctx.on_bytes(self.remote, -self.size, network=False)
        self.size = 0
        self.hasher = hashlib.sha256()

    def download(self) -> int:
        """Stream the missing range, retrying dropped connections; returns bytes fetched."""
        fetched = 0
        stalls = 0
        while self.size < self.remote.size:
            before = self.size
            try:
                self._request()
            except (httpx.TransportError, httpx.StreamError) as exc:
                stalls = 0 if self.size > before else stalls + 1
                if stalls >= MAX_STALLS:
                    if isinstance(exc, httpx.ConnectError):
                        raise network_error(self.ctx.endpoint) from None
                    raise DarkroomError(
                        f"The download of {self.remote.spec.repo}/{self.remote.path} keeps breaking "
                        f"off ({type(exc).__name__}).",
                        "Check your connection and run the same command again; the part already "
                        "downloaded is kept and the download resumes.",
                    ) from None
                time.sleep(RETRY_SLEEP_S * (stalls or 1))
            fetched += max(0, self.size - before)
        return fetched

    def _request(self) -> None:
        remote, ctx = self.remote, self.ctx
        headers = {"Accept-Encoding": "identity", "User-Agent": "darkroom"}
        if ctx.token:
            # httpx drops Authorization itself when a redirect leaves the hub's origin (CDN).
            headers["Authorization"] = f"Bearer {ctx.token}"
        if self.size:
            headers["Range"] = f"bytes={self.size}-"
        with ctx.client.stream("GET", remote.url, headers=headers) as response:
            if response.status_code == 416 and self.size:
                self.discard()  # our partial is not a prefix the server knows
                return
            if response.status_code >= 400:
                raise http_error(
                    response.status_code,
                    response.headers.get("X-Error-Code"),
                    response.headers.get("X-Error-Message"),
                    remote.spec.repo,
                    remote.path,
                    remote.spec.revision,
                    bool(ctx.token),
                    ctx.endpoint,
                )
            if self.size and response.status_code != 206:
                self.discard()  # the server ignored Range: take it all again
            with open(self.path, "ab") as out:
                # Gather the socket's small reads into ~1 MB writes (fewer syscalls and hash
                # calls), and keep whatever arrived even when the connection breaks.
                buf = bytearray()
                try:
                    for chunk in response.iter_raw():
                        if self.size + len(buf) + len(chunk) > remote.size:
                            raise DarkroomError(
                                f"The hub sent more bytes than expected for {remote.spec.repo}/{remote.path}.",
                                "Run the same command again; if it keeps happening the mirror may be broken.",
                            )
                        buf += chunk
                        if len(buf) >= WRITE_CHUNK:
                            self._append(out, buf)
                            buf = bytearray()
                finally:
                    if buf:
                        self._append(out, buf)
                    out.flush()
                    os.fsync(out.fileno())

    def _append(self, out, data: bytearray) -> None:
        out.write(data)
        self.hasher.update(data)
        self.size += len(data)
        self.ctx.on_bytes(self.remote, len(data))

    def verify(self) -> tuple[str, str]:
        """Check the finished file; a bad one is deleted before anything can use it.
        Returns the (algorithm, hash) it matched."""
        if self.remote.sha256:
            algorithm, got, want = "sha256", self.hasher.hexdigest(), self.remote.sha256
        else:  # a small file named by its git blob id
            algorithm, got, want = "sha1", git_sha1_file(self.path), self.remote.etag
        if got != want:
            self.discard()
            raise Mismatch(got, want)
        return algorithm, want
