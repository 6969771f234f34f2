"""The supervisor with real processes: the tiny app, started by a detached runner,
killed with SIGKILL, crash-looping, ignoring SIGTERM, fighting over ports and locks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import psutil
import pytest

from manager import supervisor
from manager.config import Settings
from manager.errors import Conflict, DarkroomError, NotFound
from manager.events import Event, Message, Progress
from manager.home import Home
from manager.supervisor import LaunchSpec, RunInfo, runfile
from tests.fixtures.tinyapp import free_port, get_json

pytestmark = pytest.mark.skipif(
    os.name != "posix", reason="signals and process groups are POSIX here"
)


def settings_around(port: int, span: int = 20) -> Settings:
    return Settings(port_start=port, port_end=port + span)


def wait_for(check: Callable[[], object], timeout: float = 15.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def gone(pid: int | None) -> bool:
    if not pid:
        return True
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(autouse=True)
def stop_everything(home: Home) -> Iterator[None]:
    """Nothing a test started may outlive it, whatever the test did."""
    yield
    for info in supervisor.status(home):
        supervisor.stop(home, info.app)  # stale files included: stop ends what they left


@pytest.fixture
def start(home: Home) -> Callable[..., RunInfo]:
    def run(
        spec: LaunchSpec, settings: Settings | None = None, events: list[Event] | None = None
    ) -> RunInfo:
        sink = events.append if events is not None else (lambda _e: None)
        return supervisor.start(home, settings or settings_around(spec.port), spec, sink)

    return run


def test_start_is_ready_and_serves_the_protocol(home: Home, tinyapp_spec, tmp_path) -> None:
    events: list[Event] = []
    gate = tmp_path / "loaded"
    spec = tinyapp_spec(knobs={"load_delay": "0.1", "load_gate": str(gate)})

    def sink(event: Event) -> None:
        # The model finishes loading only once the start has reported "loading": the event
        # opens the gate, so a busy machine cannot make the poll miss the loading phase.
        events.append(event)
        if isinstance(event, Progress) and event.stage == "loading":
            gate.touch()

    info = supervisor.start(home, settings_around(spec.port), spec, sink)
    assert info.status == "ready" and info.port == spec.port and info.host == "127.0.0.1"
    code, health = get_json(info.url + "api/health")
    assert (code, health["status"]) == (200, "ready")
    _, about = get_json(info.url + "api/info")
    assert about["app"] == "tinyapp" and about["pid"] == info.app_pid and about["loaded"] is True
    env = about["env"]
    assert env["DARKROOM_PORT"] == str(info.port) and env["DARKROOM_HOST"] == "127.0.0.1"
    assert env["HF_HUB_OFFLINE"] == "1" and env["HF_HUB_CACHE"] == str(home.models)
    assert env["DARKROOM_OUTPUTS"] == str(home.output_dir("tinyapp"))
    assert any(isinstance(e, Progress) and e.stage == "loading" for e in events), (
        "no loading progress"
    )
    on_disk = runfile.read_raw(home, "tinyapp")
    assert on_disk is not None and on_disk.status == "ready" and on_disk.port == info.port
    assert (
        not gone(on_disk.runner_pid)
        and psutil.Process(on_disk.app_pid).ppid() == on_disk.runner_pid
    )
    # The runner is detached: its own session, not the test's.
    assert os.getsid(on_disk.runner_pid) != os.getsid(0)
    assert "ready" in "\n".join(supervisor.logs(home, "tinyapp", lines=50))


def test_kill_9_of_the_app_restarts_it_and_kills_its_orphans(
    home: Home, tinyapp_spec, start
) -> None:
    info = start(tinyapp_spec(knobs={"spawn_child": "session"}))
    _, about = get_json(info.url + "api/info")
    orphan = about["child_pid"]
    os.kill(info.app_pid, signal.SIGKILL)
    again = wait_for(
        lambda: (
            (i := supervisor.app_status(home, "tinyapp"))
            and i.status == "ready"
            and i.app_pid != info.app_pid
            and i
        ),
        what="restart",
    )
    assert again.restarts == 1
    assert any("signal 9" in line for line in supervisor.logs(home, "tinyapp", lines=50))
    assert gone(info.app_pid) and gone(orphan), "the crashed app's child outlived it"
    assert get_json(again.url + "api/health")[0] == 200


def test_crash_loop_gives_up_with_log_lines_and_a_hint(home: Home, tinyapp_spec, start) -> None:
    with pytest.raises(DarkroomError) as err:
        start(tinyapp_spec(knobs={"crash_on_start": "1"}))
    # The same error twice while starting ends it (max_quick_crashes is 3 here).
    assert "crashing on start" in err.value.message and "twice" in err.value.message
    assert err.value.hint
    info = supervisor.app_status(home, "tinyapp")
    assert info is not None and info.status == "failed" and not info.active
    assert info.restarts == 1 and any("crashing on start" in line for line in info.log_tail)
    assert len(info.log_tail) <= 20
    wait_for(lambda: gone(info.runner_pid), what="runner exit")


def test_ready_then_crash_loop_gives_up_after_max_quick_crashes(
    home: Home, tinyapp_spec, start
) -> None:
    """An app that becomes ready and then dies, again and again, each time well inside the
    quick-crash window: after `max_quick_crashes` crashes Darkroom stops restarting it and says
    so, instead of restarting forever. The test makes each crash happen (POST /api/crash) only
    once the runner has recorded the app ready, so no machine load can turn it into a start-up
    failure."""
    info = start(tinyapp_spec(stable_s=600.0, max_quick_crashes=3, startup_timeout_s=120.0))
    for crash in range(1, 4):
        assert info.status == "ready"
        get_json(info.url + "api/crash", data=b"{}")
        if crash < 3:
            pid = info.app_pid
            info = wait_for(
                lambda pid=pid: (
                    (i := supervisor.app_status(home, "tinyapp"))
                    and i.status == "ready"
                    and i.app_pid != pid
                    and i
                ),
                timeout=120,
                what=f"restart after crash {crash}",
            )
            assert info.restarts == crash
    failed = wait_for(
        lambda: (i := supervisor.app_status(home, "tinyapp")) and i.status == "failed" and i,
        timeout=120,
        what="giving up",
    )
    assert "crashed 3 times in a row soon after starting" in failed.last_error
    assert "stopped restarting" in failed.last_error and failed.hint
    assert any("crashing on purpose" in line for line in failed.log_tail)
    wait_for(lambda: gone(failed.runner_pid), timeout=60, what="runner exit")


@pytest.mark.parametrize("child", ["1", "session"])
def test_stop_leaves_no_process_behind(home: Home, tinyapp_spec, start, child: str) -> None:
    info = start(tinyapp_spec(knobs={"spawn_child": child}))
    tree = [
        psutil.Process(info.runner_pid),
        *psutil.Process(info.runner_pid).children(recursive=True),
    ]
    pids = [p.pid for p in tree]
    assert len(pids) >= 3, "runner, app and the app's child"
    assert supervisor.stop(home, "tinyapp") is True
    assert [pid for pid in pids if not gone(pid)] == []
    assert supervisor.status(home) == [] and not runfile.run_file(home, "tinyapp").exists()
    assert supervisor.stop(home, "tinyapp") is False


def test_an_app_ignoring_sigterm_is_killed_after_the_grace_time(
    home: Home, tinyapp_spec, start
) -> None:
    info = start(tinyapp_spec(knobs={"ignore_sigterm": "1"}, stop_timeout_s=0.5))
    assert supervisor.stop(home, "tinyapp")
    assert gone(info.app_pid) and gone(info.runner_pid)
    assert any("was killed" in line for line in supervisor.logs(home, "tinyapp", lines=20))


def test_a_taken_port_moves_to_the_next_free_one(home: Home, tinyapp_spec, start) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    events: list[Event] = []
    try:
        info = start(tinyapp_spec(port=taken), settings_around(taken), events)
        assert info.port != taken and taken < info.port <= taken + 20
        assert runfile.read_raw(home, "tinyapp").port == info.port
        assert get_json(info.url + "api/health")[0] == 200
        assert any(isinstance(e, Message) and str(info.port) in e.text for e in events)
        # The whole range taken (range of one port, the blocked one) is a clear error.
        with pytest.raises(DarkroomError, match="No free port"):
            start(tinyapp_spec(app="other", port=taken), Settings(port_start=taken, port_end=taken))
    finally:
        blocker.close()


def test_starting_a_running_app_again_is_a_clear_error(home: Home, tinyapp_spec, start) -> None:
    spec = tinyapp_spec()
    first = start(spec)
    with pytest.raises(Conflict, match="already running"):
        start(spec)
    assert supervisor.app_status(home, "tinyapp").app_pid == first.app_pid


def test_two_concurrent_starts_start_one_app(home: Home, tinyapp_spec) -> None:
    spec = tinyapp_spec()
    results: list[object] = []

    def go() -> None:
        try:
            results.append(supervisor.start(home, settings_around(spec.port), spec))
        except DarkroomError as exc:
            results.append(exc)

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    ok = [r for r in results if isinstance(r, RunInfo)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(ok) == 1 and len(refused) == 1, results
    apps = [
        p
        for p in psutil.process_iter(["cmdline"])
        if p.info["cmdline"]
        and p.info["cmdline"][-2:] == ["-m", "tinyapp"]
        and p.pid != os.getpid()
        and (p.environ().get("DARKROOM_HOME") == str(home.root))
    ]
    assert [p.pid for p in apps] == [ok[0].app_pid]


def test_a_second_runner_for_the_same_app_refuses(home: Home, tinyapp_spec, start) -> None:
    start(tinyapp_spec())
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "manager.supervisor.runner",
            "--home",
            str(home.root),
            "--app",
            "tinyapp",
            "--launch",
            str(runfile.launch_file(home, "tinyapp")),
            "--lock",
            str(runfile.runner_lock(home, "tinyapp")),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 3 and "another runner" in done.stderr
    assert supervisor.app_status(home, "tinyapp").status == "ready"


def test_a_killed_runner_leaves_a_stale_file_that_stop_and_start_clean_up(
    home: Home, tinyapp_spec, start
) -> None:
    spec = tinyapp_spec()
    info = start(spec)
    os.kill(info.runner_pid, signal.SIGKILL)
    stale = wait_for(
        lambda: (i := supervisor.app_status(home, "tinyapp")) and i.stale and i,
        what="stale run file",
    )
    assert stale.status == "stale" and not stale.active
    assert [i.status for i in supervisor.status(home)] == ["stale"]
    # A new start ends the orphaned app (same pid and create time) and takes over.
    again = start(spec)
    assert again.app_pid != info.app_pid and gone(info.app_pid)
    assert supervisor.stop(home, "tinyapp") and gone(again.app_pid)


def test_a_reused_runner_pid_is_not_trusted(home: Home, tinyapp_spec, start) -> None:
    info = start(tinyapp_spec())
    raw = runfile.read_raw(home, "tinyapp")
    raw.runner_pid = os.getpid()  # a live process, but not the runner that wrote the file
    runfile.write(home, raw)
    assert supervisor.app_status(home, "tinyapp").stale
    raw.runner_pid = info.runner_pid
    runfile.write(home, raw)
    assert supervisor.app_status(home, "tinyapp").status == "ready"


def test_missing_env_python_says_not_installed(home: Home, tinyapp_spec, start) -> None:
    spec = tinyapp_spec()
    spec.placeholders["env_python"] = str(home.env_dir("tinyapp") / "bin" / "python")
    with pytest.raises(NotFound, match="not installed") as err:
        start(spec)
    assert "darkroom install tinyapp" in err.value.hint
    assert supervisor.status(home) == []


def test_an_app_that_never_gets_ready_is_stopped_after_the_timeout(
    home: Home, tinyapp_spec, start
) -> None:
    with pytest.raises(DarkroomError, match="within") as err:
        start(tinyapp_spec(knobs={"load_delay": "30"}, startup_timeout_s=0.6))
    assert "logs tinyapp" in err.value.hint
    info = supervisor.app_status(home, "tinyapp")
    assert info is None or (info.status == "failed" and gone(info.app_pid))


def test_needs_start_first_and_cycles_are_refused(home: Home, tinyapp_spec) -> None:
    ports = {"runner": free_port(), "helper": free_port()}
    needs = {"runner": ["helper"], "helper": []}
    started: list[str] = []

    def resolve(app: str) -> LaunchSpec:
        started.append(app)
        return tinyapp_spec(app=app, port=ports[app], needs=needs[app])

    info = supervisor.start_with_needs(home, Settings(), "runner", resolve)
    assert info.app == "runner"
    assert sorted(i.app for i in supervisor.status(home) if i.status == "ready") == [
        "helper",
        "runner",
    ]
    needs.update(runner=["helper"], helper=["runner"])
    with pytest.raises(DarkroomError, match="cycle"):
        supervisor.start_with_needs(home, Settings(), "runner", resolve)


def test_logs_follow_sees_new_lines(home: Home, tinyapp_spec, start) -> None:
    info = start(tinyapp_spec())
    seen: list[str] = []
    stop_at = time.monotonic() + 10

    def done() -> bool:
        return any("/api/info" in line for line in seen) or time.monotonic() > stop_at

    def reader() -> None:
        for line in supervisor.logs(home, "tinyapp", follow=True, lines=5, stop_when=done):
            seen.append(line)

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.3)
    get_json(info.url + "api/info")
    t.join(15)
    assert any("/api/info" in line for line in seen)
    with pytest.raises(NotFound):
        supervisor.logs(home, "nothing")


def test_open_uses_the_recorded_url(home: Home, tinyapp_spec, start) -> None:
    info = start(tinyapp_spec())
    opened: list[str] = []
    assert supervisor.open_app(home, "tinyapp", opened.append) == info.url == opened[0]
    supervisor.stop(home, "tinyapp")
    with pytest.raises(DarkroomError, match="not running"):
        supervisor.open_app(home, "tinyapp", opened.append)


def test_a_lan_bind_address_is_handed_to_the_app_and_the_url_stays_local(
    home: Home, tinyapp_spec, start
) -> None:
    spec = tinyapp_spec()
    info = start(spec, Settings(bind_host="0.0.0.0", port_start=spec.port, port_end=spec.port + 20))
    assert info.host == "0.0.0.0" and info.url.startswith("http://127.0.0.1:")
    assert get_json(info.url + "api/info")[1]["env"]["DARKROOM_HOST"] == "0.0.0.0"


def test_logs_rotate_by_size_and_tail_reaches_the_previous_file(tmp_path) -> None:
    from manager.supervisor.logfile import RotatingLog, tail

    folder = tmp_path / "logs"
    log = RotatingLog(folder / "app.log", max_bytes=200, backups=2)
    for i in range(100):
        log.write(f"line {i:03d} " + "x" * 20)
    log.close()
    assert sorted(p.name for p in folder.iterdir()) == ["app.log", "app.log.1", "app.log.2"]
    assert all(p.stat().st_size <= 200 for p in folder.iterdir())
    last = tail(folder / "app.log", 10)
    assert len(last) == 10 and last[-1].startswith("line 099") and last[0].startswith("line 090")


def test_a_deterministic_start_up_error_fails_at_once_naming_it(
    home: Home, tinyapp_spec, start
) -> None:
    """An app whose import raises, with crashes that each outlast the quick-crash window
    (stable_s=0, as a slow torch import does): the second identical failure ends the start."""
    with pytest.raises(DarkroomError) as err:
        start(
            tinyapp_spec(
                knobs={"import": "darkroom_no_such_module"},
                stable_s=0.0,
                max_quick_crashes=5,
                startup_timeout_s=60.0,
            )
        )
    text = str(err.value)
    assert "No module named 'darkroom_no_such_module'" in err.value.message, text
    assert "while starting, twice" in err.value.message and "Traceback" in text
    assert "repair" in err.value.hint
    info = supervisor.app_status(home, "tinyapp")
    assert info is not None and info.status == "failed" and info.restarts == 1
    wait_for(lambda: gone(info.runner_pid), what="runner exit")
