"""The one small events interface through which long work reports progress.

Core functions take an optional `report` callback and call it with these typed
events; the CLI prints them, the TUI turns them into widgets, `--json` dumps them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Literal

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


Reporter = Callable[[Event], None]


def ignore(_event: Event) -> None:
    """The default reporter: drop events."""
