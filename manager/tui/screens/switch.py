"""Switching apps on one GPU: the question (naming any job that would be lost) and the wait.

SwitchScreen answers "wait" (the others unload once their work is done), "now" (cut their
work short: only offered, and named, when there is work), or None. SwitchWaitScreen shows
what the queued start waits for, and its Cancel withdraws the start.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from ..words import no_commands

if TYPE_CHECKING:  # the dialog needs no core module loaded to paint
    from ...switching import Obstacle


def switch_question(app: str, refusal: str, obstacles: list[Obstacle]) -> str:
    """The dialog's text: why, who makes room, and which work a switch now would lose."""
    lines = [refusal, ""]
    if obstacles:
        names = ", ".join(o.app for o in obstacles)
        lines.append(f"Switch to {app}? {names} will unload their models.")
    else:
        lines.append(f"Switch to {app}? The other apps unload their models.")
    for o in obstacles:
        if o.work:
            lines.append(
                f"• {o.work} is in progress: Switch waits for it (the start of {app} "
                "is queued); Switch now cancels it and its result is lost."
            )
    return "\n".join(lines)


class SwitchScreen(ModalScreen[str | None]):
    BINDINGS = [
        Binding("escape", "answer('')", "No"),
        Binding("y", "answer('wait')", "Switch"),
        Binding("!", "answer('now')", "Switch now", show=False),
    ]

    def __init__(self, app: str, refusal: str, obstacles: list[Obstacle]) -> None:
        super().__init__()
        self.target, self.refusal, self.obstacles = app, refusal, obstacles
        self.has_work = any(o.work for o in obstacles)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(
                escape(no_commands(switch_question(self.target, self.refusal, self.obstacles))),
                classes="dialog-text",
                id="switch-text",
            )
            with Horizontal(classes="buttons"):
                yield Button(
                    "Switch" + (" when done" if self.has_work else ""), id="wait", variant="primary"
                )
                if self.has_work:
                    yield Button("Switch now (cancel the job)", id="now", variant="error")
                yield Button("No", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_answer("" if event.button.id == "no" else str(event.button.id))

    def action_answer(self, answer: str) -> None:
        if answer == "now" and not self.has_work:
            answer = "wait"
        self.dismiss(answer or None)


class SwitchWaitScreen(ModalScreen[None]):
    """The queued start: what it waits for; Cancel withdraws it and changes nothing else."""

    BINDINGS = [Binding("escape", "withdraw", "Cancel")]

    def __init__(self, app: str, cancel: threading.Event) -> None:
        super().__init__()
        self.target, self.cancel = app, cancel
        self.text = f"The start of {app} is queued."

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(escape(no_commands(self.text)), classes="dialog-text", id="wait-text")
            with Horizontal(classes="buttons"):
                yield Button("Cancel", id="withdraw", variant="error")

    def show(self, text: str) -> None:
        """The latest word on what the start waits for (also before the dialog is composed)."""
        self.text = text
        for static in self.query("#wait-text"):
            static.update(escape(no_commands(text)))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_withdraw()

    def action_withdraw(self) -> None:
        self.cancel.set()
        self.show(f"Withdrawing the start of {self.target}…")
