"""Presets: a named list of steps, each one app's task called with parameters (YAML, safe-loaded).

    name: old-photo
    input: images            # every image in the input folder; or `prompts` (prompts.txt x seeds)
    steps:
      - {name: faces, app: restorer, task: faces, params: {model: gfpgan}}

A step gets the previous step's image (the input image for the first) in its `image_field`
(base64); a step with `image_field: null` takes no image (the generator). String params
may name item fields: "{prompt}", "{seed}", "{name}", "{stem}"; a value that is exactly one
field keeps that field's type (a seed stays a number).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import WorkflowError

PRESETS_DIR = Path(__file__).with_name("presets")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_FIELD = re.compile(r"\{([a-z_]+)\}")


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    app: str = Field(min_length=1, max_length=64)
    task: str = Field(min_length=1, max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)
    image_field: str | None = "image"
    timeout_s: float = Field(1800.0, gt=0)


class Grid(BaseModel):
    """prompt-grid: prompts (from the input's prompts.txt, else these) times seeds."""

    model_config = ConfigDict(extra="forbid")

    prompts: list[str] = Field(default_factory=list)
    seeds: list[int] = Field(default_factory=lambda: [0])


class Preset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    input: Literal["images", "prompts"] = "images"
    grid: Grid = Field(default_factory=Grid)
    steps: list[Step] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("must be lower-case letters, digits, '-' or '_'")
        return v

    @model_validator(mode="after")
    def _shape(self) -> Preset:
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise ValueError(f"step names must differ: {', '.join(names)}")
        if self.input == "prompts" and self.steps[0].image_field is not None:
            raise ValueError(
                "the first step of a prompts preset takes no image (image_field: null)"
            )
        if self.input == "images" and self.steps[0].image_field is None:
            raise ValueError("the first step of an images preset must take the image (image_field)")
        return self

    @property
    def apps(self) -> list[str]:
        """The apps the steps call, in first-use order."""
        return list(dict.fromkeys(s.app for s in self.steps))

    def digest(self) -> str:
        """Same steps and params, same digest: a batch folder belongs to one preset."""
        data = self.model_dump(mode="json", exclude={"description"})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def with_overrides(self, sets: dict[str, Any]) -> Preset:
        """`{"step.param": value}` or `{"param": value}` (every step that has it, or the first)."""
        data = self.model_dump(mode="json")
        for key, value in sets.items():
            step_name, _, param = key.rpartition(".")
            targets = (
                [s for s in data["steps"] if s["name"] == step_name]
                if step_name
                else [s for s in data["steps"] if param in s["params"]] or data["steps"][:1]
            )
            if not targets:
                known = ", ".join(s["name"] for s in data["steps"])
                raise WorkflowError(
                    f"The preset {self.name} has no step '{step_name}'.", f"Its steps are: {known}."
                )
            for s in targets:
                s["params"][param] = value
        return Preset.model_validate(data)


def fill(params: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """Params with {field} placeholders replaced by the item's values."""

    def one(value: Any) -> Any:
        if isinstance(value, str):
            whole = _FIELD.fullmatch(value)
            if whole and whole.group(1) in fields:
                return fields[whole.group(1)]
            return _FIELD.sub(lambda m: str(fields.get(m.group(1), m.group(0))), value)
        if isinstance(value, list):
            return [one(v) for v in value]
        if isinstance(value, dict):
            return {k: one(v) for k, v in value.items()}
        return value

    return {k: one(v) for k, v in params.items()}


def parse_preset(text: str, where: str) -> Preset:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise WorkflowError(
            f"{where}{line}: the preset is not valid YAML.", "Fix the file and run again."
        ) from None
    try:
        return Preset.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "top level"
        raise WorkflowError(
            f"{where}: {loc}: {err['msg']}.", "Fix the preset and run again."
        ) from None


def bundled() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_preset(name_or_path: str) -> Preset:
    """A bundled preset by name, or a preset file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise WorkflowError(f"There is no preset file {path}.", "Check the path.")
    else:
        path = PRESETS_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise WorkflowError(
                f"There is no preset called '{name_or_path}'.",
                f"Bundled presets: {', '.join(bundled())}; or give a path to a .yaml file.",
            )
    return parse_preset(path.read_text(encoding="utf-8"), str(path))
