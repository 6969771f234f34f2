"""The tiny app itself: the protocol it serves (other areas' tests rely on it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from manager.recipe import Recipe
from tests.fixtures.tinyapp import get_json, start_tinyapp


def test_tinyapp_serves_health_info_unload_and_a_page(tinyapp_server: str) -> None:
    code, health = get_json(tinyapp_server + "/api/health")
    assert (code, health["status"]) == (200, "ready")
    _, info = get_json(tinyapp_server + "/api/info")
    assert info["app"] == "tinyapp" and info["loaded"] is True and info["loads"] == 1
    code, unloaded = get_json(tinyapp_server + "/api/unload", data=b"")
    assert code == 200 and unloaded["loaded"] is False
    assert get_json(tinyapp_server + "/api/info")[1]["loaded"] is False
    # The next task request loads the model again.
    code, echo = get_json(tinyapp_server + "/api/echo", data=json.dumps({"x": 1}).encode())
    assert code == 200 and echo == {"echo": {"x": 1}, "loads": 2}
    assert get_json(tinyapp_server + "/api/info")[1]["loaded"] is True
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
        tinyapp_server + "/"
    ) as r:
        assert b"<h1>tinyapp</h1>" in r.read()


def test_tinyapp_reports_models_device_and_vram() -> None:
    models = {"tiny": {"variant": "q8", "offload": "none", "files": {}}}
    url, proc = start_tinyapp(
        {
            "DARKROOM_MODELS": json.dumps(models),
            "DARKROOM_DEVICE": "cuda:1",
            "TINYAPP_VRAM_GB": "2.5",
            "DARKROOM_APP": "tiny2",
        }
    )
    try:
        info = get_json(url + "/api/info")[1]
        assert info["models"] == models and info["device"] == "cuda:1" and info["app"] == "tiny2"
        assert info["vram_gb"] == 2.5
        get_json(url + "/api/unload", data=b"")
        assert get_json(url + "/api/info")[1]["vram_gb"] == 0.0
    finally:
        proc.kill()
        proc.wait()


def test_tinyapp_can_crash_on_start(tinyapp_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(tinyapp_dir), "TINYAPP_CRASH_ON_START": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "tinyapp"], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 1 and "crashing on start" in done.stdout


def test_tinyapp_recipe_is_valid(tinyapp_recipe: Recipe) -> None:
    assert tinyapp_recipe.id == "tinyapp"
    assert tinyapp_recipe.launch.command == ["{env_python}", "-m", "tinyapp"]
    assert tinyapp_recipe.launch.health == "/api/health"


def test_tinyapp_git_recipe_points_at_a_real_repository(tinyapp_git_recipe: Recipe) -> None:
    repo = Path(tinyapp_git_recipe.source.git)
    assert (repo / "pyproject.toml").is_file() and (repo / "tinyapp" / "server.py").is_file()
    tags = subprocess.run(["git", "tag"], cwd=repo, capture_output=True, text=True).stdout.split()
    assert tinyapp_git_recipe.source.revision in tags
