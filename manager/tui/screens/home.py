"""Home: the apps as cards (install / start / stop / open) and the machine summary."""

from __future__ import annotations

import threading

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Footer, Header, Static

from ...errors import DarkroomError
from ...events import Event, Message, Progress
from ...views import human_bytes
from ..actions import AppCardData
from ..widgets.app_card import AppCard
from .base import CoreScreen, call_ui

REFRESH_S = 2.0
DISK_REFRESH_S = 5.0  # the free-disk figure follows installs, downloads and removes


class HomeScreen(CoreScreen):
    # The cards are the only things that take focus here (their buttons are for the mouse):
    # Up/Down and Tab walk the cards in the order they are listed, Enter opens the focused
    # one, and Escape, with nowhere to go back to, does nothing at all.
    BINDINGS = [
        Binding("i", "card('install')", "Install"),
        Binding("s", "card('start')", "Start"),
        Binding("x", "card('stop')", "Stop"),
        Binding("o", "card('open')", "Open", show=False),
        Binding("enter", "card('enter')", "Open card", show=False),
        Binding("a", "add_recipe", "Add recipe", show=False),
        Binding("m", "app.open_screen('models')", "Models"),
        Binding("c", "app.open_screen('settings')", "Settings"),
        Binding("d", "app.open_screen('doctor')", "Doctor"),
        Binding("w", "app.open_screen('workflow')", "Workflow", show=False),
        Binding("q", "app.quit", "Quit"),
        Binding("down,j,tab", "move(1)", "Next", show=False, priority=True),
        Binding("up,k,shift+tab", "move(-1)", "Previous", show=False, priority=True),
        Binding("escape", "stay", show=False, priority=True),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.busy: set[str] = set()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Looking at this machine…", id="machine")
        cards = VerticalScroll(Static("Loading the apps…", id="cards-loading"), id="cards")
        cards.can_focus = False  # the cards take focus; arrows move between them
        yield cards
        with Horizontal(classes="buttons", id="home-buttons"):
            workflow = Button("Run a workflow (w)", id="open-workflow", compact=True)
            workflow.can_focus = False  # for the mouse, as the cards' buttons; the key is w
            yield workflow
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.refresh_machine()
        self.refresh_cards()
        self.set_interval(REFRESH_S, self.refresh_cards)
        self.set_interval(DISK_REFRESH_S, self.refresh_machine)

    def on_screen_resume(self) -> None:
        """Back from Install, an app's screen or Models: what is on disk may have changed."""
        self.refresh_cards()
        self.refresh_machine()

    # ------------------------------------------------------------ data

    def _machine_text(self) -> str:
        from ...planner import GB_PER_GIB  # the plans count RAM in GB: the same figure here

        hw = self.core.hardware()
        gpu = hw.best_gpu
        gpu_text = (
            f"{gpu.name}, {gpu.vram_total_gb:g} GB VRAM" if gpu else "no GPU (apps run on the CPU)"
        )
        return (
            f"[b]Machine[/] {escape(gpu_text)} · {hw.ram_total_gb * GB_PER_GIB:.1f} GB RAM · "
            f"{human_bytes(self.core.disk_free_bytes())} free disk"
        )

    def refresh_machine(self) -> None:
        self.run_core(self._machine_text, done=self._show_machine, group="machine", exclusive=True)

    def _show_machine(self, text: str) -> None:
        self.query_one("#machine", Static).update(text)

    def refresh_cards(self) -> None:
        self.run_core(self.core.cards, done=self._show_cards, group="cards", exclusive=True)

    def _show_cards(self, cards: list[AppCardData]) -> None:
        box = self.query_one("#cards", VerticalScroll)
        for loading in box.query("#cards-loading"):
            loading.remove()
        existing = {card.data.app: card for card in box.query(AppCard)}
        wanted = {c.app for c in cards}
        for app, card in existing.items():
            if app not in wanted:
                card.remove()
        new = []
        for data in cards:
            if data.app in self.busy and data.app in existing:
                data = _keep_busy(existing[data.app].data, data)
            if data.app in existing:
                existing[data.app].show(data)
            else:
                new.append(AppCard(data))
        if new:
            box.mount_all(new)
        if self.focused_card() is None:  # the first card; or the first left after a remove
            self.call_after_refresh(self._focus_first)

    def _focus_first(self) -> None:
        cards = self.cards()
        if cards and self.focused_card() is None and self.app.screen is self:
            cards[0].focus()

    # ------------------------------------------------------------ actions

    def focused_card(self) -> AppCard | None:
        node = self.focused
        while node is not None and not isinstance(node, AppCard):
            node = node.parent  # type: ignore[assignment]
        return node

    def cards(self) -> list[AppCard]:
        return list(self.query(AppCard))

    def action_move(self, step: int) -> None:
        """Focus the next (or previous) card in the listed order, stopping at the ends."""
        cards = self.cards()
        if not cards:
            return
        current = self.focused_card()
        index = cards.index(current) + step if current in cards else 0
        card = cards[max(0, min(len(cards) - 1, index))]
        card.focus()
        card.scroll_visible(animate=False)

    def action_stay(self) -> None:
        """Escape on Home: nothing to go back to, so nothing happens and focus stays."""

    def action_card(self, action: str) -> None:
        card = self.focused_card()
        if card is not None:
            if action == "enter":  # an installed app's screen, else its Install screen
                action = "details" if card.data.installed else "install"
            self.do_action(card.data.app, action)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "open-workflow":
            event.stop()
            self.app.open_screen("workflow")  # type: ignore[attr-defined]

    def on_app_card_action(self, message: AppCard.Action) -> None:
        self.do_action(message.app, message.action)

    def do_action(self, app: str, action: str) -> None:
        card = self.query_one(f"#card-{app}", AppCard)
        data = card.data
        if action == "install" and not data.installed:
            self.app.open_install(app)  # type: ignore[attr-defined]
        elif action == "details" and data.installed:
            self.app.open_app(app)  # type: ignore[attr-defined]
        elif action == "start" and data.installed and not data.running:
            self._start(app, switch=False)
        elif action == "stop" and (data.running or data.status == "stale"):
            self._busy(card, "stopping")
            self.run_core(
                self.core.stop,
                app,
                done=lambda _r: self._done(app, f"{app} stopped."),
                failed=lambda _e: self._done(app, ""),
            )
        elif action == "open" and data.status == "ready":
            self.run_core(self.core.open, app, done=self.notify)

    def _start(self, app: str, switch: bool | str) -> None:
        from .switch import SwitchWaitScreen

        self._busy(self.query_one(f"#card-{app}", AppCard), "queued" if switch else "starting")
        cancel = threading.Event()
        waiting: list[SwitchWaitScreen] = []

        said = [""]

        def report(event: Event) -> None:
            self._reporter()(event)
            if isinstance(event, Message) and event.text.startswith("Waiting for "):
                said[0] = event.text
                call_ui(self, show_wait, event.text)
            elif isinstance(event, Progress) and event.stage == "waiting" and said[0]:
                eta = f", about {event.eta_s:.0f} s left" if event.eta_s is not None else ""
                call_ui(self, show_wait, f"{said[0]}\n\n{event.item}: {event.done}%{eta}")

        def show_wait(text: str) -> None:
            if not waiting:  # the queued start, with its Cancel
                waiting.append(SwitchWaitScreen(app, cancel))
                self.app.push_screen(waiting[0])
            waiting[0].show(text)

        def close_wait() -> None:
            if waiting and waiting[0].is_attached:
                waiting[0].dismiss(None)

        def done(info) -> None:
            close_wait()
            self._done(app, f"{app} is running at {info.url}")

        def failed(exc: BaseException) -> None:
            close_wait()
            self._start_failed(app, exc)

        self.run_core(self.core.start, app, report, switch, cancel, done=done, failed=failed)

    def _start_failed(self, app: str, exc: BaseException) -> None:
        """Not enough GPU memory beside the others: offer to switch, naming any work in the way."""
        self._done(app, "")
        from ...switching import NeedsSwitch

        if not isinstance(exc, NeedsSwitch):
            return
        from .switch import SwitchScreen

        def ask(obstacles: list) -> None:
            def answer(choice: str | None) -> None:
                if choice:  # straight to the start: the card may not show "stopped" again yet
                    self._start(app, switch=choice)

            self.app.push_screen(SwitchScreen(app, exc.message, obstacles), answer)

        self.run_core(self.core.switch_obstacles, app, done=ask)

    def _busy(self, card: AppCard, status: str) -> None:
        self.busy.add(card.data.app)
        card.show(AppCardData(**{**card.data.__dict__, "status": status}))

    def _done(self, app: str, text: str) -> None:
        self.busy.discard(app)
        if text:
            self.notify(text)
        self.refresh_cards()
        self.refresh_machine()

    def _reporter(self):
        """Warnings from starting (a port taken, a restart) appear as notifications."""

        def report(event: Event) -> None:
            if isinstance(event, Message) and event.level != "info":
                call_ui(self, self.notify, event.text, severity="warning")

        return report

    def action_add_recipe(self) -> None:
        from .confirm import AskScreen

        def chosen(target: str | None) -> None:
            if target:
                self.app.open_install(target)  # type: ignore[attr-defined]

        self.app.push_screen(
            AskScreen(
                "Install from a recipe file or URL (it is shown to you first):",
                "/path/to/recipe.yaml or https://…",
            ),
            chosen,
        )


def _keep_busy(old: AppCardData, new: AppCardData) -> AppCardData:
    """While a start/stop is under way, keep showing it unless the run file already moved on."""
    if new.status in ("ready", "failed"):
        return new
    return AppCardData(**{**new.__dict__, "status": old.status})


__all__ = ["HomeScreen", "DarkroomError"]
