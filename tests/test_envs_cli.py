"""`darkroom env ...` and `darkroom cache prune` as a user runs them: real processes, real uv,
package sources given through Darkroom's environment overrides."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from manager import envs, uvtool
from manager.home import Home

REPO = Path(__file__).resolve().parent.parent

RECIPE = """\
id: demo
name: Demo
description: A tiny app for environment tests.
version: "1.0"
license: mit
source:
  git: https://example.invalid/demo.git
  revision: v1
python: "3.11"
packages: ["{package}"]
check_import: dr_alpha
launch:
  command: ["{{env_python}}", "-m", "dr_alpha"]
  port: 7999
"""


@pytest.fixture
def cli(home: Home, wheelhouse, tmp_path: Path):
    env = {
        **os.environ,
        "DARKROOM_HOME": str(home.root),
        "DARKROOM_INDEX_URL": wheelhouse.index.as_uri(),
        "DARKROOM_FIND_LINKS": str(wheelhouse.folder),
    }

    def run(*argv: str, extra_env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "manager", *argv],
            capture_output=True,
            text=True,
            env={**env, **(extra_env or {})},
            cwd=REPO,
            timeout=300,
        )

    return run


def write_recipe(tmp_path: Path, package: str) -> Path:
    path = tmp_path / f"demo-{package.replace('=', '')}.yaml"
    path.write_text(RECIPE.format(package=package))
    return path


def lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_env_commands_round_trip(cli, home: Home, tmp_path: Path) -> None:
    v1, v2 = write_recipe(tmp_path, "dr-alpha==1.0"), write_recipe(tmp_path, "dr-alpha==2.0")
    done = cli("env", "build", "demo", "--recipe", str(v1), "--json")
    assert done.returncode == 0, done.stderr
    stream = lines(done.stdout)
    assert {"Stage", "Result"} <= {e["type"] for e in stream}
    assert stream[-1]["type"] == "Result" and stream[-1]["packages"] == {"dr-alpha": "==1.0"}

    rollback = cli("env", "rollback", "demo")
    assert rollback.returncode == 4 and "no earlier environment" in rollback.stderr  # conflict
    assert "Traceback" not in rollback.stderr

    assert cli("env", "update", "demo", "--recipe", str(v2)).returncode == 0
    assert cli("env", "rollback", "demo").returncode == 0
    assert envs.info(home, "demo").packages == {"dr-alpha": "==1.0"}

    assert cli("env", "verify", "demo").returncode == 0
    subprocess.run(
        [
            str(uvtool.uv_bin()),
            "pip",
            "uninstall",
            "--python",
            str(envs.env_python(home, "demo")),
            "dr-alpha",
        ],
        check=True,
        capture_output=True,
        env=uvtool.child_env(home, "hardlink"),
    )
    drift = cli("env", "verify", "demo")
    assert drift.returncode == 1 and "dr-alpha is missing" in drift.stderr
    as_json = json.loads(cli("env", "verify", "demo", "--json").stdout)
    assert as_json["ok"] is False and as_json["missing"] == ["dr-alpha"]

    assert cli("env", "repair", "demo").returncode == 0
    assert cli("env", "verify", "demo").returncode == 0

    listed = json.loads(cli("env", "list", "--json").stdout)
    assert [row["app"] for row in listed] == ["demo"]
    pruned = json.loads(cli("cache", "prune", "--json").stdout)
    assert pruned["after_bytes"] <= pruned["before_bytes"]

    assert cli("env", "remove", "demo").returncode == 0
    assert json.loads(cli("env", "list", "--json").stdout) == []
    gone = cli("env", "verify", "demo")
    assert gone.returncode == 3 and "has no environment" in gone.stderr  # not found


def test_cli_errors_are_one_sentence(cli, tmp_path: Path) -> None:
    unknown = cli("env", "build", "no-such-app")
    assert unknown.returncode == 3 and "There is no app called 'no-such-app'" in unknown.stderr

    wrong = cli("env", "build", "other", "--recipe", str(write_recipe(tmp_path, "dr-alpha")))
    assert wrong.returncode == 1 and "is for 'demo'" in wrong.stderr

    bad = cli("env", "build", "demo", "--recipe", str(write_recipe(tmp_path, "dr-nope")))
    assert bad.returncode == 1 and "'dr-nope'" in bad.stderr and "Traceback" not in bad.stderr

    corrupt = tmp_path / "corrupt.yaml"
    corrupt.write_text("id: demo\nname: [unclosed\n")
    broken = cli("env", "build", "demo", "--recipe", str(corrupt))
    assert broken.returncode == 5 and "corrupt.yaml:" in broken.stderr  # bad recipe
    assert "Traceback" not in broken.stderr


def test_missing_uv_is_one_sentence(cli, tmp_path: Path) -> None:
    """The uv package is there but its binary is not (a broken install)."""
    fake = tmp_path / "fakeuv" / "uv"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("def find_uv_bin():\n    raise FileNotFoundError('uv')\n")
    done = cli(
        "env",
        "build",
        "demo",
        "--recipe",
        str(write_recipe(tmp_path, "dr-alpha")),
        extra_env={"PYTHONPATH": str(fake.parent)},
    )
    assert done.returncode == 1
    assert "uv tool that Darkroom uses" in done.stderr and "Traceback" not in done.stderr
