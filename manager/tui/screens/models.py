"""Models: what is in the shared weight store, its size, which apps use it; verify; delete unused."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, DataTable, Footer, Header, Static

from ...views import human_bytes
from .base import CoreScreen


class ModelsScreen(CoreScreen):
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("v", "verify", "Verify"),
        Binding("g", "gc", "Delete unused"),
        Binding("r", "reload", "Refresh"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Reading the model store…", id="models-summary")
        yield DataTable(id="models-table", cursor_type="row", zebra_stripes=True)
        with Horizontal(classes="buttons"):
            yield Button("Verify", id="verify", compact=True)
            yield Button("Delete unused", id="gc", variant="error", compact=True)
            yield Button("Back", id="back", compact=True)
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.sub_title = "Models"
        table = self.query_one(DataTable)
        table.add_columns("File", "Size", "Used by")
        table.focus()
        self.action_reload()

    def action_reload(self) -> None:
        self.run_core(self.core.store, done=self._show, group="store", exclusive=True)

    def _show(self, entries: list) -> None:
        table = self.query_one(DataTable)
        table.clear()
        seen: set[str] = set()
        total = unused = 0
        for e in entries:
            if e.blob not in seen:
                seen.add(e.blob)
                total += e.size
                unused += 0 if e.apps else e.size
            table.add_row(
                f"{e.repo}/{e.path}",
                human_bytes(e.size),
                ", ".join(e.apps) or "unused",
                key=f"{e.repo}/{e.commit}/{e.path}",
            )
        summary = (
            f"{len(entries)} file(s), {human_bytes(total)} in {self.core.home.models}"
            if entries
            else f"The model store is empty ({self.core.home.models})."
        )
        if unused:
            summary += f" · {human_bytes(unused)} unused"
        self.query_one("#models-summary", Static).update(summary)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        {"verify": self.action_verify, "gc": self.action_gc, "back": self.action_back}[
            event.button.id or "back"
        ]()

    def action_verify(self) -> None:
        self.notify("Checking every byte of the model files…")
        self.run_core(self.core.verify_models, done=self._verified, group="verify", exclusive=True)

    def _verified(self, result: tuple[int, list]) -> None:
        count, problems = result
        if not problems:
            self.notify(f"All {count} file(s) are present and intact.")
            return
        lines = "\n".join(p.message for p in problems[:5])
        self.notify(
            f"{len(problems)} problem(s):\n{lines}\nDoctor (d on Home) fetches them again.",
            severity="error",
            timeout=15,
        )

    def action_gc(self) -> None:
        self.run_core(self.core.gc, True, done=self._ask_gc, group="gc", exclusive=True)

    def _ask_gc(self, result) -> None:
        if not result.items:
            self.notify("Nothing to remove: every file in the store is used by an installed app.")
            return
        from .confirm import ConfirmScreen

        def answer(yes: bool | None) -> None:
            if yes:
                self.run_core(self.core.gc, False, done=self._collected, group="gc")

        self.app.push_screen(
            ConfirmScreen(
                f"Delete {len(result.items)} file(s) no installed app uses, "
                f"freeing {human_bytes(result.freed_bytes)}?",
                "Delete",
            ),
            answer,
        )

    def _collected(self, result) -> None:
        self.notify(
            f"Removed {len(result.items)} file(s), freed {human_bytes(result.freed_bytes)}."
        )
        self.action_reload()

    def action_back(self) -> None:
        self.app.pop_screen()
