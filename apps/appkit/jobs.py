"""Jobs: one worker runs them in order (a GPU does one thing at a time); callers poll.

A job can be cancelled (POST /api/jobs/<id>/cancel, used when a person makes room on the GPU
for another app and says to cut the job short): a queued one never starts, a running one
stops at its next progress report. Either way it ends `cancelled`, with the reason given,
never `failed`: nothing went wrong, the person chose it.
"""

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


class JobCancelled(Exception):
    """Raised inside a task at its next progress report once its job was cancelled."""


QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
ENDED = (DONE, FAILED, CANCELLED)
KEEP_JOBS = 500
TRAIL_MAX = 200


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
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)
    cancel_reason: str = ""
    trail: list[float] = field(
        default_factory=list, repr=False
    )  # the progress figures reported, in order

    @property
    def finished_ok(self) -> bool:
        return self.status == DONE

    def report(self, fraction: float, message: str = "") -> None:
        """Progress callback handed to the task: 0..1, never going backwards.

        Also where a cancelled job stops: it raises JobCancelled once cancel() was called."""
        if self.cancel_event.is_set():
            raise JobCancelled(self.cancel_reason)
        progress = max(self.progress, min(1.0, max(0.0, float(fraction))))
        if progress > self.progress:
            # What the job went through (kept short): shows whether progress moved with the work.
            if len(self.trail) >= TRAIL_MAX:
                del self.trail[1::2]
            self.trail.append(round(progress, 4))
        self.progress = progress
        if message:
            self.message = message

    @property
    def eta_s(self) -> float | None:
        """Seconds left, from the progress so far (None until there is some)."""
        if self.status != RUNNING or self.started is None or not 0 < self.progress < 1:
            return None
        elapsed = time.time() - self.started
        return round(elapsed * (1 - self.progress) / self.progress, 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task": self.task,
            "status": self.status,
            "progress": round(self.progress, 4),
            "message": self.message,
            "error": self.error,
            "eta_s": self.eta_s,
            "trail": list(self.trail),
            "params": self.params,
            "result": self.result,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
        }

    def summary(self) -> dict[str, Any]:
        """What a switch shows about the job in the way: which, how far, how long still."""
        return {
            "id": self.id,
            "task": self.task,
            "status": self.status,
            "progress": round(self.progress, 4),
            "message": self.message,
            "eta_s": self.eta_s,
        }


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

    def waiting(self) -> list[Job]:
        """Jobs queued behind the running one."""
        with self._lock:
            return [j for j in self._jobs.values() if j.status == QUEUED]

    def cancel(self, job_id: str, reason: str = "") -> Job | None:
        """Cancel a job: a queued one is dropped, a running one stops at its next progress
        report. Returns the job (None if unknown); one already ended is left as it is."""
        job = self.get(job_id)
        if job is None or job.status in ENDED:
            return job
        job.cancel_reason = reason or "Cancelled by you."
        job.cancel_event.set()
        return job

    def _work(self) -> None:
        while True:
            job, run = self._queue.get()
            if job.cancel_event.is_set():  # cancelled while it waited: it never starts
                job.status, job.error, job.finished = CANCELLED, job.cancel_reason, time.time()
                job.done_event.set()
                continue
            self.running = job
            job.status, job.started = RUNNING, time.time()
            try:
                job.result = run(job)
                job.status, job.progress = DONE, 1.0
            except JobCancelled:
                job.status, job.error, job.error_status = CANCELLED, job.cancel_reason, 409
            except AppError as exc:
                job.status, job.error, job.error_status = FAILED, exc.message, exc.status
            except Exception as exc:  # a bug or an OOM: the job fails, the server lives on
                if job.cancel_event.is_set():  # the task wrapped JobCancelled in its own error
                    job.status, job.error, job.error_status = CANCELLED, job.cancel_reason, 409
                    continue
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
        return (
            "The GPU ran out of memory for this job. Try a smaller size or fewer images, or "
            "reinstall the app with a smaller variant or CPU offload."
        )
    return f"The job failed: {text[:500]}"
