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
    bin_dir = tmp_path / "bin"
    terminal_path = f"{Path(uv).parent}:/usr/bin:/bin"  # the terminal's PATH: no tool folder on it
    # The machine's own settings (certificates, proxies, package indexes) pass through, as
    # they would for a real user; only the places the tool lands in are this test's.
    env = {
        **os.environ,
        "HOME": str(home),
        "PATH": terminal_path,
        "SHELL": "/bin/bash",
        "UV_TOOL_DIR": str(tmp_path / "tools"),
        "UV_TOOL_BIN_DIR": str(bin_dir),
        "UV_CACHE_DIR": os.environ.get("UV_CACHE_DIR", str(Path.home() / ".cache" / "uv")),
        "UV_PYTHON_DOWNLOADS": "never",
        "DARKROOM_HOME": str(tmp_path / "data"),
    }

    def install(*args: str, path: str = terminal_path) -> str:
        # No terminal (stdin is /dev/null): the script must not wait for an answer.
        out = subprocess.run(
            ["sh", str(ROOT / "install.sh"), "--no-run", *args],
            env={**env, "PATH": path},
            capture_output=True,
            text=True,
            timeout=600,
            stdin=subprocess.DEVNULL,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert "Darkroom is installed" in out.stdout
        return out.stdout

    # 1. No terminal to ask: the shell's startup files are left alone, and the one line that makes
    #    `darkroom` work in this terminal is printed; run as printed, it does.
    text = install()
    line = f'export PATH="{bin_dir}:$PATH"'
    assert line in text and "uv tool update-shell" in text
    assert not [p for p in home.iterdir() if p.name.startswith((".bash", ".profile", ".zsh"))]
    in_this_terminal = subprocess.run(
        ["sh", "-c", f"{line}; darkroom list"], env=env, capture_output=True, text=True, timeout=120
    )
    assert in_this_terminal.returncode == 0 and "generator" in in_this_terminal.stdout

    # 2. Asked to (a second run upgrades in place): new terminals find it too.
    install("--add-to-path")
    assert str(bin_dir) in (home / ".bashrc").read_text()

    # 3. A folder of the user's own is already on the terminal's PATH: `darkroom` goes there and
    #    works at once, with nothing to type.
    (home / "bin").mkdir()
    text = install(path=f"{home / 'bin'}:{terminal_path}")
    assert f"Linked {home / 'bin' / 'darkroom'}" in text and "export PATH" not in text
    listed = subprocess.run(
        ["darkroom", "list"],
        env={**env, "PATH": f"{home / 'bin'}:{terminal_path}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0 and "generator" in listed.stdout and "restorer" in listed.stdout


def test_install_sh_refuses_without_source(tmp_path: Path) -> None:
    script = tmp_path / "install.sh"
    shutil.copy(ROOT / "install.sh", script)
    out = subprocess.run(
        ["sh", str(script), "--no-run"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert out.returncode == 1 and "no Darkroom source" in out.stderr
