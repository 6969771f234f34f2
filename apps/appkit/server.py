"""The HTTP face every bundled app shares (Starlette on uvicorn), and `serve`, its main().

    GET  /api/health              503 {"status": "loading", "progress"} until the first load, then 200 ready
    GET  /api/info                app, version, device, models, variant, loaded, VRAM in use
    GET  /api/openapi.json        the endpoints and each task's request schema
    POST /api/<task>              JSON in -> 202 {"id", ...}; ?wait=true answers when the job is done
    GET  /api/jobs, /api/jobs/<id>   status, progress, result (file names and URLs)
    GET  /api/jobs/<id>/result?index=N   the N-th result file itself
    GET  /api/outputs/<path>      any file in the app's outputs folder
    POST /api/jobs/<id>/cancel    {"reason"}: a queued job never starts, a running one stops at
                                  its next progress report; it ends "cancelled" with that reason
    POST /api/unload, /api/load   free the model (process and port stay) / load it again
                                  (409 while a job runs: the manager waits, see manager/switching.py)
    /                             the Gradio page, if the app has one (Gradio is imported on the first visit)

Every error is JSON {"error": "<a sentence>"} with a 4xx/5xx status; the server keeps running.
Plain Starlette, not FastAPI: the API needs only routing, and FastAPI (with its OpenTelemetry
and OpenAPI machinery) costs ~6 MB more in every app process; Gradio brings it in when the page
is opened.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route

from . import heap, outputs, protocol
from .errors import AppError, validation_sentence
from .jobs import CANCELLED, DONE, FAILED
from .lazypage import LazyPage
from .runtime import AppDef, Runtime
from .settings import AppSettings, SettingsError

ANY_METHOD = ["GET", "POST", "PUT", "DELETE", "PATCH"]


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


class QueryError(AppError):
    """A query parameter that is not of its type: 422, like a bad body."""

    status = 422


def _query(request: Request, name: str, kind: Callable[[str], Any], default: Any, what: str) -> Any:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if kind is bool:
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise QueryError(f"Invalid request: query.{name}: must be {what}, not '{raw}'.")
    try:
        return kind(raw)
    except ValueError:
        raise QueryError(f"Invalid request: query.{name}: must be {what}, not '{raw}'.") from None


def _job_view(job_dict: dict[str, Any]) -> dict[str, Any]:
    files = job_dict.get("result", {}).get("files", [])
    job_dict["result"] = {
        **job_dict.get("result", {}),
        "urls": [f"/api/outputs/{f}" for f in files],
    }
    job_dict["url"] = f"/api/jobs/{job_dict['id']}"
    return job_dict


def _openapi(runtime: Runtime) -> dict[str, Any]:
    """A small OpenAPI description: the fixed endpoints and each task with its request schema."""
    paths: dict[str, Any] = {
        "/api/health": {"get": {"summary": "200 ready / 503 loading"}},
        "/api/info": {"get": {"summary": "app, version, device, models, loaded model"}},
        "/api/jobs": {"get": {"summary": "all jobs"}},
        "/api/jobs/{job_id}": {"get": {"summary": "one job: status, progress, result"}},
        "/api/jobs/{job_id}/result": {"get": {"summary": "a result file (?index=N)"}},
        "/api/outputs/{name}": {"get": {"summary": "a file in the outputs folder"}},
        "/api/jobs/{job_id}/cancel": {"post": {"summary": "cancel a job ({reason})"}},
        "/api/unload": {"post": {"summary": "free the model (?timeout=s)"}},
        "/api/load": {"post": {"summary": "load a model (?model=id)"}},
    }
    for task in runtime.tasks.values():
        paths[f"/api/{task.name}"] = {
            "post": {
                "summary": task.description or task.name,
                "parameters": [{"name": "wait", "in": "query", "schema": {"type": "boolean"}}],
                "requestBody": {
                    "content": {"application/json": {"schema": task.request.model_json_schema()}}
                },
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": runtime.app.name, "version": runtime.app.version},
        "paths": paths,
    }


class BodyLimit:
    """Refuse a request whose Content-Length is over the app's limit, before reading it."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            size = dict(scope.get("headers") or ()).get(b"content-length", b"")
            if size.isdigit() and int(size) > self.limit:
                message = (
                    f"The request is too large ({int(size)} bytes; the limit is {self.limit})."
                )
                await _error(413, message)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_api(runtime: Runtime, page: LazyPage | None = None) -> Starlette:
    """The /api routes, and the app's page at / (built on its first visit) if it has one."""

    async def on_http(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, str(exc.detail))

    async def on_app_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AppError)
        return _error(exc.status, exc.message)

    async def on_crash(_request: Request, exc: Exception) -> JSONResponse:
        return _error(500, f"Internal error: {type(exc).__name__}: {exc}")

    def health(_request: Request) -> JSONResponse:
        code, body = runtime.health()
        return JSONResponse(body, status_code=code)

    def info(_request: Request) -> JSONResponse:
        data = runtime.info()
        if page is not None:
            data["page"] = {"url": "/", "built": page.built}
        return JSONResponse(data)

    def openapi(_request: Request) -> JSONResponse:
        return JSONResponse(_openapi(runtime))

    def unload(request: Request) -> JSONResponse:
        timeout = _query(request, "timeout", float, 60.0, "a number of seconds")
        if not runtime.unload(timeout=min(max(timeout, 0.0), 600.0)):
            return _error(
                protocol.UNLOAD_BUSY,
                "A job is still running; the model was not unloaded. Try again when it finishes.",
            )
        return JSONResponse({"loaded": False}, status_code=protocol.UNLOAD_DONE)

    def load(request: Request) -> JSONResponse:
        model = request.query_params.get("model")
        if model is not None:
            try:
                runtime.settings.models.get(model)
            except KeyError as exc:
                return _error(404, str(exc.args[0]))
        runtime.ensure_loaded(model)
        return JSONResponse({"loaded": True, "model": runtime.loaded_model})

    def jobs(_request: Request) -> JSONResponse:
        return JSONResponse({"jobs": [_job_view(j.to_dict()) for j in runtime.jobs.list()]})

    def job(request: Request) -> JSONResponse:
        job_id = request.path_params["job_id"]
        found = runtime.jobs.get(job_id)
        if found is None:
            return _error(404, f"There is no job '{job_id}'.")
        return JSONResponse(_job_view(found.to_dict()))

    def job_result(request: Request) -> Response:
        job_id = request.path_params["job_id"]
        index = _query(request, "index", int, 0, "a whole number")
        found = runtime.jobs.get(job_id)
        if found is None:
            return _error(404, f"There is no job '{job_id}'.")
        if found.status in (FAILED, CANCELLED):
            return _error(found.error_status or 500, found.error)
        if found.status != DONE:
            return _error(409, f"Job {job_id} is {found.status}; its result is not ready yet.")
        files = found.result.get("files", [])
        if not 0 <= index < len(files):
            return _error(
                404, f"Job {job_id} has {len(files)} result file(s); there is no index {index}."
            )
        path = outputs.resolve(runtime.settings.outputs, files[index])
        if path is None:
            return _error(
                410, f"The result file {files[index]} is no longer in the outputs folder."
            )
        return FileResponse(path)

    async def cancel_job(request: Request) -> JSONResponse:
        job_id = request.path_params["job_id"]
        try:
            body = await request.json()
        except ValueError:
            body = {}
        reason = str(body.get("reason") or "") if isinstance(body, dict) else ""
        found = runtime.jobs.cancel(job_id, reason[:500])
        if found is None:
            return _error(404, f"There is no job '{job_id}'.")
        return JSONResponse(_job_view(found.to_dict()))

    def output_file(request: Request) -> Response:
        name = request.path_params["name"]
        path = outputs.resolve(runtime.settings.outputs, name)
        if path is None:
            return _error(404, f"There is no output '{name}'.")
        return FileResponse(path)

    async def run_task(request: Request) -> JSONResponse:
        task_name = request.path_params["task_name"]
        task = runtime.tasks.get(task_name)
        if task is None:
            return _error(
                404, f"There is no task '{task_name}'. Tasks: {', '.join(sorted(runtime.tasks))}."
            )
        wait = _query(request, "wait", bool, False, "true or false")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "The request body must be JSON.")
        try:
            parsed = task.request.model_validate(body)
        except ValidationError as exc:
            return _error(422, validation_sentence(list(exc.errors())))
        job = runtime.submit(task, parsed)
        if wait:
            import anyio

            await anyio.to_thread.run_sync(job.done_event.wait)
            if job.status in (FAILED, CANCELLED):
                return _error(job.error_status or 500, job.error, job=_job_view(job.to_dict()))
            return JSONResponse(_job_view(job.to_dict()), status_code=200)
        return JSONResponse(_job_view(job.to_dict()), status_code=202)

    def unknown(request: Request) -> JSONResponse:
        return _error(404, f"There is no API endpoint /api/{request.path_params['rest']}.")

    routes = [
        Route(protocol.HEALTH_PATH, health, methods=["GET"]),
        Route("/api/info", info, methods=["GET"]),
        Route("/api/openapi.json", openapi, methods=["GET"]),
        Route(protocol.UNLOAD_PATH, unload, methods=["POST"]),
        Route(protocol.LOAD_PATH, load, methods=["POST"]),
        Route("/api/jobs", jobs, methods=["GET"]),
        Route("/api/jobs/{job_id}", job, methods=["GET"]),
        Route("/api/jobs/{job_id}/result", job_result, methods=["GET"]),
        Route("/api/jobs/{job_id}/cancel", cancel_job, methods=["POST"]),
        Route("/api/outputs/{name:path}", output_file, methods=["GET"]),
        Route("/api/{task_name}", run_task, methods=["POST"]),
        Route("/api/{rest:path}", unknown, methods=ANY_METHOD),
    ]
    lifespan = None
    if page is not None:
        routes.append(Mount("/", page))

        @contextlib.asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            try:
                yield
            finally:
                await (
                    page.close()
                )  # Gradio's background tasks and temporary files, if it was opened

    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(BodyLimit, limit=runtime.app.max_body_bytes)],
        exception_handlers={HTTPException: on_http, AppError: on_app_error, Exception: on_crash},
    )


def build_app(runtime: Runtime) -> Starlette:
    """The API plus the app's Gradio page at /, built on its first visit (see lazypage)."""
    ui = runtime.app.ui
    return create_api(runtime, LazyPage(lambda: ui(runtime)) if ui is not None else None)


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
    heap.limit_arenas()  # before the loader, job and HTTP threads start
    runtime = Runtime(app, settings)
    server = uvicorn.Server(
        uvicorn.Config(
            build_app(runtime),
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
        )
    )
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
        print(
            f"error: {app.name} could not listen on {settings.host}:{settings.port}; "
            "the port may be taken by another program.",
            file=sys.stderr,
            flush=True,
        )
        return 1
    return 1 if failure else 0
