"""The workflow runner as an appkit app: POST /api/batch runs a preset over a folder (the
same engine as `darkroom run`), and its web page does the same for people."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from appkit.errors import BadRequest
from appkit.jobs import Job, JobCancelled
from appkit.runtime import AppDef, Runtime, Task, TaskResult
from pydantic import BaseModel, ConfigDict, Field

from . import __version__, client, engine, presets, ui
from .cli import default_out
from .errors import WorkflowError


class BatchRequest(BaseModel):
    """POST /api/batch: a preset over a folder; the apps are found through their run files."""

    model_config = ConfigDict(extra="forbid")

    preset: str = Field(
        min_length=1, description="a bundled preset's name, or a path to a preset .yaml"
    )
    input: str = Field("", description="the folder of images (or of prompts.txt)")
    out: str | None = Field(
        None, description="where results go; default: outputs/<preset>-<folder>"
    )
    set: dict[str, Any] = Field(default_factory=dict, description="{'step.param': value} overrides")
    urls: dict[str, list[str]] = Field(
        default_factory=dict, description="app -> URLs; default: run files"
    )
    ray: str | None = Field(None, description="auto, local or a Ray address; default: run here")
    workers: int = Field(0, ge=0, le=1024)
    retry_failed: bool = False
    keep_running: bool = Field(
        False, description="refuse a switch to another app instead of pausing"
    )


def _options(runtime: Runtime, req: BatchRequest) -> engine.BatchOptions:
    preset = presets.load_preset(req.preset)
    if req.set:
        preset = preset.with_overrides(req.set)
    source = Path(req.input).expanduser() if req.input else None
    urls = {k: [u.rstrip("/") for u in v] for k, v in req.urls.items()}
    missing = [a for a in preset.apps if a not in urls]
    if missing:
        if runtime.settings.home is None:
            raise WorkflowError(
                "Darkroom's data folder is not known, so the apps cannot be found.",
                "Start the workflow runner through Darkroom, or pass `urls`.",
            )
        urls.update(client.from_run_files(runtime.settings.home, missing))
    if req.out:
        out = Path(req.out).expanduser()
    else:
        name = source.resolve().name if source is not None else "prompts"
        out = runtime.settings.outputs / f"{preset.name}-{name}"
    return engine.BatchOptions(
        preset=preset,
        source=source,
        out=out,
        urls=urls,
        ray=req.ray,
        workers=req.workers,
        retry_failed=req.retry_failed,
        home=runtime.settings.home,
        keep_running=req.keep_running,
    )


def check(runtime: Runtime, req: BatchRequest) -> None:
    """Refuse before queueing what cannot run: an unknown preset, apps not running."""
    try:
        _options(runtime, req)
    except WorkflowError as exc:
        raise BadRequest(f"{exc.message} {exc.hint}".strip()) from None


def run(runtime: Runtime, _loaded: Any, req: BatchRequest, job: Job) -> TaskResult:
    def on_event(event: dict[str, Any]) -> None:
        if job.cancel_event.is_set():
            return  # cancelled: the batch stops after its item in flight (the ledger keeps its place)
        if event["type"] == "progress" and event["total"]:
            eta = f", {event['eta_s']:.0f} s left" if event.get("eta_s") is not None else ""
            job.report(
                event["done"] / event["total"],
                f"{event['done']}/{event['total']} ({event['failed']} failed), {event['rate']:.2f}/s{eta}",
            )
        elif event["type"] == "stage":
            job.message = event.get("message", "")

    opts = _options(runtime, req)
    opts.stop = job.cancel_event  # cancelling the job stops the batch between items
    try:
        summary = engine.run_batch(opts, on_event)
    except WorkflowError as exc:
        raise BadRequest(f"{exc.message} {exc.hint}".strip()) from None
    if job.cancel_event.is_set() and summary.done + summary.failed < summary.total:
        raise JobCancelled(job.cancel_reason)
    report = Path(summary.report)
    files = []
    with contextlib.suppress(
        ValueError
    ):  # results outside the outputs folder: the path is in the data
        files.append(report.relative_to(runtime.settings.outputs.resolve()).as_posix())
    return TaskResult(files=files, data=summary.to_dict())


def load(_runtime: Runtime, _model_id: str | None, _progress: Any) -> dict[str, Any]:
    return {"presets": presets.bundled()}  # no model: the steps' apps hold them


def describe(loaded: dict[str, Any]) -> dict[str, Any]:
    return {"presets": loaded["presets"]}


APP = AppDef(
    name="workflow",
    version=__version__,
    load=load,
    describe=describe,
    ui=ui.build,
    tasks=[
        Task(
            "batch",
            BatchRequest,
            run,
            check,
            "A preset over a whole folder: resumable, with a report",
        )
    ],
)

__all__ = ["APP", "BatchRequest", "default_out"]
