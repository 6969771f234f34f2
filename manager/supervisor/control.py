"""Start, stop, restart, inspect and read the logs of supervised apps, from any process.

These functions talk to runners only through run/ files (and a signal to ask for a
stop), so the CLI, the TUI and a later `darkroom` process all see the same thing.
A per-app lock around start and stop keeps two Darkroom processes from fighting.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
import webbrowser
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from .. import protocol
from ..errors import Conflict, DarkroomError, NotFound
from ..events import Message, Progress, Reporter, Stage, checkpoint, ignore
from ..fsutil import locked
from ..home import Home
from . import logfile, proctree, runfile
from .ports import pick_port
from .spec import FAILED, READY, STOPPED, STOPPING, LaunchSpec, RunInfo, substitute

if TYPE_CHECKING:
    from ..config import Settings

SOURCE = "supervisor"
_PKG_ROOT = str(Path(__file__).resolve().parents[2])  # folder holding the `manager` package


# ---------------------------------------------------------------- building the launch


def resolve(home: Home, settings: Settings, launch: LaunchSpec, host: str, port: int) -> LaunchSpec:
    """The LaunchSpec with placeholders filled and the protocol's env vars added."""
    values = {
        "models_dir": str(home.models),
        "outputs_dir": str(home.output_dir(launch.app)),
        "app_dir": str(home.app_dir(launch.app)),
        **launch.placeholders,
        "host": host,
        "port": str(port),
    }
    env = {k: substitute(v, values) for k, v in launch.env.items()}
    env.update(
        {
            protocol.HOST: host,
            protocol.PORT: str(port),
            protocol.APP: launch.app,
            protocol.OUTPUTS: str(home.output_dir(launch.app)),
            protocol.HOME: str(home.root),
            protocol.HF_CACHE: str(home.models),
            protocol.HF_OFFLINE: "1",
            protocol.IDLE_UNLOAD: str(settings.idle_unload_minutes),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return replace(
        launch,
        argv=[substitute(a, values) for a in launch.argv],
        env=env,
        placeholders=values,
        port=port,
    )


def _check_program(launch: LaunchSpec, argv0: str) -> None:
    """The program must exist before a runner is spawned: an early, clear sentence."""
    app = launch.app
    env_python = launch.placeholders.get("env_python")
    uses_env = any("{env_python}" in a for a in launch.argv)
    if uses_env and env_python and not Path(env_python).is_file():
        raise NotFound(
            f"{app} is not installed: its Python environment is missing ({env_python}).",
            f"Run `darkroom install {app}`.",
        )
    is_path = os.sep in argv0 or "/" in argv0
    found = Path(argv0).is_file() if is_path else shutil.which(argv0) is not None
    if not found:
        raise NotFound(
            f"The program that starts {app} was not found: {argv0}.",
            f"Run `darkroom env repair {app}` to rebuild its environment.",
        )


# ---------------------------------------------------------------- the runner process


def _spawn_runner(home: Home, app: str, token: str) -> int:
    """Start the detached runner; returns its pid once it holds its lock."""
    cmd = [
        sys.executable,
        "-m",
        "manager.supervisor.runner",
        "--home",
        str(home.root),
        "--app",
        app,
        "--token",
        token,
        "--launch",
        str(runfile.launch_file(home, app)),
        "--lock",
        str(runfile.runner_lock(home, app)),
    ]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PKG_ROOT, env.get("PYTHONPATH")) if p)
    if os.name == "posix":
        done = subprocess.run(
            [*cmd, "--detach"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            start_new_session=True,
            cwd=home.root,
            env=env,
            timeout=60,
        )
        err = done.stderr.decode("utf-8", "replace").strip()
        if done.returncode == 3:
            raise Conflict(
                f"{app} is already supervised by another Darkroom runner.",
                f"Stop it first with `darkroom stop {app}`.",
            )
        if done.returncode != 0 or not done.stdout.strip().isdigit():
            raise DarkroomError(
                f"Darkroom could not start the runner for {app}: {err or 'no reason given'}.",
                "Check that the data folder is writable, then try again.",
            )
        return int(done.stdout.strip())
    log_path = runfile.runner_log(home, app)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    flags = (
        subprocess.CREATE_NEW_PROCESS_GROUP
        | subprocess.DETACHED_PROCESS  # type: ignore[attr-defined]
        | subprocess.CREATE_NO_WINDOW
    )  # type: ignore[attr-defined]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            creationflags=flags,
            cwd=home.root,
            env=env,
            close_fds=True,
        )
    return proc.pid


def _await_registration(
    home: Home, app: str, token: str, pid: int, timeout: float = 30.0
) -> RunInfo:
    deadline = time.monotonic() + timeout
    while True:
        info = runfile.read_raw(home, app)
        if info is not None and info.token == token:
            return info
        if not proctree.alive(pid, None) or time.monotonic() > deadline:
            lines = logfile.tail(runfile.runner_log(home, app), 5)
            if any("another runner" in line for line in lines[-1:]):
                raise Conflict(
                    f"{app} is already supervised by another Darkroom runner.",
                    f"Stop it first with `darkroom stop {app}`.",
                )
            detail = ("\n  " + "\n  ".join(lines)) if lines else ""
            raise DarkroomError(
                f"The Darkroom runner for {app} stopped before it started the app.{detail}",
                f"See {runfile.runner_log(home, app)}, then try again.",
            )
        time.sleep(0.01)


def _wait_gone(pid: int | None, created: float | None, timeout: float) -> bool:
    """Wait for a process that is not our child (so psutil cannot wait on it) to go."""
    deadline = time.monotonic() + timeout
    while proctree.alive(pid, created):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _clean_leftovers(home: Home, info: RunInfo) -> None:
    """A stale or finished run: let a finishing runner exit, and end an app it left behind."""
    _wait_gone(info.runner_pid, info.runner_created, 5.0)
    if proctree.alive(info.app_pid, info.app_created) and info.app_pid:
        pgid = info.app_pid if os.name == "posix" else None
        proctree.terminate_tree(info.app_pid, info.app_created, info.stop_timeout_s, pgid=pgid)


def _active_elsewhere(home: Home, app: str) -> list[RunInfo]:
    out = []
    for name in runfile.apps_with_run_files(home):
        info = runfile.inspect(home, name) if name != app else None
        if info is not None and info.active:
            out.append(info)
    return out


# ---------------------------------------------------------------- public API


def start(
    home: Home, settings: Settings, launch: LaunchSpec, report: Reporter = ignore, wait: bool = True
) -> RunInfo:
    """Start `launch.app` under a runner and (by default) wait until it answers ready."""
    home.ensure()
    app = launch.app
    with locked(runfile.control_lock(home, app), timeout=60, what=app):
        current = runfile.inspect(home, app)
        if current is not None and current.active:
            raise Conflict(
                f"{app} is already running at {current.url} ({current.status}).",
                f"Open it with `darkroom open {app}`, or use `darkroom restart {app}`.",
            )
        if current is not None:
            _clean_leftovers(home, current)
        host = settings.bind_host
        _check_program(launch, substitute(launch.argv[0], {**launch.placeholders, "host": host}))
        with locked(runfile.ports_lock(home), timeout=60, what="choosing a port"):
            taken = {info.port for info in _active_elsewhere(home, app)}
            port = pick_port(host, launch.port, settings.port_start, settings.port_end, taken)
            spec = resolve(home, settings, launch, host, port)
            token = uuid.uuid4().hex
            runfile.remove(runfile.stop_file(home, app))
            runfile.write_launch(home, spec)
            pid = _spawn_runner(home, app, token)
            info = _await_registration(home, app, token, pid)
    if port != launch.port:
        report(
            Message(
                SOURCE, f"Port {launch.port} is in use, so {app} gets port {port}.", level="warning"
            )
        )
    report(Stage(SOURCE, "starting", f"{app} at {info.url}"))
    if not wait:
        return info
    return wait_ready(home, app, token, launch.startup_timeout_s + 10, report)


def wait_ready(
    home: Home, app: str, token: str, timeout: float, report: Reporter = ignore
) -> RunInfo:
    """Follow the run file until the app is ready; failures become DarkroomErrors."""
    deadline = time.monotonic() + timeout
    progress: float | None = None
    restarts = 0
    while True:
        checkpoint(report)  # a cancelled install stops waiting (its caller stops the app)
        info = runfile.inspect(home, app)
        if info is None or info.token != token or info.status in (STOPPING, STOPPED):
            raise DarkroomError(
                f"{app} was stopped before it became ready.",
                f"Start it again with `darkroom start {app}`.",
            )
        if info.status == READY:
            report(Stage(SOURCE, "ready", f"{app} is ready at {info.url}"))
            return info
        if info.status == FAILED:
            raise DarkroomError(failure_text(info), info.hint)
        if info.stale:
            raise DarkroomError(
                f"The Darkroom runner that watched {app} stopped unexpectedly.",
                f"See {runfile.runner_log(home, app)}, then start {app} again.",
            )
        if info.restarts > restarts:
            restarts = info.restarts
            report(
                Message(
                    SOURCE,
                    f"{info.last_error} Restarting it (attempt {restarts}).",
                    level="warning",
                )
            )
        if info.progress is not None and info.progress != progress:
            progress = info.progress
            report(
                Progress(SOURCE, "loading", done=int(progress * 100), total=100, unit="%", item=app)
            )
        if time.monotonic() > deadline:
            stop(home, app)
            raise DarkroomError(
                f"{app} did not become ready within {timeout:g} seconds, so it was stopped.",
                f"`darkroom logs {app}` shows what it was doing.",
            )
        time.sleep(0.02)


def failure_text(info: RunInfo) -> str:
    text = info.last_error or f"{info.app} failed."
    if info.log_tail:
        text += "\nIts last log lines:\n  " + "\n  ".join(info.log_tail)
    return text


def stop(home: Home, app: str, report: Reporter = ignore) -> bool:
    """Stop the app and its whole process tree. False if it was not running."""
    with locked(runfile.control_lock(home, app), timeout=60, what=app):
        info = runfile.inspect(home, app)
        if info is None and runfile.launch_file(home, app).exists():
            # A start that died half-way (kill -9) may have spawned a runner that has not
            # registered yet: give it a moment, so it is stopped rather than left behind.
            deadline = time.monotonic() + 5.0
            while info is None and time.monotonic() < deadline:
                time.sleep(0.05)
                info = runfile.inspect(home, app)
        if info is None:
            runfile.remove(runfile.stop_file(home, app), runfile.launch_file(home, app))
            return False
        was_running = info.active
        runner = proctree.process(info.runner_pid, info.runner_created)
        if runner is not None:
            report(Stage(SOURCE, "stopping", app))
            runfile.stop_file(home, app).touch()
            if os.name == "posix":
                with contextlib.suppress(Exception):
                    runner.send_signal(signal.SIGTERM)
            if not _wait_gone(info.runner_pid, info.runner_created, info.stop_timeout_s + 10):
                with contextlib.suppress(Exception):
                    runner.kill()
                _wait_gone(info.runner_pid, info.runner_created, 5)
        # What a dead (or killed) runner could not end, we end here.
        last = runfile.read_raw(home, app) or info
        for pid, created in {(info.app_pid, info.app_created), (last.app_pid, last.app_created)}:
            if pid and proctree.alive(pid, created):
                proctree.terminate_tree(
                    pid, created, info.stop_timeout_s, pgid=pid if os.name == "posix" else None
                )
        runfile.remove(
            runfile.run_file(home, app),
            runfile.launch_file(home, app),
            runfile.stop_file(home, app),
        )
        report(Stage(SOURCE, "stopped", app))
        return was_running


def restart(
    home: Home, settings: Settings, launch: LaunchSpec, report: Reporter = ignore
) -> RunInfo:
    stop(home, launch.app, report)
    return start(home, settings, launch, report)


def status(home: Home) -> list[RunInfo]:
    """Every app with a run file, liveness checked (stale files show status 'stale')."""
    return [
        info
        for app in runfile.apps_with_run_files(home)
        if (info := runfile.inspect(home, app)) is not None
    ]


def app_status(home: Home, app: str) -> RunInfo | None:
    return runfile.inspect(home, app)


def logs(
    home: Home,
    app: str,
    follow: bool = False,
    lines: int = 100,
    stop_when: Callable[[], bool] | None = None,
) -> Iterator[str]:
    """The app's last log lines; with `follow`, new lines as they come (until stop_when())."""
    path = runfile.app_log(home, app)
    if not path.exists() and not home.log_dir(app).exists():
        raise NotFound(
            f"There are no logs for {app} yet.", f"Start it with `darkroom start {app}`."
        )
    if follow:
        return logfile.follow(path, lines, stop_when)
    return iter(logfile.tail(path, lines))


def open_app(home: Home, app: str, browser: Callable[[str], object] = webbrowser.open) -> str:
    """Open the running app's web page; returns its URL."""
    info = runfile.inspect(home, app)
    if info is None or not info.active:
        raise NotFound(f"{app} is not running.", f"Start it with `darkroom start {app}`.")
    browser(info.url)
    return info.url


def start_with_needs(
    home: Home,
    settings: Settings,
    app: str,
    resolve_spec: Callable[[str], LaunchSpec],
    report: Reporter = ignore,
) -> RunInfo:
    """Start the apps `app` needs (recursively, each once), then `app` itself.

    Needed apps that already run are left alone; a cycle in `needs` is an error.
    """
    order: list[LaunchSpec] = []
    state: dict[str, str] = {}

    def visit(name: str, chain: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            cycle = " -> ".join([*chain[chain.index(name) :], name])
            raise DarkroomError(
                f"The apps' `needs` form a cycle: {cycle}.",
                "Fix the recipes so that no app needs itself through others.",
            )
        state[name] = "visiting"
        spec = resolve_spec(name)
        for need in spec.needs:
            visit(need, [*chain, name])
        state[name] = "done"
        order.append(spec)

    visit(app, [])
    info: RunInfo | None = None
    for spec in order:
        if spec.app != app:
            running = runfile.inspect(home, spec.app)
            if running is not None and running.active:
                continue
            report(Stage(SOURCE, "needs", f"{app} needs {spec.app}; starting it first"))
        info = start(home, settings, spec, report)
    assert info is not None
    return info
