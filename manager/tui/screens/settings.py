"""Settings: the data folder, the Hugging Face token (masked, never shown), package index and
mirror settings, the bind address and idle unload. Saved through config.set_value, so the
same validation (and the same error sentences) as `darkroom config set`."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Checkbox, Footer, Header, Input, Label, Static

from .base import CoreScreen

# key, label; list settings are edited as space-separated text.
FIELDS = [
    ("hf_endpoint", "Hugging Face mirror"),
    ("index_url", "Package index"),
    ("extra_index_urls", "Extra indexes"),
    ("find_links", "Wheel folders"),
    ("index_strategy", "Index strategy"),
    ("bind_host", "Bind address"),
    ("port_start", "First port"),
    ("port_end", "Last port"),
    ("idle_unload_minutes", "Idle unload (min)"),
    ("parallel_downloads", "Parallel downloads"),
]


def as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(map(str, value))
    return str(value)


class SettingsScreen(CoreScreen):
    BINDINGS = [Binding("escape", "back", "Back"), Binding("ctrl+s", "save", "Save")]

    def __init__(self) -> None:
        super().__init__()
        self.saved: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        form = VerticalScroll(id="settings-form")
        form.can_focus = False  # Tab goes field to field; each field scrolls into view
        with form:
            yield Static(id="data-folder")
            with Horizontal(classes="field"):
                yield Label("Hugging Face token", classes="field-label")
                yield Input(password=True, id="set-hf_token", placeholder="not set", compact=True)
            for key, label in FIELDS:
                with Horizontal(classes="field"):
                    yield Label(label, classes="field-label")
                    yield Input(id=f"set-{key}", compact=True)
            yield Checkbox(
                "Offline: never touch the network, use caches only", id="set-offline", compact=True
            )
            yield Static(id="settings-note")
        with Horizontal(classes="buttons"):
            yield Button("Save", id="save", variant="primary", compact=True)
            yield Button("Forget token", id="forget-token", compact=True)
            yield Button("Back", id="back", compact=True)
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.sub_title = "Settings"
        self.query_one("#set-hf_token", Input).focus()  # the first field: typing goes there
        self.query_one("#data-folder", Static).update(
            f"[b]Data folder[/] {escape(str(self.core.home.root))} (set DARKROOM_HOME to move it)"
        )
        self.run_core(self._load, done=self._show, group="settings", exclusive=True)

    def _load(self) -> tuple[dict, dict, list[str]]:
        saved = self.core.settings_file().model_dump()
        from ...config import public_view

        return saved, public_view(self.core.settings_file()), self.core.overridden()

    def _show(self, loaded: tuple[dict, dict, list[str]]) -> None:
        saved, public, overridden = loaded
        self.saved = {key: as_text(saved.get(key)) for key, _ in FIELDS}
        self.saved["offline"] = str(bool(saved.get("offline")))
        for key, _ in FIELDS:
            self.query_one(f"#set-{key}", Input).value = self.saved[key]
        self.query_one("#set-offline", Checkbox).value = bool(saved.get("offline"))
        token = self.query_one("#set-hf_token", Input)
        token.value = ""
        token.placeholder = (
            f"set ({public['hf_token']}); type a new one to replace it"
            if public.get("hf_token")
            else "not set; paste a token for gated models"
        )
        note = ""
        if overridden:
            note = (
                "[yellow]Environment variables override: "
                + ", ".join(overridden)
                + ". What you save here applies when they are unset.[/]"
            )
        self.query_one("#settings-note", Static).update(note)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "save":
            self.action_save()
        elif event.button.id == "forget-token":
            self.run_core(
                self.core.set_setting, "hf_token", "", done=self._saved(["hf_token"]), group="save"
            )
        else:
            self.action_back()

    def changes(self) -> list[tuple[str, str]]:
        out = []
        token = self.query_one("#set-hf_token", Input).value.strip()
        if token:
            out.append(("hf_token", token))
        for key, _ in FIELDS:
            value = self.query_one(f"#set-{key}", Input).value.strip()
            if value != self.saved.get(key, ""):
                out.append((key, value))
        offline = str(self.query_one("#set-offline", Checkbox).value)
        if offline != self.saved.get("offline"):
            out.append(("offline", offline.lower()))
        return out

    def action_save(self) -> None:
        changes = self.changes()
        if not changes:
            self.notify("Nothing changed.")
            return

        def save_all() -> list[str]:
            done = []
            for key, value in changes:
                self.core.set_setting(key, value)  # stops at the first invalid value
                done.append(key)
            return done

        self.run_core(
            save_all,
            done=lambda keys: self._saved(keys)(None),
            failed=lambda _e: self._reload(),
            group="save",
        )

    def _saved(self, keys: list[str]):
        def done(_result: object) -> None:
            self.notify("Saved: " + ", ".join(keys) + ".")
            self._reload()

        return done

    def _reload(self) -> None:
        self.run_core(self._load, done=self._show, group="settings", exclusive=True)

    def action_back(self) -> None:
        self.app.pop_screen()
