"""The catalogue of workflow presets both faces offer: the bundled ones (beside the workflow
runner's code) and the user's own in the data folder's presets/ folder.

Only each file's name and description are read here (YAML, safely); the steps are the
engine's business, checked by the runner in its own env when a batch starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from . import bundled
from .fsutil import exists
from .home import Home

MAX_PRESET_BYTES = 256 * 1024


@dataclass(frozen=True)
class PresetInfo:
    """One preset as a picker shows it; `source` is what a BatchRequest takes (a bundled
    preset's name, or the path of the user's file)."""

    name: str
    description: str
    source: str
    bundled: bool


def _read(path: Path, is_bundled: bool) -> PresetInfo:
    name = path.stem
    try:
        if path.stat().st_size > MAX_PRESET_BYTES:
            raise ValueError(f"larger than {MAX_PRESET_BYTES // 1024} KB")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a preset (no name, no steps)")
        name = str(data.get("name") or name)
        description = str(data.get("description") or "").strip() or "No description."
    except (OSError, ValueError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        description = f"This file cannot be read ({first}); fix it or remove it from {path.parent}."
    source = name if is_bundled else str(path)
    return PresetInfo(name, description, source, is_bundled)


def catalogue(home: Home) -> list[PresetInfo]:
    """The bundled presets by name, then the user's own by name."""
    folder = bundled.presets_dir()
    own = sorted(folder.glob("*.yaml")) if folder.is_dir() else []
    return [_read(p, True) for p in own] + [_read(p, False) for p in home.preset_files()]


def source_of(home: Home, preset: str) -> str:
    """What the engine is given for a preset a person named: a bundled name stays as it is;
    the name of one of the user's own presets becomes its file; anything else is passed on
    (a path, or a name the engine will answer with the presets it knows)."""
    if exists(str(bundled.presets_dir() / f"{preset}.yaml"), "file"):
        return preset
    for path in home.preset_files():
        if preset in (path.stem, path.name):
            return str(path)
    return preset
