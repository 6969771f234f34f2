"""`darkroom start|stop|restart|status|logs|open` as a user runs them, against the tiny app
installed the way the CLI expects (state.json + envs/<app>/bin/python)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from manager import state as state_mod
from manager import supervisor, views
from manager.home import Home
from tests.fixtures.tinyapp import free_port, get_json

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the fake env uses a POSIX layout")


def darkroom(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "manager", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def installed_tinyapp(home: Home, tinyapp_dir: Path) -> int:
    """Record the tiny app as installed: its recipe in state.json and an env python.

    The env is this interpreter linked into envs/tinyapp/bin (the app is stdlib only);
    the recipe points PYTHONPATH at the project. Returns the recipe's port.
    """
    port = free_port()
    text = (tinyapp_dir / "recipe.yaml").read_text("utf-8")
    text = text.replace("port: 7860", f"port: {port}")
    text = text.replace(
        '    TINYAPP_LOAD_DELAY: "0.2"',
        f'    TINYAPP_LOAD_DELAY: "0.2"\n    PYTHONPATH: {json.dumps(str(tinyapp_dir))}',
    )
    python = home.env_dir("tinyapp") / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.symlink_to(sys.executable)
    with state_mod.transaction(home) as st:
        st.apps["tinyapp"] = state_mod.InstalledApp(
            app="tinyapp", version="0.1.0", recipe_source="test", recipe_text=text
        )
    yield port
    supervisor.stop(home, "tinyapp")


def test_cli_start_status_logs_stop(home: Home, installed_tinyapp: int) -> None:
    assert "No apps are running." in darkroom("status").stdout
    started = darkroom("start", "tinyapp")
    assert started.returncode == 0, started.stderr
    url = f"http://127.0.0.1:{installed_tinyapp}/"
    assert f"tinyapp is running at {url}" in started.stdout
    assert get_json(url + "api/health")[1]["status"] == "ready"

    again = darkroom("start", "tinyapp")
    assert again.returncode == 4 and "already running" in again.stderr  # conflict
    assert "Traceback" not in again.stderr

    table = darkroom("status").stdout
    assert "tinyapp" in table and "ready" in table and url in table
    rows = json.loads(darkroom("status", "--json").stdout)
    assert rows[0]["app"] == "tinyapp" and rows[0]["port"] == installed_tinyapp
    # The Home card takes its run state from the same rows as `darkroom status`.
    card = next(r for r in views.app_rows(home) if r.app == "tinyapp")
    assert (card.status, card.url, card.port) == (
        rows[0]["status"],
        rows[0]["url"],
        rows[0]["port"],
    )

    # A browser that cannot start (BROWSER names a command that fails, as on a machine with no
    # display): the page's address, never "Opened".
    failed = darkroom(
        "open", "tinyapp", env={"BROWSER": "false", "DISPLAY": "", "WAYLAND_DISPLAY": ""}
    )
    assert failed.returncode == 0 and "Opened" not in failed.stdout
    assert f"No web browser could be started here. tinyapp's page is at {url}" in failed.stdout
    opened = darkroom("open", "tinyapp", env={"BROWSER": "true"})
    assert opened.returncode == 0 and f"Opened {url}" in opened.stdout

    logs = darkroom("logs", "tinyapp", "-n", "50")
    assert logs.returncode == 0 and "listening on" in logs.stdout

    restarted = darkroom("restart", "tinyapp")
    assert restarted.returncode == 0, restarted.stderr
    assert supervisor.app_status(home, "tinyapp").status == "ready"

    stopped = darkroom("stop", "tinyapp")
    assert stopped.returncode == 0 and "tinyapp stopped." in stopped.stdout
    assert "was not running" in darkroom("stop", "tinyapp").stdout
    opened = darkroom("open", "tinyapp")
    assert opened.returncode == 3 and "not running" in opened.stderr


def test_cli_errors_are_sentences(home: Home, installed_tinyapp: int) -> None:
    (home.env_dir("tinyapp") / "bin" / "python").unlink()
    missing = darkroom("start", "tinyapp")
    assert missing.returncode == 3  # not found
    assert (
        "tinyapp is not installed" in missing.stderr
        and "darkroom install tinyapp" in missing.stderr
    )
    unknown = darkroom("start", "no-such-app")
    assert unknown.returncode == 3 and "no app called 'no-such-app'" in unknown.stderr
    no_logs = darkroom("logs", "no-such-app")
    assert no_logs.returncode == 3 and "no logs" in no_logs.stderr  # not found
    assert "Traceback" not in missing.stderr + unknown.stderr + no_logs.stderr
