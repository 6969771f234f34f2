"""Loads every fixture module under tests/fixtures as a pytest plugin."""

from __future__ import annotations

import pkgutil
from pathlib import Path

import pytest

from manager.home import Home

_FIXTURES = Path(__file__).parent / "fixtures"
# Only modules that define fixtures are plugins; scripts beside them (run inside app envs,
# where pytest's own dependencies are absent) are not imported here.
pytest_plugins = [
    f"tests.fixtures.{m.name}"
    for m in pkgutil.iter_modules([str(_FIXTURES)])
    if not m.ispkg and "pytest.fixture" in (_FIXTURES / f"{m.name}.py").read_text("utf-8")
]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    """A fresh, empty data folder, set as DARKROOM_HOME for code and subprocesses alike."""
    root = tmp_path / "darkroom-home"
    monkeypatch.setenv("DARKROOM_HOME", str(root))
    for var in (
        "HF_TOKEN",
        "HF_ENDPOINT",
        "DARKROOM_INDEX_URL",
        "DARKROOM_EXTRA_INDEX_URLS",
        "DARKROOM_FIND_LINKS",
        "DARKROOM_OFFLINE",
        "DARKROOM_BIND_HOST",
    ):
        monkeypatch.delenv(var, raising=False)
    return Home(root).ensure()
