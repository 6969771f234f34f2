"""Several apps on one 8 GB GPU: the budget from their plans, refusal with the numbers, and
--switch making room by unloading (or stopping) the others. Real tiny app processes."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import urllib.request

import pytest

from manager import switching
from manager.config import Settings
from manager.errors import DarkroomError
from manager.hardware import load_profile
from manager.home import Home
from manager.supervisor import control
from tests.fixtures.tinyapp import tinyapp_launch

GPU8 = load_profile("laptop-rtx4060-8gb")  # 8 GB: 7.6 GB to share


@pytest.fixture
def apps(home: Home):
    """Three tiny apps whose plans say 3 GB each; the app reports the same when loaded."""
    specs = {name: tinyapp_launch(home, app=name, vram_gb=3.0, knobs={"VRAM_GB": "3"})
             for name in ("alpha", "beta", "gamma")}
    yield specs
    for name in specs:
        with contextlib.suppress(DarkroomError):
            control.stop(home, name)


def info(run) -> dict:
    with urllib.request.urlopen(run.url + "api/info", timeout=5) as resp:
        return json.loads(resp.read())


def test_two_fit_the_third_is_refused_then_switch_makes_room(home: Home, apps) -> None:
    settings = Settings()
    switching.start(home, settings, GPU8, "alpha", apps.get)
    switching.start(home, settings, GPU8, "beta", apps.get)
    assert sorted(u.app for u in switching.usage(home) if u.loaded) == ["alpha", "beta"]

    with pytest.raises(DarkroomError) as refused:
        switching.start(home, settings, GPU8, "gamma", apps.get)
    assert "gamma needs about 3 GB" in refused.value.message and "6 GB" in refused.value.message
    assert "--switch" in refused.value.hint
    assert control.app_status(home, "gamma") is None

    events = []
    switching.start(home, settings, GPU8, "gamma", apps.get, switch=True, report=events.append)
    usage = {u.app: u for u in switching.usage(home)}
    assert set(usage) == {"alpha", "beta", "gamma"}          # nobody was stopped: one unloaded
    assert sum(u.counted_gb for u in usage.values()) <= switching.budget_gb(GPU8)
    unloaded = [name for name, u in usage.items() if not u.loaded]
    assert len(unloaded) == 1 and unloaded[0] in ("alpha", "beta")
    assert info(control.app_status(home, unloaded[0]))["loaded"] is False
    assert any("unloaded its model" in getattr(e, "text", "") for e in events)


def test_cpu_machine_has_no_budget_to_enforce(home: Home, apps) -> None:
    cpu = load_profile("cpu-only-16gb")
    for name in apps:
        switching.start(home, Settings(), cpu, name, apps.get)
    assert len(switching.usage(home)) == 3


def test_status_cli_shows_expected_gpu_memory(home: Home, apps) -> None:
    switching.start(home, Settings(), GPU8, "alpha", apps.get)
    out = subprocess.run([sys.executable, "-m", "manager", "status", "--json"], capture_output=True,
                         text=True, env={**os.environ}, timeout=60)
    (row,) = json.loads(out.stdout)
    assert row["app"] == "alpha" and row["vram_expected_gb"] == 3.0 and row["model_loaded"] is True
    assert row["vram_measured_gb"] is None  # no NVIDIA driver here: measured is unknown, not 0
