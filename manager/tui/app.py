"""The Textual application: opens on Home, holds the Core, shows errors as notifications.

`darkroom` with no command calls `run_tui()`. Nothing heavy is imported at module level
beyond Textual itself, so the first screen paints before the core modules have loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import App
from textual.binding import Binding

from ..errors import DarkroomError
from ..home import Home
from .actions import Core

if TYPE_CHECKING:
    from ..hardware import Hardware


def error_text(exc: DarkroomError) -> str:
    """The same two sentences the CLI prints (message, then what to do)."""
    return f"{exc.message}\n{exc.hint}" if exc.hint else exc.message


class DarkroomApp(App[int]):
    """Darkroom's full-screen interface."""

    CSS_PATH = str(Path(__file__).with_name("darkroom.tcss"))  # absolute: subclasses live elsewhere
    TITLE = "Darkroom"
    SUB_TITLE = "local AI image apps"
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", show=False, priority=True)]

    def __init__(self, home: Home | None = None, hardware: Hardware | None = None) -> None:
        """`hardware` plans for a fixed machine profile instead of probing (tests, snapshots)."""
        super().__init__()
        self.core = Core(home, hardware)

    def on_mount(self) -> None:
        from .screens.home import HomeScreen

        self.push_screen(HomeScreen())

    def show_error(self, exc: DarkroomError) -> None:
        self.notify(error_text(exc), severity="error", timeout=12)

    def show_unexpected(self, exc: BaseException) -> None:
        """A bug, not a user error: still a sentence, never a traceback on screen."""
        self.notify(
            f"Something went wrong inside Darkroom ({type(exc).__name__}: {exc}).\n"
            "Try again; if it keeps happening, run the same action with the CLI to see more.",
            severity="error",
            timeout=12,
        )


def run_tui(home: Home | None = None, hardware: Hardware | None = None) -> int:
    """Run the interface until the user quits; returns the process exit code."""
    app = DarkroomApp(home, hardware)
    result = app.run()
    return int(result or 0)
