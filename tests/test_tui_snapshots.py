"""Snapshot tests (pytest-textual-snapshot) of Home and Install at 80x24, on a fixed hardware
profile so the pictures do not depend on this machine. Update with `--snapshot-update`
after checking the difference in the report."""

from __future__ import annotations

import time

from textual.pilot import Pilot

from manager.hardware import load_profile
from manager.home import Home
from manager.tui.app import DarkroomApp
from manager.tui.screens.install import InstallScreen
from manager.tui.widgets.app_card import AppCard

RTX3060 = load_profile("rtx3060-12gb")


async def _until(pilot: Pilot, cond, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "the screen did not finish loading"
        await pilot.pause(0.05)


async def _home_ready(pilot: Pilot) -> None:
    await _until(
        pilot,
        lambda: (
            isinstance(pilot.app.focused, AppCard)
            and "RTX 3060" in str(pilot.app.screen.query_one("#machine").render())
        ),
    )
    await pilot.pause()


def test_home_snapshot(snap_compare, home: Home) -> None:
    assert snap_compare(DarkroomApp(home, RTX3060), terminal_size=(80, 24), run_before=_home_ready)


def test_install_snapshot(snap_compare, home: Home) -> None:
    async def install_ready(pilot: Pilot) -> None:
        await _home_ready(pilot)
        screen = InstallScreen("generator")
        pilot.app.push_screen(screen)
        await _until(pilot, lambda: screen.pv is not None and screen.query(".variant-select"))
        await pilot.pause()

    assert snap_compare(
        DarkroomApp(home, RTX3060), terminal_size=(80, 24), run_before=install_ready
    )
