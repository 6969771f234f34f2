"""`darkroom run PRESET INPUT_FOLDER [--out DIR] [--ray auto|ADDRESS]`: a workflow preset over a
whole folder, resumable.

The batch engine lives in the workflow runner's own env (apps/workflow); this command starts
the apps the preset needs (with their `needs`), runs `<workflow env python> -m workflow.cli run
... --json` and turns its JSON lines into the manager's events. The engine finds the apps
through their run files. Running the same command again continues an interrupted batch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from .. import config as config_mod
from .. import envs, launching, protocol, supervisor, validate
from ..errors import DarkroomError, NotFound
from ..events import Message, Progress, Stage
from ..home import Home
from ..supervisor.control import start_with_needs, wait_ready
from ._common import ConsoleReporter, exists, home, print_json

SOURCE = "workflow"


class WorkflowReporter(ConsoleReporter):
    """The console reporter, with images per second on progress lines."""

    @staticmethod
    def _progress_line(event: Progress) -> str:
        line = ConsoleReporter._progress_line(event)
        if event.rate and event.unit != "B":
            line += f", {event.rate:.2f} {event.unit}/s"
        return line


def _engine(h: Home) -> Path:
    python = envs.env_python(h, "workflow")
    if not python.exists():
        raise NotFound(
            "The workflow runner is not installed.", "Run `darkroom install workflow` first."
        )
    return python


def _child_env(h: Home) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    }
    env[protocol.HOME] = str(h.root)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _needs(
    h: Home, python: Path, preset: str, source: str | None = None, ray: str | None = None
) -> list[str]:
    """The apps the preset calls. With the input folder (and --ray), the engine first checks that
    there is work and that the cluster answers, so these fail in seconds, before any app starts."""
    argv = [str(python), "-m", "workflow.cli", "needs", _preset_arg(preset)]
    if source is not None:  # positionals first: argparse drops one that follows an option
        argv.append(str(Path(source).expanduser().resolve()))
    argv.append("--json")
    if ray:
        argv += ["--ray", ray]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=_child_env(h), timeout=120)
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


def ensure_running(h: Home, apps: list[str], report: Any) -> None:
    """Start each app the preset calls (and what it needs) unless it runs; wait until ready."""
    settings = config_mod.load(h)
    for app in apps:
        info = supervisor.app_status(h, app)
        if info is not None and info.status == "ready":
            continue
        if info is not None and info.active:
            wait_ready(h, app, info.token, 600, report)
            continue
        start_with_needs(h, settings, app, lambda a: launching.launch_spec(h, settings, a), report)


def _preset_arg(preset: str) -> str:
    """A preset file as an absolute path (the engine runs in another folder); a name as it is."""
    if Path(preset).suffix in (".yaml", ".yml") or exists(preset, "file"):
        return str(Path(preset).expanduser().resolve())
    return preset


def _argv(python: Path, args: argparse.Namespace, h: Home) -> list[str]:
    preset = _preset_arg(args.preset)
    argv = [
        str(python),
        "-m",
        "workflow.cli",
        "run",
        preset,
        str(Path(args.input).resolve()),
        "--json",
        "--home",
        str(h.root),
    ]
    if args.out:
        argv += ["--out", str(Path(args.out).expanduser().resolve())]
    if args.ray:
        argv += ["--ray", args.ray]
    if args.workers:
        argv += ["--workers", str(args.workers)]
    for value in args.set or []:
        argv += ["--set", value]
    if args.retry_failed:
        argv.append("--retry-failed")
    if args.keep_running:
        argv.append("--keep-running")
    return argv


def relay(event: dict[str, Any], report: Any) -> None:
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
                rate=float(event.get("rate") or 0.0),
            )
        )
    elif kind == "stage":
        report(Stage(SOURCE, event.get("stage", ""), event.get("message", "")))
    elif kind == "message":
        report(Message(SOURCE, event.get("text", ""), level=event.get("level", "info")))


def cmd_run(args: argparse.Namespace) -> int:
    h = home()
    report = WorkflowReporter(as_json=args.json)
    if not exists(args.input):
        raise NotFound(
            f"The input {validate.shown(args.input)} does not exist.",
            "Give the folder that holds the images.",
        )
    python = _engine(h)
    ensure_running(h, _needs(h, python, args.preset, args.input, args.ray), report)
    # The engine's stderr (Ray's own warnings, a crash's details) goes to a log, not the screen.
    log = h.run_log(SOURCE)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as err:
        proc = subprocess.Popen(
            _argv(python, args, h), stdout=subprocess.PIPE, stderr=err, text=True, env=_child_env(h)
        )
    summary: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    try:
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
        print("Stopped. Run the same command again to continue where it stopped.")
        return 130
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
    if args.json:
        print_json(summary)
    else:
        print(
            f"{summary['preset']}: {summary['done']} done, {summary['failed']} failed of {summary['total']} "
            f"({summary['processed']} this run in {summary['seconds']:.1f} s, {summary['rate']:.2f} images/s)."
        )
        for item, reason in summary["failures"][:20]:
            print(f"  failed: {item}: {reason}")
        print(f"Results: {summary['out']}\nReport:  {summary['report']}")
    if code == 130:
        return 130
    return 1 if summary["failed"] else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a workflow preset over a folder (resumable)",
        description="Run a workflow preset (old-photo, upscale-only, colorize-only, prompt-grid, "
        "or a preset .yaml file) over every image in a folder. Starts the apps it "
        "needs. Run the same command again to continue an interrupted batch. "
        "Exit status 1 if some images failed (see the report).",
    )
    p.add_argument("preset", help="a preset name or a path to a preset .yaml")
    p.add_argument(
        "input", metavar="INPUT_FOLDER", help="the folder of images (prompt-grid: with prompts.txt)"
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="where results and report.html go (default: outputs/workflow/<preset>-<folder>)",
    )
    p.add_argument(
        "--ray",
        metavar="auto|ADDRESS",
        help="run the images on a Ray cluster (auto: the running one, else a local one)",
    )
    p.add_argument("--workers", type=int, default=0, help="Ray workers (default: one per CPU)")
    p.add_argument(
        "--set", action="append", metavar="STEP.PARAM=VALUE", help="change a step's parameter"
    )
    p.add_argument(
        "--retry-failed", action="store_true", help="try the images that failed before again"
    )
    p.add_argument(
        "--keep-running",
        action="store_true",
        help="refuse `darkroom start X --switch` instead of pausing the batch for it",
    )
    p.add_argument("--json", action="store_true", help="events and the summary as JSON")
    p.set_defaults(handler=cmd_run)
