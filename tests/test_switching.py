"""Several apps on one 8 GB GPU: the budget from their plans, refusal with the numbers, and
--switch making room by unloading the others — waiting for a job in progress (or, with
"now", cancelling it as the person asked), pausing a batch between items. Real tiny app
processes; the slow job waits for a gate file, so every wait here is on an event."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from manager import cli, switching
from manager.config import Settings
from manager.errors import DarkroomError
from manager.events import Message, Progress
from manager.hardware import load_profile
from manager.home import Home
from manager.supervisor import control
from tests.fixtures.tinyapp import get_json, record_installed, tinyapp_launch

GPU8 = load_profile(
    "laptop-rtx4060-8gb"
)  # 8 GB driving a display: 6.3 GB to share (planner.usable_vram_gb)


@pytest.fixture
def apps(home: Home):
    """Three tiny apps whose plans say 3 GB each; the app reports the same when loaded."""
    specs = {
        name: tinyapp_launch(home, app=name, vram_gb=3.0, knobs={"VRAM_GB": "3"})
        for name in ("alpha", "beta", "gamma")
    }
    yield specs
    for name in specs:
        with contextlib.suppress(DarkroomError):
            control.stop(home, name)


def info(run) -> dict:
    with urllib.request.urlopen(run.url + "api/info", timeout=5) as resp:
        return json.loads(resp.read())


def test_two_fit_the_third_is_refused_then_switch_makes_room(home: Home, apps) -> None:
    settings = Settings()
    switching.start(home, settings, GPU8, "alpha", apps.get)
    switching.start(home, settings, GPU8, "beta", apps.get)
    assert sorted(u.app for u in switching.usage(home) if u.loaded) == ["alpha", "beta"]

    with pytest.raises(DarkroomError) as refused:
        switching.start(home, settings, GPU8, "gamma", apps.get)
    assert "gamma needs about 3 GB" in refused.value.message and "6 GB" in refused.value.message
    assert "--switch" in refused.value.hint
    assert control.app_status(home, "gamma") is None

    events = []
    switching.start(home, settings, GPU8, "gamma", apps.get, switch=True, report=events.append)
    usage = {u.app: u for u in switching.usage(home)}
    assert set(usage) == {"alpha", "beta", "gamma"}  # nobody was stopped: one unloaded
    assert sum(u.counted_gb for u in usage.values()) <= switching.budget_gb(GPU8)
    unloaded = [name for name, u in usage.items() if not u.loaded]
    assert len(unloaded) == 1 and unloaded[0] in ("alpha", "beta")
    assert info(control.app_status(home, unloaded[0]))["loaded"] is False
    assert any("unloaded its model" in getattr(e, "text", "") for e in events)


def test_cpu_machine_has_no_budget_to_enforce(home: Home, apps) -> None:
    cpu = load_profile("cpu-only-16gb")
    for name in apps:
        switching.start(home, Settings(), cpu, name, apps.get)
    assert len(switching.usage(home)) == 3


def test_status_cli_shows_expected_gpu_memory(home: Home, apps) -> None:
    switching.start(home, Settings(), GPU8, "alpha", apps.get)
    out = subprocess.run(
        [sys.executable, "-m", "manager", "status", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=60,
    )
    (row,) = json.loads(out.stdout)
    assert row["app"] == "alpha" and row["vram_expected_gb"] == 3.0 and row["model_loaded"] is True
    assert row["vram_measured_gb"] is None  # no NVIDIA driver here: measured is unknown, not 0


# ---------------------------------------------------------------- work in progress (#23)
#
# alpha (3.2 GB) and beta (3 GB) run; gamma (3 GB) needs room, so alpha (the biggest) gives it.
# alpha holds a slow job: it waits for a gate file the test creates, then writes its output.


def wait_for(cond, what: str, timeout: float = 120.0) -> None:
    """Until `cond()` holds (an event: a job state, a file); the deadline only catches a hang."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def busy(home: Home):
    specs = {
        "alpha": tinyapp_launch(home, app="alpha", vram_gb=3.2, knobs={"VRAM_GB": "3.2"}),
        "beta": tinyapp_launch(home, app="beta", vram_gb=3.0, knobs={"VRAM_GB": "3"}),
        "gamma": tinyapp_launch(home, app="gamma", vram_gb=3.0, knobs={"VRAM_GB": "3"}),
    }
    for name in ("alpha", "beta"):
        switching.start(home, Settings(), GPU8, name, specs.get)
    yield specs
    for name in specs:
        with contextlib.suppress(DarkroomError):
            control.stop(home, name)


def slow_job(home: Home, app: str, name: str, gate: Path) -> dict:
    run = control.app_status(home, app)
    code, job = get_json(
        run.url + "api/slow", data=json.dumps({"name": name, "gate": str(gate)}).encode()
    )
    assert code == 202, job
    wait_for(lambda: (info(run)["job"] or {}).get("id") == job["id"], f"{app}'s job running")
    return job


def job_state(home: Home, app: str, job_id: str) -> dict:
    return get_json(control.app_status(home, app).url + f"api/jobs/{job_id}")[1]


class Recorder:
    """A reporter that keeps the events and says when a switch started waiting."""

    def __init__(self) -> None:
        self.events: list = []
        self.waiting = threading.Event()

    def __call__(self, event) -> None:
        self.events.append(event)
        if isinstance(event, Message) and event.text.startswith("Waiting for "):
            self.waiting.set()

    def texts(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, Message)]


def in_thread(fn, *args, **kwargs) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def body() -> None:
        try:
            out["result"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the test
            out["error"] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, out


def test_switch_waits_for_the_running_job_and_its_output_is_written(
    home: Home, busy, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    job = slow_job(home, "alpha", "portrait", gate)
    rec = Recorder()
    thread, out = in_thread(
        switching.start, home, Settings(), GPU8, "gamma", busy.get, switch=True, report=rec
    )
    assert rec.waiting.wait(120), out
    # Queued, not refused: alpha still runs its job with its model; gamma waits its turn.
    alpha = control.app_status(home, "alpha")
    assert info(alpha)["loaded"] is True and info(alpha)["job"]["id"] == job["id"]
    assert control.app_status(home, "gamma") is None
    said = next(t for t in rec.texts() if t.startswith("Waiting for "))
    assert "alpha" in said and "slow" in said and job["id"][:8] in said and "50%" in said
    assert any(
        isinstance(e, Progress) and e.stage == "waiting" and e.total == 100 for e in rec.events
    )

    gate.touch()  # the job may finish now
    thread.join(180)
    assert "error" not in out, out
    assert job_state(home, "alpha", job["id"])["status"] == "done"
    output = Path(info(alpha)["env"]["DARKROOM_OUTPUTS"]) / "portrait.txt"
    assert output.read_text("utf-8") == "portrait\n"
    assert (
        control.app_status(home, "alpha").active and info(alpha)["loaded"] is False
    )  # unloaded, not stopped
    assert control.app_status(home, "gamma").status == "ready"
    assert any("alpha unloaded its model" in t for t in rec.texts())


def test_switch_now_cancels_the_job_as_the_person_asked(home: Home, busy, tmp_path: Path) -> None:
    job = slow_job(home, "alpha", "never", tmp_path / "gate-never-opened")
    rec = Recorder()
    switching.start(home, Settings(), GPU8, "gamma", busy.get, switch=switching.NOW, report=rec)
    state = job_state(home, "alpha", job["id"])
    assert state["status"] == "cancelled"  # not "failed": nothing crashed
    assert state["error"] == "Cancelled by you, to make room for gamma."
    assert any(
        "alpha unloaded its model (its job slow" in t and "was cancelled by you" in t
        for t in rec.texts()
    )
    assert not any("stopped" in t or "crash" in t for t in rec.texts())
    alpha = control.app_status(home, "alpha")
    assert alpha.active and alpha.restarts == 0 and info(alpha)["loaded"] is False
    assert control.app_status(home, "gamma").status == "ready"


def test_withdrawing_a_queued_start_leaves_everything_running(
    home: Home, busy, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    job = slow_job(home, "alpha", "kept", gate)
    rec, cancel = Recorder(), threading.Event()
    thread, out = in_thread(
        switching.start,
        home,
        Settings(),
        GPU8,
        "gamma",
        busy.get,
        switch=True,
        report=rec,
        cancel=cancel,
    )
    assert rec.waiting.wait(120), out
    cancel.set()  # Ctrl-C, or the TUI's Cancel
    thread.join(60)
    assert isinstance(out.get("error"), switching.SwitchWithdrawn)
    assert "withdrawn" in out["error"].message
    assert control.app_status(home, "gamma") is None
    alpha = control.app_status(home, "alpha")
    assert info(alpha)["loaded"] is True and info(alpha)["job"]["id"] == job["id"]
    assert not list((home.run / "holds").glob("*.json"))  # no batch would stay paused
    gate.touch()
    wait_for(lambda: job_state(home, "alpha", job["id"])["status"] == "done", "the job done")


def test_idle_unloaded_app_says_so_and_counts_as_free(home: Home, capsys) -> None:
    specs = {
        "alpha": tinyapp_launch(
            home, app="alpha", vram_gb=3.2, knobs={"VRAM_GB": "3.2", "IDLE_UNLOAD_S": "0.2"}
        ),
        "beta": tinyapp_launch(home, app="beta", vram_gb=3.0, knobs={"VRAM_GB": "3"}),
        "gamma": tinyapp_launch(home, app="gamma", vram_gb=3.0, knobs={"VRAM_GB": "3"}),
    }
    try:
        for name in ("alpha", "beta"):
            switching.start(home, Settings(), GPU8, name, specs.get)
        wait_for(
            lambda: {u.app: u.loaded for u in switching.usage(home)}.get("alpha") is False,
            "alpha's idle unload",
        )
        # The budget counts alpha as free: gamma starts without a switch.
        switching.start(home, Settings(), GPU8, "gamma", specs.get)
        assert cli.main(["status"]) == 0
        line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("alpha"))
        assert "unloaded (idle)" in line
        assert cli.main(["status", "--json"]) == 0
        rows = {r["app"]: r for r in json.loads(capsys.readouterr().out)}
        assert rows["alpha"]["unloaded_by"] == "idle" and rows["alpha"]["idle_unload_minutes"] > 0
        assert rows["alpha"]["vram_expected_gb"] == 0.0 and rows["beta"]["model_loaded"] is True
    finally:
        for name in specs:
            with contextlib.suppress(DarkroomError):
                control.stop(home, name)


# ---------------------------------------------------------------- a batch in the way


@pytest.fixture(scope="module")
def workflow():
    """The workflow runner's engine, imported from apps/ (it needs only pydantic and yaml)."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "apps"))
    try:
        from workflow import engine, ledger, presets
    finally:
        sys.path.pop(0)
    return engine, ledger, presets


def batch_on_alpha(home: Home, workflow, tmp_path: Path, gate: Path, keep_running: bool = False):
    """Three prompts, one step each: alpha's slow job, which waits for `gate`."""
    engine, _ledger, presets = workflow
    preset = presets.Preset.model_validate(
        {
            "name": "hold-three",
            "input": "prompts",
            "grid": {"prompts": ["one", "two", "three"]},
            "steps": [
                {
                    "name": "hold",
                    "app": "alpha",
                    "task": "slow",
                    "image_field": None,
                    "params": {"name": "{name}", "gate": str(gate)},
                }
            ],
        }
    )
    url = control.app_status(home, "alpha").url.rstrip("/")
    return engine.BatchOptions(
        preset=preset,
        source=None,
        out=tmp_path / "batch",
        urls={"alpha": [url]},
        home=home.root,
        keep_running=keep_running,
    )


def test_a_batch_paused_by_a_switch_resumes_with_nothing_done_twice(
    home: Home, busy, workflow, tmp_path: Path
) -> None:
    engine, ledger_mod, _presets = workflow
    gate = tmp_path / "gate"
    opts = batch_on_alpha(home, workflow, tmp_path, gate)
    events: list[dict] = []
    paused = threading.Event()

    def emit(event: dict) -> None:
        events.append(event)
        if event.get("stage") == "paused":
            paused.set()

    batch, batch_out = in_thread(engine.run_batch, opts, emit)
    alpha = control.app_status(home, "alpha")
    wait_for(lambda: info(alpha)["job"] is not None, "the batch's first item on alpha")
    rec = Recorder()
    switch, switch_out = in_thread(
        switching.start, home, Settings(), GPU8, "gamma", busy.get, switch=True, report=rec
    )
    assert rec.waiting.wait(120), switch_out
    gate.touch()  # the item in flight finishes; the batch pauses; alpha unloads
    switch.join(180)
    assert "error" not in switch_out, switch_out
    assert paused.wait(60)
    assert control.app_status(home, "gamma").status == "ready"
    assert info(alpha)["loaded"] is False and info(alpha)["finished"] == ["001-one-seed0"]
    ledger = ledger_mod.Ledger(engine.ledger_path(opts.out))
    try:  # paused between items: the ledger keeps its place
        counts = ledger.counts()
        assert (counts.done, counts.pending, counts.running) == (1, 2, 0)
    finally:
        ledger.close()
    assert [b.state for b in switching.batches(home)] == ["paused"]

    control.stop(home, "gamma")  # alpha is the batch's again
    batch.join(180)
    assert "error" not in batch_out, batch_out
    summary = batch_out["result"]
    assert (summary.done, summary.failed, summary.total) == (3, 0, 3)
    assert info(alpha)["finished"] == ["001-one-seed0", "002-two-seed0", "003-three-seed0"]
    ledger = ledger_mod.Ledger(engine.ledger_path(opts.out))
    try:
        assert [r.attempts for r in ledger.rows()] == [1, 1, 1]
    finally:
        ledger.close()
    assert any(e.get("stage") == "resumed" for e in events)
    assert not switching.batches(home)  # the batch is gone from run/ when it ends


def test_a_batch_kept_running_refuses_the_switch(
    home: Home, busy, workflow, tmp_path: Path
) -> None:
    engine, _ledger, _presets = workflow
    gate = tmp_path / "gate"
    opts = batch_on_alpha(home, workflow, tmp_path, gate, keep_running=True)
    batch, batch_out = in_thread(engine.run_batch, opts, lambda _e: None)
    alpha = control.app_status(home, "alpha")
    wait_for(lambda: info(alpha)["job"] is not None, "the batch's first item on alpha")
    with pytest.raises(switching.SwitchRefused) as refused:
        switching.start(home, Settings(), GPU8, "gamma", busy.get, switch=True)
    assert "hold-three" in refused.value.message and "keep running" in refused.value.message
    assert "Wait until the batch is done" in refused.value.hint
    assert control.app_status(home, "gamma") is None and info(alpha)["loaded"] is True
    assert not list((home.run / "holds").glob("*.json"))
    gate.touch()
    batch.join(180)
    assert batch_out["result"].done == 3


def test_switch_now_during_a_batch_puts_the_item_back_not_failed(
    home: Home, busy, workflow, tmp_path: Path
) -> None:
    engine, ledger_mod, _presets = workflow
    gate = tmp_path / "gate"
    opts = batch_on_alpha(home, workflow, tmp_path, gate)
    events: list[dict] = []
    batch, batch_out = in_thread(engine.run_batch, opts, events.append)
    alpha = control.app_status(home, "alpha")
    wait_for(lambda: info(alpha)["job"] is not None, "the batch's first item on alpha")
    switching.start(home, Settings(), GPU8, "gamma", busy.get, switch=switching.NOW)
    wait_for(lambda: any(e.get("stage") == "paused" for e in events), "the batch paused")
    ledger = ledger_mod.Ledger(engine.ledger_path(opts.out))
    try:  # the cancelled item is pending again, not failed
        counts = ledger.counts()
        assert (counts.done, counts.failed, counts.pending) == (0, 0, 3)
    finally:
        ledger.close()
    gate.touch()
    control.stop(home, "gamma")
    batch.join(180)
    assert (batch_out["result"].done, batch_out["result"].failed) == (3, 0)
    assert info(alpha)["finished"] == ["001-one-seed0", "002-two-seed0", "003-three-seed0"]
    assert any("Cancelled by you, to make room for gamma." in str(e.get("text")) for e in events)


# ---------------------------------------------------------------- the app kit's side


@pytest.fixture(scope="module")
def appkit_jobs():
    sys.path.insert(0, str(Path(__file__).parents[1] / "apps"))
    try:
        from appkit import jobs
    finally:
        sys.path.pop(0)
    return jobs


def test_appkit_job_cancel_is_cancelled_not_failed(appkit_jobs) -> None:
    """A running job stops at its next progress report; one queued behind it never starts."""
    jobs = appkit_jobs
    queue = jobs.JobQueue()
    started, steps = threading.Event(), []

    def slow(job):
        started.set()
        while True:
            steps.append(1)
            job.report(0.5, "working")
            time.sleep(0.01)

    running = queue.submit("slow", {}, slow)
    queued = queue.submit("later", {}, lambda job: steps.append("later") or {})
    assert started.wait(30)
    assert queue.running is running and running.summary()["task"] == "slow"
    assert [j.id for j in queue.waiting()] == [queued.id]
    queue.cancel(queued.id, "Cancelled by you, to make room for gamma.")
    queue.cancel(running.id, "Cancelled by you, to make room for gamma.")
    assert running.done_event.wait(30) and queued.done_event.wait(30)
    for job in (running, queued):
        assert (
            job.status == jobs.CANCELLED
            and job.error == "Cancelled by you, to make room for gamma."
        )
    assert "later" not in steps and queued.started is None
    done = queue.submit("after", {}, lambda job: {"ok": True})
    assert done.done_event.wait(30) and done.status == jobs.DONE  # the queue goes on


# ---------------------------------------------------------------- the command line


def test_cli_switch_waits_ctrl_c_withdraws_and_switch_now_cancels(
    home: Home, tmp_path: Path
) -> None:
    """`darkroom start gamma --switch` queues behind alpha's job and says so; Ctrl-C withdraws
    it; `--switch=now` cuts the job short and says it was cancelled by the person."""
    for app in ("alpha", "beta", "gamma"):
        record_installed(home, app)
    profile = ["--hardware", "laptop-rtx4060-8gb"]
    try:
        for app in ("alpha", "beta"):
            assert cli.main(["start", app, *profile]) == 0
        job = slow_job(home, "alpha", "cli", tmp_path / "gate-never-opened")
        proc = subprocess.Popen(
            [sys.executable, "-m", "manager", "start", "gamma", "--switch", *profile],
            stderr=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        lines = []
        for line in proc.stderr:  # the waiting line is the event to wait for
            lines.append(line)
            if line.startswith("Waiting for alpha"):
                break
        assert job["id"][:8] in lines[-1] and "Ctrl-C" in lines[-1], lines
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, (out, err)
        assert "The start of gamma was withdrawn" in err
        assert control.app_status(home, "gamma") is None
        assert info(control.app_status(home, "alpha"))["job"]["id"] == job["id"]

        done = subprocess.run(
            [sys.executable, "-m", "manager", "start", "gamma", "--switch=now", *profile],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert "was cancelled by you" in done.stderr and "gamma is running" in done.stdout
        assert job_state(home, "alpha", job["id"])["status"] == "cancelled"
    finally:
        for app in ("alpha", "beta", "gamma"):
            with contextlib.suppress(DarkroomError):
                control.stop(home, app)
