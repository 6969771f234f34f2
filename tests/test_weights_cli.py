"""`darkroom models ...` end to end, and resume after the downloading process is killed -9."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from manager import weights
from manager.cli import main
from manager.home import Home
from manager.state import InstalledApp, InstalledModel, State, save
from manager.weights.fetch import WRITE_CHUNK
from manager.weights.store import RepoStore
from tests.fixtures.hub import LocalHub

BIG = os.urandom(4_000_000)
SMALL = os.urandom(700_000)
ROOT = Path(__file__).resolve().parent.parent


def recipe_file(tmp_path: Path) -> Path:
    """A third-party recipe whose two variants live on the test hub."""
    sha = hashlib.sha256(BIG).hexdigest()
    text = textwrap.dedent(f"""
        id: tester
        name: Tester
        description: A recipe for the weight store tests.
        version: 1.0.0
        license: mit
        source: {{git: "https://example.invalid/tester.git", revision: v1}}
        launch: {{command: ["{{env_python}}", "-m", "tester"], port: 7999}}
        models:
          - id: net
            name: Net
            license: mit
            commercial: true
            common_files:
              - {{repo: acme/net, path: "cfg/*", size: 10}}
            variants:
              - id: big
                label: Big
                precision: fp32
                quality: 90
                vram_gb: 0
                ram_gb: 0.1
                backends: [cpu]
                files:
                  - {{repo: acme/net, path: big.safetensors, size: {len(BIG)}, sha256: {sha}}}
              - id: small
                label: Small
                precision: fp16
                quality: 50
                vram_gb: 0
                ram_gb: 0.1
                backends: [cpu]
                files:
                  - {{repo: acme/net, path: small.safetensors, size: {len(SMALL)}}}
    """)
    path = tmp_path / "tester.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def net(hub: LocalHub) -> LocalHub:
    hub.add_files(
        "acme/net",
        {
            "big.safetensors": BIG,
            "small.safetensors": SMALL,
            "cfg/config.json": b'{"x": 1}',
            "other.bin": b"nope",
        },
    )
    return hub


def test_pull_list_verify_gc_from_the_command_line(
    home: Home, net: LocalHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = recipe_file(tmp_path)
    assert main(["models", "pull", str(recipe), "--cpu", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "get   acme/net/big.safetensors" in out and "small" not in out
    assert net.stats("big.safetensors").requests == 0

    assert main(["models", "pull", str(recipe), "--cpu"]) == 0
    captured = capsys.readouterr()
    assert "Tester: 2 model file(s)" in captured.out
    assert "big.safetensors" in captured.err  # progress lines
    assert net.stats("small.safetensors").requests == 0

    assert main(["models", "pull", str(recipe), "--cpu", "--variant", "small"]) == 0
    assert main(["models", "list", "--json"]) == 0
    listed = json.loads(_last_json(capsys))
    assert sorted(e["path"] for e in listed) == [
        "big.safetensors",
        "cfg/config.json",
        "small.safetensors",
    ]

    assert main(["models", "verify"]) == 0  # nothing installed: the whole store
    assert "intact" in capsys.readouterr().out

    # an installed app uses the big variant; gc shows the small one, then removes it
    store = RepoStore(home.models, "acme/net")
    commit = net.commit("acme/net")
    files = weights.pull(home, _settings(net), [_mf("big.safetensors"), _mf("cfg/*")])
    save(
        home,
        State(
            apps={
                "tester": InstalledApp(
                    app="tester",
                    version="1.0.0",
                    models=[
                        InstalledModel(
                            model="net", variant="big", files=[f.installed() for f in files]
                        )
                    ],
                )
            }
        ),
    )
    assert main(["models", "gc"]) == 0
    out = capsys.readouterr().out
    assert "small.safetensors" in out and "--yes" in out
    assert store.pointer(commit, "small.safetensors").exists()
    assert main(["models", "gc", "--yes"]) == 0
    assert "Removed 1 file(s)" in capsys.readouterr().out
    assert not store.pointer(commit, "small.safetensors").exists()
    assert store.pointer(commit, "big.safetensors").read_bytes() == BIG

    # damage the installed weight: verify says so and exits 1; --fix deletes it
    store.pointer(commit, "big.safetensors").resolve().write_bytes(b"x" * len(BIG))
    assert main(["models", "verify", "tester"]) == 1
    assert "damaged" in capsys.readouterr().out
    assert main(["models", "verify", "tester", "--fix"]) == 1
    assert not store.pointer(commit, "big.safetensors").exists()


def _last_json(capsys: pytest.CaptureFixture[str]) -> str:
    out = capsys.readouterr().out
    return out[out.index("[") :]


def _mf(path: str):
    from manager.recipe import ModelFile

    return ModelFile(repo="acme/net", path=path, size=1)


def _settings(hub: LocalHub):
    from manager.config import Settings

    return Settings(hf_endpoint=hub.url)


def test_import_from_the_command_line(
    home: Home, net: LocalHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = recipe_file(tmp_path)
    mine = tmp_path / "downloads" / "big.safetensors"
    mine.parent.mkdir()
    mine.write_bytes(BIG)
    assert main(["models", "import", str(mine), "--app", str(recipe), "--model", "net"]) == 0
    assert "it will not be downloaded again" in capsys.readouterr().out
    assert main(["models", "pull", str(recipe), "--cpu"]) == 0
    assert net.stats("big.safetensors").requests == 0
    wrong = tmp_path / "small.safetensors"
    wrong.write_bytes(SMALL)
    assert (
        main(
            [
                "models",
                "import",
                str(wrong),
                "--app",
                str(recipe),
                "--model",
                "net",
                "--file",
                "big.safetensors",
            ]
        )
        == 1
    )
    assert "not acme/net/big.safetensors" in capsys.readouterr().err


def test_gated_pull_prints_the_sentence_not_a_traceback(
    home: Home, net: LocalHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    net.gate("acme/net", token="hf_right_one")
    assert main(["models", "pull", str(recipe_file(tmp_path)), "--cpu"]) == 6  # gated
    err = capsys.readouterr().err
    assert "gated" in err and f"{net.url}/acme/net" in err  # the hub in use names the page
    assert "darkroom config set hf_token" in err and "Traceback" not in err


def test_resume_after_kill_9_refetches_nothing(home: Home, net: LocalHub) -> None:
    cut = 1_500_000
    release = net.faults.pause_after("big.safetensors", cut)
    script = textwrap.dedent("""
        from manager import config, weights
        from manager.home import Home
        from manager.recipe import ModelFile
        home = Home.from_env()
        weights.pull(home, config.load(home), [ModelFile(repo="acme/net", path="big.safetensors", size=1)])
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    partial = RepoStore(home.models, "acme/net").incomplete(hashlib.sha256(BIG).hexdigest())
    deadline = time.monotonic() + 60
    # the hub has sent `cut` bytes and is holding the connection; the client writes in 1 MiB
    # pieces, so at most one piece is still in its memory when it is killed
    while time.monotonic() < deadline and proc.poll() is None:
        if (
            net.stats("big.safetensors").bytes_served >= cut
            and partial.exists()
            and partial.stat().st_size >= cut - WRITE_CHUNK
        ):
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.stderr.read()
    time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    kept = partial.stat().st_size
    assert cut - WRITE_CHUNK <= kept <= cut
    release.set()
    [f] = weights.pull(home, _settings(net), [_mf("big.safetensors")])
    assert f.local_path.read_bytes() == BIG
    stats = net.stats("big.safetensors")
    assert stats.ranges[-1] == f"bytes={kept}-"  # resumed where the killed run stopped
    assert stats.bytes_served - len(BIG) == cut - kept  # refetched: at most one chunk
