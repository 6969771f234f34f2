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


# The data folder's layout is written once, in manager/home.py (and, below models/, in the
# weight store, which alone knows the Hugging Face cache layout).
_PATH_OWNERS = {"manager/home.py", "manager/weights/store.py"}


def _home_like(node: ast.AST) -> bool:
    """`home`, `h`, `self.home`, `core.home` or `home()`: the expressions that hold a Home."""
    if isinstance(node, ast.Name):
        return node.id in {"home", "h"}
    if isinstance(node, ast.Attribute):
        return node.attr == "home"
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "home"


def _home_path(node: ast.AST, names: set[str]) -> bool:
    """An expression that is one of Home's paths: `home.envs`, `home.log_dir(app)`..."""
    if isinstance(node, ast.Call):
        node = node.func
    return isinstance(node, ast.Attribute) and node.attr in names and _home_like(node.value)


def _joined_onto(node: ast.AST) -> ast.AST | None:
    """The base a path expression builds on: `/`, joinpath, glob, os.path.join, Path(a, b)."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        return node.left
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr in {"joinpath", "glob", "rglob"}:
        return func.value
    several = len(node.args) > 1
    if isinstance(func, ast.Attribute) and func.attr == "join" and several:
        return node.args[0]
    if isinstance(func, ast.Name) and func.id == "Path" and several:
        return node.args[0]
    return None


def path_joins_outside_home(source: str, names: set[str]) -> list[int]:
    """Lines that build a path under one of Home's paths."""
    return sorted(
        node.lineno
        for node in ast.walk(ast.parse(source))
        if (base := _joined_onto(node)) is not None and _home_path(base, names)
    )


def _home_names() -> set[str]:
    from manager.home import Home

    return {"root"} | {n for n in vars(Home) if not n.startswith("_") and n not in {"ensure"}}


def test_the_checker_finds_joins() -> None:
    names = _home_names()
    bad = (
        "a = home.run / f'{app}.lock'\n"
        "b = self.home.staging.glob('journal-*')\n"
        "c = h.log_dir(app) / 'runner.log'\n"
        "d = Path(home.root, 'x')\n"
        "e = os.path.join(home.models, 'library')\n"
        "ok = home.env_dir(app)\n"
        "ok2 = source.app_dir / 'x'\n"
    )
    assert path_joins_outside_home(bad, names) == [1, 2, 3, 4, 5]


def test_every_path_under_the_data_folder_is_built_in_home() -> None:
    names = _home_names()
    bad = {}
    for path in (ROOT / "manager").rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel not in _PATH_OWNERS:
            lines = path_joins_outside_home(path.read_text("utf-8"), names)
            if lines:
                bad[rel] = lines
    assert bad == {}


def test_recipes_are_found_through_the_catalogue_only() -> None:
    """One lookup: outside recipe.py (the schema and its loader) and catalogue.py, no module of
    the manager reads a recipe or names the bundled recipe folder."""
    loaders = {"load_recipe", "parse_recipe", "recipes_dir"}
    bad = {}
    for path in (ROOT / "manager").rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel in {"manager/recipe.py", "manager/catalogue.py", "manager/bundled.py"}:
            continue
        tree = ast.parse(path.read_text("utf-8"))
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        used |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        if used & loaders:
            bad[rel] = sorted(used & loaders)
    assert bad == {}


def test_only_the_weight_store_names_the_store_layout() -> None:
    """blobs/, refs/ and snapshots/ are the Hugging Face cache layout: only
    manager/weights/store.py may name them (as a path part in a string)."""
    layout = {"blobs", "refs", "snapshots"}
    bad = {}
    for path in (ROOT / "manager").rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel == "manager/weights/store.py":
            continue
        tree = ast.parse(path.read_text("utf-8"))
        named = {
            n.value
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)
            if not any(c.isspace() for c in n.value)  # a path, not a sentence
            if layout & set(n.value.split("/"))
        }
        if named:
            bad[rel] = sorted(named)
    assert bad == {}
