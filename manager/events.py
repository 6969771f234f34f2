"""The one small events interface through which long work reports progress.

Core functions take an optional `report` callback and call it with these typed
events; the CLI prints them, the TUI turns them into widgets, `--json` dumps them.

The same callback carries a stop request: a face that runs the core in its own process
(the TUI) wraps its reporter in `Cancellable`, and from the moment `CancelToken.cancel()`
is called every event, every `checkpoint` and every running uv process ends the work with
`Cancelled`, so the installer's journal puts back whatever it had begun.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Literal

from .errors import Cancelled, DarkroomError

Level = Literal["info", "warning", "error"]


@dataclass
class Event:
    """Base of all events; `source` names the part that emitted it (env, weights, ...)."""

    source: str
    time: float = field(default_factory=time.time, kw_only=True)

    def to_dict(self) -> dict:
        return {"type": type(self).__name__, **asdict(self)}


@dataclass
class Stage(Event):
    """A named step began (resolving, downloading, linking, checking, swapping...)."""

    stage: str
    message: str = ""


@dataclass
class Progress(Event):
    """Work counted in units (bytes, files, packages); total may be unknown (0)."""

    stage: str
    done: int
    total: int = 0
    unit: str = "B"
    item: str = ""
    rate: float = 0.0  # units per second, 0 when unknown

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0

    @property
    def eta_s(self) -> float | None:
        if not self.rate or not self.total:
            return None
        return max(0.0, (self.total - self.done) / self.rate)


@dataclass
class Message(Event):
    """A line for the user: information, a warning, or an error sentence."""

    text: str
    level: Level = "info"


@dataclass
class Error(Event):
    """How the work ended when it failed: the error's kind (gated, offline, not-found...), its
    sentence and hint, and the exit code, so a face can offer the next step (a token field
    for "gated") without reading the words."""

    kind: str
    message: str
    hint: str = ""
    exit_code: int = 1

    @classmethod
    def of(cls, exc: DarkroomError, source: str = "darkroom") -> Error:
        return cls(source, exc.kind, exc.message, exc.hint, exc.exit_code)


Reporter = Callable[[Event], None]


def ignore(_event: Event) -> None:
    """The default reporter: drop events."""


class CancelToken:
    """A stop request shared by the running work and the face that may ask for it.

    `on_cancel` registers what must happen at once when the request comes (kill a uv
    process, wake a thread that waits); `check` raises `Cancelled` once it has come.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._hooks: list[Callable[[], None]] = []

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        """Ask the work to stop; the hooks run here, in the caller's thread, once."""
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            hooks = list(self._hooks)
        for hook in hooks:
            with contextlib.suppress(Exception):
                hook()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled()

    @contextlib.contextmanager
    def on_cancel(self, hook: Callable[[], None]) -> Iterator[None]:
        """Run `hook` if a cancel comes while the block runs (at once if it already came)."""
        with self._lock:
            already = self._event.is_set()
            if not already:
                self._hooks.append(hook)
        if already:
            hook()
        try:
            yield
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._hooks.remove(hook)


class Cancellable:
    """A reporter that forwards events and turns each one into a point where work can stop."""

    def __init__(self, report: Reporter, token: CancelToken) -> None:
        self.report = report
        self.token = token

    def __call__(self, event: Event) -> None:
        self.token.check()
        self.report(event)


def token_of(report: Reporter) -> CancelToken | None:
    """The stop request a reporter carries, if any (plain reporters carry none)."""
    token = getattr(report, "token", None)
    return token if isinstance(token, CancelToken) else None


def checkpoint(report: Reporter) -> None:
    """Raise `Cancelled` if the work `report` belongs to was asked to stop."""
    token = token_of(report)
    if token is not None:
        token.check()


@contextlib.contextmanager
def on_cancel(report: Reporter, hook: Callable[[], None]) -> Iterator[None]:
    """`CancelToken.on_cancel` for the token `report` carries; nothing when it has none."""
    token = token_of(report)
    if token is None:
        yield
        return
    with token.on_cancel(hook):
        yield
