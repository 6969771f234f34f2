"""Where the bundled recipes and app sources live, in a checkout and in an installed wheel."""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def _pick(name: str) -> Path:
    # An installed wheel carries them under manager/_bundled; a source checkout has them
    # beside the package.
    installed = _PKG / "_bundled" / name
    return installed if installed.is_dir() else _PKG.parent / name


def recipes_dir() -> Path:
    return _pick("recipes")


def apps_dir() -> Path:
    return _pick("apps")


def presets_dir() -> Path:
    """The workflow presets that come with the workflow runner."""
    return apps_dir() / "workflow" / "presets"


def profiles_dir() -> Path:
    return _PKG / "profiles"
