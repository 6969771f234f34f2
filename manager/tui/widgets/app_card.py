"""One app on the Home screen: what it is, whether it is installed or running, and buttons."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Static

from ..actions import AppCardData

ACTIONS = (
    ("install", "Install"),
    ("start", "Start"),
    ("stop", "Stop"),
    ("open", "Open"),
    ("details", "Details"),
)
STATUS_STYLE = {
    "ready": "green",
    "starting": "yellow",
    "queued": "yellow",
    "restarting": "yellow",
    "stopping": "yellow",
    "failed": "red",
    "stale": "red",
    "installed": "cyan",
    "not installed": "dim",
}


def status_line(data: AppCardData) -> str:
    """`● ready · http://127.0.0.1:7860 · 11 GB VRAM` in Rich markup."""
    style = STATUS_STYLE.get(data.status, "white")
    parts = [f"[{style}]● {data.status}[/]"]
    if data.installed and data.version:
        parts.append(f"v{escape(data.version)}")
    if data.running and data.port:
        parts.append(f"port {data.port}")
    if data.running and data.model_loaded is False:
        parts.append("model unloaded")
    elif data.installed and data.vram_gb:
        parts.append(f"{data.vram_gb:g} GB VRAM")
    if data.running and data.vram_measured_gb is not None:
        parts.append(f"{data.vram_measured_gb:g} GB measured")
    return " · ".join(parts)


class AppCard(Vertical, can_focus=True):
    """Focusable (its buttons are not): the Home screen's keys act on the focused card, so
    focus moves card by card and no key lands on a button by accident."""

    class Action(Message):
        """A button on the card was pressed."""

        def __init__(self, app: str, action: str) -> None:
            super().__init__()
            self.app = app
            self.action = action

    def __init__(self, data: AppCardData) -> None:
        super().__init__(id=f"card-{data.app}", classes="card")
        self.data = data

    def compose(self) -> ComposeResult:
        with Horizontal(classes="card-head"):
            yield Static(classes="card-name")
            yield Static(classes="card-status")
        yield Static(classes="card-desc")
        with Horizontal(classes="card-buttons"):
            for action, label in ACTIONS:
                button = Button(label, name=action, classes=f"act-{action}", compact=True)
                button.can_focus = False  # for the mouse: keys act on the focused card
                yield button

    def on_mount(self) -> None:
        self.show(self.data)

    def show(self, data: AppCardData) -> None:
        self.data = data
        self.query_one(".card-name", Static).update(f"[b]{escape(data.name)}[/]")
        self.query_one(".card-status", Static).update(status_line(data))
        desc = data.problem if data.status == "failed" and data.problem else data.description
        self.query_one(".card-desc", Static).update(escape(desc))
        visible = {
            "install": not data.installed,
            "start": data.installed and not data.running,
            "stop": data.running or data.status == "stale",
            "open": data.status == "ready",
            "details": data.installed,
        }
        for action, _label in ACTIONS:
            self.query_one(f".act-{action}", Button).display = visible[action]
        self.set_class(data.status == "failed", "-failed")
        self.set_class(data.running, "-running")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.Action(self.data.app, event.button.name or ""))
