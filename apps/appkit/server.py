"""The HTTP face every bundled app shares (FastAPI on uvicorn), and `serve`, its main().

    GET  /api/health              503 {"status": "loading", "progress"} until the first load, then 200 ready
    GET  /api/info                app, version, device, models, variant, loaded, VRAM in use
    POST /api/<task>              JSON in -> 202 {"id", ...}; ?wait=true answers when the job is done
    GET  /api/jobs, /api/jobs/<id>   status, progress, result (file names and URLs)
    GET  /api/jobs/<id>/result?index=N   the N-th result file itself
    GET  /api/outputs/<path>      any file in the app's outputs folder
    POST /api/unload, /api/load   free the model (process and port stay) / load it again
    /                             the Gradio page, if the app has one

Every error is JSON {"error": "<a sentence>"} with a 4xx/5xx status; the server keeps running.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import outputs
from .errors import AppError
from .jobs import DONE, FAILED
from .runtime import AppDef, Runtime
from .settings import AppSettings, SettingsError


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _validation_sentence(errors: list[dict[str, Any]]) -> str:
    parts = []
    for err in errors[:5]:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        parts.append(f"{'.'.join(loc) or 'request'}: {err.get('msg', 'invalid')}")
    return "Invalid request: " + "; ".join(parts) + "."


def _job_view(job_dict: dict[str, Any]) -> dict[str, Any]:
    files = job_dict.get("result", {}).get("files", [])
    job_dict["result"] = {**job_dict.get("result", {}),
                          "urls": [f"/api/outputs/{f}" for f in files]}
    job_dict["url"] = f"/api/jobs/{job_dict['id']}"
    return job_dict


def create_api(runtime: Runtime) -> FastAPI:
    """The FastAPI app with the /api routes; the Gradio page is mounted on it by `build_app`."""
    api = FastAPI(title=runtime.app.name, version=runtime.app.version, docs_url="/api/docs",
                  openapi_url="/api/openapi.json", redoc_url=None)
    limit = runtime.app.max_body_bytes

    @api.middleware("http")
    async def body_limit(request: Request, call_next):
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > limit:
            return _error(413, f"The request is too large ({int(size)} bytes; the limit is {limit}).")
        return await call_next(request)

    @api.exception_handler(RequestValidationError)
    async def on_validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error(422, _validation_sentence(list(exc.errors())))

    @api.exception_handler(StarletteHTTPException)
    async def on_http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @api.exception_handler(AppError)
    async def on_app_error(_request: Request, exc: AppError) -> JSONResponse:
        return _error(exc.status, exc.message)

    @api.exception_handler(Exception)
    async def on_crash(_request: Request, exc: Exception) -> JSONResponse:
        return _error(500, f"Internal error: {type(exc).__name__}: {exc}")

    @api.get("/api/health")
    def health() -> JSONResponse:
        code, body = runtime.health()
        return JSONResponse(body, status_code=code)

    @api.get("/api/info")
    def info() -> dict[str, Any]:
        return runtime.info()

    @api.post("/api/unload")
    def unload(timeout: float = 60.0) -> JSONResponse:
        if not runtime.unload(timeout=min(max(timeout, 0.0), 600.0)):
            return _error(409, "A job is still running; the model was not unloaded. Try again when it finishes.")
        return JSONResponse({"loaded": False})

    @api.post("/api/load")
    def load(model: str | None = None) -> JSONResponse:
        if model is not None:
            try:
                runtime.settings.models.get(model)
            except KeyError as exc:
                return _error(404, str(exc.args[0]))
        runtime.ensure_loaded(model)
        return JSONResponse({"loaded": True, "model": runtime.loaded_model})

    @api.get("/api/jobs")
    def jobs() -> dict[str, Any]:
        return {"jobs": [_job_view(j.to_dict()) for j in runtime.jobs.list()]}

    @api.get("/api/jobs/{job_id}")
    def job(job_id: str) -> JSONResponse:
        found = runtime.jobs.get(job_id)
        if found is None:
            return _error(404, f"There is no job '{job_id}'.")
        return JSONResponse(_job_view(found.to_dict()))

    @api.get("/api/jobs/{job_id}/result", response_model=None)
    def job_result(job_id: str, index: int = 0) -> FileResponse | JSONResponse:
        found = runtime.jobs.get(job_id)
        if found is None:
            return _error(404, f"There is no job '{job_id}'.")
        if found.status == FAILED:
            return _error(found.error_status or 500, found.error)
        if found.status != DONE:
            return _error(409, f"Job {job_id} is {found.status}; its result is not ready yet.")
        files = found.result.get("files", [])
        if not 0 <= index < len(files):
            return _error(404, f"Job {job_id} has {len(files)} result file(s); there is no index {index}.")
        path = outputs.resolve(runtime.settings.outputs, files[index])
        if path is None:
            return _error(410, f"The result file {files[index]} is no longer in the outputs folder.")
        return FileResponse(path)

    @api.get("/api/outputs/{name:path}", response_model=None)
    def output_file(name: str) -> FileResponse | JSONResponse:
        path = outputs.resolve(runtime.settings.outputs, name)
        if path is None:
            return _error(404, f"There is no output '{name}'.")
        return FileResponse(path)

    @api.post("/api/{task_name}")
    async def run_task(task_name: str, request: Request, wait: bool = False) -> JSONResponse:
        task = runtime.tasks.get(task_name)
        if task is None:
            return _error(404, f"There is no task '{task_name}'. Tasks: {', '.join(sorted(runtime.tasks))}.")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "The request body must be JSON.")
        try:
            parsed = task.request.model_validate(body)
        except ValidationError as exc:
            return _error(422, _validation_sentence(list(exc.errors())))
        job = runtime.submit(task, parsed)
        if wait:
            import anyio

            await anyio.to_thread.run_sync(job.done_event.wait)
            if job.status == FAILED:
                return _error(job.error_status or 500, job.error, job=_job_view(job.to_dict()))
            return JSONResponse(_job_view(job.to_dict()), status_code=200)
        return JSONResponse(_job_view(job.to_dict()), status_code=202)

    @api.api_route("/api/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    def unknown(rest: str) -> JSONResponse:
        return _error(404, f"There is no API endpoint /api/{rest}.")

    return api


def build_app(runtime: Runtime) -> FastAPI:
    """The API plus the app's Gradio page mounted at /."""
    api = create_api(runtime)
    if runtime.app.ui is not None:
        os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
        import gradio as gr

        blocks = runtime.app.ui(runtime)
        api = gr.mount_gradio_app(api, blocks, path="/")
    return api


def serve(app: AppDef, default_port: int = 7860) -> int:
    """main() of a bundled app: read settings, listen, load in the background, serve until stopped."""
    import uvicorn

    try:
        settings = AppSettings.from_env(app.name, default_port)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    settings.outputs.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    runtime = Runtime(app, settings)
    server = uvicorn.Server(uvicorn.Config(build_app(runtime), host=settings.host, port=settings.port,
                                           log_level="warning", access_log=False))
    failure: list[str] = []

    def fatal(message: str) -> None:
        failure.append(message)
        server.should_exit = True

    runtime.on_fatal = fatal
    loader = threading.Thread(target=runtime.first_load, name="first-load", daemon=True)

    original_startup = server.startup

    async def startup(sockets=None) -> None:
        await original_startup(sockets=sockets)
        if server.started:
            print(f"{app.name}: listening on http://{settings.host}:{settings.port}", flush=True)
            loader.start()
            runtime.start_idle_watch()

    server.startup = startup  # type: ignore[method-assign]
    server.run()
    runtime.stop()
    if not server.started:
        print(f"error: {app.name} could not listen on {settings.host}:{settings.port}; "
              "the port may be taken by another program.", file=sys.stderr, flush=True)
        return 1
    return 1 if failure else 0
