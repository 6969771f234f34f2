"""The TUI's one door to the core: the same functions the CLI commands call, gathered so
screens never reach for uv, the hub or processes themselves.

Core modules are imported inside the methods: the first paint must not wait for pydantic
schemas, httpx and the installer to load; the screens call these from worker threads.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DarkroomError
from ..events import Event, Message, Progress, Reporter, Stage, ignore
from ..home import Home

if TYPE_CHECKING:
    from ..config import Settings
    from ..hardware import Hardware
    from ..installer import Preview
    from ..planner import Choices
    from ..supervisor import RunInfo


@dataclass
class AppCardData:
    """What a Home card shows about one app."""

    app: str
    name: str
    description: str
    installed: bool = False
    version: str | None = None
    status: str = "not installed"   # not installed / installed / starting / ready / failed / stale ...
    url: str = ""
    port: int | None = None
    vram_gb: float = 0.0
    bundled: bool = True
    problem: str = ""                # why it failed, when it did
    model_loaded: bool | None = None       # False once a running app has unloaded its model
    vram_measured_gb: float | None = None  # NVML, per process; None where it cannot be measured

    @property
    def running(self) -> bool:
        return self.status in ("starting", "ready", "restarting", "stopping")


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
        from .. import state as state_mod
        from ..supervisor import control

        installed = state_mod.load(self.home).apps
        running = {info.app: info for info in control.status(self.home)}
        usage = {}
        if any(info.active for info in running.values()):
            from .. import switching

            usage = {u.app: u for u in switching.usage(self.home)}
        out = []
        for rid, recipe in self.recipes().items():
            out.append(AppCardData(rid, recipe.name, recipe.description))
        for app, rec in installed.items():
            if app not in self.recipes():
                out.append(AppCardData(app, app, f"from {rec.recipe_source}", bundled=False))
        for card in out:
            rec = installed.get(card.app)
            if rec is not None:
                card.installed, card.version, card.status = True, rec.version, "installed"
                card.vram_gb = rec.vram_gb
                if not card.bundled:
                    with contextlib.suppress(DarkroomError, Exception):
                        from .. import launching

                        card.name = launching.recipe_of(self.home, rec, card.app).name
            info = running.get(card.app)
            if info is not None:
                card.status = "stale" if info.stale else info.status
                card.url, card.port = info.url, info.port
                if info.status == "failed":
                    card.problem = info.last_error or ""
            used = usage.get(card.app)
            if used is not None:
                card.model_loaded, card.vram_measured_gb = used.loaded, used.measured_gb
        return out

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

    def hardware_args(self) -> list[str]:
        """`--hardware FILE` when the app plans for a given profile rather than this machine."""
        if not self._fixed_hardware or self._hardware is None:
            return []
        path = self.home.root / "cache" / "tui-hardware.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self._hardware.model_dump()), "utf-8")
        return ["--hardware", str(path)]

    def install_job(self, preview: Preview, update: bool = False,
                    report: Reporter = ignore) -> InstallJob:
        """The install (or update) as the CLI would run it, in its own process so that
        cancelling is a real stop; the installer's journal puts back what it interrupted."""
        if update:
            argv = ["update", preview.recipe.id]
        else:
            target = preview.recipe.id if preview.bundled else preview.origin
            argv = ["install", target, *choice_args(preview.choices), *self.hardware_args()]
        return InstallJob(self.home, [*argv, "--json", "--yes", "--accept-licences"], report,
                          app=preview.recipe.id)

    # ------------------------------------------------------------ running

    def start(self, app: str, report: Reporter = ignore, switch: bool = False) -> RunInfo:
        """Start within the GPU budget; `switch` unloads or stops other apps to make room."""
        from .. import launching, switching

        settings = self.settings()
        return switching.start(self.home, settings, self.hardware(), app,
                               lambda a: launching.launch_spec(self.home, settings, a),
                               switch=switch, report=report)

    def stop(self, app: str, report: Reporter = ignore) -> bool:
        from .. import supervisor

        return supervisor.stop(self.home, app, report)

    def restart(self, app: str, report: Reporter = ignore) -> RunInfo:
        self.stop(app, report)
        return self.start(app, report)

    def open(self, app: str) -> str:
        from .. import supervisor

        return supervisor.open_app(self.home, app)

    def logs(self, app: str, stop_when: Callable[[], bool], lines: int = 200) -> Iterator[str]:
        from .. import supervisor

        return supervisor.logs(self.home, app, follow=True, lines=lines, stop_when=stop_when)

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


def choice_args(choices: Choices) -> list[str]:
    """The CLI flags that ask for the same choices (`--variant m=v`, `--models`, `--cpu`)."""
    out: list[str] = []
    for model, variant in sorted(choices.variants.items()):
        out += ["--variant", variant if model == "*" else f"{model}={variant}"]
    if choices.models is not None:
        out += ["--models", ",".join(choices.models)]
    if choices.backend == "cpu":
        out.append("--cpu")
    return out


_EVENTS: dict[str, type[Event]] = {"Stage": Stage, "Progress": Progress, "Message": Message}


def event_from_dict(data: dict) -> Event | None:
    """The inverse of Event.to_dict (None for lines that are not events)."""
    cls = _EVENTS.get(str(data.get("type")))
    if cls is None:
        return None
    fields = {k: v for k, v in data.items() if k != "type"}
    try:
        return cls(**fields)
    except TypeError:
        return None


def error_from_stderr(text: str, fallback: str) -> DarkroomError:
    """The CLI's `darkroom: <message>` and hint lines back into a DarkroomError."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.startswith("darkroom: "):
            message = line.removeprefix("darkroom: ")
            return DarkroomError(message, " ".join(lines[i + 1:]))
    tail = lines[-1] if lines else ""
    return DarkroomError(fallback, tail or "Run the same command in a terminal to see more.")


@dataclass
class JobResult:
    ok: bool
    cancelled: bool = False
    error: DarkroomError | None = None
    cleaned: list[str] = field(default_factory=list)
    # A cancel that came after the install had already committed: the result is the install's.
    finished_before_cancel: bool = False


class InstallJob:
    """`darkroom install|update ... --json` run as a child process, its events handed to `report`.

    `run` blocks (call it from a worker thread); `cancel` may be called from any thread: it
    interrupts the child as Ctrl-C would (the installer undoes its half-done work), kills it
    if it does not end in time, and then lets the journal recovery clean whatever is left.
    """

    GRACE_S = 15.0

    def __init__(self, home: Home, argv: list[str], report: Reporter = ignore,
                 app: str | None = None) -> None:
        self.home = home
        self.argv = argv
        self.report = report
        self.app = app  # whose record in state.json tells whether the install committed
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()  # orders "child started" against "cancel asked"
        self._cancelled = threading.Event()
        self._started = threading.Event()
        # Set once the child has been interrupted: from then on it cannot finish the install
        # unless it was already committing (then its exit code says so, and run reports it).
        self.interrupted = threading.Event()

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", "manager", *self.argv]

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def run(self) -> JobResult:
        env = {**os.environ, "DARKROOM_HOME": str(self.home.root), "PYTHONUNBUFFERED": "1"}
        root = Path(__file__).resolve().parents[2]
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH", "")) if p)
        kwargs: dict[str, Any] = {}
        if os.name == "posix":
            kwargs["start_new_session"] = True
        else:  # pragma: no cover - Windows
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
        began = time.time()
        with self._lock:
            if self.cancelled:
                return JobResult(ok=False, cancelled=True)
            self._proc = proc = subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, env=env, text=True, encoding="utf-8", errors="replace",
                bufsize=1, **kwargs)
        self._started.set()
        errors: list[str] = []
        reader = threading.Thread(target=lambda: errors.extend(proc.stderr or []), daemon=True)
        reader.start()
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                data = json.loads(line)
            except ValueError:
                continue
            event = event_from_dict(data) if isinstance(data, dict) else None
            if event is not None:
                self.report(event)
        rc = proc.wait()
        reader.join(timeout=5)
        if rc == 0:
            # A cancel that arrived after the install committed changed nothing; saying
            # "cancelled" would hide an installed app.
            return JobResult(ok=True, finished_before_cancel=self.cancelled)
        if self.cancelled:
            cleaned = self._recover()
            if self._committed_since(began):
                # Interrupted between writing state.json and exiting: the install stands.
                return JobResult(ok=True, finished_before_cancel=True, cleaned=cleaned)
            return JobResult(ok=False, cancelled=True, cleaned=cleaned)
        if rc != 0:
            what = "update" if self.argv[0] == "update" else "install"
            return JobResult(ok=False, error=error_from_stderr(
                "".join(errors), f"The {what} stopped unexpectedly (exit code {rc})."))
        return JobResult(ok=True)

    def cancel(self) -> None:
        """Stop the install; safe to call more than once, before or after it started."""
        with self._lock:
            self._cancelled.set()
            proc = self._proc
        if proc is None or proc.poll() is not None:
            return  # not started yet (run sees the flag and never starts it) or already over
        self._signal(proc, interrupt=True)
        self.interrupted.set()
        deadline = time.monotonic() + self.GRACE_S
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() is None:
            self._signal(proc, interrupt=False)

    @staticmethod
    def _signal(proc: subprocess.Popen, interrupt: bool) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
            if os.name == "posix":
                os.killpg(proc.pid, signal.SIGINT if interrupt else signal.SIGKILL)
            elif interrupt:  # pragma: no cover - Windows
                proc.send_signal(signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]
            else:  # pragma: no cover
                proc.kill()

    def _committed_since(self, began: float) -> bool:
        """Whether state.json holds a record of this app written after the job began."""
        from .. import state as state_mod

        if self.app is None:
            return False
        record = state_mod.load(self.home).apps.get(self.app)
        return record is not None and record.updated_at >= began

    def _recover(self) -> list[str]:
        from .. import installer

        try:
            return installer.recover(self.home)
        except DarkroomError as exc:
            return [str(exc)]
