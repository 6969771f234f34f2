"""The TUI's one door to the core: the same functions the CLI commands call, gathered so
screens never reach for uv, the hub or processes themselves.

Core modules are imported inside the methods: the first paint must not wait for pydantic
schemas, httpx and the installer to load; the screens call these from worker threads.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import Cancelled, DarkroomError
from ..events import Cancellable, CancelToken, Reporter, ignore
from ..home import Home
from ..views import AppRow as AppCardData

if TYPE_CHECKING:
    from ..batch import BatchRequest, BatchSummary
    from ..config import Settings
    from ..hardware import Hardware
    from ..installer import Preview
    from ..planner import Choices
    from ..supervisor import RunInfo


class Core:
    """The data folder, its settings and the hardware, and every action on them."""

    def __init__(self, home: Home | None = None, hardware: Hardware | None = None) -> None:
        self.home = (home or Home.from_env()).ensure()
        self._hardware = hardware
        self._fixed_hardware = hardware is not None
        self._recipes: dict | None = None

    # ------------------------------------------------------------ reading

    def settings(self) -> Settings:
        from .. import config

        return config.load(self.home)

    def hardware(self) -> Hardware:
        """The probe of this machine (once), or the profile the app was given."""
        if self._hardware is None:
            from .. import hardware

            self._hardware = hardware.probe(self.home.root)
        return self._hardware

    def recipes(self) -> dict:
        if self._recipes is None:
            from ..recipe import bundled_recipes

            self._recipes = bundled_recipes()
        return self._recipes

    def cards(self) -> list[AppCardData]:
        """Every bundled app and every installed third-party app, with what is known of it."""
        from ..views import app_rows

        return app_rows(self.home, self.recipes())

    def disk_free_bytes(self) -> int:
        """Free space where the data folder lies, read now (it changes with every install);
        a fixed machine profile keeps its own figure, so pictures of the screen stay put."""
        if self._fixed_hardware:
            return int(self.hardware().disk_free_gb * 1e9)
        import shutil

        return shutil.disk_usage(self.home.root).free

    def about(self, app: str) -> AppAbout:
        """What an installed app does and the model files it has, for its own screen."""
        from .. import catalogue
        from .. import state as state_mod

        record = state_mod.load(self.home).apps.get(app)
        try:
            recipe = catalogue.installed_recipe(record, app)
        except DarkroomError:
            return AppAbout("", [])
        models = []
        for installed in record.models if record else []:
            try:
                model = recipe.model(installed.model)
                variant = model.variant(installed.variant).label
                name = model.name
            except DarkroomError:
                name, variant = installed.model, installed.variant
            files = [(f.path.rsplit("/", 1)[-1], f.size) for f in installed.files]
            models.append(ModelAbout(name, variant, files))
        return AppAbout(recipe.description, models)

    def installed(self, app: str):
        from .. import state as state_mod

        return state_mod.load(self.home).apps.get(app)

    def status(self, app: str) -> RunInfo | None:
        from ..supervisor import control

        return control.app_status(self.home, app)

    # ------------------------------------------------------------ planning

    def preview(self, target: str, choices: Choices | None = None) -> Preview:
        from .. import installer

        return installer.preview(self.home, self.settings(), target, self.hardware(), choices)

    def update_preview(self, app: str) -> Preview:
        from .. import installer

        return installer.update_preview(self.home, self.settings(), app, self.hardware())

    def here_bytes(self, preview: Preview) -> int:
        """How much of the plan's model files the store holds already (asks no server)."""
        from .. import weights

        files = [f for m in preview.plan.models for f in m.files]
        if not files:
            return 0
        missing = weights.plan_download(self.home, files, self.settings(), remote=False)
        return max(0, preview.plan.download_bytes - missing.download_bytes)

    def install_job(
        self, preview: Preview, update: bool = False, report: Reporter = ignore
    ) -> InstallJob:
        """The install (or update) the preview describes, run in-process by the caller's
        worker thread; cancelling stops it at its next event and the journal undoes it."""
        return InstallJob(self.home, self.settings(), preview, report, update=update)

    # ------------------------------------------------------------ running

    def start(
        self,
        app: str,
        report: Reporter = ignore,
        switch: bool | str = False,
        cancel: threading.Event | None = None,
    ) -> RunInfo:
        """Start within the GPU budget; `switch` ("wait" or "now") makes the others unload first.
        Setting `cancel` while it waits withdraws the start."""
        from .. import launching, switching

        settings = self.settings()
        return switching.start(
            self.home,
            settings,
            self.hardware(),
            app,
            lambda a: launching.launch_spec(self.home, settings, a),
            switch=switch,
            report=report,
            cancel=cancel,
        )

    def switch_obstacles(self, app: str) -> list:
        """The apps that would make room for `app`, with the work each has in progress."""
        from .. import launching, switching

        settings = self.settings()
        need = switching.need_gb(
            self.home, app, lambda a: launching.launch_spec(self.home, settings, a)
        )
        return switching.obstacles(self.home, self.hardware(), app, need)

    def stop(self, app: str, report: Reporter = ignore) -> bool:
        from .. import supervisor

        return supervisor.stop(self.home, app, report)

    def restart(self, app: str, report: Reporter = ignore) -> RunInfo:
        self.stop(app, report)
        return self.start(app, report)

    def open(self, app: str) -> str:
        """Open the app's page; the sentence says where it is when no browser could start
        (no display, or none set up), rather than claim it opened."""
        import webbrowser

        from .. import supervisor

        opened: list[bool] = []
        url = supervisor.open_app(self.home, app, lambda u: opened.append(bool(webbrowser.open(u))))
        if opened and opened[0]:
            return f"Opened {url} in the web browser."
        return (
            f"No web browser could be started here. {app}'s page is at {url}: open that "
            "address in a browser on this computer."
        )

    def open_path(self, path: str) -> str:
        """Open a file or folder (a batch's report, its results) as Open does an app's page:
        in the web browser, else a sentence saying where it is."""
        import webbrowser
        from pathlib import Path

        where = Path(path)
        if not where.exists():
            return f"{where} is not there any more."
        if webbrowser.open(where.resolve().as_uri()):
            return f"Opened {where} in the web browser."
        return f"No web browser could be started here. Open {where} on this computer."

    def logs(self, app: str, stop_when: Callable[[], bool], lines: int = 200) -> Iterator[str]:
        from .. import supervisor

        return supervisor.logs(self.home, app, follow=True, lines=lines, stop_when=stop_when)

    # ------------------------------------------------------------ workflow batches

    def presets(self) -> list:
        """The workflow presets to pick from (bundled, then the user's own)."""
        from .. import presets

        return presets.catalogue(self.home)

    def batch_job(self, request: BatchRequest, report: Reporter = ignore) -> BatchJob:
        """A preset over a folder, run in-process by the caller's worker thread."""
        return BatchJob(self.home, request, report)

    # ------------------------------------------------------------ changing installs

    def rollback(self, app: str, report: Reporter = ignore):
        from .. import installer

        return installer.rollback(self.home, self.settings(), app, report)

    def remove(self, app: str, keep_models: bool = False, report: Reporter = ignore):
        from .. import installer

        return installer.remove(self.home, self.settings(), app, keep_models, report)

    def recover(self) -> list[str]:
        from .. import installer

        return installer.recover(self.home)

    # ------------------------------------------------------------ models

    def store(self) -> list:
        from .. import state as state_mod
        from .. import weights

        return weights.list_store(self.home, state_mod.load(self.home))

    def verify_models(self) -> tuple[int, list]:
        """(files checked, problems) for every installed app's files, else the whole store."""
        from .. import state as state_mod
        from .. import weights

        specs = weights.verify_targets(self.home, state_mod.load(self.home))
        return len(specs), weights.verify(self.home, specs, full=True)

    def gc(self, dry_run: bool):
        from .. import state as state_mod
        from .. import weights

        return weights.gc(self.home, state_mod.load(self.home), dry_run=dry_run)

    # ------------------------------------------------------------ settings and doctor

    def settings_file(self) -> Settings:
        from .. import config

        return config.load_file(self.home)

    def public_settings(self) -> dict:
        from .. import config

        return config.public_view(self.settings())

    def set_setting(self, key: str, value: str) -> None:
        from .. import config

        config.set_value(self.home, key, value)

    def overridden(self) -> list[str]:
        """Settings an environment variable overrides right now (saving them has no effect yet)."""
        from .. import config

        return [key for var, key in config.ENV_OVERRIDES.items() if os.environ.get(var)]

    def doctor(self) -> list:
        from .. import doctor

        return doctor.check(self.home, self.settings(), self.hardware())

    def fix(self, findings: list) -> list:
        from .. import doctor

        return doctor.fix(findings)

    def disk_use(self):
        from .. import doctor

        return doctor.disk_use(self.home)


@dataclass
class ModelAbout:
    name: str
    variant: str
    files: list[tuple[str, int]]  # file name, bytes

    @property
    def size(self) -> int:
        return sum(size for _name, size in self.files)


@dataclass
class AppAbout:
    description: str
    models: list[ModelAbout]


@dataclass
class JobResult:
    ok: bool
    cancelled: bool = False
    error: DarkroomError | None = None
    cleaned: list[str] = field(default_factory=list)
    # A cancel that came after the install had already committed: the result is the install's.
    finished_before_cancel: bool = False


class InstallJob:
    """`installer.install` for one preview, with a cancel that is a real stop.

    `run` blocks (call it from a worker thread) and hands the core's typed events to
    `report`; `cancel` may be called from any thread: from then on the install raises
    `Cancelled` at its next event or checkpoint (a running uv is killed, downloads stop at
    their next chunk), and the installer's journal puts back what it had begun.
    """

    def __init__(
        self,
        home: Home,
        settings: Settings,
        preview: Preview,
        report: Reporter = ignore,
        update: bool = False,
    ) -> None:
        self.home = home
        self.settings = settings
        self.preview = preview
        self.report = report
        self.update = update
        self.app = preview.recipe.id  # whose record in state.json tells whether it committed
        self.token = CancelToken()
        # Set once the cancel has reached the running work: from then on it cannot finish the
        # install unless it was already committing (then `run` reports it installed).
        self.interrupted = threading.Event()

    @property
    def cancelled(self) -> bool:
        return self.token.cancelled

    def run(self) -> JobResult:
        from .. import installer

        began = time.time()
        if self.cancelled:
            return JobResult(ok=False, cancelled=True)
        try:
            installer.install(
                self.home,
                self.settings,
                self.preview,
                Cancellable(self.report, self.token),
                accepted=True,
            )
        except Exception as exc:
            if isinstance(exc, Cancelled) or self.cancelled:  # whatever the stop broke first
                cleaned = self._recover()
                if self._committed_since(began):
                    # The cancel came between writing state.json and the last message: it stands.
                    return JobResult(ok=True, finished_before_cancel=True, cleaned=cleaned)
                return JobResult(ok=False, cancelled=True, cleaned=cleaned)
            if isinstance(exc, DarkroomError):
                return JobResult(ok=False, error=exc)
            # A bug: still a sentence, and the journal has undone the work.
            what = "update" if self.update else "install"
            return JobResult(
                ok=False,
                error=DarkroomError(
                    f"The {what} stopped unexpectedly ({type(exc).__name__}: {exc}).",
                    "Nothing half-done was kept. Try again; Doctor (key d on Home) may find the cause.",
                ),
            )
        # A cancel that arrived after the install committed changed nothing; saying
        # "cancelled" would hide an installed app.
        return JobResult(ok=True, finished_before_cancel=self.cancelled)

    def cancel(self) -> None:
        """Stop the install; safe to call more than once, before or after it started."""
        self.token.cancel()
        self.interrupted.set()

    def _committed_since(self, began: float) -> bool:
        """Whether state.json holds a record of this app written after the job began."""
        from .. import state as state_mod

        record = state_mod.load(self.home).apps.get(self.app)
        return record is not None and record.updated_at >= began

    def _recover(self) -> list[str]:
        from .. import installer

        try:
            return installer.recover(self.home)
        except DarkroomError as exc:
            return [str(exc)]


@dataclass
class BatchResult:
    summary: BatchSummary | None = None
    cancelled: bool = False
    error: DarkroomError | None = None


class BatchJob:
    """`batch.run` for one request, with a cancel that lets the image in flight finish.

    `run` blocks (call it from a worker thread); `cancel` may come from any thread: the engine
    is asked to stop after the image it is working on, and the same request again resumes.
    """

    def __init__(self, home: Home, request: BatchRequest, report: Reporter = ignore) -> None:
        self.home = home
        self.request = request
        self.report = report
        self.token = CancelToken()

    @property
    def cancelled(self) -> bool:
        return self.token.cancelled

    def run(self) -> BatchResult:
        from .. import batch

        if self.cancelled:
            return BatchResult(cancelled=True)
        try:
            summary = batch.run(self.home, self.request, Cancellable(self.report, self.token))
        except Cancelled:
            return BatchResult(cancelled=True)
        except DarkroomError as exc:
            return BatchResult(error=exc)
        except Exception as exc:  # a bug: still a sentence
            return BatchResult(
                error=DarkroomError(
                    f"The batch stopped unexpectedly ({type(exc).__name__}: {exc}).",
                    "Start it again: finished images are kept and it goes on from there.",
                )
            )
        if summary.interrupted:  # the engine was stopped from elsewhere (a signal)
            return BatchResult(summary=summary, cancelled=True)
        return BatchResult(summary=summary)

    def cancel(self) -> None:
        """Ask the batch to stop after the image in flight; safe to call more than once."""
        self.token.cancel()
