"""What every app's web page shares: one task run from a Gradio callback through the same
job queue the API uses, with progress shown and errors as the page's own messages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import AppError, validation_sentence
from .jobs import CANCELLED, FAILED, Job
from .runtime import Runtime, Task


def run_job(
    runtime: Runtime,
    task: Task,
    make_request: Callable[[], BaseModel],
    progress: Any,
    poll_s: float = 0.25,
) -> Job:
    """Submit, follow, and return the finished job; any problem becomes a gr.Error sentence."""
    import gradio as gr

    try:
        job = runtime.submit(task, make_request())
    except ValidationError as exc:
        raise gr.Error(validation_sentence(list(exc.errors()))) from None
    except AppError as exc:
        raise gr.Error(exc.message) from None
    except ValueError as exc:
        raise gr.Error(str(exc)) from None
    while not job.done_event.wait(poll_s):
        eta = job.eta_s
        left = f" (about {eta:.0f} s left)" if eta is not None and job.progress >= 0.05 else ""
        progress(job.progress, desc=(job.message or job.status) + left)
    if job.status in (FAILED, CANCELLED):
        raise gr.Error(job.error)
    return job
