"""A workflow preset over a whole folder, as one core call both faces can make.

The batch engine lives in the workflow runner's own env (apps/workflow): `run` starts the apps
the preset needs (with their `needs`), runs `<workflow env python> -m workflow.cli run ...
--json`, turns its JSON lines into the manager's typed events and returns the summary. The
engine finds the apps through their run files; running the same request again continues an
interrupted batch. A stop (Ctrl-C, or a cancel on the reporter's token) lets the engine finish
the image in flight and ends in `Cancelled`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config as config_mod
from . import envs, launching, presets, protocol, supervisor, validate
from .errors import Cancelled, DarkroomError, NotFound
from .events import Message, Progress, Reporter, Stage, ignore, on_cancel
from .fsutil import exists
from .home import Home
from .supervisor.control import start_with_needs, wait_ready

SOURCE = "workflow"
NEEDS_TIMEOUT_S = 120


@dataclass(frozen=True)
class BatchRequest:
    """What to run: a preset (a name or a .yaml file) over a folder, and the run's options."""

    preset: str
    input: str
    out: str | None = None
    ray: str | None = None  # "auto" or a cluster address
    workers: int = 0
    sets: tuple[str, ...] = ()  # STEP.PARAM=VALUE
    retry_failed: bool = False
    keep_running: bool = False  # refuse a switch instead of pausing for it


@dataclass(frozen=True)
class BatchSummary:
    """The engine's closing account of a run; `data` is its JSON as sent (for --json)."""

    preset: str
    done: int
    failed: int
    total: int
    processed: int
    seconds: float
    rate: float
    out: str
    report: str
    failures: list[tuple[str, str]] = field(default_factory=list)
    interrupted: bool = False  # the engine stopped before the end (exit status 130)
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_engine(cls, data: dict[str, Any], exit_status: int) -> BatchSummary:
        return cls(
            preset=str(data["preset"]),
            done=int(data["done"]),
            failed=int(data["failed"]),
            total=int(data["total"]),
            processed=int(data["processed"]),
            seconds=float(data["seconds"]),
            rate=float(data["rate"]),
            out=str(data["out"]),
            report=str(data["report"]),
            failures=[(str(i), str(r)) for i, r in data.get("failures", [])],
            interrupted=exit_status == 130,
            data=data,
        )


def stopped() -> Cancelled:
    return Cancelled("Stopped.", "Run the same command again to continue where it stopped.")


def engine(home: Home) -> Path:
    """The workflow runner's Python; NotFound when it is not installed."""
    python = envs.env_python(home, "workflow")
    if not python.exists():
        raise NotFound(
            "The workflow runner is not installed.", "Run `darkroom install workflow` first."
        )
    return python


def _child_env(home: Home) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    }
    env[protocol.HOME] = str(home.root)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _preset_arg(home: Home, preset: str) -> str:
    """A preset file as an absolute path (the engine runs in another folder); a bundled name as
    it is; the name of one of the user's own presets as its file."""
    preset = presets.source_of(home, preset)
    if Path(preset).suffix in (".yaml", ".yml") or exists(preset, "file"):
        return str(Path(preset).expanduser().resolve())
    return preset


def needs(
    home: Home, python: Path, preset: str, source: str | None = None, ray: str | None = None
) -> list[str]:
    """The apps the preset calls. With the input folder (and a Ray address), the engine first
    checks that there is work and that the cluster answers, so these fail in seconds, before
    any app starts."""
    argv = [str(python), "-m", "workflow.cli", "needs", _preset_arg(home, preset)]
    if source is not None:  # positionals first: argparse drops one that follows an option
        argv.append(str(Path(source).expanduser().resolve()))
    argv.append("--json")
    if ray:
        argv += ["--ray", ray]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, env=_child_env(home), timeout=NEEDS_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        raise DarkroomError(
            "The workflow runner did not answer within 2 minutes.",
            "Run `darkroom env repair workflow`, then try again.",
        ) from None
    try:
        answer = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        answer = {}
    if answer.get("type") == "error":
        raise DarkroomError(answer["message"], answer.get("hint", ""))
    if done.returncode != 0 or "apps" not in answer:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise DarkroomError(
            f"The workflow runner failed to read the preset {preset} ({last[:300]}).",
            "Run `darkroom env repair workflow`, then try again.",
        )
    return list(answer["apps"])


def ensure_running(home: Home, apps: list[str], report: Reporter = ignore) -> None:
    """Start each app the preset calls (and what it needs) unless it runs; wait until ready."""
    settings = config_mod.load(home)
    for app in apps:
        info = supervisor.app_status(home, app)
        if info is not None and info.status == "ready":
            continue
        if info is not None and info.active:
            wait_ready(home, app, info.token, 600, report)
            continue
        start_with_needs(
            home, settings, app, lambda a: launching.launch_spec(home, settings, a), report
        )


def _argv(python: Path, request: BatchRequest, home: Home) -> list[str]:
    argv = [
        str(python),
        "-m",
        "workflow.cli",
        "run",
        _preset_arg(home, request.preset),
        str(Path(request.input).resolve()),
        "--json",
        "--home",
        str(home.root),
    ]
    if request.out:
        argv += ["--out", str(Path(request.out).expanduser().resolve())]
    if request.ray:
        argv += ["--ray", request.ray]
    if request.workers:
        argv += ["--workers", str(request.workers)]
    for value in request.sets:
        argv += ["--set", value]
    if request.retry_failed:
        argv.append("--retry-failed")
    if request.keep_running:
        argv.append("--keep-running")
    return argv


def relay(event: dict[str, Any], report: Reporter) -> None:
    """One engine event as the manager's event."""
    kind = event.get("type")
    if kind == "progress":
        report(
            Progress(
                SOURCE,
                "images",
                done=int(event["done"]),
                total=int(event["total"]),
                unit="images",
                item=str(event.get("item") or ""),  # the image that just finished
                rate=float(event.get("rate") or 0.0),
            )
        )
    elif kind == "stage":
        report(Stage(SOURCE, event.get("stage", ""), event.get("message", "")))
    elif kind == "message":
        report(Message(SOURCE, event.get("text", ""), level=event.get("level", "info")))


def _interrupt(proc: subprocess.Popen, asked: list[bool]) -> None:
    """Ask the engine to stop as Ctrl-C would (once: a second Ctrl-C would abort the image in
    flight, which it finishes first)."""
    if not asked and proc.poll() is None:
        asked.append(True)
        if os.name == "nt":  # no SIGINT to one process there: the batch resumes where it ended
            proc.terminate()
        else:
            proc.send_signal(signal.SIGINT)


def run(home: Home, request: BatchRequest, report: Reporter = ignore) -> BatchSummary:
    """Run a preset over a folder; events go to `report`, the summary comes back.

    Raises NotFound (no input, no runner), DarkroomError for what the engine reports, and
    Cancelled when stopped (Ctrl-C, or a cancel on the reporter's token)."""
    if not exists(request.input):
        raise NotFound(
            f"The input {validate.shown(request.input)} does not exist.",
            "Give the folder that holds the images.",
        )
    python = engine(home)
    ensure_running(home, needs(home, python, request.preset, request.input, request.ray), report)
    # The engine's stderr (Ray's own warnings, a crash's details) goes to a log, not the screen.
    log = home.run_log(SOURCE)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as err:
        proc = subprocess.Popen(
            _argv(python, request, home),
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=_child_env(home),
        )
    summary: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    asked: list[bool] = []
    try:
        with on_cancel(report, lambda: _interrupt(proc, asked)):
            assert proc.stdout is not None
            for line in proc.stdout:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("type") == "summary":
                    summary = event
                elif event.get("type") == "error":
                    error = event
                else:
                    relay(event, report)
            code = proc.wait()
    except KeyboardInterrupt:  # the engine got the signal too: it finishes the image in flight
        proc.wait()
        raise stopped() from None
    except Cancelled:
        _interrupt(proc, asked)
        proc.wait()
        raise stopped() from None
    if asked:  # the engine stopped as asked and said so in its summary
        raise stopped()
    if error is not None:
        hint = error.get("hint", "")
        if "unexpectedly" in error["message"]:
            hint += f" Its log: {log}"
        raise DarkroomError(error["message"], hint)
    if summary is None:
        raise DarkroomError(
            f"The workflow runner stopped unexpectedly (exit status {code}).",
            f"Run the same command again to continue; finished images are kept. Its log: {log}",
        )
    return BatchSummary.from_engine(summary, code)
