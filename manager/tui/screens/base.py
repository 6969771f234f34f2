"""What every screen shares: the Core, and running core calls in worker threads whose
errors become notifications (never a frozen UI, never a traceback)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from textual.screen import Screen
from textual.types import NoActiveAppError
from textual.worker import Worker

from ...errors import DarkroomError
from ..actions import Core


def call_ui(screen: Screen, fn: Callable[..., Any], *args: Any) -> None:
    """Run `fn` on the UI thread from a worker; quietly dropped once the app has closed."""
    with contextlib.suppress(RuntimeError, NoActiveAppError):
        screen.app.call_from_thread(fn, *args)


class CoreScreen(Screen):
    """A screen that runs core functions off the event loop."""

    @property
    def core(self) -> Core:
        return self.app.core  # type: ignore[attr-defined]

    def run_core(
        self,
        fn: Callable[..., Any],
        *args: Any,
        done: Callable[[Any], None] | None = None,
        failed: Callable[[BaseException], None] | None = None,
        group: str = "core",
        exclusive: bool = False,
    ) -> Worker:
        """Call fn(*args) in a thread; `done(result)` or `failed(exc)` run on the UI thread."""

        def job() -> None:
            try:
                result = fn(*args)
            except DarkroomError as exc:
                call_ui(self, self.app.show_error, exc)  # type: ignore[attr-defined]
                if failed is not None:
                    call_ui(self, failed, exc)
                return
            except Exception as exc:  # a bug: show a sentence, keep the UI alive
                call_ui(self, self.app.show_unexpected, exc)  # type: ignore[attr-defined]
                if failed is not None:
                    call_ui(self, failed, exc)
                return
            if done is not None:
                call_ui(self, done, result)

        return self.run_worker(
            job, thread=True, group=group, exclusive=exclusive, exit_on_error=False
        )
