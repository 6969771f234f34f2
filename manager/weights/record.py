"""Which blobs were hashed and found whole, so that a start need not read gigabytes again.

The record (verified.json in the data folder) maps a blob to the size, mtime_ns and inode
(and device) it had when its bytes hashed to the expected value. While the blob's stat still
says the same, the hash is trusted; any change (a flipped byte, a truncation, a replaced file)
means hashing it again. ctime is left out on purpose: hardlinking a blob into the model
library changes it, and that would cost a full hash of every linked model on the next start.
The record is only a cache: written atomically, under a lock, and losing it (or failing to
write it on a full disk) costs one more hash, never a wrong answer.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

from ..errors import DarkroomError
from ..fsutil import atomic_write_json, locked, read_json
from ..home import Home
from .store import COMMIT_RE, SHA256_RE, git_sha1_file, sha256_file

_THREADS = threading.Lock()  # download threads of one process record at once


def record_file(home: Home) -> Path:
    return home.verified_file


def expected_hash(blob: Path, pin: str | None) -> tuple[str, str] | None:
    """(algorithm, hex) the blob must hash to: the pin, else its content name (LFS sha256,
    or the git sha1 the hub names small files by); None when nothing says what it should be."""
    if pin:
        return "sha256", pin
    if SHA256_RE.match(blob.name):
        return "sha256", blob.name
    if COMMIT_RE.match(blob.name):
        return "sha1", blob.name
    return None


def hash_of(path: Path, algorithm: str) -> str:
    return sha256_file(path) if algorithm == "sha256" else git_sha1_file(path)


def _key(home: Home, blob: Path) -> str:
    try:
        return blob.relative_to(home.models).as_posix()
    except ValueError:
        return str(blob)


def _stat(st: os.stat_result) -> dict:
    return {
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "ino": st.st_ino,
        "dev": st.st_dev,
    }


def _entries(home: Home) -> dict:
    entries = read_json(record_file(home), default={}) or {}
    return entries if isinstance(entries, dict) else {}


def vouched(home: Home, blob: Path, want: tuple[str, str]) -> bool:
    """True when the record says these very bytes (same stat) hashed to `want`."""
    try:
        st = blob.stat()
    except OSError:
        return False
    entry = _entries(home).get(_key(home, blob))
    return (
        isinstance(entry, dict)
        and entry.get("stat") == _stat(st)
        and f"{want[0]}:{want[1]}" in entry.get("hashes", [])
    )


def remember(home: Home, blob: Path, want: tuple[str, str]) -> None:
    """Note that `blob` hashed to `want` as it is now (best effort: it is only a cache).
    A blob can carry several hashes (a small file: its git sha1 and its sha256)."""
    try:
        stat = _stat(blob.stat())
    except OSError:
        return
    key, name = _key(home, blob), f"{want[0]}:{want[1]}"

    def change(entries: dict) -> None:
        entry = entries.get(key)
        known = (
            entry.get("hashes", []) if isinstance(entry, dict) and entry.get("stat") == stat else []
        )
        entries[key] = {"stat": stat, "hashes": sorted({*known, name})}

    _update(home, change)


def forget(home: Home, blob: Path) -> None:
    key = _key(home, blob)
    _update(home, lambda entries: entries.pop(key, None))


def _update(home: Home, change: Callable[[dict], object]) -> None:
    path = record_file(home)
    lock = path.with_name(".verified.lock")
    with (
        _THREADS,
        contextlib.suppress(OSError, DarkroomError),
        locked(lock, timeout=10, what="the model record"),
    ):
        entries = _entries(home)
        change(entries)
        # Blobs that are gone (gc, repairs) drop out as the record is written.
        entries = {k: v for k, v in entries.items() if home.model_file(k).exists()}
        atomic_write_json(path, entries)


def intact(
    home: Home, blob: Path, pin: str | None, *, trust_record: bool = True
) -> tuple[bool, str, str]:
    """(whole, got, want) for one blob; hashes only when the record cannot vouch for it.

    A blob with no expected hash counts as whole (there is nothing to compare with)."""
    want = expected_hash(blob, pin)
    if want is None:
        return True, "", ""
    if trust_record and vouched(home, blob, want):
        return True, want[1], want[1]
    got = hash_of(blob, want[0])
    if got == want[1]:
        remember(home, blob, want)
    else:
        forget(home, blob)
    return got == want[1], got, want[1]
