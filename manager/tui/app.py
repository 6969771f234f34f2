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
from .words import error_text, no_commands

if TYPE_CHECKING:
    from ..hardware import Hardware


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

    # ------------------------------------------------------------ going to a screen
    # Screens ask the app to open another screen instead of importing it: the screens import
    # nothing from each other or from here, so there is no cycle among them.

    def open_install(self, target: str, update: bool = False) -> None:
        from .screens.install import InstallScreen

        self.push_screen(InstallScreen(target, update=update))

    def open_app(self, app: str, start: bool = False, replace: bool = False) -> None:
        """The app's own screen; `start` starts it there, `replace` takes the current
        screen's place (the Install screen's Start goes on to the app, not back)."""
        from .screens.app_detail import AppScreen

        screen = AppScreen(app, start=start)
        if replace:
            self.switch_screen(screen)
        else:
            self.push_screen(screen)

    def open_screen(self, name: str) -> None:
        """Models, Settings, Doctor or Workflow, by name."""
        from .screens.doctor import DoctorScreen
        from .screens.models import ModelsScreen
        from .screens.settings import SettingsScreen
        from .screens.workflow import WorkflowScreen

        screens = {
            "models": ModelsScreen,
            "settings": SettingsScreen,
            "doctor": DoctorScreen,
            "workflow": WorkflowScreen,
        }
        self.push_screen(screens[name]())

    action_open_screen = open_screen  # for key bindings: "app.open_screen('models')"

    # ------------------------------------------------------------ telling the user

    def notify(self, message, *, title="", severity="information", timeout=None, markup=True):  # type: ignore[override]
        """Every notification in the TUI's words: a button or key, never a command to type."""
        super().notify(
            no_commands(str(message)),
            title=title,
            severity=severity,
            timeout=timeout,
            markup=markup,
        )

    def show_error(self, exc: DarkroomError) -> None:
        self.notify(error_text(exc), severity="error", timeout=12)

    def show_unexpected(self, exc: BaseException) -> None:
        """A bug, not a user error: still a sentence, never a traceback on screen."""
        self.notify(
            f"Something went wrong inside Darkroom ({type(exc).__name__}: {exc}).\n"
            "Try again; if it keeps happening, Doctor (key d on Home) may find the cause.",
            severity="error",
            timeout=12,
        )


def run_tui(home: Home | None = None, hardware: Hardware | None = None) -> int:
    """Run the interface until the user quits; returns the process exit code."""
    app = DarkroomApp(home, hardware)
    result = app.run()
    return int(result or 0)
