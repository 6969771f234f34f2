"""Where a recipe comes from, in one place: the bundled ones by app id, the recipe an app was
installed from (kept in state for apps not bundled), a recipe file, or an https URL.

Every command, the installer, the launcher and the TUI find recipes through these functions,
so an app id means the same recipe to all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx

from . import bundled, validate
from . import state as state_mod
from .errors import DarkroomError, NotFound
from .fsutil import exists
from .home import Home
from .recipe import MAX_RECIPE_BYTES, Recipe, bundled_recipes, load_recipe, parse_recipe
from .state import InstalledApp


@dataclass(frozen=True)
class Found:
    """A recipe with where it came from: origin is 'bundled', a file's path or a URL; text is
    the recipe as read, kept in state for recipes that are not bundled."""

    recipe: Recipe
    origin: str
    text: str | None


def bundled_recipe(app: str, extra: dict[str, Recipe] | None = None) -> Recipe:
    """A recipe by app id: bundled ones first, then those in `extra` (installed from elsewhere)."""
    validate.app_id_or_fail(app)  # before the id becomes part of a path
    path = bundled.recipes_dir() / f"{app}.yaml"
    if path.is_file():
        return load_recipe(path)
    if extra and app in extra:
        return extra[app]
    known = ", ".join(sorted(bundled_recipes()))
    from .suggest import did_you_mean

    near = did_you_mean(app, [*bundled_recipes(), *(extra or {})])
    raise NotFound(f"There is no app called '{app}'.{near}", f"Apps you can install: {known}.")


def installed_recipe(installed: InstalledApp | None, app: str) -> Recipe:
    """The recipe an installed app was installed from (kept in state for non-bundled apps)."""
    if installed is not None and installed.recipe_text:
        return parse_recipe(installed.recipe_text, installed.recipe_source)
    return bundled_recipe(app)


def app_recipe(home: Home, app: str) -> Recipe:
    """The recipe of an app id: the one it was installed from, else the bundled one."""
    validate.app_id_or_fail(app)
    return installed_recipe(state_mod.load(home).apps.get(app), app)


def recipe_file(path: Path, app: str | None = None) -> Recipe:
    """A recipe file; when `app` is given, the file must be that app's recipe."""
    recipe = load_recipe(path)
    if app is not None and recipe.id != app:
        raise DarkroomError(
            f"The recipe {path} is for '{recipe.id}', not '{app}'.",
            f"Run the command with {recipe.id}, or pick the right recipe file.",
        )
    return recipe


def _is_recipe_file(path: Path) -> bool:
    return path.suffix in (".yaml", ".yml") and exists(path, "file")


def app_or_file(home: Home, target: str) -> Recipe:
    """A recipe file's path, else an app id (installed from elsewhere, else bundled)."""
    path = Path(target)
    if _is_recipe_file(path):
        return load_recipe(path)
    return app_recipe(home, target)


def target(target: str) -> Found:
    """What `install` was given: an app id (bundled), a recipe file, or an https URL."""
    if target.startswith(("https://", "http://")):
        return _download(target)
    path = Path(target)
    if path.suffix in (".yaml", ".yml") or exists(path):
        recipe = load_recipe(path)
        if recipe.id in bundled_recipes():
            raise DarkroomError(
                f"{path} uses the id '{recipe.id}' of a bundled app.",
                "Give the recipe another id, then try again.",
            )
        return Found(recipe, str(path.resolve()), path.read_text("utf-8"))
    return Found(bundled_recipe(target), "bundled", None)


def _download(url: str) -> Found:
    try:
        resp = httpx.get(url, timeout=30, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise DarkroomError(
            f"The recipe at {url} could not be downloaded ({type(exc).__name__}).",
            "Check the address and your network, then try again.",
        ) from None
    if resp.status_code != 200:
        raise DarkroomError(
            f"The recipe at {url} could not be downloaded (HTTP {resp.status_code}).",
            "Check the address, then try again.",
        )
    data = resp.content[: MAX_RECIPE_BYTES + 1]
    return Found(parse_recipe(data, url), url, data.decode("utf-8"))
