"""The app protocol is one module (apps/appkit/protocol.py), used by the manager and the app
kit alike, and what one side writes the other reads: the launch environment (the manager's
launching code for an installed app -> the app kit's settings), run files (supervisor ->
workflow client), holds and batches (switching <-> the workflow engine's pause)."""

from __future__ import annotations

import ast
import hashlib
import os
import sys
from pathlib import Path

import pytest

from manager import launching, protocol, switching, weights
from manager import state as state_mod
from manager.bundled import apps_dir
from manager.config import Settings
from manager.home import Home
from manager.recipe import ModelFile
from manager.supervisor import control, runfile
from manager.supervisor.spec import RunInfo
from tests.fixtures.tinyapp import record_installed

sys.path.insert(0, str(apps_dir()))

from appkit import models as app_models  # noqa: E402
from appkit import protocol as app_protocol  # noqa: E402
from appkit import settings as app_settings  # noqa: E402
from workflow import client as wf_client  # noqa: E402
from workflow.errors import WorkflowError  # noqa: E402
from workflow.pause import Presence  # noqa: E402

PIPE_REPO, GGUF_REPO = "darkroom-test/pipe", "darkroom-test/pipe-gguf"


def test_one_module_serves_both_sides() -> None:
    """The manager loads the app kit's own file (no second copy), which needs only the stdlib,
    and the app kit's settings and models read the names and shapes from it."""
    shared = apps_dir() / "appkit" / "protocol.py"
    assert Path(protocol._p.__file__).resolve() == shared.resolve()
    tree = ast.parse(shared.read_text("utf-8"))
    imported = {
        a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    imported |= {
        n.module.split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and n.module and n.level == 0
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported
    for name in ("HOST", "PORT", "APP", "DEVICE", "OUTPUTS", "HOME", "MODELS", "IDLE_UNLOAD"):
        assert getattr(app_settings, name) == getattr(protocol, name) == getattr(app_protocol, name)
    assert app_models.ModelsSpec is app_protocol.ModelsSpec
    assert (protocol.UNLOAD_PATH, protocol.UNLOAD_DONE, protocol.UNLOAD_BUSY) == (
        "/api/unload",
        200,
        409,
    )


def test_launch_env_of_an_installed_app_is_what_the_app_kit_reads(home: Home, hub) -> None:
    """The real writer (launching + the supervisor's resolve) for an installed app with pulled
    weights, read back by the app kit's AppSettings: no hand-made dict in between."""
    pipe = {"model_index.json": b'{"_class_name": "TinyPipeline"}', "vae/config.json": b"{}"}
    gguf = {"tiny-Q8_0.gguf": os.urandom(2048)}
    hub.add_files(PIPE_REPO, pipe)
    hub.add_files(GGUF_REPO, gguf)
    settings = Settings(hf_endpoint=hub.url, idle_unload_minutes=3)
    local = weights.pull(
        home,
        settings,
        [
            ModelFile(repo=PIPE_REPO, path="model_index.json", size=0),
            ModelFile(repo=PIPE_REPO, path="vae/*", size=0),
            ModelFile(repo=GGUF_REPO, path="tiny-Q8_0.gguf", size=0),
        ],
    )
    by_repo = {
        r: [f.installed() for f in local if f.spec.repo == r] for r in (PIPE_REPO, GGUF_REPO)
    }
    models = [
        state_mod.InstalledModel(
            model="tiny-gguf",
            variant="gguf-q8",
            offload="model",
            files=by_repo[PIPE_REPO] + by_repo[GGUF_REPO],
        ),
        state_mod.InstalledModel(model="tiny-plain", variant="fp32", files=by_repo[PIPE_REPO]),
    ]
    record_installed(home, "pipeapp", models=models)

    launch = launching.launch_spec(home, settings, "pipeapp")
    env = control.resolve(home, settings, launch, "127.0.0.1", 7999).env
    read = app_settings.AppSettings.from_env("other", environ=env)

    assert (read.app, read.port, read.host, read.device) == ("pipeapp", 7999, "127.0.0.1", "cpu")
    assert read.home == home.root and read.outputs == home.output_dir("pipeapp")
    assert read.idle_unload_s == 180
    installed = state_mod.load(home).apps["pipeapp"]
    assert read.models.to_dict() == launching.models_spec(home, installed).to_dict()
    assert read.models.default_id == "tiny-gguf"
    key, choice = read.models.get(None)
    assert (key, choice.variant, choice.precision, choice.offload) == (
        "tiny-gguf",
        "gguf-q8",
        "gguf-q8",
        "model",
    )
    for f in choice.files:  # every path the app is handed holds the hub's bytes, with their hash
        want = {**pipe, **gguf}[f.path]
        assert f.local_path.read_bytes() == want
        assert f.sha256 == hashlib.sha256(want).hexdigest()
    (q8,) = choice.find("*.gguf")
    assert q8.repo == GGUF_REPO
    assert (choice.snapshot() / "vae" / "config.json").read_bytes() == b"{}"
    assert (choice.snapshot(GGUF_REPO) / "tiny-Q8_0.gguf").read_bytes() == gguf["tiny-Q8_0.gguf"]
    assert read.models.get("tiny-plain")[1].find("*.gguf") == []


def test_run_file_written_by_the_supervisor_is_read_by_the_workflow_client(home: Home) -> None:
    runfile.write(home, RunInfo(app="alpha", status="ready", url="http://127.0.0.1:7861/"))
    runfile.write(home, RunInfo(app="beta", status="starting", url="http://127.0.0.1:7862/"))
    assert wf_client.from_run_files(home.root, ["alpha"]) == {"alpha": ["http://127.0.0.1:7861/"]}
    with pytest.raises(WorkflowError, match="beta is starting"):
        wf_client.from_run_files(home.root, ["beta"])
    with pytest.raises(WorkflowError, match="gamma is not running"):
        wf_client.from_run_files(home.root, ["gamma"])


def test_batches_and_holds_are_read_across_sides(home: Home) -> None:
    """The engine's batch file as switching reads it; switching's hold as the engine reads it."""
    presence = Presence(home.root, "restore-old", ["alpha", "beta"], keep_running=False)
    try:
        presence.update(item="p1.png", done=2, total=5)
        (batch,) = switching.batches(home)
        assert (batch.preset, batch.apps, batch.keep_running) == (
            "restore-old",
            ["alpha", "beta"],
            False,
        )
        assert (batch.state, batch.item, batch.done, batch.total) == ("running", "p1.png", 2, 5)
        assert presence.holds() == []

        switching._hold(home, protocol.Hold(app="beta", for_app="gamma", waiter_pid=os.getpid()))
        assert presence.holds() == [("beta", "gamma")]
        assert switching._holds_for(home, "gamma") == ["beta"]
        switching.release(home, "beta")
        assert presence.holds() == []
    finally:
        presence.close()
    assert switching.batches(home) == []
