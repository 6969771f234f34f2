"""install.sh on a fresh user account: installs Darkroom as a uv tool, puts `darkroom` on
PATH, and is safe to run twice. (uv itself is already on this machine; the script's uv
bootstrap is the branch it skips.)"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(os.name == "nt", reason="install.ps1 is the Windows script")
def test_install_sh_installs_darkroom_and_reruns_cleanly(tmp_path: Path) -> None:
    uv = shutil.which("uv")
    if uv is None:
        from uv import find_uv_bin

        uv = find_uv_bin()
    home = tmp_path / "user"
    home.mkdir()
    # The machine's own settings (certificates, proxies, package indexes) pass through, as
    # they would for a real user; only the places the tool lands in are this test's.
    env = {**os.environ, "HOME": str(home), "PATH": f"{Path(uv).parent}:/usr/bin:/bin",
           "UV_TOOL_DIR": str(tmp_path / "tools"), "UV_TOOL_BIN_DIR": str(tmp_path / "bin"),
           "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(Path.home() / ".cache" / "uv")),
           "UV_PYTHON_DOWNLOADS": "never", "DARKROOM_HOME": str(tmp_path / "data")}
    for _ in range(2):  # a second run upgrades in place
        out = subprocess.run(["sh", str(ROOT / "install.sh"), "--no-run"], env=env, capture_output=True,
                             text=True, timeout=600, stdin=subprocess.DEVNULL)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "Darkroom is installed" in out.stdout
    darkroom = tmp_path / "bin" / "darkroom"
    assert darkroom.exists()
    listed = subprocess.run([str(darkroom), "list"], env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and "generator" in listed.stdout and "restorer" in listed.stdout


def test_install_sh_refuses_without_source(tmp_path: Path) -> None:
    script = tmp_path / "install.sh"
    shutil.copy(ROOT / "install.sh", script)
    out = subprocess.run(["sh", str(script), "--no-run"], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "HOME": str(tmp_path)})
    assert out.returncode == 1 and "no Darkroom source" in out.stderr
