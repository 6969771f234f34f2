"""The TUI's Workflow screen (#18: the workflow run offered by both faces): opened from Home by
its key, a preset picked from the catalogue and a folder typed, a real batch run to its summary
by keys alone; a cancel that asks, stops after the image in flight and resumes when run again;
a folder that is not there answered with a sentence."""

from __future__ import annotations

from pathlib import Path

import yaml
from textual.widgets import Button, Input, Select, Static

from manager import bundled, presets, supervisor
from manager.config import Settings
from manager.hardware import load_profile
from manager.home import Home
from manager.tui.screens.confirm import ConfirmScreen
from manager.tui.screens.home import HomeScreen
from manager.tui.screens.workflow import WorkflowScreen
from tests.fixtures.tinymodels import AppEnv
from tests.fixtures.tinyworkflow import installed_runner_and_imgtool, make_images, write_preset
from tests.fixtures.tui import RecordingApp, cards_loaded, commands_shown, run, until

GPU = load_profile("rtx3060-12gb")


def text_of(screen, wid: str) -> str:
    return str(screen.query_one(wid, Static).render())


async def open_workflow(pilot, app) -> WorkflowScreen:
    """Home, then `w`: the Workflow screen with the preset picker focused and filled."""
    await cards_loaded(pilot)
    await pilot.press("w")
    screen = app.screen
    assert isinstance(screen, WorkflowScreen)
    assert app.focused is screen.query_one("#preset", Select)
    await until(pilot, lambda: screen.presets, what="the presets")
    return screen


async def pick_last_preset_and_folder(pilot, screen, folder: Path) -> None:
    """Keys only: open the picker, the last preset (the user's own), Tab to the folder, type."""
    await pilot.press("enter", "end", "enter")
    await pilot.press("tab")
    assert pilot.app.focused is screen.query_one("#folder", Input)
    await pilot.press(*str(folder))


def test_workflow_screen_runs_a_preset_over_a_folder_by_keys(
    workflow_env: AppEnv, home: Home, tmp_path: Path, monkeypatch
) -> None:
    """From Home by `w`: the bundled presets with their descriptions and the user's own; a real
    batch (the engine in the workflow env, the image app started by the supervisor) counted up
    to its summary, which says where the results and the report are and opens them."""
    spec, tool = installed_runner_and_imgtool(workflow_env, home, tmp_path)
    src = tmp_path / "photos"
    make_images(src, 3, workflow_env, bad=["notes.png"])
    write_preset(home.presets)  # the user's own: invert-test
    seen: list[str] = []
    monkeypatch.setenv("BROWSER", "false")  # no browser can start: Open says where the file is
    monkeypatch.setenv("DISPLAY", "")
    monkeypatch.setenv("WAYLAND_DISPLAY", "")

    async def go() -> None:
        app = RecordingApp(home, GPU)
        async with app.run_test(size=(100, 40)) as pilot:
            screen = await open_workflow(pilot, app)
            names = [p.name for p in screen.presets.values()]  # type: ignore[attr-defined]
            assert names[:4] == ["colorize-only", "old-photo", "prompt-grid", "upscale-only"]
            assert names[-1] == "invert-test"
            await pick_last_preset_and_folder(pilot, screen, src)
            assert screen.query_one("#preset", Select).value == str(
                home.presets / "invert-test.yaml"
            )
            await pilot.press("enter")  # in the folder field: run
            assert screen.phase == "running"
            assert app.focused is screen.query_one("#cancel-batch", Button)
            await until(pilot, lambda: screen.phase == "done", timeout=180, what="the batch")
            count = text_of(screen, "#batch-count")
            summary = text_of(screen, "#batch-summary")
            seen.extend(commands_shown(app))
            out = home.outputs / "workflow" / "invert-test-photos"
            assert count == "4 / 4 images", count
            assert "invert-test: 3 done, 1 failed of 4" in summary, summary
            assert f"Results: {out}" in summary and f"Report:  {out / 'report.html'}" in summary
            assert "failed: notes.png" in summary
            await until(  # focus lands after the screen's refresh
                pilot, lambda: app.focused is screen.query_one("#open-report", Button), what="focus"
            )
            await pilot.press("enter")  # Open report
            await until(pilot, lambda: app.noted("report.html on this computer"), what="open")
            await pilot.press("escape")
            assert isinstance(app.screen, HomeScreen)

    try:
        supervisor.start(home, Settings(), spec)
        run(go())
    finally:
        supervisor.stop(home, "imgtool")
    assert sorted(
        p.name for p in (home.outputs / "workflow" / "invert-test-photos").glob("*.png")
    ) == [
        "img000.png",
        "img001.png",
        "img002.png",
    ]
    assert seen == []


def test_workflow_cancel_asks_stops_after_the_image_and_run_again_resumes(
    workflow_env: AppEnv, home: Home, tmp_path: Path
) -> None:
    """Escape while a batch runs asks first; yes stops it after the image in flight (the
    screen says "cancelled"); Run again goes on where it stopped, no image done twice."""
    spec, tool = installed_runner_and_imgtool(workflow_env, home, tmp_path)
    src = tmp_path / "photos"
    make_images(src, 6, workflow_env)
    write_preset(home.presets)
    hold = tool / "hold"  # the image app does the first image, then waits while this exists
    hold.write_text("")
    names = [f"img{i:03d}.png" for i in range(6)]

    async def go() -> None:
        app = RecordingApp(home, GPU)
        async with app.run_test(size=(100, 40)) as pilot:
            screen = await open_workflow(pilot, app)
            await pick_last_preset_and_folder(pilot, screen, src)
            await pilot.press("enter")
            # The first image done reaches the screen (its Progress event), then Escape.
            await until(
                pilot, lambda: screen.last and screen.last.done >= 1, timeout=180, what="one image"
            )
            await pilot.press("escape")  # asks first
            assert isinstance(app.screen, ConfirmScreen)
            assert screen.phase == "running"
            await pilot.press("y")
            await until(pilot, lambda: screen.job.cancelled, what="the cancel sent")
            hold.unlink()  # the image in flight may finish now; then the batch stops
            await until(pilot, lambda: screen.phase == "cancelled", timeout=120, what="cancel")
            assert "cancelled" in text_of(screen, "#batch-summary")
            done_first = (tool / "processed.log").read_text().split()
            assert len(done_first) in (1, 2), done_first  # the first, and any in flight
            run_button = screen.query_one("#run", Button)
            await until(pilot, lambda: app.focused is run_button, what="Run again focused")
            assert str(run_button.label) == "Run again"

            await pilot.press("enter")  # Run again: resumes
            await until(pilot, lambda: screen.phase == "done", timeout=180, what="the rest")
            assert "invert-test: 6 done, 0 failed of 6" in text_of(screen, "#batch-summary")
            assert f"({6 - len(done_first)} this run" in text_of(screen, "#batch-summary")

    try:
        supervisor.start(home, Settings(), spec)
        run(go())
    finally:
        supervisor.stop(home, "imgtool")
    assert sorted((tool / "processed.log").read_text().split()) == names  # none twice


def test_workflow_missing_folder_is_a_sentence(home: Home, tmp_path: Path) -> None:
    """A folder that is not there (or a file) is answered on the screen, focus back in the
    field; a real folder without the workflow runner installed says how to get it, in the
    TUI's words (no command line)."""
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")

    async def go() -> None:
        app = RecordingApp(home, GPU)
        async with app.run_test(size=(100, 40)) as pilot:
            screen = await open_workflow(pilot, app)
            await pick_last_preset_and_folder(pilot, screen, tmp_path / "no-such-photos")
            await pilot.press("enter")
            problem = text_of(screen, "#folder-problem")
            assert f"There is no folder {tmp_path / 'no-such-photos'}." in problem, problem
            assert screen.phase == "choosing"
            folder = screen.query_one("#folder", Input)
            await until(pilot, lambda: app.focused is folder, what="the folder field focused")

            folder.value = str(a_file)
            await pilot.press("enter")
            assert "is a file, not a folder" in text_of(screen, "#folder-problem")

            folder.value = str(tmp_path)  # there, but the runner is not installed
            await pilot.press("enter")
            await until(pilot, lambda: screen.phase == "failed", what="the runner's absence")
            assert text_of(screen, "#folder-problem") == ""
            assert "The workflow runner is not installed." in text_of(screen, "#batch-summary")
            assert "the Install button (key i)" in text_of(screen, "#batch-summary")
            assert commands_shown(app) == []

            await pilot.press("escape")  # back on Home, its button opens the screen too
            assert isinstance(app.screen, HomeScreen)
            await pilot.click("#open-workflow")
            assert isinstance(app.screen, WorkflowScreen)

    run(go())


def test_preset_catalogue_has_descriptions_and_the_users_own(home: Home) -> None:
    """The picker's list: each bundled preset with its description, then the user's own from
    the data folder (a name `darkroom run` takes too), and a broken file as a sentence."""
    write_preset(home.presets, name="mine")
    (home.presets / "broken.yaml").write_text("name: [unclosed\n")
    found = {p.name: p for p in presets.catalogue(home)}
    assert found["old-photo"].bundled and found["old-photo"].source == "old-photo"
    bundled_file = yaml.safe_load((bundled.presets_dir() / "old-photo.yaml").read_text())
    assert found["old-photo"].description == bundled_file["description"]
    assert all(p.description != "No description." for p in found.values() if p.bundled)
    assert found["mine"].source == str(home.presets / "mine.yaml") and not found["mine"].bundled
    assert "This file cannot be read" in found["broken"].description
    assert presets.source_of(home, "mine") == str(home.presets / "mine.yaml")
    assert presets.source_of(home, "old-photo") == "old-photo"
    assert presets.source_of(home, "nothing-such") == "nothing-such"


def test_a_hint_naming_darkroom_run_points_to_the_workflow_screen() -> None:
    from manager.tui.words import no_commands

    text = "Start it with `darkroom start restorer` (or run the preset with `darkroom run`)."
    assert no_commands(text) == (
        "Start it with the Start button (key s) (or run the preset with Workflow (key w on Home))."
    )
