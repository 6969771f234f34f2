"""Jobs: one worker runs them in order (a GPU does one thing at a time); callers poll."""

from __future__ import annotations

import queue
import threading
import time
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import AppError

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
KEEP_JOBS = 500


@dataclass
class Job:
    id: str
    task: str
    params: dict[str, Any]
    status: str = QUEUED
    progress: float = 0.0
    message: str = ""
    error: str = ""
    error_status: int = 0
    result: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    done_event: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def finished_ok(self) -> bool:
        return self.status == DONE

    def report(self, fraction: float, message: str = "") -> None:
        """Progress callback handed to the task: 0..1, never going backwards."""
        self.progress = max(self.progress, min(1.0, max(0.0, float(fraction))))
        if message:
            self.message = message

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "task": self.task, "status": self.status,
                "progress": round(self.progress, 4), "message": self.message, "error": self.error,
                "params": self.params, "result": self.result, "created": self.created,
                "started": self.started, "finished": self.finished}


Runner = Callable[[Job], dict[str, Any]]


class JobQueue:
    """A FIFO of jobs and the single worker thread that runs them."""

    def __init__(self, on_idle: Callable[[], None] | None = None) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._queue: queue.Queue[tuple[Job, Runner]] = queue.Queue()
        self._lock = threading.Lock()
        self._on_idle = on_idle
        self.running: Job | None = None
        self._worker = threading.Thread(target=self._work, name="jobs", daemon=True)
        self._worker.start()

    def submit(self, task: str, params: dict[str, Any], run: Runner) -> Job:
        job = Job(id=uuid.uuid4().hex[:16], task=task, params=params)
        with self._lock:
            self._jobs[job.id] = job
            while len(self._jobs) > KEEP_JOBS:
                self._jobs.popitem(last=False)
        self._queue.put((job, run))
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def list(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    @property
    def busy(self) -> bool:
        return self.running is not None or not self._queue.empty()

    def _work(self) -> None:
        while True:
            job, run = self._queue.get()
            self.running = job
            job.status, job.started = RUNNING, time.time()
            try:
                job.result = run(job)
                job.status, job.progress = DONE, 1.0
            except AppError as exc:
                job.status, job.error, job.error_status = FAILED, exc.message, exc.status
            except Exception as exc:  # a bug or an OOM: the job fails, the server lives on
                traceback.print_exc()
                job.status, job.error, job.error_status = FAILED, _explain(exc), 500
            finally:
                job.finished = time.time()
                self.running = None
                job.done_event.set()
                if self._on_idle is not None and self._queue.empty():
                    self._on_idle()


def _explain(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    if "out of memory" in text.lower():
        return ("The GPU ran out of memory for this job. Try a smaller size or fewer images, or "
                "reinstall the app with a smaller variant or CPU offload.")
    return f"The job failed: {text[:500]}"
