"""The two faces show the same things in the same words: the plan, the app list, sizes."""

from __future__ import annotations

import json

import pytest
from rich.text import Text

from manager import planner
from manager import state as state_mod
from manager.catalogue import bundled_recipe
from manager.cli import main
from manager.hardware import load_profile
from manager.home import Home
from manager.state import InstalledApp
from manager.tui.actions import Core
from manager.tui.screens.install import plan_words, why_words
from manager.tui.words import no_commands
from manager.views import human_bytes, plan_summary

RECIPE = """\
id: sidecar
name: Side Car
description: an app from elsewhere
version: "2.0"
license: apache-2.0
source: {git: "https://example.invalid/sidecar.git", revision: v2.0}
python: "3.11"
launch:
  command: ["{env_python}", "-m", "sidecar"]
  port: 7998
"""


def test_sizes_read_the_same_everywhere() -> None:
    assert [human_bytes(n) for n in (999, 1000, 1_234_567, 12e9, 3e15)] == [
        "999 B",
        "1.0 KB",
        "1.2 MB",
        "12.0 GB",
        "3000.0 TB",
    ]


@pytest.mark.parametrize("profile", ["cpu-only-16gb", "laptop-rtx4060-8gb"])
def test_cli_and_tui_print_the_same_plan_sentences(
    profile: str, capsys: pytest.CaptureFixture
) -> None:
    plan = planner.plan(bundled_recipe("generator"), load_profile(profile), planner.Choices())
    summary = plan_summary(plan)
    assert main(["plan", "generator", "--hardware", profile]) == 0
    cli = capsys.readouterr().out
    preview = type("Preview", (), {"plan": plan})()
    tui = Text.from_markup(plan_words(preview) + "\n" + why_words(preview)).plain
    for line in [
        f"{summary.title} on {summary.hardware}",
        *summary.lines,
        *summary.reasons,
        *summary.warnings,
    ]:  # the TUI says the same, with a button or key where the CLI names a command
        assert line in cli and no_commands(line) in tui, line
    assert len(summary.models) == len(plan.models) and all(m.name in tui for m in plan.models)


def test_a_file_of_unknown_size_is_not_shown_as_0_bytes(capsys: pytest.CaptureFixture) -> None:
    """The BOPBTL files' sizes are unknown until they download (size 0 in the recipe): the plan
    said "(0 B of files)" and a download total as if exact. Now the model says the sizes come
    with the download, and the total is a lower bound, in the CLI and the TUI's variant picker."""
    from manager.tui.screens.install import variant_option

    recipe = bundled_recipe("restorer")
    models = ("gfpgan", "scratch-detector")
    plan = planner.plan(recipe, load_profile("rtx3060-12gb"), planner.Choices(models=models))
    summary = plan_summary(plan)
    (scratch,) = [line for line in summary.models if line.startswith("Old-photo scratch")]
    assert "0 B" not in scratch and "file sizes known once they download" in scratch
    assert summary.totals.startswith("Download at least ")
    assert (
        main(["plan", "restorer", "--hardware", "rtx3060-12gb", "--models", ",".join(models)]) == 0
    )
    assert "0 B of files" not in capsys.readouterr().out
    model = recipe.model("scratch-detector")
    option = variant_option(model, model.variants[0], "cuda")
    assert "0 B" not in option and "known once they download" in option
    known = plan_summary(
        planner.plan(recipe, load_profile("rtx3060-12gb"), planner.Choices(models=("gfpgan",)))
    )
    assert "at least" not in known.totals and "of files)" in known.models[0]


def test_list_and_home_cards_are_one_listing(home: Home, capsys: pytest.CaptureFixture) -> None:
    """A third-party app is listed under its recipe's name by both faces (the CLI once
    printed its id as its name)."""
    state_mod.save(
        home,
        state_mod.State(
            apps={
                "sidecar": InstalledApp(
                    app="sidecar",
                    version="2.0",
                    recipe_source="/recipes/sidecar.yaml",
                    recipe_text=RECIPE,
                )
            }
        ),
    )
    assert main(["list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    cards = Core(home, load_profile("cpu-only-16gb")).cards()
    assert listed == [
        {
            "app": c.app,
            "name": c.name,
            "description": c.description,
            "installed": c.installed,
            "version": c.version,
        }
        for c in cards
    ]
    side = next(row for row in listed if row["app"] == "sidecar")
    assert side["name"] == "Side Car" and side["installed"] and side["version"] == "2.0"
    assert any(row["app"] == "generator" and not row["installed"] for row in listed)
