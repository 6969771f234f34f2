"""TUI Home on an 8 GB GPU: the third app does not fit, the refusal is shown, and the Switch
dialog makes room (another app unloads its model) and starts it. With a job running on the
app that would make room, the dialog names the job; the start is queued while it runs, and
Cancel withdraws it with everything left as it was."""

from __future__ import annotations

import contextlib
import json

from manager import switching
from manager.errors import DarkroomError
from manager.hardware import load_profile
from manager.home import Home
from manager.supervisor import control
from manager.tui.screens.switch import SwitchScreen, SwitchWaitScreen
from tests.fixtures.tinyapp import get_json, record_installed
from tests.fixtures.tui import RecordingApp, cards_loaded, run, until

GPU8 = load_profile("laptop-rtx4060-8gb")


def test_home_offers_switch_when_the_gpu_is_full(home: Home) -> None:
    for app in ("alpha", "beta", "gamma"):
        record_installed(home, app)

    async def scenario() -> None:
        tui = RecordingApp(home=home, hardware=GPU8)
        async with tui.run_test(size=(100, 40)) as pilot:
            await cards_loaded(pilot)
            home_screen = tui.screen
            for app in ("alpha", "beta"):
                home_screen.do_action(app, "start")
                await until(
                    pilot,
                    lambda a=app: (
                        (control.app_status(home, a) or None) is not None
                        and control.app_status(home, a).status == "ready"
                    ),
                    what=f"{app} ready",
                )
            home_screen.do_action("gamma", "start")
            await until(
                pilot, lambda: isinstance(tui.screen, SwitchScreen), what="the Switch dialog"
            )
            assert not tui.screen.has_work  # nobody is busy: no job to name, no "Switch now"
            assert tui.noted("gamma needs about 3 GB", "error")
            assert control.app_status(home, "gamma") is None
            await pilot.press("y")  # the dialog's "Switch" key
            await until(
                pilot,
                lambda: (
                    (control.app_status(home, "gamma") or None) is not None
                    and control.app_status(home, "gamma").status == "ready"
                ),
                what="gamma ready",
            )
            await until(pilot, lambda: tui.noted("gamma is running"), what="the running note")
            # Home shows which app gave up its GPU memory.
            from manager.tui.widgets.app_card import AppCard, status_line

            await until(
                pilot,
                lambda: (
                    sum("model unloaded" in status_line(c.data) for c in home_screen.query(AppCard))
                    == 1
                ),
                what="a card saying its model is unloaded",
            )

    try:
        run(scenario())
        usage = {u.app: u for u in switching.usage(home)}
        assert set(usage) == {"alpha", "beta", "gamma"}
        assert sum(1 for u in usage.values() if not u.loaded) == 1
    finally:
        for app in ("alpha", "beta", "gamma"):
            with contextlib.suppress(DarkroomError):
                control.stop(home, app)


def _ready(home: Home, app: str) -> bool:
    run = control.app_status(home, app)
    return run is not None and run.status == "ready"


def test_switch_names_the_job_and_cancel_withdraws_the_queued_start(home: Home, tmp_path) -> None:
    for app in ("alpha", "beta", "gamma"):
        record_installed(home, app)
    gate = tmp_path / "gate"

    async def scenario() -> None:
        tui = RecordingApp(home=home, hardware=GPU8)
        async with tui.run_test(size=(100, 40)) as pilot:
            await cards_loaded(pilot)
            home_screen = tui.screen
            for app in ("alpha", "beta"):
                home_screen.do_action(app, "start")
                await until(pilot, lambda a=app: _ready(home, a), what=f"{app} ready")
            url = control.app_status(home, "alpha").url
            code, job = get_json(
                url + "api/slow", data=json.dumps({"name": "x", "gate": str(gate)}).encode()
            )
            assert code == 202
            await until(
                pilot,
                lambda: (get_json(url + "api/info")[1]["job"] or {}).get("id") == job["id"],
                what="alpha's job running",
            )
            home_screen.do_action("gamma", "start")
            await until(
                pilot, lambda: isinstance(tui.screen, SwitchScreen), what="the Switch dialog"
            )
            dialog = tui.screen
            text = str(dialog.query_one("#switch-text").render())
            assert "alpha's job slow" in text and job["id"][:8] in text and "result is lost" in text
            assert dialog.has_work
            await pilot.press("y")  # Switch when done: the start is queued
            await until(
                pilot, lambda: isinstance(tui.screen, SwitchWaitScreen), what="the queued start"
            )
            wait_screen = tui.screen
            await until(
                pilot,
                lambda: wait_screen.text.startswith("Waiting for alpha"),
                what="what it waits for",
            )
            assert control.app_status(home, "gamma") is None
            await pilot.press("escape")  # Cancel
            await until(
                pilot, lambda: not isinstance(tui.screen, SwitchWaitScreen), what="the wait closed"
            )
            await until(pilot, lambda: tui.noted("withdrawn"), what="the withdrawal said")
            assert control.app_status(home, "gamma") is None
            info = get_json(url + "api/info")[1]
            assert info["loaded"] is True and info["job"]["id"] == job["id"]  # untouched

    try:
        run(scenario())
    finally:
        gate.touch()
        for app in ("alpha", "beta", "gamma"):
            with contextlib.suppress(DarkroomError):
                control.stop(home, app)
