"""Each kind of failure reaches the command line with its own exit code (the README's table),
raised where the kind is known: the hub (unreachable; gated is in test_weights_cli), the
disk precheck, the app lock, the recipe loader, the app catalogue."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
from filelock import FileLock

from manager import config
from manager.cli import main
from manager.errors import (
    EXIT_CODES,
    BadRecipe,
    Cancelled,
    Conflict,
    DarkroomError,
    DiskFull,
    Gated,
    NotFound,
    Offline,
)
from manager.home import Home

README = Path(__file__).resolve().parents[1] / "README.md"
WEIGHTS = b"weights " * 100


def recipe_file(folder: Path, repo: str, size: int = len(WEIGHTS)) -> Path:
    """An app recipe with one model file in `repo` (only the model half is used here)."""
    path = folder / "gate-app.yaml"
    path.write_text(
        f"""\
id: gateapp
name: Gate app
description: an app whose model lives in {repo}
version: "1.0"
license: apache-2.0
source: {{git: "https://example.invalid/gateapp.git", revision: v1.0}}
python: "3.11"
launch:
  command: ["{{env_python}}", "-m", "gateapp"]
  port: 7999
models:
  - id: w
    name: Weights
    license: apache-2.0
    commercial: true
    variants:
      - id: fp32
        label: fp32
        precision: fp32
        quality: 100
        vram_gb: 0.1
        ram_gb: 0.1
        files:
          - {{repo: {repo}, path: w.bin, size: {size}}}
""",
        "utf-8",
    )
    return path


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pull(recipe: Path) -> list[str]:
    return ["models", "pull", str(recipe), "--hardware", "cpu-only-16gb"]


def test_exit_codes_are_distinct_and_the_readme_lists_each() -> None:
    assert len(set(EXIT_CODES.values())) == len(EXIT_CODES)
    kinds = (NotFound, Conflict, BadRecipe, Gated, Offline, DiskFull, Cancelled)
    assert all(issubclass(k, DarkroomError) for k in kinds)  # every `except DarkroomError` holds
    rows = dict(re.findall(r"^\|\s*(\d+)\s*\|\s*([a-z ]+?)\s*\|", README.read_text("utf-8"), re.M))
    assert {int(code): kind.replace(" ", "-") for code, kind in rows.items() if kind != "done"} == {
        code: kind for kind, code in EXIT_CODES.items()
    }


def test_unknown_app_exits_not_found(home: Home, capsys: pytest.CaptureFixture) -> None:
    assert main(["plan", "no-such-app"]) == NotFound.exit_code == 3
    assert "There is no app called 'no-such-app'" in capsys.readouterr().err


def test_broken_recipe_exits_bad_recipe(
    home: Home, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("id: broken\nname: [unclosed\n", "utf-8")
    assert main(["install", str(bad), "--yes"]) == BadRecipe.exit_code == 5
    assert "broken.yaml" in capsys.readouterr().err


def test_unreachable_hub_and_offline_mode_exit_offline(
    home: Home, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    recipe = recipe_file(tmp_path, "acme/plain")
    config.set_value(home, "hf_endpoint", f"http://127.0.0.1:{closed_port()}")
    assert main(pull(recipe)) == Offline.exit_code == 7
    assert "Could not reach the Hugging Face hub" in capsys.readouterr().err
    config.set_value(home, "offline", "true")
    assert main(pull(recipe)) == Offline.exit_code
    assert "Offline mode is on" in capsys.readouterr().err


def test_not_enough_disk_exits_disk_full(
    home: Home, hub, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    hub.add_placeholder("acme/huge", "w.bin", size=5 * 10**12)
    config.set_value(home, "hf_endpoint", hub.url)
    assert (
        main(pull(recipe_file(tmp_path, "acme/huge", size=5 * 10**12))) == DiskFull.exit_code == 8
    )
    assert "Not enough disk space" in capsys.readouterr().err
    assert hub.stats("w.bin").requests == 0


def test_an_app_another_process_is_installing_exits_conflict(
    home: Home, capsys: pytest.CaptureFixture
) -> None:
    lock = FileLock(str(home.run / "tiny.install.lock"))  # another Darkroom, mid-install
    with lock:
        assert main(["remove", "tiny", "--yes"]) == Conflict.exit_code == 4
    assert "Another Darkroom process is busy with installing tiny" in capsys.readouterr().err


def _last_event(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_json_output_ends_with_an_error_event_of_its_kind(
    home: Home, hub, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """With --json a failure is the last JSON line: its kind, sentence, hint and exit code, so
    a face offers the next step (a token field on 'gated') without reading the words."""
    hub.add_file("acme/locked", "w.bin", WEIGHTS)
    hub.gate("acme/locked", token="hf_with_access")
    config.set_value(home, "hf_endpoint", hub.url)
    assert main([*pull(recipe_file(tmp_path, "acme/locked")), "--json"]) == Gated.exit_code
    event = _last_event(capsys.readouterr().out)
    assert (event["type"], event["kind"], event["exit_code"]) == ("Error", "gated", 6)
    assert "acme/locked" in event["message"] and "hf_token" in event["hint"]

    config.set_value(home, "offline", "true")
    assert main([*pull(recipe_file(tmp_path, "acme/locked")), "--json"]) == Offline.exit_code
    event = _last_event(capsys.readouterr().out)
    assert (event["kind"], event["exit_code"]) == ("offline", 7) and event["hint"]
