"""The per-app runner: a small detached process that starts one app and looks after it.

    python -m manager.supervisor.runner --home DIR --app APP --launch FILE --lock FILE
                                        [--token T] [--detach]

It reads the resolved LaunchSpec from the launch file (run/<app>.launch), holds the lock
file (run/<app>.runner.lock) for its whole life (a second runner for the same app refuses), starts the app in its own
process group, copies its output into rotated logs, polls its health, restarts it after
a crash with backoff, gives up after repeated quick crashes, and stops the whole tree
when asked (SIGTERM, or the run/<app>.stop file). Everything it knows goes into
run/<app>.json, written atomically.

Start-up speed matters (it is the supervisor's overhead on every start), so the app is
launched before the heavier modules (psutil, filelock, platformdirs, urllib) are
imported; they load while the app itself starts.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

from . import hints
from .logfile import RotatingLog
from .spec import FAILED, READY, RESTARTING, STARTING, STOPPED, STOPPING, LaunchSpec, RunInfo

# Inherited variables that would make an app's own env load someone else's packages.
# (The manager's own PYTHONPATH, a parent's venv, a token apps never need.)
STRIP_ENV = (
    "PYTHONPATH",
    "PYTHONHOME",
    "VIRTUAL_ENV",
    "__PYVENV_LAUNCHER__",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
)
TAIL_LINES = 20


def connect_host(host: str) -> str:
    """Where to reach an app bound to `host` from this machine."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def base_url(host: str, port: int) -> str:
    h = connect_host(host)
    return f"http://[{h}]:{port}/" if ":" in h else f"http://{h}:{port}/"


def check_health(url: str, timeout: float = 2.0) -> tuple[str, float | None]:
    """('ready' | 'loading' | 'down', progress). 200 without a JSON status counts as ready."""
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with opener.open(url, timeout=timeout) as resp:
            code, body = resp.status, resp.read(65536)
    except urllib.error.HTTPError as exc:
        code, body = exc.code, exc.read(65536) if exc.fp else b""
    except (urllib.error.URLError, OSError, ValueError):
        return "down", None
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        data = None
    status = data.get("status") if isinstance(data, dict) else None
    progress = data.get("progress") if isinstance(data, dict) else None
    progress = float(progress) if isinstance(progress, (int, float)) else None
    if code == 200 and status in (None, "ready"):
        return "ready", None
    return ("loading", progress) if status == "loading" or code in (200, 503) else ("down", None)


class Runner:
    def __init__(
        self, home_root: Path, spec: LaunchSpec, token: str, paths: dict[str, str]
    ) -> None:
        self.home_root = home_root
        self.spec = spec
        self.token = token
        self.host = spec.placeholders.get("host", "127.0.0.1")
        self.health_url = base_url(self.host, spec.port).rstrip("/") + spec.health_path
        self.began = time.time()
        self.log = RotatingLog(Path(paths["log"]), spec.log_max_bytes, spec.log_backups)
        self.stop_path = Path(paths["stop"])
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self.run_lines: collections.deque[str] = collections.deque(
            maxlen=TAIL_LINES
        )  # this launch's output
        self.was_ready = False  # whether this launch ever answered ready
        self.stop_event = threading.Event()
        self.proc: subprocess.Popen[bytes] | None = None
        self.pump: threading.Thread | None = None
        self.info: RunInfo | None = None

    def attach(self) -> None:
        """The heavier half of start-up, done while the app starts: write the run file."""
        from ..home import Home
        from . import proctree

        self.home = Home(self.home_root)
        spec = self.spec
        self.info = RunInfo(
            app=spec.app,
            status=STARTING,
            port=spec.port,
            host=self.host,
            url=base_url(self.host, spec.port),
            runner_pid=os.getpid(),
            runner_created=proctree.create_time(os.getpid()),
            started=self.began,
            log_file=str(self.log.path),
            vram_gb=spec.vram_gb,
            stop_timeout_s=spec.stop_timeout_s,
            token=self.token,
        )
        self.record_app()

    def record_app(self) -> None:
        from . import proctree

        pid = self.proc.pid if self.proc is not None else None
        assert self.info is not None
        self.save(
            app_pid=pid,
            app_created=proctree.create_time(pid) if pid else None,
            status=RESTARTING if self.info.restarts else STARTING,
        )

    # ---------------------------------------------------------------- helpers

    def say(self, text: str) -> None:
        line = f"[darkroom {time.strftime('%H:%M:%S')}] {text}"
        self.log.write(line)
        self.tail.append(line)

    def save(self, **changes: object) -> None:
        from . import runfile

        assert self.info is not None
        for key, value in changes.items():
            setattr(self.info, key, value)
        runfile.write(self.home, self.info)

    def give_up(self, msg: str, hint: str, said: str | None = None) -> int:
        """The app will not be started again: log why, record it with the last lines, exit 1."""
        self.say(said or msg)
        self.save(status=FAILED, app_pid=None, last_error=msg, log_tail=list(self.tail), hint=hint)
        return 1

    def stop_requested(self) -> bool:
        return self.stop_event.is_set() or self.stop_path.exists()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True as soon as a stop is requested."""
        end = time.monotonic() + seconds
        while not self.stop_requested():
            left = end - time.monotonic()
            if left <= 0:
                return False
            self.stop_event.wait(min(left, 0.05))
        return True

    # ---------------------------------------------------------------- the app

    def start_app(self) -> str | None:
        """Launch the app; a reason when it could not even be started."""
        try:
            self.launch()
        except OSError as exc:
            self.proc = None
            return exc.strerror or str(exc)
        self.say(f"started {self.spec.app} (pid {self.proc.pid}) on port {self.spec.port}")
        return None

    def launch(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in STRIP_ENV}
        env.update(self.spec.env)
        kwargs: dict = {}
        if os.name == "posix":
            kwargs["start_new_session"] = True
        else:
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
        self.was_ready = False
        self.run_lines = collections.deque(maxlen=TAIL_LINES)
        self.proc = subprocess.Popen(
            self.spec.argv,
            env=env,
            cwd=self.spec.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            **kwargs,
        )
        self.pump = threading.Thread(
            target=self._pump, args=(self.proc, self.run_lines), daemon=True
        )
        self.pump.start()

    def _pump(self, proc: subprocess.Popen[bytes], run_lines: collections.deque[str]) -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.log.write(line)
            self.tail.append(line)
            run_lines.append(line)
        proc.stdout.close()

    def startup_error(self) -> tuple[str, str]:
        """What a launch that died before it was ever ready left: how it exited and the last
        line it printed (a traceback's last line names the exception)."""
        assert self.proc is not None
        said = next((line.strip() for line in reversed(self.run_lines) if line.strip()), "")
        return hints.describe_exit(self.proc.returncode), said

    def end_tree(self, timeout: float) -> bool:
        """Stop the app's group and every process below the runner. True if force was needed."""
        from . import proctree

        forced = False
        if self.proc is not None:
            pgid = self.proc.pid if os.name == "posix" else None
            procs = proctree.own_descendants()
            forced = proctree.terminate(procs, pgid, timeout)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        # Orphans re-parented to us (subreaper) are our children now: reap them.
        for proc in proctree.own_descendants():
            with contextlib.suppress(Exception):
                proc.kill()
                proc.wait(1)
        if self.pump is not None:
            self.pump.join(timeout=2)
        return forced

    def watch(self) -> str:
        """Until something happens: 'stop', 'crash', 'timeout' (never became ready)."""
        assert self.proc is not None
        deadline = time.monotonic() + self.spec.startup_timeout_s
        interval = 0.02
        next_check = time.monotonic()
        ready = False
        while True:
            if self.stop_requested():
                return "stop"
            if self.proc.poll() is not None:
                return "crash"
            now = time.monotonic()
            if not ready and now >= next_check:
                state, progress = check_health(self.health_url)
                if self.proc.poll() is not None:
                    return "crash"
                if state == "ready":
                    ready = self.was_ready = True
                    self.say(f"{self.spec.app} is ready at {self.info.url}")
                    self.save(status=READY, ready_at=time.time(), progress=None, last_error="")
                    continue
                if progress is not None and progress != self.info.progress:
                    self.save(progress=progress)
                if time.monotonic() > deadline:
                    return "timeout"
                interval = min(interval * 1.5, self.spec.poll_s)
                next_check = time.monotonic() + interval
            self.stop_event.wait(0.05 if ready else 0.02)

    # ---------------------------------------------------------------- the loop

    def run(self, launch_error: str | None) -> int:
        """Supervise until stopped or given up. The first launch already happened in main()."""
        spec = self.spec
        quick = 0
        last_startup_error: tuple[str, str] | None = (
            None  # what the last launch that died starting said
        )
        try:
            self.attach()
            while True:
                if self.proc is None and launch_error is None:
                    launch_error = self.start_app()
                    self.record_app()
                if launch_error is not None:
                    return self.give_up(
                        f"Could not start {spec.argv[0]}: {launch_error}.",
                        f"Run `darkroom env repair {spec.app}` to rebuild its environment.",
                        said=f"could not start {spec.argv[0]}: {launch_error}",
                    )
                assert self.proc is not None
                began = time.monotonic()
                outcome = self.watch()
                if outcome == "stop":
                    return self.stop()
                if outcome == "timeout":
                    self.end_tree(spec.stop_timeout_s)
                    msg = (
                        f"{spec.app} did not answer {spec.health_path} as ready within "
                        f"{spec.startup_timeout_s:g} seconds, so it was stopped."
                    )
                    return self.give_up(
                        msg,
                        f"It may be stuck or need more time; `darkroom logs {spec.app}` shows "
                        "what it did.",
                    )
                # It crashed: say so at once, then clean up what it left behind.
                what = hints.describe_exit(self.proc.returncode)
                ran = time.monotonic() - began
                # A crash before the app was ever ready is a start-up failure however long the
                # start took (a slow import can outlast stable_s): it never resets the count.
                quick = quick + 1 if ran < spec.stable_s or not self.was_ready else 1
                self.save(status=RESTARTING, last_error=f"{spec.app} {what}.", progress=None)
                self.say(f"{spec.app} {what} after {ran:.1f} s")
                self.end_tree(
                    min(spec.stop_timeout_s, 2.0)
                )  # also lets the pump read the last lines
                error = None if self.was_ready else self.startup_error()
                self.proc = None
                if error is not None and error == last_startup_error:
                    # The same error twice while starting is deterministic (an import error, a
                    # bad argument): restarting again only delays the news.
                    exited, said = error
                    msg = (
                        f"{spec.app} {exited} while starting, twice in a row with the same error, "
                        "so Darkroom stopped trying" + (f": {said}" if said else ".")
                    )
                    return self.give_up(msg, hints.crash_hint(spec.app, list(self.tail)))
                last_startup_error = error
                if quick >= spec.max_quick_crashes:
                    msg = (
                        f"{spec.app} {what}; it crashed {quick} times in a row soon after "
                        "starting, so Darkroom stopped restarting it."
                    )
                    return self.give_up(msg, hints.crash_hint(spec.app, list(self.tail)))
                delay = min(spec.backoff_s * 2 ** (quick - 1), spec.backoff_max_s)
                self.say(f"restarting in {delay:g} s")
                if self.wait(delay):
                    return self.stop()
                self.info.restarts += 1
        except Exception as exc:  # the runner must leave a readable reason, never a silent death
            self.say(f"internal error: {exc!r}")
            traceback.print_exc()
            self.end_tree(spec.stop_timeout_s)
            if self.info is None:
                return 2
            self.save(
                status=FAILED,
                app_pid=None,
                last_error=f"The Darkroom runner failed: {exc}.",
                log_tail=list(self.tail),
                hint=f"Please report this, with the file logs/{spec.app}/runner.log.",
            )
            return 2
        finally:
            self.log.close()

    def stop(self) -> int:
        self.save(status=STOPPING)
        self.say(f"stopping {self.spec.app}")
        forced = self.end_tree(self.spec.stop_timeout_s)
        if forced:
            self.say(
                f"{self.spec.app} did not stop within {self.spec.stop_timeout_s:g} s; it was killed"
            )
        self.say(f"{self.spec.app} stopped")
        self.save(status=STOPPED, app_pid=None, app_created=None, progress=None)
        self.stop_path.unlink(missing_ok=True)
        return 0


def _install_signals(runner: Runner) -> None:
    def on_stop(_sig: int, _frame: object) -> None:
        runner.stop_event.set()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if hasattr(signal, "SIGBREAK"):
        signal.signal(signal.SIGBREAK, on_stop)  # type: ignore[attr-defined]


def _detach(log_path: Path) -> None:
    """POSIX double fork: the parent prints the runner's pid and exits, so the caller reaps
    it at once and the runner (re-parented to init) never lingers as anyone's zombie."""
    pid = os.fork()
    if pid:
        sys.stdout.write(f"{pid}\n")
        sys.stdout.flush()
        os._exit(0)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.close(null)


def hold_lock(path: Path) -> int | None:
    """Take an OS lock on `path` without waiting; the fd (kept open for life) or None if held.

    A plain flock/msvcrt lock, inherited across the detach fork and released by the OS
    when the runner dies, even by SIGKILL.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if os.name == "posix":
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
    except OSError:
        os.close(fd)
        return None
    return fd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="manager.supervisor.runner")
    parser.add_argument("--home", required=True)
    parser.add_argument("--app", required=True)
    parser.add_argument("--launch", required=True, help="the launch file written by start()")
    parser.add_argument("--lock", required=True, help="held for the runner's life")
    parser.add_argument("--token", default="")
    parser.add_argument("--detach", action="store_true")
    args = parser.parse_args(argv)
    lock_fd = hold_lock(Path(args.lock))
    if lock_fd is None:
        print(f"another runner already supervises {args.app}", file=sys.stderr)
        return 3
    try:
        data = json.loads(Path(args.launch).read_text("utf-8"))
        spec, paths = LaunchSpec.from_dict(data["spec"]), data["paths"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"cannot read the launch file for {args.app}: {exc}", file=sys.stderr)
        return 4
    if args.detach and os.name == "posix":
        _detach(Path(paths["runner_log"]))
    if sys.platform.startswith("linux"):
        _set_subreaper()
    runner = Runner(Path(args.home), spec, args.token, paths)
    _install_signals(runner)
    launch_error = runner.start_app()
    try:
        return runner.run(launch_error)
    finally:
        os.close(lock_fd)


def _set_subreaper() -> None:
    """Orphans of the app's children re-parent to the runner, so a stop still finds them."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


if __name__ == "__main__":
    sys.exit(main())
