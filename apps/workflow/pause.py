"""A batch pauses, between items, while a switch borrows the GPU memory of an app it calls.

The manager and the batch meet through small files under DARKROOM_HOME/run, whose names and
shapes appkit/protocol.py holds for both sides (Batch, Hold):

- batches/<id>.json: this batch at work (pid, preset, apps, keep_running, state, item,
  done, total). A switch reads it to wait for the current item, or to refuse when the
  person asked to keep the batch running.
- holds/<app>.json: a switch is making <app> give up its memory, for another app. It is in
  force while the process it names lives (the waiting switch, then the other app's runner).

The ledger needs nothing of this: the batch stops only between items, so it keeps its place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import threading
import urllib.error
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appkit import protocol

from .client import health
from .ledger import write_atomic

Emit = Callable[[dict[str, Any]], None]


def _alive(pid: object) -> bool:
    """Whether process `pid` runs. (Not os.kill(pid, 0) on Windows: there it ends the process.)"""
    if not isinstance(pid, int) or pid <= 0:
        return False
    if os.name == "nt":
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        try:
            code = ctypes.c_ulong()
            return (
                bool(kernel32.GetExitCodeProcess(handle, ctypes.byref(code))) and code.value == 259
            )
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


class Presence:
    """This batch as the manager sees it, and the holds it honours."""

    def __init__(
        self,
        home: Path | None,
        preset: str,
        apps: list[str],
        keep_running: bool,
        poll_s: float = 0.2,
    ) -> None:
        self.home, self.apps, self.poll_s = home, list(dict.fromkeys(apps)), poll_s
        self.batch = protocol.Batch(
            pid=os.getpid(), preset=preset, apps=self.apps, keep_running=keep_running
        )
        self.path = protocol.batches_dir(home) / f"{uuid.uuid4().hex[:12]}.json" if home else None
        self._write()

    def _write(self) -> None:
        if self.path is not None:
            write_atomic(self.path, json.dumps(self.batch.to_dict()).encode())

    @property
    def data(self) -> dict[str, Any]:
        """The batch file's fields, as written."""
        return self.batch.to_dict()

    def update(self, **fields: Any) -> None:
        self.batch = dataclasses.replace(self.batch, **fields)
        self._write()

    def close(self) -> None:
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def holds(self) -> list[tuple[str, str]]:
        """(app, for whom) for each app of this batch that a switch holds now."""
        if self.home is None or self.batch.keep_running:
            return []
        out = []
        for app in self.apps:
            hold = protocol.Hold.read(self.home, app)
            if hold is not None and _alive(hold.pid):
                out.append((app, hold.for_app or "another app"))
        return out

    def wait_while_held(
        self, stop: threading.Event, urls: dict[str, list[str]], emit: Emit
    ) -> None:
        """Between items: if a switch holds one of this batch's apps, pause until the hold ends
        and the app answers again (or `stop` is set)."""
        held = self.holds()
        if not held:
            return
        app, taker = held[0]
        self.update(state=protocol.BATCH_PAUSED, item="")
        emit(
            {
                "type": "stage",
                "stage": "paused",
                "message": f"Paused after {self.batch.done} of {self.batch.total}: {app} lends its "
                f"GPU memory to {taker}. The batch goes on when {app} is back.",
            }
        )
        while not stop.is_set() and self.holds():
            stop.wait(self.poll_s)
        while not stop.is_set() and not self._answering(urls):
            stop.wait(self.poll_s)
        if not stop.is_set():
            self.update(state=protocol.BATCH_RUNNING)
            emit(
                {
                    "type": "stage",
                    "stage": "resumed",
                    "message": f"{app} is back; the batch goes on.",
                }
            )

    def _answering(self, urls: dict[str, list[str]]) -> bool:
        for app in self.apps:
            for url in urls.get(app, []):
                try:
                    code, _body = health(url, timeout=2.0)
                except (OSError, urllib.error.URLError):
                    return False
                if code != 200:
                    return False
        return True
