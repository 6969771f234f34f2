"""Install (or update): the plan in plain words, a variant picker that re-plans, licences
and the recipe's manifest to accept, then live progress with a cancel that leaves nothing
half-done (the install runs in-process in a worker thread, its typed events drawn as they
come; cancelling makes it stop at its next event and the installer's journal puts back what
it had begun)."""

from __future__ import annotations

import threading
import time

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Checkbox, Footer, Header, Input, Log, Select, Static

from ...events import Event, Message, Progress, Stage
from ...views import files_words, plan_summary
from ..actions import InstallJob, JobResult
from ..widgets.progress import TransferProgress
from ..words import error_text, no_commands
from .base import CoreScreen, call_ui

PUSH_EVERY_S = 0.1  # progress reaches the UI at most this often per stream


def plan_words(pv, here_bytes: int = 0) -> str:
    """The plan as a person reads it (Rich markup over the words the CLI prints too)."""
    summary = plan_summary(pv.plan, here_bytes)
    lines = [f"[b]{escape(summary.title)}[/] on {escape(summary.hardware)}"]
    lines += [escape(summary.runtime)] if summary.runtime else []
    lines += [f"• {escape(line)}" for line in summary.models]
    lines.append(escape(summary.totals))
    return "\n".join(lines)


def why_words(pv) -> str:
    summary = plan_summary(pv.plan)
    lines = ["[b]Why[/]"] + [f"• {escape(r)}" for r in summary.reasons]
    lines += [f"[yellow]⚠ {escape(no_commands(w))}[/]" for w in summary.warnings]
    return "\n".join(lines)


def variant_option(model, v, backend: str) -> str:
    """What one variant needs, for the picker: the GPU memory (with and without offload), the
    RAM, and the files it takes in all (its own and those every variant of the model shares,
    so the figure is the one the plan's download shows when it is picked)."""
    runs = backend in v.backends or backend == "none"
    if backend in ("cpu", "none"):
        need = f"{v.ram_gb:g} GB RAM"
    elif v.offload:
        need = (
            f"{min(v.offload.values()):g} GB VRAM with offload ({v.vram_gb:g} without), "
            f"{v.ram_gb:g} GB RAM"
        )
    else:
        need = f"{v.vram_gb:g} GB VRAM, {v.ram_gb:g} GB RAM"
    files = sum(f.size for f in model.common_files) + v.download_bytes
    unknown = any(f.size == 0 for f in [*model.common_files, *v.files])
    text = f"{v.label} — {need}, {files_words(files, unknown)}"
    return text if runs else f"{text} — not on {backend.upper()}"


class InstallScreen(CoreScreen):
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("ctrl+x", "cancel", "Cancel install"),
        Binding("s", "start_app", "Start the app"),
    ]

    def __init__(self, target: str, update: bool = False) -> None:
        super().__init__()
        self.target = target
        self.update = update
        self.pv = None
        self.job: InstallJob | None = None
        self.phase = "planning"  # planning -> ready -> running -> done | failed | cancelled
        self.here_bytes = 0  # of the plan's model files, what the store holds already
        self._latest: dict[str, Progress] = {}
        self._pushed: dict[str, float] = {}
        self._lock = threading.Lock()

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="install-body"):
            yield Static("Working out the plan for this machine…", id="plan-words")
            yield Vertical(id="variants")
            yield Static(id="plan-why")
            yield Static(id="manifest")
            yield Static(id="licences")
            with Vertical(id="progress"):
                yield TransferProgress("App environment", id="env-progress")
                yield TransferProgress("Model files", id="weights-progress")
                yield Log(id="install-log", max_lines=500)
        with Vertical(id="install-bottom"):
            yield Checkbox("I trust this recipe: run what it lists above", id="trust", compact=True)
            yield Checkbox("I accept the licences above", id="accept", compact=True)
            with Horizontal(id="token-row"):  # shown when a model turns out to be gated
                yield Input(
                    placeholder="Hugging Face read token (hf_…)",
                    password=True,
                    id="hf-token",
                    compact=True,
                )
                yield Button(
                    "Save token and try again", id="retry-token", variant="primary", compact=True
                )
            with Horizontal(classes="buttons", id="install-buttons"):
                yield Button(
                    "Install" if not self.update else "Update",
                    id="do-install",
                    variant="success",
                    disabled=True,
                    compact=True,
                )
                yield Button("Start it now", id="start-app", variant="success", compact=True)
                yield Button("Cancel", id="cancel", variant="error", compact=True)
                yield Button("Back", id="back", compact=True)
        yield Footer(show_command_palette=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The Start key appears (in the footer, too) once there is something to start."""
        if action == "start_app":
            return self.phase == "done" and not self.update
        return True

    def on_mount(self) -> None:
        self.sub_title = f"{'Update' if self.update else 'Install'} {self.target}"
        for wid in (
            "#trust",
            "#accept",
            "#progress",
            "#cancel",
            "#manifest",
            "#licences",
            "#token-row",
            "#start-app",
        ):
            self.query_one(wid).display = False
        self.query_one("#back").focus()
        self._plan(None)

    # ------------------------------------------------------------ planning

    def _plan(self, choices) -> None:
        def fn():
            if self.update:
                pv = self.core.update_preview(self.target)
            else:
                pv = self.core.preview(self.target, choices)
            self.here_bytes = self.core.here_bytes(pv)
            return pv

        self.run_core(
            fn, done=self.show_preview, failed=self._plan_failed, group="plan", exclusive=True
        )

    def _plan_failed(self, _exc: BaseException) -> None:
        if self.pv is None:
            self.query_one("#plan-words", Static).update(
                "[red]No plan could be made.[/] The reason is in the notification; press Escape to go back."
            )
            self.phase = "failed"
        else:  # a variant that cannot work: put the picker back to the plan in force
            self._sync_selects()

    def show_preview(self, pv) -> None:
        self.pv = pv
        self.phase = "ready"
        self.sub_title = f"{'Update' if self.update else 'Install'} {pv.recipe.name}"
        self.query_one("#plan-words", Static).update(plan_words(pv, self.here_bytes))
        self.query_one("#plan-why", Static).update(why_words(pv))
        manifest = self.query_one("#manifest", Static)
        manifest.display = pv.manifest is not None
        if pv.manifest is not None:
            manifest.update(
                f"[b]{escape(pv.manifest.heading)}[/]\n"
                + "\n".join(escape(line) for line in pv.manifest.lines())
            )
        licences = self.query_one("#licences", Static)
        licences.display = bool(pv.licences)
        licences.update(
            "[b]Licences[/]\n"
            + "\n".join(f"• {escape(no_commands(lic.sentence()))}" for lic in pv.licences)
        )
        self.query_one("#trust").display = pv.manifest is not None
        self.query_one("#accept").display = bool(pv.licences)
        if not self.update:
            self._build_selects()
        self._sync_selects()
        self._update_install_button()
        self._focus_next_step()

    def _focus_next_step(self) -> None:
        """Focus what the user has to do next: a consent to tick, then the Install button."""
        for wid in ("#trust", "#accept"):
            box = self.query_one(wid, Checkbox)
            if box.display and not box.value and not box.disabled:
                box.focus()
                return
        install = self.query_one("#do-install", Button)
        if not install.disabled:
            install.focus()

    def _build_selects(self) -> None:
        box = self.query_one("#variants", Vertical)
        if box.children:
            return
        rows = []
        for m in self.pv.plan.models:
            model = self.pv.recipe.model(m.model)
            if len(model.variants) < 2:
                continue
            options = [
                (variant_option(model, v, self.pv.plan.backend), v.id) for v in model.variants
            ]
            rows.append(
                Horizontal(
                    Static(f"{escape(model.name)}:", classes="variant-name"),
                    Select(
                        options,
                        value=m.variant,
                        allow_blank=False,
                        id=f"variant-{m.model}",
                        classes="variant-select",
                        compact=True,
                    ),
                    classes="variant-row",
                )
            )
        if rows:
            box.mount(Static("[b]Variant[/] (what each needs):"), *rows)

    def _sync_selects(self) -> None:
        if self.pv is None:
            return
        for m in self.pv.plan.models:
            for select in self.query(f"#variant-{m.model}").results(Select):
                if select.value != m.variant:
                    with select.prevent(Select.Changed):
                        select.value = m.variant

    def on_select_changed(self, event: Select.Changed) -> None:
        if (
            self.pv is None
            or self.phase != "ready"
            or not (event.select.id or "").startswith("variant-")
        ):
            return
        model = event.select.id.removeprefix("variant-")
        current = next((m.variant for m in self.pv.plan.models if m.model == model), None)
        if event.value == current or event.value is Select.BLANK:
            return
        from ...planner import Choices

        old = self.pv.choices
        choices = Choices(
            variants={**old.variants, model: str(event.value)},
            models=old.models,
            backend=old.backend,
            gpu_index=old.gpu_index,
        )
        self.query_one("#plan-words", Static).update("Working out the plan again…")
        self._plan(choices)

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self._update_install_button()
        if event.value:
            self._focus_next_step()

    def consent_given(self) -> bool:
        if self.pv is None:
            return False
        trust = self.pv.manifest is None or self.query_one("#trust", Checkbox).value
        accept = not self.pv.licences or self.query_one("#accept", Checkbox).value
        return bool(trust and accept)

    def _update_install_button(self) -> None:
        self.query_one("#do-install", Button).disabled = not (
            self.phase == "ready" and self.consent_given()
        )

    # ------------------------------------------------------------ installing

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "do-install":
            self.action_install()
        elif event.button.id == "cancel":
            self.action_cancel()
        elif event.button.id == "back":
            self.action_back()
        elif event.button.id == "retry-token":
            self.action_retry_with_token()
        elif event.button.id == "start-app":
            self.action_start_app()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "hf-token":
            event.stop()
            self.action_retry_with_token()

    def action_install(self) -> None:
        if self.phase != "ready" or not self.consent_given():
            return
        self.phase = "running"
        for widget in self.query(".variant-select, Checkbox"):
            widget.disabled = True
        self.query_one("#do-install").display = False
        self.query_one("#back").display = False
        self.query_one("#cancel").display = True
        self.query_one("#progress").display = True
        self.job = self.core.install_job(self.pv, update=self.update, report=self._on_event)
        self.query_one("#cancel").focus()
        self.query_one("#install-body", VerticalScroll).scroll_end(animate=False)
        job = self.job
        self.run_core(job.run, done=self._finished, group="install")

    def _on_event(self, event: Event) -> None:
        """Called on the job's thread: throttled hand-over to the UI thread."""
        if isinstance(event, Progress):
            key = event.source if event.source in ("env", "weights") else "other"
            if event.source == "weights" and event.item:
                return  # per-file counts; the total line says it all
            now = time.monotonic()
            finished = bool(event.total) and event.done >= event.total
            with self._lock:
                if not finished and now - self._pushed.get(key, 0.0) < PUSH_EVERY_S:
                    return
                self._pushed[key] = now
            call_ui(self, self._show_progress, event)
        elif isinstance(event, Stage | Message):
            call_ui(self, self._show_event, event)

    def _show_progress(self, event: Progress) -> None:
        if event.source == "env":
            self.query_one("#env-progress", TransferProgress).show(event)
        elif event.source == "weights":
            self.query_one("#weights-progress", TransferProgress).show(event)

    def _show_event(self, event: Event) -> None:
        log = self.query_one("#install-log", Log)
        if isinstance(event, Stage):
            log.write_line(
                f"[{event.source}] {event.stage}{': ' + event.message if event.message else ''}"
            )
            if event.source == "env":
                self.query_one("#env-progress", TransferProgress).stage(event.stage)
        elif isinstance(event, Message):
            prefix = {"info": "", "warning": "warning: ", "error": "error: "}.get(event.level, "")
            log.write_line(prefix + no_commands(event.text))
            if event.level == "warning":
                self.notify(event.text, severity="warning")

    def _finished(self, result: JobResult) -> None:
        log = self.query_one("#install-log", Log)
        self.query_one("#cancel").display = False
        back = self.query_one("#back", Button)
        back.display = True
        back.label = "Done"
        if result.ok:
            self.phase = "done"
            self.query_one("#env-progress", TransferProgress).finish()
            self.query_one("#weights-progress", TransferProgress).finish()
            verb = "updated" if self.update else "installed"
            text = f"{self.pv.recipe.name} is {verb}."
            if result.finished_before_cancel:
                what = "update" if self.update else "install"
                text = f"The {what} had already finished when you cancelled: {text}"
            log.write_line(text)
            if self.update:
                self.notify(text)
                back.focus()
            else:
                self.notify(text + " Press Start it now (key s) to run it.")
                start = self.query_one("#start-app", Button)
                start.display = True
                start.focus()
                self.refresh_bindings()
        elif result.cancelled:
            self.phase = "cancelled"
            back.focus()
            text = "The install was cancelled. Nothing half-done was kept."
            for line in result.cleaned:
                log.write_line(line)
            log.write_line(text)
            self.notify(text, severity="warning")
        else:
            self.phase = "failed"
            back.focus()
            if result.error is not None:
                log.write_line("error: " + error_text(result.error))
                self.app.show_error(result.error)  # type: ignore[attr-defined]
                if result.error.kind == "gated":
                    self._offer_token()

    # ------------------------------------------------------------ a gated model: take a token

    def _offer_token(self) -> None:
        """The next step for a gated model, on this screen: paste a token and go again."""
        self.query_one("#install-log", Log).write_line(
            "This model is gated: accept its licence on its Hugging Face page, then paste a read "
            "token below and try again."
        )
        self.query_one("#token-row").display = True
        self.query_one("#hf-token", Input).focus()

    def action_retry_with_token(self) -> None:
        if self.phase != "failed":
            return
        token = self.query_one("#hf-token", Input).value.strip()
        if not token:
            self.notify("Paste a Hugging Face read token first.", severity="warning")
            return
        self.phase = "saving-token"
        self.run_core(
            self.core.set_setting,
            "hf_token",
            token,
            done=self._retry_after_token,
            failed=lambda _exc: setattr(self, "phase", "failed"),
            group="token",
        )

    def _retry_after_token(self, _result: object) -> None:
        self.query_one("#hf-token", Input).value = ""
        self.query_one("#token-row").display = False
        self.query_one("#install-log", Log).write_line("Token saved; trying again.")
        self.phase = "ready"
        self.action_install()

    def action_start_app(self) -> None:
        """After the install: on to the app's screen, starting it there."""
        if self.phase == "done" and self.pv is not None and not self.update:
            self.app.open_app(self.pv.recipe.id, start=True, replace=True)  # type: ignore[attr-defined]

    def action_cancel(self) -> None:
        if self.phase == "running" and self.job is not None:
            self.phase = "cancelling"
            self.query_one("#cancel", Button).disabled = True
            self.query_one("#install-log", Log).write_line(
                "Cancelling: putting things back as they were…"
            )
            self.run_core(self.job.cancel, group="cancel")
        elif self.phase not in ("cancelling",):
            self.action_back()

    def action_back(self) -> None:
        if self.phase in ("running", "cancelling"):
            self.notify(
                "An install is running: cancel it first (Ctrl+X), or wait for it to finish.",
                severity="warning",
            )
            return
        self.app.pop_screen()
