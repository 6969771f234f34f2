"""One installed app: its status, what it does and the model files it has, a log tail that
follows, and what can be done with it (a stopped app opens with Start focused)."""

from __future__ import annotations

import time

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, Footer, Header, Log, Static

from ...errors import NotFound
from ...views import human_bytes
from ..actions import AppAbout
from ..words import no_commands
from .base import CoreScreen, call_ui

REFRESH_S = 1.0


class AppScreen(CoreScreen):
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("s", "start", "Start"),
        Binding("x", "stop", "Stop"),
        Binding("r", "restart", "Restart"),
        Binding("o", "open", "Open"),
        Binding("u", "update", "Update"),
        Binding("b", "rollback", "Rollback"),
        Binding("delete", "remove", "Remove"),
    ]

    def __init__(self, app_id: str, start: bool = False) -> None:
        """`start`: start the app as the screen opens (the Install screen's Start)."""
        super().__init__()
        self.app_id = app_id
        self.start_on_open = start
        self.info = None
        self.record = None
        self.busy = ""
        self.logged = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"{self.app_id}…", id="app-status")
        yield Static(id="app-about")
        yield Static(
            "No log yet: it begins when the app first starts (Start, key s).", id="app-nolog"
        )
        log = Log(id="app-log", max_lines=2000)
        log.border_title = "Last log lines"
        yield log
        with Horizontal(classes="buttons", id="app-buttons"):
            for action, label in (
                ("start", "Start"),
                ("stop", "Stop"),
                ("restart", "Restart"),
                ("open", "Open"),
                ("update", "Update"),
                ("rollback", "Rollback"),
                ("remove", "Remove"),
            ):
                yield Button(
                    label,
                    id=f"app-{action}",
                    compact=True,
                    variant="error" if action == "remove" else "default",
                )
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.sub_title = self.app_id
        self.query_one("#app-log").display = False
        self.query_one("#app-start").focus()
        self.refresh_status()
        self.set_interval(REFRESH_S, self.refresh_status)
        self.run_core(self.core.about, self.app_id, done=self._show_about, group="about")
        self.follow_logs()
        if self.start_on_open:
            self.action_start()

    def _show_about(self, about: AppAbout) -> None:
        lines = [escape(about.description)] if about.description else []
        if about.models:
            lines.append("[b]Models[/]")
        for model in about.models:
            lines.append(
                f"• {escape(model.name)}, {escape(model.variant)}: "
                f"{len(model.files)} file(s), {human_bytes(model.size)}"
            )
            lines += [f"    {escape(name)} ({human_bytes(size)})" for name, size in model.files[:4]]
            if len(model.files) > 4:
                lines.append(f"    and {len(model.files) - 4} more")
        self.query_one("#app-about", Static).update("\n".join(lines))

    # ------------------------------------------------------------ status

    def refresh_status(self) -> None:
        self.run_core(
            lambda: (self.core.installed(self.app_id), self.core.status(self.app_id)),
            done=self._show_status,
            group="status",
            exclusive=True,
        )

    def _show_status(self, pair) -> None:
        self.record, self.info = pair
        rec, info = pair
        if rec is None:
            self.query_one("#app-status", Static).update(
                f"[b]{escape(self.app_id)}[/] is not installed."
            )
            return
        status = self.busy or (("stale" if info.stale else info.status) if info else "stopped")
        lines = [
            f"[b]{escape(self.app_id)}[/] {escape(rec.version)} · [b]{status}[/]"
            + (f" at {info.url}" if info and info.active else "")
            + (f" · {info.restarts} restart(s)" if info and info.restarts else "")
        ]
        lines.append(
            f"Runs on {rec.device}"
            + (f" · {rec.vram_gb:g} GB VRAM" if rec.vram_gb else "")
            + (f" · can roll back to {rec.previous.version}" if rec.previous else "")
        )
        if info is not None and info.status == "failed" and info.last_error:
            lines.append(
                f"[red]{escape(no_commands(info.last_error))}[/]"
                + (f" {escape(no_commands(info.hint))}" if info.hint else "")
            )
        self.query_one("#app-status", Static).update("\n".join(lines))
        active = bool(info and info.active)
        start, stop = self.query_one("#app-start"), self.query_one("#app-stop")
        had_focus = self.focused in (start, stop)
        start.display = not active
        stop.display = active or bool(info and info.stale)
        if had_focus:  # Start becomes Stop in the same place, and focus goes with it
            (stop if stop.display else start).focus()
        self.query_one("#app-open").disabled = not (info and info.status == "ready")
        self.query_one("#app-rollback").disabled = rec.previous is None

    # ------------------------------------------------------------ logs

    def follow_logs(self) -> None:
        self.run_worker(
            self._follow, thread=True, group="logs", exclusive=True, exit_on_error=False
        )

    def _follow(self) -> None:
        """Tail the log in a thread; lines reach the widget in small batches."""
        from textual.worker import get_current_worker

        worker = get_current_worker()
        while not worker.is_cancelled:
            try:
                batch: list[str] = []
                last = time.monotonic()
                for line in self.core.logs(self.app_id, stop_when=lambda: worker.is_cancelled):
                    batch.append(line)
                    now = time.monotonic()
                    if len(batch) >= 50 or now - last > 0.1:
                        call_ui(self, self._write_lines, batch)
                        batch, last = [], now
                if batch:
                    call_ui(self, self._write_lines, batch)
            except NotFound:
                time.sleep(1.0)  # no log yet: it appears when the app first starts
            except Exception:
                time.sleep(1.0)

    def _write_lines(self, lines: list[str]) -> None:
        if not self.logged:
            self.logged = True
            self.query_one("#app-nolog").display = False
            self.query_one("#app-log").display = True
        self.query_one("#app-log", Log).write_lines(lines)

    def on_unmount(self) -> None:
        self.workers.cancel_group(self, "logs")

    # ------------------------------------------------------------ actions

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        action = (event.button.id or "").removeprefix("app-")
        getattr(self, f"action_{action}")()

    def _run(self, busy: str, fn, *args, done_text: str) -> None:
        if self.busy:
            self.notify(f"{self.app_id} is {self.busy}; wait a moment.", severity="warning")
            return
        self.busy = busy
        if self.record is not None:
            self._show_status((self.record, self.info))

        def done(result) -> None:
            self.busy = ""
            self.notify(done_text.format(result=result))
            self.refresh_status()

        def failed(_exc) -> None:
            self.busy = ""
            self.refresh_status()

        self.run_core(fn, *args, done=done, failed=failed, group="action")

    def action_start(self) -> None:
        self._run("starting", self.core.start, self.app_id, done_text=f"{self.app_id} is running.")

    def action_stop(self) -> None:
        self._run("stopping", self.core.stop, self.app_id, done_text=f"{self.app_id} stopped.")

    def action_restart(self) -> None:
        self._run(
            "restarting", self.core.restart, self.app_id, done_text=f"{self.app_id} restarted."
        )

    def action_open(self) -> None:
        self.run_core(self.core.open, self.app_id, done=self.notify)

    def action_update(self) -> None:
        self.app.open_install(self.app_id, update=True)  # type: ignore[attr-defined]

    def action_rollback(self) -> None:
        from .confirm import ConfirmScreen

        def answer(yes: bool | None) -> None:
            if yes:
                self._run(
                    "rolling back",
                    self.core.rollback,
                    self.app_id,
                    done_text=f"{self.app_id} is back to version {{result.version}}.",
                )

        self.app.push_screen(
            ConfirmScreen(
                f"Go back to the version of {self.app_id} before the last update?", "Roll back"
            ),
            answer,
        )

    def action_remove(self) -> None:
        from .confirm import ConfirmScreen

        def answer(yes: bool | None) -> None:
            if not yes:
                return
            self.busy = "removing"
            self.workers.cancel_group(self, "logs")

            def removed(result) -> None:
                freed = (
                    f"; {result.freed_bytes / 1e9:.2f} GB of model files freed"
                    if result.freed_bytes
                    else ""
                )
                kept = (
                    f" Your saved work is kept in {result.data_kept}." if result.data_kept else ""
                )
                self.notify(f"{self.app_id} was removed{freed}.{kept}")
                self.app.pop_screen()

            def failed(_exc) -> None:
                self.busy = ""
                self.follow_logs()

            self.run_core(
                self.core.remove, self.app_id, done=removed, failed=failed, group="action"
            )

        self.app.push_screen(
            ConfirmScreen(
                f"Remove {self.app_id}? Its environment and logs are deleted; model files other apps "
                "use, and your saved work, are kept.",
                "Remove",
            ),
            answer,
        )

    def action_back(self) -> None:
        self.app.pop_screen()
