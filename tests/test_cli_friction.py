"""The frictions a first hour with the CLI met: typos get a "did you mean", `du` figures add up.
Run through the real `darkroom` entry point on a data folder laid out as installs leave it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from manager import doctor
from manager import state as state_mod
from manager.home import Home
from manager.state import InstalledFile, InstalledModel
from manager.weights.store import RepoStore
from tests.fixtures.terminal import on_a_terminal


def darkroom(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "manager", *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env=os.environ.copy(),
    )


def test_a_mistyped_command_gets_the_closest_one(home: Home) -> None:
    out = darkroom("instal", "colorizer")
    assert (
        out.returncode == 2
        and "There is no command 'instal'. Did you mean 'install'?" in out.stderr
    )
    assert "invalid choice" not in out.stderr
    out = darkroom("models", "pul", "restorer")
    assert (
        out.returncode == 2
        and "There is no command 'models pul'. Did you mean 'models pull'?" in out.stderr
    )
    out = darkroom("frobnicate")
    assert out.returncode == 2 and "There is no command 'frobnicate'." in out.stderr
    assert "Did you mean" not in out.stderr and "darkroom --help" in out.stderr


def test_a_mistyped_app_gets_the_closest_one(home: Home) -> None:
    out = darkroom("plan", "colorise")
    assert out.returncode == 3 and "Did you mean 'colorizer'?" in out.stderr
    out = darkroom("remove", "restorr", "--yes")
    assert (
        out.returncode == 3 and "restorr is not installed. Did you mean 'restorer'?" in out.stderr
    )
    out = darkroom("update", "genrator")
    assert out.returncode == 3 and "Did you mean 'generator'?" in out.stderr
    assert "darkroom install genrator" not in out.stderr  # never a command that cannot work


def _store_file(home: Home, repo: str, name: str, data: bytes) -> InstalledFile:
    store = RepoStore(home.models, repo)
    commit = "a" * 40
    store.blob(name).parent.mkdir(parents=True, exist_ok=True)
    store.blob(name).write_bytes(data)
    store.link(commit, f"{name}.bin", name)
    return InstalledFile(repo=repo, revision=commit, path=f"{name}.bin", size=len(data))


def test_du_figures_add_up(home: Home) -> None:
    """Two envs that share a hardlinked file, uv's cache holding more than they share, one model
    file both apps use and one no app uses: separately - saved = on disk, cache apart."""
    shared_pkg = home.uv_cache / "archive" / "torch.so"
    shared_pkg.parent.mkdir(parents=True)
    shared_pkg.write_bytes(b"t" * 300_000)
    (home.uv_cache / "archive" / "old-wheel.so").write_bytes(b"o" * 500_000)  # in no env
    for app in ("one", "two"):
        site = home.env_dir(app) / "lib"
        site.mkdir(parents=True)
        os.link(shared_pkg, site / "torch.so")
        (site / "own.py").write_bytes(b"x" * 1000)
    used = _store_file(home, "org/shared", "blob1", b"m" * 200_000)
    _store_file(home, "org/unused", "blob2", b"u" * 50_000)
    with state_mod.transaction(home) as st:
        for app in ("one", "two"):
            st.apps[app] = state_mod.InstalledApp(
                app=app, version="1", models=[InstalledModel(model="m", variant="v", files=[used])]
            )

    use = doctor.disk_use(home)
    assert use.envs_separate == 2 * 301_000 and use.envs_actual == 302_000
    assert use.models_separate == 400_000 and use.models_actual == 200_000
    assert use.saved == 300_000 + 200_000
    assert (
        use.envs_separate - use.envs_actual + use.models_separate - use.models_actual == use.saved
    )
    assert use.cache == 500_000 and use.models_unused >= 50_000
    assert use.total == use.envs_actual + use.cache + use.models_actual + use.models_unused

    out = darkroom("du")
    assert out.returncode == 0, out.stderr
    assert "Sharing saves 0 B" not in out.stdout
    figures = re.search(
        r"Environments: ([\d.]+) KB on disk; separately they would take ([\d.]+) KB, "
        r"so sharing files saves ([\d.]+) KB",
        out.stdout,
    )
    assert figures, out.stdout
    actual, separate, saved = map(float, figures.groups())
    assert abs(separate - saved - actual) < 0.2
    assert "uv's cache:   500.0 KB more" in out.stdout and "darkroom models gc" in out.stdout


def test_one_mirror_setting_sets_links_indexes_and_strategy_together(home: Home, tmp_path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    out = darkroom("config", "set", "mirror", f"{wheels} https://mirror.example/pypi/simple/")
    assert out.returncode == 0, out.stderr
    assert "unsafe-best-match" in out.stdout and "only mirrors you trust" in out.stdout
    shown = json.loads(darkroom("config", "show", "--json").stdout)
    assert shown["find_links"] == [str(wheels)]
    assert shown["extra_index_urls"] == ["https://mirror.example/pypi/simple/"]
    assert shown["index_strategy"] == "unsafe-best-match"
    out = darkroom("config", "set", "mirror", "")
    assert out.returncode == 0 and "mirror cleared." in out.stdout
    shown = json.loads(darkroom("config", "show", "--json").stdout)
    assert (shown["find_links"], shown["extra_index_urls"], shown["index_strategy"]) == (
        [],
        [],
        "first-index",
    )
    out = darkroom("config", "set", "mirorr", "x")
    assert out.returncode == 3 and "Did you mean 'mirror'?" in out.stderr


def test_remove_asks_on_a_terminal_and_no_keeps_the_app(home: Home) -> None:
    with state_mod.transaction(home) as st:
        st.apps["tiny"] = state_mod.InstalledApp(app="tiny", version="1")
    out = on_a_terminal("n", "remove", "tiny")
    assert out.returncode == 1 and "Removing tiny deletes its environment" in out.stdout
    assert "Nothing was removed: tiny is still installed." in out.stderr
    assert "tiny" in state_mod.load(home).apps
    out = on_a_terminal("y", "remove", "tiny")
    assert out.returncode == 0, out.stderr
    assert "tiny" not in state_mod.load(home).apps


def test_doctor_reports_an_installed_app_without_its_environment(home: Home) -> None:
    """An app whose environment was deleted behind Darkroom's back is a finding with its fix;
    the check used to stop there with "tiny has no environment" and report nothing else."""
    with state_mod.transaction(home) as st:
        st.apps["tiny"] = state_mod.InstalledApp(app="tiny", version="1")
    out = darkroom("doctor")
    assert "Traceback" not in out.stderr and "has no environment" not in out.stderr, out.stderr
    assert "tiny is installed but its environment is missing" in out.stdout, out.stdout
    assert "darkroom install tiny" in out.stdout
    assert out.returncode != 0  # an error finding
