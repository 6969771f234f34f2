"""Helpers every command module shares: printing events, JSON output, the home folder."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .. import validate
from ..errors import DarkroomError
from ..events import Event, Message, Progress, Stage
from ..fsutil import exists
from ..home import Home
from ..views import human_bytes

__all__ = ["ConsoleReporter", "exists", "home", "human_bytes", "print_json"]


def home() -> Home:
    return Home.from_env().ensure()


def app_arg(value: str) -> str:
    """argparse type for an app id: checked before it can become part of any path."""
    try:
        return validate.app_id_or_fail(value)
    except DarkroomError as exc:
        raise argparse.ArgumentTypeError(f"{exc.message} {exc.hint}") from None


def app_or_recipe_arg(value: str) -> str:
    """argparse type for an app id or a recipe file (.yaml/.yml)."""
    if value.endswith((".yaml", ".yml")) and not validate.has_control(value):
        return value
    return app_arg(value)


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


class ConsoleReporter:
    """Prints events as plain lines (or JSON lines with --json); progress is throttled."""

    def __init__(self, as_json: bool = False, stream=None) -> None:
        self.as_json = as_json
        self.stream = stream or sys.stderr
        self._last: dict[str, float] = {}

    def __call__(self, event: Event) -> None:
        if self.as_json:
            print(json.dumps(event.to_dict(), default=str), file=sys.stdout, flush=True)
            return
        if isinstance(event, Stage):
            print(
                f"[{event.source}] {event.stage}{': ' + event.message if event.message else ''}",
                file=self.stream,
                flush=True,
            )
        elif isinstance(event, Message):
            prefix = {"info": "", "warning": "warning: ", "error": "error: "}[event.level]
            print(f"{prefix}{event.text}", file=self.stream, flush=True)
        elif isinstance(event, Progress):
            key = f"{event.source}:{event.stage}:{event.item}"
            finished = event.total and event.done >= event.total
            if not finished and event.time - self._last.get(key, 0) < 1.0:
                return
            self._last[key] = event.time
            print(f"  {self._progress_line(event)}", file=self.stream, flush=True)

    @staticmethod
    def _progress_line(event: Progress) -> str:
        what = event.item or event.stage
        if event.unit == "B":
            done, total = human_bytes(event.done), human_bytes(event.total) if event.total else "?"
        else:
            done, total = str(event.done), str(event.total or "?")
        line = f"{what}: {done} / {total}"
        if event.total:
            line += f" ({event.fraction * 100:.0f}%)"
        if event.rate and event.unit == "B":
            line += f", {human_bytes(event.rate)}/s"
        if event.eta_s is not None and event.done < event.total:
            line += f", {event.eta_s:.0f} s left"
        return line
