"""Workflow: a preset over a folder of images, as `batch.run` does it for the CLI.

Pick a preset (each with its description) and a folder, then watch the images count up; a
cancel asks first, then lets the engine finish the image in flight. The end shows what was
done, what failed and where the results and the report are, with buttons to open them.
Running the same preset over the same folder again goes on where it stopped.
"""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Footer, Header, Input, Log, ProgressBar, Select, Static

from ...events import Event, Message, Progress, Stage
from ..actions import BatchJob, BatchResult
from ..words import error_text, no_commands
from .base import CoreScreen, call_ui


def folder_problem(text: str) -> str | None:
    """Why `text` is not a folder to run over, as a sentence; None when it is one."""
    if not text.strip():
        return "Type the path of the folder that holds the images."
    try:
        path = Path(text.strip()).expanduser()
        if path.is_dir():
            return None
        there = path.exists()
    except (OSError, ValueError, RuntimeError):
        there = False
    if there:
        return f"{text.strip()} is a file, not a folder. Give the folder that holds the images."
    return (
        f"There is no folder {text.strip()}. Check the path; it can start with ~ for your "
        "home folder."
    )


def progress_text(event: Progress) -> str:
    """`3 / 10 images · last: img002.png · about 40 s left`."""
    text = f"{event.done} / {event.total or '?'} images"
    if event.item:
        text += f" · last: {event.item}"
    eta = event.eta_s
    if eta is not None and event.done < event.total:
        text += f" · about {eta / 60:.0f} min left" if eta >= 90 else f" · about {eta:.0f} s left"
    return text


class WorkflowScreen(CoreScreen):
    BINDINGS = [
        Binding("escape", "back", "Back / cancel"),
        Binding("ctrl+r", "run", "Run"),
        Binding("ctrl+x", "cancel", "Cancel batch"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.phase = "choosing"  # choosing -> running -> cancelling -> done | cancelled | failed
        self.job: BatchJob | None = None
        self.presets: dict[str, object] = {}
        self.last: Progress | None = None
        self.result: BatchResult | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="batch-body"):
            yield Static(
                "Run a workflow over every image in a folder. Pick a preset, then the folder.",
                id="batch-intro",
            )
            yield Static("[b]Preset[/]", classes="field-label")
            yield Select([], prompt="Loading the presets…", id="preset")
            yield Static("", id="preset-about")
            yield Static("[b]Folder of images[/]", classes="field-label")
            yield Input(placeholder="/path/to/the/folder/of/images", id="folder")
            yield Static("", id="folder-problem")
            with Vertical(id="batch-progress"):
                yield Static("Starting…", id="batch-count")
                yield ProgressBar(total=None, show_eta=False, id="batch-bar")
                yield Log(id="batch-log", max_lines=500)
            yield Static("", id="batch-summary")
        with Horizontal(classes="buttons", id="batch-buttons"):
            yield Button("Run", id="run", variant="success", compact=True)
            yield Button("Cancel", id="cancel-batch", variant="error", compact=True)
            yield Button("Open report", id="open-report", variant="primary", compact=True)
            yield Button("Open results folder", id="open-out", compact=True)
            yield Button("Back", id="back", compact=True)
        yield Footer(show_command_palette=False)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Run and Cancel appear (in the footer, too) only when they can do something."""
        if action == "run":
            return self.phase not in ("running", "cancelling")
        if action == "cancel":
            return self.phase == "running"
        return True

    def on_mount(self) -> None:
        self.sub_title = "Workflow"
        for wid in ("#batch-progress", "#cancel-batch", "#open-report", "#open-out"):
            self.query_one(wid).display = False
        self.query_one("#preset", Select).focus()
        self.run_core(self.core.presets, done=self._show_presets, group="presets")

    def _show_presets(self, presets: list) -> None:
        self.presets = {p.source: p for p in presets}
        select = self.query_one("#preset", Select)
        select.set_options((f"{p.name} — {p.description}", p.source) for p in presets)
        select.prompt = "Pick a preset"

    def on_select_changed(self, event: Select.Changed) -> None:
        info = self.presets.get(event.value) if event.value is not Select.BLANK else None
        about = "" if info is None else f"{escape(info.name)}: {escape(info.description)}"  # type: ignore[attr-defined]
        self.query_one("#preset-about", Static).update(about)

    def _phase(self, phase: str) -> None:
        self.phase = phase
        self.refresh_bindings()

    # ------------------------------------------------------------ running

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_run()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        actions = {
            "run": self.action_run,
            "cancel-batch": self.action_cancel,
            "open-report": lambda: self._open("report"),
            "open-out": lambda: self._open("out"),
            "back": self.action_back,
        }
        actions[event.button.id or "back"]()

    def _request(self):
        """The batch asked for, or None after saying on screen what is missing."""
        from ...batch import BatchRequest

        select = self.query_one("#preset", Select)
        problem_box = self.query_one("#folder-problem", Static)
        if select.value is Select.BLANK or select.value is Select.NULL:
            problem_box.update("[red]Pick a preset first.[/]")
            select.focus()
            return None
        folder = self.query_one("#folder", Input)
        problem = folder_problem(folder.value)
        if problem is not None:
            problem_box.update(f"[red]{escape(problem)}[/]")
            folder.focus()
            return None
        problem_box.update("")
        path = str(Path(folder.value.strip()).expanduser())
        return BatchRequest(preset=str(select.value), input=path)

    def action_run(self) -> None:
        if self.phase in ("running", "cancelling"):
            return
        request = self._request()
        if request is None:
            return
        self._phase("running")
        self.last = None
        self.result = None
        for wid in ("#preset", "#folder"):
            self.query_one(wid).disabled = True
        for wid in ("#run", "#back", "#open-report", "#open-out"):
            self.query_one(wid).display = False
        self.query_one("#batch-summary", Static).update("")
        self.query_one("#batch-count", Static).update("Starting the apps the preset needs…")
        self.query_one("#batch-bar", ProgressBar).update(total=None, progress=0)
        self.query_one("#batch-log", Log).clear()
        self.query_one("#batch-progress").display = True
        cancel = self.query_one("#cancel-batch", Button)
        cancel.disabled = False
        cancel.display = True
        cancel.focus()
        self.job = self.core.batch_job(request, report=self._on_event)
        self.run_core(self.job.run, done=self._finished, group="batch")

    def _on_event(self, event: Event) -> None:
        """Called on the batch's thread: one event per image at most, handed to the UI."""
        if isinstance(event, Progress | Stage | Message):
            call_ui(self, self._show_event, event)

    def _show_event(self, event: Event) -> None:
        if isinstance(event, Progress):
            self.last = event
            if event.total:
                self.query_one("#batch-bar", ProgressBar).update(
                    total=event.total, progress=min(event.done, event.total)
                )
            self.query_one("#batch-count", Static).update(escape(progress_text(event)))
            return
        log = self.query_one("#batch-log", Log)
        if isinstance(event, Stage):
            log.write_line(no_commands(event.message or event.stage))
        elif isinstance(event, Message):
            prefix = {"warning": "warning: ", "error": "error: "}.get(event.level, "")
            log.write_line(prefix + no_commands(event.text))

    # ------------------------------------------------------------ cancelling

    def action_cancel(self) -> None:
        """Ask first; then the engine stops after the image in flight."""
        if self.phase != "running" or self.job is None:
            return
        from .confirm import ConfirmScreen

        def answer(yes: bool | None) -> None:
            if yes and self.phase == "running" and self.job is not None:
                self._phase("cancelling")
                self.query_one("#cancel-batch", Button).disabled = True
                self.query_one("#batch-log", Log).write_line(
                    "Cancelling: the image in progress is finished first…"
                )
                self.run_core(self.job.cancel, group="cancel")

        self.app.push_screen(
            ConfirmScreen(
                "Stop the batch after the image it is working on? Finished images are kept; "
                "run it again to go on where it stopped.",
                "Stop the batch",
            ),
            answer,
        )

    # ------------------------------------------------------------ the end

    def _finished(self, result: BatchResult) -> None:
        self.result = result
        self.query_one("#cancel-batch").display = False
        for wid in ("#preset", "#folder"):
            self.query_one(wid).disabled = False
        run = self.query_one("#run", Button)
        run.display = True
        self.query_one("#back").display = True
        summary_box = self.query_one("#batch-summary", Static)
        if result.error is not None:
            self._phase("failed")
            summary_box.update(f"[red]{escape(error_text(result.error))}[/]")
            self.app.show_error(result.error)  # type: ignore[attr-defined]
            run.label = "Run again"
            run.focus()
            return
        if result.cancelled:
            self._phase("cancelled")
            counted = (
                f" {self.last.done} of {self.last.total} images are done." if self.last else ""
            )
            text = (
                f"The batch was cancelled.{counted} Run it again to go on where it stopped; "
                "finished images are not done twice."
            )
            summary_box.update(escape(text))
            self.notify(text, severity="warning")
            run.label = "Run again"
            run.focus()
            return
        self._phase("done")
        s = result.summary
        assert s is not None
        self.query_one("#batch-bar", ProgressBar).update(total=s.total or 1, progress=s.total or 1)
        self.query_one("#batch-count", Static).update(f"{s.done + s.failed} / {s.total} images")
        lines = [
            f"[b]{escape(s.preset)}[/]: {s.done} done, {s.failed} failed of {s.total} "
            f"({s.processed} this run in {s.seconds:.1f} s).",
            f"Results: {escape(s.out)}",
            f"Report:  {escape(s.report)}",
        ]
        lines += [f"• failed: {escape(item)}: {escape(why)}" for item, why in s.failures[:10]]
        if len(s.failures) > 10:
            lines.append(f"…and {len(s.failures) - 10} more in the report.")
        summary_box.update("\n".join(lines))
        self.notify(f"{s.preset}: {s.done} done, {s.failed} failed of {s.total}.")
        run.label = "Run again"
        self.query_one("#open-out").display = True
        report = self.query_one("#open-report", Button)
        report.display = True
        report.focus()
        self.query_one("#batch-body", VerticalScroll).scroll_end(animate=False)

    def _open(self, what: str) -> None:
        s = self.result.summary if self.result else None
        if s is not None:
            self.run_core(
                self.core.open_path, s.report if what == "report" else s.out, done=self.notify
            )

    def action_back(self) -> None:
        """Escape: while a batch runs, it asks to cancel; otherwise back to Home."""
        if self.phase == "running":
            self.action_cancel()
        elif self.phase == "cancelling":
            self.notify("The batch stops after the image in progress; wait a moment.")
        else:
            self.app.pop_screen()
