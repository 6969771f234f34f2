"""Doctor: what is wrong with this installation, each finding with its fix; and the disk use."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Footer, Header, Static

from ...views import human_bytes
from ..words import no_commands
from .base import CoreScreen

LEVEL_STYLE = {"ok": "green", "warning": "yellow", "error": "red"}


class DoctorScreen(CoreScreen):
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("r", "check", "Check again"),
        Binding("f", "fix_all", "Fix all"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.findings: list = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Checking this installation…", id="doctor-summary")
        yield VerticalScroll(id="findings")
        with Horizontal(classes="buttons"):
            yield Button("Fix all", id="fix-all", variant="primary", compact=True, disabled=True)
            yield Button("Check again", id="check", compact=True)
            yield Button("Back", id="back", compact=True)
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.sub_title = "Doctor"
        self.query_one("#check").focus()
        self.action_check()

    def action_check(self) -> None:
        self.query_one("#doctor-summary", Static).update("Checking this installation…")
        self.run_core(
            lambda: (self.core.doctor(), self.core.disk_use()),
            done=self._show,
            failed=self._check_failed,
            group="check",
            exclusive=True,
        )

    def _check_failed(self, _exc: BaseException) -> None:
        self.query_one("#doctor-summary", Static).update(
            "[red]The check could not finish.[/] The reason is in the notification; "
            "Check again (key r) once it is dealt with."
        )

    def _show(self, result) -> None:
        findings, du = result
        self.findings = findings
        box = self.query_one("#findings", VerticalScroll)
        box.remove_children()
        rows = []
        for i, f in enumerate(findings):
            style = LEVEL_STYLE.get(f.level, "white")
            text = f"[{style}]● {f.level}[/] [b]{escape(f.topic)}[/]: {escape(no_commands(f.text))}"
            if f.fix:
                text += f"\n  [dim]{escape(no_commands(f.fix))}[/]"
            children = [Static(text, classes="finding-text")]
            if f.safe_fix is not None:
                children.append(
                    Button("Fix", name=str(i), classes="fix-one", compact=True, variant="primary")
                )
            rows.append(Vertical(*children, classes="finding"))
        box.mount_all(rows)
        self.call_after_refresh(self._focus_first_fix)
        fixable = sum(1 for f in findings if f.safe_fix is not None)
        problems = sum(1 for f in findings if f.level != "ok")
        self.query_one("#fix-all", Button).disabled = not fixable
        saved = f", {human_bytes(du.saved)} saved by sharing" if du.saved else ""
        self.query_one("#doctor-summary", Static).update(
            f"{problems} problem(s), {fixable} with a fix · apps {human_bytes(du.envs_actual)}, "
            f"models {human_bytes(du.models_actual)}{saved}"
        )

    def _focus_first_fix(self) -> None:
        """The first finding's Fix if there is one (Enter fixes it), else Check again."""
        if (
            self.focused is not None
            and self.focused.parent is not None
            and (self.focused.id in ("fix-all", "back"))
        ):
            return  # the user went to a button of their own
        fixes = list(self.query(".fix-one").results(Button))
        (fixes[0] if fixes else self.query_one("#check", Button)).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        bid = event.button.id or ""
        if event.button.has_class("fix-one"):
            self._fix([self.findings[int(event.button.name or 0)]])
        elif bid == "fix-all":
            self.action_fix_all()
        elif bid == "check":
            self.action_check()
        else:
            self.action_back()

    def action_fix_all(self) -> None:
        self._fix([f for f in self.findings if f.safe_fix is not None])

    def _fix(self, findings: list) -> None:
        if not findings:
            return
        self.query_one("#doctor-summary", Static).update("Fixing…")
        self.run_core(self.core.fix, findings, done=self._fixed, group="fix", exclusive=True)

    def _fixed(self, results: list) -> None:
        for finding, outcome in results:
            ok = outcome == "fixed"
            self.notify(
                f"{finding.topic}: {'fixed' if ok else outcome}",
                severity="information" if ok else "error",
            )
        self.action_check()

    def action_back(self) -> None:
        self.app.pop_screen()
