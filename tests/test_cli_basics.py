"""The read-only commands, run as a user runs them: the real `darkroom` entry point."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from manager.errors import DarkroomError
from manager.home import Home


def darkroom(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "manager", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_recipe_check_broken_file_prints_location_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "id: x\nname: X\ndescription: d\nversion: '1'\nlicense: mit\n"
        "source: {bundled: x}\nlaunch:\n  command: [a]\n  port: nope\n"
    )
    out = darkroom("recipe", "check", str(bad))
    assert out.returncode == 1
    assert f"{bad}:9: launch.port: must be a whole number" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr


def test_recipe_check_good_files_exit_0() -> None:
    recipes = sorted(Path("recipes").glob("*.yaml"))
    out = darkroom("recipe", "check", *map(str, recipes))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(recipes)} of {len(recipes)} recipes are valid" in out.stdout


def test_recipe_check_many_files_in_one_run(tmp_path: Path) -> None:
    source = Path("recipes/generator.yaml").read_text()
    files = []
    for i in range(100):
        path = tmp_path / f"r{i}.yaml"
        path.write_text(source.replace("id: generator", f"id: gen{i}") if i % 10 else "id: [")
        files.append(str(path))
    start = time.perf_counter()
    out = darkroom("recipe", "check", *files)
    elapsed = time.perf_counter() - start
    assert out.returncode == 1 and "90 of 100 recipes are valid" in out.stdout
    print(f"100 recipes checked in {elapsed:.2f} s")  # the figure; the goal lives in bench/


def test_probe_json(home: Home) -> None:
    out = darkroom("probe", "--json")
    data = json.loads(out.stdout)
    assert data["ram_total_gb"] > 0 and isinstance(data["gpus"], list)


def test_plan_with_profile_json() -> None:
    out = darkroom(
        "plan", "generator", "--hardware", "rtx4080-16gb", "--models", "flux-dev", "--json"
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["torch_backend"] == "cu128"
    (model,) = data["models"]
    assert (
        model["variant"] == "gguf-q8" and model["files"][0]["repo"]
    )  # fp8 + offload needs 15.6 GB


def test_plan_text_shows_reasons_and_unknown_app_is_a_sentence() -> None:
    out = darkroom("plan", "generator", "--hardware", "cpu-only-16gb")
    assert out.returncode == 0 and "Why:" in out.stdout and "slow" in out.stdout
    out = darkroom("plan", "photoshop")
    assert out.returncode == 3 and "no app called 'photoshop'" in out.stderr  # not found
    assert "Traceback" not in out.stderr


def test_list_shows_four_apps(home: Home) -> None:
    out = darkroom("list", "--json")
    apps = {row["app"]: row for row in json.loads(out.stdout)}
    assert {"generator", "restorer", "colorizer", "workflow"} <= set(apps)
    assert not apps["generator"]["installed"]


def test_config_token_is_private_and_masked(home: Home) -> None:
    assert darkroom("config", "set", "hf_token", "hf_secretsecret1234").returncode == 0
    mode = stat.S_IMODE(home.config_file.stat().st_mode)
    assert mode == 0o600
    out = darkroom("config", "show")
    assert "secretsecret" not in out.stdout and "****1234" in out.stdout
    bad = darkroom("config", "set", "port_start", "eleven")
    assert bad.returncode == 1 and "not a valid value for port_start" in bad.stderr
    assert darkroom("config", "set", "colour", "red").returncode == 3  # not found
    # the file was left as it was by the failed sets
    assert "hf_secretsecret1234" in home.config_file.read_text()


def test_start_switch_reads_the_same_before_and_after_the_app() -> None:
    from manager.cli import build_parser
    from manager.commands.run import switch_choice

    parser = build_parser()
    for argv, want in (
        (["start", "--switch", "gamma"], ("gamma", "wait")),
        (["start", "gamma", "--switch"], ("gamma", "wait")),
        (["start", "gamma", "--switch=now"], ("gamma", "now")),
        (["start", "--switch=now", "gamma"], ("gamma", "now")),
        (["start", "gamma"], ("gamma", None)),
    ):
        args = parser.parse_args(argv)
        switch_choice(args)
        assert (args.app, args.switch) == want, argv
    with pytest.raises(DarkroomError, match="takes no value but `now`"):
        switch_choice(parser.parse_args(["start", "gamma", "--switch=later"]))


def test_a_relative_data_folder_is_made_absolute(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert Home(Path("data")).root == tmp_path.resolve() / "data"
