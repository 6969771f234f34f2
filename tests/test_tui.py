"""Pilot tests of the TUI's screens against the real core, in a temporary DARKROOM_HOME:
a real install of the tiny app (git, uv, local hub) through the Install screen, a cancel
that leaves nothing behind, start/stop/logs/remove on the App screen, the model store,
settings (token never shown) and doctor's fixes."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Log, Select, Static

from manager import config, weights
from manager import state as state_mod
from manager.config import Settings
from manager.errors import DarkroomError
from manager.hardware import load_profile
from manager.home import Home
from manager.recipe import ModelFile
from manager.supervisor import control
from manager.tui.app import DarkroomApp
from manager.tui.screens.app_detail import AppScreen
from manager.tui.screens.install import InstallScreen
from manager.tui.widgets.app_card import AppCard
from manager.views import human_bytes
from tests.fixtures.tinyapp import free_port
from tests.fixtures.tinygit import SHA, WEIGHTS, recipe_text
from tests.fixtures.tui import (
    RecordingApp,
    cards_loaded,
    commands_shown,
    run,
    screen_text,
    until,
)

CPU = load_profile("cpu-only-16gb")
GPU = load_profile("rtx3060-12gb")


# ---------------------------------------------------------------- pure helpers


def test_choice_flags_round_trip_between_the_faces() -> None:
    """The CLI flags that repeat a set of choices parse back to the same choices
    (views.choice_args is the inverse of views.parse_choices)."""
    from manager.planner import Choices
    from manager.views import choice_args, parse_choices

    choices = Choices(variants={"m": "q8", "*": "fp8"}, models=("a", "b"), backend="cpu")
    args = choice_args(choices)
    assert args == ["--variant", "fp8", "--variant", "m=q8", "--models", "a,b", "--cpu"]
    variants = [args[i + 1] for i, a in enumerate(args) if a == "--variant"]
    assert parse_choices(variants, args[args.index("--models") + 1], "--cpu" in args) == choices


# ---------------------------------------------------------------- Home and Install (planning)


def test_home_lists_bundled_apps_and_machine(home: Home) -> None:
    async def go() -> None:
        app = RecordingApp(home, GPU)
        async with app.run_test(size=(80, 24)) as pilot:
            await cards_loaded(pilot)
            ids = {c.data.app for c in app.screen.query(AppCard)}
            assert {"generator", "restorer", "colorizer", "workflow"} <= ids
            await until(pilot, lambda: "RTX 3060" in screen_text(app), what="machine summary")
            assert all(c.data.status == "not installed" for c in app.screen.query(AppCard))
            # The focused card takes the keys; `i` opens its Install screen.
            assert isinstance(app.focused, AppCard)
            await pilot.press("i")
            assert isinstance(app.screen, InstallScreen)

    run(go())


def test_install_screen_replans_on_variant_and_needs_consent(home: Home) -> None:
    async def go() -> None:
        app = RecordingApp(home, GPU)
        async with app.run_test(size=(80, 24)) as pilot:
            await cards_loaded(pilot)
            screen = InstallScreen("generator")
            app.push_screen(screen)
            await until(pilot, lambda: screen.pv is not None, what="the plan")
            assert (
                screen.pv.plan.models[0].variant == "gguf-q5"
            )  # 12 GB: fp8 + offload needs 15.6 GB
            assert "Q5" in str(screen.query_one("#plan-words", Static).render())
            install = screen.query_one("#do-install")
            assert (
                install.disabled and screen.query_one("#accept").display
            )  # gated model: consent first
            # The picker is mounted after the plan arrives: set it only once it is composed
            # (setting a Select's value before its label exists raises inside Textual).
            await until(
                pilot,
                lambda: bool(screen.query("#variant-flux-schnell SelectCurrent #label")),
                what="the variant picker",
            )
            select = screen.query_one("#variant-flux-schnell", Select)
            select.value = "gguf-q4"
            await until(
                pilot, lambda: screen.pv.plan.models[0].variant == "gguf-q4", what="re-plan"
            )
            assert screen.pv.choices.variants == {"flux-schnell": "gguf-q4"}
            assert "Q4" in str(screen.query_one("#plan-words", Static).render())
            await pilot.click("#accept")
            await pilot.pause()
            assert not install.disabled
            # A target that does not exist: the CLI's sentence as an error notification.
            bad = InstallScreen("no-such-app")
            app.push_screen(bad)
            await until(pilot, lambda: bad.phase == "failed", what="the failed plan")
            assert app.noted("There is no app called 'no-such-app'.", "error")

    run(go())


# ---------------------------------------------------------------- real installs


@pytest.fixture
def tiny(home: Home, hub, tiny_repo: Path, tmp_path: Path, pip_sources):
    """A recipe file for the tiny app (git source, one weight file on the local hub) and
    settings saved in the data folder, as a user would have them."""
    hub.add_file("tests/tiny-weights", "weights.bin", WEIGHTS)
    config.save(
        home,
        Settings(
            extra_index_urls=pip_sources.extra_index_urls,
            find_links=pip_sources.find_links,
            hf_endpoint=hub.url,
            port_start=20000,
            port_end=20100,
        ),
    )
    path = tmp_path / "tiny.yaml"
    path.write_text(recipe_text(tiny_repo, "v0.1.0", free_port()))
    yield path
    with contextlib.suppress(DarkroomError):
        control.stop(home, "tiny")


def test_install_screen_says_which_files_are_here_already(home: Home, tiny: Path, hub) -> None:
    """The plan's figures add up (#19): with the weight file in the store already, the
    download is what will be fetched (none), beside the files the app will have."""
    spec = ModelFile(repo="tests/tiny-weights", path="weights.bin", size=len(WEIGHTS), sha256=SHA)
    weights.pull(home, config.load(home), [spec])

    async def go() -> None:
        app = RecordingApp(home, CPU)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = InstallScreen(str(tiny))
            app.push_screen(screen)
            await until(pilot, lambda: screen.pv is not None, what="the plan")
            words = str(screen.query_one("#plan-words", Static).render())
            size = human_bytes(len(WEIGHTS))
            assert f"Download 0 B of model files ({size} of the {size} are here already)" in words
            assert "the files and" in words and "for the app's environment" in words

    run(go())


async def open_install(pilot: Pilot, app: DarkroomApp, recipe: Path) -> InstallScreen:
    """Home → `a` → the recipe path → the Install screen, with both consents ticked."""
    await cards_loaded(pilot)
    await pilot.press("a")
    app.screen.query_one(Input).value = str(recipe)
    await pilot.press("enter")
    screen = app.screen
    assert isinstance(screen, InstallScreen)
    await until(pilot, lambda: screen.pv is not None, what="the plan")
    assert "not part of Darkroom" in str(screen.query_one("#manifest", Static).render())
    assert screen.query_one("#do-install").disabled
    await pilot.click("#trust")
    await pilot.click("#accept")
    await pilot.pause()
    assert not screen.query_one("#do-install").disabled
    return screen


# Every process this test session starts, as Python's audit hook sees it (a hook cannot be
# removed, so it records only while a test holds the list).
_SPAWNED: list[list[str]] | None = None


def _audit(event: str, args: tuple) -> None:
    if event == "subprocess.Popen" and _SPAWNED is not None:
        argv = args[1]
        _SPAWNED.append([argv] if isinstance(argv, str | bytes) else [str(a) for a in argv or []])


sys.addaudithook(_audit)


@pytest.fixture
def spawned():
    """The argv of every child process started while the test runs."""
    global _SPAWNED
    _SPAWNED = []
    yield _SPAWNED
    _SPAWNED = None


def runs_the_cli(argv: list[str]) -> bool:
    """`python -m manager ...` (the CLI), as opposed to the supervisor's runner module."""
    return any(
        a == "-m" and b in ("manager", "manager.cli", "manager.__main__")
        for a, b in zip(argv, argv[1:], strict=False)
    )


def test_tui_imports_nothing_from_the_cli_commands() -> None:
    """Both faces call the core; the TUI never reaches into the CLI's command modules."""
    import ast

    tui = Path(__file__).resolve().parents[1] / "manager" / "tui"
    found = []
    for path in tui.rglob("*.py"):
        package = ["manager", *path.parent.relative_to(tui.parent).parts]
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                names = [".".join([*base, *(node.module or "").split(".")]).strip(".")]
                names += [f"{names[0]}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            found += [(path.name, n) for n in names if n.startswith("manager.commands")]
    assert not found, found


def test_install_start_logs_stop_remove(
    home: Home, tiny: Path, spawned: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """From Home to a running app and back to nothing, by keys alone and without a command
    line on any screen: `a` and the recipe's path, Space on the two consents, Enter on
    Install, `s` to start it, then stop (`x`) and remove (Delete, `y`)."""

    async def go() -> None:
        app = RecordingApp(home, CPU)
        async with app.run_test(size=(80, 24)) as pilot:
            await cards_loaded(pilot)
            await pilot.press("a")
            await pilot.press(*str(tiny))
            await pilot.press("enter")
            screen = app.screen
            assert isinstance(screen, InstallScreen)
            await until(pilot, lambda: screen.pv is not None, what="the plan")
            # Focus lands after the screen has refreshed with the plan: wait for it.
            trust = screen.query_one("#trust")
            await until(pilot, lambda: app.focused is trust, what="the trust switch focused")
            await pilot.press("space")  # trust the recipe; focus moves to the licence
            await pilot.press("space")  # accept it; focus moves to Install
            do_install = screen.query_one("#do-install")
            await until(pilot, lambda: app.focused is do_install, what="Install focused")
            await pilot.press("enter")
            await until(
                pilot, lambda: screen.phase in ("done", "failed"), timeout=120, what="install"
            )
            log = "\n".join(screen.query_one("#install-log", Log).lines)
            assert screen.phase == "done", log
            assert "[env]" in log and "Tiny is installed." in log
            assert "tiny" in state_mod.load(home).apps
            assert app.noted("Tiny is installed.")
            assert not commands_shown(app), commands_shown(app)
            # In-process: uv ran for the env, but no `darkroom install` child did the install.
            assert any("uv" in Path(a).name for argv in spawned for a in argv), spawned
            assert not any(runs_the_cli(argv) for argv in spawned), spawned

            # The offered next step: Start, focused (once the screen has refreshed after the
            # install ended), on the key `s`.
            await until(
                pilot, lambda: app.focused is screen.query_one("#start-app"), what="Start focused"
            )
            await pilot.press("s")
            await until(pilot, lambda: isinstance(app.screen, AppScreen), what="the app screen")
            detail = app.screen
            await until(
                pilot,
                lambda: detail.info is not None and detail.info.status == "ready",
                timeout=60,
                what="the app to be ready",
            )
            await until(
                pilot, lambda: detail.query_one("#app-log", Log).line_count > 0, what="log lines"
            )
            assert "ready at http://127.0.0.1:" in str(
                detail.query_one("#app-status", Static).render()
            )
            assert not commands_shown(app), commands_shown(app)
            # `o` with no browser to start (BROWSER=false fails): the page's address, not "Opened".
            monkeypatch.setenv("BROWSER", "false")
            await pilot.press("o")
            await until(pilot, lambda: app.noted("page is at http://127.0.0.1:"), what="open")
            assert not app.noted("Opened")

            # Home shows it running; its card is reached and opened by keys.
            await pilot.press("escape")
            await until(
                pilot, lambda: app.screen.query("#card-tiny"), timeout=60, what="the tiny card"
            )
            card = app.screen.query_one("#card-tiny", AppCard)
            await until(pilot, lambda: card.data.status == "ready", what="the card's status")
            for _ in app.screen.query(AppCard):
                await pilot.press("down")
            assert app.focused is card
            await pilot.press("enter")
            detail = app.screen
            assert isinstance(detail, AppScreen)
            await pilot.press("x")
            await until(
                pilot,
                lambda: not detail.busy and (detail.info is None or not detail.info.active),
                timeout=120,
                what="stop",
            )
            assert (
                control.app_status(home, "tiny") is None
                or not control.app_status(home, "tiny").active
            )

            await pilot.press("delete")
            await until(pilot, lambda: app.screen.query("#yes"), what="the confirm dialog")
            await pilot.press("y")
            await until(
                pilot, lambda: not isinstance(app.screen, AppScreen), timeout=120, what="remove"
            )
            assert "tiny" not in state_mod.load(home).apps
            assert not home.env_dir("tiny").exists()
            assert app.noted("tiny was removed")

    run(go())


def test_cancel_mid_download_leaves_nothing(home: Home, tiny: Path, hub) -> None:
    release = hub.faults.pause_after("weights.bin", 1000)

    async def go() -> None:
        app = RecordingApp(home, CPU)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_install(pilot, app, tiny)
            await pilot.click("#do-install")
            await until(
                pilot,
                lambda: any(home.staging.glob("journal-*.json")),
                timeout=60,
                what="the install to begin",
            )
            await pilot.click("#cancel")
            # The hub holds the download until the cancel has reached the install: releasing it
            # earlier let the install finish first on a busy machine (then it is not cancelled).
            await until(
                pilot,
                lambda: screen.job is not None and screen.job.interrupted.is_set(),
                timeout=60,
                what="the interrupt to reach the install",
            )
            release.set()
            await until(
                pilot,
                lambda: screen.phase in ("cancelled", "done", "failed"),
                timeout=60,
                what="the cancel",
            )
            assert screen.phase == "cancelled"
            assert app.noted("The install was cancelled")

    run(go())
    assert "tiny" not in state_mod.load(home).apps
    assert not list(home.staging.glob("journal-*.json"))
    assert not home.env_dir("tiny").exists() and not home.app_dir("tiny").exists()


def test_a_gated_model_offers_a_token_field_and_the_retry_installs(
    home: Home, tiny: Path, hub
) -> None:
    """The install fails with the "gated" kind (not text to parse): the screen takes a token,
    saves it like Settings does, and the same install goes again and succeeds."""
    hub.gate("tests/tiny-weights", token="hf_secret_good")

    async def go() -> None:
        app = RecordingApp(home, CPU)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_install(pilot, app, tiny)
            assert not screen.query_one("#token-row").display
            await pilot.click("#do-install")
            await until(
                pilot,
                lambda: screen.phase in ("done", "failed"),
                timeout=120,
                what="the gated error",
            )
            assert screen.phase == "failed" and app.noted("gated", "error")
            assert screen.query_one("#token-row").display
            assert "tiny" not in state_mod.load(home).apps
            screen.query_one("#hf-token", Input).value = "hf_secret_good"
            await pilot.click("#retry-token")
            await until(
                pilot,
                lambda: (
                    screen.phase in ("done", "failed")
                    and screen.job is not None
                    and screen.job.settings.hf_token
                ),
                timeout=120,
                what="the retry",
            )
            log = "\n".join(screen.query_one("#install-log", Log).lines)
            assert screen.phase == "done", log
            assert "hf_secret" not in log and not screen.query_one("#token-row").display

    run(go())
    assert "tiny" in state_mod.load(home).apps
    assert config.load_file(home).hf_token == "hf_secret_good"


def test_cancel_after_the_install_committed_reports_it_installed(home: Home, tiny: Path) -> None:
    """A cancel that lands after state.json was written must not say "cancelled" about an
    app that is installed (it once did, whenever the install was interrupted on its way out)."""
    from manager.events import Message
    from manager.tui.actions import Core, InstallJob

    core = Core(home, CPU)
    pv = core.preview(str(tiny))
    jobs: list[InstallJob] = []

    def report(event: object) -> None:
        if isinstance(event, Message) and "Tiny is installed." in event.text:
            jobs[0].cancel()  # the install has committed and is on its way out

    jobs.append(core.install_job(pv, report=report))
    result = jobs[0].run()
    assert result.ok and not result.cancelled and result.finished_before_cancel, result
    assert "tiny" in state_mod.load(home).apps


# ---------------------------------------------------------------- Models, Settings, Doctor


def test_models_screen_verifies_and_deletes_unused(home: Home, hub) -> None:
    hub.add_file("tests/tiny-weights", "weights.bin", WEIGHTS)
    spec = ModelFile(repo="tests/tiny-weights", path="weights.bin", size=len(WEIGHTS), sha256=SHA)
    weights.pull(home, Settings(hf_endpoint=hub.url), [spec])

    async def go() -> None:
        app = RecordingApp(home, CPU)
        async with app.run_test(size=(80, 24)) as pilot:
            await cards_loaded(pilot)
            await pilot.press("m")
            table = app.screen.query_one("#models-table")
            await until(pilot, lambda: table.row_count == 1, what="the store listing")
            assert table.get_row_at(0)[0] == "tests/tiny-weights/weights.bin"
            assert table.get_row_at(0)[2] == "unused"
            await pilot.press("v")
            await until(pilot, lambda: app.noted("are present and intact"), what="verify")
            await pilot.press("g")
            await until(pilot, lambda: app.screen.query("#yes"), what="the confirm dialog")
            await pilot.click("#yes")
            await until(pilot, lambda: app.noted("Removed 1 file(s)"), what="gc")
            await until(pilot, lambda: "empty" in screen_text(app), what="the empty store")

    run(go())
    assert not list(home.models.rglob("blobs/*"))


def test_settings_saves_through_config_and_never_shows_token(home: Home) -> None:
    async def go() -> None:
        app = RecordingApp(home, CPU)
        async with app.run_test(size=(80, 24)) as pilot:
            await cards_loaded(pilot)
            await pilot.press("c")
            screen = app.screen
            await until(
                pilot,
                lambda: screen.query_one("#set-bind_host", Input).value == "127.0.0.1",
                what="the settings",
            )
            assert str(home.root) in screen_text(app)
            screen.query_one("#set-hf_token", Input).value = "hf_secret_token_9876"
            screen.query_one("#set-hf_endpoint", Input).value = "https://mirror.example"
            screen.query_one("#set-idle_unload_minutes", Input).value = "15"
            await pilot.press("ctrl+s")
            await until(pilot, lambda: app.noted("Saved:"), what="save")
            await until(
                pilot,
                lambda: "****9876" in screen.query_one("#set-hf_token", Input).placeholder,
                what="the masked token",
            )
            assert screen.query_one("#set-hf_token", Input).value == ""
            assert all("secret" not in m for m, _ in app.notes)
            # A bad value: the same sentence as `darkroom config set port_start abc`, file unchanged.
            screen.query_one("#set-port_start", Input).value = "abc"
            await pilot.press("ctrl+s")
            await until(
                pilot,
                lambda: app.noted("'abc' is not a valid value for port_start", "error"),
                what="the error",
            )

    run(go())
    saved = config.load_file(home)
    assert (
        saved.hf_token == "hf_secret_token_9876" and saved.hf_endpoint == "https://mirror.example"
    )
    assert saved.idle_unload_minutes == 15 and saved.port_start == 7860


def test_doctor_shows_findings_and_fixes(home: Home) -> None:
    journal = home.staging / "journal-ghost.json"
    journal.write_text(json.dumps({"action": "install", "app": "ghost", "started": 0}))

    async def go() -> None:
        app = RecordingApp(home, CPU)
        async with app.run_test(size=(80, 24)) as pilot:
            await cards_loaded(pilot)
            await pilot.press("d")
            screen = app.screen
            await until(pilot, lambda: screen.query(".finding"), timeout=60, what="the findings")
            assert "interrupted" in screen_text(app)
            await pilot.click(".fix-one")
            await until(pilot, lambda: app.noted("interrupted: fixed"), timeout=60, what="the fix")

            # The check runs again after the fix; other findings (a small CI disk) may remain.
            def rechecked() -> bool:
                texts = [str(w.render()) for w in screen.query(".finding-text")]
                return (
                    bool(texts)
                    and not any("interrupted" in t for t in texts)
                    and not any(f.topic == "interrupted" for f in screen.findings)
                )

            await until(pilot, rechecked, timeout=60, what="the re-check without the finding")

    run(go())
    assert not journal.exists()
