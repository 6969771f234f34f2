"""App logs: size-rotated files written by the runner, read back (tail, follow) by anyone.

Rotation is by size so a chatty app cannot fill the disk: <app>.log, then .log.1 .. .log.N.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path


class RotatingLog:
    """A line-oriented log file that rolls over at `max_bytes`, keeping `backups` old files."""

    def __init__(self, path: Path, max_bytes: int = 5_000_000, backups: int = 3) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.dropped = 0  # lines lost to a full disk
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(path, "ab")  # noqa: SIM115 (kept open for the runner's life)

    def write(self, line: str) -> None:
        data = (line.rstrip("\r\n") + "\n").encode("utf-8", "replace")
        with self._lock:
            if self._handle.closed:
                return
            try:
                if self._handle.tell() + len(data) > self.max_bytes and self._handle.tell() > 0:
                    self._rotate()
                self._handle.write(data)
                self._handle.flush()
            except OSError:
                # A full disk loses log lines, never the app: the pump must keep draining its
                # pipe, or the app would block on its next print.
                self.dropped += 1

    def _rotate(self) -> None:
        self._handle.close()
        for i in range(self.backups, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            newer = self.path.with_name(f"{self.path.name}.{i - 1}") if i > 1 else self.path
            if newer.exists():
                os.replace(newer, older)
        self._handle = open(self.path, "ab")  # noqa: SIM115

    def close(self) -> None:
        with self._lock:
            self._handle.close()


def tail(path: Path, lines: int) -> list[str]:
    """The last `lines` lines, reaching into the previous file after a rotation."""
    out: list[str] = []
    if lines <= 0:
        return out
    for candidate in (path, path.with_name(path.name + ".1")):
        try:
            with open(candidate, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - 300 * lines - 4096))
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            continue
        out = text.splitlines()[-(lines - len(out)) :] + out
        if len(out) >= lines:
            break
    return out


def follow(
    path: Path, start_lines: int = 20, stop: Callable[[], bool] | None = None, poll_s: float = 0.2
) -> Iterator[str]:
    """Yield the last lines, then new lines as they come; survives rotation (tail -F)."""
    yield from tail(path, start_lines)
    handle = None
    ino = None
    first = True
    pending = b""
    try:
        while stop is None or not stop():
            if handle is None:
                try:
                    handle = open(path, "rb")  # noqa: SIM115
                except OSError:
                    time.sleep(poll_s)
                    continue
                st = os.fstat(handle.fileno())
                ino = st.st_ino
                if first:  # the tail was shown; a file reopened after rotation is read whole
                    handle.seek(0, os.SEEK_END)
                    first = False
            chunk = handle.read()
            if chunk:
                pending += chunk
                *done, pending = pending.split(b"\n")
                for line in done:
                    yield line.decode("utf-8", "replace")
                continue
            try:
                st = os.stat(path)
                rotated = st.st_ino != ino or st.st_size < handle.tell()
            except OSError:
                rotated = True
            if rotated:
                handle.close()
                handle = None
                continue
            time.sleep(poll_s)
    finally:
        if handle is not None:
            handle.close()
