"""Atomic file writes and the data-folder lock.

State files are replaced, never edited in place: a reader sees the old file or the
new one, never half of one, even after kill -9 or a power cut.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from .errors import Conflict, DiskFull

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_disk_full(exc: BaseException) -> bool:
    """True for 'no space left on device' and 'disk quota exceeded'."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def disk_full_error(where: Path | str, unchanged: bool = True) -> DiskFull:
    """The sentence for a write that met a full disk (`unchanged`: what was there before
    is known to be intact)."""
    return DiskFull(
        f"The disk is full: Darkroom could not write to {where}."
        + (" Nothing was changed." if unchanged else ""),
        "Free some space (`darkroom models gc` and `darkroom cache prune` help), then run "
        "the same command again.",
    )


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write to a temp file beside `path`, fsync it, then rename over `path`.

    On a full disk the temp file is removed, `path` keeps its old contents, and the caller
    gets a DarkroomError that says so (never a bare OSError)."""
    try:
        _atomic_write(path, data, mode)
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full_error(path.parent) from None
        raise


def _atomic_write(path: Path, data: bytes, mode: int | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str, mode: int | None = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode)


def atomic_write_json(path: Path, data: Any, mode: int | None = None) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n", mode)


def read_json(path: Path, default: Any = None) -> Any:
    """Read JSON; a missing or unreadable file gives `default` (state is rebuilt, not trusted)."""
    try:
        return json.loads(path.read_text("utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return default


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not possible on Windows, where it is not needed.
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(lock_path: Path, timeout: float = 30.0, what: str = "the data folder") -> Iterator[None]:
    """Hold the one lock that keeps two Darkroom processes from corrupting state.

    The lock is an OS file lock, so it is released when its holder dies, even by kill -9.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise Conflict(
            f"Another Darkroom process is busy with {what}.",
            "Wait for it to finish, or close the other Darkroom window, then try again.",
        ) from None
    try:
        yield
    finally:
        lock.release()


def dir_size(path: Path) -> int:
    """Bytes used under `path`, counting each hardlinked inode once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            total += st.st_size
    return total


def exists(path: str | Path, kind: str = "any") -> bool:
    """Path.exists/is_file that answer False for a name the system cannot use (too long, NUL),
    instead of raising; kind is "any" or "file"."""
    try:
        p = Path(path).expanduser()
        return p.is_file() if kind == "file" else p.exists()
    except (OSError, ValueError, RuntimeError):
        return False
