"""Imports that keep the parts apart, read from the source: the apps (which run in their own
envs) import nothing from the manager, and a test module takes its helpers from
tests/fixtures, never from another test module (whose fixtures and collection it would drag in)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {
        n.module
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and n.module and n.level == 0
    }
    return names


def test_apps_import_nothing_from_the_manager() -> None:
    bad = {
        str(p.relative_to(ROOT)): sorted(m for m in _imports(p) if m.split(".")[0] == "manager")
        for p in (ROOT / "apps").rglob("*.py")
    }
    assert {k: v for k, v in bad.items() if v} == {}


def test_test_modules_take_helpers_from_fixtures_only() -> None:
    bad = {
        p.name: sorted(m for m in _imports(p) if m.startswith("tests.test_"))
        for p in (ROOT / "tests").rglob("*.py")
    }
    assert {k: v for k, v in bad.items() if v} == {}
