"""What an app is made of (AppDef, Task) and the runtime around it: loading in the
background, unloading (on request or after idle minutes) and reloading on the next job.

An app supplies plain functions; the runtime owns threads and locks, so every bundled
app gets the same health, info, jobs and idle-unload behaviour.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from . import device as device_mod
from . import heap, protocol
from .errors import AppError, BadRequest, LoadError
from .jobs import Job, JobQueue
from .settings import AppSettings

Progress = Callable[[float, str], None]


@dataclass
class TaskResult:
    """What a task returns: saved files (paths inside the outputs folder) and data."""

    files: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Task:
    """One endpoint, POST /api/<name>: a request model and the function that serves it."""

    name: str
    request: type[BaseModel]
    run: Callable[[Runtime, Any, BaseModel, Job], TaskResult]  # (runtime, loaded, request, job)
    check: Callable[[Runtime, BaseModel], None] | None = None  # raise BadRequest before queueing
    description: str = ""


@dataclass
class AppDef:
    """An app: how to load and free its model, its tasks, and its web page."""

    name: str
    version: str
    load: Callable[[Runtime, str | None, Progress], Any]  # (runtime, model id, progress) -> loaded
    tasks: list[Task]
    unload: Callable[[Any], None] | None = None
    describe: Callable[[Any], dict[str, Any]] | None = None  # extra /api/info fields
    ui: Callable[[Runtime], Any] | None = None  # -> gradio Blocks
    max_body_bytes: int = 64 * 1024 * 1024


class Runtime:
    def __init__(self, app: AppDef, settings: AppSettings) -> None:
        self.app, self.settings = app, settings
        self.tasks = {t.name: t for t in app.tasks}
        self.device = settings.device  # until torch says otherwise, at first load
        self.loaded: Any = None
        self.loaded_model: str | None = None
        self.loads = 0
        self.ready = False  # the first load finished: health says ready from then on
        self.loading = False
        self.load_progress = 0.0
        self.load_error = ""
        self.last_activity = time.monotonic()
        self.unloaded_by = ""  # why no model is loaded: "idle" (idle unload) or "request"
        self._model_lock = threading.RLock()
        self.jobs = JobQueue(on_idle=self._jobs_done)
        self._stop = threading.Event()
        self.on_fatal: Callable[[str], None] = lambda _msg: None

    # ------------------------------------------------------------ loading

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def _jobs_done(self) -> None:
        """The queue ran empty: start the idle clock, hand a job's freed memory back."""
        self.touch()
        heap.trim()

    def ensure_loaded(self, model_id: str | None = None, progress: Progress | None = None) -> Any:
        """The loaded model for `model_id` (None: the one loaded, else the default); loads it if needed."""
        with self._model_lock:
            wanted = model_id or self.loaded_model or self.settings.models.default_id
            if self.loaded is not None and (wanted is None or wanted == self.loaded_model):
                return self.loaded
            if self.loaded is not None:
                self._unload_locked()
            self.loading, self.load_progress, self.load_error = True, 0.0, ""

            def report(fraction: float, message: str = "") -> None:
                self.load_progress = max(0.0, min(1.0, fraction))
                if progress is not None:
                    progress(fraction, message)

            try:
                if self.loads == 0:
                    self.device = (
                        device_mod.resolve(self.settings.device) if _needs_torch() else self.device
                    )
                start = time.monotonic()
                self.loaded = self.app.load(self, wanted, report)
                self.loaded_model = wanted
                self.loads += 1
                print(
                    f"{self.app.name}: loaded {wanted or 'model'} on {self.device} "
                    f"in {time.monotonic() - start:.1f} s",
                    flush=True,
                )
            except AppError as exc:
                self.load_error = exc.message
                raise
            except Exception as exc:
                self.load_error = (
                    f"Loading {wanted or 'the model'} failed: {type(exc).__name__}: {exc}"
                )
                raise LoadError(self.load_error) from exc
            finally:
                self.loading = False
            self.load_progress = 1.0
            self.touch()
            return self.loaded

    def unload(self, timeout: float = 60.0, why: str = "request") -> bool:
        """Free the model (RAM and VRAM); the process and port stay. False if a job kept it busy."""
        if not self._model_lock.acquire(timeout=timeout):
            return False
        try:
            if self.loaded is not None:
                self.unloaded_by = why
            self._unload_locked()
            return True
        finally:
            self._model_lock.release()

    def _unload_locked(self) -> None:
        if self.loaded is None:
            return
        loaded, self.loaded, self.loaded_model = self.loaded, None, None
        if self.app.unload is not None:
            self.app.unload(loaded)
        del loaded
        device_mod.release(self.device)
        print(f"{self.app.name}: model unloaded", flush=True)

    def first_load(self) -> None:
        """Runs in a thread once the server listens: health says loading until it is done."""
        try:
            self.ensure_loaded()
            self.ready = True
        except AppError as exc:
            print(f"error: {exc.message}", file=sys.stderr, flush=True)
            self.on_fatal(exc.message)

    # ------------------------------------------------------------ jobs

    def submit(self, task: Task, request: BaseModel) -> Job:
        if task.check is not None:
            task.check(self, request)
        model_id = getattr(request, "model", None)
        if model_id is not None:
            try:
                self.settings.models.get(model_id)
            except KeyError as exc:
                raise BadRequest(str(exc.args[0]), 404) from None
        self.touch()

        def run(job: Job) -> dict[str, Any]:
            with self._model_lock:
                if self.loaded is None or (model_id and model_id != self.loaded_model):
                    job.message = "loading the model"
                    loaded = self.ensure_loaded(model_id)
                else:
                    loaded = self.loaded
                result = task.run(self, loaded, request, job)
            return {"files": result.files, **result.data}

        return self.jobs.submit(task.name, request.model_dump(mode="json"), run)

    # ------------------------------------------------------------ idle unload

    def start_idle_watch(self) -> None:
        if self.settings.idle_unload_s <= 0:
            return
        threading.Thread(target=self._idle_loop, name="idle-unload", daemon=True).start()

    def _idle_loop(self) -> None:
        limit = self.settings.idle_unload_s
        tick = max(0.2, min(30.0, limit / 4))
        while not self._stop.wait(tick):
            if (
                self.loaded is not None
                and not self.jobs.busy
                and not self.loading
                and time.monotonic() - self.last_activity >= limit
            ):
                print(
                    f"{self.app.name}: idle for {limit / 60:.1f} min, freeing the model", flush=True
                )
                self.unload(timeout=0.5, why="idle")

    def stop(self) -> None:
        self._stop.set()

    # ------------------------------------------------------------ reporting

    def health(self) -> tuple[int, dict[str, Any]]:
        if not self.ready:
            return 503, {
                "status": protocol.HEALTH_LOADING,
                "progress": round(self.load_progress, 3),
                "app": self.app.name,
            }
        return 200, {
            "status": protocol.HEALTH_READY,
            "app": self.app.name,
            "device": self.device,
            "loaded": self.loaded is not None,
            "model": self.loaded_model,
            "loading": self.loading,
        }

    def info(self) -> dict[str, Any]:
        models = {
            k: {"variant": c.variant, "precision": c.precision, "offload": c.offload}
            for k, c in self.settings.models.models.items()
        }
        choice = self.settings.models.models.get(self.loaded_model or "")
        running = self.jobs.running
        data: dict[str, Any] = {
            "app": self.app.name,
            "version": self.app.version,
            "device": self.device,
            "requested_device": self.settings.device,
            "models": models,
            "default_model": self.settings.models.default_id,
            "model": self.loaded_model,
            "variant": choice.variant if choice else None,
            "loaded": self.loaded is not None,
            "loads": self.loads,
            "loading": self.loading,
            "load_error": self.load_error,
            "busy": self.jobs.busy,
            # The job a switch would wait for (or cut short), and those queued behind it.
            "job": running.summary() if running is not None else None,
            "queued": [j.id for j in self.jobs.waiting()],
            "unloaded_by": "" if self.loaded is not None else self.unloaded_by,
            "idle_unload_minutes": round(self.settings.idle_unload_s / 60, 4),
            "tasks": sorted(self.tasks),
            "outputs": str(self.settings.outputs),
            "vram_in_use": 0,
            **device_mod.memory(self.device),
        }
        data["vram_in_use"] = data.get("vram_allocated", 0)
        if self.loaded is not None and self.app.describe is not None:
            data.update(self.app.describe(self.loaded))
        return data


def _needs_torch() -> bool:
    """Apps import torch to load; resolve the device only if torch can be imported."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True
