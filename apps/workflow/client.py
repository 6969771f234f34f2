"""Calling another app's task API (appkit protocol) and finding where the apps listen.

Where: the supervisor's run files, DARKROOM_HOME/run/<app>.json, read-only through
appkit.protocol.RunStatus (the manager writes them); or URLs given explicitly (--url app=URL, for tests, benchmarks and clusters).
An app may have several URLs (replicas): worker i of a scaled-out batch uses replica i.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from appkit import protocol

from .errors import StepCancelled, StepFailed, WorkflowError

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # local apps: never a proxy
Urls = dict[str, list[str]]


def _request(method: str, url: str, body: Any = None, timeout: float = 60.0) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json"} if data is not None else {},
    )
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _json(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def health(url: str, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
    code, raw = _request("GET", url.rstrip("/") + protocol.HEALTH_PATH, timeout=timeout)
    return code, _json(raw)


def run_task(
    url: str,
    task: str,
    params: dict[str, Any],
    image: bytes | None,
    image_field: str | None,
    timeout_s: float,
    step: str,
    poll_s: float = 0.05,
) -> bytes:
    """Submit one job, follow it to the end, return its first result file's bytes.

    Raises StepFailed with the app's own sentence when the job or the request fails."""
    base = url.rstrip("/")
    body = dict(params)
    if image_field is not None and image is not None:
        body[image_field] = base64.b64encode(image).decode("ascii")
    try:  # ?wait=true: the app answers when the job is done (no polling delay); polled otherwise
        code, raw = _request(
            "POST", f"{base}/api/{urllib.parse.quote(task)}?wait=true", body, timeout=timeout_s
        )
    except TimeoutError:
        raise StepFailed(step, f"the job did not finish within {timeout_s:g} s.") from None
    except OSError as exc:
        raise StepFailed(step, f"the app at {base} did not answer ({exc}).") from None
    job = _json(raw)
    if code >= 400 and isinstance(job.get("job"), dict):
        job = job["job"]  # a failed job: its own error sentence
    if "id" not in job:
        raise StepFailed(step, job.get("error") or f"the app answered HTTP {code}.")
    if job.get("status") == "cancelled":
        raise StepCancelled(step, job.get("error") or "the job was cancelled.")
    deadline = time.monotonic() + timeout_s
    wait = poll_s
    while job.get("status") not in ("done", "failed", "cancelled"):
        if time.monotonic() > deadline:
            raise StepFailed(step, f"the job did not finish within {timeout_s:g} s.")
        time.sleep(wait)
        wait = min(0.5, wait * 1.5)
        try:
            code, raw = _request("GET", f"{base}/api/jobs/{job['id']}", timeout=30)
        except OSError as exc:
            raise StepFailed(step, f"the app at {base} stopped answering ({exc}).") from None
        if code >= 400:
            raise StepFailed(step, _json(raw).get("error") or f"the app answered HTTP {code}.")
        job = _json(raw)
    if job["status"] == "cancelled":
        raise StepCancelled(step, job.get("error") or "the job was cancelled.")
    if job["status"] == "failed":
        raise StepFailed(step, job.get("error") or "the job failed.")
    files = job.get("result", {}).get("files", [])
    if not files:
        raise StepFailed(step, "the app returned no image.")
    code, data = _request("GET", f"{base}/api/jobs/{job['id']}/result?index=0", timeout=120)
    if code != 200:
        raise StepFailed(
            step, _json(data).get("error") or f"fetching the result failed (HTTP {code})."
        )
    return data


def from_run_files(home: Path, apps: list[str]) -> Urls:
    """The URL of each app from the supervisor's run files; a sentence for one not running."""
    urls: Urls = {}
    for app in apps:
        run = protocol.RunStatus.read(home, app)
        if run is None or not run.ready:
            state = run.status if run is not None else "not running"
            raise WorkflowError(
                f"{app} is {state}; this preset needs it.",
                f"Start it with `darkroom start {app}` (or run the preset with `darkroom run`, "
                "which starts what it needs).",
            )
        urls[app] = [run.url]
    return urls


def parse_url_args(values: list[str]) -> Urls:
    """`app=URL` (repeatable; several for one app are replicas)."""
    urls: Urls = {}
    for value in values:
        app, sep, url = value.partition("=")
        if not sep or not app or not url.startswith(("http://", "https://")):
            raise WorkflowError(
                f"'{value}' is not app=URL.", "For example: --url restorer=http://127.0.0.1:7861"
            )
        urls.setdefault(app, []).append(url.rstrip("/"))
    return urls


def check_ready(urls: Urls, apps: list[str]) -> None:
    """Every app the preset needs answers ready before the batch starts."""
    for app in apps:
        if not urls.get(app):
            raise WorkflowError(
                f"This preset needs {app}, and no address for it is known.",
                f"Start it with `darkroom start {app}`.",
            )
        for url in urls[app]:
            try:
                code, body = health(url)
            except OSError:
                raise WorkflowError(
                    f"{app} does not answer at {url}.",
                    f"Check it with `darkroom status {app}`, or restart it.",
                ) from None
            if code != 200 or body.get("status") != protocol.HEALTH_READY:
                raise WorkflowError(
                    f"{app} at {url} is not ready ({body.get('status') or f'HTTP {code}'}).",
                    "Wait until it has loaded, then run again.",
                )
