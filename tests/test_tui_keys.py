"""The TUI for a person who does not program (#19): a focus that can be predicted and is
always somewhere useful, every screen worked by keys, no command lines to type anywhere,
plan figures that add up, a header that follows the disk, and a stopped app's screen that
says something. Fast: no app environment is built here (the keyboard-only install and start
of the tiny app is in test_tui.py, beside its fixtures)."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest
from rich.text import Text
from textual.containers import ScrollableContainer
from textual.widgets import Button, Checkbox, DataTable, Input, Log, Static

from manager import state as state_mod
from manager.catalogue import bundled_recipe
from manager.errors import DarkroomError
from manager.hardware import load_profile
from manager.home import Home
from manager.planner import GB_PER_GIB, Choices, plan
from manager.supervisor import control, runfile
from manager.tui.screens.app_detail import AppScreen
from manager.tui.screens.home import HomeScreen
from manager.tui.screens.install import InstallScreen, plan_words, variant_option
from manager.tui.widgets.app_card import AppCard
from manager.views import human_bytes
from tests.fixtures.machines import LAPTOP_32
from tests.fixtures.tui import (
    COMMAND_LINE,
    RecordingApp,
    cards_loaded,
    commands_shown,
    run,
    screen_text,
    until,
)

GPU = load_profile("rtx3060-12gb")
PROFILES = sorted(p.stem for p in (Path(__file__).parents[1] / "manager" / "profiles").glob("*"))


def card_ids(app) -> list[str]:
    return [c.data.app for c in app.screen.query(AppCard)]


def focused_id(app) -> str | None:
    return app.focused.data.app if isinstance(app.focused, AppCard) else None


# ---------------------------------------------------------------- finding 3: focus and keys


def test_home_arrows_walk_the_cards_in_order_and_escape_does_nothing(home: Home) -> None:
    """Up/Down (and Tab) move card by card in the listed order and stop at the ends; focus
    never lands on a card's button; Escape opens nothing and leaves focus where it was;
    Enter opens the focused card and Escape comes back to the same card."""

    async def go() -> None:
        app = RecordingApp(home, GPU)
        async with app.run_test(size=(80, 24)) as pilot:
            await cards_loaded(pilot)
            order = card_ids(app)
            assert len(order) >= 4 and focused_id(app) == order[0]
            for expected in order[1:]:
                await pilot.press("down")
                assert focused_id(app) == expected, app.focused
            await pilot.press("down")  # the last card stays focused
            assert focused_id(app) == order[-1]
            for expected in reversed(order[:-1]):
                await pilot.press("up")
                assert focused_id(app) == expected, app.focused
            await pilot.press("up")
            assert focused_id(app) == order[0]
            await pilot.press("tab", "tab")
            assert focused_id(app) == order[2]
            await pilot.press("shift+tab")
            assert focused_id(app) == order[1]
            for _ in range(3):
                await pilot.press("escape")
                assert isinstance(app.screen, HomeScreen) and focused_id(app) == order[1]
            # Enter opens the focused (not installed) app's Install screen; Escape goes back.
            await pilot.press("enter")
            assert isinstance(app.screen, InstallScreen) and app.screen.target == order[1]
            await pilot.press("escape")
            assert isinstance(app.screen, HomeScreen) and focused_id(app) == order[1]
            # Focus shows: the focused card is drawn unlike the others.
            await pilot.pause()
            cards = list(app.screen.query(AppCard))
            other = next(c for c in cards if c is not app.focused)
            assert app.focused.styles.border_left != other.styles.border_left
            assert app.focused.styles.background != other.styles.background
            # No key ever reached a card's button.
            assert not any(b.can_focus for b in app.screen.query(AppCard).first().query(Button))

    run(go())


def test_every_screen_opens_focused_and_escape_goes_back(home: Home) -> None:
    """Each screen opens with the widget a person uses first focused, takes its keys, and
    Escape returns to Home with the same card focused."""

    async def back_home(pilot, app, card: str) -> None:
        await pilot.press("escape")
        assert isinstance(app.screen, HomeScreen) and focused_id(app) == card

    async def go() -> None:
        app = RecordingApp(home, GPU)
        async with app.run_test(size=(80, 24)) as pilot:
            await cards_loaded(pilot)
            card = focused_id(app)

            await pilot.press("c")  # Settings: the first field, and typing goes into it
            settings = app.screen
            assert app.focused is settings.query_one("#set-hf_token", Input)
            await until(
                pilot,
                lambda: settings.query_one("#set-bind_host", Input).value == "127.0.0.1",
                what="the settings",
            )
            await pilot.press("h", "f", "_", "x")
            assert settings.query_one("#set-hf_token", Input).value == "hf_x"
            await pilot.press("tab")  # on to the next field, never a scroll box
            assert app.focused is settings.query_one("#set-hf_endpoint", Input)
            await back_home(pilot, app, card)

            await pilot.press("m")  # Models: the table
            assert isinstance(app.focused, DataTable)
            await back_home(pilot, app, card)

            await pilot.press("d")  # Doctor: a button (Check again, or a finding's Fix)
            assert isinstance(app.focused, Button)
            await back_home(pilot, app, card)

            await pilot.press("a")  # Add recipe: the field for the path
            assert isinstance(app.focused, Input)
            await back_home(pilot, app, card)

            # Install (the generator, gated): the consent to tick, then Install, by keys only.
            generator = card_ids(app).index("generator")
            for _ in range(generator - card_ids(app).index(card)):
                await pilot.press("down")
            assert focused_id(app) == "generator"
            await pilot.press("i")
            install = app.screen
            assert isinstance(install, InstallScreen)
            assert isinstance(app.focused, Button | Checkbox)
            await until(pilot, lambda: install.pv is not None, what="the plan")
            await pilot.pause()
            assert app.focused is install.query_one("#accept", Checkbox)
            await pilot.press("space")
            assert install.query_one("#accept", Checkbox).value
            assert app.focused is install.query_one("#do-install", Button)
            assert not install.query_one("#do-install", Button).disabled
            await back_home(pilot, app, "generator")
            assert not isinstance(app.focused, ScrollableContainer)

    run(go())


# ---------------------------------------------------------------- finding 4: no command lines


def test_core_hints_become_buttons_and_keys() -> None:
    """Real sentences from the core, as the TUI shows them: the step, never a command."""
    from manager.tui.words import error_text, no_commands

    home = Home(Path("/nonexistent-darkroom-home"))
    cases = []
    for call in (
        lambda: control.open_app(home, "tiny"),
        lambda: control.logs(home, "tiny"),
    ):
        with pytest.raises(DarkroomError) as info:
            call()
        cases.append(info.value)
    texts = [error_text(exc) for exc in cases]
    assert all("darkroom" in f"{exc.message} {exc.hint}" for exc in cases)  # the CLI's words
    assert all(not COMMAND_LINE.search(t) for t in texts), texts
    assert "the Start button (key s)" in texts[0]
    assert no_commands("$ darkroom install tiny --json") == (
        "the Install button (key i) on its card"
    )


def test_no_screen_shows_a_command_line(home: Home) -> None:
    """Home, Install (a gated plan whose warning names `darkroom config set`), an installed
    app's screen and its failed start, Doctor with a finding whose fix is a command, Models
    and Settings: no `darkroom ...` anywhere, the notifications included."""
    import json

    seen: dict[str, list[str]] = {}
    (home.staging / "journal-ghost.json").write_text(
        json.dumps({"action": "install", "app": "ghost", "started": 0})
    )
    state_mod.save(
        home,
        state_mod.State(apps={"colorizer": state_mod.InstalledApp(app="colorizer", version="1")}),
    )

    async def go() -> None:
        app = RecordingApp(home, GPU)
        async with app.run_test(size=(100, 40)) as pilot:
            await cards_loaded(pilot)
            await until(pilot, lambda: "RTX 3060" in screen_text(app), what="machine")
            seen["home"] = commands_shown(app)
            screen = InstallScreen("generator")
            app.push_screen(screen)
            await until(pilot, lambda: screen.pv is not None, what="the plan")
            assert "Hugging Face token" in screen_text(app)  # the gated warning, reworded
            seen["install"] = commands_shown(app)
            await pilot.press("escape")
            app.open_app("colorizer")
            await until(pilot, lambda: app.screen.record is not None, what="the app screen")
            await pilot.press("s")  # no environment: the start fails with the core's hint
            await until(pilot, lambda: any(s == "error" for _m, s in app.notes), what="error")
            seen["app"] = commands_shown(app)
            await pilot.press("escape")
            # colorizer is installed without an environment: doctor reports it as a finding
            await pilot.press("d")
            await until(pilot, lambda: app.screen.query(".finding"), timeout=60, what="doctor")
            seen["doctor"] = commands_shown(app)
            for key in ("escape", "m", "escape", "c"):
                await pilot.press(key)
            seen["settings"] = commands_shown(app)

    run(go())
    assert not any(seen.values()), seen


# ---------------------------------------------------------------- finding 5: plan figures


@pytest.mark.parametrize("profile", [*PROFILES, "laptop-32"])
def test_generator_plan_figures_add_up(profile: str) -> None:
    """The picker's figure for the chosen variant is the plan's download; the download, the
    environment and the disk needed add up in the sentence itself; the RAM the plan counts
    on fits the machine's, in the same unit the machine line uses."""
    hw = LAPTOP_32 if profile == "laptop-32" else load_profile(profile)
    recipe = bundled_recipe("generator")
    p = plan(recipe, hw, Choices())
    words = Text.from_markup(plan_words(type("Preview", (), {"plan": p})())).plain
    (m,) = p.models
    model = recipe.model(m.model)
    chosen = variant_option(model, model.variant(m.variant), p.backend)
    assert f"{human_bytes(p.download_bytes)} of files" in chosen, (chosen, words)
    assert f"Download {human_bytes(p.download_bytes)} of model files" in words, words
    found = re.search(
        r"disk needed about ([\d.]+) GB: the files and ([\d.]+) GB for the app's environment",
        words,
    )
    assert found, words
    disk, env = (float(x) for x in found.groups())
    assert abs(disk - (p.download_bytes / 1e9 + env)) <= 0.11, words
    ram = hw.ram_total_gb * GB_PER_GIB
    for said in re.findall(r"this machine has ([\d.]+) GB RAM", " ".join(p.reasons)):
        assert float(said) == pytest.approx(ram, abs=0.05)
    usable = [float(x) for x in re.findall(r"([\d.]+) GB usable RAM", " ".join(p.reasons))]
    assert all(u <= ram for u in usable)
    if not p.warnings or not any("RAM" in w and "need" in w for w in p.warnings):
        assert model.variant(m.variant).ram_gb <= ram


def test_install_screen_and_home_speak_of_the_same_ram(home: Home) -> None:
    """The Home line and the plan's reasons give this machine's RAM as one figure."""

    async def go() -> None:
        app = RecordingApp(home, GPU)
        async with app.run_test(size=(100, 30)) as pilot:
            await cards_loaded(pilot)
            await until(pilot, lambda: "RTX 3060" in screen_text(app), what="machine")
            header = re.search(r"([\d.]+) GB RAM", screen_text(app)).group(1)
            screen = InstallScreen("generator")
            app.push_screen(screen)
            await until(pilot, lambda: screen.pv is not None, what="the plan")
            why = str(screen.query_one("#plan-why", Static).render())
            assert f"this machine has {header} GB RAM" in why, (header, why)
            chosen = screen.pv.plan.models[0].variant
            await until(
                pilot,
                lambda: (
                    screen.query("#variant-flux-schnell")
                    and screen.query_one("#variant-flux-schnell").value == chosen
                ),
                what="the picker",
            )

    run(go())


# ---------------------------------------------------------------- finding 7: fresh figures


def test_header_free_disk_follows_the_disk(small_disk, monkeypatch) -> None:
    """The free-disk figure on Home changes when what is on the disk changes (the probe's
    figure once stood there for the whole session)."""
    root = small_disk(64) / "darkroom-home"
    monkeypatch.setenv("DARKROOM_HOME", str(root))
    home = Home(root).ensure()

    def free() -> str:
        return f"{human_bytes(shutil.disk_usage(root).free)} free disk"

    async def go() -> None:
        app = RecordingApp(home)  # this machine, probed: its real disk
        async with app.run_test(size=(100, 24)) as pilot:
            await until(pilot, lambda: free() in screen_text(app), what="the first figure")
            before = free()
            (root / "filler.bin").write_bytes(b"\0" * 16_000_000)
            assert free() != before
            await until(pilot, lambda: free() in screen_text(app), what="the new figure")

    run(go())


def test_stopped_app_screen_says_what_it_has(home: Home) -> None:
    """A stopped (never started) app's screen: what it does, its model files and sizes, a
    line about its log, and Start focused so Enter starts it."""
    record = state_mod.InstalledApp(
        app="colorizer",
        version="1",
        models=[
            state_mod.InstalledModel(
                model="ddcolor",
                variant="fp32",
                files=[
                    state_mod.InstalledFile(
                        repo="r/ddcolor", revision="main", path="ddcolor.pth", size=912_000_000
                    )
                ],
            )
        ],
    )
    state_mod.save(home, state_mod.State(apps={"colorizer": record}))
    recipe = bundled_recipe("colorizer")

    async def go() -> None:
        app = RecordingApp(home, GPU)
        async with app.run_test(size=(80, 24)) as pilot:
            await cards_loaded(pilot)
            app.open_app("colorizer")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, AppScreen)
            await until(pilot, lambda: screen.query("#app-about"), what="the app screen")
            about = screen.query_one("#app-about", Static)
            await until(pilot, lambda: "ddcolor.pth" in str(about.render()), what="the models")
            text = str(about.render())
            assert recipe.description[:30] in text
            assert "912.0 MB" in text
            assert screen.query_one("#app-nolog").display
            assert app.focused is screen.query_one("#app-start", Button)
            assert app.focused.display
            # Once the app has a log (it ran before), its last lines are shown.
            log = runfile.app_log(home, "colorizer")
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_text("".join(f"line {i}\n" for i in range(300)))
            await until(
                pilot,
                lambda: "line 299" in screen.query_one("#app-log", Log).lines[-1:],
                what="the last log lines",
            )
            assert not screen.query_one("#app-nolog").display

    run(go())


# ---------------------------------------------------------------- from #18: the TUI's imports


def _imports(path: Path, package: list[str]) -> list[str]:
    """Every manager.* module a file imports, at the top or inside a function."""
    names = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module or "").split(".")]).strip(".")
            names.append(module)
            names += [f"{module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names


def test_tui_modules_import_no_cycle_and_no_private_textual() -> None:
    root = Path(__file__).resolve().parents[1] / "manager" / "tui"
    modules = {}
    private = []
    for path in root.rglob("*.py"):
        parts = ["manager", *path.relative_to(root.parent).with_suffix("").parts]
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = parts[:-1]
        found = _imports(path, package)
        private += [(path.name, n) for n in found if n.startswith("textual._")]
        modules[name] = found
    graph = {m: {n for n in found if n in modules and n != m} for m, found in modules.items()}

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    return [*trail, nxt]
                if nxt not in trail:
                    stack.append((nxt, [*trail, nxt]))
        return None

    cycles = [c for m in graph if (c := cycle_from(m))]
    assert not cycles, cycles[0]
    assert not private, private
